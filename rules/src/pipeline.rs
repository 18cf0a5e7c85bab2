//! One worker's evaluation: the shared rule set, and each stateful rule's
//! detector holding what that worker has seen. Rows in, matches out; the
//! clock is the rows' own time, moved on by [`Pipeline::tick`] when idle.

use std::sync::Arc;

use sweep_proto::MatchRecord;

use crate::by_query::ByQuery;
use crate::kinds::{Alert, Detector, Event};
use crate::row::{RowRecord, RowView, Scratch};
use crate::ruleset::{Route, RuleSet};

pub struct Pipeline {
    rules: Arc<RuleSet>,
    state: State,
}

/// What one worker holds between rows. Apart from the rule set so a row
/// can be read into the set's slots while this is updated, without taking
/// a reference count per row on the set all workers share.
struct State {
    /// By rule number; None for `match` rules.
    detectors: Vec<Option<Box<dyn Detector>>>,
    /// The latest row time seen (unix seconds).
    clock: u64,
    /// The rules a row picked (reused from row to row).
    picked: Vec<usize>,
    /// The rules that watch each query name seen: this worker's own, so
    /// workers share nothing per row.
    routes: ByQuery<Route>,
    /// What reading keeps from record to record.
    scratch: Scratch,
}

impl Pipeline {
    pub fn new(rules: Arc<RuleSet>) -> Self {
        let detectors = (0..rules.len())
            .map(|i| rules.kind(i).map(|k| k.detector()))
            .collect();
        Self {
            rules,
            state: State {
                detectors,
                clock: 0,
                picked: Vec::new(),
                routes: ByQuery::default(),
                scratch: Scratch::default(),
            },
        }
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// The matches a row raises now; None when a value a rule reads is not
    /// UTF-8 (the caller decodes the record in full and reports why).
    pub fn row(&mut self, row: &RowRecord<'_>) -> Option<Vec<MatchRecord>> {
        let view = self.rules.view(row)?;
        Some(self.state.viewed(&self.rules, row, &view))
    }

    /// A record read as a row and the matches it raises now; None when it
    /// is not a row the fast reader takes (the caller decodes it in full).
    pub fn record<'a>(&mut self, bytes: &'a [u8]) -> Option<(RowRecord<'a>, Vec<MatchRecord>)> {
        let (row, view) = RowRecord::read(bytes, self.rules.columns(), &mut self.state.scratch)?;
        let matches = self.state.viewed(&self.rules, &row, &view);
        self.state.scratch.recycle(view);
        Some((row, matches))
    }

    /// Moves the clock to `now` (never back) and returns what falls due:
    /// "not followed by" sequences whose span ended, say.
    pub fn tick(&mut self, now: u64) -> Vec<MatchRecord> {
        let state = &mut self.state;
        state.clock = state.clock.max(now);
        let mut out = Vec::new();
        let mut alerts = Vec::new();
        for (i, d) in state.detectors.iter_mut().enumerate() {
            if let Some(d) = d {
                d.tick(state.clock, &mut alerts);
                out.extend(alerts.drain(..).map(|a| self.rules.record(i, a, None)));
            }
        }
        out
    }

    /// Entries held by all detectors.
    pub fn state(&self) -> usize {
        self.state
            .detectors
            .iter()
            .flatten()
            .map(|d| d.size())
            .sum()
    }
}

impl State {
    /// The matches a row raises now, its columns already in `rules`' slots.
    fn viewed(
        &mut self,
        rules: &RuleSet,
        row: &RowRecord<'_>,
        view: &RowView<'_>,
    ) -> Vec<MatchRecord> {
        let route = self
            .routes
            .get_or_insert_with(&row.name, || rules.route(&row.name));
        let mut picked = std::mem::take(&mut self.picked);
        rules.picked_into(row, view, route, &mut picked);
        let mut out = Vec::new();
        if picked.is_empty() {
            self.picked = picked;
            return out;
        }
        let columns = || row.columns_map();
        let event = Event {
            host: &row.host,
            query: &row.name,
            action: &row.action,
            time: row.unix_time,
            view,
            columns: &columns,
        };
        let mut alerts = Vec::new();
        for &i in &picked {
            match self.detectors[i].as_mut() {
                None => out.push(rules.record(i, Alert::of_row(row), row.hunt_id.as_deref())),
                Some(detector) => {
                    detector.observe(&event, &mut alerts);
                    out.extend(
                        alerts
                            .drain(..)
                            .map(|a| rules.record(i, a, row.hunt_id.as_deref())),
                    );
                }
            }
        }
        self.clock = self.clock.max(row.unix_time);
        self.picked = picked;
        out
    }
}

#[cfg(test)]
impl Pipeline {
    /// A pipeline over the rules in a rule file's text (tests).
    pub(crate) fn of(toml: &str) -> Self {
        let rules = crate::rule::parse(toml, "t").expect("the rules load");
        Self::new(Arc::new(RuleSet::new(rules)))
    }

    /// Feeds one `added` row of `query` from `host` at `time` (tests); the
    /// matches it raises.
    pub(crate) fn feed(
        &mut self,
        query: &str,
        host: &str,
        time: u64,
        columns: serde_json::Value,
    ) -> Vec<MatchRecord> {
        let record = serde_json::json!({
            "name": query,
            "hostIdentifier": host,
            "calendarTime": "",
            "unixTime": time,
            "columns": columns,
            "action": "added",
        })
        .to_string();
        let row = RowRecord::parse(record.as_bytes()).expect("a row record");
        self.row(&row).expect("UTF-8 values")
    }
}
