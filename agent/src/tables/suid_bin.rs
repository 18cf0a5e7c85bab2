//! `suid_bin`: setuid and setgid regular files under the usual binary
//! directories (osquery's list, /tmp included), walked recursively.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::util::{groupnames, usernames};
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::suid_bin::TABLE as SCHEMA;

pub struct SuidBin;

/// Where osquery looks for setuid binaries.
const SEARCH_DIRS: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/tmp",
];

/// Deepest the walk descends below a search directory.
const MAX_DEPTH: usize = 64;

impl Table for SuidBin {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        scan_dirs(ctx, SEARCH_DIRS, out)
    }
}

struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

fn scan_dirs(ctx: &ScanContext<'_>, dirs: &[&str], out: &mut Vec<Row>) -> Result<(), AgentError> {
    let paths = &ctx.env().paths;
    let names = Names {
        users: if ctx.used("username") {
            usernames(&paths.etc_passwd)
        } else {
            HashMap::new()
        },
        groups: if ctx.used("groupname") {
            groupnames(&paths.etc_group)
        } else {
            HashMap::new()
        },
    };
    for dir in dirs {
        // The search directory itself may be a symlink (/bin -> usr/bin on
        // merged-/usr systems): it is listed, like osquery does.
        walk(ctx, Path::new(dir), 0, &names, out)?;
    }
    Ok(())
}

fn walk(
    ctx: &ScanContext<'_>,
    dir: &Path,
    depth: usize,
    names: &Names,
    out: &mut Vec<Row>,
) -> Result<(), AgentError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        ctx.check()?;
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        // Subdirectories are descended into, but not through symlinks.
        if file_type.is_dir() {
            if depth + 1 < MAX_DEPTH {
                walk(ctx, &path, depth + 1, names, out)?;
            }
            continue;
        }
        // A symlink counts by the file it points to, as with stat(2).
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let mode = meta.mode();
        if !meta.is_file() || mode & 0o6000 == 0 {
            continue;
        }
        let mut permissions = String::new();
        if mode & 0o4000 != 0 {
            permissions.push('S');
        }
        if mode & 0o2000 != 0 {
            permissions.push('G');
        }
        // An id without a name is shown as the number, as osquery does.
        let user = names
            .users
            .get(&meta.uid())
            .cloned()
            .unwrap_or_else(|| meta.uid().to_string());
        let group = names
            .groups
            .get(&meta.gid())
            .cloned()
            .unwrap_or_else(|| meta.gid().to_string());
        let mut row = ctx.row();
        row.set("path", path.to_string_lossy().into_owned())
            .set("username", user)
            .set("groupname", group)
            .set("permissions", permissions)
            .set("pid_with_namespace", 0i64);
        out.push(row);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, TableEnv};

    fn rows_for(dirs: &[&str]) -> BTreeMap<String, Row> {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("suid_bin", SCHEMA.columns, &budget, &env);
        let mut rows = Vec::new();
        scan_dirs(&ctx, dirs, &mut rows).unwrap();
        rows.into_iter()
            .map(|r| {
                let Some(Value::Text(p)) = r.get("path") else {
                    panic!()
                };
                (p.clone(), r)
            })
            .collect()
    }

    fn cmd(program: &str, args: &[&str]) -> String {
        let out = std::process::Command::new(program)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn matches_find_in_usr_bin() {
        // find lists setuid/setgid regular files without following symlinks;
        // the table also reports symlinks to such files, so drop those.
        let expected: Vec<String> = cmd("find", &["/usr/bin", "-perm", "/6000", "-type", "f"])
            .lines()
            .map(str::to_string)
            .collect();
        let rows = rows_for(&["/usr/bin"]);
        let mut got: Vec<String> = rows
            .keys()
            .filter(|p| {
                !std::fs::symlink_metadata(p)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            })
            .cloned()
            .collect();
        let mut expected = expected;
        expected.sort();
        got.sort();
        assert_eq!(got, expected);
        for (path, row) in &rows {
            // stat's %U/%G name the owner via NSS, independent of our passwd read.
            let owner = cmd("stat", &["-L", "-c", "%U %G", path]);
            let (u, g) = owner.trim().split_once(' ').unwrap();
            assert_eq!(row.get("username"), Some(&Value::Text(u.into())), "{path}");
            assert_eq!(row.get("groupname"), Some(&Value::Text(g.into())), "{path}");
        }
    }

    #[test]
    fn reports_bits_of_files_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("nested");
        std::fs::create_dir(&sub).unwrap();
        let cases = [
            ("plain", 0o755, None),
            ("suid", 0o4755, Some("S")),
            ("both", 0o6755, Some("SG")),
        ];
        for (name, mode, _) in cases {
            let p = sub.join(name);
            std::fs::write(&p, b"#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let sgid = dir.path().join("sgid");
        std::fs::write(&sgid, b"").unwrap();
        std::fs::set_permissions(&sgid, std::fs::Permissions::from_mode(0o2711)).unwrap();
        // A setgid directory is not a binary.
        let sgid_dir = dir.path().join("sgid_dir");
        std::fs::create_dir(&sgid_dir).unwrap();
        std::fs::set_permissions(&sgid_dir, std::fs::Permissions::from_mode(0o2755)).unwrap();

        let rows = rows_for(&[dir.path().to_str().unwrap()]);
        let got: Vec<(String, String)> = rows
            .iter()
            .map(|(p, r)| {
                let Some(Value::Text(perm)) = r.get("permissions") else {
                    panic!()
                };
                (p.clone(), perm.clone())
            })
            .collect();
        let mut expected = vec![(sgid.to_str().unwrap().to_string(), "G".to_string())];
        for (name, _, perm) in cases {
            if let Some(perm) = perm {
                expected.push((
                    sub.join(name).to_str().unwrap().to_string(),
                    perm.to_string(),
                ));
            }
        }
        expected.sort();
        assert_eq!(got, expected);
        // `stat -c %U` names the owner independently of the passwd reader.
        let owner = cmd("stat", &["-c", "%U", sgid.to_str().unwrap()]);
        assert_eq!(
            rows[sgid.to_str().unwrap()].get("username"),
            Some(&Value::Text(owner.trim().into()))
        );
    }
}
