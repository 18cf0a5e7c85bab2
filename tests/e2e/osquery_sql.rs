//! osquery's SQL through the whole loop: the seed article's fifth hunt
//! verbatim (a double-quoted string, `IN` over an `AND` of subqueries), a
//! `CROSS JOIN … USING`, and osquery's monitoring query over a column named
//! `interval`, each through `sweep hunt` on three agents and through
//! `sweep-agent query`, with the same rows both ways.
//!
//! The join reads a real, throwaway user's `authorized_keys` (`useradd`,
//! removed at the end), so this binary holds one test and needs root or
//! passwordless sudo.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use sweep_e2e::{agent_query, as_root, eventually, ndjson, ok, Cluster, LocalUser};

const HOSTS: [&str; 3] = ["web-1", "web-2", "web-3"];

const SEED: &str = "select * from process_open_sockets where pid in ( ( select pid from processes \
    where name=\"bash\" ) and ( select pid from processes where parent not in ( select pid from \
    processes where name=\"sshd\" ) ) ) and protocol=17 ;";

const CROSS_JOIN: &str =
    "SELECT u.username, a.key_file FROM users u CROSS JOIN authorized_keys a USING (uid)";

/// A row without its host, every value as text (hunts and `sweep-agent
/// query --json` type numbers differently), for comparing answers.
fn row_text(row: &Value) -> String {
    let mut row = row.as_object().cloned().unwrap_or_default();
    row.remove("host_id");
    for v in row.values_mut() {
        if !v.is_string() {
            *v = Value::String(v.to_string());
        }
    }
    serde_json::to_string(&row).unwrap()
}

/// Each host's rows for `sql`, after asserting all three answered.
fn hunt(c: &Cluster, sql: &str) -> Vec<(String, BTreeSet<String>)> {
    let out = c.sweep(&["hunt", sql, "--json", "--timeout", "60s"]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(" from 3 of 3 agent(s)"), "{stderr}");
    let rows = ndjson(&out.stdout);
    HOSTS
        .iter()
        .map(|h| {
            let mine = rows
                .iter()
                .filter(|r| r["host_id"] == *h)
                .map(row_text)
                .collect();
            (h.to_string(), mine)
        })
        .collect()
}

/// `sweep-agent query --json` on this host: a JSON array of rows.
fn local(sql: &str) -> BTreeSet<String> {
    let out = agent_query(sql);
    ok(&out);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    rows.iter().map(row_text).collect()
}

#[test]
fn osquerys_dialect_runs_through_sweep_hunt_and_sweep_agent_query() {
    let c = Cluster::start().unwrap();
    // A user with one key, so the join has a row we know.
    let home = c.dir.path().join("keyholder");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let key_file = home.join(".ssh/authorized_keys");
    std::fs::write(
        &key_file,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample sweep-test\n",
    )
    .unwrap();
    let user = LocalUser::create(&format!("sweepk{}", std::process::id()), &home);
    let owner = format!("{0}:{0}", user.uid);
    as_root(&["chown", "-R", &owner, &home.display().to_string()]);
    let agents: Vec<_> = HOSTS.iter().map(|h| c.agent(h, &[]).unwrap()).collect();
    c.wait_agents(&HOSTS, Duration::from_secs(30)).unwrap();

    // The seed hunt. SQLite reads `pid IN ((subquery) AND (subquery))` as
    // `pid IN (v)` where v is the truth value of the AND (0, 1 or NULL), and
    // osquery answers the same. Each answer equals that reading evaluated in
    // two steps; UDP sockets of pid 0 or 1 rarely change while a test runs.
    let truth = local(
        "select ((select pid from processes where name=\"bash\") and (select pid from \
         processes where parent not in (select pid from processes where name=\"sshd\"))) as v",
    );
    let v: Value = serde_json::from_str(truth.iter().next().unwrap()).unwrap();
    let v = v["v"].as_str().unwrap_or("NULL").to_string();
    let want = local(&format!(
        "select * from process_open_sockets where pid = {v} and protocol = 17"
    ));
    assert_eq!(local(SEED), want);
    for (host, rows) in hunt(&c, SEED) {
        assert_eq!(rows, want, "{host}");
    }

    // The same files on every host: every agent's answer equals the local
    // one, and holds the key we wrote.
    let want = local(CROSS_JOIN);
    let ours = row_text(&serde_json::json!({
        "username": user.name,
        "key_file": key_file.display().to_string(),
    }));
    assert!(want.contains(&ours), "{want:?} lacks {ours}");
    for (host, rows) in hunt(&c, CROSS_JOIN) {
        assert_eq!(rows, want, "{host}");
    }

    // osquery's monitoring pack over sweep's own scheduler: a schedule with a
    // 1 s interval shows up, with its interval and executions, on every host.
    ok(&c.sweep(&[
        "schedule",
        "add",
        "ticks",
        "SELECT 1 AS one",
        "--interval",
        "1s",
        "--snapshot",
    ]));
    let sql = "select name, interval, executions, output_size, wall_time, \
               (user_time/executions) as avg_user_time, (system_time/executions) as \
               avg_system_time, average_memory, last_executed from osquery_schedule \
               where name = 'ticks' and executions > 0";
    let answered = eventually(Duration::from_secs(60), || {
        let per_host = hunt(&c, sql);
        per_host
            .iter()
            .all(|(_, rows)| rows.len() == 1)
            .then_some(per_host)
    })
    .unwrap_or_else(|| panic!("ticks never ran everywhere\n{}", agents[0].log_text()));
    for (host, rows) in answered {
        let row: Value = serde_json::from_str(rows.iter().next().unwrap()).unwrap();
        assert_eq!(row["name"], "ticks", "{host}");
        assert_eq!(
            row["interval"].to_string().trim_matches('"'),
            "1",
            "{host}: {row}"
        );
    }
    // Locally (no scheduler in `sweep-agent query`) the table is empty, not an error.
    assert!(local("select name, interval from osquery_schedule").is_empty());
}
