//! `system_info`: one row about the machine: host name, CPU (from
//! /proc/cpuinfo and sysfs), memory, and the SMBIOS strings the kernel
//! exports under /sys/class/dmi/id.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::Path;

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::system_info::TABLE as SCHEMA;

pub struct SystemInfo;

const DMI_DIR: &str = "/sys/class/dmi/id";

/// Column ← file under /sys/class/dmi/id.
const DMI_FILES: &[(&str, &str)] = &[
    ("hardware_vendor", "sys_vendor"),
    ("hardware_model", "product_name"),
    ("hardware_version", "product_version"),
    ("hardware_serial", "product_serial"),
    ("board_vendor", "board_vendor"),
    ("board_model", "board_name"),
    ("board_version", "board_version"),
    ("board_serial", "board_serial"),
];

/// Firmware UUIDs that vendors ship unset; osquery ignores them.
const PLACEHOLDER_UUIDS: &[&str] = &[
    "00000000-0000-0000-0000-000000000000",
    "03000200-0400-0500-0006-000700080009",
    "03020100-0504-0706-0809-0a0b0c0d0e0f",
    "10000000-0000-8000-0040-000000000000",
];

const CPUINFO_COLUMNS: &[&str] = &[
    "cpu_subtype",
    "cpu_brand",
    "cpu_physical_cores",
    "cpu_sockets",
    "cpu_microcode",
];

impl Table for SystemInfo {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let uname = rustix::system::uname();
        // Without a resolver call (getaddrinfo) the FQDN is the node name.
        let hostname = uname.nodename().to_string_lossy().trim().to_string();
        let mut row = ctx.row();
        row.set("hostname", hostname.as_str())
            .set("computer_name", hostname.as_str())
            .set("local_hostname", hostname.as_str())
            .set("cpu_type", uname.machine().to_string_lossy().into_owned());
        if ctx.used("uuid") {
            row.set("uuid", host_uuid(&ctx.env().paths.machine_id));
        }
        let logical = online_cpus();
        row.set(
            "cpu_logical_cores",
            if logical > 0 { logical as i64 } else { -1 },
        );
        if ctx.any_used(CPUINFO_COLUMNS) {
            let text = read_text("/proc/cpuinfo").unwrap_or_default();
            let cpu = parse_cpuinfo(&text, logical);
            row.set("cpu_subtype", cpu.subtype)
                .set("cpu_brand", cpu.brand)
                .set("cpu_microcode", cpu.microcode)
                .set_opt("cpu_sockets", cpu.sockets)
                .set("cpu_physical_cores", cpu.physical_cores);
        }
        if ctx.used("physical_memory") {
            let total = read_text("/proc/meminfo").and_then(|t| mem_total(&t));
            row.set("physical_memory", total.unwrap_or(-1));
        }
        if ctx.any_used(&DMI_FILES.iter().map(|(c, _)| *c).collect::<Vec<_>>()) {
            set_dmi(&mut row, Path::new(DMI_DIR));
        }
        out.push(row);
        Ok(())
    }
}

/// The firmware's product UUID when it is a real one, else the systemd
/// machine id in UUID form, else empty.
fn host_uuid(machine_id: &Path) -> String {
    let hw = read_text(Path::new(DMI_DIR).join("product_uuid"))
        .map(|t| t.trim().to_string())
        .filter(|u| !u.is_empty() && !PLACEHOLDER_UUIDS.contains(&u.to_lowercase().as_str()));
    hw.or_else(|| read_text(machine_id).and_then(|t| machine_id_as_uuid(t.trim())))
        .unwrap_or_default()
}

/// 32 hex digits → 8-4-4-4-12.
fn machine_id_as_uuid(id: &str) -> Option<String> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = id.to_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &id[..8],
        &id[8..12],
        &id[12..16],
        &id[16..20],
        &id[20..]
    ))
}

/// How many CPUs are online (glibc's get_nprocs, which osquery uses):
/// /sys/devices/system/cpu/online is a range list such as "0-3,8".
fn online_cpus() -> usize {
    read_text("/sys/devices/system/cpu/online")
        .and_then(|t| count_cpu_list(t.trim()))
        .unwrap_or_else(|| {
            read_text("/proc/cpuinfo")
                .map(|t| t.lines().filter(|l| l.starts_with("processor")).count())
                .unwrap_or(0)
        })
}

fn count_cpu_list(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().ok()?.checked_sub(a.parse().ok()?)? + 1,
            None => part.parse::<usize>().map(|_| 1).ok()?,
        };
    }
    (n > 0).then_some(n)
}

#[derive(Debug, PartialEq)]
struct CpuInfo {
    subtype: String,
    brand: String,
    microcode: String,
    sockets: Option<i64>,
    physical_cores: i64,
}

/// The first processor's model, brand, microcode and siblings (identical on
/// every processor), and the distinct (physical id, core id) pairs of all.
fn parse_cpuinfo(text: &str, logical: usize) -> CpuInfo {
    let mut info = CpuInfo {
        subtype: "0".into(),
        brand: String::new(),
        microcode: String::new(),
        sockets: None,
        physical_cores: 0,
    };
    let value = |line: &str| line.split_once(':').map(|(_, v)| v.trim().to_string());
    let mut first_block = true;
    let mut cores = BTreeSet::new();
    let mut physical_id = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            first_block = false;
            continue;
        }
        let key = line.split(':').next().unwrap_or("").trim();
        if key == "physical id" {
            physical_id = value(line);
        } else if key == "core id" {
            cores.insert((physical_id.clone(), value(line)));
        }
        if !first_block {
            continue;
        }
        match key {
            "model" => info.subtype = value(line).unwrap_or_default(),
            "model name" => info.brand = value(line).unwrap_or_default(),
            "microcode" => info.microcode = value(line).unwrap_or_default(),
            "siblings" => {
                let siblings: usize = value(line).and_then(|v| v.parse().ok()).unwrap_or(0);
                info.sockets = Some(if logical > 0 && siblings > 0 {
                    (logical / siblings) as i64
                } else {
                    -1
                });
            }
            _ => {}
        }
    }
    // Without topology lines (some VMs, non-x86) count logical CPUs.
    info.physical_cores = if cores.is_empty() {
        logical as i64
    } else {
        cores.len() as i64
    };
    info
}

fn mem_total(meminfo: &str) -> Option<i64> {
    let kb: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// SMBIOS strings. A machine without DMI (most VMs on ARM, containers)
/// gets empty strings as in osquery; a value we may not read is NULL.
fn set_dmi(row: &mut Row, dir: &Path) {
    if !dir.is_dir() {
        for (col, _) in DMI_FILES {
            row.set(col, "");
        }
        return;
    }
    let mut values: Vec<Option<String>> = DMI_FILES
        .iter()
        .map(|(_, file)| match std::fs::read(dir.join(file)) {
            Ok(b) => Some(String::from_utf8_lossy(&b).trim().to_string()),
            Err(e) if e.kind() == ErrorKind::NotFound => Some(String::new()),
            Err(_) => None,
        })
        .collect();
    // Lenovo puts the model in the version string and the SKU in the name.
    if values[0]
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("lenovo"))
    {
        values.swap(1, 2);
    }
    for ((col, _), v) in DMI_FILES.iter().zip(values) {
        row.set_opt(col, v);
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, TableEnv};

    fn run(cmd: &str, args: &[&str]) -> String {
        let out = Command::new(cmd).args(args).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn scan(env: &TableEnv) -> Row {
        let budget = Budget::unlimited();
        let ctx = ScanContext::all("system_info", SCHEMA.columns, &budget, env);
        let mut rows = Vec::new();
        SystemInfo.generate(&ctx, &mut rows).unwrap();
        assert_eq!(rows.len(), 1);
        rows.pop().unwrap()
    }

    #[test]
    fn matches_getconf_uname_and_lscpu() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = TableEnv::default();
        env.paths.machine_id = dir.path().join("machine-id");
        std::fs::write(&env.paths.machine_id, "3D1219C7C4C5404AAA1F6D2A48ADFDA4\n").unwrap();
        let row = scan(&env);
        let text = |c: &str| match row.get(c) {
            Some(Value::Text(t)) => t.clone(),
            other => panic!("{c}: {other:?}"),
        };
        let int = |c: &str| match row.get(c) {
            Some(Value::Integer(i)) => *i,
            other => panic!("{c}: {other:?}"),
        };
        assert_eq!(text("hostname"), run("uname", &["-n"]));
        assert_eq!(text("computer_name"), run("uname", &["-n"]));
        assert_eq!(text("cpu_type"), run("uname", &["-m"]));
        assert_eq!(
            int("cpu_logical_cores").to_string(),
            run("getconf", &["_NPROCESSORS_ONLN"])
        );
        let pages: i64 = run("getconf", &["_PHYS_PAGES"]).parse().unwrap();
        let page_size: i64 = run("getconf", &["PAGESIZE"]).parse().unwrap();
        // sysconf rounds the total down to whole pages.
        assert_eq!(int("physical_memory") / page_size, pages);

        let hw_uuid = std::fs::read_to_string("/sys/class/dmi/id/product_uuid")
            .ok()
            .map(|u| u.trim().to_string())
            .filter(|u| !PLACEHOLDER_UUIDS.contains(&u.to_lowercase().as_str()));
        let expected = hw_uuid.unwrap_or_else(|| "3d1219c7-c4c5-404a-aa1f-6d2a48adfda4".into());
        assert_eq!(text("uuid"), expected);

        // lscpu reads the same topology its own way.
        if let Ok(out) = Command::new("lscpu").args(["-p=CORE,SOCKET"]).output() {
            let cores: BTreeSet<String> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(String::from)
                .collect();
            assert_eq!(int("cpu_physical_cores"), cores.len() as i64);
        }
        if let Ok(out) = Command::new("lscpu").env("LC_ALL", "C").output() {
            let out = String::from_utf8(out.stdout).unwrap();
            if let Some(model) = out.lines().find_map(|l| l.strip_prefix("Model name:")) {
                assert_eq!(text("cpu_brand"), model.trim());
            }
            if let Some(m) = out.lines().find_map(|l| l.strip_prefix("Model:")) {
                assert_eq!(text("cpu_subtype"), m.trim());
            }
        }

        let dmi = Path::new(DMI_DIR);
        for (col, file) in DMI_FILES {
            if !dmi.is_dir() {
                assert_eq!(text(col), "", "{col}");
            } else if let Ok(v) = std::fs::read_to_string(dmi.join(file)) {
                if !matches!(*col, "hardware_model" | "hardware_version") {
                    assert_eq!(text(col), v.trim(), "{col}");
                }
            }
        }
    }

    #[test]
    fn parses_cpuinfo_and_cpu_lists() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\n\
                    model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz  \n\
                    microcode\t: 0x2006e05\nphysical id\t: 0\nsiblings\t: 4\ncore id\t\t: 0\n\n\
                    processor\t: 1\nmodel\t\t: 99\nphysical id\t: 0\ncore id\t\t: 0\n\n\
                    processor\t: 2\nphysical id\t: 1\ncore id\t\t: 0\n\n\
                    processor\t: 3\nphysical id\t: 1\ncore id\t\t: 1\n";
        assert_eq!(
            parse_cpuinfo(text, 8),
            CpuInfo {
                subtype: "85".into(),
                brand: "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz".into(),
                microcode: "0x2006e05".into(),
                sockets: Some(2),
                physical_cores: 3,
            }
        );
        let arm = parse_cpuinfo("processor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\n", 2);
        assert_eq!(arm.physical_cores, 2);
        assert_eq!(arm.subtype, "0");
        assert_eq!(arm.sockets, None);

        assert_eq!(count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("x"), None);
        assert_eq!(machine_id_as_uuid("nothex"), None);
    }
}
