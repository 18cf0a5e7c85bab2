//! `hardware_events`: osquery's columns for this evented table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "hardware_events",
    description: "Hardware (PCI/USB/HID) events from UDEV or IOKit.",
    columns: &[
        col!("action", Text),
        col!("path", Text),
        col!("type", Text),
        col!("driver", Text),
        col!("vendor", Text),
        col!("vendor_id", Text),
        col!("model", Text),
        col!("model_id", Text),
        col!("serial", Text),
        col!("revision", Text),
        col!("time", BigInt, Additional),
        col!("eid", Text, Hidden),
    ],
};
