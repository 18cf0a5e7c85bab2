//! The socket inventory behind `process_open_sockets` and `listening_ports`,
//! gathered as osquery does: the socket inodes each process holds, from the
//! `socket:[inode]` links in /proc/<pid>/fd, joined with the sockets of each
//! network namespace, read once per namespace from /proc/<pid>/net/*.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;

use super::ipv6_text;
use crate::error::AgentError;
use crate::tables::util::{pids, read_text};
use crate::tables::ScanContext;

pub const AF_UNIX: i64 = 1;
pub const AF_INET: i64 = 2;
pub const AF_INET6: i64 = 10;
pub const AF_PACKET: i64 = 17;

/// The /proc/net files of the inet families, with their IPPROTO_* number,
/// in osquery's order.
const INET_FILES: &[(i64, &str)] = &[
    (1, "icmp"),
    (6, "tcp"),
    (17, "udp"),
    (136, "udplite"),
    (255, "raw"),
];

/// TCP states by their kernel number, named as osquery names them.
const TCP_STATES: &[&str] = &[
    "UNKNOWN",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSED",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
];

/// The process holding a socket open, and under which descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub pid: i32,
    pub fd: i64,
}

/// One socket of one network namespace.
#[derive(Debug, Clone, Default)]
pub struct Socket {
    pub inode: u64,
    pub family: i64,
    pub protocol: i64,
    pub local_address: String,
    pub local_port: u16,
    pub remote_address: String,
    pub remote_port: u16,
    /// A unix socket's bound path (`@name` for abstract ones), else empty.
    pub path: String,
    /// TCP state name; empty for other inet protocols and unix, `NONE` for packet.
    pub state: String,
    pub net_ns: u64,
    pub owner: Option<Owner>,
}

/// Every socket of the namespaces the processes in `only_pids` (or all
/// processes) live in. With `only_pids`, only those processes' sockets are
/// returned; otherwise sockets nobody holds (or we cannot see) come without an
/// owner. `owners` says whether to walk fds at all; a pid filter implies it.
/// A pid of -1 in `only_pids` means "no filter", as in osquery.
pub fn inventory(
    ctx: &ScanContext<'_>,
    only_pids: Option<Vec<i64>>,
    owners: bool,
) -> Result<Vec<Socket>, AgentError> {
    let filter = only_pids.filter(|p| !p.contains(&-1));
    let filtering = filter.is_some();
    let mut holders: HashMap<u64, Owner> = HashMap::new();
    // Namespaces in pid order, told apart by the inode of their /proc net
    // files: unlike the ns link, those can be stat'ed for every process.
    let mut spaces: Vec<Namespace> = Vec::new();
    let mut by_key: HashMap<(u64, u64), usize> = HashMap::new();
    let mut list = pids(filter);
    list.sort_unstable();
    for pid in list {
        ctx.check()?;
        if owners || filtering {
            socket_fds(pid, &mut holders);
        }
        let Some(key) = proc_net_key(pid) else {
            continue;
        };
        let i = *by_key.entry(key).or_insert_with(|| {
            spaces.push(Namespace::default());
            spaces.len() - 1
        });
        let space = &mut spaces[i];
        space.pids.push(pid);
        if space.inode.is_none() {
            space.inode = net_namespace(pid);
        }
    }
    let mut sockets = Vec::new();
    for space in spaces {
        ctx.check()?;
        // A namespace no process lets us name (ns links need ptrace access)
        // is reported as 0, like osquery does. If a process exits, the next
        // one in the namespace is read instead.
        let ns = space.inode.unwrap_or(0);
        // Our own process first when it is in the namespace: it cannot exit
        // while we read, as another (a short-lived child) can.
        let me = std::process::id() as i32;
        let mut pids = space.pids;
        if let Some(at) = pids.iter().position(|&p| p == me) {
            pids.swap(0, at);
        }
        for pid in pids {
            if read_namespace(pid, ns, &mut sockets) {
                break;
            }
        }
    }
    let mut out = Vec::with_capacity(sockets.len());
    for mut socket in sockets {
        socket.owner = holders.get(&socket.inode).copied();
        if filtering && socket.owner.is_none() {
            continue;
        }
        out.push(socket);
    }
    Ok(out)
}

#[derive(Default)]
struct Namespace {
    /// The namespace's inode, once some process's ns link could be read.
    inode: Option<u64>,
    /// Processes living in it, to read its sockets through.
    pids: Vec<i32>,
}

/// Identifies a process's network namespace without ptrace rights: every
/// namespace has its own /proc/net/unix entry, with its own inode.
fn proc_net_key(pid: i32) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(format!("/proc/{pid}/net/unix")).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The inode of a process's network namespace, from /proc/<pid>/ns/net.
pub fn net_namespace(pid: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// Records which of `pid`'s descriptors are sockets. A socket shared by
/// several processes is credited to the lowest pid, and its lowest fd there.
fn socket_fds(pid: i32, holders: &mut HashMap<u64, Owner>) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return;
    };
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Some(inode) = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        let owner = Owner { pid, fd };
        holders
            .entry(inode)
            .and_modify(|o| {
                if o.pid == pid && fd < o.fd {
                    *o = owner;
                }
            })
            .or_insert(owner);
    }
}

/// Reads every socket of `pid`'s namespace. False when the process was gone
/// before the last file was read (a file read then is missing, not empty),
/// so another process of the namespace is tried and nothing half-read is
/// kept.
fn read_namespace(pid: i32, ns: u64, out: &mut Vec<Socket>) -> bool {
    let mut read = Vec::new();
    let any = read_namespace_files(pid, ns, &mut read);
    // Still there after the last read: it was there for all of them.
    if !any || std::fs::metadata(format!("/proc/{pid}/net")).is_err() {
        return false;
    }
    out.append(&mut read);
    true
}

fn read_namespace_files(pid: i32, ns: u64, out: &mut Vec<Socket>) -> bool {
    let base = format!("/proc/{pid}/net");
    let mut any = false;
    for &(protocol, name) in INET_FILES {
        for (family, suffix) in [(AF_INET, ""), (AF_INET6, "6")] {
            if let Some(text) = read_text(format!("{base}/{name}{suffix}")) {
                any = true;
                parse_inet(&text, family, protocol, ns, out);
            }
        }
    }
    if let Some(text) = read_text(format!("{base}/unix")) {
        any = true;
        parse_unix(&text, ns, out);
    }
    if let Some(text) = read_text(format!("{base}/packet")) {
        any = true;
        parse_packet(&text, ns, out);
    }
    any
}

/// The TCP and UDP sockets among `inodes`, as the network namespace of
/// `pid` lists them (the process event sources look up a new process's
/// socket descriptors with this).
pub fn inet_by_inode(pid: i32, inodes: &[u64]) -> Vec<Socket> {
    let mut out = Vec::new();
    for (protocol, name) in [(6, "tcp"), (17, "udp")] {
        for (family, suffix) in [(AF_INET, ""), (AF_INET6, "6")] {
            if out.len() == inodes.len() {
                return out;
            }
            let Some(text) = read_text(format!("/proc/{pid}/net/{name}{suffix}")) else {
                continue;
            };
            let mut all = Vec::new();
            parse_inet(&text, family, protocol, 0, &mut all);
            out.extend(all.into_iter().filter(|s| inodes.contains(&s.inode)));
        }
    }
    out
}

/// /proc/net/{tcp,udp,raw,…}{,6}: `sl local rem st … uid timeout inode …`,
/// addresses as hex of the in-memory bytes, ports as hex numbers.
fn parse_inet(text: &str, family: i64, protocol: i64, ns: u64, out: &mut Vec<Socket>) {
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 10 {
            continue;
        }
        let (Some((local, local_port)), Some((remote, remote_port))) =
            (fields[1].split_once(':'), fields[2].split_once(':'))
        else {
            continue;
        };
        let Ok(inode) = fields[9].parse::<u64>() else {
            continue;
        };
        let state = if protocol == 6 {
            u8::from_str_radix(fields[3], 16)
                .ok()
                .and_then(|s| TCP_STATES.get(usize::from(s)).filter(|_| s != 0))
                .copied()
                .unwrap_or("UNKNOWN")
        } else {
            ""
        };
        out.push(Socket {
            inode,
            family,
            protocol,
            local_address: hex_address(local, family),
            local_port: u16::from_str_radix(local_port, 16).unwrap_or(0),
            remote_address: hex_address(remote, family),
            remote_port: u16::from_str_radix(remote_port, 16).unwrap_or(0),
            state: state.to_string(),
            net_ns: ns,
            ..Socket::default()
        });
    }
}

/// The kernel prints an address as 32-bit words in host byte order.
fn hex_address(hex: &str, family: i64) -> String {
    let word = |i: usize| {
        hex.get(i * 8..i * 8 + 8)
            .and_then(|w| u32::from_str_radix(w, 16).ok())
    };
    match (family, hex.len()) {
        (AF_INET, 8) => word(0).map(|w| Ipv4Addr::from(w.to_ne_bytes()).to_string()),
        (AF_INET6, 32) => (|| {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?.to_ne_bytes());
            }
            Some(ipv6_text(Ipv6Addr::from(bytes)))
        })(),
        _ => None,
    }
    .unwrap_or_default()
}

/// /proc/net/unix: `Num RefCount Protocol Flags Type St Inode [Path]`.
fn parse_unix(text: &str, ns: u64, out: &mut Vec<Socket>) {
    for line in text.lines().skip(1) {
        let mut fields = Vec::with_capacity(7);
        let mut rest = line;
        for _ in 0..7 {
            rest = rest.trim_start();
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(&rest[..end]);
            rest = &rest[end..];
        }
        let Ok(inode) = fields[6].parse::<u64>() else {
            continue;
        };
        // One space separates the inode from the path, which may hold spaces.
        let path = rest.strip_prefix(' ').unwrap_or(rest);
        out.push(Socket {
            inode,
            family: AF_UNIX,
            protocol: i64::from_str_radix(fields[2], 16).unwrap_or(0),
            path: path.to_string(),
            net_ns: ns,
            ..Socket::default()
        });
    }
}

/// /proc/net/packet: `sk RefCnt Type Proto Iface R Rmem User Inode`.
fn parse_packet(text: &str, ns: u64, out: &mut Vec<Socket>) {
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 9 {
            continue;
        }
        let Ok(inode) = fields[8].parse::<u64>() else {
            continue;
        };
        out.push(Socket {
            inode,
            family: AF_PACKET,
            protocol: i64::from(u16::from_str_radix(fields[3], 16).unwrap_or(0)),
            state: "NONE".to_string(),
            net_ns: ns,
            ..Socket::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The fixture's hex words are little-endian, as on x86 and arm64.
    #[cfg(target_endian = "little")]
    #[test]
    fn parses_proc_net_lines() {
        let mut out = Vec::new();
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n";
        parse_inet(tcp, AF_INET, 6, 7, &mut out);
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000001000000:0016 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1\n";
        parse_inet(tcp6, AF_INET6, 6, 7, &mut out);
        let unix = "Num       RefCount Protocol Flags    Type St Inode Path\n0000000000000000: 00000002 00000000 00010000 0001 01 12345 /run/a b.sock\n0000000000000000: 00000003 00000000 00000000 0001 03   159\n";
        parse_unix(unix, 7, &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(
            (
                out[0].local_address.as_str(),
                out[0].local_port,
                out[0].state.as_str(),
                out[0].inode
            ),
            ("127.0.0.1", 8080, "LISTEN", 4242)
        );
        assert_eq!(
            (out[1].local_address.as_str(), out[1].local_port),
            ("::1", 22)
        );
        assert_eq!(
            (out[1].remote_address.as_str(), out[1].state.as_str()),
            ("::ffff:127.0.0.1", "ESTABLISHED")
        );
        assert_eq!(
            (out[2].path.as_str(), out[2].inode, out[2].family),
            ("/run/a b.sock", 12345, AF_UNIX)
        );
        assert_eq!((out[3].path.as_str(), out[3].inode), ("", 159));
    }
}

/// Sockets a test opens itself, for the socket tables' tests to look for.
#[cfg(test)]
pub mod fixture {
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::UnixListener;

    pub struct Opened {
        pub listener: TcpListener,
        pub client: TcpStream,
        pub server: TcpStream,
        pub udp: UdpSocket,
        /// An IPv6 listener on ::1, when the host has IPv6.
        pub listener6: Option<TcpListener>,
        pub unix: UnixListener,
        pub unix_path: String,
        _dir: tempfile::TempDir,
    }

    impl Opened {
        pub fn new() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, _) = listener.accept().unwrap();
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let listener6 = TcpListener::bind("[::1]:0").ok();
            let dir = tempfile::tempdir().unwrap();
            let unix_path = dir.path().join("sweep.sock").to_string_lossy().into_owned();
            let unix = UnixListener::bind(&unix_path).unwrap();
            Self {
                listener,
                client,
                server,
                udp,
                listener6,
                unix,
                unix_path,
                _dir: dir,
            }
        }
    }

    /// The socket inode behind a descriptor, from fstat through /proc.
    pub fn inode(fd: &impl AsRawFd) -> i64 {
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        std::fs::metadata(path).unwrap().ino() as i64
    }

    pub fn fd(fd: &impl AsRawFd) -> i64 {
        i64::from(fd.as_raw_fd())
    }

    /// This process's network namespace inode, from stat of /proc/self/ns/net.
    pub fn net_namespace() -> String {
        std::fs::metadata("/proc/self/ns/net")
            .unwrap()
            .ino()
            .to_string()
    }
}
