//! `process_open_sockets`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "process_open_sockets",
    description: "Processes which have open network sockets on the system.",
    columns: &[
        col!("pid", Integer, Additional),
        col!("fd", BigInt),
        col!("socket", BigInt),
        col!("family", Integer),
        col!("protocol", Integer),
        col!("local_address", Text),
        col!("remote_address", Text),
        col!("local_port", Integer),
        col!("remote_port", Integer),
        col!("path", Text),
        col!("state", Text),
        col!("net_namespace", Text),
    ],
};
