//! The rule file format. A file holds one or more `[[rule]]` tables:
//!
//! ```toml
//! [[rule]]
//! id = "bash_outside_tcp"
//! title = "bash with a TCP connection to an outside address"
//! severity = "high"
//! # Which query's rows to watch: a name, or a pattern with `*`
//! # (`hunt:*` is every hunt, `*` everything).
//! query = "*"
//! # A SQL boolean expression over the row's columns.
//! condition = "name = 'bash' AND remote_address NOT LIKE '10.%' AND remote_port > 0"
//! # Optional: report a host's matching row once an hour, then a summary
//! # with first/last seen and the count.
//! suppress_for = "1h"
//! ```

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::RulesError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// A rule as written in a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    #[serde(default = "any_query")]
    pub query: String,
    pub condition: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Report a host's matching row once per this window ("1h"), then one
    /// summary with the count; absent: report every match.
    #[serde(default, with = "humantime_opt")]
    pub suppress_for: Option<Duration>,
}

mod humantime_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

fn any_query() -> String {
    "*".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

/// A rule ready to evaluate: its condition compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub query: String,
    pub condition: Condition,
    pub suppress_for: Option<Duration>,
}

impl Rule {
    pub fn compile(spec: RuleSpec) -> Result<Self, RulesError> {
        let condition = Condition::compile(&spec.condition).map_err(|reason| RulesError::Rule {
            id: spec.id.clone(),
            reason,
        })?;
        if spec.id.trim().is_empty() {
            return Err(RulesError::Rule {
                id: spec.id,
                reason: "empty id".into(),
            });
        }
        Ok(Self {
            id: spec.id,
            title: spec.title,
            severity: spec.severity,
            query: spec.query,
            condition,
            suppress_for: spec.suppress_for,
        })
    }
}

/// Parses one rule file's text.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Rule>, RulesError> {
    let file: RuleFile = toml::from_str(text).map_err(|e| RulesError::RuleFile {
        path: origin.to_string(),
        reason: e.to_string(),
    })?;
    file.rule
        .into_iter()
        .filter(|r| r.enabled)
        .map(Rule::compile)
        .collect()
}

/// Loads every `*.toml` file in `dir`, sorted by name. Any bad rule fails the
/// load: a detection silently missing is worse than a refusal to start.
pub fn load_dir(dir: &Path) -> Result<Vec<Rule>, RulesError> {
    let err = |reason: String| RulesError::RuleFile {
        path: dir.display().to_string(),
        reason,
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| err(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut rules = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| RulesError::RuleFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        rules.extend(parse(&text, &path.display().to_string())?);
    }
    let mut ids = std::collections::BTreeSet::new();
    for r in &rules {
        if !ids.insert(r.id.clone()) {
            return Err(RulesError::Rule {
                id: r.id.clone(),
                reason: "defined twice".into(),
            });
        }
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_bad_rules() {
        let rules = parse(
            r#"
[[rule]]
id = "a"
title = "A"
severity = "high"
condition = "name = 'bash'"

[[rule]]
id = "b"
title = "B"
severity = "low"
query = "hunt:*"
condition = "1 = 1"
enabled = false
"#,
            "t",
        )
        .unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].query, "*");
        let bad = parse(
            "[[rule]]\nid='x'\ntitle='x'\nseverity='high'\ncondition='name ='\n",
            "t",
        );
        assert!(bad.unwrap_err().to_string().contains("rule x"));
        let typo = parse(
            "[[rule]]\nid='x'\ntitle='x'\nseverity='high'\ncondtion='1=1'\n",
            "t",
        );
        assert!(typo.is_err());
    }
}
