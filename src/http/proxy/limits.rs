//! nginx's preaccess phase limits: `limit_req` (ngx_http_limit_req_module), then
//! `limit_conn` (ngx_http_limit_conn_module), once per request (an internal redirect
//! does not count a request again, as nginx's `r->main->limit_*_status`).
//!
//! Where it sits: in a location's phases after its rewrites and realip, before the
//! access phase. The zones are global across workers (see [`crate::limit`]); a
//! request waits here when `limit_req` delays it, and its `limit_conn` counts are
//! held in `Req::conns_held` until the request is over.

use std::time::Duration;

use super::{files, Client, Req};
use crate::config::model::{LimitReq, LogLevel};
use crate::limit::{Bucket, ConnStatus, ReqStatus};
use crate::observe::log;

/// Both limits: `Err(status)` when the request is refused.
pub(super) async fn check(c: &mut Client, r: &mut Req<'_>) -> Result<(), u16> {
    if r.limited.req.is_none() && !r.conf.limit_req.is_empty() {
        requests(c, r).await?;
    }
    if r.limited.conn.is_none() && !r.conf.limit_conn.is_empty() {
        connections(c, r)?;
    }
    Ok(())
}

/// A limit's key for this request; `None` when it is empty or too long (not
/// limited, as nginx).
fn key(c: &Client, r: &Req<'_>, t: &crate::config::model::ZoneKey, max: usize) -> Option<Vec<u8>> {
    let mut k = Vec::new();
    t.value.render(&c.ctx(r), &mut k);
    if k.len() > max {
        log::error(format_args!(
            "the value of the \"{}\" key is more than {max} bytes: \"{}\"{}",
            t.source,
            String::from_utf8_lossy(&k),
            files::Why(c, r)
        ));
        return None;
    }
    Some(k).filter(|k| !k.is_empty())
}

/// nginx's `ngx_http_limit_req_handler`: every limit is asked in turn, the last one
/// accounts the request at once, the others when all let it through; refused past
/// a burst, else delayed by the longest wait any limit asks.
async fn requests(c: &mut Client, r: &mut Req<'_>) -> Result<(), u16> {
    let conf = r.conf;
    let limits = &conf.limit_req;
    let mut waiting = Vec::new();
    let mut found = None;
    for (i, l) in limits.iter().enumerate() {
        let Some(k) = key(c, r, &l.key, 65535) else {
            continue;
        };
        match l.zone.lookup(&k, l.rate, l.burst, i == limits.len() - 1) {
            Bucket::Busy(excess) => {
                log::log(
                    conf.limit_req_log_level,
                    format_args!(
                        "limiting requests{}, excess: {}.{:03} by zone \"{}\"{}",
                        dry(conf.limit_req_dry_run),
                        excess / 1000,
                        excess % 1000,
                        l.zone.name,
                        files::Why(c, r)
                    ),
                );
                return refuse_req(r);
            }
            Bucket::Ok(excess) if i == limits.len() - 1 => found = Some((l, excess)),
            Bucket::Ok(_) => waiting.push((l, k)),
        }
    }
    if found.is_none() && waiting.is_empty() {
        return Ok(());
    }
    // The longest delay any limit asks (nginx's ngx_http_limit_req_account).
    let mut worst = found.map(|(l, e)| (wait(l, e), l, e));
    for (l, k) in waiting {
        let e = l.zone.account(&k, l.rate);
        let d = wait(l, e);
        if worst.is_none_or(|(w, _, _)| d > w) {
            worst = Some((d, l, e));
        }
    }
    let Some((delay, l, excess)) = worst.filter(|(d, _, _)| !d.is_zero()) else {
        r.limited.req = Some(ReqStatus::Passed);
        return Ok(());
    };
    log::log(
        lower(conf.limit_req_log_level),
        format_args!(
            "delaying request{}, excess: {}.{:03}, by zone \"{}\"{}",
            dry(conf.limit_req_dry_run),
            excess / 1000,
            excess % 1000,
            l.zone.name,
            files::Why(c, r)
        ),
    );
    if conf.limit_req_dry_run {
        r.limited.req = Some(ReqStatus::DelayedDryRun);
        return Ok(());
    }
    r.limited.req = Some(ReqStatus::Delayed);
    tokio::time::sleep(delay).await;
    Ok(())
}

/// The wait a limit asks for an excess over its `delay=` (none within it).
fn wait(l: &LimitReq, excess: u64) -> Duration {
    Duration::from_millis(excess.saturating_sub(l.delay) * 1000 / l.rate.max(1))
}

fn refuse_req(r: &mut Req<'_>) -> Result<(), u16> {
    if r.conf.limit_req_dry_run {
        r.limited.req = Some(ReqStatus::RejectedDryRun);
        return Ok(());
    }
    r.limited.req = Some(ReqStatus::Rejected);
    Err(r.conf.limit_req_status)
}

/// nginx's `ngx_http_limit_conn_handler`: each limit counts the request while it is
/// served, refused when its key has `limit_conn` requests already (or the zone has
/// no room for it).
fn connections(c: &mut Client, r: &mut Req<'_>) -> Result<(), u16> {
    let conf = r.conf;
    for l in &conf.limit_conn {
        let Some(k) = key(c, r, &l.key, 255) else {
            continue;
        };
        r.limited.conn = Some(ConnStatus::Passed);
        match l.zone.acquire(&k, l.max) {
            Some(held) => r.conns_held.push(held),
            None => {
                log::log(
                    conf.limit_conn_log_level,
                    format_args!(
                        "limiting connections{} by zone \"{}\"{}",
                        dry(conf.limit_conn_dry_run),
                        l.zone.name,
                        files::Why(c, r)
                    ),
                );
                r.conns_held.clear();
                if conf.limit_conn_dry_run {
                    r.limited.conn = Some(ConnStatus::RejectedDryRun);
                    return Ok(());
                }
                r.limited.conn = Some(ConnStatus::Rejected);
                return Err(conf.limit_conn_status);
            }
        }
    }
    Ok(())
}

fn dry(on: bool) -> &'static str {
    if on {
        ", dry run"
    } else {
        ""
    }
}

/// The level delays are logged at: one below the refusals' (nginx).
fn lower(level: LogLevel) -> LogLevel {
    match level {
        LogLevel::Error => LogLevel::Warn,
        LogLevel::Warn => LogLevel::Notice,
        _ => LogLevel::Info,
    }
}
