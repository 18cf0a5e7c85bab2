//! `sweep schedule add|list|rm`: scheduled queries under `/sweep/schedule/`.
//! A schedule has no lease: it lives until it is removed. Adding one under an
//! existing name replaces it, as editing osquery's schedule does.
//!
//! Exit codes: 0 on success, 1 on an error (e.g. `rm` of an unknown name),
//! 2 when the guard refuses the SQL (nothing is written).

use std::io::Write;

use sweep_proto::schedule::runs_on_linux;
use sweep_proto::signing::Kind;
use sweep_proto::time::unix_now;
use sweep_proto::{guard, Keyspace, ScheduledQuery};

use crate::cli::{ListArgs, RmArgs, ScheduleAddArgs, ScheduleCommand};
use crate::config::Settings;
use crate::output::{Format, RowWriter};
use crate::packfile::MAX_INTERVAL;
use crate::{names, operator, render, ControllerError};

pub async fn run(settings: &Settings, command: ScheduleCommand) -> Result<u8, ControllerError> {
    match command {
        ScheduleCommand::Add(args) => add(settings, args).await,
        ScheduleCommand::List(args) => list(settings, args).await,
        ScheduleCommand::Rm(args) => rm(settings, args).await,
    }
}

async fn add(settings: &Settings, args: ScheduleAddArgs) -> Result<u8, ControllerError> {
    names::check("schedule", &args.name)?;
    if let Err(e) = guard::check(&args.sql) {
        eprintln!("Error: {e}");
        return Ok(2);
    }
    let interval = interval_secs(args.interval)?;
    if let Some(p) = &args.platform {
        if !runs_on_linux(Some(p)) {
            return Err(ControllerError::Usage(format!(
                "platform `{p}` does not include Linux: no sweep agent would run this query"
            )));
        }
    }
    if args.snapshot && args.no_removed {
        eprintln!("warning: --no-removed has no effect with --snapshot (snapshots log every row)");
    }
    if let Some(why) = args.targets.refused_discovery() {
        eprintln!("Error: {why}");
        return Ok(2);
    }
    let targets = args.targets.targets()?;
    let signer = operator::signer(settings, "schedule")?;
    let mut query = ScheduledQuery {
        name: args.name.clone(),
        sql: args.sql,
        interval,
        snapshot: args.snapshot,
        removed: !args.no_removed,
        targets,
        platform: args.platform.filter(|p| !p.trim().is_empty()),
        description: args.description.unwrap_or_default(),
        issuer: operator::issuer(),
        issued_at: unix_now(),
        version: 0,
    };
    let keys = settings.keyspace();
    let store = settings.store().await?;
    let key = keys.schedule(&query.name);
    query.version = operator::next_version(&store, &key).await?;
    let stored = operator::seal(signer.as_ref(), Kind::Schedule, query.to_json());
    let replaced = store.put(&key, stored.to_json().as_bytes()).await?;
    println!(
        "schedule {} {}: every {}, {}, targets {}{}",
        query.name,
        if replaced { "replaced" } else { "added" },
        humantime::format_duration(std::time::Duration::from_secs(query.interval)),
        mode(&query),
        render::targets(&query.targets),
        if stored.signature.is_some() {
            ", signed"
        } else {
            ", unsigned"
        }
    );
    Ok(0)
}

/// The interval in whole seconds, within osquery's bounds.
fn interval_secs(d: std::time::Duration) -> Result<u64, ControllerError> {
    let bad = |why: &str| {
        Err(ControllerError::Usage(format!(
            "--interval {}: {why}",
            humantime::format_duration(d)
        )))
    };
    if d.subsec_nanos() != 0 {
        return bad("intervals are whole seconds");
    }
    match d.as_secs() {
        0 => bad("the interval must be at least 1s"),
        s if s > MAX_INTERVAL => bad("the interval can be at most a week (604800s), as in osquery"),
        s => Ok(s),
    }
}

fn mode(q: &ScheduledQuery) -> &'static str {
    match (q.snapshot, q.removed) {
        (true, _) => "snapshot",
        (false, true) => "differential",
        (false, false) => "differential (added only)",
    }
}

async fn list(settings: &Settings, args: ListArgs) -> Result<u8, ControllerError> {
    let keys = settings.keyspace();
    let store = settings.store().await?;
    let dir = keys.schedules();
    let entries = store.list(&dir).await?;
    let mut queries = Vec::new();
    for entry in &entries {
        let key = entry.key.as_str();
        if Keyspace::leaf(&dir, key).is_none() {
            continue;
        }
        match operator::body(&entry.value)
            .and_then(|b| Ok(ScheduledQuery::from_json(b.as_bytes())?))
        {
            Ok(q) => queries.push(q),
            // One bad value must not hide the others.
            Err(e) => eprintln!(
                "warning: {}: {}",
                sweep_proto::text::printable(key),
                sweep_proto::text::printable(&e.to_string())
            ),
        }
    }
    queries.sort_by(|a, b| a.name.cmp(&b.name));
    let format = args.format.format();
    let columns = [
        "name", "interval", "mode", "targets", "platform", "issuer", "sql",
    ];
    let mut rows = RowWriter::new(std::io::stdout().lock(), format, &columns)?.clip(&["sql"]);
    for q in &queries {
        let cells = vec![
            q.name.clone(),
            humantime::format_duration(std::time::Duration::from_secs(q.interval)).to_string(),
            mode(q).to_string(),
            render::targets(&q.targets),
            q.platform.clone().unwrap_or_else(|| "all".into()),
            q.issuer.clone(),
            one_line(&q.sql),
        ];
        // json and ndjson: the query as stored.
        rows.row_with(cells, q.to_json())?;
    }
    rows.finish()?;
    if format == Format::Table {
        writeln!(
            std::io::stdout().lock(),
            "{} scheduled quer{}",
            queries.len(),
            if queries.len() == 1 { "y" } else { "ies" }
        )?;
    }
    Ok(0)
}

/// SQL on one line, for a table cell.
fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn rm(settings: &Settings, args: RmArgs) -> Result<u8, ControllerError> {
    names::check("schedule", &args.name)?;
    let keys = settings.keyspace();
    let store = settings.store().await?;
    if !store.delete(&keys.schedule(&args.name)).await? {
        return Err(ControllerError::NotFound {
            what: "schedule",
            name: args.name,
        });
    }
    println!("schedule {} removed", args.name);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn intervals_are_whole_seconds_within_osquery_bounds() {
        assert_eq!(interval_secs(Duration::from_secs(1)).unwrap(), 1);
        assert_eq!(
            interval_secs(Duration::from_secs(MAX_INTERVAL)).unwrap(),
            MAX_INTERVAL
        );
        assert!(interval_secs(Duration::ZERO).is_err());
        assert!(interval_secs(Duration::from_millis(500)).is_err());
        assert!(interval_secs(Duration::from_millis(1500)).is_err());
        assert!(interval_secs(Duration::from_secs(MAX_INTERVAL + 1)).is_err());
    }

    #[test]
    fn sql_fits_one_line() {
        assert_eq!(
            one_line("SELECT *\n  FROM users\tWHERE 1"),
            "SELECT * FROM users WHERE 1"
        );
    }
}
