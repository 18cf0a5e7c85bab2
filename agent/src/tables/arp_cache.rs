//! `arp_cache`: the IPv4 neighbour table of the agent's network namespace,
//! from /proc/net/arp (`IP address, HW type, Flags, HW address, Mask, Device`).

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::arp_cache::TABLE as SCHEMA;

pub struct ArpCache;

/// ATF_COM | ATF_PERM: a complete, static entry.
const PERMANENT_FLAGS: &str = "0x6";

impl Table for ArpCache {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        // No IPv4 in this kernel or namespace: no file, no rows.
        let Some(text) = read_text("/proc/net/arp") else {
            return Ok(());
        };
        for entry in parse_arp(&text) {
            let mut row = ctx.row();
            row.set("address", entry.address)
                .set("mac", entry.mac)
                .set("interface", entry.interface)
                .set(
                    "permanent",
                    if entry.flags == PERMANENT_FLAGS {
                        "1"
                    } else {
                        "0"
                    },
                );
            out.push(row);
        }
        Ok(())
    }
}

struct Entry<'a> {
    address: &'a str,
    flags: &'a str,
    mac: &'a str,
    interface: &'a str,
}

fn parse_arp(text: &str) -> Vec<Entry<'_>> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Exactly six columns, as osquery requires.
            (f.len() == 6).then(|| Entry {
                address: f[0],
                flags: f[2],
                mac: f[3],
                interface: f[5],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, TableEnv};

    fn scan() -> Vec<Vec<Value>> {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("arp_cache", SCHEMA.columns, &budget, &env);
        let mut rows = Vec::new();
        ArpCache.generate(&ctx, &mut rows).unwrap();
        rows.into_iter().map(|r| r.values().to_vec()).collect()
    }

    /// /proc/net/arp read here with its own column positions. Entries come and
    /// go with traffic, so a mismatch is retried a few times.
    #[test]
    fn matches_proc_net_arp() {
        let expected = || -> Vec<Vec<Value>> {
            let text = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
            text.lines()
                .skip(1)
                .map(|l| {
                    let (ip, rest) = l.split_once(' ').unwrap();
                    let cols: Vec<&str> = rest.split_whitespace().collect();
                    let permanent =
                        u32::from_str_radix(cols[1].trim_start_matches("0x"), 16).unwrap() == 6;
                    [
                        ip,
                        cols[2],
                        cols[cols.len() - 1],
                        if permanent { "1" } else { "0" },
                    ]
                    .map(|s| Value::Text(s.to_string()))
                    .to_vec()
                })
                .collect()
        };
        for attempt in 0.. {
            let (before, rows, after) = (expected(), scan(), expected());
            if rows == before || rows == after {
                break;
            }
            assert!(
                attempt < 5,
                "{rows:?} differs from /proc/net/arp {before:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    #[test]
    fn parses_entries_and_permanence() {
        let text =
            "IP address       HW type     Flags       HW address            Mask     Device\n\
                    192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0\n\
                    192.0.2.9        0x1         0x6         02:fc:00:00:00:09     *        eth1\n\
                    192.0.2.7        0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        let entries = parse_arp(text);
        let got: Vec<(&str, &str, &str, &str)> = entries
            .iter()
            .map(|e| (e.address, e.mac, e.interface, e.flags))
            .collect();
        assert_eq!(
            got,
            vec![
                ("192.0.2.1", "02:fc:00:00:00:05", "eth0", "0x2"),
                ("192.0.2.9", "02:fc:00:00:00:09", "eth1", "0x6"),
                ("192.0.2.7", "00:00:00:00:00:00", "eth0", "0x0"),
            ]
        );
    }
}
