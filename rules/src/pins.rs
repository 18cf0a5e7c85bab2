//! The agents' identity keys as the controller pinned them under
//! `<prefix>identities/`, each pin signed by an operators' key; re-read
//! periodically so newly pinned agents are checked within one refresh.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use sweep_proto::identity::{AgentPublicKey, Pin};
use sweep_proto::signing::TrustedKeys;
use sweep_proto::text::printable;
use sweep_proto::{Coordination, Keyspace, ProtoError, Store};
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use crate::integrity::Keys;

/// The pinned keys; None until they were read once (until then no run is
/// judged, rather than every run found forged).
pub type Shared = Arc<RwLock<Option<Keys>>>;

/// Reads the pins every `every`, and soon after `poke` (a host without a
/// pin was seen: the controller may just have pinned it), until shutdown.
pub async fn refresh(
    coordination: Coordination,
    trusted: TrustedKeys,
    every: Duration,
    keys: Shared,
    poke: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut client = None;
    loop {
        if client.is_none() {
            match Store::connect(&coordination, None).await {
                Ok(c) => client = Some(c),
                Err(e) => warn!(
                    error = %e,
                    backend = coordination.backend().name(),
                    "coordination store unreachable; identity pins not refreshed"
                ),
            }
        }
        if let Some(c) = client.as_ref() {
            match read(c, &coordination.keyspace(), &trusted).await {
                Ok(read) => {
                    let mut k = keys.write().expect("the pins lock is never poisoned");
                    if k.as_ref().map(|k| k.len()) != Some(read.len()) {
                        info!(pinned = read.len(), "identity pins read");
                    }
                    *k = Some(read);
                }
                Err(e) => {
                    warn!(error = %e, "cannot read identity pins");
                    client = None;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = poke.notified() => {
                // At most one read a second, however many hosts are new.
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return,
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn read(
    store: &Store,
    keyspace: &Keyspace,
    trusted: &TrustedKeys,
) -> Result<Keys, ProtoError> {
    let dir = keyspace.identities();
    let mut keys = Keys::new();
    for entry in store.list(&dir).await? {
        let key = entry.key.as_str();
        let Some(host) = Keyspace::leaf(&dir, key) else {
            continue;
        };
        let pin = Pin::read_stored(&entry.value, Some(trusted))
            .and_then(|pin| AgentPublicKey::parse(&pin.public_key).map(|k| (pin, k)));
        match pin {
            Ok((pin, k)) if pin.host_id == host => {
                keys.insert(pin.host_id, k);
            }
            Ok(_) => warn!(key = %printable(key), "ignoring a pin filed under another host id"),
            Err(e) => warn!(key = %printable(key), error = %e, "ignoring a pin"),
        }
    }
    Ok(keys)
}
