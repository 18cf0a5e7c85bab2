//! What a process that just exec'd is, read from /proc at once: its binary,
//! command line, working directory, ids and parent, and where descriptors
//! 0-2 are TCP or UDP sockets, their addresses (a shell whose standard
//! streams are a connection is the reverse-shell signature). A process
//! that lives a few milliseconds may be gone before some reads; what was
//! read is kept.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;

use crate::tables::net::sockets::{inet_by_inode, Socket};
use crate::tables::processes::join_args;

/// Everything read about one exec.
#[derive(Debug, Clone, Default)]
pub struct Exec {
    pub path: Option<String>,
    pub cmdline: Option<String>,
    pub cmdline_size: Option<i64>,
    pub env_count: Option<i64>,
    pub env_size: Option<i64>,
    pub cwd: Option<String>,
    pub auid: Option<i64>,
    /// Real, effective, saved, filesystem.
    pub uids: Option<[i64; 4]>,
    pub gids: Option<[i64; 4]>,
    pub parent: Option<i64>,
    pub file: Option<FileFacts>,
    /// Descriptors 0-2 that are TCP or UDP sockets: (fd, socket).
    pub sockets: Vec<(u8, Socket)>,
}

/// The executable's mode, owner and times, as `process_events` reports them.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileFacts {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
}

/// Socket inodes known not to be TCP or UDP (a service's standard streams
/// to journald are unix sockets, the same for every command it runs), so
/// they are not looked up again; cleared when it grows past a bound.
#[derive(Default)]
pub struct NotInet(HashSet<u64>);

const NOT_INET_MAX: usize = 4096;

impl NotInet {
    fn note(&mut self, inode: u64) {
        if self.0.len() >= NOT_INET_MAX {
            self.0.clear();
        }
        self.0.insert(inode);
    }
}

/// Reads what /proc has about `pid` now.
pub fn scan(pid: i32, not_inet: &mut NotInet) -> Exec {
    let base = format!("/proc/{pid}");
    let mut e = Exec {
        path: link(&format!("{base}/exe")),
        ..Exec::default()
    };
    if let Ok(raw) = std::fs::read(format!("{base}/cmdline")) {
        e.cmdline_size = Some(raw.len() as i64);
        e.cmdline = join_args(&raw);
    }
    if let Ok(raw) = std::fs::read(format!("{base}/environ")) {
        e.env_size = Some(raw.len() as i64);
        e.env_count = Some(raw.split(|&b| b == 0).filter(|v| !v.is_empty()).count() as i64);
    }
    e.cwd = link(&format!("{base}/cwd"));
    if let Ok(status) = std::fs::read_to_string(format!("{base}/status")) {
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("Uid:") {
                e.uids = four(v);
            } else if let Some(v) = line.strip_prefix("Gid:") {
                e.gids = four(v);
            } else if let Some(v) = line.strip_prefix("PPid:") {
                e.parent = v.trim().parse().ok();
            }
        }
    }
    e.auid = std::fs::read_to_string(format!("{base}/loginuid"))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        // The unset audit id, (uid_t)-1, is shown as -1, as osquery does.
        .map(|a| if a == u32::MAX { -1 } else { i64::from(a) });
    if let Some(path) = &e.path {
        if let Ok(m) = std::fs::metadata(path) {
            e.file = Some(FileFacts {
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                atime: m.atime(),
                mtime: m.mtime(),
                ctime: m.ctime(),
            });
        }
    }
    e.sockets = stdio_sockets(pid, not_inet);
    e
}

/// The TCP and UDP sockets on descriptors 0-2 of `pid`.
fn stdio_sockets(pid: i32, not_inet: &mut NotInet) -> Vec<(u8, Socket)> {
    let mut fds: Vec<(u8, u64)> = Vec::new();
    for fd in 0..3u8 {
        let Some(target) = link(&format!("/proc/{pid}/fd/{fd}")) else {
            continue;
        };
        let inode = target
            .strip_prefix("socket:[")
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok());
        if let Some(inode) = inode.filter(|i| !not_inet.0.contains(i)) {
            fds.push((fd, inode));
        }
    }
    if fds.is_empty() {
        return Vec::new();
    }
    let mut inodes: Vec<u64> = fds.iter().map(|(_, i)| *i).collect();
    inodes.sort_unstable();
    inodes.dedup();
    let found = inet_by_inode(pid, &inodes);
    let mut out = Vec::new();
    for (fd, inode) in fds {
        match found.iter().find(|s| s.inode == inode) {
            Some(s) => out.push((fd, s.clone())),
            None => not_inet.note(inode),
        }
    }
    out
}

fn link(path: &str) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The four ids of a `Uid:` or `Gid:` line.
fn four(v: &str) -> Option<[i64; 4]> {
    let mut ids = v.split_whitespace().map(|t| t.parse::<i64>().ok());
    Some([ids.next()??, ids.next()??, ids.next()??, ids.next()??])
}

/// A socket's far end as text: `203.0.113.7:4444`, `[2001:db8::1]:4444`.
pub fn peer_text(s: &Socket) -> String {
    if s.family == 10 {
        format!("[{}]:{}", s.remote_address, s.remote_port)
    } else {
        format!("{}:{}", s.remote_address, s.remote_port)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;
    use std::process::{Command, Stdio};

    use super::*;

    #[test]
    fn a_child_whose_stdin_is_a_connection_shows_its_peer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut served, _) = listener.accept().unwrap();
        // `cat` reads the connection as its standard input, as `sh -i`
        // would in a reverse shell, and writes it to a pipe.
        let fd = stream.as_fd().try_clone_to_owned().unwrap();
        let mut child = Command::new("cat")
            .stdin(Stdio::from(fd))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // spawn returns once the exec cannot fail, a moment before the
        // kernel lays out the new arguments; the process connector reports
        // an exec only after that.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let e = loop {
            let e = scan(pid, &mut NotInet::default());
            if e.cmdline.as_deref() == Some("cat") || std::time::Instant::now() > deadline {
                break e;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        served.write_all(b"done\n").unwrap();
        drop(served);
        drop(stream);
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child.wait().unwrap();
        assert_eq!(out, "done\n");
        assert!(e.path.as_deref().unwrap().ends_with("/cat"), "{e:?}");
        assert_eq!(e.cmdline.as_deref(), Some("cat"));
        assert_eq!(e.parent, Some(i64::from(std::process::id())));
        let me = rustix::process::getuid().as_raw();
        assert_eq!(e.uids.map(|u| u[0]), Some(i64::from(me)));
        assert_eq!(e.sockets.len(), 1, "{e:?}");
        let (fd, s) = &e.sockets[0];
        assert_eq!(*fd, 0);
        assert_eq!(peer_text(s), format!("127.0.0.1:{port}"));
        assert_eq!(s.protocol, 6);
    }

    #[test]
    fn pipes_and_unix_sockets_are_not_peers() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut not_inet = NotInet::default();
        let mut child = Command::new("cat")
            .stdin(Stdio::from(a.as_fd().try_clone_to_owned().unwrap()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let e = scan(child.id() as i32, &mut not_inet);
        drop(a);
        drop(_b);
        child.wait().unwrap();
        assert!(e.sockets.is_empty(), "{e:?}");
        assert_eq!(not_inet.0.len(), 1);
    }
}
