//! Match aggregation. A rule with `suppress_for` reports a given host's
//! matching row once, then counts repeats of it (a snapshot query matches the
//! same row every interval) and, when the window closes, reports one summary
//! with the first and last time seen and the count. Without it, every match
//! is reported as it happens.
//!
//! What is saved across a restart ([`crate::checkpoint`]) is only what was
//! delivered: a group whose first report is still on its way is left out
//! (after a crash, the replayed row reports it again), and a closed group
//! whose summary is still on its way is kept (the summary is made again).
//! Workers write the shared state at their own pace, so a group must not
//! reach the disk before its report reaches the broker.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sweep_proto::MatchRecord;

struct Group {
    /// The latest state: first_seen fixed, last_seen and count growing.
    record: MatchRecord,
    /// How many of `record.count` were already reported.
    reported: u64,
    closes: Instant,
    /// Whether the group's first report was delivered.
    delivered: bool,
}

#[derive(Default)]
pub struct Suppressor {
    groups: HashMap<String, Group>,
    /// Closed groups' summaries not yet delivered, by key.
    closing: HashMap<String, MatchRecord>,
    /// Set when a group opens, grows or closes; cleared by [`saved`](Self::saved).
    changed: bool,
}

/// A group as written to disk: its window as what was left of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedGroup {
    #[serde(default)]
    key: String,
    record: MatchRecord,
    reported: u64,
    remaining_ms: u64,
}

/// A match's group: the rule and, by default, the host and the whole row;
/// with `by`, the rule and those fields' values (`host` is the match's host).
fn key(m: &MatchRecord, by: &[String]) -> String {
    if by.is_empty() {
        // The row is a BTreeMap: its JSON is canonical.
        return format!(
            "{}\0{}\0{}",
            m.rule_id,
            m.host,
            serde_json::to_string(&m.row).unwrap_or_default()
        );
    }
    let values: Vec<&str> = by
        .iter()
        .map(|f| match f.as_str() {
            "host" => m.host.as_str(),
            f => m.row.get(f).map_or("", String::as_str),
        })
        .collect();
    format!(
        "{}\0{}",
        m.rule_id,
        serde_json::to_string(&values).unwrap_or_default()
    )
}

impl Suppressor {
    /// Open groups (for the state gauge).
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Takes a new match for a rule with window `window`; returns it if it
    /// must be reported now (the first of its group).
    pub fn admit(&mut self, m: MatchRecord, window: Duration, now: Instant) -> Option<MatchRecord> {
        self.admit_by(m, &[], window, now)
    }

    /// As [`admit`](Self::admit), grouping by the fields `by` (empty: by
    /// host and row).
    pub fn admit_by(
        &mut self,
        m: MatchRecord,
        by: &[String],
        window: Duration,
        now: Instant,
    ) -> Option<MatchRecord> {
        let k = key(&m, by);
        self.changed = true;
        if let Some(g) = self.groups.get_mut(&k) {
            if now < g.closes {
                g.record.count += m.count;
                g.record.last_seen = g.record.last_seen.max(m.last_seen);
                return None;
            }
        }
        self.groups.insert(
            k,
            Group {
                record: m.clone(),
                reported: m.count,
                closes: now + window,
                delivered: false,
            },
        );
        Some(m)
    }

    /// A match this suppressor let through (grouped by `by`), or a summary
    /// it made, reached the broker: from now on it is saved as reported.
    pub fn delivered(&mut self, m: &MatchRecord, by: &[String]) {
        let k = key(m, by);
        if self.closing.get(&k) == Some(m) {
            self.closing.remove(&k);
            self.changed = true;
        } else if let Some(g) = self.groups.get_mut(&k) {
            if !g.delivered && g.record.first_seen == m.first_seen {
                g.delivered = true;
                self.changed = true;
            }
        }
    }

    /// Summaries of the groups whose window closed with repeats not yet
    /// reported; closed groups are forgotten.
    pub fn close(&mut self, now: Instant) -> Vec<MatchRecord> {
        let mut out = Vec::new();
        let before = self.groups.len();
        let closing = &mut self.closing;
        self.groups.retain(|k, g| {
            if now < g.closes {
                return true;
            }
            if g.record.count > g.reported {
                out.push(g.record.clone());
                closing.insert(k.clone(), g.record.clone());
            }
            false
        });
        self.changed |= self.groups.len() != before;
        out.sort_by(|a, b| {
            (a.first_seen, &a.rule_id, &a.host).cmp(&(b.first_seen, &b.rule_id, &b.host))
        });
        out
    }

    /// Whether anything changed since the last save.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The open groups, to be written to disk.
    /// Only delivered groups, and closed ones whose summary is not (saved
    /// as closed: restored, they close again and make it again).
    pub fn save(&mut self, now: Instant) -> Vec<SavedGroup> {
        self.changed = false;
        let open = self
            .groups
            .iter()
            .filter(|(_, g)| g.delivered)
            .map(|(k, g)| SavedGroup {
                key: k.clone(),
                record: g.record.clone(),
                reported: g.reported,
                remaining_ms: g.closes.saturating_duration_since(now).as_millis() as u64,
            });
        let closing = self.closing.iter().map(|(k, record)| SavedGroup {
            key: k.clone(),
            record: record.clone(),
            reported: 0,
            remaining_ms: 0,
        });
        open.chain(closing).collect()
    }

    /// Groups read back from disk, `elapsed` after they were saved.
    pub fn restore(saved: Vec<SavedGroup>, elapsed: Duration, now: Instant) -> Self {
        let groups = saved
            .into_iter()
            .map(|g| {
                let left = Duration::from_millis(g.remaining_ms).saturating_sub(elapsed);
                (
                    if g.key.is_empty() {
                        key(&g.record, &[])
                    } else {
                        g.key
                    },
                    Group {
                        record: g.record,
                        reported: g.reported,
                        closes: now + left,
                        delivered: true,
                    },
                )
            })
            .collect();
        Self {
            groups,
            closing: HashMap::new(),
            changed: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn m(host: &str, t: u64) -> MatchRecord {
        MatchRecord {
            rule_id: "r".into(),
            title: "t".into(),
            severity: "high".into(),
            host: host.into(),
            query: "q".into(),
            hunt_id: None,
            row: [("pid".to_string(), "1".to_string())]
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
            first_seen: t,
            last_seen: t,
            count: 1,
        }
    }

    #[test]
    fn repeats_are_counted_and_summarised_once() {
        let mut s = Suppressor::default();
        let w = Duration::from_secs(60);
        let t0 = Instant::now();
        assert!(s.admit(m("a", 100), w, t0).is_some());
        assert!(s
            .admit(m("a", 110), w, t0 + Duration::from_secs(10))
            .is_none());
        assert!(s
            .admit(m("a", 120), w, t0 + Duration::from_secs(20))
            .is_none());
        // Another host is another group.
        assert!(s
            .admit(m("b", 120), w, t0 + Duration::from_secs(20))
            .is_some());
        assert!(s.close(t0 + Duration::from_secs(30)).is_empty());
        let closed = s.close(t0 + Duration::from_secs(61));
        assert_eq!(closed.len(), 1, "b had no repeats");
        assert_eq!(
            (
                closed[0].host.as_str(),
                closed[0].first_seen,
                closed[0].last_seen,
                closed[0].count
            ),
            ("a", 100, 120, 3)
        );
        // After the window the next match opens a new group.
        assert!(s
            .admit(m("a", 200), w, t0 + Duration::from_secs(100))
            .is_some());
    }

    #[test]
    fn suppress_by_groups_matches_by_the_named_fields() {
        let mut s = Suppressor::default();
        let w = Duration::from_secs(60);
        let t0 = Instant::now();
        let by = ["host".to_string(), "user".to_string()];
        let user = |host: &str, user: &str, pid: &str, t: u64| {
            let mut m = m(host, t);
            m.row = [("user", user), ("pid", pid)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            m
        };
        assert!(s.admit_by(user("a", "douge", "1", 1), &by, w, t0).is_some());
        // Another row (pid), same host and user: a repeat.
        assert!(s.admit_by(user("a", "douge", "2", 2), &by, w, t0).is_none());
        // Another user, or another host: a group of its own.
        assert!(s.admit_by(user("a", "root", "3", 3), &by, w, t0).is_some());
        assert!(s.admit_by(user("b", "douge", "4", 4), &by, w, t0).is_some());
        let closed = s.close(t0 + w);
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (closed[0].first_seen, closed[0].last_seen, closed[0].count),
            (1, 2, 2)
        );
    }
}
