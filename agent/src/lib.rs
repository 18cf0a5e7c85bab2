//! sweep-agent: the operating system as SQL, on every host.
//!
//! - [`tables`]: osquery-compatible tables over /proc and host files, one file
//!   per table, and the SQLite virtual-table glue ([`tables::vtab`]).
//! - [`events`]: event tables' sources and buffers (process connector,
//!   sock_diag, inotify), with osquery's event semantics.
//! - [`engine`]: the guarded, limited query runner every path goes through.
//! - [`output`]: result formatting for `query` and the shell.
//! - [`shell`]: the interactive console (`sweep-agent shell`).
//! - [`cli`]: the command line, shared by the binary and the man page and
//!   completion generator (`examples/sweep-agent-docs.rs`).
//! - [`config`]: the daemon's TOML configuration.
//! - [`daemon`]: the long-running agent: heartbeat and hunt watch on the
//!   coordination store (etcd or ZooKeeper), Kafka sink with disk spool,
//!   self-monitoring, `/metrics`.
//! - [`fleet`]: many virtual agents in one process, from the daemon's own
//!   code (`sweep-agent fleet`), to measure sweep at datacenter scale.
#![deny(unsafe_code)]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod events;
pub mod fleet;
pub mod output;
pub mod shell;
pub mod tables;

pub use config::Config;
pub use engine::{Engine, Limits, QueryError, QueryOutput};
pub use error::AgentError;
