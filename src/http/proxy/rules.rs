//! The rewrite rules of `proxy_redirect` and `proxy_cookie_domain` /
//! `proxy_cookie_path`: a prefix (case-sensitive), a cookie domain (the whole value
//! less a leading `.`, either case), or a regex over the whole value whose
//! replacement may use `$1`….
//!
//! Where it sits: the upstream's response head on its way to the client (`Location`,
//! `Refresh`, `Set-Cookie`).

use super::{Client, RwState};
use crate::config::model::Redirect;
use crate::config::vars::Template;
use crate::http::ctx::ReqCtx;

/// A rule's pattern: as written (nginx's `default` rule has no variables), or
/// rendered.
fn pattern<'a>(ctx: &ReqCtx<'_>, t: &'a Template) -> std::borrow::Cow<'a, [u8]> {
    match t.as_literal() {
        Some(l) => std::borrow::Cow::Borrowed(l),
        None => {
            let mut out = Vec::new();
            t.render(ctx, &mut out);
            std::borrow::Cow::Owned(out)
        }
    }
}

/// `v` as the first rule that matches rewrites it; `None`: no rule matches.
pub(super) fn apply(c: &Client, ctx: &ReqCtx<'_>, rules: &[Redirect], v: &[u8]) -> Option<Vec<u8>> {
    for rule in rules {
        let mut out = Vec::new();
        match rule {
            Redirect::Prefix(p, to) => {
                let pat = pattern(ctx, p);
                if !v.starts_with(&pat) {
                    continue;
                }
                to.render(ctx, &mut out);
                out.extend_from_slice(&v[pat.len()..]);
            }
            Redirect::Domain(p, to) => {
                let pat = pattern(ctx, p);
                let (dot, rest) = match v.strip_prefix(b".") {
                    Some(r) => (true, r),
                    None => (false, v),
                };
                if !pat.eq_ignore_ascii_case(rest) {
                    continue;
                }
                if dot {
                    out.push(b'.');
                }
                to.render(ctx, &mut out);
            }
            Redirect::Regex(re, to) => {
                if !render_matched(c, ctx, re, v, to, &mut out) {
                    continue;
                }
            }
        }
        return Some(out);
    }
    None
}

/// Renders `repl` with `$1`… from `re` matched on `subject` (the request's `set`
/// variables kept); false when it does not match.
fn render_matched(
    c: &Client,
    ctx: &ReqCtx<'_>,
    re: &crate::config::model::Pcre,
    subject: &[u8],
    repl: &Template,
    out: &mut Vec<u8>,
) -> bool {
    let Some(caps) = re.0.captures(subject).ok().flatten() else {
        return false;
    };
    let rw = RwState {
        subject: subject.to_vec(),
        groups: (0..caps.len())
            .map(|i| caps.get(i).map(|m| (m.start(), m.end())))
            .collect(),
        vars: c.rw.vars.clone(),
        named: Vec::new(),
    };
    repl.render(&ReqCtx { rw: Some(&rw), ..*ctx }, out);
    true
}
