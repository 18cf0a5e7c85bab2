//! Command signing: the controller signs every command it writes to etcd
//! with an ed25519 key, and an agent runs only commands signed by a key it
//! trusts.
//!
//! A command is stored as an [`Envelope`]: the command's JSON exactly as
//! written (`body`, a string), its kind, and a signature over a tag for the
//! kind followed by those exact bytes. The agent checks the signature before
//! it decodes the body, so what runs is byte for byte what was signed, and a
//! signature for a hunt is never valid for a schedule or a pack.
//!
//! Key files hold hex: the secret key file the 32-byte seed, the public key
//! file the 32-byte public key, each on one line.

use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::ProtoError;

fn bad_key(path: &Path, reason: impl Into<String>) -> ProtoError {
    ProtoError::Setting {
        name: "signing key",
        reason: format!("{}: {}", path.display(), reason.into()),
    }
}

/// First line of a secret key file.
const SECRET_HEADER: &str =
    "# sweep ed25519 secret key: signs commands; keep it with the operators";
/// First line of a public key file.
const PUBLIC_HEADER: &str = "# sweep ed25519 public key";

/// What a command is; part of what is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Hunt,
    Schedule,
    Pack,
    /// An agent's identity key, pinned by the controller.
    Identity,
}

impl Kind {
    /// The domain-separation tag signed before the body.
    fn tag(self) -> &'static [u8] {
        match self {
            Self::Hunt => b"sweep-command-v1 hunt\n",
            Self::Schedule => b"sweep-command-v1 schedule\n",
            Self::Pack => b"sweep-command-v1 pack\n",
            Self::Identity => b"sweep-command-v1 identity\n",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hunt => "hunt",
            Self::Schedule => "schedule",
            Self::Pack => "pack",
            Self::Identity => "identity",
        }
    }
}

/// A command as stored in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub kind: Kind,
    /// The command's JSON, exactly the bytes that were signed.
    pub body: String,
    /// Hex ed25519 signature over the kind's tag and `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Envelope {
    /// An unsigned envelope (for agents that allow unsigned commands).
    pub fn unsigned(kind: Kind, body: String) -> Self {
        Self {
            kind,
            body,
            signature: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serializes")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtoError> {
        serde_json::from_slice(bytes).map_err(|source| ProtoError::Decode {
            what: "command envelope",
            source,
        })
    }

    fn message(&self) -> Vec<u8> {
        let tag = self.kind.tag();
        let mut msg = Vec::with_capacity(tag.len() + self.body.len());
        msg.extend_from_slice(tag);
        msg.extend_from_slice(self.body.as_bytes());
        msg
    }
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
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(4096).read_to_string(&mut text))
            .map_err(|e| bad_key(path, e.to_string()))?;
        if text
            .lines()
            .any(|l| l.trim_start().starts_with(PUBLIC_HEADER))
        {
            return Err(bad_key(
                path,
                "this is a public key file; signing needs the secret key (sweep.key beside it)",
            ));
        }
        let hex_line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or_default();
        let bytes = hex::decode(hex_line).map_err(|e| bad_key(path, e.to_string()))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| bad_key(path, "not a 32-byte ed25519 secret key"))?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The secret key file `sweep keygen` writes: a header naming it, then
    /// the hex seed.
    pub fn secret_file(&self) -> String {
        format!("{SECRET_HEADER}\n{}\n", self.secret_hex())
    }

    /// The public key file: a header naming it, then the hex key.
    pub fn public_file(&self) -> String {
        format!("{PUBLIC_HEADER}\n{}\n", self.public_hex())
    }

    /// The secret key as written to a key file.
    pub fn secret_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// The public key agents put in their `[trust] public_keys`.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// Wraps `body` (a command's JSON) in a signed envelope of `kind`.
    pub fn seal(&self, kind: Kind, body: String) -> Envelope {
        let mut env = Envelope::unsigned(kind, body);
        let sig = self.key.sign(&env.message());
        env.signature = Some(hex::encode(sig.to_bytes()));
        env
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

    /// Checks that `env` is a `kind` command carrying a valid signature by
    /// one of these keys (strict ed25519: no malleable or weak-key
    /// signatures), before anything decodes its body.
    pub fn verify(&self, env: &Envelope, kind: Kind) -> Result<(), ProtoError> {
        let untrusted = |why: String| Err(ProtoError::Untrusted(why));
        if env.kind != kind {
            return untrusted(format!(
                "a {} command stored where a {} belongs",
                env.kind.as_str(),
                kind.as_str()
            ));
        }
        let Some(sig_hex) = env.signature.as_deref() else {
            return untrusted("the command is not signed".into());
        };
        let Some(sig) = hex::decode(sig_hex)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
        else {
            return untrusted("the signature is malformed".into());
        };
        let msg = env.message();
        if self
            .keys
            .iter()
            .any(|k| k.verify_strict(&msg, &sig).is_ok())
        {
            Ok(())
        } else {
            untrusted("the signature is not by a trusted key".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"id":"h","sql":"SELECT 1"}"#;

    #[test]
    fn signed_commands_verify_and_altered_ones_do_not() {
        let signer = Signer::generate().unwrap();
        let other = Signer::generate().unwrap();
        let trusted = TrustedKeys::parse([signer.public_hex().as_str()]).unwrap();
        let unsigned = Envelope::unsigned(Kind::Hunt, BODY.into());
        let why = trusted.verify(&unsigned, Kind::Hunt).unwrap_err();
        assert!(why.to_string().contains("not signed"), "{why}");
        let env = signer.seal(Kind::Hunt, BODY.into());
        trusted.verify(&env, Kind::Hunt).unwrap();
        // Survives the trip through etcd.
        let back = Envelope::from_json(env.to_json().as_bytes()).unwrap();
        trusted.verify(&back, Kind::Hunt).unwrap();
        // One byte changed, even white space the JSON parser would not see.
        let mut tampered = env.clone();
        tampered.body = BODY.replace(':', ": ");
        assert!(trusted.verify(&tampered, Kind::Hunt).is_err());
        // A hunt's signature on a schedule, either by label or by check.
        let mut moved = env.clone();
        moved.kind = Kind::Schedule;
        assert!(trusted.verify(&moved, Kind::Schedule).is_err());
        assert!(trusted
            .verify(&env, Kind::Schedule)
            .unwrap_err()
            .to_string()
            .contains("hunt command stored where a schedule belongs"));
        let foreign = other.seal(Kind::Hunt, BODY.into());
        assert!(trusted
            .verify(&foreign, Kind::Hunt)
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
        // The files keygen writes: the secret one loads, the public one is
        // refused with a message that says so.
        std::fs::write(&path, signer.secret_file()).unwrap();
        assert_eq!(
            Signer::load(&path).unwrap().public_hex(),
            signer.public_hex()
        );
        let public = dir.join("sweep.pub");
        std::fs::write(&public, signer.public_file()).unwrap();
        let why = Signer::load(&public).err().unwrap().to_string();
        assert!(why.contains("public key file"), "{why}");
        std::fs::write(&path, "zz").unwrap();
        assert!(Signer::load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
