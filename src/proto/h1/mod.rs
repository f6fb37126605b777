//! HTTP/1.x, sans-io: request heads ([`request`]), response heads ([`response`]),
//! body codecs ([`body`]: length, chunked, re-encoding), and the framing and
//! connection decisions ([`framing`]: how each body is framed towards each side,
//! keep-alive, pipelining, `Expect: 100-continue`, whether an upstream connection can
//! be reused).

pub mod body;
pub mod framing;
pub mod request;
pub mod response;
