//! The simulator's admin endpoint: `/metrics`, `/live`, `/fleet` (how many
//! agents run, are killed or stalled, and the memo's figures: for each
//! recent query how many agents asked, and when the first and the last did,
//! which is how fast a hunt fanned out), and the fault switches:
//!
//! - `POST /kill?count=N`: N running agents stop dead at once; their leases
//!   lapse together within one TTL (a lease-expiry storm).
//! - `POST /stall?count=N&for=30s`: N running agents' executors hold for that
//!   long; their watches back up (slow watchers).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use super::Fleet;
use crate::daemon::admin;

pub async fn serve(listener: TcpListener, fleet: Fleet, shutdown: watch::Receiver<bool>) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/live", get(|| async { "ok\n" }))
        .route("/fleet", get(status))
        .route("/kill", post(kill))
        .route("/stall", post(stall))
        .with_state(fleet);
    let routes = "/metrics, /live, /fleet, POST /kill, POST /stall";
    admin::serve_router(listener, app, routes, shutdown).await;
}

async fn metrics(State(fleet): State<Fleet>) -> impl IntoResponse {
    admin::metrics_text(fleet.process.metrics.encode())
}

async fn status(State(fleet): State<Fleet>) -> impl IntoResponse {
    let agents = fleet
        .agents
        .lock()
        .expect("the fleet lock is never poisoned");
    let killed = agents.iter().filter(|a| a.killed).count();
    let stalled = agents
        .iter()
        .filter(|a| !a.killed && *a.shared.paused.borrow())
        .count();
    let (runs, shared) = fleet.memo.counts();
    let queries: Vec<serde_json::Value> = fleet
        .memo
        .recent()
        .into_iter()
        .map(|(sql, asks, first_ms, last_ms)| {
            serde_json::json!({"sql": sql, "asks": asks, "first_ms": first_ms, "last_ms": last_ms})
        })
        .collect();
    let body = serde_json::json!({
        "started": agents.len(),
        "running": agents.len() - killed,
        "killed": killed,
        "stalled": stalled,
        "memo": {"queries_run": runs, "answers_shared": shared, "recent": queries},
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
}

/// `count` from the query string.
fn count(q: &HashMap<String, String>) -> Result<usize, (StatusCode, String)> {
    q.get("count")
        .and_then(|c| c.parse().ok())
        .ok_or((StatusCode::BAD_REQUEST, "give count=N\n".into()))
}

async fn kill(
    State(fleet): State<Fleet>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<String, (StatusCode, String)> {
    let n = count(&q)?;
    let mut agents = fleet
        .agents
        .lock()
        .expect("the fleet lock is never poisoned");
    let mut killed = Vec::new();
    for a in agents.iter_mut().filter(|a| !a.killed).take(n) {
        a.kill();
        killed.push(a.shared.host_id.clone());
    }
    info!(count = killed.len(), "killed agents");
    Ok(serde_json::to_string(&killed).expect("host ids serialize") + "\n")
}

async fn stall(
    State(fleet): State<Fleet>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<String, (StatusCode, String)> {
    let n = count(&q)?;
    let for_ = q
        .get("for")
        .map(|d| humantime::parse_duration(d))
        .transpose()
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("for: {e}\n")))?
        .unwrap_or(Duration::from_secs(30));
    let agents = fleet
        .agents
        .lock()
        .expect("the fleet lock is never poisoned");
    let mut stalled = Vec::new();
    for a in agents
        .iter()
        .filter(|a| !a.killed && !*a.shared.paused.borrow())
        .take(n)
    {
        a.shared.paused.send_replace(true);
        stalled.push(a.shared.host_id.clone());
        let shared = a.shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(for_).await;
            shared.paused.send_replace(false);
        });
    }
    info!(count = stalled.len(), for_ = ?for_, "stalled agents");
    Ok(serde_json::to_string(&stalled).expect("host ids serialize") + "\n")
}
