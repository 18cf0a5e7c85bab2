//! `block_devices`: every block device of `<sysfs>/class/block` (disks,
//! partitions, loop, device-mapper, zram, …), as osquery enumerates them.
//!
//! - `name` is `/dev/<kernel name>`; `parent` is the disk of a partition, or
//!   for a stacked device (device-mapper, md) the first of its `slaves/`.
//! - `vendor`, `model`, `serial` come from the device's `device/` attributes
//!   (`serial` is `device/wwid`, else `device/serial`); partitions and stacked
//!   devices take their root device's, as in osquery.
//! - `size` is sysfs' `size` (512-byte sectors, whatever the logical block
//!   size); `block_size` is `queue/logical_block_size`.
//! - `uuid`, `type` (the filesystem or container type, e.g. `ext4`,
//!   `crypto_LUKS`) and `label` are what libblkid reports: taken from udev's
//!   database (which holds udev's own blkid probe), else read from the
//!   device's superblock by [`probe`] for the common Linux types. Reading a
//!   device needs root; without it they are NULL.
//!
//! Differences from osquery: it names the directory above a device its
//! parent, which for NVMe namespaces is the controller (`/dev/nvme0`, not a
//! block device); here only partitions and stacked devices have a parent, as
//! lsblk reports. Partitions, which have no queue of their own, report their
//! disk's block size where osquery leaves it empty. The filesystem probe
//! knows fewer types than libblkid (see [`probe`]); others are NULL unless
//! udev recorded them.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::sysfs::{attr, udev_decode, udev_entry};
use super::{HostPaths, Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::block_devices::TABLE as SCHEMA;

pub struct BlockDevices;

impl Table for BlockDevices {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let only = ctx.eq_texts("name");
        let probe = ctx.any_used(&["uuid", "type", "label"]);
        for dev in enumerate(ctx, &ctx.env().paths, only.as_deref(), false, probe)? {
            let mut row = ctx.row();
            row.set("name", &dev.name)
                .set("parent", dev.parent.clone().unwrap_or_default())
                .set("vendor", dev.vendor.clone().unwrap_or_default())
                .set("model", dev.model.clone().unwrap_or_default())
                .set("serial", dev.serial.clone().unwrap_or_default())
                .set_opt("size", dev.size)
                .set_opt("block_size", dev.block_size)
                .set_opt("uuid", dev.fs.as_ref().and_then(|f| f.uuid.clone()))
                .set_opt("type", dev.fs.as_ref().map(|f| f.fs_type.clone()))
                .set_opt("label", dev.fs.as_ref().and_then(|f| f.label.clone()));
            out.push(row);
        }
        Ok(())
    }
}

/// What a superblock says: libblkid's TYPE, UUID and LABEL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Filesystem {
    pub fs_type: String,
    pub uuid: Option<String>,
    pub label: Option<String>,
}

/// One block device.
#[derive(Debug, Clone, Default)]
pub(super) struct BlockDevice {
    /// `/dev/<kernel name>`.
    pub name: String,
    /// The canonical sysfs directory.
    pub dir: PathBuf,
    /// `/dev/<parent>`, for partitions and stacked devices.
    pub parent: Option<String>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub size: Option<i64>,
    pub block_size: Option<i64>,
    /// None when not probed, or nothing was recognised.
    pub fs: Option<Filesystem>,
}

/// The block devices, sorted by name: all of them, or those named in `only`
/// (plus their ancestors when `with_parents`). `probe` reads each returned
/// device's filesystem identity (udev's database, else the device itself).
pub(super) fn enumerate(
    ctx: &ScanContext<'_>,
    paths: &HostPaths,
    only: Option<&[String]>,
    with_parents: bool,
    probe: bool,
) -> Result<Vec<BlockDevice>, AgentError> {
    let mut all: BTreeMap<String, BlockDevice> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(paths.sysfs.join("class/block")) else {
        return Ok(Vec::new());
    };
    for entry in dir.flatten() {
        ctx.check()?;
        // class/block holds symlinks to the devices' directories.
        if !entry.file_type().is_ok_and(|t| t.is_symlink()) {
            continue;
        }
        let Ok(dir) = std::fs::canonicalize(entry.path()) else {
            continue; // removed since the listing
        };
        if !dir.join("uevent").exists() {
            continue;
        }
        let Some(kname) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        ctx.note_read("/sys/class/block/<dev>");
        let dev = BlockDevice {
            name: format!("/dev/{kname}"),
            parent: parent_of(&dir),
            vendor: attr(&dir, "device/vendor").or_else(|| attr(&dir, "device/device/vendor")),
            model: attr(&dir, "device/model"),
            serial: attr(&dir, "device/wwid").or_else(|| attr(&dir, "device/serial")),
            size: attr(&dir, "size").and_then(|s| s.parse().ok()),
            block_size: attr(&dir, "queue/logical_block_size").and_then(|s| s.parse().ok()),
            dir,
            fs: None,
        };
        all.insert(dev.name.clone(), dev);
    }

    // Children take their root device's identity; a partition its disk's
    // block size.
    let names: Vec<String> = all.keys().cloned().collect();
    for name in &names {
        let mut root = name.clone();
        let mut hops = 0;
        while let Some(p) = all.get(&root).and_then(|d| d.parent.clone()) {
            if !all.contains_key(&p) || hops > 16 {
                break;
            }
            root = p;
            hops += 1;
        }
        if &root != name {
            let (vendor, model, serial) = {
                let r = &all[&root];
                (r.vendor.clone(), r.model.clone(), r.serial.clone())
            };
            let parent_block = all[name]
                .parent
                .as_ref()
                .and_then(|p| all.get(p))
                .and_then(|d| d.block_size);
            if let Some(d) = all.get_mut(name) {
                d.vendor = vendor;
                d.model = model;
                d.serial = serial;
                if d.block_size.is_none() {
                    d.block_size = parent_block;
                }
            }
        }
    }

    let mut wanted: Vec<String> = match only {
        None => names,
        Some(list) => {
            let mut w: Vec<String> = list
                .iter()
                .filter(|n| all.contains_key(*n))
                .cloned()
                .collect();
            if with_parents {
                let mut i = 0;
                while i < w.len() {
                    if let Some(p) = all[&w[i]].parent.clone() {
                        if all.contains_key(&p) && !w.contains(&p) {
                            w.push(p);
                        }
                    }
                    i += 1;
                }
            }
            w.sort();
            w.dedup();
            w
        }
    };
    let mut out = Vec::with_capacity(wanted.len());
    for name in wanted.drain(..) {
        let Some(mut dev) = all.remove(&name) else {
            continue;
        };
        if probe {
            ctx.check()?;
            dev.fs = identify(paths, &dev);
        }
        out.push(dev);
    }
    Ok(out)
}

/// The parent of the device at `dir`: a partition's disk (the directory
/// above it), else the first device it is stacked on (`slaves/`).
fn parent_of(dir: &Path) -> Option<String> {
    if dir.join("partition").exists() {
        let disk = dir.parent()?.file_name()?.to_str()?;
        return Some(format!("/dev/{disk}"));
    }
    let mut slaves: Vec<String> = std::fs::read_dir(dir.join("slaves"))
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    slaves.sort();
    slaves.into_iter().next().map(|s| format!("/dev/{s}"))
}

/// The filesystem identity of `dev`: what udev recorded for it when udev
/// knows the device (its entry is authoritative, even without a
/// filesystem), else what its superblock says.
fn identify(paths: &HostPaths, dev: &BlockDevice) -> Option<Filesystem> {
    let numbers = attr(&dev.dir, "dev")?;
    if let Some(props) = udev_entry(&paths.udev_data, &format!("b{numbers}")) {
        let get = |enc: &str, plain: &str| {
            props
                .get(enc)
                .map(|v| udev_decode(v))
                .or_else(|| props.get(plain).cloned())
                .filter(|v| !v.is_empty())
        };
        let fs_type = props.get("ID_FS_TYPE").filter(|t| !t.is_empty())?;
        return Some(Filesystem {
            fs_type: fs_type.clone(),
            uuid: get("ID_FS_UUID_ENC", "ID_FS_UUID"),
            label: get("ID_FS_LABEL_ENC", "ID_FS_LABEL"),
        });
    }
    let kname = dev.dir.file_name()?;
    probe(&paths.dev.join(kname))
}

/// Bytes read from the start of a device: enough for every signature
/// [`probe`] knows (btrfs' superblock is at 64 KiB).
const PROBE_BYTES: u64 = 0x11000;

/// Reads the superblock at the start of `path` (a device node or an image
/// file) and names what is there, as libblkid would: `crypto_LUKS`,
/// `LVM2_member`, `xfs`, `jbd`/`ext4dev`/`ext4`/`ext3`/`ext2`, `btrfs`,
/// `squashfs`, `vfat` and `swap`. Unreadable or unrecognised: None.
pub(super) fn probe(path: &Path) -> Option<Filesystem> {
    // Non-blocking: an empty removable drive must not stall the scan.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let mut buf = Vec::with_capacity(PROBE_BYTES as usize);
    file.take(PROBE_BYTES).read_to_end(&mut buf).ok()?;
    identify_bytes(&buf)
}

/// The filesystem whose superblock starts `b`.
pub(super) fn identify_bytes(b: &[u8]) -> Option<Filesystem> {
    luks(b)
        .or_else(|| lvm2(b))
        .or_else(|| xfs(b))
        .or_else(|| ext(b))
        .or_else(|| btrfs(b))
        .or_else(|| squashfs(b))
        .or_else(|| vfat(b))
        .or_else(|| swap(b))
}

fn bytes(b: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    b.get(at..at.checked_add(len)?)
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes(b, at, 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes(b, at, 4)?.try_into().ok()?))
}

/// A NUL-terminated, blank-padded label; empty means none.
fn label(b: &[u8], at: usize, len: usize) -> Option<String> {
    let raw = bytes(b, at, len)?;
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    let text = String::from_utf8_lossy(&raw[..end]);
    let text = text.trim_end();
    (!text.is_empty()).then(|| text.to_string())
}

/// A 16-byte UUID as `8-4-4-4-12` lower-case hex; all zeros means none.
fn uuid(b: &[u8], at: usize) -> Option<String> {
    let u = bytes(b, at, 16)?;
    if u.iter().all(|&x| x == 0) {
        return None;
    }
    let h = hex::encode(u);
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn fs(fs_type: &str, uuid: Option<String>, label: Option<String>) -> Option<Filesystem> {
    Some(Filesystem {
        fs_type: fs_type.to_string(),
        uuid,
        label,
    })
}

/// LUKS1 and LUKS2: magic, big-endian version, the UUID as text at 168;
/// LUKS2 has a label at 24.
fn luks(b: &[u8]) -> Option<Filesystem> {
    if bytes(b, 0, 6)? != b"LUKS\xba\xbe" {
        return None;
    }
    let version = u16::from_be_bytes(bytes(b, 6, 2)?.try_into().ok()?);
    let name = if version == 2 { label(b, 24, 48) } else { None };
    fs("crypto_LUKS", label(b, 168, 40), name)
}

/// An LVM2 physical volume: a `LABELONE` label in one of the first four
/// sectors, its PV UUID (32 characters) shown in LVM's 6-4-4-4-4-4-6 groups.
fn lvm2(b: &[u8]) -> Option<Filesystem> {
    for sector in 0..4 {
        let at = sector * 512;
        if bytes(b, at, 8)? != b"LABELONE" || bytes(b, at + 24, 8)? != b"LVM2 001" {
            continue;
        }
        let header = at + le32(b, at + 20)? as usize;
        let mut rest = bytes(b, header, 32)?;
        let mut groups = Vec::new();
        for n in [6, 4, 4, 4, 4, 4, 6] {
            let (g, r) = rest.split_at(n);
            groups.push(String::from_utf8_lossy(g));
            rest = r;
        }
        return fs("LVM2_member", Some(groups.join("-")), None);
    }
    None
}

/// XFS: `XFSB`, the UUID at 32, a 12-byte label at 108.
fn xfs(b: &[u8]) -> Option<Filesystem> {
    if bytes(b, 0, 4)? != b"XFSB" {
        return None;
    }
    fs("xfs", uuid(b, 32), label(b, 108, 12))
}

/// ext2/3/4 (and an external ext journal, `jbd`): the superblock at 1024,
/// magic 0xEF53; the type follows from the feature flags the way libblkid
/// tells them apart.
fn ext(b: &[u8]) -> Option<Filesystem> {
    const SB: usize = 1024;
    if le16(b, SB + 0x38)? != 0xEF53 {
        return None;
    }
    let compat = le32(b, SB + 0x5C)?;
    let incompat = le32(b, SB + 0x60)?;
    let ro_compat = le32(b, SB + 0x64)?;
    let flags = le32(b, SB + 0x160)?;
    const HAS_JOURNAL: u32 = 0x4;
    const JOURNAL_DEV: u32 = 0x8;
    const TEST_FILESYS: u32 = 0x4;
    // Features ext3 (and ext2) drivers know; anything else means ext4.
    const RO_SUPP: u32 = 0x1 | 0x2 | 0x4; // sparse_super, large_file, btree_dir
    const EXT3_INCOMPAT_SUPP: u32 = 0x2 | 0x4 | 0x10; // filetype, recover, meta_bg
    const EXT2_INCOMPAT_SUPP: u32 = 0x2 | 0x10;
    let beyond_ext3 = ro_compat & !RO_SUPP != 0 || incompat & !EXT3_INCOMPAT_SUPP != 0;
    let fs_type = if incompat & JOURNAL_DEV != 0 {
        "jbd"
    } else if flags & TEST_FILESYS != 0 {
        "ext4dev"
    } else if beyond_ext3 {
        "ext4"
    } else if compat & HAS_JOURNAL != 0 {
        "ext3"
    } else if incompat & !EXT2_INCOMPAT_SUPP == 0 {
        "ext2"
    } else {
        return None;
    };
    fs(fs_type, uuid(b, SB + 0x68), label(b, SB + 0x78, 16))
}

/// btrfs: the superblock at 64 KiB, magic `_BHRfS_M` at +64, the filesystem
/// UUID at +32 and a 256-byte label at +299.
fn btrfs(b: &[u8]) -> Option<Filesystem> {
    const SB: usize = 0x10000;
    if bytes(b, SB + 64, 8)? != b"_BHRfS_M" {
        return None;
    }
    fs("btrfs", uuid(b, SB + 32), label(b, SB + 299, 256))
}

/// squashfs (either byte order); it has neither UUID nor label.
fn squashfs(b: &[u8]) -> Option<Filesystem> {
    let magic = bytes(b, 0, 4)?;
    (magic == b"hsqs" || magic == b"sqsh").then(|| Filesystem {
        fs_type: "squashfs".into(),
        uuid: None,
        label: None,
    })
}

/// FAT12/16/32: a boot sector with sane geometry and a FAT type string; the
/// volume serial is the UUID (`XXXX-XXXX`), the boot sector's label the
/// label (`NO NAME` means none).
fn vfat(b: &[u8]) -> Option<Filesystem> {
    if bytes(b, 510, 2)? != [0x55, 0xAA] {
        return None;
    }
    let sector_size = le16(b, 11)?;
    let cluster = *b.get(13)?;
    if !sector_size.is_power_of_two() || !(512..=4096).contains(&sector_size) {
        return None;
    }
    if cluster == 0 || !cluster.is_power_of_two() || *b.get(16)? == 0 {
        return None; // no sectors per cluster, or no FATs
    }
    // FAT32 keeps its extended boot record 28 bytes later than FAT12/16.
    let ebr = if bytes(b, 82, 8)? == b"FAT32   " {
        64
    } else if matches!(bytes(b, 54, 8)?, b"FAT12   " | b"FAT16   " | b"FAT     ") {
        36
    } else {
        return None;
    };
    // 0x29: serial and label present.
    if *b.get(ebr + 2)? != 0x29 {
        return fs("vfat", None, None);
    }
    let serial = le32(b, ebr + 3)?;
    let uuid = format!("{:04X}-{:04X}", serial >> 16, serial & 0xffff);
    let name = label(b, ebr + 7, 11).filter(|l| l != "NO NAME");
    fs("vfat", Some(uuid), name)
}

/// Linux swap: `SWAPSPACE2` in the last 10 bytes of the first page (page
/// sizes 4 to 64 KiB); UUID and label follow the 1 KiB boot block.
fn swap(b: &[u8]) -> Option<Filesystem> {
    for page in [4096usize, 8192, 16384, 65536] {
        match bytes(b, page - 10, 10) {
            Some(b"SWAPSPACE2") => return fs("swap", uuid(b, 1024 + 12), label(b, 1024 + 28, 16)),
            Some(b"SWAP-SPACE") => return fs("swap", None, None),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::os::unix::fs::symlink;
    use std::process::Command;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::testing::{scan, scan_with, text};
    use crate::tables::{Op, TableEnv};

    /// `blkid -p -o export` of an image: TYPE, UUID and LABEL.
    fn blkid(image: &Path) -> BTreeMap<String, String> {
        let out = Command::new("blkid")
            .args(["-p", "-o", "export"])
            .arg(image)
            .output()
            .expect("blkid is needed: apt-get install util-linux (or fdisk on newer Debian)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            // The export format shell-escapes with backslashes.
            .map(|(k, v)| (k.to_string(), unescape(v)))
            .collect()
    }

    fn unescape(v: &str) -> String {
        let mut out = String::new();
        let mut chars = v.chars();
        while let Some(c) = chars.next() {
            out.push(if c == '\\' {
                chars.next().unwrap_or(c)
            } else {
                c
            });
        }
        out
    }

    fn agrees_with_blkid(image: &Path) -> Filesystem {
        let ours = probe(image).unwrap_or_else(|| panic!("{}: nothing found", image.display()));
        let theirs = blkid(image);
        assert_eq!(
            Some(&ours.fs_type),
            theirs.get("TYPE"),
            "{}",
            image.display()
        );
        assert_eq!(
            ours.uuid.as_ref(),
            theirs.get("UUID"),
            "{}",
            image.display()
        );
        assert_eq!(
            ours.label.as_ref(),
            theirs.get("LABEL"),
            "{}",
            image.display()
        );
        ours
    }

    fn run(cmd: &mut Command, install: &str) {
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}; install it with {install}"));
        assert!(status.success(), "{cmd:?}");
    }

    /// Images made by the real tools, read by us and by blkid.
    #[test]
    fn probes_ext_and_swap_like_blkid() {
        let dir = tempfile::tempdir().unwrap();
        for (name, args) in [
            ("ext4.img", &["-t", "ext4"][..]),
            ("ext3.img", &["-t", "ext3"][..]),
            ("ext2.img", &["-t", "ext2"][..]),
        ] {
            let img = dir.path().join(name);
            std::fs::write(&img, vec![0u8; 4 << 20]).unwrap();
            run(
                Command::new("mke2fs")
                    .args([
                        "-q",
                        "-F",
                        "-L",
                        "my data",
                        "-U",
                        "0f3c6a52-8b9e-4d1f-a2b3-c4d5e6f70819",
                    ])
                    .args(args)
                    .arg(&img),
                "apt-get install e2fsprogs",
            );
            let found = agrees_with_blkid(&img);
            assert_eq!(found.fs_type, name.trim_end_matches(".img"));
            assert_eq!(
                found.uuid.as_deref(),
                Some("0f3c6a52-8b9e-4d1f-a2b3-c4d5e6f70819")
            );
            assert_eq!(found.label.as_deref(), Some("my data"));
        }
        let img = dir.path().join("swap.img");
        std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
        run(
            Command::new("mkswap")
                .args(["-L", "swappy", "-U", "11111111-2222-3333-4444-555555555555"])
                .arg(&img)
                .stdout(std::process::Stdio::null()),
            "apt-get install util-linux",
        );
        let found = agrees_with_blkid(&img);
        assert_eq!(found.fs_type, "swap");
        assert_eq!(found.label.as_deref(), Some("swappy"));
    }

    /// A FAT16 boot sector as mkfs.fat writes it, and a LUKS1 header, both
    /// laid out by hand from their specifications; blkid must agree.
    #[test]
    fn probes_hand_made_vfat_and_luks1_like_blkid() {
        let dir = tempfile::tempdir().unwrap();
        let mut fat = vec![0u8; 1 << 20];
        fat[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
        fat[3..11].copy_from_slice(b"mkfs.fat");
        fat[11..13].copy_from_slice(&512u16.to_le_bytes()); // bytes per sector
        fat[13] = 4; // sectors per cluster
        fat[14..16].copy_from_slice(&4u16.to_le_bytes()); // reserved sectors
        fat[16] = 2; // FATs
        fat[17..19].copy_from_slice(&512u16.to_le_bytes()); // root entries
        fat[19..21].copy_from_slice(&2048u16.to_le_bytes()); // total sectors
        fat[21] = 0xF8; // media
        fat[22..24].copy_from_slice(&2u16.to_le_bytes()); // sectors per FAT
        fat[24..26].copy_from_slice(&32u16.to_le_bytes());
        fat[26..28].copy_from_slice(&64u16.to_le_bytes());
        fat[36] = 0x80; // drive number
        fat[38] = 0x29; // extended boot signature
        fat[39..43].copy_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        fat[43..54].copy_from_slice(b"BOOTDISK   ");
        fat[54..62].copy_from_slice(b"FAT16   ");
        fat[510] = 0x55;
        fat[511] = 0xAA;
        // Both FATs start with the media byte and end-of-chain markers.
        for start in [4 * 512, 6 * 512] {
            fat[start..start + 4].copy_from_slice(&[0xF8, 0xFF, 0xFF, 0xFF]);
        }
        // The root directory's volume label entry, as mkfs.fat writes it.
        let root = 8 * 512;
        fat[root..root + 11].copy_from_slice(b"BOOTDISK   ");
        fat[root + 11] = 0x08;
        let img = dir.path().join("fat.img");
        std::fs::write(&img, &fat).unwrap();
        let found = agrees_with_blkid(&img);
        assert_eq!(
            found,
            Filesystem {
                fs_type: "vfat".into(),
                uuid: Some("1A2B-3C4D".into()),
                label: Some("BOOTDISK".into()),
            }
        );

        let mut luks = vec![0u8; 1 << 20];
        luks[0..6].copy_from_slice(b"LUKS\xba\xbe");
        luks[6..8].copy_from_slice(&1u16.to_be_bytes());
        luks[8..11].copy_from_slice(b"aes");
        luks[40..51].copy_from_slice(b"xts-plain64");
        luks[72..78].copy_from_slice(b"sha256");
        luks[104..108].copy_from_slice(&4096u32.to_be_bytes()); // payload offset
        luks[108..112].copy_from_slice(&64u32.to_be_bytes()); // key bytes
        let id = b"5b7f4f2e-3f52-4c1c-9d36-3c2f8e1e4a10";
        luks[168..168 + id.len()].copy_from_slice(id);
        let img = dir.path().join("luks.img");
        std::fs::write(&img, &luks).unwrap();
        let found = agrees_with_blkid(&img);
        assert_eq!(found.fs_type, "crypto_LUKS");
        assert_eq!(
            found.uuid.as_deref(),
            Some("5b7f4f2e-3f52-4c1c-9d36-3c2f8e1e4a10")
        );
    }

    /// Superblocks blkid insists on checksumming, laid out from their
    /// on-disk formats with values worked out by hand.
    #[test]
    fn probes_xfs_btrfs_lvm_squashfs_headers() {
        let mut b = vec![0u8; PROBE_BYTES as usize];
        b[0..4].copy_from_slice(b"XFSB");
        b[32..48].copy_from_slice(&[
            0x2e, 0x9d, 0x47, 0x10, 0x88, 0x1c, 0x4b, 0x3a, 0x9f, 0x00, 0x11, 0x22, 0x33, 0x44,
            0x55, 0x66,
        ]);
        b[108..115].copy_from_slice(b"scratch");
        assert_eq!(
            identify_bytes(&b),
            Some(Filesystem {
                fs_type: "xfs".into(),
                uuid: Some("2e9d4710-881c-4b3a-9f00-112233445566".into()),
                label: Some("scratch".into()),
            })
        );

        let mut b = vec![0u8; PROBE_BYTES as usize];
        b[0x10040..0x10048].copy_from_slice(b"_BHRfS_M");
        b[0x10020..0x10030].copy_from_slice(&[0xab; 16]);
        b[0x10000 + 299..0x10000 + 303].copy_from_slice(b"pool");
        assert_eq!(
            identify_bytes(&b),
            Some(Filesystem {
                fs_type: "btrfs".into(),
                uuid: Some("abababab-abab-abab-abab-abababababab".into()),
                label: Some("pool".into()),
            })
        );

        // pvcreate writes the label to sector 1; the PV header follows it at 32.
        let mut b = vec![0u8; PROBE_BYTES as usize];
        b[512..520].copy_from_slice(b"LABELONE");
        b[512 + 20..512 + 24].copy_from_slice(&32u32.to_le_bytes());
        b[512 + 24..512 + 32].copy_from_slice(b"LVM2 001");
        b[512 + 32..512 + 64].copy_from_slice(b"Xw3ZcT9qK1bLmN0pQrStUvWxYz012345");
        assert_eq!(
            identify_bytes(&b).and_then(|f| f.uuid),
            Some("Xw3ZcT-9qK1-bLmN-0pQr-StUv-WxYz-012345".into())
        );

        let mut b = vec![0u8; 4096];
        b[0..4].copy_from_slice(b"hsqs");
        assert_eq!(
            identify_bytes(&b).map(|f| f.fs_type),
            Some("squashfs".into())
        );
        assert_eq!(identify_bytes(&[0u8; 100]), None);
        assert_eq!(identify_bytes(&vec![0u8; PROBE_BYTES as usize]), None);
    }

    /// A sysfs tree in the kernel's layout: a SCSI disk with two
    /// partitions, a device-mapper device on the second, a loop device;
    /// udev knows one partition.
    #[test]
    fn reads_a_sysfs_tree() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path().join("sys");
        let disk =
            sys.join("devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda");
        let w = |dir: &Path, name: &str, value: &str| {
            std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
            std::fs::write(dir.join(name), value).unwrap();
        };
        w(
            &disk,
            "uevent",
            "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n",
        );
        w(&disk, "dev", "8:0\n");
        w(&disk, "size", "1000215216\n");
        w(&disk, "queue/logical_block_size", "512\n");
        w(&disk, "device/model", "Samsung SSD 860 \n");
        w(&disk, "device/vendor", "ATA     \n");
        w(
            &disk,
            "device/wwid",
            "t10.ATA     Samsung SSD 860 EVO 500GB               S3Z1NB0K123456A\n",
        );
        std::fs::create_dir_all(disk.join("slaves")).unwrap();
        for (n, minor, size) in [(1, 1, "1048576"), (2, 2, "999164559")] {
            let p = disk.join(format!("sda{n}"));
            w(
                &p,
                "uevent",
                &format!("MAJOR=8\nMINOR={minor}\nDEVNAME=sda{n}\nDEVTYPE=partition\n"),
            );
            w(&p, "dev", &format!("8:{minor}\n"));
            w(&p, "partition", &format!("{n}\n"));
            w(&p, "size", size);
        }
        let dm = sys.join("devices/virtual/block/dm-0");
        w(
            &dm,
            "uevent",
            "MAJOR=254\nMINOR=0\nDEVNAME=dm-0\nDEVTYPE=disk\n",
        );
        w(&dm, "dev", "254:0\n");
        w(&dm, "size", "999131791\n");
        w(&dm, "queue/logical_block_size", "512\n");
        std::fs::create_dir_all(dm.join("slaves")).unwrap();
        symlink(
            "../../../pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda2",
            dm.join("slaves/sda2"),
        )
        .unwrap();
        let lo = sys.join("devices/virtual/block/loop0");
        w(
            &lo,
            "uevent",
            "MAJOR=7\nMINOR=0\nDEVNAME=loop0\nDEVTYPE=disk\n",
        );
        w(&lo, "dev", "7:0\n");
        w(&lo, "size", "0\n");
        w(&lo, "queue/logical_block_size", "4096\n");
        let class = sys.join("class/block");
        std::fs::create_dir_all(&class).unwrap();
        for (name, target) in [
            ("sda", "../../devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda"),
            ("sda1", "../../devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda1"),
            ("sda2", "../../devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda2"),
            ("dm-0", "../../devices/virtual/block/dm-0"),
            ("loop0", "../../devices/virtual/block/loop0"),
            ("gone", "../../devices/virtual/block/gone"),
        ] {
            symlink(target, class.join(name)).unwrap();
        }
        let udev = root.path().join("udev");
        std::fs::create_dir_all(&udev).unwrap();
        std::fs::write(
            udev.join("b8:1"),
            "S:disk/by-uuid/6C2B-1A0F\nE:ID_FS_UUID=6C2B-1A0F\nE:ID_FS_UUID_ENC=6C2B-1A0F\n\
             E:ID_FS_LABEL=EFI_System\nE:ID_FS_LABEL_ENC=EFI\\x20System\nE:ID_FS_TYPE=vfat\n",
        )
        .unwrap();
        // udev knows the disk: no filesystem on it, whatever the device says.
        std::fs::write(udev.join("b8:0"), "E:ID_PART_TABLE_TYPE=gpt\n").unwrap();
        // dm-0 is only known to its superblock: an ext4 image as /dev/dm-0.
        let dev = root.path().join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        let img = dev.join("dm-0");
        std::fs::write(&img, vec![0u8; 4 << 20]).unwrap();
        run(
            Command::new("mke2fs")
                .args([
                    "-q",
                    "-F",
                    "-t",
                    "ext4",
                    "-U",
                    "a8f1c1de-2c4a-4d0e-8e43-7f1f0b5f9d21",
                    "-L",
                    "root",
                ])
                .arg(&img),
            "apt-get install e2fsprogs",
        );

        let env = TableEnv {
            paths: HostPaths {
                sysfs: sys.clone(),
                dev: dev.clone(),
                udev_data: udev.clone(),
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        let rows = scan(&BlockDevices, &env);
        let got: Vec<Vec<Value>> = rows.iter().map(|r| r.values().to_vec()).collect();
        let t = |s: &str| Value::Text(s.into());
        let (model, vendor) = (t("Samsung SSD 860"), t("ATA"));
        let serial = t("t10.ATA     Samsung SSD 860 EVO 500GB               S3Z1NB0K123456A");
        let n = || Value::Null;
        assert_eq!(
            got,
            vec![
                vec![
                    t("/dev/dm-0"),
                    t("/dev/sda2"),
                    vendor.clone(),
                    model.clone(),
                    serial.clone(),
                    Value::Integer(999131791),
                    Value::Integer(512),
                    t("a8f1c1de-2c4a-4d0e-8e43-7f1f0b5f9d21"),
                    t("ext4"),
                    t("root")
                ],
                vec![
                    t("/dev/loop0"),
                    t(""),
                    t(""),
                    t(""),
                    t(""),
                    Value::Integer(0),
                    Value::Integer(4096),
                    n(),
                    n(),
                    n()
                ],
                vec![
                    t("/dev/sda"),
                    t(""),
                    vendor.clone(),
                    model.clone(),
                    serial.clone(),
                    Value::Integer(1000215216),
                    Value::Integer(512),
                    n(),
                    n(),
                    n()
                ],
                vec![
                    t("/dev/sda1"),
                    t("/dev/sda"),
                    vendor.clone(),
                    model.clone(),
                    serial.clone(),
                    Value::Integer(1048576),
                    Value::Integer(512),
                    t("6C2B-1A0F"),
                    t("vfat"),
                    t("EFI System")
                ],
                vec![
                    t("/dev/sda2"),
                    t("/dev/sda"),
                    vendor,
                    model,
                    serial,
                    Value::Integer(999164559),
                    Value::Integer(512),
                    n(),
                    n(),
                    n()
                ],
            ]
        );

        // A name look-up still inherits from the parent it does not return.
        let rows = scan_with(
            &BlockDevices,
            &env,
            &[("name", Op::Eq, vec![t("/dev/dm-0"), t("/dev/nope")])],
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(text(&rows[0], "model"), "Samsung SSD 860");

        // No sysfs at all: no rows.
        let env = TableEnv {
            paths: HostPaths {
                sysfs: root.path().join("nothing"),
                ..HostPaths::default()
            },
            ..TableEnv::default()
        };
        assert!(scan(&BlockDevices, &env).is_empty());
    }

    /// This host's devices against lsblk, which reads sysfs and udev (or
    /// blkid) itself.
    #[test]
    fn matches_lsblk() {
        let out = Command::new("lsblk")
            .args([
                "-J",
                "-b",
                "-l",
                "-a",
                "-o",
                "NAME,PKNAME,TYPE,VENDOR,MODEL,SIZE,LOG-SEC,UUID,FSTYPE,LABEL",
            ])
            .output()
            .expect("lsblk is needed: apt-get install util-linux");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let devices = json["blockdevices"].as_array().unwrap();
        let rows = scan(&BlockDevices, &TableEnv::default());
        let ours: BTreeSet<String> = rows.iter().map(|r| text(r, "name")).collect();
        let theirs: BTreeSet<String> = devices
            .iter()
            .map(|d| format!("/dev/{}", d["name"].as_str().unwrap()))
            .collect();
        assert_eq!(ours, theirs);
        assert!(!ours.is_empty(), "no block devices at all?");
        let s = |v: &serde_json::Value| v.as_str().map(|s| s.trim().to_string());
        for d in devices {
            let name = format!("/dev/{}", d["name"].as_str().unwrap());
            let row = rows.iter().find(|r| text(r, "name") == name).unwrap();
            let parent = s(&d["pkname"])
                .map(|p| format!("/dev/{p}"))
                .unwrap_or_default();
            assert_eq!(text(row, "parent"), parent, "{name}");
            assert_eq!(
                row.get("size"),
                Some(&Value::Integer(d["size"].as_i64().unwrap() / 512)),
                "{name}"
            );
            assert_eq!(
                row.get("block_size"),
                Some(&Value::Integer(d["log-sec"].as_i64().unwrap())),
                "{name}"
            );
            // lsblk takes a partition's vendor and model from its disk too,
            // but not a stacked device's (osquery's rule, kept here).
            if matches!(d["type"].as_str(), Some("disk" | "part" | "loop" | "rom")) {
                assert_eq!(
                    text(row, "vendor"),
                    s(&d["vendor"]).unwrap_or_default(),
                    "{name}"
                );
                assert_eq!(
                    text(row, "model"),
                    s(&d["model"]).unwrap_or_default(),
                    "{name}"
                );
            }
            let opt = |c: &str| match row.get(c) {
                Some(Value::Text(t)) => Some(t.clone()),
                _ => None,
            };
            assert_eq!(opt("uuid"), s(&d["uuid"]), "{name}");
            assert_eq!(opt("type"), s(&d["fstype"]), "{name}");
            assert_eq!(opt("label"), s(&d["label"]), "{name}");
        }
    }

    #[test]
    fn ramdisk_pack_query_runs() {
        let rows = super::super::sysfs::run_pack_query("incident-response", "ramdisk");
        // No Linux filesystem is called that (it is a macOS type).
        assert!(rows.is_empty(), "{rows:?}");
    }
}
