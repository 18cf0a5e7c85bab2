//! The consume → evaluate → produce → commit loop, on several workers.
//!
//! Each worker is a member of the consumer group with its own consumer, so
//! the broker spreads the partitions of `sweep.results` and `sweep.hunts`
//! over the workers (and over other sweep-rules processes in the group); a
//! worker is an OS thread, so the rule evaluation runs on every core. A
//! worker takes the records waiting for it in a batch (up to
//! `batch_records`), reads each row once ([`crate::row::RowRecord`]),
//! evaluates the rules that watch its query, hands the batch's matches to its
//! [`Outbox`] and reads on; a batch's offsets are stored only once its
//! matches and every earlier batch's are acknowledged: a crash re-evaluates
//! rather than loses (at-least-once). State that follows rows (suppression
//! windows, open runs for integrity checking) lives in the worker that holds
//! their partition; agents key their records by host, so one host's rows
//! meet in one worker.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use sweep_proto::signing::TrustedKeys;
use sweep_proto::text::printable;
use sweep_proto::time::unix_now;
use sweep_proto::{topics, MatchRecord, ResultsRecord};
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use crate::checkpoint::Memory;
use crate::config::Config;
use crate::integrity::{RowRun, Runs, Verdict};
use crate::metrics::Metrics;
use crate::outbox::{Offset, Outbox};
use crate::pins;
use crate::pipeline::Pipeline;
use crate::ruleset::RuleSet;
use crate::sender::Sender;
use crate::settle::{Revoker, Settler, FORGED_RULE};
use crate::RulesError;

/// Runs until `shutdown` turns true.
pub async fn run(
    config: Config,
    rules: RuleSet,
    shutdown: watch::Receiver<bool>,
) -> Result<(), RulesError> {
    let metrics = Metrics::new()?;
    // /live and /metrics answer from the start, also while the broker is
    // waited for.
    if !config.metrics_listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&config.metrics_listen)
            .await
            .map_err(|source| RulesError::Listen {
                addr: config.metrics_listen.clone(),
                source,
            })?;
        tokio::spawn(metrics.clone().serve(listener, shutdown.clone()));
    }
    if !broker_ready(&config, shutdown.clone()).await? {
        return Ok(()); // stopped while waiting
    }
    let mut pcfg = config.kafka.client_config();
    pcfg.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    for (k, v) in &config.kafka.properties {
        pcfg.set(k, v);
    }
    let sender = Arc::new(Sender::new(&pcfg, topics::MATCHES)?);
    let checking = Checking::start(&config, shutdown.clone())?.map(Arc::new);
    let workers = config.workers();
    info!(rules = rules.len(), group = %config.group_id, workers, "evaluating rules");
    let rules = Arc::new(rules);
    let state_dir =
        (!config.state_dir.as_os_str().is_empty()).then_some(config.state_dir.as_path());
    let memory = Arc::new(Mutex::new(Memory::open(state_dir)?));
    let mut running = Vec::new();
    let settler = Arc::new(Settler {
        rules: rules.clone(),
        memory: memory.clone(),
        metrics: metrics.clone(),
    });
    for n in 0..workers {
        let outbox = Arc::new(Mutex::new(Outbox::new(sender.clone())));
        let consumer = consumer(
            &config,
            Revoker {
                settler: settler.clone(),
                outbox: outbox.clone(),
            },
        )?;
        let worker = Worker {
            consumer,
            outbox,
            settler: settler.clone(),
            batch: config.batch_records.max(1),
            eval: Evaluator {
                pipeline: Pipeline::new(rules.clone()),
                metrics: metrics.clone(),
                checking: checking.clone(),
                runs: Runs::new(config.integrity.seal_timeout),
                memory: memory.clone(),
                shutdown: shutdown.clone(),
                open_runs: 0,
                detector_entries: 0,
            },
        };
        let thread = std::thread::Builder::new()
            .name(format!("rules-{n}"))
            .spawn(move || worker.run())
            .map_err(|source| RulesError::Listen {
                addr: "a worker thread".into(),
                source,
            })?;
        running.push(thread);
    }
    metrics.ready.set(1);
    // The workers return on shutdown; wait for them off the runtime.
    tokio::task::spawn_blocking(move || {
        for t in running {
            let _ = t.join();
        }
    })
    .await
    .ok();
    Ok(())
}

/// Makes sure sweep's topics exist, waiting for a broker that does not
/// answer yet (started at the same time, restarting) with a growing pause:
/// the daemon comes up with the broker instead of exiting. False when
/// shutdown came first; other errors (a refused topic) are returned.
async fn broker_ready(
    config: &Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<bool, RulesError> {
    let mut pause = Duration::from_millis(500);
    loop {
        let tried = topics::ensure(
            &config.kafka,
            &[topics::RESULTS, topics::HUNTS, topics::MATCHES],
        )
        .await;
        match tried {
            Ok(()) => return Ok(true),
            Err(e @ sweep_proto::ProtoError::Unreachable { .. }) => {
                warn!(error = %e, retry_in = ?pause, "the broker does not answer yet");
            }
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(false),
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// One group member's consumer, subscribed to scheduled rows and hunts'
/// rows (for rules on `hunt:*`).
fn consumer(config: &Config, context: Revoker) -> Result<BaseConsumer<Revoker>, RulesError> {
    let mut ccfg = config.kafka.client_config();
    ccfg.set("group.id", &config.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        // Offsets are stored by hand once matches are delivered.
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A fetch that finds nothing new is answered after this long: the
        // floor of a row's time to a match (librdkafka's default is 500 ms).
        .set("fetch.wait.max.ms", "100");
    for (k, v) in &config.kafka.properties {
        ccfg.set(k, v);
    }
    let consumer: BaseConsumer<Revoker> = ccfg.create_with_context(context)?;
    consumer.subscribe(&[topics::RESULTS, topics::HUNTS])?;
    Ok(consumer)
}

/// One group member: its consumer, and what it evaluates with.
struct Worker {
    consumer: BaseConsumer<Revoker>,
    /// Shared with the consumer's context, which drains it before
    /// partitions are revoked; never held while polling the consumer.
    outbox: Arc<Mutex<Outbox>>,
    settler: Arc<Settler>,
    batch: usize,
    eval: Evaluator,
}

/// A worker's rules and the state that follows its partitions' rows.
struct Evaluator {
    pipeline: Pipeline,
    metrics: Metrics,
    checking: Option<Arc<Checking>>,
    runs: Runs,
    /// Suppression windows and applied offsets, shared by the process's
    /// workers: a host's hunt rows reach different partitions (each hunt
    /// has its own), and so different workers.
    memory: Arc<Mutex<Memory>>,
    shutdown: watch::Receiver<bool>,
    /// The open runs last added to the gauge.
    open_runs: i64,
    /// The detectors' entries last added to the gauge.
    detector_entries: i64,
}

impl Worker {
    fn run(self) {
        let Worker {
            consumer,
            outbox,
            settler,
            batch: max,
            eval: mut this,
        } = self;
        let mut last_tick = Instant::now();
        let mut last_lag = Instant::now();
        let mut lag: BTreeMap<String, i64> = BTreeMap::new();
        let mut batch: Vec<BorrowedMessage<'_>> = Vec::with_capacity(max);
        loop {
            if *this.shutdown.borrow() {
                break;
            }
            // Wait a little for the first record, then take what is ready;
            // briefly while matches are on their way, so their acks are
            // settled (the state written, offsets stored) soon after they
            // come, not a whole wait later: a crash in between would report
            // a first match again after the restart.
            let mut timeout = if lock(&outbox).is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::from_millis(5)
            };
            while batch.len() < max {
                match consumer.poll(timeout) {
                    Some(Ok(m)) => batch.push(m),
                    Some(Err(e)) => {
                        warn!(error = %e, "consume failed");
                        break;
                    }
                    None => break,
                }
                timeout = Duration::ZERO;
            }
            let now = Instant::now();
            // Already applied before a restart: their matches went out. One
            // look at the shared state per batch, not per record.
            let applied = this
                .memory()
                .applied_each(batch.iter().map(|m| (m.topic(), m.partition(), m.offset())));
            // Timed per batch: two clock reads a record cost more than a
            // row's rules.
            let started = Instant::now();
            let mut matches = Vec::new();
            for (msg, done) in batch.iter().zip(applied) {
                if done {
                    this.metrics.skipped.with_label_values(&["applied"]).inc();
                    continue;
                }
                matches.extend(this.evaluate(msg, now));
            }
            this.metrics
                .evaluation_seconds
                .inc_by(started.elapsed().as_secs_f64());
            let mut report = Vec::with_capacity(matches.len());
            for m in matches {
                if m.rule_id == FORGED_RULE {
                    report.extend(this.memory().suppressor.admit(m, FORGED_WINDOW, now));
                    continue;
                }
                let rules = this.pipeline.rules().clone();
                match rules.suppression(&m.rule_id) {
                    Some((window, by)) => {
                        report.extend(this.memory().suppressor.admit_by(m, by, window, now))
                    }
                    None => report.push(m),
                }
            }
            if now.duration_since(last_lag) >= LAG_EVERY {
                last_lag = now;
                let fresh = consumer_lag(&consumer);
                for topic in lag
                    .keys()
                    .chain(fresh.keys())
                    .cloned()
                    .collect::<BTreeSet<_>>()
                {
                    let (before, after) = (
                        lag.get(&topic).copied().unwrap_or(0),
                        fresh.get(&topic).copied().unwrap_or(0),
                    );
                    this.metrics
                        .lag
                        .with_label_values(&[&topic])
                        .add(after - before);
                }
                lag = fresh;
            }
            if now.duration_since(last_tick) >= Duration::from_secs(1) {
                last_tick = now;
                report.extend(this.tick(now));
            }
            // The last record of each partition in the batch: its offset
            // is stored once the batch's matches are out (from the end: a
            // batch spans a few partitions, so the list stays short).
            let mut offsets: Vec<Offset> = Vec::new();
            for msg in batch.iter().rev() {
                if !offsets
                    .iter()
                    .any(|(t, p, _)| *p == msg.partition() && t == msg.topic())
                {
                    offsets.push((msg.topic().to_string(), msg.partition(), msg.offset()));
                }
            }
            batch.clear();
            this.memory().evaluated(&offsets);
            {
                let mut outbox = lock(&outbox);
                if !report.is_empty() || !offsets.is_empty() {
                    outbox.push(report, offsets, now);
                }
                settler.settle(&consumer, &mut outbox, now);
            }
            // The broker is slow or gone: stop reading until it catches up.
            let mut pause = Duration::from_millis(1);
            while lock(&outbox).len() > BATCHES_OUT {
                if *this.shutdown.borrow() {
                    break;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
                settler.settle(&consumer, &mut lock(&outbox), Instant::now());
            }
        }
        // What the broker takes in the next moments is stored too.
        settler.drain(&consumer, &mut lock(&outbox), Instant::now() + DRAIN_FOR);
        // Commit what was stored before leaving the group.
        if let Err(e) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
            debug!(error = %e, "final commit");
        }
    }
}

impl Evaluator {
    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The matches one record raises.
    fn evaluate(&mut self, msg: &BorrowedMessage<'_>, now: Instant) -> Vec<MatchRecord> {
        self.metrics.records.inc();
        let payload = msg.payload().unwrap_or_default();
        if let Some((row, mut matches)) = self.pipeline.record(payload) {
            if self.checking.is_some() {
                let run = RowRun {
                    host: &row.host,
                    query: &row.name,
                    seq: row.seq,
                    unix_time: row.unix_time,
                };
                if let Some(v) = self.runs.row_of(msg.partition(), run, payload, now) {
                    matches.extend(judged(v, &self.metrics));
                }
            }
            return matches;
        }
        let runs = &mut self.runs;
        match msg.payload().map(ResultsRecord::from_json) {
            Some(Ok(ResultsRecord::Row(row))) => {
                // Valid, but not in the shape the fast reader takes (a
                // number where osquery writes a string, say).
                let mut matches = self.pipeline.rules().evaluate(&row);
                if self.checking.is_some() {
                    if let Some(v) = runs.row(msg.partition(), &row, payload, now) {
                        matches.extend(judged(v, &self.metrics));
                    }
                }
                matches
            }
            Some(Ok(ResultsRecord::Run(seal))) => checked(&self.checking, &self.metrics, |keys| {
                Some(runs.seal(msg.partition(), &seal, keys))
            }),
            Some(Ok(ResultsRecord::Status(status))) => {
                checked(&self.checking, &self.metrics, |keys| {
                    runs.status(msg.partition(), &status, keys)
                })
            }
            None => Vec::new(),
            Some(Err(e)) => {
                // A poison record: counted, logged where it is, and
                // committed past, so it never stalls the partition.
                self.metrics
                    .skipped
                    .with_label_values(&["undecodable"])
                    .inc();
                warn!(
                    partition = msg.partition(),
                    offset = msg.offset(),
                    bytes = payload.len(),
                    error = %e,
                    "skipping an undecodable record"
                );
                Vec::new()
            }
        }
    }

    /// Once a second: what stateful rules have due, runs whose seal is
    /// late, and suppression windows that closed.
    fn tick(&mut self, now: Instant) -> Vec<MatchRecord> {
        let mut out = self.pipeline.tick(unix_now());
        self.metrics
            .state
            .with_label_values(&["detectors"])
            .add(self.pipeline.state() as i64 - self.detector_entries);
        self.detector_entries = self.pipeline.state() as i64;
        if self.checking.is_some() {
            for v in self.runs.expire(now) {
                if let Some(m) = judged(v, &self.metrics) {
                    out.extend(self.memory().suppressor.admit(m, FORGED_WINDOW, now));
                }
            }
        }
        let mut memory = self.memory();
        out.extend(memory.suppressor.close(now));
        let suppressed = memory.suppressor.len() as i64;
        drop(memory);
        // One suppressor for the process; open runs are per worker, each
        // adding its change so the gauge is their sum.
        self.metrics
            .state
            .with_label_values(&["suppressed"])
            .set(suppressed);
        let open = self.runs.open() as i64;
        self.metrics
            .state
            .with_label_values(&["open_runs"])
            .add(open - self.open_runs);
        self.open_runs = open;
        out
    }
}

fn lock(outbox: &Mutex<Outbox>) -> MutexGuard<'_, Outbox> {
    outbox.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Batches a worker lets wait for the broker's acks before it stops reading.
const BATCHES_OUT: usize = 64;
/// How long a worker leaving waits for matches still on their way, so their
/// offsets are stored (the rest are read again by whoever comes next).
const DRAIN_FOR: Duration = Duration::from_secs(2);

/// How often each worker samples its partitions' lag.
const LAG_EVERY: Duration = Duration::from_secs(10);

/// Records not yet read on the partitions `consumer` holds, by topic.
fn consumer_lag<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> BTreeMap<String, i64> {
    let mut lag = BTreeMap::new();
    let Ok(positions) = consumer.position() else {
        return lag;
    };
    for p in positions.elements() {
        let Ok((_, high)) =
            // Short: the sample runs in the worker's loop, between batches.
            consumer.fetch_watermarks(p.topic(), p.partition(), Duration::from_millis(200))
        else {
            continue;
        };
        // Before the first read the position is not an offset yet: all of
        // the partition from the committed point is to be read, which the
        // next sample shows.
        if let rdkafka::Offset::Offset(at) = p.offset() {
            *lag.entry(p.topic().to_string()).or_insert(0) += (high - at).max(0);
        }
    }
    lag
}

/// Forgery matches per (host, query) are summarised over this window.
const FORGED_WINDOW: Duration = Duration::from_secs(60);

/// Integrity checking, when configured: the pinned keys, kept fresh.
struct Checking {
    keys: pins::Shared,
    /// Asks for the pins to be read again.
    poke: Arc<Notify>,
}

impl Checking {
    fn start(config: &Config, shutdown: watch::Receiver<bool>) -> Result<Option<Self>, RulesError> {
        let cfg = &config.integrity;
        if cfg.public_keys.is_empty() {
            warn!(
                "no [integrity] public_keys: rows are not checked against their agents' signatures"
            );
            return Ok(None);
        }
        cfg.coordination().validate()?;
        let trusted = TrustedKeys::parse(cfg.public_keys.iter().map(String::as_str))?;
        let keys = pins::Shared::default();
        let poke = Arc::new(Notify::new());
        tokio::spawn(pins::refresh(
            cfg.coordination(),
            trusted,
            cfg.refresh,
            keys.clone(),
            poke.clone(),
            shutdown,
        ));
        Ok(Some(Self { keys, poke }))
    }
}

/// Judges a seal or status with the pinned keys, when checking is on and
/// the pins have been read.
fn checked(
    checking: &Option<Arc<Checking>>,
    metrics: &Metrics,
    judge: impl FnOnce(&crate::integrity::Keys) -> Option<Verdict>,
) -> Vec<MatchRecord> {
    let Some(c) = checking else {
        return Vec::new();
    };
    let keys = c.keys.read().expect("the pins lock is never poisoned");
    match keys.as_ref() {
        Some(keys) => {
            let verdict = judge(keys);
            if let Some(Verdict::Unverifiable {
                reason: "unpinned", ..
            }) = verdict
            {
                c.poke.notify_one();
            }
            verdict
                .and_then(|v| judged(v, metrics))
                .into_iter()
                .collect()
        }
        None => {
            metrics.unverified.with_label_values(&["no_pins"]).inc();
            Vec::new()
        }
    }
}

/// Counts a verdict, and turns a forgery into a critical match.
fn judged(v: Verdict, metrics: &Metrics) -> Option<MatchRecord> {
    match v {
        Verdict::Verified { rows } => {
            metrics.rows_verified.inc_by(rows);
            None
        }
        Verdict::Unverifiable {
            host,
            query,
            reason,
        } => {
            metrics.unverified.with_label_values(&[reason]).inc();
            debug!(host = %printable(&host), query = %printable(&query), reason, "run not judged");
            None
        }
        Verdict::Forged {
            host,
            query,
            kind,
            reason,
        } => {
            metrics.forged.with_label_values(&[kind]).inc();
            warn!(host = %printable(&host), query = %printable(&query), kind, reason = %reason, "records not from the agent they name");
            let now = unix_now();
            Some(MatchRecord {
                rule_id: FORGED_RULE.into(),
                title: "Result records not signed by the agent they name".into(),
                severity: "critical".into(),
                host,
                query,
                hunt_id: None,
                row: [("reason".to_string(), reason)].into(),
                first_seen: now,
                last_seen: now,
                count: 1,
            })
        }
    }
}
