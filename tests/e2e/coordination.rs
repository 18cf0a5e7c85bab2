//! The coordination store under faults, on etcd and ZooKeeper alike: a
//! store that restarts, an agent whose registration lapses (a lease or a
//! session that expired), a heartbeat that is not bound to its writer,
//! hunts whose time is up; and ZooKeeper's chroot and digest login.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sweep_e2e::{eventually, ndjson, Backend, Cluster};
use sweep_proto::coordination::{Change, Follower};
use sweep_proto::Store;

const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;

/// A hunt `host` must answer, with its one row.
fn answered_by(c: &Cluster, host: &str, log: &str) {
    let out = c.sweep(&["hunt", "SELECT 42 AS answer", "--json", "--timeout", "20s"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{log}",
        String::from_utf8_lossy(&out.stderr),
    );
    let rows = ndjson(&out.stdout);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["answer"], "42");
    assert_eq!(rows[0]["host_id"], host);
}

fn agents_come_back_after_the_store_restarts(backend: Backend) {
    let mut c = Cluster::start_on(backend).unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();

    c.stop_store();
    // This sleep is the outage under test: down for longer than the
    // registration's TTL (3 s), not a wait for anything.
    std::thread::sleep(Duration::from_secs(5));
    c.start_store().unwrap();

    c.wait_agents(&["web-1"], Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    // The watch was rebuilt, not lost: a hunt issued now reaches it.
    answered_by(&c, "web-1", &agent.log_text());
}

fn a_paused_agent_loses_its_registration_and_takes_it_back(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    let _other = c.agent("web-2", &[]).unwrap();
    c.wait_agents(&["web-1", "web-2"], Duration::from_secs(20))
        .unwrap();
    // Stopped, it renews nothing: its lease (etcd) or session (ZooKeeper)
    // expires and it leaves the fleet.
    agent.signal(SIGSTOP);
    c.wait_agents(&["web-2"], Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("a stopped agent stayed live: {e}"));
    // Woken, it finds its registration gone and registers anew, and its
    // watches follow (ZooKeeper: on a new session).
    agent.signal(SIGCONT);
    c.wait_agents(&["web-1", "web-2"], Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    let out = c.sweep(&["hunt", "SELECT 42 AS answer", "--json", "--timeout", "20s"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        agent.log_text()
    );
    let mut hosts: Vec<String> = ndjson(&out.stdout)
        .iter()
        .map(|r| r["host_id"].as_str().unwrap().to_string())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["web-1", "web-2"]);
    assert!(
        agent.log_text().contains("re-registering"),
        "the agent did not notice it lost its registration:\n{}",
        agent.log_text()
    );
}

fn a_heartbeat_not_bound_to_its_writer_is_no_agent(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let _agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    // A copy of a real heartbeat under another name, written for good
    // (no lease, not ephemeral): it would be "live" for ever.
    let real = c
        .get_value("/sweep/agents/web-1")
        .expect("web-1's heartbeat");
    let mut ghost: serde_json::Value = serde_json::from_slice(&real).unwrap();
    ghost["host_id"] = "ghost".into();
    c.put_value("/sweep/agents/ghost", &ghost.to_string(), None);
    assert!(c
        .keys_under("/sweep/agents/")
        .contains(&"/sweep/agents/ghost".to_string()));
    assert_eq!(c.live_agents(), ["web-1"]);
}

fn an_expired_hunt_leaves_the_store(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    let out = c.sweep(&[
        "hunt",
        "SELECT 1 AS one",
        "--expiry",
        "3s",
        "--timeout",
        "20s",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = c.keys_under("/sweep/hunts/");
    assert_eq!(first.len(), 1, "{first:?}");
    // (Expiry is in whole seconds: 3 s leaves the agent time to answer.)
    // etcd's lease removes it; on ZooKeeper the next hunt issued after its
    // expiry does.
    let mut last = Vec::new();
    let gone = eventually(Duration::from_secs(20), || {
        answered_by(&c, "web-1", &agent.log_text());
        last = c.keys_under("/sweep/hunts/");
        (!last.contains(&first[0])).then_some(())
    });
    assert!(gone.is_some(), "{} is still there: {last:?}", first[0]);
}

/// A follower's view of a prefix (its changes applied in order) comes to
/// equal what the store holds, across the store going away and coming back
/// with changes made meanwhile: nothing is missed, nothing deleted lingers.
fn a_follower_misses_no_change_across_an_outage(backend: Backend) {
    let mut c = Cluster::start_on(backend).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let coordination = c.coordination();
    let store = rt.block_on(Store::connect(&coordination, None)).unwrap();
    let mut follower = store.follow("/sweep/test/");
    let mut view: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    // Applies the follower's changes until the view is `want`.
    let mut converge = |follower: &mut Follower, want: &[(&str, &str)]| {
        let want: BTreeMap<String, Vec<u8>> = want
            .iter()
            .map(|(k, v)| (format!("/sweep/test/{k}"), v.as_bytes().to_vec()))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while view != want {
            assert!(Instant::now() < deadline, "view {view:?}, store {want:?}");
            let next = rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(500), follower.next()).await
            });
            match next {
                Ok(Ok(Some(Change::Reset))) => view.clear(),
                Ok(Ok(Some(Change::Put { key, value }))) => {
                    view.insert(key, value);
                }
                Ok(Ok(Some(Change::Delete { key }))) => {
                    view.remove(&key);
                }
                Ok(Ok(None)) | Err(_) => {}
                // The store was away (it is back: `start_store` waited for
                // its port): ask again, within the deadline.
                Ok(Err(_)) => {}
            }
        }
    };
    let put = |store: &Store, k: &str, v: &str| {
        rt.block_on(store.put(&format!("/sweep/test/{k}"), v.as_bytes()))
            .unwrap();
    };
    put(&store, "a", "1");
    put(&store, "b", "1");
    converge(&mut follower, &[("a", "1"), ("b", "1")]);
    put(&store, "b", "2");
    rt.block_on(store.delete("/sweep/test/a")).unwrap();
    converge(&mut follower, &[("b", "2")]);

    c.stop_store();
    c.start_store().unwrap();
    // Changes made as soon as the store is back, likely before the
    // follower has reconnected: a new client makes them.
    let writer = eventually(Duration::from_secs(30), || {
        rt.block_on(async {
            let store = Store::connect(&coordination, None).await.ok()?;
            // It answers a read: the store is serving again.
            store.get("/sweep/test/c").await.ok()?;
            Some(store)
        })
    })
    .expect("the store answers after its restart");
    put(&writer, "c", "3");
    rt.block_on(writer.delete("/sweep/test/b")).unwrap();
    converge(&mut follower, &[("c", "3")]);
    put(&writer, "c", "4");
    converge(&mut follower, &[("c", "4")]);
}

/// Every sweep znode under the chroot, readable and writable only by
/// sweep's user: ZooKeeper's own shell says so.
#[test]
fn zookeeper_chroot_and_digest_login_keep_sweep_apart() {
    let mut c = Cluster::start_on(Backend::ZooKeeper).unwrap();
    c.zookeeper_login("/tenant-a", "sweep", "s3cret");
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    answered_by(&c, "web-1", &agent.log_text());

    // ZooKeeper's own shell, fed `commands` on its standard input.
    let zk_cli = |commands: &str| {
        use std::io::Write;
        let mut shell = Command::new("/usr/share/zookeeper/bin/zkCli.sh")
            .arg("-server")
            .arg(&c.zookeeper_addr)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("zkCli.sh (apt-get install zookeeper)");
        let mut stdin = shell.stdin.take().unwrap();
        stdin.write_all(commands.as_bytes()).unwrap();
        stdin.write_all(b"quit\n").unwrap();
        drop(stdin);
        let out = shell.wait_with_output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let root = zk_cli("ls /\n");
    assert!(root.contains("[tenant-a, zookeeper]"), "{root}");
    let anonymous = zk_cli("ls /tenant-a/sweep/agents\n");
    assert!(
        anonymous.contains("Insufficient permission"),
        "an anonymous client listed the agents: {anonymous}"
    );
    let acl = zk_cli("addauth digest sweep:s3cret\nls /tenant-a/sweep/agents\ngetAcl /tenant-a/sweep/agents/web-1\n");
    assert!(acl.contains("[web-1]"), "{acl}");
    assert!(acl.contains("'digest,'sweep:"), "{acl}");
    assert!(!acl.contains("'world,'anyone"), "{acl}");
}

sweep_e2e::on_each_backend!(
    a_follower_misses_no_change_across_an_outage,
    agents_come_back_after_the_store_restarts,
    a_paused_agent_loses_its_registration_and_takes_it_back,
    a_heartbeat_not_bound_to_its_writer_is_no_agent,
    an_expired_hunt_leaves_the_store,
);
