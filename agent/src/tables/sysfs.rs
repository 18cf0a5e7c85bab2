//! Readers shared by the hardware tables (`block_devices`, `disk_encryption`,
//! `pci_devices`, `usb_devices`): sysfs attributes, a device's properties as
//! libudev reports them (the kernel's `uevent` plus what udev stored in its
//! database), and the `pci.ids`/`usb.ids` name databases udev's hwdb is
//! generated from. Every reader turns "absent" or "unreadable" into nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::util::read_text;

/// A sysfs attribute with surrounding newlines, tabs and spaces removed, as
/// osquery trims them; `None` when absent, unreadable or empty.
pub fn attr(dir: &Path, name: &str) -> Option<String> {
    let text = read_text(dir.join(name))?;
    let value = text.trim_matches(|c| c == '\n' || c == '\t' || c == ' ');
    (!value.is_empty()).then(|| value.to_string())
}

/// `KEY=value` lines, as in a sysfs `uevent` file.
fn key_values(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.lines().filter_map(|l| {
        let (k, v) = l.split_once('=')?;
        Some((k.to_string(), v.to_string()))
    })
}

/// The properties libudev reports for the device at `dir` (a sysfs device
/// directory) of `subsystem`: the kernel's `uevent` variables, then the `E:`
/// entries udev stored for it under `udev_data`, which win. Without udev (a
/// container, a minimal system) only the kernel's are there.
pub fn device_properties(
    dir: &Path,
    udev_data: &Path,
    subsystem: &str,
) -> BTreeMap<String, String> {
    let mut props: BTreeMap<String, String> = read_text(dir.join("uevent"))
        .map(|t| key_values(&t).collect())
        .unwrap_or_default();
    // udev names its database entries by device number when there is one
    // ("b8:0", "c189:1"), else by subsystem and kernel name ("+pci:0000:00:02.0").
    let id = match (props.get("MAJOR"), props.get("MINOR")) {
        (Some(major), Some(minor)) => {
            let kind = if subsystem == "block" { 'b' } else { 'c' };
            format!("{kind}{major}:{minor}")
        }
        _ => {
            let sysname = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
            format!("+{subsystem}:{sysname}")
        }
    };
    props.extend(udev_entry(udev_data, &id).unwrap_or_default());
    props
}

/// The properties (`E:` lines) udev stored for the device `id`, or `None`
/// when udev has no entry for it (no udev, or it never saw the device).
pub fn udev_entry(udev_data: &Path, id: &str) -> Option<BTreeMap<String, String>> {
    let db = read_text(udev_data.join(id))?;
    Some(
        db.lines()
            .filter_map(|l| l.strip_prefix("E:")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// A udev `*_ENC` value decoded: udev writes unsafe bytes as `\xNN`.
pub fn udev_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            if let Some(b) = value
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The devices of a sysfs bus (`<sysfs>/bus/<bus>/devices/*`): name and the
/// canonical device directory, sorted by name. No such bus: none.
pub fn bus_devices(sysfs: &Path, bus: &str) -> Vec<(String, PathBuf)> {
    let Ok(dir) = std::fs::read_dir(sysfs.join("bus").join(bus).join("devices")) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = dir
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            // A device removed since the listing has no target any more.
            let path = std::fs::canonicalize(e.path()).ok()?;
            Some((name, path))
        })
        .collect();
    out.sort();
    out
}

/// The first of `paths` that can be read.
pub fn first_readable(paths: &[PathBuf]) -> Option<String> {
    paths.iter().find_map(read_text)
}

/// A vendor's entry in an ids database.
#[derive(Debug, Default)]
struct IdsVendor {
    name: String,
    /// Device (model) id → name and its subsystem entries, keyed by their
    /// text as in the file (`"1af4 1100"` for pci.ids).
    devices: HashMap<String, (String, HashMap<String, String>)>,
}

/// `pci.ids` or `usb.ids`: vendors with their devices, and device classes
/// with their subclasses. Ids are lower-case hex text, as the files write them.
#[derive(Debug, Default)]
pub struct IdsDb {
    vendors: HashMap<String, IdsVendor>,
    classes: HashMap<String, (String, HashMap<String, String>)>,
}

impl IdsDb {
    /// Parses the file's text. Lines are `vvvv  name`, `\tdddd  name` and
    /// `\t\t<sub-id>  name` under a vendor; `C cc  name` and `\tss  name`
    /// in the class list; other sections (usb.ids' `HID`, `L`, …) are skipped.
    pub fn parse(text: &str) -> Self {
        #[derive(PartialEq)]
        enum Section {
            Vendors,
            Classes,
            Other,
        }
        let mut db = Self::default();
        let mut section = Section::Vendors;
        let mut vendor: Option<String> = None;
        let mut device: Option<String> = None;
        let mut class: Option<String> = None;
        // "<id>  <name>": ids are separated from names by two spaces.
        let split = |s: &str| -> Option<(String, String)> {
            let (id, name) = s.split_once("  ")?;
            Some((id.trim().to_ascii_lowercase(), name.trim().to_string()))
        };
        for line in text.lines() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("\t\t") {
                let Some((id, name)) = split(rest) else {
                    continue;
                };
                if section == Section::Vendors {
                    if let (Some(v), Some(d)) = (&vendor, &device) {
                        if let Some(dev) = db.vendors.get_mut(v).and_then(|v| v.devices.get_mut(d))
                        {
                            dev.1.entry(id).or_insert(name);
                        }
                    }
                }
            } else if let Some(rest) = line.strip_prefix('\t') {
                let Some((id, name)) = split(rest) else {
                    continue;
                };
                match section {
                    Section::Vendors => {
                        if let Some(v) = vendor.as_ref().and_then(|v| db.vendors.get_mut(v)) {
                            v.devices
                                .entry(id.clone())
                                .or_insert((name, HashMap::new()));
                            device = Some(id);
                        }
                    }
                    Section::Classes => {
                        if let Some(c) = class.as_ref().and_then(|c| db.classes.get_mut(c)) {
                            c.1.entry(id).or_insert(name);
                        }
                    }
                    Section::Other => {}
                }
            } else if let Some(rest) = line.strip_prefix("C ") {
                section = Section::Classes;
                let Some((id, name)) = split(rest) else {
                    continue;
                };
                db.classes
                    .entry(id.clone())
                    .or_insert((name, HashMap::new()));
                class = Some(id);
            } else if line.starts_with(|c: char| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                && section == Section::Vendors
            {
                let Some((id, name)) = split(line) else {
                    continue;
                };
                db.vendors.entry(id.clone()).or_insert(IdsVendor {
                    name,
                    devices: HashMap::new(),
                });
                vendor = Some(id);
                device = None;
            } else {
                // Another list (usb.ids' HID usages, languages, …).
                section = Section::Other;
            }
        }
        db
    }

    pub fn vendor(&self, vendor: &str) -> Option<&str> {
        self.vendors.get(vendor).map(|v| v.name.as_str())
    }

    pub fn device(&self, vendor: &str, device: &str) -> Option<&str> {
        self.vendors
            .get(vendor)?
            .devices
            .get(device)
            .map(|d| d.0.as_str())
    }

    /// A subsystem's name under a device, e.g. `("1af4", "1041", "1af4 1100")`.
    pub fn subsystem(&self, vendor: &str, device: &str, key: &str) -> Option<&str> {
        self.vendors
            .get(vendor)?
            .devices
            .get(device)?
            .1
            .get(key)
            .map(String::as_str)
    }

    pub fn class(&self, class: &str) -> Option<&str> {
        self.classes.get(class).map(|c| c.0.as_str())
    }

    pub fn subclass(&self, class: &str, subclass: &str) -> Option<&str> {
        self.classes.get(class)?.1.get(subclass).map(String::as_str)
    }
}

/// Runs one of osquery's pack queries (by pack and query name, from
/// shared/reference/osquery-pack-queries.json) through the engine with every
/// table, failing the test on any error; returns the rows.
#[cfg(test)]
pub fn run_pack_query(pack: &str, name: &str) -> Vec<Vec<rusqlite::types::Value>> {
    use std::sync::Arc;

    use crate::engine::{Engine, Limits};
    use crate::tables::Registry;

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/osquery-pack-queries.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (shared/ must be checked out beside the repository)",
            path.display()
        )
    });
    let queries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let sql = queries
        .iter()
        .find(|q| q["pack"] == pack && q["name"] == name)
        .and_then(|q| q["query"].as_str())
        .unwrap_or_else(|| panic!("no pack query {pack}/{name} in {}", path.display()))
        .to_string();
    let engine = Engine::new(Arc::new(Registry::default()), Limits::default());
    let out = engine.run(&sql);
    assert!(out.error.is_none(), "{sql}: {:?}", out.error);
    out.rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_files() {
        let db = IdsDb::parse(
            "# comment\n\
             8086  Intel Corporation\n\
             \t0d57  Xeon Processor E3-1200 v3/4th Gen Core Processor DRAM Controller # not a comment\n\
             \t1234  Some device\n\
             \t\t8086 0001  Its subsystem\n\
             1af4  Red Hat, Inc.\n\
             \t1041  Virtio 1.0 network device\n\
             \t\t1af4 1100  QEMU Virtual Machine\n\
             ffff  Illegal Vendor ID\n\
             \n\
             # List of known device classes\n\
             C 00  Unclassified device\n\
             \t00  Non-VGA unclassified device\n\
             C 06  Bridge\n\
             \t00  Host bridge\n\
             \t\t00  prog-if\n\
             HID 00  Undefined\n\
             \t01  not a subclass\n",
        );
        assert_eq!(db.vendor("8086"), Some("Intel Corporation"));
        assert_eq!(
            db.device("8086", "0d57"),
            Some(
                "Xeon Processor E3-1200 v3/4th Gen Core Processor DRAM Controller # not a comment"
            )
        );
        assert_eq!(
            db.subsystem("8086", "1234", "8086 0001"),
            Some("Its subsystem")
        );
        assert_eq!(
            db.subsystem("1af4", "1041", "1af4 1100"),
            Some("QEMU Virtual Machine")
        );
        assert_eq!(db.device("1af4", "0d57"), None);
        assert_eq!(db.class("06"), Some("Bridge"));
        assert_eq!(db.subclass("06", "00"), Some("Host bridge"));
        assert_eq!(db.subclass("00", "01"), None);
        assert_eq!(db.vendor("c 06"), None);
    }

    #[test]
    fn merges_udev_database_over_uevent() {
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path().join("0000:00:02.0");
        std::fs::create_dir(&dev).unwrap();
        std::fs::write(dev.join("uevent"), "DRIVER=e1000e\nPCI_ID=8086:15BB\n").unwrap();
        let udev = dir.path().join("udev");
        std::fs::create_dir(&udev).unwrap();
        std::fs::write(
            udev.join("+pci:0000:00:02.0"),
            "I:123\nE:ID_VENDOR_FROM_DATABASE=Intel Corporation\nE:DRIVER=e1000e\nG:x\n",
        )
        .unwrap();
        let props = device_properties(&dev, &udev, "pci");
        assert_eq!(props.get("PCI_ID").map(String::as_str), Some("8086:15BB"));
        assert_eq!(
            props.get("ID_VENDOR_FROM_DATABASE").map(String::as_str),
            Some("Intel Corporation")
        );
        assert_eq!(props.len(), 3);

        // A device with a number is looked up by it.
        std::fs::write(dev.join("uevent"), "MAJOR=8\nMINOR=0\n").unwrap();
        std::fs::write(udev.join("b8:0"), "E:ID_FS_TYPE=ext4\n").unwrap();
        let props = device_properties(&dev, &udev, "block");
        assert_eq!(props.get("ID_FS_TYPE").map(String::as_str), Some("ext4"));
        assert_eq!(attr(&dev, "uevent").as_deref(), Some("MAJOR=8\nMINOR=0"));
        assert_eq!(attr(&dev, "missing"), None);
    }
}
