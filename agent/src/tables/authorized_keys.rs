//! `authorized_keys`: the keys in every local user's ~/.ssh/authorized_keys
//! and ~/.ssh/authorized_keys2, one row per key line. `uid = N` limits the
//! scan to those users.

use super::user_file::{self, Owner};
use super::util::user_homes;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::authorized_keys::TABLE as SCHEMA;

pub struct AuthorizedKeys;

const KEY_FILES: &[&str] = &[".ssh/authorized_keys", ".ssh/authorized_keys2"];

/// The z/OS option that names a key held in a key ring instead of the line.
const KEY_RING_LABEL: &str = "zos-key-ring-label=";

impl Table for AuthorizedKeys {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let only = ctx.eq_integers("uid");
        for (uid, home) in user_homes(&ctx.env().paths.etc_passwd) {
            if only.as_ref().is_some_and(|o| !o.contains(&i64::from(uid))) {
                continue;
            }
            for name in KEY_FILES {
                ctx.check()?;
                let home = std::path::Path::new(&home);
                let key_file = home.join(name);
                // A user file: no links, no FIFOs, owned by the user.
                let Some(text) =
                    user_file::read_text(ctx, home, std::path::Path::new(name), Owner::User(uid))?
                else {
                    continue;
                };
                let key_file = key_file.to_string_lossy();
                for line in text.lines() {
                    let Some(key) = parse_line(line) else {
                        continue;
                    };
                    let mut row = ctx.row();
                    row.set("uid", uid)
                        .set_opt("algorithm", key.algorithm)
                        .set_opt("key", key.key)
                        .set_opt("options", key.options)
                        .set_opt("comment", key.comment)
                        .set("key_file", &*key_file)
                        .set("pid_with_namespace", 0i64);
                    out.push(row);
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default, PartialEq)]
struct Key<'a> {
    algorithm: Option<&'a str>,
    key: Option<&'a str>,
    options: Option<&'a str>,
    comment: Option<&'a str>,
}

/// Whether `word` names a public key type (sshd(8) AUTHORIZED_KEYS FILE FORMAT).
fn is_key_type(word: &str) -> bool {
    word.starts_with("ssh-")
        || word.starts_with("ecdsa-sha2-")
        || word.starts_with("sk-ecdsa-sha2-")
        || word.starts_with("sk-ssh-")
}

/// Splits off the first word of `s`; a double-quoted part (in options such as
/// `command="a b"`) does not end the word.
fn split_word(s: &str) -> (&str, &str) {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return (&s[..i], s[i..].trim_start()),
            _ => {}
        }
    }
    (s, "")
}

/// One authorized_keys line: `[options] keytype base64-key [comment]`.
fn parse_line(line: &str) -> Option<Key<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (first, rest) = split_word(line);
    let (options, key_type, rest) = if is_key_type(first) {
        (None, first, rest)
    } else {
        let (key_type, rest) = split_word(rest);
        if !is_key_type(key_type) {
            // Only options: a key kept in a z/OS key ring, else not a key.
            return first
                .split(',')
                .any(|o| o.starts_with(KEY_RING_LABEL))
                .then_some(Key {
                    options: Some(line),
                    ..Key::default()
                });
        }
        (Some(first), key_type, rest)
    };
    let (key, comment) = split_word(rest);
    if key.is_empty() {
        return None;
    }
    Some(Key {
        algorithm: Some(key_type),
        key: Some(key),
        options,
        comment: (!comment.is_empty()).then_some(comment.trim_end()),
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, HostPaths, Op, TableEnv};

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const RSA: &str = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQDx";

    #[test]
    fn parses_lines() {
        let line = format!("ssh-ed25519 {ED} alice@laptop");
        let k = parse_line(&line).unwrap();
        assert_eq!(
            k,
            Key {
                algorithm: Some("ssh-ed25519"),
                key: Some(ED),
                options: None,
                comment: Some("alice@laptop")
            }
        );
        let line = format!("command=\"echo a b\",no-pty ssh-rsa {RSA} two words");
        let k = parse_line(&line).unwrap();
        assert_eq!(k.options, Some("command=\"echo a b\",no-pty"));
        assert_eq!(k.algorithm, Some("ssh-rsa"));
        assert_eq!(k.comment, Some("two words"));
        assert_eq!(parse_line("# comment"), None);
        assert_eq!(parse_line("not a key line"), None);
        let k = parse_line("zos-key-ring-label=\"KeyRing Label\"").unwrap();
        assert_eq!(k.options, Some("zos-key-ring-label=\"KeyRing Label\""));
    }

    fn scan(env: &TableEnv, uid: Option<i64>) -> Vec<Row> {
        let budget = Budget::unlimited();
        let mut ctx = ScanContext::all("authorized_keys", SCHEMA.columns, &budget, env);
        if let Some(uid) = uid {
            ctx = ctx.with_constraint("uid", Op::Eq, vec![uid.into()]);
        }
        let mut rows = Vec::new();
        AuthorizedKeys.generate(&ctx, &mut rows).unwrap();
        rows
    }

    #[test]
    fn reads_each_users_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let alice = dir.path().join("alice");
        let bob = dir.path().join("bob");
        std::fs::create_dir_all(alice.join(".ssh")).unwrap();
        std::fs::create_dir_all(bob.join(".ssh")).unwrap();
        std::fs::write(
            alice.join(".ssh/authorized_keys"),
            format!("# keys\n\nssh-ed25519 {ED} alice@laptop\nfrom=\"10.0.0.0/8\" ssh-rsa {RSA}\n"),
        )
        .unwrap();
        std::fs::write(
            bob.join(".ssh/authorized_keys2"),
            format!("ssh-rsa {RSA} bob\n"),
        )
        .unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            format!(
                "alice:x:1001:1001::{}:/bin/sh\nbob:x:1002:1002::{}:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n",
                alice.display(),
                bob.display()
            ),
        )
        .unwrap();
        let env = TableEnv {
            paths: HostPaths {
                etc_passwd: passwd,
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };

        let rows = scan(&env, None);
        let got: Vec<Vec<Value>> = rows.iter().map(|r| r.values()[..6].to_vec()).collect();
        let t = |s: &str| Value::Text(s.to_string());
        let alice_file = t(alice.join(".ssh/authorized_keys").to_str().unwrap());
        let bob_file = t(bob.join(".ssh/authorized_keys2").to_str().unwrap());
        assert_eq!(
            got,
            vec![
                vec![
                    Value::Integer(1001),
                    t("ssh-ed25519"),
                    t(ED),
                    Value::Null,
                    t("alice@laptop"),
                    alice_file.clone()
                ],
                vec![
                    Value::Integer(1001),
                    t("ssh-rsa"),
                    t(RSA),
                    t("from=\"10.0.0.0/8\""),
                    Value::Null,
                    alice_file
                ],
                vec![
                    Value::Integer(1002),
                    t("ssh-rsa"),
                    t(RSA),
                    Value::Null,
                    t("bob"),
                    bob_file
                ],
            ]
        );

        let rows = scan(&env, Some(1002));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get("comment"), Some(&t("bob")));
        assert!(scan(&env, Some(4242)).is_empty());
    }

    /// A real key from ssh-keygen, when the machine has it: the fields of its
    /// .pub file must come back as algorithm, key and comment.
    #[test]
    fn real_key_from_ssh_keygen() {
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("id");
        let Ok(status) = std::process::Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "test key@sweep",
                "-f",
            ])
            .arg(&id)
            .status()
        else {
            return; // no ssh-keygen here
        };
        assert!(status.success());
        let public = std::fs::read_to_string(dir.path().join("id.pub")).unwrap();
        let fields: Vec<&str> = public.trim().splitn(3, ' ').collect();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(
            home.join(".ssh/authorized_keys"),
            format!("no-pty,no-X11-forwarding {public}"),
        )
        .unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            format!("u:x:4242:4242::{}:/bin/sh\n", home.display()),
        )
        .unwrap();
        let env = TableEnv {
            paths: HostPaths {
                etc_passwd: passwd,
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };

        let rows = scan(&env, Some(4242));
        assert_eq!(rows.len(), 1);
        let t = |s: &str| Some(Value::Text(s.to_string()));
        assert_eq!(rows[0].get("algorithm").cloned(), t(fields[0]));
        assert_eq!(rows[0].get("key").cloned(), t(fields[1]));
        assert_eq!(rows[0].get("comment").cloned(), t(fields[2]));
        assert_eq!(
            rows[0].get("options").cloned(),
            t("no-pty,no-X11-forwarding")
        );
    }
}
