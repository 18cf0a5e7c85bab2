//! `interface_details`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "interface_details",
    description: "Detailed information and stats of network interfaces.",
    columns: &[
        col!("interface", Text),
        col!("mac", Text),
        col!("type", Integer),
        col!("mtu", Integer),
        col!("metric", Integer),
        col!("flags", Integer),
        col!("ipackets", BigInt),
        col!("opackets", BigInt),
        col!("ibytes", BigInt),
        col!("obytes", BigInt),
        col!("ierrors", BigInt),
        col!("oerrors", BigInt),
        col!("idrops", BigInt),
        col!("odrops", BigInt),
        col!("collisions", BigInt),
        col!("last_change", BigInt),
        col!("link_speed", BigInt),
        col!("pci_slot", Text),
    ],
};
