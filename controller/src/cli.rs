//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sweep_proto::{ProtoError, Targets};

use crate::output::FormatArgs;

#[derive(Parser, Debug)]
#[command(name = "sweep", version, about = "Ask every host a question in SQL")]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the coordination store (etcd or ZooKeeper) and Kafka are. Each flag
/// also reads an environment variable; a config file gives the rest;
/// defaults reach the quickstart cluster.
#[derive(Args, Debug, Default, Clone)]
pub struct ConnectionArgs {
    /// TOML file with [coordination], [etcd] or [zookeeper], [kafka] and [signing] sections.
    #[arg(long, global = true, env = "SWEEP_CONFIG")]
    pub config: Option<PathBuf>,
    /// The coordination store: etcd or zookeeper (by default the one whose
    /// endpoints are given, else the config file's, else etcd).
    #[arg(
        long,
        global = true,
        env = "SWEEP_COORDINATION",
        value_name = "BACKEND"
    )]
    pub coordination: Option<sweep_proto::Backend>,
    /// etcd endpoints, comma-separated.
    #[arg(long, global = true, env = "SWEEP_ETCD", value_delimiter = ',')]
    pub etcd: Option<Vec<String>>,
    /// ZooKeeper servers, comma-separated host:port.
    #[arg(long, global = true, env = "SWEEP_ZOOKEEPER", value_delimiter = ',')]
    pub zookeeper: Option<Vec<String>>,
    /// Key prefix in the coordination store.
    #[arg(long, global = true, env = "SWEEP_PREFIX")]
    pub prefix: Option<String>,
    /// Kafka bootstrap servers.
    #[arg(long, global = true, env = "SWEEP_KAFKA")]
    pub kafka: Option<String>,
    /// Extra librdkafka property, key=value (repeatable).
    #[arg(long = "kafka-property", global = true, value_name = "KEY=VALUE")]
    pub kafka_properties: Vec<String>,
    /// The ed25519 secret key file hunts, schedules and packs are signed with (`sweep keygen`).
    #[arg(long, global = true, env = "SWEEP_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the web console: fleet, hunts, schedules and packs, matches.
    Console(crate::console::ConsoleArgs),
    /// Broadcast a SQL hunt and collect every agent's answer.
    ///
    /// Exits 0 when every targeted agent answered without error, 1 when some
    /// failed or did not answer, 2 when the guard refused the query (nothing
    /// is sent). When the targets match no live agent and no host is
    /// expected (--expect-file, --expect-seen), there is nobody to wait for:
    /// it says so at once, exits 1, and the hunt is not sent.
    Hunt(HuntArgs),
    /// List live agents.
    Agents(AgentsArgs),
    /// Show what a hunt has got so far, and who has not answered.
    Results(ResultsArgs),
    /// Read rule matches.
    Matches(MatchesArgs),
    /// Create an ed25519 key pair for signing hunts, schedules and packs.
    Keygen(KeygenArgs),
    /// Add, list and remove scheduled queries.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Add, list and remove osquery-format query packs.
    #[command(subcommand)]
    Pack(PackCommand),
    /// Read scheduled and hunt result rows from sweep.results.
    Tail(TailArgs),
}

/// Which hosts a command is for; none given means every host.
#[derive(Args, Debug, Default, Clone)]
pub struct TargetArgs {
    /// Only these host ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Only hosts with these labels, e.g. role=web,dc=sh1.
    #[arg(long)]
    pub labels: Option<String>,
    /// Only hosts where this query returns rows (repeatable; all must).
    #[arg(long = "discovery", value_name = "SQL")]
    pub discovery: Vec<String>,
}

impl TargetArgs {
    /// The first discovery query the guard refuses, with the reason.
    pub fn refused_discovery(&self) -> Option<String> {
        self.discovery.iter().find_map(|sql| {
            sweep_proto::guard::check(sql)
                .err()
                .map(|e| format!("discovery query {sql:?}: {e}"))
        })
    }

    pub fn targets(&self) -> Result<Targets, ProtoError> {
        // `--hosts ""` (an unset variable in a script) must not widen a
        // command to every host.
        if self.hosts.iter().any(|h| h.trim().is_empty()) {
            return Err(ProtoError::Setting {
                name: "--hosts",
                reason:
                    "an empty host id; list host ids, or leave --hosts out to target every host"
                        .into(),
            });
        }
        Ok(Targets {
            hosts: self.hosts.iter().map(|h| h.trim().to_string()).collect(),
            labels: match &self.labels {
                Some(sel) => Targets::parse_selector(sel)?,
                None => Default::default(),
            },
            discovery: self.discovery.clone(),
        })
    }
}

#[derive(Args, Debug)]
pub struct HuntArgs {
    /// The SQL to run on every targeted host.
    pub sql: String,
    /// How long to wait for answers.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// How long the hunt stays live for agents that come online later.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub expiry: Duration,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub expect: ExpectArgs,
    #[command(flatten)]
    pub format: FormatArgs,
    /// Write the rows to FILE instead of standard output, in the format its
    /// name ends with: .csv, .json, .ndjson or .jsonl.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write every targeted host's outcome to FILE as NDJSON, one object per
    /// host: {"host_id", "outcome" (answered, failed, rejected, silent,
    /// skipped), "rows", "reason"}. The terminal shows a screenful.
    #[arg(long, value_name = "FILE")]
    pub outcomes: Option<PathBuf>,
}

/// Hosts to wait for besides the live ones, so a host that vanished (its
/// heartbeat gone with its lease) is listed as not answering instead of
/// dropping out of the count.
#[derive(Args, Debug, Default, Clone)]
pub struct ExpectArgs {
    /// A file of host ids, one per line (`#` starts a comment).
    #[arg(long, value_name = "FILE", env = "SWEEP_EXPECT_FILE")]
    pub expect_file: Option<PathBuf>,
    /// Every host with a pinned identity seen live within this long, e.g.
    /// 24h (as recorded by the controller, to the hour).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, env = "SWEEP_EXPECT_SEEN")]
    pub expect_seen: Option<Duration>,
}

impl ExpectArgs {
    /// The expected hosts a command with `targets` is for. A host from the
    /// file whose labels are unknown (never pinned) is expected only when
    /// the targets select by host id alone.
    pub fn hosts(
        &self,
        identities: &crate::identities::Identities,
        targets: &Targets,
        now: u64,
    ) -> Result<Vec<String>, crate::ControllerError> {
        // Looked up once per line of a file that may list 10,000 hosts.
        let pinned: std::collections::HashMap<&str, _> = identities
            .pins()
            .map(|p| (p.host_id.as_str(), &p.labels))
            .collect();
        let labels_of = |host: &str| pinned.get(host).copied();
        let mut hosts = Vec::new();
        if let Some(path) = &self.expect_file {
            let text =
                std::fs::read_to_string(path).map_err(|e| crate::ControllerError::Config {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            for (n, line) in text.lines().enumerate() {
                let host = line.split('#').next().unwrap_or_default().trim();
                if host.is_empty() {
                    continue;
                }
                sweep_proto::Keyspace::check_host_id(host).map_err(|reason| {
                    crate::ControllerError::Config {
                        path: format!("{}:{}", path.display(), n + 1),
                        reason,
                    }
                })?;
                let wanted = match labels_of(host) {
                    Some(labels) => targets.matches(host, labels),
                    None => {
                        targets.labels.is_empty()
                            && (targets.hosts.is_empty() || targets.hosts.iter().any(|h| h == host))
                    }
                };
                if wanted {
                    hosts.push(host.to_string());
                }
            }
        }
        if let Some(within) = self.expect_seen {
            let since = now.saturating_sub(within.as_secs());
            hosts.extend(
                identities
                    .pins()
                    .filter(|p| p.last_seen >= since && targets.matches(&p.host_id, &p.labels))
                    .map(|p| p.host_id.clone()),
            );
        }
        Ok(hosts)
    }
}

#[derive(Args, Debug)]
pub struct AgentsArgs {
    #[command(subcommand)]
    pub action: Option<AgentsCommand>,
    // json and ndjson have each agent's whole heartbeat; with --summary,
    // they are one object, and csv has every value.
    #[command(flatten)]
    pub format: FormatArgs,
    /// Only agents with these labels, e.g. role=web,dc=sh1.
    #[arg(long)]
    pub labels: Option<String>,
    /// Only agents whose host id matches one of these patterns
    /// (comma-separated); `*` matches anything, e.g. 'web-*'.
    #[arg(long, value_delimiter = ',', value_name = "PATTERNS")]
    pub hosts: Vec<String>,
    /// Count the agents by label value, version, state and identity instead
    /// of listing them.
    #[arg(long)]
    pub summary: bool,
}

impl AgentsArgs {
    /// Whether a live agent passes `--labels` and `--hosts`.
    pub fn filter(&self) -> Result<impl Fn(&sweep_proto::Heartbeat) -> bool, ProtoError> {
        if self.hosts.iter().any(|h| h.trim().is_empty()) {
            return Err(ProtoError::Setting {
                name: "--hosts",
                reason: "an empty pattern; give host ids or patterns such as 'web-*'".into(),
            });
        }
        let labels = match &self.labels {
            Some(sel) => Targets::parse_selector(sel)?,
            None => Default::default(),
        };
        let patterns: Vec<String> = self.hosts.iter().map(|h| h.trim().to_string()).collect();
        let targets = Targets {
            labels,
            ..Targets::all()
        };
        Ok(move |a: &sweep_proto::Heartbeat| {
            targets.matches(&a.host_id, &a.labels)
                && (patterns.is_empty()
                    || patterns
                        .iter()
                        .any(|p| sweep_proto::text::glob(p, &a.host_id)))
        })
    }
}

#[derive(Subcommand, Debug)]
pub enum AgentsCommand {
    /// Pin a host's identity key: its answers count only when signed by it.
    /// Without --key, the key its live heartbeat shows.
    Trust(TrustArgs),
}

#[derive(Args, Debug)]
pub struct TrustArgs {
    /// The host id.
    pub host: String,
    /// The agent's public key (hex), as in its state_dir/identity.key's
    /// heartbeat or `sweep agents --json`.
    #[arg(long)]
    pub key: Option<String>,
    /// Replace a pin to another key (after the host was reinstalled).
    #[arg(long)]
    pub replace: bool,
}

#[derive(Args, Debug)]
pub struct MatchesArgs {
    /// Keep reading new matches until interrupted.
    #[arg(long)]
    pub follow: bool,
    // json and ndjson have each match whole.
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Args, Debug)]
pub struct ResultsArgs {
    /// The hunt id `sweep hunt` printed.
    pub hunt_id: String,
    #[command(flatten)]
    pub expect: ExpectArgs,
    #[command(flatten)]
    pub format: FormatArgs,
    /// Write the rows to FILE instead of standard output, as `sweep hunt
    /// --output` does.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write every host's outcome to FILE as NDJSON, as `sweep hunt
    /// --outcomes` does.
    #[arg(long, value_name = "FILE")]
    pub outcomes: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Directory for sweep.key (secret, mode 0600) and sweep.pub.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Replace an existing key.
    #[arg(long)]
    pub force: bool,
}

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Schedule a query on every targeted agent (replaces one of that name).
    Add(ScheduleAddArgs),
    /// List scheduled queries.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Remove a scheduled query.
    #[command(alias = "remove")]
    Rm(RmArgs),
}

#[derive(Args, Debug)]
pub struct ScheduleAddArgs {
    /// The name result rows carry ([A-Za-z0-9_.-]).
    pub name: String,
    /// The SQL to run.
    pub sql: String,
    /// Time between runs: 30s, 5m, 1h, or plain seconds.
    #[arg(long, value_parser = interval)]
    pub interval: Duration,
    /// Log every row on each run instead of what changed since the last.
    #[arg(long)]
    pub snapshot: bool,
    /// Differential mode: log added rows only, not removed ones.
    #[arg(long)]
    pub no_removed: bool,
    /// osquery platform filter (linux, posix, all, ...).
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// What the query is for.
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PackCommand {
    /// Install an osquery pack file (replaces a pack of that name).
    Add(PackAddArgs),
    /// List packs.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Remove a pack.
    #[command(alias = "remove")]
    Rm(RmArgs),
}

#[derive(Args, Debug)]
pub struct PackAddArgs {
    /// An osquery pack file (JSON; comments and trailing commas allowed).
    pub file: PathBuf,
    /// The pack's name; default: the file name without its extension.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub targets: TargetArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    // json and ndjson have each stored object whole.
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    pub name: String,
}

#[derive(Args, Debug)]
pub struct TailArgs {
    /// Only rows whose query name matches; `*` matches anything (pack_*).
    /// `hunt:…` reads hunts' rows (sweep.hunts) instead of scheduled ones.
    #[arg(long, value_name = "PATTERN")]
    pub query: Option<String>,
    /// Only rows from this host id; `*` matches anything.
    #[arg(long)]
    pub host: Option<String>,
    /// Keep reading new rows until interrupted.
    #[arg(long)]
    pub follow: bool,
    // json and ndjson have each row as osquery's result-log JSON.
    #[command(flatten)]
    pub format: FormatArgs,
}

/// A schedule interval: plain seconds as osquery writes them, or a duration
/// such as `90s`, `5m`, `1h`.
fn interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 30s, 5m, 1h, or seconds)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_take_seconds_or_durations() {
        assert_eq!(interval("60"), Ok(Duration::from_secs(60)));
        assert_eq!(interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(interval("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(interval("soon").is_err());
        assert!(interval("-5").is_err());
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "sweep",
            "schedule",
            "add",
            "users",
            "SELECT * FROM users",
            "--interval",
            "1h",
            "--hosts",
            "a, b",
            "--labels",
            "role=web",
        ])
        .unwrap();
        let Command::Schedule(ScheduleCommand::Add(a)) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        assert_eq!(a.interval, Duration::from_secs(3600));
        let t = a.targets.targets().unwrap();
        assert_eq!(t.hosts, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(t.labels["role"], "web");
        assert!(Cli::try_parse_from(["sweep", "schedule", "add", "x", "SELECT 1"]).is_err());
    }

    #[test]
    fn agents_filter_by_labels_and_host_patterns() {
        let hb = |host: &str, role: &str| {
            let resources = sweep_proto::heartbeat::Resources::default();
            let v = serde_json::json!({"host_id": host, "version": "1", "labels": {"role": role},
                "started_at": 0, "sent_at_ms": 0, "resources": resources});
            sweep_proto::Heartbeat::from_json(v.to_string().as_bytes()).unwrap()
        };
        let fleet = [hb("web-1", "web"), hb("web-2", "db"), hb("db-1", "db")];
        let pick = |args: &[&str]| {
            let cli = Cli::try_parse_from(["sweep", "agents"].iter().chain(args)).unwrap();
            let Command::Agents(a) = cli.command else {
                panic!("parsed as {:?}", cli.command)
            };
            let keep = a.filter().unwrap();
            fleet
                .iter()
                .filter(|h| keep(h))
                .map(|h| h.host_id.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(pick(&[]), ["web-1", "web-2", "db-1"]);
        assert_eq!(pick(&["--labels", "role=db"]), ["web-2", "db-1"]);
        assert_eq!(pick(&["--hosts", "web-*"]), ["web-1", "web-2"]);
        assert_eq!(
            pick(&["--hosts", "web-*", "--labels", "role=db"]),
            ["web-2"]
        );
        assert_eq!(pick(&["--hosts", "db-1,web-1"]), ["web-1", "db-1"]);
        let cli = Cli::try_parse_from(["sweep", "agents", "--hosts", ""]).unwrap();
        let Command::Agents(a) = cli.command else {
            panic!()
        };
        assert!(a.filter().is_err());
    }
}
