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
use crate::error::AgentError;

pub async fn serve(listener: TcpListener, shared: Shared, shutdown: watch::Receiver<bool>) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/live", get(live))
        .route("/healthz", get(live))
        .route("/ready", get(ready))
        .with_state(shared);
    serve_router(listener, app, "/metrics, /live, /ready", shutdown).await;
}

/// Binds the admin endpoint's address; None when it is "" (turned off).
pub async fn bind(listen: &str) -> Result<Option<TcpListener>, AgentError> {
    if listen.is_empty() {
        return Ok(None);
    }
    TcpListener::bind(listen)
        .await
        .map(Some)
        .map_err(|e| AgentError::io(format!("binding metrics on {listen}"), e))
}

/// Serves `app` on `listener` until `shutdown`, saying where and what
/// (`routes`) first.
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    routes: &str,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "admin endpoint listening ({routes})");
    }
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

/// A Prometheus text-format response.
pub fn metrics_text(text: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
    metrics_text(shared.metrics.encode())
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
