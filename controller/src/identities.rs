//! Agents' identity keys as the controller pinned them, under
//! `<prefix>identities/<host_id>`, each signed by the operators' key.
//!
//! A live agent's heartbeat carries its public key; the first controller
//! that sees a host without a pin pins that key (trust on first sight), or an
//! operator registers it ahead with `sweep agents trust`. From then on an
//! answer counts only when it verifies with the pinned key, and a heartbeat
//! showing another key is flagged, never silently re-pinned. Pins also
//! remember when each host was last seen live and its labels, which is how
//! a hunt knows to expect a host that has since vanished.

use std::collections::BTreeMap;

use futures::StreamExt as _;
use sweep_proto::identity::{AgentPublicKey, Pin};
use sweep_proto::signing::{Kind, Signer, TrustedKeys};
use sweep_proto::text::printable;
use sweep_proto::time::unix_now;
use sweep_proto::{Heartbeat, Keyspace, Store};
use tracing::warn;

use crate::{operator, ControllerError};

/// A pin's `last_seen` is rewritten at most this often (seconds): "seen in
/// the last N hours" needs no finer grain, and a fleet of 10,000 must not
/// cost the store a write per host per command.
const SEEN_REFRESH: u64 = 3600;

/// Pin writes in flight at once.
const PIN_WRITES_AT_ONCE: usize = 64;

/// How a live agent's key stands against its pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Pinned, and the heartbeat shows the pinned key.
    Pinned,
    /// No pin (no signing key to make one with): its heartbeat's key is
    /// used for this command only.
    Unpinned,
    /// The heartbeat shows a key other than the pinned one.
    Changed,
    /// The agent has no identity key (an old agent): its answers are
    /// unsigned.
    None,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pinned => "pinned",
            Self::Unpinned => "unpinned",
            Self::Changed => "CHANGED",
            Self::None => "none",
        }
    }
}

#[derive(Default)]
pub struct Identities {
    pins: BTreeMap<String, Pin>,
    /// Keys from heartbeats of hosts without a pin, for this command only.
    unpinned: BTreeMap<String, String>,
    /// Hosts whose heartbeat shows a key other than their pin's.
    changed: BTreeMap<String, String>,
}

impl Identities {
    /// Reads every pin. With a signing key, a pin must be signed by it; a
    /// pin that is not is ignored with a warning (someone else wrote it).
    pub async fn load(
        store: &Store,
        keys: &Keyspace,
        signer: Option<&Signer>,
    ) -> Result<Self, ControllerError> {
        let trusted = signer
            .map(|s| TrustedKeys::parse([s.public_hex().as_str()]))
            .transpose()?;
        let dir = keys.identities();
        let mut pins = BTreeMap::new();
        for entry in store.list(&dir).await? {
            let key = entry.key.as_str();
            let Some(host) = Keyspace::leaf(&dir, key) else {
                continue;
            };
            match Pin::read_stored(&entry.value, trusted.as_ref()) {
                Ok(pin) if pin.host_id == host => {
                    pins.insert(host.to_string(), pin);
                }
                Ok(_) => {
                    warn!(key = %printable(key), "ignoring a pin filed under another host id")
                }
                Err(e) => warn!(key = %printable(key), error = %e, "ignoring a pin"),
            }
        }
        Ok(Self {
            pins,
            ..Self::default()
        })
    }

    /// Takes in the live agents' heartbeats: pins new hosts (when there is a
    /// signing key), refreshes `last_seen`, and notes changed keys.
    pub async fn observe(
        &mut self,
        store: &Store,
        keys: &Keyspace,
        signer: Option<&Signer>,
        agents: &[Heartbeat],
    ) -> Result<(), ControllerError> {
        let now = unix_now();
        // Pins to write: (pin, only if the host has none yet).
        let mut writes: Vec<(Pin, bool)> = Vec::new();
        for a in agents {
            let Some(key) = &a.identity else { continue };
            if AgentPublicKey::parse(key).is_err() {
                warn!(host = %printable(&a.host_id), "a heartbeat with a malformed identity key");
                continue;
            }
            match (self.pins.get(&a.host_id), signer) {
                (Some(pin), _) if &pin.public_key != key => {
                    if self
                        .changed
                        .insert(a.host_id.clone(), key.clone())
                        .is_none()
                    {
                        eprintln!(
                            "warning: {} shows an identity key other than the one pinned on {}; its answers are rejected until an operator runs `sweep agents trust {} --replace`",
                            printable(&a.host_id),
                            sweep_proto::time::calendar_time(pin.pinned_at),
                            printable(&a.host_id),
                        );
                    }
                }
                (Some(pin), Some(_))
                    if now.saturating_sub(pin.last_seen) >= SEEN_REFRESH
                        || pin.labels != a.labels =>
                {
                    let mut pin = pin.clone();
                    pin.last_seen = now;
                    pin.labels = a.labels.clone();
                    writes.push((pin, false));
                }
                (Some(_), _) => {}
                (None, Some(_)) => writes.push((
                    Pin {
                        host_id: a.host_id.clone(),
                        public_key: key.clone(),
                        pinned_at: now,
                        last_seen: now,
                        pinned_by: format!("{} (first sight)", operator::issuer()),
                        labels: a.labels.clone(),
                    },
                    true,
                )),
                (None, None) => {
                    self.unpinned.insert(a.host_id.clone(), key.clone());
                }
            }
        }
        let Some(signer) = signer else {
            return Ok(());
        };
        // Many at a time: a fleet of 10,000 seen for the first time is
        // 10,000 writes, which one after another would take minutes.
        let written: Vec<Result<(Pin, bool), ControllerError>> =
            futures::stream::iter(writes.into_iter().map(|(pin, only_new)| async move {
                let done = put_pin(store, keys, signer, &pin, only_new).await?;
                Ok((pin, done))
            }))
            .buffer_unordered(PIN_WRITES_AT_ONCE)
            .collect()
            .await;
        let mut raced = false;
        for w in written {
            let (pin, done) = w?;
            if done {
                self.pins.insert(pin.host_id.clone(), pin);
            } else {
                raced = true;
            }
        }
        if raced {
            // Another controller pinned some first: theirs hold.
            let fresh = Self::load(store, keys, Some(signer)).await?;
            for (host, pin) in fresh.pins {
                self.pins.entry(host).or_insert(pin);
            }
        }
        Ok(())
    }

    /// The key a host's answers must verify with: its pin, else (without
    /// a signing key to pin with) its live heartbeat's. None for a host whose
    /// key changed, or that was never seen.
    pub fn key_for(&self, host: &str) -> Option<AgentPublicKey> {
        if self.changed.contains_key(host) {
            return None;
        }
        let hex = self
            .pins
            .get(host)
            .map(|p| &p.public_key)
            .or_else(|| self.unpinned.get(host))?;
        AgentPublicKey::parse(hex).ok()
    }

    /// How a live agent stands.
    pub fn standing(&self, agent: &Heartbeat) -> Standing {
        if self.changed.contains_key(&agent.host_id) {
            Standing::Changed
        } else if self.pins.contains_key(&agent.host_id) {
            Standing::Pinned
        } else if agent.identity.is_some() {
            Standing::Unpinned
        } else {
            Standing::None
        }
    }

    /// Identities known otherwise than from the store: `(host, hex key)`, used
    /// as unpinned keys are.
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = (&'a str, String)>) -> Self {
        Self {
            unpinned: keys.into_iter().map(|(h, k)| (h.to_string(), k)).collect(),
            ..Self::default()
        }
    }

    /// Every pinned host.
    pub fn pins(&self) -> impl Iterator<Item = &Pin> {
        self.pins.values()
    }
}

/// Writes `pin`, signed. With `only_new`, only when the host has no pin yet;
/// returns whether it was written.
async fn put_pin(
    store: &Store,
    keys: &Keyspace,
    signer: &Signer,
    pin: &Pin,
    only_new: bool,
) -> Result<bool, ControllerError> {
    let key = keys.identity(&pin.host_id);
    let value = signer.seal(Kind::Identity, pin.to_json()).to_json();
    if !only_new {
        store.put(&key, value.as_bytes()).await?;
        return Ok(true);
    }
    Ok(store.create(&key, value.as_bytes()).await?)
}

/// `sweep agents trust`: pins `host` to `key` (or, with none given, to the
/// key its live heartbeat shows). A host pinned to another key is re-pinned
/// only with `replace`.
pub async fn trust(
    store: &Store,
    keys: &Keyspace,
    signer: &Signer,
    host: &str,
    key: Option<&str>,
    replace: bool,
) -> Result<Pin, ControllerError> {
    Keyspace::check_host_id(host).map_err(ControllerError::Usage)?;
    let ids = Identities::load(store, keys, Some(signer)).await?;
    let live = crate::fleet::live_agents(store, keys)
        .await?
        .into_iter()
        .find(|a| a.host_id == host);
    let key = match (key, &live) {
        (Some(k), _) => k.trim().to_string(),
        (None, Some(a)) => a.identity.clone().ok_or_else(|| {
            ControllerError::Usage(format!(
                "{host} is live but has no identity key (an older agent); give --key"
            ))
        })?,
        (None, None) => {
            return Err(ControllerError::Usage(format!(
                "{host} is not live; give its public key with --key (the agent prints it at start, \
                 and keeps it in state_dir/identity.key)"
            )))
        }
    };
    AgentPublicKey::parse(&key)?;
    let old = ids.pins.get(host);
    if let Some(old) = old {
        if old.public_key != key && !replace {
            return Err(ControllerError::Usage(format!(
                "{host} is pinned to another key (since {}); check the host was reinstalled, \
                 then add --replace",
                sweep_proto::time::calendar_time(old.pinned_at)
            )));
        }
    }
    let now = unix_now();
    let pin = Pin {
        host_id: host.to_string(),
        public_key: key,
        pinned_at: now,
        last_seen: old.map_or(0, |p| p.last_seen),
        pinned_by: format!("{} (trust)", operator::issuer()),
        labels: live
            .map(|a| a.labels)
            .or_else(|| old.map(|p| p.labels.clone()))
            .unwrap_or_default(),
    };
    put_pin(store, keys, signer, &pin, false).await?;
    Ok(pin)
}
