//! `chrome_extensions`: the extensions of every Chromium-based browser
//! profile (Chrome, Chromium, Brave, Edge, Opera, Vivaldi, Yandex) in every
//! local user's home, as osquery finds them on Linux:
//!
//! - a browser's directory (`~/.config/google-chrome`, …; see
//!   [`PROFILE_ROOTS`]) is itself a profile when it holds a `Preferences`
//!   or `Secure Preferences` file (Opera), else each of its subdirectories
//!   that does is one (`Default`, `Profile 1`, …);
//! - a profile's extensions are the `Extensions/<id>/<version>/` folders
//!   with a `manifest.json`, plus those its preferences reference elsewhere
//!   (`extensions.settings.<id>.path`, `extensions.opsettings` for Opera;
//!   unpacked extensions): `referenced` says whether the preferences name
//!   the folder, and then `referenced_identifier`, `state`, `from_webstore`
//!   and `install_time` come from that entry ("" otherwise);
//! - `name`, `version`, `description`, `author`, `update_url`,
//!   `default_locale`, `current_locale`, `permissions` and
//!   `optional_permissions` (joined with ", ") come from the manifest, with
//!   `__MSG_x__` strings looked up in `_locales/<locale>/messages.json`;
//!   `persistent` is `background.persistent`; `identifier` is the id Chrome
//!   derives from the manifest's `key` (empty without one); `manifest_hash`
//!   is the SHA-256 of manifest.json; `install_timestamp` is `install_time`
//!   (WebKit microseconds since 1601) in Unix seconds, 0 when unknown.
//!
//! `uid = N` limits the scan to those users. Everything is read beneath the
//! user's home as a user file ([`user_file`]): no symbolic links on the
//! way, no FIFOs or devices, owned by the user or root, size-capped. An
//! extension path in the preferences outside the user's home is not read.
//!
//! Where sweep differs from osquery, on purpose: a profile is read when one
//! of its two preference files is missing or unparsable (osquery skips it),
//! or has no name (`profile` is then empty); `manifest_json` is the manifest
//! re-encoded compactly with its own value types (osquery's turns every
//! value into a string); `key` holds the manifest's key (osquery leaves it
//! empty); and `~/.config/yandex-browser` (Yandex's stable channel) is read
//! besides osquery's `yandex-browser-beta`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::user_file::{self, Owner};
use super::util::user_homes;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::chrome_extensions::TABLE as SCHEMA;

pub struct ChromeExtensions;

/// Where each browser keeps its profiles, relative to a home directory,
/// with the `browser_type` it is reported as.
pub const PROFILE_ROOTS: &[(&str, &str)] = &[
    ("chrome", ".config/google-chrome"),
    ("chrome_beta", ".config/google-chrome-beta"),
    ("chrome_dev", ".config/google-chrome-unstable"),
    ("brave", ".config/BraveSoftware/Brave-Browser"),
    (
        "brave",
        ".var/app/com.brave.Browser/config/BraveSoftware/Brave-Browser",
    ),
    ("brave_beta", ".config/BraveSoftware/Brave-Browser-Beta"),
    (
        "brave_beta",
        ".var/app/com.brave.Browser/config/BraveSoftware/Brave-Browser-Beta",
    ),
    (
        "brave_nightly",
        ".config/BraveSoftware/Brave-Browser-Nightly",
    ),
    (
        "brave_nightly",
        ".var/app/com.brave.Browser/config/BraveSoftware/Brave-Browser-Nightly",
    ),
    ("chromium", ".config/chromium"),
    ("chromium", "snap/chromium/common/chromium"),
    ("chromium", ".var/app/org.chromium.Chromium/config/chromium"),
    ("yandex", ".config/yandex-browser"),
    ("yandex", ".config/yandex-browser-beta"),
    ("edge", ".config/microsoft-edge"),
    ("edge_beta", ".config/microsoft-edge-beta"),
    ("edge_dev", ".config/microsoft-edge-dev"),
    ("opera", ".config/opera"),
    ("vivaldi", ".config/vivaldi"),
    ("vivaldi", ".var/app/com.vivaldi.Vivaldi/config/vivaldi"),
];

const PREFERENCES: &str = "Preferences";
const SECURE_PREFERENCES: &str = "Secure Preferences";
const EXTENSIONS: &str = "Extensions";
const MANIFEST: &str = "manifest.json";

/// Seconds from 1601-01-01 (WebKit's epoch) to 1970-01-01.
const WEBKIT_EPOCH_OFFSET: i64 = 11_644_473_600;

impl Table for ChromeExtensions {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        for ext in extensions(ctx, PROFILE_ROOTS)? {
            let mut row = ctx.row();
            row.set("browser_type", ext.browser)
                .set("uid", ext.uid)
                .set("name", ext.prop("name"))
                .set("profile", ext.profile.as_str())
                .set("profile_path", ext.profile_path.as_str())
                .set(
                    "referenced_identifier",
                    ext.setting("referenced_identifier"),
                )
                .set("identifier", ext.identifier.as_str())
                .set("version", ext.prop("version"))
                .set("description", ext.prop("description"))
                .set("default_locale", ext.prop("default_locale"))
                .set("current_locale", ext.prop("current_locale"))
                .set("update_url", ext.prop("update_url"))
                .set("author", ext.prop("author"))
                .set("persistent", ext.persistent())
                .set("path", ext.path.as_str())
                .set("permissions", ext.prop("permissions"))
                .set("permissions_json", ext.json_prop("permissions_json"))
                .set("optional_permissions", ext.prop("optional_permissions"))
                .set(
                    "optional_permissions_json",
                    ext.json_prop("optional_permissions_json"),
                )
                .set("manifest_hash", ext.manifest_hash.as_str())
                .set("referenced", ext.referenced)
                .set("from_webstore", ext.setting("from_webstore"))
                .set("state", ext.setting("state"))
                .set("install_time", ext.setting("install_time"))
                .set("install_timestamp", ext.install_timestamp())
                .set("manifest_json", ext.manifest_json.as_str())
                .set("key", ext.prop("key"))
                .set("locale", ext.prop("default_locale"));
            out.push(row);
        }
        Ok(())
    }
}

/// One extension of one profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Extension {
    pub browser: &'static str,
    pub uid: u32,
    /// The profile's name ("" when it has none).
    pub profile: String,
    pub profile_path: String,
    /// The extension's folder.
    pub path: String,
    /// The name of the folder holding the version folder: the extension id
    /// for one installed in the profile's Extensions folder.
    pub folder_id: String,
    /// Whether the profile's preferences name this folder.
    pub referenced: bool,
    /// From the preferences entry: `referenced_identifier`, `state`,
    /// `from_webstore`, `install_time`.
    pub settings: BTreeMap<String, String>,
    /// Manifest values as text, localized; arrays joined with ", " (and
    /// their JSON under `<name>_json`).
    pub props: BTreeMap<String, String>,
    /// The id Chrome derives from the manifest's key; empty without one.
    pub identifier: String,
    pub manifest_hash: String,
    pub manifest_json: String,
}

impl Extension {
    pub fn prop(&self, name: &str) -> &str {
        self.props.get(name).map_or("", String::as_str)
    }

    /// A JSON-valued property: osquery's "{}" when the manifest has none.
    fn json_prop(&self, name: &str) -> &str {
        self.props.get(name).map_or("{}", String::as_str)
    }

    fn setting(&self, name: &str) -> &str {
        self.settings.get(name).map_or("", String::as_str)
    }

    /// `background.persistent` is true.
    pub fn persistent(&self) -> i64 {
        i64::from(self.prop("persistent").eq_ignore_ascii_case("true"))
    }

    /// `install_time` in Unix seconds; 0 when absent or before 1970.
    fn install_timestamp(&self) -> i64 {
        self.setting("install_time")
            .trim()
            .parse::<i64>()
            .ok()
            .map(|us| us / 1_000_000 - WEBKIT_EPOCH_OFFSET)
            .filter(|t| *t >= 0)
            .unwrap_or(0)
    }
}

/// Every extension of every profile of the browsers in `roots`, for the
/// users the query asks for (`uid`), in user, browser, profile, path order.
pub fn extensions(
    ctx: &ScanContext<'_>,
    roots: &[(&'static str, &str)],
) -> Result<Vec<Extension>, AgentError> {
    let only = ctx.eq_integers("uid");
    let mut out = Vec::new();
    for (uid, home) in user_homes(&ctx.env().paths.etc_passwd) {
        if only.as_ref().is_some_and(|o| !o.contains(&i64::from(uid))) {
            continue;
        }
        let home = Path::new(&home);
        for (browser, root) in roots {
            for profile in profile_dirs(ctx, uid, home, Path::new(root))? {
                ctx.check()?;
                read_profile(ctx, browser, uid, home, &profile, &mut out)?;
            }
        }
    }
    Ok(out)
}

/// Whether `rel` (beneath `home`) holds a preferences file.
fn is_profile(ctx: &ScanContext<'_>, uid: u32, home: &Path, rel: &Path) -> bool {
    [PREFERENCES, SECURE_PREFERENCES]
        .iter()
        .any(|f| user_file::open(ctx, home, &rel.join(f), Owner::User(uid)).is_some())
}

/// The profiles of one browser: its directory, or its subdirectories.
fn profile_dirs(
    ctx: &ScanContext<'_>,
    uid: u32,
    home: &Path,
    root: &Path,
) -> Result<Vec<PathBuf>, AgentError> {
    if is_profile(ctx, uid, home, root) {
        return Ok(vec![root.to_path_buf()]);
    }
    Ok(user_file::subdirs(ctx, home, root)?
        .into_iter()
        .map(|d| root.join(d))
        .filter(|p| is_profile(ctx, uid, home, p))
        .collect())
}

/// A preferences file as JSON; Null when missing or not JSON.
fn read_json(ctx: &ScanContext<'_>, uid: u32, home: &Path, rel: &Path) -> Result<Json, AgentError> {
    Ok(user_file::read_text(ctx, home, rel, Owner::User(uid))?
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Json::Null))
}

/// `path` made lexically absolute-and-clean, relative to `home` when it is
/// beneath it; None when it leaves `home` (or goes up with `..`).
fn beneath_home(home: &Path, path: &Path) -> Option<PathBuf> {
    let mut clean = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir => clean.push("/"),
            Component::Normal(n) => clean.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    let rel = clean.strip_prefix(home).ok()?;
    (!rel.as_os_str().is_empty()).then(|| rel.to_path_buf())
}

fn read_profile(
    ctx: &ScanContext<'_>,
    browser: &'static str,
    uid: u32,
    home: &Path,
    profile: &Path,
    out: &mut Vec<Extension>,
) -> Result<(), AgentError> {
    let prefs = read_json(ctx, uid, home, &profile.join(PREFERENCES))?;
    let secure = read_json(ctx, uid, home, &profile.join(SECURE_PREFERENCES))?;
    let name = [&prefs, &secure]
        .iter()
        .find_map(|p| p["profile"]["name"].as_str().filter(|n| !n.is_empty()))
        .unwrap_or_default()
        .to_string();
    let profile_path = home.join(profile);
    let extensions_dir = profile.join(EXTENSIONS);

    // Folder (relative to home) → its preferences entry, if referenced.
    let mut folders: BTreeMap<PathBuf, Option<BTreeMap<String, String>>> = BTreeMap::new();
    for id in user_file::subdirs(ctx, home, &extensions_dir)? {
        for version in user_file::subdirs(ctx, home, &extensions_dir.join(&id))? {
            folders.insert(extensions_dir.join(&id).join(version), None);
        }
    }
    for p in [&prefs, &secure] {
        let settings = match &p["extensions"]["settings"] {
            Json::Object(o) => o,
            _ => match &p["extensions"]["opsettings"] {
                Json::Object(o) => o,
                _ => continue,
            },
        };
        for (id, entry) in settings {
            let Some(path) = entry["path"].as_str() else {
                continue;
            };
            let path = Path::new(path);
            let absolute = if path.is_absolute() {
                path.to_path_buf()
            } else {
                profile_path.join(EXTENSIONS).join(path)
            };
            let Some(rel) = beneath_home(home, &absolute) else {
                continue;
            };
            let slot = folders.entry(rel).or_default();
            if slot.is_none() {
                *slot = Some(settings_of(id, entry));
            }
        }
    }

    for (folder, settings) in folders {
        ctx.check()?;
        let Some(raw) = user_file::read_text(ctx, home, &folder.join(MANIFEST), Owner::User(uid))?
        else {
            continue;
        };
        let Ok(manifest) = serde_json::from_str::<Json>(&raw) else {
            continue;
        };
        let mut props = properties(&manifest);
        localize(ctx, uid, home, &folder, &mut props)?;
        let identifier = props
            .get("key")
            .and_then(|k| extension_id(k))
            .unwrap_or_default();
        out.push(Extension {
            browser,
            uid,
            profile: name.clone(),
            profile_path: profile_path.to_string_lossy().into_owned(),
            path: home.join(&folder).to_string_lossy().into_owned(),
            folder_id: folder
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            referenced: settings.is_some(),
            settings: settings.unwrap_or_default(),
            props,
            identifier,
            manifest_hash: hex::encode(Sha256::digest(raw.as_bytes())),
            manifest_json: manifest.to_string(),
        });
    }
    Ok(())
}

/// A JSON scalar as text, as osquery's property tree holds it.
fn scalar_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The values a preferences entry gives its extension.
fn settings_of(id: &str, entry: &Json) -> BTreeMap<String, String> {
    let mut s = BTreeMap::new();
    s.insert("referenced_identifier".to_string(), id.to_string());
    for key in ["from_webstore", "state", "install_time"] {
        if let Some(v) = scalar_text(&entry[key]) {
            s.insert(key.to_string(), v);
        }
    }
    s
}

/// The manifest values the table reports.
fn properties(manifest: &Json) -> BTreeMap<String, String> {
    let mut props = BTreeMap::new();
    for (name, value) in [
        ("name", &manifest["name"]),
        ("update_url", &manifest["update_url"]),
        ("version", &manifest["version"]),
        ("author", &manifest["author"]),
        ("default_locale", &manifest["default_locale"]),
        ("current_locale", &manifest["current_locale"]),
        ("persistent", &manifest["background"]["persistent"]),
        ("description", &manifest["description"]),
        ("key", &manifest["key"]),
    ] {
        if let Some(text) = scalar_text(value) {
            props.insert(name.to_string(), text);
        }
    }
    for name in ["permissions", "optional_permissions"] {
        let value = &manifest[name];
        if value.is_null() {
            continue;
        }
        let list: Vec<String> = match value {
            Json::Array(items) => items.iter().filter_map(scalar_text).collect(),
            _ => Vec::new(),
        };
        props.insert(name.to_string(), list.join(", "));
        props.insert(format!("{name}_json"), value.to_string());
    }
    props
}

/// Replaces `__MSG_name__` values by their message in the extension's
/// default locale (else its current locale, else "en"). A value whose
/// message is missing is left as it is.
fn localize(
    ctx: &ScanContext<'_>,
    uid: u32,
    home: &Path,
    folder: &Path,
    props: &mut BTreeMap<String, String>,
) -> Result<(), AgentError> {
    const PREFIX: &str = "__MSG_";
    if !props.values().any(|v| v.starts_with(PREFIX)) {
        return Ok(());
    }
    let locale = props
        .get("default_locale")
        .or_else(|| props.get("current_locale"))
        .map_or("en", String::as_str)
        .to_string();
    if locale.is_empty() || locale.contains(['/', '\\']) || locale == ".." || locale == "." {
        return Ok(());
    }
    let file = folder.join("_locales").join(&locale).join("messages.json");
    let Some(Json::Object(messages)) = user_file::read_text(ctx, home, &file, Owner::User(uid))?
        .and_then(|t| serde_json::from_str::<Json>(&t).ok())
    else {
        return Ok(());
    };
    for value in props.values_mut() {
        let Some(key) = value.strip_prefix(PREFIX) else {
            continue;
        };
        let key = key.strip_suffix("__").unwrap_or(key);
        // Message names are case-insensitive.
        let message = messages
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, m)| m["message"].as_str());
        if let Some(m) = message {
            *value = m.to_string();
        }
    }
    Ok(())
}

/// The id Chrome gives an extension with this public key (the manifest's
/// base64 `key`): the first 128 bits of its SHA-256, each hex digit written
/// as a letter from `a` (0) to `p` (15).
pub fn extension_id(key: &str) -> Option<String> {
    let compact: String = key.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()
        .filter(|d| !d.is_empty())?;
    let hash = Sha256::digest(&der);
    Some(
        hash[..16]
            .iter()
            .flat_map(|b| [b >> 4, b & 0x0f])
            .map(|n| char::from(b'a' + n))
            .collect(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::symlink;
    use std::sync::Arc;

    use rusqlite::types::Value;

    use super::*;
    use crate::engine::{Engine, Limits};
    use crate::tables::testing::{pack_query, scan, scan_with};
    use crate::tables::{HostPaths, Op, Registry, TableEnv};

    /// An extension key: a 1024-bit RSA public key (DER, base64), as a
    /// manifest's `key` holds one. Its id, worked out with coreutils:
    /// `printf %s KEY | base64 -d | sha256sum | cut -c1-32 | tr 0-9a-f a-p`.
    pub const TEST_KEY: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDN6hM0rsDYGbzQPQfOaTqlwlY3Jb2ThSnaGjsWaf1ZLrJ9D2K2+BhjO0aDHIA/48jQgbfV6wJ4bT6BRgT1DKJSeMv9CL+PBr9+ie5jqMTPaPWlFbRt7QUcuHRJpGGpQZ8LR7aBu/gZOnAn2TLzw5/qSRx3dYYXj3zH2tsGsQidRQIDAQAB";
    pub const TEST_ID: &str = "jpcacofmedgcmjdkegdghbjiciddajel";

    #[test]
    fn derives_chrome_extension_ids() {
        assert_eq!(extension_id(TEST_KEY).as_deref(), Some(TEST_ID));
        assert_eq!(extension_id("not base64!"), None);
        assert_eq!(extension_id(""), None);
    }

    /// `sha256sum` of a file: an independent hash of the manifest.
    pub fn sha256sum(path: &Path) -> String {
        let out = std::process::Command::new("sha256sum")
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()[..64].to_string()
    }

    pub use crate::tables::testing::write_file as write;

    /// Two users' homes with Chrome, Opera and a hostile link.
    pub struct Fixture {
        pub _dir: tempfile::TempDir,
        pub env: TableEnv,
        pub alice: PathBuf,
    }

    pub const WEBSTORE_ID: &str = "aapbdbdomjkkjkaonfhkkikfgjllcleb";

    pub fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let alice = dir.path().join("alice");
        let bob = dir.path().join("bob");
        let chrome = alice.join(".config/google-chrome");
        let default = chrome.join("Default");
        write(
            &default.join("Preferences"),
            r#"{"profile": {"name": "Person 1"}, "extensions": {"settings": {}}}"#,
        );
        write(
            &default.join("Secure Preferences"),
            &format!(
                r#"{{"extensions": {{"settings": {{
                    "{WEBSTORE_ID}": {{"path": "{WEBSTORE_ID}/2.0.12_0", "from_webstore": true,
                        "state": 1, "install_time": "13345678901234567"}},
                    "devext": {{"path": "{}/dev/myext", "state": 0, "install_time": "0"}},
                    "outside": {{"path": "/etc/chrome-ext"}},
                    "climber": {{"path": "../../../../../etc"}}
                }}}}}}"#,
                alice.display()
            ),
        );
        let translate = default.join(format!("Extensions/{WEBSTORE_ID}/2.0.12_0"));
        write(
            &translate.join("manifest.json"),
            &format!(
                r#"{{"name": "__MSG_appName__", "version": "2.0.12",
                   "description": "__MSG_appDesc__", "default_locale": "en_US",
                   "current_locale": "de", "update_url": "https://clients2.google.com/service/update2/crx",
                   "background": {{"persistent": false}}, "key": "{TEST_KEY}",
                   "permissions": ["tabs", "storage", {{"usbDevices": []}}],
                   "optional_permissions": ["https://*/*"],
                   "manifest_version": 2}}"#
            ),
        );
        write(
            &translate.join("_locales/en_US/messages.json"),
            r#"{"appName": {"message": "Google Translate"}, "APPDESC": {"message": "View translations"}}"#,
        );
        // Not referenced by the preferences; author is an object.
        let lonely = default.join("Extensions/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/1.0_0");
        write(
            &lonely.join("manifest.json"),
            r#"{"name": "Lonely", "version": "1.0", "author": {"email": "a@b.c"},
               "background": {"persistent": true}}"#,
        );
        // A manifest that is a link to another file: refused, no row.
        let secret = dir.path().join("secret.json");
        write(&secret, r#"{"name": "stolen", "version": "6"}"#);
        let linked = default.join("Extensions/cccccccccccccccccccccccccccccccc/1");
        std::fs::create_dir_all(&linked).unwrap();
        symlink(&secret, linked.join("manifest.json")).unwrap();
        // An unpacked extension elsewhere in the home.
        write(
            &alice.join("dev/myext/manifest.json"),
            r#"{"name": "My Ext", "version": "0.1", "manifest_version": 3}"#,
        );
        // A second profile without a name; a folder that is no profile.
        write(&chrome.join("Profile 2/Preferences"), "{}");
        write(
            &chrome.join("Profile 2/Extensions/dddddddddddddddddddddddddddddddd/3_0/manifest.json"),
            r#"{"name": "Second", "version": "3"}"#,
        );
        write(
            &chrome.join("Crashpad/Extensions/eeee/1/manifest.json"),
            r#"{"name": "Not a profile", "version": "1"}"#,
        );
        // Opera: the browser directory is the profile; opsettings.
        let opera = alice.join(".config/opera");
        write(
            &opera.join("Preferences"),
            r#"{"extensions": {"opsettings": {"operaid": {"path": "operaid/1.2_0", "state": 1}}}}"#,
        );
        write(
            &opera.join("Extensions/operaid/1.2_0/manifest.json"),
            r#"{"name": "Opera Ad Blocker", "version": "1.2", "default_locale": "en",
               "author": "Opera", "description": "Blocks ads", "update_url": "https://u"}"#,
        );
        // Bob's Chromium is a link to Alice's Chrome: not followed.
        std::fs::create_dir_all(bob.join(".config")).unwrap();
        symlink(&chrome, bob.join(".config/chromium")).unwrap();

        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            format!(
                "alice:x:1001:1001::{}:/bin/sh\nbob:x:1002:1002::{}:/bin/sh\n",
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
        Fixture {
            _dir: dir,
            env,
            alice,
        }
    }

    fn text(row: &Row, col: &str) -> String {
        match row.get(col) {
            Some(Value::Text(t)) => t.clone(),
            other => panic!("{col}: {other:?}"),
        }
    }

    fn int(row: &Row, col: &str) -> i64 {
        match row.get(col) {
            Some(Value::Integer(i)) => *i,
            other => panic!("{col}: {other:?}"),
        }
    }

    #[test]
    fn reads_every_profile_of_every_user() {
        let f = fixture();
        let rows = scan(&ChromeExtensions, &f.env);
        let a = f.alice.display().to_string();
        let paths: Vec<(String, String)> = rows
            .iter()
            .map(|r| (text(r, "browser_type"), text(r, "path")))
            .collect();
        let chrome = format!("{a}/.config/google-chrome");
        assert_eq!(
            paths,
            vec![
                (
                    "chrome".into(),
                    format!("{chrome}/Default/Extensions/{WEBSTORE_ID}/2.0.12_0")
                ),
                (
                    "chrome".into(),
                    format!("{chrome}/Default/Extensions/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/1.0_0")
                ),
                ("chrome".into(), format!("{a}/dev/myext")),
                (
                    "chrome".into(),
                    format!("{chrome}/Profile 2/Extensions/dddddddddddddddddddddddddddddddd/3_0")
                ),
                (
                    "opera".into(),
                    format!("{a}/.config/opera/Extensions/operaid/1.2_0")
                ),
            ]
        );

        // The web store extension, every column worked out by hand.
        let r = &rows[0];
        let manifest = Path::new(&text(r, "path")).join("manifest.json");
        let t = |s: &str| Value::Text(s.into());
        let expected: Vec<(&str, Value)> = vec![
            ("browser_type", t("chrome")),
            ("uid", Value::Integer(1001)),
            ("name", t("Google Translate")),
            ("profile", t("Person 1")),
            ("profile_path", t(&format!("{chrome}/Default"))),
            ("referenced_identifier", t(WEBSTORE_ID)),
            ("identifier", t(TEST_ID)),
            ("version", t("2.0.12")),
            ("description", t("View translations")),
            ("default_locale", t("en_US")),
            ("current_locale", t("de")),
            (
                "update_url",
                t("https://clients2.google.com/service/update2/crx"),
            ),
            ("author", t("")),
            ("persistent", Value::Integer(0)),
            ("permissions", t("tabs, storage")),
            (
                "permissions_json",
                t(r#"["tabs","storage",{"usbDevices":[]}]"#),
            ),
            ("optional_permissions", t("https://*/*")),
            ("optional_permissions_json", t(r#"["https://*/*"]"#)),
            ("manifest_hash", t(&sha256sum(&manifest))),
            ("referenced", Value::Integer(1)),
            ("from_webstore", t("true")),
            ("state", t("1")),
            ("install_time", t("13345678901234567")),
            // 13345678901234567 µs after 1601 = 13345678901 s; less
            // 11644473600 s to 1970.
            ("install_timestamp", Value::Integer(1_701_205_301)),
            ("key", t(TEST_KEY)),
            ("locale", t("en_US")),
        ];
        for (col, value) in expected {
            assert_eq!(r.get(col), Some(&value), "{col}");
        }
        let reparsed: Json = serde_json::from_str(&text(r, "manifest_json")).unwrap();
        let original: Json =
            serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        assert_eq!(reparsed, original);
        assert!(!text(r, "manifest_json").contains('\n'));

        // Unreferenced: empty settings, persistent, no key, no permissions.
        let r = &rows[1];
        assert_eq!(int(r, "referenced"), 0);
        assert_eq!(int(r, "persistent"), 1);
        assert_eq!(text(r, "name"), "Lonely");
        assert_eq!(text(r, "author"), "");
        for col in [
            "referenced_identifier",
            "state",
            "from_webstore",
            "install_time",
            "identifier",
            "permissions",
        ] {
            assert_eq!(text(r, col), "", "{col}");
        }
        assert_eq!(text(r, "permissions_json"), "{}");
        assert_eq!(int(r, "install_timestamp"), 0);

        // Unpacked, referenced by an absolute path: install_time 0 is before 1970.
        let r = &rows[2];
        assert_eq!(
            (
                text(r, "referenced_identifier"),
                text(r, "state"),
                int(r, "referenced")
            ),
            ("devext".into(), "0".into(), 1)
        );
        assert_eq!(int(r, "install_timestamp"), 0);

        // The profile without a name.
        assert_eq!(text(&rows[3], "profile"), "");
        assert_eq!(
            text(&rows[3], "profile_path"),
            format!("{chrome}/Profile 2")
        );

        // Opera: opsettings reference it.
        let r = &rows[4];
        assert_eq!(text(r, "referenced_identifier"), "operaid");
        assert_eq!(text(r, "profile_path"), format!("{a}/.config/opera"));
        assert_eq!(text(r, "profile"), "");

        // uid = 1002 (bob, whose browser is a link): nothing.
        let bob = scan_with(
            &ChromeExtensions,
            &f.env,
            &[("uid", Op::Eq, vec![1002.into()])],
        );
        assert!(bob.is_empty());
        let alice = scan_with(
            &ChromeExtensions,
            &f.env,
            &[("uid", Op::Eq, vec![1001.into()])],
        );
        assert_eq!(alice.len(), 5);
    }

    #[test]
    fn no_browser_no_rows() {
        // This machine has no Chromium-based browser profile.
        let homes = user_homes(Path::new("/etc/passwd"));
        let any = homes.iter().any(|(_, h)| {
            PROFILE_ROOTS
                .iter()
                .any(|(_, r)| Path::new(h).join(r).exists())
        });
        if !any {
            assert!(scan(&ChromeExtensions, &TableEnv::default()).is_empty());
        }
    }

    #[test]
    fn osquery_pack_queries_run() {
        let f = fixture();
        let engine = Engine::new(Arc::new(Registry::new(f.env)), Limits::default());
        for (pack, name) in [
            ("it-compliance", "chrome_extensions"),
            ("vuln-management", "chrome_extensions"),
        ] {
            let out = engine.run(&pack_query(pack, name));
            assert!(out.error.is_none(), "{pack}: {:?}", out.error);
            assert_eq!(out.rows.len(), 5, "{pack}");
        }
    }
}
