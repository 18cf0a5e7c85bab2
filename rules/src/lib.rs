//! sweep-rules: a Kafka consumer group that evaluates detection rules on
//! result rows and produces matches.
//!
//! - [`rule`]: the rule file format (TOML) and loading a directory of rules.
//! - [`condition`]: compiling a rule's SQL boolean expression into a matcher
//!   tree once, at load time, and evaluating it on a row.
//! - [`matcher`]: conditions compiled for speed: columns resolved to slots,
//!   literals converted once, LIKE and IN turned into fast matchers.
//! - [`row`]: a result record read once, borrowed, its columns in slots.
//! - [`ruleset`]: the loaded rules, routed by the query they watch, turning a
//!   result row into matches.
//! - [`suppress`]: optional per-rule aggregation of repeated matches
//!   (first/last seen, count).
//! - [`integrity`]: checking scheduled runs' signed seals, so rows produced
//!   by anyone but the agent they name are reported; [`pins`]: the agents'
//!   keys as the controller pinned them in etcd.
//! - [`consumer`]: the consume → evaluate → produce → commit loop.
//! - [`config`]: the TOML configuration.
//! - [`metrics`]: every metric, and the `/metrics` listener.
#![forbid(unsafe_code)]

pub mod condition;
pub mod config;
pub mod consumer;
pub mod error;
pub mod integrity;
pub mod matcher;
pub mod metrics;
pub mod pins;
pub mod row;
pub mod rule;
pub mod ruleset;
pub mod suppress;

pub use config::Config;
pub use error::RulesError;
pub use ruleset::RuleSet;
