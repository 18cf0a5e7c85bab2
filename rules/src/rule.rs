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

use std::sync::Arc;

use crate::condition::Condition;
use crate::kinds::{self, Kind, KindName};
use crate::matcher::Columns;
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
    /// Which rows the rule looks at (a SQL boolean expression over the
    /// row's columns); absent: every row of its query.
    #[serde(default)]
    pub condition: Option<String>,
    /// Only rows with one of these actions (`added`, `removed`,
    /// `snapshot`); absent: any.
    #[serde(default)]
    pub action: Vec<String>,
    /// `match` (default: every row the condition picks), `threshold`,
    /// `indicator`, `new_terms` or `sequence`, with its settings in the
    /// table of that name.
    #[serde(default)]
    pub kind: KindName,
    #[serde(default)]
    pub threshold: Option<kinds::threshold::Spec>,
    #[serde(default)]
    pub indicator: Option<kinds::indicator::Spec>,
    #[serde(default)]
    pub new_terms: Option<kinds::new_terms::Spec>,
    #[serde(default)]
    pub sequence: Option<kinds::sequence::Spec>,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Report a host's matching row once per this window ("1h"), then one
    /// summary with the count; absent: report every match.
    #[serde(default, with = "humantime_opt")]
    pub suppress_for: Option<Duration>,
    /// With `suppress_for`: what makes matches repeats of each other, as
    /// field names (`host` is the match's host), e.g. `["host", "username"]`;
    /// absent: the same host and the same row.
    #[serde(default)]
    pub suppress_by: Vec<String>,
    /// Rows that must raise matches and rows that must not, run by
    /// `sweep-rules test DIR` ([`crate::examples`]).
    #[serde(default)]
    pub example: Vec<crate::examples::Example>,
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
    pub action: Vec<String>,
    pub kind: KindName,
    pub suppress_for: Option<Duration>,
    /// The spec it came from: a stateful kind binds its settings when the
    /// rule set is built.
    pub spec: RuleSpec,
}

impl Rule {
    pub fn compile(spec: RuleSpec) -> Result<Self, RulesError> {
        let fail = |reason: String| RulesError::Rule {
            id: spec.id.clone(),
            reason,
        };
        if spec.id.trim().is_empty() {
            return Err(fail("empty id".into()));
        }
        let condition = match (&spec.condition, spec.kind) {
            (Some(text), _) => Condition::compile(text).map_err(fail)?,
            (None, KindName::Match) => return Err(fail("a match rule needs a condition".into())),
            (None, _) => Condition::compile("1 = 1").map_err(fail)?,
        };
        let tables = [
            (KindName::Threshold, spec.threshold.is_some(), "threshold"),
            (KindName::Indicator, spec.indicator.is_some(), "indicator"),
            (KindName::NewTerms, spec.new_terms.is_some(), "new_terms"),
            (KindName::Sequence, spec.sequence.is_some(), "sequence"),
        ];
        for (kind, present, table) in tables {
            if present != (spec.kind == kind) {
                return Err(fail(if present {
                    format!("[rule.{table}] belongs to kind = \"{table}\" rules")
                } else {
                    format!("kind = \"{table}\" needs a [rule.{table}] table")
                }));
            }
        }
        if !spec.suppress_by.is_empty() && spec.suppress_for.is_none() {
            return Err(fail("suppress_by needs suppress_for".into()));
        }
        for a in &spec.action {
            if !["added", "removed", "snapshot"].contains(&a.as_str()) {
                return Err(fail(format!(
                    "action {a:?}: expected added, removed or snapshot"
                )));
            }
        }
        let rule = Self {
            id: spec.id.clone(),
            title: spec.title.clone(),
            severity: spec.severity,
            query: spec.query.clone(),
            condition,
            action: spec.action.clone(),
            kind: spec.kind,
            suppress_for: spec.suppress_for,
            spec,
        };
        // A kind's settings are checked now, when the rules load.
        rule.bind(&mut Columns::default())?;
        Ok(rule)
    }

    /// Binds a stateful kind's settings to the rule set's columns; None for
    /// `match`.
    pub fn bind(&self, columns: &mut Columns) -> Result<Option<Arc<dyn Kind>>, RulesError> {
        let s = &self.spec;
        let bound = match self.kind {
            KindName::Match => return Ok(None),
            KindName::Threshold => s.threshold.as_ref().map(|k| k.bind(columns)),
            KindName::Indicator => s.indicator.as_ref().map(|k| k.bind(columns)),
            KindName::NewTerms => s.new_terms.as_ref().map(|k| k.bind(columns)),
            KindName::Sequence => s.sequence.as_ref().map(|k| k.bind(columns)),
        };
        match bound {
            Some(Ok(kind)) => Ok(Some(kind)),
            Some(Err(reason)) => Err(RulesError::Rule {
                id: self.id.clone(),
                reason,
            }),
            None => Err(RulesError::Rule {
                id: self.id.clone(),
                reason: "missing its kind's table".into(),
            }),
        }
    }
}

/// Parses one rule file's text.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Rule>, RulesError> {
    let file: RuleFile = toml::from_str(text).map_err(|e| RulesError::RuleFile {
        path: origin.to_string(),
        reason: e.to_string(),
    })?;
    // An indicator file named relative to its rule file is found beside it.
    let base = Path::new(origin)
        .parent()
        .filter(|d| Path::new(origin).is_file() && d.is_dir());
    file.rule
        .into_iter()
        .filter(|r| r.enabled)
        .map(|mut spec| {
            if let (Some(base), Some(ind)) = (base, spec.indicator.as_mut()) {
                for f in &mut ind.files {
                    if Path::new(f.as_str()).is_relative() {
                        *f = base.join(&*f).display().to_string();
                    }
                }
            }
            Rule::compile(spec)
        })
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
