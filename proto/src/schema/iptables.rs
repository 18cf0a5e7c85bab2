//! `iptables`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "iptables",
    description: "Linux IP packet filtering and NAT tool.",
    columns: &[
        col!("filter_name", Text),
        col!("chain", Text),
        col!("policy", Text),
        col!("target", Text),
        col!("protocol", Integer),
        col!("src_port", Text),
        col!("dst_port", Text),
        col!("src_ip", Text),
        col!("src_mask", Text),
        col!("iniface", Text),
        col!("iniface_mask", Text),
        col!("dst_ip", Text),
        col!("dst_mask", Text),
        col!("outiface", Text),
        col!("outiface_mask", Text),
        col!("match", Text),
        col!("packets", Integer),
        col!("bytes", Integer),
    ],
};
