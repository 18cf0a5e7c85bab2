//! The consume → evaluate → produce → commit loop. Offsets are stored only
//! after every match a record produced is acknowledged by the broker, so a
//! crash re-evaluates rather than loses (at-least-once).

use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sweep_proto::{topics, MatchRecord, ResultsRecord};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::ruleset::RuleSet;
use crate::suppress::Suppressor;
use crate::RulesError;

/// Runs until `shutdown` turns true.
pub async fn run(
    config: Config,
    rules: RuleSet,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RulesError> {
    topics::ensure(&config.kafka, &[topics::RESULTS, topics::MATCHES], 1).await?;
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
    consumer.subscribe(&[topics::RESULTS])?;
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
    let mut suppressor = Suppressor::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let msg = tokio::select! {
            m = consumer.recv() => m,
            _ = tick.tick() => {
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
        let matches = match msg.payload().map(ResultsRecord::from_json) {
            Some(Ok(ResultsRecord::Row(row))) => rules.evaluate(&row),
            Some(Ok(ResultsRecord::Status(_))) | None => Vec::new(),
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
        let now = Instant::now();
        for m in matches {
            let report = match rules.suppress_for(&m.rule_id) {
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
