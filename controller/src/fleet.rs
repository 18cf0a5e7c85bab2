//! Live agents, as their heartbeats in etcd say.

use etcd_client::Client;
use sweep_proto::{Heartbeat, Keyspace, Targets};
use tracing::warn;

use crate::ControllerError;

/// Every agent with a live lease, sorted by host id.
pub async fn live_agents(
    client: &mut Client,
    keys: &Keyspace,
) -> Result<Vec<Heartbeat>, ControllerError> {
    let dir = keys.agents();
    let (_, kvs) = sweep_proto::etcd::get_prefix(client, &dir).await?;
    let mut agents = Vec::new();
    for kv in &kvs {
        let key = String::from_utf8_lossy(kv.key());
        let shown = sweep_proto::text::printable(&key).into_owned();
        let Some(leaf) = Keyspace::leaf(&dir, &key) else {
            continue;
        };
        // An agent's heartbeat lives on its lease; a key written without one
        // would be "live" for ever, so it is no agent.
        if kv.lease() == 0 {
            warn!(key = %shown, "skipping a heartbeat with no lease");
            continue;
        }
        match Heartbeat::from_json(kv.value()) {
            // The key names the host: a heartbeat claiming another host's id
            // is forged, or misfiled.
            Ok(hb) if hb.host_id != leaf => {
                warn!(key = %shown, "skipping a heartbeat whose host id does not match its key")
            }
            Ok(hb) => agents.push(hb),
            Err(e) => warn!(key = %shown, error = %e, "skipping a bad heartbeat"),
        }
    }
    agents.sort_by(|a, b| a.host_id.cmp(&b.host_id));
    Ok(agents)
}

/// The live agents a hunt with these targets is for.
pub async fn targeted(
    client: &mut Client,
    keys: &Keyspace,
    targets: &Targets,
) -> Result<Vec<Heartbeat>, ControllerError> {
    Ok(live_agents(client, keys)
        .await?
        .into_iter()
        .filter(|a| targets.matches(&a.host_id, &a.labels))
        .collect())
}
