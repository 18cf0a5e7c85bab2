//! The writes of `file_events` from fanotify, which names the process that
//! wrote (inotify does not): used by [`super::file_watch`] when the agent may
//! (`fanotify_init` needs CAP_SYS_ADMIN).
//!
//! The directories inotify watches are marked too, for `FAN_MODIFY` and
//! `FAN_CLOSE_WRITE` on their entries (`FAN_EVENT_ON_CHILD`), so the same
//! files are covered. Each event comes with a descriptor of the written file,
//! opened by the kernel for the agent; its path is read from
//! `/proc/self/fd/N` and the descriptor is closed at once (nix's
//! `FanotifyEvent` closes it when dropped). The path the kernel gives is the
//! real one (symbolic links resolved); it is turned back into the path the
//! directory is watched as, by the directory's device and inode, so a write
//! is reported under the same path as inotify's events for that file.
//!
//! A directory that leaves the watched paths by a rename keeps its mark (the
//! kernel can only unmark by path, and the new one is unknown) until the
//! agent stops; its writes are then named by the kernel's path, which no
//! pattern matches unless the directory went somewhere else watched (where
//! it is marked again). A removed directory's mark goes with it.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};

/// What every mark asks for: writes to the directory's entries.
const MASK: MaskFlags = MaskFlags::FAN_MODIFY
    .union(MaskFlags::FAN_CLOSE_WRITE)
    .union(MaskFlags::FAN_EVENT_ON_CHILD);

/// A directory's identity: device and inode.
type Id = (u64, u64);

/// One write, as fanotify reported it.
#[derive(Debug)]
pub struct Write {
    /// The written file, under the path its directory is watched as (the
    /// kernel's path when the directory is not known).
    pub path: PathBuf,
    /// The writing process (its thread group), None when it is not in the
    /// agent's pid namespace.
    pub pid: Option<i32>,
    /// The file was written (`FAN_MODIFY`).
    pub modified: bool,
    /// A descriptor open for writing on it was closed (`FAN_CLOSE_WRITE`).
    pub closed: bool,
}

/// A fanotify group and the directories it has marked.
#[derive(Debug)]
pub struct Writes {
    group: Fanotify,
    /// The agent's own pid, whose writes are dropped (so that a file the
    /// agent writes under a watched path cannot feed itself); None keeps
    /// them (tests, whose writes are the agent's).
    own: Option<i32>,
    /// The path each marked directory is watched as; the first when it is
    /// reached by several.
    dirs: HashMap<Id, PathBuf>,
    /// The marked paths and what they were when marked.
    marked: BTreeMap<PathBuf, Id>,
}

impl Writes {
    /// A fanotify group for the agent; Err(why) when the host does not
    /// allow it (no CAP_SYS_ADMIN, a kernel without fanotify, no /proc).
    /// `skip_own`: drop the writes of the agent's own process.
    pub fn init(skip_own: bool) -> Result<Self, String> {
        let group = Fanotify::init(
            InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
            // O_NONBLOCK: the descriptor of a FIFO written to must not hang.
            EventFFlags::O_RDONLY
                | EventFFlags::O_LARGEFILE
                | EventFFlags::O_CLOEXEC
                | EventFFlags::O_NONBLOCK,
        )
        .map_err(|e| {
            let hint = match e {
                Errno::EPERM => "; it needs CAP_SYS_ADMIN",
                Errno::ENOSYS => "; the kernel is built without fanotify",
                Errno::EMFILE => "; too many fanotify groups (fs.fanotify.max_user_groups)",
                _ => "",
            };
            format!("fanotify_init: {e}{hint}")
        })?;
        // Events' paths are read from /proc/self/fd.
        fd_path(group.as_fd()).map_err(|e| {
            format!("/proc/self/fd cannot be read ({e}): the written files cannot be named")
        })?;
        Ok(Self {
            group,
            own: skip_own.then(|| std::process::id() as i32),
            dirs: HashMap::new(),
            marked: BTreeMap::new(),
        })
    }

    /// Marks `dir` for the writes to its entries (again is harmless);
    /// `follow`: a symbolic link to a directory is followed.
    pub fn mark(&mut self, dir: &Path, follow: bool) -> Result<(), Errno> {
        let mut flags = libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NONBLOCK;
        if !follow {
            flags |= libc::O_NOFOLLOW;
        }
        // Marked through a descriptor, so what is marked is what is stat'ed.
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(dir)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let meta = opened
            .metadata()
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        self.group.mark(
            MarkFlags::FAN_MARK_ADD,
            MASK,
            Some(opened.as_raw_fd()),
            None::<&Path>,
        )?;
        let id = (meta.dev(), meta.ino());
        if let Some(old) = self.marked.insert(dir.to_path_buf(), id) {
            if old != id && self.dirs.get(&old).is_some_and(|p| p == dir) {
                self.dirs.remove(&old); // the path's former directory
            }
        }
        let known = self
            .dirs
            .get(&id)
            .is_some_and(|p| self.marked.get(p) == Some(&id));
        if !known {
            self.dirs.insert(id, dir.to_path_buf());
        }
        Ok(())
    }

    /// Unmarks `dir`, just marked, when it could not be watched otherwise
    /// (its writes would be reported without the rest).
    pub fn unmark(&mut self, dir: &Path) {
        let Some(id) = self.marked.remove(dir) else {
            return;
        };
        if self.dirs.get(&id).is_some_and(|p| p == dir) {
            self.dirs.remove(&id);
        }
        // The mark is the inode's: keep it while another path needs it.
        if !self.marked.values().any(|other| *other == id) {
            let _ = self.group.mark(
                MarkFlags::FAN_MARK_REMOVE | MarkFlags::FAN_MARK_ONLYDIR,
                MASK,
                None,
                Some(dir),
            );
        }
    }

    /// Forgets `dir` and the directories below it (removed, or renamed
    /// away); their marks are gone with them or left stale (see the module
    /// documentation).
    pub fn forget_below(&mut self, dir: &Path) {
        let gone: Vec<(PathBuf, Id)> = self
            .marked
            .range(dir.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(dir))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        for (path, id) in gone {
            self.marked.remove(&path);
            if self.dirs.get(&id) == Some(&path) {
                self.dirs.remove(&id);
            }
        }
    }

    /// How many directories are marked.
    pub fn marks(&self) -> usize {
        self.marked.len()
    }

    /// Reads what is queued, up to about `max` writes, into `out` (every
    /// event's descriptor is closed before this returns). Returns how many
    /// times the queue overflowed.
    pub fn read(&self, out: &mut Vec<Write>, max: usize) -> Result<u64, String> {
        let mut overflows = 0;
        while out.len() < max {
            let events = match self.group.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.to_string()),
            };
            // Each event closes its descriptor when dropped, at the end of
            // its turn of the loop: no more are open at once than one read
            // returns.
            for ev in events {
                if !ev.check_version() {
                    return Err(format!(
                        "fanotify metadata version {}, this agent reads {}",
                        ev.version(),
                        nix::sys::fanotify::FANOTIFY_METADATA_VERSION
                    ));
                }
                let mask = ev.mask();
                if mask.contains(MaskFlags::FAN_Q_OVERFLOW) {
                    overflows += 1;
                    continue;
                }
                let pid = ev.pid();
                if self.own == Some(pid) {
                    continue;
                }
                let Some(fd) = ev.fd() else {
                    continue;
                };
                let Some(path) = self.path_of(fd) else {
                    continue;
                };
                out.push(Write {
                    path,
                    pid: (pid > 0).then_some(pid),
                    modified: mask.contains(MaskFlags::FAN_MODIFY),
                    closed: mask.contains(MaskFlags::FAN_CLOSE_WRITE),
                });
            }
        }
        Ok(overflows)
    }

    /// The path of the file an event's descriptor is open on, under the path
    /// its directory is watched as; None when it cannot be named (outside
    /// the agent's root).
    fn path_of(&self, fd: BorrowedFd<'_>) -> Option<PathBuf> {
        let link = fd_path(fd).ok()?;
        let mut bytes = link.as_os_str().as_bytes();
        // An unlinked file's path ends with " (deleted)".
        if rustix::fs::fstat(fd).is_ok_and(|st| st.st_nlink == 0) {
            bytes = bytes.strip_suffix(b" (deleted)").unwrap_or(bytes);
        }
        let real = Path::new(OsStr::from_bytes(bytes));
        if !real.is_absolute() {
            return None;
        }
        let name = real.file_name()?;
        let watched = real
            .parent()
            .and_then(|parent| fs::metadata(parent).ok())
            .and_then(|m| self.dirs.get(&(m.dev(), m.ino())));
        Some(match watched {
            Some(dir) => dir.join(name),
            None => real.to_path_buf(),
        })
    }
}

impl AsFd for Writes {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.group.as_fd()
    }
}

/// What `/proc/self/fd/N` says `fd` is open on.
fn fd_path(fd: BorrowedFd<'_>) -> std::io::Result<PathBuf> {
    fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};
    use tempfile::TempDir;

    /// A fanotify group, or a failure saying what the test needs.
    fn group(skip_own: bool) -> Writes {
        Writes::init(skip_own).unwrap_or_else(|why| {
            panic!("this test needs fanotify: run it as root (CAP_SYS_ADMIN): {why}")
        })
    }

    /// The writes read within 10 s until `done` accepts them all.
    fn read_until(w: &Writes, done: impl Fn(&[Write]) -> bool) -> Vec<Write> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut all = Vec::new();
        loop {
            assert_eq!(w.read(&mut all, 4096), Ok(0));
            if done(&all) {
                return all;
            }
            assert!(Instant::now() < deadline, "not seen in {all:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many of the process's descriptors are open on `file`.
    fn open_on(file: &Path) -> usize {
        fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter(|e| fs::read_link(e.path()).is_ok_and(|l| l == file))
            .count()
    }

    #[test]
    fn a_write_through_a_symbolic_link_is_named_by_the_watched_path() {
        let tmp = TempDir::new().unwrap();
        let real = tmp.path().canonicalize().unwrap().join("real");
        fs::create_dir(&real).unwrap();
        let link = tmp.path().canonicalize().unwrap().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut w = group(false);
        w.mark(&link, true).unwrap();
        assert_eq!(w.marks(), 1);
        // Not followed, the link is no directory.
        let mut nofollow = group(false);
        let e = nofollow.mark(&link, false).unwrap_err();
        assert!(matches!(e, Errno::ENOTDIR | Errno::ELOOP), "{e}");
        assert_eq!(nofollow.marks(), 0);

        fs::write(real.join("f"), b"x").unwrap();
        let seen = read_until(&w, |all| all.iter().any(|e| e.closed));
        let f = link.join("f");
        assert!(seen.iter().all(|e| e.path == f), "{seen:#?}");
        assert!(seen.iter().any(|e| e.modified));
        assert_eq!(seen[0].pid, Some(std::process::id() as i32));
        // Every event's descriptor is closed.
        assert_eq!(open_on(&real.join("f")), 0);
    }

    #[test]
    fn the_agents_own_writes_are_dropped_when_asked() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let mut w = group(true);
        w.mark(&dir, true).unwrap();
        fs::write(dir.join("own"), b"x").unwrap();
        // A write by another process after it: once that is read, the
        // agent's own was read before.
        let status = std::process::Command::new("dd")
            .arg(format!("of={}", dir.join("other").display()))
            .arg("status=none")
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let seen = read_until(&w, |all| all.iter().any(|e| e.closed));
        assert!(
            seen.iter().all(|e| e.path == dir.join("other")),
            "{seen:#?}"
        );
    }

    #[test]
    fn a_forgotten_directory_is_no_longer_recognised() {
        let tmp = TempDir::new().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let (a, b) = (root.join("a"), root.join("b"));
        fs::create_dir_all(a.join("sub")).unwrap();
        let mut w = group(false);
        w.mark(&a, true).unwrap();
        w.mark(&a.join("sub"), true).unwrap();
        assert_eq!(w.marks(), 2);
        fs::rename(&a, &b).unwrap();
        w.forget_below(&a);
        assert_eq!(w.marks(), 0);
        // The stale mark still reports, under the kernel's path.
        fs::write(b.join("f"), b"x").unwrap();
        let seen = read_until(&w, |all| all.iter().any(|e| e.closed));
        assert!(seen.iter().all(|e| e.path == b.join("f")), "{seen:#?}");
        // Unmarking a path marked once removes the mark.
        let c = root.join("c");
        fs::create_dir(&c).unwrap();
        w.mark(&c, true).unwrap();
        w.unmark(&c);
        assert_eq!(w.marks(), 0);
        fs::write(c.join("g"), b"y").unwrap();
        fs::write(b.join("marker"), b"z").unwrap();
        let seen = read_until(&w, |all| {
            all.iter().any(|e| e.closed && e.path == b.join("marker"))
        });
        assert!(!seen.iter().any(|e| e.path.starts_with(&c)), "{seen:#?}");
    }
}
