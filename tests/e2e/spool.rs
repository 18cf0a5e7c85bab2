//! No result is lost while the broker is away: the agent spools to disk and
//! delivers, in order, once the broker is back.

use std::time::Duration;

use sweep_e2e::{eventually, hunt, ndjson, Cluster};

fn spool_depth(c: &Cluster, host: &str) -> u64 {
    let out = c.sweep(&["agents", "--json"]);
    ndjson(&out.stdout)
        .iter()
        .find(|a| a["host_id"] == host)
        .and_then(|a| a["spool_depth"].as_u64())
        .unwrap_or(0)
}

#[test]
fn results_survive_a_broker_outage() {
    let mut c = Cluster::start().unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    // One hunt while the broker is up, so the topic exists and the producer
    // has connected once.
    let out = c.sweep(&["hunt", "SELECT 1 AS warmup"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    c.stop_broker();
    c.put_hunt(
        hunt("outage", "SELECT value FROM json_each('[1,2,3,4,5]')"),
        Some(c.signer()),
    );
    // The agent answers, fails to deliver within its 3 s delivery timeout and
    // spools; its heartbeat says so.
    let spooled = eventually(Duration::from_secs(30), || {
        // Rows and status are spooled as they come: wait for all six.
        let d = spool_depth(&c, "web-1");
        (d >= 6).then_some(d)
    });
    assert_eq!(
        spooled,
        Some(6),
        "5 rows and 1 status spooled\n{}",
        agent.log_text()
    );

    c.start_broker().unwrap();
    let rows = eventually(Duration::from_secs(60), || {
        let out = c.sweep(&["results", "outage", "--json"]);
        let rows = ndjson(&out.stdout);
        (out.status.code() == Some(0) && rows.len() == 5).then_some(rows)
    })
    .unwrap_or_else(|| panic!("spooled rows never arrived\n{}", agent.log_text()));
    let values: Vec<&str> = rows.iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["1", "2", "3", "4", "5"], "delivered in order");
    let drained = eventually(Duration::from_secs(10), || {
        (spool_depth(&c, "web-1") == 0).then_some(())
    });
    assert!(drained.is_some(), "spool not emptied");
}
