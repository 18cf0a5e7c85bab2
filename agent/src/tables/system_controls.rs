//! `system_controls`: the kernel's sysctl settings, one row per file under
//! /proc/sys, as osquery lists them on Linux.
//!
//! - `name` is the file's path below /proc/sys with `/` turned into `.`
//!   (`net.ipv4.ip_forward`); `subsystem` its first part.
//! - `current_value` is the file's content, trimmed; NULL when it cannot be
//!   read (write-only settings such as `vm.drop_caches`, or a read error).
//! - `config_value` is the value the configuration files set at boot, empty
//!   when none does; `type` is always `string`, and `oid` always empty: Linux
//!   has no numeric MIB (the binary sysctl(2) interface osquery calls for an
//!   `oid =` look-up was removed from the kernel), so `oid = '4.30.41.1'`
//!   matches nothing.
//!
//! `name =` reads just that setting (or the settings below it) and
//! `subsystem =` one tree, as in osquery.
//!
//! osquery reads the same configuration files, /etc/sysctl.conf and the
//! `*.conf` files of /run, /etc, /usr/local/lib, /usr/lib and /lib
//! `sysctl.d`, but lets whichever it reads last win. Here they apply the
//! way `sysctl --system` and systemd-sysctl apply them (sysctl.d(5)): a file
//! name in an earlier directory of /etc, /run, /usr/local/lib, /usr/lib,
//! /lib hides the same name in later ones; the files apply in order of file
//! name, /etc/sysctl.conf last, a later setting replacing an earlier one.
//! Keys may use `/` or `.` as separators, start with `-`, and (systemd's
//! extension) use `*` and `?` globs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::system_controls::TABLE as SCHEMA;

pub struct SystemControls;

impl Table for SystemControls {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        // Every row's oid is empty: a look-up of any other oid has no rows.
        if let Some(oids) = ctx.eq_texts("oid") {
            if !oids.iter().any(|o| o.is_empty()) {
                return Ok(());
            }
        }
        let paths = &ctx.env().paths;
        let root = &paths.proc_sys;
        let config = if ctx.used("config_value") {
            Config::load(&paths.sysctl_root)
        } else {
            Config::default()
        };
        let mut leaves = Vec::new();
        if let Some(names) = ctx.eq_texts("name") {
            for name in names {
                if let Some(path) = resolve(root, &name) {
                    collect(ctx, &path, &mut leaves)?;
                }
            }
        } else {
            let subsystems = ctx.eq_texts("subsystem");
            let mut tops: Vec<PathBuf> = std::fs::read_dir(root)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            tops.sort();
            for top in tops {
                let name = top.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if subsystems
                    .as_ref()
                    .is_some_and(|s| !s.iter().any(|s| s == name))
                {
                    continue;
                }
                // osquery walks the subsystem directories only.
                if top.is_dir() {
                    collect(ctx, &top, &mut leaves)?;
                }
            }
        }
        let want_value = ctx.used("current_value");
        for path in leaves {
            ctx.check()?;
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let rel = rel.to_string_lossy();
            let name = rel.replace('/', ".");
            let value = if want_value {
                ctx.note_read("/proc/sys/<setting>");
                read_text(&path).map(|v| v.trim().to_string())
            } else {
                None
            };
            let mut row = ctx.row();
            row.set("subsystem", name.split('.').next().unwrap_or(""))
                .set("name", name.as_str())
                .set("oid", "")
                .set_opt("current_value", value)
                .set("config_value", config.value(&rel).unwrap_or_default())
                .set("type", "string");
            out.push(row);
        }
        Ok(())
    }
}

/// The settings at or below `path`: the file itself, or a directory's
/// subdirectories' settings and then its own files, sorted, as osquery
/// lists them.
fn collect(ctx: &ScanContext<'_>, path: &Path, out: &mut Vec<PathBuf>) -> Result<(), AgentError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.is_dir() {
        if meta.is_file() {
            out.push(path.to_path_buf());
        }
        return Ok(());
    }
    ctx.check()?;
    let Ok(entries) = std::fs::read_dir(path) else {
        return Ok(());
    };
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            dirs.push(e.path());
        } else {
            files.push(e.path());
        }
    }
    dirs.sort();
    files.sort();
    for d in dirs {
        collect(ctx, &d, out)?;
    }
    out.extend(files);
    Ok(())
}

/// The file or directory a dotted `name` refers to. A part of the path may
/// itself hold dots (`net.ipv4.conf.eth0.100.forwarding` is
/// `net/ipv4/conf/eth0.100/forwarding`), so at each level the longest run
/// of parts that names an entry is taken.
fn resolve(root: &Path, name: &str) -> Option<PathBuf> {
    fn walk(dir: &Path, parts: &[&str]) -> Option<PathBuf> {
        if parts.is_empty() {
            return Some(dir.to_path_buf());
        }
        (1..=parts.len()).rev().find_map(|k| {
            let entry = dir.join(parts[..k].join("."));
            if std::fs::symlink_metadata(&entry).is_ok() {
                walk(&entry, &parts[k..])
            } else {
                None
            }
        })
    }
    let parts: Vec<&str> = name.split('.').collect();
    if name.is_empty() || parts.iter().any(|p| p.is_empty() || *p == "..") {
        return None;
    }
    walk(root, &parts)
}

/// The directories of sysctl.d(5), by precedence.
const CONFIG_DIRS: &[&str] = &[
    "etc/sysctl.d",
    "run/sysctl.d",
    "usr/local/lib/sysctl.d",
    "usr/lib/sysctl.d",
    "lib/sysctl.d",
];

/// The configured settings: by path below /proc/sys, and glob patterns,
/// each with its order of application (the last applied wins).
#[derive(Debug, Default)]
struct Config {
    exact: HashMap<String, (usize, String)>,
    globs: Vec<(usize, String, String)>,
}

impl Config {
    /// Reads the configuration files under `root` (`/` in production).
    fn load(root: &Path) -> Self {
        let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
        for dir in CONFIG_DIRS {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                if name.ends_with(".conf") {
                    // An earlier directory's file of this name hides this one.
                    by_name.entry(name).or_insert_with(|| e.path());
                }
            }
        }
        let mut files: Vec<PathBuf> = by_name.into_values().collect();
        files.push(root.join("etc/sysctl.conf"));
        let mut config = Self::default();
        let mut seq = 0;
        for file in files {
            let Some(text) = read_text(&file) else {
                continue;
            };
            for (key, value) in parse(&text) {
                seq += 1;
                if key.contains(['*', '?']) {
                    config.globs.push((seq, key, value));
                } else {
                    config.exact.insert(key, (seq, value));
                }
            }
        }
        config
    }

    /// The value configured for the setting at `path` (below /proc/sys).
    fn value(&self, path: &str) -> Option<String> {
        let exact = self.exact.get(path).map(|(s, v)| (*s, v));
        let glob = self
            .globs
            .iter()
            .filter(|(_, pattern, _)| glob_match(pattern, path))
            .map(|(s, _, v)| (*s, v))
            .max_by_key(|(s, _)| *s);
        [exact, glob]
            .into_iter()
            .flatten()
            .max_by_key(|(s, _)| *s)
            .map(|(_, v)| v.clone())
    }
}

/// `key = value` lines of a sysctl configuration file, keys as paths below
/// /proc/sys. Comments start with `#` or `;`; a leading `-` (ignore
/// failures) is not part of the key.
fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with(['#', ';']) {
                return None;
            }
            let (key, value) = line.split_once('=')?;
            let key = key.trim().trim_start_matches('-').trim();
            (!key.is_empty()).then(|| (key_path(key), value.trim().to_string()))
        })
        .collect()
}

/// A key as a path: if its first separator is `/` it is one already;
/// otherwise dots are separators and slashes stand for dots in a name.
fn key_path(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'.' => key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
        _ => key.to_string(),
    }
}

/// Shell-style matching of a path: `*` any run and `?` any one character,
/// neither crossing a `/`.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Backtracking over the last star suffices for `*` and `?` patterns.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == t[ti] || (p[pi] == '?' && t[ti] != '/')) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star.filter(|(_, st)| t[*st] != '/') {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::process::Command;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::testing::{scan, scan_with, text};
    use crate::tables::{HostPaths, Op, TableEnv};

    /// `sysctl -a --deprecated` (the settings superseded by `*_ms` ones
    /// too) as name → value; a setting printed on several lines
    /// (one per line of its file) joined back with newlines.
    fn sysctl_all() -> BTreeMap<String, String> {
        let out = Command::new("sysctl")
            .args(["-a", "--deprecated"])
            .output()
            .expect("sysctl is needed: apt-get install procps");
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some((k, v)) = line
                .split_once(" = ")
                .or_else(|| line.strip_suffix(" =").map(|k| (k, "")))
            else {
                continue;
            };
            // procps writes a dot inside a name as '/'.
            let k = k.replace('/', ".");
            map.entry(k)
                .and_modify(|e| {
                    e.push('\n');
                    e.push_str(v);
                })
                .or_insert_with(|| v.to_string());
        }
        map
    }

    /// Every readable setting and its value, against procps' `sysctl -a
    /// --deprecated` run before and after the scan (values that changed in between, like
    /// `kernel.random.uuid`, are compared by name only).
    #[test]
    fn matches_sysctl_a() {
        let before = sysctl_all();
        let rows = scan(&SystemControls, &TableEnv::default());
        let after = sysctl_all();
        assert!(
            before.len() > 100,
            "sysctl -a printed {} settings",
            before.len()
        );
        let ours: BTreeMap<String, String> = rows
            .iter()
            .filter_map(|r| match r.get("current_value") {
                Some(Value::Text(v)) => Some((text(r, "name"), v.clone())),
                _ => None,
            })
            .collect();
        // procps never reads vm.stat_refresh (reading makes the kernel
        // refresh its statistics); osquery, and so this table, does.
        let only_ours: Vec<&String> = ours
            .keys()
            .filter(|k| !after.contains_key(*k) && *k != "vm.stat_refresh")
            .collect();
        let only_theirs: Vec<&String> = after.keys().filter(|k| !ours.contains_key(*k)).collect();
        assert!(
            only_ours.is_empty() && only_theirs.is_empty(),
            "only ours: {only_ours:?}; only sysctl's: {only_theirs:?}"
        );
        let mut compared = 0;
        for (name, value) in &ours {
            let (Some(b), Some(a)) = (before.get(name), after.get(name)) else {
                continue;
            };
            if b == a {
                // procps prints the value's lines trimmed of tabs at the ends.
                let trimmed = |v: &str| v.lines().map(str::trim).collect::<Vec<_>>().join("\n");
                if trimmed(value) != trimmed(a) {
                    // Counters (fs.dentry-state, fs.inode-nr, …) move with every
                    // process started, sysctl's own included, so the same value
                    // twice proves nothing: for them the shape must agree (as
                    // many integers), not the numbers.
                    let ints = |v: &str| {
                        let f: Vec<&str> = v.split_whitespace().collect();
                        f.iter()
                            .all(|x| x.parse::<i64>().is_ok())
                            .then_some(f.len())
                    };
                    assert!(
                        ints(value).is_some() && ints(value) == ints(a),
                        "{name}: ours {value:?}, sysctl's {a:?}"
                    );
                }
                compared += 1;
            }
        }
        assert!(compared > 100, "only {compared} stable settings");
        for r in &rows {
            assert_eq!(text(r, "oid"), "");
            assert_eq!(text(r, "type"), "string");
            assert_eq!(
                text(r, "subsystem"),
                text(r, "name").split('.').next().unwrap()
            );
        }
    }

    /// Look-ups by name and subsystem, against `sysctl -n`.
    #[test]
    fn looks_up_by_name_and_subsystem() {
        let t = |s: &str| Value::Text(s.into());
        let rows = scan_with(
            &SystemControls,
            &TableEnv::default(),
            &[(
                "name",
                Op::Eq,
                vec![
                    t("kernel.ostype"),
                    t("net.ipv4.ip_forward"),
                    t("no.such.thing"),
                ],
            )],
        );
        let got: Vec<(String, String)> = rows
            .iter()
            .map(|r| (text(r, "name"), text(r, "current_value")))
            .collect();
        let n = |k: &str| {
            let out = Command::new("sysctl")
                .args(["-n", k])
                .output()
                .expect("sysctl: apt-get install procps");
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        assert_eq!(
            got,
            vec![
                ("kernel.ostype".into(), n("kernel.ostype")),
                ("net.ipv4.ip_forward".into(), n("net.ipv4.ip_forward")),
            ]
        );
        let rows = scan_with(
            &SystemControls,
            &TableEnv::default(),
            &[("subsystem", Op::Eq, vec![t("vm")])],
        );
        assert!(rows.len() > 10);
        assert!(rows.iter().all(|r| text(r, "name").starts_with("vm.")));
        let rows = scan_with(
            &SystemControls,
            &TableEnv::default(),
            &[("oid", Op::Eq, vec![t("4.30.41.1")])],
        );
        assert!(rows.is_empty());
    }

    /// A /proc/sys and configuration files written here; the expected
    /// config values worked out by hand from sysctl.d(5)'s rules.
    #[test]
    fn applies_configuration_files_in_order() {
        let root = tempfile::tempdir().unwrap();
        let w = |rel: &str, text: &str| {
            let p = root.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w("proc/sys/net/ipv4/ip_forward", "0\n");
        w("proc/sys/net/ipv4/conf/eth0.100/forwarding", "1\n");
        w("proc/sys/net/ipv4/conf/all/rp_filter", "2\n");
        w("proc/sys/net/ipv4/conf/lo/rp_filter", "0\n");
        w("proc/sys/kernel/printk", "4\t4\t1\t7\n");
        w("proc/sys/kernel/pid_max", "4194304\n");
        w("proc/sys/vm/swappiness", "60\n");
        w("proc/sys/fs/protected_fifos", "1\n");
        // /usr/lib's 50-default.conf is hidden by /etc's file of that name.
        w(
            "etc/root/usr/lib/sysctl.d/50-default.conf",
            "net.ipv4.conf.*.rp_filter = 2\nvm.swappiness=10\nkernel.pid_max = 32768\n",
        );
        w(
            "etc/root/etc/sysctl.d/50-default.conf",
            "net.ipv4.conf.all.rp_filter = 1\n",
        );
        w(
            "etc/root/usr/lib/sysctl.d/60-glob.conf",
            "net.ipv4.conf.*.rp_filter = 0\n; comment\n# comment\n",
        );
        w(
            "etc/root/run/sysctl.d/70-run.conf",
            "-net/ipv4/conf/eth0.100/forwarding = 0\nkernel.printk = 3 4 1 3\n",
        );
        w(
            "etc/root/lib/sysctl.d/99-protect.conf",
            "fs.protected_fifos = 1\nnot a setting\n",
        );
        w("etc/root/etc/sysctl.d/README", "vm.swappiness = 1\n");
        w(
            "etc/root/etc/sysctl.conf",
            "net.ipv4.ip_forward=1\n  kernel.pid_max= 65536  \n",
        );
        let env = TableEnv {
            paths: HostPaths {
                proc_sys: root.path().join("proc/sys"),
                sysctl_root: root.path().join("etc/root"),
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        let rows = scan(&SystemControls, &env);
        let got: Vec<(String, String, String, String)> = rows
            .iter()
            .map(|r| {
                (
                    text(r, "name"),
                    text(r, "subsystem"),
                    text(r, "current_value"),
                    text(r, "config_value"),
                )
            })
            .collect();
        let e = |a: &str, b: &str, c: &str, d: &str| {
            (a.to_string(), b.to_string(), c.to_string(), d.to_string())
        };
        assert_eq!(
            got,
            vec![
                e("fs.protected_fifos", "fs", "1", "1"),
                e("kernel.pid_max", "kernel", "4194304", "65536"),
                e("kernel.printk", "kernel", "4\t4\t1\t7", "3 4 1 3"),
                e("net.ipv4.conf.all.rp_filter", "net", "2", "0"),
                e("net.ipv4.conf.eth0.100.forwarding", "net", "1", "0"),
                e("net.ipv4.conf.lo.rp_filter", "net", "0", "0"),
                e("net.ipv4.ip_forward", "net", "0", "1"),
                e("vm.swappiness", "vm", "60", ""),
            ]
        );
        // A name with a dot inside one of its parts is found.
        let t = |s: &str| Value::Text(s.into());
        let rows = scan_with(
            &SystemControls,
            &env,
            &[("name", Op::Eq, vec![t("net.ipv4.conf.eth0.100.forwarding")])],
        );
        assert_eq!(rows.len(), 1);
        // A directory's name lists what is below it (SQLite then drops them).
        let rows = scan_with(
            &SystemControls,
            &env,
            &[("name", Op::Eq, vec![t("net.ipv4.conf")])],
        );
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn globs_and_keys() {
        assert!(glob_match(
            "net/ipv4/conf/*/rp_filter",
            "net/ipv4/conf/eth0/rp_filter"
        ));
        assert!(!glob_match(
            "net/ipv4/conf/*/rp_filter",
            "net/ipv4/conf/a/b/rp_filter"
        ));
        assert!(glob_match("kernel/pid_ma?", "kernel/pid_max"));
        assert!(glob_match("vm/*", "vm/swappiness"));
        assert!(!glob_match("vm/*", "vm/a/b"));
        assert_eq!(
            key_path("net.ipv4.conf.eth0/100.forwarding"),
            "net/ipv4/conf/eth0.100/forwarding"
        );
        assert_eq!(
            key_path("net/ipv4/conf/eth0.100/forwarding"),
            "net/ipv4/conf/eth0.100/forwarding"
        );
    }

    #[test]
    fn ip_forwarding_pack_query_runs() {
        // Linux has no numeric MIB: no row has an oid.
        let rows = super::super::sysfs::run_pack_query("incident-response", "ip_forwarding");
        assert!(rows.is_empty(), "{rows:?}");
    }
}
