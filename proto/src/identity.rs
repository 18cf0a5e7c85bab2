//! Agent identities: answers that can't be forged by whoever else can
//! produce to the broker.
//!
//! Every agent has its own ed25519 key ([`AgentKey`]), made at its first
//! start under its state directory; its public key travels in its heartbeat.
//! The controller pins it on first sight, or an operator registers it ahead
//! (`sweep agents trust`): a [`Pin`] under `<prefix>identities/<host_id>`,
//! signed by the controller's key, which sweep-rules reads too.
//!
//! An agent signs each hunt status, and each scheduled run's [`RunSeal`],
//! together with a [`RowDigest`] of the rows it sent before it. A reader
//! recomputes the digest over the rows it received and checks the signature
//! with the pinned key: a fake row, a missing row, or a clean status for a
//! frozen host is a [`Forgery`], reported, never counted as an answer.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::record::{HuntStatus, RunSeal, Seal};
use crate::signing::{Envelope, Kind, TrustedKeys};
use crate::ProtoError;

/// The identity key's file name under the agent's `state_dir`.
pub const KEY_FILE: &str = "identity.key";

const KEY_HEADER: &str =
    "# sweep agent identity key: signs this host's answers; never copy it to another host";

/// Domain-separation tags, so a status signature is never a run seal's.
const STATUS_TAG: &[u8] = b"sweep-answer-v1 status\n";
const RUN_TAG: &[u8] = b"sweep-answer-v1 run\n";

fn bad_key(path: &Path, reason: impl Into<String>) -> ProtoError {
    ProtoError::Setting {
        name: "identity key",
        reason: format!("{}: {}", path.display(), reason.into()),
    }
}

/// An agent's own signing key.
pub struct AgentKey {
    key: SigningKey,
}

impl AgentKey {
    /// Reads the key at `path`, or makes one there (mode 0600) when there is
    /// none yet.
    pub fn load_or_create(path: &Path) -> Result<Self, ProtoError> {
        match std::fs::File::open(path) {
            Ok(f) => {
                let mut text = String::new();
                f.take(4096)
                    .read_to_string(&mut text)
                    .map_err(|e| bad_key(path, e.to_string()))?;
                let line = text
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                    .unwrap_or_default();
                let seed: [u8; 32] = hex::decode(line)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        bad_key(
                            path,
                            "not a 32-byte hex ed25519 key; move it aside to make a new \
                             identity (the controller must then be told with `sweep agents \
                             trust --replace`)",
                        )
                    })?;
                Ok(Self {
                    key: SigningKey::from_bytes(&seed),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed)
                    .map_err(|e| bad_key(path, format!("no randomness from the OS: {e}")))?;
                let key = SigningKey::from_bytes(&seed);
                // Written under a temporary name and renamed, so a crash
                // never leaves half a key; readable by the agent alone.
                let tmp = path.with_extension("key.tmp");
                let _ = std::fs::remove_file(&tmp);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|e| bad_key(&tmp, e.to_string()))?;
                writeln!(f, "{KEY_HEADER}\n{}", hex::encode(seed))
                    .and_then(|()| f.sync_all())
                    .map_err(|e| bad_key(&tmp, e.to_string()))?;
                std::fs::rename(&tmp, path).map_err(|e| bad_key(path, e.to_string()))?;
                Ok(Self { key })
            }
            Err(e) => Err(bad_key(path, e.to_string())),
        }
    }

    /// A key that lives in memory only (tests, the fuzzers).
    pub fn ephemeral(seed: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// The public key, as heartbeats and pins carry it.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    fn seal(&self, tag: &[u8], message: Vec<u8>, row_digest: String) -> Seal {
        let mut msg = tag.to_vec();
        msg.extend_from_slice(&message);
        Seal {
            row_digest,
            signature: hex::encode(self.key.sign(&msg).to_bytes()),
        }
    }

    /// Signs `status` together with the digest of the rows sent before it.
    pub fn seal_status(&self, status: &mut HuntStatus, digest: &RowDigest) {
        let d = digest.hex();
        status.seal = Some(self.seal(STATUS_TAG, status_message(status, &d), d));
    }

    /// Signs `run` together with the digest of its rows.
    pub fn seal_run(&self, run: &mut RunSeal, digest: &RowDigest) {
        let d = digest.hex();
        run.seal = self.seal(RUN_TAG, run_message(run, &d), d);
    }
}

/// What is signed for a status: every field that says something, and the
/// digest, as one JSON array (a fixed order, unambiguous).
fn status_message(status: &HuntStatus, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&(
        &status.hunt_id,
        &status.host_identifier,
        status.unix_time,
        &status.status,
        digest,
    ))
    .expect("a status serializes")
}

fn run_message(run: &RunSeal, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&(
        &run.name,
        &run.host_identifier,
        run.unix_time,
        run.epoch,
        run.counter,
        run.rows,
        digest,
    ))
    .expect("a run seal serializes")
}

/// The digest of one answer's rows, in the order they were sent: SHA-256
/// over the SHA-256 of each record's exact bytes.
#[derive(Clone, Default)]
pub struct RowDigest {
    hasher: Sha256,
    rows: u64,
}

impl RowDigest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next row record, as the bytes on the wire.
    pub fn add(&mut self, record: &[u8]) {
        self.hasher.update(Sha256::digest(record));
        self.rows += 1;
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn hex(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

/// Why a signed answer was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Forgery {
    #[error("unsigned answer (not from a sweep agent with an identity key)")]
    Unsigned,
    #[error("no pinned identity for this host (pin it with `sweep agents trust`)")]
    UnknownHost,
    #[error("signature does not verify with the host's pinned identity key")]
    BadSignature,
    #[error("the rows received do not match the rows the agent signed for")]
    RowsDiffer,
}

/// An agent's public key, as pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPublicKey(VerifyingKey);

impl AgentPublicKey {
    pub fn parse(hex_key: &str) -> Result<Self, ProtoError> {
        let bad = |reason: String| ProtoError::Setting {
            name: "identity public key",
            reason: format!("`{}`: {reason}", crate::text::printable(hex_key)),
        };
        let bytes: [u8; 32] = hex::decode(hex_key.trim())
            .map_err(|e| bad(e.to_string()))?
            .try_into()
            .map_err(|_| bad("not 32 bytes".into()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|e| bad(e.to_string()))
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    fn check(&self, tag: &[u8], message: Vec<u8>, seal: &Seal) -> Result<(), Forgery> {
        let sig = hex::decode(&seal.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
            .ok_or(Forgery::BadSignature)?;
        let mut msg = tag.to_vec();
        msg.extend_from_slice(&message);
        self.0
            .verify_strict(&msg, &sig)
            .map_err(|_| Forgery::BadSignature)
    }

    /// Checks a hunt status against the rows received for it (`received`,
    /// in their numbered order).
    pub fn verify_status(&self, status: &HuntStatus, received: &RowDigest) -> Result<(), Forgery> {
        let seal = status.seal.as_ref().ok_or(Forgery::Unsigned)?;
        // The signature covers the digest the agent claims; the rows must
        // then hash to it.
        self.check(STATUS_TAG, status_message(status, &seal.row_digest), seal)?;
        if received.hex() != seal.row_digest || received.rows() != status.status.rows {
            return Err(Forgery::RowsDiffer);
        }
        Ok(())
    }

    /// Checks a scheduled run's seal against the rows received for it.
    pub fn verify_run(&self, run: &RunSeal, received: &RowDigest) -> Result<(), Forgery> {
        self.check(RUN_TAG, run_message(run, &run.seal.row_digest), &run.seal)?;
        if received.hex() != run.seal.row_digest || received.rows() != run.rows {
            return Err(Forgery::RowsDiffer);
        }
        Ok(())
    }
}

/// An agent's identity as the controller pinned it: the body of a
/// [`Kind::Identity`](crate::signing::Kind::Identity) envelope under
/// `<prefix>identities/<host_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pub host_id: String,
    /// Hex ed25519 public key.
    pub public_key: String,
    /// Unix seconds when it was pinned.
    pub pinned_at: u64,
    /// Unix seconds when a controller last saw the agent live with this key
    /// (refreshed at most hourly): "hosts seen in the last N hours".
    pub last_seen: u64,
    /// Who pinned it (`user@host`), and how (`first sight`, `trust`).
    pub pinned_by: String,
    /// The agent's labels when last seen, so a host that vanished can still
    /// be matched against a hunt's label selector.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

impl Pin {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a pin serializes")
    }

    pub fn from_json(text: &str) -> Result<Self, ProtoError> {
        serde_json::from_str(text).map_err(|source| ProtoError::Decode {
            what: "identity pin",
            source,
        })
    }

    /// A pin as stored in etcd: an identity envelope, checked against
    /// `trusted` (the operators' keys) when given, holding a valid key.
    pub fn read_stored(value: &[u8], trusted: Option<&TrustedKeys>) -> Result<Self, ProtoError> {
        let env = Envelope::from_json(value)?;
        if let Some(trusted) = trusted {
            trusted.verify(&env, Kind::Identity)?;
        }
        let pin = Self::from_json(&env.body)?;
        AgentPublicKey::parse(&pin.public_key)?;
        Ok(pin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::StatusBody;

    fn status(rows: u64) -> HuntStatus {
        HuntStatus {
            hunt_id: "h".into(),
            host_identifier: "web-1".into(),
            unix_time: 7,
            status: StatusBody {
                rows,
                error: None,
                duration_ms: 3,
                columns: vec!["pid".into()],
                skipped: None,
            },
            seal: None,
        }
    }

    #[test]
    fn signed_answers_verify_and_forged_ones_do_not() {
        let key = AgentKey::ephemeral([7; 32]);
        let other = AgentKey::ephemeral([8; 32]);
        let public = AgentPublicKey::parse(&key.public_hex()).unwrap();
        let mut rows = RowDigest::new();
        rows.add(br#"{"pid":"1"}"#);
        rows.add(br#"{"pid":"2"}"#);
        let mut s = status(2);
        assert_eq!(public.verify_status(&s, &rows), Err(Forgery::Unsigned));
        key.seal_status(&mut s, &rows);
        // Through the wire and back.
        let back: HuntStatus = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        public.verify_status(&back, &rows).unwrap();
        // One row fewer, one row changed, or one more.
        let mut fewer = RowDigest::new();
        fewer.add(br#"{"pid":"1"}"#);
        assert_eq!(public.verify_status(&s, &fewer), Err(Forgery::RowsDiffer));
        let mut changed = RowDigest::new();
        changed.add(br#"{"pid":"1"}"#);
        changed.add(br#"{"pid":"3"}"#);
        assert_eq!(public.verify_status(&s, &changed), Err(Forgery::RowsDiffer));
        // A clean status made by someone else, or this one altered.
        let mut forged = status(0);
        other.seal_status(&mut forged, &RowDigest::new());
        assert_eq!(
            public.verify_status(&forged, &RowDigest::new()),
            Err(Forgery::BadSignature)
        );
        let mut altered = s.clone();
        altered.status.error = Some("x".into());
        assert_eq!(
            public.verify_status(&altered, &rows),
            Err(Forgery::BadSignature)
        );
        // A status signature is no run seal.
        let mut run = RunSeal {
            name: "h".into(),
            host_identifier: "web-1".into(),
            unix_time: 7,
            epoch: 0,
            counter: 0,
            rows: 2,
            action: "seal".into(),
            seal: s.seal.clone().unwrap(),
        };
        assert_eq!(public.verify_run(&run, &rows), Err(Forgery::BadSignature));
        key.seal_run(&mut run, &rows);
        public.verify_run(&run, &rows).unwrap();
    }

    #[test]
    fn the_key_is_made_once_private_and_read_back() {
        let dir = tempfile_dir();
        let path = dir.join(KEY_FILE);
        let made = AgentKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let read = AgentKey::load_or_create(&path).unwrap();
        assert_eq!(made.public_hex(), read.public_hex());
        std::fs::write(&path, "garbage").unwrap();
        let why = AgentKey::load_or_create(&path).err().unwrap().to_string();
        assert!(why.contains("move it aside"), "{why}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sweep-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
