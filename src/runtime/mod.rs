//! Process and threads: [`master`] (start-up, signals, reload, pid file, daemon) and
//! [`worker`] (one pinned tokio-uring runtime per core).
pub mod fault;
pub mod idle;
pub mod master;
pub mod privileges;
pub mod worker;
