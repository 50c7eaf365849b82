//! The `vigil` command line.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use vigil::policy;

mod cli;

use cli::{bench, doctor};

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that this machine can run the guard: /dev/kvm, boot, ping,
    /// platform facts and timings.
    Doctor {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure cold start, exitless ping round trips, wake-from-sleep, and
    /// the attested judge: evidence, round trips against in-process, batches.
    Bench {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Cold boots to time.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        boots: u32,
        /// Timed pings per payload size.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
        pings: u32,
        /// Wake-from-sleep round trips to time.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
        wakes: u32,
        /// Cold starts to an attested, verified guard.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        attested_starts: u32,
        /// Warm single-intent round trips through the VM (and in process).
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
        round_trips: u32,
        /// Verdicts per batch size (1, 16, 256) for the throughput figures.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(256..))]
        batch_verdicts: u32,
        /// Skip the attested-judge figures.
        #[arg(long)]
        no_judge: bool,
        /// Verdict records for the journal figures.
        #[arg(long, default_value_t = 300_000, value_parser = clap::value_parser!(u32).range(1..))]
        journal_records: u32,
        /// Write the benchmark journal under this directory (default: the
        /// system temporary directory). Measure on the disk that will hold
        /// the real journal.
        #[arg(long, value_name = "DIR")]
        journal_dir: Option<PathBuf>,
        /// Skip the journal figures.
        #[arg(long)]
        no_journal: bool,
    },
    /// Create the platform and cost key pairs (Ed25519 + ML-DSA-65), the
    /// journal master key and the config (never overwrites without --force).
    Init {
        /// Key directory (default: $VIGIL_DIR, else ~/.local/share/vigil).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Replace existing keys (everything they signed stays verifiable
        /// only with the old public keys).
        #[arg(long)]
        force: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Inspect keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Verify signed artifacts offline.
    Verify {
        #[command(subcommand)]
        command: VerifyCommand,
    },
    /// Compile, check and test policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The main job, end to end: keys in a temporary directory, a guard VM
    /// with the default pack, its evidence verified, a scripted agent session
    /// judged over the attested channel, the final checkpoint verified.
    Demo {
        /// Use (and initialise if empty) this key directory instead of a
        /// temporary one.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Record the session in this journal (default: DIR/journal/vigil.vgj).
        #[arg(long, value_name = "PATH")]
        journal: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify, replay, export and inspect journals.
    Journal {
        #[command(subcommand)]
        command: JournalCommand,
    },
    /// Boot a guard and write its evidence (tagged COSE_Sign) for a nonce.
    Attest {
        /// The verifier's nonce, hex (8 to 64 bytes).
        #[arg(long, value_name = "HEX")]
        nonce: String,
        /// Write the evidence here (default: hex on stdout).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Policy the guard runs: a bundle (.vgp) or TOML. Default: the
        /// built-in default pack.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Key directory holding platform.key (default: $VIGIL_DIR, else
        /// ~/.local/share/vigil).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Judge intents (JSON) and print the verdicts.
    Eval {
        /// Which judge evaluates: `vm` boots an attested guard VM and sends
        /// the intents over the encrypted channel; `inproc` runs the same
        /// evaluation in this process (for comparison).
        #[arg(long, value_enum, default_value = "vm")]
        judge: Judge,
        /// Key directory holding platform.key and journal.key (default:
        /// $VIGIL_DIR, else ~/.local/share/vigil).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Record the verdicts in this journal (default: `journal` in
        /// DIR/config.toml, else DIR/journal/vigil.vgj).
        #[arg(long, value_name = "PATH")]
        journal: Option<PathBuf>,
        /// Policy: a compiled bundle (.vgp) or a TOML policy. Default: the
        /// built-in default pack.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// One intent as JSON.
        #[arg(long, value_name = "JSON", conflicts_with = "input", required_unless_present = "input")]
        intent: Option<String>,
        /// A JSON Lines file of intents, one per line, each judged exactly as
        /// written (labelled test cases belong to `vigil policy test`).
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
        /// Print one JSON verdict per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum VerifyCommand {
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

#[derive(Subcommand)]
enum JournalCommand {
    /// Check the chain and every checkpoint's dual signature, without the
    /// data key. Exit 0 only if the journal is intact.
    Verify {
        /// The journal.
        file: PathBuf,
        /// The pinned platform key (platform.pub).
        #[arg(long, value_name = "FILE")]
        trust: PathBuf,
        /// An anchor (`vigil journal anchor` file, or its printed form in a
        /// text file) the journal must still reach; repeatable.
        #[arg(long, value_name = "ANCHOR")]
        anchor: Vec<PathBuf>,
        /// Key directory whose high-water mark (DIR/anchors) the journal must
        /// reach, if it holds one for this journal.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Accept frames after the last checkpoint (a writer still running).
        #[arg(long)]
        allow_unsealed: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export the newest checkpoint as a signed anchor for an external
    /// witness, and print its short form for a paper log.
    Anchor {
        /// The journal.
        file: PathBuf,
        /// Where to write the anchor file.
        #[arg(short, long, value_name = "ANCHOR")]
        output: PathBuf,
        /// The pinned platform key (default: DIR/platform.pub).
        #[arg(long, value_name = "FILE")]
        trust: Option<PathBuf>,
        /// Key directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decrypt every frame, verify chain, checkpoints, evidence and guard
    /// checkpoints, and re-evaluate every intent under its recorded policy.
    /// Exit 0 only if everything verifies and every verdict replays equal.
    Replay {
        /// The journal.
        file: PathBuf,
        /// Key directory holding journal.key (and platform.pub unless
        /// --trust is given).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The pinned platform key (default: DIR/platform.pub).
        #[arg(long, value_name = "FILE")]
        trust: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decrypt and export every frame for a SIEM (after verifying it).
    Export {
        /// The journal.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Key directory holding journal.key and platform.pub.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Write here (atomically, only if the whole journal verifies)
        /// instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Measure append throughput with group commit, acknowledgement
    /// latency, verify and replay throughput (on a scratch journal).
    Bench {
        /// Verdict records to append, verify and replay.
        #[arg(long, default_value_t = 300_000, value_parser = clap::value_parser!(u32).range(1..))]
        records: u32,
        /// Write the scratch journal under this directory (default: the
        /// system temporary directory).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decrypt and print one frame.
    Show {
        /// The journal.
        file: PathBuf,
        /// The frame's sequence number.
        #[arg(long)]
        seq: u64,
        /// Key directory holding journal.key and platform.pub.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    /// One JSON object per frame.
    Jsonl,
    /// One ArcSight CEF:0 event per frame.
    Cef,
}

#[derive(Subcommand)]
enum KeysCommand {
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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Judge {
    /// Inside an attested guard VM, over the encrypted channel.
    Vm,
    /// In this process (the same evaluation code as the guard).
    Inproc,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Compile a TOML policy into a bundle; prints its SHA-384 and DFAs.
    Compile {
        /// The policy (TOML).
        policy: PathBuf,
        /// Output bundle.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Sign the bundle with the policy key of the key directory.
        #[arg(long)]
        sign: bool,
        /// Key directory holding policy.key (with --sign).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a compiled bundle with the policy key (policy.key): what a key
    /// directory that pins this signer will run.
    Sign {
        /// The bundle (.vgp).
        bundle: PathBuf,
        /// Write the signed bundle here (default: replace the input).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Key directory holding policy.key.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check that a TOML policy compiles.
    Check {
        /// The policy (TOML).
        policy: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure in-process evaluation (p50 ns/intent) on case files with the
    /// default pack and with 10, 100 and 1,000 extra rules.
    Bench {
        /// JSON Lines case files (default: tests/corpus/*.jsonl).
        #[arg(long, value_name = "FILE", num_args = 1..)]
        cases: Vec<PathBuf>,
        /// Evaluations per intent per measurement.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
        repeat: u32,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run expected-decision cases against a policy; exit 1 on any failure.
    Test {
        /// The policy (TOML or bundle).
        policy: PathBuf,
        /// JSON Lines cases: {"name", "expect", "intent"} per line.
        #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
        cases: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let choice = vigil::guard_image::GuardChoice {
        path: cli.guard_image.clone(),
        reference: cli.reference.clone(),
        allow_test_image: cli.allow_test_image,
    };
    let image = &choice;
    match cli.command {
        Command::Doctor { json } => {
            let report = doctor::run(image);
            if json {
                print_json(&report)?;
            } else {
                doctor::print(&report);
            }
            Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Bench {
            json,
            boots,
            pings,
            wakes,
            attested_starts,
            round_trips,
            batch_verdicts,
            no_judge,
            journal_records,
            journal_dir,
            no_journal,
        } => {
            let judge = (!no_judge).then_some(cli::judge_bench::JudgeBenchOptions {
                starts: attested_starts as usize,
                round_trips: round_trips as usize,
                batch_verdicts: batch_verdicts as usize,
            });
            let journal = (!no_journal).then(|| cli::journal_bench::JournalBenchOptions {
                records: journal_records as usize,
                dir: journal_dir.unwrap_or_else(std::env::temp_dir),
            });
            let options = bench::BenchOptions {
                boots: boots as usize,
                pings: pings as usize,
                wakes: wakes as usize,
                judge,
                journal,
            };
            let report = bench::run(image, &options)?;
            if json {
                print_json(&report)?;
            } else {
                bench::print(&report);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy { command } => run_policy(command),
        Command::Init { dir, force, json } => {
            let dir = cli::key_directory::resolve(dir.as_deref())?;
            let report = vigil::keys::init(&dir, force)?;
            if json {
                print_json(&report)?
            } else {
                println!("{}", report.message)
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { command: VerifyCommand::Evidence { file, trust, nonce, policy, policy_digest, json } } => {
            let reference = match &cli.reference {
                Some(path) => vigil::reference::Reference::read(path)?,
                None => vigil::guard_image::production_reference()?,
            };
            let policy = match (&policy, &policy_digest) {
                (Some(path), _) => vigil::verify::PolicyExpectation::Bundle(policy::read_policy(path)?),
                (None, Some(hex)) => vigil::verify::PolicyExpectation::Digest(
                    hex::decode(hex.trim())
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .context("--policy-digest must be 96 hex digits")?,
                ),
                (None, None) => vigil::verify::PolicyExpectation::Unchecked,
            };
            let verified =
                vigil::verify::verify_file(&file, &trust, &reference, &nonce, &policy, cli.allow_test_image)?;
            if !verified.policy_checked {
                eprintln!(
                    "WARNING: the policy was NOT checked: this evidence proves which guard ran, not which policy it ran. Pass --policy P.vgp or --policy-digest HEX."
                );
            }
            if json {
                print_json(&verified)?
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
                    verified
                        .policy_signer
                        .as_deref()
                        .unwrap_or("none (unsigned: the built-in pack or an unpinned policy)")
                );
                println!("  features   [{}]", verified.features.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command: KeysCommand::Show { dir, json } } => {
            let dir = cli::key_directory::resolve(dir.as_deref())?;
            let keys = vigil::keys::show(&dir)?;
            if json {
                print_json(&keys)?
            } else {
                for k in &keys {
                    println!("{} ({})", k.name, k.file);
                    println!("  fingerprint  {}", k.fingerprint);
                    println!("  ed25519      kid {}  key {}", k.ed25519_kid, k.ed25519);
                    println!("  ml-dsa-65    kid {}", k.ml_dsa_65_kid);
                    println!(
                        "  secret key   {}",
                        if k.secret_matches { "matches" } else { "DOES NOT MATCH the public key" }
                    );
                }
            }
            Ok(if keys.iter().all(|k| k.secret_matches) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Demo { dir, journal, json } => {
            let (template, _, reference) = vigil::guard_image::load(image)?;
            let report = cli::demo::run(&template, &reference, dir.as_deref(), journal.as_deref())?;
            if json {
                print_json(&report)?;
            } else {
                cli::demo::print(&report);
            }
            Ok(if report.mismatches == 0 && report.journal.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Attest { nonce, output, policy, dir } => {
            let nonce = hex::decode(nonce.trim()).context("--nonce must be hex")?;
            let dir = cli::key_directory::resolve(dir.as_deref())?;
            let policy = policy::load_policy(policy.as_deref(), &vigil::keys::policy_pin(&dir)?)?;
            let (secret, _) = vigil::keys::platform_pair(&dir)?;
            let (template, _, _) = vigil::guard_image::load(image)?;
            let evidence = vigil::vm_judge::attest_once(&template, policy.image(), secret, &nonce)?;
            match output {
                Some(path) => {
                    vigil::output_file::write_private(&path, &evidence)?;
                    eprintln!(
                        "wrote {} bytes of evidence to {}; verify it with `vigil verify evidence {} --trust {} --nonce {} --policy P.vgp` (add `--reference measurements.json` for a custom image)",
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
        Command::Eval { judge: which, dir, journal, policy, intent, input, json } => {
            let dir = cli::key_directory::resolve(dir.as_deref())?;
            let policy = policy::load_policy(policy.as_deref(), &vigil::keys::policy_pin(&dir)?)?;
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
            let mut recorder = vigil::recording::Recorder::open(&dir, journal.as_deref(), &bundle)?;
            cli::journal_output::say_what_open_found(&recorder);
            if !json {
                cli::eval_output::print_header();
            }
            let emit = |reports: &[vigil::judge::VerdictReport]| {
                reports.iter().try_for_each(|r| cli::eval_output::print_verdict(r, json))
            };
            let judge_failure = match which {
                Judge::Inproc => {
                    vigil::eval::judge_inproc(&bundle, &intents, &mut recorder, emit)?;
                    None
                }
                Judge::Vm => {
                    let (template, _, reference) = vigil::guard_image::load(image)?;
                    let guard = vigil::vm_judge::GuardSetup {
                        template: &template,
                        reference: &reference,
                        allow_test_image: cli.allow_test_image,
                    };
                    vigil::eval::judge_vm(&guard, &dir, &policy, &intents, &mut recorder, emit)?
                }
            };
            recorder.close()?;
            if let Some(reason) = judge_failure {
                eprintln!("error: the guard judge failed, the intents it could not judge are DENY: {reason}");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Journal { command } => run_journal(command, &choice),
    }
}

fn run_journal(command: JournalCommand, choice: &vigil::guard_image::GuardChoice) -> anyhow::Result<ExitCode> {
    use vigil::audit;
    match command {
        JournalCommand::Verify { file, trust, anchor, dir, allow_unsealed, json } => {
            let high_water = match dir {
                Some(dir) => Some(dir.join("anchors")),
                None => cli::key_directory::resolve(None).ok().map(|d| d.join("anchors")).filter(|d| d.is_dir()),
            };
            let options = audit::VerifyOptions { allow_unsealed, anchors: anchor, high_water };
            let report = audit::verify(&file, &trust, &options)?;
            if json {
                print_json(&report)?
            } else {
                cli::journal_output::print_verify(&report)
            }
            Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        JournalCommand::Anchor { file, output, trust, dir, json } => {
            let trust = match trust {
                Some(t) => t,
                None => cli::key_directory::resolve(dir.as_deref())?.join("platform.pub"),
            };
            let report = audit::export_anchor(&file, &trust, &output)?;
            if json {
                print_json(&report)?
            } else {
                println!("anchor of {} written to {}", report.file, report.output);
                println!("  covers seq {} (chain head {})", report.mark.seq, report.mark.head);
                println!("  for a paper log: {}", report.printable);
            }
            Ok(ExitCode::SUCCESS)
        }
        JournalCommand::Replay { file, dir, trust, json } => {
            let reference = match &choice.reference {
                Some(path) => vigil::reference::Reference::read(path)?,
                None => vigil::guard_image::production_reference()?,
            };
            let keys = audit::KeySource::load(&cli::key_directory::resolve(dir.as_deref())?, trust.as_deref())?;
            let outcome = audit::replay(&file, &keys, &reference, choice.allow_test_image)?;
            if json {
                print_json(&outcome)?
            } else {
                cli::journal_output::print_replay(&outcome)
            }
            Ok(if outcome.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        JournalCommand::Export { file, format, dir, output } => {
            let keys = audit::KeySource::load(&cli::key_directory::resolve(dir.as_deref())?, None)?;
            let lines = audit::export(&file, &keys, format == ExportFormat::Cef, output.as_deref())?;
            if let Some(path) = output {
                eprintln!("exported {lines} frames to {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        JournalCommand::Bench { records, dir, json } => {
            let options = cli::journal_bench::JournalBenchOptions {
                records: records as usize,
                dir: dir.unwrap_or_else(std::env::temp_dir),
            };
            let report = cli::journal_bench::run(&options)?;
            if json {
                print_json(&report)?
            } else {
                cli::journal_bench::print(&report)
            }
            Ok(ExitCode::SUCCESS)
        }
        JournalCommand::Show { file, seq, dir, json } => {
            let keys = audit::KeySource::load(&cli::key_directory::resolve(dir.as_deref())?, None)?;
            let frame = audit::show(&file, &keys, seq)?;
            if json {
                println!("{frame}");
            } else if let Some(fields) = frame.as_object() {
                for (key, value) in fields {
                    match value {
                        serde_json::Value::Null => {}
                        serde_json::Value::String(s) => println!("{key:<16} {s}"),
                        serde_json::Value::Number(n) if key == "time_ms" => {
                            println!("{key:<16} {n} ({})", audit::iso8601(n.as_u64().unwrap_or(0)))
                        }
                        other => println!("{key:<16} {other}"),
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_policy(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Compile { policy: path, output, sign, dir, json } => {
            let (compiled, ms) = policy::compile_file(&path)?;
            let bytes = if sign {
                let key = vigil::keys::policy_key(&cli::key_directory::resolve(dir.as_deref())?)?;
                vigil::policy_signature::sign(&compiled.bundle, &key)?
            } else {
                compiled.bundle.clone()
            };
            vigil::output_file::write_private(&output, &bytes)?;
            let summary = policy::summary(&compiled, ms, Some(&output));
            if json {
                print_json(&summary)?
            } else {
                cli::policy_output::print_summary(&summary)
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Sign { bundle, output, dir, json } => {
            let key = vigil::keys::policy_key(&cli::key_directory::resolve(dir.as_deref())?)?;
            let file = std::fs::read(&bundle).with_context(|| format!("reading {}", bundle.display()))?;
            let signed = vigil::policy_signature::sign(&file, &key)?;
            let output = output.unwrap_or(bundle);
            vigil::output_file::write_private(&output, &signed)?;
            let (b, _) = vigil::policy_signature::split(&signed)?;
            let report = serde_json::json!({
                "output": output.display().to_string(),
                "sha384": hex::encode(vigil_attest::measure(b)),
                "signer": hex::encode(key.public().fingerprint()),
            });
            if json {
                print_json(&report)?
            } else {
                println!(
                    "signed {} (SHA-384 {}) with policy key {}",
                    output.display(),
                    report["sha384"].as_str().unwrap_or_default(),
                    report["signer"].as_str().unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Check { policy: path, json } => {
            let (compiled, ms) = policy::compile_file(&path)?;
            let summary = policy::summary(&compiled, ms, None);
            if json {
                print_json(&summary)?
            } else {
                cli::policy_output::print_summary(&summary);
                println!("ok: {} compiles", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Bench { cases, repeat, json } => {
            let cases = if cases.is_empty() { cli::corpus::source_corpus_files()? } else { cases };
            let report = cli::policy_bench::run(&cases, repeat as usize)?;
            if json {
                print_json(&report)?
            } else {
                cli::policy_bench::print(&report)
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test { policy: path, cases, json } => {
            let bundle = policy::load_bundle(&path)?;
            let mut all = Vec::new();
            for file in &cases {
                all.extend(policy::read_cases(file)?);
            }
            let report = policy::run_cases(&bundle, &all)?;
            if json {
                print_json(&report)?
            } else {
                cli::policy_output::print_test_report(&report)
            }
            Ok(if report.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

fn main() -> ExitCode {
    init_logging();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
