//! `acpi_tables`: the firmware's ACPI tables the kernel exposes under
//! `<sysfs>/firmware/acpi/tables` (DSDT, FACP, APIC, SSDT1, …), each with
//! its size and the MD5 of its content. The files are readable by root
//! only; a table that cannot be read is left out.
//!
//! Differences from osquery: osquery lists only the directory's top-level
//! files (its code means to descend into the `dynamic/` and `data/`
//! directories, but the listing it uses returns files only); here their
//! tables are listed too, by file name, so tables the OS loaded at run time
//! (dynamic SSDTs) are seen. And osquery keeps an unreadable table with
//! size -1 and no md5, where this table leaves it out.

use std::path::Path;

use md5::{Digest, Md5};

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::acpi_tables::TABLE as SCHEMA;

pub struct AcpiTables;

impl Table for AcpiTables {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let dir = ctx.env().paths.sysfs.join("firmware/acpi/tables");
        walk(ctx, &dir, 0, out)
    }
}

/// The tables in `dir`: its files, then those of its subdirectories.
fn walk(
    ctx: &ScanContext<'_>,
    dir: &Path,
    depth: usize,
    out: &mut Vec<Row>,
) -> Result<(), AgentError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for e in entries.flatten() {
        match std::fs::metadata(e.path()) {
            Ok(m) if m.is_file() => files.push(e.path()),
            Ok(m) if m.is_dir() => dirs.push(e.path()),
            _ => {}
        }
    }
    files.sort();
    dirs.sort();
    for path in files {
        ctx.check()?;
        // Root only; or gone since the listing.
        let Ok(content) = std::fs::read(&path) else {
            continue;
        };
        ctx.note_read("/sys/firmware/acpi/tables/<table>");
        let mut row = ctx.row();
        row.set(
            "name",
            path.file_name().map(|n| n.to_string_lossy().into_owned()),
        )
        .set("size", content.len())
        .set("md5", hex::encode(Md5::digest(&content)));
        out.push(row);
    }
    // sysfs nests one level (dynamic/, data/); a bound keeps a fixture or a
    // strange mount from recursing forever.
    if depth < 4 {
        for sub in dirs {
            walk(ctx, &sub, depth + 1, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::testing::{int, scan, text};
    use crate::tables::{HostPaths, TableEnv};

    /// `md5sum`'s digest of a file.
    fn md5sum(path: &Path) -> String {
        let out = Command::new("md5sum")
            .arg(path)
            .output()
            .expect("md5sum is needed: apt-get install coreutils");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }

    /// This host's tables against md5sum and the file sizes; when not root
    /// (the files are 0400), none are readable and the table is empty.
    #[test]
    fn matches_md5sum() {
        let rows = scan(&AcpiTables, &TableEnv::default());
        let dir = Path::new("/sys/firmware/acpi/tables");
        let mut expected = Vec::new();
        for sub in ["", "dynamic", "data"] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            let mut names: Vec<_> = entries
                .flatten()
                .filter(|e| e.file_type().unwrap().is_file())
                .map(|e| e.path())
                .collect();
            names.sort();
            for path in names {
                if std::fs::File::open(&path).is_err() {
                    continue;
                }
                let size = std::fs::read(&path).unwrap().len() as i64;
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                expected.push((name, size, md5sum(&path)));
            }
        }
        let got: Vec<(String, i64, String)> = rows
            .iter()
            .map(|r| (text(r, "name"), int(r, "size"), text(r, "md5")))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn reads_nested_tables_and_skips_unreadable_ones() {
        let root = tempfile::tempdir().unwrap();
        let tables = root.path().join("firmware/acpi/tables");
        std::fs::create_dir_all(tables.join("dynamic")).unwrap();
        std::fs::create_dir_all(tables.join("data")).unwrap();
        std::fs::write(tables.join("FACP"), b"FACP\x14\x01\x00\x00\x06").unwrap();
        std::fs::write(tables.join("dynamic/SSDT2"), b"SSDT dynamic").unwrap();
        // A table no one may read, root included (sysctl enforces modes).
        std::os::unix::fs::symlink("/proc/sys/vm/drop_caches", tables.join("SECRET")).unwrap();
        assert!(std::fs::read(tables.join("SECRET")).is_err());
        let env = TableEnv {
            paths: HostPaths {
                sysfs: root.path().to_path_buf(),
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        let rows = scan(&AcpiTables, &env);
        let got: Vec<Vec<Value>> = rows.iter().map(|r| r.values().to_vec()).collect();
        let t = |s: &str| Value::Text(s.into());
        assert_eq!(
            got,
            vec![
                vec![
                    t("FACP"),
                    Value::Integer(9),
                    t(&md5sum(&tables.join("FACP")))
                ],
                vec![
                    t("SSDT2"),
                    Value::Integer(12),
                    t(&md5sum(&tables.join("dynamic/SSDT2")))
                ],
            ]
        );
    }

    #[test]
    fn pack_query_runs() {
        let rows = super::super::sysfs::run_pack_query("hardware-monitoring", "acpi_tables");
        assert_eq!(rows.len(), scan(&AcpiTables, &TableEnv::default()).len());
    }
}
