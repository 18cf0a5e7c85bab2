//! `users`: local accounts from the passwd file. Like osquery, the default
//! reads the file itself (no NSS, so no LDAP round trips); `include_remote = 1`
//! asks NSS through `getent passwd`, which also sees directory accounts.

use std::path::Path;
use std::process::Command;

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::users::TABLE as SCHEMA;

pub struct Users;

/// One passwd entry.
#[derive(Debug, Clone, PartialEq)]
struct Account {
    name: String,
    uid: u32,
    gid: u32,
    gecos: String,
    home: String,
    shell: String,
}

impl Table for Users {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let uids = ctx.eq_integers("uid");
        let names = ctx.eq_texts("username");
        let remote = ctx
            .eq_integers("include_remote")
            .is_some_and(|v| v.contains(&1));
        let accounts = if remote {
            // Without getent (a stripped container) the local file is all we know.
            nss_accounts(uids.as_deref(), names.as_deref())
                .unwrap_or_else(|| parse_passwd(&ctx.env().paths.etc_passwd))
        } else {
            parse_passwd(&ctx.env().paths.etc_passwd)
        };
        for a in accounts {
            if uids
                .as_ref()
                .is_some_and(|u| !u.contains(&i64::from(a.uid)))
            {
                continue;
            }
            if names.as_ref().is_some_and(|n| !n.contains(&a.name)) {
                continue;
            }
            let mut row = ctx.row();
            row.set("uid", a.uid)
                .set("gid", a.gid)
                // osquery reinterprets the ids as int32: 4294967294 is -2.
                .set("uid_signed", a.uid as i32)
                .set("gid_signed", a.gid as i32)
                .set("username", a.name)
                .set("description", a.gecos)
                .set("directory", a.home)
                .set("shell", a.shell)
                // Linux accounts have no UUID; osquery reports it empty.
                .set("uuid", "")
                .set("pid_with_namespace", 0i64)
                .set("include_remote", i64::from(remote));
            out.push(row);
        }
        Ok(())
    }
}

fn parse_passwd(path: &Path) -> Vec<Account> {
    read_text(path)
        .map(|t| parse_passwd_text(&t))
        .unwrap_or_default()
}

/// `name:passwd:uid:gid:gecos:dir:shell` lines; comments, blank lines and
/// lines without numeric ids are skipped as glibc's parser does.
fn parse_passwd_text(text: &str) -> Vec<Account> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            let field = |i: usize| f.get(i).copied().unwrap_or("").to_string();
            Some(Account {
                name: f[0].to_string(),
                uid: f[2].trim().parse().ok()?,
                gid: f[3].trim().parse().ok()?,
                gecos: field(4),
                home: field(5),
                shell: field(6),
            })
        })
        .collect()
}

/// Accounts through NSS (`getent passwd [keys…]`), or `None` when getent
/// cannot run. getent exits 2 when some key is unknown: the rest still count.
fn nss_accounts(uids: Option<&[i64]>, names: Option<&[String]>) -> Option<Vec<Account>> {
    if names.is_some_and(<[String]>::is_empty) || uids.is_some_and(<[i64]>::is_empty) {
        return Some(Vec::new());
    }
    let mut cmd = Command::new("getent");
    cmd.arg("passwd");
    // Looking keys up beats enumerating a whole directory.
    if let Some(names) = names {
        cmd.args(names);
    } else if let Some(uids) = uids {
        cmd.args(
            uids.iter()
                .filter(|u| u32::try_from(**u).is_ok())
                .map(|u| u.to_string()),
        );
    }
    let output = cmd.output().ok()?;
    Some(parse_passwd_text(&String::from_utf8_lossy(&output.stdout)))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::testing::{int, text};
    use crate::tables::{Op, TableEnv};

    fn scan(env: &TableEnv, constraints: &[(&str, Vec<Value>)]) -> Vec<Row> {
        let constraints: Vec<_> = constraints
            .iter()
            .map(|(c, v)| (*c, Op::Eq, v.clone()))
            .collect();
        crate::tables::testing::scan_with(&Users, env, &constraints)
    }

    /// `getent passwd` output, keyed by name (first entry wins, as in NSS).
    fn getent_passwd(keys: &[&str]) -> HashMap<String, Vec<String>> {
        let out = Command::new("getent")
            .arg("passwd")
            .args(keys)
            .output()
            .unwrap();
        let mut map = HashMap::new();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let f: Vec<String> = line.split(':').map(str::to_string).collect();
            map.entry(f[0].clone()).or_insert(f);
        }
        map
    }

    #[test]
    fn local_accounts_match_getent() {
        let rows = scan(&TableEnv::default(), &[]);
        let nss = getent_passwd(&[]);
        assert!(rows.iter().any(|r| text(r, "username") == "root"));
        for row in &rows {
            let name = text(row, "username");
            let f = nss
                .get(&name)
                .unwrap_or_else(|| panic!("getent lacks {name}"));
            assert_eq!(int(row, "uid").to_string(), f[2], "{name}");
            assert_eq!(int(row, "gid").to_string(), f[3], "{name}");
            assert_eq!(text(row, "description"), f[4], "{name}");
            assert_eq!(text(row, "directory"), f[5], "{name}");
            assert_eq!(text(row, "shell"), f[6], "{name}");
            assert_eq!(int(row, "include_remote"), 0);
        }
    }

    #[test]
    fn parses_a_passwd_file_and_pushes_down() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(
            &path,
            "# comment line\n\
             root:x:0:0:root:/root:/bin/bash\n\
             \n\
             nfsnobody:x:4294967294:4294967294:Anonymous NFS User,,,:/var/lib/nfs:/sbin/nologin\n\
             broken:x:notanumber:1::/:/bin/sh\n\
             alice:x:1000:1000:Alice Liddell,Room 1:/home/alice:/bin/zsh\n",
        )
        .unwrap();
        let mut env = TableEnv::default();
        env.paths.etc_passwd = path;

        let rows = scan(&env, &[]);
        let names: Vec<String> = rows.iter().map(|r| text(r, "username")).collect();
        assert_eq!(names, ["root", "nfsnobody", "alice"]);
        let nobody = &rows[1];
        assert_eq!(int(nobody, "uid"), 4_294_967_294);
        assert_eq!(int(nobody, "uid_signed"), -2);
        assert_eq!(int(nobody, "gid_signed"), -2);
        assert_eq!(text(nobody, "description"), "Anonymous NFS User,,,");
        assert_eq!(text(&rows[2], "shell"), "/bin/zsh");
        assert_eq!(text(&rows[2], "uuid"), "");

        let by_uid = scan(
            &env,
            &[("uid", vec![Value::Integer(1000), Value::Integer(7)])],
        );
        assert_eq!(by_uid.len(), 1);
        assert_eq!(text(&by_uid[0], "username"), "alice");

        let by_name = scan(&env, &[("username", vec![Value::Text("root".into())])]);
        assert_eq!(by_name.len(), 1);
        assert_eq!(int(&by_name[0], "uid"), 0);

        env.paths.etc_passwd = dir.path().join("missing");
        assert!(scan(&env, &[]).is_empty());
    }

    #[test]
    fn include_remote_asks_nss() {
        let rows = scan(
            &TableEnv::default(),
            &[
                ("include_remote", vec![Value::Integer(1)]),
                ("username", vec![Value::Text("root".into())]),
            ],
        );
        let nss = getent_passwd(&["root"]);
        assert_eq!(rows.len(), 1);
        assert_eq!(int(&rows[0], "include_remote"), 1);
        assert_eq!(text(&rows[0], "directory"), nss["root"][5]);
    }
}
