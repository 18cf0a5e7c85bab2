//! The Kafka sink: an idempotent `acks=all` producer in front of the disk
//! spool. Records go straight to the broker while it answers; when it does
//! not, they go to the spool, and while the spool holds anything, new records
//! queue behind it so the topic sees them in order.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::{watch, Mutex, Notify};
use tracing::{debug, info, warn};

use super::metrics::Metrics;
use super::spool::{Record, Spool};
use crate::config::Config;
use crate::error::AgentError;

#[derive(Clone)]
pub struct Sink {
    inner: Arc<Inner>,
}

struct Inner {
    /// Replaced when librdkafka declares it fatally failed (an idempotent
    /// producer does after in-flight records time out during an outage).
    producer: std::sync::RwLock<FutureProducer>,
    config: rdkafka::ClientConfig,
    topic: String,
    spool: Spool,
    metrics: Metrics,
    /// Wakes the drainer when records were spooled.
    spooled: Notify,
    /// Serializes senders so "spool empty → send direct" cannot race a
    /// concurrent spooling and reorder records.
    order: Mutex<()>,
}

impl Sink {
    pub fn new(config: &Config, topic: &str, metrics: Metrics) -> Result<Self, AgentError> {
        let mut cfg = config.kafka.client_config();
        cfg.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                config.spool.delivery_timeout.as_millis().to_string(),
            );
        // Operator-given properties win over ours.
        for (k, v) in &config.kafka.properties {
            cfg.set(k, v);
        }
        let producer: FutureProducer = cfg.create()?;
        let spool = Spool::open(&config.state_dir.join("spool"), config.spool.max_bytes)?;
        let sink = Self {
            inner: Arc::new(Inner {
                producer: std::sync::RwLock::new(producer),
                config: cfg,
                topic: topic.to_string(),
                spool,
                metrics,
                spooled: Notify::new(),
                order: Mutex::new(()),
            }),
        };
        sink.update_gauges();
        Ok(sink)
    }

    /// Records waiting on disk.
    pub fn spool_depth(&self) -> u64 {
        self.inner.spool.depth().0
    }

    fn update_gauges(&self) {
        let (records, bytes) = self.inner.spool.depth();
        self.inner.metrics.spool_records.set(records as i64);
        self.inner.metrics.spool_bytes.set(bytes as i64);
    }

    /// Sends records in order; whatever the broker does not take in time is
    /// spooled. Returns once every record is acknowledged or on disk.
    pub async fn send(&self, records: Vec<Record>) -> Result<(), AgentError> {
        let _order = self.inner.order.lock().await;
        if !self.inner.spool.is_empty() {
            return self.spool(&records);
        }
        let failed = self.produce(&records).await;
        if failed.is_empty() {
            return Ok(());
        }
        let failed: Vec<Record> = failed.into_iter().map(|i| records[i].clone()).collect();
        self.spool(&failed)
    }

    fn spool(&self, records: &[Record]) -> Result<(), AgentError> {
        let dropped = self.inner.spool.append(records)?;
        if dropped > 0 {
            self.inner.metrics.spool_dropped.inc_by(dropped);
            warn!(dropped, "spool full: records dropped");
        }
        self.update_gauges();
        self.inner.spooled.notify_one();
        Ok(())
    }

    fn producer(&self) -> FutureProducer {
        self.inner
            .producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts a new producer after failed deliveries. An idempotent producer
    /// whose records timed out carries sequence numbers and a producer id the
    /// broker may no longer accept (a restarted broker answers with errors
    /// forever, and librdkafka may declare it fatally failed); a fresh one
    /// starts clean. Nothing is in flight here: every delivery has resolved.
    fn renew_producer(&self) {
        match self.inner.config.create::<FutureProducer>() {
            Ok(fresh) => {
                *self
                    .inner
                    .producer
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = fresh;
                debug!("started a new Kafka producer");
            }
            Err(e) => warn!(error = %e, "cannot create a Kafka producer"),
        }
    }

    /// Produces every record and waits for the broker; returns the indexes of
    /// the records that were not delivered.
    async fn produce(&self, records: &[Record]) -> Vec<usize> {
        let inner = &self.inner;
        let producer = self.producer();
        let mut pending = Vec::with_capacity(records.len());
        let mut failed = Vec::new();
        let mut first_error = None;
        for (i, rec) in records.iter().enumerate() {
            let fr = FutureRecord::to(&inner.topic)
                .key(&rec.key)
                .payload(&rec.value);
            match producer.send_result(fr) {
                Ok(fut) => pending.push((i, fut)),
                Err((e, _)) => {
                    first_error.get_or_insert(e.to_string());
                    failed.push(i);
                }
            }
        }
        let (idx, futs): (Vec<usize>, Vec<_>) = pending.into_iter().unzip();
        for (i, result) in idx.into_iter().zip(join_all(futs).await) {
            match result {
                Ok(Ok(_)) => inner.metrics.records_sent.inc(),
                Ok(Err((e, _))) => {
                    first_error.get_or_insert(e.to_string());
                    failed.push(i);
                }
                Err(_) => failed.push(i),
            }
        }
        if !failed.is_empty() {
            inner.metrics.delivery_errors.inc_by(failed.len() as u64);
            let error = first_error.unwrap_or_default();
            warn!(failed = failed.len(), %error, "records not delivered");
            failed.sort_unstable();
            self.renew_producer();
        }
        failed
    }

    /// Sends spooled segments, oldest first, until shutdown.
    pub async fn drain(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let next = match self.inner.spool.oldest() {
                Ok(n) => n,
                Err(e) => {
                    warn!(error = %e, "cannot read the spool");
                    None
                }
            };
            let Some((seq, records)) = next else {
                tokio::select! {
                    _ = self.inner.spooled.notified() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            let failed = self.produce(&records).await;
            if failed.is_empty() {
                if let Err(e) = self.inner.spool.remove(seq) {
                    warn!(error = %e, "cannot remove a drained spool segment");
                }
                info!(records = records.len(), "spooled records delivered");
                self.update_gauges();
                backoff = Duration::from_secs(1);
            } else {
                warn!(failed = failed.len(), retry_in = ?backoff, "broker still unreachable; keeping the spool");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(8));
            }
        }
    }

    /// Waits for in-flight records before the agent exits.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer().flush(timeout) {
            warn!(error = %e, "records still in flight at shutdown");
        }
    }
}
