//! `listening_ports`: the sockets of `process_open_sockets` that wait for
//! peers, by osquery's rule: inet sockets without a remote port (TCP in
//! LISTEN, bound UDP and raw sockets), unix sockets with a path, and packet
//! sockets. pid and fd are -1 when no visible process holds the socket.

use super::net::sockets::{inventory, Socket, AF_INET, AF_INET6, AF_UNIX};
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::listening_ports::TABLE as SCHEMA;

pub struct ListeningPorts;

impl Table for ListeningPorts {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let owners = ctx.any_used(&["pid", "fd"]);
        for socket in inventory(ctx, None, owners)? {
            if listens(&socket) {
                out.push(port_row(ctx, &socket));
            }
        }
        Ok(())
    }
}

fn listens(s: &Socket) -> bool {
    match s.family {
        // Anonymous unix sockets (socketpairs, accepted-side peers) are skipped.
        AF_UNIX => !s.path.is_empty(),
        AF_INET | AF_INET6 => s.remote_port == 0,
        _ => true,
    }
}

fn port_row(ctx: &ScanContext<'_>, s: &Socket) -> Row {
    let mut row = ctx.row();
    row.set("pid", s.owner.map_or(-1, |o| i64::from(o.pid)))
        .set("fd", s.owner.map_or(-1, |o| o.fd))
        .set("protocol", s.protocol)
        .set("family", s.family)
        .set("net_namespace", s.net_ns.to_string());
    if s.family == AF_UNIX {
        // osquery reports unix sockets with port 0 and socket 0.
        row.set("port", 0i64)
            .set("path", &s.path)
            .set("socket", 0i64);
    } else {
        row.set("address", &s.local_address)
            .set("port", s.local_port)
            .set("socket", s.inode);
    }
    row
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::net::sockets::fixture::{fd, inode, net_namespace, Opened};
    use crate::tables::{IntoValue, TableEnv};

    fn scan() -> Vec<Row> {
        crate::tables::testing::scan(&ListeningPorts, &TableEnv::default())
    }

    fn find<'r>(rows: &'r [Row], col: &str, value: Value) -> Option<&'r Row> {
        rows.iter().find(|r| r.get(col) == Some(&value))
    }

    #[test]
    fn lists_own_listeners_not_connections() {
        let s = Opened::new();
        let rows = scan();
        let me = Value::Integer(i64::from(std::process::id()));
        let ns = Value::Text(net_namespace());

        let port = i64::from(s.listener.local_addr().unwrap().port());
        let tcp = find(&rows, "socket", inode(&s.listener).into()).expect("TCP listener");
        assert_eq!(tcp.get("pid"), Some(&me));
        assert_eq!(tcp.get("fd"), Some(&fd(&s.listener).into()));
        assert_eq!(tcp.get("port"), Some(&port.into()));
        assert_eq!(tcp.get("address"), Some(&"127.0.0.1".into_value()));
        assert_eq!(
            (tcp.get("family"), tcp.get("protocol")),
            (Some(&2.into()), Some(&6.into()))
        );
        assert_eq!(tcp.get("net_namespace"), Some(&ns));

        let udp = find(&rows, "socket", inode(&s.udp).into()).expect("UDP socket");
        assert_eq!(
            udp.get("port"),
            Some(&i64::from(s.udp.local_addr().unwrap().port()).into())
        );
        assert_eq!(
            (udp.get("family"), udp.get("protocol")),
            (Some(&2.into()), Some(&17.into()))
        );
        assert_eq!(udp.get("fd"), Some(&fd(&s.udp).into()));

        if let Some(l6) = &s.listener6 {
            let row = find(&rows, "socket", inode(l6).into()).expect("IPv6 listener");
            assert_eq!(row.get("address"), Some(&"::1".into_value()));
            assert_eq!(row.get("family"), Some(&10.into()));
        }

        let unix = find(&rows, "path", s.unix_path.as_str().into_value()).expect("unix listener");
        assert_eq!(unix.get("pid"), Some(&me));
        assert_eq!(unix.get("fd"), Some(&fd(&s.unix).into()));
        assert_eq!(
            (unix.get("port"), unix.get("family")),
            (Some(&0.into()), Some(&1.into()))
        );

        // Connected TCP sockets have a remote port: not listening.
        assert!(find(&rows, "socket", inode(&s.client).into()).is_none());
        assert!(find(&rows, "socket", inode(&s.server).into()).is_none());
    }

    /// Every TCP LISTEN socket in /proc/net/tcp, read here on its own before
    /// the scan, is listed (unless it closed meanwhile: other tests run too).
    #[test]
    fn covers_proc_net_tcp_listeners() {
        let _s = Opened::new();
        let text = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
        let rows = scan();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f[3] != "0A" {
                continue;
            }
            let socket: i64 = f[9].parse().unwrap();
            let port = i64::from_str_radix(f[1].rsplit(':').next().unwrap(), 16).unwrap();
            match find(&rows, "socket", socket.into()) {
                Some(row) => assert_eq!(row.get("port"), Some(&port.into())),
                None => {
                    let again = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
                    assert!(
                        !again.contains(&format!(" {socket} ")),
                        "listener {socket} missing"
                    );
                }
            }
        }
    }
}
