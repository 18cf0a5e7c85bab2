//! `opera_extensions`: Opera's extensions, in the columns of osquery's last
//! `opera_extensions` table (osquery 4.7; later osquery folded Opera into
//! `chrome_extensions` as `browser_type = 'opera'`). Opera is Chromium-based:
//! its profile is `~/.config/opera`, read exactly as `chrome_extensions`
//! reads it (every local user, `uid = N` to narrow, user files only), and
//! each row is one of `chrome_extensions`' Opera rows:
//!
//! - `identifier` is the name of the extension's folder under the profile's
//!   `Extensions/` (what osquery 4.7 reported), or for an extension the
//!   preferences reference elsewhere, the id they file it under;
//! - `locale` is the manifest's `default_locale`; `persistent` its
//!   `background.persistent` (1 or 0); the other columns are as in
//!   `chrome_extensions`.

use std::path::Path;

use super::chrome_extensions::{extensions, PROFILE_ROOTS};
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::opera_extensions::TABLE as SCHEMA;

pub struct OperaExtensions;

impl Table for OperaExtensions {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let roots: Vec<(&'static str, &str)> = PROFILE_ROOTS
            .iter()
            .filter(|(browser, _)| *browser == "opera")
            .copied()
            .collect();
        for ext in extensions(ctx, &roots)? {
            let in_profile =
                Path::new(&ext.path).starts_with(Path::new(&ext.profile_path).join("Extensions"));
            let identifier = if in_profile || !ext.referenced {
                ext.folder_id.clone()
            } else {
                ext.settings
                    .get("referenced_identifier")
                    .cloned()
                    .unwrap_or_default()
            };
            let mut row = ctx.row();
            row.set("uid", ext.uid)
                .set("name", ext.prop("name"))
                .set("identifier", identifier)
                .set("version", ext.prop("version"))
                .set("description", ext.prop("description"))
                .set("locale", ext.prop("default_locale"))
                .set("update_url", ext.prop("update_url"))
                .set("author", ext.prop("author"))
                .set("persistent", ext.persistent())
                .set("path", ext.path.as_str());
            out.push(row);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rusqlite::types::Value;

    use super::*;
    use crate::engine::{Engine, Limits};
    use crate::tables::chrome_extensions::tests::{fixture, write};
    use crate::tables::testing::{pack_query, scan, scan_with};
    use crate::tables::{Op, Registry, TableEnv};

    #[test]
    fn reads_operas_profile() {
        let f = fixture();
        // An unpacked Opera extension referenced from elsewhere in the home.
        let opera = f.alice.join(".config/opera");
        write(
            &opera.join("Preferences"),
            &format!(
                r#"{{"extensions": {{"opsettings": {{
                    "operaid": {{"path": "operaid/1.2_0", "state": 1}},
                    "devid": {{"path": "{}/src/ext"}}}}}}}}"#,
                f.alice.display()
            ),
        );
        write(
            &f.alice.join("src/ext/manifest.json"),
            r#"{"name": "Dev", "version": "0", "background": {"persistent": true}}"#,
        );
        let rows = scan(&OperaExtensions, &f.env);
        let a = f.alice.display().to_string();
        let t = |s: &str| Value::Text(s.into());
        let got: Vec<Vec<Value>> = rows.iter().map(|r| r.values().to_vec()).collect();
        assert_eq!(
            got,
            vec![
                vec![
                    Value::Integer(1001),
                    t("Opera Ad Blocker"),
                    t("operaid"),
                    t("1.2"),
                    t("Blocks ads"),
                    t("en"),
                    t("https://u"),
                    t("Opera"),
                    Value::Integer(0),
                    t(&format!("{a}/.config/opera/Extensions/operaid/1.2_0")),
                ],
                vec![
                    Value::Integer(1001),
                    t("Dev"),
                    t("devid"),
                    t("0"),
                    t(""),
                    t(""),
                    t(""),
                    t(""),
                    Value::Integer(1),
                    t(&format!("{a}/src/ext")),
                ],
            ]
        );
        assert!(scan_with(
            &OperaExtensions,
            &f.env,
            &[("uid", Op::Eq, vec![1002.into()])]
        )
        .is_empty());
    }

    #[test]
    fn no_opera_no_rows() {
        let homes = crate::tables::util::user_homes(Path::new("/etc/passwd"));
        if !homes
            .iter()
            .any(|(_, h)| Path::new(h).join(".config/opera").exists())
        {
            assert!(scan(&OperaExtensions, &TableEnv::default()).is_empty());
        }
    }

    #[test]
    fn osquery_pack_query_runs() {
        let f = fixture();
        let engine = Engine::new(Arc::new(Registry::new(f.env)), Limits::default());
        let out = engine.run(&pack_query("vuln-management", "opera_extensions"));
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.rows.len(), 1);
        assert_eq!(out.columns.len(), SCHEMA.columns.len());
    }
}
