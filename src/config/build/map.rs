//! `map SOURCE $VAR { … }` and `geo [SOURCE] $VAR { … }` (http level): the
//! variables a configuration defines.
//!
//! Their names are known before anything else in the http block is compiled (a log
//! format or a header may use `$VAR` above its `map`), so [`map_names`] reads them
//! first; each block is then built into a [`VarMap`], which the request path
//! evaluates when `$VAR` is rendered ([`crate::http::ctx`]).

use regex::bytes::RegexBuilder;

use super::args::{block, nargs};
use crate::config::model::VarMap;
use crate::config::parser::Directive;
use crate::config::vars::{Template, Var};
use crate::config::ConfError;

/// The variable names of the http block's `map`s, in order; a name ringx defines
/// itself, or two maps of one name, is nginx's `the duplicate "x" variable`.
pub(super) fn map_names(items: &[Directive]) -> Result<Vec<String>, ConfError> {
    let mut names: Vec<String> = Vec::new();
    for d in items.iter().filter(|d| d.name == "map" || d.name == "geo") {
        let var = match (d.name.as_str(), d.args.as_slice()) {
            ("map", [_, v]) | ("geo", [v] | [_, v]) => v,
            _ => return Err(nargs(d)),
        };
        let Some(name) = var.strip_prefix('$').filter(|n| !n.is_empty()) else {
            return Err(d.err(format!("invalid variable name \"{var}\"")));
        };
        if Var::builtin(name).is_some() || names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(d.err(format!("the duplicate \"{name}\" variable")));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// One `map` block.
pub(super) fn map_block(d: &Directive) -> Result<VarMap, ConfError> {
    let mut m = VarMap {
        source: Template::compile(&d.args[0]).map_err(|e| e.at_dir(d))?,
        ..VarMap::default()
    };
    let mut default = None;
    for e in block(d)? {
        match (e.name.as_str(), e.args.len()) {
            ("hostnames", 0) => m.hostnames = true,
            // ringx does not cache a map's value within a request: every use evaluates it.
            ("volatile", 0) => {}
            (_, 1) => entry(&mut m, e, &mut default)?,
            _ => return Err(e.err("invalid number of the map parameters")),
        }
    }
    m.default = default.unwrap_or_default();
    // The most specific wildcard first.
    m.head.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
    m.tail.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
    Ok(m)
}

/// `KEY VALUE;` (`default`, `~regex`, `~*regex`, `\`-escaped, or a string).
fn entry(m: &mut VarMap, e: &Directive, default: &mut Option<Template>) -> Result<(), ConfError> {
    let value = value(e)?;
    let key = e.name.as_str();
    if key == "default" {
        if default.replace(value).is_some() {
            return Err(e.err("duplicate default map parameter"));
        }
        return Ok(());
    }
    if let Some(re) = key.strip_prefix('~') {
        let (re, caseless) = match re.strip_prefix('*') {
            Some(r) => (r, true),
            None => (re, false),
        };
        let r = RegexBuilder::new(re)
            .case_insensitive(caseless)
            .build()
            .map_err(|x| e.err(format!("invalid regex \"{re}\": {x}")))?;
        m.regex.push((r, value));
        return Ok(());
    }
    let key = key.strip_prefix('\\').unwrap_or(key).to_ascii_lowercase();
    if m.hostnames {
        if let Some(s) = key.strip_prefix("*.") {
            m.head.push((format!(".{s}").into_bytes().into(), false, value));
            return Ok(());
        }
        if key.starts_with('.') && key.len() > 1 {
            m.head.push((key.into_bytes().into(), true, value));
            return Ok(());
        }
        if let Some(p) = key.strip_suffix(".*") {
            m.tail.push((format!("{p}.").into_bytes().into(), value));
            return Ok(());
        }
    }
    let k: Box<[u8]> = key.into_bytes().into();
    if m.exact.contains_key(&k) {
        return Err(e.err(format!("conflicting parameter \"{}\"", e.name)));
    }
    m.exact.insert(k, value);
    Ok(())
}

fn value(e: &Directive) -> Result<Template, ConfError> {
    let v = &e.args[0];
    let b = v.as_bytes();
    let captures = (0..b.len()).any(|i| {
        b[i] == b'$'
            && (b.get(i + 1).is_some_and(u8::is_ascii_digit)
                || (b.get(i + 1) == Some(&b'{') && b.get(i + 2).is_some_and(u8::is_ascii_digit)))
    });
    if captures {
        return Err(e.err("regex captures in \"map\" values are not supported yet"));
    }
    Template::compile(v).map_err(|x| x.at_dir(e))
}

/// One `geo [$SOURCE] $VAR { default V; CIDR V; ADDRESS V; delete CIDR; ranges;
/// A-B V; }` (source `$remote_addr`): the value of the most specific network that
/// holds the address. Values are strings, as nginx's. `proxy` (addresses from
/// X-Forwarded-For) is not supported yet.
pub(super) fn geo_block(d: &Directive) -> Result<VarMap, ConfError> {
    let source = if d.args.len() == 2 {
        d.args[0].as_str()
    } else {
        "$remote_addr"
    };
    let mut nets: Vec<(crate::config::model::Cidr, Template)> = Vec::new();
    let mut default = None;
    let mut ranges = false;
    let literal = |e: &Directive, v: &str| Template::compile(&v.replace('$', "$$")).map_err(|x| x.at_dir(e));
    for e in block(d)? {
        match (e.name.as_str(), e.args.as_slice()) {
            ("ranges", []) => ranges = true,
            ("proxy" | "proxy_recursive", _) => {
                return Err(e.err(format!("\"{}\" in \"geo\" is not supported yet", e.name)))
            }
            ("delete", [net]) => {
                let c = cidr(e, net)?;
                nets.retain(|(n, _)| *n != c);
            }
            ("default", [v]) => default = Some(literal(e, v)?),
            (key, [v]) if ranges => {
                for c in range_cidrs(e, key)? {
                    nets.push((c, literal(e, v)?));
                }
            }
            (key, [v]) => {
                let c = cidr(e, key)?;
                nets.retain(|(n, _)| *n != c);
                nets.push((c, literal(e, v)?));
            }
            _ => return Err(e.err("invalid number of the geo parameters")),
        }
    }
    nets.sort_by_key(|(n, _)| std::cmp::Reverse(n.bits));
    Ok(VarMap {
        source: Template::compile(source).map_err(|e| e.at_dir(d))?,
        default: default.unwrap_or_default(),
        geo: Some(nets),
        ..VarMap::default()
    })
}

fn cidr(e: &Directive, s: &str) -> Result<crate::config::model::Cidr, ConfError> {
    super::settings::parse_cidr(s)
        .filter(|_| s != "all")
        .ok_or_else(|| e.err(format!("invalid network \"{s}\"")))
}

/// `A-B` (IPv4, `ranges` mode) as the networks that cover it exactly.
fn range_cidrs(e: &Directive, s: &str) -> Result<Vec<crate::config::model::Cidr>, ConfError> {
    let bad = || e.err(format!("invalid range \"{s}\""));
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a: std::net::Ipv4Addr = a.parse().map_err(|_| bad())?;
    let b: std::net::Ipv4Addr = b.parse().map_err(|_| bad())?;
    if a > b {
        return Err(bad());
    }
    Ok(crate::config::model::Cidr::cover_v4(a, b))
}
