//! Which commands from etcd this agent runs. A value under `/sweep/hunts/`,
//! `/sweep/schedule/` or `/sweep/packs/` is an envelope: its signature is
//! checked (by a key in `[trust] public_keys`, for the kind of command the
//! key's folder holds) before its body is decoded; the body's id or name must
//! equal the key's last segment; a hunt may live at most
//! `max_hunt_lifetime`; and a schedule's or pack's version never goes back,
//! even across restarts and deletes, so an old signed version replayed into
//! etcd is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use sweep_proto::signing::{Envelope, Kind, TrustedKeys};
use sweep_proto::{Hunt, Pack, ScheduledQuery};

use super::state_file;
use crate::config::TrustConfig;
use crate::error::AgentError;

/// Why a command was refused; the text is reported back and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected(pub String);

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub struct Verifier {
    keys: TrustedKeys,
    allow_unsigned: bool,
    max_hunt_lifetime: u64,
    /// Highest version seen per schedule or pack key, kept on disk.
    versions: Mutex<BTreeMap<String, u64>>,
    versions_path: PathBuf,
}

impl Verifier {
    pub fn new(config: &TrustConfig, state_dir: &Path) -> Result<Self, AgentError> {
        let keys = TrustedKeys::parse(config.public_keys.iter().map(String::as_str))?;
        let versions_path = state_dir.join("versions.json");
        let versions =
            state_file::read_or_set_aside(&versions_path, "command versions")?.unwrap_or_default();
        Ok(Self {
            keys,
            allow_unsigned: config.allow_unsigned,
            max_hunt_lifetime: config.max_hunt_lifetime.as_secs(),
            versions: Mutex::new(versions),
            versions_path,
        })
    }

    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The envelope's body, once its signature checks out for `kind`.
    fn open<T: DeserializeOwned>(&self, kind: Kind, value: &[u8]) -> Result<T, Rejected> {
        let env = Envelope::from_json(value).map_err(|e| Rejected(e.to_string()))?;
        let unsigned_ok = self.allow_unsigned && env.signature.is_none() && env.kind == kind;
        if !unsigned_ok {
            self.keys
                .verify(&env, kind)
                .map_err(|e| Rejected(e.to_string()))?;
        }
        serde_json::from_str(&env.body)
            .map_err(|e| Rejected(format!("undecodable {}: {e}", kind.as_str())))
    }

    /// A hunt stored under the key whose last segment is `leaf`.
    pub fn hunt(&self, leaf: &str, value: &[u8], now: u64) -> Result<Hunt, Rejected> {
        let hunt: Hunt = self.open(Kind::Hunt, value)?;
        if hunt.id != leaf {
            return Err(Rejected(format!(
                "the hunt's id does not match its key ({leaf})"
            )));
        }
        let lifetime = hunt.expires_at.saturating_sub(hunt.issued_at);
        if lifetime > self.max_hunt_lifetime
            || hunt.expires_at > now.saturating_add(self.max_hunt_lifetime)
        {
            return Err(Rejected(format!(
                "the hunt lives longer than the {} s this agent allows",
                self.max_hunt_lifetime
            )));
        }
        Ok(hunt)
    }

    /// A scheduled query stored under `key` (last segment `leaf`).
    pub fn schedule(
        &self,
        key: &str,
        leaf: &str,
        value: &[u8],
    ) -> Result<ScheduledQuery, Rejected> {
        let q: ScheduledQuery = self.open(Kind::Schedule, value)?;
        if q.name != leaf {
            return Err(Rejected(format!(
                "the schedule's name does not match its key ({leaf})"
            )));
        }
        self.advance(key, q.version)?;
        Ok(q)
    }

    /// A pack stored under `key` (last segment `leaf`).
    pub fn pack(&self, key: &str, leaf: &str, value: &[u8]) -> Result<Pack, Rejected> {
        let p: Pack = self.open(Kind::Pack, value)?;
        if p.name != leaf {
            return Err(Rejected(format!(
                "the pack's name does not match its key ({leaf})"
            )));
        }
        self.advance(key, p.version)?;
        Ok(p)
    }

    /// Accepts `version` for `key` unless a later one was seen; the same
    /// version again (a re-read after a restart or a compaction) is fine.
    fn advance(&self, key: &str, version: u64) -> Result<(), Rejected> {
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        match versions.get(key) {
            Some(seen) if *seen > version => {
                return Err(Rejected(format!(
                    "version {version} is older than version {seen} already seen (a replay?)"
                )))
            }
            Some(seen) if *seen == version => return Ok(()),
            _ => {}
        }
        versions.insert(key.to_string(), version);
        let bytes = serde_json::to_vec(&*versions).expect("a map of numbers serializes");
        state_file::write_atomic(&self.versions_path, &bytes)
            .map_err(|e| Rejected(format!("cannot record the version: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sweep_proto::signing::Signer;
    use sweep_proto::Targets;

    fn schedule(version: u64) -> ScheduledQuery {
        ScheduledQuery {
            name: "q".into(),
            sql: "SELECT 1".into(),
            interval: 60,
            snapshot: false,
            removed: true,
            targets: Targets::all(),
            platform: None,
            description: String::new(),
            issuer: "alice@ops".into(),
            issued_at: 1,
            version,
        }
    }

    fn verifier(signer: &Signer, dir: &Path) -> Verifier {
        let config = TrustConfig {
            public_keys: vec![signer.public_hex()],
            ..TrustConfig::default()
        };
        Verifier::new(&config, dir).unwrap()
    }

    #[test]
    fn versions_never_go_back_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::generate().unwrap();
        let seal = |v| signer.seal(Kind::Schedule, schedule(v).to_json()).to_json();
        let v = verifier(&signer, dir.path());
        let key = "/sweep/schedule/q";
        v.schedule(key, "q", seal(5).as_bytes()).unwrap();
        v.schedule(key, "q", seal(5).as_bytes()).unwrap();
        v.schedule(key, "q", seal(7).as_bytes()).unwrap();
        let why = v.schedule(key, "q", seal(6).as_bytes()).unwrap_err();
        assert!(why.0.contains("older than version 7"), "{why}");
        // A restarted agent remembers.
        let v = verifier(&signer, dir.path());
        assert!(v.schedule(key, "q", seal(6).as_bytes()).is_err());
        // The name must match the key.
        let why = v
            .schedule("/sweep/schedule/r", "r", seal(8).as_bytes())
            .unwrap_err();
        assert!(why.0.contains("does not match its key"), "{why}");
    }

    #[test]
    fn a_hunt_signature_does_not_make_a_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::generate().unwrap();
        let v = verifier(&signer, dir.path());
        // The body of a schedule, signed as a hunt.
        let env = signer.seal(Kind::Hunt, schedule(1).to_json());
        let mut moved = env.clone();
        moved.kind = Kind::Schedule;
        for value in [env.to_json(), moved.to_json()] {
            assert!(v
                .schedule("/sweep/schedule/q", "q", value.as_bytes())
                .is_err());
        }
    }

    #[test]
    fn hunts_have_a_maximum_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::generate().unwrap();
        let v = verifier(&signer, dir.path());
        let hunt = |expires_at| Hunt {
            id: "h".into(),
            sql: "SELECT 1".into(),
            targets: Targets::all(),
            issued_at: 1000,
            expires_at,
            issuer: "alice@ops".into(),
            partition: None,
        };
        let seal = |h: Hunt| signer.seal(Kind::Hunt, h.to_json()).to_json();
        v.hunt("h", seal(hunt(1000 + 3600)).as_bytes(), 1000)
            .unwrap();
        let why = v
            .hunt("h", seal(hunt(u64::MAX)).as_bytes(), 1000)
            .unwrap_err();
        assert!(why.0.contains("lives longer"), "{why}");
        assert!(v.hunt("other", seal(hunt(2000)).as_bytes(), 1000).is_err());
    }
}
