//! `firefox_addons`: the add-ons (extensions, themes, dictionaries, locales,
//! system add-ons) of every Firefox profile of every local user, from each
//! profile's `extensions.json`, as osquery reads it on Linux. Profiles are
//! the folders of `~/.mozilla/firefox`, `~/snap/firefox/common/.mozilla/
//! firefox` and `~/.config/mozilla/firefox` (Firefox 147's XDG location),
//! but for "Crash Reports" and "Pending Pings".
//!
//! One row per entry of the file's `addons` array: `name`, `creator` and
//! `description` from its `defaultLocale`; `identifier` (`id`), `type`,
//! `version`, `source_url` (`sourceURI`), `visible`, `active`,
//! `autoupdate` (`applyBackgroundUpdates`: 0 off, 1 default, 2 on),
//! `location` and `path`; `disabled` is 1 when any of `softDisable`,
//! `appDisabled` or `userDisabled` is true. An absent (or JSON `null`) value
//! is NULL (osquery writes the text "null" for the latter).
//!
//! `uid = N` limits the scan to those users, `identifier = X` the rows
//! built. Every file is read beneath the user's home as a user file
//! ([`user_file`]): no links followed, no FIFOs or devices, size-capped.

use std::path::Path;

use rusqlite::types::Value;
use serde_json::Value as Json;

use super::user_file::{self, Owner};
use super::util::user_homes;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::firefox_addons::TABLE as SCHEMA;

pub struct FirefoxAddons;

/// Where Firefox keeps its profiles, relative to a home directory.
const PROFILE_ROOTS: &[&str] = &[
    ".mozilla/firefox",
    "snap/firefox/common/.mozilla/firefox",
    ".config/mozilla/firefox",
];

/// Folders next to the profiles that are not profiles.
const NOT_PROFILES: &[&str] = &["Crash Reports", "Pending Pings"];

impl Table for FirefoxAddons {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let only = ctx.eq_integers("uid");
        let ids = ctx.eq_texts("identifier");
        for (uid, home) in user_homes(&ctx.env().paths.etc_passwd) {
            if only.as_ref().is_some_and(|o| !o.contains(&i64::from(uid))) {
                continue;
            }
            let home = Path::new(&home);
            for root in PROFILE_ROOTS {
                for profile in user_file::subdirs(ctx, home, Path::new(root))? {
                    if NOT_PROFILES.iter().any(|n| profile.ends_with(n)) {
                        continue;
                    }
                    let file = Path::new(root).join(&profile).join("extensions.json");
                    let Some(text) = user_file::read_text(ctx, home, &file, Owner::User(uid))?
                    else {
                        continue;
                    };
                    let Ok(doc) = serde_json::from_str::<Json>(&text) else {
                        continue;
                    };
                    let Some(addons) = doc["addons"].as_array() else {
                        continue;
                    };
                    for addon in addons.iter().filter(|a| a.is_object()) {
                        if let Some(ids) = &ids {
                            if !addon["id"]
                                .as_str()
                                .is_some_and(|id| ids.iter().any(|i| i == id))
                            {
                                continue;
                            }
                        }
                        out.push(addon_row(ctx, uid, addon));
                    }
                }
            }
        }
        Ok(())
    }
}

fn addon_row(ctx: &ScanContext<'_>, uid: u32, addon: &Json) -> Row {
    let locale = &addon["defaultLocale"];
    let mut row = ctx.row();
    row.set("uid", uid)
        .set("name", text(&locale["name"]))
        .set("identifier", text(&addon["id"]))
        .set("creator", text(&locale["creator"]))
        .set("type", text(&addon["type"]))
        .set("version", text(&addon["version"]))
        .set("description", text(&locale["description"]))
        .set("source_url", text(&addon["sourceURI"]))
        .set("visible", integer(&addon["visible"]))
        .set("active", integer(&addon["active"]))
        .set(
            "disabled",
            ["softDisable", "appDisabled", "userDisabled"]
                .iter()
                .any(|k| truthy(&addon[*k])),
        )
        .set("autoupdate", integer(&addon["applyBackgroundUpdates"]))
        .set("location", text(&addon["location"]))
        .set("path", text(&addon["path"]));
    row
}

/// A scalar as text (booleans as 1 and 0, as osquery writes them).
fn text(v: &Json) -> Value {
    match v {
        Json::String(s) => Value::Text(s.clone()),
        Json::Bool(b) => Value::Text(if *b { "1" } else { "0" }.into()),
        Json::Number(n) => Value::Text(n.to_string()),
        _ => Value::Null,
    }
}

/// A scalar as an integer: booleans 1 and 0, whole numbers as they are.
fn integer(v: &Json) -> Value {
    match v {
        Json::Bool(b) => Value::Integer(i64::from(*b)),
        Json::Number(n) => n.as_i64().map_or(Value::Null, Value::Integer),
        Json::String(s) => s.trim().parse().map_or(Value::Null, Value::Integer),
        _ => Value::Null,
    }
}

/// osquery's truth of a JSON value: true, "true"/"t" (any case), non-zero.
fn truthy(v: &Json) -> bool {
    match v {
        Json::Bool(b) => *b,
        Json::String(s) => s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("t"),
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::sync::Arc;

    use super::*;
    use crate::engine::{Engine, Limits};
    use crate::tables::testing::{pack_query, scan, scan_with};
    use crate::tables::{HostPaths, Op, Registry, TableEnv};

    use crate::tables::testing::write_file as write;

    /// An extensions.json in the shape Firefox writes it (trimmed to the
    /// fields that matter), for two profiles of one user.
    fn fixture() -> (tempfile::TempDir, TableEnv, String) {
        let dir = tempfile::tempdir().unwrap();
        let alice = dir.path().join("alice");
        let profile = alice.join(".mozilla/firefox/x1y2z3.default-release");
        write(
            &profile.join("extensions.json"),
            &format!(
                r#"{{"schemaVersion": 36, "addons": [
                {{"id": "uBlock0@raymondhill.net", "syncGUID": "{{abc}}", "version": "1.57.2",
                  "type": "extension", "loader": null, "visible": true, "active": true,
                  "userDisabled": false, "appDisabled": false, "softDisable": false,
                  "applyBackgroundUpdates": 1, "location": "app-profile",
                  "sourceURI": "https://addons.mozilla.org/firefox/downloads/file/4/ublock.xpi",
                  "path": "{p}/extensions/uBlock0@raymondhill.net.xpi",
                  "defaultLocale": {{"name": "uBlock Origin", "creator": "Raymond Hill",
                                    "description": "Finally, an efficient blocker."}}}},
                {{"id": "formautofill@mozilla.org", "version": "1.0.1", "type": "extension",
                  "visible": false, "active": true, "userDisabled": false, "appDisabled": false,
                  "softDisable": false, "applyBackgroundUpdates": 1, "location": "app-builtin",
                  "sourceURI": null, "path": null,
                  "defaultLocale": {{"name": "Form Autofill", "creator": null, "description": null}}}},
                {{"id": "old-theme@example.com", "version": "2", "type": "theme",
                  "visible": true, "active": false, "userDisabled": true, "appDisabled": false,
                  "softDisable": false, "applyBackgroundUpdates": 0, "location": "app-profile",
                  "defaultLocale": {{"name": "Old Theme"}}}},
                "not an add-on"
                ]}}"#,
                p = profile.display()
            ),
        );
        // A second profile, an XDG one, with an add-on the app disabled.
        write(
            &alice.join(".config/mozilla/firefox/abc.default/extensions.json"),
            r#"{"addons": [{"id": "legacy@example.com", "version": "0.1", "type": "extension",
               "visible": true, "active": false, "appDisabled": "True", "applyBackgroundUpdates": 2,
               "location": "app-profile", "defaultLocale": {"name": "Legacy"}}]}"#,
        );
        // Not profiles, broken files, and a link to someone else's file.
        write(
            &alice.join(".mozilla/firefox/Crash Reports/extensions.json"),
            r#"{"addons": [{"id": "crash"}]}"#,
        );
        write(
            &alice.join(".mozilla/firefox/broken/extensions.json"),
            "{\"addons\": [",
        );
        write(
            &alice.join(".mozilla/firefox/noaddons/extensions.json"),
            "{}",
        );
        let secret = dir.path().join("secret.json");
        write(&secret, r#"{"addons": [{"id": "stolen"}]}"#);
        std::fs::create_dir_all(alice.join(".mozilla/firefox/linked")).unwrap();
        symlink(
            &secret,
            alice.join(".mozilla/firefox/linked/extensions.json"),
        )
        .unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            format!("alice:x:1001:1001::{}:/bin/sh\n", alice.display()),
        )
        .unwrap();
        let env = TableEnv {
            paths: HostPaths {
                etc_passwd: passwd,
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        (dir, env, profile.display().to_string())
    }

    #[test]
    fn reads_each_profiles_addons() {
        let (_dir, env, profile) = fixture();
        let rows = scan(&FirefoxAddons, &env);
        let got: Vec<Vec<Value>> = rows.iter().map(|r| r.values().to_vec()).collect();
        let t = |s: &str| Value::Text(s.into());
        let i = Value::Integer;
        let n = || Value::Null;
        assert_eq!(
            got,
            vec![
                vec![
                    i(1001),
                    t("uBlock Origin"),
                    t("uBlock0@raymondhill.net"),
                    t("Raymond Hill"),
                    t("extension"),
                    t("1.57.2"),
                    t("Finally, an efficient blocker."),
                    t("https://addons.mozilla.org/firefox/downloads/file/4/ublock.xpi"),
                    i(1),
                    i(1),
                    i(0),
                    i(1),
                    t("app-profile"),
                    t(&format!("{profile}/extensions/uBlock0@raymondhill.net.xpi")),
                ],
                vec![
                    i(1001),
                    t("Form Autofill"),
                    t("formautofill@mozilla.org"),
                    n(),
                    t("extension"),
                    t("1.0.1"),
                    n(),
                    n(),
                    i(0),
                    i(1),
                    i(0),
                    i(1),
                    t("app-builtin"),
                    n(),
                ],
                vec![
                    i(1001),
                    t("Old Theme"),
                    t("old-theme@example.com"),
                    n(),
                    t("theme"),
                    t("2"),
                    n(),
                    n(),
                    i(1),
                    i(0),
                    i(1),
                    i(0),
                    t("app-profile"),
                    n(),
                ],
                vec![
                    i(1001),
                    t("Legacy"),
                    t("legacy@example.com"),
                    n(),
                    t("extension"),
                    t("0.1"),
                    n(),
                    n(),
                    i(1),
                    i(0),
                    i(1),
                    i(2),
                    t("app-profile"),
                    n(),
                ],
            ]
        );
        let one = scan_with(
            &FirefoxAddons,
            &env,
            &[("identifier", Op::Eq, vec![t("legacy@example.com")])],
        );
        assert_eq!(one.len(), 1);
        assert!(scan_with(&FirefoxAddons, &env, &[("uid", Op::Eq, vec![7.into()])]).is_empty());
    }

    #[test]
    fn no_firefox_no_rows() {
        let homes = crate::tables::util::user_homes(Path::new("/etc/passwd"));
        let any = homes
            .iter()
            .any(|(_, h)| PROFILE_ROOTS.iter().any(|r| Path::new(h).join(r).exists()));
        if !any {
            assert!(scan(&FirefoxAddons, &TableEnv::default()).is_empty());
        }
    }

    #[test]
    fn osquery_pack_query_runs() {
        let (_dir, env, _) = fixture();
        let engine = Engine::new(Arc::new(Registry::new(env)), Limits::default());
        let out = engine.run(&pack_query("vuln-management", "firefox_addons"));
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.rows.len(), 4);
    }
}
