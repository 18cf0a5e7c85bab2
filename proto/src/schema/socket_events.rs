//! `socket_events`: osquery's columns for this evented table (posix spec
//! plus its Linux extension).

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "socket_events",
    description: "Track network socket bind, connect, and accepts.",
    columns: &[
        col!("action", Text),
        col!("pid", BigInt),
        col!("path", Text),
        col!("fd", Text),
        col!("auid", BigInt),
        col!("family", Integer),
        col!("protocol", Integer, Hidden),
        col!("local_address", Text),
        col!("remote_address", Text),
        col!("local_port", Integer),
        col!("remote_port", Integer),
        col!("socket", Text, Hidden),
        col!("time", BigInt, Additional),
        col!("uptime", BigInt),
        col!("eid", Text, Hidden),
        col!("success", Integer, Hidden),
        col!("status", Text),
    ],
};
