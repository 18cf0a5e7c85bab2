//! The controller at fleet size, against real agents: `sweep agents`
//! filters and summary, and a hunt's closing summary that groups who did not
//! answer by reason, with the full per-host report in `--outcomes FILE`.

use std::time::Duration;

use sweep_e2e::{eventually, ndjson, ok, Cluster};

fn three_agents(c: &Cluster) -> Vec<sweep_e2e::Proc> {
    let agents = vec![
        c.agent("web-1", &[("role", "web")]).unwrap(),
        c.agent("web-2", &[("role", "web")]).unwrap(),
        c.agent("db-1", &[("role", "db")]).unwrap(),
    ];
    c.wait_agents(&["db-1", "web-1", "web-2"], Duration::from_secs(20))
        .unwrap();
    agents
}

/// Host ids of `sweep agents --json` with these extra arguments, sorted.
fn listed(c: &Cluster, args: &[&str]) -> Vec<String> {
    let mut all = vec!["agents", "--json"];
    all.extend_from_slice(args);
    let out = c.sweep(&all);
    ok(&out);
    let mut hosts: Vec<String> = ndjson(&out.stdout)
        .iter()
        .map(|a| a["host_id"].as_str().unwrap().to_string())
        .collect();
    hosts.sort();
    hosts
}

#[test]
fn agents_filter_and_summarise_and_hunts_group_the_silent() {
    let c = Cluster::start().unwrap();
    let _agents = three_agents(&c);

    // Filters.
    assert_eq!(listed(&c, &["--labels", "role=web"]), ["web-1", "web-2"]);
    assert_eq!(listed(&c, &["--hosts", "web-*"]), ["web-1", "web-2"]);
    assert_eq!(listed(&c, &["--hosts", "*-1"]), ["db-1", "web-1"]);
    assert_eq!(
        listed(&c, &["--hosts", "web-*", "--labels", "role=db"]),
        Vec::<String>::new()
    );
    let out = c.sweep(&["agents", "--labels", "role"]);
    assert_eq!(out.status.code(), Some(1), "a selector without =");

    // The summary: one JSON object. An agent is listed before it is ready
    // (its watches start after its heartbeat), and says so in its state.
    let mut last = Vec::new();
    let summary = eventually(Duration::from_secs(20), || {
        let out = c.sweep(&["agents", "--summary", "--json"]);
        ok(&out);
        last = ndjson(&out.stdout);
        assert_eq!(last.len(), 1, "{last:?}");
        (last[0]["states"]["ready"] == 3).then(|| last[0].clone())
    })
    .unwrap_or_else(|| panic!("the agents are not all ready: {last:?}"));
    let s = &summary;
    assert_eq!(s["agents"], 3, "{s}");
    assert_eq!(s["labels"]["role"]["web"], 2, "{s}");
    assert_eq!(s["labels"]["role"]["db"], 1, "{s}");
    let versions = s["versions"].as_object().unwrap();
    assert_eq!(versions.len(), 1, "{s}");
    assert_eq!(versions.values().next().unwrap(), 3, "{s}");
    assert_eq!(s["states"]["ready"], 3, "{s}");
    assert_eq!(s["identities"]["pinned"], 3, "{s}");
    // Filters apply to the summary too; the table is for people.
    let out = c.sweep(&["agents", "--summary", "--labels", "role=web"]);
    ok(&out);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| label role | web "), "{table}");
    assert!(!table.contains("db"), "{table}");
    assert!(table.contains("2 live agent(s)"), "{table}");

    // A hunt expecting 15 hosts that do not exist besides the three.
    let ghosts: Vec<String> = (1..=15).map(|i| format!("ghost-{i:02}")).collect();
    let hosts = c.dir.path().join("hosts.txt");
    let mut list = ghosts.join("\n");
    list.push_str("\nweb-1\nweb-2\ndb-1\n");
    std::fs::write(&hosts, list).unwrap();
    let report = c.dir.path().join("report.ndjson");
    let out = c.sweep(&[
        "hunt",
        "SELECT 1 AS one",
        "--timeout",
        "3s",
        "--expect-file",
        hosts.to_str().unwrap(),
        "--outcomes",
        report.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let group: Vec<&str> = stderr.lines().filter(|l| l.contains("ghost-")).collect();
    assert_eq!(group.len(), 1, "the silent hosts in one group\n{stderr}");
    let line = group[0];
    assert!(
        line.starts_with("did not answer within 3s: 15 host(s): ghost-01, ghost-02"),
        "{line}"
    );
    assert!(line.ends_with("ghost-10 and 5 more"), "{line}");
    assert_eq!(line.matches("ghost-").count(), 10, "{line}");
    assert!(
        stderr.contains("3 row(s) from 3 of 18 agent(s)")
            && stderr.contains("0 failed, 15 did not answer"),
        "{stderr}"
    );
    let outcomes = ndjson(&std::fs::read(&report).unwrap());
    assert_eq!(outcomes.len(), 18, "{outcomes:?}");
    for o in &outcomes {
        let host = o["host_id"].as_str().unwrap();
        if host.starts_with("ghost-") {
            assert_eq!(o["outcome"], "silent", "{o}");
            assert_eq!(o["rows"], 0, "{o}");
            assert_eq!(o["reason"], "did not answer within 3s", "{o}");
        } else {
            assert_eq!(o["outcome"], "answered", "{o}");
            assert_eq!(o["rows"], 1, "{o}");
            assert!(o["reason"].is_null(), "{o}");
        }
    }
    let mut named: Vec<&str> = outcomes
        .iter()
        .map(|o| o["host_id"].as_str().unwrap())
        .collect();
    named.sort();
    let mut want: Vec<&str> = ghosts.iter().map(String::as_str).collect();
    want.extend(["db-1", "web-1", "web-2"]);
    want.sort();
    assert_eq!(named, want);

    // A path that cannot be written stops the hunt before it is sent.
    let out = c.sweep(&[
        "hunt",
        "SELECT 1 AS one",
        "--outcomes",
        "/nonexistent-dir/report.ndjson",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--outcomes /nonexistent-dir"), "{stderr}");
    // So does one for the rows (`--output`).
    let out = c.sweep(&[
        "hunt",
        "SELECT 1 AS one",
        "--output",
        "/nonexistent-dir/rows.csv",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--output /nonexistent-dir"), "{stderr}");
    assert!(
        c.keys_under("/sweep/hunts/").len() == 1,
        "only the first hunt was written"
    );
}
