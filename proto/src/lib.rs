//! sweep's shared vocabulary: what the agent, the controller and the rules
//! consumer must agree on, and nothing else.
//!
//! - [`keys`]: the etcd keyspace (`/sweep/agents/…`, `/sweep/hunts/…`, …).
//! - [`topics`]: Kafka topic names and the topic bootstrap.
//! - [`command`]: commands written to etcd: [`Hunt`] and its [`Targets`].
//! - [`schedule`]: scheduled queries and osquery-format packs.
//! - [`heartbeat`]: what an agent publishes under its lease.
//! - [`record`]: records on `sweep.results` (osquery result-log rows and hunt
//!   status) and on `sweep.matches`.
//! - [`guard`]: the query guard run before any SQL, on the controller and again
//!   on the agent.
//! - [`signing`]: ed25519 signatures on commands, and the keys agents trust.
//! - [`identity`]: each agent's own key, signing its answers with a digest
//!   of their rows; the controller's pins of those keys.
//! - [`schema`]: every table's name and columns (osquery's specs), one
//!   definition for agent and controller; [`functions`]: osquery's SQL
//!   functions, registered wherever a query is prepared.
//! - [`runtime`]: logging set-up and the shutdown signal for the binaries.
//! - [`settings`]: etcd and Kafka connection settings shared by all binaries.
//! - [`coordination`]: the coordination store (etcd or ZooKeeper) behind one
//!   interface: keys, prefixes followed without missing a change, liveness.
//! - [`time`]: osquery's time formats.
//! - [`text`]: plain-text result tables for terminals.
#![forbid(unsafe_code)]

pub mod command;
pub mod coordination;
pub mod error;
pub mod functions;
pub mod guard;
pub mod heartbeat;
pub mod identity;
pub mod keys;
pub mod record;
pub mod runtime;
pub mod schedule;
pub mod schema;
pub mod settings;
pub mod signing;
pub mod text;
pub mod time;
pub mod topics;

pub use command::{Hunt, Targets};
pub use coordination::{Backend, Coordination, CoordinationSettings, Store, ZooKeeperSettings};
pub use error::ProtoError;
pub use heartbeat::{Heartbeat, Resources};
pub use keys::Keyspace;
pub use record::{HuntStatus, MatchRecord, ResultRow, ResultsRecord, RunSeal};
pub use schedule::{Pack, PackQuery, ScheduledQuery};
pub use settings::{EtcdSettings, KafkaSettings};

/// The version every sweep binary reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
