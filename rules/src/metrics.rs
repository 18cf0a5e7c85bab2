//! Every metric sweep-rules exports, defined in one place, and the admin
//! listener that serves them (`/metrics`, `/live`, `/ready`). Names follow
//! `sweep_rules_<name>_<unit>`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{
    Counter, Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::RulesError;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub records: IntCounter,
    /// Records skipped, by reason (`undecodable`).
    pub skipped: IntCounterVec,
    pub matches_sent: IntCounter,
    /// Matches the broker refused for good (logged whole).
    pub matches_refused: IntCounter,
    /// Scheduled rows in runs whose seal verified.
    pub rows_verified: IntCounter,
    /// Runs or rows not from the agent they name, by kind.
    pub forged: IntCounterVec,
    /// Runs that could not be judged, by reason.
    pub unverified: IntCounterVec,
    /// Matches sent, by rule and severity.
    pub matches: IntCounterVec,
    /// CPU time spent evaluating rules on rows.
    pub evaluation_seconds: Counter,
    /// Entries of state kept in memory, by kind.
    pub state: IntGaugeVec,
    /// 1 once the workers are consuming (`/ready`).
    pub ready: IntGauge,
    /// Records not yet read, by topic.
    pub lag: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, RulesError> {
        let registry = Registry::new();
        let records = IntCounter::new(
            "sweep_rules_records_total",
            "Records read from sweep.results.",
        )?;
        let skipped = IntCounterVec::new(
            Opts::new(
                "sweep_rules_records_skipped_total",
                "Records skipped (and committed past), by reason.",
            ),
            &["reason"],
        )?;
        let matches_sent = IntCounter::new(
            "sweep_rules_matches_sent_total",
            "Matches the broker acknowledged.",
        )?;
        let matches_refused = IntCounter::new(
            "sweep_rules_matches_refused_total",
            "Matches the broker refused for good (too large, not authorised); each is logged.",
        )?;
        let rows_verified = IntCounter::new(
            "sweep_rules_rows_verified_total",
            "Scheduled rows in runs whose agent's seal verified.",
        )?;
        let forged = IntCounterVec::new(
            Opts::new(
                "sweep_rules_forged_total",
                "Runs or rows not from the agent they name, by kind (unsigned, bad_signature, rows_differ); each raises a sweep-forged-results match.",
            ),
            &["kind"],
        )?;
        let unverified = IntCounterVec::new(
            Opts::new(
                "sweep_rules_runs_unverified_total",
                "Runs that could not be judged, by reason (unpinned: no pin for the host yet; partial: joined halfway; unsealed: no seal in time; orphan_seal; no_pins: pins not read yet).",
            ),
            &["reason"],
        )?;
        let matches = IntCounterVec::new(
            Opts::new(
                "sweep_rules_matches_total",
                "Matches the broker acknowledged, by rule and severity.",
            ),
            &["rule", "severity"],
        )?;
        let evaluation_seconds = Counter::new(
            "sweep_rules_evaluation_seconds_total",
            "Time spent evaluating rules on rows (reading each row's columns and running the rules that watch its query).",
        )?;
        let state = IntGaugeVec::new(
            Opts::new(
                "sweep_rules_state_entries",
                "Entries of state held in memory, by kind (open_runs: scheduled runs waiting for their seal; suppressed: suppression windows open; detectors: what stateful rules keep: windows, terms, sequences).",
            ),
            &["kind"],
        )?;
        let ready = IntGauge::new("sweep_rules_ready", "1 once the consumers are running.")?;
        let lag = IntGaugeVec::new(
            Opts::new(
                "sweep_rules_consumer_lag_records",
                "Records on the partitions this process holds not yet read (high watermark minus position), by topic; sampled every 10 s.",
            ),
            &["topic"],
        )?;
        registry.register(Box::new(lag.clone()))?;
        registry.register(Box::new(matches.clone()))?;
        registry.register(Box::new(evaluation_seconds.clone()))?;
        registry.register(Box::new(state.clone()))?;
        registry.register(Box::new(ready.clone()))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        registry.register(Box::new(rows_verified.clone()))?;
        registry.register(Box::new(forged.clone()))?;
        registry.register(Box::new(unverified.clone()))?;
        registry.register(Box::new(records.clone()))?;
        registry.register(Box::new(skipped.clone()))?;
        registry.register(Box::new(matches_sent.clone()))?;
        registry.register(Box::new(matches_refused.clone()))?;
        Ok(Self {
            registry,
            records,
            skipped,
            matches_sent,
            matches_refused,
            rows_verified,
            forged,
            unverified,
            matches,
            evaluation_seconds,
            state,
            ready,
            lag,
        })
    }

    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Serves `/metrics` and `/live` until `shutdown`.
    pub async fn serve(self, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "admin endpoint listening (/metrics, /live)");
        }
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/live", get(|| async { "ok\n" }))
            .route("/ready", get(ready))
            .with_state(self);
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            warn!(error = %e, "admin endpoint failed");
        }
    }
}

/// Ready once the workers consume: 200, else 503.
async fn ready(State(m): State<Metrics>) -> impl IntoResponse {
    if m.ready.get() == 1 {
        (axum::http::StatusCode::OK, "ready\n")
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

async fn metrics(State(m): State<Metrics>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.encode(),
    )
}
