//! `os_version`: the distribution, from os-release; on Red Hat family and
//! Gentoo systems the `*-release` file beside it overrides the version, as
//! osquery does.

use std::path::Path;

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::os_version::TABLE as SCHEMA;

pub struct OsVersion;

#[derive(Debug, Clone, PartialEq)]
struct OsInfo {
    name: String,
    version: String,
    major: String,
    minor: String,
    patch: String,
    build: String,
    platform: String,
    platform_like: String,
    codename: String,
}

impl Default for OsInfo {
    /// osquery's answer when nothing is known.
    fn default() -> Self {
        Self {
            name: "Unknown".into(),
            version: String::new(),
            major: "0".into(),
            minor: "0".into(),
            patch: "0".into(),
            build: String::new(),
            platform: "posix".into(),
            platform_like: String::new(),
            codename: String::new(),
        }
    }
}

/// `KEY=value` pairs of an os-release file, values unquoted.
fn os_release_pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().filter_map(|line| {
        let (key, value) = line.split_once('=')?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.is_empty() {
            return None;
        }
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)));
        Some((key, unquoted.unwrap_or(value)))
    })
}

/// The `ID` of an os-release file (osquery_info's build_distro).
pub(super) fn os_release_id(path: &Path) -> Option<String> {
    let text = read_text(path)?;
    os_release_pairs(&text)
        .filter(|(k, _)| *k == "ID")
        .map(|(_, v)| v.to_string())
        .last()
}

fn apply_os_release(info: &mut OsInfo, text: &str) {
    for (key, value) in os_release_pairs(text) {
        let value = value.to_string();
        match key {
            "NAME" => info.name = value,
            "VERSION" => info.version = value,
            "BUILD_ID" => info.build = value,
            "ID" => info.platform = value,
            "ID_LIKE" => info.platform_like = value,
            "VERSION_ID" => {
                let mut parts = value.splitn(3, '.').filter(|p| !p.is_empty());
                let (major, minor, patch) = (parts.next(), parts.next(), parts.next());
                for (field, part) in [
                    (&mut info.major, major),
                    (&mut info.minor, minor),
                    (&mut info.patch, patch),
                ] {
                    if let Some(p) = part {
                        *field = p.to_string();
                    }
                }
            }
            // Distributions add their own codename keys (UBUNTU_CODENAME):
            // the last one in the file wins.
            k if k == "VERSION_CODENAME" || k.contains("CODENAME") => info.codename = value,
            _ => {}
        }
    }
}

/// Red Hat style release line, "<name> release <major>.<minor>[.<patch>] …":
/// osquery's regex `([\w+\s]+) .* ([0-9]+)\.([0-9]+)\.?(\w+)?`, searched
/// leftmost with greedy groups, written out by hand.
fn match_release_line(line: &str) -> Option<(String, String, String, String)> {
    let b = line.as_bytes();
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let in_name = |c: u8| is_word(c) || c == b'+' || c.is_ascii_whitespace();
    let digits_end = |from: usize| {
        (from..b.len())
            .find(|&i| !b[i].is_ascii_digit())
            .unwrap_or(b.len())
    };
    // The tail after the last space: "<digits>.<digits>[.][word]".
    let tail = |at: usize| -> Option<(String, String, String)> {
        let major_end = digits_end(at);
        if major_end == at || b.get(major_end) != Some(&b'.') {
            return None;
        }
        let minor_end = digits_end(major_end + 1);
        if minor_end == major_end + 1 {
            return None;
        }
        let mut p = minor_end;
        if b.get(p) == Some(&b'.') {
            p += 1;
        }
        let patch_end = (p..b.len()).find(|&i| !is_word(b[i])).unwrap_or(b.len());
        Some((
            line[at..major_end].to_string(),
            line[major_end + 1..minor_end].to_string(),
            line[p..patch_end].to_string(),
        ))
    };
    for start in 0..b.len() {
        let name_end = (start..b.len())
            .find(|&i| !in_name(b[i]))
            .unwrap_or(b.len());
        // Longest name first, then the longest `.*`: the regex's greediness.
        for i in (start + 1..name_end).rev() {
            if b[i] != b' ' {
                continue;
            }
            for j in (i + 1..b.len()).rev() {
                if b[j] != b' ' {
                    continue;
                }
                if let Some((major, minor, patch)) = tail(j + 1) {
                    return Some((line[start..i].to_string(), major, minor, patch));
                }
            }
        }
    }
    None
}

/// An older-style `*-release` file: names the version whole, and the
/// numbers when the line has them.
fn apply_release_file(info: &mut OsInfo, content: &str, platform: &str) {
    let collapse = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    info.platform = platform.to_string();
    info.platform_like = platform.to_string();
    // The matcher is cubic in the line length: release lines are short.
    let matched = content
        .lines()
        .map(collapse)
        .filter(|l| l.len() <= 512)
        .find_map(|l| match_release_line(&l));
    if let Some((name, major, minor, patch)) = matched {
        info.name = name;
        info.major = major;
        info.minor = minor;
        info.patch = if patch.is_empty() { "0".into() } else { patch };
    }
    info.version = collapse(content);
    info.build = String::new();
}

fn os_info(os_release: &Path) -> OsInfo {
    let mut info = OsInfo::default();
    if let Some(text) = read_text(os_release) {
        apply_os_release(&mut info, &text);
    }
    // The release files sit beside os-release (/etc).
    let dir = os_release.parent().unwrap_or(Path::new("/etc"));
    if let Some(content) = read_text(dir.join("redhat-release")) {
        apply_release_file(&mut info, &content, "rhel");
    } else if let Some(content) = read_text(dir.join("gentoo-release")) {
        apply_release_file(&mut info, &content, "gentoo");
    }
    info
}

impl Table for OsVersion {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let info = os_info(&ctx.env().paths.os_release);
        // Numbers that are not numbers (VERSION_ID=rolling) are NULL.
        let num = |s: &str| s.parse::<i64>().ok();
        let mut row = ctx.row();
        row.set("name", info.name)
            .set("version", info.version)
            .set_opt("major", num(&info.major))
            .set_opt("minor", num(&info.minor))
            .set_opt("patch", num(&info.patch))
            .set("build", info.build)
            .set("platform", info.platform)
            .set("platform_like", info.platform_like)
            .set("codename", info.codename)
            .set(
                "arch",
                rustix::system::uname()
                    .machine()
                    .to_string_lossy()
                    .into_owned(),
            )
            .set("pid_with_namespace", 0i64)
            .set("mount_namespace_id", "");
        out.push(row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, TableEnv};

    fn scan(env: &TableEnv) -> Row {
        let budget = Budget::unlimited();
        let ctx = ScanContext::all("os_version", SCHEMA.columns, &budget, env);
        let mut rows = Vec::new();
        OsVersion.generate(&ctx, &mut rows).unwrap();
        assert_eq!(rows.len(), 1);
        rows.pop().unwrap()
    }

    fn text(row: &Row, c: &str) -> String {
        match row.get(c) {
            Some(Value::Text(t)) => t.clone(),
            other => panic!("{c}: {other:?}"),
        }
    }

    fn int(row: &Row, c: &str) -> Option<i64> {
        match row.get(c) {
            Some(Value::Integer(i)) => Some(*i),
            Some(Value::Null) => None,
            other => panic!("{c}: {other:?}"),
        }
    }

    /// The real os-release, as the shell reads it (it is a shell fragment).
    #[test]
    fn real_os_release_matches_the_shell() {
        let env = TableEnv::default();
        let path = env.paths.os_release.to_str().unwrap().to_string();
        if !env.paths.os_release.exists() {
            return;
        }
        let out = Command::new("sh")
            .args([
                "-c",
                &format!(". '{path}'; printf '%s\\n' \"$NAME\" \"$ID\" \"$VERSION_ID\""),
            ])
            .output()
            .unwrap();
        let out = String::from_utf8(out.stdout).unwrap();
        let sh: Vec<&str> = out.lines().collect();
        let row = scan(&env);
        let dir = env.paths.os_release.parent().unwrap();
        if dir.join("redhat-release").exists() || dir.join("gentoo-release").exists() {
            return; // the release file decides; covered below
        }
        assert_eq!(text(&row, "name"), sh[0]);
        assert_eq!(text(&row, "platform"), sh[1]);
        let major = sh[2].split('.').next().unwrap();
        assert_eq!(int(&row, "major"), major.parse().ok());
        assert_eq!(
            text(&row, "arch"),
            String::from_utf8(Command::new("uname").arg("-m").output().unwrap().stdout)
                .unwrap()
                .trim()
        );
    }

    #[test]
    fn parses_os_release_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = TableEnv::default();
        env.paths.os_release = dir.path().join("os-release");
        std::fs::write(
            &env.paths.os_release,
            "NAME=\"Ubuntu\"\nVERSION=\"22.04.3 LTS (Jammy Jellyfish)\"\nID=ubuntu\n\
             ID_LIKE=debian\nPRETTY_NAME=\"Ubuntu 22.04.3 LTS\"\nVERSION_ID=\"22.04.3\"\n\
             VERSION_CODENAME=jammy\nUBUNTU_CODENAME='jammy2'\nBUILD_ID=\n# HOME_URL=x\n",
        )
        .unwrap();
        let row = scan(&env);
        assert_eq!(text(&row, "name"), "Ubuntu");
        assert_eq!(text(&row, "version"), "22.04.3 LTS (Jammy Jellyfish)");
        assert_eq!(
            (int(&row, "major"), int(&row, "minor"), int(&row, "patch")),
            (Some(22), Some(4), Some(3))
        );
        assert_eq!(text(&row, "platform"), "ubuntu");
        assert_eq!(text(&row, "platform_like"), "debian");
        assert_eq!(text(&row, "codename"), "jammy2");
        assert_eq!(text(&row, "build"), "");
        assert_eq!(
            os_release_id(&env.paths.os_release).as_deref(),
            Some("ubuntu")
        );

        // Missing, then empty: osquery's defaults.
        std::fs::remove_file(&env.paths.os_release).unwrap();
        let row = scan(&env);
        assert_eq!(text(&row, "name"), "Unknown");
        assert_eq!(text(&row, "platform"), "posix");
        assert_eq!(
            (int(&row, "major"), int(&row, "minor"), int(&row, "patch")),
            (Some(0), Some(0), Some(0))
        );
        std::fs::write(&env.paths.os_release, "").unwrap();
        assert_eq!(text(&scan(&env), "name"), "Unknown");
    }

    #[test]
    fn red_hat_release_file_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = TableEnv::default();
        env.paths.os_release = dir.path().join("os-release");
        std::fs::write(
            &env.paths.os_release,
            "NAME=\"Rocky Linux\"\nVERSION=\"9.3 (Blue Onyx)\"\nID=\"rocky\"\n\
             ID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("redhat-release"),
            "Rocky Linux release 9.3 (Blue Onyx)\n",
        )
        .unwrap();
        let row = scan(&env);
        assert_eq!(text(&row, "name"), "Rocky Linux");
        assert_eq!(text(&row, "version"), "Rocky Linux release 9.3 (Blue Onyx)");
        assert_eq!(
            (int(&row, "major"), int(&row, "minor"), int(&row, "patch")),
            (Some(9), Some(3), Some(0))
        );
        assert_eq!(text(&row, "platform"), "rhel");
        assert_eq!(text(&row, "platform_like"), "rhel");

        let m = |l: &str| match_release_line(l);
        let s = |a: &str, b: &str, c: &str, d: &str| {
            Some((a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        };
        assert_eq!(m("CentOS release 6.10 (Final)"), s("CentOS", "6", "10", ""));
        assert_eq!(
            m("Red Hat Enterprise Linux Server release 7.9 (Maipo)"),
            s("Red Hat Enterprise Linux Server", "7", "9", "")
        );
        assert_eq!(
            m("CentOS Linux release 7.9.2009 (Core)"),
            s("CentOS Linux", "7", "9", "2009")
        );
        assert_eq!(m("Fedora release 39 (Thirty Nine)"), None);
    }
}
