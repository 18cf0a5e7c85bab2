//! `crontab`: one row per job line of the system crontab, the files of
//! /etc/cron.d, and the per-user spools (/var/spool/cron for Red Hat style,
//! /var/spool/cron/crontabs for Debian style).

use std::path::{Path, PathBuf};

use super::user_file::{self, Owner};
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::crontab::TABLE as SCHEMA;

pub struct Crontab;

impl Table for Crontab {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let paths = &ctx.env().paths;
        let mut files = vec![paths.crontab.clone()];
        for dir in [
            paths.cron_dir.clone(),
            paths.cron_spool.clone(),
            paths.cron_spool.join("crontabs"),
        ] {
            files.extend(files_in(&dir));
        }
        for file in files {
            ctx.check()?;
            // A missing or unreadable crontab has no rows.
            // Read as a user file: no links, no FIFOs, bounded.
            let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
                continue;
            };
            let Some(text) = user_file::read_text(ctx, dir, Path::new(name), Owner::Any)? else {
                continue;
            };
            let source = file.to_string_lossy();
            for line in text.lines() {
                if let Some(job) = parse_line(line) {
                    out.push(job.into_row(ctx, &source));
                }
            }
        }
        Ok(())
    }
}

/// The entries directly in `dir`, sorted (links and non-files are refused
/// when opened).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    files.sort();
    files
}

/// One job line: either `@event command` or five time fields and a command.
#[derive(Debug, PartialEq)]
struct Job<'a> {
    event: Option<&'a str>,
    times: Option<[&'a str; 5]>,
    command: String,
}

impl Job<'_> {
    fn into_row(self, ctx: &ScanContext<'_>, path: &str) -> Row {
        let mut row = ctx.row();
        row.set_opt("event", self.event);
        if let Some([minute, hour, dom, month, dow]) = self.times {
            row.set("minute", minute)
                .set("hour", hour)
                .set("day_of_month", dom)
                .set("month", month)
                .set("day_of_week", dow);
        }
        row.set("command", self.command)
            .set("path", path)
            .set("pid_with_namespace", 0i64);
        row
    }
}

/// A job from one crontab line; comments, blank lines, environment settings
/// (`NAME=value`) and lines too short to hold a command give `None`. The
/// command keeps the user field of system crontabs, and its words are joined
/// by single spaces, as osquery does.
fn parse_line(line: &str) -> Option<Job<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
    let first = words.next()?;
    // Cron fields never contain '=': such a line sets a variable.
    if first.contains('=') {
        return None;
    }
    let (event, times) = if first.starts_with('@') {
        (Some(first), None)
    } else {
        let times = [
            first,
            words.next()?,
            words.next()?,
            words.next()?,
            words.next()?,
        ];
        (None, Some(times))
    };
    let command = words.collect::<Vec<_>>().join(" ");
    if command.is_empty() {
        return None;
    }
    Some(Job {
        event,
        times,
        command,
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, HostPaths, TableEnv};

    fn text(v: Option<&Value>) -> Option<String> {
        match v {
            Some(Value::Text(t)) => Some(t.clone()),
            Some(Value::Null) => None,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_system_dir_and_spool_files() {
        let dir = tempfile::tempdir().unwrap();
        let crontab = dir.path().join("crontab");
        std::fs::write(
            &crontab,
            "# /etc/crontab: system-wide crontab\n\
             SHELL=/bin/sh\n\
             PATH = /usr/local/sbin:/usr/bin\n\
             \n\
             17 *\t* * *\troot    cd / && run-parts --report /etc/cron.hourly\n\
             @reboot root /usr/local/bin/on-boot --flag\n\
             * * * *\n",
        )
        .unwrap();
        let cron_d = dir.path().join("cron.d");
        std::fs::create_dir(&cron_d).unwrap();
        std::fs::write(cron_d.join("job"), "30 3 * * 0 root /usr/sbin/weekly\n").unwrap();
        // A subdirectory of cron.d is not a crontab.
        std::fs::create_dir(cron_d.join("subdir")).unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(spool.join("crontabs")).unwrap();
        std::fs::write(
            spool.join("crontabs/alice"),
            "  */5 9-17 1,15 jan mon-fri echo hi  \n",
        )
        .unwrap();
        std::fs::write(spool.join("bob"), "@daily  /home/bob/backup.sh\n").unwrap();

        let env = TableEnv {
            paths: HostPaths {
                crontab: crontab.clone(),
                cron_dir: cron_d.clone(),
                cron_spool: spool.clone(),
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        let budget = Budget::unlimited();
        let ctx = ScanContext::all("crontab", SCHEMA.columns, &budget, &env);
        let mut rows = Vec::new();
        Crontab.generate(&ctx, &mut rows).unwrap();

        let got: Vec<Vec<Option<String>>> = rows
            .iter()
            .map(|r| {
                [
                    "event",
                    "minute",
                    "hour",
                    "day_of_month",
                    "month",
                    "day_of_week",
                    "command",
                    "path",
                ]
                .iter()
                .map(|c| text(r.get(c)))
                .collect()
            })
            .collect();
        let s = |v: &str| Some(v.to_string());
        let p = |p: PathBuf| s(p.to_str().unwrap());
        assert_eq!(
            got,
            vec![
                vec![
                    None,
                    s("17"),
                    s("*"),
                    s("*"),
                    s("*"),
                    s("*"),
                    s("root cd / && run-parts --report /etc/cron.hourly"),
                    p(crontab.clone()),
                ],
                vec![
                    s("@reboot"),
                    None,
                    None,
                    None,
                    None,
                    None,
                    s("root /usr/local/bin/on-boot --flag"),
                    p(crontab),
                ],
                vec![
                    None,
                    s("30"),
                    s("3"),
                    s("*"),
                    s("*"),
                    s("0"),
                    s("root /usr/sbin/weekly"),
                    p(cron_d.join("job"))
                ],
                vec![
                    s("@daily"),
                    None,
                    None,
                    None,
                    None,
                    None,
                    s("/home/bob/backup.sh"),
                    p(spool.join("bob"))
                ],
                vec![
                    None,
                    s("*/5"),
                    s("9-17"),
                    s("1,15"),
                    s("jan"),
                    s("mon-fri"),
                    s("echo hi"),
                    p(spool.join("crontabs/alice")),
                ],
            ]
        );
    }

    #[test]
    fn absent_files_give_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let env = TableEnv {
            paths: HostPaths {
                crontab: dir.path().join("none"),
                cron_dir: dir.path().join("none.d"),
                cron_spool: dir.path().join("spool"),
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        let budget = Budget::unlimited();
        let mut rows = Vec::new();
        Crontab
            .generate(
                &ScanContext::all("crontab", SCHEMA.columns, &budget, &env),
                &mut rows,
            )
            .unwrap();
        assert!(rows.is_empty());
    }
}
