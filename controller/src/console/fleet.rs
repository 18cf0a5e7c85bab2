//! The fleet page: every live agent from its heartbeat (labels, version,
//! CPU, RSS, last report, state), filtered by label and host, with counts
//! by version and state.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sweep_proto::time::{unix_now, unix_now_ms};

use super::auth::SignedIn;
use super::page::{esc, layout, table};
use super::{failure, App};
use crate::{fleet, render};

#[derive(Deserialize, Default)]
pub struct Filter {
    /// `key=value`: agents with that label.
    #[serde(default)]
    label: String,
    /// A host id, or a `*` pattern over host ids.
    #[serde(default)]
    host: String,
}

pub async fn page(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Query(f): Query<Filter>,
) -> Response {
    let keys = app.settings.keyspace();
    let agents = match app.store().await {
        Ok(store) => fleet::live_agents(&store, &keys).await,
        Err(e) => Err(e),
    };
    let agents = match agents {
        Ok(a) => a,
        Err(e) => return failure(&user, "Fleet", &e),
    };
    let label = f.label.split_once('=');
    let shown: Vec<_> = agents
        .iter()
        .filter(|a| {
            label.is_none_or(|(k, v)| a.labels.get(k.trim()).is_some_and(|x| x == v.trim()))
        })
        .filter(|a| f.host.is_empty() || crate::names::glob(&f.host, &a.host_id))
        .collect();
    let (now, now_ms) = (unix_now(), unix_now_ms());
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|a| {
            vec![
                a.host_id.clone(),
                a.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                a.version.clone(),
                format!("{:.1}", a.resources.cpu_percent),
                render::bytes(a.resources.rss_bytes),
                format!(
                    "{} ago",
                    render::age(now_ms.saturating_sub(a.sent_at_ms) / 1000)
                ),
                render::age(now.saturating_sub(a.started_at)),
                a.state.clone().unwrap_or_else(|| "ready".into()),
            ]
        })
        .collect();
    let mut by_version: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    for a in &shown {
        *by_version.entry(&a.version).or_default() += 1;
        *by_state
            .entry(a.state.clone().unwrap_or_else(|| "ready".into()))
            .or_default() += 1;
    }
    let counts = |m: Vec<(String, usize)>| {
        m.iter()
            .map(|(k, n)| format!("<li>{} <b>{n}</b></li>", esc(k)))
            .collect::<String>()
    };
    let body = format!(
        r#"<h1>Fleet</h1>
<form class="filters" method="get" action="/fleet">
<label>Label <input name="label" id="label-filter" placeholder="role=web" value="{}"></label>
<label>Host <input name="host" id="host-filter" placeholder="web-*" value="{}"></label>
<button type="submit">Filter</button></form>
<p class="count" id="agent-count"><b>{}</b> of {} live agent(s)</p>
<div class="counts"><ul><li>by version:</li>{}</ul><ul><li>by state:</li>{}</ul></div>
{}"#,
        esc(&f.label),
        esc(&f.host),
        shown.len(),
        agents.len(),
        counts(
            by_version
                .into_iter()
                .map(|(k, n)| (k.to_string(), n))
                .collect()
        ),
        counts(by_state.into_iter().collect()),
        table(
            "agents",
            &[
                "host",
                "labels",
                "version",
                "CPU %",
                "RSS",
                "last report",
                "up",
                "state"
            ],
            &rows
        )
    );
    layout("Fleet", Some(&user), &body).into_response()
}

/// Fleet as JSON (for the hunt page's target completion).
pub async fn hosts(State(app): State<App>, SignedIn(_): SignedIn) -> Response {
    let keys = app.settings.keyspace();
    let agents = match app.store().await {
        Ok(store) => fleet::live_agents(&store, &keys).await,
        Err(e) => Err(e),
    };
    match agents {
        Ok(a) => axum::Json(
            a.iter()
                .map(|a| serde_json::json!({"host": a.host_id, "labels": a.labels}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
