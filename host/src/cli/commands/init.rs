//! `vigil init`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Create the platform, cost and policy key pairs (Ed25519 + ML-DSA-65), the
/// journal master key and the config; in an existing directory, create only
/// what is missing (never overwrites a key without --force).
#[derive(Args)]
pub struct InitArgs {
    /// Key directory (default: $VIGIL_DIR, else ~/.local/share/vigil).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Replace existing keys (everything they signed stays verifiable
    /// only with the old public keys); refused while the directory holds a
    /// journal or high-water marks, which only the old keys can read.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `vigil init`.
pub fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let InitArgs { dir, force, json } = args;

    let dir = crate::cli::key_directory::resolve(dir.as_deref())?;
    let report = vigil::keys::init(&dir, force)?;
    if json {
        crate::cli::print_json(&report)?
    } else {
        println!("{}", report.message)
    }
    Ok(ExitCode::SUCCESS)
}
