//! Matches: a live feed of `sweep.matches` (from the start of the topic,
//! then as they come), filtered on the page by severity, rule and host.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use rdkafka::Offset;
use sweep_proto::{topics, MatchRecord};
use tokio::sync::mpsc;

use super::auth::SignedIn;
use super::page::layout;
use super::App;
use crate::kafka::TopicReader;

pub async fn page(SignedIn(user): SignedIn) -> Response {
    let body = r#"<h1>Matches</h1>
<form class="filters" onsubmit="return false">
<label>Severity <select id="severity-filter"><option value="">any</option><option>critical</option><option>high</option><option>medium</option><option>low</option></select></label>
<label>Rule <input id="rule-filter" placeholder="rule id"></label>
<label>Host <input id="host-filter" placeholder="host id"></label>
</form>
<p class="status" id="feed-status">connecting…</p>
<table id="matches" class="data"><thead><tr><th>last seen</th><th>severity</th><th>rule</th><th>host</th><th>title</th><th>count</th><th>row</th></tr></thead><tbody></tbody></table>
<script>window.addEventListener('DOMContentLoaded', () => sweepMatches('/api/matches/events'));</script>"#;
    layout("Matches", Some(&user), body).into_response()
}

/// Server-sent events: one `match` event per record, `caught-up` when the
/// topic's end at connection time is reached, `failure` on an error.
pub async fn events(
    State(app): State<App>,
    SignedIn(_): SignedIn,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel::<Event>(256);
    tokio::spawn(async move {
        if let Err(e) = feed(&app, &tx).await {
            let _ = tx
                .send(Event::default().event("failure").data(e.to_string()))
                .await;
        }
    });
    let stream =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn feed(app: &App, tx: &mpsc::Sender<Event>) -> Result<(), crate::ControllerError> {
    topics::ensure(&app.settings.kafka, &[topics::MATCHES]).await?;
    let reader = TopicReader::new(&app.settings.kafka, topics::MATCHES)?;
    let ends = reader.end_offsets()?;
    let starts: BTreeMap<i32, Offset> = ends.keys().map(|p| (*p, Offset::Beginning)).collect();
    reader.assign(&starts)?;
    let mut behind: BTreeMap<i32, i64> = ends.into_iter().filter(|(_, end)| *end > 0).collect();
    if behind.is_empty()
        && tx
            .send(Event::default().event("caught-up").data(""))
            .await
            .is_err()
    {
        return Ok(());
    }
    loop {
        if tx.is_closed() {
            return Ok(()); // the page went away
        }
        let Some(rec) = reader.next(Duration::from_millis(500)).await? else {
            continue;
        };
        let was_behind = !behind.is_empty();
        if behind
            .get(&rec.partition)
            .is_some_and(|end| rec.offset + 1 >= *end)
        {
            behind.remove(&rec.partition);
        }
        if let Ok(m) = MatchRecord::from_json(&rec.payload) {
            let data = serde_json::to_string(&m).expect("matches serialize");
            if tx
                .send(Event::default().event("match").data(data))
                .await
                .is_err()
            {
                return Ok(());
            }
        }
        if was_behind
            && behind.is_empty()
            && tx
                .send(Event::default().event("caught-up").data(""))
                .await
                .is_err()
        {
            return Ok(());
        }
    }
}
