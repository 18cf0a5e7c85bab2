//! `process_events` from the kernel's process connector (netlink `cn_proc`):
//! every exec, fork and exit on the host, as it happens. Each exec is read
//! from /proc at once ([`exec_scan`](super::exec_scan)); its TCP and UDP
//! sockets on descriptors 0-2 also go to `socket_events`.
//!
//! The connector needs CAP_NET_ADMIN, and reports only to listeners in the
//! initial pid and user namespaces: an agent in a container's namespaces is
//! not acknowledged, which [`start`] notices and reports.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::net::{send, SendFlags};
use sweep_proto::schema::{process_events, socket_events};

use super::exec_scan::{self, Exec, NotInet};
use super::netlink::{self, u32_at, u64_at, Read};
use super::sock_destroy::{self, Owner};
use super::Events;
use crate::tables::Row;

pub const NAME: &str = "process_connector";

const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;

const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 1;
const PROC_EVENT_EXEC: u32 = 2;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// `struct cn_msg` before its data.
const CN_MSG_LEN: usize = 20;
/// Where a `proc_event`'s union starts in a connector message body.
const DATA: usize = CN_MSG_LEN + 16;

/// How long the kernel has to acknowledge the subscription.
const ACK_WITHIN: Duration = Duration::from_secs(2);

/// Most processes whose binary and command line are remembered (for their
/// forks and exits); the entries go when the processes exit.
const KNOWN_MAX: usize = 65_536;

/// Subscribes to the connector and starts the reading thread; an error says
/// why the host cannot provide the events.
pub fn start(hub: Arc<Events>) -> Result<(), String> {
    let fd = netlink::subscribe(netlink::CONNECTOR, CN_IDX_PROC).map_err(|e| {
        format!(
            "netlink process connector: {e} (needs root or CAP_NET_ADMIN, and a kernel \
             with CONFIG_PROC_EVENTS)"
        )
    })?;
    control(&fd, PROC_CN_MCAST_LISTEN).map_err(|e| format!("process connector: {e}"))?;
    wait_for_ack(&fd)?;
    std::thread::Builder::new()
        .name("events-proc".into())
        .spawn(move || Reader::new(hub).run(&fd))
        .map_err(|e| format!("starting the process connector thread: {e}"))?;
    Ok(())
}

fn control(fd: &OwnedFd, op: u32) -> std::io::Result<()> {
    let mut body = Vec::with_capacity(CN_MSG_LEN + 4);
    for v in [CN_IDX_PROC, CN_VAL_PROC, 0, 0] {
        body.extend_from_slice(&v.to_ne_bytes());
    }
    body.extend_from_slice(&4u16.to_ne_bytes()); // data length
    body.extend_from_slice(&0u16.to_ne_bytes()); // flags
    body.extend_from_slice(&op.to_ne_bytes());
    let msg = netlink::message(netlink::NLMSG_DONE, 0, &body);
    send(fd, &msg, SendFlags::empty())?;
    Ok(())
}

/// The kernel answers a subscription with an event of kind NONE carrying
/// an error number; it ignores subscribers outside the initial pid and user
/// namespaces, who would otherwise wait for events that never come.
fn wait_for_ack(fd: &OwnedFd) -> Result<(), String> {
    let deadline = Instant::now() + ACK_WITHIN;
    let mut buf = vec![0u8; 8192];
    while Instant::now() < deadline {
        let n = match netlink::read(fd, &mut buf) {
            Ok(Read::Data(n)) => n,
            Ok(_) => continue,
            Err(e) => return Err(format!("process connector: {e}")),
        };
        for (_, body) in netlink::messages(&buf[..n]) {
            if u32_at(body, CN_MSG_LEN) != PROC_EVENT_NONE {
                continue;
            }
            return match u32_at(body, DATA) {
                0 => Ok(()),
                errno => Err(format!(
                    "process connector refused the subscription: {} (needs CAP_NET_ADMIN)",
                    std::io::Error::from_raw_os_error(errno as i32)
                )),
            };
        }
    }
    Err(
        "the process connector did not acknowledge the subscription: the agent must run \
         in the host's pid and user namespaces (not in a container's)"
            .into(),
    )
}

/// A process's binary and command line, for the events after its exec.
#[derive(Clone)]
struct Known {
    path: Option<String>,
    cmdline: Option<String>,
}

struct Reader {
    hub: Arc<Events>,
    known: HashMap<i32, Known>,
    not_inet: NotInet,
    /// The kernel's ephemeral port range: a local port in it marks the
    /// connecting side.
    ephemeral: (u16, u16),
}

impl Reader {
    fn new(hub: Arc<Events>) -> Self {
        Self {
            hub,
            known: HashMap::new(),
            not_inet: NotInet::default(),
            ephemeral: sock_destroy::ephemeral_ports(),
        }
    }

    fn run(mut self, fd: &OwnedFd) {
        let hub = self.hub.clone();
        netlink::pump(&hub, NAME, fd, |_, body| self.event(body));
        let _ = control(fd, PROC_CN_MCAST_IGNORE);
    }

    fn event(&mut self, body: &[u8]) {
        if body.len() < DATA + 8 {
            return;
        }
        let what = u32_at(body, CN_MSG_LEN);
        let uptime = (u64_at(body, CN_MSG_LEN + 8) / 1_000_000_000) as i64;
        let word = |i: usize| u32_at(body, DATA + 4 * i) as i32;
        match what {
            PROC_EVENT_FORK => {
                let (parent, child_pid, child) = (word(1), word(2), word(3));
                if child_pid != child {
                    return; // a new thread, not a process
                }
                let known = self.known.get(&parent).cloned().unwrap_or(Known {
                    path: None,
                    cmdline: None,
                });
                let mut row = Row::empty(process_events::TABLE.columns);
                row.set("pid", i64::from(child))
                    .set("parent", i64::from(parent))
                    .set("syscall", "fork")
                    .set("uptime", uptime)
                    .set_opt("path", known.path.clone())
                    .set_opt("cmdline", known.cmdline.clone());
                self.remember(child, known);
                self.push(row);
            }
            PROC_EVENT_EXEC => {
                let pid = word(1);
                let e = exec_scan::scan(pid, &mut self.not_inet);
                for (fd, s) in &e.sockets {
                    self.socket_at_exec(pid, &e, *fd, s, uptime);
                }
                self.remember(
                    pid,
                    Known {
                        path: e.path.clone(),
                        cmdline: e.cmdline.clone(),
                    },
                );
                self.push(exec_row(pid, &e, uptime));
            }
            PROC_EVENT_EXIT => {
                let (pid, tgid) = (word(0), word(1));
                if pid != tgid {
                    return; // a thread ended
                }
                let known = self.known.remove(&tgid);
                let mut row = Row::empty(process_events::TABLE.columns);
                row.set("pid", i64::from(tgid))
                    .set("syscall", "exit")
                    .set("uptime", uptime);
                // Kernels since 4.18 also name the parent.
                if body.len() >= DATA + 24 {
                    row.set("parent", i64::from(word(5)));
                }
                if let Some(k) = known {
                    row.set_opt("path", k.path).set_opt("cmdline", k.cmdline);
                }
                self.push(row);
            }
            _ => {}
        }
    }

    fn remember(&mut self, pid: i32, known: Known) {
        if self.known.len() < KNOWN_MAX || self.known.contains_key(&pid) {
            self.known.insert(pid, known);
        }
    }

    fn push(&self, row: Row) {
        if let Some(s) = self.hub.source(NAME) {
            s.received.fetch_add(1, Ordering::Relaxed);
        }
        self.hub.push("process_events", row);
    }

    /// A connection the process holds on a standard stream when it starts.
    fn socket_at_exec(
        &self,
        pid: i32,
        e: &Exec,
        fd: u8,
        s: &crate::tables::net::sockets::Socket,
        uptime: i64,
    ) {
        let mut row = Row::empty(socket_events::TABLE.columns);
        row.set(
            "action",
            sock_destroy::direction(s.local_port, self.ephemeral),
        )
        .set("pid", i64::from(pid))
        .set_opt("path", e.path.clone())
        .set("fd", fd.to_string())
        .set_opt("auid", e.auid)
        .set("family", s.family)
        .set("protocol", s.protocol)
        .set("local_address", s.local_address.clone())
        .set("remote_address", s.remote_address.clone())
        .set("local_port", i64::from(s.local_port))
        .set("remote_port", i64::from(s.remote_port))
        .set("uptime", uptime)
        .set("success", 1)
        .set("status", "succeeded");
        self.hub.push("socket_events", row);
        self.hub.note_owner(
            s,
            Owner {
                pid,
                path: e.path.clone(),
            },
        );
    }
}

/// The `process_events` row of an exec.
fn exec_row(pid: i32, e: &Exec, uptime: i64) -> Row {
    let mut row = Row::empty(process_events::TABLE.columns);
    row.set("pid", i64::from(pid))
        .set("syscall", "execve")
        .set("uptime", uptime)
        .set_opt("path", e.path.clone())
        .set_opt("cmdline", e.cmdline.clone())
        .set_opt("cmdline_size", e.cmdline_size)
        .set_opt("env_count", e.env_count)
        .set_opt("env_size", e.env_size)
        .set_opt("cwd", e.cwd.clone())
        .set_opt("auid", e.auid)
        .set("parent", e.parent.unwrap_or(-1));
    if let Some([uid, euid, suid, fsuid]) = e.uids {
        row.set("uid", uid)
            .set("euid", euid)
            .set("suid", suid)
            .set("fsuid", fsuid);
    }
    if let Some([gid, egid, sgid, fsgid]) = e.gids {
        row.set("gid", gid)
            .set("egid", egid)
            .set("sgid", sgid)
            .set("fsgid", fsgid);
    }
    if let Some(f) = e.file {
        row.set("mode", format!("{:04o}", f.mode))
            .set("owner_uid", i64::from(f.uid))
            .set("owner_gid", i64::from(f.gid))
            .set("atime", f.atime)
            .set("mtime", f.mtime)
            .set("ctime", f.ctime)
            // Linux's stat has no birth time; statx may, on some filesystems.
            .set("btime", 0);
    }
    for (fd, s) in &e.sockets {
        let column = ["fd0_remote", "fd1_remote", "fd2_remote"][usize::from(*fd)];
        row.set(column, exec_scan::peer_text(s));
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::test_rows::{int, text};
    use crate::events::State;

    /// A connector message as the kernel lays it out.
    fn message(what: u32, words: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; CN_MSG_LEN];
        b.extend_from_slice(&what.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes()); // cpu
        b.extend_from_slice(&(5_000_000_000u64).to_ne_bytes()); // 5 s since boot
        for w in words {
            b.extend_from_slice(&w.to_ne_bytes());
        }
        b
    }

    fn hub() -> Arc<Events> {
        let hub = Events::new(&crate::config::EventsConfig::default());
        hub.set_state(NAME, State::Active);
        hub
    }

    fn rows(hub: &Events) -> Vec<Row> {
        let mut out = Vec::new();
        hub.scan("process_events", None, &mut out).unwrap();
        out
    }

    #[test]
    fn exec_fork_and_exit_become_rows_and_threads_do_not() {
        let hub = hub();
        let mut reader = Reader::new(hub.clone());
        let me = std::process::id();
        // Our own process stands in for the exec'd one: /proc has it.
        reader.event(&message(PROC_EVENT_EXEC, &[me, me]));
        reader.event(&message(PROC_EVENT_FORK, &[me, me, 4_000_001, 4_000_001]));
        // A thread: the child's pid is not its thread group.
        reader.event(&message(PROC_EVENT_FORK, &[me, me, 4_000_002, me]));
        reader.event(&message(
            PROC_EVENT_EXIT,
            &[4_000_001, 4_000_001, 0, 17, me, me],
        ));
        reader.event(&message(PROC_EVENT_EXIT, &[4_000_003, me, 0, 0]));
        let rows = rows(&hub);
        let what: Vec<_> = rows
            .iter()
            .map(|r| (text(r, "syscall").unwrap(), int(r, "pid").unwrap()))
            .collect();
        assert_eq!(
            what,
            [
                ("execve".to_string(), i64::from(me)),
                ("fork".to_string(), 4_000_001),
                ("exit".to_string(), 4_000_001),
            ]
        );
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let exe = exe.to_string_lossy();
        let exec = &rows[0];
        assert_eq!(text(exec, "path").as_deref(), Some(&*exe));
        assert!(text(exec, "cmdline").is_some_and(|c| !c.is_empty()));
        assert_eq!(int(exec, "uptime"), Some(5));
        assert!(text(exec, "mode").is_some_and(|m| m.len() == 4));
        assert_eq!(
            int(exec, "parent"),
            Some(i64::from(
                rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get())
            ))
        );
        // The fork and the exit carry the binary the parent ran.
        assert_eq!(text(&rows[1], "path").as_deref(), Some(&*exe));
        assert_eq!(int(&rows[1], "parent"), Some(i64::from(me)));
        assert_eq!(text(&rows[2], "path").as_deref(), Some(&*exe));
        assert_eq!(int(&rows[2], "parent"), Some(i64::from(me)));
        assert_eq!(
            hub.source(NAME).unwrap().received.load(Ordering::Relaxed),
            3
        );
    }

    #[test]
    fn a_process_started_now_is_reported_with_its_command_line() {
        let hub = Events::new(&crate::config::EventsConfig::default());
        if let Err(why) = start(hub.clone()) {
            panic!("the process connector needs root in the host's namespaces: {why}");
        }
        hub.set_state(NAME, State::Active);
        let marker = format!("sweep-proc-connector-test-{}", std::process::id());
        let status = std::process::Command::new("sh")
            .args(["-c", "sleep 0.2", &marker])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let found = loop {
            let seen = rows(&hub).into_iter().find(|r| {
                text(r, "syscall").as_deref() == Some("execve")
                    && text(r, "cmdline").is_some_and(|c| c.contains(&marker))
            });
            if let Some(r) = seen {
                break r;
            }
            assert!(Instant::now() < deadline, "no exec event for {marker}");
            std::thread::sleep(Duration::from_millis(20));
        };
        hub.stop();
        assert!(
            text(&found, "path").is_some_and(|p| p.ends_with("sh")),
            "{found:?}"
        );
        assert_eq!(int(&found, "parent"), Some(i64::from(std::process::id())));
    }
}
