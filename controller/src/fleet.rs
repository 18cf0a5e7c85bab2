//! Live agents, as their heartbeats in the coordination store say.

use sweep_proto::{Heartbeat, Keyspace, Store, Targets};
use tracing::warn;

use crate::ControllerError;

/// Every agent with a live lease, sorted by host id.
pub async fn live_agents(
    store: &Store,
    keys: &Keyspace,
) -> Result<Vec<Heartbeat>, ControllerError> {
    let dir = keys.agents();
    let mut agents = Vec::new();
    for entry in store.list(&dir).await? {
        let key = entry.key.as_str();
        let shown = sweep_proto::text::printable(key).into_owned();
        let Some(leaf) = Keyspace::leaf(&dir, key) else {
            continue;
        };
        // An agent's heartbeat lives on its lease (or session); a key
        // written without one would be "live" for ever, so it is no agent.
        if !entry.held {
            warn!(key = %shown, "skipping a heartbeat with no lease");
            continue;
        }
        match Heartbeat::from_json(&entry.value) {
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
    store: &Store,
    keys: &Keyspace,
    targets: &Targets,
) -> Result<Vec<Heartbeat>, ControllerError> {
    Ok(live_agents(store, keys)
        .await?
        .into_iter()
        .filter(|a| targets.matches(&a.host_id, &a.labels))
        .collect())
}
