//! Trust: agents run only hunts signed by a key they trust; the rest are
//! rejected with an error the controller reports, and nothing runs.

use std::time::Duration;

use sweep_e2e::{eventually, hunt, Cluster};
use sweep_proto::signing::Signer;

#[test]
fn unsigned_and_foreign_hunts_are_rejected_and_reported() {
    let c = Cluster::start().unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();

    let mallory = Signer::generate().unwrap();
    c.put_hunt(hunt("unsigned", "SELECT 1 AS ran"), None);
    c.put_hunt(hunt("foreign", "SELECT 1 AS ran"), Some(&mallory));
    // A signed hunt whose text was changed after signing.
    let mut tampered = hunt("tampered", "SELECT 1 AS ran");
    c.signer().sign(&mut tampered);
    tampered.sql = "SELECT 2 AS ran".into();
    c.put_hunt(tampered, None);

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

#[test]
fn the_controller_refuses_a_bad_signing_key() {
    let c = Cluster::start().unwrap();
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
}
