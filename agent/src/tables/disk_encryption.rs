//! `disk_encryption`: one row per block device (see `block_devices`) saying
//! whether its data is encrypted by dm-crypt, as osquery reports on Linux.
//!
//! A device-mapper device is a dm-crypt mapping when cryptsetup named it so:
//! its `<sysfs>/…/dm/uuid` is `CRYPT-<kind>-…` (kinds LUKS1, LUKS2, PLAIN,
//! LOOPAES, TCRYPT, BITLK, FVAULT2; VERITY and INTEGRITY mappings are not
//! encryption). Every other device inherits its parent's answer, so a
//! filesystem on LVM on LUKS is encrypted, and a disk without an encrypted
//! ancestor is `not encrypted`. `uuid` is the device's filesystem UUID.
//!
//! `type` is osquery's `<kind>-<cipher>-<mode>` (`LUKS2-aes-xts-plain64`).
//! osquery asks libcryptsetup, which reads the kernel's mapping table; that
//! takes a device-mapper ioctl, which sweep does not make. For LUKS the
//! cipher is read from the LUKS header at the start of the mapping's
//! backing device instead (needs root; a detached header is not found);
//! when the header cannot be read, and for the other kinds, whose cipher is
//! only in the kernel's table, `type` is the kind alone (`PLAIN`).
//!
//! osquery answers nothing when not run as root; this table answers from
//! sysfs, which anyone may read.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::block_devices::{enumerate, BlockDevice};
use super::sysfs::attr;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::disk_encryption::TABLE as SCHEMA;

pub struct DiskEncryption;

/// What a device's encryption status comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Status {
    encrypted: bool,
    kind: String,
}

impl Table for DiskEncryption {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let paths = &ctx.env().paths;
        let only = ctx.eq_texts("name");
        // Parents come along: a device's status may be its parent's.
        let devices = enumerate(ctx, paths, only.as_deref(), true, ctx.used("uuid"))?;
        let by_name: BTreeMap<&str, &BlockDevice> =
            devices.iter().map(|d| (d.name.as_str(), d)).collect();
        let mut known: BTreeMap<String, Status> = BTreeMap::new();
        for dev in &devices {
            let status = status_of(dev, &by_name, &mut known, &paths.dev, 0);
            let mut row = ctx.row();
            row.set("name", &dev.name)
                .set(
                    "uuid",
                    dev.fs
                        .as_ref()
                        .and_then(|f| f.uuid.clone())
                        .unwrap_or_default(),
                )
                .set("encrypted", status.encrypted)
                .set("type", &status.kind)
                .set(
                    "encryption_status",
                    if status.encrypted {
                        "encrypted"
                    } else {
                        "not encrypted"
                    },
                );
            out.push(row);
        }
        Ok(())
    }
}

/// The kinds of cryptsetup mapping that encrypt.
const ENCRYPTING: &[&str] = &[
    "LUKS1", "LUKS2", "PLAIN", "LOOPAES", "TCRYPT", "BITLK", "FVAULT2",
];

fn status_of(
    dev: &BlockDevice,
    by_name: &BTreeMap<&str, &BlockDevice>,
    known: &mut BTreeMap<String, Status>,
    dev_dir: &Path,
    depth: usize,
) -> Status {
    if let Some(s) = known.get(&dev.name) {
        return s.clone();
    }
    let status = match crypt_kind(dev) {
        Some((kind, header_id)) => Status {
            encrypted: true,
            kind: cipher_of(dev, &kind, &header_id, dev_dir).unwrap_or(kind),
        },
        None => match dev.parent.as_deref().and_then(|p| by_name.get(p)) {
            Some(parent) if depth < 16 => status_of(parent, by_name, known, dev_dir, depth + 1),
            _ => Status {
                encrypted: false,
                kind: String::new(),
            },
        },
    };
    known.insert(dev.name.clone(), status.clone());
    status
}

/// For a dm-crypt mapping, its kind and the LUKS UUID cryptsetup put in the
/// mapping's UUID (`CRYPT-LUKS2-<uuid without dashes>-<name>`; empty for
/// other kinds).
fn crypt_kind(dev: &BlockDevice) -> Option<(String, String)> {
    let uuid = attr(&dev.dir, "dm/uuid")?;
    let rest = uuid.strip_prefix("CRYPT-")?;
    let (kind, rest) = rest.split_once('-').unwrap_or((rest, ""));
    if !ENCRYPTING.contains(&kind) {
        return None;
    }
    let header_id = if kind.starts_with("LUKS") {
        rest.split('-').next().unwrap_or("").to_string()
    } else {
        String::new()
    };
    Some((kind.to_string(), header_id))
}

/// `<kind>-<cipher>-<mode>` from the LUKS header on the mapping's backing
/// device, when that header is the mapping's own (same UUID).
fn cipher_of(dev: &BlockDevice, kind: &str, header_id: &str, dev_dir: &Path) -> Option<String> {
    if !kind.starts_with("LUKS") {
        return None;
    }
    let backing = dev.parent.as_deref()?.strip_prefix("/dev/")?;
    let header = read_header(&dev_dir.join(backing))?;
    let (version, uuid, cipher, mode) = parse_luks(&header)?;
    if format!("LUKS{version}") != kind || uuid.replace('-', "") != header_id {
        return None;
    }
    Some(
        [kind, cipher.as_str(), mode.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("-"),
    )
}

/// The LUKS header area: LUKS1's fits in its first sector, LUKS2's binary
/// header says how large it is with its JSON (16 KiB by default, at most 4 MiB).
fn read_header(path: &Path) -> Option<Vec<u8>> {
    let file = std::fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    file.take(4 << 20).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// Version, UUID, cipher and mode of a LUKS header.
fn parse_luks(b: &[u8]) -> Option<(u16, String, String, String)> {
    if b.get(0..6)? != b"LUKS\xba\xbe" {
        return None;
    }
    let text = |at: usize, len: usize| -> Option<String> {
        let raw = b.get(at..at + len)?;
        let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
        Some(String::from_utf8_lossy(&raw[..end]).into_owned())
    };
    let version = u16::from_be_bytes(b.get(6..8)?.try_into().ok()?);
    let uuid = text(168, 40)?;
    match version {
        1 => Some((1, uuid, text(8, 32)?, text(40, 32)?)),
        2 => {
            // The JSON metadata follows the 4 KiB binary header, NUL-padded
            // to the header size.
            let size = usize::try_from(u64::from_be_bytes(b.get(8..16)?.try_into().ok()?)).ok()?;
            let area = b.get(4096..size.min(b.len()))?;
            let end = area.iter().position(|&c| c == 0).unwrap_or(area.len());
            let json: serde_json::Value = serde_json::from_slice(&area[..end]).ok()?;
            // The data segment: the lowest-numbered one of type "crypt".
            let segments = json.get("segments")?.as_object()?;
            let mut crypt: Vec<(u64, &str)> = segments
                .iter()
                .filter(|(_, s)| s.get("type").and_then(|t| t.as_str()) == Some("crypt"))
                .filter_map(|(k, s)| Some((k.parse().ok()?, s.get("encryption")?.as_str()?)))
                .collect();
            crypt.sort();
            let spec = crypt.first()?.1;
            // cryptsetup splits "aes-xts-plain64" into cipher "aes" and mode
            // "xts-plain64".
            let (cipher, mode) = spec.split_once('-').unwrap_or((spec, ""));
            Some((2, uuid, cipher.to_string(), mode.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::os::unix::fs::symlink;
    use std::process::Command;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::testing::{int, scan, scan_with, text};
    use crate::tables::{HostPaths, Op, TableEnv};

    use crate::tables::testing::write_file as w;

    /// A LUKS2 header as cryptsetup lays it out: the binary header (magic,
    /// version, header size, label, UUID) and the JSON metadata after 4 KiB.
    fn luks2_header(uuid: &str, encryption: &str) -> Vec<u8> {
        let mut b = vec![0u8; 16384];
        b[0..6].copy_from_slice(b"LUKS\xba\xbe");
        b[6..8].copy_from_slice(&2u16.to_be_bytes());
        b[8..16].copy_from_slice(&16384u64.to_be_bytes());
        b[24..28].copy_from_slice(b"home");
        b[168..168 + uuid.len()].copy_from_slice(uuid.as_bytes());
        let json = format!(
            r#"{{"keyslots":{{"0":{{"type":"luks2","key_size":64}}}},
            "segments":{{"0":{{"type":"crypt","offset":"16777216","size":"dynamic",
            "iv_tweak":"0","encryption":"{encryption}","sector_size":512}}}},
            "digests":{{}},"config":{{"json_size":"12288","keyslots_size":"16744448"}}}}"#
        );
        b[4096..4096 + json.len()].copy_from_slice(json.as_bytes());
        b
    }

    /// sda1 holds a plain dm-crypt swap, sda2 LUKS2 with LVM inside, sdb
    /// nothing, and a dm-verity mapping (integrity, not encryption) on sdb.
    #[test]
    fn reads_dm_crypt_stacks() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path().join("sys");
        let sda =
            sys.join("devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda");
        let sdb =
            sys.join("devices/pci0000:00/0000:00:17.0/ata2/host1/target1:0:0/1:0:0:0/block/sdb");
        let virt = sys.join("devices/virtual/block");
        let class = sys.join("class/block");
        std::fs::create_dir_all(&class).unwrap();
        let add = |dir: &Path, name: &str, numbers: &str, link: String| {
            w(&dir.join("uevent"), &format!("DEVNAME={name}\n"));
            w(&dir.join("dev"), numbers);
            w(&dir.join("size"), "2048");
            symlink(link, class.join(name)).unwrap();
        };
        add(
            &sda,
            "sda",
            "8:0",
            format!("../../{}", sda.strip_prefix(&sys).unwrap().display()),
        );
        add(
            &sdb,
            "sdb",
            "8:16",
            format!("../../{}", sdb.strip_prefix(&sys).unwrap().display()),
        );
        for n in [1, 2] {
            let p = sda.join(format!("sda{n}"));
            w(&p.join("partition"), &n.to_string());
            add(
                &p,
                &format!("sda{n}"),
                &format!("8:{n}"),
                format!("../../{}", p.strip_prefix(&sys).unwrap().display()),
            );
        }
        let dms = [
            (
                "dm-0",
                "CRYPT-LUKS2-9c4e1f3a7b2d4e8f9a0b1c2d3e4f5a6b-luks-9c4e1f3a",
                "sda2",
            ),
            (
                "dm-1",
                "LVM-Hq3ZxkW1yVb0cNm2pLq4rSt5uVw6xYz7AbCdEfGhIjKlMnOpQrStUvWxYz01",
                "dm-0",
            ),
            ("dm-2", "CRYPT-PLAIN-cryptswap", "sda1"),
            (
                "dm-3",
                "CRYPT-VERITY-1f2e3d4c5b6a79880716253443526170-verity",
                "sdb",
            ),
        ];
        for (i, (name, uuid, slave)) in dms.iter().enumerate() {
            let d = virt.join(name);
            w(&d.join("dm/uuid"), &format!("{uuid}\n"));
            w(&d.join("dm/name"), name);
            std::fs::create_dir_all(d.join("slaves")).unwrap();
            std::fs::write(d.join("slaves").join(slave), "").unwrap();
            add(
                &d,
                name,
                &format!("254:{i}"),
                format!("../../devices/virtual/block/{name}"),
            );
        }
        let dev = root.path().join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(
            dev.join("sda2"),
            luks2_header("9c4e1f3a-7b2d-4e8f-9a0b-1c2d3e4f5a6b", "aes-xts-plain64"),
        )
        .unwrap();
        let env = TableEnv {
            paths: HostPaths {
                sysfs: sys.clone(),
                dev: dev.clone(),
                udev_data: root.path().join("no-udev"),
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        let rows = scan(&DiskEncryption, &env);
        let got: Vec<(String, i64, String, String)> = rows
            .iter()
            .map(|r| {
                (
                    text(r, "name"),
                    int(r, "encrypted"),
                    text(r, "type"),
                    text(r, "encryption_status"),
                )
            })
            .collect();
        let e = |n: &str, enc: i64, t: &str| {
            let status = if enc == 1 {
                "encrypted"
            } else {
                "not encrypted"
            };
            (n.to_string(), enc, t.to_string(), status.to_string())
        };
        assert_eq!(
            got,
            vec![
                e("/dev/dm-0", 1, "LUKS2-aes-xts-plain64"),
                e("/dev/dm-1", 1, "LUKS2-aes-xts-plain64"),
                e("/dev/dm-2", 1, "PLAIN"),
                e("/dev/dm-3", 0, ""),
                e("/dev/sda", 0, ""),
                e("/dev/sda1", 0, ""),
                e("/dev/sda2", 0, ""),
                e("/dev/sdb", 0, ""),
            ]
        );
        // The LUKS header is the backing device's own content: blkid sees it
        // as a LUKS container with that UUID, which block_devices reports.
        let out = Command::new("blkid")
            .args(["-p", "-o", "export"])
            .arg(dev.join("sda2"))
            .output()
            .expect("blkid is needed: apt-get install util-linux");
        let blkid = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(blkid.contains("TYPE=crypto_LUKS"), "{blkid}");
        assert!(
            blkid.contains("UUID=9c4e1f3a-7b2d-4e8f-9a0b-1c2d3e4f5a6b"),
            "{blkid}"
        );
        let sda2 = rows
            .iter()
            .find(|r| text(r, "name") == "/dev/sda2")
            .unwrap();
        assert_eq!(text(sda2, "uuid"), "9c4e1f3a-7b2d-4e8f-9a0b-1c2d3e4f5a6b");

        // A header for another mapping (a detached header elsewhere) or a
        // LUKS1 header: the kind alone, or LUKS1's own cipher fields.
        std::fs::write(
            dev.join("sda2"),
            luks2_header("00000000-7b2d-4e8f-9a0b-1c2d3e4f5a6b", "aes-xts-plain64"),
        )
        .unwrap();
        let rows = scan_with(
            &DiskEncryption,
            &env,
            &[("name", Op::Eq, vec![Value::Text("/dev/dm-1".into())])],
        );
        let names: Vec<String> = rows.iter().map(|r| text(r, "name")).collect();
        // The look-up brings the parents along; SQLite keeps the one asked for.
        assert_eq!(names, ["/dev/dm-0", "/dev/dm-1", "/dev/sda", "/dev/sda2"]);
        assert_eq!(text(&rows[1], "type"), "LUKS2");
        let mut luks1 = vec![0u8; 4096];
        luks1[0..6].copy_from_slice(b"LUKS\xba\xbe");
        luks1[6..8].copy_from_slice(&1u16.to_be_bytes());
        luks1[8..15].copy_from_slice(b"serpent");
        luks1[40..56].copy_from_slice(b"cbc-essiv:sha256");
        luks1[168..204].copy_from_slice(b"9c4e1f3a-7b2d-4e8f-9a0b-1c2d3e4f5a6b");
        assert_eq!(
            parse_luks(&luks1),
            Some((
                1,
                "9c4e1f3a-7b2d-4e8f-9a0b-1c2d3e4f5a6b".into(),
                "serpent".into(),
                "cbc-essiv:sha256".into()
            ))
        );
    }

    /// Every device of this host, and whether it is encrypted: lsblk calls
    /// a dm-crypt mapping `crypt`; a device is encrypted when it or an
    /// ancestor is one.
    #[test]
    fn matches_lsblk_crypt_devices() {
        let out = Command::new("lsblk")
            .args(["-J", "-l", "-a", "-o", "NAME,TYPE,PKNAME"])
            .output()
            .expect("lsblk is needed: apt-get install util-linux");
        assert!(out.status.success());
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let devices: BTreeMap<String, (String, Option<String>)> = json["blockdevices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    format!("/dev/{}", d["name"].as_str().unwrap()),
                    (
                        d["type"].as_str().unwrap().to_string(),
                        d["pkname"].as_str().map(|p| format!("/dev/{p}")),
                    ),
                )
            })
            .collect();
        let encrypted = |name: &str| {
            let mut name = name.to_string();
            for _ in 0..16 {
                let Some((kind, parent)) = devices.get(&name) else {
                    return false;
                };
                if kind == "crypt" {
                    return true;
                }
                match parent {
                    Some(p) => name = p.clone(),
                    None => return false,
                }
            }
            false
        };
        let rows = scan(&DiskEncryption, &TableEnv::default());
        let names: BTreeSet<String> = rows.iter().map(|r| text(r, "name")).collect();
        assert_eq!(names, devices.keys().cloned().collect::<BTreeSet<_>>());
        for row in &rows {
            let name = text(row, "name");
            assert_eq!(int(row, "encrypted") == 1, encrypted(&name), "{name}");
        }
    }

    #[test]
    fn pack_queries_run() {
        for pack in ["incident-response", "it-compliance"] {
            let rows = super::super::sysfs::run_pack_query(pack, "disk_encryption");
            assert_eq!(
                rows.len(),
                scan(&DiskEncryption, &TableEnv::default()).len()
            );
        }
    }
}
