//! `vigil hook`: agent hooks. `vigil hook claude-code` is Claude Code's
//! `PreToolUse` command hook; `vigil hook install claude-code` adds it to a
//! settings file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use vigil::claude_code;
use vigil::guard_image::GuardChoice;

/// `vigil hook …`.
#[derive(Subcommand)]
pub enum HookCommand {
    /// Claude Code's PreToolUse hook: reads the hook JSON on stdin, asks
    /// the daemon (or boots a guard when none runs) and prints the
    /// decision (allow, deny, ask). Fail-closed: no verdict is deny.
    ClaudeCode(RunArgs),
    /// Add the hook to a Claude Code settings file (other settings and
    /// hooks are kept; a second install changes nothing).
    Install {
        /// Which agent.
        #[arg(value_enum)]
        agent: Agent,
        #[command(flatten)]
        args: InstallArgs,
    },
}

/// Agents `vigil hook install` knows.
#[derive(Clone, Copy, ValueEnum)]
pub enum Agent {
    /// Claude Code.
    ClaudeCode,
}

/// Arguments of the hook itself.
#[derive(Args)]
pub struct RunArgs {
    /// Key directory (default: $VIGIL_DIR, else ~/.local/share/vigil).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The daemon's socket (default: DIR/vigil.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// Where and how to install.
#[derive(Args)]
pub struct InstallArgs {
    /// The project's settings (.claude/settings.json under the current
    /// directory; the default).
    #[arg(long, conflicts_with_all = ["user", "settings"])]
    pub project: bool,
    /// The user's settings (~/.claude/settings.json).
    #[arg(long, conflicts_with = "settings")]
    pub user: bool,
    /// This settings file.
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// Install the HTTP form: Claude Code posts each call to the daemon's
    /// loopback listener at this URL (`vigil serve --listen-tcp`), with the
    /// token from the environment variable VIGIL_HOOK_TOKEN; no process
    /// starts per call.
    #[arg(long, value_name = "URL")]
    pub http: Option<String>,
    /// Key directory the hook command uses (written into the command).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Runs `vigil hook …`.
pub fn run(command: HookCommand, choice: &GuardChoice) -> anyhow::Result<ExitCode> {
    match command {
        HookCommand::ClaudeCode(args) => {
            let answer = decide(&args, choice);
            println!("{answer}");
            Ok(ExitCode::SUCCESS)
        }
        HookCommand::Install { agent: Agent::ClaudeCode, args } => install(args),
    }
}

/// The most hook input read from stdin.
const MAX_INPUT: u64 = 8 << 20;

/// The hook's answer; every failure is a `deny` that says why. Input that
/// cannot be judged is judged as malformed (a recorded DENY).
fn decide(args: &RunArgs, choice: &GuardChoice) -> Value {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().take(MAX_INPUT + 1).read_to_end(&mut input) {
        return claude_code::no_verdict(&format!("reading the hook input: {e}"));
    }
    match answer(args, choice, &input) {
        Ok(answer) => answer,
        Err(e) => claude_code::no_verdict(&format!("{e:#}")),
    }
}

/// The answer from the daemon's hook route when its socket answers, else
/// from a guard booted for this call (recorded in the journal either way).
fn answer(args: &RunArgs, choice: &GuardChoice, input: &[u8]) -> anyhow::Result<Value> {
    let dir = crate::cli::key_directory::resolve(args.dir.as_deref())?;
    let socket = args.socket.clone().unwrap_or_else(|| dir.join("vigil.sock"));
    let id = claude_code::call_id();
    let intents = if input.len() as u64 > MAX_INPUT {
        Err(format!("the hook input is larger than {MAX_INPUT} bytes"))
    } else {
        match vigil::daemon::client::call(&socket, "POST", "/v1/hooks/claude-code", input, Duration::from_secs(60)) {
            Ok(reply) if reply.status == 200 && reply.json()["hookSpecificOutput"].is_object() => {
                return Ok(reply.json());
            }
            Ok(reply) => {
                bail!("the daemon answered {}: {}", reply.status, reply.json()["error"].as_str().unwrap_or(""))
            }
            Err(vigil::daemon::client::ClientError::Connect { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        claude_code::intents_of_text(input, id)
    };
    let encoded = intents.unwrap_or_else(|why| vec![(Vec::new(), id, Some(why))]);
    Ok(claude_code::answer_verdicts(&own_guard(&dir, choice, &encoded)?))
}

fn own_guard(dir: &Path, choice: &GuardChoice, intents: &[vigil::recording::Converted]) -> anyhow::Result<Vec<Value>> {
    if !dir.join("platform.key").exists() {
        bail!("vigil is not set up in {} (run `vigil init`, then `vigil serve`)", dir.display());
    }
    let policy = vigil::policy::load_policy(None, &vigil::keys::policy_pin(dir)?)?;
    let mut recorder = vigil::recording::Recorder::open(dir, None, &policy.bundle)?;
    let (template, _, reference) = vigil::guard_image::load(choice)?;
    let guard = vigil::vm_judge::GuardSetup {
        template: &template,
        reference: &reference,
        allow_test_image: choice.allow_test_image,
    };
    let mut got = Vec::new();
    let failure = vigil::eval::judge_vm_encoded(&guard, dir, &policy, intents, &mut recorder, |reports| {
        for report in reports {
            got.push(serde_json::to_value(report)?);
        }
        Ok(())
    })?;
    recorder.close()?;
    match failure {
        Some(reason) if got.len() < intents.len() => bail!("the guard failed: {reason}"),
        _ if got.len() < intents.len() => bail!("the guard gave {} verdicts for {} intents", got.len(), intents.len()),
        _ => Ok(got),
    }
}

fn install(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let path = match (&args.settings, args.user) {
        (Some(path), _) => path.clone(),
        (None, true) => PathBuf::from(std::env::var_os("HOME").context("HOME is not set: give --settings")?)
            .join(".claude/settings.json"),
        (None, false) => PathBuf::from(".claude/settings.json"),
    };
    let ours = match &args.http {
        Some(url) => serde_json::json!({
            "type": "http",
            "url": url,
            "headers": { "Authorization": "Bearer $VIGIL_HOOK_TOKEN" },
            "allowedEnvVars": ["VIGIL_HOOK_TOKEN"],
            "timeout": 90,
            "onFailure": "block",
        }),
        None => {
            let exe = std::env::current_exe().context("finding the vigil executable")?;
            let mut command = format!("{} hook claude-code", shell_quote(&exe.display().to_string()));
            if let Some(dir) = &args.dir {
                let dir = std::path::absolute(dir).context("resolving --dir")?;
                command.push_str(&format!(" --dir {}", shell_quote(&dir.display().to_string())));
            }
            serde_json::json!({ "type": "command", "command": command, "timeout": 90 })
        }
    };
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    match claude_code::install_hook(existing.as_deref(), &ours).with_context(|| format!("{}", path.display()))? {
        None => println!("already installed in {}: nothing changed", path.display()),
        Some(text) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            vigil::output_file::write_atomic(&path, text.as_bytes(), vigil::output_file::Access::Public)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("installed the Vigil PreToolUse hook in {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Single-quotes `s` for the shell that runs the hook command.
fn shell_quote(s: &str) -> String {
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
