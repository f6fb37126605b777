//! Active health checks (nginx Plus syntax): the `match NAME { … }` block (http context)
//! and `health_check [interval=…] …` (location context, for the location's upstream).

use std::time::Duration;

use regex::bytes::RegexBuilder;

use super::args::{block, nargs, parse_time};
use super::{unknown, Builder, Ctx};
use crate::config::model::{HeaderCond, HealthCheck, Match, ProxyPass};
use crate::config::parser::Directive;
use crate::config::ConfError;

/// `match NAME { status …; header …; body ~ "…"; }` (nginx Plus syntax).
pub(super) fn parse_match(d: &Directive) -> Result<Match, ConfError> {
    let mut m = Match::default();
    for e in block(d)? {
        match e.name.as_str() {
            "status" => {
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
            }
            "header" => {
                let cond = match e.args.as_slice() {
                    [n] if n.starts_with('!') => (n[1..].to_ascii_lowercase(), HeaderCond::Absent),
                    [n] => (n.to_ascii_lowercase(), HeaderCond::Present),
                    [n, op, v] => {
                        let re = |v: &str| {
                            RegexBuilder::new(v)
                                .build()
                                .map_err(|x| e.err(format!("invalid regex \"{v}\": {x}")))
                        };
                        let c = match op.as_str() {
                            "=" => HeaderCond::Eq(v.clone()),
                            "!=" => HeaderCond::Ne(v.clone()),
                            "~" => HeaderCond::Re(re(v)?),
                            "!~" => HeaderCond::NotRe(re(v)?),
                            _ => return Err(e.err(format!("invalid operator \"{op}\""))),
                        };
                        (n.to_ascii_lowercase(), c)
                    }
                    _ => return Err(nargs(e)),
                };
                m.headers.push(cond);
            }
            "body" => match e.args.as_slice() {
                [op, v] if op == "~" || op == "!~" => {
                    let r = RegexBuilder::new(v)
                        .build()
                        .map_err(|x| e.err(format!("invalid regex \"{v}\": {x}")))?;
                    m.body.push((r, op == "!~"));
                }
                _ => return Err(nargs(e)),
            },
            _ => return Err(unknown(e, Ctx::Http)),
        }
    }
    Ok(m)
}

impl Builder<'_> {
    pub(super) fn health_check(&self, d: &Directive, pp: &ProxyPass) -> Result<HealthCheck, ConfError> {
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
