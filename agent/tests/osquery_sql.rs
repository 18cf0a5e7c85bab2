//! osquery's SQL as people bring it: every osquery query the repository
//! holds (osquery's own pack queries, the seed article's hunts, the README's
//! examples, the packs in ops/packs) passes both guards, the controller's (`guard::check`, what
//! `sweep hunt` runs before sending) and the agent's (the engine, which
//! prepares on its own tables); and osquery's Linux pack queries run, the few
//! that cannot named with the reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sweep_agent::config::EventsConfig;
use sweep_agent::events::{Events, State};
use sweep_agent::tables::{Registry, TableEnv};
use sweep_agent::{Engine, Limits, QueryError};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (the shared/ directory must be checked out beside the \
             repository)",
            path.display()
        )
    })
}

/// osquery's pack queries: (pack/name, SQL).
fn pack_queries() -> Vec<(String, String)> {
    let path = repo().join("../shared/reference/osquery-pack-queries.json");
    let queries: Vec<serde_json::Value> =
        serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    queries
        .iter()
        .map(|q| {
            let field = |k: &str| q[k].as_str().unwrap_or_else(|| panic!("no {k}: {q}"));
            (
                format!("{}/{}", field("pack"), field("name")),
                field("query").to_string(),
            )
        })
        .collect()
}

/// The queries of the packs the repository ships (`ops/packs/*.conf`,
/// osquery's format with `//` comments).
fn shipped_pack_queries() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let dir = repo().join("ops/packs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    for path in files {
        let text: String = read(&path)
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let pack: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (name, q) in pack["queries"].as_object().expect("queries") {
            let sql = q["query"].as_str().expect("query text");
            found.push((format!("{}/{name}", path.display()), sql.to_string()));
        }
    }
    found
}

/// The seed hunts: one statement per paragraph of queries/seeds.sql.
fn seed_queries() -> Vec<(String, String)> {
    let text = read(&repo().join("agent/tests/queries/seeds.sql"));
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with("--"))
        .enumerate()
        .map(|(i, sql)| (format!("seeds.sql #{}", i + 1), sql.to_string()))
        .collect()
}

/// The README's complete examples: `sweep hunt "…"` and `sweep-agent query
/// "…"` whose SQL is whole (not `SELECT ...`), possibly over several lines.
fn readme_queries() -> Vec<(String, String)> {
    let text = read(&repo().join("README.md"));
    let mut found = Vec::new();
    for (at, _) in text.match_indices('"') {
        let before = &text[..at];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let lead = text[line_start..at].trim_end();
        if !(lead.ends_with("sweep hunt") || lead.ends_with("sweep-agent query")) {
            continue;
        }
        let Some(len) = text[at + 1..].find('"') else {
            continue;
        };
        let sql = &text[at + 1..at + 1 + len];
        if sql.contains("...") || !sql.to_ascii_lowercase().contains("select") {
            continue;
        }
        let line = before.matches('\n').count() + 1;
        found.push((
            format!("README.md:{line}"),
            sql.split_whitespace().collect::<Vec<_>>().join(" "),
        ));
    }
    found
}

fn engine() -> Engine {
    // Generous, but bounded: a broken table must fail, not hang the suite.
    // Event tables as in the daemon with its sources up, and nothing
    // received yet.
    let events = Events::new(&EventsConfig::default());
    for (_, source) in sweep_agent::events::TABLES {
        events.set_state(source, State::Active);
    }
    let env = TableEnv {
        events: Some(events),
        ..TableEnv::default()
    };
    Engine::new(
        Arc::new(Registry::new(env)),
        Limits {
            wall_time: Duration::from_secs(60),
            max_rows: 1_000_000,
            max_bytes: 512 * 1024 * 1024,
            ..Limits::default()
        },
    )
}

#[test]
fn every_osquery_query_the_repository_holds_passes_both_guards() {
    let (seeds, readme, packs) = (seed_queries(), readme_queries(), pack_queries());
    let shipped = shipped_pack_queries();
    assert!(seeds.len() >= 9, "{seeds:?}");
    assert!(readme.len() >= 3, "{readme:?}");
    assert_eq!(packs.len(), 113);
    assert!(shipped.len() >= 10, "{shipped:?}");
    let engine = engine();
    let mut refused = Vec::new();
    let all: Vec<_> = seeds
        .iter()
        .chain(&readme)
        .chain(&packs)
        .chain(&shipped)
        .collect();
    for (name, sql) in &all {
        if let Err(e) = sweep_proto::guard::check(sql) {
            refused.push(format!("{name}: the controller's guard: {e}\n    {sql}"));
        }
        if let Some(QueryError::Refused(why)) = engine.run(sql).error {
            refused.push(format!("{name}: the agent's guard: {why}\n    {sql}"));
        }
    }
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
    println!("{} queries passed both guards", all.len());
}

#[test]
fn the_seed_hunts_run() {
    let engine = engine();
    for (name, sql) in seed_queries() {
        let out = engine.run(&sql);
        assert_eq!(out.error, None, "{name}: {sql}");
        assert!(!out.columns.is_empty(), "{name}");
    }
}

/// The pack queries that cannot run on sweep, with the reason each gives.
const CANNOT_RUN: &[(&str, &str)] = &[];

#[test]
fn osquery_linux_pack_queries_run() {
    let engine = engine();
    let queries = pack_queries();
    let mut failed = Vec::new();
    for (name, sql) in &queries {
        if let Some(e) = engine.run(sql).error {
            failed.push((name.clone(), e.to_string()));
        }
    }
    let ran = queries.len() - failed.len();
    println!("{ran} of {} osquery pack queries ran", queries.len());
    for (name, why) in &failed {
        println!("cannot run {name}: {why}");
    }
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    let expected: Vec<&str> = CANNOT_RUN.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names, expected,
        "the pack queries that fail changed: {failed:#?}"
    );
    for ((name, why), (_, reason)) in failed.iter().zip(CANNOT_RUN) {
        assert!(why.contains(reason), "{name}: {why} (expected {reason:?})");
    }
    assert!(ran >= 108, "only {ran} of {} ran", queries.len());
}
