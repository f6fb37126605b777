//! Argument helpers shared by every context: argument counts, blocks, `on|off`,
//! numbers, nginx times (`1m30s`) and sizes (`8k`), `host:port`.
//!
//! Each returns nginx's `[emerg]` wording for a bad value, located at the directive.

use std::time::Duration;

use crate::config::parser::Directive;
use crate::config::ConfError;

pub(super) fn block(d: &Directive) -> Result<&[Directive], ConfError> {
    d.block
        .as_deref()
        .ok_or_else(|| d.err(format!("directive \"{}\" has no opening \"{{\"", d.name)))
}

pub(super) fn no_block(d: &Directive) -> Result<(), ConfError> {
    if d.block.is_some() {
        return Err(d.err(format!("directive \"{}\" is not terminated by \";\"", d.name)));
    }
    Ok(())
}

pub(super) fn nargs(d: &Directive) -> ConfError {
    d.err(format!("invalid number of arguments in \"{}\" directive", d.name))
}

pub(super) fn one_arg(d: &Directive) -> Result<(), ConfError> {
    no_block(d)?;
    if d.args.len() != 1 {
        return Err(nargs(d));
    }
    Ok(())
}

pub(super) fn two_args(d: &Directive) -> Result<(), ConfError> {
    no_block(d)?;
    if d.args.len() != 2 {
        return Err(nargs(d));
    }
    Ok(())
}

pub(super) fn flag(d: &Directive) -> Result<bool, ConfError> {
    one_arg(d)?;
    match d.args[0].as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        v => Err(d.err(format!(
            "invalid value \"{v}\" in \"{}\" directive, it must be \"on\" or \"off\"",
            d.name
        ))),
    }
}

pub(super) fn parse_num(d: &Directive, v: &str) -> Result<u64, ConfError> {
    v.parse()
        .map_err(|_| d.err(format!("invalid value \"{v}\" in \"{}\" directive", d.name)))
}

pub(super) fn time_arg(d: &Directive) -> Result<Duration, ConfError> {
    one_arg(d)?;
    parse_time(d, &d.args[0])
}

/// nginx time: `30`, `30s`, `500ms`, `1m30s`, `2h`, `1d`.
pub(crate) fn parse_time(d: &Directive, v: &str) -> Result<Duration, ConfError> {
    parse_time_str(v).ok_or_else(|| d.err(format!("invalid value \"{v}\" in \"{}\" directive", d.name)))
}

pub fn parse_time_str(v: &str) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    let mut total_ms: u64 = 0;
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        let n: u64 = v[start..i].parse().ok()?;
        let unit_start = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult = match &v[unit_start..i] {
            "" | "s" => 1000,
            "ms" => 1,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "M" => 2_592_000_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total_ms = total_ms.checked_add(n.checked_mul(mult)?)?;
    }
    Some(Duration::from_millis(total_ms))
}

/// nginx size: `512`, `8k`, `10M`, `1g`.
pub(crate) fn parse_size(d: &Directive, v: &str) -> Result<u64, ConfError> {
    parse_size_str(v).ok_or_else(|| d.err(format!("\"{}\" directive invalid value", d.name)))
}

pub fn parse_size_str(v: &str) -> Option<u64> {
    let (num, mult) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 1024),
        b'm' | b'M' => (&v[..v.len() - 1], 1024 * 1024),
        b'g' | b'G' => (&v[..v.len() - 1], 1024 * 1024 * 1024),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Splits `host:port` (`[v6]:port`); the port is optional.
pub(super) fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &s[..end + 2];
        let after = &rest[end + 1..];
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sizes_and_times() {
        assert_eq!(parse_size_str("10M"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size_str("8k"), Some(8192));
        assert_eq!(parse_size_str("0"), Some(0));
        assert_eq!(parse_size_str("x"), None);
        assert_eq!(parse_time_str("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_time_str("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_time_str("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_time_str("75"), Some(Duration::from_secs(75)));
        assert_eq!(parse_time_str("5x"), None);
    }
}
