//! nginx's HTTP semantics over the sans-io protocol layer ([`crate::proto::h1`]):
//! URI normalization ([`uri`]), statuses and error pages ([`status`]), request
//! routing ([`route`]), variables ([`ctx`]), the upstream request head ([`forward`]),
//! request-body spooling ([`spool`]), and the per-connection driver that does the I/O
//! ([`proxy`]).

pub mod auth;
pub mod ctx;
pub mod downstream;
pub mod fail;
pub mod forward;
pub mod h2;
pub mod proxy;
pub mod route;
pub mod spool;
pub mod status;
pub mod uri;

pub use crate::proto::{HttpError, Side};
