//! `groups`: local groups from the group file, one row per gid (the first
//! entry of a duplicated gid wins, as osquery's enumeration does).

use std::collections::HashSet;

use super::util::colon_records;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::groups::TABLE as SCHEMA;

pub struct Groups;

impl Table for Groups {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let wanted = ctx.eq_integers("gid");
        let mut seen = HashSet::new();
        for f in colon_records(&ctx.env().paths.etc_group) {
            if f.len() < 3 || f[0].is_empty() {
                continue;
            }
            let Ok(gid) = f[2].trim().parse::<u32>() else {
                continue;
            };
            if wanted
                .as_ref()
                .is_some_and(|w| !w.contains(&i64::from(gid)))
            {
                continue;
            }
            if !seen.insert(gid) {
                continue;
            }
            let mut row = ctx.row();
            row.set("gid", gid)
                // osquery reinterprets the id as int32: 4294967294 is -2.
                .set("gid_signed", gid as i32)
                .set("groupname", f[0].as_str())
                .set("pid_with_namespace", 0i64);
            out.push(row);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::process::Command;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, Op, TableEnv};

    fn scan(env: &TableEnv, gids: Option<Vec<Value>>) -> Vec<(i64, i64, String)> {
        let budget = Budget::unlimited();
        let mut ctx = ScanContext::all("groups", SCHEMA.columns, &budget, env);
        if let Some(gids) = gids {
            ctx = ctx.with_constraint("gid", Op::Eq, gids);
        }
        let mut rows = Vec::new();
        Groups.generate(&ctx, &mut rows).unwrap();
        rows.iter()
            .map(
                |r| match (r.get("gid"), r.get("gid_signed"), r.get("groupname")) {
                    (Some(Value::Integer(g)), Some(Value::Integer(s)), Some(Value::Text(n))) => {
                        (*g, *s, n.clone())
                    }
                    other => panic!("{other:?}"),
                },
            )
            .collect()
    }

    #[test]
    fn local_groups_match_getent() {
        let out = Command::new("getent").arg("group").output().unwrap();
        let mut nss: HashMap<String, String> = HashMap::new();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let f: Vec<&str> = line.split(':').collect();
            nss.entry(f[0].to_string())
                .or_insert_with(|| f[2].to_string());
        }
        let rows = scan(&TableEnv::default(), None);
        assert!(rows
            .iter()
            .any(|(gid, _, name)| *gid == 0 && name == "root"));
        for (gid, _, name) in &rows {
            assert_eq!(nss.get(name), Some(&gid.to_string()), "group {name}");
        }
    }

    #[test]
    fn parses_a_group_file_and_pushes_down() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("group");
        std::fs::write(
            &path,
            "# comment\nroot:x:0:\n\nadm:x:4:syslog,alice\nnogroup:x:4294967294:\n\
             admins:x:4:\nbad:x:abc:\n",
        )
        .unwrap();
        let mut env = TableEnv::default();
        env.paths.etc_group = path;
        assert_eq!(
            scan(&env, None),
            [
                (0, 0, "root".to_string()),
                (4, 4, "adm".to_string()),
                (4_294_967_294, -2, "nogroup".to_string()),
            ]
        );
        assert_eq!(
            scan(&env, Some(vec![Value::Integer(4), Value::Integer(99)])),
            [(4, 4, "adm".to_string())]
        );
        env.paths.etc_group = dir.path().join("missing");
        assert!(scan(&env, None).is_empty());
    }
}
