//! Examples inside rule files, run by `sweep-rules test DIR`: rows (with
//! their times) fed to the rule alone, through the same pipeline the
//! consumer runs, and the number of matches they must raise.
//!
//! ```toml
//! [[rule.example]]
//! name = "bash calling out"          # shown when it fails
//! matches = 1                        # how many matches the rows raise
//! until = 600                        # optional: move the clock here after the rows
//! rows = [
//!   { time = 0, host = "web-1", query = "socks", columns = { name = "bash", remote_port = "443" } },
//!   { time = 5, columns = { name = "sshd" } },   # host web-1, query: the rule's, action added
//! ]
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::pipeline::Pipeline;
use crate::row::RowRecord;
use crate::rule::Rule;
use crate::ruleset::RuleSet;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    #[serde(default)]
    pub name: String,
    /// Matches the rows must raise (0: rows that must not match).
    pub matches: u64,
    /// Where to move the clock once the rows are in (unix seconds).
    #[serde(default)]
    pub until: Option<u64>,
    pub rows: Vec<ExampleRow>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleRow {
    /// The row's `unixTime`.
    pub time: u64,
    #[serde(default = "default_host")]
    pub host: String,
    /// Default: the rule's query when it names one, else `example`.
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default = "default_action")]
    pub action: String,
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
}

fn default_host() -> String {
    "web-1".into()
}

fn default_action() -> String {
    "added".into()
}

/// One example's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub rule: String,
    pub example: String,
    pub expected: u64,
    pub got: u64,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.expected == self.got
    }
}

/// Runs every example of every rule; one outcome each.
pub fn run(rules: &[Rule]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for rule in rules {
        // Examples never read or write a rule's real state.
        let mut rule = rule.clone();
        if let Some(nt) = rule.spec.new_terms.as_mut() {
            nt.state_file = None;
        }
        for (n, example) in rule.spec.example.iter().enumerate() {
            let set = Arc::new(RuleSet::new(vec![rule.clone()]));
            let mut pipeline = Pipeline::new(set);
            let query = if rule.query.contains('*') {
                "example".to_string()
            } else {
                rule.query.clone()
            };
            let mut got = 0;
            for r in &example.rows {
                let record = serde_json::json!({
                    "name": r.query.clone().unwrap_or_else(|| query.clone()),
                    "hostIdentifier": r.host,
                    "calendarTime": "",
                    "unixTime": r.time,
                    "columns": r.columns,
                    "action": r.action,
                })
                .to_string();
                got += pipeline.tick(r.time).len() as u64;
                if let Some(row) = RowRecord::parse(record.as_bytes()) {
                    got += pipeline.row(&row).map_or(0, |m| m.len() as u64);
                }
            }
            if let Some(until) = example.until {
                got += pipeline.tick(until).len() as u64;
            }
            out.push(Outcome {
                rule: rule.id.clone(),
                example: if example.name.is_empty() {
                    format!("example {}", n + 1)
                } else {
                    example.name.clone()
                },
                expected: example.matches,
                got,
            });
        }
    }
    out
}
