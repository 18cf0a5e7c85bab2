//! `processes`: one row per process, from /proc/<pid>/{stat,status,cmdline,io,…}.
//! Each file is read only when the query uses a column that needs it.

use std::io::Read;

use procfs::process::{Io, Stat};
use procfs::FromRead;

use super::util::{boot_time, page_size, pids, read_text, ticks_per_second};
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::processes::TABLE as SCHEMA;

pub struct Processes;

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
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let wants = Wants::of(ctx);
        let boot = if wants.start_time { boot_time() } else { None };
        // One buffer for every /proc file the scan reads.
        let mut buf = Vec::new();
        for pid in pids(ctx.eq_integers("pid")) {
            ctx.check()?;
            // A process that exits between listing and reading is skipped.
            if let Some(row) = read_process(ctx, &wants, pid, boot, &mut buf) {
                out.push(row);
            }
        }
        Ok(())
    }
}

/// Which sources the query needs, worked out once per scan rather than once
/// per process (each `used` is a search by column name).
struct Wants {
    stat: bool,
    start_time: bool,
    cmdline: bool,
    exe: bool,
    cwd: bool,
    root: bool,
    ids: bool,
    io: bool,
    cgroup: bool,
}

impl Wants {
    fn of(ctx: &ScanContext<'_>) -> Self {
        Self {
            stat: ctx.any_used(STAT_COLUMNS),
            start_time: ctx.used("start_time"),
            cmdline: ctx.used("cmdline"),
            exe: ctx.any_used(&["path", "on_disk"]),
            cwd: ctx.used("cwd"),
            root: ctx.used("root"),
            ids: ctx.any_used(ID_COLUMNS),
            io: ctx.any_used(&["disk_bytes_read", "disk_bytes_written"]),
            cgroup: ctx.used("cgroup_path"),
        }
    }
}

fn read_process(
    ctx: &ScanContext<'_>,
    wants: &Wants,
    pid: i32,
    boot: Option<u64>,
    buf: &mut Vec<u8>,
) -> Option<Row> {
    // The existence check: the stat file when the query reads it, else the
    // directory; either way a pid that is not running yields no row.
    let stat = if wants.stat {
        let stat = read_proc(pid, "stat", buf).and_then(|b| Stat::from_read(b).ok())?;
        Some(stat)
    } else {
        std::fs::metadata(format!("/proc/{pid}"))
            .ok()
            .filter(|m| m.is_dir())?;
        None
    };
    ctx.note_read("/proc/<pid>");
    let mut row = ctx.row();
    row.set("pid", pid as i64);
    if let Some(stat) = stat {
        ctx.note_read("/proc/<pid>/stat");
        let ticks = ticks_per_second();
        row.set("name", stat.comm)
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
    if wants.cmdline {
        ctx.note_read("/proc/<pid>/cmdline");
        row.set_opt(
            "cmdline",
            read_proc(pid, "cmdline", buf).and_then(join_args),
        );
    }
    if wants.exe {
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
    if wants.cwd {
        ctx.note_read("/proc/<pid>/cwd");
        row.set_opt("cwd", read_link_text(pid, "cwd"));
    }
    if wants.root {
        ctx.note_read("/proc/<pid>/root");
        row.set_opt("root", read_link_text(pid, "root"));
    }
    if wants.ids {
        ctx.note_read("/proc/<pid>/status");
        let ids = read_proc(pid, "status", buf).and_then(parse_ids);
        if let Some(ids) = ids {
            row.set("uid", ids.uid[0])
                .set("euid", ids.uid[1])
                .set("suid", ids.uid[2])
                .set("gid", ids.gid[0])
                .set("egid", ids.gid[1])
                .set("sgid", ids.gid[2]);
        }
    }
    if wants.io {
        // /proc/<pid>/io is readable only by the owner and root.
        ctx.note_read("/proc/<pid>/io");
        if let Some(io) = read_proc(pid, "io", buf).and_then(|b| Io::from_read(b).ok()) {
            row.set("disk_bytes_read", io.read_bytes as i64)
                .set("disk_bytes_written", io.write_bytes as i64);
        }
    }
    if wants.cgroup {
        ctx.note_read("/proc/<pid>/cgroup");
        row.set_opt("cgroup_path", read_cgroup_path(pid));
    }
    Some(row)
}

/// /proc/<pid>/<file>, read the way procps reads it: into a buffer with room
/// to spare, again only if a read filled it. The kernel hands a /proc file
/// over whole on the first read, so a short read is its end; `std::fs::read`
/// would add a size probe (statx, which says 0 here) and a run of small,
/// growing reads, some 15 syscalls a process and most of a scan's time.
fn read_proc<'b>(pid: i32, file: &str, buf: &'b mut Vec<u8>) -> Option<&'b [u8]> {
    let mut f = std::fs::File::open(format!("/proc/{pid}/{file}")).ok()?;
    buf.clear();
    buf.resize(4096, 0);
    let mut len = 0;
    loop {
        match f.read(&mut buf[len..]) {
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
                buf.resize(buf.len() * 2, 0);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(&buf[..len])
}

/// The arguments of /proc/<pid>/cmdline (NUL-terminated) joined by spaces,
/// empty ones dropped; not UTF-8 means unreadable (NULL), as with procfs.
pub(crate) fn join_args(raw: &[u8]) -> Option<String> {
    // Lossy, not strict: a process must not hide from `cmdline LIKE` hunts by
    // putting invalid UTF-8 in its arguments.
    let text = String::from_utf8_lossy(raw);
    let mut line = String::with_capacity(text.len());
    for arg in text.split('\0').filter(|a| !a.is_empty()) {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(arg);
    }
    Some(line)
}

/// The target of the /proc/<pid>/cwd or root link.
fn read_link_text(pid: i32, link: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/{link}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

struct Ids {
    uid: [i64; 3],
    gid: [i64; 3],
}

/// Real, effective and saved ids from the `Uid:` and `Gid:` lines of
/// /proc/<pid>/status; reading two lines beats parsing the whole file, and
/// finding them as bytes beats a UTF-8 pass over all of it.
fn parse_ids(status: &[u8]) -> Option<Ids> {
    let parse = |prefix: &[u8]| -> Option<[i64; 3]> {
        let line = status
            .split(|b| *b == b'\n')
            .find_map(|l| l.strip_prefix(prefix))?;
        let line = String::from_utf8_lossy(line);
        let mut it = line
            .split_whitespace()
            .filter_map(|v| v.parse::<i64>().ok());
        Some([it.next()?, it.next()?, it.next()?])
    };
    Some(Ids {
        uid: parse(b"Uid:")?,
        gid: parse(b"Gid:")?,
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
        let ctx = ScanContext::all("processes", SCHEMA.columns, &budget, &env).with_constraint(
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

    #[test]
    fn joins_args_like_procfs() {
        assert_eq!(join_args(b"sleep\0ten\0").as_deref(), Some("sleep ten"));
        assert_eq!(join_args(b"a\0\0b\0").as_deref(), Some("a b"));
        assert_eq!(join_args(b"").as_deref(), Some(""));
        assert_eq!(
            join_args(b"ev\xffil\0-x\0").as_deref(),
            Some("ev\u{fffd}il -x")
        );
    }

    #[test]
    fn parses_ids_from_status() {
        let status = b"Name:\tx\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t6\t7\t8\nGroups:\t\n";
        let ids = parse_ids(status).unwrap();
        assert_eq!((ids.uid, ids.gid), ([1000, 1001, 1002], [5, 6, 7]));
        assert!(parse_ids(b"Name:\tx\nUid:\t1\t2\t3\t4\n").is_none());
    }

    #[test]
    fn reads_a_proc_file_longer_than_the_first_buffer() {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        // sh ignores its extra arguments, so a 20 kB one makes a long cmdline;
        // `read` (a builtin) keeps it waiting on our pipe with no child. Its
        // first line says it runs: until then the cmdline may still be empty.
        let long = "x".repeat(20_000);
        let mut child = Command::new("sh")
            .args(["-c", "echo up; read -r _", "sh", &long])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pid = child.id() as i32;
        let mut buf = Vec::new();
        let ours = read_proc(pid, "cmdline", &mut buf).map(<[u8]>::to_vec);
        let std = std::fs::read(format!("/proc/{pid}/cmdline")).ok();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(ours.as_ref().is_some_and(|b| b.len() > 20_000));
        assert_eq!(ours, std);
    }

    fn unsafe_free_uid() -> i64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").unwrap().uid() as i64
    }
}
