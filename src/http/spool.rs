//! A request body kept whole before it is sent upstream, in bounded memory.
//!
//! Where it sits: between reading the client body and writing the upstream request,
//! when the body is read whole first: `proxy_request_buffering on` (nginx's default),
//! and a chunked body for an HTTP/1.0 upstream (which needs a `Content-Length`)
//! whatever the setting. As nginx keeps such a body in `client_body_buffer_size` and
//! then a temporary file, ringx keeps the first `mem_max` bytes in memory and the
//! rest in an unnamed temporary file (`O_TMPFILE` in `client_body_temp_path`, else
//! `$TMPDIR`, else `/tmp`: nothing is left behind, whatever ends the process). A
//! spooled body can be read again from the start, so the request can go to the next
//! server.
//!
//! The file is written and read with plain blocking calls on the worker thread: they
//! go to the page cache, 64 KiB at a time.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};

/// Bytes kept in memory before the body moves to a temporary file.
pub const SPOOL_MEM: usize = 64 * 1024;

/// A body being collected, then read back in pieces.
#[derive(Default)]
pub struct Spool {
    mem: Vec<u8>,
    file: Option<File>,
    len: u64,
    /// `client_body_temp_path`; `None`: `$TMPDIR`.
    dir: Option<std::sync::Arc<std::path::Path>>,
    /// Bytes kept in memory before the body moves to a file.
    mem_max: usize,
}

impl Spool {
    /// A spool whose file, if it needs one, is made in `dir`, once it holds more than
    /// [`SPOOL_MEM`].
    pub fn in_dir(dir: Option<std::sync::Arc<std::path::Path>>) -> Spool {
        Spool::sized(dir, SPOOL_MEM)
    }

    /// A spool that keeps up to `mem_max` bytes in memory (`client_body_buffer_size`).
    pub fn sized(dir: Option<std::sync::Arc<std::path::Path>>, mem_max: usize) -> Spool {
        Spool {
            dir,
            mem_max,
            ..Spool::default()
        }
    }

    /// Whether the body has moved to its temporary file.
    pub fn on_file(&self) -> bool {
        self.file.is_some()
    }

    /// Appends `data`, moving everything to a temporary file once it outgrows memory.
    pub fn push(&mut self, data: &[u8]) -> io::Result<()> {
        if self.file.is_none() && self.mem.len() + data.len() > self.mem_max {
            let mut f = temp_file(self.dir.as_deref())?;
            f.write_all(&self.mem)?;
            self.mem = Vec::new();
            self.file = Some(f);
        }
        match &mut self.file {
            Some(f) => f.write_all(data)?,
            None => self.mem.extend_from_slice(data),
        }
        self.len += data.len() as u64;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole body, when it is in memory.
    pub fn in_memory(&self) -> Option<&[u8]> {
        self.file.is_none().then_some(self.mem.as_slice())
    }

    /// Appends up to `max` bytes of the body from `offset` to `out`; 0 at the end.
    pub fn read_at(&self, offset: u64, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let n = (self.len.saturating_sub(offset)).min(max as u64) as usize;
        match &self.file {
            None => out.extend_from_slice(&self.mem[offset as usize..offset as usize + n]),
            Some(f) => {
                let start = out.len();
                out.resize(start + n, 0);
                f.read_exact_at(&mut out[start..], offset)?;
            }
        }
        Ok(n)
    }
}

/// An unnamed file, readable and writable, gone when it is closed.
fn temp_file(dir: Option<&std::path::Path>) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir.map_or_else(std::env::temp_dir, std::path::Path::to_path_buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_stay_in_memory_and_large_ones_read_back_intact() {
        let mut small = Spool::in_dir(None);
        small.push(b"hello ").unwrap();
        small.push(b"world").unwrap();
        assert_eq!(small.in_memory(), Some(&b"hello world"[..]));

        let mut big = Spool::in_dir(None);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        for part in data.chunks(7_000) {
            big.push(part).unwrap();
        }
        assert_eq!(big.len(), data.len() as u64);
        assert!(big.in_memory().is_none(), "300 kB goes to the file");
        let mut back = Vec::new();
        let mut off = 0;
        loop {
            let n = big.read_at(off, &mut back, 65_536).unwrap();
            if n == 0 {
                break;
            }
            off += n as u64;
        }
        assert_eq!(back, data);
    }
}
