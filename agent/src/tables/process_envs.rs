//! `process_envs`: each process's environment as it was at exec, from the
//! NUL-separated /proc/<pid>/environ (readable by the owner and root only).

use super::util::pids;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::process_envs::TABLE as SCHEMA;

pub struct ProcessEnvs;

impl Table for ProcessEnvs {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        for pid in pids(ctx.eq_integers("pid")) {
            ctx.check()?;
            ctx.note_read("/proc/<pid>/environ");
            // Gone, kernel thread (empty) or not ours to read: no rows.
            let Ok(bytes) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            for (key, value) in parse_environ(&bytes) {
                let mut row = ctx.row();
                row.set("pid", pid).set("key", key).set("value", value);
                out.push(row);
            }
        }
        Ok(())
    }
}

/// `KEY=value` entries up to the first empty one: a process that rewrote its
/// argv/environ area (setproctitle) leaves padding after it, which osquery
/// stops at too. An entry without `=` is a key with an empty value.
fn parse_environ(bytes: &[u8]) -> Vec<(String, String)> {
    bytes
        .split(|&b| b == 0)
        .take_while(|entry| !entry.is_empty())
        .map(|entry| {
            let text = String::from_utf8_lossy(entry);
            match text.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (text.into_owned(), String::new()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, Op, TableEnv};

    fn scan_pid(pid: i64) -> Vec<(String, String)> {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("process_envs", SCHEMA.columns, &budget, &env).with_constraint(
            "pid",
            Op::Eq,
            vec![pid.into()],
        );
        let mut rows = Vec::new();
        ProcessEnvs.generate(&ctx, &mut rows).unwrap();
        rows.iter()
            .map(|r| {
                assert_eq!(r.get("pid"), Some(&Value::Integer(pid)));
                let text = |c| match r.get(c) {
                    Some(Value::Text(t)) => t.clone(),
                    other => panic!("{c}: {other:?}"),
                };
                (text("key"), text("value"))
            })
            .collect()
    }

    #[test]
    fn reads_own_path() {
        let rows = scan_pid(i64::from(std::process::id()));
        let path = rows
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone());
        assert_eq!(path, std::env::var("PATH").ok());
    }

    /// A child started with exactly the environment this test chose.
    #[test]
    fn reads_a_childs_exact_environment() {
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .env_clear()
            .env("SWEEP_EMPTY", "")
            .env("SWEEP_TEST", "a value = with equals")
            .spawn()
            .unwrap();
        let pid = i64::from(child.id());
        let want = vec![
            ("SWEEP_EMPTY".to_string(), String::new()),
            (
                "SWEEP_TEST".to_string(),
                "a value = with equals".to_string(),
            ),
        ];
        // Until exec completes the child still shows this process's environment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut rows = scan_pid(pid);
        while rows != want && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            rows = scan_pid(pid);
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(rows, want);
    }

    #[test]
    fn stops_at_padding() {
        let parsed = parse_environ(b"A=1\0B\0C=x=y\0\0junk\0");
        let want = [("A", "1"), ("B", ""), ("C", "x=y")];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(parsed, want);
    }
}
