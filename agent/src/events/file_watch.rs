//! `file_events` from inotify on the configured paths (`[events] file_paths`),
//! with osquery's columns and actions, and the writes from fanotify where the
//! agent may use it, naming the process that wrote (`pid`).
//!
//! # Patterns
//!
//! Each category names osquery `file_paths` patterns, absolute paths where:
//!
//! - `%` stands for any characters within one path component (a glob `*`;
//!   it also matches names starting with a dot), in any component:
//!   `/home/%/.ssh/%`;
//! - a final `%%` is everything below that directory, at any depth:
//!   `/etc/%%` (the directory itself is not included);
//! - a final `/%`, or a final `/`, is the entries directly in that directory;
//! - a plain path is that file or directory itself, not a directory's
//!   contents (`/etc/ssh` reports `/etc/ssh` being created, removed, renamed
//!   or chmod'ed; `/etc/ssh/%` its files).
//!
//! Directories are watched, never single files: a plain file path watches
//! its parent, so a file replaced by a rename (editors, package managers) is
//! still seen. Under `%%` every subdirectory is watched, those created later
//! too. Wildcard components are resolved again when a directory appears, so
//! `/home/%/.ssh/%` picks up a new user's `.ssh`; for that the directories
//! leading to the wildcard parts are watched as well (`/home`, `/home/*`),
//! and their own events are reported only when they match a pattern. A
//! directory created after the start has its contents read once its watch is
//! in place, and what matches is reported CREATED: files made in it before
//! the watch existed are not missed (one made in that very instant may be
//! reported twice). The fixed leading directories of a pattern must exist
//! when the agent starts; a pattern matching nothing then is logged, and
//! when no pattern matches anything the source fails saying which. A watched
//! directory whose parent is not watched (`/etc` for `/etc/%%`) is not
//! watched again if it is removed and made anew: restart the agent.
//!
//! # Actions
//!
//! | inotify (fanotify)                              | `action`                      |
//! |-------------------------------------------------|-------------------------------|
//! | `IN_CREATE`                                     | CREATED                       |
//! | `IN_CLOSE_WRITE` (`FAN_CLOSE_WRITE`)            | UPDATED                       |
//! | `IN_MODIFY` (`FAN_MODIFY`) with no close after  | UPDATED, at most once per 5 s |
//! | `IN_ATTRIB`                                     | ATTRIBUTES_MODIFIED           |
//! | `IN_DELETE`, `IN_DELETE_SELF`                   | DELETED                       |
//! | `IN_MOVED_FROM`                                 | MOVED_FROM                    |
//! | `IN_MOVED_TO`                                   | MOVED_TO                      |
//!
//! A write is reported once, as UPDATED when the writer closes the file
//! (`IN_CLOSE_WRITE`, which also comes for a file opened for writing and
//! closed unchanged, as `touch` does). A file written and kept open (a log,
//! a database) is reported UPDATED 5 seconds after its first unreported
//! write, then again after each later write, so a busy file gives one row
//! per 5 s rather than one per `write()`.
//!
//! # Writes and `pid`
//!
//! inotify does not say which process acted; fanotify does. When the agent
//! may use fanotify (`fanotify_init` needs CAP_SYS_ADMIN: root has it unless
//! a container or the service unit drops it; the kernel must have fanotify
//! and /proc be mounted), the directories inotify watches are marked for
//! fanotify too (new ones as they are watched), and the writes come from
//! there (`FAN_MODIFY`, `FAN_CLOSE_WRITE`) instead of from inotify: still
//! one UPDATED per close, and per 5 s of writes without a close, now with
//! `pid`, the process (thread group id) that wrote: the one that closed, or
//! the last one that wrote before the 5 s were up. Only the pid is kept: the
//! process may be gone when the row is read (`process_events` has what it
//! ran). Which mode is in use is logged when the source starts; without
//! fanotify the log says why, as "fanotify unavailable (fanotify_init: EPERM:
//! Operation not permitted; it needs CAP_SYS_ADMIN): writes reported without
//! the acting pid", and inotify reports the writes as before.
//!
//! `pid` is NULL for the other actions (they come from inotify), for every
//! row when fanotify is unavailable, for the writes in a directory that
//! could not be marked (the limit `fs.fanotify.max_user_marks`; logged,
//! inotify reports its writes), and for a writer outside the agent's pid
//! namespace.
//!
//! fanotify names the written file by a descriptor the kernel opens for the
//! agent (read-only, non-blocking; closed at once). The path is the file's
//! when the event is read, given under the path its directory is watched as
//! (symbolic links in the pattern's directories are kept) and matched
//! against the patterns like inotify's: a file renamed meanwhile is reported
//! under its new name, one removed meanwhile under its last name. The
//! agent's own writes are not reported in this mode (a file it wrote below a
//! watched path would feed rows about itself); it only reads the files it
//! hashes.
//!
//! A rename within the watched directories is a MOVED_FROM and a MOVED_TO
//! row with the same `transaction_id` (inotify's cookie; 0 for other
//! actions); a rename into or out of them is only one of the two. The
//! watched directory itself being removed or renamed away, with its parent
//! unwatched, is DELETED or MOVED_FROM with `transaction_id` 0.
//!
//! `inode`, `uid`, `gid`, `mode` (octal, "0644"), `size` and the times are
//! the path's (`lstat`) when the event is read, NULL when it is gone (a
//! DELETED or MOVED_FROM path, usually). Regular files up to 50 MiB are
//! hashed (`md5`, `sha1`, `sha256`, `hashed` = 1) on CREATED, UPDATED and
//! MOVED_TO; `hashed` is 0 when the file was not hashed (another action, not
//! a regular file, gone, larger) and -1 when reading it failed. A path
//! matching patterns of several categories gives one row per category.
//!
//! # What is not caught
//!
//! - Only writes name their process, and only with fanotify: the other
//!   actions have no `pid`. There is no user or program column, and the
//!   `uid` is the file's owner, not the actor's.
//! - Reads, opens and closes without writing (`IN_ACCESS`, `IN_OPEN`,
//!   `IN_CLOSE_NOWRITE`) are not watched.
//! - Writes through another path to the same file (a hard link elsewhere, a
//!   bind mount) and memory-mapped writes are not reported as UPDATED until
//!   a close or a modify event; changes made on another host to a network
//!   file system are not seen at all.
//! - What happens while the kernel's queue is full is lost: the overflow is
//!   counted in `lost` and logged, and every pattern is resolved again to
//!   watch directories made meanwhile. Directories that could not be watched
//!   (`fs.inotify.max_user_watches` reached, permission) are logged and
//!   counted in `lost` too. Writes lost to a full fanotify queue
//!   (`fs.fanotify.max_queued_events`) are counted and logged likewise.
//! - A directory renamed out of the watched paths keeps its fanotify mark
//!   until the agent stops (the kernel unmarks only by path); its writes are
//!   read and dropped.
//! - A file that changes while it is hashed gets the hash of what was read;
//!   hashing is done on the reading thread, so very busy large files may
//!   make the queue overflow.
//! - Subdirectories under `%%` are walked without following symbolic links;
//!   the components leading to them may be symbolic links (as osquery's
//!   globs do). One directory reachable by two watched paths is reported
//!   under the first.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use md5::Md5;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use sweep_proto::schema::file_events;
use tracing::{debug, info, warn};

use super::fanotify::{self, Writes};
use super::file_patterns::{components, glob, Leaf, Pattern};
use super::{Events, State, WAKE_EVERY};
use crate::tables::Row;

pub const NAME: &str = "inotify";

/// What every watch asks for: the structure, and the writes unless
/// fanotify reports them ([`WRITES`]).
const MASK: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::MOVE_SELF);

/// The writes, asked of inotify for a directory fanotify has not marked.
const WRITES: WatchFlags = WatchFlags::MODIFY.union(WatchFlags::CLOSE_WRITE);

/// Largest file hashed.
const HASH_MAX: u64 = 50 * 1024 * 1024;

/// How long a write without a close waits before it is reported UPDATED.
const MODIFY_SETTLE: Duration = Duration::from_secs(5);

/// Most files waiting for a close; past it they are all reported at once.
const PENDING_MAX: usize = 10_000;

/// Most events handled before the queue is read again (memory bound).
const BATCH: usize = 4096;

/// How often a repeated warning is logged (the others are counted in it).
const LOG_EVERY: Duration = Duration::from_secs(10);

const CREATED: &str = "CREATED";
const UPDATED: &str = "UPDATED";
const DELETED: &str = "DELETED";
const MOVED_FROM: &str = "MOVED_FROM";
const MOVED_TO: &str = "MOVED_TO";
const ATTRIBUTES_MODIFIED: &str = "ATTRIBUTES_MODIFIED";

/// Starts watching; Err(reason) when the host cannot (inotify_init fails, or
/// no configured pattern resolves to anything watchable — say which
/// patterns). Writes come from fanotify when the agent may use it, else
/// from inotify (logged, saying why).
pub fn start(hub: Arc<Events>, paths: &BTreeMap<String, Vec<String>>) -> Result<(), String> {
    start_with(hub, paths, Options::AGENT).map(|_| ())
}

/// How the watcher gets writes.
#[derive(Debug, Clone, Copy)]
struct Options {
    /// Try fanotify (false: inotify alone).
    fanotify: bool,
    /// Drop the writes of the agent's own process.
    skip_own: bool,
}

impl Options {
    const AGENT: Self = Self {
        fanotify: true,
        skip_own: true,
    };
}

/// What reports writes, and so whether they have a pid.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WritesBy {
    Fanotify,
    /// Why not fanotify.
    Inotify(String),
}

fn start_with(
    hub: Arc<Events>,
    paths: &BTreeMap<String, Vec<String>>,
    options: Options,
) -> Result<WritesBy, String> {
    let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC).map_err(|e| {
        format!("inotify_init: {e} (the limit is sysctl fs.inotify.max_user_instances)")
    })?;
    let (writes, by) = if options.fanotify {
        match Writes::init(options.skip_own) {
            Ok(w) => (Some(w), WritesBy::Fanotify),
            Err(why) => (None, WritesBy::Inotify(why)),
        }
    } else {
        (None, WritesBy::Inotify("fanotify not asked for".into()))
    };
    let mut patterns = Vec::new();
    let mut unresolved = Vec::new();
    for (category, list) in paths {
        for text in list {
            match Pattern::parse(category, text) {
                Ok(p) => patterns.push(p),
                Err(why) => unresolved.push(format!("{category}: {text:?} ({why})")),
            }
        }
    }
    let mut watcher = Watcher::new(hub, fd, writes, patterns);
    let resolved = watcher.resolve_all();
    let mut any = false;
    for (p, r) in watcher.patterns.iter().zip(&resolved) {
        match r {
            Ok(()) => any = true,
            Err(why) => unresolved.push(format!("{}: {:?} ({why})", p.category, p.text)),
        }
    }
    if !any {
        return Err(format!(
            "no file_paths pattern resolves to a directory to watch: {}",
            unresolved.join("; ")
        ));
    }
    if !unresolved.is_empty() {
        warn!(
            source = NAME,
            patterns = %unresolved.join("; "),
            "file_paths patterns that match nothing to watch are left out"
        );
    }
    match &by {
        WritesBy::Fanotify => info!(
            source = NAME,
            watches = watcher.by_wd.len(),
            fanotify_marks = watcher.writes.as_ref().map_or(0, Writes::marks),
            "watching the file_paths directories; writes from fanotify, with the acting pid"
        ),
        WritesBy::Inotify(why) => {
            info!(
                source = NAME,
                reason = %why,
                "fanotify unavailable ({why}): writes reported without the acting pid"
            );
            info!(
                source = NAME,
                watches = watcher.by_wd.len(),
                "watching the file_paths directories; writes from inotify, without a pid"
            );
        }
    }
    std::thread::Builder::new()
        .name("events-file".into())
        .spawn(move || watcher.run())
        .map_err(|e| format!("starting the inotify thread: {e}"))?;
    Ok(by)
}

fn is_dir(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_dir())
}

/// A warning logged at most every [`LOG_EVERY`], counting the ones between.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    skipped: u64,
}

impl Throttle {
    /// Some(how many were skipped since the last one) when it is time to log.
    fn due(&mut self) -> Option<u64> {
        if self.last.is_some_and(|l| l.elapsed() < LOG_EVERY) {
            self.skipped += 1;
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.skipped))
    }
}

/// One event, copied out of the read buffer.
struct Raw {
    wd: i32,
    mask: ReadFlags,
    cookie: u32,
    name: Option<PathBuf>,
}

/// A file's hashes, or why there are none.
enum Hashed {
    Not,
    Failed,
    Done {
        md5: String,
        sha1: String,
        sha256: String,
    },
}

impl Hashed {
    fn of(path: &Path, meta: Option<&Metadata>) -> Self {
        match meta {
            Some(m) if m.file_type().is_file() && m.len() <= HASH_MAX => {}
            _ => return Self::Not,
        }
        match digests(path) {
            Ok(Some(h)) => h,
            Ok(None) => Self::Not,
            Err(e) => {
                debug!(source = NAME, path = %path.display(), error = %e, "hashing failed");
                Self::Failed
            }
        }
    }

    fn flag(&self) -> i64 {
        match self {
            Self::Not => 0,
            Self::Failed => -1,
            Self::Done { .. } => 1,
        }
    }
}

/// The file's hashes; None when it is no longer a regular file within
/// [`HASH_MAX`]. Opened without blocking, so a FIFO put in its place does
/// not hang the reader.
fn digests(path: &Path) -> std::io::Result<Option<Hashed>> {
    let mut file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() || meta.len() > HASH_MAX {
        return Ok(None);
    }
    let (mut md5, mut sha1, mut sha256) = (Md5::new(), Sha1::new(), Sha256::new());
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if total > HASH_MAX {
            return Ok(None); // it grew while read
        }
        md5.update(&buf[..n]);
        sha1.update(&buf[..n]);
        sha256.update(&buf[..n]);
    }
    Ok(Some(Hashed::Done {
        md5: hex::encode(md5.finalize()),
        sha1: hex::encode(sha1.finalize()),
        sha256: hex::encode(sha256.finalize()),
    }))
}

/// The reading thread's state: the inotify instance and what its watches
/// are on, the fanotify group when writes come from it.
struct Watcher {
    hub: Arc<Events>,
    fd: OwnedFd,
    writes: Option<Writes>,
    patterns: Arc<Vec<Pattern>>,
    by_wd: HashMap<i32, PathBuf>,
    by_path: BTreeMap<PathBuf, i32>,
    /// Files written and not yet closed: since when, by whom (the last
    /// writer fanotify named).
    pending: HashMap<PathBuf, (Instant, Option<i32>)>,
    /// While a created directory is handled: the directories newly watched,
    /// whose contents are then reported CREATED.
    fresh: Option<Vec<PathBuf>>,
    watch_failed: Throttle,
    mark_failed: Throttle,
    overflowed: Throttle,
    fanotify_overflowed: Throttle,
}

impl Watcher {
    fn new(hub: Arc<Events>, fd: OwnedFd, writes: Option<Writes>, patterns: Vec<Pattern>) -> Self {
        Self {
            hub,
            fd,
            writes,
            patterns: Arc::new(patterns),
            by_wd: HashMap::new(),
            by_path: BTreeMap::new(),
            pending: HashMap::new(),
            fresh: None,
            watch_failed: Throttle::default(),
            mark_failed: Throttle::default(),
            overflowed: Throttle::default(),
            fanotify_overflowed: Throttle::default(),
        }
    }

    fn lost(&self, n: u64) {
        if let Some(s) = self.hub.source(NAME) {
            s.lost.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Watches what every pattern needs; per pattern, Err(why) when nothing
    /// could be watched for it.
    fn resolve_all(&mut self) -> Vec<Result<(), String>> {
        (0..self.patterns.len())
            .map(|i| {
                let (watched, error) = self.walk(i, PathBuf::from("/"), 0);
                if watched > 0 {
                    Ok(())
                } else {
                    Err(error.unwrap_or_else(|| "no directory matches".into()))
                }
            })
            .collect()
    }

    /// Watches what pattern `pi` needs at and below `dir`, which matches its
    /// first `depth` directory components. Returns how many watches it holds
    /// and the last error met.
    fn walk(&mut self, pi: usize, dir: PathBuf, depth: usize) -> (usize, Option<String>) {
        let patterns = Arc::clone(&self.patterns);
        let p = &patterns[pi];
        let n = p.dirs.len();
        let (mut watched, mut error) = (0, None);
        let mut stack = vec![(dir, depth)];
        while let Some((dir, k)) = stack.pop() {
            if k >= n || k >= p.first_wild {
                match self.watch(&dir, true) {
                    Ok(()) => {
                        watched += 1;
                        if k >= n && p.leaf == Leaf::Below {
                            watched += self.watch_tree(&dir);
                        }
                    }
                    Err(Some(e)) => error = Some(format!("{}: {e}", dir.display())),
                    Err(None) => {}
                }
                if k >= n {
                    continue;
                }
            }
            let comp = &p.dirs[k];
            if !comp.contains(&b'%') {
                let child = dir.join(OsStr::from_bytes(comp));
                if is_dir(&child) {
                    stack.push((child, k + 1));
                }
                continue;
            }
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if glob(comp, e.file_name().as_bytes()) {
                    let child = e.path();
                    if is_dir(&child) {
                        stack.push((child, k + 1));
                    }
                }
            }
        }
        (watched, error)
    }

    /// Watches every directory below `root` (not following symbolic
    /// links); returns how many it holds.
    fn watch_tree(&mut self, root: &Path) -> usize {
        let mut watched = 0;
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        if let Some(more) = self.watch_failed.due() {
                            warn!(
                                source = NAME,
                                path = %dir.display(),
                                error = %e,
                                more,
                                "cannot list a directory: its subdirectories are not watched"
                            );
                        }
                    }
                    continue;
                }
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let child = e.path();
                    if self.watch(&child, false).is_ok() {
                        watched += 1;
                        stack.push(child);
                    }
                }
            }
        }
        watched
    }

    /// Adds (or keeps) a watch on `dir`, and a fanotify mark for its
    /// writes when there is a group (when it cannot be marked, inotify
    /// watches its writes). Err(None) when it is gone or no longer a
    /// directory, Err(Some) when it could not be watched (logged and counted
    /// as lost).
    fn watch(&mut self, dir: &Path, follow: bool) -> Result<(), Option<Errno>> {
        let mut flags = MASK | WatchFlags::ONLYDIR;
        if !follow {
            flags |= WatchFlags::DONT_FOLLOW;
        }
        if !self.mark(dir, follow) {
            flags |= WRITES;
        }
        let result = self.add_watch(dir, flags);
        if result.is_err() {
            if let Some(w) = &mut self.writes {
                w.unmark(dir);
            }
        }
        result
    }

    /// Marks `dir` for fanotify; false when there is no group or it could
    /// not be marked (logged, unless it is gone).
    fn mark(&mut self, dir: &Path, follow: bool) -> bool {
        let Some(w) = &mut self.writes else {
            return false;
        };
        match w.mark(dir, follow) {
            Ok(()) => true,
            Err(e) => {
                use nix::errno::Errno as E;
                let gone = matches!(e, E::ENOENT | E::ENOTDIR | E::ELOOP);
                if !gone {
                    if let Some(more) = self.mark_failed.due() {
                        let hint = if e == E::ENOSPC {
                            " (the limit is sysctl fs.fanotify.max_user_marks)"
                        } else {
                            ""
                        };
                        info!(
                            source = NAME,
                            path = %dir.display(),
                            error = %e,
                            more_failures = more,
                            "cannot mark a directory for fanotify{hint}: its writes are \
                             reported by inotify, without the acting pid"
                        );
                    }
                }
                false
            }
        }
    }

    /// Adds (or keeps) the inotify watch on `dir`.
    fn add_watch(&mut self, dir: &Path, flags: WatchFlags) -> Result<(), Option<Errno>> {
        match inotify::add_watch(&self.fd, dir, flags) {
            Ok(wd) => {
                if let Some(known) = self.by_wd.get(&wd) {
                    if known != dir {
                        debug!(
                            source = NAME,
                            path = %dir.display(),
                            watched_as = %known.display(),
                            "directory already watched under another path"
                        );
                    }
                    return Ok(());
                }
                if let Some(old) = self.by_path.insert(dir.to_path_buf(), wd) {
                    // The path's former directory was replaced.
                    self.by_wd.remove(&old);
                    let _ = inotify::remove_watch(&self.fd, old);
                }
                self.by_wd.insert(wd, dir.to_path_buf());
                if let Some(fresh) = &mut self.fresh {
                    fresh.push(dir.to_path_buf());
                }
                Ok(())
            }
            Err(e) if e == Errno::NOENT || e == Errno::NOTDIR || e == Errno::LOOP => Err(None),
            Err(e) => {
                self.lost(1);
                if let Some(more) = self.watch_failed.due() {
                    let hint = if e == Errno::NOSPC {
                        "the inotify watch limit is reached (sysctl fs.inotify.max_user_watches): \
                         events there are lost"
                    } else {
                        "events there are lost"
                    };
                    warn!(
                        source = NAME,
                        path = %dir.display(),
                        error = %e,
                        more_failures = more,
                        "cannot watch a directory: {hint}"
                    );
                }
                Err(Some(e))
            }
        }
    }

    /// Drops the watches on `dir` and below (it was removed or renamed).
    fn forget_below(&mut self, dir: &Path) {
        let gone: Vec<(PathBuf, i32)> = self
            .by_path
            .range(dir.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(dir))
            .map(|(p, wd)| (p.clone(), *wd))
            .collect();
        for (path, wd) in gone {
            self.by_path.remove(&path);
            self.by_wd.remove(&wd);
            let _ = inotify::remove_watch(&self.fd, wd);
        }
        if let Some(w) = &mut self.writes {
            w.forget_below(dir);
        }
        self.pending.retain(|p, _| !p.starts_with(dir));
    }

    /// A directory appeared at `dir` (made, or renamed in): watches what the
    /// patterns need there; when it was made, reports what is already in the
    /// directories newly watched.
    fn appeared(&mut self, dir: &Path, created: bool) {
        if created {
            self.fresh = Some(Vec::new());
        }
        let patterns = Arc::clone(&self.patterns);
        let comps = components(dir);
        for (pi, p) in patterns.iter().enumerate() {
            let n = p.dirs.len();
            if comps.len() <= n {
                if p.leads_to(&comps) {
                    self.walk(pi, dir.to_path_buf(), comps.len());
                }
            } else if p.leaf == Leaf::Below
                && p.leads_to(&comps[..n])
                && self.watch(dir, false).is_ok()
            {
                self.watch_tree(dir);
            }
        }
        for d in self.fresh.take().unwrap_or_default() {
            let Ok(entries) = fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                self.report(&e.path(), CREATED, 0, None);
            }
        }
    }

    fn matched(&self, path: &Path) -> bool {
        let comps = components(path);
        self.patterns.iter().any(|p| p.matches(&comps))
    }

    /// Pushes one row per category whose patterns match `path`; `pid` is
    /// the acting process when fanotify named it.
    fn report(&self, path: &Path, action: &'static str, cookie: u32, pid: Option<i32>) {
        let comps = components(path);
        let mut categories: Vec<&str> = Vec::new();
        for p in self.patterns.iter() {
            if p.matches(&comps) && !categories.contains(&p.category.as_str()) {
                categories.push(&p.category);
            }
        }
        if categories.is_empty() {
            return;
        }
        let meta = fs::symlink_metadata(path).ok();
        let hashed = if matches!(action, CREATED | UPDATED | MOVED_TO) {
            Hashed::of(path, meta.as_ref())
        } else {
            Hashed::Not
        };
        let (md5, sha1, sha256) = match &hashed {
            Hashed::Done { md5, sha1, sha256 } => (Some(md5), Some(sha1), Some(sha256)),
            _ => (None, None, None),
        };
        let m = meta.as_ref();
        for category in categories {
            let mut row = Row::empty(file_events::TABLE.columns);
            row.set("target_path", path.to_string_lossy().into_owned())
                .set("category", category)
                .set("action", action)
                .set("transaction_id", i64::from(cookie))
                .set_opt("inode", m.map(|m| m.ino()))
                .set_opt("uid", m.map(|m| m.uid()))
                .set_opt("gid", m.map(|m| m.gid()))
                .set_opt("mode", m.map(|m| format!("{:04o}", m.mode() & 0o7777)))
                .set_opt("size", m.map(|m| m.size()))
                .set_opt("atime", m.map(|m| m.atime()))
                .set_opt("mtime", m.map(|m| m.mtime()))
                .set_opt("ctime", m.map(|m| m.ctime()))
                .set_opt("md5", md5)
                .set_opt("sha1", sha1)
                .set_opt("sha256", sha256)
                .set("hashed", hashed.flag())
                .set_opt("pid", pid.map(i64::from));
            self.hub.push("file_events", row);
            if let Some(s) = self.hub.source(NAME) {
                s.received.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn handle(&mut self, ev: Raw) {
        let mask = ev.mask;
        if mask.contains(ReadFlags::QUEUE_OVERFLOW) {
            self.lost(1);
            if let Some(more) = self.overflowed.due() {
                warn!(
                    source = NAME,
                    overflows_since_last_warning = more,
                    "the inotify queue overflowed: file events were lost \
                     (sysctl fs.inotify.max_queued_events)"
                );
            }
            // Directories made meanwhile were not seen: watch them now.
            self.resolve_all();
            return;
        }
        if mask.contains(ReadFlags::IGNORED) {
            if let Some(path) = self.by_wd.remove(&ev.wd) {
                if self.by_path.get(&path) == Some(&ev.wd) {
                    self.by_path.remove(&path);
                }
            }
            return;
        }
        let Some(dir) = self.by_wd.get(&ev.wd).cloned() else {
            return; // a watch dropped meanwhile
        };
        let is_dir = mask.contains(ReadFlags::ISDIR);
        let Some(name) = ev.name else {
            // The watched directory itself. When its parent is watched the
            // parent's event reported it.
            let parent_watched = dir.parent().is_some_and(|p| self.by_path.contains_key(p));
            if mask.contains(ReadFlags::ATTRIB) && !parent_watched {
                self.report(&dir, ATTRIBUTES_MODIFIED, 0, None);
            }
            if mask.contains(ReadFlags::DELETE_SELF) {
                if !parent_watched {
                    self.report(&dir, DELETED, 0, None);
                }
                self.forget_below(&dir);
            } else if mask.contains(ReadFlags::MOVE_SELF) {
                if !parent_watched {
                    self.report(&dir, MOVED_FROM, 0, None);
                }
                self.forget_below(&dir);
            }
            return;
        };
        let path = dir.join(name);
        if mask.contains(ReadFlags::CREATE) {
            self.report(&path, CREATED, 0, None);
            if is_dir {
                self.appeared(&path, true);
            }
        }
        if mask.contains(ReadFlags::MODIFY) && self.matched(&path) {
            self.pending
                .entry(path.clone())
                .or_insert_with(|| (Instant::now(), None));
        }
        if mask.contains(ReadFlags::CLOSE_WRITE) {
            self.pending.remove(&path);
            self.report(&path, UPDATED, 0, None);
        }
        if mask.contains(ReadFlags::ATTRIB) {
            self.report(&path, ATTRIBUTES_MODIFIED, 0, None);
        }
        if mask.contains(ReadFlags::MOVED_FROM) {
            self.pending.remove(&path);
            self.report(&path, MOVED_FROM, ev.cookie, None);
            if is_dir {
                self.forget_below(&path);
            }
        }
        if mask.contains(ReadFlags::MOVED_TO) {
            self.report(&path, MOVED_TO, ev.cookie, None);
            if is_dir {
                self.appeared(&path, false);
            }
        }
        if mask.contains(ReadFlags::DELETE) {
            self.pending.remove(&path);
            self.report(&path, DELETED, 0, None);
            if is_dir {
                self.forget_below(&path);
            }
        }
    }

    /// A write fanotify reported: as inotify's `IN_MODIFY` and
    /// `IN_CLOSE_WRITE`, with the writer.
    fn handle_write(&mut self, w: fanotify::Write) {
        if w.modified && self.matched(&w.path) {
            let pending = self
                .pending
                .entry(w.path.clone())
                .or_insert_with(|| (Instant::now(), None));
            pending.1 = w.pid;
        }
        if w.closed {
            self.pending.remove(&w.path);
            self.report(&w.path, UPDATED, 0, w.pid);
        }
    }

    /// Reports UPDATED the files written and not closed for
    /// [`MODIFY_SETTLE`] (all of them when too many wait).
    fn settle(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let all = self.pending.len() > PENDING_MAX;
        let mut due: Vec<(Instant, PathBuf, Option<i32>)> = self
            .pending
            .iter()
            .filter(|(_, (since, _))| all || since.elapsed() >= MODIFY_SETTLE)
            .map(|(p, (since, pid))| (*since, p.clone(), *pid))
            .collect();
        due.sort();
        for (_, path, pid) in due {
            self.pending.remove(&path);
            self.report(&path, UPDATED, 0, pid);
        }
    }

    /// Reads fanotify's queue (up to about [`BATCH`] writes) into `batch`;
    /// an overflow is logged and counted as lost.
    fn read_writes(&mut self, batch: &mut Vec<fanotify::Write>) -> Result<(), String> {
        let Some(w) = &self.writes else {
            return Ok(());
        };
        let overflows = w.read(batch, BATCH)?;
        if overflows > 0 {
            self.lost(overflows);
            if let Some(more) = self.fanotify_overflowed.due() {
                warn!(
                    source = NAME,
                    overflows_since_last_warning = more,
                    "the fanotify queue overflowed: file writes were lost \
                     (sysctl fs.fanotify.max_queued_events)"
                );
            }
        }
        Ok(())
    }

    /// Reads what is queued (up to about [`BATCH`] events) into `batch`.
    fn read(&self, buf: &mut [MaybeUninit<u8>], batch: &mut Vec<Raw>) -> Result<(), Errno> {
        let mut reader = inotify::Reader::new(&self.fd, buf);
        loop {
            match reader.next() {
                Ok(ev) => batch.push(Raw {
                    wd: ev.wd(),
                    mask: ev.events(),
                    cookie: ev.cookie(),
                    name: ev
                        .file_name()
                        .map(|n| n.to_bytes())
                        .filter(|n| !n.is_empty())
                        .map(|n| PathBuf::from(OsStr::from_bytes(n))),
                }),
                Err(e) if e == Errno::AGAIN => return Ok(()),
                Err(e) if e == Errno::INTR => continue,
                Err(e) => return Err(e),
            }
            if batch.len() >= BATCH && reader.is_buffer_empty() {
                return Ok(());
            }
        }
    }

    fn run(mut self) {
        let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
        let mut batch = Vec::new();
        let mut writes = Vec::new();
        let timeout = Timespec::try_from(WAKE_EVERY).unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: 500_000_000,
        });
        while !self.hub.stopping() {
            let polled = {
                let mut fds = vec![PollFd::new(&self.fd, PollFlags::IN)];
                if let Some(w) = &self.writes {
                    fds.push(PollFd::new(w, PollFlags::IN));
                }
                poll(&mut fds, Some(&timeout))
            };
            match polled {
                Ok(_) => {}
                Err(e) if e == Errno::INTR => {}
                Err(e) => return self.fail(format!("polling inotify and fanotify: {e}")),
            }
            // The structure first: a file's CREATED before its UPDATED, a
            // new directory marked before its writes are read.
            if let Err(e) = self.read(&mut buf, &mut batch) {
                return self.fail(format!("reading inotify: {e}"));
            }
            for ev in batch.drain(..) {
                self.handle(ev);
            }
            if let Err(e) = self.read_writes(&mut writes) {
                return self.fail(format!("reading fanotify: {e}"));
            }
            for w in writes.drain(..) {
                self.handle_write(w);
            }
            self.settle();
        }
    }

    fn fail(&self, reason: String) {
        warn!(source = NAME, reason = %reason, "file events stopped");
        self.hub.set_state(NAME, State::Failed(reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EventsConfig;
    use crate::events::test_rows::{int, text};
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    use tempfile::TempDir;

    /// What the tests ask for: fanotify when they may (they pass with
    /// inotify alone too), and the test process's writes, which are the
    /// agent's, reported.
    const TESTS: Options = Options {
        fanotify: true,
        skip_own: false,
    };

    /// A temporary directory (its real path) and a hub watching `patterns`
    /// under it, by category.
    fn watching(patterns: &[(&str, &str)]) -> (TempDir, PathBuf, Arc<Events>) {
        let (tmp, root, hub, _) = watching_with(patterns, TESTS);
        (tmp, root, hub)
    }

    /// [`watching`], asking for fanotify: fails when it is unavailable.
    fn watching_fanotify(
        patterns: &[(&str, &str)],
        options: Options,
    ) -> (TempDir, PathBuf, Arc<Events>) {
        let (tmp, root, hub, by) = watching_with(patterns, options);
        assert_eq!(
            by,
            WritesBy::Fanotify,
            "this test needs fanotify: run it as root (CAP_SYS_ADMIN)"
        );
        (tmp, root, hub)
    }

    fn watching_with(
        patterns: &[(&str, &str)],
        options: Options,
    ) -> (TempDir, PathBuf, Arc<Events>, WritesBy) {
        let tmp = TempDir::new().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("watched")).unwrap();
        fs::create_dir_all(root.join("other")).unwrap();
        let hub = Events::new(&EventsConfig::default());
        let mut paths: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (category, p) in patterns {
            paths
                .entry(category.to_string())
                .or_default()
                .push(format!("{}/{p}", root.display()));
        }
        let by = start_with(hub.clone(), &paths, options).unwrap();
        hub.set_state(NAME, State::Active);
        (tmp, root, hub, by)
    }

    /// Writes `content` to `file` from a child process (`tee`, which writes
    /// itself: no shell forking between); its pid.
    fn write_by_child(file: &Path, content: &[u8]) -> i64 {
        let mut child = Command::new("tee")
            .arg(file)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(content).unwrap();
        assert!(child.wait().unwrap().success());
        i64::from(child.id())
    }

    /// The rows of `path` with `action`.
    fn count(hub: &Events, path: &Path, action: &str) -> usize {
        let path = path.to_string_lossy();
        rows(hub)
            .iter()
            .filter(|r| {
                text(r, "target_path").as_deref() == Some(&*path)
                    && text(r, "action").as_deref() == Some(action)
            })
            .count()
    }

    fn rows(hub: &Events) -> Vec<Row> {
        let mut out = Vec::new();
        hub.scan("file_events", None, &mut out).unwrap();
        out
    }

    fn describe(rows: &[Row]) -> Vec<String> {
        rows.iter()
            .map(|r| {
                format!(
                    "{} {} {:?}",
                    text(r, "action").unwrap_or_default(),
                    text(r, "target_path").unwrap_or_default(),
                    int(r, "transaction_id")
                )
            })
            .collect()
    }

    /// The first row of `path` with `action`, waiting up to 10 s for it.
    fn wait_for(hub: &Events, path: &Path, action: &str) -> Row {
        wait_until(hub, path, action, |_| true)
    }

    /// The first row of `path` with `action` that `also` accepts, waiting up
    /// to 10 s for it.
    fn wait_until(hub: &Events, path: &Path, action: &str, also: impl Fn(&Row) -> bool) -> Row {
        let deadline = Instant::now() + Duration::from_secs(10);
        let path = path.to_string_lossy().into_owned();
        loop {
            let all = rows(hub);
            if let Some(r) = all.iter().find(|r| {
                text(r, "target_path").as_deref() == Some(path.as_str())
                    && text(r, "action").as_deref() == Some(action)
                    && also(r)
            }) {
                return r.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {action} {path} in {:#?}",
                describe(&all)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_written_file_is_created_then_updated_with_its_hashes() {
        let (_tmp, root, hub, by) = watching_with(&[("conf", "watched/%")], TESTS);
        let file = root.join("watched/app.conf");
        let content = b"listen = 0.0.0.0:8080\n";
        fs::write(&file, content).unwrap();

        let created = wait_for(&hub, &file, CREATED);
        assert_eq!(text(&created, "category").as_deref(), Some("conf"));
        assert_eq!(int(&created, "transaction_id"), Some(0));
        let updated = wait_for(&hub, &file, UPDATED);
        assert_eq!(
            text(&updated, "sha256"),
            Some(hex::encode(Sha256::digest(content)))
        );
        assert_eq!(
            text(&updated, "sha1"),
            Some(hex::encode(Sha1::digest(content)))
        );
        assert_eq!(
            text(&updated, "md5"),
            Some(hex::encode(Md5::digest(content)))
        );
        assert_eq!(int(&updated, "hashed"), Some(1));
        let meta = fs::metadata(&file).unwrap();
        assert_eq!(int(&updated, "inode"), Some(meta.ino() as i64));
        assert_eq!(int(&updated, "size"), Some(content.len() as i64));
        assert_eq!(
            text(&updated, "mode"),
            Some(format!("{:04o}", meta.mode() & 0o7777))
        );
        assert_eq!(int(&updated, "uid"), Some(i64::from(meta.uid())));
        assert_eq!(int(&updated, "mtime"), Some(meta.mtime()));
        // The writer is this process, named when fanotify reports writes.
        let own = (by == WritesBy::Fanotify).then(|| i64::from(std::process::id()));
        assert_eq!(int(&updated, "pid"), own);
        assert_eq!(int(&created, "pid"), None);
        // One write and close: one UPDATED.
        let updates = rows(&hub)
            .iter()
            .filter(|r| text(r, "action").as_deref() == Some(UPDATED))
            .count();
        assert_eq!(updates, 1);
        assert!(hub.source(NAME).unwrap().received.load(Ordering::Relaxed) >= 2);
        hub.stop();
    }

    #[test]
    fn a_file_in_a_directory_made_after_start_is_seen_below_double_percent() {
        let (_tmp, root, hub) = watching(&[("tree", "watched/%%")]);
        let sub = root.join("watched/a");
        fs::create_dir(&sub).unwrap();
        wait_for(&hub, &sub, CREATED);
        let file = sub.join("f.txt");
        fs::write(&file, b"x").unwrap();
        let updated = wait_for(&hub, &file, UPDATED);
        assert_eq!(int(&updated, "hashed"), Some(1));

        // A deeper tree made at once: what was made before its watches
        // existed is reported from reading the directories.
        let deep = root.join("watched/b/c/d");
        fs::create_dir_all(&deep).unwrap();
        let file = deep.join("g.txt");
        fs::write(&file, b"y").unwrap();
        wait_for(&hub, &file, CREATED);
        // The directory is watched: later writes are seen.
        fs::write(&file, b"zz").unwrap();
        wait_until(&hub, &file, UPDATED, |r| int(r, "size") == Some(2));
        hub.stop();
    }

    #[test]
    fn a_new_users_ssh_directory_is_picked_up_by_a_middle_wildcard() {
        let (_tmp, root, hub) = watching(&[("ssh", "watched/%/.ssh/%")]);
        let ssh = root.join("watched/bob/.ssh");
        fs::create_dir_all(&ssh).unwrap();
        let keys = ssh.join("authorized_keys");
        fs::write(&keys, b"ssh-ed25519 AAAA bob\n").unwrap();
        let row = wait_for(&hub, &keys, CREATED);
        assert_eq!(text(&row, "category").as_deref(), Some("ssh"));
        // The directories on the way are watched, not reported.
        assert!(rows(&hub).iter().all(|r| {
            let p = text(r, "target_path").unwrap();
            p.starts_with(&*ssh.to_string_lossy()) && p != ssh.to_string_lossy()
        }));
        hub.stop();
    }

    #[test]
    fn a_rename_is_a_moved_from_and_moved_to_pair_with_one_transaction_id() {
        let (_tmp, root, hub) = watching(&[("w", "watched/%%")]);
        let from = root.join("watched/old.txt");
        fs::write(&from, b"data").unwrap();
        wait_for(&hub, &from, UPDATED);
        let to = root.join("watched/new.txt");
        fs::rename(&from, &to).unwrap();
        let moved_from = wait_for(&hub, &from, MOVED_FROM);
        let moved_to = wait_for(&hub, &to, MOVED_TO);
        let id = int(&moved_from, "transaction_id").unwrap();
        assert_ne!(id, 0);
        assert_eq!(int(&moved_to, "transaction_id"), Some(id));
        assert_eq!(int(&moved_from, "inode"), None);
        assert_eq!(
            text(&moved_to, "sha256"),
            Some(hex::encode(Sha256::digest(b"data")))
        );
        hub.stop();
    }

    #[test]
    fn a_renamed_directory_is_watched_under_its_new_name() {
        let (_tmp, root, hub) = watching(&[("w", "watched/%%")]);
        let old = root.join("watched/old");
        fs::create_dir_all(old.join("inner")).unwrap();
        wait_for(&hub, &old.join("inner"), CREATED);
        let new = root.join("watched/new");
        fs::rename(&old, &new).unwrap();
        wait_for(&hub, &new, MOVED_TO);
        let file = new.join("inner/f");
        fs::write(&file, b"moved").unwrap();
        wait_for(&hub, &file, UPDATED);
        let all = rows(&hub);
        assert!(
            !all.iter().any(|r| text(r, "target_path")
                .unwrap()
                .starts_with(&*old.join("inner/").to_string_lossy())),
            "{:#?}",
            describe(&all)
        );
        // A removed tree's watches go with it.
        fs::remove_dir_all(&new).unwrap();
        wait_for(&hub, &new, DELETED);
        hub.stop();
    }

    #[test]
    fn a_plain_file_path_sees_the_file_replaced_by_a_rename() {
        let (_tmp, root, hub) = watching(&[("cfg", "watched/app.conf")]);
        let target = root.join("watched/app.conf");
        let temp = root.join("watched/app.conf.tmp");
        fs::write(&temp, b"new").unwrap();
        fs::rename(&temp, &target).unwrap();
        let row = wait_for(&hub, &target, MOVED_TO);
        assert_eq!(
            text(&row, "sha256"),
            Some(hex::encode(Sha256::digest(b"new")))
        );
        // The temporary file is not one of the pattern's.
        let all = rows(&hub);
        assert!(
            all.iter()
                .all(|r| text(r, "target_path") == Some(target.to_string_lossy().into())),
            "{:#?}",
            describe(&all)
        );
        hub.stop();
    }

    #[test]
    fn a_deleted_file_is_reported_without_its_inode() {
        let (_tmp, root, hub) = watching(&[("w", "watched/%")]);
        let file = root.join("watched/doomed");
        fs::write(&file, b"bye").unwrap();
        wait_for(&hub, &file, UPDATED);
        fs::remove_file(&file).unwrap();
        let row = wait_for(&hub, &file, DELETED);
        assert_eq!(int(&row, "inode"), None);
        assert_eq!(text(&row, "mode"), None);
        assert_eq!(text(&row, "sha256"), None);
        assert_eq!(int(&row, "hashed"), Some(0));
        hub.stop();
    }

    #[test]
    fn a_path_outside_every_pattern_gives_no_row() {
        let (_tmp, root, hub) = watching(&[("w", "watched/%.conf")]);
        fs::write(root.join("other/x.conf"), b"1").unwrap();
        fs::write(root.join("watched/x.txt"), b"2").unwrap();
        // A file written after them that matches: once it is seen, the
        // others were read before it.
        let marker = root.join("watched/marker.conf");
        fs::write(&marker, b"3").unwrap();
        wait_for(&hub, &marker, UPDATED);
        let all = rows(&hub);
        assert!(
            all.iter()
                .all(|r| text(r, "target_path") == Some(marker.to_string_lossy().into())),
            "{:#?}",
            describe(&all)
        );
        hub.stop();
    }

    #[test]
    fn a_write_by_another_process_is_one_updated_row_with_its_pid() {
        let (_tmp, root, hub) = watching_fanotify(&[("w", "watched/%")], Options::AGENT);
        let file = root.join("watched/written");
        let content = b"written by a child\n";
        let pid = write_by_child(&file, content);
        let updated = wait_until(&hub, &file, UPDATED, |r| int(r, "pid") == Some(pid));
        assert_eq!(
            text(&updated, "sha256"),
            Some(hex::encode(Sha256::digest(content)))
        );
        assert_eq!(int(&updated, "hashed"), Some(1));
        // A file written after it, seen by both queues: what they had on
        // the first file was read before.
        let marker = root.join("watched/marker");
        let marker_pid = write_by_child(&marker, b"m");
        wait_until(&hub, &marker, UPDATED, |r| {
            int(r, "pid") == Some(marker_pid)
        });
        wait_for(&hub, &marker, CREATED);
        assert_eq!(
            count(&hub, &file, UPDATED),
            1,
            "{:#?}",
            describe(&rows(&hub))
        );
        assert_eq!(int(&wait_for(&hub, &file, CREATED), "pid"), None);
        hub.stop();
    }

    #[test]
    fn a_file_kept_open_is_updated_after_settling_with_its_writers_pid() {
        let (_tmp, root, hub) = watching_fanotify(&[("log", "watched/%")], Options::AGENT);
        let file = root.join("watched/app.log");
        let mut child = Command::new("tee")
            .arg(&file)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = i64::from(child.id());
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"line 1\n").unwrap();
        // Reported after MODIFY_SETTLE while the file is still open.
        let written = Instant::now();
        let row = wait_until(&hub, &file, UPDATED, |r| int(r, "pid") == Some(pid));
        assert!(written.elapsed() >= MODIFY_SETTLE - Duration::from_millis(500));
        assert_eq!(int(&row, "size"), Some(7));
        assert!(child.try_wait().unwrap().is_none(), "tee ended early");
        // Closed: UPDATED again.
        drop(stdin);
        assert!(child.wait().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(&hub, &file, UPDATED) < 2 {
            assert!(
                Instant::now() < deadline,
                "no UPDATED at the close: {:#?}",
                describe(&rows(&hub))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(rows(&hub)
            .iter()
            .filter(|r| text(r, "action").as_deref() == Some(UPDATED))
            .all(|r| int(r, "pid") == Some(pid)));
        hub.stop();
    }

    #[test]
    fn a_directory_made_after_start_is_marked_for_fanotify() {
        let (_tmp, root, hub) = watching_fanotify(&[("tree", "watched/%%")], Options::AGENT);
        let sub = root.join("watched/new/deeper");
        fs::create_dir_all(&sub).unwrap();
        wait_for(&hub, &sub, CREATED);
        let file = sub.join("f");
        let pid = write_by_child(&file, b"x");
        wait_until(&hub, &file, UPDATED, |r| int(r, "pid") == Some(pid));
        // Renamed, it is reported under its new name.
        let moved = root.join("watched/moved");
        fs::rename(root.join("watched/new"), &moved).unwrap();
        wait_for(&hub, &moved, MOVED_TO);
        let file = moved.join("deeper/g");
        let pid = write_by_child(&file, b"y");
        wait_until(&hub, &file, UPDATED, |r| int(r, "pid") == Some(pid));
        hub.stop();
    }

    #[test]
    fn the_agents_own_writes_are_not_reported_by_fanotify() {
        let (_tmp, root, hub) = watching_fanotify(&[("w", "watched/%")], Options::AGENT);
        let own = root.join("watched/own");
        fs::write(&own, b"agent").unwrap();
        let marker = root.join("watched/marker");
        let pid = write_by_child(&marker, b"m");
        wait_until(&hub, &marker, UPDATED, |r| int(r, "pid") == Some(pid));
        // Its creation still is (inotify's).
        wait_for(&hub, &own, CREATED);
        assert_eq!(
            count(&hub, &own, UPDATED),
            0,
            "{:#?}",
            describe(&rows(&hub))
        );
        hub.stop();
    }

    #[test]
    fn without_fanotify_writes_come_from_inotify_without_a_pid() {
        let inotify_only = Options {
            fanotify: false,
            skip_own: true,
        };
        let (_tmp, root, hub, by) = watching_with(&[("w", "watched/%")], inotify_only);
        assert!(matches!(by, WritesBy::Inotify(_)), "{by:?}");
        let file = root.join("watched/f");
        write_by_child(&file, b"by a child");
        let updated = wait_for(&hub, &file, UPDATED);
        assert_eq!(int(&updated, "pid"), None);
        assert_eq!(
            text(&updated, "sha256"),
            Some(hex::encode(Sha256::digest(b"by a child")))
        );
        // Nor is the agent's own write dropped: inotify cannot tell.
        let own = root.join("watched/own");
        fs::write(&own, b"agent").unwrap();
        wait_for(&hub, &own, UPDATED);
        assert_eq!(
            count(&hub, &file, UPDATED),
            1,
            "{:#?}",
            describe(&rows(&hub))
        );
        hub.stop();
    }

    #[test]
    fn a_pattern_that_resolves_to_nothing_fails_start_naming_it() {
        let tmp = TempDir::new().unwrap();
        let missing = format!("{}/nowhere/%", tmp.path().display());
        let hub = Events::new(&EventsConfig::default());
        let paths = BTreeMap::from([
            ("gone".to_string(), vec![missing.clone()]),
            ("rel".to_string(), vec!["relative/%".to_string()]),
        ]);
        let e = start(hub.clone(), &paths).unwrap_err();
        assert!(e.contains(&missing), "{e}");
        assert!(e.contains("relative/%"), "{e}");
        assert!(e.contains("gone"), "{e}");
        hub.stop();
    }
}
