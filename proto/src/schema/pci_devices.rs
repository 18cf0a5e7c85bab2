//! `pci_devices`: osquery's columns for this table (with its Linux ones).

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "pci_devices",
    description: "PCI devices active on the host system.",
    columns: &[
        col!("pci_slot", Text),
        col!("pci_class", Text),
        col!("driver", Text),
        col!("vendor", Text),
        col!("vendor_id", Text),
        col!("model", Text),
        col!("model_id", Text),
        col!("pci_class_id", Text),
        col!("pci_subclass_id", Text),
        col!("pci_subclass", Text),
        col!("subsystem_vendor_id", Text),
        col!("subsystem_vendor", Text),
        col!("subsystem_model_id", Text),
        col!("subsystem_model", Text),
    ],
};
