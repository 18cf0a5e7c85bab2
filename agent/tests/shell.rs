//! `sweep-agent shell` with SQL piped on stdin: the built binary, end to end.

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};

/// Starts the shell with a HOME of its own, so a history file would show.
fn spawn(home: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sweep-agent"))
        .arg("shell")
        .env("HOME", home)
        .env("SWEEP_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sweep-agent shell")
}

fn finish(mut child: Child, input: &str) -> Output {
    // Dropping stdin after writing is the end of input the shell waits for.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn shell(input: &str) -> (Output, String, String) {
    let home = tempfile::tempdir().unwrap();
    let out = finish(spawn(home.path()), input);
    // A pipe is not a terminal: no history.
    assert!(!home.path().join(".sweep_history").exists());
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    (out, stdout, stderr)
}

#[test]
fn json_mode_and_a_multi_line_statement_give_real_values() {
    let (out, stdout, stderr) = shell(
        ".mode json\n\
         SELECT uid, username\n\
           FROM users\n\
          WHERE username = 'root';\n",
    );
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains("sweep>"), "no prompt on a pipe: {stdout}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows, serde_json::json!([{"uid": 0, "username": "root"}]));
}

#[test]
fn the_shell_finds_itself_in_processes() {
    let home = tempfile::tempdir().unwrap();
    let child = spawn(home.path());
    // The pid is known once the child runs, and it reads stdin only then.
    let pid = child.id();
    let out = finish(
        child,
        &format!(".mode json\nSELECT pid, parent, name FROM processes WHERE pid = {pid};\n"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([{
            "pid": pid,
            "parent": std::process::id(),
            "name": "sweep-agent",
        }])
    );
}

#[test]
fn dot_commands_list_tables_and_schema() {
    let (out, stdout, stderr) = shell(".tables\n.tables proc\n.schema users\n");
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("  => processes\n"), "{stdout}");
    assert!(stdout.contains("  => users\n"), "{stdout}");
    let schema = stdout
        .lines()
        .find(|l| l.starts_with("CREATE TABLE users("))
        .unwrap_or_else(|| panic!("no schema in {stdout}"));
    assert!(schema.contains("`uid` BIGINT"), "{schema}");
    assert!(
        schema.contains("`include_remote` INTEGER HIDDEN"),
        "{schema}"
    );
    assert!(schema.ends_with(';'), "{schema}");
}

#[test]
fn a_failed_statement_fails_the_run_but_later_ones_still_run() {
    let (out, stdout, stderr) = shell(
        ".mode csv\n\
         SELECT 'a;b' AS s;\n\
         SELECT * FROM no_such_table;\n\
         SELECT uid FROM users WHERE username = 'root';\n\
         SELECT 'last' AS s",
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "Error: query refused: no such table: no_such_table"
    );
    // The quoted `;` did not split; the last statement ran at end of input.
    assert_eq!(stdout, "s\na;b\nuid\n0\ns\nlast\n");
}

#[test]
fn quit_stops_reading() {
    let (out, stdout, stderr) = shell(".mode csv\nSELECT 1 AS x;\n.quit\nSELECT * FROM nope;\n");
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "x\n1\n");
    assert_eq!(stderr, "");
}

#[test]
fn an_unknown_command_is_an_error() {
    let (out, _, stderr) = shell(".bogus\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with("Error: unknown command: .bogus"),
        "{stderr}"
    );
}
