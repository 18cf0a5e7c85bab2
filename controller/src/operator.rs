//! Who is issuing a command, and the key it is signed with: shared by every
//! subcommand that writes a command to etcd (`hunt`, `schedule`, `pack`).

use sweep_proto::signing::{Envelope, Kind, Signer};
use sweep_proto::Store;

use crate::config::Settings;
use crate::ControllerError;

/// The operator issuing a command: `user@host`.
pub fn issuer() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}

/// The configured signing key, or None after a warning when there is none.
/// Call it before writing anything, so a bad key path fails early. `what`
/// names the command in the warning ("hunt", "schedule", "pack").
pub fn signer(settings: &Settings, what: &str) -> Result<Option<Signer>, ControllerError> {
    match &settings.signing_key {
        Some(path) => Ok(Some(Signer::load(path)?)),
        None => {
            eprintln!(
                "warning: no signing key (--signing-key, SWEEP_SIGNING_KEY): agents will reject this {what} unless they allow unsigned ones"
            );
            Ok(None)
        }
    }
}

/// Wraps a command's JSON for etcd: signed when there is a key.
pub fn seal(signer: Option<&Signer>, kind: Kind, body: String) -> Envelope {
    match signer {
        Some(s) => s.seal(kind, body),
        None => Envelope::unsigned(kind, body),
    }
}

/// The command JSON inside a value read from the store.
pub fn body(value: &[u8]) -> Result<String, ControllerError> {
    Ok(Envelope::from_json(value)?.body)
}

/// The version a new write of the command stored at `key` gets: later than
/// the one stored there now (read as `{"version": N}` from the envelope's
/// body), so agents take it as newer.
pub async fn next_version(store: &Store, key: &str) -> Result<u64, ControllerError> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u64,
    }
    let previous = store.get(key).await?;
    let last = previous
        .as_deref()
        .and_then(|value| body(value).ok())
        .and_then(|b| serde_json::from_str::<Versioned>(&b).ok())
        .map(|v| v.version);
    Ok(sweep_proto::schedule::next_version(
        last,
        sweep_proto::time::unix_now_ms(),
    ))
}
