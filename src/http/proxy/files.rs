//! The static-file content phase: what a location without `proxy_pass` or `return`
//! answers (nginx's try_files phase, then its index and static handlers).
//!
//! Where it sits: [`super::content`] runs it for the request's location. `try_files`
//! and `index` may end in an internal redirect (a new `$uri`, matched again) or a named
//! location, which [`super::content`] follows; everything else ends here with a
//! response: the file (200, 206, 304, 412, 416 as [`crate::proto::conditional`]
//! decides), a directory redirect (301), or an error status with nginx's log line.
//! Files are opened and read with blocking calls, as nginx does without `aio`: from
//! the page cache they cost less than a hand-off to another thread.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::{absolute_location, content_type, finish, finish_error, send_simple, status_line, swallow_body};
use super::{client_keep, gzip_asked, write_add_headers, write_expires, Client, Own, Req};
use crate::config::model::{DocRoot, TryFiles, TryLast};
use crate::config::vars::VarSource;
use crate::observe::log;
use crate::proto::conditional::{self, Conditions, Precondition, RangeAnswer, Validators};
use crate::proto::gzip::{self, Gzip};
use crate::proto::h1::request::Method;
use crate::runtime::worker::Snapshot;

/// How the content phase ends for this location.
pub(super) enum Served {
    /// Answered; whether the connection stays open.
    Done(bool),
    /// `$uri` (and maybe `$args`) changed: match the locations again.
    Redirect,
    /// Go on in this named location.
    Named(String),
    /// Answer with this status (the caller's error response).
    Status(u16),
}

/// Bytes read from a file per write to the client.
const CHUNK: usize = 128 * 1024;

/// `try_files` of the request's location: the first candidate that exists becomes
/// `$uri` (and the location's content handler serves it); else its last parameter.
/// `None`: a candidate was found, go on to the content handler.
pub(super) fn try_files(c: &mut Client, r: &mut Req<'_>, tf: &TryFiles) -> Option<Served> {
    let mut cand = Vec::new();
    for (t, dir) in &tf.files {
        cand.clear();
        t.render(&c.ctx(r), &mut cand);
        let dir = *dir;
        let (path, uri) = candidate(&c.ctx(r), &r.conf.doc_root, r.loc_prefix, &cand, t.has_vars());
        let hit = match std::fs::metadata(OsStr::from_bytes(&path)) {
            Ok(m) if dir => m.is_dir(),
            Ok(m) => !m.is_dir(),
            Err(_) => false,
        };
        if hit {
            // A directory's `/` is not part of the new `$uri` (nginx), so the static
            // handler answers it with its redirect to `$uri/`. The upstream still
            // gets the client's URI (nginx keeps it after try_files).
            let changed = r.uri_changed;
            set_uri(c, r, &uri, None);
            r.uri_changed = changed;
            return None;
        }
    }
    Some(match &tf.last {
        TryLast::Code(code) => Served::Status(*code),
        TryLast::Named(n) => Served::Named(n.clone()),
        TryLast::Uri(t) => {
            cand.clear();
            t.render(&c.ctx(r), &mut cand);
            match cand.iter().position(|&b| b == b'?') {
                Some(q) => {
                    let (u, a) = cand.split_at(q);
                    set_uri(c, r, u, Some(&a[1..]));
                }
                None => set_uri(c, r, &cand, None),
            }
            Served::Redirect
        }
    })
}

/// A `try_files` candidate's file and the `$uri` it becomes. Under `alias`, as nginx:
/// a candidate with variables that starts with the location's prefix loses it (its
/// rest is under the alias), a literal one is under the alias whole; the new `$uri`
/// is the prefix and that rest.
fn candidate(src: &dyn VarSource, root: &DocRoot, prefix: Option<&str>, cand: &[u8], vars: bool) -> (Vec<u8>, Vec<u8>) {
    match (root.alias, prefix) {
        (true, Some(pre)) => {
            let rest = match cand.strip_prefix(pre.as_bytes()) {
                Some(rest) if vars => rest,
                _ => cand,
            };
            let mut path = Vec::new();
            root.file_for(src, Some(""), b"", &mut path);
            path.extend_from_slice(rest);
            let mut uri = pre.as_bytes().to_vec();
            uri.extend_from_slice(rest);
            (path, uri)
        }
        _ => (map_path(src, root, prefix, cand), cand.to_vec()),
    }
}

/// Makes `uri` the request's `$uri` (and `args`, when given, its `$args`).
pub(super) fn set_uri(c: &mut Client, r: &mut Req<'_>, uri: &[u8], args: Option<&[u8]>) {
    c.uri_norm.clear();
    c.uri_norm.extend_from_slice(uri);
    r.uri_normalized = true;
    r.uri_changed = true;
    if let Some(a) = args {
        c.args_buf.clear();
        c.args_buf.extend_from_slice(a);
        r.args_owned = true;
    }
}

/// The file for `uri` under the location's `root` or `alias`.
fn map_path(src: &dyn VarSource, root: &DocRoot, loc_prefix: Option<&str>, uri: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(root.path.len() + uri.len() + 16);
    root.file_for(src, loc_prefix, uri, &mut p);
    p
}

/// The index and static handlers for the current `$uri`.
pub(super) async fn serve(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>) -> Served {
    let method = if r.as_get && c.head.method() != Method::Head {
        Method::Get
    } else {
        c.head.method()
    };
    if !matches!(method, Method::Get | Method::Head | Method::Post) {
        return Served::Status(405);
    }
    let uri = c.ctx(r).uri.to_vec();
    if uri.first() != Some(&b'/') {
        // `GET *`: nginx refuses the asterisk form when it parses the request line.
        return Served::Status(400);
    }
    if let (true, Some(pre)) = (r.conf.doc_root.alias, r.loc_prefix) {
        if !uri.starts_with(pre.as_bytes()) {
            // A rewrite moved `$uri` out of the aliased prefix: nginx's 500.
            return Served::Status(500);
        }
    }
    let path = map_path(&c.ctx(r), &r.conf.doc_root, r.loc_prefix, &uri);
    if uri.last() == Some(&b'/') {
        return index(snap, c, r, &uri, &path).await;
    }
    if method != Method::Post && r.conf.gzip.static_mode != gzip::Static::Off {
        if let Some(done) = gzip_static(snap, c, r, &uri, &path).await {
            return Served::Done(done);
        }
    }
    let file = match open(&path) {
        Ok(f) => f,
        Err(e) => return open_failed(c, r, &path, &e),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return open_failed(c, r, &path, &e),
    };
    if meta.is_dir() {
        return Served::Done(dir_redirect(snap, c, r, &uri).await);
    }
    if !meta.is_file() {
        log::crit(format_args!("\"{}\" is not a regular file{}", show(&path), Why(c, r)));
        return Served::Status(404);
    }
    if method == Method::Post {
        return Served::Status(405);
    }
    Served::Done(send_file(snap, c, r, &uri, file, &meta, false).await)
}

/// `gzip_static`: `PATH.gz` instead of the file, with `Content-Encoding: gzip`, when
/// the client takes it (or `always`); `None` to serve the file itself (no `.gz`, or
/// a client that does not take gzip: then with `Vary` when `gzip_vary` is on, as
/// nginx's r->gzip_vary).
async fn gzip_static(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>, uri: &[u8], path: &[u8]) -> Option<bool> {
    let gz = &r.conf.gzip;
    let ok = gz.static_mode == gzip::Static::Always || gzip::client_ok(gz, &gzip_asked(c));
    if !ok && !gz.vary {
        return None;
    }
    let mut p = path.to_vec();
    p.extend_from_slice(b".gz");
    let file = match open(&p) {
        Ok(f) => f,
        Err(e) => {
            // nginx: a missing one is no matter; a forbidden one is an error, anything
            // else critical; the file itself is served then.
            let line = format_args!("open() \"{}\" failed ({}){}", show(&p), Errno(&e), Why(c, r));
            match e.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => {}
                Some(libc::EACCES | libc::ELOOP | libc::EMLINK) => log::error(line),
                _ => log::crit(line),
            }
            return None;
        }
    };
    let meta = file.metadata().ok().filter(|m| m.is_file())?;
    r.gzip_vary = true;
    if !ok {
        return None;
    }
    Some(send_file(snap, c, r, uri, file, &meta, true).await)
}

fn open(path: &[u8]) -> io::Result<File> {
    if path.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    // O_NONBLOCK, as nginx: opening a FIFO must not wait for a writer.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(Path::new(OsStr::from_bytes(path)))
}

/// nginx's statuses for a file that cannot be opened, and its log lines.
fn open_failed(c: &Client, r: &Req<'_>, path: &[u8], e: &io::Error) -> Served {
    let errno = e.raw_os_error().unwrap_or(0);
    let (code, level) = match errno {
        libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG => (404, r.conf.log_not_found.then_some("error")),
        libc::EACCES => (403, Some("error")),
        _ => (500, Some("crit")),
    };
    if let Some(level) = level {
        let line = format_args!("open() \"{}\" failed ({}){}", show(path), Errno(e), Why(c, r));
        if level == "crit" {
            log::crit(line)
        } else {
            log::error(line)
        }
    }
    Served::Status(code)
}

/// `index`: the first index file that exists, by internal redirect; else 403 for an
/// existing directory (no `autoindex`), 404 for a missing one.
async fn index(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>, uri: &[u8], dir: &[u8]) -> Served {
    let mut p = dir.to_vec();
    for name in &r.conf.index {
        if name.starts_with('/') {
            // nginx: an absolute index is redirected to without a check.
            set_uri(c, r, name.as_bytes(), None);
            return Served::Redirect;
        }
        p.truncate(dir.len());
        p.extend_from_slice(name.as_bytes());
        if std::fs::metadata(OsStr::from_bytes(&p)).is_ok_and(|m| !m.is_dir()) {
            let mut u = uri.to_vec();
            u.extend_from_slice(name.as_bytes());
            set_uri(c, r, &u, None);
            return Served::Redirect;
        }
    }
    match std::fs::metadata(OsStr::from_bytes(dir)) {
        Ok(m) if m.is_dir() && r.conf.autoindex => Served::Done(listing(snap, c, r, dir, uri).await),
        Ok(m) if m.is_dir() => {
            log::error(format_args!(
                "directory index of \"{}\" is forbidden{}",
                show(dir),
                Why(c, r)
            ));
            Served::Status(403)
        }
        Ok(_) => Served::Status(404),
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            if errno == libc::EACCES {
                log::error(format_args!(
                    "\"{}\" is forbidden ({}){}",
                    show(dir),
                    Errno(&e),
                    Why(c, r)
                ));
                return Served::Status(403);
            }
            if r.conf.log_not_found {
                // nginx names the first index file.
                p.truncate(dir.len());
                p.extend_from_slice(r.conf.index.first().map_or("", String::as_str).as_bytes());
                log::error(format_args!(
                    "\"{}\" is not found ({}){}",
                    show(&p),
                    Errno(&e),
                    Why(c, r)
                ));
            }
            Served::Status(404)
        }
    }
}

/// `autoindex`: the listing (GET and HEAD), or nginx's error for a directory it
/// cannot read.
async fn listing(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>, dir: &[u8], uri: &[u8]) -> bool {
    let (body, ctype) = match super::autoindex::render(r.conf, dir, uri) {
        Ok(x) => x,
        Err(e) => {
            log::error(format_args!(
                "opendir() \"{}\" failed ({}){}",
                show(dir),
                Errno(&e),
                Why(c, r)
            ));
            let code = if e.raw_os_error() == Some(libc::EACCES) {
                403
            } else {
                500
            };
            return finish_error(snap, c, r, code).await;
        }
    };
    let keep = swallow_body(c) && client_keep(c, r);
    let ok = send_simple(c, r, 200, ctype, &body, None, keep).await;
    finish(snap, c, r, ok, keep).await
}

/// A directory asked for without its `/`: 301 to `$uri/` (with the arguments).
async fn dir_redirect(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>, uri: &[u8]) -> bool {
    let mut target = Vec::with_capacity(uri.len() + 8);
    crate::http::uri::escape_into(uri, &mut target);
    target.push(b'/');
    if let Some(a) = c.ctx(r).args {
        target.push(b'?');
        target.extend_from_slice(a);
    }
    let loc = absolute_location(c, r, &target);
    let keep = swallow_body(c) && client_keep(c, r);
    let page = crate::http::status::error_page(301).unwrap_or_default();
    let ok = send_simple(c, r, 301, "text/html", page.as_bytes(), Some(("Location", &loc)), keep).await;
    finish(snap, c, r, ok, keep).await
}

/// Answers with the file: its validators decide 304 and 412, `Range` 206 and 416.
/// `pre`: the file is a `.gz` sent as it is (`gzip_static`).
async fn send_file(
    snap: &Snapshot,
    c: &mut Client,
    r: &mut Req<'_>,
    uri: &[u8],
    file: File,
    meta: &Metadata,
    pre: bool,
) -> bool {
    let keep = swallow_body(c) && client_keep(c, r);
    super::pace::start(c, r, None);
    let size = meta.len();
    let v = Validators::for_file(meta.mtime(), size, r.conf.etag);
    // An error_page's file goes out with the error's status; nginx's not_modified
    // and range filters act on 200s only.
    let status = r.err_status.unwrap_or(200);
    let cond = if status == 200 {
        conditions(c)
    } else {
        Conditions::default()
    };
    let conf = r.conf;
    // An upstream's X-Accel-Redirect brought its Content-Type (nginx keeps it).
    let accel_type = r.accel_type.clone();
    let ctype = accel_type.as_deref().unwrap_or_else(|| content_type(conf, uri));
    match conditional::precondition(&cond, &v, r.conf.if_modified_since) {
        Precondition::Full => {}
        Precondition::NotModified => {
            let mut h = FileHead::new(&v, None, None, keep);
            h.precompressed = pre;
            let ok = write_head(c, r, 304, &h).await;
            return finish(snap, c, r, ok, keep).await;
        }
        Precondition::Failed => return finish_error(snap, c, r, 412).await,
    }
    let offered = gzip::Offered {
        status,
        content_type: ctype.as_bytes(),
        content_length: Some(size),
        encoded: pre,
    };
    let gz = gzip::decide(&r.conf.gzip, || gzip_asked(c), &offered);
    let vary = gz.vary(&r.conf.gzip) || (r.gzip_vary && r.conf.gzip.vary);
    if gz == Gzip::Compress {
        // The range filter sees no length: the whole file, compressed.
        return send_gzipped(snap, c, r, &file, &v, ctype, size).await;
    }
    // nginx answers a `.gz` of gzip_static whole, whatever Range asks.
    let ranged = if pre {
        RangeAnswer::Full
    } else {
        conditional::range(&cond, &v, size)
    };
    let (code, parts, ctype, range) = match ranged {
        RangeAnswer::Full => (status, vec![Part::whole(0, size)], Cow::Borrowed(ctype), None),
        RangeAnswer::Partial { start, end } => {
            let cr = format!("bytes {start}-{}/{size}", end - 1);
            (206, vec![Part::whole(start, end)], Cow::Borrowed(ctype), Some(cr))
        }
        RangeAnswer::Multi(ranges) => {
            let (parts, multi) = multipart(&ranges, ctype, size);
            (206, parts, Cow::Owned(multi), None)
        }
        RangeAnswer::Unsatisfiable => {
            let cr = format!("bytes */{size}");
            let page = crate::http::status::error_page(416).unwrap_or_default();
            let extra = Some(("Content-Range", cr.as_bytes()));
            let ok = send_simple(c, r, 416, "text/html", page.as_bytes(), extra, keep).await;
            return finish(snap, c, r, ok, keep).await;
        }
    };
    let len = parts.iter().map(Part::len).sum();
    let mut h = FileHead::new(&v, Some((&ctype, Some(len))), range.as_deref(), keep);
    h.accept_ranges = code == 200 && !pre;
    h.vary = vary;
    h.precompressed = pre;
    write_head_only(c, r, code, &h);
    let ok = if c.head.method() == Method::Head {
        flush(c, r).await
    } else {
        send_parts(c, r, &file, &parts).await
    };
    finish(snap, c, r, ok, keep && ok).await
}

/// A piece of a file response body: `lead` (a multipart part's head), then the
/// file's bytes `start..end`.
struct Part {
    lead: Vec<u8>,
    start: u64,
    end: u64,
}

impl Part {
    fn whole(start: u64, end: u64) -> Part {
        Part {
            lead: Vec::new(),
            start,
            end,
        }
    }

    fn len(&self) -> u64 {
        self.lead.len() as u64 + self.end - self.start
    }
}

/// The parts of a `multipart/byteranges` body as nginx writes it (a 20-digit
/// boundary, each part typed and ranged, the closing delimiter as a last part with
/// no bytes), and its Content-Type.
fn multipart(ranges: &[(u64, u64)], ctype: &str, size: u64) -> (Vec<Part>, String) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static BOUNDARY: AtomicU64 = AtomicU64::new(1);
    let b = format!("{:020}", BOUNDARY.fetch_add(1, Ordering::Relaxed));
    let mut parts: Vec<Part> = ranges
        .iter()
        .map(|&(start, end)| Part {
            lead: format!(
                "\r\n--{b}\r\nContent-Type: {ctype}\r\nContent-Range: bytes {start}-{}/{size}\r\n\r\n",
                end - 1
            )
            .into_bytes(),
            start,
            end,
        })
        .collect();
    parts.push(Part {
        lead: format!("\r\n--{b}--\r\n").into_bytes(),
        start: 0,
        end: 0,
    });
    (parts, format!("multipart/byteranges; boundary={b}"))
}

/// The whole file compressed: chunked to HTTP/1.1 and HTTP/2, close-delimited to
/// HTTP/1.0 (`gzip_http_version 1.0`).
#[allow(clippy::too_many_arguments)]
async fn send_gzipped(
    snap: &Snapshot,
    c: &mut Client,
    r: &mut Req<'_>,
    file: &File,
    v: &Validators,
    ctype: &str,
    size: u64,
) -> bool {
    let chunked = c.stream.is_h2() || (c.head.minor == 1 && r.conf.chunked_transfer_encoding);
    let keep = chunked && swallow_body(c) && client_keep(c, r);
    let is_head = c.head.method() == Method::Head;
    let mut h = FileHead::new(v, Some((ctype, None)), None, keep);
    h.vary = r.conf.gzip.vary;
    h.gzip = Some(chunked && !is_head);
    write_head_only(c, r, 200, &h);
    if is_head {
        let ok = flush(c, r).await;
        return finish(snap, c, r, ok, keep).await;
    }
    let mut enc = Some(gzip::Encoder::new(r.conf.gzip.level));
    let (mut data, mut z) = (Vec::new(), Vec::new());
    let mut out = std::mem::take(&mut c.out);
    let mut pos = 0u64;
    let mut ok = true;
    while let Some(mut e) = enc.take() {
        let want = ((size - pos) as usize).min(CHUNK);
        data.resize(want, 0);
        match read_full(file, &mut data, pos) {
            Ok(n) if n == want => pos += n as u64,
            _ => {
                log::crit(format_args!("file was truncated while sending it{}", Why(c, r)));
                ok = false;
                break;
            }
        }
        e.push(&data, &mut z);
        let last = pos == size;
        if last {
            e.finish(&mut z);
        } else {
            enc = Some(e);
        }
        if chunked {
            gzip::put_chunk(&mut out, &z);
            if last {
                out.extend_from_slice(b"0\r\n\r\n");
            }
        } else {
            out.extend_from_slice(&z);
        }
        z.clear();
        if out.len() >= CHUNK || last {
            match write_out(c, r, out).await {
                Some(b) => out = b,
                None => {
                    ok = false;
                    out = Vec::new();
                    break;
                }
            }
        }
    }
    c.out = out;
    finish(snap, c, r, ok, keep && ok).await
}

/// The request's condition headers.
fn conditions(c: &Client) -> Conditions<'_> {
    let h = |n| c.head.header(&c.buf, n);
    Conditions {
        if_modified_since: h("if-modified-since"),
        if_unmodified_since: h("if-unmodified-since"),
        if_none_match: h("if-none-match"),
        if_match: h("if-match"),
        range: h("range"),
        if_range: h("if-range"),
    }
}

/// The headers of a file response besides the status line's.
struct FileHead<'a> {
    v: &'a Validators,
    /// Content-Type and Content-Length (none on 304; no length: compressed).
    body: Option<(&'a str, Option<u64>)>,
    content_range: Option<&'a str>,
    accept_ranges: bool,
    keep: bool,
    vary: bool,
    /// Compressed (`Content-Encoding: gzip`, a weak ETag); `Some(true)`: chunked.
    gzip: Option<bool>,
    /// A `.gz` sent as it is (`Content-Encoding: gzip`, its own ETag).
    precompressed: bool,
}

impl<'a> FileHead<'a> {
    fn new(v: &'a Validators, body: Option<(&'a str, Option<u64>)>, cr: Option<&'a str>, keep: bool) -> Self {
        FileHead {
            v,
            body,
            content_range: cr,
            accept_ranges: false,
            keep,
            vary: false,
            gzip: None,
            precompressed: false,
        }
    }
}

/// Writes a bodiless file response (304); false on failure.
async fn write_head(c: &mut Client, r: &mut Req<'_>, code: u16, h: &FileHead<'_>) -> bool {
    write_head_only(c, r, code, h);
    flush(c, r).await
}

/// Builds the head in `c.out` in nginx's order: Server, Date, Content-Type,
/// Content-Length, Last-Modified, Connection, ETag, Accept-Ranges or Content-Range,
/// then `add_header`s.
fn write_head_only(c: &mut Client, r: &mut Req<'_>, code: u16, h: &FileHead<'_>) {
    let code = r.err_status.unwrap_or(code);
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    status_line(
        &mut out,
        code,
        crate::http::status::reason(code).as_bytes(),
        Own {
            server: true,
            date: true,
        },
    );
    if let Some((ctype, len)) = h.body {
        let _ = write!(out, "Content-Type: {ctype}\r\n");
        if let Some(len) = len {
            let _ = write!(out, "Content-Length: {len}\r\n");
        }
    }
    let _ = write!(out, "Last-Modified: {}\r\n", conditional::http_date(h.v.mtime));
    if h.gzip == Some(true) {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    out.extend_from_slice(if h.keep {
        b"Connection: keep-alive\r\n"
    } else {
        b"Connection: close\r\n"
    });
    if h.vary {
        out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
    }
    match (&h.v.etag, h.gzip) {
        (Some(e), Some(_)) => {
            let _ = write!(out, "ETag: {}\r\n", gzip::weak_etag(e));
        }
        (Some(e), None) => {
            let _ = write!(out, "ETag: {e}\r\n");
        }
        _ => {}
    }
    if let Some(cr) = h.content_range {
        let _ = write!(out, "Content-Range: {cr}\r\n");
    }
    if h.accept_ranges {
        out.extend_from_slice(b"Accept-Ranges: bytes\r\n");
    }
    if h.gzip.is_some() || h.precompressed {
        out.extend_from_slice(b"Content-Encoding: gzip\r\n");
    }
    write_expires(&mut out, r.conf, code, Some(h.v.mtime));
    write_add_headers(&mut out, c, r, code);
    out.extend_from_slice(b"\r\n");
    c.keep_head(crate::config::vars::needs::SENT_HEAD, &out);
    r.sent.status = code;
    r.sent.head_bytes = out.len() as u64;
    r.sent.bytes = out.len() as u64;
    c.out = out;
}

/// Sends what `c.out` holds.
async fn flush(c: &mut Client, r: &Req<'_>) -> bool {
    let out = std::mem::take(&mut c.out);
    match c.stream.write_all(out, r.conf.send_timeout).await {
        Ok(b) => {
            c.out = b;
            true
        }
        Err(_) => false,
    }
}

/// The head already in `c.out`, then the parts, in writes of about [`CHUNK`] bytes
/// (the first rides with the head).
async fn send_parts(c: &mut Client, r: &mut Req<'_>, file: &File, parts: &[Part]) -> bool {
    let mut out = std::mem::take(&mut c.out);
    for p in parts {
        out.extend_from_slice(&p.lead);
        let mut pos = p.start;
        while pos < p.end {
            let from = out.len();
            let want = ((p.end - pos) as usize).min(CHUNK);
            out.resize(from + want, 0);
            match read_full(file, &mut out[from..], pos) {
                Ok(n) if n == want => pos += n as u64,
                Ok(_) => {
                    log::crit(format_args!("file was truncated while sending it{}", Why(c, r)));
                    c.out = out;
                    return false;
                }
                Err(e) => {
                    log::crit(format_args!("pread() failed ({}){}", Errno(&e), Why(c, r)));
                    c.out = out;
                    return false;
                }
            }
            if out.len() >= CHUNK {
                out = match write_out(c, r, out).await {
                    Some(b) => b,
                    None => return false,
                };
            }
        }
    }
    if !out.is_empty() {
        out = match write_out(c, r, out).await {
            Some(b) => b,
            None => return false,
        };
    }
    c.out = out;
    true
}

/// Writes `out` (the head's bytes count once, in the first write) and counts it in
/// `$bytes_sent`; the emptied buffer back, `None` on failure.
async fn write_out(c: &Client, r: &mut Req<'_>, out: Vec<u8>) -> Option<Vec<u8>> {
    let n = out.len() as u64;
    let mut b = c.send_all(out, r.conf.send_timeout).await.ok()?;
    let first = r.sent.body_bytes == 0 && r.sent.bytes == r.sent.head_bytes;
    r.sent.body_bytes += if first { n - r.sent.head_bytes } else { n };
    r.sent.bytes = r.sent.head_bytes + r.sent.body_bytes;
    b.clear();
    Some(b)
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &File, buf: &mut [u8], mut pos: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], pos) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                pos += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn show(p: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(p)
}

/// `(errno: message)` as nginx prints a system error.
struct Errno<'a>(&'a io::Error);

impl fmt::Display for Errno<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.raw_os_error().unwrap_or(0);
        let msg = self.0.to_string();
        let msg = msg.split(" (os error").next().unwrap_or(&msg);
        write!(f, "{n}: {msg}")
    }
}

/// nginx's tail of a request's error line: client, server, request, host.
pub(super) struct Why<'a, 'b>(pub(super) &'a Client, pub(super) &'a Req<'b>);

impl fmt::Display for Why<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, r) = (self.0, self.1);
        write!(
            f,
            ", client: {}, server: {}, request: \"{} {} {}\"",
            c.peer.ip(),
            r.server.primary_name,
            String::from_utf8_lossy(c.head.method_span.get(&c.buf)),
            String::from_utf8_lossy(c.head.target.get(&c.buf)),
            crate::http::ctx::protocol(c.stream.is_h2(), c.head.minor),
        )?;
        if let Some(h) = c.head.header(&c.buf, "host") {
            write!(f, ", host: \"{}\"", String::from_utf8_lossy(h))?;
        }
        Ok(())
    }
}
