//! `sweep keygen`: an ed25519 key pair for signing hunts. The secret key stays
//! with the operators (`--signing-key`); the public key goes into every
//! agent's `[trust] public_keys`.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use sweep_proto::signing::Signer;

use crate::cli::KeygenArgs;
use crate::ControllerError;

pub fn run(args: KeygenArgs) -> Result<u8, ControllerError> {
    std::fs::create_dir_all(&args.out)?;
    let secret = args.out.join("sweep.key");
    let public = args.out.join("sweep.pub");
    if secret.exists() && !args.force {
        return Err(ControllerError::Usage(format!(
            "{} exists; pass --force to replace it (agents trusting the old key will reject new hunts)",
            secret.display()
        )));
    }
    let signer = Signer::generate()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&secret)?;
    // `mode` only applies to a new file; a replaced one is narrowed too.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    file.write_all(signer.secret_file().as_bytes())?;
    std::fs::write(&public, signer.public_file())?;
    println!(
        "secret key: {} (keep it with the operators)",
        secret.display()
    );
    println!("public key: {}", public.display());
    println!();
    println!(
        "Sign hunts with:   export SWEEP_SIGNING_KEY={}",
        secret.display()
    );
    println!("Trust it on agents (agent.toml):");
    println!("  [trust]");
    println!("  public_keys = [\"{}\"]", signer.public_hex());
    Ok(0)
}
