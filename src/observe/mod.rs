//! Observability: the error log and per-worker access logs ([`log`]).
pub mod counters;
pub mod log;
pub mod status;
