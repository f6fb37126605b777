//! squid.conf, the part teams moving off Squid run, translated into nginx's form.
//!
//! Where it sits: before the parser. `ringx -c squid.conf` reads a file in Squid's
//! format ([`is_squid`]: its first directive is one of Squid's, and no line ends in
//! `;` or opens a block), writes the equivalent nginx configuration ([`translate`]),
//! and builds that, so the forward proxy behind both forms is one and the same;
//! `ringx -T` prints the translation.
//!
//! The translation:
//! - `http_port [ADDR:]PORT` → a server `listen`ing there with the forward proxy's
//!   `location /` (`tunnel_pass` for CONNECT, `proxy_pass http://$host…` else).
//! - `acl NAME src|dst|dstdomain|port|method …` → one `geo` or `map` variable per
//!   ACL, "1" when it matches (several lines of one name add values, as Squid ORs
//!   them); `all`, `localhost`, `to_localhost`, `to_linklocal` and `manager` are
//!   predefined as in Squid 6.
//! - `http_access allow|deny [!]ACL…` → one `map` per line (its ACLs ANDed) and a
//!   first-match `map` over the lines, `$squid_access`; when no line matches, the
//!   answer is the opposite of the last line's (deny when there is none), as Squid.
//!   A denied request gets 403 before anything is connected.
//! - `auth_param basic program …/basic_ncsa_auth FILE` and `acl NAME proxy_auth
//!   REQUIRED|USER…` → `auth_basic $squid_auth_realm` with FILE: the rules run with
//!   the credentials taken as good, and the realm map asks for them (407) where a
//!   line whose other ACLs match names a `proxy_auth` ACL before the deciding one.
//! - `access_log [daemon:|stdio:]PATH [squid]` and `none`; Squid's native format is
//!   ringx's predefined `squid` log format.
//! - `dns_nameservers` (else /etc/resolv.conf's) → `resolver`; `forwarded_for`,
//!   `via`, `visible_hostname`, `pid_filename`, `cache_effective_user`/`_group`.
//! - `cache_dir`, `cache_mem`, `refresh_pattern` and the other cache settings are
//!   accepted with a `[warn]`: responses are forwarded uncached until ringx has a
//!   response cache. `coredump_dir` is a no-op.
//!
//! Anything else is an error naming the directive, file and line.

use std::fmt::Write;
use std::path::Path;

use super::ConfError;

/// Squid directives that can open a squid.conf and that nginx does not have.
const SQUID_FIRST: &[&str] = &[
    "http_port",
    "https_port",
    "acl",
    "http_access",
    "cache_dir",
    "cache_mem",
    "visible_hostname",
    "auth_param",
    "dns_nameservers",
    "coredump_dir",
    "refresh_pattern",
    "cache_effective_user",
];

/// Cache settings: accepted, with the warning that nothing is cached.
const CACHE: &[&str] = &[
    "cache_dir",
    "cache_mem",
    "refresh_pattern",
    "maximum_object_size",
    "minimum_object_size",
    "maximum_object_size_in_memory",
    "cache_replacement_policy",
    "memory_replacement_policy",
    "cache_swap_low",
    "cache_swap_high",
    "cache_store_log",
    "cache",
];

/// Whether `text` is in Squid's format (see the module's documentation).
pub fn is_squid(text: &str) -> bool {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let first = lines.first().and_then(|l| l.split_whitespace().next()).unwrap_or("");
    SQUID_FIRST.contains(&first) && !lines.iter().any(|l| l.ends_with(';') || l.ends_with('{'))
}

/// One line of squid.conf: where it is, and its words.
struct Line {
    file: String,
    no: usize,
    words: Vec<String>,
}

impl Line {
    fn err(&self, msg: impl std::fmt::Display) -> ConfError {
        ConfError::at(msg.to_string(), &self.file, self.no)
    }
}

/// One ACL: its type and values, its variable, where it was first defined.
struct Acl {
    name: String,
    kind: String,
    values: Vec<String>,
    var: String,
}

/// What the lines say, gathered before the nginx text is written.
#[derive(Default)]
struct Squid {
    ports: Vec<String>,
    acls: Vec<Acl>,
    /// (allow, [(negated, ACL index)], where).
    access: Vec<(bool, Vec<(bool, usize)>)>,
    logs: Vec<String>,
    nameservers: Vec<String>,
    forwarded_for: String,
    via: bool,
    hostname: Option<String>,
    pid: Option<String>,
    user: Option<(String, Option<String>)>,
    /// `auth_param basic program …basic_ncsa_auth FILE`, and `auth_param basic realm`.
    auth_file: Option<String>,
    auth_realm: String,
    warnings: Vec<ConfError>,
}

/// The nginx configuration `text` (read from `file`) means, and the `[warn]`s it
/// gives.
pub fn translate(text: &str, file: &Path) -> Result<(String, Vec<ConfError>), ConfError> {
    let mut lines = Vec::new();
    read_lines(text, &file.display().to_string(), &mut lines, 0)?;
    let mut s = Squid {
        forwarded_for: "on".into(),
        via: true,
        auth_realm: "Squid proxy-caching web server".into(),
        ..Squid::default()
    };
    predefine(&mut s);
    for l in &lines {
        directive(&mut s, l)?;
    }
    if s.auth_file.is_none() && s.acls.iter().any(|a| a.kind == "proxy_auth") {
        let l = lines.iter().find(|l| l.words.get(2).is_some_and(|k| k == "proxy_auth"));
        let msg = "a \"proxy_auth\" ACL needs \"auth_param basic program\"";
        return Err(l.map_or_else(|| ConfError::plain(msg), |l| l.err(msg)));
    }
    if s.ports.is_empty() {
        s.ports.push("3128".into());
    }
    Ok((write_nginx(&s, file), s.warnings))
}

/// Lines without comments, continuations joined, `include` files read in place.
fn read_lines(text: &str, file: &str, out: &mut Vec<Line>, depth: usize) -> Result<(), ConfError> {
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if pending.is_none() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        let (no, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(cont) = t.strip_suffix('\\') {
            acc.push_str(cont);
            acc.push(' ');
            pending = Some((no, acc));
            continue;
        }
        acc.push_str(t);
        let words: Vec<String> = acc.split_whitespace().map(str::to_string).collect();
        let line = Line {
            file: file.to_string(),
            no,
            words,
        };
        if line.words[0] == "include" {
            include(&line, out, depth)?;
        } else {
            out.push(line);
        }
    }
    Ok(())
}

fn include(l: &Line, out: &mut Vec<Line>, depth: usize) -> Result<(), ConfError> {
    if depth > 16 || l.words.len() != 2 {
        return Err(l.err("invalid \"include\""));
    }
    let paths = glob::glob(&l.words[1]).map_err(|e| l.err(format!("invalid include \"{}\": {e}", l.words[1])))?;
    for p in paths.flatten() {
        let text = std::fs::read_to_string(&p).map_err(|e| {
            l.err(format!(
                "open() \"{}\" failed ({})",
                p.display(),
                super::parser::os_err(&e)
            ))
        })?;
        read_lines(&text, &p.display().to_string(), out, depth + 1)?;
    }
    Ok(())
}

/// `$squid_acl_NAME` (characters nginx does not allow in names as `_`; a number
/// after it when that name is taken).
fn var_name(acls: &[Acl], name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let base = format!("squid_acl_{clean}");
    if acls.iter().any(|a| a.var == base) {
        format!("{base}_{}", acls.len())
    } else {
        base
    }
}

/// Squid 6's predefined ACLs.
fn predefine(s: &mut Squid) {
    let mut add = |name: &str, kind: &str, values: &[&str]| {
        let var = var_name(&s.acls, name);
        s.acls.push(Acl {
            name: name.into(),
            kind: kind.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
            var,
        });
    };
    add("all", "src", &["0.0.0.0/0", "::/0"]);
    add("localhost", "src", &["127.0.0.1/32", "::1"]);
    add("to_localhost", "dst", &["127.0.0.0/8", "0.0.0.0/32", "::1", "::/128"]);
    add("to_linklocal", "dst", &["169.254.0.0/16", "fe80::/10"]);
    // Squid's cache manager (cache_object:// and /squid-internal-mgr/ URLs): ringx
    // has none, so it never matches.
    add("manager", "none", &[]);
}

fn directive(s: &mut Squid, l: &Line) -> Result<(), ConfError> {
    let w = &l.words;
    let name = w[0].as_str();
    match name {
        "http_port" => http_port(s, l),
        "acl" => acl(s, l),
        "http_access" => http_access(s, l),
        "access_log" => access_log(s, l),
        "dns_nameservers" if w.len() > 1 => {
            s.nameservers.extend(w[1..].iter().cloned());
            Ok(())
        }
        "forwarded_for" if w.len() == 2 => match w[1].as_str() {
            "on" | "off" | "delete" | "transparent" => {
                s.forwarded_for = w[1].clone();
                Ok(())
            }
            v => Err(l.err(format!("invalid value \"{v}\" of \"forwarded_for\""))),
        },
        "via" if w.len() == 2 => {
            s.via = on_off(l, &w[1])?;
            Ok(())
        }
        "visible_hostname" if w.len() == 2 => {
            s.hostname = Some(w[1].clone());
            Ok(())
        }
        "pid_filename" if w.len() == 2 => {
            s.pid = Some(w[1].clone());
            Ok(())
        }
        "cache_effective_user" if w.len() == 2 => {
            s.user = Some((w[1].clone(), s.user.take().and_then(|u| u.1)));
            Ok(())
        }
        "cache_effective_group" if w.len() == 2 => {
            let user = s.user.take().map_or_else(|| "proxy".to_string(), |u| u.0);
            s.user = Some((user, Some(w[1].clone())));
            Ok(())
        }
        "coredump_dir" => Ok(()),
        _ if CACHE.contains(&name) => {
            s.warnings.push(l.err(format!(
                "\"{name}\" is accepted, but ringx has no response cache yet: responses are forwarded uncached"
            )));
            Ok(())
        }
        "auth_param" => auth_param(s, l),
        _ => Err(l.err(format!("unknown directive \"{name}\""))),
    }
}

/// `auth_param basic program HELPER FILE` (Squid's `basic_ncsa_auth`, which reads
/// an htpasswd file: ringx reads the file itself), `realm`, and the helper's tuning
/// (`children`, `credentialsttl`, `casesensitive`, `utf8`: no effect here).
fn auth_param(s: &mut Squid, l: &Line) -> Result<(), ConfError> {
    let w = &l.words;
    if w.get(1).map(String::as_str) != Some("basic") {
        return Err(l.err(format!(
            "auth_param scheme \"{}\" is not supported (only basic)",
            w.get(1).map_or("", |x| x)
        )));
    }
    match w.get(2).map(String::as_str) {
        Some("program") => {
            let helper = w.get(3).map_or("", |h| h.rsplit('/').next().unwrap_or(""));
            if helper != "basic_ncsa_auth" || w.len() != 5 {
                return Err(
                    l.err("only \"auth_param basic program …/basic_ncsa_auth FILE\" is supported (an htpasswd file)")
                );
            }
            s.auth_file = Some(w[4].clone());
            Ok(())
        }
        Some("realm") if w.len() > 3 => {
            s.auth_realm = w[3..].join(" ");
            Ok(())
        }
        Some("children" | "credentialsttl" | "casesensitive" | "utf8" | "keep_alive") => Ok(()),
        Some(p) => Err(l.err(format!("auth_param basic \"{p}\" is not supported"))),
        None => Err(l.err("\"auth_param basic\" needs a parameter")),
    }
}

fn on_off(l: &Line, v: &str) -> Result<bool, ConfError> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(l.err(format!("invalid value \"{v}\""))),
    }
}

/// `http_port [ADDR:]PORT` (options are refused: interception and TLS bumping are
/// Squid's own).
fn http_port(s: &mut Squid, l: &Line) -> Result<(), ConfError> {
    let Some(addr) = l.words.get(1) else {
        return Err(l.err("\"http_port\" needs a port"));
    };
    if let Some(opt) = l.words.get(2) {
        return Err(l.err(format!("\"http_port\" option \"{opt}\" is not supported")));
    }
    let port = addr.rsplit(':').next().unwrap_or("");
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(l.err(format!("invalid port in \"http_port {addr}\"")));
    }
    s.ports.push(addr.clone());
    Ok(())
}

/// `acl NAME TYPE VALUE…` (values may be `"/file"`: one per line).
fn acl(s: &mut Squid, l: &Line) -> Result<(), ConfError> {
    let [_, name, kind, rest @ ..] = l.words.as_slice() else {
        return Err(l.err("\"acl\" needs a name, a type and values"));
    };
    if !matches!(
        kind.as_str(),
        "src" | "dst" | "dstdomain" | "port" | "method" | "proxy_auth"
    ) {
        return Err(l.err(format!("acl type \"{kind}\" is not supported yet")));
    }
    let mut values = Vec::new();
    for v in rest {
        if v == "-i" || v == "-n" {
            continue;
        }
        match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| l.err(format!("open() \"{path}\" failed ({})", super::parser::os_err(&e))))?;
                values.extend(
                    text.lines()
                        .map(|t| t.split('#').next().unwrap_or("").trim())
                        .filter(|t| !t.is_empty())
                        .map(str::to_string),
                );
            }
            None => values.push(v.clone()),
        }
    }
    for v in &values {
        check_value(l, kind, v)?;
    }
    if let Some(a) = s.acls.iter_mut().find(|a| a.name == *name) {
        if a.kind != *kind {
            return Err(l.err(format!("acl \"{name}\" is already defined with type \"{}\"", a.kind)));
        }
        a.values.extend(values);
        return Ok(());
    }
    let var = var_name(&s.acls, name);
    s.acls.push(Acl {
        name: name.clone(),
        kind: kind.clone(),
        values,
        var,
    });
    Ok(())
}

fn check_value(l: &Line, kind: &str, v: &str) -> Result<(), ConfError> {
    let ok = match kind {
        "src" | "dst" => v == "all" || !networks(v).is_empty(),
        "port" => port_range(v).is_some(),
        "method" => v.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'),
        "proxy_auth" => !v.is_empty() && !v.contains(['"', '{', '}', ';', ' ', '\\']),
        _ => !v.contains(['"', '{', '}', ';', ' ']),
    };
    if ok {
        Ok(())
    } else {
        Err(l.err(format!("invalid {kind} value \"{v}\"")))
    }
}

/// `http_access allow|deny [!]ACL…`.
fn http_access(s: &mut Squid, l: &Line) -> Result<(), ConfError> {
    let [_, action, acls @ ..] = l.words.as_slice() else {
        return Err(l.err("\"http_access\" needs allow or deny"));
    };
    let allow = match action.as_str() {
        "allow" => true,
        "deny" => false,
        a => Err(l.err(format!("invalid action \"{a}\" of \"http_access\"")))?,
    };
    if acls.is_empty() {
        return Err(l.err("\"http_access\" needs an ACL"));
    }
    let mut terms = Vec::new();
    for a in acls {
        let (neg, name) = match a.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, a.as_str()),
        };
        let i = s
            .acls
            .iter()
            .position(|x| x.name == name)
            .ok_or_else(|| l.err(format!("ACL not found: \"{name}\"")))?;
        terms.push((neg, i));
    }
    s.access.push((allow, terms));
    Ok(())
}

/// `access_log none` or `access_log [MODULE:]PATH [squid|combined]`.
fn access_log(s: &mut Squid, l: &Line) -> Result<(), ConfError> {
    match l.words.as_slice() {
        [_, none] if none == "none" => {
            s.logs.push("off".into());
            Ok(())
        }
        [_, path] | [_, path, _] => {
            let format = l.words.get(2).map_or("squid", String::as_str);
            if format != "squid" && format != "combined" {
                return Err(l.err(format!("access_log format \"{format}\" is not supported yet")));
            }
            let path = path
                .strip_prefix("daemon:")
                .or_else(|| path.strip_prefix("stdio:"))
                .unwrap_or(path);
            s.logs.push(format!("{path} {format}"));
            Ok(())
        }
        _ => Err(l.err("access_log with ACLs is not supported yet")),
    }
}

/// `a.b.c.d[/BITS|/MASK]`, `A-B[/MASK]`, IPv6 `x::/N`: as nginx networks (a range
/// as the networks that cover it).
fn networks(v: &str) -> Vec<String> {
    if v == "all" {
        return vec!["0.0.0.0/0".into(), "::/0".into()];
    }
    let (addr, mask) = match v.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (v, None),
    };
    let bits = |max: u8| -> Option<u8> {
        match mask {
            None => Some(max),
            Some(m) => match m.parse::<u8>() {
                Ok(b) if b <= max => Some(b),
                Ok(_) => None,
                Err(_) => {
                    let m: std::net::Ipv4Addr = m.parse().ok()?;
                    let n = u32::from(m);
                    (n.leading_ones() + n.trailing_zeros() == 32).then(|| n.leading_ones() as u8)
                }
            },
        }
    };
    if let Some((a, b)) = addr.split_once('-') {
        let (Ok(a), Ok(b)) = (a.parse::<std::net::Ipv4Addr>(), b.parse::<std::net::Ipv4Addr>()) else {
            return Vec::new();
        };
        return super::model::Cidr::cover_v4(a, b)
            .iter()
            .map(|c| format!("{}/{}", c.addr, c.bits))
            .collect();
    }
    match addr.parse::<std::net::IpAddr>() {
        Ok(ip @ std::net::IpAddr::V4(_)) => bits(32).map(|b| vec![format!("{ip}/{b}")]).unwrap_or_default(),
        Ok(ip) => bits(128).map(|b| vec![format!("{ip}/{b}")]).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// `N` or `A-B`.
fn port_range(v: &str) -> Option<(u16, u16)> {
    let (a, b) = v.split_once('-').unwrap_or((v, v));
    let (a, b) = (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?);
    (a <= b).then_some((a, b))
}

/// A regex that matches the decimal numbers `lo..=hi` (no leading zeros).
fn range_regex(lo: u32, hi: u32) -> String {
    let mut parts = Vec::new();
    let mut lo = lo;
    // Split by number of digits, then by common prefix.
    while digits(lo) < digits(hi) {
        let top = 10u32.pow(digits(lo)) - 1;
        parts.extend(same_len(&lo.to_string(), &top.to_string()));
        lo = top + 1;
    }
    parts.extend(same_len(&lo.to_string(), &hi.to_string()));
    format!("^({})$", parts.join("|"))
}

fn digits(n: u32) -> u32 {
    n.checked_ilog10().unwrap_or(0) + 1
}

/// Alternatives for `lo..=hi`, both of the same length.
fn same_len(lo: &str, hi: &str) -> Vec<String> {
    let (l0, h0) = (lo.as_bytes()[0], hi.as_bytes()[0]);
    let n = lo.len() - 1;
    if n == 0 {
        return vec![if l0 == h0 {
            (l0 as char).to_string()
        } else {
            format!("[{}-{}]", l0 as char, h0 as char)
        }];
    }
    let (lr, hr) = (&lo[1..], &hi[1..]);
    if l0 == h0 {
        return same_len(lr, hr)
            .into_iter()
            .map(|p| format!("{}{p}", l0 as char))
            .collect();
    }
    let mut out = Vec::new();
    let mut first = l0;
    if lr.bytes().any(|b| b != b'0') {
        out.extend(
            same_len(lr, &"9".repeat(n))
                .into_iter()
                .map(|p| format!("{}{p}", l0 as char)),
        );
        first += 1;
    }
    let mut last = h0;
    let tail_full = hr.bytes().all(|b| b == b'9');
    if !tail_full {
        last -= 1;
    }
    if first <= last {
        let d = if first == last {
            (first as char).to_string()
        } else {
            format!("[{}-{}]", first as char, last as char)
        };
        out.push(format!("{d}[0-9]{{{n}}}"));
    }
    if !tail_full {
        out.extend(
            same_len(&"0".repeat(n), hr)
                .into_iter()
                .map(|p| format!("{}{p}", h0 as char)),
        );
    }
    out
}

fn write_nginx(s: &Squid, file: &Path) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# ringx: {} in Squid's format, translated into nginx's (docs/forward-proxy.md).",
        file.display()
    );
    if let Some((u, g)) = &s.user {
        let _ = writeln!(
            o,
            "user {u}{};",
            g.as_ref().map(|g| format!(" {g}")).unwrap_or_default()
        );
    }
    if let Some(p) = &s.pid {
        let _ = writeln!(o, "pid {p};");
    }
    o.push_str("events {}\nhttp {\n");
    let servers = if s.nameservers.is_empty() {
        resolv_conf()
    } else {
        s.nameservers.clone()
    };
    if !servers.is_empty() {
        let _ = writeln!(o, "    resolver {};", servers.join(" "));
    }
    for l in &s.logs {
        let _ = writeln!(o, "    access_log {l};");
    }
    if s.logs.is_empty() {
        o.push_str("    access_log logs/access.log squid;\n");
    }
    // Only the ACLs the rules use (the predefined ones would be noise).
    for (i, a) in s.acls.iter().enumerate() {
        if s.access.iter().any(|(_, terms)| terms.iter().any(|(_, t)| *t == i)) {
            acl_var(&mut o, a);
        }
    }
    access_map(&mut o, s);
    auth_map(&mut o, s);
    o.push_str("    map $request $squid_not_proxied { \"~^[A-Za-z]+ /\" 1; default 0; }\n");
    for p in &s.ports {
        server(&mut o, s, p);
    }
    o.push_str("}\n");
    o
}

fn acl_var(o: &mut String, a: &Acl) {
    if a.kind == "none" {
        let _ = writeln!(
            o,
            "    # acl {}: Squid's cache manager, which ringx has not: never matches",
            a.name
        );
    } else {
        let _ = writeln!(o, "    # acl {} {} {}", a.name, a.kind, a.values.join(" "));
    }
    let entries: Vec<String> = match a.kind.as_str() {
        "src" | "dst" => a
            .values
            .iter()
            .flat_map(|v| networks(v))
            .map(|n| format!("{n} 1;"))
            .collect(),
        "dstdomain" => a
            .values
            .iter()
            .map(|d| format!("{} 1;", d.to_ascii_lowercase()))
            .collect(),
        "method" | "proxy_auth" => a.values.iter().map(|m| format!("{m} 1;")).collect(),
        "port" => a
            .values
            .iter()
            .filter_map(|v| port_range(v))
            .map(|(lo, hi)| format!("\"~{}\" 1;", range_regex(u32::from(lo), u32::from(hi))))
            .collect(),
        _ => Vec::new(),
    };
    let body = entries.join(" ");
    let _ = match a.kind.as_str() {
        "src" => writeln!(o, "    geo ${} {{ default 0; {body} }}", a.var),
        // Squid resolves a name to check dst; ringx checks an address the request
        // names (a name counts as no address).
        "dst" => writeln!(o, "    geo $host ${} {{ default 0; {body} }}", a.var),
        "dstdomain" => writeln!(o, "    map $host ${} {{ hostnames; default 0; {body} }}", a.var),
        "method" => writeln!(o, "    map $request_method ${} {{ default 0; {body} }}", a.var),
        // Evaluated as if the credentials were good (auth_basic checks them where the
        // rules need them, see `auth_map`): REQUIRED is any user, else those named.
        "proxy_auth" if a.values.iter().any(|v| v == "REQUIRED") => {
            writeln!(o, "    map $remote_user ${} {{ default 1; }}", a.var)
        }
        "proxy_auth" => writeln!(o, "    map $remote_user ${} {{ default 0; {body} }}", a.var),
        // The URL's port; an absolute-form URL without one is port 80.
        "port" => writeln!(
            o,
            "    map $request_port ${} {{ default 0; \"\" {}; {body} }}",
            a.var,
            port80(a)
        ),
        _ => writeln!(o, "    map $host ${} {{ default 0; }}", a.var),
    };
}

/// Whether an ACL of ports holds 80 (a URL without a port).
fn port80(a: &Acl) -> u8 {
    u8::from(
        a.values
            .iter()
            .filter_map(|v| port_range(v))
            .any(|(lo, hi)| lo <= 80 && 80 <= hi),
    )
}

/// `$squid_rule_N` per `http_access` line (its ACLs ANDed, `!` as "0"), then
/// `$squid_access`: the first line that matches, else the opposite of the last.
fn access_map(o: &mut String, s: &Squid) {
    o.push_str("    # http_access: the first line that matches decides\n");
    let mut rules = String::new();
    for (i, (_, terms)) in s.access.iter().enumerate() {
        let src: String = terms.iter().map(|(_, a)| format!("${}", s.acls[*a].var)).collect();
        let want: String = terms.iter().map(|(neg, _)| if *neg { '0' } else { '1' }).collect();
        let _ = writeln!(o, "    map \"{src}\" $squid_rule_{i} {{ {want} 1; default 0; }}");
        let _ = write!(rules, "$squid_rule_{i}");
    }
    let last_allow = s.access.last().is_some_and(|(allow, _)| *allow);
    let fallback = if last_allow { "deny" } else { "allow" };
    let fallback = if s.access.is_empty() { "deny" } else { fallback };
    let mut entries = String::new();
    for (i, (allow, _)) in s.access.iter().enumerate() {
        let _ = write!(
            entries,
            "\"~^{}1\" {}; ",
            "0".repeat(i),
            if *allow { "allow" } else { "deny" }
        );
    }
    let _ = writeln!(
        o,
        "    map \"{rules}\" $squid_access {{ {entries}default {fallback}; }}"
    );
}

/// Whether an `http_access` line names a `proxy_auth` ACL.
fn names_auth(s: &Squid, terms: &[(bool, usize)]) -> bool {
    terms.iter().any(|(_, a)| s.acls[*a].kind == "proxy_auth")
}

/// `$squid_auth_realm`: where Squid would ask for credentials, the realm, else
/// "off" (auth_basic's off). That is when a line whose other ACLs match names a
/// `proxy_auth` ACL, at or before the line that decides with the credentials taken
/// as good (`$squid_access`): per line a pair of flags (the line matches; its other
/// ACLs match and it names one), and a pair `.1` before any `1.` asks.
fn auth_map(o: &mut String, s: &Squid) {
    if !s.access.iter().any(|(_, t)| names_auth(s, t)) {
        return;
    }
    o.push_str("    # proxy_auth: where the rules need credentials, auth_basic asks for them\n");
    let mut flags = String::new();
    for (i, (_, terms)) in s.access.iter().enumerate() {
        let _ = write!(flags, "${{squid_rule_{i}}}");
        let others: Vec<_> = terms.iter().filter(|(_, a)| s.acls[*a].kind != "proxy_auth").collect();
        if !names_auth(s, terms) {
            flags.push('0');
        } else if others.is_empty() {
            flags.push('1');
        } else {
            let src: String = others.iter().map(|(_, a)| format!("${}", s.acls[*a].var)).collect();
            let want: String = others.iter().map(|(neg, _)| if *neg { '0' } else { '1' }).collect();
            let _ = writeln!(o, "    map \"{src}\" $squid_authline_{i} {{ {want} 1; default 0; }}");
            let _ = write!(flags, "${{squid_authline_{i}}}");
        }
    }
    let _ = writeln!(
        o,
        "    map \"{flags}\" $squid_auth_realm {{ \"~^(0.)*.1\" \"{}\"; default off; }}",
        s.auth_realm.replace('"', "")
    );
}

fn server(o: &mut String, s: &Squid, port: &str) {
    o.push_str("    server {\n");
    let _ = writeln!(o, "        listen {port};");
    // Squid's rules decide what may be reached (its to_localhost, to_linklocal).
    o.push_str("        ringx_forward_allow all;\n");
    match s.forwarded_for.as_str() {
        "on" => o.push_str("        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"),
        "off" => o.push_str("        proxy_set_header X-Forwarded-For unknown;\n"),
        "delete" => o.push_str("        proxy_set_header X-Forwarded-For \"\";\n"),
        _ => {}
    }
    if s.via {
        let host = s.hostname.clone().unwrap_or_else(|| "$hostname".into());
        let _ = writeln!(o, "        proxy_set_header Via \"1.1 {host} (ringx)\";");
    }
    if let Some(f) = &s.auth_file {
        if s.access.iter().any(|(_, t)| names_auth(s, t)) {
            o.push_str("        auth_basic $squid_auth_realm;\n");
            let _ = writeln!(o, "        auth_basic_user_file {f};");
        }
    }
    o.push_str("        if ($squid_not_proxied) { return 400; }\n");
    o.push_str("        if ($squid_access = deny) { return 403; }\n");
    o.push_str("        location / {\n");
    o.push_str("            if ($request_method = CONNECT) { tunnel_pass; }\n");
    o.push_str("            proxy_pass http://$host$is_request_port$request_port$request_uri;\n");
    o.push_str("        }\n    }\n");
}

/// The `nameserver` lines of /etc/resolv.conf (Squid's default).
fn resolv_conf() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(|a| a.trim().to_string())
        .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
        .map(|a| if a.contains(':') { format!("[{a}]") } else { a })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognised_by_content() {
        assert!(is_squid("# Squid\nhttp_port 3128\nacl localnet src 10.0.0.0/8\n"));
        assert!(!is_squid("events {}\nhttp { }\n"));
        assert!(!is_squid("acl x;\n"));
        assert!(!is_squid("user www-data;\nhttp_port 1\n"));
    }

    #[test]
    fn networks_as_squid_writes_them() {
        assert_eq!(networks("192.168.1.0/24"), ["192.168.1.0/24"]);
        assert_eq!(networks("10.0.0.0/255.0.0.0"), ["10.0.0.0/8"]);
        assert_eq!(networks("10.0.0.1"), ["10.0.0.1/32"]);
        assert_eq!(
            networks("10.0.0.1-10.0.0.4"),
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/32"]
        );
        assert_eq!(networks("fc00::/7"), ["fc00::/7"]);
        assert!(networks("10.0.0.0/255.0.255.0").is_empty());
        assert!(networks("nonsense").is_empty());
    }

    #[test]
    fn port_ranges_as_regexes() {
        for (lo, hi) in [
            (1025, 65535),
            (80, 80),
            (1, 1024),
            (21, 21),
            (280, 280),
            (488, 591),
            (0, 9),
            (777, 9999),
        ] {
            let re = regex::Regex::new(&range_regex(lo, hi)).unwrap();
            for n in 0..70000u32 {
                assert_eq!(re.is_match(&n.to_string()), (lo..=hi).contains(&n), "{lo}-{hi}: {n}");
            }
            assert!(!re.is_match("080") || lo == 0);
        }
    }

    #[test]
    fn first_match_and_the_opposite_of_the_last_line() {
        let (t, _) = translate(
            "http_port 3128\nacl localnet src 192.168.1.0/24\nhttp_access allow localnet\nhttp_access deny all\n",
            Path::new("squid.conf"),
        )
        .unwrap();
        assert!(
            t.contains(
                "map \"$squid_rule_0$squid_rule_1\" $squid_access { \"~^1\" allow; \"~^01\" deny; default allow; }"
            ),
            "{t}"
        );
        assert!(
            t.contains("geo $squid_acl_localnet { default 0; 192.168.1.0/24 1; }"),
            "{t}"
        );
        assert!(!t.contains("to_localhost"), "{t}");
        let (t, _) = translate("http_port 3128\nhttp_access allow localhost\n", Path::new("s")).unwrap();
        assert!(t.contains("default deny; }"), "{t}");
    }

    #[test]
    fn unknown_things_name_their_line() {
        for (conf, want) in [
            ("http_port 3128\nfoo bar\n", "unknown directive \"foo\" in squid.conf:2"),
            (
                "http_port 3128\nacl a url_regex x\n",
                "acl type \"url_regex\" is not supported yet in squid.conf:2",
            ),
            (
                "http_port 3128\nhttp_access allow nobody\n",
                "ACL not found: \"nobody\" in squid.conf:2",
            ),
            (
                "http_port 3128 intercept\n",
                "\"http_port\" option \"intercept\" is not supported in squid.conf:1",
            ),
            (
                "http_port 3128\nacl n src 10.0.0.0/33\n",
                "invalid src value \"10.0.0.0/33\" in squid.conf:2",
            ),
        ] {
            let e = translate(conf, Path::new("squid.conf")).err().unwrap().to_string();
            assert_eq!(e, want);
        }
        let (_, w) = translate(
            "http_port 3128\ncache_dir ufs /var/spool/squid 1000 16 256\n",
            Path::new("s"),
        )
        .unwrap();
        assert!(
            w[0].to_string().contains("responses are forwarded uncached in s:2"),
            "{w:?}"
        );
    }
}
