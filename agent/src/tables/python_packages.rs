//! `python_packages`: the Python distributions installed in the usual site
//! directories, one row per `*.dist-info` (its `METADATA`) or `*.egg-info`
//! directory (its `PKG-INFO`), as osquery's Linux implementation finds them:
//!
//! - system-wide, uid 0: the site directories of [`SYSTEM_SITES`]
//!   (`/usr/lib/python3/dist-packages`, `/usr/local/lib/python3.11/
//!   site-packages`, conda under /opt, …);
//! - per user, with the user's uid: the environments of version managers
//!   and tools under the home directory (pyenv, asdf, mise, uv, pipx,
//!   Poetry, conda, virtualenvwrapper, pew), and the user site directory;
//! - with `directory = D`, only the site directory D (uid 0), as osquery.
//!
//! `name`, `version`, `summary`, `author` and `license` are the first line of
//! those headers of the core metadata (NULL when the header is absent); a
//! distribution directory without its metadata file still gives a row, with
//! those NULL. `uid = N` limits the per-user part to those users.
//!
//! Where sweep differs from osquery, on purpose:
//! - a header value is everything after the first `:` (osquery drops a
//!   header whose value holds another `:`, such as most summaries with a
//!   colon), and only the header block is read, not the description after it;
//! - the user site directory and conda base environments are read at
//!   `…/lib/pythonX.Y/site-packages` (osquery looks one level too high there
//!   and finds nothing), and `/usr/lib64/pythonX.Y/site-packages` (RHEL's
//!   arch-specific site) is scanned too;
//! - nothing under a home directory is read through a symbolic link, and
//!   metadata files are read as user files ([`user_file`]): a link, FIFO or
//!   device is skipped, and so is a `*.dist-info` that is a symbolic link in
//!   any site directory.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::user_file::{self, Owner, MAX_FILE_BYTES, MAX_LINE_BYTES};
use super::util::user_homes;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::python_packages::TABLE as SCHEMA;

pub struct PythonPackages;

/// System-wide site directories (`%`: any characters within one path
/// component): osquery's Linux list, plus RHEL's /usr/lib64 site.
pub const SYSTEM_SITES: &[&str] = &[
    "/usr/local/lib/python%/dist-packages",
    "/usr/local/lib/python%/site-packages",
    "/usr/local/lib64/python%/site-packages",
    "/opt/homebrew/lib/python%/dist-packages",
    "/opt/homebrew/lib/python%/site-packages",
    "/usr/lib/python%/dist-packages",
    "/usr/lib/python%/site-packages",
    "/usr/lib64/python%/site-packages",
    "/opt/conda/lib/python%/dist-packages",
    "/opt/conda/lib/python%/site-packages",
    "/opt/miniconda3/lib/python%/site-packages",
    "/opt/anaconda3/lib/python%/site-packages",
];

/// Directories under a home holding one Python installation or environment
/// per subdirectory, each with its `lib/pythonX.Y/site-packages`.
const USER_ENVIRONMENTS: &[&str] = &[
    ".pyenv/versions",
    ".asdf/installs/python",
    ".local/share/uv/tools",
    ".local/share/mise/installs/python",
    ".local/share/pipx/venvs",
    ".local/pipx/venvs",
    ".cache/pypoetry/virtualenvs",
    "miniforge3/envs",
    "miniconda3/envs",
    "anaconda3/envs",
    "mambaforge/envs",
    ".virtualenvs",
    ".local/share/virtualenvs",
];

/// Site directories directly under a home: the user site and conda bases.
const USER_SITES: &[&str] = &[
    ".local/lib/python%/site-packages",
    "miniforge3/lib/python%/site-packages",
    "miniconda3/lib/python%/site-packages",
    "anaconda3/lib/python%/site-packages",
    "mambaforge/lib/python%/site-packages",
];

/// The site directory of one environment, relative to it.
const ENVIRONMENT_SITE: &str = "lib/python%/site-packages";

impl Table for PythonPackages {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        if let Some(dirs) = ctx.eq_texts("directory") {
            // As osquery: only the named directories, attributed to uid 0.
            for dir in dirs {
                scan_site(
                    ctx,
                    Path::new(&dir),
                    Path::new(""),
                    Owner::Any,
                    0,
                    &dir,
                    out,
                )?;
            }
            return Ok(());
        }
        let only = ctx.eq_integers("uid");
        let wanted = |uid: i64| only.as_ref().is_none_or(|o| o.contains(&uid));
        if wanted(0) {
            for pattern in &ctx.env().paths.python_sites {
                let pattern = Path::new(pattern.trim_start_matches('/'));
                let list = |p: &Path| Ok(system_subdirs(&Path::new("/").join(p)));
                for site in expand(pattern, list)? {
                    let dir = Path::new("/").join(&site);
                    let text = dir.to_string_lossy().into_owned();
                    scan_site(ctx, &dir, Path::new(""), Owner::Any, 0, &text, out)?;
                }
            }
        }
        for (uid, home) in user_homes(&ctx.env().paths.etc_passwd) {
            if !wanted(i64::from(uid)) {
                continue;
            }
            let home = Path::new(&home);
            for site in user_sites(ctx, home)? {
                let text = home.join(&site).to_string_lossy().into_owned();
                scan_site(ctx, home, &site, Owner::User(uid), uid, &text, out)?;
            }
        }
        Ok(())
    }
}

/// Subdirectories of a root-owned directory, following links as the
/// system's own Python does.
fn system_subdirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The site directories under `home`, relative to it.
fn user_sites(ctx: &ScanContext<'_>, home: &Path) -> Result<Vec<PathBuf>, AgentError> {
    let list = |p: &Path| user_file::subdirs(ctx, home, p);
    let mut sites = Vec::new();
    for root in USER_ENVIRONMENTS {
        for env in list(Path::new(root))? {
            let pattern = Path::new(root).join(env).join(ENVIRONMENT_SITE);
            sites.extend(expand(&pattern, list)?);
        }
    }
    for pattern in USER_SITES {
        sites.extend(expand(Path::new(pattern), list)?);
    }
    Ok(sites)
}

/// The paths (relative, as `pattern` is) that `pattern` names: a component
/// with `%` stands for every subdirectory whose name matches it, listed by
/// `list`. Literal components are kept whether or not they exist.
fn expand(
    pattern: &Path,
    list: impl Fn(&Path) -> Result<Vec<String>, AgentError>,
) -> Result<Vec<PathBuf>, AgentError> {
    let mut paths = vec![PathBuf::new()];
    for component in pattern.iter() {
        let component = component.to_string_lossy();
        if !component.contains('%') {
            for p in &mut paths {
                p.push(&*component);
            }
            continue;
        }
        let mut next = Vec::new();
        for p in &paths {
            for name in list(p)? {
                if wildcard(&component, &name) {
                    next.push(p.join(name));
                }
            }
        }
        paths = next;
    }
    Ok(paths)
}

/// Whether `name` matches `pattern`, where `%` is any run of characters.
fn wildcard(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('%');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// One row per distribution directory in the site directory `base/relative`
/// (reported as `directory`).
fn scan_site(
    ctx: &ScanContext<'_>,
    base: &Path,
    relative: &Path,
    owner: Owner,
    uid: u32,
    directory: &str,
    out: &mut Vec<Row>,
) -> Result<(), AgentError> {
    for entry in user_file::subdirs(ctx, base, relative)? {
        ctx.check()?;
        let file = if entry.ends_with(".dist-info") {
            "METADATA"
        } else if entry.ends_with(".egg-info") {
            "PKG-INFO"
        } else {
            continue;
        };
        let metadata = match user_file::open(ctx, base, &relative.join(&entry).join(file), owner) {
            Some(f) => read_headers(ctx, f)?,
            None => Headers::default(),
        };
        let mut row = ctx.row();
        row.set_opt("name", metadata.name)
            .set("uid", uid)
            .set_opt("version", metadata.version)
            .set_opt("summary", metadata.summary)
            .set_opt("author", metadata.author)
            .set_opt("license", metadata.license)
            .set(
                "path",
                format!("{}/{entry}", directory.trim_end_matches('/')),
            )
            .set("directory", directory)
            .set("pid_with_namespace", 0i64);
        out.push(row);
    }
    Ok(())
}

/// The core-metadata headers the table reports.
#[derive(Debug, Default, PartialEq)]
struct Headers {
    name: Option<String>,
    version: Option<String>,
    summary: Option<String>,
    author: Option<String>,
    license: Option<String>,
}

/// Reads the header block of a METADATA or PKG-INFO file (up to the first
/// blank line): of each header the first occurrence, its first line.
fn read_headers(ctx: &ScanContext<'_>, file: File) -> Result<Headers, AgentError> {
    let mut reader = BufReader::new(file.take(MAX_FILE_BYTES));
    let mut headers = Headers::default();
    let mut line = Vec::new();
    loop {
        ctx.check()?;
        line.clear();
        let n = match (&mut reader)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            break;
        }
        if n == MAX_LINE_BYTES && line.last() != Some(&b'\n') {
            // Over-long: skip the rest of it (a header never is).
            loop {
                ctx.check()?;
                let (done, used) = match reader.fill_buf() {
                    Ok([]) | Err(_) => (true, 0),
                    Ok(buf) => match buf.iter().position(|b| *b == b'\n') {
                        Some(i) => (true, i + 1),
                        None => (false, buf.len()),
                    },
                };
                reader.consume(used);
                if done {
                    break;
                }
            }
        }
        // A continuation line: the table keeps first lines only.
        if text.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = text.split_once(':') else {
            continue;
        };
        let slot = match key.trim().to_ascii_lowercase().as_str() {
            "name" => &mut headers.name,
            "version" => &mut headers.version,
            "summary" => &mut headers.summary,
            "author" => &mut headers.author,
            "license" => &mut headers.license,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(value.trim().to_string());
        }
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::os::unix::fs::symlink;
    use std::sync::Arc;

    use rusqlite::types::Value;

    use super::*;
    use crate::engine::{Engine, Limits};
    use crate::tables::testing::{pack_query, scan, scan_with};
    use crate::tables::{HostPaths, Op, Registry, TableEnv};

    /// name, version, summary, author, license, path, directory, uid.
    type Pkg = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        String,
        i64,
    );

    fn pkgs(rows: &[Row]) -> BTreeSet<Pkg> {
        let opt = |r: &Row, c: &str| match r.get(c) {
            Some(Value::Text(t)) => Some(t.clone()),
            Some(Value::Null) => None,
            other => panic!("{c}: {other:?}"),
        };
        rows.iter()
            .map(|r| {
                (
                    opt(r, "name"),
                    opt(r, "version"),
                    opt(r, "summary"),
                    opt(r, "author"),
                    opt(r, "license"),
                    opt(r, "path").unwrap(),
                    opt(r, "directory").unwrap(),
                    match r.get("uid") {
                        Some(Value::Integer(i)) => *i,
                        other => panic!("uid: {other:?}"),
                    },
                )
            })
            .collect()
    }

    use crate::tables::testing::write_file as write;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    /// What Python's own importlib.metadata reads in each of `dirs`: the
    /// distributions that are directories (not links), with the first line
    /// of each header, keyed by path. None when there is no python3.
    fn importlib(dirs: &[String]) -> Option<BTreeSet<(String, [Option<String>; 5])>> {
        const SCRIPT: &str = r#"
import importlib.metadata as md, json, os, sys
out = []
for d in sys.argv[1:]:
    for dist in md.distributions(path=[d]):
        p = str(dist._path)
        if not os.path.isdir(p) or os.path.islink(p):
            continue
        m = dist.metadata
        def first(k):
            v = m.get(k) if m is not None else None
            return None if v is None else str(v).split("\n")[0].strip()
        out.append([p, [first(k) for k in ("Name", "Version", "Summary", "Author", "License")]])
print(json.dumps(out))
"#;
        let output = std::process::Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .args(dirs)
            .output()
            .ok()?;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let parsed: Vec<(String, [Option<String>; 5])> =
            serde_json::from_slice(&output.stdout).unwrap();
        Some(parsed.into_iter().collect())
    }

    fn as_importlib(p: &BTreeSet<Pkg>) -> BTreeSet<(String, [Option<String>; 5])> {
        p.iter()
            .map(|(n, v, s, a, l, path, ..)| {
                (
                    path.clone(),
                    [n.clone(), v.clone(), s.clone(), a.clone(), l.clone()],
                )
            })
            .collect()
    }

    #[test]
    fn reads_system_and_user_sites() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let sys = root.join("sys/lib/python3.11/site-packages");
        write(
            &sys.join("Foo_Bar-1.0.dist-info/METADATA"),
            "Metadata-Version: 2.1\nName: Foo-Bar\nVersion: 1.0\nSummary: Parse: fast\n\
             Author: Jane Doe\nLicense: MIT License\n    Copyright (c) Jane\n\
             Classifier: X\n\nName: not-a-header\nThe description.\n",
        );
        write(
            &sys.join("legacy-0.9-py3.11.egg-info/PKG-INFO"),
            "Metadata-Version: 1.1\r\nName: legacy\r\nVersion: 0.9\r\nSummary: UNKNOWN\r\n\
             Author: \r\nLicense: BSD\r\n",
        );
        // A distribution directory without its metadata: a row of NULLs.
        std::fs::create_dir_all(sys.join("empty-1.dist-info")).unwrap();
        // Not distributions: a file named like one, a package, a link.
        write(&sys.join("single.egg-info"), "Name: single\n");
        std::fs::create_dir_all(sys.join("foo_bar")).unwrap();
        let elsewhere = root.join("elsewhere/linked-1.dist-info");
        write(&elsewhere.join("METADATA"), "Name: linked\nVersion: 1\n");
        symlink(&elsewhere, sys.join("linked-1.dist-info")).unwrap();

        let alice = root.join("home/alice");
        let pyenv = alice.join(".pyenv/versions/3.12.1/lib/python3.12/site-packages");
        write(
            &pyenv.join("qux-0.1.dist-info/METADATA"),
            "Name: qux\nVersion: 0.1\nAuthor: Q\n",
        );
        symlink(
            alice.join(".pyenv/versions/3.12.1"),
            alice.join(".pyenv/versions/3.12"),
        )
        .unwrap();
        let user_site = alice.join(".local/lib/python3.12/site-packages");
        write(
            &user_site.join("zed-3.dist-info/METADATA"),
            "Name: zed\nVersion: 3\n",
        );
        // A metadata file that is a link to someone else's file: not read.
        let secret = root.join("secret");
        write(&secret, "Name: stolen\nVersion: 666\n");
        std::fs::create_dir_all(user_site.join("evil-1.dist-info")).unwrap();
        symlink(&secret, user_site.join("evil-1.dist-info/METADATA")).unwrap();
        let venv = alice.join(".virtualenvs/tool/lib/python3.12/site-packages");
        write(
            &venv.join("tool-2.0.dist-info/METADATA"),
            "Name: tool\nVersion: 2.0\n",
        );

        let passwd = root.join("passwd");
        std::fs::write(
            &passwd,
            format!(
                "alice:x:1001:1001::{}:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n",
                alice.display()
            ),
        )
        .unwrap();
        let env = TableEnv {
            paths: HostPaths {
                etc_passwd: passwd,
                python_sites: vec![format!("{}/sys/lib/python%/site-packages", root.display())],
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };

        let d = |p: &Path| p.display().to_string();
        let (sys_d, pyenv_d, user_d, venv_d) = (d(&sys), d(&pyenv), d(&user_site), d(&venv));
        let row = |n: Option<&str>,
                   v: Option<&str>,
                   s: Option<&str>,
                   a: Option<&str>,
                   l: Option<&str>,
                   dir: &str,
                   entry: &str,
                   uid: i64|
         -> Pkg {
            let o = |x: Option<&str>| x.map(str::to_string);
            (
                o(n),
                o(v),
                o(s),
                o(a),
                o(l),
                format!("{dir}/{entry}"),
                dir.to_string(),
                uid,
            )
        };
        let system = [
            row(
                Some("Foo-Bar"),
                Some("1.0"),
                Some("Parse: fast"),
                Some("Jane Doe"),
                Some("MIT License"),
                &sys_d,
                "Foo_Bar-1.0.dist-info",
                0,
            ),
            row(None, None, None, None, None, &sys_d, "empty-1.dist-info", 0),
            row(
                Some("legacy"),
                Some("0.9"),
                Some("UNKNOWN"),
                Some(""),
                Some("BSD"),
                &sys_d,
                "legacy-0.9-py3.11.egg-info",
                0,
            ),
        ];
        let users = [
            row(
                Some("qux"),
                Some("0.1"),
                None,
                Some("Q"),
                None,
                &pyenv_d,
                "qux-0.1.dist-info",
                1001,
            ),
            row(
                Some("tool"),
                Some("2.0"),
                None,
                None,
                None,
                &venv_d,
                "tool-2.0.dist-info",
                1001,
            ),
            row(
                None,
                None,
                None,
                None,
                None,
                &user_d,
                "evil-1.dist-info",
                1001,
            ),
            row(
                Some("zed"),
                Some("3"),
                None,
                None,
                None,
                &user_d,
                "zed-3.dist-info",
                1001,
            ),
        ];
        let all: BTreeSet<Pkg> = system.iter().chain(&users).cloned().collect();
        let rows = scan(&PythonPackages, &env);
        assert_eq!(rows.len(), all.len());
        assert_eq!(pkgs(&rows), all);

        // Python reads the same headers from the same directories (for the
        // link it is refused, it reads what we refused to; leave it out).
        let dirs = vec![
            sys_d.clone(),
            pyenv_d.clone(),
            user_d.clone(),
            venv_d.clone(),
        ];
        if let Some(mut theirs) = importlib(&dirs) {
            theirs.retain(|(p, _)| !p.ends_with("evil-1.dist-info"));
            let mut ours = as_importlib(&all);
            ours.retain(|(p, _)| !p.ends_with("evil-1.dist-info"));
            assert_eq!(ours, theirs);
        }

        // uid = 1001: alice's only; uid = 0: the system's only.
        let only = |uid: i64| {
            pkgs(&scan_with(
                &PythonPackages,
                &env,
                &[("uid", Op::Eq, vec![uid.into()])],
            ))
        };
        assert_eq!(only(1001), users.iter().cloned().collect());
        assert_eq!(only(0), system.iter().cloned().collect());

        // directory = D: D only, uid 0, `directory` exactly as asked.
        let asked = format!("{}/", user_d);
        let rows = scan_with(
            &PythonPackages,
            &env,
            &[("directory", Op::Eq, vec![Value::Text(asked.clone())])],
        );
        let none = || None;
        let expected: BTreeSet<Pkg> = [
            (
                none(),
                none(),
                none(),
                none(),
                none(),
                format!("{user_d}/evil-1.dist-info"),
                asked.clone(),
                0,
            ),
            (
                s("zed"),
                s("3"),
                none(),
                none(),
                none(),
                format!("{user_d}/zed-3.dist-info"),
                asked.clone(),
                0,
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(pkgs(&rows), expected);
    }

    #[test]
    fn over_long_header_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("METADATA");
        let long = "x".repeat(MAX_LINE_BYTES * 3);
        write(
            &file,
            &format!("Keywords: {long}\nName: after\nVersion: 1\n\nSummary: body\n"),
        );
        let budget = crate::tables::Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("python_packages", SCHEMA.columns, &budget, &env);
        let headers = read_headers(&ctx, File::open(&file).unwrap()).unwrap();
        assert_eq!(
            headers,
            Headers {
                name: s("after"),
                version: s("1"),
                ..Headers::default()
            }
        );
    }

    #[test]
    fn wildcards_match_within_a_component() {
        assert!(wildcard("python%", "python3.11"));
        assert!(wildcard("python%", "python"));
        assert!(!wildcard("python%", "pypy3"));
        assert!(wildcard("a%b%c", "aXbYc"));
        assert!(!wildcard("a%b%c", "acb"));
        assert!(wildcard("site-packages", "site-packages"));
        assert!(!wildcard("site-packages", "site-packages2"));
    }

    /// This machine's Python site directories, as the table reads them and as
    /// importlib.metadata does.
    #[test]
    fn agrees_with_importlib_on_this_machine() {
        let rows = scan(&PythonPackages, &TableEnv::default());
        let ours = pkgs(&rows);
        let dirs: Vec<String> = ours
            .iter()
            .map(|p| p.6.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let Some(theirs) = importlib(&dirs) else {
            return; // no python3 here
        };
        assert_eq!(as_importlib(&ours), theirs);
        // Every site directory of the Pythons here that the table is meant to
        // scan (system-wide, or under a home in /etc/passwd) is scanned.
        let homes: Vec<String> = user_homes(Path::new("/etc/passwd"))
            .into_iter()
            .map(|(_, h)| h)
            .filter(|h| h != "/")
            .collect();
        for python in ["python3", "/usr/bin/python3"] {
            let Ok(out) = std::process::Command::new(python)
                .args([
                    "-c",
                    "import site; print('\\n'.join(site.getsitepackages()))",
                ])
                .output()
            else {
                continue;
            };
            for site in String::from_utf8_lossy(&out.stdout).lines() {
                let path = Path::new(site);
                let expected = SYSTEM_SITES.iter().any(|p| {
                    let p = Path::new(p);
                    p.iter().count() == path.iter().count()
                        && p.iter()
                            .zip(path.iter())
                            .all(|(a, b)| wildcard(&a.to_string_lossy(), &b.to_string_lossy()))
                }) || homes
                    .iter()
                    .any(|h| site.starts_with(&format!("{h}/.pyenv/versions/")));
                let has_dists = std::fs::read_dir(path).is_ok_and(|d| {
                    d.filter_map(|e| e.ok()).any(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        (n.ends_with(".dist-info") || n.ends_with(".egg-info"))
                            && e.file_type().is_ok_and(|t| t.is_dir())
                    })
                });
                if expected && has_dists {
                    assert!(
                        dirs.contains(&site.to_string()),
                        "{site} not scanned: {dirs:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn osquery_pack_query_runs() {
        let sql = pack_query("vuln-management", "backdoored_python_packages");
        let engine = Engine::new(Arc::new(Registry::default()), Limits::default());
        let out = engine.run(&sql);
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(
            out.columns,
            ["package_name", "package_version", "package_path"]
        );
    }
}
