//! `rpm_packages`: the packages in the RPM database. Rather than link
//! librpm, the table asks the `rpm` program (`rpm -qa --dbpath … --qf …`).
//! A host without an RPM database, or without `rpm`, has no rows.

use std::ffi::OsStr;
use std::path::Path;

use super::systemd_units::run;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::rpm_packages::TABLE as SCHEMA;

pub struct RpmPackages;

/// The tags asked for, in the order `parse_output` reads them.
const QUERY_FORMAT: &str =
    "%{NAME}\\t%{VERSION}\\t%{RELEASE}\\t%{SOURCERPM}\\t%{SIZE}\\t%{SHA1HEADER}\\t\
%{ARCH}\\t%{EPOCH}\\t%{INSTALLTIME}\\t%{VENDOR}\\t%{GROUP}\\n";

impl Table for RpmPackages {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let db = &ctx.env().paths.rpm_db;
        let Some(text) = query_rpm(ctx, "rpm", db)? else {
            return Ok(());
        };
        let names = ctx.eq_texts("name");
        for fields in parse_output(&text) {
            ctx.check()?;
            // SQLite re-checks every constraint; names are filtered early only
            // to skip building rows nobody asked for.
            if names
                .as_ref()
                .is_some_and(|n| !n.iter().any(|n| n == fields[0]))
            {
                continue;
            }
            out.push(package_row(ctx, &fields));
        }
        Ok(())
    }
}

/// `rpm -qa` output for the database in `db`, or `None` when there is no
/// database or `program` cannot run.
fn query_rpm(
    ctx: &ScanContext<'_>,
    program: &str,
    db: &Path,
) -> Result<Option<String>, AgentError> {
    if !db.is_dir() {
        return Ok(None);
    }
    let args = [
        OsStr::new("--dbpath"),
        db.as_os_str(),
        OsStr::new("-qa"),
        OsStr::new("--qf"),
        OsStr::new(QUERY_FORMAT),
    ];
    run(ctx, program, &args)
}

/// The 11 tab-separated fields of each output line.
fn parse_output(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f.len() == 11)
}

fn package_row(ctx: &ScanContext<'_>, f: &[&str]) -> Row {
    // rpm prints "(none)" for an absent tag: empty text, NULL number.
    let text = |s: &str| {
        if s == "(none)" {
            String::new()
        } else {
            s.to_string()
        }
    };
    let number = |s: &str| s.parse::<i64>().ok();
    let mut row = ctx.row();
    row.set("name", text(f[0]))
        .set("version", text(f[1]))
        .set("release", text(f[2]))
        .set("source", text(f[3]))
        .set_opt("size", number(f[4]))
        .set("sha1", text(f[5]))
        .set("arch", text(f[6]))
        .set_opt("epoch", number(f[7]))
        .set_opt("install_time", number(f[8]))
        .set("vendor", text(f[9]))
        .set("package_group", text(f[10]))
        .set("pid_with_namespace", 0i64);
    row
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, HostPaths, TableEnv};

    #[test]
    fn absent_database_gives_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let env = TableEnv {
            paths: HostPaths {
                rpm_db: dir.path().join("no-rpm-db"),
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        let budget = Budget::unlimited();
        let mut rows = Vec::new();
        RpmPackages
            .generate(
                &ScanContext::all("rpm_packages", SCHEMA.columns, &budget, &env),
                &mut rows,
            )
            .unwrap();
        assert!(rows.is_empty());
        // A program that is not there is no error either.
        let ctx = ScanContext::all("rpm_packages", SCHEMA.columns, &budget, &env);
        assert_eq!(
            query_rpm(&ctx, "/nonexistent/rpm", dir.path()).unwrap(),
            None
        );
    }

    /// With a stand-in `rpm` that checks its arguments and prints what the
    /// real one would, every field lands in its column.
    #[test]
    fn maps_rpm_output() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("rpmdb");
        std::fs::create_dir(&db).unwrap();
        let fake = dir.path().join("rpm");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\n\
                 [ \"$1\" = --dbpath ] && [ \"$2\" = '{}' ] && [ \"$3\" = -qa ] || exit 3\n\
                 printf 'bash\\t5.1.8\\t9.el9\\tbash-5.1.8-9.el9.src.rpm\\t7738634\\tabc123\\tx86_64\\t(none)\\t1700000000\\tRocky\\tUnspecified\\n'\n\
                 printf 'gpg-pubkey\\t8483c65d\\t5ccc5b19\\t(none)\\t0\\t(none)\\t(none)\\t(none)\\t1700000001\\t(none)\\tPublic Keys\\n'\n\
                 printf 'perl-Foo\\t1.0\\t1\\tperl-Foo-1.0-1.src.rpm\\t10\\tdef\\tnoarch\\t4\\t1700000002\\tRocky\\tUnspecified\\n'\n",
                db.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

        let env = TableEnv::default();
        let budget = Budget::unlimited();
        let ctx = ScanContext::all("rpm_packages", SCHEMA.columns, &budget, &env);
        let text = query_rpm(&ctx, fake.to_str().unwrap(), &db)
            .unwrap()
            .expect("fake rpm runs");
        let rows: Vec<Row> = parse_output(&text).map(|f| package_row(&ctx, &f)).collect();
        assert_eq!(rows.len(), 3);
        let t = |s: &str| Value::Text(s.to_string());
        assert_eq!(
            rows[0].values()[..11],
            [
                t("bash"),
                t("5.1.8"),
                t("9.el9"),
                t("bash-5.1.8-9.el9.src.rpm"),
                Value::Integer(7738634),
                t("abc123"),
                t("x86_64"),
                Value::Null,
                Value::Integer(1700000000),
                t("Rocky"),
                t("Unspecified"),
            ]
        );
        assert_eq!(rows[1].get("source"), Some(&t("")));
        assert_eq!(rows[1].get("arch"), Some(&t("")));
        assert_eq!(rows[2].get("epoch"), Some(&Value::Integer(4)));
    }
}
