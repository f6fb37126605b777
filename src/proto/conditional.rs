//! Conditional and range requests on a representation ringx serves itself (a static
//! file), sans-io: RFC 9110's preconditions (§13) and ranges (§14) as nginx's
//! not_modified and range filters apply them, byte for byte where nginx's parser is
//! lenient or strict.
//!
//! Where it sits: the static-file handler ([`crate::http::proxy`]'s `files`) stats a
//! file, makes its [`Validators`], hands the request's condition headers here, and
//! writes what [`precondition`] and [`range`] decide.

/// What a representation is known by: its modification time (seconds since the
/// epoch) and its entity tag (nginx's `"mtime-size"` in hex).
#[derive(Debug, Clone)]
pub struct Validators {
    pub mtime: i64,
    pub etag: Option<String>,
}

impl Validators {
    /// nginx's validators for a file: `ETag: "<mtime hex>-<size hex>"` when `etag on`.
    pub fn for_file(mtime: i64, size: u64, etag: bool) -> Validators {
        Validators {
            mtime,
            etag: etag.then(|| format!("\"{mtime:x}-{size:x}\"")),
        }
    }
}

/// `if_modified_since off | exact | before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ims {
    Off,
    Exact,
    Before,
}

/// The request's condition headers (raw values; `None` when absent).
#[derive(Debug, Default, Clone, Copy)]
pub struct Conditions<'a> {
    pub if_modified_since: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_match: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
}

/// What the preconditions decide for a 200 response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Send the representation.
    Full,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// nginx's `ngx_http_not_modified_header_filter`.
pub fn precondition(c: &Conditions<'_>, v: &Validators, ims: Ims) -> Precondition {
    if let Some(h) = c.if_unmodified_since {
        if parse_http_date(h).is_none_or(|t| t < v.mtime) {
            return Precondition::Failed;
        }
    }
    if let Some(h) = c.if_match {
        if !etag_matches(h, v.etag.as_deref(), false) {
            return Precondition::Failed;
        }
    }
    if c.if_modified_since.is_none() && c.if_none_match.is_none() {
        return Precondition::Full;
    }
    if let Some(h) = c.if_modified_since {
        if modified(h, v.mtime, ims) {
            return Precondition::Full;
        }
    }
    if let Some(h) = c.if_none_match {
        if !etag_matches(h, v.etag.as_deref(), true) {
            return Precondition::Full;
        }
    }
    Precondition::NotModified
}

/// `ngx_http_test_if_modified`: true when the file counts as modified.
fn modified(h: &[u8], mtime: i64, ims: Ims) -> bool {
    if ims == Ims::Off {
        return true;
    }
    let Some(t) = parse_http_date(h) else {
        return true;
    };
    if t == mtime {
        return false;
    }
    ims == Ims::Exact || t < mtime
}

/// `ngx_http_test_if_match`: whether the list in `h` names `etag` (`*` names any);
/// `weak` compares without `W/` on either side (If-None-Match).
fn etag_matches(h: &[u8], etag: Option<&str>, weak: bool) -> bool {
    if h == b"*" {
        return true;
    }
    let Some(etag) = etag else {
        return false;
    };
    let mut etag = etag.as_bytes();
    if weak && etag.len() > 2 && etag.starts_with(b"W/") {
        etag = &etag[2..];
    }
    let mut p = h;
    while !p.is_empty() {
        if weak && p.len() > 2 && p.starts_with(b"W/") {
            p = &p[2..];
        }
        if etag.len() > p.len() {
            return false;
        }
        if p.starts_with(etag) {
            let rest = trim_start(&p[etag.len()..], b" \t");
            if rest.is_empty() || rest[0] == b',' {
                return true;
            }
        }
        let comma = p.iter().position(|&b| b == b',').unwrap_or(p.len());
        p = trim_start(&p[comma..], b" \t,");
    }
    false
}

fn trim_start<'a>(mut p: &'a [u8], set: &[u8]) -> &'a [u8] {
    while let Some((&b, rest)) = p.split_first() {
        if !set.contains(&b) {
            break;
        }
        p = rest;
    }
    p
}

/// What a `Range` request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// The whole representation (no Range, a failed If-Range, or a range set nginx
    /// declines), with `Accept-Ranges: bytes`.
    Full,
    /// 206 of the bytes `start..end` (end exclusive).
    Partial { start: u64, end: u64 },
    /// 206 `multipart/byteranges` of these `start..end` ranges.
    Multi(Vec<(u64, u64)>),
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// nginx's `ngx_http_range_header_filter` for a 200 response of `size` bytes
/// (`max_ranges` unlimited).
pub fn range(c: &Conditions<'_>, v: &Validators, size: u64) -> RangeAnswer {
    let Some(h) = c.range else {
        return RangeAnswer::Full;
    };
    if h.len() < 7 || !h[..6].eq_ignore_ascii_case(b"bytes=") {
        return RangeAnswer::Full;
    }
    if let Some(ir) = c.if_range {
        let ok = if ir.len() >= 2 && ir.ends_with(b"\"") {
            v.etag.as_deref().is_some_and(|e| e.as_bytes() == ir)
        } else {
            parse_http_date(ir) == Some(v.mtime)
        };
        if !ok {
            return RangeAnswer::Full;
        }
    }
    match parse_ranges(&h[6..], size) {
        Ranges::Declined => RangeAnswer::Full,
        Ranges::NotSatisfiable => RangeAnswer::Unsatisfiable,
        Ranges::Ok(r) if r.len() == 1 => RangeAnswer::Partial {
            start: r[0].0,
            end: r[0].1,
        },
        Ranges::Ok(r) => RangeAnswer::Multi(r),
    }
}

enum Ranges {
    Ok(Vec<(u64, u64)>),
    NotSatisfiable,
    Declined,
}

/// `ngx_http_range_parse` (the value after `bytes=`; its end reads as nginx's NUL).
fn parse_ranges(p: &[u8], len: u64) -> Ranges {
    const MAX: u64 = i64::MAX as u64;
    let at = |i: usize| p.get(i).copied().unwrap_or(0);
    let skip_sp = |i: &mut usize| {
        while at(*i) == b' ' {
            *i += 1;
        }
    };
    let num = |i: &mut usize| -> Option<u64> {
        let mut n: u64 = 0;
        while at(*i).is_ascii_digit() {
            n = n
                .checked_mul(10)?
                .checked_add(u64::from(at(*i) - b'0'))
                .filter(|&n| n <= MAX)?;
            *i += 1;
        }
        Some(n)
    };
    let (mut out, mut size, mut i) = (Vec::new(), 0u64, 0usize);
    loop {
        skip_sp(&mut i);
        let (start, end) = if at(i) != b'-' {
            if !at(i).is_ascii_digit() {
                return Ranges::NotSatisfiable;
            }
            let Some(start) = num(&mut i) else {
                return Ranges::NotSatisfiable;
            };
            skip_sp(&mut i);
            if at(i) != b'-' {
                return Ranges::NotSatisfiable;
            }
            i += 1;
            skip_sp(&mut i);
            if at(i) == b',' || at(i) == 0 {
                // `N-`: to the end.
                (start, len)
            } else {
                let Some(end) = range_end(&mut i, &at, &num, &skip_sp) else {
                    return Ranges::NotSatisfiable;
                };
                (start, if len == 0 || end >= len { len } else { end + 1 })
            }
        } else {
            // `-N`: the last N bytes.
            i += 1;
            let Some(n) = range_end(&mut i, &at, &num, &skip_sp) else {
                return Ranges::NotSatisfiable;
            };
            (len.saturating_sub(n), len)
        };
        if !push(&mut out, &mut size, start, end) {
            return Ranges::NotSatisfiable;
        }
        if start >= end && start == 0 {
            return Ranges::Declined;
        }
        if at(i) != b',' {
            break;
        }
        i += 1;
    }
    if out.is_empty() {
        Ranges::NotSatisfiable
    } else if size > len {
        Ranges::Declined
    } else {
        Ranges::Ok(out)
    }
}

/// The number ending a range, then what may follow it (`,` or the end).
fn range_end(
    i: &mut usize,
    at: &dyn Fn(usize) -> u8,
    num: &dyn Fn(&mut usize) -> Option<u64>,
    skip_sp: &dyn Fn(&mut usize),
) -> Option<u64> {
    if !at(*i).is_ascii_digit() {
        return None;
    }
    let n = num(i)?;
    skip_sp(i);
    (at(*i) == b',' || at(*i) == 0).then_some(n)
}

/// Keeps a non-empty range; false when the total would overflow.
fn push(out: &mut Vec<(u64, u64)>, size: &mut u64, start: u64, end: u64) -> bool {
    if start < end {
        let Some(s) = size.checked_add(end - start).filter(|&s| s <= i64::MAX as u64) else {
            return false;
        };
        *size = s;
        out.push((start, end));
    }
    true
}

/// An HTTP date in any of the three forms RFC 9110 §5.6.7 allows, as leniently as
/// nginx's `ngx_parse_http_time` reads them (the weekday is not checked, what follows
/// the time is ignored); seconds since the epoch.
pub fn parse_http_date(v: &[u8]) -> Option<i64> {
    #[derive(PartialEq)]
    enum Fmt {
        Rfc822,
        Rfc850,
        Isoc,
    }
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let digit = |i: usize| at(i).is_ascii_digit().then(|| u32::from(at(i) - b'0'));
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let end = v.len();
    let mut fmt = Fmt::Rfc822;
    let mut p = 0;
    while p < end {
        if v[p] == b',' {
            break;
        }
        if v[p] == b' ' {
            fmt = Fmt::Isoc;
            break;
        }
        p += 1;
    }
    p += 1;
    while p < end && v[p] == b' ' {
        p += 1;
    }
    if end.saturating_sub(p) < 18 {
        return None;
    }
    let mut day = 0;
    if fmt != Fmt::Isoc {
        day = two(p)?;
        p += 2;
        fmt = match at(p) {
            b' ' => Fmt::Rfc822,
            b'-' => Fmt::Rfc850,
            _ => return None,
        };
        p += 1;
    }
    let month: i64 = match at(p) {
        b'J' if at(p + 1) == b'a' => 0,
        b'J' if at(p + 2) == b'n' => 5,
        b'J' => 6,
        b'F' => 1,
        b'M' if at(p + 2) == b'r' => 2,
        b'M' => 4,
        b'A' if at(p + 1) == b'p' => 3,
        b'A' => 7,
        b'S' => 8,
        b'O' => 9,
        b'N' => 10,
        b'D' => 11,
        _ => return None,
    };
    p += 3;
    let mut year = 0;
    match fmt {
        Fmt::Rfc822 if at(p) == b' ' => {
            year = two(p + 1)? * 100 + two(p + 3)?;
            p += 5;
        }
        Fmt::Rfc850 if at(p) == b'-' => {
            let y = two(p + 1)?;
            year = y + if y < 70 { 2000 } else { 1900 };
            p += 3;
        }
        Fmt::Isoc => {
            p += 1;
            if at(p) == b' ' {
                p += 1;
            }
            day = digit(p)?;
            p += 1;
            if at(p) != b' ' {
                day = day * 10 + digit(p)?;
                p += 1;
            }
            if end.saturating_sub(p) < 14 {
                return None;
            }
        }
        _ => return None,
    }
    if at(p) != b' ' || at(p + 3) != b':' || at(p + 6) != b':' {
        return None;
    }
    let (hour, min, sec) = (two(p + 1)?, two(p + 4)?, two(p + 7)?);
    if fmt == Fmt::Isoc {
        if at(p + 9) != b' ' {
            return None;
        }
        year = two(p + 10)? * 100 + two(p + 12)?;
    }
    if hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(year as i32, month as u32 + 1, day)?;
    let t = date.and_hms_opt(hour, min, sec)?;
    Some(t.and_utc().timestamp())
}

/// `t` as an IMF-fixdate (`Last-Modified`, `Expires`).
pub fn http_date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// `expires`: what the Expires and Cache-Control headers say of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    Off,
    /// `expires epoch`.
    Epoch,
    /// `expires max`.
    Max,
    /// `expires [+|-]TIME`: from the time of the response.
    Access(i64),
    /// `expires modified [+|-]TIME`: from the file's (or response's) Last-Modified.
    Modified(i64),
    /// `expires @TIME`: the next time of day TIME (seconds after local midnight).
    Daily(i64),
}

/// nginx's `ngx_http_set_expires`: the (Expires, Cache-Control) values for a
/// response with `status` (the headers filter's statuses only), `now` and the
/// response's Last-Modified in seconds since the epoch.
pub fn expires(e: Expires, status: u16, last_modified: Option<i64>, now: i64) -> Option<(String, String)> {
    if !matches!(status, 200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308) {
        return None;
    }
    let (at, max_age, negative) = match e {
        Expires::Off => return None,
        Expires::Epoch => return Some(("Thu, 01 Jan 1970 00:00:01 GMT".into(), "no-cache".into())),
        Expires::Max => return Some(("Thu, 31 Dec 2037 23:55:55 GMT".into(), "max-age=315360000".into())),
        Expires::Access(0) | Expires::Modified(0) => return Some((http_date(now), "max-age=0".into())),
        Expires::Daily(t) => {
            let at = next_time_of_day(now, t);
            (at, at - now, false)
        }
        Expires::Modified(t) if last_modified.is_some() => {
            let at = last_modified.unwrap_or(now) + t;
            (at, at - now, t < 0)
        }
        Expires::Access(t) | Expires::Modified(t) => (now + t, t, t < 0),
    };
    let cc = if negative || max_age < 0 {
        "no-cache".to_string()
    } else {
        format!("max-age={max_age}")
    };
    Some((http_date(at), cc))
}

/// The next moment, after `now`, that local time is `secs` past midnight (nginx's
/// `ngx_next_time`).
fn next_time_of_day(now: i64, secs: i64) -> i64 {
    use chrono::{Local, TimeZone};
    let Some(local) = Local.timestamp_opt(now, 0).single() else {
        return now;
    };
    let midnight = local.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default();
    let mut at = midnight + chrono::Duration::seconds(secs);
    if Local
        .from_local_datetime(&at)
        .single()
        .is_none_or(|t| t.timestamp() <= now)
    {
        at += chrono::Duration::days(1);
    }
    Local.from_local_datetime(&at).single().map_or(now, |t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTIME: i64 = 1_796_237_833; // Wed, 02 Dec 2026 18:57:13 GMT

    fn v() -> Validators {
        Validators::for_file(MTIME, 10, true)
    }

    fn pre(c: Conditions<'_>) -> Precondition {
        precondition(&c, &v(), Ims::Exact)
    }

    #[test]
    fn dates_in_all_three_forms() {
        assert_eq!(http_date(MTIME), "Wed, 02 Dec 2026 18:57:13 GMT");
        for s in [
            "Wed, 02 Dec 2026 18:57:13 GMT",
            "Wednesday, 02-Dec-26 18:57:13 GMT",
            "Wed Dec  2 18:57:13 2026",
        ] {
            assert_eq!(parse_http_date(s.as_bytes()), Some(MTIME), "{s}");
        }
        assert_eq!(parse_http_date(b"yesterday"), None);
        // nginx's leniency: the weekday is not checked, trailing text is ignored.
        assert_eq!(parse_http_date(b"Mon, 02 Dec 2026 18:57:13 GMT"), Some(MTIME));
        assert_eq!(
            parse_http_date(b"Wed, 02 Dec 2026 18:57:13 GMT; length=10"),
            Some(MTIME)
        );
        assert_eq!(parse_http_date(b"Wed, 31 Feb 2026 18:57:13 GMT"), None);
        assert_eq!(parse_http_date(b"Wed, 02 Dec 2026 25:57:13 GMT"), None);
    }

    #[test]
    fn etag_is_nginx_hex() {
        assert_eq!(v().etag.as_deref(), Some("\"6b106a09-a\""));
        assert_eq!(Validators::for_file(MTIME, 10, false).etag, None);
    }

    #[test]
    fn not_modified_rules() {
        let date = http_date(MTIME);
        let older = http_date(MTIME - 10);
        let newer = http_date(MTIME + 10);
        let c = |ims: &'static str| Conditions {
            if_modified_since: Some(ims.as_bytes()),
            ..Default::default()
        };
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        assert_eq!(pre(c(leak(date.clone()))), Precondition::NotModified);
        assert_eq!(pre(c(leak(older))), Precondition::Full);
        // exact: a later date is not the file's date, so it counts as modified...
        assert_eq!(pre(c(leak(newer.clone()))), Precondition::Full);
        // ...before: any date at or after the file's is not modified.
        let before = Conditions {
            if_modified_since: Some(newer.as_bytes()),
            ..Default::default()
        };
        assert_eq!(precondition(&before, &v(), Ims::Before), Precondition::NotModified);
        assert_eq!(precondition(&before, &v(), Ims::Off), Precondition::Full);
        assert_eq!(pre(c("garbage")), Precondition::Full);
    }

    #[test]
    fn entity_tags() {
        let inm = |h: &'static str| Conditions {
            if_none_match: Some(h.as_bytes()),
            ..Default::default()
        };
        assert_eq!(pre(inm("\"6b106a09-a\"")), Precondition::NotModified);
        assert_eq!(pre(inm("W/\"6b106a09-a\"")), Precondition::NotModified);
        assert_eq!(pre(inm("\"x\", \"6b106a09-a\"")), Precondition::NotModified);
        assert_eq!(pre(inm("*")), Precondition::NotModified);
        assert_eq!(pre(inm("\"6b106a09-b\"")), Precondition::Full);
        // If-None-Match that does not match wins over a matching If-Modified-Since.
        let date = http_date(MTIME);
        let both = Conditions {
            if_none_match: Some(b"\"nope\""),
            if_modified_since: Some(date.as_bytes()),
            ..Default::default()
        };
        assert_eq!(pre(both), Precondition::Full);
        let im = |h: &'static str| Conditions {
            if_match: Some(h.as_bytes()),
            ..Default::default()
        };
        assert_eq!(pre(im("\"6b106a09-a\"")), Precondition::Full);
        // If-Match compares strongly.
        assert_eq!(pre(im("W/\"6b106a09-a\"")), Precondition::Failed);
        assert_eq!(pre(im("\"other\"")), Precondition::Failed);
        let ius = Conditions {
            if_unmodified_since: Some(b"Mon, 01 Jan 2001 00:00:00 GMT"),
            ..Default::default()
        };
        assert_eq!(pre(ius), Precondition::Failed);
    }

    fn rng(h: &'static str, size: u64) -> RangeAnswer {
        let c = Conditions {
            range: Some(h.as_bytes()),
            ..Default::default()
        };
        range(&c, &Validators::for_file(MTIME, size, true), size)
    }

    #[test]
    fn ranges_as_nginx_parses_them() {
        use RangeAnswer::*;
        assert_eq!(rng("bytes=2-4", 10), Partial { start: 2, end: 5 });
        assert_eq!(rng("bytes=2-", 10), Partial { start: 2, end: 10 });
        assert_eq!(rng("bytes=-3", 10), Partial { start: 7, end: 10 });
        assert_eq!(rng("bytes=-30", 10), Partial { start: 0, end: 10 });
        assert_eq!(rng("bytes=5-100", 10), Partial { start: 5, end: 10 });
        assert_eq!(rng("BYTES= 2 - 4 ", 10), Partial { start: 2, end: 5 });
        assert_eq!(rng("bytes=0-0,2-3", 10), Multi(vec![(0, 1), (2, 4)]));
        assert_eq!(rng("bytes=20-30", 10), Unsatisfiable);
        assert_eq!(rng("bytes=5-2", 10), Unsatisfiable);
        assert_eq!(rng("bytes=x", 10), Unsatisfiable);
        assert_eq!(rng("bytes=1-2;", 10), Unsatisfiable);
        assert_eq!(rng("bytes=99999999999999999999-", 10), Unsatisfiable);
        // Overlapping ranges larger than the file, and anything on an empty file: 200.
        assert_eq!(rng("bytes=0-9,0-9", 10), Full);
        assert_eq!(rng("bytes=0-", 0), Full);
        assert_eq!(rng("bytes=-5", 0), Full);
        assert_eq!(rng("items=0-1", 10), Full);
        assert_eq!(rng("bytes=", 10), Full);
    }

    #[test]
    fn expires_as_nginx_writes_it() {
        let now = MTIME + 1000;
        let e = |x, st, lm| expires(x, st, lm, now);
        assert_eq!(e(Expires::Off, 200, None), None);
        assert_eq!(e(Expires::Access(60), 404, None), None);
        assert_eq!(
            e(Expires::Access(3600), 200, None),
            Some((http_date(now + 3600), "max-age=3600".into()))
        );
        assert_eq!(
            e(Expires::Access(-1), 200, None),
            Some((http_date(now - 1), "no-cache".into()))
        );
        assert_eq!(
            e(Expires::Access(0), 304, None),
            Some((http_date(now), "max-age=0".into()))
        );
        assert_eq!(
            e(Expires::Modified(3600), 200, Some(MTIME)),
            Some((http_date(MTIME + 3600), "max-age=2600".into()))
        );
        assert_eq!(
            e(Expires::Modified(600), 200, Some(MTIME)),
            Some((http_date(MTIME + 600), "no-cache".into()))
        );
        assert_eq!(e(Expires::Max, 301, None).unwrap().1, "max-age=315360000");
        assert_eq!(e(Expires::Epoch, 200, None).unwrap().0, "Thu, 01 Jan 1970 00:00:01 GMT");
        let (at, cc) = e(Expires::Daily(0), 200, None).unwrap();
        let at = parse_http_date(at.as_bytes()).unwrap();
        assert!(at > now && at <= now + 86400 + 3600, "{at} {now}");
        assert_eq!(cc, format!("max-age={}", at - now));
    }

    #[test]
    fn if_range() {
        let date = http_date(MTIME);
        let c = |ir: &[u8]| {
            let c = Conditions {
                range: Some(b"bytes=0-1"),
                if_range: Some(ir),
                ..Default::default()
            };
            range(&c, &v(), 10)
        };
        assert_eq!(c(b"\"6b106a09-a\""), RangeAnswer::Partial { start: 0, end: 2 });
        assert_eq!(c(date.as_bytes()), RangeAnswer::Partial { start: 0, end: 2 });
        assert_eq!(c(b"\"old\""), RangeAnswer::Full);
        assert_eq!(c(b"Mon, 01 Jan 2001 00:00:00 GMT"), RangeAnswer::Full);
    }
}
