//! Rule kinds beyond one row's condition, one file each. A rule's condition
//! (and `action` filter) picks the rows; a stateful kind then decides, from
//! what it has seen, whether they raise a match:
//!
//! - `match` (the default): every row the condition picks is a match.
//! - [`threshold`]: a count, or a distinct count of a field, over a window,
//!   grouped by fields.
//! - [`indicator`]: a field's value is in lists of IPs, CIDRs, domains or
//!   hashes read from files (reloaded when they change).
//! - [`new_terms`]: the first time a value (or combination) is seen, per
//!   host or fleet-wide, after a learning window.
//! - [`sequence`]: ordered steps keyed by fields within a span, or "A not
//!   followed by B within the span".
//!
//! A [`Detector`] holds one rule's state in one worker: the partitions that
//! worker holds, so the state of one host's rows (keyed by host) is in one
//! place. Time is the rows' own (`unixTime`), so a replay after a restart
//! decides as the first pass did.

use std::collections::BTreeMap;

use crate::row::RowView;

pub mod indicator;
pub mod new_terms;
pub mod sequence;
pub mod threshold;

/// A row a rule's condition picked, as a stateful kind sees it.
pub struct Event<'a> {
    pub host: &'a str,
    pub query: &'a str,
    /// `added`, `removed` or `snapshot`.
    pub action: &'a str,
    /// The row's `unixTime`.
    pub time: u64,
    /// The row's columns by slot ([`crate::matcher::Columns`]): every field a
    /// kind names was given a slot when the rule set was built.
    pub view: &'a RowView<'a>,
    /// The row's columns by name (built on demand: only for a match).
    pub columns: &'a dyn Fn() -> BTreeMap<String, String>,
}

/// Where a field a kind names comes from: the row's host (`host`) or a
/// column, by slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Host,
    Column(usize),
}

impl Field {
    /// `name`'s source, giving a column its slot in `columns`.
    pub fn bind(name: &str, columns: &mut crate::matcher::Columns) -> Self {
        if name == "host" {
            Self::Host
        } else {
            Self::Column(columns.id(name))
        }
    }

    /// The value in this row; None for NULL (an empty host too).
    pub fn value<'a>(self, event: &Event<'a>) -> Option<&'a str> {
        match self {
            Self::Host => Some(event.host).filter(|h| !h.is_empty()),
            Self::Column(slot) => event.view.get(slot),
        }
    }
}

/// What a detector raises; the rule's id, title and severity are added by
/// the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub host: String,
    pub query: String,
    /// The row (or a summary of the rows: group fields, counts) to show.
    pub row: BTreeMap<String, String>,
    pub first_seen: u64,
    pub last_seen: u64,
    pub count: u64,
}

impl Alert {
    /// A `match` rule's alert: the row itself.
    pub fn of_row(row: &crate::row::RowRecord<'_>) -> Self {
        Self {
            host: row.host.to_string(),
            query: row.name.to_string(),
            row: row.columns_map(),
            first_seen: row.unix_time,
            last_seen: row.unix_time,
            count: 1,
        }
    }
}

/// One rule's state, in one worker.
pub trait Detector: Send {
    /// A row the rule's condition picked.
    fn observe(&mut self, event: &Event<'_>, out: &mut Vec<Alert>);
    /// The clock (the latest row time seen, or the wall clock when idle)
    /// reached `now`: close what is due.
    fn tick(&mut self, _now: u64, _out: &mut Vec<Alert>) {}
    /// Entries of state held, for the state gauge.
    fn size(&self) -> usize {
        0
    }
}

/// A kind's settings, checked and bound to a rule set's columns; makes each
/// worker's detector.
pub trait Kind: Send + Sync + std::fmt::Debug {
    fn detector(&self) -> Box<dyn Detector>;
}

/// Which kind a rule is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindName {
    #[default]
    Match,
    Threshold,
    Indicator,
    NewTerms,
    Sequence,
}
