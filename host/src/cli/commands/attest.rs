//! `vigil attest`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use vigil::guard_image::GuardChoice;

/// Boot a guard and write its evidence (tagged COSE_Sign) for a nonce.
#[derive(Args)]
pub struct AttestArgs {
    /// The verifier's nonce, hex (8 to 64 bytes).
    #[arg(long, value_name = "HEX")]
    pub nonce: String,
    /// Write the evidence here (default: hex on stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Policy the guard runs: a bundle (.vgp) or TOML. Default: the
    /// built-in default pack.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Key directory holding platform.key (default: $VIGIL_DIR, else
    /// ~/.local/share/vigil).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Runs `vigil attest`.
pub fn run(args: AttestArgs, choice: &GuardChoice) -> anyhow::Result<ExitCode> {
    let AttestArgs { nonce, output, policy, dir } = args;

    let nonce = hex::decode(nonce.trim()).context("--nonce must be hex")?;
    let dir = crate::cli::key_directory::resolve(dir.as_deref())?;
    let policy = vigil::policy::load_policy(policy.as_deref(), &vigil::keys::policy_pin(&dir)?)?;
    let (secret, _) = vigil::keys::platform_pair(&dir)?;
    let (template, _, _) = vigil::guard_image::load(choice)?;
    let evidence = vigil::vm_judge::attest_once(&template, policy.image(), secret, &nonce)?;
    match output {
        Some(path) => {
            vigil::output_file::write_private(&path, &evidence)?;
            eprintln!(
                "wrote {} bytes of evidence to {}; verify it with `vigil verify evidence {} --trust {} --nonce {} --policy P.vgp` (add `--reference measurements.json` for a custom choice)",
                evidence.len(),
                path.display(),
                path.display(),
                dir.join("platform.pub").display(),
                hex::encode(&nonce)
            );
        }
        None => println!("{}", hex::encode(&evidence)),
    }
    Ok(ExitCode::SUCCESS)
}
