//! The `vigil` command line.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

use cli::commands;

#[derive(Parser)]
#[command(name = "vigil", version, about = "Judge AI agent tool calls inside an attested guard VM")]
struct Cli {
    /// Boot this guard image (an ELF from `cargo xtask build-guard`) instead
    /// of the one built into vigil.
    #[arg(long, global = true, value_name = "PATH")]
    guard_image: Option<PathBuf>,
    /// Reference measurements (`measurements.json` from `cargo xtask
    /// build-guard`): what the guard image and every guard's evidence must
    /// match. Required with --guard-image; default: the reference of the
    /// image built into vigil.
    #[arg(long, global = true, value_name = "FILE")]
    reference: Option<PathBuf>,
    /// Boot and accept a test-hooks guard image (never to be trusted: for
    /// tests only).
    #[arg(long, global = true)]
    allow_test_image: bool,
    /// How long a guard may take to answer one request before it is
    /// stopped, in milliseconds (default 2000). Raise it only where the CPU
    /// is emulated (QEMU TCG), never to hide a slow guard.
    #[arg(long, global = true, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=600_000))]
    guard_deadline_ms: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that this machine can run the guard: /dev/kvm, boot, ping,
    /// platform facts and timings.
    Doctor(commands::doctor::DoctorArgs),
    /// Measure cold start, exitless ping round trips, wake-from-sleep, and
    /// the attested judge: evidence, round trips against in-process, batches.
    Bench(commands::bench::BenchArgs),
    /// Create the platform, cost and policy key pairs (Ed25519 + ML-DSA-65), the
    /// journal master key and the config (never overwrites without --force).
    Init(commands::init::InitArgs),
    /// Inspect keys.
    Keys {
        #[command(subcommand)]
        command: commands::keys::KeysCommand,
    },
    /// Verify signed artifacts offline.
    Verify {
        #[command(subcommand)]
        command: commands::verify::VerifyCommand,
    },
    /// Compile, check and test policies.
    Policy {
        #[command(subcommand)]
        command: commands::policy::PolicyCommand,
    },
    /// The main job, end to end: keys in a temporary directory, a guard VM
    /// with the default pack, its evidence verified, a scripted agent session
    /// judged over the attested channel, the final checkpoint verified.
    Demo(commands::demo::DemoArgs),
    /// Verify, replay, export and inspect journals.
    Journal {
        #[command(subcommand)]
        command: commands::journal::JournalCommand,
    },
    /// Verify and report what judging cost (cost records in the journal).
    Cost {
        #[command(subcommand)]
        command: commands::cost::CostCommand,
    },
    /// Boot a guard and write its evidence (tagged COSE_Sign) for a nonce.
    Attest(commands::attest::AttestArgs),
    /// Judge intents (JSON) and print the verdicts.
    Eval(commands::eval::EvalArgs),
    /// Run the daemon: warm attested guards behind a local API on a Unix
    /// socket, the one writer of the journal.
    Serve(commands::serve::ServeArgs),
    /// Allow an ESCALATE verdict the daemon holds (recorded with who and when).
    Approve(commands::approve::DecideArgs),
    /// Deny an ESCALATE verdict the daemon holds (recorded with who and when).
    Deny(commands::approve::DecideArgs),
    /// List the ESCALATE verdicts waiting for `vigil approve` or `vigil deny`.
    Approvals(commands::approve::ListArgs),
    /// Agent hooks: `vigil hook claude-code` (Claude Code's PreToolUse
    /// hook) and `vigil hook install claude-code`.
    Hook {
        #[command(subcommand)]
        command: commands::hook::HookCommand,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let choice = vigil::guard_image::GuardChoice {
        path: cli.guard_image.clone(),
        reference: cli.reference.clone(),
        allow_test_image: cli.allow_test_image,
        deadline: cli.guard_deadline_ms.map(std::time::Duration::from_millis),
    };
    match cli.command {
        Command::Doctor(args) => commands::doctor::run(args, &choice),
        Command::Bench(args) => commands::bench::run(args, &choice),
        Command::Policy { command } => commands::policy::run(command, &choice),
        Command::Init(args) => commands::init::run(args),
        Command::Verify { command } => commands::verify::run(command, &choice),
        Command::Keys { command } => commands::keys::run(command),
        Command::Demo(args) => commands::demo::run(args, &choice),
        Command::Attest(args) => commands::attest::run(args, &choice),
        Command::Eval(args) => commands::eval::run(args, &choice),
        Command::Serve(args) => commands::serve::run(args, &choice),
        Command::Approve(args) => commands::approve::decide(args, true),
        Command::Deny(args) => commands::approve::decide(args, false),
        Command::Approvals(args) => commands::approve::list(args),
        Command::Hook { command } => commands::hook::run(command, &choice),
        Command::Journal { command } => commands::journal::run(command, &choice),
        Command::Cost { command } => commands::cost::run(command),
    }
}

/// Exit status of a program whose output was closed under it (a shell
/// reports SIGPIPE as 128 + 13).
pub(crate) const CLOSED_OUTPUT: i32 = 141;

/// `vigil … | head`: when the reader closes standard output, stop quietly
/// with [`CLOSED_OUTPUT`] (Rust ignores SIGPIPE, so `print!` would panic);
/// every other panic is reported as before.
fn stop_quietly_on_closed_output() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(CLOSED_OUTPUT);
        }
        report(info);
    }));
}

fn main() -> ExitCode {
    stop_quietly_on_closed_output();
    init_logging();
    match run(Cli::parse()) {
        Ok(code) => code,
        // The reader went away (`vigil journal export … | head`): quietly.
        Err(err) if cli::is_closed_output(err.as_ref()) => ExitCode::from(CLOSED_OUTPUT as u8),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
