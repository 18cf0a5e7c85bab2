//! The consume → evaluate → produce → commit loop. Offsets are stored only
//! after every match a record produced is acknowledged by the broker, so a
//! crash re-evaluates rather than loses (at-least-once).

use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::Arc;
use sweep_proto::signing::TrustedKeys;
use sweep_proto::text::printable;
use sweep_proto::time::unix_now;
use sweep_proto::{topics, MatchRecord, ResultsRecord};

use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::integrity::{Runs, Verdict};
use crate::metrics::Metrics;
use crate::pins;
use crate::ruleset::RuleSet;
use crate::suppress::Suppressor;
use crate::RulesError;

/// Runs until `shutdown` turns true.
pub async fn run(
    config: Config,
    rules: RuleSet,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RulesError> {
    topics::ensure(
        &config.kafka,
        &[topics::RESULTS, topics::HUNTS, topics::MATCHES],
    )
    .await?;
    let mut ccfg = config.kafka.client_config();
    ccfg.set("group.id", &config.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        // Offsets are stored by hand once matches are delivered.
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    let mut pcfg = config.kafka.client_config();
    pcfg.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    for (k, v) in &config.kafka.properties {
        ccfg.set(k, v);
        pcfg.set(k, v);
    }
    let consumer: StreamConsumer = ccfg.create()?;
    let producer: FutureProducer = pcfg.create()?;
    // Scheduled rows, and hunts' rows for rules on `hunt:*`.
    consumer.subscribe(&[topics::RESULTS, topics::HUNTS])?;
    let metrics = Metrics::new()?;
    if !config.metrics_listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&config.metrics_listen)
            .await
            .map_err(|source| RulesError::Listen {
                addr: config.metrics_listen.clone(),
                source,
            })?;
        tokio::spawn(metrics.clone().serve(listener, shutdown.clone()));
    }
    info!(rules = rules.len(), group = %config.group_id, "evaluating rules");
    let checking = Checking::start(&config, shutdown.clone())?;
    let mut runs = Runs::new(config.integrity.seal_timeout);
    let mut suppressor = Suppressor::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let msg = tokio::select! {
            m = consumer.recv() => m,
            _ = tick.tick() => {
                let mut out = Vec::new();
                if checking.is_some() {
                    for v in runs.expire(Instant::now()) {
                        out.extend(judged(v, &metrics));
                    }
                }
                for m in out {
                    if let Some(m) = suppressor.admit(m, FORGED_WINDOW, Instant::now()) {
                        if !deliver(&producer, &m, &metrics, &mut shutdown).await {
                            return Ok(());
                        }
                    }
                }
                for summary in suppressor.close(Instant::now()) {
                    if !deliver(&producer, &summary, &metrics, &mut shutdown).await {
                        return Ok(());
                    }
                }
                continue;
            }
            _ = shutdown.changed() => break,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "consume failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        metrics.records.inc();
        let now = Instant::now();
        let payload = msg.payload().unwrap_or_default();
        let matches = match msg.payload().map(ResultsRecord::from_json) {
            Some(Ok(ResultsRecord::Row(row))) => {
                let mut matches = rules.evaluate(&row);
                if checking.is_some() {
                    if let Some(v) = runs.row(msg.partition(), &row, payload, now) {
                        matches.extend(judged(v, &metrics));
                    }
                }
                matches
            }
            Some(Ok(ResultsRecord::Run(seal))) => checked(&checking, &metrics, |keys| {
                Some(runs.seal(msg.partition(), &seal, keys))
            }),
            Some(Ok(ResultsRecord::Status(status))) => checked(&checking, &metrics, |keys| {
                runs.status(msg.partition(), &status, keys)
            }),
            None => Vec::new(),
            Some(Err(e)) => {
                // A poison record: counted, logged where it is, and
                // committed past, so it never stalls the partition.
                metrics.skipped.with_label_values(&["undecodable"]).inc();
                warn!(
                    partition = msg.partition(),
                    offset = msg.offset(),
                    bytes = msg.payload().map_or(0, <[u8]>::len),
                    error = %e,
                    "skipping an undecodable record"
                );
                Vec::new()
            }
        };
        for m in matches {
            let window = if m.rule_id == FORGED_RULE {
                Some(FORGED_WINDOW)
            } else {
                rules.suppress_for(&m.rule_id)
            };
            let report = match window {
                Some(window) => suppressor.admit(m, window, now),
                None => Some(m),
            };
            if let Some(m) = report {
                if !deliver(&producer, &m, &metrics, &mut shutdown).await {
                    return Ok(());
                }
            }
        }
        if let Err(e) = consumer.store_offset_from_message(&msg) {
            warn!(error = %e, "cannot store the offset");
        }
        drop(msg);
    }
    // Commit what was stored before leaving the group.
    if let Err(e) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
        debug!(error = %e, "final commit");
    }
    Ok(())
}

/// The match raised for records not from the agent they name.
pub const FORGED_RULE: &str = "sweep-forged-results";
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
        cfg.etcd.validate()?;
        let trusted = TrustedKeys::parse(cfg.public_keys.iter().map(String::as_str))?;
        let keys = pins::Shared::default();
        let poke = Arc::new(Notify::new());
        tokio::spawn(pins::refresh(
            cfg.etcd.clone(),
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
    checking: &Option<Checking>,
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

/// Produces one match, retrying until the broker takes it: storing an offset
/// past an undelivered match would lose it. A match the broker refuses for
/// good (too large, not authorised) is logged whole and counted instead of
/// blocking every record behind it. False when shut down first.
async fn deliver(
    producer: &FutureProducer,
    m: &MatchRecord,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let payload = serde_json::to_string(m).expect("matches serialize");
    loop {
        let rec = FutureRecord::to(topics::MATCHES)
            .key(&m.rule_id)
            .payload(&payload);
        match producer.send(rec, Duration::from_secs(5)).await {
            Ok(_) => break,
            Err((e, _)) if topics::is_permanent(&e) => {
                metrics.matches_refused.inc();
                warn!(rule = %m.rule_id, error = %e, r#match = %payload, "the broker refused a match for good; logged here instead");
                return true;
            }
            Err((e, _)) => {
                warn!(rule = %m.rule_id, error = %e, "match not delivered; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return false,
                }
            }
        }
    }
    metrics.matches_sent.inc();
    info!(rule = %m.rule_id, host = %m.host, severity = %m.severity, count = m.count, "match");
    true
}
