//! Dumps of the kernel's links, addresses and routes over an rtnetlink socket,
//! the interface `getifaddrs` and osquery's `routes` use. /proc has no
//! per-interface IPv4 address list, so this is the one complete source.
//! Messages are parsed from bytes: no unsafe code, no netlink crate.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustix::net::{
    recv, send, socket_with, sockopt, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType,
};

pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

pub const IFF_BROADCAST: u32 = 0x2;

const NLMSG_HDR_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_STATS: u16 = 7;
const IFLA_STATS64: u16 = 23;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_BROADCAST: u16 = 4;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_METRICS: u16 = 8;
const RTAX_MTU: u16 = 2;
const RTAX_HOPLIMIT: u16 = 10;

/// A dump that stalls longer than this is abandoned (osquery waits 5 s too).
const TIMEOUT: Duration = Duration::from_secs(5);
/// Larger than any dump datagram the kernel sends (at most 32 KiB).
const RECV_BUFFER: usize = 64 * 1024;

/// One network interface (`RTM_NEWLINK`).
#[derive(Debug, Clone, Default)]
pub struct Link {
    pub index: u32,
    /// ARPHRD_* hardware type.
    pub hw_type: u16,
    /// IFF_* flags as the kernel reports them (running, lower-up included).
    pub flags: u32,
    pub name: String,
    pub mtu: Option<u32>,
    pub hw_address: Option<Vec<u8>>,
    pub stats: Option<LinkStats>,
}

/// The leading counters of `rtnl_link_stats64`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub collisions: u64,
}

/// One interface address (`RTM_NEWADDR`).
#[derive(Debug, Clone, Default)]
pub struct Address {
    pub family: u8,
    pub prefix_len: u8,
    pub index: u32,
    /// IFA_ADDRESS: the address, or the peer's on a point-to-point link.
    pub address: Option<IpAddr>,
    /// IFA_LOCAL: the local address, when the kernel sends it (IPv4, peers).
    pub local: Option<IpAddr>,
    pub broadcast: Option<IpAddr>,
    /// IFA_LABEL: the IPv4 alias name (`eth0:1`).
    pub label: Option<String>,
}

/// One route of any routing table (`RTM_NEWROUTE`).
#[derive(Debug, Clone, Default)]
pub struct Route {
    pub family: u8,
    pub dst_len: u8,
    /// RTN_* route type.
    pub route_type: u8,
    pub flags: u32,
    pub destination: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
    pub prefsrc: Option<IpAddr>,
    pub oif: Option<u32>,
    pub priority: Option<u32>,
    pub mtu: Option<u32>,
    pub hoplimit: Option<u32>,
}

pub fn links() -> io::Result<Vec<Link>> {
    // struct ifinfomsg, all zero: every family, every interface.
    let msgs = dump(RTM_GETLINK, &[0u8; 16])?;
    Ok(msgs
        .iter()
        .filter(|(kind, body)| *kind == RTM_NEWLINK && body.len() >= 16)
        .map(|(_, body)| parse_link(body))
        .collect())
}

pub fn addresses() -> io::Result<Vec<Address>> {
    // struct ifaddrmsg, all zero.
    let msgs = dump(RTM_GETADDR, &[0u8; 8])?;
    Ok(msgs
        .iter()
        .filter(|(kind, body)| *kind == RTM_NEWADDR && body.len() >= 8)
        .map(|(_, body)| parse_address(body))
        .collect())
}

pub fn routes() -> io::Result<Vec<Route>> {
    // struct rtmsg, all zero: every family and table, as osquery asks.
    let msgs = dump(RTM_GETROUTE, &[0u8; 12])?;
    Ok(msgs
        .iter()
        .filter(|(kind, body)| *kind == RTM_NEWROUTE && body.len() >= 12)
        .map(|(_, body)| parse_route(body))
        .collect())
}

fn parse_link(body: &[u8]) -> Link {
    let mut link = Link {
        hw_type: u16_at(body, 2),
        index: u32_at(body, 4),
        flags: u32_at(body, 8),
        ..Link::default()
    };
    let mut stats32 = None;
    for (kind, data) in attributes(&body[16..]) {
        match kind {
            IFLA_IFNAME => link.name = c_string(data),
            IFLA_MTU if data.len() >= 4 => link.mtu = Some(u32_at(data, 0)),
            IFLA_ADDRESS => link.hw_address = Some(data.to_vec()),
            IFLA_STATS64 if data.len() >= 80 => {
                link.stats = Some(stats(|i| {
                    u64::from_ne_bytes(data[i * 8..i * 8 + 8].try_into().unwrap())
                }))
            }
            IFLA_STATS if data.len() >= 40 => {
                stats32 = Some(stats(|i| u64::from(u32_at(data, i * 4))))
            }
            _ => {}
        }
    }
    // Kernels always send the 64-bit counters; the 32-bit ones are a fallback.
    link.stats = link.stats.or(stats32);
    link
}

/// Counters in `rtnl_link_stats{,64}` order; `collisions` is field 9.
fn stats(field: impl Fn(usize) -> u64) -> LinkStats {
    LinkStats {
        rx_packets: field(0),
        tx_packets: field(1),
        rx_bytes: field(2),
        tx_bytes: field(3),
        rx_errors: field(4),
        tx_errors: field(5),
        rx_dropped: field(6),
        tx_dropped: field(7),
        collisions: field(9),
    }
}

fn parse_address(body: &[u8]) -> Address {
    let mut addr = Address {
        family: body[0],
        prefix_len: body[1],
        index: u32_at(body, 4),
        ..Address::default()
    };
    for (kind, data) in attributes(&body[8..]) {
        match kind {
            IFA_ADDRESS => addr.address = ip(data),
            IFA_LOCAL => addr.local = ip(data),
            IFA_BROADCAST => addr.broadcast = ip(data),
            IFA_LABEL => addr.label = Some(c_string(data)),
            _ => {}
        }
    }
    addr
}

fn parse_route(body: &[u8]) -> Route {
    let mut route = Route {
        family: body[0],
        dst_len: body[1],
        route_type: body[7],
        flags: u32_at(body, 8),
        ..Route::default()
    };
    let u32_of = |data: &[u8]| (data.len() >= 4).then(|| u32_at(data, 0));
    for (kind, data) in attributes(&body[12..]) {
        match kind {
            RTA_DST => route.destination = ip(data),
            RTA_GATEWAY => route.gateway = ip(data),
            RTA_PREFSRC => route.prefsrc = ip(data),
            RTA_OIF => route.oif = u32_of(data),
            RTA_PRIORITY => route.priority = u32_of(data),
            RTA_METRICS => {
                for (metric, value) in attributes(data) {
                    match metric {
                        RTAX_MTU => route.mtu = u32_of(value),
                        RTAX_HOPLIMIT => route.hoplimit = u32_of(value),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    route
}

/// Sends one dump request and collects the replies' (type, payload) until
/// NLMSG_DONE.
fn dump(request: u16, header: &[u8]) -> io::Result<Vec<(u16, Vec<u8>)>> {
    static SEQ: AtomicU32 = AtomicU32::new(1);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let fd: OwnedFd = socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None, // NETLINK_ROUTE
    )?;
    sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(TIMEOUT))?;

    let len = NLMSG_HDR_LEN + header.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&request.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    msg.extend_from_slice(header);
    send(&fd, &msg, SendFlags::empty())?;

    let mut out = Vec::new();
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let (n, full) = recv(&fd, &mut buf[..], RecvFlags::TRUNC)?;
        if full > n {
            return Err(io::Error::other(
                "netlink reply larger than the receive buffer",
            ));
        }
        if n == 0 {
            return Err(io::Error::other("netlink socket closed mid-dump"));
        }
        let mut data = &buf[..n];
        while data.len() >= NLMSG_HDR_LEN {
            let msg_len = u32_at(data, 0) as usize;
            let kind = u16_at(data, 4);
            let msg_seq = u32_at(data, 8);
            if msg_len < NLMSG_HDR_LEN || msg_len > data.len() {
                return Err(io::Error::other("malformed netlink message"));
            }
            let body = &data[NLMSG_HDR_LEN..msg_len];
            data = &data[align(msg_len).min(data.len())..];
            if msg_seq != seq {
                continue;
            }
            match kind {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let errno = if body.len() >= 4 {
                        i32::from_ne_bytes(body[..4].try_into().unwrap())
                    } else {
                        0
                    };
                    return Err(if errno < 0 {
                        io::Error::from_raw_os_error(-errno)
                    } else {
                        io::Error::other("unexpected netlink acknowledgement")
                    });
                }
                _ => out.push((kind, body.to_vec())),
            }
        }
    }
}

/// The (type, payload) pairs of a run of `struct rtattr`/`nlattr`.
fn attributes(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = u16_at(data, 0) as usize;
        // The top two bits are the nested and byte-order markers.
        let kind = u16_at(data, 2) & 0x3fff;
        if len < 4 || len > data.len() {
            break;
        }
        out.push((kind, &data[4..len]));
        data = &data[align(len).min(data.len())..];
    }
    out
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

fn u16_at(data: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([data[at], data[at + 1]])
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(data[at..at + 4].try_into().unwrap())
}

fn ip(data: &[u8]) -> Option<IpAddr> {
    match data.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            data[0], data[1], data[2], data[3],
        ))),
        16 => {
            let octets: [u8; 16] = data.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

fn c_string(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_attribute_runs() {
        // IFLA_MTU = 1500, then IFLA_IFNAME "lo\0" padded to 4 bytes.
        let mut run = Vec::new();
        run.extend_from_slice(&8u16.to_ne_bytes());
        run.extend_from_slice(&IFLA_MTU.to_ne_bytes());
        run.extend_from_slice(&1500u32.to_ne_bytes());
        run.extend_from_slice(&7u16.to_ne_bytes());
        run.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        run.extend_from_slice(b"lo\0\0");
        let attrs = attributes(&run);
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0], (IFLA_MTU, &1500u32.to_ne_bytes()[..]));
        assert_eq!(c_string(attrs[1].1), "lo");
    }

    #[test]
    fn link_dump_matches_sysfs() {
        let links = links().unwrap();
        let mut names: Vec<String> = links.iter().map(|l| l.name.clone()).collect();
        names.sort();
        let mut sysfs: Vec<String> = std::fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            // bonding_masters is a file there, not an interface.
            .filter(|n| std::path::Path::new(&format!("/sys/class/net/{n}/ifindex")).exists())
            .collect();
        sysfs.sort();
        assert_eq!(names, sysfs);
        for link in &links {
            let ifindex =
                std::fs::read_to_string(format!("/sys/class/net/{}/ifindex", link.name)).unwrap();
            assert_eq!(
                ifindex.trim().parse::<u32>().unwrap(),
                link.index,
                "{}",
                link.name
            );
        }
    }
}
