//! `file`: stat(2) facts about the paths a query names. `path` and
//! `directory` are required: `path = X` stats X, `directory = D` stats D's
//! direct entries, and `LIKE` patterns are expanded on disk the way osquery
//! expands them (`%` within one path component, a trailing `%%` recursively).
//!
//! The pattern expansion here is shared with `hash`.

use std::collections::BTreeSet;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::util::like;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::file::TABLE as SCHEMA;

pub struct File;

impl Table for File {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        for target in targets(ctx)? {
            ctx.check()?;
            // A path that does not exist (or vanished) simply has no row.
            if let Some(row) = file_row(ctx, &target) {
                out.push(row);
            }
        }
        Ok(())
    }
}

/// One path to report, with the `directory` value its row carries: the
/// directory as the query wrote it, or the path's parent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Target {
    pub path: String,
    pub directory: String,
}

/// The paths one column's constraints name: its `=` values, and what its
/// `LIKE` patterns expand to (`dirs`: directories only).
fn constrained(
    ctx: &ScanContext<'_>,
    column: &str,
    dirs: bool,
) -> Result<BTreeSet<String>, AgentError> {
    let mut out: BTreeSet<String> = ctx
        .eq_texts(column)
        .unwrap_or_default()
        .into_iter()
        .collect();
    for pattern in ctx.like_patterns(column) {
        out.extend(expand_pattern(ctx, &pattern, dirs)?);
    }
    Ok(out)
}

/// The paths named by a scan's `path` and `directory` constraints (`=` and
/// `LIKE`), sorted and without duplicates.
pub(super) fn targets(ctx: &ScanContext<'_>) -> Result<Vec<Target>, AgentError> {
    let mut out = BTreeSet::new();
    for path in constrained(ctx, "path", false)? {
        let directory = parent_of(&path);
        out.insert(Target { path, directory });
    }

    for dir in constrained(ctx, "directory", true)? {
        for name in list_dir(&dir) {
            ctx.check()?;
            out.insert(Target {
                path: join(&dir, &name),
                directory: dir.clone(),
            });
        }
    }
    Ok(out.into_iter().collect())
}

fn file_row(ctx: &ScanContext<'_>, target: &Target) -> Option<Row> {
    let path = Path::new(&target.path);
    let link_meta = std::fs::symlink_metadata(path).ok()?;
    let is_link = link_meta.file_type().is_symlink();
    // Like stat(2) after lstat(2): describe what a link points to, or the
    // link itself when it dangles.
    let meta = if is_link {
        std::fs::metadata(path).unwrap_or_else(|_| link_meta.clone())
    } else {
        link_meta
    };

    let mut row = ctx.row();
    row.set("path", &target.path)
        .set("directory", &target.directory)
        .set(
            "filename",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )
        .set("inode", meta.ino())
        .set("uid", meta.uid())
        .set("gid", meta.gid())
        .set("mode", format!("{:04o}", meta.mode() & 0o7777))
        // osquery reports st_rdev here: the device a device node stands for.
        .set("device", meta.rdev())
        .set("size", meta.size())
        .set("block_size", meta.blksize())
        .set("atime", meta.atime())
        .set("mtime", meta.mtime())
        .set("ctime", meta.ctime())
        .set("btime", birth_time(&meta))
        .set("hard_links", meta.nlink())
        .set("symlink", is_link)
        .set("type", type_name(&meta))
        .set("pid_with_namespace", 0i64);
    if is_link && ctx.used("symlink_target_path") {
        row.set_opt(
            "symlink_target_path",
            std::fs::read_link(path)
                .ok()
                .map(|t| t.to_string_lossy().into_owned()),
        );
    }
    Some(row)
}

/// Creation time from statx, where the filesystem records one; 0 otherwise.
fn birth_time(meta: &Metadata) -> i64 {
    meta.created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

fn type_name(meta: &Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_file() {
        "regular"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_char_device() {
        "character"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else {
        "unknown"
    }
}

/// The parent of `path` as text ("" for "/" or a bare name).
pub(super) fn parent_of(path: &str) -> String {
    Path::new(path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `dir` and `name` joined with exactly one '/'.
pub(super) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Entry names of `dir`, sorted; an unreadable directory has none.
pub(super) fn list_dir(dir: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(if dir.is_empty() { "." } else { dir }) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

fn is_wild(segment: &str) -> bool {
    segment.contains(['%', '_'])
}

/// Deepest a trailing `%%` descends, as in osquery.
const MAX_RECURSION: usize = 64;

/// The existing paths a LIKE `pattern` names. Components without wildcards
/// are taken as written; wildcard components match directory entries as SQL
/// LIKE does (`%`, `_`), dot files included. A last component ending in `%%`
/// also yields everything below the directories it matches (symlinked
/// directories are listed but not descended into, so a walk cannot loop).
/// With `dirs_only`, only directories are returned.
pub(super) fn expand_pattern(
    ctx: &ScanContext<'_>,
    pattern: &str,
    dirs_only: bool,
) -> Result<Vec<String>, AgentError> {
    let absolute = pattern.starts_with('/');
    let segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let mut current = vec![if absolute {
        "/".to_string()
    } else {
        String::new()
    }];
    let mut found = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let mut next = Vec::new();
        if !is_wild(segment) {
            // LIKE folds ASCII case: `/ETC/passwd` names /etc/passwd too, so
            // a segment with letters is matched against the directory's
            // entries; one that cannot be listed keeps the literal name.
            let folds = segment.bytes().any(|b| b.is_ascii_alphabetic());
            for prefix in &current {
                let names = if folds { list_dir(prefix) } else { Vec::new() };
                if names.is_empty() {
                    next.push(join(prefix, segment));
                }
                for name in names {
                    if name.eq_ignore_ascii_case(segment) {
                        next.push(join(prefix, &name));
                    }
                }
            }
        } else if last && segment.ends_with("%%") {
            // "%%" means "and everything below": match this level with '%'.
            let level = format!("{}%", segment.trim_end_matches('%'));
            for prefix in &current {
                for name in list_dir(prefix) {
                    ctx.check()?;
                    if like(&level, &name) {
                        let path = join(prefix, &name);
                        walk(ctx, &path, 0, &mut found)?;
                        found.push(path);
                    }
                }
            }
            current.clear();
            break;
        } else {
            for prefix in &current {
                for name in list_dir(prefix) {
                    ctx.check()?;
                    if like(segment, &name) {
                        next.push(join(prefix, &name));
                    }
                }
            }
        }
        current = next;
    }
    found.extend(current);
    found.retain(|p| {
        if dirs_only {
            Path::new(p).is_dir()
        } else {
            std::fs::symlink_metadata(p).is_ok()
        }
    });
    found.sort();
    found.dedup();
    Ok(found)
}

/// Everything below `dir` (when it is a real directory), depth-first.
fn walk(
    ctx: &ScanContext<'_>,
    dir: &str,
    depth: usize,
    out: &mut Vec<String>,
) -> Result<(), AgentError> {
    if depth >= MAX_RECURSION {
        return Ok(());
    }
    let is_dir = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    if !is_dir {
        return Ok(());
    }
    for name in list_dir(dir) {
        ctx.check()?;
        let path = join(dir, &name);
        walk(ctx, &path, depth + 1, out)?;
        out.push(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use rusqlite::types::Value;

    use super::*;
    use crate::engine::{Engine, Limits};
    use crate::tables::testing::{int, text};
    use crate::tables::{Op, Registry, TableEnv};

    fn scan(column: &str, op: Op, value: &str) -> Vec<Row> {
        let value = vec![Value::Text(value.to_string())];
        crate::tables::testing::scan_with(&File, &TableEnv::default(), &[(column, op, value)])
    }

    /// `stat --format` output for one path, independent of our own stat code.
    fn stat_cmd(path: &str, format: &str) -> String {
        let out = std::process::Command::new("stat")
            .args(["-c", format, path])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn stats_a_path_like_stat_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.txt");
        std::fs::write(&file, b"hello, file table\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let path = file.to_str().unwrap();

        let rows = scan("path", Op::Eq, path);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(text(row, "path"), path);
        assert_eq!(text(row, "directory"), dir.path().to_str().unwrap());
        assert_eq!(text(row, "filename"), "data.txt");
        assert_eq!(text(row, "type"), "regular");
        assert_eq!(int(row, "symlink"), 0);
        // %a is the octal mode, %i inode, %s size, %u/%g owner, %h links,
        // %Y mtime, %o I/O block size.
        assert_eq!(text(row, "mode"), format!("{:0>4}", stat_cmd(path, "%a")));
        assert_eq!(int(row, "inode").to_string(), stat_cmd(path, "%i"));
        assert_eq!(int(row, "size").to_string(), stat_cmd(path, "%s"));
        assert_eq!(int(row, "uid").to_string(), stat_cmd(path, "%u"));
        assert_eq!(int(row, "gid").to_string(), stat_cmd(path, "%g"));
        assert_eq!(int(row, "hard_links").to_string(), stat_cmd(path, "%h"));
        assert_eq!(int(row, "mtime").to_string(), stat_cmd(path, "%Y"));
        assert_eq!(int(row, "block_size").to_string(), stat_cmd(path, "%o"));
        // %W is the birth time, or 0 when the filesystem has none.
        let birth: i64 = stat_cmd(path, "%W").parse().unwrap_or(0);
        assert_eq!(int(row, "btime"), birth.max(0));

        // A path that does not exist has no row.
        assert!(scan("path", Op::Eq, &format!("{path}.missing")).is_empty());
    }

    #[test]
    fn symlinks_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();

        let row = &scan("path", Op::Eq, link.to_str().unwrap())[0];
        assert_eq!(int(row, "symlink"), 1);
        assert_eq!(text(row, "type"), "directory");
        assert_eq!(text(row, "symlink_target_path"), target.to_str().unwrap());
        assert_eq!(
            int(row, "inode").to_string(),
            stat_cmd(target.to_str().unwrap(), "%i")
        );

        let row = &scan("path", Op::Eq, dangling.to_str().unwrap())[0];
        assert_eq!(int(row, "symlink"), 1);
        assert_eq!(text(row, "type"), "symlink");
    }

    #[test]
    fn directory_lists_direct_entries_like_find() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b.conf", ".hidden"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
        std::fs::write(dir.path().join("sub/deeper/x"), "x").unwrap();
        let d = dir.path().to_str().unwrap();

        let out = std::process::Command::new("find")
            .args([d, "-mindepth", "1", "-maxdepth", "1"])
            .output()
            .unwrap();
        let mut expected: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        expected.sort();

        let rows = scan("directory", Op::Eq, d);
        let got: Vec<String> = rows.iter().map(|r| text(r, "path")).collect();
        assert_eq!(got, expected);
        assert!(rows.iter().all(|r| text(r, "directory") == d));
        let sub = rows.iter().find(|r| text(r, "filename") == "sub").unwrap();
        assert_eq!(text(sub, "type"), "directory");
    }

    #[test]
    fn like_patterns_expand_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one.conf"), "1").unwrap();
        std::fs::write(dir.path().join("two.conf"), "2").unwrap();
        std::fs::write(dir.path().join("three.txt"), "3").unwrap();
        std::fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
        std::fs::write(dir.path().join("sub/deeper/four.conf"), "4").unwrap();
        let d = dir.path().to_str().unwrap();

        let got: Vec<String> = scan("path", Op::Like, &format!("{d}/%.conf"))
            .iter()
            .map(|r| text(r, "path"))
            .collect();
        assert_eq!(got, vec![format!("{d}/one.conf"), format!("{d}/two.conf")]);

        // '%' inside the path crosses one level.
        let got: Vec<String> = scan("path", Op::Like, &format!("{d}/%/deeper"))
            .iter()
            .map(|r| text(r, "path"))
            .collect();
        assert_eq!(got, vec![format!("{d}/sub/deeper")]);

        // A trailing "%%" is recursive: compare with find.
        let out = std::process::Command::new("find")
            .args([d, "-mindepth", "1"])
            .output()
            .unwrap();
        let mut expected: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        expected.sort();
        let got: Vec<String> = scan("path", Op::Like, &format!("{d}/%%"))
            .iter()
            .map(|r| text(r, "path"))
            .collect();
        assert_eq!(got, expected);

        // directory LIKE keeps directories only, then lists each one.
        let rows = scan("directory", Op::Like, &format!("{d}/s%"));
        let got: Vec<(String, String)> = rows
            .iter()
            .map(|r| (text(r, "directory"), text(r, "path")))
            .collect();
        assert_eq!(got, vec![(format!("{d}/sub"), format!("{d}/sub/deeper"))]);

        // LIKE folds ASCII case in literal segments too, as SQLite does:
        // `SUB` names both `sub` and `Sub`.
        std::fs::create_dir_all(dir.path().join("Sub")).unwrap();
        std::fs::write(dir.path().join("Sub/five.conf"), "5").unwrap();
        let got: Vec<String> = scan("path", Op::Like, &format!("{d}/SUB/%"))
            .iter()
            .map(|r| text(r, "path"))
            .collect();
        assert_eq!(
            got,
            vec![format!("{d}/Sub/five.conf"), format!("{d}/sub/deeper")]
        );
    }

    #[test]
    fn through_sql_and_required_constraint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "abc").unwrap();
        let engine = Engine::new(Arc::new(Registry::default()), Limits::default());

        let out = engine.run("select * from file");
        let err = out
            .error
            .expect("a scan without path or directory must fail")
            .to_string();
        assert!(err.contains("path") && err.contains("directory"), "{err}");

        let sql = format!(
            "select filename, size from file where path like '{}/%'",
            dir.path().display()
        );
        let out = engine.run(&sql);
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(
            out.rows,
            vec![vec![Value::Text("f".into()), Value::Integer(3)]]
        );
    }
}
