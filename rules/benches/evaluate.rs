//! Rule evaluation alone, on one core: reading each record and running 100
//! rules (the 9 of ops/rules/linux.toml and 91 more of the same shapes) on
//! realistic `processes` rows. `cargo bench -p sweep-rules --bench evaluate`.
//! The whole consumer, broker included, is measured by `ops/bench/rules`.

use std::time::Instant;

use std::sync::Arc;

use sweep_rules::pipeline::Pipeline;
use sweep_rules::{rule, RuleSet};

const ROWS: usize = 300_000;

fn rules() -> RuleSet {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ops/rules/linux.toml"
    ))
    .expect("ops/rules/linux.toml");
    let mut text = base.clone();
    let names = [
        "nc", "socat", "perl", "python", "ruby", "php", "lua", "awk", "tclsh", "telnet",
    ];
    for i in 0..91 {
        let n = names[i % names.len()];
        let rule = match i % 7 {
            0 => format!("condition = \"name IN ('{n}{i}', '{n}-{i}') AND remote_port > 0\""),
            1 => format!("condition = \"path LIKE '/opt/{n}{i}/%' OR path LIKE '/srv/{i}/%'\""),
            2 => format!("condition = \"cmdline LIKE '%--{n}-{i}%'\""),
            3 => format!("condition = \"uid = {} AND name = '{n}{i}'\"", 10_000 + i),
            4 => format!("condition = \"remote_address IN ('203.0.113.{i}', '198.51.100.{i}')\""),
            5 => format!("condition = \"name = '{n}{i}' AND on_disk = 0\""),
            _ => format!("condition = \"cmdline LIKE '%{n}{i}.sh' AND parent > 1\""),
        };
        let query = if i.is_multiple_of(3) {
            "processes"
        } else {
            "*"
        };
        text.push_str(&format!(
            "\n[[rule]]\nid = \"gen_{i}\"\ntitle = \"generated {i}\"\nseverity = \"low\"\nquery = \"{query}\"\n{rule}\n"
        ));
    }
    let rules = rule::parse(&text, "bench").expect("rules");
    assert_eq!(rules.len(), 100);
    RuleSet::new(rules)
}

fn row(i: usize) -> String {
    let bins = [
        "/usr/sbin/nginx",
        "/usr/bin/python3",
        "/usr/lib/systemd/systemd-journald",
        "/usr/sbin/sshd",
        "/usr/bin/bash",
    ];
    let path = if i.is_multiple_of(200) {
        "/tmp/.x/kworker"
    } else {
        bins[i % bins.len()]
    };
    let name = path.rsplit('/').next().unwrap_or("x");
    let cmdline = if i.is_multiple_of(333) {
        "./xmrig -o stratum+tcp://pool.example:3333 --donate-level 1".to_string()
    } else {
        format!("{path} --config /etc/{name}/{name}.conf --pid-file /run/{name}.pid -v")
    };
    format!(
        r#"{{"name":"processes","hostIdentifier":"host-{h}","calendarTime":"Thu Nov 26 10:00:00 2026 UTC","unixTime":1795600000,"epoch":0,"counter":{i},"decorations":{{"host_uuid":"4c4c4544-0042-3510-8052-b7c04f4a{h:04}"}},"columns":{{"pid":"{pid}","name":"{name}","path":"{path}","cmdline":"{cmdline}","state":"S","cwd":"/","root":"/","uid":"{uid}","gid":"{uid}","euid":"{uid}","egid":"{uid}","suid":"{uid}","sgid":"{uid}","on_disk":"1","wired_size":"0","resident_size":"{rss}","total_size":"{vsz}","user_time":"{ut}","system_time":"{st}","disk_bytes_read":"1204224","disk_bytes_written":"0","start_time":"1795590000","parent":"1","pgroup":"{pid}","threads":"4","nice":"0"}},"action":"added","seq":{seq}}}"#,
        h = i % 10_000,
        pid = 1000 + i % 30_000,
        uid = if i.is_multiple_of(7) { 0 } else { 33 },
        rss = 10_000_000 + i,
        vsz = 200_000_000 + i,
        ut = i % 5000,
        st = i % 700,
        seq = 1 + i % 50,
    )
}

fn main() {
    // The consumer's path: one worker's pipeline. SWEEP_BENCH_RULES (a rules
    // directory) and SWEEP_BENCH_ROWS (records, one a line, repeated to
    // ROWS) evaluate what `ops/bench/rules --keep` leaves instead.
    let rules = match std::env::var_os("SWEEP_BENCH_RULES") {
        Some(dir) => RuleSet::new(rule::load_dir(dir.as_ref()).expect("SWEEP_BENCH_RULES")),
        None => rules(),
    };
    let mut pipeline = Pipeline::new(Arc::new(rules));
    let rows: Vec<String> = match std::env::var_os("SWEEP_BENCH_ROWS") {
        Some(file) => {
            let text = std::fs::read_to_string(file).expect("SWEEP_BENCH_ROWS");
            let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
            (0..ROWS)
                .map(|i| lines[i % lines.len()].to_string())
                .collect()
        }
        None => (0..ROWS).map(row).collect(),
    };
    let bytes: usize = rows.iter().map(String::len).sum();
    // Warm up, then measure.
    for r in rows.iter().take(10_000) {
        std::hint::black_box(pipeline.record(r.as_bytes()));
    }
    let mut matches = 0usize;
    let started = Instant::now();
    for r in &rows {
        matches += pipeline.record(r.as_bytes()).expect("a row").1.len();
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "{ROWS} rows ({:.0} bytes each), {} rules: {:.0} rows/s on one core ({:.2} µs/row), {matches} matches",
        bytes as f64 / ROWS as f64,
        pipeline.rules().len(),
        ROWS as f64 / took,
        took * 1e6 / ROWS as f64
    );
}
