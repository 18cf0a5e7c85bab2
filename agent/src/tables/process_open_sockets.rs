//! `process_open_sockets`: every inet, unix and packet socket of the host's
//! network namespaces, with the process and descriptor holding it (-1 when
//! none is visible). `WHERE pid = N` reads only those processes' descriptors
//! and namespaces, and returns only their sockets.

use super::net::sockets::{inventory, Socket};
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::process_open_sockets::TABLE as SCHEMA;

pub struct ProcessOpenSockets;

impl Table for ProcessOpenSockets {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        // Walking every process's fds is the expensive part: skip it when
        // neither pid nor fd is read.
        let owners = ctx.any_used(&["pid", "fd"]);
        for socket in inventory(ctx, ctx.eq_integers("pid"), owners)? {
            out.push(socket_row(ctx, &socket));
        }
        Ok(())
    }
}

fn socket_row(ctx: &ScanContext<'_>, s: &Socket) -> Row {
    let mut row = ctx.row();
    row.set("pid", s.owner.map_or(-1, |o| i64::from(o.pid)))
        .set("fd", s.owner.map_or(-1, |o| o.fd))
        .set("socket", s.inode)
        .set("family", s.family)
        .set("protocol", s.protocol)
        .set("local_address", &s.local_address)
        .set("remote_address", &s.remote_address)
        .set("local_port", s.local_port)
        .set("remote_port", s.remote_port)
        .set("path", &s.path)
        .set("state", &s.state)
        .set("net_namespace", s.net_ns.to_string());
    row
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::net::sockets::fixture::{fd, inode, net_namespace, Opened};
    use crate::tables::testing::int;
    use crate::tables::{Budget, Op, TableEnv};

    fn scan(pid: Option<i64>) -> Vec<Row> {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let mut ctx = ScanContext::all("process_open_sockets", SCHEMA.columns, &budget, &env);
        if let Some(pid) = pid {
            ctx = ctx.with_constraint("pid", Op::Eq, vec![pid.into()]);
        }
        let mut rows = Vec::new();
        ProcessOpenSockets.generate(&ctx, &mut rows).unwrap();
        rows
    }

    fn by_inode(rows: &[Row], inode: i64) -> &Row {
        rows.iter()
            .find(|r| r.get("socket") == Some(&Value::Integer(inode)))
            .unwrap_or_else(|| panic!("socket {inode} not found"))
    }

    fn text<'r>(row: &'r Row, col: &str) -> &'r str {
        match row.get(col) {
            Some(Value::Text(t)) => t,
            other => panic!("{col}: {other:?}"),
        }
    }

    /// The sockets this test opens, found with their pid, fd, addresses and state.
    fn check_own_sockets(rows: &[Row], s: &Opened) {
        let me = i64::from(std::process::id());
        let ns = net_namespace();
        let port = i64::from(s.listener.local_addr().unwrap().port());
        let client_port = i64::from(s.client.local_addr().unwrap().port());

        let listen = by_inode(rows, inode(&s.listener));
        assert_eq!(
            (int(listen, "pid"), int(listen, "fd")),
            (me, fd(&s.listener))
        );
        assert_eq!((int(listen, "family"), int(listen, "protocol")), (2, 6));
        assert_eq!(
            (text(listen, "local_address"), int(listen, "local_port")),
            ("127.0.0.1", port)
        );
        assert_eq!(
            (text(listen, "remote_address"), int(listen, "remote_port")),
            ("0.0.0.0", 0)
        );
        assert_eq!(text(listen, "state"), "LISTEN");
        assert_eq!(text(listen, "net_namespace"), ns);

        let client = by_inode(rows, inode(&s.client));
        assert_eq!((int(client, "pid"), int(client, "fd")), (me, fd(&s.client)));
        assert_eq!(
            (int(client, "local_port"), int(client, "remote_port")),
            (client_port, port)
        );
        assert_eq!(text(client, "remote_address"), "127.0.0.1");
        assert_eq!(text(client, "state"), "ESTABLISHED");

        let server = by_inode(rows, inode(&s.server));
        assert_eq!(int(server, "fd"), fd(&s.server));
        assert_eq!(
            (int(server, "local_port"), int(server, "remote_port")),
            (port, client_port)
        );

        let udp = by_inode(rows, inode(&s.udp));
        assert_eq!((int(udp, "pid"), int(udp, "fd")), (me, fd(&s.udp)));
        assert_eq!((int(udp, "family"), int(udp, "protocol")), (2, 17));
        assert_eq!(
            int(udp, "local_port"),
            i64::from(s.udp.local_addr().unwrap().port())
        );
        assert_eq!(text(udp, "state"), "");

        if let Some(l6) = &s.listener6 {
            let row = by_inode(rows, inode(l6));
            assert_eq!((int(row, "family"), int(row, "protocol")), (10, 6));
            assert_eq!(text(row, "local_address"), "::1");
            assert_eq!(
                int(row, "local_port"),
                i64::from(l6.local_addr().unwrap().port())
            );
            assert_eq!(text(row, "remote_address"), "::");
        }

        let unix = by_inode(rows, inode(&s.unix));
        assert_eq!((int(unix, "pid"), int(unix, "fd")), (me, fd(&s.unix)));
        assert_eq!((int(unix, "family"), int(unix, "protocol")), (1, 0));
        assert_eq!(text(unix, "path"), s.unix_path);
        assert_eq!(text(unix, "net_namespace"), ns);
    }

    #[test]
    fn finds_own_sockets_by_pid() {
        let sockets = Opened::new();
        let me = i64::from(std::process::id());
        let rows = scan(Some(me));
        check_own_sockets(&rows, &sockets);
        // The pid filter returns this process's sockets only.
        assert!(rows.iter().all(|r| int(r, "pid") == me));
    }

    #[test]
    fn finds_own_sockets_in_full_scan() {
        let sockets = Opened::new();
        let rows = scan(None);
        check_own_sockets(&rows, &sockets);
        // Every socket is listed once; TIME_WAIT leftovers have no inode (0).
        let mut inodes: Vec<i64> = rows
            .iter()
            .map(|r| int(r, "socket"))
            .filter(|i| *i != 0)
            .collect();
        let n = inodes.len();
        inodes.sort_unstable();
        inodes.dedup();
        assert_eq!(inodes.len(), n);
    }

    #[test]
    fn unknown_pid_gives_nothing() {
        // Past pid_max (at most 2^22): no such process.
        assert!(scan(Some(1 << 23)).is_empty());
    }
}
