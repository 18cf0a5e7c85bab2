//! A local user plants links, FIFOs and endless devices where the agent
//! reads user files (shell history, authorized keys): nothing foreign is
//! returned, every query ends at once, memory stays put, and the next query
//! runs. The user and home come from a passwd file the test writes, so the
//! host's own accounts are untouched.

use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::fs::{FileType, Mode};
use sweep_agent::tables::{resident_bytes, HostPaths, Registry, TableEnv};
use sweep_agent::{Engine, Limits};

fn fifo(path: &std::path::Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

#[test]
fn planted_links_fifos_and_devices_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("mallory");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let secret = dir.path().join("shadow");
    std::fs::write(&secret, "root:$6$SECRET-SHADOW-LINE:19000:0:99999:7:::\n").unwrap();
    let uid = rustix::process::getuid().as_raw();
    let passwd = dir.path().join("passwd");
    std::fs::write(
        &passwd,
        format!("mallory:x:{uid}:{uid}::{}:/bin/bash\n", home.display()),
    )
    .unwrap();

    symlink(&secret, home.join(".bash_history")).unwrap();
    fifo(&home.join(".zsh_history"));
    symlink("/dev/zero", home.join(".sh_history")).unwrap();
    std::fs::write(home.join(".history"), "echo hello\n").unwrap();
    symlink(&secret, home.join(".ssh/authorized_keys")).unwrap();
    fifo(&home.join(".ssh/authorized_keys2"));
    if uid == 0 {
        // A device node of /dev/zero's own numbers, where only root can make one.
        let zero = rustix::fs::makedev(1, 5);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            home.join(".ash_history"),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o600),
            zero,
        )
        .unwrap();
    }

    let env = TableEnv {
        paths: HostPaths {
            etc_passwd: passwd,
            ..HostPaths::default()
        },
        ..TableEnv::default()
    };
    let limits = Limits {
        wall_time: Duration::from_secs(10),
        ..Limits::default()
    };
    let engine = Engine::new(Arc::new(Registry::new(env)), limits);
    let before = resident_bytes().unwrap();
    for sql in [
        "SELECT uid, command, history_file FROM shell_history",
        "SELECT uid, key, key_file FROM authorized_keys",
        "SELECT * FROM shell_history JOIN authorized_keys USING (uid)",
    ] {
        let started = Instant::now();
        let out = engine.run(sql);
        let took = started.elapsed();
        assert!(out.error.is_none(), "{sql}: {:?}", out.error);
        assert!(took < Duration::from_secs(5), "{sql} took {took:?}");
        let text = format!("{:?}", out.rows);
        assert!(
            !text.contains("SECRET"),
            "{sql} read through a link: {text}"
        );
        if sql.contains("command, history_file") {
            assert_eq!(out.rows.len(), 1, "only the plain history: {text}");
            assert!(text.contains("echo hello"), "{text}");
        }
        if sql.contains("key_file FROM authorized_keys") {
            assert!(out.rows.is_empty(), "{text}");
        }
    }
    let after = resident_bytes().unwrap();
    assert!(
        after < before + 20 * 1024 * 1024,
        "memory grew from {before} to {after}"
    );
    // And the engine answers the next query.
    let out = engine.run("SELECT 1 AS one");
    assert_eq!(out.rows.len(), 1);
}
