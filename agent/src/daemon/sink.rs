//! The Kafka sink: the disk spool in front of an idempotent `acks=all`
//! producer. [`Sink::send`] only writes to the spool, so queries and
//! schedules never wait on the broker; [`Sink::drain`] sends the spool in
//! order and moves its cursor past what the broker acknowledged.
//!
//! Broker errors are sorted: a transient one (broker down, timeout, leader
//! moving) keeps the records and retries with back-off; a permanent one
//! (record too large, not authorised, invalid) sends that record to the
//! quarantine, counted and logged with its query name, and the records
//! behind it flow on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::ClientContext;
use sweep_proto::time::unix_now;
use sweep_proto::topics;
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use super::metrics::Metrics;
use super::quarantine::{self, Quarantine};
use super::spool::{Record, Spool};
use crate::config::Config;
use crate::error::AgentError;

/// How many spooled records one produce round sends.
const BATCH_RECORDS: usize = 5_000;
const BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// Delivery reports, each to the [`Sink::produce`] round that sent the
/// record, by its place in the round. (Not rdkafka's `FutureProducer`: its
/// polling thread waits in 100 ms steps whose last millisecond is a busy
/// loop, about 1 % of a core on an idle host.)
struct Reports;

type Report = (usize, KafkaResult<()>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<(usize, tokio::sync::mpsc::UnboundedSender<Report>)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (i, to) = *opaque;
        let _ = to.send((i, result.as_ref().map(drop).map_err(|(e, _)| e.clone())));
    }
}

type Producer = Arc<BaseProducer<Reports>>;

/// While a round waits for its reports: the first and the longest pause
/// between polls (doubling while nothing comes).
const POLL_FIRST: Duration = Duration::from_micros(200);
const POLL_LAST: Duration = Duration::from_millis(20);

#[derive(Clone)]
pub struct Sink {
    inner: Arc<Inner>,
}

struct Inner {
    /// Replaced after failed deliveries (an idempotent producer whose records
    /// timed out carries sequence numbers the broker may no longer accept).
    producer: std::sync::RwLock<Producer>,
    config: rdkafka::ClientConfig,
    topic: String,
    spool: Spool,
    quarantine: Quarantine,
    metrics: Metrics,
    /// Wakes the drainer when records were spooled.
    spooled: Notify,
    /// Whether the last delivery attempt reached the broker.
    delivering: AtomicBool,
    /// Whether the last write to the spool kept every record.
    accepting: AtomicBool,
    quarantined: AtomicU64,
}

/// What the broker made of one record.
#[derive(Debug)]
enum Outcome {
    Delivered,
    /// Will never be accepted: quarantine it.
    Refused(String),
    /// May be accepted later: keep it and retry.
    Failed(String),
}

fn outcome(e: &KafkaError) -> Outcome {
    if topics::is_permanent(e) {
        Outcome::Refused(e.to_string())
    } else {
        Outcome::Failed(e.to_string())
    }
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
        let producer = Arc::new(cfg.create_with_context(Reports)?);
        let spool = Spool::open(&config.state_dir.join("spool"), config.spool.max_bytes)?;
        let quarantine = Quarantine::new(
            &config.state_dir.join("quarantine.jsonl"),
            config.spool.max_bytes,
        );
        let sink = Self {
            inner: Arc::new(Inner {
                producer: std::sync::RwLock::new(producer),
                config: cfg,
                topic: topic.to_string(),
                spool,
                quarantine,
                metrics,
                spooled: Notify::new(),
                delivering: AtomicBool::new(true),
                accepting: AtomicBool::new(true),
                quarantined: AtomicU64::new(0),
            }),
        };
        sink.update_gauges();
        Ok(sink)
    }

    /// Records waiting on disk.
    pub fn spool_depth(&self) -> u64 {
        self.inner.spool.depth().0
    }

    /// Records set aside because the broker refused them for good.
    pub fn quarantined(&self) -> u64 {
        self.inner.quarantined.load(Ordering::Relaxed)
    }

    /// Whether the spool took every record of the last write (`/ready`).
    pub fn accepts_records(&self) -> bool {
        self.inner.accepting.load(Ordering::Relaxed)
    }

    /// Whether records are reaching the broker.
    pub fn is_delivering(&self) -> bool {
        self.inner.delivering.load(Ordering::Relaxed)
    }

    fn update_gauges(&self) {
        let (records, bytes) = self.inner.spool.depth();
        self.inner.metrics.spool_records.set(records as i64);
        self.inner.metrics.spool_bytes.set(bytes as i64);
    }

    /// Writes records to the spool, in order, synced to disk; the drainer
    /// sends them. Never waits on the broker. A full spool drops records
    /// (counted and logged); only a disk error fails.
    pub fn send(&self, records: &[Record]) -> Result<(), AgentError> {
        if records.is_empty() {
            return Ok(());
        }
        let dropped = match self.inner.spool.append(records) {
            Ok(d) => d,
            Err(e) => {
                self.inner.accepting.store(false, Ordering::Relaxed);
                return Err(e);
            }
        };
        self.inner.accepting.store(dropped == 0, Ordering::Relaxed);
        if dropped > 0 {
            self.inner.metrics.spool_dropped.inc_by(dropped);
            warn!(dropped, "spool full: records dropped");
        }
        self.update_gauges();
        self.inner.spooled.notify_one();
        Ok(())
    }

    fn producer(&self) -> Producer {
        self.inner
            .producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts a new producer after failed deliveries: one whose records timed
    /// out may be fatally failed, or hold a producer id a restarted broker no
    /// longer knows. Nothing is in flight here: every delivery has resolved.
    fn renew_producer(&self) {
        match self.inner.config.create_with_context(Reports) {
            Ok(fresh) => {
                *self
                    .inner
                    .producer
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
                debug!("started a new Kafka producer");
            }
            Err(e) => warn!(error = %e, "cannot create a Kafka producer"),
        }
    }

    /// Produces every record and waits for the broker's answers (each
    /// record gets one within `message.timeout.ms`).
    async fn produce(&self, records: &[&Record]) -> Vec<Outcome> {
        let producer = self.producer();
        let (to, mut from) = tokio::sync::mpsc::unbounded_channel();
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(records.len());
        let mut pending = 0;
        for (i, rec) in records.iter().enumerate() {
            let topic = rec.topic.as_deref().unwrap_or(&self.inner.topic);
            let mut br = BaseRecord::with_opaque_to(topic, Box::new((i, to.clone())))
                .key(&rec.key)
                .payload(&rec.value);
            if let Some(p) = rec.partition {
                br = br.partition(p);
            }
            match producer.send(br) {
                Ok(()) => {
                    outcomes.push(None);
                    pending += 1;
                }
                Err((e, _)) => outcomes.push(Some(outcome(&e))),
            }
        }
        drop(to);
        let mut pause = POLL_FIRST;
        while pending > 0 {
            producer.poll(Duration::ZERO);
            let mut got = false;
            loop {
                match from.try_recv() {
                    Ok((i, result)) => {
                        got = true;
                        let o = match result {
                            Ok(()) => Outcome::Delivered,
                            Err(e) => outcome(&e),
                        };
                        if outcomes[i].replace(o).is_none() {
                            pending -= 1;
                        }
                    }
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                    // Every record's report has come or never will.
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                        pending = 0;
                        break;
                    }
                }
            }
            if got {
                pause = POLL_FIRST;
            } else if pending > 0 {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(POLL_LAST);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Failed("no answer".into())))
            .collect()
    }

    fn quarantine(&self, record: &Record, error: &str) {
        let query = quarantine::query_name(record);
        let entry = quarantine::Entry {
            at: unix_now(),
            error: error.to_string(),
            query: query.clone(),
            record: record.clone(),
        };
        match self.inner.quarantine.put(&entry) {
            Ok(true) => {
                self.inner.quarantined.fetch_add(1, Ordering::Relaxed);
                self.inner.metrics.records_quarantined.inc();
                warn!(query = %query, error, bytes = record.value.len(), "the broker refused a record for good; quarantined");
            }
            Ok(false) => {
                self.inner.metrics.spool_dropped.inc();
                warn!(query = %query, error, "the broker refused a record and the quarantine is full; dropped");
            }
            Err(e) => {
                self.inner.metrics.spool_dropped.inc();
                warn!(query = %query, error = %e, "cannot quarantine a refused record; dropped");
            }
        }
    }

    /// One round: sends what the spool holds past its cursor and moves the
    /// cursor over everything acknowledged or quarantined. Returns whether
    /// the round made progress, and the first transient error.
    async fn deliver_once(&self) -> Result<(bool, Option<String>), AgentError> {
        let spool = &self.inner.spool;
        let from = spool.acked();
        let batch = spool.read(from, BATCH_RECORDS, BATCH_BYTES)?;
        if batch.corrupt > 0 {
            self.inner.metrics.spool_corrupt.inc_by(batch.corrupt);
            warn!(lines = batch.corrupt, "skipped undecodable spool lines");
        }
        if batch.records.is_empty() {
            if batch.end != from {
                spool.ack(batch.end, batch.corrupt, 0)?;
                return Ok((true, None));
            }
            return Ok((false, None));
        }
        let records: Vec<&Record> = batch.records.iter().map(|(r, _)| r).collect();
        let outcomes = self.produce(&records).await;
        let mut to = from;
        let (mut n, mut bytes) = (batch.corrupt, 0u64);
        let mut transient = None;
        for ((rec, end), outcome) in batch.records.iter().zip(&outcomes) {
            match outcome {
                Outcome::Delivered => self.inner.metrics.records_sent.inc(),
                Outcome::Refused(e) => self.quarantine(rec, e),
                Outcome::Failed(e) => {
                    transient = Some(e.clone());
                    break;
                }
            }
            to = *end;
            n += 1;
            bytes += (rec.key.len() + rec.value.len()) as u64;
        }
        if transient.is_none() {
            to = batch.end;
        } else {
            let failed = outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Failed(_)))
                .count();
            self.inner.metrics.delivery_errors.inc_by(failed as u64);
            self.renew_producer();
        }
        spool.ack(to, n, bytes)?;
        self.update_gauges();
        Ok((to != from, transient))
    }

    /// Sends the spool, oldest first, until `shutdown`; then keeps trying
    /// for at most `grace` so what is pending leaves before the agent exits.
    /// Whatever is still undelivered stays on disk for the next start.
    pub async fn drain(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let mut backoff = Duration::from_millis(250);
        let mut stop_at: Option<tokio::time::Instant> = None;
        loop {
            if stop_at.is_none() && *shutdown.borrow() {
                stop_at = Some(tokio::time::Instant::now() + grace);
            }
            if stop_at.is_some_and(|t| tokio::time::Instant::now() >= t) {
                return;
            }
            match self.deliver_once().await {
                Ok((_, None)) if self.inner.spool.is_empty() => {
                    self.inner.delivering.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(250);
                    if stop_at.is_some() {
                        return;
                    }
                    // Wait for more; the timeout covers a missed wake-up.
                    tokio::select! {
                        _ = self.inner.spooled.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Ok((_, None)) => {
                    self.inner.delivering.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(250);
                }
                Ok((progress, Some(error))) => {
                    self.inner.delivering.store(progress, Ordering::Relaxed);
                    let (waiting, _) = self.inner.spool.depth();
                    warn!(%error, waiting, retry_in = ?backoff, "broker not taking records; they wait in the spool");
                    self.pause(backoff, stop_at, &mut shutdown).await;
                    backoff = (backoff * 2).min(Duration::from_secs(8));
                }
                Err(e) => {
                    warn!(error = %e, "cannot read the spool");
                    self.pause(backoff, stop_at, &mut shutdown).await;
                    backoff = (backoff * 2).min(Duration::from_secs(8));
                }
            }
        }
    }

    async fn pause(
        &self,
        backoff: Duration,
        stop_at: Option<tokio::time::Instant>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let mut until = tokio::time::Instant::now() + backoff;
        if let Some(stop) = stop_at {
            until = until.min(stop);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = shutdown.changed(), if stop_at.is_none() => {}
        }
    }

    /// Logs what is left for the next start.
    pub fn report_pending(&self) {
        let (records, bytes) = self.inner.spool.depth();
        if records > 0 {
            info!(
                records,
                bytes, "undelivered records stay in the spool for the next start"
            );
        }
    }
}
