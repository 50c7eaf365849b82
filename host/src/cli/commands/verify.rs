//! `vigil verify evidence`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use vigil::guard_image::GuardChoice;

#[derive(Subcommand)]
pub enum VerifyCommand {
    /// Verify guard evidence: both platform signatures, the nonce, the image
    /// (and policy) measurements. Offline; exit 1 on any failure.
    Evidence {
        /// The evidence (tagged COSE_Sign).
        file: PathBuf,
        /// The pinned platform key (platform.pub, a COSE_KeySet).
        #[arg(long, value_name = "FILE")]
        trust: PathBuf,
        /// The nonce you asked for, hex.
        #[arg(long, value_name = "HEX")]
        nonce: String,
        /// The policy bundle the guard must run (.vgp; its signature, if
        /// any, is verified and must be the signer attested). Checks the
        /// policy and boot-configuration measurements.
        #[arg(long, value_name = "FILE", conflicts_with = "policy_digest")]
        policy: Option<PathBuf>,
        /// The SHA-384 of the policy the guard must run, hex (checks the
        /// policy measurement; the boot configuration needs --policy).
        #[arg(long, value_name = "HEX")]
        policy_digest: Option<String>,
        /// Print the claims as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `vigil verify`.
pub fn run(command: VerifyCommand, choice: &GuardChoice) -> anyhow::Result<ExitCode> {
    let VerifyCommand::Evidence { file, trust, nonce, policy, policy_digest, json } = command;

    let reference = match &choice.reference {
        Some(path) => vigil::reference::Reference::read(path)?,
        None => vigil::guard_image::production_reference()?,
    };
    let policy = match (&policy, &policy_digest) {
        (Some(path), _) => vigil::verify::PolicyExpectation::Bundle(vigil::policy::read_policy(path)?),
        (None, Some(hex)) => vigil::verify::PolicyExpectation::Digest(
            hex::decode(hex.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("--policy-digest must be 96 hex digits")?,
        ),
        (None, None) => vigil::verify::PolicyExpectation::Unchecked,
    };
    let verified = vigil::verify::verify_file(&file, &trust, &reference, &nonce, &policy, choice.allow_test_image)?;
    if !verified.policy_checked {
        eprintln!(
            "WARNING: the policy was NOT checked: this evidence proves which guard ran, not which policy it ran. Pass --policy P.vgp or --policy-digest HEX."
        );
    }
    if json {
        crate::cli::print_json(&verified)?
    } else {
        println!(
            "evidence verified: both platform signatures (EdDSA + ML-DSA-65), nonce, image, arch, hypervisor, platform, features{}{}",
            if verified.policy_checked { ", policy" } else { "" },
            if verified.config_checked { ", boot configuration" } else { "" }
        );
        println!("  reference  {}", reference.source);
        println!("  image      {}", verified.image_sha384);
        println!("  policy     {}", verified.policy_sha384);
        println!("  config     {}", verified.config_sha384);
        println!(
            "  guard      {} on {} ({}), platform {}",
            verified.vigil_version, verified.arch, verified.hypervisor, verified.platform
        );
        println!("  guard key  {} (x25519 {})", verified.guard_key_fingerprint, verified.guard_x25519);
        println!("  boot id    {}  at {}", verified.boot_id, verified.timestamp);
        println!("  entropy    {}", verified.entropy.join(", "));
        println!(
            "  policy signer {}",
            verified.policy_signer.as_deref().unwrap_or("none (unsigned: the built-in pack or an unpinned policy)")
        );
        println!("  features   [{}]", verified.features.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
