//! Reading osquery pack files as leniently as osquery does.
//!
//! Pack files in the wild are not strict JSON: they carry `//` and `#`
//! comments, sometimes `/* */` blocks, trailing commas, and long queries
//! continued with a backslash at the end of a line. Fields are loosely typed
//! too: `interval` may be a number or a numeric string, `snapshot` a bool or
//! `"true"`. All of that is accepted. What osquery would skip silently (a query
//! without SQL, an interval of 0) is an error here instead, so an operator
//! never installs a pack that quietly does less than it says; what is merely
//! ignored (`shard`, unknown fields) is reported as a note. Queries for other
//! platforms are kept, so the pack is stored as written, but not guarded:
//! agents skip them, and their tables are not Linux's.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use sweep_proto::schedule::runs_on_linux;
use sweep_proto::{guard, PackQuery, ProtoError};

use crate::ControllerError;

/// osquery's `schedule_default_interval`: the interval of a query without one.
pub const DEFAULT_INTERVAL: u64 = 3600;
/// osquery's `kMaxQueryInterval` (a week): longer intervals are invalid.
pub const MAX_INTERVAL: u64 = 604_800;

/// A pack file's content, ready to become a [`sweep_proto::Pack`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPack {
    pub platform: Option<String>,
    pub discovery: Vec<String>,
    pub queries: BTreeMap<String, PackQuery>,
    /// What was ignored on the way, one sentence each.
    pub notes: Vec<String>,
}

impl ParsedPack {
    /// The first query the guard refuses, named for the operator
    /// (`discovery query #1`, `query \`users\``), with the guard's reason.
    /// Queries for other platforms are not checked: agents never run them.
    pub fn refused(&self) -> Option<(String, ProtoError)> {
        let discovery = self
            .discovery
            .iter()
            .enumerate()
            .map(|(i, sql)| (format!("discovery query #{}", i + 1), sql));
        let queries = self
            .queries
            .iter()
            .filter(|(_, q)| runs_on_linux(q.platform.as_deref()))
            .map(|(name, q)| (format!("query `{name}`"), &q.query));
        discovery
            .chain(queries)
            .find_map(|(what, sql)| guard::check(sql).err().map(|e| (what, e)))
    }
}

/// Parses a pack file's text; `path` names the file in errors.
pub fn parse(path: &str, text: &str) -> Result<ParsedPack, ControllerError> {
    let cleaned = Cleaned::new(text).map_err(|(line, reason)| ControllerError::PackFile {
        path: path.to_string(),
        line: Some(line),
        reason,
    })?;
    let value: Value = serde_json::from_str(&cleaned.text).map_err(|e| cleaned.error(path, &e))?;
    interpret(&value).map_err(|reason| ControllerError::PackFile {
        path: path.to_string(),
        line: None,
        reason,
    })
}

/// The text with comments and trailing commas blanked out and line
/// continuations joined, and where each of its lines was in the original.
struct Cleaned {
    text: String,
    /// `origin[i]`: the original line (1-based) of the cleaned line `i + 1`.
    origin: Vec<usize>,
    /// Cleaned lines (0-based) that had a continuation joined into them:
    /// their columns no longer match the original.
    joined: BTreeSet<usize>,
}

impl Cleaned {
    /// Blanks comments and trailing commas with spaces (so lines and columns
    /// stay where they were) and joins `\`-newline continuations as osquery
    /// does. Comment markers inside strings are left alone. Fails only on an
    /// unterminated `/* */` comment, with its line.
    fn new(text: &str) -> Result<Self, (usize, String)> {
        let src = text.strip_prefix('\u{feff}').unwrap_or(text).as_bytes();
        let mut out: Vec<u8> = Vec::with_capacity(src.len());
        let mut origin = vec![1];
        let mut joined = BTreeSet::new();
        let mut line = 1;
        // Where the last `,` outside a string went in `out`, until something
        // other than blanks and comments follows it.
        let mut comma: Option<usize> = None;
        let mut in_string = false;
        let mut i = 0;

        // A `\` before a newline (LF or CRLF) continues the line: returns the
        // continuation's length in bytes.
        let continuation = |i: usize| -> Option<usize> {
            match (src.get(i), src.get(i + 1), src.get(i + 2)) {
                (Some(b'\\'), Some(b'\n'), _) => Some(2),
                (Some(b'\\'), Some(b'\r'), Some(b'\n')) => Some(3),
                _ => None,
            }
        };

        while i < src.len() {
            let b = src[i];
            if let Some(len) = continuation(i) {
                line += 1;
                joined.insert(origin.len() - 1);
                i += len;
                continue;
            }
            if in_string {
                out.push(b);
                match b {
                    b'"' => in_string = false,
                    // An escape: copy the escaped byte as it is, so `\"`
                    // does not end the string.
                    b'\\' if i + 1 < src.len() => {
                        out.push(src[i + 1]);
                        i += 1;
                    }
                    b'\n' => {
                        // Not valid JSON; serde will say so, at this line.
                        line += 1;
                        origin.push(line);
                    }
                    _ => {}
                }
                i += 1;
                continue;
            }
            let next = src.get(i + 1).copied();
            if b == b'#' || (b == b'/' && next == Some(b'/')) {
                while i < src.len() && src[i] != b'\n' {
                    out.push(b' ');
                    i += 1;
                }
                continue;
            }
            if b == b'/' && next == Some(b'*') {
                let start = line;
                out.extend_from_slice(b"  ");
                i += 2;
                loop {
                    match src.get(i) {
                        None => return Err((start, "a /* comment is never closed".into())),
                        Some(b'*') if src.get(i + 1) == Some(&b'/') => {
                            out.extend_from_slice(b"  ");
                            i += 2;
                            break;
                        }
                        Some(b'\n') => {
                            out.push(b'\n');
                            line += 1;
                            origin.push(line);
                        }
                        Some(_) => out.push(b' '),
                    }
                    i += 1;
                }
                continue;
            }
            match b {
                b'"' => {
                    in_string = true;
                    comma = None;
                }
                b',' => comma = Some(out.len()),
                b'}' | b']' => {
                    if let Some(at) = comma.take() {
                        out[at] = b' ';
                    }
                }
                b'\n' => {
                    line += 1;
                    origin.push(line);
                }
                b' ' | b'\t' | b'\r' => {}
                _ => comma = None,
            }
            out.push(b);
            i += 1;
        }
        // Only whole ASCII runs were replaced by ASCII, and continuations
        // removed whole, so the bytes are still the input's UTF-8.
        let text =
            String::from_utf8(out).map_err(|_| (1, "the file is not UTF-8 text".to_string()))?;
        Ok(Self {
            text,
            origin,
            joined,
        })
    }

    /// A JSON error placed at its line in the original file.
    fn error(&self, path: &str, e: &serde_json::Error) -> ControllerError {
        let message = e.to_string();
        // serde_json appends its own position, which is the cleaned text's.
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let reason = message
            .strip_suffix(&suffix)
            .unwrap_or(&message)
            .to_string();
        if e.line() == 0 {
            return ControllerError::PackFile {
                path: path.to_string(),
                line: None,
                reason,
            };
        }
        let line = self.origin.get(e.line() - 1).copied().unwrap_or(e.line());
        let reason = if self.joined.contains(&(e.line() - 1)) {
            reason
        } else {
            format!("column {}: {reason}", e.column())
        };
        ControllerError::PackFile {
            path: path.to_string(),
            line: Some(line),
            reason,
        }
    }
}

/// Turns the pack's JSON into a pack, with osquery's defaults and types.
fn interpret(value: &Value) -> Result<ParsedPack, String> {
    let Value::Object(top) = value else {
        return Err("a pack is a JSON object with a \"queries\" object".into());
    };
    let mut notes = Vec::new();
    let platform = optional_string(top, "platform", "the pack's", &mut notes);
    if !runs_on_linux(platform.as_deref()) {
        return Err(format!(
            "the pack's platform is `{}`, which does not include Linux: no sweep agent would run it",
            platform.unwrap_or_default()
        ));
    }
    let discovery = match top.get("discovery") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(sql) => Ok(sql.clone()),
                other => Err(format!(
                    "discovery query #{} is {}, not a SQL string",
                    i + 1,
                    kind(other)
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "\"discovery\" is {}, not an array of SQL strings",
                kind(other)
            ))
        }
    };
    for key in top.keys() {
        match key.as_str() {
            "platform" | "discovery" | "queries" | "version" | "oncall" => {}
            "shard" => {
                notes.push("\"shard\" is ignored: the pack runs on every targeted host".into())
            }
            other => notes.push(format!("unknown field \"{other}\" ignored")),
        }
    }
    let Some(entries) = top.get("queries") else {
        return Err("the pack has no \"queries\" object".into());
    };
    let Value::Object(entries) = entries else {
        return Err(format!(
            "\"queries\" is {}, not an object of name → query",
            kind(entries)
        ));
    };
    let mut queries = BTreeMap::new();
    for (name, entry) in entries {
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            return Err(format!(
                "query name {name:?} is empty or has control characters"
            ));
        }
        let Value::Object(fields) = entry else {
            return Err(format!("query `{name}` is {}, not an object", kind(entry)));
        };
        queries.insert(name.clone(), pack_query(name, fields, &mut notes)?);
    }
    if queries.is_empty() {
        return Err("the pack has no queries".into());
    }
    if !queries
        .values()
        .any(|q| runs_on_linux(q.platform.as_deref()))
    {
        return Err("no query in the pack runs on Linux".into());
    }
    Ok(ParsedPack {
        platform,
        discovery,
        queries,
        notes,
    })
}

/// One entry of `queries`.
fn pack_query(
    name: &str,
    fields: &Map<String, Value>,
    notes: &mut Vec<String>,
) -> Result<PackQuery, String> {
    let what = format!("query `{name}`");
    let platform = optional_string(fields, "platform", &what, notes);
    if !runs_on_linux(platform.as_deref()) {
        notes.push(format!(
            "{what} is for `{}`, not Linux: agents will skip it",
            platform.as_deref().unwrap_or_default()
        ));
    }
    let query = match fields.get("query") {
        Some(Value::String(sql)) if !sql.trim().is_empty() => sql.clone(),
        Some(Value::String(_)) => return Err(format!("{what} has an empty \"query\"")),
        Some(other) => return Err(format!("{what}: \"query\" is {}, not SQL", kind(other))),
        None => return Err(format!("{what} has no \"query\"")),
    };
    let interval = match fields.get("interval") {
        None | Some(Value::Null) => DEFAULT_INTERVAL,
        Some(v) => interval(v).map_err(|why| format!("{what}: {why}"))?,
    };
    let snapshot = match fields.get("snapshot") {
        None => false,
        Some(v) => flag(v).map_err(|why| format!("{what}: \"snapshot\" {why}"))?,
    };
    let removed = match fields.get("removed") {
        None => true,
        Some(v) => flag(v).map_err(|why| format!("{what}: \"removed\" {why}"))?,
    };
    let description = optional_string(fields, "description", &what, notes).unwrap_or_default();
    for key in fields.keys() {
        match key.as_str() {
            "query" | "interval" | "snapshot" | "removed" | "platform" | "description"
            | "version" | "denylist" | "blacklist" | "oncall" => {}
            "shard" => notes.push(format!(
                "{what}: \"shard\" is ignored: it runs on every targeted host"
            )),
            other => notes.push(format!("{what}: unknown field \"{other}\" ignored")),
        }
    }
    Ok(PackQuery {
        query,
        interval,
        snapshot,
        removed,
        platform,
        description,
    })
}

/// An interval in seconds: a number or a numeric string, as osquery takes
/// it, between 1 s and a week.
fn interval(v: &Value) -> Result<u64, String> {
    let secs = match v {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => Some(u),
            // 3600.0 is a whole number of seconds; 0.5 or -1 is not.
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f <= MAX_INTERVAL as f64 => {
                Some(f as u64)
            }
            _ => None,
        },
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match secs {
        Some(s) if (1..=MAX_INTERVAL).contains(&s) => Ok(s),
        Some(s) => Err(format!(
            "interval {s} is out of range: osquery takes 1 to {MAX_INTERVAL} seconds"
        )),
        None => Err(format!("interval {v} is not a whole number of seconds")),
    }
}

/// A boolean as osquery reads one: a bool, a number (non-zero is true), or
/// the strings "true"/"t" and "false"/"f" in any case; null is false. Other
/// strings are refused rather than read as false, as osquery would.
fn flag(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Null => Ok(false),
        Value::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" => Ok(true),
            "false" | "f" | "" => Ok(false),
            _ => Err(format!("is {v}, not true or false")),
        },
        other => Err(format!("is {}, not true or false", kind(other))),
    }
}

/// A string field; null or absent is None, and another type is ignored with
/// a note, as osquery ignores it.
fn optional_string(
    obj: &Map<String, Value>,
    key: &str,
    whose: &str,
    notes: &mut Vec<String>,
) -> Option<String> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            notes.push(format!(
                "{whose} \"{key}\" is {}, not a string: ignored",
                kind(other)
            ));
            None
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse("p.json", text).unwrap_err().to_string()
    }

    #[test]
    fn lenient_pack_with_comments_string_interval_discovery_platform() {
        let text = r#"
// An osquery pack, as people write them.
# osquery also takes hash comments
{
  "platform": "linux",   // pack-wide
  "version": "1.4.5",
  "shard": 50,
  "discovery": [
    "SELECT pid FROM processes WHERE name = 'nginx';" /* block */
  ],
  "queries": {
    "listening": {
      "query": "SELECT * FROM listening_ports WHERE address != '127.0.0.1'", // a comment with "quotes" and http://x
      "interval": "600",
      "snapshot": "true",
      "description": "Ports // open to the world # really",
    },
    "users": {
      "query": "SELECT uid, \
username FROM users",
      "removed": false,
      "denylist": false,
      "platform": "posix"
    },
    "mac_only": {"query": "SELECT * FROM launchd", "platform": "darwin"},
    "defaults": {"query": "SELECT * FROM uptime", "interval": 60.0, "typo": 1},
  },
}
"#;
        let p = parse("p.json", text).unwrap();
        assert_eq!(p.platform.as_deref(), Some("linux"));
        assert_eq!(
            p.discovery,
            vec!["SELECT pid FROM processes WHERE name = 'nginx';".to_string()]
        );
        assert_eq!(p.queries.len(), 4, "{:?}", p.queries.keys());
        let l = &p.queries["listening"];
        assert_eq!(l.interval, 600);
        assert!(l.snapshot && l.removed);
        assert_eq!(l.description, "Ports // open to the world # really");
        assert_eq!(
            l.query,
            "SELECT * FROM listening_ports WHERE address != '127.0.0.1'"
        );
        let u = &p.queries["users"];
        assert_eq!(u.query, "SELECT uid, username FROM users");
        assert_eq!(u.interval, DEFAULT_INTERVAL);
        assert!(!u.snapshot && !u.removed);
        assert_eq!(u.platform.as_deref(), Some("posix"));
        assert_eq!(p.queries["defaults"].interval, 60);
        let notes = p.notes.join("\n");
        assert!(notes.contains("\"shard\" is ignored"), "{notes}");
        assert!(
            notes.contains("query `mac_only` is for `darwin`, not Linux"),
            "{notes}"
        );
        // Kept as written, but not guarded: `launchd` is not a Linux table.
        assert_eq!(p.queries["mac_only"].query, "SELECT * FROM launchd");
        assert!(notes.contains("unknown field \"typo\""), "{notes}");
        assert!(p.refused().is_none(), "{:?}", p.refused());
    }

    #[test]
    fn json_errors_name_the_file_and_the_original_line() {
        // Line 6 misses a comma before it; the comment and the continuation
        // above must not shift the reported line.
        let text = "// comment\n{\n  \"queries\": {\n    \"a\": {\"query\": \"SELECT \\\n 1\"}\n    \"b\": {}\n  }\n}\n";
        let e = err(text);
        assert!(e.starts_with("p.json:6: "), "{e}");
        assert!(e.contains("expected `,` or `}`"), "{e}");
        let e = err("{\n  \"queries\": {\n    \"a\": {\"query\": \"x\", \"interval\": 6O}\n  }\n}");
        assert!(e.starts_with("p.json:3: column "), "{e}");
        let e = err("{\"queries\": {}} /* never closed\n");
        assert!(
            e.starts_with("p.json:1: ") && e.contains("never closed"),
            "{e}"
        );
        assert!(err("").starts_with("p.json:"));
    }

    #[test]
    fn bad_fields_are_named() {
        let e = err(r#"{"queries": {"q": {"query": "SELECT 1", "interval": "hourly"}}}"#);
        assert!(
            e.contains("query `q`") && e.contains("not a whole number"),
            "{e}"
        );
        let e = err(r#"{"queries": {"q": {"query": "SELECT 1", "interval": 0}}}"#);
        assert!(e.contains("out of range"), "{e}");
        let e = err(r#"{"queries": {"q": {"query": "SELECT 1", "interval": 604801}}}"#);
        assert!(e.contains("out of range"), "{e}");
        let e = err(r#"{"queries": {"q": {"interval": 10}}}"#);
        assert!(e.contains("query `q` has no \"query\""), "{e}");
        let e = err(r#"{"queries": {"q": {"query": "SELECT 1", "snapshot": "yes"}}}"#);
        assert!(e.contains("\"snapshot\" is \"yes\""), "{e}");
        let e = err(r#"{"queries": {"q": "SELECT 1"}}"#);
        assert!(e.contains("query `q` is a string"), "{e}");
        let e = err(r#"{"discovery": "SELECT 1", "queries": {}}"#);
        assert!(e.contains("\"discovery\" is a string"), "{e}");
        let e = err(r#"{"platform": "windows", "queries": {"q": {"query": "SELECT 1"}}}"#);
        assert!(e.contains("does not include Linux"), "{e}");
        assert!(err(r#"{"queries": {}}"#).contains("no queries"));
        assert!(err(r#"{"name": "x"}"#).contains("no \"queries\""));
        assert!(err("[]").contains("JSON object"));
        let e = err(r#"{"queries": {"q": {"query": "SELECT 1", "platform": "darwin"}}}"#);
        assert!(e.contains("no query in the pack runs on Linux"), "{e}");
    }

    #[test]
    fn flags_and_intervals_read_like_osquery() {
        use serde_json::json;
        assert_eq!(interval(&json!(60)), Ok(60));
        assert_eq!(interval(&json!(" 60 ")), Ok(60));
        assert!(interval(&json!(-5)).is_err());
        assert!(interval(&json!(1.5)).is_err());
        assert!(interval(&json!(true)).is_err());
        assert_eq!(flag(&json!("T")), Ok(true));
        assert_eq!(flag(&json!("False")), Ok(false));
        assert_eq!(flag(&json!(1)), Ok(true));
        assert_eq!(flag(&json!(0)), Ok(false));
        assert_eq!(flag(&json!(null)), Ok(false));
        assert!(flag(&json!([true])).is_err());
    }

    #[test]
    fn refusals_name_the_query() {
        let p = parse(
            "p.json",
            r#"{"discovery": ["SELECT 1"], "queries": {
                "a": {"query": "SELECT * FROM users"},
                "b": {"query": "DELETE FROM users"}}}"#,
        )
        .unwrap();
        let (what, e) = p.refused().unwrap();
        assert_eq!(what, "query `b`");
        assert!(e.to_string().contains("refused"), "{e}");
        let p = parse(
            "p.json",
            r#"{"discovery": ["SELECT * FROM no_such_table"], "queries": {
                "a": {"query": "SELECT * FROM users"}}}"#,
        )
        .unwrap();
        let (what, e) = p.refused().unwrap();
        assert_eq!(what, "discovery query #1");
        assert!(e.to_string().contains("no_such_table"), "{e}");
    }

    /// One of osquery's own packs, assembled from the shared reference list
    /// of its queries, in the layout osquery's packs/*.conf files use.
    #[test]
    fn osquery_incident_response_pack() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/reference/osquery-pack-queries.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!("the reference list of osquery pack queries is missing at {path}: {e}")
        });
        let entries: Vec<Value> = serde_json::from_str(&text).expect("the reference list is JSON");
        let pack: Vec<&Value> = entries
            .iter()
            .filter(|e| e["pack"] == "incident-response")
            .collect();
        assert!(
            pack.len() > 10,
            "incident-response has {} queries",
            pack.len()
        );
        // osquery's pack files carry each query's fields as given, with a
        // comment line now and then and a trailing comma at the end.
        let mut file = String::from("{\n  // osquery's incident-response pack\n  \"queries\": {\n");
        for e in &pack {
            let mut q = e.as_object().expect("entries are objects").clone();
            let name = q["name"].as_str().expect("names are strings").to_string();
            for drop in ["pack", "name", "tables", "tables_not_in_linux_build"] {
                q.remove(drop);
            }
            file.push_str(&format!(
                "    // {name}\n    {}: {},\n",
                Value::String(name.clone()),
                Value::Object(q)
            ));
        }
        file.push_str("  }\n}\n");
        let parsed = parse("incident-response.conf", &file).unwrap();
        assert!(parsed.notes.is_empty(), "{:?}", parsed.notes);
        for e in &pack {
            let name = e["name"].as_str().unwrap();
            let q = &parsed.queries[name];
            assert_eq!(q.query, e["query"].as_str().unwrap());
            assert_eq!(Some(q.interval), e["interval"].as_u64(), "{name}");
            assert_eq!(q.snapshot, e["snapshot"].as_bool().unwrap_or(false));
            assert_eq!(q.removed, e["removed"].as_bool().unwrap_or(true));
            assert_eq!(q.platform.as_deref(), e["platform"].as_str());
        }
        assert_eq!(parsed.queries.len(), pack.len());
        // The guard refuses the pack exactly when one of its queries reads a
        // table sweep does not have (it has some of osquery's Linux tables,
        // not all), and names that query.
        let unknown: Vec<&str> = pack
            .iter()
            .filter(|e| {
                e["tables"].as_array().is_some_and(|t| {
                    t.iter()
                        .any(|t| !sweep_proto::schema::is_known(t.as_str().unwrap_or("")))
                })
            })
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        match (parsed.refused(), unknown.iter().min()) {
            (None, None) => {}
            (Some((what, e)), Some(first)) => {
                assert_eq!(what, format!("query `{first}`"), "{e}");
                assert!(e.to_string().contains("no such table"), "{e}");
            }
            (got, want) => panic!("refused {got:?}, expected a refusal of {want:?}"),
        }
        // Without those, the rest of the pack passes the guard as it is.
        let mut known = parsed.clone();
        known
            .queries
            .retain(|name, _| !unknown.contains(&name.as_str()));
        assert!(!known.queries.is_empty());
        assert!(known.refused().is_none(), "{:?}", known.refused());
    }
}
