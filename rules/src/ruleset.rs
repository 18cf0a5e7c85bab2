//! The loaded rules, indexed by the query they watch so a row is tested only
//! against rules that can apply to it.

use std::collections::HashMap;

use sweep_proto::text::glob;
use sweep_proto::{MatchRecord, ResultRow};

use crate::rule::Rule;

pub struct RuleSet {
    /// Rules for one exact query name.
    exact: HashMap<String, Vec<usize>>,
    /// Rules with a `*` pattern, tested by pattern.
    patterned: Vec<usize>,
    rules: Vec<Rule>,
}

impl RuleSet {
    pub fn new(rules: Vec<Rule>) -> Self {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut patterned = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if r.query.contains('*') {
                patterned.push(i);
            } else {
                exact.entry(r.query.clone()).or_default().push(i);
            }
        }
        Self {
            exact,
            patterned,
            rules,
        }
    }

    /// The rule's suppression window, if it has one.
    pub fn suppress_for(&self, rule_id: &str) -> Option<std::time::Duration> {
        self.rules
            .iter()
            .find(|r| r.id == rule_id)
            .and_then(|r| r.suppress_for)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every match the row produces, in rule order.
    pub fn evaluate(&self, row: &ResultRow) -> Vec<MatchRecord> {
        let mut hits: Vec<usize> = self
            .exact
            .get(&row.name)
            .into_iter()
            .flatten()
            .copied()
            .chain(
                self.patterned
                    .iter()
                    .copied()
                    .filter(|i| glob(&self.rules[*i].query, &row.name)),
            )
            .filter(|i| self.rules[*i].condition.matches(&row.columns))
            .collect();
        hits.sort_unstable();
        hits.into_iter()
            .map(|i| {
                let r = &self.rules[i];
                MatchRecord {
                    rule_id: r.id.clone(),
                    title: r.title.clone(),
                    severity: r.severity.as_str().to_string(),
                    host: row.host_identifier.clone(),
                    query: row.name.clone(),
                    hunt_id: row.hunt_id.clone(),
                    row: row.columns.clone(),
                    first_seen: row.unix_time,
                    last_seen: row.unix_time,
                    count: 1,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule;
    use std::collections::BTreeMap;

    fn row(name: &str, cols: &[(&str, &str)]) -> ResultRow {
        ResultRow {
            name: name.into(),
            host_identifier: "web-1".into(),
            calendar_time: String::new(),
            unix_time: 42,
            epoch: 0,
            counter: 0,
            decorations: BTreeMap::new(),
            columns: cols
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            action: "snapshot".into(),
            hunt_id: Some("h1".into()),
            seq: None,
        }
    }

    #[test]
    fn dispatches_by_query_and_condition() {
        let rules = rule::parse(
            r#"
[[rule]]
id = "douge"
title = "user douge exists"
severity = "critical"
query = "hunt:*"
condition = "username = 'douge'"

[[rule]]
id = "only_sched"
title = "t"
severity = "low"
query = "pack_users"
condition = "username = 'douge'"
"#,
            "t",
        )
        .unwrap();
        let set = RuleSet::new(rules);
        let hits = set.evaluate(&row("hunt:h1", &[("username", "douge")]));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].rule_id, "douge");
        assert_eq!(hits[0].host, "web-1");
        assert_eq!(hits[0].severity, "critical");
        assert_eq!(
            set.evaluate(&row("pack_users", &[("username", "douge")]))
                .len(),
            1
        );
        assert!(set
            .evaluate(&row("hunt:h1", &[("username", "root")]))
            .is_empty());
        assert!(glob("hunt:*", "hunt:abc") && glob("*", "x") && !glob("a*c", "ab"));
    }
}
