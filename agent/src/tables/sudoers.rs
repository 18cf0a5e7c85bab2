//! `sudoers`: the rules of the sudoers file and the files it includes
//! (`#include`/`@include` files, `#includedir`/`@includedir` directories),
//! each line split into its leading word (`header`) and the rest
//! (`rule_details`). Lines continued with a trailing backslash are joined.

use std::path::{Path, PathBuf};

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::sudoers::TABLE as SCHEMA;

pub struct Sudoers;

/// sudoers(5): includes nest at most 128 deep.
const MAX_NEST: usize = 128;

const BLANKS: &[char] = &[' ', '\t', '\x0b'];

impl Table for Sudoers {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let mut rules = Vec::new();
        read_file(ctx, &ctx.env().paths.sudoers, 1, &mut rules)?;
        for rule in rules {
            let mut row = ctx.row();
            row.set("source", rule.source)
                .set("header", rule.header)
                .set("rule_details", rule.details);
            out.push(row);
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq)]
struct Rule {
    source: String,
    header: String,
    details: String,
}

/// Appends the rules of `file`, and of what it includes, to `out` in the
/// order sudo reads them. Unreadable files contribute nothing.
fn read_file(
    ctx: &ScanContext<'_>,
    file: &Path,
    depth: usize,
    out: &mut Vec<Rule>,
) -> Result<(), AgentError> {
    if depth > MAX_NEST {
        return Ok(());
    }
    ctx.check()?;
    let Some(text) = read_text(file) else {
        return Ok(());
    };
    let source = file.to_string_lossy().into_owned();
    let mut continued = false;
    for line in text.lines() {
        let line = line.trim_matches(BLANKS);
        if line.is_empty() {
            continue;
        }
        if continued {
            // Drop the previous line's backslash and append this one to
            // whichever column it ended in.
            continued = line.ends_with('\\');
            if let Some(last) = out.last_mut() {
                let field = if last.details.is_empty() {
                    &mut last.header
                } else {
                    &mut last.details
                };
                field.pop();
                field.push_str(line);
            }
            continue;
        }
        let (header, details) = match line.find(BLANKS) {
            Some(i) => (&line[..i], line[i..].trim_matches(BLANKS)),
            None => (line, ""),
        };
        let include = matches!(header, "#include" | "@include");
        let include_dir = matches!(header, "#includedir" | "@includedir");
        if line.starts_with('#') && !include && !include_dir {
            continue;
        }
        // An include without a target reads as a comment.
        if (include || include_dir) && details.is_empty() {
            continue;
        }
        continued = !include && !include_dir && line.ends_with('\\');
        out.push(Rule {
            source: source.clone(),
            header: header.to_string(),
            details: details.to_string(),
        });

        if include || include_dir {
            // Relative targets are relative to the including file's directory.
            let target = file.parent().unwrap_or(Path::new("/")).join(details);
            if include {
                read_file(ctx, &target, depth + 1, out)?;
            } else {
                for inc in included_files(&target) {
                    read_file(ctx, &inc, depth + 1, out)?;
                }
            }
        }
    }
    Ok(())
}

/// The files of an includedir that sudo reads, in lexical order: names with
/// a '.' or ending in '~' are skipped (sudoers(5)).
fn included_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !name.contains('.') && !name.ends_with('~')
        })
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{Budget, HostPaths, TableEnv};

    fn scan(sudoers: PathBuf) -> Vec<(String, String, String)> {
        let env = TableEnv {
            paths: HostPaths {
                sudoers,
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        let budget = Budget::unlimited();
        let mut rows = Vec::new();
        Sudoers
            .generate(
                &ScanContext::all("sudoers", SCHEMA.columns, &budget, &env),
                &mut rows,
            )
            .unwrap();
        rows.iter()
            .map(|r| match r.values() {
                [rusqlite::types::Value::Text(s), rusqlite::types::Value::Text(h), rusqlite::types::Value::Text(d)] => {
                    (s.clone(), h.clone(), d.clone())
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn follows_includes_and_joins_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("sudoers");
        let inc_dir = dir.path().join("sudoers.d");
        std::fs::create_dir(&inc_dir).unwrap();
        std::fs::write(
            &top,
            "# comment\\\n\
             Defaults\tenv_reset\n\
             Defaults secure_path=\"/usr/sbin:/usr/bin\"\n\
             \x20 # indented comment\n\
             #includedir\n\
             root ALL=(ALL:ALL) ALL\n\
             User_Alias ADMINS = alice,\\\n\
             \x20   bob,\\\n\
             carol\n\
             @include extra\n\
             #includedir sudoers.d\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("extra"), "%sudo ALL=(ALL) NOPASSWD: ALL\n").unwrap();
        std::fs::write(inc_dir.join("b_rules"), "bob ALL=/usr/bin/systemctl\n").unwrap();
        std::fs::write(inc_dir.join("a_rules"), "alice ALL=ALL\n").unwrap();
        // sudo skips these.
        std::fs::write(inc_dir.join("README.txt"), "ignored ALL=ALL\n").unwrap();
        std::fs::write(inc_dir.join("c_rules~"), "ignored ALL=ALL\n").unwrap();

        let top_s = top.display().to_string();
        let t = |s: &str, h: &str, d: &str| (s.to_string(), h.to_string(), d.to_string());
        assert_eq!(
            scan(top.clone()),
            vec![
                t(&top_s, "Defaults", "env_reset"),
                t(&top_s, "Defaults", "secure_path=\"/usr/sbin:/usr/bin\""),
                t(&top_s, "root", "ALL=(ALL:ALL) ALL"),
                t(&top_s, "User_Alias", "ADMINS = alice,bob,carol"),
                t(&top_s, "@include", "extra"),
                t(
                    &dir.path().join("extra").display().to_string(),
                    "%sudo",
                    "ALL=(ALL) NOPASSWD: ALL"
                ),
                t(&top_s, "#includedir", "sudoers.d"),
                t(
                    &inc_dir.join("a_rules").display().to_string(),
                    "alice",
                    "ALL=ALL"
                ),
                t(
                    &inc_dir.join("b_rules").display().to_string(),
                    "bob",
                    "ALL=/usr/bin/systemctl"
                ),
            ]
        );
    }

    #[test]
    fn include_loops_and_absent_files_end() {
        let dir = tempfile::tempdir().unwrap();
        assert!(scan(dir.path().join("absent")).is_empty());
        // A file that includes itself stops at the nesting limit.
        let top = dir.path().join("loop");
        std::fs::write(&top, "Defaults x\n#include loop\n").unwrap();
        assert_eq!(scan(top).len(), 2 * MAX_NEST);
    }
}
