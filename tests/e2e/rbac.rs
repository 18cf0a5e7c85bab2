//! etcd locked down by ops/etcd-rbac: agents and the controller log in with
//! their own users; an agent writes only its own heartbeat key and reads the
//! commands, only the controller writes commands, sweep-rules only reads the
//! pinned identities, and nobody without credentials reads anything. Leases
//! work under authentication: SIGTERM still revokes the agent's lease.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};
use sweep_e2e::{eventually, ndjson, ok, Cluster};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The password ops/etcd-rbac wrote to `DIR/<name>.password`.
fn password(dir: &Path, name: &str) -> String {
    let path = dir.join(format!("{name}.password"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Runs `f` with an etcd client logged in as `user` (anonymous with None).
fn etcd_as<T, F>(url: &str, user: Option<(&str, &str)>, f: impl FnOnce(Client) -> F) -> T
where
    F: std::future::Future<Output = T>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let opts = user.map(|(u, p)| ConnectOptions::new().with_user(u, p));
        let client = Client::connect([url], opts)
            .await
            .unwrap_or_else(|e| panic!("etcd as {user:?}: {e}"));
        f(client).await
    })
}

/// What a put of `key` as `user` gives: Ok, or etcd's error text.
fn put_as(url: &str, user: (&str, &str), key: &str) -> Result<(), String> {
    etcd_as(url, Some(user), |mut c| async move {
        c.put(key, "forged", None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

/// What a prefix get of `prefix` as `user` gives: the key count, or the error.
fn get_as(url: &str, user: Option<(&str, &str)>, prefix: &str) -> Result<usize, String> {
    etcd_as(url, user, |mut c| async move {
        c.get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map(|r| r.kvs().len())
            .map_err(|e| e.to_string())
    })
}

fn refused(what: &str, res: Result<(), String>) {
    match res {
        Err(e) if e.contains("permission denied") => {}
        other => panic!("{what}: want permission denied, got {other:?}"),
    }
}

#[test]
fn agents_and_the_controller_work_under_etcd_rbac_and_agents_are_confined() {
    let mut c = Cluster::start().unwrap();
    let creds = c.dir.path().join("etcd-credentials");
    let out = Command::new(repo_root().join("ops/etcd-rbac"))
        .args(["--endpoints", &c.etcd_url, "--out"])
        .arg(&creds)
        .args(["web-1", "web-2"])
        .output()
        .expect("running ops/etcd-rbac");
    ok(&out);
    for name in ["root", "controller", "rules", "agent-web-1", "agent-web-2"] {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(creds.join(format!("{name}.password"))).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    let url = c.etcd_url.as_str();
    let web1_pw = password(&creds, "agent-web-1");
    let web2_pw = password(&creds, "agent-web-2");
    let rules_pw = password(&creds, "rules");
    let web1 = ("agent-web-1", web1_pw.as_str());
    let web2 = ("agent-web-2", web2_pw.as_str());
    let rules = ("sweep-rules", rules_pw.as_str());

    // The controller logs in through its config file.
    let controller_cfg = c.dir.path().join("controller-rbac.toml");
    std::fs::write(
        &controller_cfg,
        format!(
            "[etcd]\nusername = \"sweep-controller\"\npassword = \"{}\"\n",
            password(&creds, "controller")
        ),
    )
    .unwrap();
    let sweep = |c: &Cluster, args: &[&str]| -> Output {
        c.sweep_cmd(args)
            .env("SWEEP_CONFIG", &controller_cfg)
            .output()
            .expect("running sweep")
    };

    let mut agent = c.agent_as("web-1", web1.0, web1.1).unwrap();
    let web1_listed = |c: &Cluster, agent: &sweep_e2e::Proc| {
        let listed = eventually(Duration::from_secs(20), || {
            let out = sweep(c, &["agents", "--json"]);
            let hosts: Vec<String> = ndjson(&out.stdout)
                .iter()
                .filter_map(|a| a["host_id"].as_str().map(str::to_string))
                .collect();
            (out.status.success() && hosts == ["web-1"]).then_some(())
        });
        assert!(
            listed.is_some(),
            "web-1 never listed\nsweep agents: {:?}\nagent log:\n{}",
            sweep(c, &["agents", "--json"]),
            agent.log_text()
        );
    };
    web1_listed(&c, &agent);

    // Without credentials the controller is turned away.
    let out = c.sweep(&["agents", "--json"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "anonymous `sweep agents` worked"
    );

    // A hunt: the controller writes it, the agent reads it and answers.
    let hunt_answered = |c: &Cluster| {
        let out = sweep(c, &["hunt", "SELECT 1 AS one", "--json"]);
        ok(&out);
        let rows = ndjson(&out.stdout);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["host_id"], "web-1");
        assert_eq!(rows[0]["one"], "1");
    };
    hunt_answered(&c);

    // What an agent's credentials allow, and what not.
    refused(
        "web-1 writing web-2's heartbeat",
        put_as(url, web1, "/sweep/agents/web-2"),
    );
    refused(
        "web-1 writing a key its own is a prefix of",
        put_as(url, web1, "/sweep/agents/web-10"),
    );
    refused("web-1 writing a hunt", put_as(url, web1, "/sweep/hunts/x"));
    refused(
        "web-1 writing a schedule",
        put_as(url, web1, "/sweep/schedule/x"),
    );
    refused("web-1 writing a pack", put_as(url, web1, "/sweep/packs/x"));
    refused(
        "web-1 pinning an identity key",
        put_as(url, web1, "/sweep/identities/web-1"),
    );
    assert!(
        get_as(url, Some(web1), "/sweep/hunts/").is_ok_and(|n| n >= 1),
        "web-1 cannot read the hunts"
    );
    for dir in ["schedule", "packs", "identities"] {
        let res = get_as(url, Some(web1), &format!("/sweep/{dir}/"));
        assert!(res.is_ok(), "web-1 reading {dir}/: {res:?}");
    }
    refused(
        "web-1 listing the fleet",
        get_as(url, Some(web1), "/sweep/agents/").map(|_| ()),
    );
    refused(
        "web-2 writing web-1's heartbeat",
        put_as(url, web2, "/sweep/agents/web-1"),
    );
    refused(
        "sweep-rules writing an identity",
        put_as(url, rules, "/sweep/identities/web-1"),
    );
    refused(
        "sweep-rules writing a hunt",
        put_as(url, rules, "/sweep/hunts/x"),
    );
    refused(
        "sweep-rules writing a heartbeat",
        put_as(url, rules, "/sweep/agents/web-1"),
    );
    let res = get_as(url, Some(rules), "/sweep/identities/");
    assert!(res.is_ok(), "sweep-rules reading identities/: {res:?}");
    refused(
        "sweep-rules reading the hunts",
        get_as(url, Some(rules), "/sweep/hunts/").map(|_| ()),
    );
    let anon = get_as(url, None, "/sweep/");
    assert!(anon.is_err(), "an anonymous read worked: {anon:?}");

    // Running it again adds a host and keeps the existing passwords.
    let out = Command::new(repo_root().join("ops/etcd-rbac"))
        .args(["--endpoints", &c.etcd_url, "--out"])
        .arg(&creds)
        .args(["web-1", "db-1"])
        .output()
        .expect("running ops/etcd-rbac again");
    ok(&out);
    assert_eq!(password(&creds, "agent-web-1"), web1_pw);
    let db1_pw = password(&creds, "agent-db-1");
    refused(
        "db-1 writing web-1's heartbeat",
        put_as(url, ("agent-db-1", &db1_pw), "/sweep/agents/web-1"),
    );
    let res = get_as(url, Some(("agent-db-1", &db1_pw)), "/sweep/hunts/");
    assert!(
        matches!(res, Ok(n) if n >= 1),
        "db-1 reading hunts/: {res:?}"
    );

    // etcd forgets its auth tokens when it restarts: the agent and the
    // controller log in again by themselves; the agent writes its heartbeat
    // again (on its old lease, or a new one) and watches on.
    c.stop_etcd();
    c.start_etcd().unwrap();
    let restarted_ms = sweep_proto::time::unix_now_ms();
    let written_since = eventually(Duration::from_secs(20), || {
        let out = sweep(&c, &["agents", "--json"]);
        ndjson(&out.stdout)
            .iter()
            .find(|a| a["host_id"] == "web-1")
            .and_then(|a| a["sent_at_ms"].as_u64())
            .filter(|ms| *ms > restarted_ms)
    });
    assert!(
        written_since.is_some(),
        "web-1 wrote no heartbeat after etcd restarted\n{}",
        agent.log_text()
    );
    web1_listed(&c, &agent);
    hunt_answered(&c);

    // SIGTERM: the agent revokes its lease, which needs write access to its
    // key, so it leaves `sweep agents` well before the 3 s TTL would lapse.
    let t = Instant::now();
    agent.signal(15);
    let gone = eventually(Duration::from_secs(2), || {
        let out = sweep(&c, &["agents", "--json"]);
        (out.status.success() && ndjson(&out.stdout).is_empty()).then_some(())
    });
    assert!(
        agent.wait_exit(Duration::from_secs(15)),
        "agent did not exit on SIGTERM\n{}",
        agent.log_text()
    );
    let log = agent.log_text();
    assert!(
        gone.is_some(),
        "web-1 still listed 2 s after SIGTERM\n{log}"
    );
    eprintln!("SIGTERM: gone from `sweep agents` after {:?}", t.elapsed());
    assert!(log.contains("registration revoked"), "{log}");
    assert!(
        !log.contains("could not let go of the registration"),
        "{log}"
    );
    assert!(agent.child.try_wait().unwrap().unwrap().success(), "{log}");
}
