//! `system_info`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "system_info",
    description: "System information for identification.",
    columns: &[
        col!("hostname", Text),
        col!("uuid", Text),
        col!("cpu_type", Text),
        col!("cpu_subtype", Text),
        col!("cpu_brand", Text),
        col!("cpu_physical_cores", Integer),
        col!("cpu_logical_cores", Integer),
        col!("cpu_sockets", Integer),
        col!("cpu_microcode", Text),
        col!("physical_memory", BigInt),
        col!("hardware_vendor", Text),
        col!("hardware_model", Text),
        col!("hardware_version", Text),
        col!("hardware_serial", Text),
        col!("board_vendor", Text),
        col!("board_model", Text),
        col!("board_version", Text),
        col!("board_serial", Text),
        col!("computer_name", Text),
        col!("local_hostname", Text),
    ],
};
