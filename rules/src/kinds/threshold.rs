//! The `threshold` rule kind (Elastic's threshold rule, Sigma's
//! `event_count` and `value_count` correlations): rows counted per group over
//! a sliding window of event time, an alert when a group reaches the count.
//!
//! ```toml
//! [[rule]]
//! id = "port_scan"
//! title = "one host connecting to many ports of one address"
//! severity = "medium"
//! query = "socks"
//! kind = "threshold"
//! condition = "remote_port > 0"
//!
//! [rule.threshold]
//! count = 20                          # alert at 20 ...
//! distinct = "remote_port"            # ... distinct remote ports
//! within = "5m"                       # seen within 5 minutes
//! by = ["host", "remote_address"]     # per host and remote address
//! ```
//!
//! The window is half-open: rows count together when their times are less
//! than `within` apart, so a row exactly `within` after another no longer
//! counts it. When a group reaches `count`, one alert is raised for it and
//! the group starts over: the next alert needs `count` new rows. Rows
//! arriving late (older than the window ending at the group's newest row)
//! are not counted.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{Alert, Detector, Event, Field, Kind};
use crate::matcher::Columns;

/// At most this many values are listed in an alert's `distinct_values`.
const LISTED_VALUES: usize = 20;

/// The `[rule.threshold]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Raise an alert when a group has this many rows (or, with `distinct`,
    /// this many distinct values) within `within`; at least 1.
    pub count: u64,
    /// The window, a duration such as "30s", "5m" or "1h 30m" (whole
    /// seconds, at least 1s). Rows count together when their `unixTime`s
    /// are less than this apart: a row exactly `within` after another no
    /// longer counts it.
    #[serde(deserialize_with = "duration")]
    pub within: Duration,
    /// The fields whose values make a group, each counted on its own:
    /// `["host", "remote_address"]` counts per host and remote address.
    /// `host` is the row's host. Empty (the default): one group for all
    /// rows. A row with a NULL (empty or missing) group field is not
    /// counted.
    #[serde(default)]
    pub by: Vec<String>,
    /// Count the distinct values of this field instead of rows (Sigma's
    /// `value_count`): `count = 20, distinct = "remote_port"` alerts at the
    /// 20th distinct port. A row with this field NULL is not counted. The
    /// alert lists the values in `distinct_values`.
    #[serde(default)]
    pub distinct: Option<String>,
    /// The most groups held at once (per worker); past it, the group
    /// touched least recently is forgotten. Default 100000.
    #[serde(default = "default_max_groups")]
    pub max_groups: usize,
}

fn default_max_groups() -> usize {
    100_000
}

/// A humantime duration ("5m").
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

impl Spec {
    /// Checks the settings and gives each field a slot in `columns`.
    pub fn bind(&self, columns: &mut Columns) -> Result<Arc<dyn Kind>, String> {
        if self.count < 1 {
            return Err("threshold: count must be at least 1".into());
        }
        if self.within.subsec_nanos() != 0 || self.within.as_secs() < 1 {
            return Err(format!(
                "threshold: within must be whole seconds, at least 1s (got {})",
                humantime::format_duration(self.within)
            ));
        }
        if self.max_groups < 1 {
            return Err("threshold: max_groups must be at least 1".into());
        }
        let mut by = Vec::with_capacity(self.by.len());
        for (i, name) in self.by.iter().enumerate() {
            if name.trim().is_empty() {
                return Err("threshold: by names an empty field".into());
            }
            if self.by[..i].contains(name) {
                return Err(format!("threshold: by lists {name:?} twice"));
            }
            by.push((name.as_str().into(), Field::bind(name, columns)));
        }
        let distinct = match &self.distinct {
            None => None,
            Some(name) if name.trim().is_empty() => {
                return Err("threshold: distinct names an empty field".into())
            }
            Some(name) if self.by.contains(name) => {
                return Err(format!(
                    "threshold: distinct field {name:?} is also in by (its distinct count would always be 1)"
                ))
            }
            Some(name) => Some(Field::bind(name, columns)),
        };
        Ok(Arc::new(Threshold(Arc::new(Settings {
            count: self.count,
            within: self.within.as_secs(),
            by,
            distinct,
            max_groups: self.max_groups,
        }))))
    }
}

#[derive(Debug)]
struct Settings {
    count: u64,
    /// Seconds.
    within: u64,
    by: Vec<(Box<str>, Field)>,
    distinct: Option<Field>,
    max_groups: usize,
}

/// The bound kind.
#[derive(Debug)]
struct Threshold(Arc<Settings>);

impl Kind for Threshold {
    fn detector(&self) -> Box<dyn Detector> {
        Box::new(Groups {
            settings: self.0.clone(),
            groups: HashMap::new(),
            order: BTreeMap::new(),
            touches: 0,
            key: String::new(),
            evicted: 0,
        })
    }
}

/// One worker's groups.
struct Groups {
    settings: Arc<Settings>,
    /// By key: the group fields' values, each as `len:value`.
    groups: HashMap<Arc<str>, Group>,
    /// Every group by (newest row time, last touch): the first is the next
    /// to expire, and the one dropped when there are too many.
    order: BTreeMap<(u64, u64), Arc<str>>,
    /// Touches so far (a group's `touch` is the count at its last one).
    touches: u64,
    /// A key being built (kept to reuse its allocation).
    key: String,
    /// Groups dropped for `max_groups`.
    evicted: u64,
}

struct Group {
    key: Arc<str>,
    /// The newest row time counted or seen.
    newest: u64,
    /// The touch count when last touched (0: not yet in `order`).
    touch: u64,
    window: Window,
}

/// The rows a group counts, all less than `within` older than `newest`.
enum Window {
    /// Rows per second, in time order, and their total.
    Rows {
        seconds: VecDeque<(u64, u64)>,
        total: u64,
    },
    /// Each distinct value's latest time, and the same by time.
    Distinct {
        latest: HashMap<Box<str>, u64>,
        by_time: BTreeSet<(u64, Box<str>)>,
    },
}

impl Window {
    fn new(distinct: bool) -> Self {
        if distinct {
            Self::Distinct {
                latest: HashMap::new(),
                by_time: BTreeSet::new(),
            }
        } else {
            Self::Rows {
                seconds: VecDeque::new(),
                total: 0,
            }
        }
    }

    /// Counts a row at `time` (with its distinct value, for `Distinct`).
    fn add(&mut self, time: u64, value: Option<&str>) {
        match self {
            Self::Rows { seconds, total } => {
                let at = seconds.partition_point(|(t, _)| *t < time);
                match seconds.get_mut(at) {
                    Some((t, n)) if *t == time => *n += 1,
                    _ => seconds.insert(at, (time, 1)),
                }
                *total += 1;
            }
            Self::Distinct { latest, by_time } => {
                let Some(value) = value else {
                    return;
                };
                match latest.get_mut(value) {
                    Some(t) if *t >= time => {}
                    Some(t) => {
                        by_time.remove(&(*t, Box::from(value)));
                        by_time.insert((time, value.into()));
                        *t = time;
                    }
                    None => {
                        latest.insert(value.into(), time);
                        by_time.insert((time, value.into()));
                    }
                }
            }
        }
    }

    /// Drops what is `within` or more older than `newest`.
    fn prune(&mut self, newest: u64, within: u64) {
        let out = |t: u64| t.saturating_add(within) <= newest;
        match self {
            Self::Rows { seconds, total } => {
                while let Some(&(t, n)) = seconds.front() {
                    if !out(t) {
                        break;
                    }
                    seconds.pop_front();
                    *total -= n;
                }
            }
            Self::Distinct { latest, by_time } => {
                while by_time.first().is_some_and(|(t, _)| out(*t)) {
                    if let Some((_, value)) = by_time.pop_first() {
                        latest.remove(&value);
                    }
                }
            }
        }
    }

    /// Rows, or distinct values, counted.
    fn count(&self) -> u64 {
        match self {
            Self::Rows { total, .. } => *total,
            Self::Distinct { latest, .. } => latest.len() as u64,
        }
    }

    /// The oldest and newest times counted.
    fn span(&self) -> (u64, u64) {
        let (first, last) = match self {
            Self::Rows { seconds, .. } => {
                (seconds.front().map(|s| s.0), seconds.back().map(|s| s.0))
            }
            Self::Distinct { by_time, .. } => {
                (by_time.first().map(|s| s.0), by_time.last().map(|s| s.0))
            }
        };
        (first.unwrap_or(0), last.unwrap_or(0))
    }

    /// The distinct values, sorted, comma-joined, at most [`LISTED_VALUES`]
    /// of them (then how many more).
    fn listed(&self) -> Option<String> {
        let Self::Distinct { latest, .. } = self else {
            return None;
        };
        let mut values: Vec<&str> = latest.keys().map(|v| &**v).collect();
        values.sort_unstable();
        let mut text = values
            .iter()
            .take(LISTED_VALUES)
            .copied()
            .collect::<Vec<_>>()
            .join(",");
        if values.len() > LISTED_VALUES {
            text.push_str(&format!(",+{} more", values.len() - LISTED_VALUES));
        }
        Some(text)
    }
}

/// Appends one part of a key, so that no two lists of values share a key.
fn push_part(key: &mut String, value: &str) {
    use std::fmt::Write;
    let _ = write!(key, "{}:{value}", value.len());
}

impl Groups {
    /// Forgets the group that expires first (ties: the least recently
    /// touched).
    fn evict(&mut self) {
        if let Some((_, key)) = self.order.pop_first() {
            self.groups.remove(&key);
            self.evicted += 1;
            if self.evicted == 1 {
                tracing::warn!(
                    max_groups = self.settings.max_groups,
                    "threshold: more groups than max_groups; forgetting the oldest"
                );
            }
        }
    }
}

impl Detector for Groups {
    fn observe(&mut self, event: &Event<'_>, out: &mut Vec<Alert>) {
        let s = self.settings.clone();
        self.key.clear();
        for (_, field) in &s.by {
            let Some(value) = field.value(event) else {
                return;
            };
            push_part(&mut self.key, value);
        }
        let value = match s.distinct {
            Some(field) => match field.value(event) {
                Some(v) => Some(v),
                None => return,
            },
            None => None,
        };
        let time = event.time;
        if !self.groups.contains_key(self.key.as_str()) {
            if self.groups.len() >= s.max_groups {
                self.evict();
            }
            let key: Arc<str> = self.key.as_str().into();
            let group = Group {
                key: key.clone(),
                newest: time,
                touch: 0,
                window: Window::new(s.distinct.is_some()),
            };
            self.groups.insert(key, group);
        }
        self.touches += 1;
        let Some(group) = self.groups.get_mut(self.key.as_str()) else {
            return;
        };
        self.order.remove(&(group.newest, group.touch));
        group.newest = group.newest.max(time);
        group.touch = self.touches;
        // A row already out of the window is not counted.
        if time.saturating_add(s.within) > group.newest {
            group.window.add(time, value);
            group.window.prune(group.newest, s.within);
        }
        let count = group.window.count();
        if count < s.count {
            self.order
                .insert((group.newest, group.touch), group.key.clone());
            return;
        }
        let mut row = BTreeMap::new();
        for (name, field) in &s.by {
            if let Some(v) = field.value(event) {
                row.insert(name.to_string(), v.to_string());
            }
        }
        row.insert("count".to_string(), count.to_string());
        if let Some(values) = group.window.listed() {
            row.insert("distinct_values".to_string(), values);
        }
        let (first_seen, last_seen) = group.window.span();
        out.push(Alert {
            host: event.host.to_string(),
            query: event.query.to_string(),
            row,
            first_seen,
            last_seen,
            count,
        });
        // Start over: the next alert needs `count` new rows.
        self.groups.remove(self.key.as_str());
    }

    fn tick(&mut self, now: u64, _out: &mut Vec<Alert>) {
        let within = self.settings.within;
        while let Some(entry) = self.order.first_entry() {
            if entry.key().0.saturating_add(within) > now {
                break;
            }
            let key = entry.remove();
            self.groups.remove(&key);
        }
    }

    fn size(&self) -> usize {
        self.groups.len()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sweep_proto::MatchRecord;

    use crate::pipeline::Pipeline;
    use crate::rule::{parse, Rule};

    fn rules(text: &str) -> Vec<Rule> {
        parse(text, "t").unwrap()
    }

    fn pipeline(text: &str) -> Pipeline {
        Pipeline::of(text)
    }

    /// Feeds one `socks` row; the matches it raises.
    fn row(
        p: &mut Pipeline,
        time: u64,
        host: &str,
        columns: serde_json::Value,
    ) -> Vec<MatchRecord> {
        p.feed("socks", host, time, columns)
    }

    fn rule(settings: &str) -> String {
        format!(
            r#"
[[rule]]
id = "th"
title = "threshold"
severity = "medium"
query = "socks"
kind = "threshold"
condition = "name = 'bash'"

[rule.threshold]
{settings}
"#
        )
    }

    fn bash(extra: &[(&str, &str)]) -> serde_json::Value {
        let mut cols = serde_json::Map::new();
        cols.insert("name".into(), "bash".into());
        for (k, v) in extra {
            cols.insert(k.to_string(), (*v).into());
        }
        cols.into()
    }

    #[test]
    fn counts_rows_in_a_sliding_window_and_starts_over_after_an_alert() {
        let mut p = pipeline(&rule("count = 3\nwithin = \"5m\"\nby = [\"host\"]"));
        assert!(row(&mut p, 0, "web-1", bash(&[])).is_empty());
        assert!(row(&mut p, 100, "web-1", bash(&[])).is_empty());
        // Not picked by the condition: not counted.
        assert!(row(&mut p, 150, "web-1", json!({"name": "sshd"})).is_empty());
        // Another host is another group.
        assert!(row(&mut p, 200, "web-2", bash(&[])).is_empty());
        let m = row(&mut p, 299, "web-1", bash(&[]));
        assert_eq!(m.len(), 1);
        let m = &m[0];
        assert_eq!(m.rule_id, "th");
        assert_eq!((m.first_seen, m.last_seen, m.count), (0, 299, 3));
        assert_eq!(m.host, "web-1");
        assert_eq!(m.query, "socks");
        assert_eq!(
            m.row,
            [("count", "3"), ("host", "web-1")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into()
        );
        // Reset: three new rows are needed.
        assert_eq!(p.state(), 1, "web-2's group is held, web-1's was reset");
        assert!(row(&mut p, 300, "web-1", bash(&[])).is_empty());
        assert!(row(&mut p, 301, "web-1", bash(&[])).is_empty());
        let m = row(&mut p, 302, "web-1", bash(&[]));
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].first_seen, m[0].last_seen, m[0].count), (300, 302, 3));
    }

    #[test]
    fn a_row_exactly_within_later_no_longer_counts_the_first() {
        let mut p = pipeline(&rule("count = 3\nwithin = \"5m\"\nby = [\"host\"]"));
        assert!(row(&mut p, 0, "web-1", bash(&[])).is_empty());
        assert!(row(&mut p, 100, "web-1", bash(&[])).is_empty());
        // 300 - 0 = within: the row at 0 falls out, two remain.
        assert!(row(&mut p, 300, "web-1", bash(&[])).is_empty());
        let m = row(&mut p, 301, "web-1", bash(&[]));
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].first_seen, m[0].last_seen, m[0].count), (100, 301, 3));

        // One second less is inside.
        let mut p = pipeline(&rule("count = 2\nwithin = \"5m\""));
        assert!(row(&mut p, 1000, "web-1", bash(&[])).is_empty());
        let m = row(&mut p, 1299, "web-1", bash(&[]));
        assert_eq!((m[0].first_seen, m[0].last_seen), (1000, 1299));
    }

    #[test]
    fn late_rows_count_only_inside_the_window() {
        let mut p = pipeline(&rule("count = 3\nwithin = \"5m\""));
        assert!(row(&mut p, 400, "web-1", bash(&[])).is_empty());
        // 400 - 100 = 300: already out of the window ending at 400.
        assert!(row(&mut p, 100, "web-1", bash(&[])).is_empty());
        assert!(row(&mut p, 101, "web-1", bash(&[])).is_empty());
        // Two rows counted (400 and 101), this is the third.
        let m = row(&mut p, 350, "web-1", bash(&[]));
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].first_seen, m[0].last_seen, m[0].count), (101, 400, 3));
    }

    #[test]
    fn counts_distinct_values_and_skips_null_fields() {
        let mut p = pipeline(&rule(
            "count = 3\nwithin = \"5m\"\nby = [\"host\", \"remote_address\"]\ndistinct = \"remote_port\"",
        ));
        let conn = |port: &str| bash(&[("remote_address", "1.2.3.4"), ("remote_port", port)]);
        assert!(row(&mut p, 0, "web-1", conn("80")).is_empty());
        assert!(row(&mut p, 1, "web-1", conn("80")).is_empty());
        assert!(row(&mut p, 2, "web-1", conn("443")).is_empty());
        // NULL port (empty or missing), NULL address: not counted.
        assert!(row(&mut p, 3, "web-1", conn("")).is_empty());
        assert!(row(&mut p, 4, "web-1", bash(&[("remote_address", "1.2.3.4")])).is_empty());
        assert!(row(&mut p, 5, "web-1", bash(&[("remote_port", "25")])).is_empty());
        assert!(row(
            &mut p,
            6,
            "web-1",
            bash(&[("remote_address", ""), ("remote_port", "25")])
        )
        .is_empty());
        // Another address, another host: other groups.
        assert!(row(
            &mut p,
            7,
            "web-1",
            bash(&[("remote_address", "5.6.7.8"), ("remote_port", "22")])
        )
        .is_empty());
        assert!(row(&mut p, 8, "web-2", conn("22")).is_empty());
        assert_eq!(p.state(), 3);
        let m = row(&mut p, 9, "web-1", conn("22"));
        assert_eq!(m.len(), 1);
        let m = &m[0];
        assert_eq!((m.first_seen, m.last_seen, m.count), (1, 9, 3));
        assert_eq!(
            m.row,
            [
                ("count", "3"),
                ("distinct_values", "22,443,80"),
                ("host", "web-1"),
                ("remote_address", "1.2.3.4"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into()
        );
    }

    #[test]
    fn a_distinct_value_stays_in_the_window_from_its_latest_row() {
        let mut p = pipeline(&rule(
            "count = 3\nwithin = \"5m\"\ndistinct = \"remote_port\"",
        ));
        let port = |v: &str| bash(&[("remote_port", v)]);
        assert!(row(&mut p, 0, "web-1", port("80")).is_empty());
        assert!(row(&mut p, 10, "web-1", port("443")).is_empty());
        // 80 seen again at 250: it stays in the window past 300.
        assert!(row(&mut p, 250, "web-1", port("80")).is_empty());
        let m = row(&mut p, 305, "web-1", port("22"));
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].first_seen, m[0].last_seen, m[0].count), (10, 305, 3));

        let mut p = pipeline(&rule(
            "count = 3\nwithin = \"5m\"\ndistinct = \"remote_port\"",
        ));
        assert!(row(&mut p, 0, "web-1", port("80")).is_empty());
        assert!(row(&mut p, 10, "web-1", port("443")).is_empty());
        // 80 (at 0) is out at 300: two distinct values.
        assert!(row(&mut p, 300, "web-1", port("22")).is_empty());
        let m = row(&mut p, 309, "web-1", port("8080"));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].row["distinct_values"], "22,443,8080");
        assert_eq!(m[0].first_seen, 10);
    }

    #[test]
    fn distinct_values_listed_are_capped() {
        let mut p = pipeline(&rule(
            "count = 25\nwithin = \"1h\"\ndistinct = \"remote_port\"",
        ));
        let mut got = Vec::new();
        for port in 0..25 {
            let v = format!("{:02}", port);
            got = row(&mut p, port, "web-1", bash(&[("remote_port", &v)]));
        }
        assert_eq!(got.len(), 1);
        let want: Vec<String> = (0..20).map(|n| format!("{n:02}")).collect();
        assert_eq!(
            got[0].row["distinct_values"],
            format!("{},+5 more", want.join(","))
        );
        assert_eq!(got[0].count, 25);
    }

    #[test]
    fn one_group_without_by_across_hosts() {
        let mut p = pipeline(&rule("count = 2\nwithin = \"1m\""));
        assert!(row(&mut p, 0, "web-1", bash(&[])).is_empty());
        let m = row(&mut p, 59, "web-2", bash(&[]));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].host, "web-2");
        assert_eq!(m[0].row, [("count".to_string(), "2".to_string())].into());
        assert_eq!(p.state(), 0);
    }

    #[test]
    fn count_one_alerts_on_every_row() {
        let mut p = pipeline(&rule("count = 1\nwithin = \"1s\"\nby = [\"user\"]"));
        for t in 0..3 {
            assert_eq!(row(&mut p, t, "web-1", bash(&[("user", "root")])).len(), 1);
        }
        assert!(row(&mut p, 3, "web-1", bash(&[])).is_empty(), "NULL user");
    }

    #[test]
    fn groups_are_bounded_and_the_least_recently_touched_goes() {
        let mut p = pipeline(&rule(
            "count = 2\nwithin = \"1h\"\nby = [\"user\"]\nmax_groups = 2",
        ));
        let user = |u: &str| bash(&[("user", u)]);
        assert!(row(&mut p, 1, "web-1", user("a")).is_empty());
        assert!(row(&mut p, 2, "web-1", user("b")).is_empty());
        assert!(row(&mut p, 3, "web-1", user("c")).is_empty());
        // a was dropped for c.
        assert_eq!(p.state(), 2);
        assert!(row(&mut p, 4, "web-1", user("a")).is_empty());
        // a's row dropped b; c's second row alerts.
        assert_eq!(p.state(), 2);
        let m = row(&mut p, 5, "web-1", user("c"));
        assert_eq!((m[0].first_seen, m[0].last_seen), (3, 5));
        assert_eq!(p.state(), 1);
        assert!(
            row(&mut p, 6, "web-1", user("b")).is_empty(),
            "b starts over"
        );
        assert_eq!(row(&mut p, 7, "web-1", user("a")).len(), 1);
        assert_eq!(p.state(), 1);

        // Ties on time: the group touched least recently goes, and a late
        // row (older than the group's newest) touches its group too.
        let mut p = pipeline(&rule(
            "count = 3\nwithin = \"1h\"\nby = [\"user\"]\nmax_groups = 2",
        ));
        assert!(row(&mut p, 9, "web-1", user("a")).is_empty());
        assert!(row(&mut p, 9, "web-1", user("b")).is_empty());
        assert!(row(&mut p, 5, "web-1", user("a")).is_empty());
        // x drops b, the least recently touched.
        assert!(row(&mut p, 9, "web-1", user("x")).is_empty());
        assert_eq!(p.state(), 2);
        let m = row(&mut p, 9, "web-1", user("a"));
        assert_eq!(m.len(), 1, "a was kept");
        assert_eq!((m[0].first_seen, m[0].last_seen, m[0].count), (5, 9, 3));
    }

    #[test]
    fn tick_forgets_groups_whose_newest_row_left_the_window() {
        let mut p = pipeline(&rule("count = 2\nwithin = \"5m\"\nby = [\"host\"]"));
        assert!(row(&mut p, 0, "web-1", bash(&[])).is_empty());
        assert!(row(&mut p, 100, "web-2", bash(&[])).is_empty());
        assert!(p.tick(299).is_empty());
        assert_eq!(p.state(), 2);
        assert!(p.tick(300).is_empty());
        assert_eq!(p.state(), 1, "web-1's newest row is 5m old");
        assert!(p.tick(400).is_empty());
        assert_eq!(p.state(), 0);
    }

    #[test]
    fn settings_are_checked() {
        let err = |settings: &str| match parse(&rule(settings), "t") {
            Ok(_) => panic!("{settings} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err("count = 0\nwithin = \"5m\"").contains("count must be at least 1"));
        assert!(err("count = 2\nwithin = \"0s\"").contains("within must be whole seconds"));
        assert!(err("count = 2\nwithin = \"1500ms\"").contains("within must be whole seconds"));
        assert!(err("count = 2\nwithin = \"five minutes\"").contains("within"));
        assert!(err("count = 2").contains("within"));
        assert!(err("count = 2\nwithin = \"5m\"\nmax_groups = 0").contains("max_groups"));
        assert!(
            err("count = 2\nwithin = \"5m\"\nby = [\"a\", \"a\"]").contains("by lists \"a\" twice")
        );
        assert!(err("count = 2\nwithin = \"5m\"\nby = [\"\"]").contains("empty field"));
        assert!(
            err("count = 2\nwithin = \"5m\"\nby = [\"a\"]\ndistinct = \"a\"")
                .contains("also in by")
        );
        assert!(err("count = 2\nwithin = \"5m\"\ngroup_by = [\"a\"]").contains("group_by"));
        let ok = rules(&rule("count = 2\nwithin = \"1h 30m\"\nby = [\"host\"]"));
        let spec = ok[0].spec.threshold.as_ref().unwrap();
        assert_eq!(spec.within.as_secs(), 5400);
        assert_eq!(spec.max_groups, 100_000);
    }

    #[test]
    fn examples_in_rule_text_pass() {
        let text = r#"
[[rule]]
id = "port_scan"
title = "many ports of one address"
severity = "medium"
query = "socks"
kind = "threshold"
condition = "remote_port > 0"

[rule.threshold]
count = 3
distinct = "remote_port"
within = "5m"
by = ["host", "remote_address"]

[[rule.example]]
name = "three ports in a minute"
matches = 1
rows = [
  { time = 0, columns = { remote_address = "1.2.3.4", remote_port = "22" } },
  { time = 10, columns = { remote_address = "1.2.3.4", remote_port = "22" } },
  { time = 20, columns = { remote_address = "1.2.3.4", remote_port = "80" } },
  { time = 60, columns = { remote_address = "1.2.3.4", remote_port = "443" } },
]

[[rule.example]]
name = "spread over more than the window"
matches = 0
rows = [
  { time = 0, columns = { remote_address = "1.2.3.4", remote_port = "22" } },
  { time = 200, columns = { remote_address = "1.2.3.4", remote_port = "80" } },
  { time = 300, columns = { remote_address = "1.2.3.4", remote_port = "443" } },
]

[[rule.example]]
name = "other hosts and addresses are other groups"
matches = 0
rows = [
  { time = 0, host = "web-1", columns = { remote_address = "1.2.3.4", remote_port = "22" } },
  { time = 1, host = "web-2", columns = { remote_address = "1.2.3.4", remote_port = "80" } },
  { time = 2, host = "web-1", columns = { remote_address = "5.6.7.8", remote_port = "443" } },
]

[[rule.example]]
name = "six ports: two alerts"
matches = 2
until = 10000
rows = [
  { time = 0, columns = { remote_address = "1.2.3.4", remote_port = "1" } },
  { time = 1, columns = { remote_address = "1.2.3.4", remote_port = "2" } },
  { time = 2, columns = { remote_address = "1.2.3.4", remote_port = "3" } },
  { time = 3, columns = { remote_address = "1.2.3.4", remote_port = "4" } },
  { time = 4, columns = { remote_address = "1.2.3.4", remote_port = "5" } },
  { time = 5, columns = { remote_address = "1.2.3.4", remote_port = "6" } },
]
"#;
        let rules = rules(text);
        let outcomes = crate::examples::run(&rules);
        assert_eq!(outcomes.len(), 4);
        for o in &outcomes {
            assert!(o.passed(), "{o:?}");
        }
    }
}
