//! The netlink plumbing the kernel sources share: a socket subscribed to
//! multicast groups, and the messages of one datagram. Parsed from bytes:
//! no unsafe code, no netlink crate.

use std::io;
use std::os::fd::OwnedFd;

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{
    bind, recv, socket_with, sockopt, AddressFamily, Protocol, RecvFlags, SocketFlags, SocketType,
};

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::warn;

use super::{Events, State, WAKE_EVERY};

/// The connector's netlink protocol, `NETLINK_CONNECTOR`.
pub const CONNECTOR: Protocol = rustix::net::netlink::CONNECTOR;

pub const HEADER_LEN: usize = 16;
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

/// The socket's receive buffer: room for bursts (a build starting hundreds
/// of processes) while the reader enriches the events before them.
const RECEIVE_BUFFER: usize = 8 << 20;

/// A netlink socket of `protocol` subscribed to the multicast `groups`
/// mask, whose reads wake every [`WAKE_EVERY`] so its thread can stop.
pub fn subscribe(protocol: Protocol, groups: u32) -> io::Result<OwnedFd> {
    let fd = socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(protocol),
    )?;
    // Forcing past rmem_max needs CAP_NET_ADMIN, which the sources need
    // anyway; without it the ordinary limit applies.
    if sockopt::set_socket_recv_buffer_size_force(&fd, RECEIVE_BUFFER).is_err() {
        let _ = sockopt::set_socket_recv_buffer_size(&fd, RECEIVE_BUFFER);
    }
    sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(WAKE_EVERY))?;
    bind(&fd, &SocketAddrNetlink::new(0, groups))?;
    Ok(fd)
}

/// What one read brought.
pub enum Read {
    /// A datagram of `n` bytes is in the buffer.
    Data(usize),
    /// Nothing within [`WAKE_EVERY`].
    Idle,
    /// The kernel dropped messages: the socket's buffer overflowed.
    Overflow,
}

pub fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Read> {
    match recv(fd, buf, RecvFlags::empty()) {
        Ok((n, _)) => Ok(Read::Data(n)),
        Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => Ok(Read::Idle),
        Err(e) if e == rustix::io::Errno::NOBUFS => Ok(Read::Overflow),
        Err(e) => Err(e.into()),
    }
}

/// Reads `fd` until the hub stops, handing each message's (type, body) to
/// `on_message`. The kernel's overflows are counted in the source's `lost`
/// and logged at most every 10 s; a failed read marks the source failed
/// and ends the loop.
pub fn pump(
    hub: &Events,
    source: &'static str,
    fd: &OwnedFd,
    mut on_message: impl FnMut(u16, &[u8]),
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut overflow_logged: Option<Instant> = None;
    while !hub.stopping() {
        match read(fd, &mut buf) {
            Ok(Read::Idle) => {}
            Ok(Read::Overflow) => {
                if let Some(s) = hub.source(source) {
                    s.lost.fetch_add(1, Ordering::Relaxed);
                }
                if overflow_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    overflow_logged = Some(Instant::now());
                    warn!(source, "the kernel dropped events: the reader fell behind");
                }
            }
            Ok(Read::Data(n)) => {
                for (kind, body) in messages(&buf[..n]) {
                    on_message(kind, body);
                }
            }
            Err(e) => {
                warn!(source, error = %e, "event source stopped");
                hub.set_state(source, State::Failed(format!("reading stopped: {e}")));
                return;
            }
        }
    }
}

/// The (type, body) of each message in a datagram; a truncated message ends
/// the walk.
pub fn messages(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < HEADER_LEN {
            return None;
        }
        let len = u32_at(data, 0) as usize;
        let kind = u16_at(data, 4);
        if len < HEADER_LEN || len > data.len() {
            return None;
        }
        let body = &data[HEADER_LEN..len];
        data = &data[align(len).min(data.len())..];
        Some((kind, body))
    })
}

/// A netlink message: header (with the given type and flags) and body.
pub fn message(kind: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let len = HEADER_LEN + body.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's to fill
    msg.extend_from_slice(body);
    msg
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

pub fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_ne_bytes([s[0], s[1]]))
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

pub fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| {
        let mut w = [0; 8];
        w.copy_from_slice(s);
        u64::from_ne_bytes(w)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_walks_aligned_messages_and_stops_at_a_truncated_one() {
        let mut data = message(20, 0, &[1, 2, 3]);
        data.resize(20, 0); // padded to four bytes
        data.extend(message(3, 0, &[9; 4]));
        let mut cut = message(20, 0, &[7; 8]);
        cut.truncate(18);
        data.extend(cut);
        let got: Vec<_> = messages(&data).collect();
        assert_eq!(got, [(20, &[1u8, 2, 3][..]), (3, &[9; 4][..])]);
    }
}
