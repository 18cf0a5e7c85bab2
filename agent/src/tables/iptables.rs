//! `iptables`: the IPv4 packet filter's chains and rules. osquery reads them
//! with libiptc; without it we run `iptables-save -c` (the path is
//! `HostPaths::iptables_save`) and parse its output, which also covers the
//! nftables-backed iptables of current distributions. No binary, or a
//! failing one (not root, no kernel support): no rows.
//!
//! Rows follow osquery: per chain, one row per rule and then one for the
//! chain itself (rule columns NULL). `packets` and `bytes` are the chain
//! policy's counters on every row of the chain, as osquery reports them.

use std::io::Read;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::types::Value;

use super::net::mask_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::iptables::TABLE as SCHEMA;

pub struct Iptables;

/// iptables-save answers in milliseconds; a hung one must not hold the query.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Protocol names iptables-save writes, with their numbers.
const PROTOCOLS: &[(&str, i64)] = &[
    ("all", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ipencap", 4),
    ("tcp", 6),
    ("egp", 8),
    ("udp", 17),
    ("ipv6", 41),
    ("rsvp", 46),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("icmpv6", 58),
    ("ipv6-icmp", 58),
    ("ospf", 89),
    ("ipip", 94),
    ("pim", 103),
    ("vrrp", 112),
    ("l2tp", 115),
    ("sctp", 132),
    ("mh", 135),
    ("udplite", 136),
];

impl Table for Iptables {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let Some(text) = run_save(ctx, &ctx.env().paths.iptables_save)? else {
            return Ok(());
        };
        for table in parse_save(&text) {
            for chain in &table.chains {
                let chain_row = || {
                    let mut row = ctx.row();
                    row.set("filter_name", &table.name)
                        .set("chain", &chain.name)
                        .set("policy", &chain.policy)
                        .set("packets", chain.packets)
                        .set("bytes", chain.bytes);
                    row
                };
                for rule in &chain.rules {
                    let mut row = chain_row();
                    rule.fill(&mut row);
                    out.push(row);
                }
                out.push(chain_row());
            }
        }
        Ok(())
    }
}

/// Runs `iptables-save -c`: its output, or `None` when there is no binary or
/// it fails.
fn run_save(ctx: &ScanContext<'_>, binary: &Path) -> Result<Option<String>, AgentError> {
    if !binary.is_file() {
        return Ok(None);
    }
    let Ok(mut child) = Command::new(binary)
        .arg("-c")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return Ok(None);
    };
    // Read on a thread, so a large output cannot block the child while we wait.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).map(|_| buf)
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline && ctx.check().is_ok() => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let output = reader.join().ok().and_then(Result::ok);
    ctx.check()?;
    Ok(match (status, output) {
        (Some(s), Some(out)) if s.success() => Some(String::from_utf8_lossy(&out).into_owned()),
        _ => None,
    })
}

#[derive(Debug, Default)]
struct FilterTable {
    name: String,
    chains: Vec<Chain>,
}

#[derive(Debug, Default)]
struct Chain {
    name: String,
    /// Empty for user-defined chains, which have no policy.
    policy: String,
    packets: i64,
    bytes: i64,
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    target: String,
    protocol: Value,
    src_port: String,
    dst_port: String,
    src_ip: String,
    src_mask: String,
    dst_ip: String,
    dst_mask: String,
    iniface: String,
    iniface_mask: String,
    outiface: String,
    outiface_mask: String,
}

impl Rule {
    fn fill(&self, row: &mut Row) {
        row.set("target", &self.target)
            .set("protocol", self.protocol.clone())
            .set("src_port", &self.src_port)
            .set("dst_port", &self.dst_port)
            .set("src_ip", &self.src_ip)
            .set("src_mask", &self.src_mask)
            .set("dst_ip", &self.dst_ip)
            .set("dst_mask", &self.dst_mask)
            .set("iniface", &self.iniface)
            .set("iniface_mask", &self.iniface_mask)
            .set("outiface", &self.outiface)
            .set("outiface_mask", &self.outiface_mask)
            // Every libiptc entry has a target offset, so osquery always says yes.
            .set("match", "yes");
    }
}

/// `*table`, `:CHAIN POLICY [packets:bytes]`, `[packets:bytes] -A CHAIN …`,
/// `COMMIT`, and `#` comments.
fn parse_save(text: &str) -> Vec<FilterTable> {
    let mut tables: Vec<FilterTable> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('*') {
            tables.push(FilterTable {
                name: name.to_string(),
                ..FilterTable::default()
            });
            continue;
        }
        let Some(table) = tables.last_mut() else {
            continue;
        };
        if let Some(decl) = line.strip_prefix(':') {
            let mut f = decl.split_whitespace();
            let (Some(name), Some(policy)) = (f.next(), f.next()) else {
                continue;
            };
            let mut chain = Chain {
                name: name.to_string(),
                ..Chain::default()
            };
            if policy != "-" {
                chain.policy = policy.to_string();
                (chain.packets, chain.bytes) = f.next().and_then(counters).unwrap_or((0, 0));
            }
            table.chains.push(chain);
        } else if line.starts_with("-A") || line.starts_with('[') {
            let mut toks = tokens(line);
            if toks.first().is_some_and(|t| t.starts_with('[')) {
                toks.remove(0);
            }
            if toks.len() < 2 || toks[0] != "-A" {
                continue;
            }
            let rule = parse_rule(&toks[2..]);
            let name = &toks[1];
            match table.chains.iter_mut().find(|c| &c.name == name) {
                Some(chain) => chain.rules.push(rule),
                None => table.chains.push(Chain {
                    name: name.clone(),
                    rules: vec![rule],
                    ..Chain::default()
                }),
            }
        }
    }
    tables
}

/// `[packets:bytes]`.
fn counters(text: &str) -> Option<(i64, i64)> {
    let (p, b) = text.strip_prefix('[')?.strip_suffix(']')?.split_once(':')?;
    Some((p.parse().ok()?, b.parse().ok()?))
}

/// Splits a rule line into words; iptables-save double-quotes words with
/// spaces and backslash-escapes quotes inside them.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut started) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => word.extend(chars.next()),
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => word.push(c),
        }
    }
    if started || !word.is_empty() {
        out.push(word);
    }
    out
}

/// The parts of a rule libiptc exposes in `struct ipt_ip` and its first
/// tcp/udp match, formatted as osquery formats them.
fn parse_rule(toks: &[String]) -> Rule {
    let mut src = None;
    let mut dst = None;
    let mut iniface = None;
    let mut outiface = None;
    let mut protocol = None;
    let (mut sport, mut dport) = (None, None);
    let mut target = String::new();
    let mut current_match = "";
    let mut negate = false;
    let mut i = 0;
    while i < toks.len() {
        let arg = toks.get(i + 1).map(String::as_str);
        let mut step = 1;
        match toks[i].as_str() {
            "!" => {
                negate = true;
                i += 1;
                continue;
            }
            "-s" | "--source" => (src, step) = (arg.map(|a| (a, negate)), 2),
            "-d" | "--destination" => (dst, step) = (arg.map(|a| (a, negate)), 2),
            "-i" | "--in-interface" => (iniface, step) = (arg.map(|a| (a, negate)), 2),
            "-o" | "--out-interface" => (outiface, step) = (arg.map(|a| (a, negate)), 2),
            "-p" | "--protocol" => (protocol, step) = (arg.map(|a| (a, negate)), 2),
            "-m" | "--match" => (current_match, step) = (arg.unwrap_or(""), 2),
            "--sport" | "--source-port" if matches!(current_match, "tcp" | "udp") => {
                (sport, step) = (arg, 2)
            }
            "--dport" | "--destination-port" if matches!(current_match, "tcp" | "udp") => {
                (dport, step) = (arg, 2)
            }
            "-g" | "--goto" => (target, step) = (arg.unwrap_or("").to_string(), 2),
            // What follows -j are the target's own options.
            "-j" | "--jump" => {
                target = arg.unwrap_or("").to_string();
                break;
            }
            // Match options and their values.
            _ => {}
        }
        negate = false;
        i += step;
    }

    let bang = |neg: bool| if neg { "!" } else { "" };
    let proto_number = protocol.map_or(Some(0), |(p, _)| protocol_number(p));
    let (src_ip, src_mask) = address(src);
    let (dst_ip, dst_mask) = address(dst);
    let (iniface, iniface_mask) = interface(iniface);
    let (outiface, outiface_mask) = interface(outiface);
    // osquery reads ports from the first match of tcp and udp rules only.
    let ports = matches!(proto_number, Some(6 | 17));
    let port_range = |p: Option<&str>| if ports { port_range(p) } else { String::new() };
    Rule {
        target,
        protocol: match (proto_number, protocol) {
            (Some(n), Some((_, true))) => Value::Text(format!("!{n}")),
            (Some(n), _) => Value::Integer(n),
            (None, _) => Value::Null,
        },
        src_port: port_range(sport),
        dst_port: port_range(dport),
        src_ip: format!("{}{src_ip}", bang(src.is_some_and(|s| s.1))),
        src_mask,
        dst_ip: format!("{}{dst_ip}", bang(dst.is_some_and(|d| d.1))),
        dst_mask,
        iniface,
        iniface_mask,
        outiface,
        outiface_mask,
    }
}

fn protocol_number(name: &str) -> Option<i64> {
    let name = name.to_ascii_lowercase();
    name.parse()
        .ok()
        .or_else(|| PROTOCOLS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
}

/// `a.b.c.d[/len | /mask]` as (address, dotted mask); absent is 0.0.0.0/0.
fn address(spec: Option<(&str, bool)>) -> (String, String) {
    let Some((spec, _)) = spec else {
        return ("0.0.0.0".to_string(), "0.0.0.0".to_string());
    };
    let (ip, mask) = spec.split_once('/').unwrap_or((spec, "32"));
    let ip = ip
        .parse::<Ipv4Addr>()
        .map_or(ip.to_string(), |a| a.to_string());
    let mask = match mask.parse::<u8>() {
        Ok(len) => mask_text(false, len),
        Err(_) => mask.to_string(),
    };
    (ip, mask)
}

/// An interface and libiptc's mask: 0xFF for each name byte plus the NUL,
/// or only the bytes before a trailing `+` wildcard; "all" when unset.
fn interface(spec: Option<(&str, bool)>) -> (String, String) {
    let Some((name, negated)) = spec else {
        return ("all".to_string(), String::new());
    };
    let bytes = match name.strip_suffix('+') {
        Some(prefix) => prefix.len(),
        None => name.len() + 1,
    };
    let mask = "FF".repeat(bytes.min(16));
    (format!("{}{name}", if negated { "!" } else { "" }), mask)
}

/// `80`, `1000:2000`, `:1024`, `1024:` as `low:high`; none is `0:65535`.
fn port_range(spec: Option<&str>) -> String {
    let Some(spec) = spec else {
        return "0:65535".to_string();
    };
    match spec.split_once(':') {
        None => format!("{spec}:{spec}"),
        Some((lo, hi)) => {
            let lo = if lo.is_empty() { "0" } else { lo };
            let hi = if hi.is_empty() { "65535" } else { hi };
            format!("{lo}:{hi}")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::tables::{Budget, TableEnv};

    const SAVE: &str = r#"# Generated by iptables-save v1.8.9 (nf_tables) on Mon Jan  1 00:00:00 2024
*filter
:INPUT DROP [120:9000]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [5:300]
:DOCKER - [0:0]
[10:600] -A INPUT -s 10.0.0.0/8 -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT
[0:0] -A INPUT ! -s 192.168.1.7/32 ! -i veth+ -p udp -m udp --sport 1000:2000 -m comment --comment "a \"quoted\" note" -j DROP
[3:180] -A INPUT -p icmp -j ACCEPT
[0:0] -A FORWARD -o docker0 -j DOCKER
[0:0] -A DOCKER ! -p tcp -d 172.17.0.2/32 -j RETURN
COMMIT
# Completed
*nat
:PREROUTING ACCEPT [1:60]
[0:0] -A PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
"#;

    /// A stand-in iptables-save: a script printing SAVE when called with -c.
    fn fake_save(dir: &Path, status: i32) -> std::path::PathBuf {
        let data = dir.join("save.txt");
        std::fs::write(&data, SAVE).unwrap();
        let script = dir.join("iptables-save");
        let body = format!(
            "#!/bin/sh\n[ \"$1\" = -c ] || exit 2\ncat '{}'\nexit {status}\n",
            data.display()
        );
        std::fs::write(&script, body).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    fn scan(binary: std::path::PathBuf) -> Vec<Vec<Value>> {
        let budget = Budget::unlimited();
        let mut env = TableEnv::default();
        env.paths.iptables_save = binary;
        let ctx = ScanContext::all("iptables", SCHEMA.columns, &budget, &env);
        let mut rows = Vec::new();
        Iptables.generate(&ctx, &mut rows).unwrap();
        rows.into_iter().map(|r| r.values().to_vec()).collect()
    }

    fn t(s: &str) -> Value {
        Value::Text(s.to_string())
    }

    #[test]
    fn reads_rules_and_chains_from_iptables_save() {
        let dir = tempfile::tempdir().unwrap();
        let script = fake_save(dir.path(), 0);
        // Another test forking while the script was being written can make
        // its first exec fail with ETXTBSY, so a few attempts are allowed.
        let mut rows = scan(script.clone());
        for _ in 0..20 {
            if !rows.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            rows = scan(script.clone());
        }
        let i = Value::Integer;
        let chain = |table: &str, chain: &str, policy: &str, p: i64, b: i64| {
            let mut row = vec![t(table), t(chain), t(policy)];
            row.extend(std::iter::repeat_n(Value::Null, 13));
            row.extend([i(p), i(b)]);
            row
        };
        #[rustfmt::skip]
        let want = vec![
            vec![t("filter"), t("INPUT"), t("DROP"), t("ACCEPT"), i(6), t("0:65535"), t("22:22"),
                 t("10.0.0.0"), t("255.0.0.0"), t("eth0"), t("FFFFFFFFFF"), t("0.0.0.0"), t("0.0.0.0"),
                 t("all"), t(""), t("yes"), i(120), i(9000)],
            vec![t("filter"), t("INPUT"), t("DROP"), t("DROP"), i(17), t("1000:2000"), t("0:65535"),
                 t("!192.168.1.7"), t("255.255.255.255"), t("!veth+"), t("FFFFFFFF"), t("0.0.0.0"),
                 t("0.0.0.0"), t("all"), t(""), t("yes"), i(120), i(9000)],
            vec![t("filter"), t("INPUT"), t("DROP"), t("ACCEPT"), i(1), t(""), t(""),
                 t("0.0.0.0"), t("0.0.0.0"), t("all"), t(""), t("0.0.0.0"), t("0.0.0.0"),
                 t("all"), t(""), t("yes"), i(120), i(9000)],
            chain("filter", "INPUT", "DROP", 120, 9000),
            vec![t("filter"), t("FORWARD"), t("ACCEPT"), t("DOCKER"), i(0), t(""), t(""),
                 t("0.0.0.0"), t("0.0.0.0"), t("all"), t(""), t("0.0.0.0"), t("0.0.0.0"),
                 t("docker0"), t("FFFFFFFFFFFFFFFF"), t("yes"), i(0), i(0)],
            chain("filter", "FORWARD", "ACCEPT", 0, 0),
            chain("filter", "OUTPUT", "ACCEPT", 5, 300),
            vec![t("filter"), t("DOCKER"), t(""), t("RETURN"), t("!6"), t("0:65535"), t("0:65535"),
                 t("0.0.0.0"), t("0.0.0.0"), t("all"), t(""), t("172.17.0.2"), t("255.255.255.255"),
                 t("all"), t(""), t("yes"), i(0), i(0)],
            chain("filter", "DOCKER", "", 0, 0),
            vec![t("nat"), t("PREROUTING"), t("ACCEPT"), t("DNAT"), i(6), t("0:65535"), t("8080:8080"),
                 t("0.0.0.0"), t("0.0.0.0"), t("all"), t(""), t("0.0.0.0"), t("0.0.0.0"),
                 t("all"), t(""), t("yes"), i(1), i(60)],
            chain("nat", "PREROUTING", "ACCEPT", 1, 60),
        ];
        assert_eq!(rows.len(), want.len());
        for (got, want) in rows.iter().zip(&want) {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn no_binary_or_failure_gives_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        assert!(scan(dir.path().join("absent")).is_empty());
        assert!(scan(fake_save(dir.path(), 1)).is_empty());
    }

    #[test]
    fn splits_quoted_words() {
        assert_eq!(
            tokens(r#"-A X -m comment --comment "a \"b\" c" -j ACCEPT"#),
            [
                "-A",
                "X",
                "-m",
                "comment",
                "--comment",
                "a \"b\" c",
                "-j",
                "ACCEPT"
            ]
        );
        assert_eq!(tokens(r#"--comment """#), ["--comment", ""]);
    }
}
