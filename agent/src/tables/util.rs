//! Small readers shared by several tables. Every reader turns "absent" and
//! "permission denied" into `None`: a table leaves such a value NULL.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

/// A whole file as text, or `None` when it cannot be read.
pub fn read_text(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read(path.as_ref())
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The first line of a file, trimmed.
pub fn read_line(path: impl AsRef<Path>) -> Option<String> {
    read_text(path).map(|t| t.lines().next().unwrap_or("").trim().to_string())
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), for /proc times.
pub fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| procfs::ticks_per_second().max(1))
}

/// Page size in bytes.
pub fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| procfs::page_size().max(1))
}

/// Boot time in Unix seconds, from `btime` in /proc/stat.
pub fn boot_time() -> Option<u64> {
    read_text("/proc/stat")?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// One `name:x:id:…` database such as /etc/passwd or /etc/group, split on ':'.
pub fn colon_records(path: &Path) -> Vec<Vec<String>> {
    read_text(path)
        .map(|text| {
            text.lines()
                .map(str::trim_end)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| l.split(':').map(str::to_string).collect())
                .collect()
        })
        .unwrap_or_default()
}

/// uid → user name, from the passwd database at `path`.
pub fn usernames(path: &Path) -> HashMap<u32, String> {
    colon_records(path)
        .into_iter()
        .filter(|f| f.len() >= 3)
        .filter_map(|f| Some((f[2].parse().ok()?, f[0].clone())))
        .collect()
}

/// gid → group name, from the group database at `path`.
pub fn groupnames(path: &Path) -> HashMap<u32, String> {
    usernames(path)
}

/// Home directories of the local users, with their uid: tables that read
/// per-user files (authorized_keys, shell_history) walk these.
pub fn user_homes(path: &Path) -> Vec<(u32, String)> {
    colon_records(path)
        .into_iter()
        .filter(|f| f.len() >= 6)
        .filter_map(|f| Some((f[2].parse().ok()?, f[5].clone())))
        .filter(|(_, home)| !home.is_empty())
        .collect()
}

/// The pids in /proc, or just `only` when the query names them.
pub fn pids(only: Option<Vec<i64>>) -> Vec<i32> {
    match only {
        Some(list) => list
            .into_iter()
            .filter_map(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0)
            .collect(),
        None => std::fs::read_dir("/proc")
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// SQL LIKE, for tables that must expand a LIKE pattern themselves (file
/// and hash paths).
pub use sweep_proto::text::like;

#[cfg(test)]
mod tests {
    #[test]
    fn like_matches_sql_semantics() {
        assert!(super::like("/etc/%", "/etc/passwd"));
        assert!(super::like("/ETC/pass_d", "/etc/passwd"));
        assert!(!super::like("/etc/%.conf", "/etc/passwd"));
        assert!(super::like("%", ""));
    }
}
