//! `listening_ports`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "listening_ports",
    description: "Processes with listening (bound) network sockets/ports.",
    columns: &[
        col!("pid", Integer),
        col!("port", Integer),
        col!("protocol", Integer),
        col!("family", Integer),
        col!("address", Text),
        col!("fd", BigInt),
        col!("socket", BigInt),
        col!("path", Text),
        col!("net_namespace", Text),
    ],
};
