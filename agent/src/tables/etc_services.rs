//! `etc_services`: one row per `name port/protocol [aliases…] [# comment]`
//! line of the services file.

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::etc_services::TABLE as SCHEMA;

pub struct EtcServices;

#[derive(Debug, PartialEq)]
struct Service {
    name: String,
    port: Option<i64>,
    protocol: String,
    aliases: String,
    comment: String,
}

impl Table for EtcServices {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let Some(text) = read_text(&ctx.env().paths.etc_services) else {
            return Ok(());
        };
        for s in parse(&text) {
            let mut row = ctx.row();
            row.set("name", s.name)
                .set_opt("port", s.port)
                .set("protocol", s.protocol)
                .set("aliases", s.aliases)
                .set("comment", s.comment);
            out.push(row);
        }
        Ok(())
    }
}

fn parse(text: &str) -> Vec<Service> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Service> {
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    // Everything after the first '#' is the comment; osquery keeps further
    // '#'-separated parts, rejoined with " # ".
    let mut parts = line.split('#');
    let service = parts.next().unwrap_or("");
    let comment: Vec<&str> = parts.map(str::trim).filter(|p| !p.is_empty()).collect();
    let mut words = service.split_whitespace();
    let name = words.next()?;
    let port_proto: Vec<&str> = words.next()?.split('/').filter(|p| !p.is_empty()).collect();
    let [port, protocol] = port_proto.as_slice() else {
        return None;
    };
    Some(Service {
        name: name.to_string(),
        port: port.parse().ok(),
        protocol: protocol.to_string(),
        aliases: words.collect::<Vec<_>>().join(" "),
        comment: comment.join(" # "),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::testing::text;
    use crate::tables::TableEnv;

    fn scan(env: &TableEnv) -> Vec<Row> {
        crate::tables::testing::scan(&EtcServices, env)
    }

    #[test]
    fn parses_a_services_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services");
        std::fs::write(
            &path,
            "# Network services, Internet style\n\
             \n\
             tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer\n\
             ssh\t\t22/tcp\n\
             discard\t\t9/udp\t\tsink null\n\
             http 80/tcp www # WorldWideWeb HTTP # extra\n\
             broken 80\n\
             also/broken 1/2/3\n",
        )
        .unwrap();
        let mut env = TableEnv::default();
        env.paths.etc_services = path;
        let rows = scan(&env);
        let got: Vec<(String, Value, String, String, String)> = rows
            .iter()
            .map(|r| {
                (
                    text(r, "name"),
                    r.get("port").unwrap().clone(),
                    text(r, "protocol"),
                    text(r, "aliases"),
                    text(r, "comment"),
                )
            })
            .collect();
        let row = |n: &str, p: i64, pr: &str, a: &str, c: &str| {
            (
                n.to_string(),
                Value::Integer(p),
                pr.to_string(),
                a.to_string(),
                c.to_string(),
            )
        };
        assert_eq!(
            got,
            [
                row("tcpmux", 1, "tcp", "", "TCP port service multiplexer"),
                row("ssh", 22, "tcp", "", ""),
                row("discard", 9, "udp", "sink null", ""),
                row("http", 80, "tcp", "www", "WorldWideWeb HTTP # extra"),
            ]
        );
        env.paths.etc_services = dir.path().join("missing");
        assert!(scan(&env).is_empty());
    }

    /// The real services file, as glibc's own parser reads it (`getent -s
    /// files services`): same names, ports, protocols and aliases.
    #[test]
    fn real_services_match_getent() {
        let out = std::process::Command::new("getent")
            .args(["-s", "files", "services"])
            .output()
            .unwrap();
        let nss: BTreeSet<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        let ours: BTreeSet<String> = scan(&TableEnv::default())
            .iter()
            .map(|r| {
                let port = match r.get("port") {
                    Some(Value::Integer(p)) => *p,
                    other => panic!("{other:?}"),
                };
                let head = format!("{} {port}/{}", text(r, "name"), text(r, "protocol"));
                [head, text(r, "aliases")].join(" ").trim_end().to_string()
            })
            .collect();
        assert_eq!(ours, nss);
    }
}
