//! `logged_in_users`: the records of the utmp file (who is logged in now),
//! read as glibc's `struct utmp` for 64-bit Linux. `last` reads wtmp with
//! the same decoder.

use std::path::Path;

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::logged_in_users::TABLE as SCHEMA;

pub struct LoggedInUsers;

/// `ut_type` values from <utmp.h>.
pub(super) const USER_PROCESS: i16 = 7;
pub(super) const DEAD_PROCESS: i16 = 8;

/// One decoded `struct utmp`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct UtmpRecord {
    pub ut_type: i16,
    pub pid: i32,
    pub line: String,
    pub user: String,
    pub host: String,
    pub time: u32,
}

/// Size and field offsets of glibc's `struct utmp` on 64-bit Linux
/// (x86_64, aarch64: `ut_tv` is two 32-bit fields there too).
pub(super) const UTMP_SIZE: usize = 384;
const OFF_TYPE: usize = 0;
const OFF_PID: usize = 4;
const OFF_LINE: usize = 8; // char[32]
const OFF_USER: usize = 44; // char[32], after ut_id[4]
const OFF_HOST: usize = 76; // char[256]
const OFF_TV_SEC: usize = 340; // after ut_exit (4) and ut_session (4)

/// Every whole record of a utmp/wtmp file; a missing or unreadable file has
/// none, and a trailing partial record (a write in progress) is ignored.
pub(super) fn read_utmp(path: &Path) -> Vec<UtmpRecord> {
    std::fs::read(path)
        .map(|b| decode_utmp(&b))
        .unwrap_or_default()
}

pub(super) fn decode_utmp(bytes: &[u8]) -> Vec<UtmpRecord> {
    bytes.chunks_exact(UTMP_SIZE).map(decode_record).collect()
}

fn decode_record(r: &[u8]) -> UtmpRecord {
    let i16_at = |o: usize| i16::from_ne_bytes([r[o], r[o + 1]]);
    let u32_at = |o: usize| u32::from_ne_bytes([r[o], r[o + 1], r[o + 2], r[o + 3]]);
    // Fixed-size fields are NUL-padded, and not NUL-terminated when full.
    let text = |o: usize, len: usize| {
        let field = &r[o..o + len];
        let end = field.iter().position(|&b| b == 0).unwrap_or(len);
        String::from_utf8_lossy(&field[..end]).into_owned()
    };
    UtmpRecord {
        ut_type: i16_at(OFF_TYPE),
        pid: u32_at(OFF_PID) as i32,
        line: text(OFF_LINE, 32),
        user: text(OFF_USER, 32),
        host: text(OFF_HOST, 256),
        time: u32_at(OFF_TV_SEC),
    }
}

/// osquery's names for `ut_type` in this table.
fn type_name(t: i16) -> &'static str {
    match t {
        0 => "empty",
        1 => "runlevel",
        2 => "boot_time",
        3 => "new_time",
        4 => "old_time",
        5 => "init",
        6 => "login",
        USER_PROCESS => "user",
        DEAD_PROCESS => "dead",
        9 => "accounting",
        _ => "unknown",
    }
}

impl Table for LoggedInUsers {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        // init's own records (pid 1: runlevel, boot) are not logins.
        for rec in read_utmp(&ctx.env().paths.utmp)
            .into_iter()
            .filter(|r| r.pid != 1)
        {
            let mut row = ctx.row();
            row.set("type", type_name(rec.ut_type))
                .set("user", rec.user)
                .set("tty", rec.line)
                .set("host", rec.host)
                .set("time", rec.time)
                .set("pid", rec.pid);
            out.push(row);
        }
        Ok(())
    }
}

/// Builds utmp records byte by byte, for this table's and `last`'s tests.
#[cfg(test)]
pub(super) mod testing {
    use super::UTMP_SIZE;

    pub fn record(ut_type: i16, pid: i32, line: &str, user: &str, host: &str, sec: u32) -> Vec<u8> {
        let mut r = vec![0u8; UTMP_SIZE];
        r[0..2].copy_from_slice(&ut_type.to_ne_bytes());
        r[4..8].copy_from_slice(&pid.to_ne_bytes());
        r[8..8 + line.len()].copy_from_slice(line.as_bytes());
        // ut_id: the tty suffix, as login writes it.
        let id = line.as_bytes();
        let id = &id[id.len().saturating_sub(4)..];
        r[40..40 + id.len()].copy_from_slice(id);
        r[44..44 + user.len()].copy_from_slice(user.as_bytes());
        r[76..76 + host.len()].copy_from_slice(host.as_bytes());
        r[336..340].copy_from_slice(&(pid + 1000).to_ne_bytes()); // ut_session
        r[340..344].copy_from_slice(&sec.to_ne_bytes());
        r[344..348].copy_from_slice(&123_456u32.to_ne_bytes()); // tv_usec
        r[348..352].copy_from_slice(&[10, 0, 0, 1]); // ut_addr_v6[0]
        r
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::testing::record;
    use super::*;
    use crate::tables::{Budget, TableEnv};

    fn scan(env: &TableEnv) -> Vec<Vec<Value>> {
        let budget = Budget::unlimited();
        let ctx = ScanContext::all("logged_in_users", SCHEMA.columns, &budget, env);
        let mut rows = Vec::new();
        LoggedInUsers.generate(&ctx, &mut rows).unwrap();
        rows.iter().map(|r| r.values().to_vec()).collect()
    }

    fn row(t: &str, user: &str, tty: &str, host: &str, time: i64, pid: i64) -> Vec<Value> {
        vec![
            Value::Text(t.into()),
            Value::Text(user.into()),
            Value::Text(tty.into()),
            Value::Text(host.into()),
            Value::Integer(time),
            Value::Integer(pid),
        ]
    }

    #[test]
    fn decodes_utmp_records() {
        let full_user = "u".repeat(32); // fills ut_user: no NUL terminator
        let mut bytes = Vec::new();
        bytes.extend(record(2, 0, "~", "reboot", "6.1.0-18-amd64", 1_700_000_000));
        bytes.extend(record(
            1,
            1,
            "~",
            "runlevel",
            "6.1.0-18-amd64",
            1_700_000_001,
        ));
        bytes.extend(record(6, 612, "tty1", "LOGIN", "", 1_700_000_002));
        bytes.extend(record(
            7,
            4242,
            "pts/0",
            "alice",
            "192.0.2.10",
            1_700_000_100,
        ));
        bytes.extend(record(7, 4343, "pts/1", &full_user, "", 1_700_000_200));
        bytes.extend(record(8, 4000, "pts/2", "", "", 1_700_000_300));
        bytes.extend(record(42, 5, "", "", "", 0));
        bytes.extend(&record(7, 9, "pts/9", "partial", "", 1)[..200]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("utmp");
        std::fs::write(&path, &bytes).unwrap();
        let mut env = TableEnv::default();
        env.paths.utmp = path.clone();

        assert_eq!(
            scan(&env),
            [
                row(
                    "boot_time",
                    "reboot",
                    "~",
                    "6.1.0-18-amd64",
                    1_700_000_000,
                    0
                ),
                row("login", "LOGIN", "tty1", "", 1_700_000_002, 612),
                row("user", "alice", "pts/0", "192.0.2.10", 1_700_000_100, 4242),
                row("user", &full_user, "pts/1", "", 1_700_000_200, 4343),
                row("dead", "", "pts/2", "", 1_700_000_300, 4000),
                row("unknown", "", "", "", 0, 5),
            ]
        );

        // util-linux reads the same bytes the same way.
        let dump = std::process::Command::new("utmpdump")
            .arg(&path)
            .env("TZ", "UTC")
            .output();
        if let Some(out) = dump.ok().filter(|o| o.status.success()) {
            let dump = String::from_utf8_lossy(&out.stdout);
            let alice = dump
                .lines()
                .find(|l| l.contains("[alice "))
                .expect("alice in utmpdump");
            assert!(alice.starts_with("[7] [04242] "), "{alice}");
            assert!(alice.contains("] [pts/0 "), "{alice}");
            assert!(alice.contains("] [192.0.2.10 "), "{alice}");
            assert!(alice.contains("[2023-11-14T22:15:00,"), "{alice}");
        }

        env.paths.utmp = dir.path().join("missing");
        assert!(scan(&env).is_empty());
    }
}
