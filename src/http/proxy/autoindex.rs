//! `autoindex`: a directory listing where no index file exists, in nginx's HTML or
//! JSON, byte for byte (directories first, then names in byte order; dot-files
//! left out; names over 50 characters cut to 47 and `..>`).
//!
//! Where it sits: [`super::files`]' index handler calls [`render`] for an existing
//! directory when the location has `autoindex on`.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use crate::config::model::LocConf;

struct Entry {
    name: Vec<u8>,
    dir: bool,
    size: u64,
    mtime: i64,
}

/// The listing of `dir` for `uri`; the body and its Content-Type. `Err`: the
/// directory could not be read.
pub(super) fn render(conf: &LocConf, dir: &[u8], uri: &[u8]) -> std::io::Result<(Vec<u8>, &'static str)> {
    let mut entries = Vec::new();
    for e in std::fs::read_dir(std::ffi::OsStr::from_bytes(dir))? {
        let e = e?;
        let name = e.file_name().as_bytes().to_vec();
        if name.first() == Some(&b'.') {
            continue;
        }
        // stat, as nginx: a link shows what it points to; a broken one is skipped.
        let Ok(m) = std::fs::metadata(e.path()) else {
            continue;
        };
        entries.push(Entry {
            name,
            dir: m.is_dir(),
            size: m.len(),
            mtime: m.mtime(),
        });
    }
    entries.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
    Ok(if conf.autoindex_format {
        (json(&entries), "application/json")
    } else {
        (html(conf, &entries, uri), "text/html")
    })
}

fn html(conf: &LocConf, entries: &[Entry], uri: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + entries.len() * 120);
    out.extend_from_slice(b"<html>\r\n<head><title>Index of ");
    escape_html(uri, &mut out);
    out.extend_from_slice(b"</title></head>\r\n<body>\r\n<h1>Index of ");
    escape_html(uri, &mut out);
    out.extend_from_slice(b"</h1><hr><pre><a href=\"../\">../</a>\r\n");
    for e in entries {
        out.extend_from_slice(b"<a href=\"");
        crate::http::uri::escape_with(&e.name, b"\"&'<>", &mut out);
        if e.dir {
            out.push(b'/');
        }
        out.extend_from_slice(b"\">");
        let shown = String::from_utf8_lossy(&e.name);
        let mut len = shown.chars().count() + usize::from(e.dir);
        if len > 50 {
            let cut: String = shown.chars().take(47).collect();
            escape_html(cut.as_bytes(), &mut out);
            out.extend_from_slice(b"..&gt;</a>");
            len = 50;
        } else {
            escape_html(&e.name, &mut out);
            if e.dir {
                out.push(b'/');
            }
            out.extend_from_slice(b"</a>");
        }
        out.resize(out.len() + (50 - len), b' ');
        out.push(b' ');
        date(conf, e.mtime, &mut out);
        size(conf, e, &mut out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"</pre><hr></body>\r\n</html>\r\n");
    out
}

/// `02-Dec-2026 20:12 ` (GMT unless `autoindex_localtime`).
fn date(conf: &LocConf, t: i64, out: &mut Vec<u8>) {
    use chrono::TimeZone;
    let fmt = "%d-%b-%Y %H:%M ";
    let s = if conf.autoindex_localtime {
        chrono::Local
            .timestamp_opt(t, 0)
            .single()
            .map(|d| d.format(fmt).to_string())
    } else {
        chrono::DateTime::from_timestamp(t, 0).map(|d| d.format(fmt).to_string())
    };
    out.extend_from_slice(s.unwrap_or_default().as_bytes());
}

/// The size column: exact (`%19`), or nginx's rounded K/M/G.
fn size(conf: &LocConf, e: &Entry, out: &mut Vec<u8>) {
    if conf.autoindex_exact_size {
        if e.dir {
            let _ = write!(out, "{:>19}", "-");
        } else {
            let _ = write!(out, "{:>19}", e.size);
        }
        return;
    }
    if e.dir {
        out.extend_from_slice(b"      -");
        return;
    }
    let len = e.size;
    let (n, unit) = if len > 1024 * 1024 * 1024 - 1 {
        round(len, 1024 * 1024 * 1024, 'G')
    } else if len > 1024 * 1024 - 1 {
        round(len, 1024 * 1024, 'M')
    } else if len > 9999 {
        round(len, 1024, 'K')
    } else {
        (len, ' ')
    };
    if unit == ' ' {
        let _ = write!(out, " {n:>6}");
    } else {
        let _ = write!(out, "{n:>6}{unit}");
    }
}

fn round(len: u64, unit: u64, c: char) -> (u64, char) {
    let mut n = len / unit;
    if len % unit > unit / 2 - 1 {
        n += 1;
    }
    (n, c)
}

fn json(entries: &[Entry]) -> Vec<u8> {
    let mut out = b"[\r\n".to_vec();
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b",\r\n");
        }
        out.extend_from_slice(b"{ \"name\":\"");
        for &b in &e.name {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b if b < 0x20 => {
                    let _ = write!(out, "\\u{b:04x}");
                }
                b => out.push(b),
            }
        }
        let kind = if e.dir { "directory" } else { "file" };
        let _ = write!(
            out,
            "\", \"type\":\"{kind}\", \"mtime\":\"{}\"",
            crate::proto::conditional::http_date(e.mtime)
        );
        if !e.dir {
            let _ = write!(out, ", \"size\":{}", e.size);
        }
        out.extend_from_slice(b" }");
    }
    if !entries.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
    out.push(b']');
    out
}

fn escape_html(s: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        match b {
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b => out.push(b),
        }
    }
}
