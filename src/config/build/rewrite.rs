//! nginx's rewrite module: `rewrite`, `return`, `set`, `if`, `break` in server and
//! location blocks (and in `if` blocks inside them), compiled in order into
//! [`RwOp`]s that the request path runs (src/http/proxy/rewrite.rs).
//!
//! `set` names its variables anywhere in the http block, so [`set_names`] collects
//! them before anything compiles, as `map`'s. Regexes are PCRE2, nginx's own.

use std::sync::Arc;

use super::args::nargs;
use super::location::Handlers;
use super::server::parse_return;
use super::settings::Settings;
use super::table::{walk, Cmd, Ctx, Done};
use super::Builder;
use crate::config::model::{Cond, DocRoot, FileTest, IfBlock, Pcre, Rewrite, RwFlag, RwOp};
use crate::config::parser::Directive;
use crate::config::vars::{Template, Var};
use crate::config::ConfError;

/// The names `set` gives variables anywhere under `items`, in order of appearance;
/// a name ringx defines itself is nginx's `the duplicate "x" variable`.
pub(super) fn set_names(items: &[Directive], maps: &[String], out: &mut Vec<String>) -> Done {
    for d in items {
        // `auth_request_set` sets a variable as `set` does.
        if d.name == "set" || d.name == "auth_request_set" {
            let Some(name) = d
                .args
                .first()
                .and_then(|a| a.strip_prefix('$'))
                .filter(|n| !n.is_empty())
            else {
                return Err(d.err(format!(
                    "invalid variable name \"{}\"",
                    d.args.first().map_or("", |a| a)
                )));
            };
            if name.eq_ignore_ascii_case("args") || maps.iter().any(|m| m.eq_ignore_ascii_case(name)) {
                return Err(d.err(format!("setting \"${name}\" is not supported yet")));
            }
            if Var::builtin(name).is_some() {
                return Err(d.err(format!("the duplicate \"{name}\" variable")));
            }
            if !out.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                out.push(name.to_string());
            }
        }
        if let Some(b) = &d.block {
            set_names(b, maps, out)?;
        }
    }
    Ok(())
}

/// A PCRE2 regex as nginx compiles one (`caseless` for `~*`), with JIT.
pub(super) fn pcre(d: &Directive, re: &str, caseless: bool) -> Result<Pcre, ConfError> {
    let r = pcre2::bytes::RegexBuilder::new()
        .caseless(caseless)
        .jit_if_available(true)
        .build(re)
        .map_err(|e| d.err(format!("pcre2_compile() failed: {e} in \"{re}\"")))?;
    let named = r
        .capture_names()
        .iter()
        .enumerate()
        .filter_map(|(g, n)| n.as_deref().map(|n| (g, crate::config::vars::named_capture(n))))
        .collect();
    Ok(Pcre(r, named))
}

/// `rewrite REGEX REPLACEMENT [last|break|redirect|permanent]`.
pub(super) fn rewrite(d: &Directive) -> Result<RwOp, ConfError> {
    let (re, repl, flag) = match d.args.as_slice() {
        [re, repl] => (re, repl, RwFlag::None),
        [re, repl, f] => (
            re,
            repl,
            match f.as_str() {
                "last" => RwFlag::Last,
                "break" => RwFlag::Break,
                "redirect" => RwFlag::Redirect,
                "permanent" => RwFlag::Permanent,
                _ => return Err(d.err(format!("invalid parameter \"{f}\""))),
            },
        ),
        _ => return Err(nargs(d)),
    };
    if repl.is_empty() {
        return Err(d.err("empty replacement"));
    }
    let redirect = repl.starts_with("http://") || repl.starts_with("https://") || repl.starts_with("$scheme");
    // A last `?` drops the request's arguments (and is not part of the result).
    let (repl, add_args) = match repl.strip_suffix('?') {
        Some(r) => (r, false),
        None => (repl.as_str(), true),
    };
    Ok(RwOp::Rewrite(Box::new(Rewrite {
        re: pcre(d, re, false)?,
        replacement: Template::compile(repl).map_err(|e| e.at_dir(d))?,
        flag,
        redirect,
        args: repl.contains('?'),
        add_args,
    })))
}

/// `set $VAR VALUE`.
pub(super) fn set(d: &Directive) -> Result<RwOp, ConfError> {
    let [var, value] = d.args.as_slice() else {
        return Err(nargs(d));
    };
    let name = var.strip_prefix('$').unwrap_or(var);
    let Some(Var::User(i)) = Var::from_name(name) else {
        return Err(d.err(format!("invalid variable name \"{var}\"")));
    };
    Ok(RwOp::Set(i, Template::compile(value).map_err(|e| e.at_dir(d))?))
}

/// `break`.
pub(super) fn brk(d: &Directive) -> Result<RwOp, ConfError> {
    if !d.args.is_empty() {
        return Err(nargs(d));
    }
    Ok(RwOp::Break)
}

/// `return …` as a rewrite op.
pub(super) fn ret(d: &Directive) -> Result<RwOp, ConfError> {
    parse_return(d).map(RwOp::Return)
}

/// `if (…)`'s condition, as nginx's `ngx_http_rewrite_if_condition` reads its words.
pub(super) fn condition(d: &Directive) -> Result<Cond, ConfError> {
    let v = &d.args;
    let invalid = |w: &str| d.err(format!("invalid condition \"{w}\""));
    let first = v.first().ok_or_else(|| nargs(d))?;
    let Some(open) = first.strip_prefix('(') else {
        return Err(invalid(first));
    };
    let mut words: Vec<&str> = Vec::with_capacity(v.len());
    if !open.is_empty() {
        words.push(open);
    }
    words.extend(v[1..].iter().map(String::as_str));
    let last = words.pop().ok_or_else(|| invalid(first))?;
    let Some(close) = last.strip_suffix(')') else {
        return Err(invalid(last));
    };
    if !close.is_empty() {
        words.push(close);
    }
    let t = |s: &str| Template::compile(s).map_err(|e| e.at_dir(d));
    match words.as_slice() {
        [var] if var.len() > 1 && var.starts_with('$') => Ok(Cond::Truthy(t(var)?)),
        [var, op, rhs] if var.len() > 1 && var.starts_with('$') => match *op {
            "=" => Ok(Cond::Eq(t(var)?, t(rhs)?, false)),
            "!=" => Ok(Cond::Eq(t(var)?, t(rhs)?, true)),
            "~" | "~*" | "!~" | "!~*" => {
                let re = pcre(d, rhs, op.ends_with('*'))?;
                Ok(Cond::Re(t(var)?, re, op.starts_with('!')))
            }
            _ => Err(d.err(format!("unexpected \"{op}\" in condition"))),
        },
        [op, path] if op.len() == 2 && op.starts_with('-') || op.len() == 3 && op.starts_with("!-") => {
            let neg = op.starts_with('!');
            let test = match op.as_bytes()[op.len() - 1] {
                b'f' => FileTest::File,
                b'd' => FileTest::Dir,
                b'e' => FileTest::Exists,
                b'x' => FileTest::Exec,
                _ => return Err(invalid(op)),
            };
            Ok(Cond::File(t(path)?, test, neg))
        }
        [w, ..] => Err(invalid(w)),
        [] => Err(invalid(first)),
    }
}

/// What an `if` block inside a location collects: its ops, and (its settings
/// aside) a `proxy_pass` of its own.
pub(super) struct IfLevel {
    ops: Vec<RwOp>,
    handlers: Handlers,
}

/// The directives of an `if` in a location (nginx's "if in location": the rewrite
/// module's, `proxy_pass`, and the settings nginx allows there).
pub(super) const IF_LOCATION: &[Cmd<IfLevel>] = &[
    Cmd::run("rewrite", |_, l, d| rewrite(d).map(|o| l.ops.push(o))),
    Cmd::run("return", |_, l, d| ret(d).map(|o| l.ops.push(o))),
    Cmd::run("set", |_, l, d| set(d).map(|o| l.ops.push(o))),
    Cmd::run("break", |_, l, d| brk(d).map(|o| l.ops.push(o))),
    Cmd::run("proxy_pass", |b, l, d| {
        b.proxy_pass_into(&mut l.handlers, d, false, true)
    }),
    Cmd::run("tunnel_pass", |b, l, d| b.tunnel_pass_into(&mut l.handlers, d)),
];

/// The directives of an `if` in a server: the rewrite module's only.
pub(super) const IF_SERVER: &[Cmd<Vec<RwOp>>] = &[
    Cmd::run("rewrite", |_, l, d| rewrite(d).map(|o| l.push(o))),
    Cmd::run("return", |_, l, d| ret(d).map(|o| l.push(o))),
    Cmd::run("set", |_, l, d| set(d).map(|o| l.push(o))),
    Cmd::run("break", |_, l, d| brk(d).map(|o| l.push(o))),
];

impl Builder<'_> {
    /// `if (…) { … }` in a server block.
    pub(super) fn server_if(&mut self, d: &Directive) -> Result<RwOp, ConfError> {
        let cond = condition(d)?;
        let mut ops = Vec::new();
        walk(self, super::args::block(d)?, Ctx::ServerIf, IF_SERVER, &mut ops, None)?;
        Ok(RwOp::If(Box::new(IfBlock { cond, ops, conf: None })))
    }

    /// `if (…) { … }` in a location: its ops, and its configuration: the location's
    /// (`loc_set`, merged, and the location's own `proxy_pass`) with the block's
    /// settings over it.
    pub(super) fn location_if(
        &mut self,
        d: &Directive,
        loc_set: &Settings,
        loc: &Handlers,
        (doc_root, name): (&DocRoot, &str),
    ) -> Result<RwOp, ConfError> {
        let cond = condition(d)?;
        let mut l = IfLevel {
            ops: Vec::new(),
            handlers: Handlers::default(),
        };
        let mut set = Settings::default();
        walk(
            self,
            super::args::block(d)?,
            Ctx::LocationIf,
            IF_LOCATION,
            &mut l,
            Some(&mut set),
        )?;
        set.inherit(loc_set);
        let own = l.handlers.any();
        let mut h = l.handlers.or_from(loc);
        if own {
            self.finish_handlers(&mut h, &set)?;
        }
        let mut conf = self.resolve(&set, h.proxy.clone());
        h.apply(&mut conf);
        conf.proxy_redirect = super::location::redirects(&set, &h, name)?;
        // nginx's core merge: an if inherits the location's root or alias (and has
        // no try_files of its own).
        if set.root.is_none() || doc_root.alias {
            conf.doc_root = doc_root.clone();
        }
        Ok(RwOp::If(Box::new(IfBlock {
            cond,
            ops: l.ops,
            conf: Some(Arc::new(conf)),
        })))
    }
}
