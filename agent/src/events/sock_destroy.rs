//! `socket_events` from sock_diag's destroy notifications: the kernel tells
//! members of these netlink groups about every TCP and UDP socket it frees,
//! with its addresses. Connections come out when they end, however short
//! they were; the process is named when an exec scan saw the connection on
//! its standard streams ([`Owners`]), else `pid` is -1 (the kernel does not
//! say, and the process has usually exited by then). Needs CAP_NET_ADMIN in
//! the host's network namespace.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sweep_proto::schema::socket_events;

use super::netlink::{self, u16_at};
use super::Events;
use crate::tables::net::ip_text;
use crate::tables::net::sockets::Socket;
use crate::tables::Row;

pub const NAME: &str = "sock_diag";

/// SKNLGRP_INET_TCP_DESTROY, _INET_UDP_, _INET6_TCP_, _INET6_UDP_ (1-4).
const GROUPS: u32 = 0b1111;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `struct inet_diag_msg`.
const DIAG_MSG_LEN: usize = 72;
const INET_DIAG_PROTOCOL: u16 = 10;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Most connections remembered with the process seen holding them.
const OWNERS_MAX: usize = 16_384;

/// The process an exec scan saw holding a connection.
#[derive(Debug, Clone)]
pub struct Owner {
    pub pid: i32,
    pub path: Option<String>,
}

/// (local address, local port, remote address, remote port) as text and
/// numbers, the key both sources can build.
type Key = (String, u16, String, u16);

/// Connections seen on processes' standard streams at exec, by addresses,
/// until they end.
#[derive(Debug, Default)]
pub struct Owners(HashMap<Key, Owner>);

impl Owners {
    pub fn note(&mut self, s: &Socket, owner: Owner) {
        if self.0.len() >= OWNERS_MAX {
            self.0.clear();
        }
        self.0.insert(key(s), owner);
    }

    pub fn take(&mut self, s: &Socket) -> Option<Owner> {
        self.0.remove(&key(s))
    }
}

fn key(s: &Socket) -> Key {
    (
        s.local_address.clone(),
        s.local_port,
        s.remote_address.clone(),
        s.remote_port,
    )
}

/// Subscribes and starts the reading thread; an error says why the host
/// cannot provide the events.
pub fn start(hub: Arc<Events>) -> Result<(), String> {
    let fd = netlink::subscribe(rustix::net::netlink::SOCK_DIAG, GROUPS).map_err(|e| {
        format!(
            "sock_diag destroy notifications: {e} (needs root or CAP_NET_ADMIN in the host's \
             network namespace, and a kernel with CONFIG_INET_DIAG)"
        )
    })?;
    std::thread::Builder::new()
        .name("events-sock".into())
        .spawn(move || run(&hub, &fd))
        .map_err(|e| format!("starting the sock_diag thread: {e}"))?;
    Ok(())
}

fn run(hub: &Events, fd: &OwnedFd) {
    let ephemeral = ephemeral_ports();
    let source = hub.source(NAME).cloned();
    netlink::pump(hub, NAME, fd, |kind, body| {
        if kind != SOCK_DIAG_BY_FAMILY {
            return;
        }
        let Some(s) = parse(body) else { return };
        // Listeners and unconnected sockets had no peer.
        if s.remote_port == 0 {
            return;
        }
        if let Some(src) = &source {
            src.received.fetch_add(1, Ordering::Relaxed);
        }
        let owner = hub.take_owner(&s);
        hub.push("socket_events", closed_row(&s, owner, ephemeral));
    });
}

/// A destroyed socket's addresses and protocol, from an `inet_diag_msg` and
/// its attributes.
fn parse(body: &[u8]) -> Option<Socket> {
    if body.len() < DIAG_MSG_LEN {
        return None;
    }
    let family = body[0];
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    let addr = |at: usize| -> Option<IpAddr> {
        match family {
            AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
                body[at],
                body[at + 1],
                body[at + 2],
                body[at + 3],
            ))),
            AF_INET6 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(&body[at..at + 16]);
                Some(IpAddr::V6(Ipv6Addr::from(b)))
            }
            _ => None,
        }
    };
    let (local, remote) = (addr(8)?, addr(24)?);
    let mut protocol = 0;
    let mut attrs = &body[DIAG_MSG_LEN..];
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0));
        let kind = u16_at(attrs, 2);
        if len < 4 || len > attrs.len() {
            break;
        }
        if kind == INET_DIAG_PROTOCOL && len >= 5 {
            protocol = i64::from(attrs[4]);
        }
        attrs = &attrs[((len + 3) & !3).min(attrs.len())..];
    }
    Some(Socket {
        inode: 0,
        family: i64::from(family),
        protocol,
        local_address: ip_text(local),
        local_port: port(4),
        remote_address: ip_text(remote),
        remote_port: port(6),
        ..Socket::default()
    })
}

fn closed_row(s: &Socket, owner: Option<Owner>, ephemeral: (u16, u16)) -> Row {
    let mut row = Row::empty(socket_events::TABLE.columns);
    row.set("action", direction(s.local_port, ephemeral))
        .set("pid", owner.as_ref().map_or(-1, |o| i64::from(o.pid)))
        .set_opt("path", owner.and_then(|o| o.path))
        .set("family", s.family)
        .set("protocol", s.protocol)
        .set("local_address", s.local_address.clone())
        .set("remote_address", s.remote_address.clone())
        .set("local_port", i64::from(s.local_port))
        .set("remote_port", i64::from(s.remote_port))
        .set("uptime", uptime())
        .set("success", 1)
        // osquery's statuses say how a call went; this row says the
        // connection ended.
        .set("status", "closed");
    row
}

/// `connect` when the local port is one the kernel hands to connecting
/// sockets, else `accept`.
pub fn direction(local_port: u16, ephemeral: (u16, u16)) -> &'static str {
    if (ephemeral.0..=ephemeral.1).contains(&local_port) {
        "connect"
    } else {
        "accept"
    }
}

/// The kernel's ephemeral port range (Linux's default if unreadable).
pub fn ephemeral_ports() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

fn uptime() -> i64 {
    rustix::system::sysinfo().uptime
}

#[cfg(test)]
mod tests {
    use crate::events::test_rows::{int, text};
    use std::net::{TcpListener, TcpStream};

    use std::time::{Duration, Instant};

    use super::*;
    use crate::events::State;

    #[test]
    fn a_short_connection_is_reported_when_it_ends() {
        let hub = Events::new(&crate::config::EventsConfig::default());
        if let Err(why) = start(hub.clone()) {
            panic!("sock_diag needs root in the host's network namespace: {why}");
        }
        hub.set_state(NAME, State::Active);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let client_port = client.local_addr().unwrap().port();
        let (served, _) = listener.accept().unwrap();
        drop(client);
        drop(served);
        let deadline = Instant::now() + Duration::from_secs(10);
        let row = loop {
            let mut out = Vec::new();
            hub.scan("socket_events", None, &mut out).unwrap();
            if let Some(r) = out.into_iter().find(|r| {
                int(r, "remote_port") == Some(i64::from(port))
                    && int(r, "local_port") == Some(i64::from(client_port))
            }) {
                break r;
            }
            assert!(
                Instant::now() < deadline,
                "no destroy event for port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        hub.stop();
        assert_eq!(text(&row, "remote_address").as_deref(), Some("127.0.0.1"));
        assert_eq!(text(&row, "status").as_deref(), Some("closed"));
        assert_eq!(int(&row, "protocol"), Some(6));
        assert_eq!(int(&row, "family"), Some(2));
        assert_eq!(int(&row, "pid"), Some(-1));
    }

    #[test]
    fn the_ephemeral_range_tells_connect_from_accept() {
        assert_eq!(direction(40000, (32768, 60999)), "connect");
        assert_eq!(direction(443, (32768, 60999)), "accept");
    }
}
