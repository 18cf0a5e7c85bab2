//! One worker's matches on their way to the broker, batch by batch. A
//! batch's offsets may be stored only once every match it raised is out of
//! our hands (delivered, or refused for good and logged), and only after
//! every earlier batch's: storing an offset past an undelivered match would
//! lose it. The worker goes on reading while the broker acknowledges, instead
//! of waiting for each batch's acks; a send that fails is tried again a
//! second later, for as long as it takes.

use std::collections::VecDeque;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use sweep_proto::{topics, MatchRecord};
use tracing::warn;

use crate::sender::{is_queue_full, Outcome, Sender};

/// A failed send is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// A full librdkafka queue is tried again after this long.
const QUEUE_FULL_AFTER: Duration = Duration::from_millis(5);

/// The last offset read of one partition: `(topic, partition, offset)`.
pub type Offset = (String, i32, i64);

/// How a match fared, for the caller to count and log.
pub enum Settled<'a> {
    Delivered(&'a MatchRecord),
    /// The broker refused it for good (too large, not authorised).
    Refused(&'a MatchRecord, &'a str, KafkaError),
}

enum State {
    /// To be sent at or after this time.
    Unsent(Instant),
    Out,
    Settled,
}

struct Batch {
    id: u64,
    matches: Vec<MatchRecord>,
    payloads: Vec<String>,
    states: Vec<State>,
    /// Matches not yet settled.
    open: usize,
    offsets: Vec<Offset>,
}

pub struct Outbox {
    sender: Arc<Sender>,
    to: mpsc::Sender<Outcome>,
    from: mpsc::Receiver<Outcome>,
    batches: VecDeque<Batch>,
    next: u64,
    /// Matches waiting to be (re)sent, across batches.
    unsent: usize,
}

impl Outbox {
    pub fn new(sender: Arc<Sender>) -> Self {
        let (to, from) = mpsc::channel();
        Self {
            sender,
            to,
            from,
            batches: VecDeque::new(),
            next: 0,
            unsent: 0,
        }
    }

    /// Batches not yet settled.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// A batch's matches, sent now, and the offsets it may store once they
    /// are out.
    pub fn push(&mut self, matches: Vec<MatchRecord>, offsets: Vec<Offset>, now: Instant) {
        let payloads = matches
            .iter()
            .map(|m| serde_json::to_string(m).expect("matches serialize"))
            .collect();
        let n = matches.len();
        self.batches.push_back(Batch {
            id: self.next,
            states: (0..n).map(|_| State::Unsent(now)).collect(),
            open: n,
            matches,
            payloads,
            offsets,
        });
        self.next += 1;
        self.unsent += n;
    }

    /// Sends what is due, takes the reports in, and returns the offsets of
    /// the batches now settled, oldest first. `settled` hears of each match
    /// as it settles.
    pub fn poll(&mut self, now: Instant, mut settled: impl FnMut(Settled<'_>)) -> Vec<Offset> {
        if self.unsent > 0 {
            self.send_due(now, &mut settled);
        }
        self.sender.poll();
        while let Ok(o) = self.from.try_recv() {
            let Some(first) = self.batches.front().map(|b| b.id) else {
                continue;
            };
            let Some(b) = o
                .batch
                .checked_sub(first)
                .and_then(|at| self.batches.get_mut(at as usize))
            else {
                continue;
            };
            if !matches!(b.states.get(o.index), Some(State::Out)) {
                continue;
            }
            let m = &b.matches[o.index];
            match o.result {
                Ok(()) => {
                    b.states[o.index] = State::Settled;
                    b.open -= 1;
                    settled(Settled::Delivered(m));
                }
                Err(e) if topics::is_permanent(&e) => {
                    b.states[o.index] = State::Settled;
                    b.open -= 1;
                    settled(Settled::Refused(m, &b.payloads[o.index], e));
                }
                Err(e) => {
                    warn!(rule = %m.rule_id, error = %e, "match not delivered; retrying");
                    b.states[o.index] = State::Unsent(now + RETRY_AFTER);
                    self.unsent += 1;
                }
            }
        }
        let mut done = Vec::new();
        while self.batches.front().is_some_and(|b| b.open == 0) {
            if let Some(b) = self.batches.pop_front() {
                done.extend(b.offsets);
            }
        }
        done
    }

    fn send_due(&mut self, now: Instant, settled: &mut impl FnMut(Settled<'_>)) {
        for b in &mut self.batches {
            for (i, state) in b.states.iter_mut().enumerate() {
                let State::Unsent(at) = *state else { continue };
                if at > now {
                    continue;
                }
                let m = &b.matches[i];
                match self
                    .sender
                    .send(&m.rule_id, &b.payloads[i], (b.id, i), &self.to)
                {
                    Ok(()) => {
                        *state = State::Out;
                        self.unsent -= 1;
                    }
                    Err(e) if is_queue_full(&e) => *state = State::Unsent(now + QUEUE_FULL_AFTER),
                    Err(e) if topics::is_permanent(&e) => {
                        // Refused before it left: too large, say.
                        *state = State::Settled;
                        self.unsent -= 1;
                        b.open -= 1;
                        settled(Settled::Refused(m, &b.payloads[i], e));
                    }
                    Err(e) => {
                        warn!(rule = %m.rule_id, error = %e, "match not queued; retrying");
                        *state = State::Unsent(now + RETRY_AFTER);
                    }
                }
            }
        }
    }
}
