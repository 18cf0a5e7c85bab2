//! The .deb packages `ops/package` builds, from the binaries `cargo build`
//! already made (`--profile dev --no-build`: no second, release build):
//! their control fields and contents (`dpkg-deb`), then installed with
//! `dpkg --root` into an empty root, where every file must be in place and
//! the installed binaries must run.
//!
//! A missing tool (dpkg, dpkg-dev, cargo-deb) fails the test with the command
//! that installs it.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sweep_e2e::bin;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// A tool on PATH, or a failure that says how to install it.
fn need(name: &str, install: &str) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|d| d.join(name).is_file()) {
        panic!(
            "`{name}` not found on PATH. Install it with: {install}   (or run ops/install-deps)"
        );
    }
}

/// cargo-deb at the version ops/lib.sh pins: ops/package would otherwise
/// spend minutes installing it inside the test.
fn need_cargo_deb() {
    let lib = fs::read_to_string(repo().join("ops/lib.sh")).expect("ops/lib.sh");
    let pinned = lib
        .lines()
        .find_map(|l| l.strip_prefix("CARGO_DEB_VERSION="))
        .expect("CARGO_DEB_VERSION in ops/lib.sh")
        .trim();
    let install = format!("cargo install cargo-deb --version {pinned} --locked");
    let out = Command::new("cargo").args(["deb", "--version"]).output();
    let found = out
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match found {
        Some(v) if v == format!("cargo-deb {pinned}") => {}
        Some(v) => panic!(
            "{v} is installed, ops/package wants {pinned}: {install}   (or run ops/install-deps)"
        ),
        None => {
            panic!("cargo-deb not found. Install it with: {install}   (or run ops/install-deps)")
        }
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion; fails the test, with its output, unless it
/// exits 0.
fn run(cmd: &mut Command) -> Output {
    let what = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

/// Runs ops/package, its cargo and cargo-deb children in their own process
/// group, so a hang (a cargo lock that never frees) ends in a failure that
/// stops all of them instead of a stuck suite.
fn package(args: &[&str], timeout: Duration) -> Vec<PathBuf> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(repo().join("ops/package"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .expect("start ops/package");
    // Waited for on a thread, so the wait has a deadline without polling.
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let status = match finished.recv_timeout(timeout) {
        Ok(status) => Some(status.expect("wait for ops/package")),
        Err(_) => {
            // kill(1) on the group keeps this crate free of FFI.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            let _ = finished.recv();
            None
        }
    };
    let (out, err) = (
        fs::read_to_string(&out_path).unwrap_or_default(),
        fs::read_to_string(&err_path).unwrap_or_default(),
    );
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "ops/package {}: {s}\n--- stdout\n{out}\n--- stderr\n{err}",
            args.join(" ")
        ),
        None => panic!(
            "ops/package {} did not finish in {timeout:?}\n--- stdout\n{out}\n--- stderr\n{err}",
            args.join(" ")
        ),
    }
    // It prints one .deb path a line, and nothing else, on stdout.
    let debs: Vec<PathBuf> = out.lines().map(PathBuf::from).collect();
    assert!(
        debs.len() == 3
            && debs
                .iter()
                .all(|d| d.extension().is_some_and(|e| e == "deb") && d.is_file()),
        "ops/package should print the three .deb paths, printed:\n{out}\n--- stderr\n{err}"
    );
    debs
}

/// What one package must carry besides its binary, man pages and completions.
struct Expect {
    package: &'static str,
    bin: &'static str,
    /// Man pages besides `<bin>.1.gz`: one per subcommand.
    subcommand_pages: &'static [&'static str],
    /// (installed path, file in the repository it is a copy of, mode).
    copies: Vec<(String, PathBuf, u32)>,
    unit: Option<&'static str>,
}

fn expectations() -> Vec<Expect> {
    let root = repo();
    let mut rules_copies = vec![
        (
            "etc/sweep/rules.toml".to_string(),
            root.join("ops/packaging/rules.toml"),
            0o644,
        ),
        (
            "etc/sweep/rules/intel/c2.txt".to_string(),
            root.join("ops/rules/intel/c2.txt"),
            0o644,
        ),
        (
            "usr/share/sweep/packs/detection.conf".to_string(),
            root.join("ops/packs/detection.conf"),
            0o644,
        ),
    ];
    // Every rule file of ops/rules, however many there are.
    for entry in fs::read_dir(root.join("ops/rules")).expect("ops/rules") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            rules_copies.push((format!("etc/sweep/rules/{name}"), path, 0o644));
        }
    }
    vec![
        Expect {
            package: "sweep-agent",
            bin: "sweep-agent",
            subcommand_pages: &["run", "query", "shell", "fleet"],
            copies: vec![(
                "etc/sweep/agent.toml".to_string(),
                root.join("ops/packaging/agent.toml"),
                // Root only: it will hold etcd and Kafka credentials.
                0o640,
            )],
            unit: Some("sweep-agent.service"),
        },
        Expect {
            package: "sweep-rules",
            bin: "sweep-rules",
            subcommand_pages: &["test"],
            copies: rules_copies,
            unit: Some("sweep-rules.service"),
        },
        Expect {
            package: "sweep",
            bin: "sweep",
            subcommand_pages: &["hunt", "results", "agents", "schedule", "pack", "tail"],
            copies: vec![],
            unit: None,
        },
    ]
}

impl Expect {
    /// Every file the package installs that the test knows of.
    fn files(&self) -> Vec<String> {
        let b = self.bin;
        let mut files = vec![
            format!("usr/bin/{b}"),
            format!("usr/share/man/man1/{b}.1.gz"),
            format!("usr/share/bash-completion/completions/{b}"),
            format!("usr/share/zsh/vendor-completions/_{b}"),
            format!("usr/share/fish/vendor_completions.d/{b}.fish"),
        ];
        for sub in self.subcommand_pages {
            files.push(format!("usr/share/man/man1/{b}-{sub}.1.gz"));
        }
        files.extend(self.copies.iter().map(|(p, _, _)| p.clone()));
        if let Some(unit) = self.unit {
            files.push(format!("usr/lib/systemd/system/{unit}"));
        }
        files
    }
}

fn field(deb: &Path, name: &str) -> String {
    stdout(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))
        .trim()
        .to_string()
}

/// The control fields, the file list and the conffiles of one .deb.
fn check_deb(deb: &Path, expect: &Expect, arch: &str) {
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    assert_eq!(field(deb, "Version"), version, "{}", deb.display());
    assert_eq!(field(deb, "Architecture"), arch, "{}", deb.display());
    assert_eq!(field(deb, "Section"), "admin", "{}", deb.display());
    assert!(
        field(deb, "Maintainer").contains('@'),
        "{}: Maintainer",
        deb.display()
    );
    // From dpkg-shlibdeps: the C library and OpenSSL (librdkafka's TLS).
    let depends = field(deb, "Depends");
    assert!(
        depends.contains("libc6") && depends.contains("libssl3"),
        "{}: Depends: {depends}",
        deb.display()
    );

    let listing = stdout(Command::new("dpkg-deb").arg("--contents").arg(deb));
    // `-rw-r--r-- root/root 123 2024-01-01 00:00 ./usr/bin/x`: the path is last.
    let contents: BTreeSet<String> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches("./").to_string())
        .collect();
    for file in expect.files() {
        assert!(
            contents.contains(&file),
            "{} lacks {file}; it holds:\n{listing}",
            deb.display()
        );
    }
    assert!(
        !contents.iter().any(|p| p.starts_with("usr/local/")),
        "{}: nothing belongs in /usr/local:\n{listing}",
        deb.display()
    );

    // Files under /etc are conffiles: an upgrade keeps the operator's edits.
    let etc: BTreeSet<String> = expect
        .files()
        .into_iter()
        .filter(|f| f.starts_with("etc/"))
        .map(|f| format!("/{f}"))
        .collect();
    if !etc.is_empty() {
        let conffiles = stdout(
            Command::new("dpkg-deb")
                .arg("--info")
                .arg(deb)
                .arg("conffiles"),
        );
        let listed: BTreeSet<String> = conffiles.lines().map(|l| l.trim().to_string()).collect();
        assert!(
            etc.is_subset(&listed),
            "{}: conffiles {listed:?} should list {etc:?}",
            deb.display()
        );
    }
}

/// Stand-ins for the commands the packages' maintainer scripts call
/// (deb-systemd-helper, deb-systemd-invoke, systemctl): they log their
/// arguments, and say the unit was neither installed nor enabled before, as
/// on a first install.
fn systemd_stubs(dir: &Path, log: &Path) -> PathBuf {
    let bin = dir.join("stub-bin");
    fs::create_dir_all(&bin).unwrap();
    for name in ["deb-systemd-helper", "deb-systemd-invoke", "systemctl"] {
        let script = format!(
            "#!/bin/sh\necho \"{name} $*\" >>'{}'\ncase \" $* \" in *' debian-installed '*|*' was-enabled '*) exit 1 ;; esac\nexit 0\n",
            log.display()
        );
        let path = bin.join(name);
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

#[test]
fn packages_install_into_a_clean_root_and_run() {
    need("dpkg", "apt-get install dpkg");
    need("dpkg-deb", "apt-get install dpkg");
    need("dpkg-shlibdeps", "apt-get install dpkg-dev");
    need_cargo_deb();

    // Package the binaries this test run uses: target/debug is the dev
    // profile, any other directory is named after its profile.
    let agent_bin = bin("sweep-agent");
    bin("sweep-rules");
    bin("sweep");
    let profile = match agent_bin.parent().and_then(|d| d.file_name()) {
        Some(d) if d == "debug" => "dev".to_string(),
        Some(d) => d.to_string_lossy().into_owned(),
        None => panic!("no profile directory above {}", agent_bin.display()),
    };

    let work = tempfile::tempdir().expect("temp dir");
    let debs_dir = work.path().join("debs");
    let started = Instant::now();
    let debs = package(
        &[
            "--profile",
            &profile,
            "--no-build",
            "--fast",
            "--output",
            debs_dir.to_str().unwrap(),
        ],
        Duration::from_secs(900),
    );
    eprintln!("ops/package took {:.1?}", started.elapsed());

    let arch = stdout(Command::new("dpkg").arg("--print-architecture"))
        .trim()
        .to_string();
    let expects = expectations();
    for expect in &expects {
        let deb = debs
            .iter()
            .find(|d| field(d, "Package") == expect.package)
            .unwrap_or_else(|| panic!("no {} package among {debs:?}", expect.package));
        check_deb(deb, expect, &arch);
    }

    // An empty root with dpkg's database. Maintainer scripts cannot run
    // chrooted into it (it has no shell), so they run outside it
    // (--force-script-chrootless), with the systemd commands they call
    // replaced by stubs that only log: nothing touches the host's systemd.
    // The root has no libc6 or libssl3 packages (--force-depends); the
    // installed binaries run on the host's.
    let root = work.path().join("root");
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let calls = work.path().join("systemd-calls.log");
    let stubs = systemd_stubs(work.path(), &calls);
    let path = format!(
        "{}:{}:/usr/sbin:/sbin",
        stubs.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(Command::new("dpkg")
        .env("PATH", &path)
        .arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", work.path().join("dpkg.log").display()))
        .args([
            "--force-not-root",
            "--force-script-chrootless",
            "--force-depends",
            "--install",
        ])
        .args(&debs));

    let status = fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    for expect in &expects {
        let entry = status
            .split("\n\n")
            .find(|e| {
                e.lines()
                    .any(|l| l == format!("Package: {}", expect.package))
            })
            .unwrap_or_else(|| panic!("{} is not in dpkg's status:\n{status}", expect.package));
        assert!(
            entry.contains("Status: install ok installed"),
            "{} is not installed:\n{entry}",
            expect.package
        );
    }

    for expect in &expects {
        for file in expect.files() {
            let path = root.join(&file);
            assert!(path.is_file(), "{file} was not installed");
        }
        for (file, source, mode) in &expect.copies {
            let installed = root.join(file);
            assert_eq!(
                fs::read(&installed).unwrap(),
                fs::read(source).unwrap(),
                "{file} should be {}",
                source.display()
            );
            let got = fs::metadata(&installed).unwrap().permissions().mode() & 0o7777;
            assert_eq!(got, *mode, "{file}: mode {got:o}, want {mode:o}");
        }
        let b = expect.bin;
        let exe = root.join("usr/bin").join(b);
        let got = fs::metadata(&exe).unwrap().permissions().mode() & 0o7777;
        assert_eq!(got, 0o755, "usr/bin/{b}: mode {got:o}");
        // Man pages gzipped (Debian policy); completions for this binary.
        let man = fs::read(root.join(format!("usr/share/man/man1/{b}.1.gz"))).unwrap();
        assert_eq!(&man[..2], &[0x1f, 0x8b], "{b}.1.gz is not gzip");
        let bash = root.join(format!("usr/share/bash-completion/completions/{b}"));
        let text = fs::read_to_string(&bash).unwrap();
        assert!(
            text.contains("complete ") && text.contains(b),
            "{} does not complete {b}",
            bash.display()
        );
        // Bash completes a subcommand from its first letters, through the
        // function the file registers for the binary.
        let sub = expect.subcommand_pages[0];
        let script = r#"source "$1" || exit 1
f=$(complete -p "$2" | sed -E 's/.* -F ([^ ]+) .*/\1/')
COMP_WORDS=("$2" "$3"); COMP_CWORD=1; COMP_LINE="$2 $3"; COMP_POINT=${#COMP_LINE}
"$f" "$2" "$3" "$2"
printf '%s\n' "${COMPREPLY[@]}""#;
        let offered = stdout(
            Command::new("bash")
                .args(["-c", script, "complete"])
                .arg(&bash)
                .args([b, &sub[..2]]),
        );
        assert!(
            offered.lines().any(|l| l == sub),
            "bash completes `{b} {}` to {offered:?}, not {sub}",
            &sub[..2]
        );
        for f in [
            format!("usr/share/zsh/vendor-completions/_{b}"),
            format!("usr/share/fish/vendor_completions.d/{b}.fish"),
        ] {
            let text = fs::read_to_string(root.join(&f)).unwrap();
            assert!(text.contains(b), "{f} does not complete {b}");
        }

        // The installed binary runs and is this build.
        let version = stdout(Command::new(&exe).arg("--version"));
        assert_eq!(
            version.trim(),
            format!("{b} {}", env!("CARGO_PKG_VERSION")),
            "{b} --version"
        );
    }

    // The units start the packaged binaries with the packaged configs; the
    // state directories are the configs' state_dir. stdout and stderr are
    // left to systemd: the journal.
    let unit =
        |name: &str| fs::read_to_string(root.join("usr/lib/systemd/system").join(name)).unwrap();
    let agent_unit = unit("sweep-agent.service");
    for line in [
        "ExecStart=/usr/bin/sweep-agent run --config /etc/sweep/agent.toml",
        "StateDirectory=sweep-agent",
    ] {
        assert!(
            agent_unit.lines().any(|l| l == line),
            "sweep-agent.service lacks {line}:\n{agent_unit}"
        );
    }
    let rules_unit = unit("sweep-rules.service");
    for line in [
        "ExecStartPre=/usr/bin/sweep-rules --config /etc/sweep/rules.toml --check",
        "ExecStart=/usr/bin/sweep-rules --config /etc/sweep/rules.toml",
        "StateDirectory=sweep-rules",
    ] {
        assert!(
            rules_unit.lines().any(|l| l == line),
            "sweep-rules.service lacks {line}:\n{rules_unit}"
        );
    }
    for (name, text) in [
        ("sweep-agent.service", &agent_unit),
        ("sweep-rules.service", &rules_unit),
    ] {
        // Comments may name /usr/local (the manual install), settings not.
        assert!(
            !text
                .lines()
                .any(|l| !l.starts_with('#') && l.contains("/usr/local/")),
            "{name} names /usr/local:\n{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("StandardOutput=") || l.starts_with("StandardError=")),
            "{name} sends its logs elsewhere than the journal:\n{text}"
        );
    }

    // The shipped config and rules are what the unit's ExecStartPre checks:
    // the config parses (unknown fields are refused), every rule compiles,
    // and every rule's examples pass with the installed intel list.
    let rules_bin = root.join("usr/bin/sweep-rules");
    let rules_dir = root.join("etc/sweep/rules");
    let check = stdout(
        Command::new(&rules_bin)
            .arg("--config")
            .arg(root.join("etc/sweep/rules.toml"))
            .arg("--rules")
            .arg(&rules_dir)
            .arg("--check"),
    );
    assert!(check.contains("rule(s) OK"), "sweep-rules --check: {check}");
    run(Command::new(&rules_bin).arg("test").arg(&rules_dir));

    // The maintainer scripts ran: the units are registered with
    // deb-systemd-helper but not enabled or started on install (they need
    // their configuration first).
    let calls = fs::read_to_string(&calls).unwrap_or_default();
    for unit in ["sweep-agent.service", "sweep-rules.service"] {
        assert!(
            calls
                .lines()
                .any(|l| l == format!("deb-systemd-helper update-state {unit}")),
            "postinst did not register {unit}:\n{calls}"
        );
        assert!(
            !calls.lines().any(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words.contains(&"enable") || words.contains(&"start") || words.contains(&"restart")
            }),
            "a unit was enabled or started on install:\n{calls}"
        );
    }
}
