//! `deb_packages`: the packages dpkg knows, from its database's `status` file
//! plus any not-yet-merged journal entries in `updates/`, as libdpkg reads
//! them. Packages in the `not-installed` state (purged) are left out, like
//! `dpkg-query -W` and osquery do. `admindir = D` reads the database in D
//! instead of the default one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::deb_packages::TABLE as SCHEMA;

pub struct DebPackages;

impl Table for DebPackages {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let status = &ctx.env().paths.dpkg_status;
        let dbs: Vec<(String, PathBuf)> = match ctx.eq_texts("admindir") {
            Some(dirs) => dirs
                .into_iter()
                .map(|d| (d.clone(), Path::new(&d).join("status")))
                .collect(),
            None => vec![(
                status
                    .parent()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                status.clone(),
            )],
        };
        for (admindir, status_file) in dbs {
            ctx.check()?;
            // No database there: no rows.
            for pkg in read_database(&status_file) {
                out.push(package_row(ctx, &pkg, &admindir));
            }
        }
        Ok(())
    }
}

/// One stanza of the status file: field name → value (continuation lines
/// joined with '\n').
type Stanza = BTreeMap<String, String>;

fn parse_stanzas(text: &str) -> Vec<Stanza> {
    let mut out = Vec::new();
    let mut current = Stanza::new();
    let mut last_field: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            last_field = None;
        } else if line.starts_with([' ', '\t']) {
            if let Some(value) = last_field.as_ref().and_then(|f| current.get_mut(f)) {
                value.push('\n');
                value.push_str(line.trim_start());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current.insert(name.to_string(), value.trim().to_string());
            last_field = Some(name.to_string());
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The packages of the database whose status file is `status_file`: the
/// status file's records, replaced by newer records from the `updates/`
/// journal (files named by number, applied in order), minus purged ones.
fn read_database(status_file: &Path) -> Vec<Stanza> {
    let Some(text) = read_text(status_file) else {
        return Vec::new();
    };
    // Keyed by (name, arch): a multi-arch package may be there once per arch.
    let mut packages: BTreeMap<(String, String), Stanza> = BTreeMap::new();
    let mut add = |stanza: Stanza| {
        let Some(name) = stanza.get("Package").cloned() else {
            return;
        };
        let arch = stanza.get("Architecture").cloned().unwrap_or_default();
        packages.insert((name, arch), stanza);
    };
    parse_stanzas(&text).into_iter().for_each(&mut add);
    let updates = status_file.with_file_name("updates");
    if let Ok(entries) = std::fs::read_dir(&updates) {
        let mut journal: Vec<(u64, PathBuf)> = entries
            .filter_map(|e| {
                let e = e.ok()?;
                let n = e.file_name().to_str()?.parse().ok()?;
                Some((n, e.path()))
            })
            .collect();
        journal.sort();
        for (_, path) in journal {
            if let Some(text) = read_text(&path) {
                parse_stanzas(&text).into_iter().for_each(&mut add);
            }
        }
    }
    packages
        .into_values()
        .filter(|s| {
            let state = s.get("Status").and_then(|st| st.split_whitespace().nth(2));
            state.is_some_and(|st| st != "not-installed")
        })
        .collect()
}

fn package_row(ctx: &ScanContext<'_>, pkg: &Stanza, admindir: &str) -> Row {
    let field = |name: &str| pkg.get(name).cloned();
    let version = field("Version").unwrap_or_default();
    // The Debian revision is what follows the last '-', if any.
    let revision = version
        .rsplit_once('-')
        .map(|(_, r)| r.to_string())
        .unwrap_or_default();
    let mut row = ctx.row();
    row.set_opt("name", field("Package"))
        .set("version", &version)
        .set("source", field("Source").unwrap_or_default())
        .set_opt(
            "size",
            field("Installed-Size").and_then(|s| s.parse::<i64>().ok()),
        )
        .set("arch", field("Architecture").unwrap_or_default())
        .set("revision", revision)
        .set("status", field("Status").unwrap_or_default())
        .set("maintainer", field("Maintainer").unwrap_or_default())
        .set("section", field("Section").unwrap_or_default())
        .set("priority", field("Priority").unwrap_or_default())
        .set("admindir", admindir)
        .set("pid_with_namespace", 0i64);
    row
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::testing::text;
    use crate::tables::{Budget, HostPaths, Op, TableEnv};

    /// The live database against dpkg-query, which reads it with libdpkg.
    #[test]
    fn matches_dpkg_query() {
        let Ok(out) = std::process::Command::new("dpkg-query")
            .args([
                "-W",
                "-f",
                "${Package}\t${Version}\t${Architecture}\t${Installed-Size}\t${Status}\n",
            ])
            .output()
        else {
            return; // not a dpkg system
        };
        assert!(out.status.success());
        let expected: BTreeSet<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert!(!expected.is_empty());

        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let mut rows = Vec::new();
        DebPackages
            .generate(
                &ScanContext::all("deb_packages", SCHEMA.columns, &budget, &env),
                &mut rows,
            )
            .unwrap();
        let got: BTreeSet<String> = rows
            .iter()
            .map(|r| {
                let size = match r.get("size") {
                    Some(Value::Integer(i)) => i.to_string(),
                    _ => String::new(),
                };
                format!(
                    "{}\t{}\t{}\t{}\t{}",
                    text(r, "name"),
                    text(r, "version"),
                    text(r, "arch"),
                    size,
                    text(r, "status")
                )
            })
            .collect();
        assert_eq!(got, expected);
        assert!(rows.iter().all(|r| text(r, "admindir") == "/var/lib/dpkg"));
    }

    #[test]
    fn reads_a_given_admindir_with_journal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("updates")).unwrap();
        std::fs::write(
            dir.path().join("status"),
            "Package: libfoo1\n\
             Status: install ok installed\n\
             Priority: optional\n\
             Section: libs\n\
             Installed-Size: 120\n\
             Maintainer: Foo Team <foo@example.org>\n\
             Architecture: amd64\n\
             Multi-Arch: same\n\
             Source: foo (1:2.0-3)\n\
             Version: 1:2.0-3+deb12u1\n\
             Description: the foo library\n\
             \x20more text\n\
             \n\
             Package: libfoo1\n\
             Status: install ok installed\n\
             Architecture: i386\n\
             Version: 1:2.0-3+deb12u1\n\
             \n\
             Package: gone\n\
             Status: purge ok not-installed\n\
             Architecture: all\n\
             \n\
             Package: oldconf\n\
             Status: deinstall ok config-files\n\
             Architecture: all\n\
             Version: 5\n\
             \n\
             Package: upgrading\n\
             Status: install ok unpacked\n\
             Architecture: all\n\
             Version: 1.0-1\n",
        )
        .unwrap();
        // dpkg journals a change here until it rewrites the status file.
        std::fs::write(
            dir.path().join("updates/0001"),
            "Package: upgrading\nStatus: install ok installed\nArchitecture: all\nVersion: 1.1-1\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("updates/tmp.i"),
            "Package: junk\nStatus: install ok installed\n",
        )
        .unwrap();

        let env = TableEnv {
            paths: HostPaths {
                dpkg_status: PathBuf::from("/nonexistent/status"),
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        let budget = Budget::unlimited();
        let admindir = dir.path().to_str().unwrap();
        let ctx = ScanContext::all("deb_packages", SCHEMA.columns, &budget, &env).with_constraint(
            "admindir",
            Op::Eq,
            vec![Value::Text(admindir.into())],
        );
        let mut rows = Vec::new();
        DebPackages.generate(&ctx, &mut rows).unwrap();
        let got: Vec<(String, String, String, String)> = rows
            .iter()
            .map(|r| {
                (
                    text(r, "name"),
                    text(r, "arch"),
                    text(r, "version"),
                    text(r, "status"),
                )
            })
            .collect();
        let e = |a: &str, b: &str, c: &str, d: &str| (a.into(), b.into(), c.into(), d.into());
        assert_eq!(
            got,
            vec![
                e(
                    "libfoo1",
                    "amd64",
                    "1:2.0-3+deb12u1",
                    "install ok installed"
                ),
                e("libfoo1", "i386", "1:2.0-3+deb12u1", "install ok installed"),
                e("oldconf", "all", "5", "deinstall ok config-files"),
                e("upgrading", "all", "1.1-1", "install ok installed"),
            ]
        );
        let foo = &rows[0];
        assert_eq!(text(foo, "revision"), "3+deb12u1");
        assert_eq!(text(foo, "source"), "foo (1:2.0-3)");
        assert_eq!(foo.get("size"), Some(&Value::Integer(120)));
        assert_eq!(text(foo, "maintainer"), "Foo Team <foo@example.org>");
        assert_eq!(text(foo, "section"), "libs");
        assert_eq!(text(foo, "priority"), "optional");
        assert_eq!(text(foo, "admindir"), admindir);
        assert_eq!(text(&rows[2], "revision"), "");

        // The default database path, when absent, gives no rows.
        let mut rows = Vec::new();
        DebPackages
            .generate(
                &ScanContext::all("deb_packages", SCHEMA.columns, &budget, &env),
                &mut rows,
            )
            .unwrap();
        assert!(rows.is_empty());
    }
}
