//! `arp_cache`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "arp_cache",
    description: "Address resolution cache, both static and dynamic (from ARP, NDP).",
    columns: &[
        col!("address", Text),
        col!("mac", Text),
        col!("interface", Text),
        col!("permanent", Text),
    ],
};
