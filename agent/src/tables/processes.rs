//! `processes`: one row per process, from /proc/<pid>/{stat,status,cmdline,io,…}.
//! Each file is read only when the query uses a column that needs it.

use procfs::process::Process;

use super::util::{boot_time, page_size, pids, read_text, ticks_per_second};
use super::{Column, Row, ScanContext, Table};
use crate::col;
use crate::error::AgentError;

pub struct Processes;

static COLUMNS: &[Column] = &[
    col!("pid", BigInt, Index),
    col!("name", Text),
    col!("path", Text),
    col!("cmdline", Text),
    col!("state", Text),
    col!("cwd", Text),
    col!("root", Text),
    col!("uid", BigInt),
    col!("gid", BigInt),
    col!("euid", BigInt),
    col!("egid", BigInt),
    col!("suid", BigInt),
    col!("sgid", BigInt),
    col!("on_disk", Integer),
    col!("wired_size", BigInt),
    col!("resident_size", BigInt),
    col!("total_size", BigInt),
    col!("user_time", BigInt),
    col!("system_time", BigInt),
    col!("disk_bytes_read", BigInt),
    col!("disk_bytes_written", BigInt),
    col!("start_time", BigInt),
    col!("parent", BigInt),
    col!("pgroup", BigInt),
    col!("threads", Integer),
    col!("nice", Integer),
    col!("cgroup_path", Text),
];

const STAT_COLUMNS: &[&str] = &[
    "name",
    "state",
    "resident_size",
    "total_size",
    "user_time",
    "system_time",
    "start_time",
    "parent",
    "pgroup",
    "threads",
    "nice",
];
const ID_COLUMNS: &[&str] = &["uid", "gid", "euid", "egid", "suid", "sgid"];

impl Table for Processes {
    fn name(&self) -> &'static str {
        "processes"
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let boot = if ctx.used("start_time") {
            boot_time()
        } else {
            None
        };
        for pid in pids(ctx.eq_integers("pid")) {
            ctx.check()?;
            // A process that exits between listing and reading is skipped.
            if let Some(row) = read_process(ctx, pid, boot) {
                out.push(row);
            }
        }
        Ok(())
    }
}

fn read_process(ctx: &ScanContext<'_>, pid: i32, boot: Option<u64>) -> Option<Row> {
    let proc = Process::new(pid).ok()?;
    ctx.note_read("/proc/<pid>");
    let mut row = ctx.row();
    row.set("pid", pid as i64);
    // The stat file is the existence check too: without it the process is gone.
    if ctx.any_used(STAT_COLUMNS) {
        ctx.note_read("/proc/<pid>/stat");
        let stat = proc.stat().ok()?;
        let ticks = ticks_per_second();
        row.set("name", stat.comm.clone())
            .set("state", stat.state.to_string())
            .set("resident_size", (stat.rss * page_size()) as i64)
            .set("total_size", stat.vsize as i64)
            .set("wired_size", 0i64)
            .set("user_time", (stat.utime * 1000 / ticks) as i64)
            .set("system_time", (stat.stime * 1000 / ticks) as i64)
            .set("parent", stat.ppid as i64)
            .set("pgroup", stat.pgrp as i64)
            .set("threads", stat.num_threads)
            .set("nice", stat.nice);
        row.set_opt(
            "start_time",
            boot.map(|b| (b + stat.starttime / ticks) as i64),
        );
    }
    if ctx.used("cmdline") {
        ctx.note_read("/proc/<pid>/cmdline");
        row.set_opt("cmdline", proc.cmdline().ok().map(|args| args.join(" ")));
    }
    if ctx.any_used(&["path", "on_disk"]) {
        ctx.note_read("/proc/<pid>/exe");
        match std::fs::read_link(format!("/proc/{pid}/exe")) {
            Ok(exe) => {
                let text = exe.to_string_lossy().into_owned();
                // The kernel marks a replaced or removed binary " (deleted)".
                let deleted = text.ends_with(" (deleted)");
                let path = text.trim_end_matches(" (deleted)").to_string();
                row.set(
                    "on_disk",
                    i64::from(!deleted && std::path::Path::new(&path).exists()),
                );
                row.set("path", path);
            }
            // Kernel threads have no exe; other processes may deny us.
            Err(_) => {
                row.set("path", "").set("on_disk", -1i64);
            }
        }
    }
    if ctx.used("cwd") {
        ctx.note_read("/proc/<pid>/cwd");
        row.set_opt(
            "cwd",
            proc.cwd().ok().map(|p| p.to_string_lossy().into_owned()),
        );
    }
    if ctx.used("root") {
        ctx.note_read("/proc/<pid>/root");
        row.set_opt(
            "root",
            proc.root().ok().map(|p| p.to_string_lossy().into_owned()),
        );
    }
    if ctx.any_used(ID_COLUMNS) {
        ctx.note_read("/proc/<pid>/status");
        if let Some(ids) = read_ids(pid) {
            row.set("uid", ids.uid[0])
                .set("euid", ids.uid[1])
                .set("suid", ids.uid[2])
                .set("gid", ids.gid[0])
                .set("egid", ids.gid[1])
                .set("sgid", ids.gid[2]);
        }
    }
    if ctx.any_used(&["disk_bytes_read", "disk_bytes_written"]) {
        // /proc/<pid>/io is readable only by the owner and root.
        ctx.note_read("/proc/<pid>/io");
        if let Ok(io) = proc.io() {
            row.set("disk_bytes_read", io.read_bytes as i64)
                .set("disk_bytes_written", io.write_bytes as i64);
        }
    }
    if ctx.used("cgroup_path") {
        ctx.note_read("/proc/<pid>/cgroup");
        row.set_opt("cgroup_path", read_cgroup_path(pid));
    }
    Some(row)
}

struct Ids {
    uid: [i64; 3],
    gid: [i64; 3],
}

/// Real, effective and saved ids from the `Uid:` and `Gid:` lines of
/// /proc/<pid>/status; reading two lines beats parsing the whole file.
fn read_ids(pid: i32) -> Option<Ids> {
    let text = read_text(format!("/proc/{pid}/status"))?;
    let parse = |prefix: &str| -> Option<[i64; 3]> {
        let line = text.lines().find_map(|l| l.strip_prefix(prefix))?;
        let mut it = line
            .split_whitespace()
            .filter_map(|v| v.parse::<i64>().ok());
        Some([it.next()?, it.next()?, it.next()?])
    };
    Some(Ids {
        uid: parse("Uid:")?,
        gid: parse("Gid:")?,
    })
}

/// The cgroup v2 path (`0::/system.slice/…`), or the first v1 hierarchy's.
fn read_cgroup_path(pid: i32) -> Option<String> {
    let text = read_text(format!("/proc/{pid}/cgroup"))?;
    let v2 = text.lines().find_map(|l| l.strip_prefix("0::"));
    v2.or_else(|| text.lines().next().and_then(|l| l.splitn(3, ':').nth(2)))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{Budget, TableEnv};

    #[test]
    fn reads_this_process() {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let me = std::process::id() as i64;
        let ctx = ScanContext::all("processes", COLUMNS, &budget, &env).with_constraint(
            "pid",
            super::super::Op::Eq,
            vec![me.into()],
        );
        let mut rows = Vec::new();
        Processes.generate(&ctx, &mut rows).unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.get("pid"), Some(&me.into()));
        let ppid = std::os::unix::process::parent_id() as i64;
        assert_eq!(row.get("parent"), Some(&ppid.into()));
        let uid = unsafe_free_uid();
        assert_eq!(row.get("uid"), Some(&uid.into()));
    }

    fn unsafe_free_uid() -> i64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").unwrap().uid() as i64
    }
}
