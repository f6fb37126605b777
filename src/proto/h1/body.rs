//! Chunked transfer coding, sans-io.
//!
//! Used on both body directions: client request bodies on their way upstream and
//! upstream responses on their way to the client. [`ChunkedDecoder::feed`] walks the
//! bytes it is given, validates the framing (hex sizes without overflow, CRLF after
//! each chunk, trailers) and reports where the data runs are and where the message
//! ends. The caller then either forwards the raw bytes it consumed unchanged (both
//! sides speak HTTP/1.1: no copy) or only the data runs (de-chunking), so the decoder
//! never copies. [`encode_chunk_header`] writes a chunk header for close-delimited
//! upstream bodies relayed to HTTP/1.1 clients. Request bodies are re-encoded
//! ([`reencode`]): only the data goes upstream, in chunks of ringx's making, without
//! the client's chunk extensions and trailers (which would bypass `proxy_set_header`
//! and the hop-by-hop rules).

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Size,
    SizeLws,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("invalid chunk size")]
    BadSize,
    #[error("chunk size too large")]
    TooLarge,
    #[error("invalid chunk framing")]
    BadFraming,
}

#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    st: St,
    size: u64,
    digits: u32,
    remaining: u64,
    /// Data bytes seen so far.
    pub total: u64,
    ext_len: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// What one call to [`ChunkedDecoder::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Bytes of the input that belong to the chunked body.
    pub consumed: usize,
    /// The final chunk and trailers are complete.
    pub done: bool,
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            st: St::Size,
            size: 0,
            digits: 0,
            remaining: 0,
            total: 0,
            ext_len: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.st == St::Done
    }

    /// Walks `input`; calls `data` with each run of payload bytes (ranges of `input`).
    pub fn feed(&mut self, input: &[u8], mut data: impl FnMut(Range<usize>)) -> Result<Fed, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let c = input[i];
            match self.st {
                St::Size => match hex(c) {
                    Some(v) => {
                        self.digits += 1;
                        if self.digits > 15 {
                            return Err(ChunkError::TooLarge);
                        }
                        self.size = self.size * 16 + v as u64;
                    }
                    None if self.digits == 0 => return Err(ChunkError::BadSize),
                    None => match c {
                        b'\r' => self.st = St::SizeLf,
                        b';' => self.st = St::Ext,
                        b' ' | b'\t' => self.st = St::SizeLws,
                        _ => return Err(ChunkError::BadSize),
                    },
                },
                St::SizeLws => match c {
                    b' ' | b'\t' => {}
                    b';' => self.st = St::Ext,
                    b'\r' => self.st = St::SizeLf,
                    _ => return Err(ChunkError::BadSize),
                },
                St::Ext => {
                    self.ext_len += 1;
                    if self.ext_len > 4096 {
                        return Err(ChunkError::BadFraming);
                    }
                    match c {
                        b'\r' => self.st = St::SizeLf,
                        b'\n' | 0 => return Err(ChunkError::BadFraming),
                        _ => {}
                    }
                }
                St::SizeLf => {
                    if c != b'\n' {
                        return Err(ChunkError::BadFraming);
                    }
                    self.ext_len = 0;
                    if self.size == 0 {
                        self.st = St::Trailer;
                    } else {
                        self.remaining = self.size;
                        self.st = St::Data;
                    }
                    self.size = 0;
                    self.digits = 0;
                }
                St::Data => {
                    let n = (input.len() - i).min(self.remaining as usize);
                    data(i..i + n);
                    self.total += n as u64;
                    self.remaining -= n as u64;
                    i += n;
                    if self.remaining == 0 {
                        self.st = St::DataCr;
                    }
                    continue;
                }
                St::DataCr => {
                    if c != b'\r' {
                        return Err(ChunkError::BadFraming);
                    }
                    self.st = St::DataLf;
                }
                St::DataLf => {
                    if c != b'\n' {
                        return Err(ChunkError::BadFraming);
                    }
                    self.st = St::Size;
                }
                St::Trailer => match c {
                    b'\r' => self.st = St::FinalLf,
                    _ => {
                        self.ext_len = 1;
                        self.st = St::TrailerLine;
                    }
                },
                St::TrailerLine => {
                    self.ext_len += 1;
                    if self.ext_len > 8192 {
                        return Err(ChunkError::BadFraming);
                    }
                    match c {
                        b'\r' => self.st = St::TrailerLf,
                        b'\n' | 0 => return Err(ChunkError::BadFraming),
                        _ => {}
                    }
                }
                St::TrailerLf => {
                    if c != b'\n' {
                        return Err(ChunkError::BadFraming);
                    }
                    self.st = St::Trailer;
                }
                St::FinalLf => {
                    if c != b'\n' {
                        return Err(ChunkError::BadFraming);
                    }
                    self.st = St::Done;
                    return Ok(Fed {
                        consumed: i + 1,
                        done: true,
                    });
                }
                St::Done => {
                    return Ok(Fed {
                        consumed: i,
                        done: true,
                    })
                }
            }
            i += 1;
        }
        Ok(Fed {
            consumed: i,
            done: self.st == St::Done,
        })
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Feeds `input` to `d` and appends the data it carries to `out` as chunks of its own
/// (no extensions), then the last chunk with no trailers once the body ends.
pub fn reencode(d: &mut ChunkedDecoder, input: &[u8], out: &mut Vec<u8>) -> Result<Fed, ChunkError> {
    let fed = d.feed(input, |rg| {
        if rg.is_empty() {
            return;
        }
        let mut room = [0u8; CHUNK_HEADER_ROOM];
        let at = encode_chunk_header(rg.len(), &mut room);
        out.extend_from_slice(&room[at..]);
        out.extend_from_slice(&input[rg]);
        out.extend_from_slice(b"\r\n");
    })?;
    if fed.done {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    Ok(fed)
}

/// Room kept in front of relayed data for a chunk header (`ffffffffffffffff\r\n`).
pub const CHUNK_HEADER_ROOM: usize = 18;

/// Writes `{len:x}\r\n` right-aligned into `room` (which is [`CHUNK_HEADER_ROOM`]
/// bytes); returns where the header starts.
pub fn encode_chunk_header(len: usize, room: &mut [u8]) -> usize {
    debug_assert_eq!(room.len(), CHUNK_HEADER_ROOM);
    let mut pos = room.len() - 2;
    room[pos] = b'\r';
    room[pos + 1] = b'\n';
    let mut n = len;
    loop {
        pos -= 1;
        room[pos] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    pos
}

#[cfg(test)]
mod tests {
    #[test]
    fn reencode_drops_extensions_and_trailers() {
        let mut d = super::ChunkedDecoder::new();
        let mut out = Vec::new();
        let input = b"5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-Trailer: evil\r\n\r\nGET";
        let fed = super::reencode(&mut d, input, &mut out).unwrap();
        assert!(fed.done);
        assert_eq!(&input[fed.consumed..], b"GET");
        assert_eq!(out, b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n");
        // Split anywhere, the data comes out the same.
        for cut in 1..input.len() - 3 {
            let mut d = super::ChunkedDecoder::new();
            let mut out = Vec::new();
            let a = super::reencode(&mut d, &input[..cut], &mut out).unwrap();
            let b = super::reencode(&mut d, &input[a.consumed..], &mut out).unwrap();
            assert!(b.done, "cut {cut}");
            let mut data = Vec::new();
            let mut dd = super::ChunkedDecoder::new();
            dd.feed(&out, |r| data.extend_from_slice(&out[r])).unwrap();
            assert_eq!(data, b"helloabc", "cut {cut}");
        }
    }

    use super::*;

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let end = (pos + step).min(input.len());
            let piece = &input[pos..end];
            let fed = d.feed(piece, |r| out.extend_from_slice(&piece[r]))?;
            pos += fed.consumed;
            if fed.done {
                return Ok((out, pos, true));
            }
        }
        Ok((out, pos, false))
    }

    #[test]
    fn decodes_in_any_split() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in 1..body.len() {
            let (out, consumed, done) = decode_all(body, step).unwrap();
            assert!(done);
            assert_eq!(out, b"hello world");
            assert_eq!(&body[consumed..], b"NEXT");
        }
    }

    #[test]
    fn rejects_bad_framing() {
        assert_eq!(decode_all(b"x\r\n", 10).unwrap_err(), ChunkError::BadSize);
        assert_eq!(decode_all(b"-1\r\n", 10).unwrap_err(), ChunkError::BadSize);
        assert_eq!(decode_all(b"5\r\nhelloXX", 10).unwrap_err(), ChunkError::BadFraming);
        assert_eq!(
            decode_all(b"ffffffffffffffff1\r\n", 30).unwrap_err(),
            ChunkError::TooLarge
        );
        assert_eq!(decode_all(b"5\nhello", 10).unwrap_err(), ChunkError::BadSize);
        assert_eq!(decode_all(b"5\r\nhello\n", 10).unwrap_err(), ChunkError::BadFraming);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_runs_stay_in_bounds() {
        let mut x: u64 = 0xDEAD_BEEF_1234_5678;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"0123456789abcdefABCDEF;=\r\n \t\x00xyz";
        for _ in 0..20_000 {
            let len = (rnd() % 64) as usize;
            let input: Vec<u8> = (0..len).map(|_| alphabet[(rnd() as usize) % alphabet.len()]).collect();
            let mut d = ChunkedDecoder::new();
            let mut pos = 0;
            while pos < input.len() {
                let step = 1 + (rnd() as usize) % 7;
                let piece = &input[pos..(pos + step).min(input.len())];
                match d.feed(piece, |r| assert!(r.end <= piece.len() && r.start <= r.end)) {
                    Ok(f) => {
                        assert!(f.consumed <= piece.len());
                        pos += f.consumed.max(1);
                        if f.done {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn chunk_header() {
        let mut room = [0u8; CHUNK_HEADER_ROOM];
        let s = encode_chunk_header(0x1a2b, &mut room);
        assert_eq!(&room[s..], b"1a2b\r\n");
        let s = encode_chunk_header(0, &mut room);
        assert_eq!(&room[s..], b"0\r\n");
    }
}
