//! `routes`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "routes",
    description: "The active route table for the host system.",
    columns: &[
        col!("destination", Text),
        col!("netmask", Integer),
        col!("gateway", Text),
        col!("source", Text),
        col!("flags", Integer),
        col!("interface", Text),
        col!("mtu", Integer),
        col!("metric", Integer),
        col!("type", Text, Additional),
        col!("hopcount", Integer),
    ],
};
