//! `mounts`: the mount table of /proc/mounts, with block and inode counts
//! from statvfs(2) on each mount point.

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::mounts::TABLE as SCHEMA;

pub struct Mounts;

const STATVFS_COLUMNS: &[&str] = &[
    "blocks_size",
    "blocks",
    "blocks_free",
    "blocks_available",
    "inodes",
    "inodes_free",
];

#[derive(Debug, PartialEq)]
struct Mount {
    device: String,
    path: String,
    fs_type: String,
    flags: String,
}

impl Table for Mounts {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let Some(text) = read_text("/proc/mounts") else {
            return Ok(());
        };
        let want_stats = ctx.any_used(STATVFS_COLUMNS);
        for m in parse(&text) {
            ctx.check()?;
            let mut row = ctx.row();
            if ctx.used("device_alias") {
                row.set("device_alias", device_alias(&m.device));
            }
            if want_stats {
                set_stats(&mut row, &m);
            }
            row.set("device", m.device)
                .set("path", m.path)
                .set("type", m.fs_type)
                .set("flags", m.flags);
            out.push(row);
        }
        Ok(())
    }
}

/// The device with symlinks resolved (/dev/mapper/x → /dev/dm-0). Pseudo
/// devices ("proc", "tmpfs") are not paths and stay as they are.
fn device_alias(device: &str) -> String {
    if !device.starts_with('/') {
        return device.to_string();
    }
    std::fs::canonicalize(device)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| device.to_string())
}

fn set_stats(row: &mut Row, m: &Mount) {
    // statvfs would make the automounter mount it: osquery reports zeros.
    if m.fs_type == "autofs" {
        for col in STATVFS_COLUMNS {
            row.set(col, 0i64);
        }
        return;
    }
    // A mount point we may not stat (another user's FUSE) stays NULL.
    let Ok(st) = rustix::fs::statvfs(m.path.as_str()) else {
        return;
    };
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    row.set("blocks_size", clamp(st.f_bsize))
        .set("blocks", clamp(st.f_blocks))
        .set("blocks_free", clamp(st.f_bfree))
        .set("blocks_available", clamp(st.f_bavail))
        .set("inodes", clamp(st.f_files))
        .set("inodes_free", clamp(st.f_ffree));
}

/// `device path type options freq passno` lines, fields octal-escaped.
fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            Some(Mount {
                device: unescape(f.next()?),
                path: unescape(f.next()?),
                fs_type: unescape(f.next()?),
                flags: unescape(f.next()?),
            })
        })
        .collect()
}

/// The kernel writes space, tab, newline and backslash in mount fields as
/// `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok()) {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::TableEnv;

    fn scan() -> Vec<Row> {
        crate::tables::testing::scan(&Mounts, &TableEnv::default())
    }

    fn text(row: &Row, c: &str) -> String {
        match row.get(c) {
            Some(Value::Text(t)) => t.clone(),
            other => panic!("{c}: {other:?}"),
        }
    }

    fn int(row: &Row, c: &str) -> i64 {
        match row.get(c) {
            Some(Value::Integer(i)) => *i,
            other => panic!("{c}: {other:?}"),
        }
    }

    #[test]
    fn parses_escaped_mount_lines() {
        let m = parse(
            "/dev/sdb1 /media/my\\040disk\\134x vfat rw,relatime 0 0\n\
             systemd-1 /proc/sys/fs/binfmt_misc autofs rw,fd=29 0 0\n",
        );
        assert_eq!(
            m[0],
            Mount {
                device: "/dev/sdb1".into(),
                path: "/media/my disk\\x".into(),
                fs_type: "vfat".into(),
                flags: "rw,relatime".into(),
            }
        );
        assert_eq!(m[1].fs_type, "autofs");
        assert_eq!(unescape("a\\12"), "a\\12");
        assert_eq!(device_alias("tmpfs"), "tmpfs");
    }

    /// Same mounts, in the same order, as /proc/self/mountinfo (the other
    /// format of the kernel's mount table); "/" sized as `stat -f` sees it.
    #[test]
    fn matches_mountinfo_and_stat() {
        let rows = scan();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let expected: Vec<(String, String, String)> = info
            .lines()
            .map(|l| {
                let (left, right) = l.split_once(" - ").unwrap();
                let left: Vec<&str> = left.split(' ').collect();
                let right: Vec<&str> = right.split(' ').collect();
                (unescape(right[1]), unescape(left[4]), right[0].to_string())
            })
            .collect();
        let got: Vec<(String, String, String)> = rows
            .iter()
            .map(|r| (text(r, "device"), text(r, "path"), text(r, "type")))
            .collect();
        assert_eq!(got, expected);

        let root = rows
            .iter()
            .rev()
            .find(|r| text(r, "path") == "/")
            .expect("a / mount");
        let out = std::process::Command::new("stat")
            .args(["-f", "-c", "%s %b %c %f", "/"])
            .output()
            .unwrap();
        let out = String::from_utf8(out.stdout).unwrap();
        let v: Vec<i64> = out.split_whitespace().map(|w| w.parse().unwrap()).collect();
        assert_eq!(int(root, "blocks_size"), v[0]);
        assert_eq!(int(root, "blocks"), v[1]);
        assert_eq!(int(root, "inodes"), v[2]);
        // Others write to the disk meanwhile: free space within 1%.
        assert!((int(root, "blocks_free") - v[3]).abs() <= v[1] / 100 + 1);
        assert!(int(root, "blocks_available") <= int(root, "blocks_free"));
        for r in &rows {
            if text(r, "type") == "autofs" {
                assert_eq!(int(r, "blocks"), 0);
            }
        }
    }
}
