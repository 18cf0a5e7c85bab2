//! `sweep agents`: every live agent with its labels, version, uptime and
//! resource use, from the heartbeats under `/sweep/agents/`.

use std::io::Write;

use sweep_proto::time::{unix_now, unix_now_ms};

use crate::cli::AgentsArgs;
use crate::config::Settings;
use crate::{fleet, render, ControllerError};

pub async fn run(settings: &Settings, args: AgentsArgs) -> Result<u8, ControllerError> {
    let mut client = settings.etcd.connect().await?;
    let agents = fleet::live_agents(&mut client, &settings.etcd.keyspace()).await?;
    let now = unix_now();
    let now_ms = unix_now_ms();
    let mut out = std::io::stdout().lock();
    if args.json {
        for a in &agents {
            let mut v = serde_json::to_value(a).expect("heartbeats serialize");
            v["uptime_s"] = now.saturating_sub(a.started_at).into();
            v["heartbeat_age_ms"] = now_ms.saturating_sub(a.sent_at_ms).into();
            writeln!(out, "{v}")?;
        }
        return Ok(0);
    }
    let columns: Vec<String> = [
        "host_id",
        "labels",
        "version",
        "uptime",
        "cpu %",
        "rss",
        "last heartbeat",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            vec![
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
            ]
        })
        .collect();
    write!(out, "{}", render::table(&columns, &rows))?;
    writeln!(out, "{} live agent(s)", agents.len())?;
    Ok(0)
}
