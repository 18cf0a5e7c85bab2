//! `sweep agents`: every live agent with its labels, version, uptime,
//! resource use and identity, from the heartbeats under `/sweep/agents/`;
//! `sweep agents trust HOST` pins a host's identity key.

use std::io::Write;

use sweep_proto::signing::Signer;
use sweep_proto::text::printable;
use sweep_proto::time::{unix_now, unix_now_ms};

use crate::cli::{AgentsArgs, AgentsCommand};
use crate::config::Settings;
use crate::identities::{self, Identities};
use crate::{fleet, render, ControllerError};

pub async fn run(settings: &Settings, args: AgentsArgs) -> Result<u8, ControllerError> {
    let mut client = settings.etcd.connect().await?;
    let keys = settings.etcd.keyspace();
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
        let pin = identities::trust(
            &mut client,
            &keys,
            &signer,
            &t.host,
            t.key.as_deref(),
            t.replace,
        )
        .await?;
        println!("{}: pinned to {}", printable(&pin.host_id), pin.public_key);
        return Ok(0);
    }
    let agents = fleet::live_agents(&mut client, &keys).await?;
    let mut ids = Identities::load(&mut client, &keys, signer.as_ref()).await?;
    ids.observe(&mut client, &keys, signer.as_ref(), &agents)
        .await?;
    let now = unix_now();
    let now_ms = unix_now_ms();
    let mut out = std::io::stdout().lock();
    if args.json {
        for a in &agents {
            let mut v = serde_json::to_value(a).expect("heartbeats serialize");
            v["uptime_s"] = now.saturating_sub(a.started_at).into();
            v["heartbeat_age_ms"] = now_ms.saturating_sub(a.sent_at_ms).into();
            v["identity_status"] = ids.standing(a).as_str().into();
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
        "identity",
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
                ids.standing(a).as_str().to_string(),
            ]
        })
        .collect();
    write!(out, "{}", render::table(&columns, &rows))?;
    writeln!(out, "{} live agent(s)", agents.len())?;
    Ok(0)
}
