//! `routes`: the IPv4 and IPv6 routes of every routing table (main, local,
//! policy tables), from an rtnetlink route dump as osquery reads them.
//! /proc/net/route would show the IPv4 main table only.

use std::collections::HashMap;

use super::net::ip_text;
use super::net::rtnetlink::{self, Route, AF_INET, AF_INET6};
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::routes::TABLE as SCHEMA;

pub struct Routes;

impl Table for Routes {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        // No netlink (a seccomp sandbox, say): no rows rather than a failed query.
        let Ok(routes) = rtnetlink::routes() else {
            return Ok(());
        };
        let names: HashMap<u32, String> = if ctx.used("interface") {
            rtnetlink::links()
                .map(|links| links.into_iter().map(|l| (l.index, l.name)).collect())
                .unwrap_or_default()
        } else {
            HashMap::new()
        };
        let types = ctx.eq_texts("type");
        for route in routes {
            // Multicast routing caches (RTNL_FAMILY_IPMR …) are not routes here.
            if route.family != AF_INET && route.family != AF_INET6 {
                continue;
            }
            let kind = route_type(&route);
            if types.as_ref().is_some_and(|t| !t.iter().any(|t| t == kind)) {
                continue;
            }
            let mut row = ctx.row();
            let default = if route.family == AF_INET {
                "0.0.0.0"
            } else {
                "::"
            };
            row.set(
                "destination",
                route.destination.map_or(default.to_string(), ip_text),
            )
            // The prefix length. osquery reports 0 for /32 and /128 host
            // routes, an accident of its parser; the real length is kept.
            .set("netmask", route.dst_len)
            .set_opt("gateway", route.gateway.map(ip_text))
            .set_opt("source", route.prefsrc.map(ip_text))
            .set("flags", route.flags)
            .set("mtu", route.mtu.unwrap_or(0))
            .set("metric", route.priority.unwrap_or(0))
            .set("type", kind)
            .set("hopcount", route.hoplimit.unwrap_or(0));
            // Multipath routes name no single interface.
            if let Some(oif) = route.oif {
                row.set("interface", names.get(&oif).cloned().unwrap_or_default());
            }
            out.push(row);
        }
        Ok(())
    }
}

/// osquery's names for the RTN_* route types.
fn route_type(route: &Route) -> &'static str {
    match route.route_type {
        1 => "gateway",
        2 => "local",
        3 => "broadcast",
        4 => "anycast",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::net::ipv6_text;
    use crate::tables::{Budget, IntoValue, Op, TableEnv};

    fn scan(types: Option<&str>) -> Vec<Row> {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let mut ctx = ScanContext::all("routes", SCHEMA.columns, &budget, &env);
        if let Some(t) = types {
            ctx = ctx.with_constraint("type", Op::Eq, vec![t.into_value()]);
        }
        let mut rows = Vec::new();
        Routes.generate(&ctx, &mut rows).unwrap();
        rows
    }

    struct Want {
        destination: String,
        netmask: i64,
        gateway: Option<String>,
        interface: String,
        metric: i64,
    }

    fn assert_listed(rows: &[Row], want: &Want) {
        let gateway = want.gateway.clone().map_or(Value::Null, Value::Text);
        let found = rows.iter().any(|r| {
            r.get("destination") == Some(&Value::Text(want.destination.clone()))
                && r.get("netmask") == Some(&Value::Integer(want.netmask))
                && r.get("gateway") == Some(&gateway)
                && r.get("interface") == Some(&Value::Text(want.interface.clone()))
                && r.get("metric") == Some(&Value::Integer(want.metric))
        });
        assert!(
            found,
            "{}/{} via {:?} dev {} metric {} missing",
            want.destination, want.netmask, want.gateway, want.interface, want.metric
        );
    }

    /// /proc/net/route: the IPv4 main table, hex fields in host byte order.
    #[test]
    fn covers_proc_net_route() {
        let rows = scan(None);
        let text = std::fs::read_to_string("/proc/net/route").unwrap();
        let lines: Vec<&str> = text.lines().skip(1).collect();
        let v4 = rows
            .iter()
            .filter(|r| !matches!(r.get("destination"), Some(Value::Text(d)) if d.contains(':')));
        assert!(v4.count() >= lines.len());
        for line in lines {
            let f: Vec<&str> = line.split_whitespace().collect();
            let addr = |h: &str| Ipv4Addr::from(u32::from_str_radix(h, 16).unwrap().to_ne_bytes());
            let gateway = addr(f[2]);
            assert_listed(
                &rows,
                &Want {
                    destination: addr(f[1]).to_string(),
                    netmask: i64::from(u32::from(addr(f[7])).count_ones()),
                    gateway: (!gateway.is_unspecified()).then(|| gateway.to_string()),
                    interface: f[0].to_string(),
                    metric: f[6].parse().unwrap(),
                },
            );
        }
    }

    /// /proc/net/ipv6_route: every IPv6 table; `dest plen src plen next-hop
    /// metric refcnt use flags dev`, addresses as plain hex.
    #[test]
    fn covers_proc_net_ipv6_route() {
        let rows = scan(None);
        let text = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let addr = |h: &str| Ipv6Addr::from(u128::from_str_radix(h, 16).unwrap());
            let flags = u32::from_str_radix(f[8], 16).unwrap();
            // The kernel's placeholder "unreachable" root entry is not a route.
            if f[9] == "lo" && f[5] == "ffffffff" && flags & 0x200 != 0 {
                continue;
            }
            let gateway = addr(f[4]);
            assert_listed(
                &rows,
                &Want {
                    destination: ipv6_text(addr(f[0])),
                    netmask: i64::from_str_radix(f[1], 16).unwrap(),
                    gateway: (!gateway.is_unspecified()).then(|| ipv6_text(gateway)),
                    interface: f[9].to_string(),
                    metric: i64::from_str_radix(f[5], 16).unwrap(),
                },
            );
        }
    }

    #[test]
    fn local_routes_and_type_filter() {
        let local = scan(Some("local"));
        assert!(local
            .iter()
            .all(|r| r.get("type") == Some(&Value::Text("local".into()))));
        // The local table holds a host route for 127.0.0.1 on lo.
        let lo = local
            .iter()
            .find(|r| r.get("destination") == Some(&Value::Text("127.0.0.1".into())))
            .expect("local 127.0.0.1");
        assert_eq!(lo.get("netmask"), Some(&Value::Integer(32)));
        assert_eq!(lo.get("interface"), Some(&Value::Text("lo".into())));
        assert_eq!(lo.get("source"), Some(&Value::Text("127.0.0.1".into())));
    }
}
