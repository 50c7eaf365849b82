//! `vigil policy compile | sign | check | bench | suggest | test | records`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum PolicyCommand {
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
    /// Propose allow rules from a journal's ESCALATE verdicts: each with how
    /// many of them it would have turned into ALLOW. Nothing is applied.
    Suggest {
        /// The journal.
        journal: PathBuf,
        /// The policy the candidates are added to (TOML; default: the
        /// built-in default pack).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Key directory holding journal.key and platform.pub.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Pinned platform key (default: DIR/platform.pub).
        #[arg(long, value_name = "FILE")]
        trust: Option<PathBuf>,
        /// Candidates to measure (each compiles the policy once).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=200))]
        top: u32,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the verdict record of every case (`NAME<TAB>RECORD-HEX`), as
    /// judged in process or by an attested guard VM: what compares judges
    /// and architectures byte for byte.
    Records {
        /// The policy (TOML or bundle; with `--judge vm` one the key
        /// directory's policy pin accepts). Default: the built-in pack.
        policy: Option<PathBuf>,
        /// JSON Lines cases: {"name", "expect", "intent"} per line.
        #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
        cases: Vec<PathBuf>,
        /// Who judges: `inproc` (this process) or `vm` (a guard booted and
        /// attested with the key directory's platform key).
        #[arg(long, value_enum, default_value = "inproc")]
        judge: RecordsJudge,
        /// Key directory (with `--judge vm`; default: $VIGIL_DIR, else
        /// ~/.local/share/vigil).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
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

/// Who judges for `vigil policy records`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecordsJudge {
    /// This process.
    Inproc,
    /// An attested guard VM.
    Vm,
}

/// Runs a `vigil policy` subcommand.
pub fn run(command: PolicyCommand, choice: &vigil::guard_image::GuardChoice) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Records { policy: path, cases, judge, dir } => {
            let mut all = Vec::new();
            for file in &cases {
                all.extend(vigil::policy::read_cases(file)?);
            }
            let records = match judge {
                RecordsJudge::Inproc => {
                    let bundle = match &path {
                        Some(path) => vigil::policy::load_bundle(path)?,
                        None => vigil::policy::default_bundle().to_vec(),
                    };
                    vigil::verdict_records::inproc(&bundle, &all)?
                }
                RecordsJudge::Vm => {
                    let dir = crate::cli::key_directory::resolve(dir.as_deref())?;
                    let policy = vigil::policy::load_policy(path.as_deref(), &vigil::keys::policy_pin(&dir)?)?;
                    let (template, _, reference) = vigil::guard_image::load(choice)?;
                    let (secret, public) = vigil::keys::platform_pair(&dir)?;
                    let trust = vigil::vm_judge::TrustAnchors {
                        platform: public,
                        reference,
                        allow_test_image: choice.allow_test_image,
                    };
                    let config = vigil::vmm::VmConfig {
                        platform: Some(vigil::vmm::PlatformSigner(std::sync::Arc::new(secret))),
                        ..choice.vm_config()
                    };
                    let mut guard = vigil::vm_judge::VmJudge::start(&template, policy.image(), &trust, config)
                        .map_err(|e| anyhow::anyhow!("the guard did not start: {}", e.chain()))?;
                    let bar = vigil::progress::bar("judging", all.len());
                    let records = vigil::verdict_records::guard(&mut guard, &all, |n| bar.set_position(n as u64))?;
                    bar.finish_and_clear();
                    guard.shutdown().map_err(|e| anyhow::anyhow!("the guard's final checkpoint: {}", e.chain()))?;
                    records
                }
            };
            let mut out = String::new();
            for (case, record) in all.iter().zip(&records) {
                out.push_str(&vigil::verdict_records::line(&case.name, record));
                out.push('\n');
            }
            std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes()).context("writing the records")?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Compile { policy: path, output, sign, dir, json } => {
            vigil::output_file::refuse_input(&output, &path)?;
            let (compiled, ms) = vigil::policy::compile_file(&path)?;
            let bytes = if sign {
                let key = vigil::keys::policy_key(&crate::cli::key_directory::resolve(dir.as_deref())?)?;
                vigil::policy_signature::sign(&compiled.bundle, &key)?
            } else {
                compiled.bundle.clone()
            };
            vigil::output_file::write_private(&output, &bytes)?;
            let summary = vigil::policy::summary(&compiled, ms, Some(&output));
            if json {
                crate::cli::print_json(&summary)?
            } else {
                crate::cli::policy_output::print_summary(&summary)
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Sign { bundle, output, dir, json } => {
            let key = vigil::keys::policy_key(&crate::cli::key_directory::resolve(dir.as_deref())?)?;
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
                crate::cli::print_json(&report)?
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
            let (compiled, ms) = vigil::policy::compile_file(&path)?;
            let summary = vigil::policy::summary(&compiled, ms, None);
            if json {
                crate::cli::print_json(&summary)?
            } else {
                crate::cli::policy_output::print_summary(&summary);
                println!("ok: {} compiles", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Suggest { journal, policy, dir, trust, top, json } => {
            let dir = crate::cli::key_directory::resolve(dir.as_deref())?;
            let keys = vigil::audit::KeySource::load(&dir, trust.as_deref())?;
            let (source, name) = match &policy {
                Some(path) => (
                    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
                    path.display().to_string(),
                ),
                None => (vigil::policy::DEFAULT_SOURCE.to_string(), "the built-in default pack".to_string()),
            };
            let len = std::fs::metadata(&journal).with_context(|| format!("reading {}", journal.display()))?.len();
            let bar = vigil::progress::bar("suggest", len as usize);
            let report =
                vigil::suggest::suggest(&journal, &keys.master, &keys.trust, &source, &name, top as usize, |at| {
                    if at > u64::MAX - 1000 {
                        bar.set_message(format!("measuring candidate {}", u64::MAX - at + 1));
                    } else {
                        bar.set_position(at);
                    }
                })?;
            bar.finish_and_clear();
            if json {
                crate::cli::print_json(&report)?
            } else {
                crate::cli::policy_output::print_suggestions(&report)
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Bench { cases, repeat, json } => {
            let cases = if cases.is_empty() { crate::cli::corpus::source_corpus_files()? } else { cases };
            let report = crate::cli::policy_bench::run(&cases, repeat as usize)?;
            if json {
                crate::cli::print_json(&report)?
            } else {
                crate::cli::policy_bench::print(&report)
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test { policy: path, cases, json } => {
            let bundle = vigil::policy::load_bundle(&path)?;
            let mut all = Vec::new();
            for file in &cases {
                all.extend(vigil::policy::read_cases(file)?);
            }
            // No case tests nothing: an empty or misnamed file must not
            // read as a policy that passed.
            anyhow::ensure!(
                !all.is_empty(),
                "no cases in {}: nothing was tested (each line is {{\"name\", \"expect\", \"intent\"}})",
                cases.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
            );
            let report = vigil::policy::run_cases(&bundle, &all)?;
            if json {
                crate::cli::print_json(&report)?
            } else {
                crate::cli::policy_output::print_test_report(&report)
            }
            Ok(if report.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
