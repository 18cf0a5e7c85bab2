//! `last`: logins and logouts from the wtmp file (user and dead process
//! records), decoded as in `logged_in_users`.

use super::logged_in_users::{read_utmp, DEAD_PROCESS, USER_PROCESS};
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::last::TABLE as SCHEMA;

pub struct Last;

impl Table for Last {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        for rec in read_utmp(&ctx.env().paths.wtmp) {
            let type_name = match rec.ut_type {
                USER_PROCESS => "user-process",
                DEAD_PROCESS => "dead-process",
                _ => continue,
            };
            let mut row = ctx.row();
            row.set("username", rec.user)
                .set("tty", rec.line)
                .set("pid", rec.pid)
                .set("type", rec.ut_type)
                .set("type_name", type_name)
                .set("time", rec.time)
                .set("host", rec.host);
            out.push(row);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::super::logged_in_users::testing::record;
    use super::*;
    use crate::tables::{Budget, TableEnv};

    fn scan(env: &TableEnv) -> Vec<Vec<Value>> {
        let budget = Budget::unlimited();
        let ctx = ScanContext::all("last", SCHEMA.columns, &budget, env);
        let mut rows = Vec::new();
        Last.generate(&ctx, &mut rows).unwrap();
        rows.iter().map(|r| r.values().to_vec()).collect()
    }

    #[test]
    fn decodes_wtmp_logins_and_logouts() {
        let mut bytes = Vec::new();
        bytes.extend(record(2, 0, "~", "reboot", "6.1.0-18-amd64", 1_700_000_000));
        bytes.extend(record(
            7,
            4242,
            "pts/0",
            "alice",
            "192.0.2.10",
            1_700_000_100,
        ));
        bytes.extend(record(6, 612, "tty1", "LOGIN", "", 1_700_000_150));
        bytes.extend(record(8, 4242, "pts/0", "", "", 1_700_000_200));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wtmp");
        std::fs::write(&path, &bytes).unwrap();
        let mut env = TableEnv::default();
        env.paths.wtmp = path.clone();

        let text = |s: &str| Value::Text(s.into());
        assert_eq!(
            scan(&env),
            [
                vec![
                    text("alice"),
                    text("pts/0"),
                    Value::Integer(4242),
                    Value::Integer(7),
                    text("user-process"),
                    Value::Integer(1_700_000_100),
                    text("192.0.2.10"),
                ],
                vec![
                    text(""),
                    text("pts/0"),
                    Value::Integer(4242),
                    Value::Integer(8),
                    text("dead-process"),
                    Value::Integer(1_700_000_200),
                    text(""),
                ],
            ]
        );

        // util-linux's `last` pairs the same login and logout.
        if let Some(out) = std::process::Command::new("last")
            .args(["-f", path.to_str().unwrap(), "--time-format", "iso", "-w"])
            .env("TZ", "UTC")
            .output()
            .ok()
            .filter(|o| o.status.success())
        {
            let text = String::from_utf8_lossy(&out.stdout);
            let login = text
                .lines()
                .find(|l| l.starts_with("alice"))
                .expect("alice in last");
            assert!(login.contains("pts/0"), "{login}");
            assert!(login.contains("192.0.2.10"), "{login}");
            assert!(login.contains("2023-11-14T22:15:00"), "{login}");
            assert!(login.contains("2023-11-14T22:16:40"), "{login}");
        }

        env.paths.wtmp = dir.path().join("missing");
        assert!(scan(&env).is_empty());
    }
}
