//! Routing: which `server` (by listen address and Host) and which `location` (by
//! `$uri`) a request belongs to, with nginx's precedence rules.
//!
//! Server: exact name, then the longest `*.suffix` wildcard, then the longest
//! `prefix.*` wildcard, then the first matching regex, else the address's default
//! server. Location: an `=` exact match wins; otherwise the longest prefix, unless
//! regex locations exist and the longest prefix is not `^~`, in which case the first
//! matching regex (in config order) wins and the longest prefix is the fallback.

use std::sync::Arc;

use crate::config::model::{Http, ListenGroup, LocMatch, Location, Server, ServerName};

pub fn find_server<'a>(http: &'a Http, group: &ListenGroup, host: Option<&[u8]>) -> &'a Server {
    let default = &http.servers[group.default_server];
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return default;
    };
    let servers = || group.servers.iter().map(|&i| &http.servers[i]);
    for s in servers() {
        for n in &s.names {
            if let ServerName::Exact(e) = n {
                if e.as_bytes().eq_ignore_ascii_case(host) {
                    return s;
                }
            }
        }
    }
    let mut best: Option<(&Server, usize)> = None;
    for s in servers() {
        for n in &s.names {
            if let ServerName::Front { suffix, dot_form } = n {
                let suf = suffix.as_bytes();
                let m = (host.len() > suf.len() && host[host.len() - suf.len()..].eq_ignore_ascii_case(suf))
                    || (*dot_form && host.eq_ignore_ascii_case(&suf[1..]));
                if m && best.is_none_or(|(_, l)| suf.len() > l) {
                    best = Some((s, suf.len()));
                }
            }
        }
    }
    if let Some((s, _)) = best {
        return s;
    }
    for s in servers() {
        for n in &s.names {
            if let ServerName::Back(prefix) = n {
                let p = prefix.as_bytes();
                if host.len() > p.len()
                    && host[..p.len()].eq_ignore_ascii_case(p)
                    && best.is_none_or(|(_, l)| p.len() > l)
                {
                    best = Some((s, p.len()));
                }
            }
        }
    }
    if let Some((s, _)) = best {
        return s;
    }
    for s in servers() {
        for n in &s.names {
            if let ServerName::Regex(r) = n {
                if r.is_match(host) {
                    return s;
                }
            }
        }
    }
    default
}

/// nginx's `ngx_http_core_find_location`, nested locations included: an exact match
/// wins; a prefix match looks into its nested locations (whose match is taken, and
/// ends the search unless it is itself only a prefix); then, unless the prefix is
/// `^~`, this level's regexes in order (a match looks into its own nested ones);
/// else the prefix found.
pub fn find_location<'a>(server: &'a Server, uri: &[u8]) -> Option<&'a Arc<Location>> {
    find_in(&server.prefix_locations, &server.regex_locations, uri).0
}

/// The location found at this level and below, and whether the search is over.
fn find_in<'a>(
    prefix: &'a [Arc<Location>],
    regex: &'a [Arc<Location>],
    uri: &[u8],
) -> (Option<&'a Arc<Location>>, bool) {
    let mut found: Option<&Arc<Location>> = None;
    let mut noregex = false;
    for l in prefix {
        match &l.matcher {
            LocMatch::Exact(p) if p.as_bytes() == uri => return (Some(l), true),
            LocMatch::Prefix { path, no_regex } if found.is_none() && uri.starts_with(path.as_bytes()) => {
                // Sorted longest first: the first prefix match is the longest; exact
                // matches of the same length may still follow, so keep scanning.
                found = Some(l);
                noregex = *no_regex;
            }
            _ => {}
        }
    }
    if let Some(l) = found {
        if !l.nested_prefix.is_empty() || !l.nested_regex.is_empty() {
            let (sub, done) = find_in(&l.nested_prefix, &l.nested_regex, uri);
            if sub.is_some() {
                found = sub;
            }
            if done {
                return (found, true);
            }
        }
    }
    if !noregex {
        for l in regex {
            if let LocMatch::Regex { re, .. } = &l.matcher {
                if re.0.is_match(uri).unwrap_or(false) {
                    let (sub, _) = find_in(&l.nested_prefix, &l.nested_regex, uri);
                    return (sub.or(Some(l)), true);
                }
            }
        }
    }
    (found, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::build::{build, BuildEnv};
    use crate::config::parser::parse_str;
    use crate::config::Config;
    use std::path::Path;

    fn cfg(s: &str) -> Config {
        let t = parse_str(s, "t", Path::new("/tmp")).unwrap();
        build(&t, &BuildEnv::at("/tmp")).unwrap()
    }

    fn loc(c: &Config, uri: &str) -> String {
        let s = &c.http.servers[0];
        match find_location(s, uri.as_bytes()) {
            None => "none".into(),
            Some(l) => match &l.matcher {
                LocMatch::Exact(p) => format!("={p}"),
                LocMatch::Prefix { path, no_regex } => format!("{}{path}", if *no_regex { "^~" } else { "" }),
                LocMatch::Regex { re, .. } => format!("~{}", re.0.as_str()),
                LocMatch::Named(n) => n.clone(),
            },
        }
    }

    #[test]
    fn nginx_location_order() {
        let c = cfg("events{} http { access_log off; server { listen 127.0.0.1:1;
            location = / { return 200; }
            location / { return 200; }
            location /documents/ { return 200; }
            location ^~ /images/ { return 200; }
            location ~* \\.(gif|jpg|jpeg)$ { return 200; }
            location /classify { return 200; } } }");
        assert_eq!(loc(&c, "/"), "=/");
        assert_eq!(loc(&c, "/index.html"), "/");
        assert_eq!(loc(&c, "/documents/document.html"), "/documents/");
        assert_eq!(loc(&c, "/images/1.gif"), "^~/images/");
        assert_eq!(loc(&c, "/documents/1.JPG"), "~\\.(gif|jpg|jpeg)$");
        assert_eq!(loc(&c, "/classifyx"), "/classify");
    }

    #[test]
    fn server_by_host() {
        let c = cfg("events{} http { access_log off;
            server { listen 127.0.0.1:1; server_name default.test; }
            server { listen 127.0.0.1:1; server_name api.company.com; }
            server { listen 127.0.0.1:1; server_name *.company.com; }
            server { listen 127.0.0.1:1; server_name *.eu.company.com; }
            server { listen 127.0.0.1:1; server_name www.example.*; }
            server { listen 127.0.0.1:1; server_name ~^(\\d+)\\.num\\.test$; } }");
        let g = &c.http.listens[0];
        let name = |h: &str| find_server(&c.http, g, Some(h.as_bytes())).primary_name.clone();
        assert_eq!(name("API.company.com"), "api.company.com");
        assert_eq!(name("x.company.com"), "*.company.com");
        assert_eq!(name("x.eu.company.com"), "*.eu.company.com");
        assert_eq!(name("www.example.org"), "www.example.*");
        assert_eq!(name("42.num.test"), "~^(\\d+)\\.num\\.test$");
        assert_eq!(name("other"), "default.test");
        assert_eq!(find_server(&c.http, g, None).primary_name, "default.test");
    }
}
