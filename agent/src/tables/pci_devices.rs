//! `pci_devices`: the devices of `<sysfs>/bus/pci/devices`, with the
//! properties osquery takes from libudev: the kernel's `uevent` variables
//! (`PCI_SLOT_NAME`, `PCI_ID`, `PCI_SUBSYS_ID`, `PCI_CLASS`, `DRIVER`) and
//! udev's database (`ID_*_FROM_DATABASE`).
//!
//! Vendor, model and subsystem names come from the system's `pci.ids`, as
//! in osquery, falling back to udev's. Differences from osquery: without
//! udev's database (containers, minimal systems) osquery leaves the class
//! names empty; here they come from the same `pci.ids` udev's hwdb is built
//! from. And osquery returns no rows at all when `pci.ids` is missing; here
//! the devices are still listed, their names empty unless udev knows them.
//! A `PCI_CLASS` that is not hex gives empty class ids (osquery slices it
//! whatever it holds).

use std::collections::BTreeMap;

use super::sysfs::{bus_devices, device_properties, first_readable, IdsDb};
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::pci_devices::TABLE as SCHEMA;

pub struct PciDevices;

const NAME_COLUMNS: &[&str] = &[
    "pci_class",
    "pci_subclass",
    "vendor",
    "model",
    "subsystem_vendor",
    "subsystem_model",
];

impl Table for PciDevices {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let paths = &ctx.env().paths;
        let devices = bus_devices(&paths.sysfs, "pci");
        if devices.is_empty() {
            return Ok(());
        }
        // pci.ids is a megabyte of text: only parsed for the name columns.
        let db = if ctx.any_used(NAME_COLUMNS) {
            first_readable(&paths.pci_ids)
                .map(|t| IdsDb::parse(&t))
                .unwrap_or_default()
        } else {
            IdsDb::default()
        };
        for (_, dir) in devices {
            ctx.check()?;
            ctx.note_read("/sys/bus/pci/devices/<dev>");
            let props = device_properties(&dir, &paths.udev_data, "pci");
            out.push(pci_row(ctx, &props, &db));
        }
        Ok(())
    }
}

/// `vvvv:dddd` (as in `PCI_ID`) as lower-case vendor and device ids.
fn id_pair(value: &str) -> Option<(String, String)> {
    let lower = value.to_ascii_lowercase();
    let (a, b) = lower.split_once(':')?;
    (!b.is_empty() && !b.contains(':')).then(|| (a.to_string(), b.to_string()))
}

fn pci_row(ctx: &ScanContext<'_>, props: &BTreeMap<String, String>, db: &IdsDb) -> Row {
    let prop = |k: &str| props.get(k).cloned().unwrap_or_default();
    let mut row = ctx.row();
    row.set("pci_slot", prop("PCI_SLOT_NAME"))
        .set("driver", prop("DRIVER"))
        .set("vendor", prop("ID_VENDOR_FROM_DATABASE"))
        .set("model", prop("ID_MODEL_FROM_DATABASE"))
        .set("pci_class", prop("ID_PCI_CLASS_FROM_DATABASE"))
        .set("pci_subclass", prop("ID_PCI_SUBCLASS_FROM_DATABASE"));
    for c in [
        "pci_class_id",
        "pci_subclass_id",
        "subsystem_vendor_id",
        "subsystem_vendor",
        "subsystem_model_id",
        "subsystem_model",
    ] {
        row.set(c, "");
    }

    match id_pair(&prop("PCI_ID")) {
        Some((vendor, model)) => {
            row.set("vendor_id", format!("0x{vendor}"))
                .set("model_id", format!("0x{model}"));
            if let Some(name) = db.vendor(&vendor) {
                row.set("vendor", name);
            }
            if let Some(name) = db.device(&vendor, &model) {
                row.set("model", name);
            }
            if let Some((sub_vendor, sub_model)) = id_pair(&prop("PCI_SUBSYS_ID")) {
                row.set("subsystem_vendor_id", format!("0x{sub_vendor}"))
                    .set("subsystem_model_id", format!("0x{sub_model}"));
                if let Some(name) = db.vendor(&sub_vendor) {
                    row.set("subsystem_vendor", name);
                }
                let key = format!("{sub_vendor} {sub_model}");
                if let Some(name) = db.subsystem(&vendor, &model, &key) {
                    row.set("subsystem_model", name);
                }
            }
        }
        // osquery's legacy answer for an unreadable id.
        None => {
            row.set("vendor_id", "0").set("model_id", "0");
        }
    }

    // PCI_CLASS is the 24-bit class code in hex without leading zeros:
    // class, subclass, programming interface.
    let class = prop("PCI_CLASS").to_ascii_lowercase();
    let hex = class.bytes().all(|b| b.is_ascii_hexdigit());
    let split = match class.len() {
        _ if !hex => None,
        5 => Some((format!("0{}", &class[0..1]), class[1..3].to_string())),
        6 => Some((class[0..2].to_string(), class[2..4].to_string())),
        _ => None,
    };
    if let Some((class, subclass)) = split {
        if row.get("pci_class") == Some(&rusqlite::types::Value::Text(String::new())) {
            if let Some(name) = db.class(&class) {
                row.set("pci_class", name);
            }
        }
        if row.get("pci_subclass") == Some(&rusqlite::types::Value::Text(String::new())) {
            if let Some(name) = db.subclass(&class, &subclass) {
                row.set("pci_subclass", name);
            }
        }
        row.set("pci_class_id", format!("0x{class}"))
            .set("pci_subclass_id", format!("0x{subclass}"));
    }
    row
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use super::*;
    use crate::tables::testing::{scan, text};
    use crate::tables::{HostPaths, TableEnv};

    use crate::tables::testing::write_file as w;

    /// A bus in the kernel's layout (bus/pci/devices/* linking to
    /// devices/pci0000:00/*), with a pci.ids excerpt and one udev entry.
    #[test]
    fn reads_a_sysfs_tree() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path().join("sys");
        let bus = sys.join("bus/pci/devices");
        std::fs::create_dir_all(&bus).unwrap();
        let devices = [
            (
                "0000:00:00.0",
                "PCI_CLASS=60000\nPCI_ID=8086:3E30\nPCI_SUBSYS_ID=1028:0869\nPCI_SLOT_NAME=0000:00:00.0\n\
                 MODALIAS=pci:v00008086d00003E30sv00001028sd00000869bc06sc00i00\n",
            ),
            (
                "0000:00:1f.6",
                "DRIVER=e1000e\nPCI_CLASS=20000\nPCI_ID=8086:15BB\nPCI_SUBSYS_ID=1028:0869\n\
                 PCI_SLOT_NAME=0000:00:1f.6\n",
            ),
            (
                "0000:01:00.0",
                "DRIVER=nvidia\nPCI_CLASS=30000\nPCI_ID=10DE:1C82\nPCI_SUBSYS_ID=1043:8613\n\
                 PCI_SLOT_NAME=0000:01:00.0\n",
            ),
            ("0000:02:00.0", "PCI_CLASS=bogus\nPCI_ID=nonsense\nPCI_SLOT_NAME=0000:02:00.0\n"),
        ];
        for (slot, uevent) in devices {
            w(
                &sys.join("devices/pci0000:00").join(slot).join("uevent"),
                uevent,
            );
            symlink(
                format!("../../../devices/pci0000:00/{slot}"),
                bus.join(slot),
            )
            .unwrap();
        }
        let ids = root.path().join("pci.ids");
        w(
            &ids,
            "#\tList of PCI ID's\n\
             1028  Dell\n\
             1043  ASUSTeK Computer Inc.\n\
             10de  NVIDIA Corporation\n\
             \t1c82  GP107 [GeForce GTX 1050 Ti]\n\
             \t\t1043 8613  Phoenix GeForce GTX 1050 Ti\n\
             8086  Intel Corporation\n\
             \t15bb  Ethernet Connection (7) I219-LM\n\
             \t\t1028 0869  Optiplex 7070\n\
             \t3e30  8th Gen Core 8-core Desktop Processor Host Bridge/DRAM Registers [Coffee Lake S]\n\
             ffff  Illegal Vendor ID\n\
             C 02  Network controller\n\
             \t00  Ethernet controller\n\
             C 03  Display controller\n\
             \t00  VGA compatible controller\n\
             \t\t00  VGA controller\n\
             C 06  Bridge\n\
             \t00  Host bridge\n",
        );
        let udev = root.path().join("udev");
        // udev's hwdb may be newer than pci.ids: its class names stand, the
        // vendor and model names of pci.ids win (osquery's order).
        w(
            &udev.join("+pci:0000:01:00.0"),
            "E:ID_PCI_CLASS_FROM_DATABASE=Display controller (hwdb)\n\
             E:ID_VENDOR_FROM_DATABASE=NVIDIA Corp. (hwdb)\n",
        );
        let env = TableEnv {
            paths: HostPaths {
                sysfs: sys.clone(),
                udev_data: udev,
                pci_ids: vec![root.path().join("missing.ids"), ids],
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        let rows = scan(&PciDevices, &env);
        let cols: Vec<&str> = SCHEMA.columns.iter().map(|c| c.name).collect();
        assert_eq!(
            cols,
            [
                "pci_slot",
                "pci_class",
                "driver",
                "vendor",
                "vendor_id",
                "model",
                "model_id",
                "pci_class_id",
                "pci_subclass_id",
                "pci_subclass",
                "subsystem_vendor_id",
                "subsystem_vendor",
                "subsystem_model_id",
                "subsystem_model"
            ]
        );
        let got: Vec<Vec<String>> = rows
            .iter()
            .map(|r| cols.iter().map(|c| text(r, c)).collect())
            .collect();
        let row = |v: [&str; 14]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                row([
                    "0000:00:00.0", "Bridge", "", "Intel Corporation", "0x8086",
                    "8th Gen Core 8-core Desktop Processor Host Bridge/DRAM Registers [Coffee Lake S]",
                    "0x3e30", "0x06", "0x00", "Host bridge", "0x1028", "Dell", "0x0869", ""
                ]),
                row([
                    "0000:00:1f.6", "Network controller", "e1000e", "Intel Corporation", "0x8086",
                    "Ethernet Connection (7) I219-LM", "0x15bb", "0x02", "0x00",
                    "Ethernet controller", "0x1028", "Dell", "0x0869", "Optiplex 7070"
                ]),
                row([
                    "0000:01:00.0", "Display controller (hwdb)", "nvidia", "NVIDIA Corporation",
                    "0x10de", "GP107 [GeForce GTX 1050 Ti]", "0x1c82", "0x03", "0x00",
                    "VGA compatible controller", "0x1043", "ASUSTeK Computer Inc.", "0x8613",
                    "Phoenix GeForce GTX 1050 Ti"
                ]),
                row(["0000:02:00.0", "", "", "", "0", "", "0", "", "", "", "", "", "", ""]),
            ]
        );
    }

    /// `grep`'s answer for a line of pci.ids: the name after `prefix`,
    /// within the section opened by `section` (a vendor or class line).
    fn ids_name(ids: &Path, section: Option<&str>, prefix: &str) -> String {
        // `\t` stands for a tab.
        let prefix = prefix.replace("\\t", "\t");
        let script = match section {
            None => format!(
                "index($0, \"{prefix}\") == 1 {{ print substr($0, {}); exit }}",
                prefix.len() + 1
            ),
            Some(s) => format!(
                "index($0, \"{s}\") == 1 {{ inside = 1; next }} \
                 inside && /^[^\t#]/ {{ exit }} \
                 inside && index($0, \"{prefix}\") == 1 {{ print substr($0, {}); exit }}",
                prefix.len() + 1
            ),
        };
        let out = Command::new("awk")
            .arg(script)
            .arg(ids)
            .output()
            .expect("awk is needed: apt-get install mawk");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// This host's PCI devices, read here from other sysfs attributes than
    /// the table reads (`vendor`, `device`, `class`, …, the driver link),
    /// with names looked up in pci.ids by awk.
    #[test]
    fn matches_sysfs_attributes_and_pci_ids() {
        let rows = scan(&PciDevices, &TableEnv::default());
        let bus = Path::new("/sys/bus/pci/devices");
        let mut slots: Vec<String> = std::fs::read_dir(bus)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        slots.sort();
        let got: Vec<String> = rows.iter().map(|r| text(r, "pci_slot")).collect();
        assert_eq!(got, slots);
        let ids: Option<PathBuf> = HostPaths::default()
            .pci_ids
            .into_iter()
            .find(|p| p.exists());
        for row in &rows {
            let dir = bus.join(text(row, "pci_slot"));
            let a = |n: &str| {
                std::fs::read_to_string(dir.join(n))
                    .unwrap()
                    .trim()
                    .to_string()
            };
            let (vendor, device) = (a("vendor"), a("device"));
            let (sub_vendor, sub_device) = (a("subsystem_vendor"), a("subsystem_device"));
            let class = a("class"); // 0xCCSSPP
            assert_eq!(text(row, "vendor_id"), vendor);
            assert_eq!(text(row, "model_id"), device);
            assert_eq!(text(row, "subsystem_vendor_id"), sub_vendor);
            assert_eq!(text(row, "subsystem_model_id"), sub_device);
            assert_eq!(text(row, "pci_class_id"), &class[0..4]);
            assert_eq!(text(row, "pci_subclass_id"), format!("0x{}", &class[4..6]));
            let driver = std::fs::read_link(dir.join("driver"))
                .map(|l| l.file_name().unwrap().to_string_lossy().into_owned())
                .unwrap_or_default();
            assert_eq!(text(row, "driver"), driver);
            let Some(ids) = &ids else { continue };
            let (v, d) = (&vendor[2..], &device[2..]);
            assert_eq!(text(row, "vendor"), ids_name(ids, None, &format!("{v}  ")));
            assert_eq!(
                text(row, "model"),
                ids_name(ids, Some(&format!("{v}  ")), &format!("\\t{d}  "))
            );
            assert_eq!(
                text(row, "subsystem_vendor"),
                ids_name(ids, None, &format!("{}  ", &sub_vendor[2..]))
            );
            if !Path::new("/run/udev/data")
                .join(format!("+pci:{}", text(row, "pci_slot")))
                .exists()
            {
                let c = &class[2..4];
                assert_eq!(
                    text(row, "pci_class"),
                    ids_name(ids, None, &format!("C {c}  "))
                );
                assert_eq!(
                    text(row, "pci_subclass"),
                    ids_name(
                        ids,
                        Some(&format!("C {c}  ")),
                        &format!("\\t{}  ", &class[4..6])
                    )
                );
            }
        }
        assert!(
            ids.is_some() || rows.is_empty(),
            "pci.ids is needed to check names: apt-get install pci.ids"
        );
    }

    #[test]
    fn pack_query_runs() {
        let rows = super::super::sysfs::run_pack_query("hardware-monitoring", "pci_devices");
        assert_eq!(rows.len(), scan(&PciDevices, &TableEnv::default()).len());
    }
}
