//! The `new_terms` rule kind (Elastic's new terms rule): an alert the first
//! time a value, or a combination of values, is seen, per host or
//! fleet-wide, once a learning window is over.
//!
//! ```toml
//! [[rule]]
//! id = "new_login_user"
//! title = "a user logging in for the first time on a host"
//! severity = "low"
//! query = "logged_in_users"
//! kind = "new_terms"
//!
//! [rule.new_terms]
//! fields = ["user"]
//! scope = "host"          # or "fleet"
//! learn_for = "7d"        # terms seen in the first 7 days are learned silently
//! state_file = "/var/lib/sweep-rules/new_login_user.json"
//! ```
//!
//! Learning starts with the first row that has a term (every field
//! non-NULL) and lasts `learn_for` of event time (`unixTime`): a row at
//! exactly start + `learn_for` is past it. Rows with a NULL in any field are
//! skipped: neither learned nor alerted on.
//!
//! State is per worker (each worker has its own detector, and one host's
//! rows go to one worker). With `state_file`, every detector reads the file
//! when it is made, but only the one holding the exclusive lock on
//! `<state_file>.lock` writes it: the first made (in a process, the first
//! worker's). The others keep what they learn in memory, and take the lock
//! over, adding the file's terms to theirs, when its holder is gone. The
//! file is written atomically (`<state_file>.tmp`, fsync, rename) at most
//! once per clock tick, when a term was added or learning started.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Alert, Detector, Event, Field, Kind};
use crate::matcher::Columns;

/// The state file's format version.
const VERSION: u32 = 1;

/// The `[rule.new_terms]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The fields whose values make a term; with several, their
    /// combination is the term (`["user", "shell"]`: a user seen with a new
    /// shell is new). `host` is the row's host. A row with any of them
    /// NULL (empty or missing) is skipped.
    pub fields: Vec<String>,
    /// Where a term must be new: `host` (the default: new on that host) or
    /// `fleet` (new on every host this worker has seen).
    #[serde(default = "default_scope")]
    pub scope: String,
    /// How long to learn, a duration such as "1d" or "12h" (whole
    /// seconds; "0s": no learning). Terms in rows less than this after the
    /// first row with a term (by `unixTime`) are remembered without an
    /// alert.
    #[serde(deserialize_with = "duration")]
    pub learn_for: Duration,
    /// The most terms remembered (per worker); past it, the least recently
    /// seen is forgotten (and would alert again). Default 1000000.
    #[serde(default = "default_max_terms")]
    pub max_terms: usize,
    /// A file keeping the terms and the learning start across restarts
    /// (JSON, written atomically when they change). Its directory must
    /// exist. A corrupt file, or one written for other `fields` or
    /// `scope`, is ignored with a warning: learning starts over.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
}

fn default_scope() -> String {
    "host".into()
}

fn default_max_terms() -> usize {
    1_000_000
}

/// A humantime duration ("1d").
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

impl Spec {
    /// Checks the settings and gives each field a slot in `columns`.
    pub fn bind(&self, columns: &mut Columns) -> Result<Arc<dyn Kind>, String> {
        if self.fields.is_empty() {
            return Err("new_terms: fields must name at least one field".into());
        }
        let mut fields = Vec::with_capacity(self.fields.len());
        for (i, name) in self.fields.iter().enumerate() {
            if name.trim().is_empty() {
                return Err("new_terms: fields names an empty field".into());
            }
            if self.fields[..i].contains(name) {
                return Err(format!("new_terms: fields lists {name:?} twice"));
            }
            fields.push(Field::bind(name, columns));
        }
        let scope = match self.scope.as_str() {
            "host" => Scope::Host,
            "fleet" => Scope::Fleet,
            other => {
                return Err(format!(
                    "new_terms: unknown scope {other:?}: expected \"host\" or \"fleet\""
                ))
            }
        };
        if self.learn_for.subsec_nanos() != 0 {
            return Err(format!(
                "new_terms: learn_for must be whole seconds (got {})",
                humantime::format_duration(self.learn_for)
            ));
        }
        if self.max_terms < 1 {
            return Err("new_terms: max_terms must be at least 1".into());
        }
        if self
            .state_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err("new_terms: state_file is empty".into());
        }
        Ok(Arc::new(NewTerms(Arc::new(Settings {
            fields,
            names: self.fields.clone(),
            scope,
            learn_for: self.learn_for.as_secs(),
            max_terms: self.max_terms,
            state_file: self.state_file.clone(),
        }))))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Host,
    Fleet,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Fleet => "fleet",
        }
    }
}

#[derive(Debug)]
struct Settings {
    fields: Vec<Field>,
    /// The fields' names, as the state file records them.
    names: Vec<String>,
    scope: Scope,
    /// Seconds.
    learn_for: u64,
    max_terms: usize,
    state_file: Option<PathBuf>,
}

impl Settings {
    /// The values in a stored term: the host first for scope `host`.
    fn parts(&self) -> usize {
        self.fields.len() + usize::from(self.scope == Scope::Host)
    }
}

/// The bound kind.
#[derive(Debug)]
struct NewTerms(Arc<Settings>);

impl Kind for NewTerms {
    fn detector(&self) -> Box<dyn Detector> {
        let mut terms = Terms {
            settings: self.0.clone(),
            seen: HashMap::new(),
            recency: BTreeMap::new(),
            touches: 0,
            learn_start: None,
            key: String::new(),
            store: None,
            changed: false,
        };
        if let Some(path) = &self.0.state_file {
            terms.store = Store::open(path);
            if let Some(saved) = read_state(path, &self.0) {
                terms.adopt(saved);
                // What was read is what the file holds.
                terms.changed = false;
            }
        }
        Box::new(terms)
    }
}

/// One worker's terms.
struct Terms {
    settings: Arc<Settings>,
    /// Each term (its values, each as `len:value`; the host first for
    /// scope `host`) and when it was last seen (a touch count).
    seen: HashMap<Arc<str>, u64>,
    /// The same by last touch: the first is the least recently seen.
    recency: BTreeMap<u64, Arc<str>>,
    /// Touches so far.
    touches: u64,
    /// The time of the first row with a term.
    learn_start: Option<u64>,
    /// A key being built (kept to reuse its allocation).
    key: String,
    /// The state file, when there is one.
    store: Option<Store>,
    /// Whether a term was added (or learning started) since the last save.
    changed: bool,
}

/// Appends one part of a key, so that no two lists of values share a key.
fn push_part(key: &mut String, value: &str) {
    use std::fmt::Write;
    let _ = write!(key, "{}:{value}", value.len());
}

/// A key's parts.
fn parts(key: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = key;
    while let Some((len, tail)) = rest.split_once(':') {
        let Ok(n) = len.parse::<usize>() else {
            break;
        };
        let (Some(part), Some(next)) = (tail.get(..n), tail.get(n..)) else {
            break;
        };
        out.push(part);
        rest = next;
    }
    out
}

impl Terms {
    /// Remembers a term as seen now; whether it is new.
    fn remember(&mut self, key: &str) -> bool {
        self.touches += 1;
        let now = self.touches;
        if let Some(at) = self.seen.get_mut(key) {
            let before = std::mem::replace(at, now);
            if let Some(k) = self.recency.remove(&before) {
                self.recency.insert(now, k);
            }
            return false;
        }
        let k: Arc<str> = key.into();
        self.seen.insert(k.clone(), now);
        self.recency.insert(now, k);
        while self.seen.len() > self.settings.max_terms {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            self.seen.remove(&oldest);
        }
        self.changed = true;
        true
    }

    /// Takes in a state file's terms (as less recently seen than this
    /// detector's own) and its learning start (the earlier of the two).
    fn adopt(&mut self, saved: Saved) {
        if let Some(start) = saved.learn_start {
            self.learn_start = Some(self.learn_start.map_or(start, |s| s.min(start)));
        }
        let own: Vec<Arc<str>> = std::mem::take(&mut self.recency).into_values().collect();
        self.seen.clear();
        let mut key = String::new();
        for term in &saved.terms {
            key.clear();
            for part in term {
                push_part(&mut key, part);
            }
            self.remember(&key);
        }
        for k in own {
            self.remember(&k);
        }
        self.changed = true;
    }

    /// Writes the state file (atomically: a temporary file, fsync, rename).
    fn save(&self, path: &Path) -> io::Result<()> {
        let tmp = suffixed(path, ".tmp");
        let mut out = BufWriter::new(File::create(&tmp)?);
        let state = SavedRef {
            version: VERSION,
            scope: self.settings.scope.as_str(),
            fields: &self.settings.names,
            learn_start: self.learn_start,
            terms: InRecency(&self.recency),
        };
        serde_json::to_writer(&mut out, &state).map_err(io::Error::other)?;
        out.flush()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        // The rename itself, made durable.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Detector for Terms {
    fn observe(&mut self, event: &Event<'_>, out: &mut Vec<Alert>) {
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        if self.settings.scope == Scope::Host {
            push_part(&mut key, event.host);
        }
        let complete = self.settings.fields.iter().all(|f| match f.value(event) {
            Some(v) => {
                push_part(&mut key, v);
                true
            }
            None => false,
        });
        if complete {
            let start = match self.learn_start {
                Some(start) => start,
                None => {
                    self.learn_start = Some(event.time);
                    self.changed = true;
                    event.time
                }
            };
            let learning = event.time < start.saturating_add(self.settings.learn_for);
            if self.remember(&key) && !learning {
                out.push(Alert {
                    host: event.host.to_string(),
                    query: event.query.to_string(),
                    row: (event.columns)(),
                    first_seen: event.time,
                    last_seen: event.time,
                    count: 1,
                });
            }
        }
        self.key = key;
    }

    fn tick(&mut self, _now: u64, _out: &mut Vec<Alert>) {
        let Some(store) = &mut self.store else {
            return;
        };
        let path = store.path.clone();
        if !store.held {
            match store.lock.try_lock() {
                Ok(()) => {
                    store.held = true;
                    tracing::info!(path = %path.display(), "new_terms: took over the state file");
                    if let Some(saved) = read_state(&path, &self.settings) {
                        self.adopt(saved);
                    }
                    self.changed = true;
                }
                Err(TryLockError::WouldBlock) => return,
                Err(TryLockError::Error(error)) => {
                    tracing::warn!(path = %path.display(), %error, "new_terms: cannot lock the state file; keeping state in memory only");
                    self.store = None;
                    return;
                }
            }
        }
        if !self.changed {
            return;
        }
        match self.save(&path) {
            Ok(()) => {
                self.changed = false;
                if let Some(store) = &mut self.store {
                    if store.failing {
                        tracing::info!(path = %path.display(), "new_terms: the state file is written again");
                        store.failing = false;
                    }
                }
            }
            Err(error) => {
                if let Some(store) = &mut self.store {
                    if !store.failing {
                        tracing::warn!(path = %path.display(), %error, "new_terms: cannot write the state file; retrying each second");
                        store.failing = true;
                    }
                }
            }
        }
    }

    fn size(&self) -> usize {
        self.seen.len()
    }
}

/// A detector's hold on its state file.
struct Store {
    path: PathBuf,
    /// `<state_file>.lock`, open for the detector's life; locked when `held`.
    lock: File,
    /// Whether this detector holds the lock, and so writes the file.
    held: bool,
    /// Whether the last write failed (warned once until one succeeds).
    failing: bool,
}

impl Store {
    fn open(path: &Path) -> Option<Self> {
        let lock_path = suffixed(path, ".lock");
        let lock = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
        {
            Ok(f) => f,
            Err(error) => {
                tracing::warn!(path = %lock_path.display(), %error, "new_terms: cannot open the state file's lock; keeping state in memory only");
                return None;
            }
        };
        let held = match lock.try_lock() {
            Ok(()) => true,
            Err(TryLockError::WouldBlock) => {
                tracing::debug!(path = %path.display(), "new_terms: another detector holds the state file; keeping state in memory");
                false
            }
            Err(TryLockError::Error(error)) => {
                tracing::warn!(path = %lock_path.display(), %error, "new_terms: cannot lock the state file; keeping state in memory only");
                return None;
            }
        };
        Some(Self {
            path: path.to_path_buf(),
            lock,
            held,
            failing: false,
        })
    }
}

/// `path` with `suffix` added to its file name.
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The state file, as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    version: u32,
    scope: String,
    fields: Vec<String>,
    learn_start: Option<u64>,
    /// Least recently seen first; each the host (scope `host`) then the
    /// fields' values.
    terms: Vec<Vec<String>>,
}

/// The state file, as written.
#[derive(Serialize)]
struct SavedRef<'a> {
    version: u32,
    scope: &'a str,
    fields: &'a [String],
    learn_start: Option<u64>,
    terms: InRecency<'a>,
}

/// Terms as lists of values, least recently seen first.
struct InRecency<'a>(&'a BTreeMap<u64, Arc<str>>);

impl Serialize for InRecency<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.values().map(|k| parts(k)))
    }
}

/// The state file's content, when there is one that fits the settings;
/// anything else is warned about and ignored.
fn read_state(path: &Path, settings: &Settings) -> Option<Saved> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "new_terms: cannot read the state file; learning starts over");
            return None;
        }
    };
    let saved: Saved = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "new_terms: the state file is corrupt; learning starts over");
            return None;
        }
    };
    let why = if saved.version != VERSION {
        Some(format!("version {}, not {VERSION}", saved.version))
    } else if saved.scope != settings.scope.as_str() || saved.fields != settings.names {
        Some(format!(
            "written for scope {:?} and fields {:?}",
            saved.scope, saved.fields
        ))
    } else if saved.terms.iter().any(|t| t.len() != settings.parts()) {
        Some(format!("a term without {} values", settings.parts()))
    } else {
        None
    };
    if let Some(why) = why {
        tracing::warn!(path = %path.display(), why, "new_terms: the state file does not fit the rule; learning starts over");
        return None;
    }
    Some(saved)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;
    use sweep_proto::MatchRecord;

    use crate::pipeline::Pipeline;
    use crate::rule::{parse, Rule};

    fn rules(text: &str) -> Vec<Rule> {
        parse(text, "t").unwrap()
    }

    fn pipeline(text: &str) -> Pipeline {
        Pipeline::of(text)
    }

    /// Feeds one `logins` row; the matches it raises.
    fn row(
        p: &mut Pipeline,
        time: u64,
        host: &str,
        columns: serde_json::Value,
    ) -> Vec<MatchRecord> {
        p.feed("logins", host, time, columns)
    }

    fn rule(id: &str, settings: &str) -> String {
        format!(
            r#"
[[rule]]
id = "{id}"
title = "new term"
severity = "low"
query = "logins"
kind = "new_terms"

[rule.new_terms]
{settings}
"#
        )
    }

    fn user(name: &str) -> serde_json::Value {
        json!({ "username": name })
    }

    fn ids(matches: &[MatchRecord]) -> Vec<&str> {
        matches.iter().map(|m| m.rule_id.as_str()).collect()
    }

    #[test]
    fn learns_silently_then_alerts_on_the_first_new_term() {
        let mut p = pipeline(&rule("nt", "fields = [\"username\"]\nlearn_for = \"1h\""));
        // Learning starts at 1000 and ends at 4600.
        assert!(row(&mut p, 1000, "web-1", user("root")).is_empty());
        assert!(row(&mut p, 4599, "web-1", user("alice")).is_empty());
        let m = row(
            &mut p,
            4600,
            "web-1",
            json!({"username": "bob", "uid": "7"}),
        );
        assert_eq!(m.len(), 1);
        let m = &m[0];
        assert_eq!(m.rule_id, "nt");
        assert_eq!((m.first_seen, m.last_seen, m.count), (4600, 4600, 1));
        assert_eq!((m.host.as_str(), m.query.as_str()), ("web-1", "logins"));
        assert_eq!(
            m.row,
            [("uid", "7"), ("username", "bob")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into()
        );
        // Known now, as are the learned terms.
        for name in ["bob", "root", "alice"] {
            assert!(row(&mut p, 4601, "web-1", user(name)).is_empty(), "{name}");
        }
        assert_eq!(p.state(), 3);
    }

    #[test]
    fn rows_with_a_null_field_are_skipped() {
        let settings = "fields = [\"username\", \"shell\"]\nlearn_for = \"1h\"";
        let mut p = pipeline(&rule("nt", settings));
        // Skipped rows neither learn nor start learning.
        assert!(row(&mut p, 0, "web-1", user("root")).is_empty());
        assert!(row(&mut p, 1, "web-1", json!({"username": "root", "shell": ""})).is_empty());
        assert_eq!(p.state(), 0);
        let term = |u: &str, s: &str| json!({"username": u, "shell": s});
        assert!(row(&mut p, 5000, "web-1", term("root", "bash")).is_empty());
        assert!(row(&mut p, 8599, "web-1", term("alice", "bash")).is_empty());
        // After learning: a NULL field still skips the row.
        assert!(row(&mut p, 8600, "web-1", user("carol")).is_empty());
        assert!(row(&mut p, 8600, "web-1", term("", "zsh")).is_empty());
        assert_eq!(p.state(), 2);
        // The combination is the term.
        assert_eq!(row(&mut p, 8600, "web-1", term("root", "zsh")).len(), 1);
        assert_eq!(row(&mut p, 8601, "web-1", term("alice", "zsh")).len(), 1);
        assert!(row(&mut p, 8602, "web-1", term("root", "bash")).is_empty());
        assert!(row(&mut p, 8603, "web-1", term("root", "zsh")).is_empty());
        // "ab" + "c" is not "a" + "bc".
        assert!(row(&mut p, 8604, "web-1", term("ab", "c")).len() == 1);
        assert!(row(&mut p, 8605, "web-1", term("a", "bc")).len() == 1);
    }

    #[test]
    fn a_term_is_new_per_host_or_fleet_wide() {
        let text = rule("per_host", "fields = [\"username\"]\nlearn_for = \"10m\"")
            + &rule(
                "fleet",
                "fields = [\"username\"]\nlearn_for = \"10m\"\nscope = \"fleet\"",
            );
        let mut p = pipeline(&text);
        assert!(row(&mut p, 0, "web-1", user("root")).is_empty());
        assert!(row(&mut p, 599, "web-2", user("admin")).is_empty());
        assert_eq!(p.state(), 4);
        assert_eq!(ids(&row(&mut p, 600, "web-2", user("root"))), ["per_host"]);
        assert_eq!(ids(&row(&mut p, 601, "web-1", user("admin"))), ["per_host"]);
        assert_eq!(
            ids(&row(&mut p, 602, "web-3", user("alice"))),
            ["per_host", "fleet"]
        );
        assert_eq!(ids(&row(&mut p, 603, "web-1", user("alice"))), ["per_host"]);
        assert!(row(&mut p, 604, "web-3", user("alice")).is_empty());
        // The default scope is host.
        let r = rules(&rule("d", "fields = [\"username\"]\nlearn_for = \"0s\""));
        assert_eq!(r[0].spec.new_terms.as_ref().unwrap().scope, "host");
        assert_eq!(r[0].spec.new_terms.as_ref().unwrap().max_terms, 1_000_000);
    }

    #[test]
    fn host_can_be_a_field() {
        let mut p = pipeline(&rule(
            "nt",
            "fields = [\"host\"]\nlearn_for = \"1m\"\nscope = \"fleet\"",
        ));
        assert!(row(&mut p, 0, "web-1", json!({})).is_empty());
        assert_eq!(row(&mut p, 60, "web-2", json!({})).len(), 1);
        assert!(row(&mut p, 61, "web-1", json!({})).is_empty());
    }

    #[test]
    fn terms_are_bounded_and_the_least_recently_seen_is_forgotten() {
        let mut p = pipeline(&rule(
            "nt",
            "fields = [\"username\"]\nlearn_for = \"0s\"\nmax_terms = 2",
        ));
        let mut new = |t: u64, name: &str| row(&mut p, t, "web-1", user(name)).len();
        assert_eq!(new(1, "a"), 1, "no learning: the first term is new");
        assert_eq!(new(2, "b"), 1);
        assert_eq!(new(3, "a"), 0);
        // b is the least recently seen.
        assert_eq!(new(4, "c"), 1);
        assert_eq!(new(5, "a"), 0);
        // b was forgotten; c is now the least recently seen.
        assert_eq!(new(6, "b"), 1);
        assert_eq!(new(7, "b"), 0);
        assert_eq!(new(8, "c"), 1, "c was forgotten");
        assert_eq!(p.state(), 2);
    }

    fn state_rule(path: &Path, settings: &str) -> String {
        rule(
            "nt",
            &format!(
                "fields = [\"username\"]\nstate_file = '{}'\n{settings}",
                path.display()
            ),
        )
    }

    fn read_json(path: &Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn terms_and_the_learning_start_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("terms.json");
        let text = state_rule(&path, "learn_for = \"1h\"");
        let mut p = pipeline(&text);
        assert!(row(&mut p, 1000, "web-1", user("root")).is_empty());
        assert!(row(&mut p, 1001, "web-2", user("alice")).is_empty());
        assert!(!path.exists(), "written on the tick");
        assert!(p.tick(1001).is_empty());
        assert_eq!(
            read_json(&path),
            json!({
                "version": 1,
                "scope": "host",
                "fields": ["username"],
                "learn_start": 1000,
                "terms": [["web-1", "root"], ["web-2", "alice"]],
            })
        );
        assert!(!dir.path().join("terms.json.tmp").exists());
        drop(p);

        // A restart: still learning until 4600, root on web-1 known.
        let mut p = pipeline(&text);
        assert_eq!(p.state(), 2);
        assert!(row(&mut p, 2000, "web-1", user("carol")).is_empty());
        assert!(row(&mut p, 4600, "web-1", user("root")).is_empty());
        assert!(row(&mut p, 4600, "web-1", user("carol")).is_empty());
        assert_eq!(row(&mut p, 4600, "web-1", user("alice")).len(), 1);
        assert!(p.tick(4600).is_empty());
        let saved = read_json(&path);
        assert_eq!(saved["learn_start"], 1000);
        assert_eq!(
            saved["terms"],
            json!([
                ["web-2", "alice"],
                ["web-1", "root"],
                ["web-1", "carol"],
                ["web-1", "alice"]
            ])
        );
        // Written only when a term is added.
        std::fs::remove_file(&path).unwrap();
        assert!(row(&mut p, 4601, "web-1", user("root")).is_empty());
        p.tick(4601);
        assert!(!path.exists(), "nothing new: not written");
        assert_eq!(row(&mut p, 4602, "web-1", user("dave")).len(), 1);
        p.tick(4602);
        assert_eq!(read_json(&path)["terms"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn a_corrupt_or_foreign_state_file_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("terms.json");
        let text = state_rule(&path, "learn_for = \"0s\"");
        for content in [
            "{not json".to_string(),
            String::new(),
            // Other fields.
            json!({"version": 1, "scope": "host", "fields": ["uid"], "learn_start": 0, "terms": [["web-1", "root"]]}).to_string(),
            // Other scope.
            json!({"version": 1, "scope": "fleet", "fields": ["username"], "learn_start": 0, "terms": [["root"]]}).to_string(),
            // A term of the wrong shape.
            json!({"version": 1, "scope": "host", "fields": ["username"], "learn_start": 0, "terms": [["web-1", "root"], ["x"]]}).to_string(),
            json!({"version": 9, "scope": "host", "fields": ["username"], "learn_start": 0, "terms": [["web-1", "root"]]}).to_string(),
        ] {
            std::fs::write(&path, &content).unwrap();
            let mut p = pipeline(&text);
            assert_eq!(p.state(), 0, "{content}");
            // Had root been taken from the file, it would not be new.
            assert_eq!(row(&mut p, 100, "web-1", user("root")).len(), 1, "{content}");
            p.tick(100);
            let saved = read_json(&path);
            assert_eq!(saved["terms"], json!([["web-1", "root"]]));
            assert_eq!(saved["learn_start"], 100);
        }
        // The same file, fitting: root is known.
        let mut p = pipeline(&text);
        assert!(row(&mut p, 200, "web-1", user("root")).is_empty());
    }

    #[test]
    fn one_detector_writes_the_file_and_another_takes_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("terms.json");
        let text = state_rule(&path, "learn_for = \"0s\"");
        // Two workers' pipelines: the first holds the file.
        let mut first = pipeline(&text);
        let mut second = pipeline(&text);
        assert_eq!(row(&mut second, 10, "web-2", user("zed")).len(), 1);
        second.tick(10);
        assert!(!path.exists(), "the second does not write");
        assert_eq!(row(&mut first, 11, "web-1", user("root")).len(), 1);
        first.tick(11);
        assert_eq!(read_json(&path)["terms"], json!([["web-1", "root"]]));
        second.tick(12);
        assert_eq!(read_json(&path)["terms"], json!([["web-1", "root"]]));
        // The first is gone (a reload, say): the second writes, with the
        // file's terms added to its own.
        drop(first);
        second.tick(13);
        let saved = read_json(&path);
        assert_eq!(saved["terms"], json!([["web-1", "root"], ["web-2", "zed"]]));
        assert_eq!(saved["learn_start"], 10);
        assert_eq!(second.state(), 2);
        assert!(row(&mut second, 14, "web-1", user("root")).is_empty());
    }

    #[test]
    fn a_missing_directory_keeps_state_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join("terms.json");
        let mut p = pipeline(&state_rule(&path, "learn_for = \"0s\""));
        assert_eq!(row(&mut p, 1, "web-1", user("root")).len(), 1);
        p.tick(1);
        assert!(row(&mut p, 2, "web-1", user("root")).is_empty());
        assert!(!path.exists());
    }

    #[test]
    fn settings_are_checked() {
        let err = |settings: &str| match parse(&rule("nt", settings), "t") {
            Ok(_) => panic!("{settings} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err("fields = []\nlearn_for = \"1d\"").contains("at least one field"));
        assert!(err("fields = [\"u\", \"u\"]\nlearn_for = \"1d\"").contains("twice"));
        assert!(err("fields = [\"\"]\nlearn_for = \"1d\"").contains("empty field"));
        assert!(
            err("fields = [\"u\"]\nlearn_for = \"1d\"\nscope = \"planet\"")
                .contains("unknown scope \"planet\"")
        );
        assert!(err("fields = [\"u\"]\nlearn_for = \"1d\"\nmax_terms = 0").contains("max_terms"));
        assert!(err("fields = [\"u\"]\nlearn_for = \"1500ms\"").contains("whole seconds"));
        assert!(err("fields = [\"u\"]\nlearn_for = \"a day\"").contains("learn_for"));
        assert!(err("fields = [\"u\"]").contains("learn_for"));
        assert!(err("fields = [\"u\"]\nlearn_for = \"1d\"\nstate_file = ''").contains("state_file"));
        assert!(err("fields = [\"u\"]\nlearn_for = \"1d\"\nhistory = \"1d\"").contains("history"));
        let ok = rules(&rule("nt", "fields = [\"u\"]\nlearn_for = \"1d\""));
        assert_eq!(
            ok[0].spec.new_terms.as_ref().unwrap().learn_for.as_secs(),
            86_400
        );
    }

    #[test]
    fn examples_in_rule_text_pass() {
        let text = r#"
[[rule]]
id = "new_login_user"
title = "a user logging in for the first time on a host"
severity = "low"
query = "logins"
kind = "new_terms"
condition = "type = 'user'"

[rule.new_terms]
fields = ["username"]
learn_for = "1h"

[[rule.example]]
name = "a user after learning"
matches = 1
rows = [
  { time = 0, columns = { type = "user", username = "root" } },
  { time = 3599, columns = { type = "user", username = "alice" } },
  { time = 3600, columns = { type = "user", username = "mallory" } },
  { time = 3700, columns = { type = "user", username = "mallory" } },
  { time = 3800, columns = { type = "boot", username = "eve" } },
]

[[rule.example]]
name = "learned users"
matches = 0
until = 100000
rows = [
  { time = 0, columns = { type = "user", username = "root" } },
  { time = 10, columns = { type = "user", username = "alice" } },
  { time = 5000, columns = { type = "user", username = "alice" } },
  { time = 5000, columns = { type = "user", username = "root" } },
  { time = 5001, columns = { type = "user", username = "" } },
]

[[rule.example]]
name = "known on one host, new on another"
matches = 1
rows = [
  { time = 0, host = "web-1", columns = { type = "user", username = "root" } },
  { time = 3600, host = "web-2", columns = { type = "user", username = "root" } },
  { time = 3601, host = "web-1", columns = { type = "user", username = "root" } },
]
"#;
        let rules = rules(text);
        let outcomes = crate::examples::run(&rules);
        assert_eq!(outcomes.len(), 3);
        for o in &outcomes {
            assert!(o.passed(), "{o:?}");
        }
    }
}
