//! Trust: agents run only hunts signed by a key they trust; the rest are
//! rejected with an error the controller reports, and nothing runs.

use std::time::Duration;

use sweep_e2e::{eventually, hunt, Backend, Cluster};
use sweep_proto::signing::{Kind, Signer};
use sweep_proto::Keyspace;

fn unsigned_and_foreign_hunts_are_rejected_and_reported(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();

    let mallory = Signer::generate().unwrap();
    c.put_hunt(hunt("unsigned", "SELECT 1 AS ran"), None);
    c.put_hunt(hunt("foreign", "SELECT 1 AS ran"), Some(&mallory));
    // A signed hunt whose text was changed after signing.
    let mut tampered = c
        .signer()
        .seal(Kind::Hunt, hunt("tampered", "SELECT 1 AS ran").to_json());
    tampered.body = tampered.body.replace("SELECT 1", "SELECT 2");
    c.put_value(
        &Keyspace::default().hunt("tampered"),
        &tampered.to_json(),
        Some(300),
    );

    for (id, why) in [
        ("unsigned", "the command is not signed"),
        ("foreign", "not by a trusted key"),
        ("tampered", "not by a trusted key"),
    ] {
        let report = eventually(Duration::from_secs(20), || {
            let out = c.sweep(&["results", id]);
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            (stderr.contains("web-1: rejected")).then_some((out, stderr))
        })
        .unwrap_or_else(|| panic!("no rejection for {id}\n{}", agent.log_text()));
        let (out, stderr) = report;
        assert!(stderr.contains(why), "{id}: {stderr}");
        assert_eq!(out.status.code(), Some(1), "{id}: {stderr}");
        assert!(
            out.stdout.iter().all(|b| !b.is_ascii_digit()),
            "{id} returned rows"
        );
    }
    let log = agent.log_text();
    assert!(!log.contains("running hunt hunt_id=unsigned"), "{log}");
    assert!(!log.contains("running hunt hunt_id=foreign"), "{log}");
    assert!(!log.contains("running hunt hunt_id=tampered"), "{log}");

    // The cluster's own key works, and the CLI records the issuer.
    let out = c.sweep(&["hunt", "SELECT 1 AS ran"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn the_controller_refuses_a_bad_signing_key(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let bad = c.dir.path().join("bad.key");
    std::fs::write(&bad, "not a key").unwrap();
    let out = c
        .sweep_cmd(&["hunt", "SELECT 1"])
        .env("SWEEP_SIGNING_KEY", &bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("signing key") && stderr.contains("bad.key"),
        "{stderr}"
    );

    // The public half given where the secret one belongs.
    let keys = c.dir.path().join("keys");
    let out = c
        .sweep_cmd(&["keygen", "--out", keys.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = c
        .sweep_cmd(&["hunt", "SELECT 1"])
        .env("SWEEP_SIGNING_KEY", keys.join("sweep.pub"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("this is a public key file"), "{stderr}");

    // `--hosts ""` (an unset variable) never means every host.
    let out = c.sweep(&["hunt", "SELECT 1", "--hosts", ""]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("empty host id"), "{stderr}");
}

fn a_replayed_schedule_and_a_moved_signature_are_rejected(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    let key = Keyspace::default().schedule("q");
    let add = |sql: &str| {
        let out = c.sweep(&[
            "schedule",
            "add",
            "q",
            sql,
            "--interval",
            "1s",
            "--snapshot",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        c.get_value(&key).expect("stored")
    };
    let v1 = add("SELECT 1 AS v");
    let v2 = add("SELECT 2 AS v");
    assert_ne!(v1, v2);
    let values = |c: &Cluster| -> Vec<String> {
        let out = c.sweep(&["tail", "--query", "q", "--json"]);
        sweep_e2e::ndjson(&out.stdout)
            .iter()
            .map(|r| r["columns"]["v"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    eventually(Duration::from_secs(30), || {
        values(&c).iter().any(|v| v == "2").then_some(())
    })
    .unwrap_or_else(|| panic!("version 2 never ran\n{}", agent.log_text()));

    // Someone with write access to the store puts the older signed version back.
    c.put_value(&key, std::str::from_utf8(&v1).unwrap(), None);
    eventually(Duration::from_secs(20), || {
        agent
            .log_text()
            .contains("already seen (a replay?)")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the replay was not rejected\n{}", agent.log_text()));
    // Version 2 keeps running; version 1 does not come back.
    let ones = values(&c).iter().filter(|v| *v == "1").count();
    let twos = values(&c).iter().filter(|v| *v == "2").count();
    eventually(Duration::from_secs(20), || {
        (values(&c).iter().filter(|v| *v == "2").count() >= twos + 3).then_some(())
    })
    .unwrap_or_else(|| panic!("version 2 stopped\n{}", agent.log_text()));
    assert_eq!(values(&c).iter().filter(|v| *v == "1").count(), ones);

    // A hunt's signature over a schedule's body, under a schedule key: as a
    // hunt, and relabelled as a schedule.
    let body = String::from_utf8(v2.clone()).unwrap();
    let body = sweep_proto::signing::Envelope::from_json(body.as_bytes())
        .unwrap()
        .body
        .replace("\"name\":\"q\"", "\"name\":\"moved\"");
    let as_hunt = c.signer().seal(Kind::Hunt, body);
    let mut relabelled = as_hunt.clone();
    relabelled.kind = Kind::Schedule;
    let moved = Keyspace::default().schedule("moved");
    c.put_value(&moved, &as_hunt.to_json(), None);
    eventually(Duration::from_secs(20), || {
        agent
            .log_text()
            .contains("a hunt command stored where a schedule belongs")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the moved signature was not rejected\n{}", agent.log_text()));
    c.put_value(&moved, &relabelled.to_json(), None);
    eventually(Duration::from_secs(20), || {
        let log = agent.log_text();
        (log.matches("command rejected").count() >= 3 && log.contains("not by a trusted key"))
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the relabelled signature was not rejected\n{}",
            agent.log_text()
        )
    });
    assert!(!agent.log_text().contains("pack_moved") && !values_named(&c, "moved"));
}

fn values_named(c: &Cluster, query: &str) -> bool {
    let out = c.sweep(&["tail", "--query", query, "--json"]);
    !sweep_e2e::ndjson(&out.stdout).is_empty()
}

sweep_e2e::on_each_backend!(
    unsigned_and_foreign_hunts_are_rejected_and_reported,
    the_controller_refuses_a_bad_signing_key,
    a_replayed_schedule_and_a_moved_signature_are_rejected,
);
