//! `process_open_files`: each process's descriptors and what they point at,
//! from the /proc/<pid>/fd links. As in osquery, sockets, pipes and anonymous
//! inodes (eventfd, epoll, …) are left out: they are not files.

use super::util::pids;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::process_open_files::TABLE as SCHEMA;

pub struct ProcessOpenFiles;

/// Link targets that name no file.
const NOT_FILES: &[&str] = &["socket:", "anon_inode:", "pipe:"];

impl Table for ProcessOpenFiles {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        for pid in pids(ctx.eq_integers("pid")) {
            ctx.check()?;
            ctx.note_read("/proc/<pid>/fd");
            for (fd, path) in open_files(pid) {
                let mut row = ctx.row();
                row.set("pid", pid).set("fd", fd).set("path", path);
                out.push(row);
            }
        }
        Ok(())
    }
}

/// The file descriptors of `pid`, by number. A process that is gone or whose
/// fd directory we may not read has none; an fd closed mid-listing is skipped.
fn open_files(pid: i32) -> Vec<(i64, String)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut files: Vec<(i64, String)> = dir
        .flatten()
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse::<i64>().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            let target = target.to_string_lossy().into_owned();
            (!NOT_FILES.iter().any(|p| target.contains(p))).then_some((fd, target))
        })
        .collect();
    files.sort_unstable();
    files
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, Op, TableEnv};

    fn scan_pid(pid: i64) -> Vec<Row> {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("process_open_files", SCHEMA.columns, &budget, &env)
            .with_constraint("pid", Op::Eq, vec![pid.into()]);
        let mut rows = Vec::new();
        ProcessOpenFiles.generate(&ctx, &mut rows).unwrap();
        rows
    }

    fn fd_row(rows: &[Row], fd: i64) -> Option<&Row> {
        rows.iter()
            .find(|r| r.get("fd") == Some(&Value::Integer(fd)))
    }

    #[test]
    fn finds_a_file_this_test_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("open me.txt");
        let file = std::fs::File::create(&path).unwrap();
        let (reader, writer) = std::io::pipe().unwrap();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();

        let me = i64::from(std::process::id());
        let rows = scan_pid(me);
        assert!(rows
            .iter()
            .all(|r| r.get("pid") == Some(&Value::Integer(me))));

        let row = fd_row(&rows, i64::from(file.as_raw_fd())).expect("the temp file's fd");
        let real = std::fs::canonicalize(&path).unwrap();
        assert_eq!(
            row.get("path"),
            Some(&Value::Text(real.to_string_lossy().into_owned()))
        );
        // Pipes and sockets are not files.
        for fd in [reader.as_raw_fd(), writer.as_raw_fd(), socket.as_raw_fd()] {
            assert!(fd_row(&rows, i64::from(fd)).is_none(), "fd {fd} listed");
        }
    }

    /// A child whose descriptors are known: stdin from a file, stdout and
    /// stderr to /dev/null, and whatever this process inherited without
    /// close-on-exec (a test runner may leave such fds open).
    #[test]
    fn lists_a_childs_descriptors_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("input");
        std::fs::write(&input, b"").unwrap();
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .stdin(std::fs::File::open(&input).unwrap())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = i64::from(child.id());
        // Wait for exec: then `comm` is sleep and the fds are final.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap_or_default()
            .trim()
            != "sleep"
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let rows = scan_pid(pid);
        child.kill().unwrap();
        child.wait().unwrap();

        let got: Vec<(i64, String)> = rows
            .iter()
            .map(|r| match (r.get("fd"), r.get("path")) {
                (Some(Value::Integer(fd)), Some(Value::Text(path))) => (*fd, path.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        let real = std::fs::canonicalize(&input)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            got[..3],
            [(0, real), (1, "/dev/null".into()), (2, "/dev/null".into())]
        );
        // Anything past stdio was inherited from this test process, whose
        // other tests open and close descriptors meanwhile: compare those
        // still open here.
        for (fd, path) in &got[3..] {
            if let Ok(ours) = std::fs::read_link(format!("/proc/self/fd/{fd}")) {
                assert!(!path.is_empty(), "fd {fd} has no path (ours: {ours:?})");
            }
        }
    }
}
