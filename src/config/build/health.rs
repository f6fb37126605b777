//! Active health checks (nginx Plus syntax): the `match NAME { … }` block (http context)
//! and `health_check [interval=…] …` (location context, for the location's upstream).

use std::sync::Arc;
use std::time::Duration;

use regex::bytes::{Regex, RegexBuilder};

use super::args::{block, nargs, parse_time};
use super::table::{walk, Cmd, Ctx, Done};
use super::Builder;
use crate::config::model::{HeaderCond, HealthCheck, Match, ProxyPass};
use crate::config::parser::Directive;
use crate::config::ConfError;

/// The `match` block's directives.
pub(super) const MATCH: &[Cmd<Match>] = &[
    Cmd::run("status", status).unknown_elsewhere(),
    Cmd::run("header", header).unknown_elsewhere(),
    Cmd::run("body", body).unknown_elsewhere(),
];

impl Builder<'_> {
    /// `match NAME { status …; header …; body ~ "…"; }` (a name used twice is an error).
    pub(super) fn match_block(&mut self, d: &Directive) -> Done {
        if d.args.len() != 1 {
            return Err(nargs(d));
        }
        let mut m = Match::default();
        walk(self, block(d)?, Ctx::Match, MATCH, &mut m, None)?;
        if self.matches.insert(d.args[0].clone(), Arc::new(m)).is_some() {
            return Err(d.err(format!("duplicate match \"{}\"", d.args[0])));
        }
        Ok(())
    }

    /// `health_check` in a location: its upstream is probed (one check per upstream).
    pub(super) fn attach_health_check(&self, h: &Directive, pp: Option<&ProxyPass>) -> Done {
        let Some(pp) = pp else {
            return Err(h.err("\"health_check\" needs \"proxy_pass\" in the same location"));
        };
        let hc = self.health_check(h, pp)?;
        if pp.upstream.health_check.set(hc).is_err() {
            return Err(h.err(format!(
                "duplicate \"health_check\" for upstream \"{}\"",
                pp.upstream.name
            )));
        }
        Ok(())
    }

    fn health_check(&self, d: &Directive, pp: &ProxyPass) -> Result<HealthCheck, ConfError> {
        let mut hc = HealthCheck {
            interval: Duration::from_secs(5),
            fails: 1,
            passes: 1,
            uri: "/".into(),
            port: None,
            matcher: None,
            host: pp.proxy_host.clone(),
        };
        for a in &d.args {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| d.err(format!("invalid parameter \"{a}\"")))?;
            let positive = |v: &str| {
                v.parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| d.err(format!("invalid parameter \"{a}\"")))
            };
            match k {
                "interval" => hc.interval = parse_time(d, v)?.max(Duration::from_millis(10)),
                "fails" => hc.fails = positive(v)?,
                "passes" => hc.passes = positive(v)?,
                "uri" => hc.uri = v.to_string(),
                "port" => hc.port = Some(v.parse().map_err(|_| d.err(format!("invalid parameter \"{a}\"")))?),
                "match" => {
                    hc.matcher = Some(
                        self.matches
                            .get(v)
                            .cloned()
                            .ok_or_else(|| d.err(format!("match \"{v}\" not found")))?,
                    )
                }
                _ => return Err(d.err(format!("invalid parameter \"{a}\""))),
            }
        }
        if !hc.uri.starts_with('/') {
            return Err(d.err(format!("invalid uri \"{}\"", hc.uri)));
        }
        Ok(hc)
    }
}

/// `status [!] CODE|LOW-HIGH…` (a `!` negates the ranges after it).
fn status(_: &mut Builder<'_>, m: &mut Match, e: &Directive) -> Done {
    let mut neg = false;
    for a in &e.args {
        if a == "!" {
            neg = true;
            continue;
        }
        let bad = || e.err(format!("invalid status \"{a}\""));
        let (lo, hi) = match a.split_once('-') {
            Some((l, h)) => (l.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?),
            None => {
                let v: u16 = a.parse().map_err(|_| bad())?;
                (v, v)
            }
        };
        m.status.push((lo, hi, neg));
    }
    Ok(())
}

/// `header NAME`, `header !NAME`, `header NAME =|!=|~|!~ VALUE`.
fn header(_: &mut Builder<'_>, m: &mut Match, e: &Directive) -> Done {
    let cond = match e.args.as_slice() {
        [n] if n.starts_with('!') => (n[1..].to_ascii_lowercase(), HeaderCond::Absent),
        [n] => (n.to_ascii_lowercase(), HeaderCond::Present),
        [n, op, v] => {
            let c = match op.as_str() {
                "=" => HeaderCond::Eq(v.clone()),
                "!=" => HeaderCond::Ne(v.clone()),
                "~" => HeaderCond::Re(regex(e, v)?),
                "!~" => HeaderCond::NotRe(regex(e, v)?),
                _ => return Err(e.err(format!("invalid operator \"{op}\""))),
            };
            (n.to_ascii_lowercase(), c)
        }
        _ => return Err(nargs(e)),
    };
    m.headers.push(cond);
    Ok(())
}

/// `body ~|!~ REGEX`.
fn body(_: &mut Builder<'_>, m: &mut Match, e: &Directive) -> Done {
    match e.args.as_slice() {
        [op, v] if op == "~" || op == "!~" => {
            m.body.push((regex(e, v)?, op == "!~"));
            Ok(())
        }
        _ => Err(nargs(e)),
    }
}

fn regex(e: &Directive, v: &str) -> Result<Regex, ConfError> {
    RegexBuilder::new(v)
        .build()
        .map_err(|x| e.err(format!("invalid regex \"{v}\": {x}")))
}
