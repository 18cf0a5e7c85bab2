//! The loaded rules, indexed by the query they watch so a row is tested only
//! against rules that can apply to it.

use std::collections::HashMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use sweep_proto::text::glob;
use sweep_proto::{MatchRecord, ResultRow};

use crate::kinds::{Alert, Kind};
use crate::matcher::{Columns, Matcher};
use crate::prefilter::Prefilter;
use crate::row::{RowRecord, RowView};
use crate::rule::Rule;

pub struct RuleSet {
    /// Rules for one exact query name.
    exact: HashMap<String, Vec<usize>>,
    /// Rules with a `*` pattern, tested by pattern.
    patterned: Vec<usize>,
    rules: Vec<Rule>,
    /// Every rule's condition, bound to `columns`.
    matchers: Vec<Matcher>,
    columns: Columns,
    /// Rules that can be true only when a column holds one of some texts
    /// ([`Matcher::required`]), by column and text.
    index: Vec<(usize, ByText)>,
    /// Whether each rule is in `index`.
    indexed: Vec<bool>,
    /// Rules tried only on rows holding one of their texts (not indexed
    /// ones); the rest are tried on every row of the queries they watch.
    prefilter: Prefilter,
    /// Each stateful rule's kind, bound to `columns` (None: `match`).
    kinds: Vec<Option<Arc<dyn Kind>>>,
    /// Rules whose kind could not be bound: never evaluated.
    broken: Vec<bool>,
}

/// Rule numbers by the text a column must hold.
type ByText = FxHashMap<Box<str>, Vec<usize>>;

/// The rules that watch one query: those always tried, and which are
/// members (for the indexed ones a row's values pick).
pub struct Route {
    always: Vec<usize>,
    member: Vec<bool>,
    /// Whether any rule watches the query.
    any: bool,
}

impl Clone for RuleSet {
    fn clone(&self) -> Self {
        Self::new(self.rules.clone())
    }
}

impl RuleSet {
    pub fn new(rules: Vec<Rule>) -> Self {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut patterned = Vec::new();
        let mut columns = Columns::default();
        let mut matchers = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            if r.query.contains('*') {
                patterned.push(i);
            } else {
                exact.entry(r.query.clone()).or_default().push(i);
            }
            matchers.push(Matcher::compile(r.condition.root(), &mut columns));
        }
        // Checked when the rule loaded (Rule::compile), so binding succeeds;
        // should it not, the rule is left out rather than let its condition
        // alone raise a match on every row it picks.
        let mut broken = vec![false; rules.len()];
        let kinds = rules
            .iter()
            .enumerate()
            .map(|(i, r)| match r.bind(&mut columns) {
                Ok(kind) => kind,
                Err(e) => {
                    tracing::error!(rule = %r.id, error = %e, "rule left out");
                    broken[i] = true;
                    None
                }
            })
            .collect();
        columns.finish();
        let mut index: Vec<(usize, ByText)> = Vec::new();
        let mut indexed = vec![false; rules.len()];
        for (i, m) in matchers.iter().enumerate() {
            let Some((col, texts)) = m.required() else {
                continue;
            };
            let at = match index.iter().position(|(c, _)| *c == col) {
                Some(at) => at,
                None => {
                    index.push((col, FxHashMap::default()));
                    index.len() - 1
                }
            };
            for text in texts {
                index[at].1.entry(text).or_default().push(i);
            }
            indexed[i] = true;
        }
        let prefilter = Prefilter::new(&matchers, &columns, |i| !indexed[i]);
        Self {
            exact,
            patterned,
            rules,
            matchers,
            columns,
            index,
            indexed,
            prefilter,
            kinds,
            broken,
        }
    }

    /// The rule's suppression: its window and what groups repeats.
    pub fn suppression(&self, rule_id: &str) -> Option<(std::time::Duration, &[String])> {
        let r = self.rules.iter().find(|r| r.id == rule_id)?;
        Some((r.suppress_for?, r.spec.suppress_by.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules that watch query `name` (a worker keeps these by name:
    /// [`crate::pipeline::Pipeline`]).
    pub fn route(&self, name: &str) -> Route {
        let mut member = vec![false; self.rules.len()];
        for i in self.exact.get(name).into_iter().flatten().copied().chain(
            self.patterned
                .iter()
                .copied()
                .filter(|i| glob(&self.rules[*i].query, name)),
        ) {
            member[i] = true;
        }
        let always = (0..self.rules.len())
            .filter(|&i| member[i] && !self.indexed[i] && !self.prefilter.gated(i))
            .collect();
        let any = member.iter().any(|m| *m);
        Route {
            always,
            member,
            any,
        }
    }

    /// The row's columns in this set's slots; None when a value a rule
    /// reads is not UTF-8.
    pub fn view<'a>(&'a self, row: &'a RowRecord<'a>) -> Option<RowView<'a>> {
        RowView::new(&self.columns, &row.columns)
    }

    /// Column names to slots, for reading a record straight into a view
    /// ([`RowRecord::read`]).
    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// The rules that pick this row, in rule order: those that watch its
    /// query, take its action, and whose condition it satisfies.
    pub fn picked(&self, row: &RowRecord<'_>, view: &RowView<'_>) -> Vec<usize> {
        let mut out = Vec::new();
        self.picked_into(row, view, &self.route(&row.name), &mut out);
        out
    }

    /// [`picked`](Self::picked) with the row's [`route`](Self::route) at
    /// hand, into `out` (cleared first), so a caller can reuse one buffer
    /// for every row.
    pub fn picked_into(
        &self,
        row: &RowRecord<'_>,
        view: &RowView<'_>,
        route: &Route,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        if !route.any {
            return;
        }
        out.extend_from_slice(&route.always);
        let always = out.len();
        for (col, by_text) in &self.index {
            if let Some(rules) = view.get(*col).and_then(|v| by_text.get(v)) {
                out.extend(rules.iter().filter(|&&i| route.member[i]));
            }
        }
        self.prefilter.admit(view, &route.member, out);
        if out.len() > always {
            out.sort_unstable();
            out.dedup();
        }
        out.retain(|&i| {
            if self.broken[i] {
                return false;
            }
            let action = &self.rules[i].action;
            (action.is_empty() || action.iter().any(|a| *a == row.action))
                && self.matchers[i].matches(view)
        });
    }

    pub fn rule(&self, i: usize) -> &Rule {
        &self.rules[i]
    }

    /// Rule `i`'s stateful kind; None for `match`.
    pub fn kind(&self, i: usize) -> Option<&Arc<dyn Kind>> {
        self.kinds[i].as_ref()
    }

    /// The match rule `i` raises for a row (a `match` rule's, or a stateful
    /// kind's alert).
    pub fn record(&self, i: usize, alert: Alert, hunt_id: Option<&str>) -> MatchRecord {
        let r = &self.rules[i];
        MatchRecord {
            rule_id: r.id.clone(),
            title: r.title.clone(),
            severity: r.severity.as_str().to_string(),
            host: alert.host,
            query: alert.query,
            hunt_id: hunt_id.map(str::to_string),
            row: alert.row,
            first_seen: alert.first_seen,
            last_seen: alert.last_seen,
            count: alert.count,
        }
    }

    /// Every match of the `match` rules a row record produces, in rule
    /// order (stateful kinds need a [`crate::pipeline::Pipeline`]). None
    /// when a value a rule reads is not UTF-8.
    pub fn evaluate_record(&self, row: &RowRecord<'_>) -> Option<Vec<MatchRecord>> {
        let view = self.view(row)?;
        let picked = self.picked(row, &view);
        Some(
            picked
                .into_iter()
                .filter(|&i| self.kinds[i].is_none())
                .map(|i| self.record(i, Alert::of_row(row), row.hunt_id.as_deref()))
                .collect(),
        )
    }

    /// Every match the row produces, in rule order.
    pub fn evaluate(&self, row: &ResultRow) -> Vec<MatchRecord> {
        let record = RowRecord::from_row(row);
        // Strings are UTF-8: the view always forms.
        self.evaluate_record(&record).unwrap_or_default()
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

    /// Rule sets of generated rules, many of them indexed by a required
    /// value or gated by the prefilter: every row gets exactly the matches
    /// the reference evaluator gives rule by rule.
    #[test]
    fn the_index_and_prefilter_skip_only_rules_that_cannot_match() {
        use crate::matcher::tests::{condition, Lcg, COLUMNS, VALUES};
        let mut g = Lcg(11);
        let mut checked = 0;
        for set in 0..200 {
            let mut text = String::new();
            for i in 0..30 {
                // Half the rules start with a required value.
                let lead = match g.next() % 4 {
                    0 => format!("name = '{}' AND ", g.pick(VALUES)),
                    1 => format!("path IN ('{}', '{}') AND ", g.pick(VALUES), g.pick(VALUES)),
                    _ => String::new(),
                };
                let cond = format!("{lead}({})", condition(&mut g, 1)).replace('"', "'");
                let query = g.pick(&["*", "procs", "hunt:*"]);
                text.push_str(&format!(
                    "[[rule]]\nid = \"r{i}\"\ntitle = \"t\"\nseverity = \"low\"\nquery = \"{query}\"\ncondition = \"\"\"{cond}\"\"\"\n"
                ));
            }
            let Ok(rules) = rule::parse(&text, "t") else {
                continue;
            };
            let set_ = RuleSet::new(rules.clone());
            for _ in 0..50 {
                let cols: Vec<(&str, &str)> = COLUMNS
                    .iter()
                    .filter(|c| **c != "missing")
                    .map(|c| (*c, g.pick(VALUES)))
                    .collect();
                let name = g.pick(&["procs", "hunt:x", "other"]);
                let r = row(name, &cols);
                let got: Vec<String> = set_.evaluate(&r).into_iter().map(|m| m.rule_id).collect();
                let want: Vec<String> = rules
                    .iter()
                    .filter(|ru| glob(&ru.query, name) && ru.condition.matches(&r.columns))
                    .map(|ru| ru.id.clone())
                    .collect();
                assert_eq!(got, want, "set {set} on {r:?}");
                checked += usize::from(!want.is_empty());
            }
        }
        assert!(checked > 1_000, "only {checked} rows matched anything");
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
