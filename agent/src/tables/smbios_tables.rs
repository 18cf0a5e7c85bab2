//! `smbios_tables`: one row per SMBIOS structure in the firmware's DMI table,
//! `<sysfs>/firmware/dmi/tables/DMI` (root only), as osquery walks it: the
//! formatted part (`header_size` bytes, its first four the type, length and
//! handle) plus the strings after it up to their double NUL make `size`,
//! and `md5` is over those bytes.
//!
//! Without that file (no SMBIOS, as in many VMs, or not root) the table is
//! empty. osquery then goes on to look for the table in physical memory
//! through /dev/mem (the EFI system table or the legacy 0xF0000 area);
//! sweep does not read /dev/mem.

use md5::{Digest, Md5};

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::smbios_tables::TABLE as SCHEMA;

pub struct SmbiosTables;

impl Table for SmbiosTables {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let path = ctx.env().paths.sysfs.join("firmware/dmi/tables/DMI");
        let Ok(data) = std::fs::read(&path) else {
            return Ok(());
        };
        ctx.note_read("/sys/firmware/dmi/tables/DMI");
        for (number, s) in structures(&data).into_iter().enumerate() {
            let mut row = ctx.row();
            row.set("number", number)
                .set("type", s.kind)
                .set("description", description(s.kind))
                .set("handle", s.handle)
                .set("header_size", s.length)
                .set("size", s.bytes.len())
                .set("md5", hex::encode(Md5::digest(s.bytes)));
            out.push(row);
        }
        Ok(())
    }
}

/// One structure: its header and all its bytes, strings included.
#[derive(Debug, PartialEq)]
struct Structure<'a> {
    kind: u8,
    length: u8,
    handle: u16,
    bytes: &'a [u8],
}

/// The structures of a DMI table, walked as osquery does: a header whose
/// length runs past the data, or an all-zero one (padding), ends the walk;
/// a structure's strings end at the first double NUL after its formatted
/// part (looked for only while a header's worth of data remains).
fn structures(data: &[u8]) -> Vec<Structure<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= data.len() {
        let length = data[at + 1];
        let handle = u16::from_le_bytes([data[at + 2], data[at + 3]]);
        if at + length as usize > data.len() || (length == 0 && handle == 0) {
            break;
        }
        let mut next = at + length as usize;
        while next + 4 <= data.len() {
            if data[next] == 0 && data[next + 1] == 0 {
                next += 2;
                break;
            }
            next += 1;
        }
        // A zero length would never advance.
        if next <= at {
            break;
        }
        out.push(Structure {
            kind: data[at],
            length,
            handle,
            bytes: &data[at..next],
        });
        at = next;
    }
    out
}

/// The structure types' names, from the SMBIOS specification (DSP0134), as
/// osquery lists them.
fn description(kind: u8) -> &'static str {
    match kind {
        0 => "BIOS Information",
        1 => "System Information",
        2 => "Base Board or Module Information",
        3 => "System Enclosure or Chassis",
        4 => "Processor Information",
        5 => "Memory Controller Information",
        6 => "Memory Module Information",
        7 => "Cache Information",
        8 => "Port Connector Information",
        9 => "System Slots",
        10 => "On Board Devices Information",
        11 => "OEM Strings",
        12 => "System Configuration Options",
        13 => "BIOS Language Information",
        14 => "Group Associations",
        15 => "System Event Log",
        16 => "Physical Memory Array",
        17 => "Memory Device",
        18 => "32-bit Memory Error Information",
        19 => "Memory Array Mapped Address",
        20 => "Memory Device Mapped Address",
        21 => "Built-in Pointing Device",
        22 => "Portable Battery",
        23 => "System Reset",
        24 => "Hardware Security",
        25 => "System Power Controls",
        26 => "Voltage Probe",
        27 => "Cooling Device",
        28 => "Temperature Probe",
        29 => "Electrical Current Probe",
        30 => "Out-of-Band Remote Access",
        31 => "Boot Integrity Services",
        32 => "System Boot Information",
        33 => "64-bit Memory Error Information",
        34 => "Management Device",
        35 => "Management Device Component",
        36 => "Management Device Threshold Data",
        37 => "Memory Channel",
        38 => "IPMI Device Information",
        39 => "System Power Supply",
        40 => "Additional Information",
        41 => "Onboard Devices Extended Info",
        126 => "Inactive",
        127 => "End-of-Table",
        130 => "Memory SPD Data",
        131 => "OEM Processor Type",
        132 => "OEM Processor Bus Speed",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::testing::scan;
    use crate::tables::{HostPaths, TableEnv};

    /// A DMI table in the layout of a QEMU machine's (as `dmidecode -u`
    /// shows one): BIOS information with three strings, system information
    /// with no strings (formatted part then a double NUL), an end-of-table
    /// marker, then zero padding.
    fn fixture() -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
        let mut t = Vec::new();
        let mut ranges = Vec::new();
        let start = t.len();
        // Type 0, length 0x18, handle 0x0000.
        t.extend_from_slice(&[0x00, 0x18, 0x00, 0x00, 0x01, 0x02, 0x00, 0xe8, 0x03, 0x00]);
        t.extend_from_slice(&[0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
        t.extend_from_slice(&[0x00, 0x1c, 0x00, 0x00]);
        t.extend_from_slice(
            b"SeaBIOS\0rel-1.16.2-0-gea1b7a073390-prebuilt.qemu.org\x0004/01/2014\0\0",
        );
        ranges.push(start..t.len());
        let start = t.len();
        // Type 1, length 0x1b, handle 0x0100, no strings.
        t.extend_from_slice(&[0x01, 0x1b, 0x00, 0x01]);
        t.extend_from_slice(&[0u8; 0x1b - 4]);
        t.extend_from_slice(&[0, 0]);
        ranges.push(start..t.len());
        let start = t.len();
        // Type 127, length 4, handle 0x7f00.
        t.extend_from_slice(&[0x7f, 0x04, 0x00, 0x7f, 0, 0]);
        ranges.push(start..t.len());
        t.extend_from_slice(&[0u8; 16]);
        (t, ranges)
    }

    /// md5 of a byte range, by Python's hashlib.
    fn python_md5(file: &Path, range: &std::ops::Range<usize>) -> String {
        let out = Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import hashlib,sys; d=open(sys.argv[1],'rb').read()[{}:{}]; print(hashlib.md5(d).hexdigest())",
                range.start, range.end
            ))
            .arg(file)
            .output()
            .expect("python3 is needed: apt-get install python3");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn walks_a_dmi_table() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path().join("sys");
        let dmi = sys.join("firmware/dmi/tables");
        std::fs::create_dir_all(&dmi).unwrap();
        let (table, ranges) = fixture();
        std::fs::write(dmi.join("DMI"), &table).unwrap();
        let env = TableEnv {
            paths: HostPaths {
                sysfs: sys,
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        let rows = scan(&SmbiosTables, &env);
        let t = |s: &str| Value::Text(s.into());
        let i = |n: i64| Value::Integer(n);
        let md5 = |n: usize| t(&python_md5(&dmi.join("DMI"), &ranges[n]));
        let got: Vec<Vec<Value>> = rows.iter().map(|r| r.values().to_vec()).collect();
        assert_eq!(
            got,
            vec![
                vec![
                    i(0),
                    i(0),
                    t("BIOS Information"),
                    i(0),
                    i(0x18),
                    i(0x18 + 65),
                    md5(0)
                ],
                vec![
                    i(1),
                    i(1),
                    t("System Information"),
                    i(0x100),
                    i(0x1b),
                    i(0x1b + 2),
                    md5(1)
                ],
                vec![
                    i(2),
                    i(127),
                    t("End-of-Table"),
                    i(0x7f00),
                    i(4),
                    i(6),
                    md5(2)
                ],
            ]
        );
        assert_eq!(ranges[0].len(), 0x18 + 65);
    }

    #[test]
    fn malformed_tables_end_the_walk() {
        // A header claiming more than there is.
        assert!(structures(&[0x01, 0x40, 0x00, 0x00, 0x00]).is_empty());
        // Strings without their terminator: the walk stops short of the end.
        let s = structures(&[0x0b, 0x05, 0x02, 0x00, 0x01, b'a', b'b', b'c', b'd']);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].bytes.len(), 6);
        assert_eq!(description(200), "Unknown");
    }

    /// This host: as many rows as the DMI table has structures by the count
    /// in the SMBIOS 2.x entry point, or none when there is no table.
    #[test]
    fn matches_this_hosts_entry_point() {
        let rows = scan(&SmbiosTables, &TableEnv::default());
        let Ok(entry) = std::fs::read("/sys/firmware/dmi/tables/smbios_entry_point") else {
            assert!(rows.is_empty());
            return;
        };
        // "_SM_" (2.x) gives the structure count at 0x1C; "_SM3_" none.
        if entry.starts_with(b"_SM_") {
            let count = u16::from_le_bytes([entry[0x1c], entry[0x1d]]) as usize;
            assert!(rows.len() >= count, "{} < {count}", rows.len());
        } else {
            assert!(!rows.is_empty());
        }
    }

    #[test]
    fn pack_query_runs() {
        let rows = super::super::sysfs::run_pack_query("hardware-monitoring", "smbios_tables");
        assert_eq!(rows.len(), scan(&SmbiosTables, &TableEnv::default()).len());
    }
}
