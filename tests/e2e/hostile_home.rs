//! A local user who plants links, FIFOs and endless devices where the agent
//! reads user files, tried through the whole system (`sweep hunt` against a
//! running agent): nothing foreign comes back, every hunt ends within its
//! wall time, the agent stays within its memory limit, and it answers the
//! next hunt.
//!
//! The user is a real, throwaway account (created with `useradd`, removed
//! at the end), so this binary runs alone: it changes `/etc/passwd`. It needs
//! root or passwordless sudo.

use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use sweep_e2e::{as_root, ndjson, ok, Cluster, LocalUser};

#[test]
fn a_hostile_home_directory_neither_leaks_nor_hangs_nor_exhausts_the_agent() {
    let c = Cluster::start().unwrap();
    let home = c.dir.path().join("mallory");
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let user = LocalUser::create(&format!("sweepm{}", std::process::id()), &home);
    let uid = user.uid;
    let home_s = home.display().to_string();

    // Root's secret, and the user's traps.
    let secret = c.dir.path().join("shadow");
    std::fs::write(&secret, "root:$6$SECRET-SHADOW-LINE:19000:0:99999:7:::\n").unwrap();
    symlink(&secret, home.join(".bash_history")).unwrap();
    symlink("/dev/zero", home.join(".sh_history")).unwrap();
    symlink(&secret, ssh.join("authorized_keys")).unwrap();
    std::fs::write(home.join(".history"), "echo hello\n").unwrap();
    as_root(&["mkfifo", &home.join(".zsh_history").display().to_string()]);
    as_root(&[
        "mkfifo",
        &ssh.join("authorized_keys2").display().to_string(),
    ]);
    // A device node with /dev/zero's numbers, which only root could make.
    as_root(&[
        "mknod",
        &home.join(".ash_history").display().to_string(),
        "c",
        "1",
        "5",
    ]);
    as_root(&["chown", "-hR", &format!("{uid}:{uid}"), &home_s]);

    let limit: u64 = 200 * 1024 * 1024;
    let agent = c
        .agent_with(
            "web-1",
            &[],
            &format!("wall_time = \"10s\"\nmax_memory_bytes = {limit}\n"),
        )
        .unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    for (sql, want) in [
        (
            format!("SELECT uid, command, history_file FROM shell_history WHERE uid = {uid}"),
            1,
        ),
        (
            format!("SELECT uid, key, key_file FROM authorized_keys WHERE uid = {uid}"),
            0,
        ),
    ] {
        let started = Instant::now();
        let out = c.sweep(&["hunt", &sql, "--json", "--timeout", "20s"]);
        let took = started.elapsed();
        ok(&out);
        let rows = ndjson(&out.stdout);
        let text = format!("{rows:?}");
        assert!(!text.contains("SECRET"), "read through a link: {text}");
        assert_eq!(rows.len(), want, "{sql}: {text}\n{}", agent.log_text());
        if want == 1 {
            assert_eq!(rows[0]["command"], "echo hello", "{text}");
        }
        assert!(took < Duration::from_secs(10), "{sql} took {took:?}");
    }
    // Within its memory limit, and answering.
    let out = c.sweep(&["agents", "--json"]);
    ok(&out);
    let rss = ndjson(&out.stdout)[0]["resources"]["rss_bytes"]
        .as_u64()
        .unwrap();
    assert!(rss < limit, "the agent uses {rss} bytes");
    let out = c.sweep(&["hunt", "SELECT 1 AS one", "--json"]);
    ok(&out);
    assert_eq!(ndjson(&out.stdout).len(), 1);
}
