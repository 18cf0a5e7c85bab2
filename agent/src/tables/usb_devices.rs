//! `usb_devices`: the USB devices (not their interfaces) of
//! `<sysfs>/bus/usb/devices`, with the properties osquery takes from
//! libudev: bus and device number (`BUSNUM`, `DEVNUM`) and class triple
//! (`TYPE`) from the kernel's `uevent`, and udev's `ID_*` properties.
//!
//! udev derives its `ID_*` properties from the device's sysfs attributes
//! (`idVendor`, `idProduct`, `bcdDevice`, `product`, `serial`) and names
//! from its hwdb, which is built from `usb.ids`. Without udev's database (a
//! container, a minimal system) the same values are derived here the same
//! way, so the table answers alike.
//!
//! Difference from osquery: `removable` follows the column's description
//! (1 removable, 0 fixed, -1 unknown), where osquery reports 1 for every
//! device whose `removable` attribute is not `unknown`, fixed ones included.

use std::collections::BTreeMap;
use std::path::Path;

use super::sysfs::{attr, bus_devices, device_properties, first_readable, IdsDb};
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::usb_devices::TABLE as SCHEMA;

pub struct UsbDevices;

impl Table for UsbDevices {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let paths = &ctx.env().paths;
        let devices = bus_devices(&paths.sysfs, "usb");
        if devices.is_empty() {
            return Ok(());
        }
        let db = if ctx.any_used(&["vendor", "model"]) {
            first_readable(&paths.usb_ids)
                .map(|t| IdsDb::parse(&t))
                .unwrap_or_default()
        } else {
            IdsDb::default()
        };
        for (_, dir) in devices {
            ctx.check()?;
            ctx.note_read("/sys/bus/usb/devices/<dev>");
            let props = device_properties(&dir, &paths.udev_data, "usb");
            if let Some(row) = usb_row(ctx, &dir, &props, &db) {
                out.push(row);
            }
        }
        Ok(())
    }
}

/// A row for a USB device; None for an interface (no bus/device number).
fn usb_row(
    ctx: &ScanContext<'_>,
    dir: &Path,
    props: &BTreeMap<String, String>,
    db: &IdsDb,
) -> Option<Row> {
    let prop = |k: &str| props.get(k).filter(|v| !v.is_empty()).cloned();
    let bus: i64 = prop("BUSNUM")?.parse().ok()?;
    let devnum: i64 = prop("DEVNUM")?.parse().ok()?;

    let vendor_id = prop("ID_VENDOR_ID").or_else(|| attr(dir, "idVendor"));
    let model_id = prop("ID_MODEL_ID").or_else(|| attr(dir, "idProduct"));
    let ids = |f: fn(&IdsDb, &str, &str) -> Option<String>| match (&vendor_id, &model_id) {
        (Some(v), Some(m)) => f(db, &v.to_ascii_lowercase(), &m.to_ascii_lowercase()),
        _ => None,
    };
    let vendor = prop("ID_VENDOR_FROM_DATABASE")
        .or_else(|| ids(|db, v, _| db.vendor(v).map(str::to_string)))
        .unwrap_or_default();
    // osquery: the hwdb's model name, else udev's ID_MODEL (the product
    // string made safe, or the product id).
    let model = prop("ID_MODEL_FROM_DATABASE")
        .or_else(|| ids(|db, v, m| db.device(v, m).map(str::to_string)))
        .or_else(|| prop("ID_MODEL"))
        .or_else(|| {
            attr(dir, "product")
                .map(|p| udev_safe(&p))
                .filter(|p| !p.is_empty())
        })
        .or_else(|| model_id.clone())
        .unwrap_or_default();
    let serial = prop("ID_SERIAL_SHORT")
        .or_else(|| attr(dir, "serial").and_then(|s| udev_serial(&s)))
        .unwrap_or_default();
    let class = prop("TYPE").unwrap_or_default();
    let triple: Vec<&str> = class.split('/').collect();
    let (class, subclass, protocol) = match triple[..] {
        [c, s, p] => (c, s, p),
        _ => ("", "", ""),
    };
    let removable = match attr(dir, "removable").as_deref() {
        Some("removable") => 1,
        Some("fixed") => 0,
        _ => -1,
    };

    let mut row = ctx.row();
    row.set("usb_address", bus)
        .set("usb_port", devnum)
        .set("vendor", vendor)
        .set("vendor_id", vendor_id.unwrap_or_default())
        .set(
            "version",
            prop("ID_REVISION")
                .or_else(|| attr(dir, "bcdDevice"))
                .unwrap_or_default(),
        )
        .set("model", model)
        .set("model_id", model_id.unwrap_or_default())
        .set("serial", serial)
        .set("class", class)
        .set("subclass", subclass)
        .set("protocol", protocol)
        .set("removable", removable);
    Some(row)
}

/// A string the way udev makes it safe for a property: outer whitespace
/// dropped, inner runs of it one `_`, and characters outside
/// `[0-9A-Za-z#+-.:=@_]` (non-ASCII text aside) also `_`.
fn udev_safe(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join("_");
    joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "#+-.:=@_".contains(c) || !c.is_ascii() {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// udev's ID_SERIAL_SHORT: none when the serial has control or non-ASCII
/// characters or a comma, else the safe form.
fn udev_serial(s: &str) -> Option<String> {
    if s.chars()
        .any(|c| (c as u32) < 0x20 || (c as u32) > 0x7f || c == ',')
    {
        return None;
    }
    Some(udev_safe(s)).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::os::unix::fs::symlink;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::testing::{int, scan};
    use crate::tables::{HostPaths, TableEnv};

    use crate::tables::testing::write_file as w;

    /// An xHCI controller with its root hub, a receiver and a flash drive
    /// (each with an interface), in the layout of the kernel's
    /// Documentation/ABI/testing/sysfs-bus-usb; udev knows the drive.
    #[test]
    fn reads_a_sysfs_tree() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path().join("sys");
        let hc = sys.join("devices/pci0000:00/0000:00:14.0");
        let bus = sys.join("bus/usb/devices");
        std::fs::create_dir_all(&bus).unwrap();
        let attrs = |dir: &Path, a: &[(&str, &str)]| {
            for (k, v) in a {
                w(&dir.join(k), &format!("{v}\n"));
            }
        };
        let hub = hc.join("usb1");
        attrs(&hub, &[
            ("uevent", "MAJOR=189\nMINOR=0\nDEVNAME=bus/usb/001/001\nDEVTYPE=usb_device\nDRIVER=usb\nPRODUCT=1d6b/2/601\nTYPE=9/0/1\nBUSNUM=001\nDEVNUM=001"),
            ("idVendor", "1d6b"), ("idProduct", "0002"), ("bcdDevice", "0601"),
            ("manufacturer", "Linux 6.1.0-13-amd64 xhci-hcd"), ("product", "xHCI Host Controller"),
            ("serial", "0000:00:14.0"), ("removable", "unknown"),
        ]);
        let recv = hub.join("1-1");
        attrs(&recv, &[
            ("uevent", "MAJOR=189\nMINOR=1\nDEVNAME=bus/usb/001/002\nDEVTYPE=usb_device\nDRIVER=usb\nPRODUCT=46d/c52b/1211\nTYPE=0/0/0\nBUSNUM=001\nDEVNUM=002"),
            ("idVendor", "046d"), ("idProduct", "c52b"), ("bcdDevice", "1211"),
            ("manufacturer", "Logitech"), ("product", "  USB  Receiver "), ("removable", "removable"),
        ]);
        attrs(&recv.join("1-1:1.0"), &[
            ("uevent", "DEVTYPE=usb_interface\nDRIVER=usbhid\nPRODUCT=46d/c52b/1211\nTYPE=0/0/0\nINTERFACE=3/1/1"),
        ]);
        let stick = hub.join("1-2");
        attrs(&stick, &[
            ("uevent", "MAJOR=189\nMINOR=2\nDEVNAME=bus/usb/001/003\nDEVTYPE=usb_device\nDRIVER=usb\nPRODUCT=781/5581/100\nTYPE=0/0/0\nBUSNUM=001\nDEVNUM=003"),
            ("idVendor", "0781"), ("idProduct", "5581"), ("bcdDevice", "0100"),
            ("product", " SanDisk 3.2Gen1"), ("serial", "0401a1b2c3d4"), ("removable", "fixed"),
        ]);
        for (name, target) in [
            ("usb1", "usb1"),
            ("1-1", "usb1/1-1"),
            ("1-1:1.0", "usb1/1-1/1-1:1.0"),
            ("1-2", "usb1/1-2"),
        ] {
            symlink(
                format!("../../../devices/pci0000:00/0000:00:14.0/{target}"),
                bus.join(name),
            )
            .unwrap();
        }
        let ids = root.path().join("usb.ids");
        w(
            &ids,
            "# usb.ids\n\
             046d  Logitech, Inc.\n\
             \tc52b  Unifying Receiver\n\
             1d6b  Linux Foundation\n\
             \t0002  2.0 root hub\n\
             C 09  Hub\n\
             \t00  Unused\n",
        );
        let udev = root.path().join("udev");
        w(
            &udev.join("c189:2"),
            "E:ID_VENDOR_ID=0781\nE:ID_MODEL_ID=5581\nE:ID_REVISION=0100\nE:ID_MODEL=SanDisk_3.2Gen1\n\
             E:ID_SERIAL_SHORT=0401a1b2c3d4\nE:ID_VENDOR_FROM_DATABASE=SanDisk Corp.\n\
             E:ID_MODEL_FROM_DATABASE=Ultra\n",
        );
        let env = TableEnv {
            paths: HostPaths {
                sysfs: sys,
                udev_data: udev,
                usb_ids: vec![ids],
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        let rows = scan(&UsbDevices, &env);
        let t = |s: &str| Value::Text(s.into());
        let i = Value::Integer;
        let got: Vec<Vec<Value>> = rows.iter().map(|r| r.values().to_vec()).collect();
        assert_eq!(
            got,
            vec![
                // 1-1: names from usb.ids.
                vec![
                    i(1),
                    i(2),
                    t("Logitech, Inc."),
                    t("046d"),
                    t("1211"),
                    t("Unifying Receiver"),
                    t("c52b"),
                    t(""),
                    t("0"),
                    t("0"),
                    t("0"),
                    i(1)
                ],
                // 1-2: udev's database.
                vec![
                    i(1),
                    i(3),
                    t("SanDisk Corp."),
                    t("0781"),
                    t("0100"),
                    t("Ultra"),
                    t("5581"),
                    t("0401a1b2c3d4"),
                    t("0"),
                    t("0"),
                    t("0"),
                    i(0)
                ],
                // usb1: the root hub.
                vec![
                    i(1),
                    i(1),
                    t("Linux Foundation"),
                    t("1d6b"),
                    t("0601"),
                    t("2.0 root hub"),
                    t("0002"),
                    t("0000:00:14.0"),
                    t("9"),
                    t("0"),
                    t("1"),
                    i(-1)
                ],
            ]
        );

        // Without names: the product string made safe, as udev's ID_MODEL.
        let env = TableEnv {
            paths: HostPaths {
                usb_ids: vec![root.path().join("none")],
                udev_data: root.path().join("none"),
                ..env.paths.clone()
            },
            ..TableEnv::default()
        };
        let rows = scan(&UsbDevices, &env);
        let models: Vec<Value> = rows
            .iter()
            .map(|r| r.get("model").unwrap().clone())
            .collect();
        assert_eq!(
            models,
            [
                t("USB_Receiver"),
                t("SanDisk_3.2Gen1"),
                t("xHCI_Host_Controller")
            ]
        );
        assert_eq!(udev_serial("AB,12"), None);
        assert_eq!(udev_safe("Ünïcode (tm) x/y"), "Ünïcode__tm__x_y");
    }

    /// This host's USB devices against their bus and device numbers read
    /// here from sysfs' `busnum`/`devnum` attributes (a host without USB,
    /// like a VM, has none: zero rows either way).
    #[test]
    fn matches_sysfs_bus_and_device_numbers() {
        let rows = scan(&UsbDevices, &TableEnv::default());
        let ours: BTreeSet<(i64, i64)> = rows
            .iter()
            .map(|r| (int(r, "usb_address"), int(r, "usb_port")))
            .collect();
        assert_eq!(ours.len(), rows.len());
        let theirs: BTreeSet<(i64, i64)> = std::fs::read_dir("/sys/bus/usb/devices")
            .map(|d| {
                d.filter_map(|e| {
                    let p = e.ok()?.path();
                    let n = |a: &str| std::fs::read_to_string(p.join(a)).ok()?.trim().parse().ok();
                    Some((n("busnum")?, n("devnum")?))
                })
                .collect()
            })
            .unwrap_or_default();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn pack_queries_run() {
        for pack in ["hardware-monitoring", "it-compliance"] {
            let rows = super::super::sysfs::run_pack_query(pack, "usb_devices");
            assert_eq!(rows.len(), scan(&UsbDevices, &TableEnv::default()).len());
        }
    }
}
