//! `sweep agents`: every live agent with its labels, version, uptime,
//! resource use and identity, from the heartbeats under `/sweep/agents/`;
//! `--labels` and `--hosts` narrow the list, `--summary` counts agents by
//! label value, version, state and identity instead (what a fleet of 10,000
//! looks like on one screen); `sweep agents trust HOST` pins a host's
//! identity key.

use std::collections::BTreeMap;
use std::io::Write;

use sweep_proto::Heartbeat;

use sweep_proto::signing::Signer;
use sweep_proto::text::printable;
use sweep_proto::time::{unix_now, unix_now_ms};

use crate::cli::{AgentsArgs, AgentsCommand};
use crate::config::Settings;
use crate::identities::{self, Identities};
use crate::output::{Format, RowWriter};
use crate::{fleet, render, ControllerError};

pub async fn run(settings: &Settings, args: AgentsArgs) -> Result<u8, ControllerError> {
    let store = settings.store().await?;
    let keys = settings.keyspace();
    let signer = settings
        .signing_key
        .as_deref()
        .map(Signer::load)
        .transpose()?;
    if let Some(AgentsCommand::Trust(t)) = args.action {
        let signer = signer.ok_or_else(|| {
            ControllerError::Usage(
                "pinning a key needs the signing key (--signing-key, SWEEP_SIGNING_KEY)".into(),
            )
        })?;
        let pin =
            identities::trust(&store, &keys, &signer, &t.host, t.key.as_deref(), t.replace).await?;
        println!("{}: pinned to {}", printable(&pin.host_id), pin.public_key);
        return Ok(0);
    }
    let keep = args.filter()?;
    let agents: Vec<Heartbeat> = fleet::live_agents(&store, &keys)
        .await?
        .into_iter()
        .filter(|a| keep(a))
        .collect();
    let mut ids = Identities::load(&store, &keys, signer.as_ref()).await?;
    ids.observe(&store, &keys, signer.as_ref(), &agents).await?;
    let now = unix_now();
    let now_ms = unix_now_ms();
    let format = args.format.format();
    let mut out = std::io::stdout().lock();
    if args.summary {
        let summary = Summary::of(&agents, |a| ids.standing(a).as_str());
        match format {
            // One object, not rows: the same for json and ndjson.
            Format::Json | Format::Ndjson => writeln!(out, "{}", summary.to_json())?,
            Format::Csv => {
                let mut rows = RowWriter::new(out, format, &SUMMARY_COLUMNS)?;
                for r in summary.rows(usize::MAX) {
                    rows.row(r)?;
                }
                rows.finish()?;
            }
            Format::Table => {
                write!(out, "{}", summary.table(VALUES_SHOWN))?;
                writeln!(out, "{} live agent(s)", agents.len())?;
            }
        }
        return Ok(0);
    }
    let columns = [
        "host_id",
        "labels",
        "version",
        "uptime",
        "cpu %",
        "rss",
        "last heartbeat",
        "identity",
    ];
    let mut rows = RowWriter::new(out, format, &columns)?;
    for a in &agents {
        let cells = vec![
            a.host_id.clone(),
            a.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            a.version.clone(),
            render::age(now.saturating_sub(a.started_at)),
            format!("{:.1}", a.resources.cpu_percent),
            render::bytes(a.resources.rss_bytes),
            format!(
                "{:.1}s ago",
                now_ms.saturating_sub(a.sent_at_ms) as f64 / 1000.0
            ),
            ids.standing(a).as_str().to_string(),
        ];
        // json and ndjson: the whole heartbeat, and what the table works out.
        let mut v = serde_json::to_value(a).expect("heartbeats serialize");
        v["uptime_s"] = now.saturating_sub(a.started_at).into();
        v["heartbeat_age_ms"] = now_ms.saturating_sub(a.sent_at_ms).into();
        v["identity_status"] = ids.standing(a).as_str().into();
        rows.row_with(cells, v.to_string())?;
    }
    rows.finish()?;
    if format == Format::Table {
        writeln!(std::io::stdout().lock(), "{} live agent(s)", agents.len())?;
    }
    Ok(0)
}

const SUMMARY_COLUMNS: [&str; 3] = ["by", "value", "agents"];

/// Values of one kind shown in the summary table; the JSON has them all.
const VALUES_SHOWN: usize = 10;

/// Live agents counted by what they have in common.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub agents: usize,
    /// Label key, then value, then agents.
    pub labels: BTreeMap<String, BTreeMap<String, usize>>,
    /// Label key, then agents without that label.
    pub without_label: BTreeMap<String, usize>,
    pub versions: BTreeMap<String, usize>,
    /// `ready`, or why the agent is not ready.
    pub states: BTreeMap<String, usize>,
    /// pinned, unpinned, CHANGED, none.
    pub identities: BTreeMap<String, usize>,
}

impl Summary {
    pub fn of<'a>(
        agents: &'a [Heartbeat],
        standing: impl Fn(&'a Heartbeat) -> &'static str,
    ) -> Self {
        let mut s = Self {
            agents: agents.len(),
            ..Self::default()
        };
        for a in agents {
            for (k, v) in &a.labels {
                *s.labels
                    .entry(k.clone())
                    .or_default()
                    .entry(v.clone())
                    .or_default() += 1;
            }
            *s.versions.entry(a.version.clone()).or_default() += 1;
            let state = a.state.clone().unwrap_or_else(|| "ready".into());
            *s.states.entry(state).or_default() += 1;
            *s.identities.entry(standing(a).to_string()).or_default() += 1;
        }
        for (key, values) in &s.labels {
            let with: usize = values.values().sum();
            if with < s.agents {
                s.without_label.insert(key.clone(), s.agents - with);
            }
        }
        s
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "agents": self.agents,
            "labels": self.labels,
            "without_label": self.without_label,
            "versions": self.versions,
            "states": self.states,
            "identities": self.identities,
        })
    }

    /// A table of `kind | value | agents`, the most common values first, at
    /// most `max` values per kind (the rest summed on one row).
    pub fn table(&self, max: usize) -> String {
        let rows: Vec<Vec<String>> = self
            .rows(max)
            .into_iter()
            .map(|mut r| {
                r[1] = render::truncate(&r[1], render::CELL_WIDTH);
                r
            })
            .collect();
        render::table(&SUMMARY_COLUMNS.map(String::from), &rows)
    }

    /// Rows of `kind, value, agents` as [`table`](Self::table) shows them,
    /// values whole.
    pub fn rows(&self, max: usize) -> Vec<Vec<String>> {
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut add = |kind: &str, counts: &BTreeMap<String, usize>, missing: Option<usize>| {
            let mut counts: Vec<(&String, &usize)> = counts.iter().collect();
            counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (value, n) in counts.iter().take(max) {
                rows.push(vec![kind.to_string(), value.to_string(), n.to_string()]);
            }
            if counts.len() > max {
                let rest = &counts[max..];
                rows.push(vec![
                    kind.to_string(),
                    format!("({} more values)", rest.len()),
                    rest.iter().map(|(_, n)| **n).sum::<usize>().to_string(),
                ]);
            }
            if let Some(n) = missing {
                rows.push(vec![
                    kind.to_string(),
                    "(no such label)".into(),
                    n.to_string(),
                ]);
            }
        };
        add("state", &self.states, None);
        add("version", &self.versions, None);
        add("identity", &self.identities, None);
        for (key, values) in &self.labels {
            add(
                &format!("label {key}"),
                values,
                self.without_label.get(key).copied(),
            );
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(host: &str, labels: &[(&str, &str)], version: &str, state: Option<&str>) -> Heartbeat {
        let v = serde_json::json!({
            "host_id": host, "version": version, "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>(),
            "started_at": 0, "sent_at_ms": 0, "state": state,
            "resources": sweep_proto::Resources::default(),
        });
        Heartbeat::from_json(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn the_summary_counts_labels_versions_states_and_identities() {
        let fleet = [
            hb("web-1", &[("role", "web"), ("dc", "sh1")], "0.1.0", None),
            hb("web-2", &[("role", "web")], "0.1.0", None),
            hb(
                "db-1",
                &[("role", "db"), ("dc", "sh1")],
                "0.2.0",
                Some("the hunts watch is not established"),
            ),
        ];
        let s = Summary::of(&fleet, |a| {
            if a.host_id == "db-1" {
                "CHANGED"
            } else {
                "pinned"
            }
        });
        let j = s.to_json();
        assert_eq!(j["agents"], 3);
        assert_eq!(j["labels"]["role"]["web"], 2);
        assert_eq!(j["labels"]["role"]["db"], 1);
        assert_eq!(j["labels"]["dc"]["sh1"], 2);
        assert_eq!(j["without_label"]["dc"], 1);
        assert!(j["without_label"].get("role").is_none(), "{j}");
        assert_eq!(j["versions"]["0.1.0"], 2);
        assert_eq!(j["states"]["ready"], 2);
        assert_eq!(j["states"]["the hunts watch is not established"], 1);
        assert_eq!(j["identities"]["CHANGED"], 1);
        let table = s.table(10);
        assert!(table.contains("| label role | web  "), "{table}");
        assert!(table.contains("| label dc   | (no such label) "), "{table}");
        // Many values: the most common first, the rest on one row.
        let many: Vec<Heartbeat> = (0..30)
            .map(|i| {
                hb(
                    &format!("h{i}"),
                    &[("rack", &format!("r{}", i % 15))],
                    "1",
                    None,
                )
            })
            .collect();
        let table = Summary::of(&many, |_| "pinned").table(10);
        assert!(table.contains("(5 more values) | 10 "), "{table}");
        assert_eq!(
            table.lines().filter(|l| l.contains("label rack")).count(),
            11,
            "{table}"
        );
    }
}
