//! Answers that can't be forged: records produced to the broker by anyone
//! but the agent they name — a fake row, a clean status for a frozen host —
//! are reported by `sweep hunt` (which then exits non-zero) and by
//! sweep-rules (a critical `sweep-forged-results` match).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use sweep_e2e::{eventually, http_get, ndjson, ok, Cluster};
use sweep_proto::identity::{AgentKey, RowDigest};
use sweep_proto::record::StatusBody;
use sweep_proto::{HuntStatus, ResultRow};

fn fake_row(host: &str, name: &str, hunt_id: Option<&str>, seq: Option<u64>) -> Vec<u8> {
    serde_json::to_vec(&ResultRow {
        name: name.into(),
        host_identifier: host.into(),
        calendar_time: String::new(),
        unix_time: sweep_proto::time::unix_now(),
        epoch: 0,
        counter: 0,
        decorations: BTreeMap::new(),
        columns: [("one".to_string(), "FORGED-ROW".to_string())].into(),
        action: "snapshot".into(),
        hunt_id: hunt_id.map(str::to_string),
        seq,
    })
    .unwrap()
}

#[test]
fn a_forged_status_and_a_fake_row_are_reported_and_the_hunt_fails() {
    let c = Cluster::start().unwrap();
    let _web1 = c.agent("web-1", &[]).unwrap();
    let web2 = c.agent("web-2", &[]).unwrap();
    c.wait_agents(&["web-1", "web-2"], Duration::from_secs(20))
        .unwrap();
    // The controller pins both identities on first sight.
    let out = c.sweep(&["agents", "--json"]);
    ok(&out);
    for a in ndjson(&out.stdout) {
        assert_eq!(a["identity_status"], "pinned", "{a}");
        assert_eq!(a["identity"].as_str().unwrap().len(), 64, "{a}");
    }
    // web-2 freezes: its heartbeat lapses, but it was seen within the hour.
    web2.signal(19); // SIGSTOP
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    let hunt = c
        .sweep_cmd(&[
            "hunt",
            "SELECT 1 AS one",
            "--json",
            "--timeout",
            "8s",
            "--expect-seen",
            "1h",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let hunt_id = eventually(Duration::from_secs(10), || {
        c.keys_under("/sweep/hunts/")
            .first()
            .map(|k| k.trim_start_matches("/sweep/hunts/").to_string())
    })
    .expect("the hunt was written");
    // Answers go to the partition of sweep.hunts the hunt names.
    let stored: serde_json::Value =
        serde_json::from_slice(&c.get_value(&format!("/sweep/hunts/{hunt_id}")).unwrap()).unwrap();
    let body: serde_json::Value = serde_json::from_str(stored["body"].as_str().unwrap()).unwrap();
    let partition = body["partition"].as_i64().unwrap() as i32;
    // Someone with produce access: a clean answer for the frozen host, and
    // a fake row for the live one.
    let forger = AgentKey::ephemeral([9; 32]);
    let mut status = HuntStatus {
        hunt_id: hunt_id.clone(),
        host_identifier: "web-2".into(),
        unix_time: sweep_proto::time::unix_now(),
        status: StatusBody {
            rows: 0,
            error: None,
            duration_ms: 1,
            columns: vec!["one".into()],
            skipped: None,
        },
        seal: None,
    };
    forger.seal_status(&mut status, &RowDigest::new());
    c.produce_to(
        "sweep.hunts",
        partition,
        "web-2",
        &serde_json::to_vec(&status).unwrap(),
    );
    let name = format!("hunt:{hunt_id}");
    c.produce_to(
        "sweep.hunts",
        partition,
        "web-1",
        &fake_row("web-1", &name, Some(&hunt_id), Some(1)),
    );
    let out = hunt.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    web2.signal(18); // SIGCONT
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("web-2: rejected answer: signature does not verify"),
        "{stderr}"
    );
    assert!(stderr.contains("web-1: "), "{stderr}");
    assert!(!stdout.contains("FORGED-ROW"), "{stdout}");
    assert!(!stderr.contains("0 failed"), "{stderr}");
}

#[test]
fn the_rules_consumer_verifies_runs_and_reports_forged_rows() {
    let c = Cluster::start().unwrap();
    let dir = c.rules_dir(
        r#"
[[rule]]
id = "e2e_ones"
title = "A one"
severity = "low"
query = "ones"
condition = "one = '1'"
"#,
    );
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    ok(&c.sweep(&["agents"])); // pins web-1
    ok(&c.sweep(&[
        "schedule",
        "add",
        "ones",
        "SELECT 1 AS one",
        "--interval",
        "1s",
        "--snapshot",
    ]));
    let rules = c.rules(&dir).unwrap();
    // The agent's own runs verify.
    let verified = eventually(Duration::from_secs(60), || {
        let metrics = http_get(&rules.admin_addr()?, "/metrics");
        metrics
            .lines()
            .find(|l| l.starts_with("sweep_rules_rows_verified_total "))
            .and_then(|l| l.split(' ').nth(1)?.parse::<u64>().ok())
            .filter(|n| *n >= 2)
    });
    assert!(
        verified.is_some(),
        "no verified rows\n{}\n{}",
        rules.log_text(),
        agent.log_text()
    );
    // A row someone else produced in web-1's name.
    c.produce_raw(
        "sweep.results",
        "web-1",
        &fake_row("web-1", "ones", None, None),
    );
    let found = eventually(Duration::from_secs(60), || {
        let out = c.sweep(&["matches", "--json"]);
        ndjson(&out.stdout)
            .into_iter()
            .find(|m| m["rule_id"] == "sweep-forged-results")
    })
    .unwrap_or_else(|| panic!("no forgery reported\n{}", rules.log_text()));
    assert_eq!(found["host"], "web-1");
    assert_eq!(found["severity"], "critical");
    assert!(
        found["row"]["reason"]
            .as_str()
            .unwrap()
            .contains("unsigned"),
        "{found}"
    );
    let metrics = http_get(&rules.admin_addr().unwrap(), "/metrics");
    assert!(
        !metrics.contains("sweep_rules_forged_total{kind=\"bad_signature\"}")
            && !metrics.contains("sweep_rules_forged_total{kind=\"rows_differ\"}"),
        "the agent's own runs were judged forged\n{metrics}"
    );
}

#[test]
fn an_expected_host_that_vanished_is_listed_as_not_answering() {
    let c = Cluster::start().unwrap();
    let _agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    let hosts = c.dir.path().join("hosts.txt");
    std::fs::write(&hosts, "# the fleet\nweb-1\nghost-9  # decommissioned?\n").unwrap();
    let out = c.sweep(&[
        "hunt",
        "SELECT 1 AS one",
        "--timeout",
        "3s",
        "--expect-file",
        hosts.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ghost-9: did not answer within 3s"),
        "{stderr}"
    );
    assert!(stderr.contains("from 1 of 2 agent(s)"), "{stderr}");
    // Targets still apply: a hunt for web-1 alone does not wait for it.
    let out = c.sweep(&[
        "hunt",
        "SELECT 1 AS one",
        "--hosts",
        "web-1",
        "--expect-file",
        hosts.to_str().unwrap(),
    ]);
    ok(&out);
}
