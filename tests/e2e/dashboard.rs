//! The Grafana dashboard (`ops/grafana/sweep.json`) names only metrics the
//! code exports, with labels those metrics carry. The evidence is the real
//! exposition: an agent and sweep-rules run against a real etcd and broker,
//! are given a little traffic (a schedule, a hunt, an unsigned hunt, a rule
//! match, a poison record, a forged row) and their `/metrics` are scraped.
//! A few families appear only after rare events (an etcd failure, a rejected
//! pack, ...); for those alone the name may instead be found as a string
//! literal in the crate's metrics source (`agent/src/daemon/metrics.rs`,
//! `rules/src/metrics.rs`), and the test prints which names were seen live
//! and which only in source. Every expression must also parse as PromQL
//! (`promtool check rules`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use sweep_e2e::{eventually, http_get, hunt, ok, Cluster, Proc};

/// Labels Prometheus adds to every scraped series (target labels).
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// Families that appear in an exposition only after events this test does
/// not cause; the dashboard may name them when the crate's metrics source
/// defines them, and the test does not wait for them.
const NOT_DRIVEN: [&str; 3] = [
    // A coordination store failure on a running agent.
    "sweep_agent_coordination_errors_total",
    // A schedule or pack with a bad signature.
    "sweep_agent_commands_rejected_total",
    // A run that cannot be judged (no pin yet, joined halfway, no seal).
    "sweep_rules_runs_unverified_total",
];

/// As [`NOT_DRIVEN`], plus families the test's traffic should bring within
/// its minute of waiting but whose timing it does not control.
const MAY_BE_SOURCE_ONLY: [&str; 6] = [
    NOT_DRIVEN[0],
    NOT_DRIVEN[1],
    NOT_DRIVEN[2],
    // An unsigned hunt, counted when the agent's watch sees it.
    "sweep_agent_hunts_skipped_total",
    // A row in web-1's name, judged as it passes.
    "sweep_rules_forged_total",
    // Sampled every 10 s, once partitions are assigned.
    "sweep_rules_consumer_lag_records",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dashboard() -> Value {
    let path = repo().join("ops/grafana/sweep.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Component {
    Agent,
    Rules,
}

impl Component {
    fn name(self) -> &'static str {
        match self {
            Component::Agent => "sweep-agent",
            Component::Rules => "sweep-rules",
        }
    }
}

/// What one `/metrics` response holds: each sample name with the label
/// names seen on it, and each family named by `# HELP` / `# TYPE` with its
/// type.
#[derive(Default, Debug)]
struct Exposition {
    samples: BTreeMap<String, BTreeSet<String>>,
    families: BTreeMap<String, String>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut e = Exposition::default();
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                if let Some(name) = rest.split_whitespace().next() {
                    e.families.entry(name.to_string()).or_default();
                }
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (it.next(), it.next()) {
                    e.families.insert(name.to_string(), kind.to_string());
                }
            } else if !line.is_empty() && !line.starts_with('#') {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                let labels = e.samples.entry(line[..end].to_string()).or_default();
                if line[end..].starts_with('{') {
                    labels.extend(exposition_labels(&line[end + 1..]));
                }
            }
        }
        e
    }

    /// The label names on `name` if it is live here: `Some(None)` when only
    /// its family is (a histogram's `_bucket` named by `# TYPE` alone).
    fn live(&self, name: &str) -> Option<Option<&BTreeSet<String>>> {
        if let Some(labels) = self.samples.get(name) {
            return Some(Some(labels));
        }
        if self.families.contains_key(name) {
            return Some(None);
        }
        let base = strip_series_suffix(name)?;
        matches!(
            self.families.get(base).map(String::as_str),
            Some("histogram" | "summary")
        )
        .then_some(None)
    }
}

/// Label names of one sample line, from just after its `{`.
fn exposition_labels(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none_or(|c| *c == '}') {
            return out;
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        out.push(name.trim().to_string());
        if chars.next() != Some('"') {
            return out;
        }
        let mut escaped = false;
        for c in chars.by_ref() {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => break,
                _ => escaped = false,
            }
        }
    }
}

/// `x` for `x_bucket`, `x_sum` and `x_count`.
fn strip_series_suffix(name: &str) -> Option<&str> {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
}

/// What a component's metrics are checked against: its live exposition
/// and its metrics source.
struct Evidence {
    live: Exposition,
    source_path: &'static str,
    source: String,
}

impl Evidence {
    fn new(component: Component, exposition: &str) -> Self {
        let source_path = match component {
            Component::Agent => "agent/src/daemon/metrics.rs",
            Component::Rules => "rules/src/metrics.rs",
        };
        let source = std::fs::read_to_string(repo().join(source_path))
            .unwrap_or_else(|e| panic!("{source_path}: {e}"));
        Evidence {
            live: Exposition::parse(exposition),
            source_path,
            source,
        }
    }

    /// Whether `name` (or the histogram it is a series of) is a string
    /// literal in the source.
    fn in_source(&self, name: &str) -> bool {
        let quoted = |n: &str| self.source.contains(&format!("\"{n}\""));
        quoted(name) || strip_series_suffix(name).is_some_and(quoted)
    }
}

/// Every PromQL expression in a dashboard, with the title of its panel (or
/// the name of its template variable): `expr` of every target, nested rows
/// included, and the queries of template variables (`label_values(sel,
/// label)` as the selector, and the label checked on it).
fn dashboard_exprs(dash: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
                for (k, x) in map {
                    match (k.as_str(), x) {
                        ("expr", Value::String(e)) => out.push((title.to_string(), e.clone())),
                        ("templating", _) => {}
                        _ => walk(x, title, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|x| walk(x, title, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dash, "", &mut out);
    for var in dash["templating"]["list"].as_array().into_iter().flatten() {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .unwrap_or_default();
        let where_ = format!("variable ${}", var["name"].as_str().unwrap_or("?"));
        out.push((where_, query.to_string()));
    }
    out
}

/// One metric named by an expression, with the labels the expression uses
/// on it: its own matchers, and the expression's `by`/`without`/`on`/
/// `ignoring` labels (the dashboard keeps to expressions where those apply
/// to every metric in them). `label_values(sel, label)` counts `label`.
#[derive(Debug)]
struct Use {
    name: String,
    labels: BTreeSet<String>,
}

fn metric_uses(expr: &str) -> Vec<Use> {
    let s: Vec<char> = expr.chars().collect();
    let mut uses: Vec<Use> = Vec::new();
    let mut grouping: BTreeSet<String> = BTreeSet::new();
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && s[*i].is_whitespace() {
            *i += 1;
        }
    };
    let read_ident = |i: &mut usize| -> String {
        let start = *i;
        while *i < s.len() && ident_char(s[*i]) {
            *i += 1;
        }
        s[start..*i].iter().collect()
    };
    // Past a string literal starting at `i` (its quote).
    let skip_string = |i: &mut usize| {
        let quote = s[*i];
        *i += 1;
        while *i < s.len() && s[*i] != quote {
            if s[*i] == '\\' {
                *i += 1;
            }
            *i += 1;
        }
        *i += 1;
    };
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == '"' || c == '\'' || c == '`' {
            skip_string(&mut i);
        } else if c == '[' {
            while i < s.len() && s[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '$' {
            // A Grafana variable: $name, ${name}, ${name:fmt}.
            i += 1;
            if i < s.len() && s[i] == '{' {
                while i < s.len() && s[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                read_ident(&mut i);
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number (its exponent or unit letters are not identifiers).
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '.') {
                i += 1;
            }
        } else if ident_start(c) {
            let word = read_ident(&mut i);
            let mut j = i;
            skip_ws(&mut j);
            let next = s.get(j).copied();
            if matches!(word.as_str(), "by" | "without" | "on" | "ignoring") && next == Some('(') {
                i = j + 1;
                while i < s.len() && s[i] != ')' {
                    if ident_start(s[i]) {
                        grouping.insert(read_ident(&mut i));
                    } else {
                        i += 1;
                    }
                }
                i += 1;
            } else if word == "label_values" && next == Some('(') {
                // label_values(selector, label): the label is used on the
                // selector's metric.
                let close = s[j..].iter().rposition(|c| *c == ')').map(|p| j + p);
                let inner: String = s[j + 1..close.unwrap_or(s.len())].iter().collect();
                if let Some((sel, label)) = inner.rsplit_once(',') {
                    let mut inner_uses = metric_uses(sel);
                    for u in &mut inner_uses {
                        u.labels.insert(label.trim().to_string());
                    }
                    uses.extend(inner_uses);
                }
                i = close.map_or(s.len(), |p| p + 1);
            } else if word.starts_with("sweep_") || word.starts_with("process_") {
                let mut labels = BTreeSet::new();
                if next == Some('{') {
                    i = j + 1;
                    loop {
                        skip_ws(&mut i);
                        if i >= s.len() || s[i] == '}' {
                            i += 1;
                            break;
                        }
                        if s[i] == ',' {
                            i += 1;
                        } else if ident_start(s[i]) {
                            labels.insert(read_ident(&mut i));
                        } else if s[i] == '"' || s[i] == '\'' || s[i] == '`' {
                            skip_string(&mut i);
                        } else {
                            // `=`, `!=`, `=~`, `!~`.
                            i += 1;
                        }
                    }
                }
                uses.push(Use { name: word, labels });
            }
        } else {
            i += 1;
        }
    }
    for u in &mut uses {
        u.labels.extend(grouping.iter().cloned());
    }
    uses
}

/// The components whose metric `name` is, in `expr`: by prefix, and for
/// the shared `process_*` collector by the job variable the expression
/// selects (both when it names neither).
fn components(name: &str, expr: &str) -> Vec<Component> {
    let process = name.starts_with("process_");
    let agent = name.starts_with("sweep_agent_") || (process && expr.contains("$agent_job"));
    let rules = name.starts_with("sweep_rules_") || (process && expr.contains("$rules_job"));
    match (agent, rules) {
        (true, false) => vec![Component::Agent],
        (false, true) => vec![Component::Rules],
        _ => vec![Component::Agent, Component::Rules],
    }
}

/// What the dashboard names, sorted by what vouches for it.
#[derive(Debug, Default)]
struct Report {
    /// `component: name`, seen in the live exposition.
    live: BTreeSet<String>,
    /// `component: name`, defined in the metrics source but not seen live.
    source_only: BTreeSet<String>,
    /// Names exported by neither, and labels a metric does not carry.
    problems: Vec<String>,
    exprs: usize,
}

fn check(dash: &Value, agent: &Evidence, rules: &Evidence) -> Report {
    let mut report = Report::default();
    for (panel, expr) in dashboard_exprs(dash) {
        report.exprs += 1;
        for u in metric_uses(&expr) {
            for comp in components(&u.name, &expr) {
                let ev = match comp {
                    Component::Agent => agent,
                    Component::Rules => rules,
                };
                let key = format!("{}: {}", comp.name(), u.name);
                let extra: Vec<&String> = u
                    .labels
                    .iter()
                    .filter(|l| !TARGET_LABELS.contains(&l.as_str()))
                    .collect();
                match ev.live.live(&u.name) {
                    Some(seen) => {
                        report.live.insert(key);
                        for l in extra {
                            let ok = match seen {
                                Some(labels) => labels.contains(l),
                                None => ev.source.contains(&format!("\"{l}\"")),
                            };
                            if !ok {
                                report.problems.push(format!(
                                    "{panel}: label `{l}` is not on {} (its labels: {seen:?}) in `{expr}`",
                                    u.name
                                ));
                            }
                        }
                    }
                    None if ev.in_source(&u.name) => {
                        report.source_only.insert(key);
                        for l in extra {
                            if !ev.source.contains(&format!("\"{l}\"")) {
                                report.problems.push(format!(
                                    "{panel}: label `{l}` of {} is nowhere in {} in `{expr}`",
                                    u.name, ev.source_path
                                ));
                            }
                        }
                    }
                    None => report.problems.push(format!(
                        "{panel}: {} does not export {} (not in its /metrics, not in {}) in `{expr}`",
                        comp.name(),
                        u.name,
                        ev.source_path
                    )),
                }
            }
        }
    }
    report
}

/// Every expression parses as PromQL: each becomes a recording rule, with
/// Grafana's interval variables replaced, and `promtool check rules` reads
/// them.
fn promtool_parses(dash: &Value) -> Result<usize, String> {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::from("groups:\n- name: dashboard\n  rules:\n");
    let mut n = 0;
    for (_, expr) in dashboard_exprs(dash) {
        if expr.starts_with("label_values(") {
            continue;
        }
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$__interval", "1m")
            .replace("$__range", "1h");
        n += 1;
        // A JSON string is a YAML double-quoted scalar.
        yaml.push_str(&format!(
            "  - record: dashboard:expr{n}\n    expr: {}\n",
            Value::from(expr)
        ));
    }
    let path = dir.path().join("dashboard.yml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules", "--lint=none"])
        .arg(&path)
        .output()
        .expect(
            "promtool not found: install Debian's `prometheus` package (ops/install-deps does)",
        );
    if out.status.success() {
        Ok(n)
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A copy of `dash` with one more panel holding `expr`.
fn with_panel(dash: &Value, expr: &str) -> Value {
    let mut copy = dash.clone();
    copy["panels"].as_array_mut().unwrap().push(json!({
        "type": "timeseries", "title": "added by the test",
        "targets": [{"expr": expr, "refId": "A"}],
    }));
    copy
}

#[test]
fn the_checker_fails_on_a_metric_or_label_the_code_does_not_export() {
    let agent = Evidence::new(
        Component::Agent,
        "# HELP sweep_agent_queries_total Queries run, by kind and outcome.\n\
         # TYPE sweep_agent_queries_total counter\n\
         sweep_agent_queries_total{kind=\"hunt\",outcome=\"ok\"} 1\n\
         # TYPE sweep_agent_query_duration_seconds histogram\n\
         sweep_agent_query_duration_seconds_bucket{le=\"0.001\"} 1\n\
         sweep_agent_query_duration_seconds_sum 0.0005\n\
         sweep_agent_query_duration_seconds_count 1\n\
         process_open_fds 9\n",
    );
    let rules = Evidence::new(Component::Rules, "");
    let good = json!({"panels": [], "templating": {"list": [
        {"type": "query", "name": "agent_job", "query": "label_values(sweep_agent_queries_total, job)"},
    ]}});
    let good = with_panel(
        &good,
        "sum by (kind, outcome) (rate(sweep_agent_queries_total{job=~\"$agent_job\", instance=~\"$instance\", outcome!=\"ok\"}[$__rate_interval]))",
    );
    let good = with_panel(
        &good,
        "histogram_quantile(0.99, sum by (le) (rate(sweep_agent_query_duration_seconds_bucket{job=~\"$agent_job\"}[5m])))",
    );
    let good = with_panel(&good, "max(process_open_fds{job=~\"$agent_job\"})");
    // Not in the exposition, but defined in agent/src/daemon/metrics.rs.
    let good = with_panel(
        &good,
        "sum(increase(sweep_agent_kafka_records_quarantined_total[1h]))",
    );
    let r = check(&good, &agent, &rules);
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
    assert_eq!(r.exprs, 5);
    assert!(r.live.contains("sweep-agent: sweep_agent_queries_total"));
    assert!(r
        .live
        .contains("sweep-agent: sweep_agent_query_duration_seconds_bucket"));
    assert!(r.live.contains("sweep-agent: process_open_fds"));
    assert_eq!(
        r.source_only,
        ["sweep-agent: sweep_agent_kafka_records_quarantined_total".to_string()].into()
    );

    for (bad, complaint) in [
        (
            "sum(rate(sweep_agent_bogus_total[5m]))",
            "does not export sweep_agent_bogus_total",
        ),
        (
            "sweep_rules_matches_totl{severity=\"high\"}",
            "does not export sweep_rules_matches_totl",
        ),
        (
            "sum by (flavour) (rate(sweep_agent_queries_total[5m]))",
            "label `flavour` is not on sweep_agent_queries_total",
        ),
        (
            "sweep_agent_queries_total{severity=\"high\"}",
            "label `severity` is not on sweep_agent_queries_total",
        ),
        (
            "max(process_threads{job=~\"$rules_job\"})",
            "sweep-rules does not export process_threads",
        ),
        (
            "sum by (colour) (sweep_agent_kafka_records_quarantined_total)",
            "label `colour` of sweep_agent_kafka_records_quarantined_total is nowhere",
        ),
    ] {
        let r = check(&with_panel(&good, bad), &agent, &rules);
        assert_eq!(r.problems.len(), 1, "{bad}: {:#?}", r.problems);
        assert!(
            r.problems[0].contains(complaint),
            "{bad}: {:#?}",
            r.problems
        );
    }
}

#[test]
fn every_expression_parses_as_promql() {
    let dash = dashboard();
    let n = promtool_parses(&dash).unwrap_or_else(|e| panic!("{e}"));
    assert!(n >= 40, "only {n} expressions");
    assert!(promtool_parses(&with_panel(
        &dash,
        "sum by (kind (sweep_agent_queries_total)"
    ))
    .is_err());
}

#[test]
fn the_dashboard_is_one_grafana_dashboard_on_the_datasource_variable() {
    let dash = dashboard();
    assert!(
        dash["schemaVersion"].as_u64().unwrap() >= 36,
        "{}",
        dash["schemaVersion"]
    );
    assert_eq!(dash["uid"], "sweep-overview");
    let vars: BTreeSet<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for v in ["datasource", "agent_job", "instance", "rules_job"] {
        assert!(vars.contains(v), "no ${v} variable: {vars:?}");
    }
    let panels = dash["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(
        rows,
        ["Fleet", "Queries", "Delivery", "Events", "sweep-rules"]
    );
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "id {} twice",
            p["id"]
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            let expr = t["expr"].as_str().unwrap();
            // Each expression selects its component's job, so agents and
            // sweep-rules scraped by one Prometheus stay apart.
            for (prefix, var) in [
                ("sweep_agent_", "$agent_job"),
                ("sweep_rules_", "$rules_job"),
            ] {
                assert!(
                    !expr.contains(prefix) || expr.contains(var),
                    "{}: `{expr}` does not select {var}",
                    p["title"]
                );
            }
            assert!(
                expr.contains("$agent_job") || expr.contains("$rules_job"),
                "{}: `{expr}` selects no job",
                p["title"]
            );
        }
    }
}

/// The body of `/metrics` at `addr`.
fn scrape(addr: &str) -> String {
    let response = http_get(addr, "/metrics");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

fn admin_addr(p: &Proc) -> String {
    eventually(Duration::from_secs(30), || p.admin_addr())
        .unwrap_or_else(|| panic!("{}: no admin address\n{}", p.name, p.log_text()))
}

#[test]
fn every_metric_the_dashboard_names_is_one_the_binaries_export() {
    let dash = dashboard();
    let c = Cluster::start().unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    ok(&c.sweep(&["agents"])); // pins web-1, whose rows sweep-rules then verifies
    let dir = c.rules_dir(
        r#"
[[rule]]
id = "dash_scheduled_one"
title = "A scheduled one"
severity = "low"
query = "ones"
condition = "one = '1'"

[[rule]]
id = "dash_hunted_one"
title = "A hunted one"
severity = "high"
query = "hunt:*"
condition = "one = '1'"
"#,
    );
    let rules = c.rules(&dir).unwrap();
    let (agent_addr, rules_addr) = (admin_addr(&agent), admin_addr(&rules));
    eventually(Duration::from_secs(60), || {
        http_get(&rules_addr, "/ready")
            .contains("ready\n")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("sweep-rules never ready\n{}", rules.log_text()));

    // Traffic: a schedule and a hunt (queries, rows, delivery, matches), an
    // unsigned hunt (skipped), a poison record and a row in web-1's name
    // that web-1 never sent.
    ok(&c.sweep(&[
        "schedule",
        "add",
        "ones",
        "SELECT 1 AS one",
        "--interval",
        "1s",
        "--snapshot",
    ]));
    ok(&c.sweep(&["hunt", "SELECT 1 AS one"]));
    c.put_hunt(hunt("unsigned", "SELECT 2 AS two"), None);
    c.produce_raw("sweep.results", "web-1", b"{not json");
    let forged = json!({
        "name": "ones", "hostIdentifier": "web-1", "calendarTime": "",
        "unixTime": sweep_proto::time::unix_now(), "columns": {"one": "1"},
        "action": "snapshot",
    });
    c.produce_raw("sweep.results", "web-1", forged.to_string().as_bytes());

    // Wait until every family the dashboard names that this traffic
    // brings has shown up, or a minute passed.
    let named: BTreeSet<String> = dashboard_exprs(&dash)
        .iter()
        .flat_map(|(_, e)| metric_uses(e))
        .map(|u| u.name)
        .filter(|n| !NOT_DRIVEN.contains(&n.as_str()))
        .collect();
    let mut expositions = (String::new(), String::new());
    let all_live = eventually(Duration::from_secs(60), || {
        expositions = (scrape(&agent_addr), scrape(&rules_addr));
        let (a, r) = (
            Exposition::parse(&expositions.0),
            Exposition::parse(&expositions.1),
        );
        named
            .iter()
            .all(|n| {
                (n.starts_with("sweep_rules_") || a.live(n).is_some())
                    && (n.starts_with("sweep_agent_") || r.live(n).is_some())
            })
            .then_some(())
    })
    .is_some();
    let agent_ev = Evidence::new(Component::Agent, &expositions.0);
    let rules_ev = Evidence::new(Component::Rules, &expositions.1);
    let report = check(&dash, &agent_ev, &rules_ev);
    eprintln!(
        "{} expressions; every driven family live: {all_live}\nseen live ({}):\n  {}\nonly in source ({}):\n  {}",
        report.exprs,
        report.live.len(),
        report.live.iter().cloned().collect::<Vec<_>>().join("\n  "),
        report.source_only.len(),
        report
            .source_only
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  "),
    );
    assert!(
        report.problems.is_empty(),
        "the dashboard names what the code does not export:\n{}\n--- agent /metrics\n{}\n--- sweep-rules /metrics\n{}",
        report.problems.join("\n"),
        expositions.0,
        expositions.1
    );
    // Only the rare families may lack live evidence: a name defined in the
    // source but never registered would show up here.
    let unexpected: Vec<&String> = report
        .source_only
        .iter()
        .filter(|k| {
            let name = k.split(": ").nth(1).unwrap_or(k);
            !MAY_BE_SOURCE_ONLY.contains(&name)
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "defined in source but not in the exposition after the test's traffic: {unexpected:?}\n--- agent /metrics\n{}\n--- sweep-rules /metrics\n{}\n--- sweep-rules log\n{}",
        expositions.0,
        expositions.1,
        rules.log_text()
    );
    assert!(report.live.len() >= 30, "{:?}", report.live);

    // And the same check, on the same expositions, fails on a copy of the
    // dashboard with a metric nobody exports.
    let bogus = with_panel(
        &dash,
        "sum by (severity) (rate(sweep_rules_matches_totl{job=~\"$rules_job\"}[5m]))",
    );
    let r = check(&bogus, &agent_ev, &rules_ev);
    assert_eq!(r.problems.len(), 1, "{:#?}", r.problems);
    assert!(
        r.problems[0].contains("sweep_rules_matches_totl"),
        "{:?}",
        r.problems
    );
    let mislabelled = with_panel(
        &dash,
        "sum by (rule) (rate(sweep_agent_queries_total{job=~\"$agent_job\"}[5m]))",
    );
    let r = check(&mislabelled, &agent_ev, &rules_ev);
    assert_eq!(r.problems.len(), 1, "{:#?}", r.problems);
    assert!(r.problems[0].contains("label `rule`"), "{:?}", r.problems);
}
