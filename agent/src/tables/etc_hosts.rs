//! `etc_hosts`: one row per address line of the hosts file, its names
//! joined by single spaces; a `#` ends the line.

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::etc_hosts::TABLE as SCHEMA;

pub struct EtcHosts;

impl Table for EtcHosts {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let Some(text) = read_text(&ctx.env().paths.etc_hosts) else {
            return Ok(());
        };
        for (address, hostnames) in parse(&text) {
            let mut row = ctx.row();
            row.set("address", address)
                .set("hostnames", hostnames)
                .set("pid_with_namespace", 0i64);
            out.push(row);
        }
        Ok(())
    }
}

/// (address, hostnames) per line that is neither blank nor a comment.
fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let address = words.next().filter(|w| !w.starts_with('#'))?;
            let names: Vec<&str> = words.take_while(|w| !w.starts_with('#')).collect();
            Some((address.to_string(), names.join(" ")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, TableEnv};

    fn scan(env: &TableEnv) -> Vec<(String, String)> {
        let budget = Budget::unlimited();
        let ctx = ScanContext::all("etc_hosts", SCHEMA.columns, &budget, env);
        let mut rows = Vec::new();
        EtcHosts.generate(&ctx, &mut rows).unwrap();
        rows.iter()
            .map(|r| match (r.get("address"), r.get("hostnames")) {
                (Some(Value::Text(a)), Some(Value::Text(h))) => (a.clone(), h.clone()),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn parses_a_hosts_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(
            &path,
            "# The following lines are desirable for IPv4 capable hosts\n\
             127.0.0.1\tlocalhost\n\
             \n\
             \x20\x20 \t\n\
             127.0.1.1   vm.example.org    vm\t# this host\n\
             ::1     localhost ip6-localhost ip6-loopback\r\n\
             \x20  #indented comment\n\
             10.0.0.9\n\
             192.0.2.7 web#1 web\n",
        )
        .unwrap();
        let mut env = TableEnv::default();
        env.paths.etc_hosts = path;
        let expected = [
            ("127.0.0.1", "localhost"),
            ("127.0.1.1", "vm.example.org vm"),
            ("::1", "localhost ip6-localhost ip6-loopback"),
            ("10.0.0.9", ""),
            // osquery ends the names only at a word that starts with '#'.
            ("192.0.2.7", "web#1 web"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, h)| (a.to_string(), h.to_string()))
            .collect();
        assert_eq!(scan(&env), expected);

        env.paths.etc_hosts = dir.path().join("missing");
        assert!(scan(&env).is_empty());
    }

    /// Every name the real hosts file gives resolves, through the
    /// resolver's own `files` parser (`getent hosts`), to an address the
    /// table lists for it.
    #[test]
    fn real_hosts_file_agrees_with_getent() {
        use std::collections::{BTreeMap, BTreeSet};
        use std::net::IpAddr;

        let mut ours: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
        for (address, names) in scan(&TableEnv::default()) {
            let Ok(ip) = address.parse::<IpAddr>() else {
                continue;
            };
            for name in names.split(' ').filter(|n| !n.is_empty()) {
                ours.entry(name.to_string()).or_default().insert(ip);
            }
        }
        for (name, addresses) in ours {
            let out = std::process::Command::new("getent")
                .args(["-s", "files", "ahosts", &name])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let resolved: BTreeSet<IpAddr> = text
                .lines()
                .filter_map(|l| l.split_whitespace().next()?.parse().ok())
                .collect();
            assert!(
                !resolved.is_disjoint(&addresses),
                "{name}: {addresses:?} vs {text}"
            );
        }
    }
}
