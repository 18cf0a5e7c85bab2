//! `interface_addresses`: every IPv4 and IPv6 address of the agent's network
//! namespace, from an rtnetlink address dump, shaped as osquery shapes
//! `getifaddrs` entries.

use std::collections::HashMap;
use std::net::IpAddr;

use super::net::rtnetlink::{self, AF_INET, AF_INET6, IFF_BROADCAST};
use super::net::{ip_text, mask_text};
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::interface_addresses::TABLE as SCHEMA;

pub struct InterfaceAddresses;

impl Table for InterfaceAddresses {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        // No netlink (a seccomp sandbox, say): no rows rather than a failed query.
        let (Ok(links), Ok(addresses)) = (rtnetlink::links(), rtnetlink::addresses()) else {
            return Ok(());
        };
        let links: HashMap<u32, (String, u32)> = links
            .into_iter()
            .map(|l| (l.index, (l.name, l.flags)))
            .collect();
        for addr in addresses {
            if addr.family != AF_INET && addr.family != AF_INET6 {
                continue;
            }
            let (link_name, link_flags) = links
                .get(&addr.index)
                .map_or(("", 0), |(n, f)| (n.as_str(), *f));
            // getifaddrs' rules: IFA_LOCAL is the address when present, and
            // IFA_ADDRESS then the peer; IFA_BROADCAST takes that slot if sent.
            let Some(local) = addr.local.or(addr.address) else {
                continue;
            };
            let other_end = addr.broadcast.or(if addr.local.is_some() {
                addr.address
            } else {
                None
            });
            let mut row = ctx.row();
            // IPv4 aliases carry their label (eth0:1); IPv6 addresses do not.
            row.set("interface", addr.label.as_deref().unwrap_or(link_name))
                .set("address", address_text(local, link_name))
                .set("mask", mask_text(addr.family == AF_INET6, addr.prefix_len))
                .set("type", "unknown");
            if let Some(end) = other_end {
                let column = if link_flags & IFF_BROADCAST != 0 {
                    "broadcast"
                } else {
                    "point_to_point"
                };
                row.set(column, ip_text(end));
            }
            out.push(row);
        }
        Ok(())
    }
}

/// Link-local IPv6 addresses get their zone, `fe80::1%eth0`, as getnameinfo
/// writes them for getifaddrs' scoped addresses.
fn address_text(addr: IpAddr, link: &str) -> String {
    match addr {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let link_local = s[0] & 0xffc0 == 0xfe80 || s[0] & 0xff0f == 0xff02;
            if link_local && !link.is_empty() {
                format!("{}%{link}", ip_text(addr))
            } else {
                ip_text(addr)
            }
        }
        IpAddr::V4(_) => ip_text(addr),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::Ipv6Addr;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::net::ipv6_text;
    use crate::tables::{Budget, TableEnv};

    fn scan() -> Vec<HashMap<&'static str, Option<String>>> {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("interface_addresses", SCHEMA.columns, &budget, &env);
        let mut rows = Vec::new();
        InterfaceAddresses.generate(&ctx, &mut rows).unwrap();
        rows.iter()
            .map(|r| {
                SCHEMA
                    .columns
                    .iter()
                    .map(|c| {
                        let v = match r.get(c.name) {
                            Some(Value::Text(t)) => Some(t.clone()),
                            Some(Value::Null) => None,
                            other => panic!("{}: {other:?}", c.name),
                        };
                        (c.name, v)
                    })
                    .collect()
            })
            .collect()
    }

    fn has(rows: &[HashMap<&str, Option<String>>], iface: &str, addr: &str) -> bool {
        rows.iter().any(|r| {
            r["interface"].as_deref() == Some(iface) && r["address"].as_deref() == Some(addr)
        })
    }

    #[test]
    fn loopback_has_127_0_0_1() {
        let rows = scan();
        let lo = rows
            .iter()
            .find(|r| r["address"].as_deref() == Some("127.0.0.1"))
            .expect("127.0.0.1");
        assert_eq!(lo["interface"].as_deref(), Some("lo"));
        assert_eq!(lo["mask"].as_deref(), Some("255.0.0.0"));
        // lo has no IFF_BROADCAST: getifaddrs reports its own address as the peer.
        assert_eq!(lo["point_to_point"].as_deref(), Some("127.0.0.1"));
        assert_eq!(lo["broadcast"], None);
        assert_eq!(lo["type"].as_deref(), Some("unknown"));
    }

    /// Every IPv6 address of /proc/net/if_inet6 (hex address, ifindex,
    /// prefix length, scope, flags, name) is listed with its mask.
    #[test]
    fn ipv6_addresses_match_if_inet6() {
        let rows = scan();
        let text = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
        let mut expected = 0;
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let addr = Ipv6Addr::from(u128::from_str_radix(f[0], 16).unwrap());
            let prefix = u8::from_str_radix(f[2], 16).unwrap();
            let name = f[5];
            let scope_link = f[3] == "20";
            let shown = if scope_link {
                format!("{addr}%{name}")
            } else {
                ipv6_text(addr)
            };
            let row = rows
                .iter()
                .find(|r| r["address"].as_deref() == Some(shown.as_str()))
                .unwrap_or_else(|| panic!("{shown} missing"));
            assert_eq!(row["interface"].as_deref(), Some(name));
            assert_eq!(row["mask"], Some(mask_text(true, prefix)));
            expected += 1;
        }
        let v6 = rows
            .iter()
            .filter(|r| r["mask"].as_deref().is_some_and(|m| m.contains(':')))
            .count();
        assert_eq!(v6, expected);
    }

    /// Every local IPv4 address the kernel routes for (`/32 host LOCAL`
    /// leaves of /proc/net/fib_trie) is an interface address.
    #[test]
    fn ipv4_addresses_cover_fib_trie_locals() {
        let rows = scan();
        let trie = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
        let mut locals = HashSet::new();
        let mut leaf = "";
        for line in trie.lines() {
            let t = line.trim_start();
            if let Some(addr) = t.strip_prefix("|-- ") {
                leaf = addr;
            } else if t == "/32 host LOCAL" {
                locals.insert(leaf.to_string());
            }
        }
        assert!(locals.contains("127.0.0.1"));
        for addr in &locals {
            assert!(
                rows.iter().any(|r| r["address"].as_ref() == Some(addr)),
                "{addr} missing"
            );
        }
        assert!(has(&rows, "lo", "127.0.0.1"));
    }
}
