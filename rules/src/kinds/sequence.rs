//! The `sequence` rule kind: ordered steps, joined by key fields, within a
//! span (Elastic EQL `sequence by … with maxspan`, Sigma temporal
//! correlation); or steps "not followed by" a row within the span.
//!
//! ```toml
//! [[rule]]
//! id = "download_then_chmod"
//! title = "curl, then chmod by the same process, within 5 minutes"
//! severity = "high"
//! kind = "sequence"
//! query = "*"                      # the queries whose rows the steps see
//! [rule.sequence]
//! by = ["host", "pid"]             # "host" is the row's host
//! within = "5m"
//! steps = [
//!   { query = "processes", condition = "name = 'curl'" },
//!   { query = "processes", condition = "name = 'chmod'" },
//! ]
//! # Optional: raise only when no such row follows within the span.
//! # not_followed_by = { query = "processes", condition = "name = 'rm'" }
//! ```
//!
//! The rule's own `condition` defaults to true for sequences: every row of
//! its `query` (and `action`) reaches the kind, and each step decides with
//! its own query pattern, condition and actions.
//!
//! How rows make sequences, per key (the values of the `by` fields; a row
//! missing one of them, NULL or empty, takes part in no sequence):
//!
//! - A row matching step 1 opens a partial sequence. A row matching step
//!   k+1 advances the partial sequence that has done steps 1..k, if its
//!   time is at or after that sequence's last step and at most `within`
//!   after its first step (the span is inclusive: a last step exactly
//!   `within` after the first still completes it).
//! - Per key and per stage, one partial sequence is kept: the one whose
//!   first step is the latest (it has the most time left). A row matching
//!   several steps is tried on the later steps first, so it never advances
//!   one sequence by two steps; it may advance one and open another.
//! - A partial sequence whose first step is more than `within` before the
//!   clock expires. At most `max_open` partial sequences are held per
//!   worker; beyond that the one with the oldest first step is dropped.
//! - When the last step completes the sequence, the rule raises a match;
//!   with `not_followed_by`, the completed sequence waits instead: a row
//!   matching `not_followed_by`, with the same key, arriving after it
//!   with a time from the last step's to `within` after it (inclusive)
//!   cancels it; otherwise it is raised once the clock (a tick, or any
//!   later row this rule sees) passes `within` after the last step. At most
//!   `max_open` such waiting sequences are held (the oldest are dropped,
//!   unreported).
//!
//! The match's row holds the key fields (`host`, `pid`, …) and every
//! step's row, its columns prefixed `step1.`, `step2.`, …; its host and
//! query are the last step's, first/last seen the first and last step's
//! times, count 1.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;
use sweep_proto::text::glob;

use super::{Alert, Detector, Event, Field, Kind};
use crate::condition::Condition;
use crate::matcher::{Columns, Matcher};

/// The `[rule.sequence]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Fields whose values the steps of one sequence share (`host` is the
    /// row's host, any other name a column): `["host", "pid"]`. Empty:
    /// every row of the worker is one key (rows of one host always are in
    /// one worker; include `host` unless a sequence may span hosts of a
    /// partition).
    #[serde(default)]
    pub by: Vec<String>,
    /// The longest span from the first step's time to the last one's
    /// (`"5m"`, whole seconds); with `not_followed_by`, also how long after
    /// the last step a cancelling row may come.
    pub within: String,
    /// The steps, in order: each `{ query = "…", condition = "…", action =
    /// […] }`. At least two (or one, with `not_followed_by`).
    pub steps: Vec<StepSpec>,
    /// Optional: raise only when no row matching this, with the same key,
    /// comes within `within` after the last step.
    #[serde(default)]
    pub not_followed_by: Option<StepSpec>,
    /// The most partial sequences a worker holds for the rule (and,
    /// separately, completed ones waiting on `not_followed_by`); beyond it
    /// the oldest are dropped. Default 100000.
    #[serde(default = "default_max_open")]
    pub max_open: usize,
}

/// One step of a sequence (or its `not_followed_by`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The query whose rows the step takes: a name or a pattern with `*`.
    /// Default `*` (any row the rule sees).
    #[serde(default = "any_query")]
    pub query: String,
    /// A SQL boolean expression over the row's columns, as a rule's
    /// condition. Absent: every row of the step's query.
    #[serde(default)]
    pub condition: Option<String>,
    /// Only rows with one of these actions (`added`, `removed`,
    /// `snapshot`); absent: any.
    #[serde(default)]
    pub action: Vec<String>,
}

fn default_max_open() -> usize {
    100_000
}

fn any_query() -> String {
    "*".into()
}

impl Spec {
    /// Checks the settings and gives each field a slot in `columns`.
    pub fn bind(&self, columns: &mut Columns) -> Result<Arc<dyn Kind>, String> {
        let within = humantime::parse_duration(&self.within)
            .map_err(|e| format!("sequence: within {:?}: {e}", self.within))?;
        if within.subsec_nanos() != 0 {
            return Err(format!(
                "sequence: within {:?}: must be whole seconds (rows' times are)",
                self.within
            ));
        }
        if self.steps.is_empty() || (self.steps.len() == 1 && self.not_followed_by.is_none()) {
            return Err(
                "sequence: needs at least two steps (or one step and not_followed_by)".into(),
            );
        }
        if self.max_open == 0 {
            return Err("sequence: max_open must be at least 1".into());
        }
        let mut by = Vec::with_capacity(self.by.len());
        for (i, name) in self.by.iter().enumerate() {
            if name.trim().is_empty() {
                return Err("sequence: by: empty field name".into());
            }
            if self.by[..i].contains(name) {
                return Err(format!("sequence: by: {name:?} named twice"));
            }
            by.push(Field::bind(name, columns));
        }
        let steps = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| s.compile(&format!("step {}", i + 1), columns))
            .collect::<Result<Vec<_>, _>>()?;
        let not_followed_by = self
            .not_followed_by
            .as_ref()
            .map(|s| s.compile("not_followed_by", columns))
            .transpose()?;
        Ok(Arc::new(SequenceKind(Arc::new(Sequence {
            names: self.by.clone(),
            by,
            within: within.as_secs(),
            steps,
            not_followed_by,
            max_open: self.max_open,
        }))))
    }
}

impl StepSpec {
    fn compile(&self, what: &str, columns: &mut Columns) -> Result<Step, String> {
        for a in &self.action {
            if !["added", "removed", "snapshot"].contains(&a.as_str()) {
                return Err(format!(
                    "sequence {what}: action {a:?}: expected added, removed or snapshot"
                ));
            }
        }
        let matcher = self
            .condition
            .as_deref()
            .map(|text| {
                Condition::compile(text)
                    .map(|c| Matcher::compile(c.root(), columns))
                    .map_err(|e| format!("sequence {what}: {e}"))
            })
            .transpose()?;
        Ok(Step {
            query: (self.query != "*").then(|| self.query.clone()),
            matcher,
            action: self.action.clone(),
        })
    }
}

#[derive(Debug)]
struct Step {
    /// None: any query.
    query: Option<String>,
    /// None: any row.
    matcher: Option<Matcher>,
    action: Vec<String>,
}

impl Step {
    fn matches(&self, e: &Event<'_>) -> bool {
        self.query.as_deref().is_none_or(|q| glob(q, e.query))
            && (self.action.is_empty() || self.action.iter().any(|a| a == e.action))
            && self.matcher.as_ref().is_none_or(|m| m.matches(e.view))
    }
}

/// The bound settings.
#[derive(Debug)]
struct Sequence {
    /// The `by` names, for the match's row.
    names: Vec<String>,
    by: Vec<Field>,
    within: u64,
    steps: Vec<Step>,
    not_followed_by: Option<Step>,
    max_open: usize,
}

impl Sequence {
    /// The row's key; None when a key field is NULL.
    fn key(&self, e: &Event<'_>) -> Option<Key> {
        self.by
            .iter()
            .map(|f| f.value(e).map(Box::from))
            .collect::<Option<Vec<Box<str>>>>()
            .map(Arc::from)
    }
}

/// The kind: the settings, shared by the rule's detectors.
#[derive(Debug)]
struct SequenceKind(Arc<Sequence>);

impl Kind for SequenceKind {
    fn detector(&self) -> Box<dyn Detector> {
        Box::new(SequenceDetector::new(self.0.clone()))
    }
}

/// A key's values, in `by` order.
type Key = Arc<[Box<str>]>;

/// A sequence whose first steps are done.
#[derive(Debug)]
struct Partial {
    serial: u64,
    first: u64,
    last: u64,
    /// Each done step's row.
    rows: Vec<BTreeMap<String, String>>,
}

/// A completed sequence waiting for its `not_followed_by` span to pass.
#[derive(Debug)]
struct Waiting {
    key: Key,
    alert: Alert,
}

/// One worker's sequences of one rule.
struct SequenceDetector {
    seq: Arc<Sequence>,
    /// Per key, per stage k (steps 1..=k+1 done), the partial sequence.
    open: HashMap<Key, Vec<Option<Partial>>>,
    /// The partial sequences by (first step's time, serial): oldest first,
    /// for expiry and for dropping beyond `max_open`.
    ages: BTreeMap<(u64, u64), Key>,
    /// Completed sequences by (deadline, serial), and their serials by key.
    waiting: BTreeMap<(u64, u64), Waiting>,
    waiting_by_key: HashMap<Key, Vec<(u64, u64)>>,
    serial: u64,
}

impl SequenceDetector {
    fn new(seq: Arc<Sequence>) -> Self {
        Self {
            seq,
            open: HashMap::new(),
            ages: BTreeMap::new(),
            waiting: BTreeMap::new(),
            waiting_by_key: HashMap::new(),
            serial: 0,
        }
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Removes the partial sequence `serial` of `key` (after its age entry
    /// is gone).
    fn remove_partial(&mut self, key: &Key, serial: u64) {
        if let Some(stages) = self.open.get_mut(key) {
            for s in stages.iter_mut() {
                if s.as_ref().is_some_and(|p| p.serial == serial) {
                    *s = None;
                }
            }
            if stages.iter().all(Option::is_none) {
                self.open.remove(key);
            }
        }
    }

    /// Puts `p` at `stage` of `key`, unless the one there started later.
    fn place(&mut self, key: &Key, stage: usize, p: Partial) {
        let stages = self
            .open
            .entry(key.clone())
            .or_insert_with(|| (0..self.seq.steps.len() - 1).map(|_| None).collect());
        let slot = &mut stages[stage];
        match slot {
            Some(old) if old.first > p.first => {
                self.ages.remove(&(p.first, p.serial));
            }
            _ => {
                if let Some(old) = slot.replace(p) {
                    self.ages.remove(&(old.first, old.serial));
                }
            }
        }
    }

    /// Row `e`, with key `key`, matches step `i`.
    fn step(&mut self, i: usize, key: &Key, e: &Event<'_>, out: &mut Vec<Alert>) {
        let last = self.seq.steps.len() - 1;
        let partial = if i == 0 {
            let serial = self.next_serial();
            Partial {
                serial,
                first: e.time,
                last: e.time,
                rows: vec![(e.columns)()],
            }
        } else {
            let within = self.seq.within;
            let Some(stages) = self.open.get_mut(key) else {
                return;
            };
            let fits = stages[i - 1]
                .as_ref()
                .is_some_and(|p| p.last <= e.time && e.time - p.first <= within);
            if !fits {
                return;
            }
            let Some(mut p) = stages[i - 1].take() else {
                return;
            };
            if stages.iter().all(Option::is_none) {
                self.open.remove(key);
            }
            p.last = e.time;
            p.rows.push((e.columns)());
            p
        };
        if i < last {
            if i == 0 {
                self.ages
                    .insert((partial.first, partial.serial), key.clone());
            }
            self.place(key, i, partial);
            while self.ages.len() > self.seq.max_open {
                if let Some(((_, serial), k)) = self.ages.pop_first() {
                    self.remove_partial(&k, serial);
                }
            }
        } else {
            if i > 0 {
                self.ages.remove(&(partial.first, partial.serial));
            }
            self.complete(key, partial, e, out);
        }
    }

    fn complete(&mut self, key: &Key, p: Partial, e: &Event<'_>, out: &mut Vec<Alert>) {
        let mut row: BTreeMap<String, String> = self
            .seq
            .names
            .iter()
            .cloned()
            .zip(key.iter().map(|v| v.to_string()))
            .collect();
        for (n, r) in p.rows.into_iter().enumerate() {
            for (c, v) in r {
                row.insert(format!("step{}.{c}", n + 1), v);
            }
        }
        let alert = Alert {
            host: e.host.to_string(),
            query: e.query.to_string(),
            row,
            first_seen: p.first,
            last_seen: p.last,
            count: 1,
        };
        if self.seq.not_followed_by.is_none() {
            out.push(alert);
            return;
        }
        let at = (p.last.saturating_add(self.seq.within), p.serial);
        self.waiting_by_key.entry(key.clone()).or_default().push(at);
        self.waiting.insert(
            at,
            Waiting {
                key: key.clone(),
                alert,
            },
        );
        while self.waiting.len() > self.seq.max_open {
            if let Some((at, w)) = self.waiting.pop_first() {
                self.unlist_waiting(&w.key, at);
            }
        }
    }

    fn unlist_waiting(&mut self, key: &Key, at: (u64, u64)) {
        if let Some(list) = self.waiting_by_key.get_mut(key) {
            list.retain(|x| *x != at);
            if list.is_empty() {
                self.waiting_by_key.remove(key);
            }
        }
    }

    /// Raises the completed sequences whose span ended before `now`.
    fn raise_due(&mut self, now: u64, out: &mut Vec<Alert>) {
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 >= now {
                break;
            }
            let (at, w) = entry.remove_entry();
            self.unlist_waiting(&w.key, at);
            out.push(w.alert);
        }
    }

    /// A `not_followed_by` row with `key` at `time` cancels the completed
    /// sequences it follows within their span.
    fn cancel(&mut self, key: &Key, time: u64) {
        let Some(list) = self.waiting_by_key.get_mut(key) else {
            return;
        };
        let waiting = &mut self.waiting;
        list.retain(|at| {
            let follows = waiting
                .get(at)
                .is_some_and(|w| w.alert.last_seen <= time && time <= at.0);
            if follows {
                waiting.remove(at);
            }
            !follows
        });
        if list.is_empty() {
            self.waiting_by_key.remove(key);
        }
    }
}

impl Detector for SequenceDetector {
    fn observe(&mut self, e: &Event<'_>, out: &mut Vec<Alert>) {
        // A later row's time passing a span raises what waited on it.
        self.raise_due(e.time, out);
        let seq = self.seq.clone();
        let cancels = seq.not_followed_by.as_ref().is_some_and(|s| s.matches(e));
        let mut matched = seq
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.matches(e))
            .map(|(i, _)| i)
            .peekable();
        if !cancels && matched.peek().is_none() {
            return;
        }
        let Some(key) = seq.key(e) else {
            return;
        };
        // Cancel first: the row that completes a sequence does not also
        // cancel it.
        if cancels {
            self.cancel(&key, e.time);
        }
        let matched: Vec<usize> = matched.collect();
        for &i in matched.iter().rev() {
            self.step(i, &key, e, out);
        }
    }

    fn tick(&mut self, now: u64, out: &mut Vec<Alert>) {
        let within = self.seq.within;
        while let Some((&(first, serial), _)) = self.ages.first_key_value() {
            if first.saturating_add(within) >= now {
                break;
            }
            if let Some((_, key)) = self.ages.pop_first() {
                self.remove_partial(&key, serial);
            }
        }
        self.raise_due(now, out);
    }

    fn size(&self) -> usize {
        self.ages.len() + self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Pipeline;
    use crate::ruleset::RuleSet;
    use sweep_proto::MatchRecord;

    fn rules(sequence: &str) -> Vec<crate::rule::Rule> {
        let text = format!(
            "[[rule]]\nid = \"s\"\ntitle = \"S\"\nseverity = \"high\"\nkind = \"sequence\"\n\
             [rule.sequence]\n{sequence}"
        );
        crate::rule::parse(&text, "t").unwrap()
    }

    fn pipeline(sequence: &str) -> Pipeline {
        Pipeline::new(Arc::new(RuleSet::new(rules(sequence))))
    }

    fn row(
        p: &mut Pipeline,
        time: u64,
        host: &str,
        query: &str,
        columns: &[(&str, &str)],
    ) -> Vec<MatchRecord> {
        let columns: BTreeMap<&str, &str> = columns.iter().copied().collect();
        p.feed(query, host, time, serde_json::json!(columns))
    }

    const CURL_CHMOD: &str = r#"
by = ["host", "pid"]
within = "5m"
steps = [
  { query = "processes", condition = "name = 'curl'" },
  { query = "processes", condition = "name = 'chmod'" },
]
"#;

    #[test]
    fn steps_in_order_with_the_same_keys_within_the_span() {
        let mut p = pipeline(CURL_CHMOD);
        let curl = [("name", "curl"), ("pid", "7"), ("path", "/usr/bin/curl")];
        let chmod = [("name", "chmod"), ("pid", "7")];
        assert!(row(&mut p, 100, "web-1", "processes", &curl).is_empty());
        assert_eq!(p.state(), 1);
        let m = row(&mut p, 160, "web-1", "processes", &chmod);
        assert_eq!(m.len(), 1);
        let m = &m[0];
        assert_eq!((m.first_seen, m.last_seen, m.count), (100, 160, 1));
        assert_eq!((m.host.as_str(), m.query.as_str()), ("web-1", "processes"));
        let want: BTreeMap<String, String> = [
            ("host", "web-1"),
            ("pid", "7"),
            ("step1.name", "curl"),
            ("step1.pid", "7"),
            ("step1.path", "/usr/bin/curl"),
            ("step2.name", "chmod"),
            ("step2.pid", "7"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(m.row, want);
        assert_eq!(p.state(), 0, "a completed sequence is closed");
        // Once only: the sequence was consumed.
        assert!(row(&mut p, 170, "web-1", "processes", &chmod).is_empty());

        // Wrong order: chmod before curl.
        let mut p = pipeline(CURL_CHMOD);
        assert!(row(&mut p, 100, "web-1", "processes", &chmod).is_empty());
        assert!(row(&mut p, 110, "web-1", "processes", &curl).is_empty());
        assert_eq!(p.state(), 1);

        // Other keys: another pid, another host, a missing pid.
        let mut p = pipeline(CURL_CHMOD);
        row(&mut p, 100, "web-1", "processes", &curl);
        assert!(row(
            &mut p,
            101,
            "web-1",
            "processes",
            &[("name", "chmod"), ("pid", "8")]
        )
        .is_empty());
        assert!(row(&mut p, 102, "web-2", "processes", &chmod).is_empty());
        assert!(row(&mut p, 103, "web-1", "processes", &[("name", "chmod")]).is_empty());
        // Another query does not make the step.
        assert!(row(&mut p, 104, "web-1", "process_events", &chmod).is_empty());
        assert_eq!(row(&mut p, 105, "web-1", "processes", &chmod).len(), 1);

        // A step earlier than the step before it (out of order rows).
        let mut p = pipeline(CURL_CHMOD);
        row(&mut p, 100, "web-1", "processes", &curl);
        assert!(row(&mut p, 99, "web-1", "processes", &chmod).is_empty());
        // At the same second is in order.
        assert_eq!(row(&mut p, 100, "web-1", "processes", &chmod).len(), 1);
    }

    #[test]
    fn the_span_is_inclusive_and_partial_sequences_expire() {
        let curl = [("name", "curl"), ("pid", "7")];
        let chmod = [("name", "chmod"), ("pid", "7")];
        // Exactly `within` (300 s) after the first step: still completes.
        let mut p = pipeline(CURL_CHMOD);
        row(&mut p, 1000, "web-1", "processes", &curl);
        assert!(p.tick(1300).is_empty());
        assert_eq!(p.state(), 1, "not expired at exactly within");
        assert_eq!(row(&mut p, 1300, "web-1", "processes", &chmod).len(), 1);
        // One second later: not, even before a tick expired it.
        let mut p = pipeline(CURL_CHMOD);
        row(&mut p, 1000, "web-1", "processes", &curl);
        assert!(row(&mut p, 1301, "web-1", "processes", &chmod).is_empty());
        // The tick past the span drops it.
        assert!(p.tick(1301).is_empty());
        assert_eq!(p.state(), 0);

        // Three steps: the span is from the first to the last.
        let three = r#"
by = ["host"]
within = "10s"
steps = [{ condition = "n = 'a'" }, { condition = "n = 'b'" }, { condition = "n = 'c'" }]
"#;
        let mut p = pipeline(three);
        row(&mut p, 0, "h", "q", &[("n", "a")]);
        row(&mut p, 5, "h", "q", &[("n", "b")]);
        assert!(row(&mut p, 11, "h", "q", &[("n", "c")]).is_empty());
        let mut p = pipeline(three);
        row(&mut p, 0, "h", "q", &[("n", "a")]);
        assert!(row(&mut p, 2, "h", "q", &[("n", "c")]).is_empty());
        row(&mut p, 5, "h", "q", &[("n", "b")]);
        assert_eq!(p.state(), 1, "advanced, not duplicated");
        let m = row(&mut p, 10, "h", "q", &[("n", "c")]);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].first_seen, m[0].last_seen), (0, 10));
        assert_eq!(m[0].row["step2.n"], "b");
        // A newer first step replaces an older one at the same stage: it
        // has more time left.
        let mut p = pipeline(three);
        row(&mut p, 0, "h", "q", &[("n", "a")]);
        row(&mut p, 8, "h", "q", &[("n", "a")]);
        row(&mut p, 9, "h", "q", &[("n", "b")]);
        let m = row(&mut p, 15, "h", "q", &[("n", "c")]);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].first_seen, 8);
    }

    #[test]
    fn a_row_matching_several_steps_advances_one_sequence_by_one_step() {
        // "Two curls by one host within a minute": each curl completes the
        // pair the previous one opened, and opens the next.
        let mut p = pipeline(
            r#"
by = ["host"]
within = "1m"
steps = [{ condition = "name = 'curl'" }, { condition = "name = 'curl'" }]
"#,
        );
        let curl = [("name", "curl")];
        assert!(row(&mut p, 0, "h", "q", &curl).is_empty());
        let m = row(&mut p, 10, "h", "q", &curl);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].first_seen, m[0].last_seen), (0, 10));
        let m = row(&mut p, 20, "h", "q", &curl);
        assert_eq!((m[0].first_seen, m[0].last_seen), (10, 20));
        assert_eq!(p.state(), 1);
    }

    const NOT_FOLLOWED: &str = r#"
by = ["host", "user"]
within = "60s"
steps = [{ query = "logins", condition = "result = 'fail'" }]
not_followed_by = { query = "logins", condition = "result = 'ok'" }
"#;

    #[test]
    fn not_followed_by_raises_only_when_nothing_follows() {
        let fail = [("result", "fail"), ("user", "bob")];
        let ok = [("result", "ok"), ("user", "bob")];
        // Nothing follows: raised by the tick past the span, not at it.
        let mut p = pipeline(NOT_FOLLOWED);
        assert!(row(&mut p, 100, "h", "logins", &fail).is_empty());
        assert_eq!(p.state(), 1);
        assert!(p.tick(160).is_empty());
        let m = p.tick(161);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].first_seen, m[0].last_seen, m[0].count), (100, 100, 1));
        assert_eq!(m[0].row["user"], "bob");
        assert_eq!(m[0].row["step1.result"], "fail");
        assert_eq!(p.state(), 0);
        assert!(p.tick(1000).is_empty(), "once");

        // Followed within the span (at its very end): never raised.
        let mut p = pipeline(NOT_FOLLOWED);
        row(&mut p, 100, "h", "logins", &fail);
        assert!(row(&mut p, 160, "h", "logins", &ok).is_empty());
        assert!(p.tick(10_000).is_empty());
        assert_eq!(p.state(), 0);

        // Followed, but by another user's or host's row, or too late.
        let mut p = pipeline(NOT_FOLLOWED);
        row(&mut p, 100, "h", "logins", &fail);
        row(
            &mut p,
            110,
            "h",
            "logins",
            &[("result", "ok"), ("user", "eve")],
        );
        row(&mut p, 120, "h2", "logins", &ok);
        assert_eq!(p.tick(161).len(), 1);
        let mut p = pipeline(NOT_FOLLOWED);
        row(&mut p, 100, "h", "logins", &fail);
        // A later row's time passing the span raises it, before the row
        // itself counts.
        let m = row(&mut p, 161, "h", "logins", &ok);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].last_seen, 100);

        // A following row earlier than the step (out of order) does not
        // cancel it.
        let mut p = pipeline(NOT_FOLLOWED);
        row(&mut p, 100, "h", "logins", &fail);
        row(&mut p, 99, "h", "logins", &ok);
        assert_eq!(p.tick(161).len(), 1);

        // Two failures: each waits on its own span; one success cancels
        // both (it follows both within their spans).
        let mut p = pipeline(NOT_FOLLOWED);
        row(&mut p, 100, "h", "logins", &fail);
        row(&mut p, 130, "h", "logins", &fail);
        assert_eq!(p.state(), 2);
        row(&mut p, 150, "h", "logins", &ok);
        assert!(p.tick(1000).is_empty());
        // ... and a success between them cancels only the first.
        let mut p = pipeline(NOT_FOLLOWED);
        row(&mut p, 100, "h", "logins", &fail);
        row(&mut p, 110, "h", "logins", &ok);
        row(&mut p, 130, "h", "logins", &fail);
        assert!(p.tick(190).is_empty());
        let m = p.tick(191);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].first_seen, 130);
    }

    #[test]
    fn steps_then_not_followed_by() {
        let mut p = pipeline(
            r#"
by = ["host"]
within = "30s"
steps = [{ condition = "e = 'stop'" }, { condition = "e = 'disable'" }]
not_followed_by = { condition = "e = 'start'" }
"#,
        );
        row(&mut p, 0, "h", "q", &[("e", "stop")]);
        // A following row before the steps complete does not count.
        row(&mut p, 1, "h", "q", &[("e", "start")]);
        row(&mut p, 20, "h", "q", &[("e", "disable")]);
        assert!(p.tick(50).is_empty(), "waits 30 s after the last step");
        let m = p.tick(51);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].first_seen, m[0].last_seen), (0, 20));
        assert_eq!(m[0].row["step2.e"], "disable");
    }

    #[test]
    fn open_sequences_are_bounded_oldest_dropped() {
        let mut p = pipeline(&format!("{CURL_CHMOD}max_open = 2\n"));
        for (t, pid) in [(100, "1"), (101, "2"), (102, "3")] {
            row(
                &mut p,
                t,
                "h",
                "processes",
                &[("name", "curl"), ("pid", pid)],
            );
        }
        assert_eq!(p.state(), 2);
        assert!(row(
            &mut p,
            110,
            "h",
            "processes",
            &[("name", "chmod"), ("pid", "1")]
        )
        .is_empty());
        assert_eq!(
            row(
                &mut p,
                110,
                "h",
                "processes",
                &[("name", "chmod"), ("pid", "2")]
            )
            .len(),
            1
        );
        assert_eq!(
            row(
                &mut p,
                110,
                "h",
                "processes",
                &[("name", "chmod"), ("pid", "3")]
            )
            .len(),
            1
        );
        assert_eq!(p.state(), 0);
    }

    #[test]
    fn bad_settings_are_refused_at_load() {
        let parse = |body: &str| {
            crate::rule::parse(
                &format!(
                    "[[rule]]\nid = \"s\"\ntitle = \"S\"\nseverity = \"high\"\nkind = \"sequence\"\n\
                     [rule.sequence]\n{body}"
                ),
                "t",
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        let ok =
            "within = \"1m\"\nsteps = [{ condition = \"a = 1\" }, { condition = \"b = 1\" }]\n";
        assert_eq!(parse(ok), Ok(()));
        for (body, says) in [
            (
                "steps = [{ condition = \"a = 1\" }, { condition = \"b = 1\" }]\n",
                "within",
            ),
            ("within = \"soon\"\nsteps = [{}, {}]\n", "within \"soon\""),
            ("within = \"1500ms\"\nsteps = [{}, {}]\n", "whole seconds"),
            (
                "within = \"1m\"\nsteps = [{ condition = \"a = 1\" }]\n",
                "two steps",
            ),
            ("within = \"1m\"\nsteps = []\n", "two steps"),
            (
                "within = \"1m\"\nsteps = [{ condition = \"a = 1\" }, { condition = \"b =\" }]\n",
                "step 2: cannot parse condition",
            ),
            (
                "within = \"1m\"\nsteps = [{}, { action = [\"gone\"] }]\n",
                "step 2: action \"gone\"",
            ),
            (
                "within = \"1m\"\nsteps = [{}]\nnot_followed_by = { condition = \"(\" }\n",
                "not_followed_by: cannot parse",
            ),
            (
                "within = \"1m\"\nsteps = [{}, {}]\nby = [\"pid\", \"pid\"]\n",
                "twice",
            ),
            (
                "within = \"1m\"\nsteps = [{}, {}]\nmax_open = 0\n",
                "max_open",
            ),
            (
                "within = \"1m\"\nsteps = [{}, {}]\nspan = \"1m\"\n",
                "unknown field",
            ),
            (
                "within = \"1m\"\nsteps = [{ conditon = \"a = 1\" }, {}]\n",
                "unknown field",
            ),
        ] {
            let err = parse(body).expect_err(body);
            assert!(err.contains(says), "{body}: {err}");
            assert!(
                err.contains("rule s") || err.contains("rule file t"),
                "{err}"
            );
        }
    }

    #[test]
    fn examples_in_rule_files_run() {
        let rules = crate::rule::parse(
            r#"
[[rule]]
id = "download_then_chmod"
title = "curl then chmod by the same process within 5 minutes"
severity = "high"
kind = "sequence"
query = "processes"
[rule.sequence]
by = ["host", "pid"]
within = "5m"
steps = [
  { condition = "name = 'curl'" },
  { condition = "name = 'chmod'", action = ["added"] },
]

[[rule.example]]
name = "in order"
matches = 1
rows = [
  { time = 0, columns = { name = "curl", pid = "7" } },
  { time = 300, columns = { name = "chmod", pid = "7" } },
]

[[rule.example]]
name = "too late, wrong order, other pid or host"
matches = 0
rows = [
  { time = 0, columns = { name = "curl", pid = "7" } },
  { time = 301, columns = { name = "chmod", pid = "7" } },
  { time = 400, columns = { name = "chmod", pid = "9" } },
  { time = 401, columns = { name = "curl", pid = "9" } },
  { time = 402, host = "web-2", columns = { name = "chmod", pid = "9" } },
  { time = 403, columns = { name = "chmod", pid = "9" }, action = "removed" },
]

[[rule]]
id = "failed_login_not_recovered"
title = "a failed login not followed by a good one"
severity = "medium"
kind = "sequence"
query = "logins"
[rule.sequence]
by = ["host", "user"]
within = "1m"
steps = [{ condition = "result = 'fail'" }]
not_followed_by = { condition = "result = 'ok'" }

[[rule.example]]
name = "not followed"
matches = 1
until = 61
rows = [{ time = 0, columns = { result = "fail", user = "bob" } }]

[[rule.example]]
name = "followed"
matches = 0
until = 1000
rows = [
  { time = 0, columns = { result = "fail", user = "bob" } },
  { time = 60, columns = { result = "ok", user = "bob" } },
]

[[rule.example]]
name = "span not over yet"
matches = 0
until = 60
rows = [{ time = 0, columns = { result = "fail", user = "bob" } }]
"#,
            "t",
        )
        .unwrap();
        let outcomes = crate::examples::run(&rules);
        assert_eq!(outcomes.len(), 5);
        for o in &outcomes {
            assert!(o.passed(), "{o:?}");
        }
    }
}
