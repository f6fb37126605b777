//! The request head ringx sends upstream, built in one pass into an output buffer.
//!
//! Order and content follow nginx's proxy module: the request line (with the
//! `proxy_pass` URI rule), the `proxy_set_header` list (the user's, then nginx's
//! defaults `Host: $proxy_host` and `Connection: close` unless overridden; an empty
//! value drops the header), then the client's headers minus those overridden, the
//! hop-by-hop ones and those named in `Connection`, then ringx's own framing header.

use crate::config::model::{HttpVersion, LocConf, ProxyPass};
use crate::config::vars::Template;

use super::ctx::ReqCtx;
use super::uri::escape_into;
use crate::proto::h1::request::{HeaderKind, Method};

/// How the body travels upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpBody {
    None,
    Length(u64),
    Chunked,
}

/// What the built head implies for reuse of the upstream connection.
#[derive(Debug, Clone, Copy)]
pub struct HeadInfo {
    /// The request allows the upstream to keep the connection open.
    pub keep_alive: bool,
}

/// Appends the upstream request head for `ctx` to `out`. `loc_prefix` is the matched
/// prefix location (for URI replacement).
pub fn write_request_head(
    out: &mut Vec<u8>,
    ctx: &ReqCtx<'_>,
    conf: &LocConf,
    pp: &ProxyPass,
    loc_prefix: Option<&str>,
    body: UpBody,
) -> HeadInfo {
    let b = ctx.buf;
    let head = ctx.head;
    if let Some(m) = &conf.proxy_method {
        m.render(ctx, out);
    } else if ctx.as_get && head.method() != Method::Head {
        out.extend_from_slice(b"GET");
    } else {
        out.extend_from_slice(head.method_span.get(b));
    }
    out.push(b' ');
    match (&pp.uri, loc_prefix) {
        (Some(u), _) if pp.uri_exact => out.extend_from_slice(u.as_bytes()),
        (Some(u), Some(prefix)) => {
            out.extend_from_slice(u.as_bytes());
            let rest = ctx.uri.get(prefix.len().min(ctx.uri.len())..).unwrap_or_default();
            escape_into(rest, out);
            if let Some(a) = ctx.args {
                out.push(b'?');
                out.extend_from_slice(a);
            }
        }
        _ if ctx.uri_changed => {
            // nginx: a changed URI goes upstream normalized and escaped.
            escape_into(ctx.uri, out);
            if let Some(a) = ctx.args {
                out.push(b'?');
                out.extend_from_slice(a);
            }
        }
        _ => {
            let p = head.path.get(b);
            if p.is_empty() {
                out.push(b'/');
            } else {
                out.extend_from_slice(p);
            }
        }
    }
    let v11 = conf.proxy_http_version == HttpVersion::Http11;
    out.extend_from_slice(if v11 { b" HTTP/1.1\r\n" } else { b" HTTP/1.0\r\n" });

    let mut conn_close = !v11;
    for (name, value) in &conf.proxy_set_headers {
        let mark = out.len();
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        let vstart = out.len();
        render(value, ctx, out);
        if out.len() == vstart {
            out.truncate(mark);
            continue;
        }
        if name.eq_ignore_ascii_case("connection") {
            conn_close = out[vstart..].windows(5).any(|w| w.eq_ignore_ascii_case(b"close"));
        }
        out.extend_from_slice(b"\r\n");
    }
    if conf.proxy_pass_request_headers {
        for h in &head.headers {
            if h.skip || !matches!(h.kind, HeaderKind::Other | HeaderKind::XForwardedFor) {
                continue;
            }
            let name = h.name.get(b);
            if conf
                .set_header_names
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
            {
                continue;
            }
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value.get(b));
            out.extend_from_slice(b"\r\n");
        }
    }
    match body {
        UpBody::None => {
            // nginx sends no Content-Length for a bodiless request unless the method
            // usually has one; ringx sends "Content-Length: 0" for POST/PUT/PATCH.
            if !ctx.as_get && matches!(head.method(), Method::Post | Method::Put | Method::Patch) {
                out.extend_from_slice(b"Content-Length: 0\r\n");
            }
        }
        UpBody::Length(n) => {
            let _ = std::io::Write::write_fmt(out, format_args!("Content-Length: {n}\r\n"));
        }
        UpBody::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    HeadInfo {
        keep_alive: !conn_close,
    }
}

fn render(t: &Template, ctx: &ReqCtx<'_>, out: &mut Vec<u8>) {
    match t.as_literal() {
        Some(l) => out.extend_from_slice(l),
        None => t.render_header(ctx, out),
    }
}
