//! Responses ringx writes itself: reason phrases, nginx-style error pages, `Date`.

use std::cell::RefCell;
use std::time::SystemTime;

pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "",
    }
}

/// The status line code for a status ringx uses internally (nginx's 494 and 497 are
/// sent as 400).
pub fn wire_code(code: u16) -> u16 {
    if (494..=497).contains(&code) {
        400
    } else {
        code
    }
}

/// nginx's built-in error page body for `code`, or `None` when nginx sends none.
/// nginx's special 400s (494, 497) keep `400 Bad Request` as the heading and say
/// why in the title and a line below.
pub fn error_page(code: u16) -> Option<String> {
    let why = match code {
        494 => "Request Header Or Cookie Too Large",
        495 => "The SSL certificate error",
        496 => "No required SSL certificate was sent",
        497 => "The plain HTTP request was sent to HTTPS port",
        c if (300..=599).contains(&c) && c != 304 && !reason(c).is_empty() => "",
        _ => return None,
    };
    let wire = wire_code(code);
    let h1 = format!("{wire} {}", reason(wire));
    let (title, extra) = if why.is_empty() {
        (h1.clone(), String::new())
    } else {
        (format!("{wire} {why}"), format!("<center>{why}</center>\r\n"))
    };
    Some(format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{h1}</h1></center>\r\n{extra}<hr><center>ringx</center>\r\n</body>\r\n</html>\r\n"
    ))
}

/// Errors after which nginx closes the client connection.
pub fn closes_connection(code: u16) -> bool {
    matches!(code, 400 | 408 | 413 | 414 | 494 | 495 | 496 | 497 | 500 | 501)
}

thread_local! {
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Appends the current `Date` value (IMF-fixdate), cached per second per thread.
pub fn write_http_date(out: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != now {
            let t = chrono::DateTime::from_timestamp(now as i64, 0).unwrap_or_default();
            d.1 = t.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            d.0 = now;
        }
        out.extend_from_slice(d.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let p = error_page(502).unwrap();
        assert!(p.contains("<title>502 Bad Gateway</title>"));
        assert!(error_page(494).unwrap().contains("Request Header Or Cookie Too Large"));
        assert!(error_page(200).is_none());
        assert_eq!(wire_code(494), 400);
        let mut d = Vec::new();
        write_http_date(&mut d);
        assert!(d.ends_with(b" GMT") && d.len() == 29, "{}", String::from_utf8_lossy(&d));
    }
}
