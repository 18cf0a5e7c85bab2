//! The console's own configuration (`--console-config FILE`, TOML): who may
//! sign in. Passwords and tokens are stored as Argon2 hashes (PHC strings,
//! `sweep console --hash-password` prints one), never in clear.
//!
//! ```toml
//! session_ttl = "12h"
//!
//! [[users]]
//! name = "alice"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…"
//!
//! [[tokens]]
//! name = "ci"                    # the user a token signs in as
//! token_hash = "$argon2id$…"
//! ```

use std::path::Path;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Deserialize;

use crate::ControllerError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// How long a sign-in lasts.
    #[serde(default = "default_ttl", with = "humantime_serde_compat")]
    pub session_ttl: Duration,
    /// Users who sign in with a name and a password.
    #[serde(default)]
    pub users: Vec<User>,
    /// Tokens that sign in as the named user (for scripts and shared screens).
    #[serde(default)]
    pub tokens: Vec<Token>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub password_hash: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub name: String,
    pub token_hash: String,
}

fn default_ttl() -> Duration {
    Duration::from_secs(12 * 3600)
}

use sweep_proto::settings::humantime_serde_compat;

impl ConsoleConfig {
    pub fn load(path: &Path) -> Result<Self, ControllerError> {
        let bad = |reason: String| ControllerError::Config {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let config: Self = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if config.users.is_empty() && config.tokens.is_empty() {
            return Err(bad(
                "no [[users]] or [[tokens]]: nobody could sign in".into()
            ));
        }
        for (who, hash) in config
            .users
            .iter()
            .map(|u| (&u.name, &u.password_hash))
            .chain(config.tokens.iter().map(|t| (&t.name, &t.token_hash)))
        {
            if who.trim().is_empty() {
                return Err(bad("a user or token without a name".into()));
            }
            PasswordHash::new(hash)
                .map_err(|e| bad(format!("{who}: not an Argon2 PHC hash ({e})")))?;
        }
        Ok(config)
    }

    /// The user `name` signs in as with `password`.
    pub fn check_password(&self, name: &str, password: &str) -> Option<String> {
        let user = self.users.iter().find(|u| u.name == name)?;
        verify(&user.password_hash, password).then(|| user.name.clone())
    }

    /// The user a token signs in as.
    pub fn check_token(&self, token: &str) -> Option<String> {
        self.tokens
            .iter()
            .find(|t| verify(&t.token_hash, token))
            .map(|t| t.name.clone())
    }
}

fn verify(hash: &str, secret: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &h)
            .is_ok()
    })
}

/// An Argon2id PHC hash of `secret`, with a fresh salt.
pub fn hash(secret: &str) -> Result<String, ControllerError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| ControllerError::Usage(format!("no randomness: {e}")))?;
    let salt =
        SaltString::encode_b64(&bytes).map_err(|e| ControllerError::Usage(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ControllerError::Usage(format!("hashing: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens_check_against_their_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.toml");
        std::fs::write(
            &path,
            format!(
                "[[users]]\nname = \"alice\"\npassword_hash = \"{}\"\n[[tokens]]\nname = \"ci\"\ntoken_hash = \"{}\"\n",
                hash("correct horse").unwrap(),
                hash("tok-123").unwrap()
            ),
        )
        .unwrap();
        let c = ConsoleConfig::load(&path).unwrap();
        assert_eq!(
            c.check_password("alice", "correct horse").as_deref(),
            Some("alice")
        );
        assert_eq!(c.check_password("alice", "wrong"), None);
        assert_eq!(c.check_password("bob", "correct horse"), None);
        assert_eq!(c.check_token("tok-123").as_deref(), Some("ci"));
        assert_eq!(c.check_token("tok-124"), None);
        assert_eq!(c.session_ttl, Duration::from_secs(12 * 3600));
        std::fs::write(
            &path,
            "[[users]]\nname = \"x\"\npassword_hash = \"plain\"\n",
        )
        .unwrap();
        let e = ConsoleConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("not an Argon2 PHC hash"), "{e}");
        std::fs::write(&path, "").unwrap();
        assert!(ConsoleConfig::load(&path).is_err());
    }
}
