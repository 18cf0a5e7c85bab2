//! `apt_sources`: the `deb` repositories APT is configured with, one row
//! per repository URI and suite, from `/etc/apt/sources.list` and
//! `sources.list.d/*.list` (one-line format) and `sources.list.d/*.sources`
//! (deb822 format, Debian 12's default `debian.sources`), as osquery lists
//! them. `deb-src` entries and disabled deb822 stanzas are left out.
//!
//! `name` is the URI without its scheme plus the suite, `base_uri` the URI
//! without trailing slashes. `release`, `version`, `maintainer`,
//! `components` and `architectures` are the `Codename`, `Version`,
//! `Origin`, `Components` and `Architectures` of the repository's Release
//! file as `apt update` last downloaded it to /var/lib/apt/lists.
//!
//! `pid_with_namespace = N` reads the files as process N sees them (through
//! its root, /proc/N/root), where osquery enters its mount namespace.
//!
//! Differences from osquery: osquery leaves out a repository whose Release
//! file was never downloaded; here it is listed, those five columns NULL.
//! osquery guesses the downloaded file's name; here it is named the way APT
//! names it (suites with a `/` inside live under `dists/`, unsafe
//! characters are escaped, credentials dropped), so such repositories are
//! found. deb822's `Enabled:` takes APT's boolean words (osquery only
//! `on`), and comment lines no longer end a stanza early.

use std::path::{Path, PathBuf};

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::apt_sources::TABLE as SCHEMA;

pub struct AptSources;

impl Table for AptSources {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let paths = &ctx.env().paths;
        let pids = ctx
            .eq_integers("pid_with_namespace")
            .unwrap_or_else(|| vec![0]);
        for pid in pids {
            ctx.check()?;
            // Another process's view of the files: under its root directory.
            let root = match pid {
                0 => PathBuf::from("/"),
                p if p > 0 => PathBuf::from(format!("/proc/{p}/root")),
                _ => continue,
            };
            if !root.exists() {
                continue; // no such process
            }
            let (etc_apt, lists) = (under(&root, &paths.etc_apt), under(&root, &paths.apt_lists));
            for (file, source) in sources(&etc_apt) {
                // The file as the process names it.
                let file = Path::new("/").join(file.strip_prefix(&root).unwrap_or(&file));
                let release = read_release(&lists, &source);
                let mut row = ctx.row();
                row.set(
                    "name",
                    format!("{} {}", strip_scheme(&source.uri), source.suite),
                )
                .set("source", file.to_string_lossy().into_owned())
                .set("base_uri", &source.uri)
                .set("pid_with_namespace", pid);
                for (column, field) in [
                    ("release", "Codename"),
                    ("version", "Version"),
                    ("maintainer", "Origin"),
                    ("components", "Components"),
                    ("architectures", "Architectures"),
                ] {
                    row.set_opt(
                        column,
                        release
                            .as_ref()
                            .map(|r| field_value(r, field).unwrap_or_default()),
                    );
                }
                out.push(row);
            }
        }
        Ok(())
    }
}

/// An absolute `path` as seen from `root`.
fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// One repository: a base URI (no trailing slash) and a suite.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    uri: String,
    suite: String,
}

/// The sources of every list file under `etc_apt`, with the file each is in:
/// sources.list, then sources.list.d's `*.list`, then its `*.sources`.
fn sources(etc_apt: &Path) -> Vec<(PathBuf, Source)> {
    let mut out = Vec::new();
    let main = etc_apt.join("sources.list");
    let mut one_line = vec![main];
    let mut deb822 = Vec::new();
    if let Ok(dir) = std::fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut files: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            match f.extension().and_then(|e| e.to_str()) {
                Some("list") => one_line.push(f),
                Some("sources") => deb822.push(f),
                _ => {}
            }
        }
    }
    for file in one_line {
        if let Some(text) = read_text(&file) {
            out.extend(
                text.lines()
                    .filter_map(parse_line)
                    .map(|s| (file.clone(), s)),
            );
        }
    }
    for file in deb822 {
        if let Some(text) = read_text(&file) {
            out.extend(parse_deb822(&text).into_iter().map(|s| (file.clone(), s)));
        }
    }
    out
}

/// A URI as osquery keeps it: trailing slashes removed; None unless it has
/// a scheme (`http://`, `https://`, `ftp://`, `file://`, …) and more.
fn clean_uri(uri: &str) -> Option<String> {
    let uri = uri.trim_end_matches('/');
    let (_, rest) = uri.split_once("://")?;
    (!rest.is_empty()).then(|| uri.to_string())
}

fn strip_scheme(uri: &str) -> &str {
    uri.split_once("://").map_or(uri, |(_, rest)| rest)
}

/// One line of the one-line format:
/// `deb [option=value …] uri suite [component …]  # comment`.
fn parse_line(line: &str) -> Option<Source> {
    let line = line.split('#').next().unwrap_or("");
    let rest = line.trim_start().strip_prefix("deb")?;
    if !rest.starts_with([' ', '\t']) {
        return None; // deb-src, or not an entry
    }
    let mut rest = rest.trim_start();
    if let Some(options) = rest.strip_prefix('[') {
        rest = options.split_once(']')?.1;
    }
    let mut words = rest.split_whitespace();
    let uri = clean_uri(words.next()?)?;
    let suite = words.next()?.to_string();
    Some(Source { uri, suite })
}

/// APT's boolean words (`StringToBool`); None for anything else.
fn apt_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "with" | "on" | "enable" | "1" => Some(true),
        "no" | "false" | "without" | "off" | "disable" | "0" => Some(false),
        _ => None,
    }
}

/// The stanzas of a deb822 `.sources` file: every URI with every suite of
/// each enabled stanza whose `Types` include `deb`.
fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut flush = |fields: &mut Vec<(String, String)>| {
        let get = |k: &str| {
            fields
                .iter()
                .rev()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
        };
        let is_deb = get("types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        let enabled = get("enabled").is_none_or(|e| apt_bool(e.trim()) != Some(false));
        if is_deb && enabled {
            let uris: Vec<String> = get("uris")
                .unwrap_or("")
                .split_whitespace()
                .filter_map(clean_uri)
                .collect();
            for uri in &uris {
                for suite in get("suites").unwrap_or("").split_whitespace() {
                    out.push(Source {
                        uri: uri.clone(),
                        suite: suite.to_string(),
                    });
                }
            }
        }
        fields.clear();
    };
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let line = line.split('#').next().unwrap_or("");
        if line.trim().is_empty() {
            flush(&mut fields);
        } else if line.starts_with([' ', '\t']) {
            // A continuation line: part of the field before it.
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            fields.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    flush(&mut fields);
    out
}

/// The file APT downloads a repository's InRelease (or Release) to: its
/// URL without scheme and credentials, unsafe characters `%xx`-escaped,
/// `/` turned into `_` (APT's `URItoFileName`).
fn list_file_name(source: &Source, file: &str) -> String {
    let suite = &source.suite;
    let base = format!("{}/", source.uri);
    let url = if suite == "/" {
        format!("{base}{file}")
    } else if suite.ends_with('/') {
        format!("{base}{suite}{file}")
    } else {
        format!("{base}dists/{suite}/{file}")
    };
    let rest = strip_scheme(&url);
    // user:password@host → host
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let mut name = String::new();
    for b in format!("{host}{path}").bytes() {
        if b <= 0x20 || b >= 0x7f || b"\\|{}[]<>\"^~_=!@#$%&*".contains(&b) {
            name.push_str(&format!("%{b:02x}"));
        } else if b == b'/' {
            name.push('_');
        } else {
            name.push(b as char);
        }
    }
    name
}

/// The repository's downloaded Release file (InRelease preferred), if any.
fn read_release(lists: &Path, source: &Source) -> Option<String> {
    ["InRelease", "Release"]
        .iter()
        .find_map(|f| read_text(lists.join(list_file_name(source, f))))
}

/// A field of a Release file: `Key: value` lines up to the signature, the
/// armor header of a signed file (`Hash: …`) skipped.
fn field_value(release: &str, key: &str) -> Option<String> {
    let mut lines = release.lines().peekable();
    if lines.peek() == Some(&"-----BEGIN PGP SIGNED MESSAGE-----") {
        for l in lines.by_ref() {
            if l.trim().is_empty() {
                break;
            }
        }
    }
    for line in lines {
        if line == "-----BEGIN PGP SIGNATURE-----" {
            break;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k == key {
                return Some(v.trim().to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::process::Command;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::testing::{scan, scan_with, text};
    use crate::tables::{HostPaths, Op, TableEnv};

    /// Debian 12's debian.sources as installed, with a commented snapshot
    /// line as Debian's container images have it.
    const DEBIAN_SOURCES: &str = "\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    /// The head of Debian's bookworm InRelease (signed).
    const BOOKWORM_INRELEASE: &str = "\
-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Origin: Debian
Label: Debian
Suite: oldstable
Version: 12.15
Codename: bookworm
Changelogs: https://metadata.ftp-master.debian.org/changelogs/@CHANGEPATH@_changelog
Date: Sat, 11 Jul 2026 10:16:37 UTC
Acquire-By-Hash: yes
No-Support-for-Architecture-all: Packages
Architectures: all amd64 arm64 armel armhf i386 mips64el mipsel ppc64el s390x
Components: main contrib non-free-firmware non-free
Description: Debian 12.15 Released 11 July 2026
MD5Sum:
 0ed6d4c8891eb86358b94bb35d9e4da4  1484322 contrib/Contents-all
-----BEGIN PGP SIGNATURE-----

iQIzBAEBCAAdFiEE
-----END PGP SIGNATURE-----
";

    fn fixture() -> (tempfile::TempDir, TableEnv) {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc/apt");
        let lists = root.path().join("lists");
        std::fs::create_dir_all(etc.join("sources.list.d")).unwrap();
        std::fs::create_dir_all(&lists).unwrap();
        std::fs::write(
            etc.join("sources.list"),
            "# See sources.list(5)\n\
             deb http://archive.ubuntu.com/ubuntu/ jammy main restricted\n\
             deb-src http://archive.ubuntu.com/ubuntu/ jammy main restricted\n\
             # deb http://archive.ubuntu.com/ubuntu/ jammy-backports main\n\
             deb [arch=amd64 signed-by=/usr/share/keyrings/docker.gpg] https://download.docker.com/linux/ubuntu jammy stable # docker\n\
             deb\thttps://user:secret@repo.example.com/my_repo/ stable/updates main\n\
             deb [ trusted=yes ] file:///srv/local-repo ./\n\
             deb http://broken\n\
             debian-thing http://x y\n",
        )
        .unwrap();
        std::fs::write(etc.join("sources.list.d/debian.sources"), DEBIAN_SOURCES).unwrap();
        std::fs::write(
            etc.join("sources.list.d/extra.sources"),
            "Types: deb deb-src\nURIs: https://a.example.org/apt/ https://b.example.org/apt\n\
             Suites: noble\nComponents: main\nEnabled: yes\n\n\
             Types: deb\nURIs: https://off.example.org\nSuites: x\nEnabled: no\n\n\
             Types: deb-src\nURIs: https://src.example.org\nSuites: x\n\n\
             Types: deb\nURIs: https://keyed.example.org\nSuites: y\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n Suites: nope\n -----END PGP PUBLIC KEY BLOCK-----\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("sources.list.d/old.list.disabled"),
            "deb http://disabled.example.org x main\n",
        )
        .unwrap();
        std::fs::write(
            lists.join("deb.debian.org_debian_dists_bookworm_InRelease"),
            BOOKWORM_INRELEASE,
        )
        .unwrap();
        std::fs::write(
            lists.join("archive.ubuntu.com_ubuntu_dists_jammy_Release"),
            "Origin: Ubuntu\nLabel: Ubuntu\nSuite: jammy\nVersion: 22.04\nCodename: jammy\n\
             Architectures: amd64 i386\nComponents: main restricted universe multiverse\n",
        )
        .unwrap();
        // APT's name for …/my_repo/dists/stable/updates/: '_' escaped, no credentials.
        std::fs::write(
            lists.join("repo.example.com_my%5frepo_dists_stable_updates_InRelease"),
            "Origin: Example\nCodename: stable\n",
        )
        .unwrap();
        // file:///srv/local-repo/./InRelease: no host, so the path's leading '/'.
        std::fs::write(lists.join("_srv_local-repo_._InRelease"), "Origin: Local\n").unwrap();
        let env = TableEnv {
            paths: HostPaths {
                etc_apt: etc,
                apt_lists: lists,
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        (root, env)
    }

    #[test]
    fn reads_one_line_and_deb822_files() {
        let (root, env) = fixture();
        let rows = scan(&AptSources, &env);
        let etc = root.path().join("etc/apt");
        let src = |f: &str| etc.join(f).to_string_lossy().into_owned();
        let t = |s: &str| Value::Text(s.into());
        let n = Value::Null;
        let got: Vec<Vec<Value>> = rows.iter().map(|r| r.values().to_vec()).collect();
        let list = src("sources.list");
        let debian = src("sources.list.d/debian.sources");
        let extra = src("sources.list.d/extra.sources");
        let none = |name: &str, file: &str, uri: &str| {
            vec![
                t(name),
                t(file),
                t(uri),
                n.clone(),
                n.clone(),
                n.clone(),
                n.clone(),
                n.clone(),
                Value::Integer(0),
            ]
        };
        assert_eq!(
            got,
            vec![
                vec![
                    t("archive.ubuntu.com/ubuntu jammy"),
                    t(&list),
                    t("http://archive.ubuntu.com/ubuntu"),
                    t("jammy"),
                    t("22.04"),
                    t("Ubuntu"),
                    t("main restricted universe multiverse"),
                    t("amd64 i386"),
                    Value::Integer(0),
                ],
                none(
                    "download.docker.com/linux/ubuntu jammy",
                    &list,
                    "https://download.docker.com/linux/ubuntu"
                ),
                vec![
                    t("user:secret@repo.example.com/my_repo stable/updates"),
                    t(&list),
                    t("https://user:secret@repo.example.com/my_repo"),
                    t("stable"),
                    t(""),
                    t("Example"),
                    t(""),
                    t(""),
                    Value::Integer(0),
                ],
                vec![
                    t("/srv/local-repo ./"),
                    t(&list),
                    t("file:///srv/local-repo"),
                    t(""),
                    t(""),
                    t("Local"),
                    t(""),
                    t(""),
                    Value::Integer(0),
                ],
                vec![
                    t("deb.debian.org/debian bookworm"),
                    t(&debian),
                    t("http://deb.debian.org/debian"),
                    t("bookworm"),
                    t("12.15"),
                    t("Debian"),
                    t("main contrib non-free-firmware non-free"),
                    t("all amd64 arm64 armel armhf i386 mips64el mipsel ppc64el s390x"),
                    Value::Integer(0),
                ],
                none(
                    "deb.debian.org/debian bookworm-updates",
                    &debian,
                    "http://deb.debian.org/debian"
                ),
                none(
                    "deb.debian.org/debian-security bookworm-security",
                    &debian,
                    "http://deb.debian.org/debian-security"
                ),
                none(
                    "a.example.org/apt noble",
                    &extra,
                    "https://a.example.org/apt"
                ),
                none(
                    "b.example.org/apt noble",
                    &extra,
                    "https://b.example.org/apt"
                ),
                none("keyed.example.org y", &extra, "https://keyed.example.org"),
            ]
        );
    }

    #[test]
    fn reads_through_a_process_root() {
        let (_root, env) = fixture();
        let me = i64::from(std::process::id());
        // The fixture read again through /proc/<this process>/root: the same
        // sources, files named as the process sees them, marked with its pid.
        let rows = scan_with(
            &AptSources,
            &env,
            &[("pid_with_namespace", Op::Eq, vec![Value::Integer(me)])],
        );
        let direct = scan(&AptSources, &env);
        assert_eq!(rows.len(), direct.len());
        for (a, b) in rows.iter().zip(&direct) {
            assert_eq!(a.values()[..8], b.values()[..8]);
            assert_eq!(a.get("pid_with_namespace"), Some(&Value::Integer(me)));
        }
        let rows = scan_with(
            &AptSources,
            &env,
            &[(
                "pid_with_namespace",
                Op::Eq,
                vec![Value::Integer(i64::from(i32::MAX))],
            )],
        );
        assert!(rows.is_empty());
    }

    /// This host's repositories against `apt-cache policy`, which prints
    /// each downloaded repository with its Release file's origin (o=),
    /// codename (n=) and version (v=).
    #[test]
    fn matches_apt_cache_policy() {
        let out = Command::new("apt-cache").arg("policy").output().expect(
            "apt-cache is needed (this test runs on Debian-family hosts): apt-get install apt",
        );
        assert!(out.status.success());
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        // " 500 http://deb.debian.org/debian bookworm/main amd64 Packages"
        // "     release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=amd64"
        let mut policy = BTreeSet::new();
        let lines: Vec<&str> = printed.lines().collect();
        for pair in lines.windows(2) {
            let words: Vec<&str> = pair[0].split_whitespace().collect();
            let Some(release) = pair[1].trim().strip_prefix("release ") else {
                continue;
            };
            if words.len() < 3 || !words[1].contains("://") {
                continue;
            }
            let attrs: std::collections::BTreeMap<&str, &str> = release
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .collect();
            let suite = words[2].rsplit_once('/').map_or(words[2], |(s, _)| s);
            policy.insert((
                format!("{} {suite}", strip_scheme(words[1].trim_end_matches('/'))),
                attrs.get("n").unwrap_or(&"").to_string(),
                attrs.get("v").unwrap_or(&"").to_string(),
                attrs.get("o").unwrap_or(&"").to_string(),
            ));
        }
        let rows = scan(&AptSources, &TableEnv::default());
        let ours: BTreeSet<(String, String, String, String)> = rows
            .iter()
            .filter(|r| r.get("release") != Some(&Value::Null))
            .map(|r| {
                (
                    text(r, "name"),
                    text(r, "release"),
                    text(r, "version"),
                    text(r, "maintainer"),
                )
            })
            .collect();
        assert_eq!(ours, policy);
    }

    #[test]
    fn list_file_names_follow_apt() {
        let s = |uri: &str, suite: &str| Source {
            uri: uri.into(),
            suite: suite.into(),
        };
        assert_eq!(
            list_file_name(&s("http://deb.debian.org/debian", "bookworm"), "InRelease"),
            "deb.debian.org_debian_dists_bookworm_InRelease"
        );
        assert_eq!(
            list_file_name(&s("https://pkg.osquery.io", "apt/source/"), "Release"),
            "pkg.osquery.io_apt_source_Release"
        );
        assert_eq!(
            list_file_name(&s("http://host:8080/x~y", "/"), "InRelease"),
            "host:8080_x%7ey_InRelease"
        );
        assert_eq!(
            parse_line("deb [arch=amd64 trusted=yes,no https://pkg.osquery.io deb main"),
            None
        );
        assert_eq!(parse_line("deb https://pkg.osquery.io # deb main"), None);
        assert_eq!(parse_line("deb [arch=amd64] https:// deb main"), None);
        assert_eq!(
            parse_line("      deb [arch=amd64] https://pkg.osquery.io/deb/// bionic main"),
            Some(s("https://pkg.osquery.io/deb", "bionic"))
        );
    }

    #[test]
    fn pack_queries_run() {
        for (pack, name) in [
            ("it-compliance", "apt_sources"),
            ("vuln-management", "apt_sources"),
        ] {
            let rows = super::super::sysfs::run_pack_query(pack, name);
            assert_eq!(rows.len(), scan(&AptSources, &TableEnv::default()).len());
        }
    }
}
