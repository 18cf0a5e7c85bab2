//! `interface_details`: one row per network interface of the agent's
//! namespace, from an rtnetlink link dump (type, flags, MTU, address,
//! 64-bit counters) and /sys/class/net (configured flags, speed, device).

use super::net::mac_text;
use super::net::rtnetlink::{self, Link};
use super::util::read_line;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::interface_details::TABLE as SCHEMA;

pub struct InterfaceDetails;

/// The IFF_* bits osquery takes from /sys/class/net/<if>/flags (the device's
/// configured flags) rather than from the link message, whose PROMISC and
/// ALLMULTI reflect counted users: UP, DEBUG, NOTRAILERS, NOARP, PROMISC,
/// ALLMULTI, MULTICAST, PORTSEL, AUTOMEDIA, DYNAMIC.
const SYSFS_FLAGS: u32 =
    0x1 | 0x4 | 0x20 | 0x80 | 0x100 | 0x200 | 0x1000 | 0x2000 | 0x4000 | 0x8000;

impl Table for InterfaceDetails {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        // No netlink (a seccomp sandbox, say): no rows rather than a failed query.
        let Ok(links) = rtnetlink::links() else {
            return Ok(());
        };
        for link in links {
            out.push(link_row(ctx, &link));
        }
        Ok(())
    }
}

fn link_row(ctx: &ScanContext<'_>, link: &Link) -> Row {
    let sys = format!("/sys/class/net/{}", link.name);
    let mut row = ctx.row();
    row.set("interface", &link.name)
        .set(
            "mac",
            mac_text(link.hw_address.as_deref().unwrap_or_default()),
        )
        .set("type", link.hw_type)
        .set("mtu", link.mtu.unwrap_or(0))
        // SIOCGIFMETRIC, osquery's source, is always 0 on Linux.
        .set("metric", 0i64)
        // Linux keeps no last-change time; osquery says -1.
        .set("last_change", -1i64);
    if ctx.used("flags") {
        let configured = read_line(format!("{sys}/flags"))
            .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok());
        let flags = match configured {
            Some(c) => (link.flags & !SYSFS_FLAGS) | (c & SYSFS_FLAGS),
            None => link.flags,
        };
        row.set("flags", flags);
    }
    if let Some(s) = link.stats {
        row.set("ipackets", s.rx_packets)
            .set("opackets", s.tx_packets)
            .set("ibytes", s.rx_bytes)
            .set("obytes", s.tx_bytes)
            .set("ierrors", s.rx_errors)
            .set("oerrors", s.tx_errors)
            .set("idrops", s.rx_dropped)
            .set("odrops", s.tx_dropped)
            .set("collisions", s.collisions);
    }
    if ctx.used("link_speed") {
        // Mb/s as ethtool reports it; -1 (unknown) and unreadable (down,
        // virtual) are 0, as in osquery.
        let speed = read_line(format!("{sys}/speed")).and_then(|s| s.parse::<i64>().ok());
        row.set("link_speed", speed.filter(|s| *s >= 0).unwrap_or(0));
    }
    if ctx.used("pci_slot") {
        // The parent device's bus name (0000:00:03.0, virtio0) is what drivers
        // report as their bus info; virtual interfaces have none.
        let device = std::fs::read_link(format!("{sys}/device")).ok();
        row.set_opt(
            "pci_slot",
            device.and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned())),
        );
    }
    row
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::testing::{int, text};
    use crate::tables::TableEnv;

    fn scan() -> Vec<Row> {
        crate::tables::testing::scan(&InterfaceDetails, &TableEnv::default())
    }

    fn sysfs(name: &str, file: &str) -> String {
        std::fs::read_to_string(format!("/sys/class/net/{name}/{file}"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// /proc/net/dev: `name: rx bytes packets errs drop fifo frame compressed
    /// multicast | tx bytes packets errs drop fifo colls carrier compressed`.
    fn proc_net_dev() -> HashMap<String, Vec<u64>> {
        let text = std::fs::read_to_string("/proc/net/dev").unwrap();
        text.lines()
            .skip(2)
            .filter_map(|l| {
                let (name, rest) = l.split_once(':')?;
                let nums = rest
                    .split_whitespace()
                    .map(|n| n.parse().unwrap())
                    .collect();
                Some((name.trim().to_string(), nums))
            })
            .collect()
    }

    #[test]
    fn matches_sysfs_and_proc_net_dev() {
        let before = proc_net_dev();
        let rows = scan();
        let after = proc_net_dev();

        let mut names: Vec<String> = rows.iter().map(|r| text(r, "interface")).collect();
        names.sort();
        let mut want: Vec<String> = before.keys().cloned().collect();
        want.sort();
        assert_eq!(names, want);

        for row in &rows {
            let name = text(row, "interface");
            assert_eq!(
                int(row, "mtu"),
                sysfs(&name, "mtu").parse::<i64>().unwrap(),
                "{name}"
            );
            assert_eq!(
                int(row, "type"),
                sysfs(&name, "type").parse::<i64>().unwrap(),
                "{name}"
            );
            let configured =
                i64::from_str_radix(sysfs(&name, "flags").trim_start_matches("0x"), 16).unwrap();
            assert_eq!(int(row, "flags") & 0x1, configured & 0x1, "{name} IFF_UP");
            let address = sysfs(&name, "address");
            if address.len() == 17 {
                assert_eq!(text(row, "mac"), address, "{name}");
            }
            // Counters only grow: what the scan saw lies between two reads.
            let (b, a) = (&before[&name], &after[&name]);
            for (col, i) in [
                ("ibytes", 0),
                ("ipackets", 1),
                ("ierrors", 2),
                ("obytes", 8),
                ("opackets", 9),
                ("oerrors", 10),
                ("odrops", 11),
                ("collisions", 13),
            ] {
                let v = int(row, col) as u64;
                assert!(
                    b[i] <= v && v <= a[i],
                    "{name} {col}: {} <= {v} <= {}",
                    b[i],
                    a[i]
                );
            }
            // /proc/net/dev adds missed packets to the receive drops.
            assert!(int(row, "idrops") as u64 <= a[3], "{name} idrops");
            assert_eq!(int(row, "last_change"), -1);
        }

        let lo = rows
            .iter()
            .find(|r| text(r, "interface") == "lo")
            .expect("lo");
        assert_eq!(text(lo, "mac"), "00:00:00:00:00:00");
        assert_eq!(int(lo, "type"), 772); // ARPHRD_LOOPBACK
        assert_ne!(int(lo, "flags") & 0x8, 0, "IFF_LOOPBACK");
        assert_eq!(lo.get("pci_slot"), Some(&Value::Null));
    }
}
