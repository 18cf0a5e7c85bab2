//! osquery's own pack queries, unchanged: every Linux query over tables sweep
//! serves must run without error. The queries come from osquery's packs (see
//! shared/reference/osquery-pack-queries.json), so this is the compatibility
//! promise checked against the real thing rather than our own examples.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sweep_agent::tables::Registry;
use sweep_agent::{Engine, Limits};
use sweep_proto::tables::{is_known, TABLES};

fn pack_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/osquery-pack-queries.json")
}

/// Platforms a pack query declares that include Linux: osquery's `posix`
/// covers it, a missing platform means all, and some packs name distributions.
fn runs_on_linux(platform: Option<&str>) -> bool {
    platform.is_none_or(|p| {
        p.split(',').map(str::trim).any(|p| {
            matches!(
                p,
                "" | "all" | "any" | "linux" | "posix" | "ubuntu" | "centos"
            )
        })
    })
}

#[test]
fn osquery_linux_pack_queries_run() {
    let path = pack_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read osquery's pack queries at {}: {e}; the shared/ directory must be \
             checked out beside the repository",
            path.display()
        )
    });
    let queries: Vec<serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!queries.is_empty(), "{} lists no queries", path.display());

    // Generous, but bounded: a broken table must fail, not hang the suite.
    let engine = Engine::new(
        Arc::new(Registry::default()),
        Limits {
            wall_time: Duration::from_secs(60),
            max_rows: 1_000_000,
            max_bytes: 512 * 1024 * 1024,
            ..Limits::default()
        },
    );

    let (mut ran, mut failures, mut undeclared) = (0, Vec::new(), Vec::new());
    for q in &queries {
        let field = |k: &str| {
            q.get(k)
                .unwrap_or_else(|| panic!("pack query without {k}: {q}"))
        };
        let names = |k: &str| -> Vec<String> {
            field(k)
                .as_array()
                .unwrap_or_else(|| panic!("{k} is not a list: {q}"))
                .iter()
                .map(|t| t.as_str().expect("table names are text").to_string())
                .collect()
        };
        let pack = field("pack").as_str().unwrap_or_default();
        let name = field("name").as_str().unwrap_or_default();
        let sql = field("query").as_str().expect("query is text");
        let tables = names("tables");
        if !runs_on_linux(field("platform").as_str())
            || !names("tables_not_in_linux_build").is_empty()
            || tables.is_empty()
            || !tables.iter().all(|t| TABLES.contains(&t.as_str()))
        {
            continue;
        }
        // The file's `tables` can be incomplete (osquery-monitoring's
        // osquery_info also reads `time`); what the text itself reads decides.
        let read = sweep_proto::guard::check(sql, &|_| true)
            .unwrap_or_else(|e| panic!("{pack}/{name}: the guard refused {sql:?}: {e}"))
            .tables;
        if let Some(missing) = read.iter().find(|t| !is_known(t)) {
            undeclared.push(format!("{pack}/{name} (reads {missing})"));
            continue;
        }

        let out = engine.run(sql);
        ran += 1;
        match out.error {
            None => assert!(!out.columns.is_empty(), "{pack}/{name}: no columns"),
            Some(e) => failures.push(format!("{pack}/{name}: {e}\n    {sql}")),
        }
    }
    println!(
        "{ran} of {} osquery pack queries ran on sweep's tables",
        queries.len()
    );
    if !undeclared.is_empty() {
        println!(
            "skipped, reading a table their `tables` does not list: {}",
            undeclared.join(", ")
        );
    }
    assert!(ran > 0, "no pack query selected from {}", path.display());
    assert!(
        failures.is_empty(),
        "{} of {ran} pack queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
