//! Every rule kind end to end: rows written to `sweep.results` as agents
//! write them, a real broker, `sweep-rules` evaluating, and the matches read
//! back from `sweep.matches` with `sweep matches`. Also `sweep-rules test
//! ops/rules`: every example in the shipped rules passes.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use sweep_e2e::{bin, eventually, http_get, ndjson, Cluster};

/// A scheduled row as an agent writes it, at `time`.
fn row(query: &str, host: &str, time: u64, action: &str, columns: Value) -> String {
    json!({
        "name": query, "hostIdentifier": host, "calendarTime": "", "unixTime": time,
        "columns": columns, "action": action,
    })
    .to_string()
}

fn matches_by_rule(c: &Cluster) -> BTreeMap<String, Vec<Value>> {
    let mut by: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for m in ndjson(&c.sweep(&["matches", "--json"]).stdout) {
        by.entry(m["rule_id"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(m);
    }
    by
}

#[test]
fn each_rule_kind_raises_its_matches_through_the_broker() {
    let c = Cluster::start().unwrap();
    let intel = c.dir.path().join("c2.txt");
    std::fs::write(&intel, "# C2 addresses\n61.135.169.80\n203.0.113.0/24\n").unwrap();
    let rules = format!(
        r#"
[[rule]]
id = "k_match"
title = "match, added rows only"
severity = "high"
query = "procs"
action = ["added"]
condition = "path LIKE '/tmp/%'"

[[rule]]
id = "k_threshold"
title = "threshold: 3 distinct ports per host in 60s"
severity = "medium"
query = "socks"
kind = "threshold"
[rule.threshold]
count = 3
within = "60s"
by = ["host"]
distinct = "remote_port"

[[rule]]
id = "k_indicator"
title = "indicator: C2 address"
severity = "critical"
query = "socks"
kind = "indicator"
[rule.indicator]
field = "remote_address"
type = "cidr"
files = ["{intel}"]

[[rule]]
id = "k_new_terms"
title = "new_terms: a user never seen on the host after 100 s"
severity = "high"
query = "users"
kind = "new_terms"
[rule.new_terms]
fields = ["username"]
learn_for = "100s"

[[rule]]
id = "k_sequence"
title = "sequence: a process from /tmp, then its outbound connection"
severity = "high"
query = "*"
kind = "sequence"
[rule.sequence]
by = ["host", "pid"]
within = "5m"
steps = [
  {{ query = "procs", condition = "path LIKE '/tmp/%'" }},
  {{ query = "socks", condition = "remote_port > 0" }},
]

[[rule]]
id = "k_suppressed"
title = "match with suppression"
severity = "low"
query = "procs"
condition = "name = 'noisy'"
suppress_for = "1h"
"#,
        intel = intel.display()
    );
    let dir = c.rules_dir(&rules);
    let sweep_rules = c.rules(&dir).unwrap();
    // Ready once it has made the topics and its consumers run.
    let addr =
        eventually(Duration::from_secs(20), || sweep_rules.admin_addr()).expect("admin address");
    eventually(Duration::from_secs(60), || {
        http_get(&addr, "/ready").contains("ready").then_some(())
    })
    .expect("sweep-rules never ready");
    let t = 1_795_600_000u64;
    let rows = vec![
        // match: an added row fires, a removed one does not.
        row(
            "procs",
            "web-1",
            t,
            "added",
            json!({"pid": "7", "name": "x", "path": "/tmp/x"}),
        ),
        row(
            "procs",
            "web-1",
            t + 1,
            "removed",
            json!({"pid": "8", "name": "y", "path": "/tmp/y"}),
        ),
        // threshold: web-1 reaches 3 distinct ports; web-2 only 2.
        row(
            "socks",
            "web-1",
            t,
            "added",
            json!({"pid": "7", "remote_address": "198.51.100.1", "remote_port": "80"}),
        ),
        row(
            "socks",
            "web-1",
            t + 5,
            "added",
            json!({"pid": "7", "remote_address": "198.51.100.1", "remote_port": "80"}),
        ),
        row(
            "socks",
            "web-1",
            t + 10,
            "added",
            json!({"pid": "7", "remote_address": "198.51.100.1", "remote_port": "443"}),
        ),
        row(
            "socks",
            "web-1",
            t + 20,
            "added",
            json!({"pid": "7", "remote_address": "61.135.169.80", "remote_port": "8080"}),
        ),
        row(
            "socks",
            "web-2",
            t,
            "added",
            json!({"pid": "9", "remote_address": "203.0.113.9", "remote_port": "22"}),
        ),
        row(
            "socks",
            "web-2",
            t + 1,
            "added",
            json!({"pid": "9", "remote_address": "192.0.2.1", "remote_port": "23"}),
        ),
        // new_terms: root and alice learned; bob after the learning window.
        row("users", "web-1", t, "added", json!({"username": "root"})),
        row(
            "users",
            "web-1",
            t + 50,
            "added",
            json!({"username": "alice"}),
        ),
        row(
            "users",
            "web-1",
            t + 200,
            "added",
            json!({"username": "alice"}),
        ),
        row(
            "users",
            "web-1",
            t + 201,
            "added",
            json!({"username": "bob"}),
        ),
        // suppression: three identical rows, one match.
        row(
            "procs",
            "web-3",
            t,
            "snapshot",
            json!({"pid": "1", "name": "noisy"}),
        ),
        row(
            "procs",
            "web-3",
            t + 1,
            "snapshot",
            json!({"pid": "1", "name": "noisy"}),
        ),
        row(
            "procs",
            "web-3",
            t + 2,
            "snapshot",
            json!({"pid": "1", "name": "noisy"}),
        ),
    ];
    c.produce_many(
        "sweep.results",
        None,
        rows.iter().map(|r| {
            let host = if r.contains("web-1") {
                "web-1"
            } else if r.contains("web-2") {
                "web-2"
            } else {
                "web-3"
            };
            (host, r.as_bytes())
        }),
    );
    let want = [
        ("k_match", 1),
        ("k_threshold", 1),
        // 61.135.169.80 is not in 203.0.113.0/24 but is listed; 203.0.113.9 is in it.
        ("k_indicator", 2),
        ("k_new_terms", 1),
        ("k_sequence", 1),
        ("k_suppressed", 1),
    ];
    let got = eventually(Duration::from_secs(60), || {
        let by = matches_by_rule(&c);
        want.iter()
            .all(|(rule, n)| by.get(*rule).map_or(0, Vec::len) >= *n)
            .then_some(by)
    })
    .unwrap_or_else(|| {
        panic!(
            "{:?}\n{}",
            matches_by_rule(&c).keys().collect::<Vec<_>>(),
            sweep_rules.log_text()
        )
    });
    for (rule, n) in want {
        assert_eq!(got[rule].len(), n, "{rule}: {:?}", got[rule]);
    }
    assert_eq!(got["k_match"][0]["row"]["pid"], "7");
    assert_eq!(got["k_threshold"][0]["host"], "web-1");
    assert_eq!(got["k_new_terms"][0]["row"]["username"], "bob");
    assert_eq!(got["k_suppressed"][0]["count"], 1);
    let hosts: Vec<&str> = got["k_indicator"]
        .iter()
        .map(|m| m["host"].as_str().unwrap())
        .collect();
    assert!(
        hosts.contains(&"web-1") && hosts.contains(&"web-2"),
        "{hosts:?}"
    );
}

#[test]
fn the_shipped_rules_pass_their_examples() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ops/rules");
    let out = Command::new(bin("sweep-rules"))
        .arg("test")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (passed, total) = stdout
        .lines()
        .last()
        .and_then(|l| l.split_once(" example(s) passed"))
        .and_then(|(counts, _)| counts.split_once(" of "))
        .map(|(p, t)| (p.parse::<usize>().unwrap(), t.parse::<usize>().unwrap()))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(passed, total);
    assert!(total >= 19, "{stdout}");
    assert!(!stdout.contains("without examples"), "{stdout}");
}
