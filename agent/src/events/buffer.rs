//! One event table's buffer: rows in arrival order, each numbered (the `eid`)
//! and timed, kept for `expiry` and at most `max` of them. Past either bound
//! the oldest go first, and are counted.

use std::collections::VecDeque;

use crate::tables::Row;

/// A buffered event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Numbered from 1 in arrival order, per table; never reused while the
    /// agent runs.
    pub eid: u64,
    /// Unix seconds when the event was received.
    pub time: u64,
    pub row: Row,
}

#[derive(Debug)]
pub struct Buffer {
    events: VecDeque<Event>,
    next_eid: u64,
    expiry_secs: u64,
    max: usize,
    /// Events taken in, over the agent's life.
    pub received: u64,
    /// Events pushed out by `max` before they expired.
    pub dropped: u64,
    /// Events that reached their expiry.
    pub expired: u64,
}

impl Buffer {
    pub fn new(expiry_secs: u64, max: usize) -> Self {
        Self {
            events: VecDeque::new(),
            next_eid: 1,
            expiry_secs,
            max,
            received: 0,
            dropped: 0,
            expired: 0,
        }
    }

    /// Adds an event received at `time` (unix seconds); its eid is returned.
    /// Over `max`, the oldest event is dropped to make room.
    pub fn push(&mut self, time: u64, row: Row) -> u64 {
        self.expire(time);
        let eid = self.next_eid;
        self.next_eid += 1;
        self.received += 1;
        if self.max == 0 {
            self.dropped += 1;
            return eid;
        }
        while self.events.len() >= self.max {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(Event { eid, time, row });
        eid
    }

    /// Forgets events older than the expiry at `now`.
    pub fn expire(&mut self, now: u64) {
        let horizon = now.saturating_sub(self.expiry_secs);
        while self.events.front().is_some_and(|e| e.time < horizon) {
            self.events.pop_front();
            self.expired += 1;
        }
    }

    /// Events with an eid above `after`, oldest first.
    pub fn since(&self, after: u64) -> impl Iterator<Item = &Event> {
        // Eids ascend, so the first one past `after` is found by bisection.
        let start = self.events.partition_point(|e| e.eid <= after);
        self.events.range(start..)
    }

    /// The eid the next event will get, less one: the last one given.
    pub fn last_eid(&self) -> u64 {
        self.next_eid - 1
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sweep_proto::schema::socket_events::TABLE;

    fn row(port: i64) -> Row {
        let mut r = Row::empty(TABLE.columns);
        r.set("remote_port", port);
        r
    }

    fn ports<'a>(events: impl Iterator<Item = &'a Event>) -> Vec<i64> {
        events
            .map(|e| match e.row.get("remote_port") {
                Some(rusqlite::types::Value::Integer(p)) => *p,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn over_max_the_oldest_are_dropped_and_counted() {
        let mut b = Buffer::new(3600, 3);
        for p in 1..=5 {
            b.push(1000, row(p));
        }
        assert_eq!(b.len(), 3);
        assert_eq!((b.received, b.dropped, b.expired), (5, 2, 0));
        assert_eq!(ports(b.since(0)), [3, 4, 5]);
        assert_eq!(b.last_eid(), 5);
    }

    #[test]
    fn events_expire_and_since_reads_past_an_eid() {
        let mut b = Buffer::new(10, 100);
        b.push(100, row(1));
        b.push(105, row(2));
        b.push(111, row(3)); // 100 is now older than 111 - 10
        assert_eq!(ports(b.since(0)), [2, 3]);
        assert_eq!(b.expired, 1);
        assert_eq!(ports(b.since(2)), [3]);
        assert_eq!(ports(b.since(3)), Vec::<i64>::new());
        b.expire(200);
        assert!(b.is_empty());
        assert_eq!(b.expired, 3);
        // Numbering goes on after everything expired.
        assert_eq!(b.push(200, row(4)), 4);
    }

    #[test]
    fn a_zero_max_keeps_nothing_and_counts_every_event() {
        let mut b = Buffer::new(10, 0);
        b.push(1, row(1));
        assert!(b.is_empty());
        assert_eq!(b.dropped, 1);
    }
}
