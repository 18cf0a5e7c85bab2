//! `hardware_events`: osquery's evented table of udev device events (add,
//! remove, change of a USB stick, a disk, a PCI card), with its columns.
//!
//! It always has no rows. In osquery the table is filled by a subscriber to
//! its udev event publisher while events are enabled; with events disabled,
//! osquery's default, it answers with no rows, and that is the answer here:
//! sweep has no event publishers yet. When it gets one (a netlink listener
//! for udev's `kernel`/`udev` multicast groups), this table will return the
//! buffered events: `action`, the device node as `path`, the udev `DEVTYPE`
//! as `type`, the driver, the `ID_*` vendor, model, serial and revision
//! properties, the event's `time` and an `eid`.

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::hardware_events::TABLE as SCHEMA;

pub struct HardwareEvents;

impl Table for HardwareEvents {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, _ctx: &ScanContext<'_>, _out: &mut Vec<Row>) -> Result<(), AgentError> {
        // No event publisher: nothing was recorded (see the module comment).
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::testing::scan;
    use crate::tables::TableEnv;

    #[test]
    fn has_osquerys_columns_and_no_rows() {
        let names: Vec<&str> = SCHEMA.columns.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "action",
                "path",
                "type",
                "driver",
                "vendor",
                "vendor_id",
                "model",
                "model_id",
                "serial",
                "revision",
                "time",
                "eid"
            ]
        );
        assert!(scan(&HardwareEvents, &TableEnv::default()).is_empty());
    }

    #[test]
    fn pack_query_runs() {
        let rows = super::super::sysfs::run_pack_query("hardware-monitoring", "hardware_events");
        assert!(rows.is_empty());
    }
}
