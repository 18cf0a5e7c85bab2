//! The `indicator` rule kind (Elastic indicator match, threat intel): a
//! row's field holds a value listed in files of IPs, networks, domains or
//! hashes.
//!
//! ```toml
//! [[rule]]
//! id = "c2_connection"
//! title = "connection to a known C2 address"
//! severity = "critical"
//! kind = "indicator"
//! query = "process_open_sockets"
//! condition = "remote_port > 0"        # optional: which rows to look at
//! [rule.indicator]
//! field = "remote_address"
//! type = "cidr"                        # ip | cidr | domain | hash
//! files = ["/etc/sweep/intel/c2.txt"]
//! reload = "30s"
//! ```
//!
//! Files: one indicator a line; blank lines are skipped and `#` starts a
//! comment (a whole line, or the rest of one); whitespace around a value is
//! trimmed. With `column`, a file is CSV instead: its first line is the
//! header, the column of that name holds the indicator (fields may be
//! quoted, `"a, b"`, with `""` for a quote; a quoted field cannot span
//! lines), lines that are blank or start with `#` and rows whose cell is
//! empty are skipped. A relative path is relative to the directory of the
//! rule file that names it. A file that is missing or has a line that is not an
//! indicator of the type fails the rule's load, naming the file (and the
//! line). When several files list a value, the first file's line is the
//! one reported.
//!
//! Matching, per `type`:
//!
//! - `ip`: the value is a listed address. Addresses (listed and the row's)
//!   are read by Rust's `std::net` parser: IPv4 in dotted-quad form only
//!   (`010.0.0.1`, with a leading zero, is not an address: a listed one
//!   fails the load, a row's never matches), IPv6 in any form (`::1`,
//!   `0:0:0:0:0:0:0:1`, upper or lower case). An IPv4-mapped IPv6
//!   address, `::ffff:1.2.3.4`, is the IPv4 address `1.2.3.4` on both
//!   sides; a row's `%zone` suffix (`fe80::1%eth0`) is ignored.
//! - `cidr`: the value is an address inside a listed network (`10.0.0.0/8`,
//!   `2001:db8::/32`; host bits set are cleared, `10.1.2.3/8` is
//!   `10.0.0.0/8`; a bare address is a network of that one address;
//!   `::ffff:10.0.0.0/104` is `10.0.0.0/8`). The most specific listed
//!   network containing the address is the one reported.
//! - `domain`: the value, or a parent domain of it, is listed: `evil.com`
//!   matches `evil.com` and `a.b.evil.com`, not `notevil.com`; ASCII case
//!   and a trailing dot are ignored on both sides.
//! - `hash`: hex digests (MD5, SHA-1, SHA-256 or SHA-512, in one list),
//!   case-insensitive.
//!
//! Lists are loaded once per process and shared by every worker and by
//! rules naming the same files with the same type, column and reload. With
//! `reload` above zero, a background thread checks the files' modification
//! time and size that often, re-reads a changed file and swaps the new
//! list in; a file that cannot be read then (or has a bad line) keeps its
//! previous entries, and a warning names it. The thread ends when the last
//! rule set using the list is gone. A rule loading while its list is
//! loaded (rules reloaded, another rule) re-reads the files changed since,
//! whatever `reload` says, and fails on a missing file or a bad line as a
//! first load does. A change is seen by its modification time or size: a
//! rewrite keeping both (same size, within the file system's timestamp
//! granularity) is missed until the next change.
//!
//! The match's row is the row's columns plus `indicator` (the listed value
//! that matched, as written in its file) and `indicator_file` (that file,
//! as named in `files`); they replace columns of those names. Count 1.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use super::{Alert, Detector, Event, Field, Kind};
use crate::matcher::Columns;

/// The `[rule.indicator]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The row's field holding the value to look up: a column name, or
    /// `host` for the row's host.
    pub field: String,
    /// What the files list: `ip` (addresses), `cidr` (networks), `domain`
    /// (domains, matching their subdomains too) or `hash` (hex digests).
    #[serde(rename = "type")]
    pub list: ListType,
    /// The files listing the indicators (a relative path is relative to
    /// the directory of the rule file that names it). At least one.
    pub files: Vec<String>,
    /// Optional: the files are CSV, and the indicator is in the column of
    /// this name (the first line is the header).
    #[serde(default)]
    pub column: Option<String>,
    /// How often to check the files for changes (modification time and
    /// size) and reload them: `"30s"` (the default); `"0s"`: only when
    /// rules (re)load.
    #[serde(default = "default_reload")]
    pub reload: String,
    /// The loaded lists, once bound (not a setting): every binding of this
    /// rule, in every rule set, shares them.
    #[serde(skip)]
    loaded: Loaded,
}

fn default_reload() -> String {
    "30s".into()
}

/// What an indicator file lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListType {
    Ip,
    Cidr,
    Domain,
    Hash,
}

/// A rule's lists, once loaded (shared by the spec's clones).
#[derive(Clone, Default)]
struct Loaded(Arc<Mutex<Option<Arc<Lists>>>>);

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(lists) => lists.fmt(f),
            None => f.write_str("not loaded"),
        }
    }
}

impl Spec {
    /// Checks the settings and gives each field a slot in `columns`; loads
    /// the files (once: later bindings share what the first loaded).
    pub fn bind(&self, columns: &mut Columns) -> Result<Arc<dyn Kind>, String> {
        if self.field.trim().is_empty() {
            return Err("indicator: empty field".into());
        }
        if self.files.is_empty() {
            return Err("indicator: files: at least one file is needed".into());
        }
        if let Some(c) = &self.column {
            if c.trim().is_empty() {
                return Err("indicator: column: empty name".into());
            }
        }
        let reload = humantime::parse_duration(&self.reload)
            .map_err(|e| format!("indicator: reload {:?}: {e}", self.reload))?;
        let field = Field::bind(&self.field, columns);
        let lists = {
            let mut loaded = self.loaded.0.lock().unwrap_or_else(PoisonError::into_inner);
            match &*loaded {
                Some(lists) => lists.clone(),
                None => {
                    let lists = Lists::open(ListKey {
                        list: self.list,
                        files: self.files.clone(),
                        column: self.column.clone(),
                        reload,
                    })?;
                    *loaded = Some(lists.clone());
                    lists
                }
            }
        };
        Ok(Arc::new(IndicatorKind { field, lists }))
    }
}

#[derive(Debug)]
struct IndicatorKind {
    field: Field,
    lists: Arc<Lists>,
}

impl Kind for IndicatorKind {
    fn detector(&self) -> Box<dyn Detector> {
        Box::new(IndicatorDetector {
            field: self.field,
            lists: self.lists.clone(),
            generation: self.lists.generation.load(Ordering::Acquire),
            set: self.lists.current(),
        })
    }
}

/// One worker's view of the lists: the set it last took, swapped when the
/// lists' generation moves on.
struct IndicatorDetector {
    field: Field,
    lists: Arc<Lists>,
    generation: u64,
    set: Arc<Set>,
}

impl Detector for IndicatorDetector {
    fn observe(&mut self, e: &Event<'_>, out: &mut Vec<Alert>) {
        let generation = self.lists.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.generation = generation;
            self.set = self.lists.current();
        }
        let value = self.field.value(e);
        let Some(label) = value.and_then(|v| self.set.lookup(self.lists.key.list, v)) else {
            return;
        };
        let (indicator, file) = self.set.label(label);
        let mut row = (e.columns)();
        row.insert("indicator".into(), indicator.to_string());
        row.insert("indicator_file".into(), file.to_string());
        out.push(Alert {
            host: e.host.to_string(),
            query: e.query.to_string(),
            row,
            first_seen: e.time,
            last_seen: e.time,
            count: 1,
        });
    }
}

/// What identifies a list: rules with the same share it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListKey {
    list: ListType,
    files: Vec<String>,
    column: Option<String>,
    reload: Duration,
}

/// The lists loaded in this process, by key, while some rule uses them.
static LOADED: Mutex<Vec<(ListKey, Weak<Lists>)>> = Mutex::new(Vec::new());

/// One list (of one or more files), shared by every worker.
struct Lists {
    key: ListKey,
    /// The set in use; readers take an `Arc` of it.
    current: RwLock<Arc<Set>>,
    /// Moves on with every swap of `current`.
    generation: AtomicU64,
    /// Each file's last good read.
    files: Mutex<Vec<FileState>>,
    /// The reloading thread, woken when the lists are dropped.
    reloader: OnceLock<std::thread::Thread>,
}

impl std::fmt::Debug for Lists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lists")
            .field("key", &self.key)
            .field("entries", &self.current().labels.len())
            .finish()
    }
}

impl Drop for Lists {
    fn drop(&mut self) {
        if let Some(t) = self.reloader.get() {
            t.unpark();
        }
    }
}

/// A file's last good read.
struct FileState {
    path: String,
    /// Modification time and size when read.
    stamp: Stamp,
    entries: Vec<Entry>,
    /// The last reload failure reported (to warn once per failure).
    failing: Option<String>,
}

type Stamp = (Option<SystemTime>, u64);

fn stamp(path: &str) -> Result<Stamp, String> {
    let m = std::fs::metadata(path).map_err(|e| format!("indicator file {path}: {e}"))?;
    Ok((m.modified().ok(), m.len()))
}

/// One listed indicator.
#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    /// As written in the file.
    text: Arc<str>,
}

/// A listed indicator, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    /// Address bits and prefix length.
    V4(u32, u8),
    V6(u128, u8),
    /// A domain (lower case, no trailing dot) or a hash (lower case).
    Text(Box<str>),
}

impl Lists {
    /// The process's lists for `key`: those already loaded, or read now.
    fn open(key: ListKey) -> Result<Arc<Self>, String> {
        let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
        loaded.retain(|(_, w)| w.strong_count() > 0);
        if let Some(lists) = loaded
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| w.upgrade())
        {
            // Loaded for another rule (or an earlier rule set): this rule
            // loads what the files hold now, or fails as a first load
            // would.
            lists.check(true)?;
            return Ok(lists);
        }
        let mut files = Vec::with_capacity(key.files.len());
        for path in &key.files {
            let stamp = stamp(path)?;
            let entries = read(path, key.list, key.column.as_deref())?;
            files.push(FileState {
                path: path.clone(),
                stamp,
                entries,
                failing: None,
            });
        }
        let set = Set::build(&files);
        let reload = key.reload;
        let lists = Arc::new(Self {
            key: key.clone(),
            current: RwLock::new(Arc::new(set)),
            generation: AtomicU64::new(0),
            files: Mutex::new(files),
            reloader: OnceLock::new(),
        });
        if !reload.is_zero() {
            let weak = Arc::downgrade(&lists);
            match std::thread::Builder::new()
                .name("indicator-reload".into())
                .spawn(move || reload_loop(weak, reload))
            {
                Ok(handle) => {
                    let _ = lists.reloader.set(handle.thread().clone());
                }
                Err(e) => tracing::warn!(
                    files = ?key.files,
                    error = %e,
                    "indicator lists: cannot start the reloading thread; the files will not be reloaded"
                ),
            }
        }
        loaded.push((key, Arc::downgrade(&lists)));
        Ok(lists)
    }

    fn current(&self) -> Arc<Set> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the files changed since their last good read, and swaps in
    /// a new set if any was; whether it did.
    ///
    /// The reloading thread checks leniently: a file that cannot be read
    /// (or has a bad line) keeps its previous entries, is reported once,
    /// and is tried again next time. A rule loading while the lists are
    /// loaded checks strictly: such a file fails its load, as it would
    /// have the first load, and nothing changes.
    fn check(&self, strict: bool) -> Result<bool, String> {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let mut reads = Vec::new();
        for (n, f) in files.iter_mut().enumerate() {
            let read = stamp(&f.path).and_then(|s| {
                if s == f.stamp {
                    return Ok(None);
                }
                read(&f.path, self.key.list, self.key.column.as_deref()).map(|e| Some((s, e)))
            });
            match read {
                Ok(None) => {}
                Ok(Some(read)) => reads.push((n, read)),
                Err(e) if strict => return Err(e),
                Err(e) => {
                    if f.failing.as_ref() != Some(&e) {
                        tracing::warn!(
                            file = %f.path,
                            error = %e,
                            "indicator file: cannot reload, keeping its previous entries"
                        );
                        f.failing = Some(e);
                    }
                }
            }
        }
        if reads.is_empty() {
            return Ok(false);
        }
        for (n, (stamp, entries)) in reads {
            let f = &mut files[n];
            tracing::info!(file = %f.path, entries = entries.len(), "indicator file reloaded");
            f.stamp = stamp;
            f.entries = entries;
            f.failing = None;
        }
        let set = Arc::new(Set::build(&files));
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = set;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(true)
    }
}

/// Checks the lists every `every` until they are gone.
fn reload_loop(lists: Weak<Lists>, every: Duration) {
    loop {
        let due = Instant::now() + every;
        loop {
            if lists.strong_count() == 0 {
                return;
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            std::thread::park_timeout(due - now);
        }
        let Some(lists) = lists.upgrade() else {
            return;
        };
        let _ = lists.check(false);
    }
}

/// Reads one file's indicators; an error names the file (and the line).
fn read(path: &str, list: ListType, column: Option<&str>) -> Result<Vec<Entry>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("indicator file {path}: {e}"))?;
    parse(path, &text, list, column)
}

fn parse(
    path: &str,
    text: &str,
    list: ListType,
    column: Option<&str>,
) -> Result<Vec<Entry>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate();
    let at = match column {
        None => None,
        Some(name) => {
            let header = lines.next().map(|(_, l)| csv_fields(l)).unwrap_or_default();
            let at = header.iter().position(|h| h == name).ok_or_else(|| {
                format!("indicator file {path}: no column {name:?} in its header (line 1)")
            })?;
            Some(at)
        }
    };
    let mut entries = Vec::new();
    for (n, line) in lines {
        let cell;
        let value = match at {
            None => line.split('#').next().unwrap_or("").trim(),
            Some(at) => {
                if line.trim().is_empty() || line.trim_start().starts_with('#') {
                    continue;
                }
                cell = csv_fields(line).into_iter().nth(at).unwrap_or_default();
                cell.as_str()
            }
        };
        if value.is_empty() {
            continue;
        }
        let parsed = parse_value(list, value)
            .map_err(|why| format!("indicator file {path}, line {}: {value:?}: {why}", n + 1))?;
        entries.push(Entry {
            value: parsed,
            text: Arc::from(value),
        });
    }
    Ok(entries)
}

/// One CSV line's fields, trimmed, quotes removed.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field).trim().to_string()),
            c => field.push(c),
        }
    }
    fields.push(field.trim().to_string());
    fields
}

/// A listed value, checked and parsed for its list type.
fn parse_value(list: ListType, text: &str) -> Result<Value, String> {
    match list {
        ListType::Ip => match ip(text) {
            Some(IpAddr::V4(a)) => Ok(Value::V4(a.to_bits(), 32)),
            Some(IpAddr::V6(a)) => Ok(Value::V6(a.to_bits(), 128)),
            None => Err("not an IP address".into()),
        },
        ListType::Cidr => network(text).ok_or_else(|| "not a network (address/length)".into()),
        ListType::Domain => {
            let d = domain(text);
            if d.is_empty() || d.contains(|c: char| c.is_whitespace() || c == '/' || c == ':') {
                return Err("not a domain".into());
            }
            Ok(Value::Text(d.into()))
        }
        ListType::Hash => {
            let ok = matches!(text.len(), 32 | 40 | 64 | 128)
                && text.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err("not an MD5, SHA-1, SHA-256 or SHA-512 hex digest".into());
            }
            Ok(Value::Text(text.to_ascii_lowercase().into()))
        }
    }
}

/// An address, IPv4-mapped IPv6 ones as IPv4.
fn ip(text: &str) -> Option<IpAddr> {
    let addr: IpAddr = text.trim().parse().ok()?;
    Some(match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    })
}

/// A row's address: its `%zone` ignored.
fn row_ip(text: &str) -> Option<IpAddr> {
    ip(text.split('%').next().unwrap_or(text))
}

/// `address/length` (or a bare address), host bits cleared.
fn network(text: &str) -> Option<Value> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a.trim(), Some(l.trim())),
        None => (text, None),
    };
    let parsed: IpAddr = addr.parse().ok()?;
    let len = match len {
        // Digits only: no sign, no spaces.
        Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => {
            Some(l.parse::<u8>().ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    match parsed {
        IpAddr::V4(a) => {
            let len = len.unwrap_or(32);
            (len <= 32).then(|| Value::V4(a.to_bits() & mask4(len), len))
        }
        IpAddr::V6(a) => {
            let len = len.unwrap_or(128);
            if len > 128 {
                return None;
            }
            match a.to_ipv4_mapped() {
                Some(v4) if len >= 96 => Some(Value::V4(v4.to_bits() & mask4(len - 96), len - 96)),
                _ => Some(Value::V6(a.to_bits() & mask6(len), len)),
            }
        }
    }
}

fn mask4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// A domain as compared: ASCII lower case, no trailing dot.
fn domain(text: &str) -> String {
    let t = text.trim();
    t.strip_suffix('.').unwrap_or(t).to_ascii_lowercase()
}

/// The lists' entries ready for lookups: addresses and networks as sorted
/// ranges per family, texts in a hash map; each hit names a label.
struct Set {
    v4: Ranges<u32>,
    v6: Ranges<u128>,
    texts: HashMap<Box<str>, u32>,
    /// Per label: the indicator as listed, and its file's number.
    labels: Vec<(Arc<str>, u32)>,
    files: Vec<Arc<str>>,
}

impl Set {
    fn build(files: &[FileState]) -> Self {
        let mut labels = Vec::new();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut texts = HashMap::new();
        for (n, f) in files.iter().enumerate() {
            for e in &f.entries {
                let label = labels.len() as u32;
                match &e.value {
                    Value::V4(a, len) => v4.push((*a, *len, label)),
                    Value::V6(a, len) => v6.push((*a, *len, label)),
                    Value::Text(t) => {
                        if texts.contains_key(t) {
                            continue;
                        }
                        texts.insert(t.clone(), label);
                    }
                }
                labels.push((e.text.clone(), n as u32));
            }
        }
        Self {
            v4: Ranges::build(v4),
            v6: Ranges::build(v6),
            texts,
            labels,
            files: files.iter().map(|f| Arc::from(f.path.as_str())).collect(),
        }
    }

    /// The label of the entry a row's value matches.
    fn lookup(&self, list: ListType, value: &str) -> Option<u32> {
        match list {
            ListType::Ip | ListType::Cidr => self.address(row_ip(value)?),
            ListType::Domain => {
                let d = domain(value);
                let mut rest = d.as_str();
                loop {
                    if let Some(l) = self.texts.get(rest) {
                        return Some(*l);
                    }
                    rest = &rest[rest.find('.')? + 1..];
                }
            }
            ListType::Hash => {
                let v = value.trim();
                if v.bytes().any(|b| b.is_ascii_uppercase()) {
                    self.texts.get(v.to_ascii_lowercase().as_str()).copied()
                } else {
                    self.texts.get(v).copied()
                }
            }
        }
    }

    fn address(&self, a: IpAddr) -> Option<u32> {
        match a {
            IpAddr::V4(a) => self.v4.get(a.to_bits()),
            IpAddr::V6(a) => self.v6.get(a.to_bits()),
        }
    }

    /// The indicator as listed, and its file.
    fn label(&self, label: u32) -> (&str, &str) {
        let (text, file) = &self.labels[label as usize];
        (text, &self.files[*file as usize])
    }
}

/// An address type's bits.
trait Bits: Copy + Ord {
    fn first(addr: Self, len: u8) -> Self;
    fn last(start: Self, len: u8) -> Self;
    fn next(self) -> Option<Self>;
    /// The top 16 bits: the address's bucket in [`Ranges::buckets`].
    fn bucket(self) -> usize;
}

impl Bits for u32 {
    fn first(addr: Self, len: u8) -> Self {
        addr & mask4(len)
    }
    fn last(start: Self, len: u8) -> Self {
        start | !mask4(len)
    }
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn bucket(self) -> usize {
        (self >> 16) as usize
    }
}

impl Bits for u128 {
    fn first(addr: Self, len: u8) -> Self {
        addr & mask6(len)
    }
    fn last(start: Self, len: u8) -> Self {
        start | !mask6(len)
    }
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn bucket(self) -> usize {
        (self >> 112) as usize
    }
}

/// No label.
const NONE: u32 = u32::MAX;

/// Networks of one family flattened into disjoint ranges: `labels[i]` is
/// the most specific network containing the addresses from `starts[i]` to
/// just before `starts[i + 1]` (NONE: none). Networks nest or are disjoint,
/// so one sweep with a stack builds it; a lookup is a binary search, in
/// the part of `starts` its top 16 bits select (for large lists).
struct Ranges<K> {
    starts: Vec<K>,
    labels: Vec<u32>,
    /// For large lists, per value b of the top 16 bits (and one past the
    /// last), the first range starting at or after b's first address;
    /// empty for small ones.
    buckets: Vec<u32>,
}

/// Lists with fewer ranges are searched whole.
const BUCKETED: usize = 4096;

impl<K: Bits> Ranges<K> {
    /// From (network bits, prefix length, label); among equal networks the
    /// first (lowest label) is kept.
    fn build(mut nets: Vec<(K, u8, u32)>) -> Self {
        for n in &mut nets {
            n.0 = K::first(n.0, n.1);
        }
        // Containing networks first: by start, then shorter prefix first;
        // the sort is stable, so equal networks stay in label order.
        nets.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        nets.dedup_by(|later, first| later.0 == first.0 && later.1 == first.1);
        let mut r = Self {
            starts: Vec::with_capacity(nets.len() * 2),
            labels: Vec::with_capacity(nets.len() * 2),
            buckets: Vec::new(),
        };
        // The networks containing the current one: (last address, label).
        let mut stack: Vec<(K, u32)> = Vec::new();
        for (start, len, label) in nets {
            r.close_before(&mut stack, Some(start));
            r.point(start, label);
            stack.push((K::last(start, len), label));
        }
        r.close_before(&mut stack, None);
        r.starts.shrink_to_fit();
        r.labels.shrink_to_fit();
        if r.starts.len() >= BUCKETED {
            let mut i = 0;
            r.buckets = (0..=1usize << 16)
                .map(|b| {
                    while i < r.starts.len() && r.starts[i].bucket() < b {
                        i += 1;
                    }
                    i as u32
                })
                .collect();
        }
        r
    }

    /// Closes the networks on the stack that end before `start` (all, for
    /// None).
    fn close_before(&mut self, stack: &mut Vec<(K, u32)>, start: Option<K>) {
        while let Some(&(last, _)) = stack.last() {
            if start.is_some_and(|s| last >= s) {
                break;
            }
            stack.pop();
            if let Some(next) = last.next() {
                self.point(next, stack.last().map_or(NONE, |t| t.1));
            }
        }
    }

    /// From `at` on, `label` (replacing what an earlier call put at `at`).
    fn point(&mut self, at: K, label: u32) {
        if self.starts.last() == Some(&at) {
            *self.labels.last_mut().expect("as long as starts") = label;
        } else {
            self.starts.push(at);
            self.labels.push(label);
        }
    }

    fn get(&self, addr: K) -> Option<u32> {
        let i = if self.buckets.is_empty() {
            self.starts.partition_point(|s| *s <= addr)
        } else {
            // Every range before `lo` starts in an earlier bucket (at or
            // before the address), every one from `hi` in a later one.
            let b = addr.bucket();
            let (lo, hi) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
            lo + self.starts[lo..hi].partition_point(|s| *s <= addr)
        };
        let label = *self.labels.get(i.checked_sub(1)?)?;
        (label != NONE).then_some(label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Pipeline;
    use crate::row::RowRecord;
    use crate::ruleset::RuleSet;
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use sweep_proto::MatchRecord;

    /// SplitMix64.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn u128(&mut self) -> u128 {
            (u128::from(self.next()) << 64) | u128::from(self.next())
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.flush().unwrap();
        f
    }

    fn rule_text(indicator: &str, extra: &str) -> String {
        format!(
            "[[rule]]\nid = \"i\"\ntitle = \"I\"\nseverity = \"high\"\nkind = \"indicator\"\n\
             query = \"socks\"\n[rule.indicator]\n{indicator}\n{extra}"
        )
    }

    fn rules(indicator: &str) -> Vec<crate::rule::Rule> {
        crate::rule::parse(&rule_text(indicator, ""), "t").unwrap()
    }

    fn load_err(indicator: &str) -> String {
        crate::rule::parse(&rule_text(indicator, ""), "t")
            .unwrap_err()
            .to_string()
    }

    fn row(p: &mut Pipeline, columns: &[(&str, &str)]) -> Vec<MatchRecord> {
        let columns: BTreeMap<&str, &str> = columns.iter().copied().collect();
        let record = serde_json::json!({
            "name": "socks",
            "hostIdentifier": "web-1",
            "calendarTime": "",
            "unixTime": 42,
            "columns": columns,
            "action": "added",
        })
        .to_string();
        p.row(&RowRecord::parse(record.as_bytes()).unwrap())
            .unwrap()
    }

    /// The indicator a value matches through a rule set's pipeline.
    fn hit(p: &mut Pipeline, field: &str, value: &str) -> Option<String> {
        let m = row(p, &[(field, value), ("pid", "7")]);
        assert!(m.len() <= 1);
        m.into_iter().next().map(|m| {
            assert_eq!((m.first_seen, m.last_seen, m.count), (42, 42, 1));
            assert_eq!(m.row[field], value);
            assert_eq!(m.row["pid"], "7");
            m.row["indicator"].clone()
        })
    }

    fn toml_path(f: &tempfile::NamedTempFile) -> String {
        f.path().display().to_string().replace('\\', "\\\\")
    }

    fn pipeline(rules: Vec<crate::rule::Rule>) -> Pipeline {
        Pipeline::new(Arc::new(RuleSet::new(rules)))
    }

    #[test]
    fn ips_match_exactly_in_any_notation() {
        let f = file(
            "# C2 addresses\n\n  203.0.113.7  \n2001:db8::1 # a comment\n::ffff:198.51.100.2\n",
        );
        let path = toml_path(&f);
        let r = rules(&format!(
            "field = \"remote_address\"\ntype = \"ip\"\nfiles = [\"{path}\"]\n"
        ));
        let mut p = pipeline(r);
        let f_ = "remote_address";
        assert_eq!(
            hit(&mut p, f_, "203.0.113.7").as_deref(),
            Some("203.0.113.7")
        );
        assert_eq!(
            hit(&mut p, f_, "::ffff:203.0.113.7").as_deref(),
            Some("203.0.113.7")
        );
        assert_eq!(
            hit(&mut p, f_, "198.51.100.2").as_deref(),
            Some("::ffff:198.51.100.2")
        );
        assert_eq!(
            hit(&mut p, f_, "2001:DB8:0:0:0:0:0:1").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            hit(&mut p, f_, "2001:db8::1%eth0").as_deref(),
            Some("2001:db8::1")
        );
        for miss in [
            "203.0.113.8",
            "203.000.113.7",
            "2001:db8::2",
            "::203.0.113.7",
            "x",
            "203.0.113.7/32",
        ] {
            assert_eq!(hit(&mut p, f_, miss), None, "{miss}");
        }
        let m = row(
            &mut p,
            &[("remote_address", "203.0.113.7"), ("indicator", "mine")],
        );
        assert_eq!(m[0].row["indicator"], "203.0.113.7");
        assert_eq!(m[0].row["indicator_file"], f.path().display().to_string());
        // A listed address with a leading zero, or a network, is refused.
        let bad = file("1.2.3.4\n\n010.0.0.1\n");
        let err = load_err(&format!(
            "field = \"a\"\ntype = \"ip\"\nfiles = [\"{}\"]\n",
            toml_path(&bad)
        ));
        assert!(
            err.contains(&format!("{}, line 3", bad.path().display())),
            "{err}"
        );
        let bad = file("1.2.3.0/24\n");
        assert!(load_err(&format!(
            "field = \"a\"\ntype = \"ip\"\nfiles = [\"{}\"]\n",
            toml_path(&bad)
        ))
        .contains("line 1"));
    }

    /// Random addresses of both families (some in the mapped form) against
    /// a linear scan comparing parsed addresses.
    #[test]
    fn ip_membership_agrees_with_a_linear_scan() {
        let mut g = Rng(5);
        let mut listed: Vec<IpAddr> = Vec::new();
        let mut lines = String::new();
        for _ in 0..2_000 {
            let a = if g.below(3) == 0 {
                IpAddr::V6(Ipv6Addr::from_bits((0x2001_0db8 << 96) | (g.u128() % 1024)))
            } else {
                IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 | (g.next() as u32 % 2048)))
            };
            listed.push(a);
            let text = match a {
                IpAddr::V4(v4) if g.below(4) == 0 => v4.to_ipv6_mapped().to_string(),
                IpAddr::V6(v6) if g.below(2) == 0 => {
                    let s = v6.segments();
                    s.iter()
                        .map(|x| format!("{x:X}"))
                        .collect::<Vec<_>>()
                        .join(":")
                }
                a => a.to_string(),
            };
            lines.push_str(&text);
            lines.push('\n');
        }
        let f = file(&lines);
        let mut p = pipeline(rules(&format!(
            "field = \"a\"\ntype = \"ip\"\nfiles = [\"{}\"]\n",
            toml_path(&f)
        )));
        let (mut hits, mut misses) = (0, 0);
        for _ in 0..5_000 {
            let a = if g.below(2) == 0 {
                IpAddr::V6(Ipv6Addr::from_bits((0x2001_0db8 << 96) | (g.u128() % 1024)))
            } else {
                IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 | (g.next() as u32 % 2048)))
            };
            let want = listed.iter().position(|l| *l == a);
            let text = match a {
                IpAddr::V4(v4) if g.below(3) == 0 => v4.to_ipv6_mapped().to_string(),
                a => a.to_string(),
            };
            let got = hit(&mut p, "a", &text);
            match want {
                Some(i) => {
                    hits += 1;
                    let got = got.unwrap_or_else(|| panic!("{text} is listed"));
                    assert_eq!(ip(&got), Some(listed[i]), "{text}");
                }
                None => {
                    misses += 1;
                    assert_eq!(got, None, "{text}");
                }
            }
        }
        assert!(hits > 500 && misses > 500, "{hits} hits, {misses} misses");
    }

    #[test]
    fn cidrs_match_the_most_specific_network() {
        let f = file(
            "10.0.0.0/8\n10.1.0.0/16\n10.1.2.3/24\n192.0.2.9\n2001:db8::/32\n\
             ::ffff:172.16.0.0/108\n0.0.0.0/0 # everything v4 (as a last resort)\n\
             255.255.255.255/32\n",
        );
        let mut p = pipeline(rules(&format!(
            "field = \"dst\"\ntype = \"cidr\"\nfiles = [\"{}\"]\n",
            toml_path(&f)
        )));
        for (addr, want) in [
            ("10.200.0.1", Some("10.0.0.0/8")),
            ("10.1.9.9", Some("10.1.0.0/16")),
            ("10.1.2.200", Some("10.1.2.3/24")),
            ("10.1.3.0", Some("10.1.0.0/16")),
            ("10.2.0.0", Some("10.0.0.0/8")),
            ("192.0.2.9", Some("192.0.2.9")),
            ("192.0.2.10", Some("0.0.0.0/0")),
            ("::ffff:172.16.5.5", Some("::ffff:172.16.0.0/108")),
            ("172.31.255.255", Some("::ffff:172.16.0.0/108")),
            ("255.255.255.255", Some("255.255.255.255/32")),
            ("255.255.255.254", Some("0.0.0.0/0")),
            ("2001:db8:ffff::1", Some("2001:db8::/32")),
            ("2001:db9::", None),
            ("::1", None),
            ("not an address", None),
        ] {
            assert_eq!(hit(&mut p, "dst", addr).as_deref(), want, "{addr}");
        }
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0/8",
            "2001:db8::/129",
            "10.0.0.0/+8",
            "evil.com",
        ] {
            let f = file(&format!("10.0.0.0/8\n# fine so far\n{bad}\n"));
            let err = load_err(&format!(
                "field = \"dst\"\ntype = \"cidr\"\nfiles = [\"{}\"]\n",
                toml_path(&f)
            ));
            assert!(
                err.contains(&format!("{}, line 3", f.path().display())) && err.contains(bad),
                "{bad}: {err}"
            );
        }
    }

    /// A naive longest-prefix match: every network, linearly.
    fn naive(nets: &[(IpAddr, u8)], a: IpAddr) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, (net, len)) in nets.iter().enumerate() {
            let inside = match (net, a) {
                (IpAddr::V4(n), IpAddr::V4(a)) => {
                    let m = mask4(*len);
                    n.to_bits() & m == a.to_bits() & m
                }
                (IpAddr::V6(n), IpAddr::V6(a)) => {
                    let m = mask6(*len);
                    n.to_bits() & m == a.to_bits() & m
                }
                _ => false,
            };
            if inside && best.is_none_or(|b| nets[b].1 < *len) {
                best = Some(i);
            }
        }
        best
    }

    /// Random networks: IPv4 in 10/8 and IPv6 in 2001:db8::/32 dense
    /// enough to nest, with `n` of them.
    fn random_nets(g: &mut Rng, n: usize) -> Vec<(IpAddr, u8)> {
        (0..n)
            .map(|_| {
                if g.below(4) == 0 {
                    let len = 32 + g.below(97) as u8;
                    let a = (0x2001_0db8u128 << 96) | (g.u128() >> 32);
                    (IpAddr::V6(Ipv6Addr::from_bits(a)), len)
                } else {
                    let len = 8 + g.below(25) as u8;
                    let a = 0x0a00_0000 | (g.next() as u32 >> 8);
                    (IpAddr::V4(Ipv4Addr::from_bits(a)), len)
                }
            })
            .collect()
    }

    /// An address: inside a listed network (host bits random), or not.
    fn random_addr(g: &mut Rng, nets: &[(IpAddr, u8)]) -> IpAddr {
        let (net, len) = nets[g.below(nets.len() as u64) as usize];
        let near = g.below(2) == 0;
        match net {
            IpAddr::V4(n) => {
                let host = g.next() as u32 & !mask4(len);
                let base = if near {
                    n.to_bits() & mask4(len)
                } else {
                    g.next() as u32
                };
                IpAddr::V4(Ipv4Addr::from_bits(base | host))
            }
            IpAddr::V6(n) => {
                let host = g.u128() & !mask6(len);
                let base = if near {
                    n.to_bits() & mask6(len)
                } else {
                    g.u128()
                };
                IpAddr::V6(Ipv6Addr::from_bits(base | host))
            }
        }
    }

    fn set_of(nets: &[(IpAddr, u8)]) -> Set {
        let entries = nets
            .iter()
            .map(|(a, len)| {
                let text = format!("{a}/{len}");
                Entry {
                    value: network(&text).unwrap(),
                    text: Arc::from(text),
                }
            })
            .collect();
        let files = [FileState {
            path: "nets".into(),
            stamp: (None, 0),
            entries,
            failing: None,
        }];
        Set::build(&files)
    }

    #[test]
    fn cidr_membership_agrees_with_a_linear_scan() {
        let mut g = Rng(7);
        for round in 0..20 {
            // Small lists, and (the last rounds) lists large enough to be
            // searched by bucket.
            let n = match round {
                18.. => 30_000,
                _ if round % 2 == 0 => 1 + g.below(20) as usize,
                _ => 1 + g.below(2_000) as usize,
            };
            let mut nets = random_nets(&mut g, n);
            // Some listed twice: the first is reported.
            for _ in 0..n / 10 {
                let dup = nets[g.below(n as u64) as usize];
                nets.push(dup);
            }
            let set = set_of(&nets);
            assert_eq!(
                !set.v4.buckets.is_empty() && !set.v6.buckets.is_empty(),
                round >= 18
            );
            for _ in 0..2_000 {
                let a = random_addr(&mut g, &nets);
                let got = set.address(a).map(|l| l as usize);
                // The most specific network's first listing: equal
                // networks (the same, or with other host bits) report
                // the first.
                let want = naive(&nets, a);
                assert_eq!(got, want, "round {round}: {a}");
            }
        }
        // Through a file and a rule, the reported indicator is the text.
        let nets = random_nets(&mut g, 300);
        let text: String = nets.iter().map(|(a, l)| format!("{a}/{l}\n")).collect();
        let f = file(&text);
        let mut p = pipeline(rules(&format!(
            "field = \"dst\"\ntype = \"cidr\"\nfiles = [\"{}\"]\n",
            toml_path(&f)
        )));
        for _ in 0..500 {
            let a = random_addr(&mut g, &nets);
            let want = naive(&nets, a).map(|i| {
                let (n, l) = nets[i];
                format!("{n}/{l}")
            });
            let got = hit(&mut p, "dst", &a.to_string());
            // Equal networks written differently (host bits) may be listed
            // more than once; compare the networks.
            assert_eq!(
                got.as_deref().and_then(network),
                want.as_deref().and_then(network),
                "{a}"
            );
        }
    }

    /// A million random networks, 100,000 lookups: prints the time per
    /// lookup, asserts only correctness. For the optimised figure:
    /// `cargo test --release -p sweep-rules --lib kinds::indicator::tests::a_million_cidrs -- --nocapture`
    #[test]
    fn a_million_cidrs() {
        let mut g = Rng(1);
        let mut nets = Vec::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            // Anywhere: IPv4 /12 to /32, IPv6 /16 to /128.
            if g.below(5) == 0 {
                let len = 16 + g.below(113) as u8;
                nets.push((IpAddr::V6(Ipv6Addr::from_bits(g.u128())), len));
            } else {
                let len = 12 + g.below(21) as u8;
                nets.push((IpAddr::V4(Ipv4Addr::from_bits(g.next() as u32)), len));
            }
        }
        let started = Instant::now();
        let set = set_of(&nets);
        let built = started.elapsed();
        let addrs: Vec<IpAddr> = (0..100_000).map(|_| random_addr(&mut g, &nets)).collect();
        let started = Instant::now();
        let found: Vec<Option<u32>> = addrs.iter().map(|a| set.address(*a)).collect();
        let took = started.elapsed();
        // The same lookups from the rows' text (parsing the address too).
        let texts: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
        let started = Instant::now();
        let from_text = texts
            .iter()
            .filter(|t| set.lookup(ListType::Cidr, t).is_some())
            .count();
        let took_text = started.elapsed();
        let started = Instant::now();
        let parsed = texts.iter().filter_map(|t| row_ip(t)).count();
        let took_parse = started.elapsed();
        assert_eq!(parsed, texts.len());
        println!(
            "1,000,000 CIDRs: built in {built:?} ({} ranges); 100,000 lookups: {:.0} ns/lookup, \
             {:.0} ns/lookup from text, of which {:.0} ns parsing the address ({} hits)",
            set.v4.starts.len() + set.v6.starts.len(),
            took.as_nanos() as f64 / 1e5,
            took_text.as_nanos() as f64 / 1e5,
            took_parse.as_nanos() as f64 / 1e5,
            found.iter().flatten().count(),
        );
        assert_eq!(from_text, found.iter().flatten().count());
        // Every hit's network holds the address, and nothing more specific
        // does (checked by a linear scan on a sample).
        for (a, f) in addrs.iter().zip(&found) {
            if let Some(l) = f {
                let (net, len) = nets[*l as usize];
                assert_eq!(naive(&[(net, len)], *a), Some(0), "{a} not in {net}/{len}");
            }
        }
        for (a, f) in addrs.iter().zip(&found).take(100) {
            let want = naive(&nets, *a).map(|i| nets[i]);
            assert_eq!(f.map(|l| nets[l as usize].1), want.map(|w| w.1), "{a}");
        }
        assert!(found.iter().flatten().count() > 10_000);
    }

    #[test]
    fn domains_match_themselves_and_their_subdomains() {
        let f = file("evil.com\nSub.Example.ORG.\n# x.test\ntracker.co.uk\n");
        let mut p = pipeline(rules(&format!(
            "field = \"host_name\"\ntype = \"domain\"\nfiles = [\"{}\"]\n",
            toml_path(&f)
        )));
        for (value, want) in [
            ("evil.com", Some("evil.com")),
            ("a.b.evil.com", Some("evil.com")),
            ("EVIL.COM.", Some("evil.com")),
            ("www.Evil.Com", Some("evil.com")),
            (".evil.com", Some("evil.com")),
            ("notevil.com", None),
            ("evil.com.au", None),
            ("com", None),
            ("evil", None),
            ("x.sub.example.org", Some("Sub.Example.ORG.")),
            ("sub.example.org.", Some("Sub.Example.ORG.")),
            ("example.org", None),
            ("x.test", None),
            ("a.tracker.co.uk", Some("tracker.co.uk")),
            ("co.uk", None),
        ] {
            assert_eq!(hit(&mut p, "host_name", value).as_deref(), want, "{value}");
        }
    }

    #[test]
    fn hashes_match_in_any_case_and_csv_columns_are_read() {
        let md5 = "D41D8CD98F00B204E9800998ECF8427E";
        let sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
        let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let f = file(&format!(
            "\u{feff}kind,\"indicator\",note\nmd5,{md5},\"empty, file\"\n\n# skipped\n\
             sha1,\"{sha1}\",x\nsha256, {sha256} ,\"said \"\"hi\"\"\"\nnone,,blank cell\n"
        ));
        let mut p = pipeline(rules(&format!(
            "field = \"sha\"\ntype = \"hash\"\ncolumn = \"indicator\"\nfiles = [\"{}\"]\n",
            toml_path(&f)
        )));
        assert_eq!(
            hit(&mut p, "sha", &md5.to_lowercase()).as_deref(),
            Some(md5)
        );
        assert_eq!(
            hit(&mut p, "sha", &sha1.to_uppercase()).as_deref(),
            Some(sha1)
        );
        assert_eq!(hit(&mut p, "sha", sha256).as_deref(), Some(sha256));
        assert_eq!(hit(&mut p, "sha", &sha256[..63]), None);
        assert_eq!(hit(&mut p, "sha", "md5"), None);
        assert_eq!(
            csv_fields(r#"a, "b, c" ,"d ""e""",,"#),
            ["a", "b, c", "d \"e\"", "", ""]
        );
        // A missing column, a bad digest.
        let err = load_err(&format!(
            "field = \"sha\"\ntype = \"hash\"\ncolumn = \"ioc\"\nfiles = [\"{}\"]\n",
            toml_path(&f)
        ));
        assert!(err.contains("no column \"ioc\""), "{err}");
        let bad = file(&format!("{md5}\n{}\n", &md5[1..]));
        let err = load_err(&format!(
            "field = \"sha\"\ntype = \"hash\"\nfiles = [\"{}\"]\n",
            toml_path(&bad)
        ));
        assert!(err.contains("line 2"), "{err}");
        let bad = file("zz41d8cd98f00b204e9800998ecf8427e\n");
        assert!(load_err(&format!(
            "field = \"sha\"\ntype = \"hash\"\nfiles = [\"{}\"]\n",
            toml_path(&bad)
        ))
        .contains("line 1"));
    }

    #[test]
    fn settings_and_missing_files_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("c2.txt");
        let err = load_err(&format!(
            "field = \"a\"\ntype = \"ip\"\nfiles = [\"{}\"]\n",
            missing.display()
        ));
        assert!(
            err.contains("rule i") && err.contains(&missing.display().to_string()),
            "{err}"
        );
        let f = file("1.2.3.4\n");
        let path = toml_path(&f);
        for (body, says) in [
            (
                format!("field = \"a\"\ntype = \"ipv4\"\nfiles = [\"{path}\"]\n"),
                "ipv4",
            ),
            (
                "field = \"a\"\ntype = \"ip\"\nfiles = []\n".to_string(),
                "at least one file",
            ),
            (
                format!("field = \"\"\ntype = \"ip\"\nfiles = [\"{path}\"]\n"),
                "empty field",
            ),
            (
                format!("field = \"a\"\ntype = \"ip\"\nfiles = [\"{path}\"]\nreload = \"often\"\n"),
                "reload",
            ),
            (
                format!("field = \"a\"\ntype = \"ip\"\nfile = [\"{path}\"]\n"),
                "unknown field",
            ),
            (
                format!("field = \"a\"\ntype = \"ip\"\nfiles = [\"{path}\"]\nloaded = 1\n"),
                "unknown field",
            ),
            ("type = \"ip\"\nfiles = []\n".to_string(), "field"),
        ] {
            let err = load_err(&body);
            assert!(err.contains(says), "{body}: {err}");
        }
    }

    #[test]
    fn lists_are_shared_and_reloaded_when_their_files_change() {
        let f = file("evil.com\n");
        let path = toml_path(&f);
        let spec =
            format!("field = \"d\"\ntype = \"domain\"\nfiles = [\"{path}\"]\nreload = \"0s\"\n");
        let lists_of = |r: &[crate::rule::Rule]| {
            r[0].spec
                .indicator
                .as_ref()
                .unwrap()
                .loaded
                .0
                .lock()
                .unwrap()
                .clone()
                .unwrap()
        };
        let r = rules(&spec);
        let lists = lists_of(&r);
        // Loaded once: the rule set's binding, a second rule set, and
        // another rule with the same settings share it.
        let mut p = pipeline(r.clone());
        let mut p2 = pipeline(r.clone());
        assert!(Arc::ptr_eq(&lists, &lists_of(&rules(&spec))));
        assert_eq!(hit(&mut p, "d", "a.evil.com").as_deref(), Some("evil.com"));
        assert_eq!(hit(&mut p2, "d", "good.org"), None);
        assert_eq!(lists.check(false), Ok(false), "unchanged");

        // Changed on disk (another size): reloaded, and every worker sees
        // the new list.
        std::fs::write(f.path(), "good.org\n# evil.com is gone\nother.net\n").unwrap();
        assert_eq!(lists.check(false), Ok(true));
        assert_eq!(hit(&mut p, "d", "a.evil.com"), None);
        assert_eq!(
            hit(&mut p, "d", "www.good.org").as_deref(),
            Some("good.org")
        );
        assert_eq!(hit(&mut p2, "d", "other.net").as_deref(), Some("other.net"));

        // A bad line, then the file gone: the previous entries stay; a rule
        // loading then fails, naming the file (and the line), though the
        // list is loaded.
        std::fs::write(f.path(), "good.org\nbad domain\n").unwrap();
        assert_eq!(lists.check(false), Ok(false));
        assert_eq!(hit(&mut p, "d", "other.net").as_deref(), Some("other.net"));
        let err = load_err(&spec);
        assert!(
            err.contains(&format!("{}, line 2", f.path().display())),
            "{err}"
        );
        std::fs::remove_file(f.path()).unwrap();
        assert_eq!(lists.check(false), Ok(false));
        assert_eq!(hit(&mut p, "d", "good.org").as_deref(), Some("good.org"));
        assert!(load_err(&spec).contains(&f.path().display().to_string()));
        // Back, fixed: read again.
        std::fs::write(f.path(), "back.example\n").unwrap();
        assert_eq!(lists.check(false), Ok(true));
        assert_eq!(hit(&mut p2, "d", "good.org"), None);
        assert_eq!(
            hit(&mut p2, "d", "x.back.example").as_deref(),
            Some("back.example")
        );
        // A rule loading reads what changed, even with no reloading.
        std::fs::write(f.path(), "new.example\n").unwrap();
        assert!(Arc::ptr_eq(&lists, &lists_of(&rules(&spec))));
        assert_eq!(
            hit(&mut p, "d", "new.example").as_deref(),
            Some("new.example")
        );
    }

    #[test]
    fn the_reloading_thread_ends_with_the_last_owner() {
        let f = file("1.2.3.4\n");
        let r = rules(&format!(
            "field = \"a\"\ntype = \"ip\"\nfiles = [\"{}\"]\nreload = \"1h\"\n",
            toml_path(&f)
        ));
        let lists = r[0]
            .spec
            .indicator
            .as_ref()
            .unwrap()
            .loaded
            .0
            .lock()
            .unwrap()
            .clone()
            .unwrap();
        assert_eq!(
            lists.reloader.get().and_then(|t| t.name()),
            Some("indicator-reload")
        );
        let weak = Arc::downgrade(&lists);
        drop(lists);
        let p = pipeline(r);
        assert!(weak.upgrade().is_some(), "the rule set holds the lists");
        drop(p);
        assert!(
            weak.upgrade().is_none(),
            "nothing holds them once the rules are gone"
        );

        // The loop itself: it waits an hour between checks, yet ends as
        // soon as the lists are dropped (their drop wakes it).
        let f = file("1.2.3.4\n");
        let r = rules(&format!(
            "field = \"a\"\ntype = \"ip\"\nfiles = [\"{}\"]\nreload = \"0s\"\n",
            toml_path(&f)
        ));
        let lists = r[0]
            .spec
            .indicator
            .as_ref()
            .unwrap()
            .loaded
            .0
            .lock()
            .unwrap()
            .clone()
            .unwrap();
        assert!(lists.reloader.get().is_none(), "0s: no reloading");
        let weak = Arc::downgrade(&lists);
        let (done, ended) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            reload_loop(weak, Duration::from_secs(3600));
            let _ = done.send(());
        });
        lists.reloader.set(handle.thread().clone()).unwrap();
        drop(lists);
        drop(r);
        ended
            .recv_timeout(Duration::from_secs(30))
            .expect("the reloading loop ended");
        handle.join().unwrap();
    }

    #[test]
    fn examples_in_rule_files_run() {
        let f = file("evil.com\n");
        let g = file("10.0.0.0/8\n");
        let text = format!(
            r#"
[[rule]]
id = "bad_domain"
title = "lookup of a listed domain"
severity = "high"
kind = "indicator"
query = "dns_lookups"
[rule.indicator]
field = "name"
type = "domain"
files = ["{}"]

[[rule.example]]
name = "a subdomain"
matches = 1
rows = [{{ time = 0, columns = {{ name = "cdn.EVIL.com." }} }}]

[[rule.example]]
name = "others"
matches = 0
rows = [{{ time = 0, columns = {{ name = "notevil.com" }} }}, {{ time = 1, columns = {{ other = "evil.com" }} }}]

[[rule]]
id = "internal_peer"
title = "a peer in 10/8 on port 22"
severity = "low"
kind = "indicator"
query = "socks"
condition = "remote_port = 22"
[rule.indicator]
field = "remote_address"
type = "cidr"
files = ["{}"]

[[rule.example]]
matches = 2
rows = [
  {{ time = 0, columns = {{ remote_address = "10.9.8.7", remote_port = "22" }} }},
  {{ time = 0, columns = {{ remote_address = "::ffff:10.0.0.1", remote_port = "22" }} }},
  {{ time = 0, columns = {{ remote_address = "10.9.8.7", remote_port = "443" }} }},
  {{ time = 0, columns = {{ remote_address = "11.0.0.1", remote_port = "22" }} }},
]
"#,
            toml_path(&f),
            toml_path(&g)
        );
        let rules = crate::rule::parse(&text, "t").unwrap();
        let outcomes = crate::examples::run(&rules);
        assert_eq!(outcomes.len(), 3);
        for o in &outcomes {
            assert!(o.passed(), "{o:?}");
        }
    }
}
