//! `vigil keys show`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Print the public keys, their fingerprints and kids.
    Show {
        /// Key directory (default: $VIGIL_DIR, else ~/.local/share/vigil).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `vigil keys`.
pub fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    let KeysCommand::Show { dir, json } = command;

    let dir = crate::cli::key_directory::resolve(dir.as_deref())?;
    let keys = vigil::keys::show(&dir)?;
    if json {
        crate::cli::print_json(&keys)?
    } else {
        for k in &keys {
            println!("{} ({})", k.name, k.file);
            println!("  fingerprint  {}", k.fingerprint);
            println!("  ed25519      kid {}  key {}", k.ed25519_kid, k.ed25519);
            println!("  ml-dsa-65    kid {}", k.ml_dsa_65_kid);
            println!("  secret key   {}", if k.secret_matches { "matches" } else { "DOES NOT MATCH the public key" });
        }
    }
    Ok(if keys.iter().all(|k| k.secret_matches) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
