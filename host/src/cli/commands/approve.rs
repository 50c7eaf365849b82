//! `vigil approve`, `vigil deny`, `vigil approvals`: people settling the
//! ESCALATE verdicts a running daemon holds.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use vigil::daemon::client;

/// Where the daemon listens.
#[derive(Args)]
pub struct DaemonAddress {
    /// Key directory of the daemon (default: $VIGIL_DIR, else
    /// ~/.local/share/vigil); its socket is DIR/vigil.sock.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The daemon's socket (default: DIR/vigil.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

impl DaemonAddress {
    /// The socket path.
    pub fn socket(&self) -> anyhow::Result<PathBuf> {
        match &self.socket {
            Some(path) => Ok(path.clone()),
            None => Ok(crate::cli::key_directory::resolve(self.dir.as_deref())?.join("vigil.sock")),
        }
    }
}

/// Settle one waiting ESCALATE verdict.
#[derive(Args)]
pub struct DecideArgs {
    /// The approval id (`vigil approvals` lists them).
    pub id: String,
    #[command(flatten)]
    pub daemon: DaemonAddress,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// List the ESCALATE verdicts waiting for a decision.
#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub daemon: DaemonAddress,
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

fn call(socket: &Path, method: &str, path: &str, body: &[u8]) -> anyhow::Result<serde_json::Value> {
    let answer = client::call(socket, method, path, body, Duration::from_secs(10))
        .with_context(|| "is `vigil serve` running? (give --socket or --dir)")?;
    let json = answer.json();
    if answer.status != 200 {
        bail!("{}", json["error"].as_str().unwrap_or("the daemon refused"));
    }
    Ok(json)
}

/// Runs `vigil approve` (`approve` = true) or `vigil deny`.
pub fn decide(args: DecideArgs, approve: bool) -> anyhow::Result<ExitCode> {
    let socket = args.daemon.socket()?;
    if args.id.is_empty() || !args.id.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("`{}` is not an approval id (hex; `vigil approvals` lists them)", args.id);
    }
    let decision = if approve { "allow" } else { "deny" };
    let body = serde_json::json!({ "decision": decision }).to_string();
    let answer = call(&socket, "POST", &format!("/v1/approvals/{}", args.id), body.as_bytes())?;
    if args.json {
        println!("{answer}");
    } else {
        println!(
            "{} {}: intent {} is {}",
            if approve { "approved" } else { "denied" },
            args.id,
            answer["intent_id"],
            answer["decision"].as_str().unwrap_or("?")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `vigil approvals`.
pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let socket = args.daemon.socket()?;
    let answer = call(&socket, "GET", "/v1/approvals", b"")?;
    if args.json {
        println!("{answer}");
        return Ok(ExitCode::SUCCESS);
    }
    let pending = answer["pending"].as_array().cloned().unwrap_or_default();
    if pending.is_empty() {
        println!("no ESCALATE verdict is waiting");
    }
    for p in pending {
        let show = |v: &serde_json::Value| vigil::daemon::queue::printable(v.as_str().unwrap_or(""));
        println!("{}  intent {}  {}  ({})", show(&p["id"]), p["intent_id"], show(&p["summary"]), show(&p["why"]));
        // The whole call, every argument in full: what `vigil approve` allows.
        let intent = &p["intent"];
        for key in ["agent", "session", "tool", "cwd", "justification"] {
            if intent[key].as_str().is_some_and(|v| !v.is_empty()) {
                println!("    {key}: {}", show(&intent[key]));
            }
        }
        for (key, value) in intent["args"].as_object().into_iter().flatten() {
            println!("    args.{}: {}", vigil::daemon::queue::printable(key), show(value));
        }
    }
    Ok(ExitCode::SUCCESS)
}
