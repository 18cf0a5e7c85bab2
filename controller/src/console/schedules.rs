//! Scheduled queries and packs: list, add, remove, and pack files uploaded
//! as osquery writes them. What is added is signed with the server's key
//! and names the signed-in user as its issuer.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use sweep_proto::signing::Kind;
use sweep_proto::time::unix_now;
use sweep_proto::{guard, Keyspace, Pack, ScheduledQuery, Store, Targets};

use super::auth::SignedIn;
use super::page::{esc, layout, table};
use super::{failure, App};
use crate::{names, operator, packfile, render, ControllerError};

/// Every value under `dir` decoded with `decode`; a bad one is shown as a
/// note rather than hiding the others.
async fn list<T>(
    store: &Store,
    dir: &str,
    decode: impl Fn(&[u8]) -> Result<T, sweep_proto::ProtoError>,
    notes: &mut Vec<String>,
) -> Result<Vec<T>, ControllerError> {
    let mut out = Vec::new();
    for entry in store.list(dir).await? {
        let key = entry.key.as_str();
        if Keyspace::leaf(dir, key).is_none() {
            continue;
        }
        match operator::body(&entry.value).and_then(|b| Ok(decode(b.as_bytes())?)) {
            Ok(v) => out.push(v),
            Err(e) => notes.push(format!("{key}: {e}")),
        }
    }
    Ok(out)
}

pub async fn page(State(app): State<App>, SignedIn(user): SignedIn) -> Response {
    match render_page(&app, &user, None).await {
        Ok(r) => r,
        Err(e) => failure(&user, "Schedules & packs", &e),
    }
}

async fn render_page(
    app: &App,
    user: &str,
    error: Option<&str>,
) -> Result<Response, ControllerError> {
    let keys = app.settings.keyspace();
    let store = app.store().await?;
    let mut notes = Vec::new();
    let mut schedules = list(
        &store,
        &keys.schedules(),
        ScheduledQuery::from_json,
        &mut notes,
    )
    .await?;
    schedules.sort_by(|a, b| a.name.cmp(&b.name));
    let mut packs = list(&store, &keys.packs(), Pack::from_json, &mut notes).await?;
    packs.sort_by(|a, b| a.name.cmp(&b.name));
    let remove = |action: &str, name: &str| {
        format!(
            r#"<form method="post" action="{action}" class="inline"><input type="hidden" name="name" value="{}"><button type="submit" class="remove" data-name="{}">remove</button></form>"#,
            esc(name),
            esc(name)
        )
    };
    let mut schedule_rows = String::new();
    for q in &schedules {
        schedule_rows.push_str(&format!(
            "<tr><td>{}</td><td>{}s</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            esc(&q.name),
            q.interval,
            if q.snapshot { "snapshot" } else { "differential" },
            esc(&render::targets(&q.targets)),
            esc(&q.issuer),
            esc(&q.sql),
            remove("/schedules/remove", &q.name)
        ));
    }
    let mut pack_rows = String::new();
    for p in &packs {
        pack_rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.name),
            p.queries.len(),
            p.discovery.len(),
            esc(&render::targets(&p.targets)),
            esc(&p.issuer),
            remove("/packs/remove", &p.name)
        ));
    }
    let error = error
        .map(|e| format!("<p class=\"error\" id=\"form-error\">{}</p>", esc(e)))
        .unwrap_or_default();
    let notes = if notes.is_empty() {
        String::new()
    } else {
        let rows: Vec<Vec<String>> = notes.into_iter().map(|n| vec![n]).collect();
        format!(
            "<h3>Values that could not be read</h3>{}",
            table("notes", &["note"], &rows)
        )
    };
    let body = format!(
        r#"<h1>Schedules &amp; packs</h1>{error}
<h2>Scheduled queries</h2>
<table id="schedules" class="data"><thead><tr><th>name</th><th>interval</th><th>mode</th><th>targets</th><th>issuer</th><th>sql</th><th></th></tr></thead><tbody>{schedule_rows}</tbody></table>
<form method="post" action="/schedules/add" class="add" id="schedule-form">
<label>Name <input name="name" id="schedule-name" required></label>
<label>SQL <textarea name="sql" id="schedule-sql" rows="3" required></textarea></label>
<label>Every <input name="interval" id="schedule-interval" value="60" size="6"> s</label>
<label><input type="checkbox" name="snapshot" value="1"> snapshot (every row each run)</label>
<button type="submit">Add schedule</button></form>
<h2>Packs</h2>
<table id="packs" class="data"><thead><tr><th>name</th><th>queries</th><th>discovery</th><th>targets</th><th>issuer</th><th></th></tr></thead><tbody>{pack_rows}</tbody></table>
<form method="post" action="/packs/add" class="add" id="pack-form">
<label>Name <input name="name" id="pack-name" required></label>
<label>Pack file (osquery's format) <input type="file" id="pack-file" accept=".conf,.json"></label><span class="status" id="pack-file-status"></span>
<textarea name="text" id="pack-text" rows="6" placeholder="or paste the pack here"></textarea>
<button type="submit">Add pack</button></form>
{notes}"#
    );
    Ok(layout("Schedules & packs", Some(user), &body).into_response())
}

#[derive(Deserialize)]
pub struct NewSchedule {
    name: String,
    sql: String,
    interval: u64,
    #[serde(default)]
    snapshot: Option<String>,
}

pub async fn add(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Form(f): Form<NewSchedule>,
) -> Response {
    let done = async {
        names::check("schedule", &f.name)?;
        guard::check(&f.sql)?;
        if f.interval == 0 || f.interval > packfile::MAX_INTERVAL {
            return Err(ControllerError::Usage(format!(
                "the interval must be 1 to {} seconds",
                packfile::MAX_INTERVAL
            )));
        }
        let signer = operator::signer(&app.settings, "schedule")?;
        let mut query = ScheduledQuery {
            name: f.name.clone(),
            sql: f.sql.clone(),
            interval: f.interval,
            snapshot: f.snapshot.is_some(),
            removed: true,
            targets: Targets::all(),
            platform: None,
            description: String::new(),
            issuer: user.clone(),
            issued_at: unix_now(),
            version: 0,
        };
        let key = app.settings.keyspace().schedule(&query.name);
        let store = app.store().await?;
        query.version = operator::next_version(&store, &key).await?;
        let stored = operator::seal(signer.as_ref(), Kind::Schedule, query.to_json());
        store.put(&key, stored.to_json().as_bytes()).await?;
        tracing::info!(user = %user, schedule = %query.name, "console added a schedule");
        Ok(())
    };
    after(&app, &user, done.await).await
}

#[derive(Deserialize)]
pub struct Named {
    name: String,
}

pub async fn remove(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Form(f): Form<Named>,
) -> Response {
    let key = app.settings.keyspace().schedule(&f.name);
    let done = delete(&app, &key, "schedule", &f.name).await;
    if done.is_ok() {
        tracing::info!(user = %user, schedule = %f.name, "console removed a schedule");
    }
    after(&app, &user, done).await
}

#[derive(Deserialize)]
pub struct NewPack {
    name: String,
    text: String,
}

pub async fn add_pack(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Form(f): Form<NewPack>,
) -> Response {
    let done = async {
        names::check("pack", &f.name)?;
        let parsed = packfile::parse(&f.name, &f.text)?;
        if let Some((what, e)) = parsed.refused() {
            return Err(ControllerError::Usage(format!(
                "pack {}: {what}: {e} (nothing was written: a pack is installed whole or not at all)",
                f.name
            )));
        }
        let signer = operator::signer(&app.settings, "pack")?;
        let mut pack = Pack {
            name: f.name.clone(),
            discovery: parsed.discovery,
            platform: parsed.platform,
            targets: Targets::all(),
            queries: parsed.queries,
            issuer: user.clone(),
            issued_at: unix_now(),
            version: 0,
        };
        let key = app.settings.keyspace().pack(&pack.name);
        let store = app.store().await?;
        pack.version = operator::next_version(&store, &key).await?;
        let stored = operator::seal(signer.as_ref(), Kind::Pack, pack.to_json());
        store.put(&key, stored.to_json().as_bytes()).await?;
        tracing::info!(user = %user, pack = %pack.name, "console added a pack");
        Ok(())
    };
    after(&app, &user, done.await).await
}

pub async fn remove_pack(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Form(f): Form<Named>,
) -> Response {
    let key = app.settings.keyspace().pack(&f.name);
    let done = delete(&app, &key, "pack", &f.name).await;
    if done.is_ok() {
        tracing::info!(user = %user, pack = %f.name, "console removed a pack");
    }
    after(&app, &user, done).await
}

async fn delete(
    app: &App,
    key: &str,
    what: &'static str,
    name: &str,
) -> Result<(), ControllerError> {
    let store = app.store().await?;
    if !store.delete(key).await? {
        return Err(ControllerError::NotFound {
            what,
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Back to the list, or the list with the error on it.
async fn after(app: &App, user: &str, done: Result<(), ControllerError>) -> Response {
    match done {
        Ok(()) => Redirect::to("/schedules").into_response(),
        Err(e) => match render_page(app, user, Some(&e.to_string())).await {
            Ok(r) => (axum::http::StatusCode::BAD_REQUEST, r).into_response(),
            Err(e) => failure(user, "Schedules & packs", &e),
        },
    }
}
