//! Hostile hunts end cleanly with an error naming the limit or the refusal,
//! and the agent goes on answering. The agents here run with a 2 s wall-time
//! limit (see the harness).

use std::time::Duration;

use sweep_e2e::{eventually, hunt, ndjson, Cluster};

#[test]
fn hostile_hunts_end_cleanly_and_the_agent_keeps_serving() {
    let c = Cluster::start().unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();

    for sql in [
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        "SELECT count(*) FROM processes a, processes b, processes c, processes d, processes e, processes f",
    ] {
        let out = c.sweep(&["hunt", sql, "--timeout", "20s"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{sql}: {stderr}");
        assert!(stderr.contains("web-1: query stopped: wall time limit of 2s reached"), "{stderr}");
    }

    // A 1 MB text and a write, sent past the controller: the agent's own guard
    // refuses them and says so in its status record.
    let huge = format!("SELECT 1 WHERE 'x' = '{}'", "x".repeat(1024 * 1024));
    c.put_hunt(hunt("huge", &huge), Some(c.signer()));
    c.put_hunt(hunt("write", "DELETE FROM processes"), Some(c.signer()));
    for (id, why) in [("huge", "the limit is"), ("write", "only SELECT")] {
        let answer = eventually(Duration::from_secs(20), || {
            let out = c.sweep(&["results", id]);
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            stderr.contains("web-1: query refused").then_some(stderr)
        })
        .unwrap_or_else(|| panic!("no refusal for {id}\n{}", agent.log_text()));
        assert!(answer.contains(why), "{answer}");
    }

    // Still serving, with true answers.
    let me = std::process::id();
    let out = c.sweep(&[
        "hunt",
        &format!("SELECT pid FROM processes WHERE pid = {me}"),
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ndjson(&out.stdout)[0]["pid"], me.to_string());
}
