//! `portage_packages`: the packages Portage (Gentoo) has installed, from its
//! database of installed packages, `/var/db/pkg/<category>/<name>-<version>/`,
//! as osquery reads it: `package` is `category/name`, `version` the version
//! with its revision (`2.37-r3`), and `slot`, `build_time`, `repository`,
//! `eapi` and `size` the contents of the files `SLOT`, `BUILD_TIME`,
//! `repository`, `EAPI` and `SIZE` (NULL when absent, or not a number for
//! the number columns). `world` is 1 when the package is in the world file
//! (`/var/lib/portage/world`), the set the administrator asked for.
//!
//! No database (not Gentoo): no rows. Unlike osquery, a missing world file
//! does not hide every package (they are listed with `world` 0), and world
//! entries with a slot or repository (`dev-lang/python:3.11`) count for
//! their package.

use std::io::Read;
use std::path::Path;

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::portage_packages::TABLE as SCHEMA;

pub struct PortagePackages;

/// The most read of one small database file.
const MAX_VALUE_BYTES: u64 = 64 * 1024;

impl Table for PortagePackages {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let paths = &ctx.env().paths;
        let db = &paths.portage_db;
        if !db.is_dir() {
            return Ok(());
        }
        let world = read_small(&paths.portage_world)
            .map(|text| world_set(&text))
            .unwrap_or_default();
        for category in subdirs(db) {
            for entry in subdirs(&db.join(&category)) {
                ctx.check()?;
                let dir = db.join(&category).join(&entry);
                let (package, version) = split_atom(&format!("{category}/{entry}"));
                let text = |file: &str| read_small(&dir.join(file)).map(|t| t.trim().to_string());
                let number = |file: &str| text(file).and_then(|t| t.parse::<i64>().ok());
                let mut row = ctx.row();
                row.set("world", world.contains(&package))
                    .set("package", package)
                    .set("version", version)
                    .set_opt("slot", text("SLOT"))
                    .set_opt("build_time", number("BUILD_TIME"))
                    .set_opt("repository", text("repository"))
                    .set_opt("eapi", number("EAPI"))
                    .set_opt("size", number("SIZE"));
                out.push(row);
            }
        }
        Ok(())
    }
}

/// Subdirectories of a directory of the database, sorted (links are not
/// followed: Portage writes none there).
fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn read_small(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_VALUE_BYTES).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Splits `category/name-version` (optionally with leading version
/// operators, which are dropped) into `category/name` and the version: the
/// version starts after the last `-` that is followed by a digit, looking
/// at the last two `-` only, so that a revision (`-r3`) stays with it.
fn split_atom(atom: &str) -> (String, String) {
    let atom = atom.trim_end_matches('/');
    let atom = atom.trim_start_matches(['>', '<', '=', '~']);
    let slash = atom.find('/').map_or(0, |i| i + 1);
    let starts_version =
        |i: usize| i >= slash && atom[i + 1..].starts_with(|c: char| c.is_ascii_digit());
    let mut dashes = atom
        .char_indices()
        .rev()
        .filter(|(_, c)| *c == '-')
        .map(|(i, _)| i);
    for i in dashes.by_ref().take(2) {
        if starts_version(i) {
            return (atom[..i].to_string(), atom[i + 1..].to_string());
        }
    }
    (atom.to_string(), String::new())
}

/// The packages named in the world file: one atom per line, `#` comments.
fn world_set(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| !w.starts_with('#'))
        .map(|w| {
            // `cat/pkg:slot`, `cat/pkg::repo`: the package.
            let w = w.split(':').next().unwrap_or(w);
            split_atom(w).0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rusqlite::types::Value;

    use super::*;
    use crate::engine::{Engine, Limits};
    use crate::tables::testing::{pack_query, scan};
    use crate::tables::{HostPaths, Registry, TableEnv};

    #[test]
    fn splits_atoms_as_portage_names_them() {
        let s = |a: &str| split_atom(a);
        let p = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(s("sys-libs/glibc-2.37-r3"), p("sys-libs/glibc", "2.37-r3"));
        assert_eq!(
            s("dev-lang/python-3.11.8_p1"),
            p("dev-lang/python", "3.11.8_p1")
        );
        assert_eq!(
            s("media-fonts/font-adobe-100dpi-1.0.4"),
            p("media-fonts/font-adobe-100dpi", "1.0.4")
        );
        assert_eq!(
            s("x11-libs/gtk+-3.24.41-r1/"),
            p("x11-libs/gtk+", "3.24.41-r1")
        );
        assert_eq!(
            s(">=dev-libs/openssl-3.0.13"),
            p("dev-libs/openssl", "3.0.13")
        );
        assert_eq!(s("app-misc/foo-bar"), p("app-misc/foo-bar", ""));
        assert_eq!(s("app-misc/2048"), p("app-misc/2048", ""));
    }

    use crate::tables::testing::write_file as write;

    /// A database of three packages, two of them in the world set.
    fn fixture() -> (tempfile::TempDir, TableEnv) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pkg");
        let glibc = db.join("sys-libs/glibc-2.37-r3");
        write(&glibc.join("SLOT"), "2.2\n");
        write(&glibc.join("BUILD_TIME"), "1700000000\n");
        write(&glibc.join("repository"), "gentoo\n");
        write(&glibc.join("EAPI"), "8\n");
        write(&glibc.join("SIZE"), "48123904\n");
        write(&glibc.join("USE"), "multilib ssp\n");
        let python = db.join("dev-lang/python-3.11.8_p1");
        write(&python.join("SLOT"), "3.11/3.11\n");
        write(&python.join("EAPI"), "eight\n");
        std::fs::create_dir_all(db.join("app-misc/foo-bar-1.0")).unwrap();
        // A stray file in a category is not a package.
        write(&db.join("app-misc/README"), "x");
        let world = dir.path().join("world");
        write(
            &world,
            "# the world\ndev-lang/python:3.11\n\napp-misc/foo-bar\n",
        );
        let env = TableEnv {
            paths: HostPaths {
                portage_db: db,
                portage_world: world,
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        (dir, env)
    }

    #[test]
    fn reads_a_portage_database() {
        let (dir, mut env) = fixture();
        let t = |s: &str| Value::Text(s.into());
        let i = Value::Integer;
        let n = || Value::Null;
        let expected = vec![
            vec![
                t("app-misc/foo-bar"),
                t("1.0"),
                n(),
                n(),
                n(),
                n(),
                n(),
                i(1),
            ],
            vec![
                t("dev-lang/python"),
                t("3.11.8_p1"),
                t("3.11/3.11"),
                n(),
                n(),
                n(),
                n(),
                i(1),
            ],
            vec![
                t("sys-libs/glibc"),
                t("2.37-r3"),
                t("2.2"),
                i(1_700_000_000),
                t("gentoo"),
                i(8),
                i(48_123_904),
                i(0),
            ],
        ];
        let values = |rows: Vec<Row>| -> Vec<Vec<Value>> {
            rows.iter().map(|r| r.values().to_vec()).collect()
        };
        assert_eq!(values(scan(&PortagePackages, &env)), expected);

        // No world file: the same packages, none in the world set.
        env.paths.portage_world = dir.path().join("missing");
        let rows = values(scan(&PortagePackages, &env));
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r[7] == i(0)));
    }

    #[test]
    fn no_database_no_rows() {
        let rows = scan(&PortagePackages, &TableEnv::default());
        if !Path::new("/var/db/pkg").exists() {
            assert!(rows.is_empty());
        }
    }

    #[test]
    fn osquery_pack_query_runs() {
        let sql = pack_query("vuln-management", "portage_packages");
        let (_dir, env) = fixture();
        let engine = Engine::new(Arc::new(Registry::new(env)), Limits::default());
        let out = engine.run(&sql);
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.rows.len(), 3);
        assert_eq!(
            out.columns,
            [
                "package",
                "version",
                "slot",
                "build_time",
                "repository",
                "eapi",
                "size",
                "world"
            ]
        );
    }
}
