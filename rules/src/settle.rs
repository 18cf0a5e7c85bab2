//! What follows a worker's matches once they are out of its hands: each is
//! counted and logged, the suppression group it opened or closed becomes
//! savable, the state is written and the settled batches' offsets are
//! stored. And before the group takes partitions away from a worker, its
//! outbox is drained, so the next owner never starts past matches still on
//! their way.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;
use sweep_proto::MatchRecord;
use tracing::{info, warn};

use crate::checkpoint::Memory;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, Settled};
use crate::ruleset::RuleSet;

/// The rule raised for records not from the agent they name.
pub const FORGED_RULE: &str = "sweep-forged-results";

/// How long a worker giving up partitions waits for its matches to be
/// acknowledged (past it, they are still sent, but the next owner may read
/// on before they are).
const DRAIN_ON_REVOKE: Duration = Duration::from_secs(10);

pub struct Settler {
    pub rules: Arc<RuleSet>,
    pub memory: Arc<Mutex<Memory>>,
    pub metrics: Metrics,
}

impl Settler {
    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A match is out of our hands (delivered, or refused for good and
    /// logged): a suppression group it opened or closed may now be saved.
    fn settled(&self, m: &MatchRecord) {
        let by: &[String] = if m.rule_id == FORGED_RULE {
            &[]
        } else {
            match self.rules.suppression(&m.rule_id) {
                Some((_, by)) => by,
                None => return,
            }
        };
        self.memory().suppressor.delivered(m, by);
    }

    /// Takes in what the broker answered: counts and logs each match
    /// settled, then writes the state and stores the offsets of the batches
    /// now wholly out, oldest first.
    pub fn settle<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        outbox: &mut Outbox,
        now: Instant,
    ) {
        let done = outbox.poll(now, |s| match s {
            Settled::Delivered(m) => {
                self.metrics.matches_sent.inc();
                self.metrics
                    .matches
                    .with_label_values(&[&m.rule_id, &m.severity])
                    .inc();
                info!(rule = %m.rule_id, host = %m.host, severity = %m.severity, count = m.count, "match");
                self.settled(m);
            }
            Settled::Refused(m, payload, e) => {
                self.metrics.matches_refused.inc();
                warn!(rule = %m.rule_id, error = %e, r#match = %payload, "the broker refused a match for good; logged here instead");
                self.settled(m);
            }
        });
        if done.is_empty() {
            return;
        }
        if let Err(e) = self.memory().checkpoint(&done) {
            // Not fatal: at-least-once still holds (a repeat may be
            // reported again after a restart).
            warn!(error = %e, "cannot write the checkpoint");
        }
        for (topic, partition, offset) in done {
            if let Err(e) = consumer.store_offset(&topic, partition, offset) {
                warn!(error = %e, topic, partition, "cannot store the offset");
            }
        }
    }

    /// Settles until the outbox is empty or `deadline` (pausing between
    /// polls, longer while nothing comes); whether it emptied.
    pub fn drain<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        outbox: &mut Outbox,
        deadline: Instant,
    ) -> bool {
        let mut pause = Duration::from_millis(1);
        loop {
            self.settle(consumer, outbox, Instant::now());
            if outbox.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// A worker's consumer context: drains the worker's outbox before
/// partitions are revoked (librdkafka then commits the offsets stored).
pub struct Revoker {
    pub settler: Arc<Settler>,
    pub outbox: Arc<Mutex<Outbox>>,
}

impl ClientContext for Revoker {}

impl ConsumerContext for Revoker {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if !matches!(rebalance, Rebalance::Revoke(_)) {
            return;
        }
        // The worker never holds its outbox while it polls the consumer
        // (which runs this), so this lock is free.
        let mut outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        let waiting = outbox.len();
        if !self
            .settler
            .drain(consumer, &mut outbox, Instant::now() + DRAIN_ON_REVOKE)
        {
            warn!(
                batches = outbox.len(),
                of = waiting,
                "partitions revoked with matches still unacknowledged; they are still sent"
            );
        }
    }
}
