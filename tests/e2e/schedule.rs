//! Scheduled queries and packs: differential results (added/removed),
//! snapshots, pack discovery, removal, all through the CLI and a real agent.

use std::time::Duration;

use serde_json::Value;
use sweep_e2e::{eventually, ndjson, Backend, Cluster};

fn tail(c: &Cluster, query: &str) -> Vec<Value> {
    let out = c.sweep(&["tail", "--query", query, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ndjson(&out.stdout)
}

fn ok(out: std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn differential_and_snapshot_queries_run_on_their_interval(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    let watched = tempfile::tempdir().unwrap();
    std::fs::write(watched.path().join("a"), "1").unwrap();
    let sql = format!(
        "SELECT filename FROM file WHERE directory = '{}'",
        watched.path().display()
    );
    ok(c.sweep(&["schedule", "add", "watched_files", &sql, "--interval", "1s"]));
    ok(c.sweep(&[
        "schedule",
        "add",
        "ticks",
        "SELECT 1 AS one",
        "--interval",
        "1s",
        "--snapshot",
    ]));

    // First run: every row is added.
    let rows = eventually(Duration::from_secs(20), || {
        let rows = tail(&c, "watched_files");
        (!rows.is_empty()).then_some(rows)
    })
    .unwrap_or_else(|| panic!("no rows for watched_files\n{}", agent.log_text()));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["action"], "added");
    assert_eq!(rows[0]["columns"]["filename"], "a");
    assert_eq!(rows[0]["hostIdentifier"], "web-1");
    assert_eq!(rows[0]["counter"], 0);

    // Changes only: b appears, a goes.
    std::fs::write(watched.path().join("b"), "2").unwrap();
    std::fs::remove_file(watched.path().join("a")).unwrap();
    let rows = eventually(Duration::from_secs(20), || {
        let rows = tail(&c, "watched_files");
        (rows.len() >= 3).then_some(rows)
    })
    .unwrap_or_else(|| panic!("no differential rows\n{}", agent.log_text()));
    let changes: Vec<(String, String)> = rows
        .iter()
        .skip(1)
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["columns"]["filename"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        changes.contains(&("added".into(), "b".into())),
        "{changes:?}"
    );
    assert!(
        changes.contains(&("removed".into(), "a".into())),
        "{changes:?}"
    );
    // Unchanged runs add nothing: still three rows a while later.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(tail(&c, "watched_files").len(), 3);

    // Snapshots repeat every run.
    let snaps = eventually(Duration::from_secs(20), || {
        let rows = tail(&c, "ticks");
        (rows.len() >= 3).then_some(rows)
    })
    .expect("snapshot rows");
    assert!(snaps
        .iter()
        .all(|r| r["action"] == "snapshot" && r["columns"]["one"] == "1"));

    // Removed schedules stop.
    ok(c.sweep(&["schedule", "rm", "ticks"]));
    std::thread::sleep(Duration::from_secs(2));
    let before = tail(&c, "ticks").len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        tail(&c, "ticks").len(),
        before,
        "ticks kept running after rm"
    );

    let listed = String::from_utf8_lossy(&c.sweep(&["schedule", "list"]).stdout).to_string();
    assert!(
        listed.contains("watched_files") && !listed.contains("ticks"),
        "{listed}"
    );
}

fn packs_run_only_where_discovery_finds_something(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    let me = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    let found = dir.path().join("found.json");
    std::fs::write(
        &found,
        format!(
            r#"{{
  // osquery pack files carry comments
  "platform": "linux",
  "discovery": ["SELECT pid FROM processes WHERE pid = {me}"],
  "queries": {{
    "me": {{"query": "SELECT pid, name FROM processes WHERE pid = {me}", "interval": "1", "snapshot": true}},
    "mac_only": {{"query": "SELECT 1 AS never", "interval": 1, "snapshot": true, "platform": "darwin"}}
  }}
}}"#
        ),
    )
    .unwrap();
    let absent = dir.path().join("absent.json");
    std::fs::write(
        &absent,
        r#"{"discovery": ["SELECT 1 WHERE 0"], "queries": {"q": {"query": "SELECT 1 AS never", "interval": 1, "snapshot": true}}}"#,
    )
    .unwrap();
    ok(c.sweep(&["pack", "add", found.to_str().unwrap()]));
    ok(c.sweep(&["pack", "add", absent.to_str().unwrap()]));

    let rows = eventually(Duration::from_secs(20), || {
        let rows = tail(&c, "pack_found_me");
        (rows.len() >= 2).then_some(rows)
    })
    .unwrap_or_else(|| panic!("pack query did not run\n{}", agent.log_text()));
    assert_eq!(rows[0]["columns"]["pid"], me.to_string());
    assert!(
        tail(&c, "pack_found_mac_only").is_empty(),
        "a darwin query ran on linux"
    );
    assert!(
        tail(&c, "pack_absent_*").is_empty(),
        "a pack ran although discovery found nothing"
    );

    let listed = String::from_utf8_lossy(&c.sweep(&["pack", "list"]).stdout).to_string();
    assert!(
        listed.contains("found") && listed.contains("absent"),
        "{listed}"
    );
    ok(c.sweep(&["pack", "rm", "found"]));
}

fn a_scheduled_query_stopped_by_a_limit_is_deny_listed(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    // Never ends: the agents' 2 s wall-time limit stops it.
    let runaway =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    ok(c.sweep(&["schedule", "add", "runaway", runaway, "--interval", "1s"]));
    ok(c.sweep(&[
        "schedule",
        "add",
        "healthy",
        "SELECT 7 AS seven",
        "--interval",
        "1s",
        "--snapshot",
    ]));
    let denied = eventually(Duration::from_secs(20), || {
        agent.log_text().contains("deny-listed").then_some(())
    });
    assert!(denied.is_some(), "{}", agent.log_text());
    // Many intervals later it has still run only once, and the agent kept
    // serving the healthy query all along.
    std::thread::sleep(Duration::from_secs(5));
    let log = agent.log_text();
    assert_eq!(log.matches("stopped by a limit").count(), 1, "{log}");
    assert!(tail(&c, "healthy").len() >= 3);
    // Editing the query lifts the deny-list.
    ok(c.sweep(&[
        "schedule",
        "add",
        "runaway",
        "SELECT 1 AS fixed",
        "--interval",
        "1s",
        "--snapshot",
    ]));
    let fixed = eventually(Duration::from_secs(20), || {
        (!tail(&c, "runaway").is_empty()).then_some(())
    });
    assert!(fixed.is_some(), "{}", agent.log_text());
}

sweep_e2e::on_each_backend!(
    differential_and_snapshot_queries_run_on_their_interval,
    packs_run_only_where_discovery_finds_something,
    a_scheduled_query_stopped_by_a_limit_is_deny_listed,
);
