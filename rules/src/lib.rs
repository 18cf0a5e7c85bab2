//! sweep-rules: a Kafka consumer group that evaluates detection rules on
//! result rows and produces matches.
//!
//! - [`rule`]: the rule file format (TOML) and loading a directory of rules.
//! - [`condition`]: compiling a rule's SQL boolean expression into a matcher
//!   tree once, at load time, and evaluating it on a row.
//! - [`matcher`]: conditions compiled for speed: columns resolved to slots,
//!   literals converted once, LIKE and IN turned into fast matchers.
//! - [`row`]: a result record read once, borrowed, its columns in slots; each
//!   query's column names learnt in order (`row::shape`), so the next name is
//!   recognised by its bytes.
//! - [`by_query`]: what a worker keeps per query name (routes, column
//!   layouts), bounded.
//! - [`prefilter`]: one Aho-Corasick pass per column finds the rules worth
//!   trying on a row (those whose texts it holds).
//! - [`ruleset`]: the loaded rules, routed by the query they watch, turning a
//!   result row into matches.
//! - [`kinds`]: stateful rule kinds (threshold, indicator, new terms,
//!   sequence), one file each; [`pipeline`]: one worker's rule set and
//!   detectors, rows in, matches out.
//! - [`examples`]: rows inside rule files that must (not) match, run by
//!   `sweep-rules test DIR`.
//! - [`checkpoint`]: suppression windows and applied offsets kept across
//!   restarts.
//! - [`suppress`]: optional per-rule aggregation of repeated matches
//!   (first/last seen, count).
//! - [`integrity`]: checking scheduled runs' signed seals, so rows produced
//!   by anyone but the agent they name are reported; [`pins`]: the agents'
//!   keys as the controller pinned them in the coordination store.
//! - [`consumer`]: the consume → evaluate → produce → commit loop;
//!   [`outbox`]: a worker's matches on their way, and the offsets each
//!   batch may store once they are out; [`settle`]: what follows when they
//!   are (counts, suppression, checkpoint, offsets), and the drain before
//!   partitions are revoked; [`sender`]: the producer.
//! - [`config`]: the TOML configuration; [`cli`]: the command line, shared
//!   by the binary and the man page and completion generator
//!   (`examples/sweep-rules-docs.rs`).
//! - [`metrics`]: every metric, and the `/metrics` listener.
#![forbid(unsafe_code)]

pub mod by_query;
pub mod checkpoint;
pub mod cli;
pub mod condition;
pub mod config;
pub mod consumer;
pub mod error;
pub mod examples;
pub mod integrity;
pub mod kinds;
pub mod matcher;
pub mod metrics;
pub mod outbox;
pub mod pins;
pub mod pipeline;
pub mod prefilter;
pub mod row;
pub mod rule;
pub mod ruleset;
pub mod sender;
pub mod settle;
pub mod suppress;

pub use config::Config;
pub use error::RulesError;
pub use ruleset::RuleSet;
