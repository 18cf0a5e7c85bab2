//! `hash`: MD5, SHA-1 and SHA-256 of the regular files a query names, with
//! the same required `path`/`directory` constraints and pattern expansion as
//! `file`. Files are streamed in chunks, and only the digests the query reads
//! are computed.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::file::{targets, Target};
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::hash::TABLE as SCHEMA;

pub struct Hash;

const CHUNK: usize = 64 * 1024;

impl Table for Hash {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let want = Wanted {
            md5: ctx.used("md5"),
            sha1: ctx.used("sha1"),
            sha256: ctx.used("sha256"),
        };
        for Target { path, directory } in targets(ctx)? {
            ctx.check()?;
            // Only regular files (a symlink counts by what it points to).
            if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                continue;
            }
            let mut row = ctx.row();
            row.set("path", &path)
                .set("directory", &directory)
                .set("pid_with_namespace", 0i64);
            // An unreadable file keeps its row, with NULL digests.
            if let Some(d) = digest_file(ctx, &path, want)? {
                row.set_opt("md5", d.md5)
                    .set_opt("sha1", d.sha1)
                    .set_opt("sha256", d.sha256);
            }
            out.push(row);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Wanted {
    md5: bool,
    sha1: bool,
    sha256: bool,
}

#[derive(Debug, Default)]
struct Digests {
    md5: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
}

/// The wanted digests of the file at `path`, read once in chunks; `None` when
/// it cannot be read. Stops with the query's budget.
fn digest_file(
    ctx: &ScanContext<'_>,
    path: &str,
    want: Wanted,
) -> Result<Option<Digests>, AgentError> {
    if !(want.md5 || want.sha1 || want.sha256) {
        return Ok(Some(Digests::default()));
    }
    // Without blocking, and regular files only: a FIFO or a device met by a
    // `LIKE` expansion (`/home/%%`) would otherwise hang or never end.
    let Ok(mut file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    else {
        return Ok(None);
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let mut md5 = want.md5.then(Md5::new);
    let mut sha1 = want.sha1.then(Sha1::new);
    let mut sha256 = want.sha256.then(Sha256::new);
    let mut buf = vec![0u8; CHUNK];
    loop {
        ctx.check()?;
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(None),
        };
        let chunk = &buf[..n];
        if let Some(h) = md5.as_mut() {
            h.update(chunk);
        }
        if let Some(h) = sha1.as_mut() {
            h.update(chunk);
        }
        if let Some(h) = sha256.as_mut() {
            h.update(chunk);
        }
    }
    Ok(Some(Digests {
        md5: md5.map(|h| hex::encode(h.finalize())),
        sha1: sha1.map(|h| hex::encode(h.finalize())),
        sha256: sha256.map(|h| hex::encode(h.finalize())),
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rusqlite::types::Value;

    use super::*;
    use crate::engine::{Engine, Limits};
    use crate::tables::{Budget, Op, Registry, TableEnv};

    fn scan(column: &str, op: Op, value: &str) -> Vec<Row> {
        let value = vec![Value::Text(value.to_string())];
        crate::tables::testing::scan_with(&Hash, &TableEnv::default(), &[(column, op, value)])
    }

    /// The digest coreutils' `<tool>` prints for `path`.
    fn coreutils(tool: &str, path: &str) -> Value {
        let out = std::process::Command::new(tool).arg(path).output().unwrap();
        assert!(out.status.success(), "{tool}");
        let text = String::from_utf8(out.stdout).unwrap();
        Value::Text(text.split_whitespace().next().unwrap().to_string())
    }

    #[test]
    fn digests_match_coreutils() {
        let dir = tempfile::tempdir().unwrap();
        // Larger than one chunk, and not a multiple of it.
        let big: Vec<u8> = (0..(3 * CHUNK + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        std::fs::write(dir.path().join("big.bin"), &big).unwrap();
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        std::fs::write(dir.path().join("small.txt"), b"sweep\n").unwrap();
        std::fs::create_dir(dir.path().join("subdir")).unwrap();
        let d = dir.path().to_str().unwrap();

        let rows = scan("directory", Op::Eq, d);
        // The subdirectory is not hashed.
        assert_eq!(rows.len(), 3);
        for row in &rows {
            let Some(Value::Text(path)) = row.get("path") else {
                panic!()
            };
            assert_eq!(row.get("directory"), Some(&Value::Text(d.to_string())));
            assert_eq!(row.get("md5"), Some(&coreutils("md5sum", path)), "{path}");
            assert_eq!(row.get("sha1"), Some(&coreutils("sha1sum", path)), "{path}");
            assert_eq!(
                row.get("sha256"),
                Some(&coreutils("sha256sum", path)),
                "{path}"
            );
        }

        let rows = scan("path", Op::Like, &format!("{d}/%.txt"));
        assert_eq!(rows.len(), 1);
        let path = format!("{d}/small.txt");
        assert_eq!(rows[0].get("path"), Some(&Value::Text(path.clone())));
        assert_eq!(rows[0].get("sha256"), Some(&coreutils("sha256sum", &path)));

        // A directory named by path has no row.
        assert!(scan("path", Op::Eq, &format!("{d}/subdir")).is_empty());
    }

    #[test]
    fn through_sql_only_used_digests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        std::fs::write(&path, b"abc").unwrap();
        let path = path.to_str().unwrap();
        let engine = Engine::new(Arc::new(Registry::default()), Limits::default());

        let out = engine.run("select md5 from hash");
        let err = out.error.expect("needs path or directory").to_string();
        assert!(err.contains("path"), "{err}");

        let out = engine.run(&format!("select sha1 from hash where path = '{path}'"));
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.rows, vec![vec![coreutils("sha1sum", path)]]);
    }

    #[test]
    fn skips_unused_digests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let mut ctx = ScanContext::all("hash", SCHEMA.columns, &budget, &env).with_constraint(
            "path",
            Op::Eq,
            vec![Value::Text(path.to_str().unwrap().into())],
        );
        // Only column 2 (md5) in use.
        ctx.col_used = 1 << 2;
        let mut rows = Vec::new();
        Hash.generate(&ctx, &mut rows).unwrap();
        assert_eq!(
            rows[0].get("md5"),
            Some(&coreutils("md5sum", path.to_str().unwrap()))
        );
        assert_eq!(rows[0].get("sha256"), Some(&Value::Null));
    }
}
