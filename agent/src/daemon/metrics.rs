//! Every metric the agent exports, defined in one place. Names follow
//! `sweep_agent_<name>_<unit>`; labels are few and low-cardinality (no host
//! ids, no query text).

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use crate::error::AgentError;
use crate::events::{Events, State};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Queries run, by kind (`hunt`) and outcome (`ok`, `error`, `refused`, `limit`).
    pub queries: IntCounterVec,
    pub query_duration: Histogram,
    pub result_rows: IntCounter,
    pub values_truncated: IntCounter,
    /// Hunts not run, by reason (`expired`, `not_targeted`, `invalid`).
    pub hunts_skipped: IntCounterVec,
    /// Scheduled queries and packs not taken, by kind (`schedule`, `pack`).
    pub commands_rejected: IntCounterVec,
    pub queries_denylisted: IntCounter,
    /// Times the query executor died (a panic) and was started again.
    pub executor_restarts: IntCounter,
    pub records_sent: IntCounter,
    pub delivery_errors: IntCounter,
    pub spool_records: IntGauge,
    pub spool_bytes: IntGauge,
    pub spool_dropped: IntCounter,
    pub spool_corrupt: IntCounter,
    pub records_quarantined: IntCounter,
    pub coordination_errors: IntCounterVec,
    pub cpu_percent: Gauge,
    pub rss_bytes: IntGauge,
    pub threads: IntGauge,
    pub open_fds: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Self, AgentError> {
        let registry = Registry::new();
        let queries = IntCounterVec::new(
            Opts::new(
                "sweep_agent_queries_total",
                "Queries run, by kind and outcome.",
            ),
            &["kind", "outcome"],
        )?;
        let query_duration = Histogram::with_opts(
            HistogramOpts::new(
                "sweep_agent_query_duration_seconds",
                "Wall time of one query.",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
        )?;
        let result_rows = IntCounter::new(
            "sweep_agent_result_rows_total",
            "Result rows produced by queries.",
        )?;
        let values_truncated = IntCounter::new(
            "sweep_agent_values_truncated_total",
            "Result values cut to limits.max_value_bytes (they end in a marker).",
        )?;
        let hunts_skipped = IntCounterVec::new(
            Opts::new(
                "sweep_agent_hunts_skipped_total",
                "Hunts seen but not run, by reason.",
            ),
            &["reason"],
        )?;
        let commands_rejected = IntCounterVec::new(
            Opts::new(
                "sweep_agent_commands_rejected_total",
                "Scheduled queries and packs rejected (bad signature or undecodable), by kind.",
            ),
            &["kind"],
        )?;
        let executor_restarts = IntCounter::new(
            "sweep_agent_executor_restarts_total",
            "Times the query executor died (a panic) and was started again.",
        )?;
        let queries_denylisted = IntCounter::new(
            "sweep_agent_queries_denylisted_total",
            "Scheduled queries deny-listed after a limit stopped them.",
        )?;
        let records_sent = IntCounter::new(
            "sweep_agent_kafka_records_sent_total",
            "Records the broker acknowledged.",
        )?;
        let delivery_errors = IntCounter::new(
            "sweep_agent_kafka_delivery_errors_total",
            "Deliveries that failed for a reason that may pass (retried from the spool).",
        )?;
        let spool_records = IntGauge::new(
            "sweep_agent_spool_records",
            "Records waiting in the disk spool.",
        )?;
        let spool_bytes = IntGauge::new("sweep_agent_spool_bytes", "Bytes in the disk spool.")?;
        let spool_dropped = IntCounter::new(
            "sweep_agent_spool_dropped_records_total",
            "Records dropped because the spool (or the quarantine) was full.",
        )?;
        let spool_corrupt = IntCounter::new(
            "sweep_agent_spool_corrupt_lines_total",
            "Undecodable spool lines (torn by a crash) that were skipped.",
        )?;
        let records_quarantined = IntCounter::new(
            "sweep_agent_kafka_records_quarantined_total",
            "Records the broker refused for good, set aside in the quarantine file.",
        )?;
        let coordination_errors = IntCounterVec::new(
            Opts::new(
                "sweep_agent_coordination_errors_total",
                "Failures talking to the coordination store (etcd or ZooKeeper), by task.",
            ),
            &["task"],
        )?;
        let cpu_percent = Gauge::new(
            "sweep_agent_cpu_usage_percent",
            "CPU used by the agent over the last sample, percent of one core.",
        )?;
        let rss_bytes = IntGauge::new(
            "sweep_agent_memory_rss_bytes",
            "Resident memory of the agent.",
        )?;
        let threads = IntGauge::new("sweep_agent_threads", "Threads of the agent.")?;
        let open_fds = IntGauge::new(
            "sweep_agent_open_fds",
            "Open file descriptors of the agent.",
        )?;
        // The standard process_* metrics: CPU seconds, resident and virtual
        // memory, open and maximum fds, threads, start time.
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "sweep_agent_build_info",
                "Always 1; the labels say which build is running.",
            ),
            &["version"],
        )?;
        build_info.with_label_values(&[sweep_proto::VERSION]).set(1);
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(queries.clone()))?;
        registry.register(Box::new(query_duration.clone()))?;
        registry.register(Box::new(result_rows.clone()))?;
        registry.register(Box::new(values_truncated.clone()))?;
        registry.register(Box::new(hunts_skipped.clone()))?;
        registry.register(Box::new(commands_rejected.clone()))?;
        registry.register(Box::new(queries_denylisted.clone()))?;
        registry.register(Box::new(executor_restarts.clone()))?;
        registry.register(Box::new(records_sent.clone()))?;
        registry.register(Box::new(delivery_errors.clone()))?;
        registry.register(Box::new(spool_records.clone()))?;
        registry.register(Box::new(spool_bytes.clone()))?;
        registry.register(Box::new(spool_dropped.clone()))?;
        registry.register(Box::new(spool_corrupt.clone()))?;
        registry.register(Box::new(records_quarantined.clone()))?;
        registry.register(Box::new(coordination_errors.clone()))?;
        registry.register(Box::new(cpu_percent.clone()))?;
        registry.register(Box::new(rss_bytes.clone()))?;
        registry.register(Box::new(threads.clone()))?;
        registry.register(Box::new(open_fds.clone()))?;
        Ok(Self {
            registry,
            queries,
            query_duration,
            result_rows,
            values_truncated,
            hunts_skipped,
            commands_rejected,
            queries_denylisted,
            executor_restarts,
            records_sent,
            delivery_errors,
            spool_records,
            spool_bytes,
            spool_dropped,
            spool_corrupt,
            records_quarantined,
            coordination_errors,
            cpu_percent,
            rss_bytes,
            threads,
            open_fds,
        })
    }

    /// Exports the event sources' counts, read from `events` at each scrape.
    pub fn watch_events(&self, events: Option<Arc<Events>>) -> Result<(), AgentError> {
        if let Some(events) = events {
            self.registry
                .register(Box::new(EventsCollector::new(events)?))?;
        }
        Ok(())
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The event sources' counters, which the sources keep themselves (the
/// `osquery_events` table reads the same), turned into metrics at scrape
/// time.
struct EventsCollector {
    events: Arc<Events>,
    received: IntCounterVec,
    dropped: IntCounterVec,
    expired: IntCounterVec,
    buffered: IntGaugeVec,
    active: IntGaugeVec,
}

impl EventsCollector {
    fn new(events: Arc<Events>) -> Result<Self, AgentError> {
        Ok(Self {
            events,
            received: IntCounterVec::new(
                Opts::new(
                    "sweep_agent_events_received_total",
                    "Events read from the kernel, by source.",
                ),
                &["source"],
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "sweep_agent_events_dropped_total",
                    "Events lost, by source and reason: events_max (the buffer was full; the \
                     oldest went) or kernel (the socket overflowed; counted once per overflow, \
                     so at least this many).",
                ),
                &["source", "reason"],
            )?,
            expired: IntCounterVec::new(
                Opts::new(
                    "sweep_agent_events_expired_total",
                    "Events that reached events_expiry in the buffer, by source.",
                ),
                &["source"],
            )?,
            buffered: IntGaugeVec::new(
                Opts::new(
                    "sweep_agent_events_buffered",
                    "Events held for queries, by source.",
                ),
                &["source"],
            )?,
            active: IntGaugeVec::new(
                Opts::new(
                    "sweep_agent_event_source_active",
                    "1 while a source runs, 0 when the host cannot provide it or it is off.",
                ),
                &["source"],
            )?,
        })
    }
}

impl Collector for EventsCollector {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.received.desc(),
            self.dropped.desc(),
            self.expired.desc(),
            self.buffered.desc(),
            self.active.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        for s in self.events.stats() {
            let src = [s.source];
            set_counter(&self.received.with_label_values(&src), s.received);
            set_counter(&self.expired.with_label_values(&src), s.expired);
            set_counter(
                &self.dropped.with_label_values(&[s.source, "events_max"]),
                s.dropped,
            );
            set_counter(
                &self.dropped.with_label_values(&[s.source, "kernel"]),
                s.lost,
            );
            self.buffered.with_label_values(&src).set(s.buffered as i64);
            self.active
                .with_label_values(&src)
                .set(i64::from(s.state == State::Active));
        }
        [
            self.received.collect(),
            self.dropped.collect(),
            self.expired.collect(),
            self.buffered.collect(),
            self.active.collect(),
        ]
        .concat()
    }
}

/// Brings a counter up to a total kept elsewhere (totals only grow).
fn set_counter(c: &IntCounter, total: u64) {
    let now = c.get();
    if total > now {
        c.inc_by(total - now);
    }
}
