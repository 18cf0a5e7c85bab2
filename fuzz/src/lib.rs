//! What each fuzz target checks, as plain functions of the input bytes.
//!
//! The cargo-fuzz targets in `fuzz_targets/` call these, and so does the
//! stable regression test `tests/regression/fuzz_corpus.rs` (which includes
//! this file as a module), replaying every committed input. A function
//! returns when the input is fine, including when a parser rightly refuses it;
//! it panics when a parser panics or an invariant below does not hold.
//!
//! | target      | parser                                                    |
//! |-------------|-----------------------------------------------------------|
//! | `guard`     | `sweep_proto::guard::check` (the query guard)             |
//! | `packfile`  | `sweep_controller::packfile::parse` (osquery pack files)  |
//! | `records`   | `ResultsRecord::from_json`, `MatchRecord::from_json`      |
//! | `commands`  | `Envelope`, `Hunt`, `ScheduledQuery`, `Pack`, `Heartbeat` |
//! |             | `::from_json`, `Targets::parse_selector`                  |
//! | `condition` | `sweep_rules::condition::Condition::compile` and `matches`|
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;
use sweep_controller::packfile;
use sweep_controller::ControllerError;
use sweep_proto::guard;
use sweep_proto::signing::{Envelope, Kind, Signer, TrustedKeys};
use sweep_proto::{
    schema, Heartbeat, Hunt, MatchRecord, Pack, ProtoError, ResultsRecord, ScheduledQuery, Targets,
};
use sweep_rules::condition::Condition;
use sweep_rules::RuleSet;

/// A target's check of one input: returns, or panics on a finding.
pub type Check = fn(&[u8]);

/// Every target: its name (the folder under `fuzz/corpus/`) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("guard", guard),
    ("packfile", packfile),
    ("records", records),
    ("commands", commands),
    ("condition", condition),
];

/// The query guard on any UTF-8 text. Besides not panicking: a query it
/// accepts is not empty, is within the size limit and reads only known
/// tables; and its answer does not depend on the texts checked before (the
/// schema connection it prepares on is shared and must keep no state).
pub fn guard(data: &[u8]) {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let first = guard::check(sql);
    let again = guard::check(sql);
    assert_eq!(
        format!("{first:?}"),
        format!("{again:?}"),
        "a second check answered differently"
    );
    let Ok(checked) = first else {
        return;
    };
    assert!(!sql.trim().is_empty() && sql.len() <= guard::MAX_SQL_BYTES);
    for t in &checked.tables {
        assert!(schema::is_known(t), "accepted an unknown table {t:?}");
    }
}

/// The pack-file reader on any UTF-8 text. Errors name the file and, when
/// they have one, a line that exists in it. A pack it reads has queries, at
/// least one for Linux, each with SQL and an interval osquery takes; written
/// back as strict JSON it reads the same; and stored as a `Pack` command it
/// survives the JSON round trip through etcd. When the text is already strict
/// JSON, the leniency (comments, trailing commas, continuations) changes
/// nothing: it reads the same as its compact re-serialization.
pub fn packfile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = packfile::parse("fuzz.conf", text);
    match &parsed {
        Err(ControllerError::PackFile { path, line, reason }) => {
            assert_eq!(path, "fuzz.conf");
            assert!(!reason.is_empty());
            if let Some(line) = *line {
                let lines = text.matches('\n').count() + 1;
                assert!(
                    (1..=lines).contains(&line),
                    "error at line {line} of a text of {lines} lines: {reason}"
                );
            }
        }
        Err(e) => panic!("unexpected error kind: {e}"),
        Ok(p) => check_pack(p),
    }
    if let Ok(strict) = serde_json::from_str::<Value>(text) {
        let compact = packfile::parse("fuzz.conf", &strict.to_string());
        match (&parsed, &compact) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "strict JSON read differently"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("strict JSON read differently: {a:?} vs {b:?}"),
        }
    }
}

fn check_pack(p: &packfile::ParsedPack) {
    use sweep_proto::schedule::runs_on_linux;
    assert!(runs_on_linux(p.platform.as_deref()));
    assert!(!p.queries.is_empty());
    assert!(p
        .queries
        .values()
        .any(|q| runs_on_linux(q.platform.as_deref())));
    for (name, q) in &p.queries {
        assert!(!name.trim().is_empty() && !name.chars().any(char::is_control));
        assert!(!q.query.trim().is_empty(), "query {name:?} has no SQL");
        assert!(
            (1..=packfile::MAX_INTERVAL).contains(&q.interval),
            "query {name:?} has interval {}",
            q.interval
        );
    }
    // The guard runs on every Linux query of the pack.
    let _ = p.refused();

    // Written back as strict JSON, in osquery's layout.
    let strict = serde_json::json!({
        "platform": p.platform,
        "discovery": p.discovery,
        "queries": p.queries,
    })
    .to_string();
    let again = packfile::parse("strict.conf", &strict)
        .unwrap_or_else(|e| panic!("the pack written back does not read: {e}\n{strict}"));
    assert_eq!(again.platform, p.platform);
    assert_eq!(again.discovery, p.discovery);
    assert_eq!(again.queries, p.queries);

    // Installed as a command, as `sweep pack add` does.
    let pack = Pack {
        name: "fuzz".into(),
        discovery: p.discovery.clone(),
        platform: p.platform.clone(),
        targets: Targets::all(),
        queries: p.queries.clone(),
        issuer: "fuzz@sweep".into(),
        issued_at: 1,
        version: 1,
    };
    signed_round_trip(pack, Kind::Pack, Pack::from_json, Pack::to_json);
}

/// Records on `sweep.results` and `sweep.matches`, as the controller and the
/// rules consumer decode them. A record that decodes re-encodes to JSON that
/// decodes to the same record (a row never comes back as a status or the
/// reverse). A result row is also run through the example rules in
/// `ops/rules/linux.toml`, as `sweep-rules` does, and every match it makes
/// decodes on the controller's side as it was produced.
pub fn records(data: &[u8]) {
    if let Ok(r) = ResultsRecord::from_json(data) {
        let json = serde_json::to_vec(&r).expect("records serialize");
        let back = ResultsRecord::from_json(&json)
            .unwrap_or_else(|e| panic!("a record does not read back: {e}"));
        assert_eq!(back, r);
        assert_eq!(back.hunt_id(), r.hunt_id());
        if let ResultsRecord::Row(row) = &r {
            for m in rules().evaluate(row) {
                assert_eq!(m.host, row.host_identifier);
                assert_eq!(m.query, row.name);
                let json = serde_json::to_vec(&m).expect("matches serialize");
                let back = MatchRecord::from_json(&json)
                    .unwrap_or_else(|e| panic!("a match does not read back: {e}"));
                assert_eq!(back, m);
            }
        }
    }
    if let Ok(m) = MatchRecord::from_json(data) {
        let json = serde_json::to_vec(&m).expect("matches serialize");
        let back = MatchRecord::from_json(&json)
            .unwrap_or_else(|e| panic!("a match does not read back: {e}"));
        assert_eq!(back, m);
    }
}

/// The example rule set, compiled once.
fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        let text = include_str!("../../ops/rules/linux.toml");
        let rules = sweep_rules::rule::parse(text, "ops/rules/linux.toml")
            .expect("the example rules compile");
        assert!(!rules.is_empty());
        RuleSet::new(rules)
    })
}

/// Commands in etcd, as agents and the controller decode them: signed
/// envelopes and the hunts, scheduled queries and packs in their bodies, and
/// heartbeats. A command that decodes re-encodes to JSON that decodes to the
/// same command, and one sealed in a signed envelope verifies after the trip
/// through etcd, for its own kind only, and opens to the same command. An
/// envelope decoded from the input never verifies (only the fuzzer's own key
/// is trusted, and the input cannot know it), and its body goes through the
/// same checks. The text is also read as a label selector (`role=web,dc=sh1`),
/// which written back reads the same.
pub fn commands(data: &[u8]) {
    if let Ok(env) = Envelope::from_json(data) {
        let json = env.to_json();
        let back = Envelope::from_json(json.as_bytes())
            .unwrap_or_else(|e| panic!("an envelope does not read back: {e}\n{json}"));
        assert_eq!(back, env);
        let (_, trusted) = signer();
        assert!(
            trusted.verify(&env, env.kind).is_err(),
            "an envelope from the input verified"
        );
        command_bodies(env.body.as_bytes());
    }
    command_bodies(data);
    if let Ok(hb) = Heartbeat::from_json(data) {
        // `cpu_percent` is an f64: compare the JSON after one round trip,
        // which must be a fixed point, and everything else exactly.
        let json = hb.to_json();
        let back = Heartbeat::from_json(json.as_bytes())
            .unwrap_or_else(|e| panic!("a heartbeat does not read back: {e}\n{json}"));
        assert_eq!(back.to_json(), json);
        let mut exact = back.clone();
        exact.resources.cpu_percent = hb.resources.cpu_percent;
        assert_eq!(exact, hb);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(labels) = Targets::parse_selector(text) {
            let written: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let again = Targets::parse_selector(&written.join(","))
                .unwrap_or_else(|e| panic!("labels written back do not read: {e}"));
            assert_eq!(again, labels);
            let t = Targets {
                labels: labels.clone(),
                ..Targets::default()
            };
            assert!(t.matches("any-host", &labels), "a host with the labels");
        }
    }
}

/// A command's JSON, as an agent decodes an envelope's body.
fn command_bodies(data: &[u8]) {
    if let Ok(h) = Hunt::from_json(data) {
        assert_eq!(h.query_name(), format!("hunt:{}", h.id));
        signed_round_trip(h, Kind::Hunt, Hunt::from_json, Hunt::to_json);
    }
    if let Ok(q) = ScheduledQuery::from_json(data) {
        signed_round_trip(
            q,
            Kind::Schedule,
            ScheduledQuery::from_json,
            ScheduledQuery::to_json,
        );
    }
    if let Ok(p) = Pack::from_json(data) {
        signed_round_trip(p, Kind::Pack, Pack::from_json, Pack::to_json);
    }
}

/// The key commands are signed with while fuzzing; any key will do.
fn signer() -> &'static (Signer, TrustedKeys) {
    static SIGNER: OnceLock<(Signer, TrustedKeys)> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let signer = Signer::generate().expect("a key");
        let trusted = TrustedKeys::parse([signer.public_hex().as_str()]).expect("its public key");
        (signer, trusted)
    })
}

fn signed_round_trip<C>(
    command: C,
    kind: Kind,
    from_json: impl Fn(&[u8]) -> Result<C, ProtoError>,
    to_json: impl Fn(&C) -> String,
) where
    C: PartialEq + std::fmt::Debug,
{
    let json = to_json(&command);
    let back = from_json(json.as_bytes())
        .unwrap_or_else(|e| panic!("a command does not read back: {e}\n{json}"));
    assert_eq!(back, command);
    let (signer, trusted) = signer();
    let stored = signer.seal(kind, json).to_json();
    let env = Envelope::from_json(stored.as_bytes())
        .unwrap_or_else(|e| panic!("an envelope does not read back: {e}\n{stored}"));
    trusted
        .verify(&env, kind)
        .unwrap_or_else(|e| panic!("a signed command does not verify after etcd: {e}\n{stored}"));
    for other in [Kind::Hunt, Kind::Schedule, Kind::Pack] {
        if other != kind {
            assert!(
                trusted.verify(&env, other).is_err(),
                "a {} verified as a {}",
                kind.as_str(),
                other.as_str()
            );
        }
    }
    let opened = from_json(env.body.as_bytes())
        .unwrap_or_else(|e| panic!("a signed command does not open: {e}\n{stored}"));
    assert_eq!(opened, command);
}

/// A rule condition, with an optional row to evaluate it on. The input is the
/// condition's text, then NUL-separated `column=value` fields of the row.
/// Besides compiling without panicking: evaluation follows SQL's
/// three-valued logic, so a condition and its negation never both match,
/// `c AND NOT c` never matches, and `c OR NOT c` matches exactly when `c` is
/// not unknown on the row.
pub fn condition(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let cond = parts.next().unwrap_or_default();
    let row: BTreeMap<String, String> = parts
        .filter_map(|field| field.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let Ok(c) = Condition::compile(cond) else {
        return;
    };
    let is = c.matches(&row);
    let not = compile_derived(&format!("NOT (\n{cond}\n)"));
    let both = compile_derived(&format!("(\n{cond}\n) AND NOT (\n{cond}\n)"));
    let either = compile_derived(&format!("(\n{cond}\n) OR NOT (\n{cond}\n)"));
    if let Some(not) = not {
        let isnt = not.matches(&row);
        assert!(!(is && isnt), "a condition and its negation both match");
        if let Some(either) = either {
            assert_eq!(either.matches(&row), is || isnt, "c OR NOT c");
        }
    }
    if let Some(both) = both {
        assert!(!both.matches(&row), "c AND NOT c matched");
    }
    // No column at all: every column is NULL.
    let _ = c.matches(&BTreeMap::new());
}

/// Compiles a condition built around one that compiled. Only the nesting
/// limit may refuse it (the wrapper nests one or two levels deeper).
fn compile_derived(text: &str) -> Option<Condition> {
    match Condition::compile(text) {
        Ok(c) => Some(c),
        Err(e) if e.contains("recursion limit") => None,
        Err(e) => panic!("a condition that compiled does not compile wrapped: {e}\n{text}"),
    }
}
