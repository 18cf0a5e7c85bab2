//! The topic layout of DESIGN.md: scheduled rows on `sweep.results`, each
//! hunt's answers in the one partition of `sweep.hunts` its controller chose,
//! topics made with the configured partition count. A hunt's controller
//! reads only its own hunt's records, however busy the fleet's topics are.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use sweep_e2e::{ok, Cluster};

fn partitions(c: &Cluster, topic: &str) -> usize {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", c.kafka_brokers())
        .create()
        .unwrap();
    let meta = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    meta.topics()[0].partitions().len()
}

#[test]
fn a_hunt_reads_only_its_own_records_however_busy_the_topics_are() {
    let c = Cluster::start().unwrap();
    let _agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    ok(&c.sweep(&["hunt", "SELECT 1 AS warmup"]));
    assert_eq!(partitions(&c, "sweep.results"), 12);
    assert_eq!(partitions(&c, "sweep.hunts"), 12);
    // The fleet's scheduled traffic, and other hunts' answers in every
    // partition of sweep.hunts.
    let row = br#"{"name":"procs","hostIdentifier":"web-9","calendarTime":"","unixTime":1,"columns":{"pid":"1"},"action":"snapshot","seq":1}"#;
    let hosts: Vec<String> = (0..20_000).map(|i| format!("sim-{i}")).collect();
    c.produce_many(
        "sweep.results",
        None,
        hosts.iter().map(|h| (h.as_str(), &row[..])),
    );
    let other = br#"{"name":"hunt:0000","hostIdentifier":"sim-1","calendarTime":"","unixTime":1,"columns":{"one":"1"},"action":"snapshot","hunt_id":"0000","seq":1}"#;
    for p in 0..12 {
        c.produce_many(
            "sweep.hunts",
            Some(p),
            hosts[..200].iter().map(|h| (h.as_str(), &other[..])),
        );
    }
    let out = c.sweep(&["hunt", "SELECT 1 AS one", "--json"]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One row and one status: nothing else was read.
    assert!(
        stderr.contains("1 row(s) from 1 of 1 agent(s)") && stderr.contains("; 2 record(s) read"),
        "{stderr}"
    );
}
