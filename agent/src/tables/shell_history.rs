//! `shell_history`: the commands in every local user's shell history files
//! (bash, zsh, sh, ash, and macOS-style ~/.bash_sessions/*.history). Bash
//! `#<epoch>` lines and zsh extended-history `: <epoch>:<elapsed>;<command>`
//! entries give the time; plain lines have time 0. `uid = N` limits the scan
//! to those users.

use std::path::{Path, PathBuf};

use super::user_file::{self, Owner};
use super::util::user_homes;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::shell_history::TABLE as SCHEMA;

pub struct ShellHistory;

const HISTORY_FILES: &[&str] = &[
    ".bash_history",
    ".zsh_history",
    ".zhistory",
    ".history",
    ".sh_history",
    ".ash_history",
];

impl Table for ShellHistory {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let only = ctx.eq_integers("uid");
        for (uid, home) in user_homes(&ctx.env().paths.etc_passwd) {
            if only.as_ref().is_some_and(|o| !o.contains(&i64::from(uid))) {
                continue;
            }
            let home = Path::new(&home);
            for file in history_files(home) {
                read_history(ctx, uid, home, &file, out)?;
            }
        }
        Ok(())
    }
}

/// History files relative to a home directory: the usual names, and bash's
/// per-session files on macOS-style setups.
fn history_files(home: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = HISTORY_FILES.iter().map(PathBuf::from).collect();
    if let Ok(entries) = std::fs::read_dir(home.join(".bash_sessions")) {
        let mut sessions: Vec<PathBuf> = entries
            .filter_map(|e| Some(Path::new(".bash_sessions").join(e.ok()?.file_name())))
            .filter(|p| p.extension().is_some_and(|x| x == "history"))
            .collect();
        sessions.sort();
        files.extend(sessions);
    }
    files
}

/// Appends one row per command of `home/relative`, read line by line so a
/// large history is never held whole. The file is opened as a user file
/// ([`user_file`]): no links, no FIFOs, owned by `uid`; missing or refused
/// files add nothing.
fn read_history(
    ctx: &ScanContext<'_>,
    uid: u32,
    home: &Path,
    relative: &Path,
    out: &mut Vec<Row>,
) -> Result<(), AgentError> {
    let history_file = home.join(relative).to_string_lossy().into_owned();
    let mut parser = Parser::default();
    let mut emit = |entry: Entry| {
        let mut row = ctx.row();
        row.set("uid", uid)
            .set("time", entry.time)
            .set("command", entry.command)
            .set("history_file", &history_file);
        out.push(row);
    };
    user_file::for_each_line(ctx, home, relative, Owner::User(uid), |line| {
        if let Some(entry) = parser.line(line) {
            emit(entry);
        }
    })?;
    if let Some(entry) = parser.finish() {
        emit(entry);
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
struct Entry {
    time: i64,
    command: String,
}

/// Line-at-a-time history parser: remembers a bash timestamp for the next
/// line, and joins the continuation lines of a multi-line zsh entry.
#[derive(Default)]
struct Parser {
    bash_time: Option<i64>,
    /// A zsh entry whose line ended in '\', awaiting its next line.
    pending: Option<Entry>,
}

impl Parser {
    fn line(&mut self, line: &str) -> Option<Entry> {
        if let Some(mut entry) = self.pending.take() {
            entry.command.push('\n');
            return self.continue_zsh(entry, line);
        }
        if self.bash_time.is_none() {
            if let Some(t) = bash_timestamp(line) {
                self.bash_time = Some(t);
                return None;
            }
        }
        if let Some(time) = self.bash_time.take() {
            return Some(Entry {
                time,
                command: line.to_string(),
            });
        }
        if let Some((time, command)) = zsh_entry(line) {
            return self.continue_zsh(
                Entry {
                    time,
                    command: String::new(),
                },
                command,
            );
        }
        // Blank lines are not commands.
        (!line.is_empty()).then(|| Entry {
            time: 0,
            command: line.to_string(),
        })
    }

    fn continue_zsh(&mut self, mut entry: Entry, text: &str) -> Option<Entry> {
        match text.strip_suffix('\\') {
            Some(head) => {
                entry.command.push_str(head);
                self.pending = Some(entry);
                None
            }
            None => {
                entry.command.push_str(text);
                Some(entry)
            }
        }
    }

    fn finish(&mut self) -> Option<Entry> {
        self.pending.take()
    }
}

/// `#1700000000`: bash's HISTTIMEFORMAT stamp for the next line.
fn bash_timestamp(line: &str) -> Option<i64> {
    let digits = line.strip_prefix('#')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `: 1700000000:0;command`: a zsh EXTENDED_HISTORY entry.
fn zsh_entry(line: &str) -> Option<(i64, &str)> {
    let rest = line.strip_prefix(':')?.trim_start_matches(' ');
    let (time, rest) = rest.split_once(':')?;
    let (elapsed, command) = rest.split_once(';')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(time) && time.len() <= 11 && digits(elapsed)) {
        return None;
    }
    Some((time.parse().ok()?, command))
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, HostPaths, Op, TableEnv};

    #[test]
    fn reads_bash_and_zsh_history_of_each_user() {
        let dir = tempfile::tempdir().unwrap();
        let alice = dir.path().join("alice");
        let bob = dir.path().join("bob");
        std::fs::create_dir_all(alice.join(".bash_sessions")).unwrap();
        std::fs::create_dir_all(&bob).unwrap();
        std::fs::write(
            alice.join(".bash_history"),
            "ls -la\n#1700000000\nsudo reboot\n#notatime\n\n#1700000100\n#1700000200\n",
        )
        .unwrap();
        std::fs::write(alice.join(".bash_sessions/A1.history"), "echo session").unwrap();
        std::fs::write(
            bob.join(".zsh_history"),
            ": 1710000000:0;git status\n: 1710000005:3;for i in 1 2; do\\\necho $i\\\ndone\n:  1710000009:0;exit\nplain\n",
        )
        .unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            format!(
                "alice:x:1001:1001::{}:/bin/bash\nbob:x:1002:1002::{}:/bin/zsh\n",
                alice.display(),
                bob.display()
            ),
        )
        .unwrap();
        let env = TableEnv {
            paths: HostPaths {
                etc_passwd: passwd,
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        let budget = Budget::unlimited();

        let mut rows = Vec::new();
        ShellHistory
            .generate(
                &ScanContext::all("shell_history", SCHEMA.columns, &budget, &env),
                &mut rows,
            )
            .unwrap();
        let got: Vec<(i64, i64, String, String)> = rows
            .iter()
            .map(|r| match r.values() {
                [Value::Integer(uid), Value::Integer(time), Value::Text(cmd), Value::Text(file)] => {
                    (*uid, *time, cmd.clone(), file.clone())
                }
                other => panic!("{other:?}"),
            })
            .collect();
        let ab = alice.join(".bash_history").display().to_string();
        let asess = alice
            .join(".bash_sessions/A1.history")
            .display()
            .to_string();
        let bz = bob.join(".zsh_history").display().to_string();
        let e = |uid: i64, time: i64, cmd: &str, file: &str| {
            (uid, time, cmd.to_string(), file.to_string())
        };
        assert_eq!(
            got,
            vec![
                e(1001, 0, "ls -la", &ab),
                e(1001, 1700000000, "sudo reboot", &ab),
                e(1001, 0, "#notatime", &ab),
                // A stamp followed by another stamp: the second is its command.
                e(1001, 1700000100, "#1700000200", &ab),
                e(1001, 0, "echo session", &asess),
                e(1002, 1710000000, "git status", &bz),
                e(1002, 1710000005, "for i in 1 2; do\necho $i\ndone", &bz),
                e(1002, 1710000009, "exit", &bz),
                e(1002, 0, "plain", &bz),
            ]
        );

        let mut rows = Vec::new();
        let ctx = ScanContext::all("shell_history", SCHEMA.columns, &budget, &env).with_constraint(
            "uid",
            Op::Eq,
            vec![1002.into()],
        );
        ShellHistory.generate(&ctx, &mut rows).unwrap();
        assert_eq!(rows.len(), 4);
    }

    /// bash itself reads the same file: `history -r` then `history` with
    /// HISTTIMEFORMAT prints each entry with its stamp (untimed entries get
    /// the current time, where we report 0).
    #[test]
    fn agrees_with_bash_history_builtin() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let file = home.join(".bash_history");
        std::fs::write(
            &file,
            "ls -la\n#1700000000\nsudo reboot\n#notatime\n\necho \"a b\" | tr a c\n#1700000100\ncat /etc/passwd\n",
        )
        .unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            format!("u:x:4321:4321::{}:/bin/bash\n", home.display()),
        )
        .unwrap();

        let script = format!(
            "set -o history; HISTTIMEFORMAT='%s|'; history -c; history -r '{}'; history",
            file.display()
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success());
        // "    1  1700000000|sudo reboot"
        let expected: Vec<(String, String)> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let (_, rest) = l.trim_start().split_once("  ").unwrap();
                let (time, cmd) = rest.split_once('|').unwrap();
                (time.to_string(), cmd.to_string())
            })
            .collect();

        let env = TableEnv {
            paths: HostPaths {
                etc_passwd: passwd,
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        let budget = Budget::unlimited();
        let mut rows = Vec::new();
        ShellHistory
            .generate(
                &ScanContext::all("shell_history", SCHEMA.columns, &budget, &env),
                &mut rows,
            )
            .unwrap();
        assert_eq!(rows.len(), expected.len());
        for (row, (time, cmd)) in rows.iter().zip(&expected) {
            assert_eq!(row.get("command"), Some(&Value::Text(cmd.clone())));
            match row.get("time") {
                Some(Value::Integer(0)) => {}
                Some(Value::Integer(t)) => assert_eq!(&t.to_string(), time),
                other => panic!("{other:?}"),
            }
        }
        let timed = rows
            .iter()
            .filter(|r| r.get("time") != Some(&Value::Integer(0)))
            .count();
        assert_eq!(timed, 2);
    }
}
