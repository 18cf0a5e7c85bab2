//! Hunting from the page: the SQL editor (completion from the tables'
//! schemas, targets), a hunt's live progress over server-sent events, its
//! rows with sort and filter, CSV and JSON downloads, who failed or did not
//! answer and why, and the history of the hunts issued here.
//!
//! A hunt runs on the server whether or not its page stays open; its rows
//! are kept in memory (up to [`ROWS_KEPT`]) for the page and the downloads.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sweep_proto::{guard, Targets};
use tokio::sync::watch;

use super::auth::SignedIn;
use super::page::{esc, layout, table};
use super::App;
use crate::cli::ExpectArgs;
use crate::hunting::{self, HuntEvent, HuntRequest};
use crate::output::{self, Format};
use crate::progress::{Counts, HostOutcome, Outcome};

/// Rows kept per hunt; past it the hunt goes on and the page says so.
pub const ROWS_KEPT: usize = 200_000;
/// Hunts kept in the history; the oldest go first.
const HUNTS_KEPT: usize = 200;

/// One hunt issued from the console, as it goes.
pub struct Entry {
    pub id: String,
    pub sql: String,
    pub issuer: String,
    pub targets: String,
    pub issued_at: u64,
    state: Mutex<Progress>,
    /// Bumped on every change, so pages following the hunt wake.
    changed: watch::Sender<u64>,
}

/// What a hunt has got so far.
#[derive(Default, Clone, Serialize)]
pub struct Progress {
    pub rows: Vec<(String, BTreeMap<String, String>)>,
    pub rows_dropped: u64,
    /// (host, outcome, reason): failures and hosts that did not answer,
    /// and the hosts that answered with their row counts.
    pub outcomes: Vec<(String, String, String)>,
    pub expected: usize,
    pub answered: usize,
    pub failed: usize,
    pub done: Option<f64>,
    pub failure: Option<String>,
    /// Bumped when the rows are replaced (at the end, by the verified ones):
    /// pages following the hunt start their table again.
    pub generation: u64,
}

impl Entry {
    fn state(&self) -> MutexGuard<'_, Progress> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the progress and wakes the pages following it.
    pub fn update(&self, f: impl FnOnce(&mut Progress)) {
        f(&mut self.state());
        self.changed.send_modify(|v| *v += 1);
    }
}

/// The hunts issued here, newest last.
#[derive(Default)]
pub struct History {
    hunts: Mutex<Vec<Arc<Entry>>>,
}

impl History {
    fn add(&self, entry: Arc<Entry>) {
        let mut hunts = self.hunts.lock().unwrap_or_else(|e| e.into_inner());
        if hunts.len() >= HUNTS_KEPT {
            hunts.remove(0);
        }
        hunts.push(entry);
    }

    fn get(&self, id: &str) -> Option<Arc<Entry>> {
        let hunts = self.hunts.lock().unwrap_or_else(|e| e.into_inner());
        hunts.iter().find(|h| h.id == id).cloned()
    }

    /// A hunt and a copy of what it has got, for a download.
    fn rows(&self, id: &str) -> Option<(Arc<Entry>, Progress)> {
        let h = self.get(id)?;
        let p = h.state().clone();
        Some((h, p))
    }

    fn all(&self) -> Vec<Arc<Entry>> {
        self.hunts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn no_such_hunt() -> Response {
    (StatusCode::NOT_FOUND, "no such hunt here").into_response()
}

pub async fn editor(SignedIn(user): SignedIn) -> Response {
    let body = r#"<h1>Hunt</h1>
<form id="hunt-form" class="add">
<div class="editor"><label>SQL <textarea id="sql" name="sql" rows="8" spellcheck="false" autocomplete="off" placeholder="SELECT pid, name, cmdline FROM processes WHERE name = 'bash'"></textarea></label>
<ul id="completions" hidden></ul></div>
<p class="error" id="sql-error" hidden></p>
<div class="filters">
<label>Hosts <input id="hosts" name="hosts" placeholder="web-1, db-*  (empty: every host)"></label>
<label>Labels <input id="labels" name="labels" placeholder="role=web,dc=sh1"></label>
<label>Discovery <input id="discovery" name="discovery" placeholder="SELECT 1 FROM processes WHERE name = 'nginx'" size="40"></label>
<label>Timeout (s) <input id="timeout" name="timeout" value="30" size="5"></label>
<button type="submit" id="run-hunt">Run hunt</button></div>
</form>
<p class="status">Tab or Enter takes a completion; tables and columns come from the agents' schemas.</p>"#;
    layout("Hunt", Some(&user), body).into_response()
}

/// Tables and their columns, for completion.
pub async fn schema(SignedIn(_): SignedIn) -> Json<BTreeMap<&'static str, Vec<&'static str>>> {
    Json(
        sweep_proto::schema::TABLES
            .iter()
            .map(|t| (t.name, t.columns.iter().map(|c| c.name).collect()))
            .collect(),
    )
}

#[derive(Deserialize)]
pub struct Request {
    sql: String,
    #[serde(default)]
    hosts: String,
    #[serde(default)]
    labels: String,
    /// A discovery query: only hosts where it returns rows run the hunt.
    #[serde(default)]
    discovery: String,
    #[serde(default)]
    timeout: Option<u64>,
}

/// Starts a hunt; its id, or the guard's refusal with the position SQLite
/// gives when there is one.
pub async fn start(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Json(r): Json<Request>,
) -> Response {
    if let Err(e) = guard::check(&r.sql) {
        let text = e.to_string();
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": text, "position": error_position(&r.sql, &text)})),
        )
            .into_response();
    }
    let targets = match targets(&r.hosts, &r.labels, &r.discovery) {
        Ok(t) => t,
        Err(e) => return (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    };
    let timeout = Duration::from_secs(r.timeout.unwrap_or(30).clamp(1, 3600));
    match launch(&app, &user, r.sql, targets, timeout).await {
        Ok(id) => Json(json!({"id": id})).into_response(),
        Err(
            e @ (crate::ControllerError::Refused(_) | crate::ControllerError::NoTargets { .. }),
        ) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// Targets from the form: comma-separated host ids or patterns,
/// `key=value` labels, and a discovery query.
fn targets(hosts: &str, labels: &str, discovery: &str) -> Result<Targets, String> {
    let hosts: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(String::from)
        .collect();
    let labels = if labels.trim().is_empty() {
        BTreeMap::new()
    } else {
        Targets::parse_selector(labels).map_err(|e| e.to_string())?
    };
    let discovery: Vec<String> = Some(discovery.trim())
        .filter(|d| !d.is_empty())
        .map(String::from)
        .into_iter()
        .collect();
    Ok(Targets {
        hosts,
        labels,
        discovery,
    })
}

/// Where in `sql` an error points: the token SQLite names (`near "x"`,
/// `no such table: x`, `no such column: x`), found case-insensitively.
fn error_position(sql: &str, error: &str) -> Option<usize> {
    let named = if let Some(rest) = error.split("near \"").nth(1) {
        rest.split('"').next()?
    } else {
        ["no such table: ", "no such column: ", "no such function: "]
            .iter()
            .find_map(|p| error.split(p).nth(1))?
            .split(|c: char| c.is_whitespace() || c == ')' || c == ',')
            .next()?
    };
    if named.is_empty() {
        return None;
    }
    sql.to_ascii_lowercase().find(&named.to_ascii_lowercase())
}

pub async fn history(State(app): State<App>, SignedIn(user): SignedIn) -> Response {
    let rows: Vec<Vec<String>> = app
        .hunts
        .all()
        .iter()
        .rev()
        .map(|h| {
            let p = h.state();
            vec![
                h.id.clone(),
                h.issuer.clone(),
                sweep_proto::time::calendar_time(h.issued_at),
                h.targets.clone(),
                format!("{} / {}", p.answered, p.expected),
                p.rows.len().to_string(),
                h.sql.clone(),
            ]
        })
        .collect();
    let mut html = table(
        "history",
        &[
            "hunt", "issuer", "issued", "targets", "answered", "rows", "sql",
        ],
        &rows,
    );
    // Each id links to its page.
    for h in app.hunts.all() {
        let id = esc(&h.id);
        html = html.replacen(
            &format!("<td>{id}</td>"),
            &format!("<td><a href=\"/hunts/{id}\">{id}</a></td>"),
            1,
        );
    }
    layout(
        "History",
        Some(&user),
        &format!("<h1>Hunts issued here</h1>{html}"),
    )
    .into_response()
}

pub async fn view(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Response {
    let Some(h) = app.hunts.get(&id) else {
        return (
            StatusCode::NOT_FOUND,
            layout(
                "Hunt",
                Some(&user),
                "<p class=\"error\">No such hunt here.</p>",
            ),
        )
            .into_response();
    };
    let id = esc(&h.id);
    let body = format!(
        r#"<h1>Hunt <code>{id}</code></h1>
<p><code>{}</code></p><p class="status">targets {} · issued by {}</p>
<div class="progress"><span>state <b id="hunt-state">running</b></span><span>expected <b id="expected">0</b></span><span>answered <b id="answered">0</b></span><span>failed <b id="failed">0</b></span><span>rows <b id="row-count">0</b></span></div>
<p id="downloads" hidden><a href="/api/hunts/{id}/rows.csv" id="download-csv" download>CSV</a> · <a href="/api/hunts/{id}/rows.json" id="download-json" download>JSON</a></p>
<label>Filter <input id="row-filter" placeholder="text in any column"></label>
<table id="rows" class="data"><thead><tr></tr></thead><tbody></tbody></table>
<h2>Hosts that failed or did not answer</h2>
<table id="outcomes" class="data"><thead><tr><th>host</th><th>outcome</th><th>reason</th></tr></thead><tbody></tbody></table>
<script>window.addEventListener('DOMContentLoaded', () => sweepHunt('{id}'));</script>"#,
        esc(&h.sql),
        esc(&h.targets),
        esc(&h.issuer)
    );
    layout("Hunt", Some(&user), &body).into_response()
}

/// The hunt's progress as server-sent events: what came so far, then what
/// comes, then `done`.
pub async fn events(
    State(app): State<App>,
    SignedIn(_): SignedIn,
    Path(id): Path<String>,
) -> Response {
    let Some(h) = app.hunts.get(&id) else {
        return no_such_hunt();
    };
    Sse::new(follow(h))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn follow(h: Arc<Entry>) -> impl Stream<Item = Result<Event, Infallible>> {
    let rx = h.changed.subscribe();
    let start = Cursor::default();
    futures::stream::unfold((h, rx, start), |(h, mut rx, at)| async move {
        if at.finished {
            return None;
        }
        loop {
            let (events, next) = at.advance(&h.state());
            if !events.is_empty() {
                return Some((
                    futures::stream::iter(events.into_iter().map(Ok)),
                    (h, rx, next),
                ));
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    })
    .flat_map(|s| s)
}

/// How far a page following a hunt has been sent.
#[derive(Default, Clone, Copy)]
struct Cursor {
    rows: usize,
    outcomes: usize,
    generation: u64,
    finished: bool,
}

/// Rows are sent this many at a time, so a large hunt streams.
const ROWS_PER_BATCH: usize = 500;

impl Cursor {
    /// The events that bring a page from `self` to `p`, and where that
    /// leaves it.
    fn advance(self, p: &Progress) -> (Vec<Event>, Cursor) {
        let mut at = self;
        let mut events = Vec::new();
        if p.generation != at.generation {
            events.push(Event::default().event("reset").data(""));
            at = Cursor {
                generation: p.generation,
                ..Cursor::default()
            };
        }
        for (host, columns) in p.rows.iter().skip(at.rows).take(ROWS_PER_BATCH) {
            events.push(
                Event::default()
                    .event("row")
                    .data(json!({"host": host, "columns": columns}).to_string()),
            );
        }
        at.rows = (at.rows + ROWS_PER_BATCH).min(p.rows.len());
        let ended = p.done.is_some() || p.failure.is_some();
        let last = ended && at.rows == p.rows.len();
        let outcome_event = |(host, outcome, reason): &(String, String, String)| {
            Event::default()
                .event("outcome")
                .data(json!({"host": host, "outcome": outcome, "reason": reason}).to_string())
        };
        if last {
            // The final list (silent hosts included) replaces the running one.
            events.push(Event::default().event("outcomes-reset").data(""));
            events.extend(p.outcomes.iter().map(outcome_event));
        } else {
            events.extend(p.outcomes.iter().skip(at.outcomes).map(outcome_event));
        }
        at.outcomes = p.outcomes.len();
        if !events.is_empty() || ended {
            events.push(
                Event::default().event("progress").data(
                    json!({"expected": p.expected, "answered": p.answered, "failed": p.failed})
                        .to_string(),
                ),
            );
        }
        if at.rows == p.rows.len() {
            if let Some(f) = &p.failure {
                events.push(Event::default().event("failure").data(f.clone()));
                at.finished = true;
            } else if let Some(secs) = p.done {
                events.push(
                    Event::default().event("done").data(
                        json!({"elapsed": (secs * 10.0).round() / 10.0, "rows": p.rows.len(),
                           "rows_dropped": p.rows_dropped})
                        .to_string(),
                    ),
                );
                at.finished = true;
            }
        }
        (events, at)
    }
}

pub async fn csv(
    State(app): State<App>,
    SignedIn(_): SignedIn,
    Path(id): Path<String>,
) -> Response {
    rows_as(&app, &id, Format::Csv, "csv", "text/csv")
}

pub async fn json(
    State(app): State<App>,
    SignedIn(_): SignedIn,
    Path(id): Path<String>,
) -> Response {
    rows_as(&app, &id, Format::Json, "json", "application/json")
}

/// A hunt's rows as a file to download, host first, written as the CLI's
/// `--output` writes them.
fn rows_as(app: &App, id: &str, format: Format, ext: &str, kind: &'static str) -> Response {
    let Some((h, p)) = app.hunts.rows(id) else {
        return no_such_hunt();
    };
    let columns = columns(&p.rows);
    let header: Vec<&str> = std::iter::once("host")
        .chain(columns.iter().map(String::as_str))
        .collect();
    let cells = p.rows.iter().map(|(host, row)| {
        std::iter::once(host.clone())
            .chain(
                columns
                    .iter()
                    .map(|c| row.get(c).cloned().unwrap_or_default()),
            )
            .collect()
    });
    let mut bytes = Vec::new();
    if let Err(e) = output::write_rows(&mut bytes, format, &header, cells) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("writing the rows: {e}"),
        )
            .into_response();
    }
    download(&h.id, ext, kind, bytes)
}

fn download(id: &str, ext: &str, kind: &'static str, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"hunt-{id}.{ext}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// Every column of the rows, in the order first seen.
fn columns(rows: &[(String, BTreeMap<String, String>)]) -> Vec<String> {
    let mut seen = Vec::new();
    for (_, row) in rows {
        for k in row.keys() {
            if !seen.contains(k) {
                seen.push(k.clone());
            }
        }
    }
    seen
}

/// Issues the hunt and follows it on a task of its own.
async fn launch(
    app: &App,
    user: &str,
    sql: String,
    targets: Targets,
    timeout: Duration,
) -> Result<String, crate::ControllerError> {
    let shown_targets = crate::render::targets(&targets);
    let request = HuntRequest {
        sql: sql.clone(),
        targets,
        expect: ExpectArgs::default(),
        timeout,
        // Live a little past the wait, for agents that come up meanwhile.
        expiry: timeout.max(Duration::from_secs(60)),
        issuer: user.to_string(),
    };
    let mut run = hunting::start(&app.settings, request).await?;
    let entry = Arc::new(Entry {
        id: run.id().to_string(),
        sql,
        issuer: user.to_string(),
        targets: shown_targets,
        issued_at: sweep_proto::time::unix_now(),
        state: Mutex::new(Progress::default()),
        changed: watch::Sender::new(0),
    });
    app.hunts.add(entry.clone());
    let id = entry.id.clone();
    tracing::info!(user = %user, hunt = %id, "console issued a hunt");
    tokio::spawn(async move {
        loop {
            match run.next().await {
                Ok(Some(HuntEvent::Row { host, columns })) => entry.update(|p| {
                    if p.rows.len() < ROWS_KEPT {
                        p.rows.push((host, columns));
                    } else {
                        p.rows_dropped += 1;
                    }
                }),
                Ok(Some(HuntEvent::Host(o))) => {
                    if o.outcome != Outcome::Answered {
                        entry.update(|p| p.outcomes.push(outcome(&o)));
                    }
                }
                Ok(Some(HuntEvent::Counts(c))) => entry.update(|p| counts(p, &c)),
                Ok(Some(HuntEvent::Done(f))) => {
                    entry.update(|p| {
                        // Only rows whose host's signed answer verified stay.
                        if f.rows.len() != p.rows.len() {
                            p.generation += 1;
                            p.rows_dropped = f.rows.len().saturating_sub(ROWS_KEPT) as u64;
                            p.rows = f.rows.into_iter().take(ROWS_KEPT).collect();
                        }
                        p.outcomes = f
                            .outcomes
                            .iter()
                            .filter(|o| o.outcome != Outcome::Answered)
                            .map(outcome)
                            .collect();
                        counts(p, &f.counts);
                        p.done = Some(f.elapsed.as_secs_f64());
                    });
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    entry.update(|p| p.failure = Some(e.to_string()));
                    break;
                }
            }
        }
    });
    Ok(id)
}

fn outcome(o: &HostOutcome) -> (String, String, String) {
    (
        o.host_id.clone(),
        o.outcome.as_str().to_string(),
        o.reason.clone().unwrap_or_default(),
    )
}

fn counts(p: &mut Progress, c: &Counts) {
    p.expected = c.targeted;
    p.answered = c.answered;
    p.failed = c.errors;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guards_errors_point_at_the_named_token() {
        let sql = "SELECT pid FROM nosuch WHERE x";
        let e = guard::check(sql).unwrap_err().to_string();
        assert_eq!(error_position(sql, &e), Some(16), "{e}");
        let sql = "SELECT pid FROM processes WHERE";
        let e = guard::check(sql).unwrap_err().to_string();
        assert!(
            error_position(sql, &e).is_some() || !e.contains("near"),
            "{e}"
        );
        assert_eq!(error_position("SELECT 1", "something else"), None);
    }
}
