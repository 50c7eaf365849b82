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
    /// The daemon's socket (default: DIR/vigil.sock): when a daemon answers
    /// there running the same policy, the evidence comes from one of its
    /// running guards; otherwise a guard is booted for it.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Boot a guard even when a daemon answers.
    #[arg(long)]
    pub no_daemon: bool,
    /// Print `{"evidence": HEX, "source": "daemon" | "guard", "boot_seq"}`
    /// (evidence also written to --output when given).
    #[arg(long)]
    pub json: bool,
}

/// Runs `vigil attest`.
pub fn run(args: AttestArgs, choice: &GuardChoice) -> anyhow::Result<ExitCode> {
    let AttestArgs { nonce, output, policy, dir, socket, no_daemon, json } = args;

    let nonce = hex::decode(nonce.trim()).context("--nonce must be hex")?;
    let dir = crate::cli::key_directory::resolve(dir.as_deref())?;
    let policy = vigil::policy::load_policy(policy.as_deref(), &vigil::keys::policy_pin(&dir)?)?;
    let socket = socket.unwrap_or_else(|| dir.join("vigil.sock"));
    let sha = hex::encode(vigil_attest::measure(&policy.bundle));
    let from_daemon = match vigil::daemon::client::running(&socket) {
        Some(running) if !no_daemon && running.policy_sha384 == sha => {
            Some(vigil::daemon::client::evidence(&socket, &nonce).context("evidence from the daemon")?)
        }
        _ => None,
    };
    let (evidence, source, boot_seq) = match from_daemon {
        Some((evidence, boot_seq)) => (evidence, "daemon", Some(boot_seq)),
        None => {
            let (secret, _) = vigil::keys::platform_pair(&dir)?;
            let (template, _, _) = vigil::guard_image::load(choice)?;
            (vigil::vm_judge::attest_once(&template, policy.image(), secret, &nonce)?, "guard", None)
        }
    };
    if json {
        if let Some(path) = &output {
            vigil::output_file::write_private(path, &evidence)?;
        }
        let report = serde_json::json!({"evidence": hex::encode(&evidence), "source": source, "boot_seq": boot_seq});
        println!("{report}");
        return Ok(ExitCode::SUCCESS);
    }
    if source == "daemon" {
        eprintln!("evidence from a running guard of the daemon on {}", socket.display());
    }
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
