//! What a local user of a host can do to the agent there, and what it gets:
//! a process with a megabyte command line is answered, cut with a marker,
//! and the agent keeps answering.

use std::process::{Command, Stdio};
use std::time::Duration;

use sweep_e2e::{ndjson, Cluster};

fn ok(out: &std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
