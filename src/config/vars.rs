//! nginx variables and strings with variables in them (`"$scheme://$host$request_uri"`).
//!
//! Templates are compiled once at config load into literal runs and [`Var`] ids, so the
//! request path never looks a variable up by name: it renders a template by writing
//! each part straight into an output buffer ([`Template::render`]), with no allocation.
//! What a variable's value is lives with the request ([`crate::http::ctx`]).

use super::ConfError;

/// The fields of Squid's native access-log format that nginx has no variable for
/// (ringx's predefined `squid` log format; they have no `$name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SquidField {
    /// `%6tr`: the response time in milliseconds, right-aligned in 6.
    Elapsed,
    /// `%Ss`: `TCP_TUNNEL`, `TCP_MISS`, `TCP_DENIED`, `NONE_NONE`.
    Code,
    /// `%ru`: the URL as the client sent it.
    Url,
    /// `%Sh/%<a`: `HIER_DIRECT/ADDRESS` or `HIER_NONE/-`.
    Hier,
}

/// Which of stub_status's counts a `$connections_*` variable is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnCount {
    Active,
    Reading,
    Writing,
    Waiting,
}

/// `$proxy_protocol_addr` and its kin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PpField {
    Addr,
    Port,
    ServerAddr,
    ServerPort,
}

/// A variable ringx knows. Names follow nginx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    Squid(SquidField),
    ProxyProtocol(PpField),
    /// stream: `$bytes_received`, `$session_time`, `$protocol` (in http, not found).
    BytesReceived,
    SessionTime,
    Protocol,
    /// `$upstream_bytes_sent`, `$upstream_bytes_received` (stream; in http, not found
    /// yet).
    UpstreamBytesSent,
    UpstreamBytesReceived,
    Host,
    /// `$request_port`: the port with the request line's or Host's host.
    RequestPort,
    /// `$is_request_port`: ":" when there is one.
    IsRequestPort,
    /// `$connections_active`, `_reading`, `_writing`, `_waiting` (stub_status).
    Connections(ConnCount),
    /// `$limit_req_status`, `$limit_conn_status`.
    LimitReqStatus,
    LimitConnStatus,
    /// `$http_NAME`: the request header, name lowercased with `_` as `-`.
    Http(String),
    /// `$sent_http_NAME`: a response header (only what ringx itself knows).
    SentHttp(String),
    /// `$upstream_http_NAME`.
    UpstreamHttp(String),
    /// `$arg_NAME`.
    Arg(String),
    /// `$cookie_NAME`.
    Cookie(String),
    RemoteAddr,
    RemotePort,
    RemoteUser,
    BinaryRemoteAddr,
    ProxyAddXForwardedFor,
    Scheme,
    Https,
    SslProtocol,
    SslCipher,
    SslServerName,
    SslSessionReused,
    SslAlpnProtocol,
    SslClientVerify,
    SslClientSDn,
    SslClientIDn,
    SslClientSerial,
    ServerName,
    ServerPort,
    ServerAddr,
    ServerProtocol,
    RequestUri,
    Uri,
    Args,
    IsArgs,
    Request,
    RequestMethod,
    RequestLength,
    RequestTime,
    ContentLength,
    ContentType,
    ProxyHost,
    ProxyPort,
    Status,
    BodyBytesSent,
    BytesSent,
    TimeLocal,
    TimeIso8601,
    Msec,
    Pid,
    Hostname,
    Connection,
    ConnectionRequests,
    UpstreamAddr,
    UpstreamStatus,
    UpstreamResponseTime,
    UpstreamConnectTime,
    UpstreamHeaderTime,
    NginxVersion,
    RingxVersion,
    DocumentRoot,
    RealpathRoot,
    RequestId,
    ConnectionTime,
    RealipRemoteAddr,
    RealipRemotePort,
    RequestFilename,
    /// A variable a `map` defines (its index among the http block's maps).
    Map(usize),
    /// A variable `set` defines (its index among the names `set` uses).
    User(usize),
    /// `$1`..`$9`: a capture of the last regex that matched (`rewrite`, `if`).
    Capture(u8),
    /// `$name`: a named group (`(?<name>…)`) of a regex that matched.
    Named(usize),
}

/// The variables a configuration defines, by name: `map`'s, then `set`'s.
#[derive(Debug, Default, Clone)]
pub struct UserVars {
    pub maps: Vec<String>,
    pub sets: Vec<String>,
    /// Named regex groups, in the order their regexes compile.
    pub named: Vec<String>,
}

/// Registers a regex's named group as a variable (during a build); its index.
pub fn named_capture(name: &str) -> usize {
    USER_VARS.with(|u| {
        let mut u = u.borrow_mut();
        match u.named.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                u.named.push(name.to_string());
                u.named.len() - 1
            }
        }
    })
}

/// What the configuration being built uses that costs a copy per request: the
/// upstream's response head, ringx's own response head, a request id.
pub mod needs {
    pub const UPSTREAM_HEAD: u8 = 1;
    pub const SENT_HEAD: u8 = 2;
    pub const REQUEST_ID: u8 = 4;
    thread_local!(static NEEDS: std::cell::Cell<u8> = const { std::cell::Cell::new(0) });

    pub(super) fn note(bit: u8) {
        NEEDS.with(|n| n.set(n.get() | bit));
    }

    /// What was noted since the last call (a build takes it once at its end).
    pub fn take() -> u8 {
        NEEDS.with(|n| n.replace(0))
    }
}

thread_local! {
    /// The variables of the configuration being built.
    static USER_VARS: std::cell::RefCell<UserVars> = std::cell::RefCell::new(UserVars::default());
}

/// Runs `f` (a configuration build) with `names` known as variables.
pub fn with_user_vars<R>(names: UserVars, f: impl FnOnce() -> R) -> R {
    let old = USER_VARS.with(|u| std::mem::replace(&mut *u.borrow_mut(), names));
    let r = f();
    USER_VARS.with(|u| *u.borrow_mut() = old);
    r
}

impl Var {
    /// Notes what the request path must keep for this variable ([`needs`]).
    fn note_needs(&self) {
        match self {
            Var::UpstreamHttp(_) => needs::note(needs::UPSTREAM_HEAD),
            Var::SentHttp(_) => needs::note(needs::SENT_HEAD),
            Var::RequestId => needs::note(needs::REQUEST_ID),
            _ => {}
        }
    }

    /// Looks a variable up by name (without `$`): ringx's own, then those the
    /// configuration defines.
    pub fn from_name(name: &str) -> Option<Var> {
        Var::builtin(name).or_else(|| {
            USER_VARS.with(|u| {
                let u = u.borrow();
                let find = |list: &[String]| list.iter().position(|n| n.eq_ignore_ascii_case(name));
                find(&u.maps)
                    .map(Var::Map)
                    .or_else(|| find(&u.sets).map(Var::User))
                    .or_else(|| u.named.iter().position(|n| n == name).map(Var::Named))
            })
        })
    }

    /// One of ringx's own variables.
    pub fn builtin(name: &str) -> Option<Var> {
        let low = name.to_ascii_lowercase();
        let hdr = |p: &str| {
            low.strip_prefix(p)
                .filter(|s| !s.is_empty())
                .map(|s| s.replace('_', "-"))
        };
        if let Some(h) = hdr("http_") {
            return Some(Var::Http(h));
        }
        if let Some(h) = hdr("sent_http_") {
            return Some(Var::SentHttp(h));
        }
        if let Some(h) = hdr("upstream_http_") {
            return Some(Var::UpstreamHttp(h));
        }
        if let Some(a) = name.strip_prefix("arg_").filter(|s| !s.is_empty()) {
            return Some(Var::Arg(a.to_string()));
        }
        if let Some(c) = name.strip_prefix("cookie_").filter(|s| !s.is_empty()) {
            return Some(Var::Cookie(c.to_string()));
        }
        Some(match low.as_str() {
            "host" => Var::Host,
            "request_port" => Var::RequestPort,
            "is_request_port" => Var::IsRequestPort,
            "limit_req_status" => Var::LimitReqStatus,
            "connections_active" => Var::Connections(ConnCount::Active),
            "connections_reading" => Var::Connections(ConnCount::Reading),
            "connections_writing" => Var::Connections(ConnCount::Writing),
            "connections_waiting" => Var::Connections(ConnCount::Waiting),
            "limit_conn_status" => Var::LimitConnStatus,
            "remote_addr" => Var::RemoteAddr,
            "remote_port" => Var::RemotePort,
            "remote_user" => Var::RemoteUser,
            "binary_remote_addr" => Var::BinaryRemoteAddr,
            "proxy_add_x_forwarded_for" => Var::ProxyAddXForwardedFor,
            "scheme" => Var::Scheme,
            "https" => Var::Https,
            "ssl_protocol" => Var::SslProtocol,
            "ssl_cipher" => Var::SslCipher,
            "ssl_server_name" => Var::SslServerName,
            "ssl_session_reused" => Var::SslSessionReused,
            "ssl_alpn_protocol" => Var::SslAlpnProtocol,
            "ssl_client_verify" => Var::SslClientVerify,
            "ssl_client_s_dn" => Var::SslClientSDn,
            "ssl_client_i_dn" => Var::SslClientIDn,
            "ssl_client_serial" => Var::SslClientSerial,
            "server_name" => Var::ServerName,
            "server_port" => Var::ServerPort,
            "server_addr" => Var::ServerAddr,
            "server_protocol" => Var::ServerProtocol,
            "request_uri" => Var::RequestUri,
            "uri" | "document_uri" => Var::Uri,
            "args" | "query_string" => Var::Args,
            "is_args" => Var::IsArgs,
            "request" => Var::Request,
            "request_method" => Var::RequestMethod,
            "request_length" => Var::RequestLength,
            "request_time" => Var::RequestTime,
            "content_length" => Var::ContentLength,
            "content_type" => Var::ContentType,
            "proxy_host" => Var::ProxyHost,
            "proxy_port" => Var::ProxyPort,
            "status" => Var::Status,
            "body_bytes_sent" => Var::BodyBytesSent,
            "bytes_sent" => Var::BytesSent,
            "time_local" => Var::TimeLocal,
            "time_iso8601" => Var::TimeIso8601,
            "msec" => Var::Msec,
            "pid" => Var::Pid,
            "hostname" => Var::Hostname,
            "connection" => Var::Connection,
            "connection_requests" => Var::ConnectionRequests,
            "upstream_addr" => Var::UpstreamAddr,
            "upstream_status" => Var::UpstreamStatus,
            "upstream_response_time" => Var::UpstreamResponseTime,
            "upstream_connect_time" => Var::UpstreamConnectTime,
            "upstream_header_time" => Var::UpstreamHeaderTime,
            "nginx_version" => Var::NginxVersion,
            "document_root" => Var::DocumentRoot,
            "request_id" => Var::RequestId,
            "connection_time" => Var::ConnectionTime,
            "realip_remote_addr" => Var::RealipRemoteAddr,
            "realip_remote_port" => Var::RealipRemotePort,
            "realpath_root" => Var::RealpathRoot,
            "request_filename" => Var::RequestFilename,
            "ringx_version" => Var::RingxVersion,
            "proxy_protocol_addr" => Var::ProxyProtocol(PpField::Addr),
            "proxy_protocol_port" => Var::ProxyProtocol(PpField::Port),
            "proxy_protocol_server_addr" => Var::ProxyProtocol(PpField::ServerAddr),
            "proxy_protocol_server_port" => Var::ProxyProtocol(PpField::ServerPort),
            "bytes_received" => Var::BytesReceived,
            "session_time" => Var::SessionTime,
            "protocol" => Var::Protocol,
            "upstream_bytes_sent" => Var::UpstreamBytesSent,
            "upstream_bytes_received" => Var::UpstreamBytesReceived,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(Box<[u8]>),
    Var(Var),
}

/// A string with variables, compiled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pub parts: Vec<Part>,
}

/// Where variable values come from: implemented by the request context.
pub trait VarSource {
    /// Appends the value of `v` to `out`; returns false when the variable is not found
    /// (access logs then print `-`).
    fn write_var(&self, v: &Var, out: &mut Vec<u8>) -> bool;
}

impl Template {
    /// Compiles `s`. Unknown variables are an error (`unknown "x" variable`, as nginx).
    pub fn compile(s: &str) -> Result<Template, ConfError> {
        let b = s.as_bytes();
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'$' {
                lit.push(b[i]);
                i += 1;
                continue;
            }
            let (name, next) = if i + 1 < b.len() && b[i + 1] == b'{' {
                let end = s[i + 2..]
                    .find('}')
                    .ok_or_else(|| ConfError::plain("the closing bracket in variable is missing"))?;
                (&s[i + 2..i + 2 + end], i + 3 + end)
            } else {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                (&s[i + 1..j], j)
            };
            if let Some(d @ b'1'..=b'9') = name.bytes().next() {
                // `$1`..`$9`; what follows the digit is text (`$12` is `$1` then `2`).
                let braced = b[i + 1] == b'{';
                if braced && name.len() != 1 {
                    return Err(ConfError::plain(format!("unknown \"{name}\" variable")));
                }
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit).into_boxed_slice()));
                }
                parts.push(Part::Var(Var::Capture(d - b'0')));
                i = if braced { next } else { i + 2 };
                continue;
            }
            if name.is_empty() {
                // A lone `$` is a literal, as nginx prints it.
                lit.push(b'$');
                i += 1;
                continue;
            }
            let var = Var::from_name(name).ok_or_else(|| ConfError::plain(format!("unknown \"{name}\" variable")))?;
            var.note_needs();
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit).into_boxed_slice()));
            }
            parts.push(Part::Var(var));
            i = next;
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit.into_boxed_slice()));
        }
        Ok(Template { parts })
    }

    pub fn has_vars(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Var(_)))
    }

    /// The literal text when the template has no variables.
    /// A template of plain text (no variables, `$` included as it is).
    pub fn literal(s: &str) -> Template {
        Template {
            parts: vec![Part::Lit(s.as_bytes().into())],
        }
    }

    pub fn as_literal(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [] => Some(b""),
            [Part::Lit(l)] => Some(l),
            _ => None,
        }
    }

    /// Notes what its variables need kept (for a template not made by
    /// [`Template::compile`] in this build, as the predefined `squid` format).
    pub fn note_needs(&self) {
        for p in &self.parts {
            if let Part::Var(v) = p {
                v.note_needs();
            }
        }
    }

    /// Appends the rendered string to `out`.
    pub fn render(&self, src: &dyn VarSource, out: &mut Vec<u8>) {
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.extend_from_slice(l),
                Part::Var(v) => {
                    src.write_var(v, out);
                }
            }
        }
    }

    /// Renders a header value: CR, LF and NUL that a variable carries (decoded from
    /// the request, as `$uri` from `%0d%0a`) are written percent-encoded, so request
    /// input can never end a header line or start a new one (nginx lets them
    /// through; ringx does not).
    pub fn render_header(&self, src: &dyn VarSource, out: &mut Vec<u8>) {
        for p in &self.parts {
            match p {
                // The configuration's own text is written as it is (nginx's `\r\n`
                // escapes in a quoted string are the admin's choice).
                Part::Lit(l) => out.extend_from_slice(l),
                Part::Var(v) => {
                    let mark = out.len();
                    src.write_var(v, out);
                    escape_line_breaks(out, mark);
                }
            }
        }
    }

    /// Renders for an access log with nginx's `escape=default`: a variable with no
    /// value, or an empty one, prints `-`; bytes that are not printable ASCII, `"`
    /// and `\` are written as `\xHH`.
    pub fn render_log(&self, src: &dyn VarSource, out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        self.render_escaped(Escape::Default, src, out, scratch)
    }

    fn render_escaped(&self, esc: Escape, src: &dyn VarSource, out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.extend_from_slice(l),
                Part::Var(v) => {
                    scratch.clear();
                    let found = src.write_var(v, scratch);
                    match esc {
                        Escape::Default if !found || scratch.is_empty() => out.push(b'-'),
                        Escape::Default => escape_default(scratch, out),
                        Escape::Json => escape_json(scratch, out),
                        Escape::None => out.extend_from_slice(scratch),
                    }
                }
            }
        }
    }
}

/// `log_format NAME [escape=default|json|none] ...`: how variable values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    Default,
    /// JSON string escapes; a variable without a value writes nothing.
    Json,
    /// As they are; a variable without a value writes nothing.
    None,
}

/// A `log_format`: its template and escaping.
#[derive(Debug)]
pub struct LogFormat {
    pub template: Template,
    pub escape: Escape,
}

impl LogFormat {
    pub fn new(template: Template, escape: Escape) -> LogFormat {
        LogFormat { template, escape }
    }

    /// One access-log line's text (without the line break).
    pub fn render_log(&self, src: &dyn VarSource, out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        self.template.render_escaped(self.escape, src, out, scratch)
    }
}

impl std::ops::Deref for LogFormat {
    type Target = Template;
    fn deref(&self) -> &Template {
        &self.template
    }
}

/// nginx's `ngx_http_log_escape`: `"`, `\` and bytes outside printable ASCII as `\xHH`.
fn escape_default(v: &[u8], out: &mut Vec<u8>) {
    for &c in v {
        if c == b'"' || c == b'\\' || !(0x20..0x7f).contains(&c) {
            out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
        } else {
            out.push(c);
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// nginx's `ngx_escape_json`: `\"`, `\\`, `\n` `\r` `\t` `\b` `\f`, other control bytes
/// as `\u00XX`; the rest (UTF-8 included) as it is.
fn escape_json(v: &[u8], out: &mut Vec<u8>) {
    for &c in v {
        match c {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', c]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 15)],
            ]),
            _ => out.push(c),
        }
    }
}

/// Percent-encodes CR, LF and NUL in `out[from..]`, in place.
pub fn escape_line_breaks(out: &mut Vec<u8>, from: usize) {
    let bad = |b: &u8| matches!(b, b'\r' | b'\n' | 0);
    let Some(first) = out[from..].iter().position(bad) else {
        return;
    };
    let tail = out.split_off(from + first);
    for b in tail {
        if bad(&b) {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.push(b);
        }
    }
}

/// Squid's native log format (`logformat squid %ts.%03tu %6tr %>a %Ss/%03>Hs %<st
/// %rm %ru %[un %Sh/%<a %mt`), as ringx's predefined `squid` log format.
pub fn squid_log_format() -> Template {
    let lit = |s: &str| Part::Lit(s.as_bytes().into());
    Template {
        parts: vec![
            Part::Var(Var::Msec),
            lit(" "),
            Part::Var(Var::Squid(SquidField::Elapsed)),
            lit(" "),
            Part::Var(Var::RemoteAddr),
            lit(" "),
            Part::Var(Var::Squid(SquidField::Code)),
            lit("/"),
            Part::Var(Var::Status),
            lit(" "),
            Part::Var(Var::BytesSent),
            lit(" "),
            Part::Var(Var::RequestMethod),
            lit(" "),
            Part::Var(Var::Squid(SquidField::Url)),
            lit(" "),
            Part::Var(Var::RemoteUser),
            lit(" "),
            Part::Var(Var::Squid(SquidField::Hier)),
            lit(" "),
            Part::Var(Var::SentHttp("content-type".into())),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct S;
    impl VarSource for S {
        fn write_var(&self, v: &Var, out: &mut Vec<u8>) -> bool {
            match v {
                Var::Host => out.extend_from_slice(b"example.com"),
                Var::RequestPort | Var::IsRequestPort => {}
                Var::RequestUri => out.extend_from_slice(b"/a?b=1"),
                Var::Http(h) if h == "user-agent" => out.extend_from_slice(b"curl \"x\""),
                _ => return false,
            }
            true
        }
    }

    #[test]
    fn compile_and_render() {
        let t = Template::compile("https://$host${request_uri}!$").unwrap();
        let mut out = Vec::new();
        t.render(&S, &mut out);
        assert_eq!(out, b"https://example.com/a?b=1!$");
        assert!(t.has_vars());
        assert_eq!(Template::compile("plain").unwrap().as_literal(), Some(&b"plain"[..]));
    }

    #[test]
    fn header_vars() {
        assert_eq!(Var::from_name("http_x_real_ip"), Some(Var::Http("x-real-ip".into())));
        assert_eq!(Var::from_name("arg_page"), Some(Var::Arg("page".into())));
        assert_eq!(
            Template::compile("$nope").unwrap_err().to_string(),
            "unknown \"nope\" variable"
        );
    }

    #[test]
    fn header_rendering_escapes_line_breaks() {
        let mut out = b"X: ".to_vec();
        escape_line_breaks(&mut out, 3);
        assert_eq!(out, b"X: ");
        let mut out = b"X: a\r\nSet-Cookie: b\0".to_vec();
        escape_line_breaks(&mut out, 3);
        assert_eq!(out, b"X: a%0D%0ASet-Cookie: b%00");
    }

    #[test]
    fn log_rendering_escapes_and_dashes() {
        let t = Template::compile("$remote_user \"$http_user_agent\"").unwrap();
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        t.render_log(&S, &mut out, &mut scratch);
        assert_eq!(out, b"- \"curl \\x22x\\x22\"");
    }

    #[test]
    fn log_escapes_as_nginx() {
        let mut out = Vec::new();
        escape_json(b"a\"b\\c\n\r\t\x08\x0c\x01\x1f\x7f\xc3\xa9", &mut out);
        assert_eq!(out, b"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001F\x7f\xc3\xa9");
        out.clear();
        escape_default(b"a\"\\\x01\x7f\xc3", &mut out);
        assert_eq!(out, b"a\\x22\\x5C\\x01\\x7F\\xC3");
    }
}
