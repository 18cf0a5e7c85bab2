//! `process_memory_map`: each process's mappings from /proc/<pid>/maps
//! (`start-end perms offset dev inode path`), readable with ptrace access.

use super::util::pids;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::process_memory_map::TABLE as SCHEMA;

pub struct ProcessMemoryMap;

impl Table for ProcessMemoryMap {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        for pid in pids(ctx.eq_integers("pid")) {
            ctx.check()?;
            ctx.note_read("/proc/<pid>/maps");
            // Gone or not ours to trace: no rows.
            let Ok(bytes) = std::fs::read(format!("/proc/{pid}/maps")) else {
                continue;
            };
            for map in parse_maps(&String::from_utf8_lossy(&bytes)) {
                let mut row = ctx.row();
                row.set("pid", pid)
                    .set("start", format!("0x{}", map.start))
                    .set("end", format!("0x{}", map.end))
                    .set("permissions", map.permissions)
                    .set("offset", map.offset)
                    .set("device", map.device)
                    .set("inode", map.inode)
                    // A path but no inode: [heap], [stack], [vdso], anonymous names.
                    .set("pseudo", map.inode == 0 && !map.path.is_empty())
                    .set("path", map.path);
                out.push(row);
            }
        }
        Ok(())
    }
}

struct Mapping<'a> {
    start: &'a str,
    end: &'a str,
    permissions: &'a str,
    offset: i64,
    device: &'a str,
    inode: i64,
    path: &'a str,
}

fn parse_maps(text: &str) -> Vec<Mapping<'_>> {
    text.lines()
        .filter_map(|line| {
            let mut rest = line;
            let mut field = || {
                rest = rest.trim_start();
                let end = rest.find(' ').unwrap_or(rest.len());
                let (f, r) = rest.split_at(end);
                rest = r;
                f
            };
            let (range, permissions, offset, device, inode) =
                (field(), field(), field(), field(), field());
            let (start, end) = range.split_once('-')?;
            Some(Mapping {
                start,
                end,
                permissions,
                // The offset is hex; osquery shows -1 when it cannot parse it.
                offset: u64::from_str_radix(offset, 16).map_or(-1, |o| o as i64),
                device,
                inode: inode.parse().ok()?,
                // The kernel pads the path column with spaces; the path keeps
                // its own spaces and a " (deleted)" suffix.
                path: rest.trim_start(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::testing::text;
    use crate::tables::{Budget, Op, TableEnv};

    fn scan_pid(pid: i64) -> Vec<Row> {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("process_memory_map", SCHEMA.columns, &budget, &env)
            .with_constraint("pid", Op::Eq, vec![pid.into()]);
        let mut rows = Vec::new();
        ProcessMemoryMap.generate(&ctx, &mut rows).unwrap();
        rows
    }

    /// A sleeping child's maps do not change, so they can be compared with
    /// /proc/<pid>/maps read independently, line by line.
    #[test]
    fn matches_a_sleeping_childs_maps() {
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = i64::from(child.id());
        let exe = std::fs::canonicalize("/bin/sleep").unwrap();
        let exe = exe.to_string_lossy().into_owned();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.to_string_lossy() != exe)
            .unwrap_or(true)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // exec may still be mapping the program and its libraries: take a scan
        // that two reads around it agree with, once the program is mapped.
        let read = || std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let (rows, maps) = loop {
            let (before, rows, after) = (read(), scan_pid(pid), read());
            let loaded = after.contains(&exe) && after.contains("[stack]");
            if before == after && loaded || std::time::Instant::now() > deadline {
                break (rows, after);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        child.kill().unwrap();
        child.wait().unwrap();

        let lines: Vec<&str> = maps.lines().collect();
        assert_eq!(rows.len(), lines.len());
        for (row, line) in rows.iter().zip(&lines) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (start, end) = cols[0].split_once('-').unwrap();
            assert_eq!(text(row, "start"), format!("0x{start}"));
            assert_eq!(text(row, "end"), format!("0x{end}"));
            assert_eq!(text(row, "permissions"), cols[1]);
            assert_eq!(
                row.get("offset"),
                Some(&Value::Integer(i64::from_str_radix(cols[2], 16).unwrap()))
            );
            assert_eq!(text(row, "device"), cols[3]);
            assert_eq!(
                row.get("inode"),
                Some(&Value::Integer(cols[4].parse().unwrap()))
            );
            assert_eq!(text(row, "path"), cols[5..].join(" "));
        }

        // The executable is mapped with its inode; the stack is a pseudo mapping.
        let ino = std::fs::metadata(&exe).unwrap().ino() as i64;
        let binary = rows
            .iter()
            .find(|r| text(r, "path") == exe)
            .expect("executable mapping");
        assert_eq!(binary.get("inode"), Some(&Value::Integer(ino)));
        assert_eq!(binary.get("pseudo"), Some(&Value::Integer(0)));
        let stack = rows
            .iter()
            .find(|r| text(r, "path") == "[stack]")
            .expect("[stack]");
        assert_eq!(stack.get("pseudo"), Some(&Value::Integer(1)));
        assert_eq!(stack.get("inode"), Some(&Value::Integer(0)));
    }

    #[test]
    fn keeps_paths_with_spaces() {
        let maps = "7f00-7f10 r-xp 00001000 fd:01 42                         /opt/my app/lib.so (deleted)\n7ffd-7ffe rw-p 00000000 00:00 0                          [stack]\n7ffe-7fff rw-p 00000000 00:00 0 \n";
        let parsed = parse_maps(maps);
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            (parsed[0].start, parsed[0].end, parsed[0].offset),
            ("7f00", "7f10", 0x1000)
        );
        assert_eq!((parsed[0].device, parsed[0].inode), ("fd:01", 42));
        assert_eq!(parsed[0].path, "/opt/my app/lib.so (deleted)");
        assert_eq!(parsed[1].path, "[stack]");
        assert_eq!(parsed[2].path, "");
    }
}
