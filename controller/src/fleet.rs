//! Live agents, as their heartbeats in etcd say.

use etcd_client::{Client, GetOptions};
use sweep_proto::{Heartbeat, Keyspace, Targets};
use tracing::warn;

use crate::ControllerError;

/// Every agent with a live lease, sorted by host id.
pub async fn live_agents(
    client: &mut Client,
    keys: &Keyspace,
) -> Result<Vec<Heartbeat>, ControllerError> {
    let resp = client
        .get(keys.agents(), Some(GetOptions::new().with_prefix()))
        .await?;
    let mut agents = Vec::new();
    for kv in resp.kvs() {
        match Heartbeat::from_json(kv.value()) {
            Ok(hb) => agents.push(hb),
            Err(e) => {
                warn!(key = %String::from_utf8_lossy(kv.key()), error = %e, "skipping a bad heartbeat")
            }
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
