//! Push-down and column pruning, proven with what the tables generated
//! (`QueryOutput::generated`), how often they were scanned (`scans`) and which
//! OS sources they read (`reads`): a constrained query must touch only what it
//! names, and a query must read only the files behind the columns it uses.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use sweep_agent::tables::{HostPaths, Registry, TableEnv};
use sweep_agent::{Engine, Limits, QueryOutput};

const CHILDREN: usize = 20;

/// `sleep` children, so a full scan has many processes to read; killed on drop
/// even when an assertion fails.
struct Sleepers(Vec<Child>);

impl Sleepers {
    fn spawn(n: usize) -> Self {
        let mut children = Sleepers(Vec::with_capacity(n));
        for _ in 0..n {
            let child = Command::new("/bin/sleep")
                .arg("300")
                // A known environment and descriptors: 2 variables, and stdin,
                // stdout and stderr on /dev/null.
                .env_clear()
                .env("SWEEP_PUSHDOWN", "1")
                .env("SWEEP_EMPTY", "")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn sleep");
            children.0.push(child);
        }
        // Until exec completes a child is still a copy of this process.
        let deadline = Instant::now() + Duration::from_secs(10);
        for pid in children.pids() {
            while comm(pid).as_deref() != Some("sleep") {
                assert!(Instant::now() < deadline, "child {pid} never became sleep");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        children
    }

    fn pids(&self) -> Vec<i64> {
        self.0.iter().map(|c| i64::from(c.id())).collect()
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn comm(pid: i64) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

fn me() -> i64 {
    i64::from(std::process::id())
}

fn engine() -> Engine {
    Engine::new(Arc::new(Registry::default()), Limits::default())
}

/// Runs `sql`, which must succeed.
fn run(engine: &Engine, sql: &str) -> QueryOutput {
    let out = engine.run(sql);
    assert_eq!(out.error, None, "{sql}");
    out
}

fn generated(out: &QueryOutput, table: &str) -> u64 {
    out.generated.get(table).copied().unwrap_or(0)
}

fn scans(out: &QueryOutput, table: &str) -> u64 {
    out.scans.get(table).copied().unwrap_or(0)
}

fn reads(out: &QueryOutput, source: &str) -> u64 {
    out.reads.get(source).copied().unwrap_or(0)
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Integer(i) => *i,
        other => panic!("not an integer: {other:?}"),
    }
}

/// Per-process files that `SELECT pid, name` must not open.
const NOT_FOR_NAME: &[&str] = &[
    "/proc/<pid>/cmdline",
    "/proc/<pid>/status",
    "/proc/<pid>/io",
    "/proc/<pid>/cgroup",
    "/proc/<pid>/exe",
    "/proc/<pid>/cwd",
    "/proc/<pid>/root",
];

#[test]
fn processes_point_lookup_reads_one_process() {
    let sleepers = Sleepers::spawn(CHILDREN);
    let engine = engine();

    let point = run(
        &engine,
        &format!("SELECT pid, name FROM processes WHERE pid = {}", me()),
    );
    assert_eq!(point.rows.len(), 1);
    assert_eq!(int(&point.rows[0][0]), me());
    assert_eq!(generated(&point, "processes"), 1);
    assert_eq!(scans(&point, "processes"), 1);
    assert_eq!(reads(&point, "/proc/<pid>"), 1);
    assert_eq!(reads(&point, "/proc/<pid>/stat"), 1);

    let full = run(&engine, "SELECT pid, name FROM processes");
    let listed: BTreeSet<i64> = full.rows.iter().map(|r| int(&r[0])).collect();
    for pid in sleepers.pids().into_iter().chain([me()]) {
        assert!(listed.contains(&pid), "full scan lacks {pid}");
    }
    // Every process was opened, once, in one scan.
    let full_reads = reads(&full, "/proc/<pid>");
    assert!(full_reads > CHILDREN as u64, "{full_reads}");
    assert!(full_reads >= full.rows.len() as u64);
    assert_eq!(generated(&full, "processes"), full.rows.len() as u64);
    assert_eq!(scans(&full, "processes"), 1);
    println!(
        "processes: point lookup read /proc/<pid> {} time(s); full scan {} times ({} rows)",
        reads(&point, "/proc/<pid>"),
        full_reads,
        full.rows.len()
    );

    // Neither needed anything but stat for `name`.
    for out in [&point, &full] {
        for source in NOT_FOR_NAME {
            assert_eq!(reads(out, source), 0, "{source} read for pid, name");
        }
    }
}

#[test]
fn in_list_is_one_scan_of_exactly_those_processes() {
    let sleepers = Sleepers::spawn(CHILDREN);
    let engine = engine();
    let pids = sleepers.pids();
    let (a, b, c) = (pids[3], pids[7], pids[11]);

    let out = run(
        &engine,
        &format!("SELECT pid, name FROM processes WHERE pid IN ({a}, {b}, {c})"),
    );
    let got: BTreeSet<i64> = out.rows.iter().map(|r| int(&r[0])).collect();
    assert_eq!(got, BTreeSet::from([a, b, c]));
    assert!(out.rows.iter().all(|r| r[1] == Value::Text("sleep".into())));
    // The whole list reached the table in one call: one scan, three reads.
    assert_eq!(scans(&out, "processes"), 1);
    assert_eq!(generated(&out, "processes"), 3);
    assert_eq!(reads(&out, "/proc/<pid>"), 3);
}

#[test]
fn processes_read_only_the_files_of_used_columns() {
    let engine = engine();
    let me = me();

    // pid alone needs no file at all, even on a full scan.
    let out = run(&engine, "SELECT pid FROM processes");
    assert!(reads(&out, "/proc/<pid>") > 0);
    assert_eq!(
        out.reads.keys().copied().collect::<Vec<_>>(),
        ["/proc/<pid>"],
        "{:?}",
        out.reads
    );

    // cmdline reads cmdline, and only that, and gets it right.
    let out = run(
        &engine,
        &format!("SELECT cmdline FROM processes WHERE pid = {me}"),
    );
    assert_eq!(reads(&out, "/proc/<pid>/cmdline"), 1);
    for source in ["/proc/<pid>/stat", "/proc/<pid>/status", "/proc/<pid>/exe"] {
        assert_eq!(reads(&out, source), 0, "{source} read for cmdline");
    }
    let own: Vec<String> = std::env::args().collect();
    assert_eq!(out.rows, vec![vec![Value::Text(own.join(" "))]]);

    // A column used only in WHERE counts as used.
    let out = run(
        &engine,
        &format!("SELECT pid FROM processes WHERE pid = {me} AND uid >= 0"),
    );
    assert_eq!(out.rows.len(), 1);
    assert_eq!(reads(&out, "/proc/<pid>/status"), 1);
    assert_eq!(reads(&out, "/proc/<pid>/cmdline"), 0);

    // Every column reads every source, once for the one process.
    let out = run(
        &engine,
        &format!("SELECT * FROM processes WHERE pid = {me}"),
    );
    for source in [
        "/proc/<pid>/stat",
        "/proc/<pid>/cmdline",
        "/proc/<pid>/status",
        "/proc/<pid>/io",
        "/proc/<pid>/cgroup",
        "/proc/<pid>/exe",
    ] {
        assert_eq!(reads(&out, source), 1, "{source}");
    }
}

/// `WHERE pid = <own>` on the per-process tables generates only our rows, in
/// one scan, while a full scan also generates every child's.
#[test]
fn per_process_tables_push_pid_down() {
    let sleepers = Sleepers::spawn(CHILDREN);
    // An open file, so this process surely has a row in process_open_files.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("held open");
    let _held = std::fs::File::create(&path).unwrap();
    let engine = engine();
    let me = me();
    let children: BTreeSet<i64> = sleepers.pids().into_iter().collect();

    for (table, source, per_child) in [
        // stdin, stdout and stderr on /dev/null.
        ("process_open_files", "/proc/<pid>/fd", 3),
        // SWEEP_PUSHDOWN and SWEEP_EMPTY.
        ("process_envs", "/proc/<pid>/environ", 2),
        // At least the program itself.
        ("process_memory_map", "/proc/<pid>/maps", 1),
    ] {
        let point = run(
            &engine,
            &format!("SELECT pid FROM {table} WHERE pid = {me}"),
        );
        assert!(!point.rows.is_empty(), "{table}: no rows for this process");
        assert!(point.rows.iter().all(|r| int(&r[0]) == me), "{table}");
        assert_eq!(generated(&point, table), point.rows.len() as u64, "{table}");
        assert_eq!(scans(&point, table), 1, "{table}");
        assert_eq!(reads(&point, source), 1, "{table}");

        let full = run(&engine, &format!("SELECT pid FROM {table}"));
        let child_rows = full
            .rows
            .iter()
            .filter(|r| children.contains(&int(&r[0])))
            .count();
        assert!(child_rows >= CHILDREN * per_child, "{table}: {child_rows}");
        assert_eq!(generated(&full, table), full.rows.len() as u64, "{table}");
        assert!(
            generated(&full, table) >= generated(&point, table) + child_rows as u64,
            "{table}"
        );
        assert!(reads(&full, source) > CHILDREN as u64, "{table}");
        println!(
            "{table}: pid = own generated {}, full scan {} ({} sources read)",
            generated(&point, table),
            generated(&full, table),
            reads(&full, source)
        );
    }

    // The environment is the one the children were given, exactly.
    let child = sleepers.pids()[0];
    let out = run(
        &engine,
        &format!("SELECT key, value FROM process_envs WHERE pid = {child} ORDER BY key"),
    );
    let text = |v: &str| Value::Text(v.to_string());
    assert_eq!(
        out.rows,
        vec![
            vec![text("SWEEP_EMPTY"), text("")],
            vec![text("SWEEP_PUSHDOWN"), text("1")]
        ]
    );
    assert_eq!(generated(&out, "process_envs"), 2);
}

#[test]
fn join_pushes_pid_into_the_inner_table() {
    let _sleepers = Sleepers::spawn(CHILDREN);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("joined");
    let _held = std::fs::File::create(&path).unwrap();
    let real = std::fs::canonicalize(&path).unwrap();
    let engine = engine();
    let me = me();

    let out = run(
        &engine,
        &format!(
            "SELECT p.name, f.path FROM processes p JOIN process_open_files f USING (pid) \
             WHERE p.pid = {me}"
        ),
    );
    let paths: Vec<&Value> = out.rows.iter().map(|r| &r[1]).collect();
    assert!(
        paths.contains(&&Value::Text(real.to_string_lossy().into_owned())),
        "{paths:?}"
    );
    // Only our descriptors were listed, in one scan of our fd directory.
    assert_eq!(generated(&out, "process_open_files"), out.rows.len() as u64);
    assert_eq!(scans(&out, "process_open_files"), 1);
    assert_eq!(reads(&out, "/proc/<pid>/fd"), 1);
    assert_eq!(generated(&out, "processes"), 1);

    let full = run(&engine, "SELECT pid FROM process_open_files");
    assert!(
        generated(&full, "process_open_files")
            >= generated(&out, "process_open_files") + 3 * CHILDREN as u64
    );
}

/// users and groups filter in the table on uid, username and gid. A passwd
/// and group file written here make the counts exact.
#[test]
fn users_and_groups_push_ids_and_names_down() {
    const ACCOUNTS: u32 = 40;
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    let group = dir.path().join("group");
    let mut passwd_text = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut group_text = String::from("root:x:0:\n");
    for i in 0..ACCOUNTS {
        passwd_text.push_str(&format!(
            "user{i}:x:{}:{}:User {i}:/home/user{i}:/bin/sh\n",
            2000 + i,
            3000 + i
        ));
        group_text.push_str(&format!("group{i}:x:{}:user{i}\n", 3000 + i));
    }
    std::fs::write(&passwd, passwd_text).unwrap();
    std::fs::write(&group, group_text).unwrap();
    let env = TableEnv {
        paths: HostPaths {
            etc_passwd: passwd,
            etc_group: group,
            ..HostPaths::default()
        },
        ..TableEnv::default()
    };
    let local = Engine::new(Arc::new(Registry::new(env)), Limits::default());
    let total = u64::from(ACCOUNTS) + 1;

    let full = run(&local, "SELECT uid FROM users");
    assert_eq!(generated(&full, "users"), total);
    let full = run(&local, "SELECT gid FROM groups");
    assert_eq!(generated(&full, "groups"), total);

    for (sql, table, want) in [
        (
            "SELECT username FROM users WHERE uid = 2017",
            "users",
            vec!["user17"],
        ),
        (
            "SELECT username FROM users WHERE username = 'user17'",
            "users",
            vec!["user17"],
        ),
        (
            "SELECT username FROM users WHERE uid IN (2003, 2005, 2007) ORDER BY uid",
            "users",
            vec!["user3", "user5", "user7"],
        ),
        (
            "SELECT groupname FROM groups WHERE gid = 3021",
            "groups",
            vec!["group21"],
        ),
        (
            "SELECT groupname FROM groups WHERE gid IN (0, 3039) ORDER BY gid",
            "groups",
            vec!["root", "group39"],
        ),
    ] {
        let out = run(&local, sql);
        let got: Vec<Value> = out.rows.iter().map(|r| r[0].clone()).collect();
        let want: Vec<Value> = want.into_iter().map(|w| Value::Text(w.into())).collect();
        assert_eq!(got, want, "{sql}");
        assert_eq!(generated(&out, table), want.len() as u64, "{sql}");
        assert_eq!(scans(&out, table), 1, "{sql}");
    }

    // The host's own passwd file: our uid generates only its own rows.
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    let host = engine();
    let out = run(&host, &format!("SELECT uid FROM users WHERE uid = {uid}"));
    assert_eq!(generated(&out, "users"), out.rows.len() as u64);
    assert!(out.rows.iter().all(|r| int(&r[0]) == i64::from(uid)));
    let gid = std::fs::metadata("/proc/self").unwrap().gid();
    let out = run(&host, &format!("SELECT gid FROM groups WHERE gid = {gid}"));
    assert_eq!(generated(&out, "groups"), out.rows.len() as u64);
    assert!(out.rows.len() <= 1);
}
