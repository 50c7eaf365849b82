//! `vigil eval`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use vigil::guard_image::GuardChoice;

/// Judge intents (JSON) and print the verdicts.
#[derive(Args)]
pub struct EvalArgs {
    /// Which judge evaluates: `vm` boots an attested guard VM and sends
    /// the intents over the encrypted channel; `inproc` runs the same
    /// evaluation in this process (for comparison).
    #[arg(long, value_enum, default_value = "vm")]
    pub judge: Judge,
    /// Key directory holding platform.key and journal.key (default:
    /// $VIGIL_DIR, else ~/.local/share/vigil).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Record the verdicts in this journal (default: `journal` in
    /// DIR/config.toml, else DIR/journal/vigil.vgj).
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
    /// Policy: a compiled bundle (.vgp) or a TOML policy. Default: the
    /// built-in default pack.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// One intent as JSON.
    #[arg(long, value_name = "JSON", conflicts_with = "input", required_unless_present = "input")]
    pub intent: Option<String>,
    /// A JSON Lines file of intents, one per line, each judged exactly as
    /// written (labelled test cases belong to `vigil policy test`).
    #[arg(long = "in", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Print one JSON verdict per line (each says which judge decided:
    /// `"judged_by": "daemon" | "guard" | "inproc"`).
    #[arg(long)]
    pub json: bool,
    /// The daemon's socket (default: DIR/vigil.sock). With `--judge vm`,
    /// the intents go to the daemon when it answers there and runs the
    /// same policy and journal; otherwise this command boots its own guard.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Boot an own guard even when a daemon answers.
    #[arg(long)]
    pub no_daemon: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Judge {
    /// Inside an attested guard VM, over the encrypted channel.
    Vm,
    /// In this process (the same evaluation code as the guard).
    Inproc,
}

/// Runs `vigil eval`.
pub fn run(args: EvalArgs, choice: &GuardChoice) -> anyhow::Result<ExitCode> {
    let EvalArgs { judge: which, dir, journal, policy, intent, input, json, socket, no_daemon } = args;

    let dir = crate::cli::key_directory::resolve(dir.as_deref())?;
    let policy = vigil::policy::load_policy(policy.as_deref(), &vigil::keys::policy_pin(&dir)?)?;
    let bundle = policy.bundle.clone();
    // Each intent as submitted: judged exactly as written, never
    // unwrapped or resolved (labelled cases go to `policy test`).
    let texts = match (intent, input) {
        (Some(text), _) => {
            vigil::judge::check_json(&text).context("--intent is not valid JSON")?;
            vec![text]
        }
        (None, Some(path)) => vigil::judge::read_intent_lines(&path)?,
        (None, None) => bail!("give --intent JSON or --in FILE"),
    };
    let intents: Vec<&str> = texts.iter().map(String::as_str).collect();
    // A daemon running the same policy into the same journal judges them
    // (it holds the journal: this process could not write it anyway).
    let socket = socket.unwrap_or_else(|| dir.join("vigil.sock"));
    if which == Judge::Vm
        && !no_daemon
        && let Some(running) = vigil::daemon::client::running(&socket)
    {
        let sha = hex::encode(vigil_attest::measure(&bundle));
        let journal_path = vigil::keys::journal_path(&dir, journal.as_deref())?;
        if running.policy_sha384 == sha && std::path::Path::new(&running.journal) == journal_path {
            return through_daemon(&socket, &intents, json);
        }
        eprintln!(
            "note: the daemon on {} runs another policy or journal; booting a guard of our own",
            socket.display()
        );
    }
    let mut recorder = vigil::recording::Recorder::open(&dir, journal.as_deref(), &bundle)?;
    crate::cli::journal_output::say_what_open_found(&recorder);
    // The reader may go away (`vigil eval … | head`): every intent is still
    // judged and journaled, and the journal closed and sealed; nothing
    // more is printed, and the exit status says the output was closed.
    let closed = std::cell::Cell::new(false);
    let printed = |result: anyhow::Result<()>| match result {
        Err(e) if crate::cli::is_closed_output(e.as_ref()) => {
            closed.set(true);
            Ok(())
        }
        other => other,
    };
    if !json {
        printed(crate::cli::eval_output::print_header())?;
    }
    let judged_by = if which == Judge::Vm { "guard" } else { "inproc" };
    let emit = |reports: &[vigil::judge::VerdictReport]| -> Result<(), vigil::eval::EmitError> {
        if closed.get() {
            return Ok(());
        }
        printed(
            reports
                .iter()
                .try_for_each(|r| crate::cli::eval_output::print_verdict(&serde_json::to_value(r)?, json, judged_by)),
        )
        .map_err(Into::into)
    };
    let judge_failure = match which {
        Judge::Inproc => {
            vigil::eval::judge_inproc(&bundle, &intents, &mut recorder, emit)?;
            None
        }
        Judge::Vm => {
            let (template, _, reference) = vigil::guard_image::load(choice)?;
            let guard = vigil::vm_judge::GuardSetup {
                template: &template,
                reference: &reference,
                allow_test_image: choice.allow_test_image,
            };
            vigil::eval::judge_vm(&guard, &dir, &policy, &intents, &mut recorder, emit)?
        }
    };
    recorder.close()?;
    // A judge failure is reported (and is the exit status) even when the
    // reader went away.
    if let Some(reason) = judge_failure {
        eprintln!("error: the guard judge failed, the intents it could not judge are DENY: {reason}");
        return Ok(ExitCode::FAILURE);
    }
    if closed.get() {
        return Ok(ExitCode::from(crate::CLOSED_OUTPUT as u8));
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil eval` through the running daemon (which records every verdict).
fn through_daemon(socket: &std::path::Path, intents: &[&str], json: bool) -> anyhow::Result<ExitCode> {
    if !json {
        eprintln!("judged by the daemon on {}", socket.display());
        crate::cli::eval_output::print_header()?;
    }
    let mut failed = false;
    vigil::daemon::client::evaluate_texts(socket, intents, |verdicts| {
        for v in verdicts {
            failed |= v["reason"] == "judge_failed";
            crate::cli::eval_output::print_verdict(v, json, "daemon")
                .map_err(|e| vigil::daemon::client::ClientError::Http(e.to_string()))?;
        }
        Ok(())
    })
    .context("judging through the daemon")?;
    if failed {
        eprintln!("error: a guard of the daemon failed; the intents it could not judge are DENY (recorded)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
