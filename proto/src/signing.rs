//! Command signing: the controller signs every hunt with an ed25519 key, and
//! an agent runs only hunts signed by a key it trusts.
//!
//! What is signed is the hunt's JSON with `signature` left out, as this
//! version serializes it. A field the agent does not know therefore fails the
//! check (a safe failure) rather than going unverified.
//!
//! Key files hold hex: the secret key file the 32-byte seed, the public key
//! file the 32-byte public key, each on one line.

use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

use crate::{Hunt, Pack, ProtoError, ScheduledQuery};

fn bad_key(path: &Path, reason: impl Into<String>) -> ProtoError {
    ProtoError::Setting {
        name: "signing key",
        reason: format!("{}: {}", path.display(), reason.into()),
    }
}

/// A command written to etcd that carries a signature.
pub trait Signed: serde::Serialize + Clone {
    fn signature(&self) -> Option<&str>;
    fn set_signature(&mut self, signature: Option<String>);
}

macro_rules! signed {
    ($($t:ty),*) => {$(
        impl Signed for $t {
            fn signature(&self) -> Option<&str> {
                self.signature.as_deref()
            }

            fn set_signature(&mut self, signature: Option<String>) {
                self.signature = signature;
            }
        }
    )*};
}

signed!(Hunt, ScheduledQuery, Pack);

/// The bytes a command's signature covers.
fn signed_bytes<C: Signed>(command: &C) -> Vec<u8> {
    let mut unsigned = command.clone();
    unsigned.set_signature(None);
    serde_json::to_vec(&unsigned).expect("commands always serialize")
}

/// A controller's signing key.
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    /// A new random key.
    pub fn generate() -> Result<Self, ProtoError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| ProtoError::Setting {
            name: "signing key",
            reason: format!("no randomness from the OS: {e}"),
        })?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Reads a secret key file written by `sweep keygen`.
    pub fn load(path: &Path) -> Result<Self, ProtoError> {
        let text = std::fs::read_to_string(path).map_err(|e| bad_key(path, e.to_string()))?;
        let bytes = hex::decode(text.trim()).map_err(|e| bad_key(path, e.to_string()))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| bad_key(path, "not a 32-byte ed25519 secret key"))?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The secret key as written to a key file.
    pub fn secret_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// The public key agents put in their `[trust] public_keys`.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// Sets the command's signature.
    pub fn sign<C: Signed>(&self, command: &mut C) {
        let sig = self.key.sign(&signed_bytes(command));
        command.set_signature(Some(hex::encode(sig.to_bytes())));
    }
}

/// The keys an agent trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<VerifyingKey>,
}

impl TrustedKeys {
    /// Parses hex public keys, as `sweep keygen` prints them.
    pub fn parse<'a>(hex_keys: impl IntoIterator<Item = &'a str>) -> Result<Self, ProtoError> {
        let mut keys = Vec::new();
        for k in hex_keys {
            let bad = |reason: &str| ProtoError::Setting {
                name: "trust.public_keys",
                reason: format!("`{k}`: {reason}"),
            };
            let bytes: [u8; 32] = hex::decode(k.trim())
                .map_err(|e| bad(&e.to_string()))?
                .try_into()
                .map_err(|_| bad("not 32 bytes"))?;
            keys.push(VerifyingKey::from_bytes(&bytes).map_err(|e| bad(&e.to_string()))?);
        }
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks that the command carries a valid signature by one of these keys.
    pub fn verify<C: Signed>(&self, command: &C) -> Result<(), ProtoError> {
        let untrusted = |why: &str| Err(ProtoError::Untrusted(why.to_string()));
        let Some(sig_hex) = command.signature() else {
            return untrusted("the command is not signed");
        };
        let Some(sig) = hex::decode(sig_hex)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
        else {
            return untrusted("the signature is malformed");
        };
        let msg = signed_bytes(command);
        if self.keys.iter().any(|k| k.verify(&msg, &sig).is_ok()) {
            Ok(())
        } else {
            untrusted("the signature is not by a trusted key")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Targets;

    fn hunt() -> Hunt {
        Hunt {
            id: "h".into(),
            sql: "SELECT 1".into(),
            targets: Targets::all(),
            issued_at: 1,
            expires_at: 2,
            issuer: "alice@ops".into(),
            signature: None,
        }
    }

    #[test]
    fn signed_hunts_verify_and_tampered_ones_do_not() {
        let signer = Signer::generate().unwrap();
        let other = Signer::generate().unwrap();
        let trusted = TrustedKeys::parse([signer.public_hex().as_str()]).unwrap();
        let mut h = hunt();
        assert!(trusted
            .verify(&h)
            .unwrap_err()
            .to_string()
            .contains("not signed"));
        signer.sign(&mut h);
        trusted.verify(&h).unwrap();
        // Survives the trip through etcd.
        trusted
            .verify(&Hunt::from_json(h.to_json().as_bytes()).unwrap())
            .unwrap();
        let mut tampered = h.clone();
        tampered.sql = "SELECT 2".into();
        assert!(trusted.verify(&tampered).is_err());
        let mut spoofed = h.clone();
        spoofed.issuer = "mallory".into();
        assert!(trusted.verify(&spoofed).is_err());
        let mut foreign = hunt();
        other.sign(&mut foreign);
        assert!(trusted
            .verify(&foreign)
            .unwrap_err()
            .to_string()
            .contains("not by a trusted key"));
        assert!(TrustedKeys::parse(["abcd"]).is_err());
    }

    #[test]
    fn key_files_round_trip() {
        let dir = std::env::temp_dir().join(format!("sweep-sign-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sweep.key");
        let signer = Signer::generate().unwrap();
        std::fs::write(&path, signer.secret_hex()).unwrap();
        let loaded = Signer::load(&path).unwrap();
        assert_eq!(loaded.public_hex(), signer.public_hex());
        std::fs::write(&path, "zz").unwrap();
        assert!(Signer::load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
