//! nginx's rewrite module at run time: a server's or location's [`RwOp`]s run in
//! order against the request (`rewrite` changes `$uri` and `$args` or redirects,
//! `set` fills variables, `if` tests and, in a location, switches the request to the
//! `if` block's configuration, `return` and `break` stop).
//!
//! Where it sits: [`super::handle`] runs the server's ops before a location is
//! chosen (nginx's server rewrite phase), [`super::phases`] the location's after
//! (its rewrite phase); what [`run`] returns tells them to go on, to find a
//! location again, or to answer.

use std::os::unix::fs::PermissionsExt;

use super::{files, Client, Req};
use crate::config::model::{Cond, FileTest, LocConf, Pcre, Return, Rewrite, RwFlag, RwOp};
use crate::config::vars::VarSource;
use crate::observe::log;

/// The request's rewrite state: the last regex match (for `$1`..`$9`) and what
/// `set` stored.
#[derive(Debug, Default)]
pub struct RwState {
    /// The string the last successful regex ran on, and its groups' offsets.
    pub subject: Vec<u8>,
    pub groups: Vec<Option<(usize, usize)>>,
    pub vars: Vec<Option<Vec<u8>>>,
    /// Named groups' values (`$name`), as the last regex that had them set them.
    pub named: Vec<Option<Vec<u8>>>,
}

impl RwState {
    pub fn clear(&mut self) {
        self.subject.clear();
        self.groups.clear();
        self.vars.clear();
        self.named.clear();
    }

    pub fn named(&self, i: usize) -> Option<&[u8]> {
        self.named.get(i)?.as_deref()
    }

    /// `$n` of the last match.
    pub fn capture(&self, n: u8) -> Option<&[u8]> {
        let (s, e) = (*self.groups.get(usize::from(n))?)?;
        self.subject.get(s..e)
    }

    pub fn var(&self, i: usize) -> Option<&[u8]> {
        self.vars.get(i)?.as_deref()
    }
}

/// How a run of ops ends.
pub(super) enum Flow<'s> {
    /// The ops ran out (or `break`); `changed`: `$uri` was rewritten without
    /// `break`, so the location is found again (`last` too).
    Next {
        changed: bool,
    },
    /// Stopped by `rewrite … break`: go on in this location with the new `$uri`.
    Stay,
    Return(&'s Return),
    /// `rewrite` to a URL, or with `redirect`/`permanent`.
    Redirect {
        code: u16,
        location: Vec<u8>,
    },
    /// An error status (a rewrite to an empty URI: 500).
    Fail(u16),
}

/// Runs `ops`. In a location, an `if` that holds switches `r.conf` to its block's
/// configuration, and the ops after the block still run (nginx).
pub(super) fn run<'s>(c: &mut Client, r: &mut Req<'s>, ops: &'s [RwOp]) -> Flow<'s> {
    let mut changed = false;
    match run_ops(c, r, ops, &mut changed) {
        Some(f) => f,
        None => Flow::Next { changed },
    }
}

/// `None`: the ops ran out.
fn run_ops<'s>(c: &mut Client, r: &mut Req<'s>, ops: &'s [RwOp], changed: &mut bool) -> Option<Flow<'s>> {
    for op in ops {
        match op {
            RwOp::Return(ret) => return Some(Flow::Return(ret)),
            RwOp::Break => return Some(Flow::Stay),
            RwOp::Set(i, value) => {
                let mut v = Vec::new();
                value.render(&c.ctx(r), &mut v);
                if c.rw.vars.len() <= *i {
                    c.rw.vars.resize(*i + 1, None);
                }
                c.rw.vars[*i] = Some(v);
            }
            RwOp::Rewrite(rw) => {
                if let Some(f) = rewrite(c, r, rw, changed) {
                    return Some(f);
                }
            }
            RwOp::If(b) => {
                if test(c, r, &b.cond) {
                    if let Some(conf) = &b.conf {
                        switch(r, conf);
                    }
                    if let Some(f) = run_ops(c, r, &b.ops, changed) {
                        return Some(f);
                    }
                }
            }
        }
    }
    None
}

fn switch<'s>(r: &mut Req<'s>, conf: &'s std::sync::Arc<LocConf>) {
    r.conf = conf;
}

/// One `rewrite`: `None` when it did not match or the ops go on after it.
fn rewrite<'s>(c: &mut Client, r: &mut Req<'s>, rw: &'s Rewrite, changed: &mut bool) -> Option<Flow<'s>> {
    let uri = c.ctx(r).uri.to_vec();
    let hit = matches(c, &rw.re, &uri);
    let log = r.conf.rewrite_log;
    if log {
        // nginx's two rewrite_log lines: the match, then what it made.
        let verb = if hit { "matches" } else { "does not match" };
        log::notice(format_args!(
            "\"{}\" {verb} \"{}\"{}",
            rw.re.0.as_str(),
            String::from_utf8_lossy(&uri),
            files::Why(c, r)
        ));
    }
    if !hit {
        return None;
    }
    let redirect = rw.redirect || matches!(rw.flag, RwFlag::Redirect | RwFlag::Permanent);
    let (mut out, q) = replacement(c, r, rw, redirect);
    let args = c.ctx(r).args.map(<[u8]>::to_vec);
    if redirect {
        if let (true, Some(a)) = (rw.add_args, args.filter(|a| !a.is_empty())) {
            out.push(if rw.args { b'&' } else { b'?' });
            out.extend_from_slice(&a);
        }
        if log {
            let to = String::from_utf8_lossy(&out);
            log::notice(format_args!("rewritten redirect: \"{to}\"{}", files::Why(c, r)));
        }
        let code = if rw.flag == RwFlag::Permanent { 301 } else { 302 };
        return Some(Flow::Redirect { code, location: out });
    }
    if q.map_or(out.len(), |q| q) == 0 {
        // nginx: "the rewritten URI has a zero length" is a 500.
        log::error(format_args!("the rewritten URI has a zero length{}", files::Why(c, r)));
        return Some(Flow::Fail(500));
    }
    match q {
        Some(q) => {
            let mut new_args = out[q + 1..].to_vec();
            if let (true, Some(a)) = (rw.add_args, args.filter(|a| !a.is_empty())) {
                new_args.push(b'&');
                new_args.extend_from_slice(&a);
            }
            files::set_uri(c, r, &out[..q], Some(&new_args));
        }
        None if rw.add_args => files::set_uri(c, r, &out, None),
        None => files::set_uri(c, r, &out, Some(b"")),
    }
    *changed = true;
    if log {
        let ctx = c.ctx(r);
        let (u, a) = (
            String::from_utf8_lossy(ctx.uri),
            String::from_utf8_lossy(ctx.args.unwrap_or_default()),
        );
        log::notice(format_args!(
            "rewritten data: \"{u}\", args: \"{a}\"{}",
            files::Why(c, r)
        ));
    }
    match rw.flag {
        RwFlag::Last => Some(Flow::Next { changed: true }),
        RwFlag::Break => Some(Flow::Stay),
        _ => None,
    }
}

/// A rewrite's replacement rendered, and where its literal `?` (the start of the
/// arguments) is. As nginx's script codes: only a `?` written in the replacement
/// splits (one a variable brings stays in `$uri`), and a capture that lands in the
/// arguments or a redirect is escaped when the request's URI was (it held `%` or
/// `+`), so a decoded `%20`, `%0d` or `&` cannot reach the upstream's request line
/// or split the arguments.
fn replacement(c: &Client, r: &Req<'_>, rw: &Rewrite, redirect: bool) -> (Vec<u8>, Option<usize>) {
    use crate::config::vars::{Part, Var};
    let ctx = c.ctx(r);
    let quoted = c.head.path.get(&c.buf).iter().any(|&b| b == b'%' || b == b'+');
    let mut out = Vec::new();
    let mut q = None;
    for p in &rw.replacement.parts {
        match p {
            Part::Lit(l) => {
                if q.is_none() {
                    if let Some(i) = l.iter().position(|&b| b == b'?') {
                        q = Some(out.len() + i);
                    }
                }
                out.extend_from_slice(l);
            }
            Part::Var(Var::Capture(n)) if (redirect || q.is_some()) && quoted => {
                if let Some(v) = c.rw.capture(*n) {
                    crate::http::uri::escape_with(v, b"\"&+;", &mut out);
                }
            }
            Part::Var(v) => {
                ctx.write_var(v, &mut out);
            }
        }
    }
    (out, q)
}

/// Runs `re` on `subject`; on a match its groups become `$1`..`$9` (a regex
/// without groups leaves them as they were; a failed match clears them, as nginx).
pub(super) fn matches(c: &mut Client, re: &Pcre, subject: &[u8]) -> bool {
    let Ok(Some(caps)) = re.0.captures(subject) else {
        c.rw.groups.clear();
        return false;
    };
    if caps.len() == 1 {
        return true;
    }
    for &(g, var) in &re.1 {
        if c.rw.named.len() <= var {
            c.rw.named.resize(var + 1, None);
        }
        c.rw.named[var] = caps.get(g).map(|m| m.as_bytes().to_vec());
    }
    c.rw.groups.clear();
    c.rw.groups
        .extend((0..caps.len()).map(|i| caps.get(i).map(|m| (m.start(), m.end()))));
    c.rw.subject.clear();
    c.rw.subject.extend_from_slice(subject);
    true
}

/// An `if` condition.
fn test(c: &mut Client, r: &Req<'_>, cond: &Cond) -> bool {
    let mut v = Vec::new();
    match cond {
        Cond::Truthy(t) => {
            t.render(&c.ctx(r), &mut v);
            !(v.is_empty() || v == b"0")
        }
        Cond::Eq(a, b, neg) => {
            let mut w = Vec::new();
            a.render(&c.ctx(r), &mut v);
            b.render(&c.ctx(r), &mut w);
            (v == w) != *neg
        }
        Cond::Re(a, re, neg) => {
            a.render(&c.ctx(r), &mut v);
            matches(c, re, &v) != *neg
        }
        Cond::File(a, kind, neg) => {
            a.render(&c.ctx(r), &mut v);
            file_test(&v, *kind) != *neg
        }
    }
}

fn file_test(path: &[u8], kind: FileTest) -> bool {
    use std::os::unix::ffi::OsStrExt;
    if path.contains(&0) {
        return false;
    }
    let p = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
    match (std::fs::metadata(p), kind) {
        (Ok(m), FileTest::File) => m.is_file(),
        (Ok(m), FileTest::Dir) => m.is_dir(),
        (Ok(_), FileTest::Exists) => true,
        (Ok(m), FileTest::Exec) => m.permissions().mode() & 0o100 != 0,
        (Err(_), _) => false,
    }
}
