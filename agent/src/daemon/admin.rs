//! The admin listener: `/metrics` (Prometheus text format), `/live` (the
//! process answers) and `/ready` (see [`super::health`]); `/healthz` is kept
//! as an alias of `/live`. Served by axum, stopped by the daemon's shutdown
//! signal.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use super::Shared;

pub async fn serve(listener: TcpListener, shared: Shared, mut shutdown: watch::Receiver<bool>) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "admin endpoint listening (/metrics, /live, /ready)");
    }
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/live", get(live))
        .route("/healthz", get(live))
        .route("/ready", get(ready))
        .with_state(shared);
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

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.encode(),
    )
}

async fn live() -> &'static str {
    "ok\n"
}

async fn ready(State(shared): State<Shared>) -> (StatusCode, String) {
    match shared.health.ready(shared.sink.accepts_records()) {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}
