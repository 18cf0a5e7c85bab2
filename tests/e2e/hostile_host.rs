//! What a local user of a host can do to the agent there, and what it gets:
//! a process with a megabyte command line is answered, cut with a marker,
//! and the agent keeps answering.

use std::process::{Command, Stdio};
use std::time::Duration;

use sweep_e2e::{ndjson, ok, Cluster};

/// A heartbeat as an agent writes it, for `host`.
fn heartbeat_json(host: &str) -> String {
    serde_json::json!({
        "host_id": host,
        "version": "0",
        "started_at": 0,
        "sent_at_ms": 0,
        "resources": {"cpu_percent": 0.0, "rss_bytes": 0, "threads": 0, "fds": 0},
        "counters": {"hunts_run": 0, "queries_failed": 0, "rows_sent": 0},
        "spool_depth": 0
    })
    .to_string()
}

#[test]
fn a_megabyte_command_line_is_answered_cut_and_the_agent_keeps_answering() {
    let c = Cluster::start().unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    // 1.2 MB of arguments (one argument may hold at most 128 KiB).
    let arg = "A".repeat(120_000);
    let mut long = Command::new("/bin/sh")
        .args(["-c", "sleep 300; :", "sh"])
        .args(std::iter::repeat_n(&arg, 10))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sh");
    let pid = long.id();
    let out = c.sweep(&[
        "hunt",
        &format!("SELECT pid, name, cmdline FROM processes WHERE pid = {pid}"),
        "--json",
    ]);
    let _ = long.kill();
    let _ = long.wait();
    ok(&out);
    let rows = ndjson(&out.stdout);
    assert_eq!(rows.len(), 1, "{}", agent.log_text());
    let cmdline = rows[0]["cmdline"].as_str().unwrap();
    assert!(
        cmdline.starts_with("/bin/sh -c sleep 300; : sh AAAA"),
        "{}",
        &cmdline[..60]
    );
    assert!(
        cmdline.ends_with(" bytes cut]"),
        "{}",
        &cmdline[cmdline.len() - 60..]
    );
    assert!(cmdline.len() < 70 * 1024, "{} bytes", cmdline.len());
    // And the next hunt is answered as usual.
    let out = c.sweep(&["hunt", "SELECT 1 AS one", "--json"]);
    ok(&out);
    assert_eq!(ndjson(&out.stdout).len(), 1);
}

#[test]
fn escape_sequences_in_answers_never_reach_the_terminal_raw() {
    let c = Cluster::start().unwrap();
    let _agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    // Clear the screen, home the cursor, print a reassuring line, and a
    // right-to-left override to disguise a name.
    let payload = "\u{1b}[2J\u{1b}[HAll clear\u{7}\r\u{202e}fdp.exe";
    let mut liar = Command::new("/bin/sh")
        .args(["-c", "sleep 300; :", "sh", payload])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sh");
    let pid = liar.id();
    let sql = format!("SELECT pid, cmdline FROM processes WHERE pid = {pid}");
    let hunt = c.sweep(&["hunt", &sql]);
    let local = std::process::Command::new(sweep_e2e::bin("sweep-agent"))
        .args(["query", &sql])
        .output()
        .unwrap();
    let line = std::process::Command::new(sweep_e2e::bin("sweep-agent"))
        .args(["query", "--mode", "line", &sql])
        .output()
        .unwrap();
    let _ = liar.kill();
    let _ = liar.wait();
    for (what, out) in [
        ("sweep hunt", &hunt),
        ("sweep-agent query", &local),
        ("--mode line", &line),
    ] {
        ok(out);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("\\e[2J\\e[HAll clear\\x07\\r\\u{202e}fdp.exe"),
            "{what}: {text}"
        );
        for raw in ['\u{1b}', '\u{7}', '\r', '\u{202e}'] {
            assert!(
                !text.contains(raw),
                "{what}: {raw:?} reached the terminal: {text:?}"
            );
        }
    }

    // A heartbeat under a lease with a hostile host id: listed, but shown.
    let forged = heartbeat_json("\u{1b}[2Jforged");
    c.put_value("/sweep/agents/\u{1b}[2Jforged", &forged, Some(30));
    let agents = c.sweep(&["agents"]);
    let text = String::from_utf8_lossy(&agents.stdout);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("\\e[2Jforged"), "{text}");
}

#[test]
fn forged_presence_is_not_listed() {
    let c = Cluster::start().unwrap();
    let _agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    // No lease: it would be "live" for ever.
    c.put_value("/sweep/agents/ghost", &heartbeat_json("ghost"), None);
    // A second key claiming web-1's id.
    c.put_value("/sweep/agents/impostor", &heartbeat_json("web-1"), Some(30));
    let out = c.sweep(&["agents", "--json"]);
    ok(&out);
    let hosts: Vec<String> = ndjson(&out.stdout)
        .iter()
        .map(|a| a["host_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts, ["web-1"], "{}", String::from_utf8_lossy(&out.stderr));
    // And a hunt counts web-1 once.
    let out = c.sweep(&["hunt", "SELECT 1 AS one", "--json"]);
    ok(&out);
    assert_eq!(ndjson(&out.stdout).len(), 1);
}
