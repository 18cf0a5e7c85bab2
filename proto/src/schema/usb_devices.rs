//! `usb_devices`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "usb_devices",
    description: "USB devices that are actively plugged into the host system.",
    columns: &[
        col!("usb_address", Integer),
        col!("usb_port", Integer),
        col!("vendor", Text),
        col!("vendor_id", Text),
        col!("version", Text),
        col!("model", Text),
        col!("model_id", Text),
        col!("serial", Text),
        col!("class", Text),
        col!("subclass", Text),
        col!("protocol", Text),
        col!("removable", Integer),
    ],
};
