//! `vigil journal verify | anchor | replay | export | bench | show`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use vigil::guard_image::GuardChoice;

#[derive(Subcommand)]
pub enum JournalCommand {
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
        /// Key directory (its platform.pub, and its high-water marks in
        /// DIR/anchors, which the journal must reach).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decrypt every frame, verify chain, checkpoints, evidence and guard
    /// checkpoints, and re-evaluate every intent under its recorded policy.
    /// Exit 0 only if everything `verify` checks holds (its high-water mark
    /// from DIR/anchors, anchors given, no torn tail, every frame sealed)
    /// and every verdict replays equal.
    Replay {
        /// The journal.
        file: PathBuf,
        /// Key directory holding journal.key (and platform.pub unless
        /// --trust is given) and the high-water marks (DIR/anchors).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The pinned platform key (default: DIR/platform.pub).
        #[arg(long, value_name = "FILE")]
        trust: Option<PathBuf>,
        /// An anchor (`vigil journal anchor` file, or its printed form in a
        /// text file) the journal must still reach; repeatable.
        #[arg(long, value_name = "ANCHOR")]
        anchor: Vec<PathBuf>,
        /// Accept frames after the last checkpoint (a writer still running).
        #[arg(long)]
        allow_unsealed: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decrypt and export every frame for a SIEM, after verifying the
    /// journal as `verify` does (its high-water mark from DIR/anchors, no
    /// torn tail, every frame sealed).
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
        #[arg(short, long, value_name = "FILE", conflicts_with = "follow")]
        output: Option<PathBuf>,
        /// Keep following the journal as writers append to it (e.g. a
        /// running `vigil serve`): every new frame is printed, verified,
        /// as soon as it is whole in the file; runs until interrupted.
        #[arg(long)]
        follow: bool,
        /// Print frames from this sequence number on (earlier ones are
        /// still verified).
        #[arg(long, value_name = "SEQ", default_value_t = 1)]
        from_seq: u64,
        /// Accept frames after the last checkpoint (a writer still running).
        #[arg(long, conflicts_with = "follow")]
        allow_unsealed: bool,
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
pub enum ExportFormat {
    /// One JSON object per frame.
    Jsonl,
    /// One ArcSight CEF:0 event per frame.
    Cef,
}

/// Runs a `vigil journal` subcommand.
pub fn run(command: JournalCommand, choice: &GuardChoice) -> anyhow::Result<ExitCode> {
    use vigil::audit;
    match command {
        JournalCommand::Verify { file, trust, anchor, dir, allow_unsealed, json } => {
            let high_water = match dir {
                Some(dir) => Some(dir.join("anchors")),
                None => crate::cli::key_directory::resolve(None).ok().as_deref().and_then(audit::high_water_dir),
            };
            let options = audit::VerifyOptions { allow_unsealed, anchors: anchor, high_water };
            let report = audit::verify(&file, &trust, &options)?;
            if json {
                crate::cli::print_json(&report)?
            } else {
                crate::cli::journal_output::print_verify(&report)
            }
            Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        JournalCommand::Anchor { file, output, trust, dir, json } => {
            let key_dir = match (&trust, &dir) {
                (Some(_), None) => crate::cli::key_directory::resolve(None).ok(),
                _ => Some(crate::cli::key_directory::resolve(dir.as_deref())?),
            };
            let trust = match (trust, &key_dir) {
                (Some(t), _) => t,
                (None, Some(d)) => d.join("platform.pub"),
                (None, None) => anyhow::bail!("give --trust or --dir"),
            };
            let high_water = key_dir.as_deref().and_then(audit::high_water_dir);
            let report = audit::export_anchor(&file, &trust, &output, high_water)?;
            if json {
                crate::cli::print_json(&report)?
            } else {
                println!("anchor of {} written to {}", report.file, report.output);
                println!("  covers seq {} (chain head {})", report.mark.seq, report.mark.head);
                println!("  for a paper log: {}", report.printable);
            }
            Ok(ExitCode::SUCCESS)
        }
        JournalCommand::Replay { file, dir, trust, anchor, allow_unsealed, json } => {
            let reference = match &choice.reference {
                Some(path) => vigil::reference::Reference::read(path)?,
                None => vigil::guard_image::production_reference()?,
            };
            let key_dir = crate::cli::key_directory::resolve(dir.as_deref())?;
            let keys = audit::KeySource::load(&key_dir, trust.as_deref())?;
            let options =
                audit::VerifyOptions { allow_unsealed, anchors: anchor, high_water: audit::high_water_dir(&key_dir) };
            let outcome = audit::replay(&file, &keys, &reference, choice.allow_test_image, &options)?;
            if json {
                crate::cli::print_json(&outcome)?
            } else {
                crate::cli::journal_output::print_replay(&outcome)
            }
            Ok(if outcome.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        JournalCommand::Export { file, format, dir, output, follow, from_seq, allow_unsealed } => {
            let key_dir = crate::cli::key_directory::resolve(dir.as_deref())?;
            let keys = audit::KeySource::load(&key_dir, None)?;
            if follow {
                let cef = format == ExportFormat::Cef;
                vigil::journal::export::follow(
                    &file,
                    &keys.master,
                    Some(&keys.trust),
                    from_seq,
                    std::time::Duration::from_millis(50),
                    &|| false,
                    |v| {
                        let line = if cef { vigil::journal::export::cef_line(&v) } else { v.to_string() };
                        println!("{line}");
                        Ok(())
                    },
                )
                .map_err(|e| anyhow::anyhow!("following {}: {e}", file.display()))?;
                return Ok(ExitCode::SUCCESS);
            }
            let options = audit::VerifyOptions {
                allow_unsealed,
                anchors: Vec::new(),
                high_water: audit::high_water_dir(&key_dir),
            };
            let lines =
                audit::export(&file, &keys, format == ExportFormat::Cef, output.as_deref(), from_seq, &options)?;
            if let Some(path) = output {
                eprintln!("exported {lines} frames to {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        JournalCommand::Bench { records, dir, json } => {
            let options = crate::cli::journal_bench::JournalBenchOptions {
                records: records as usize,
                dir: dir.unwrap_or_else(std::env::temp_dir),
            };
            let report = crate::cli::journal_bench::run(&options)?;
            if json {
                crate::cli::print_json(&report)?
            } else {
                crate::cli::journal_bench::print(&report)
            }
            Ok(ExitCode::SUCCESS)
        }
        JournalCommand::Show { file, seq, dir, json } => {
            let keys = audit::KeySource::load(&crate::cli::key_directory::resolve(dir.as_deref())?, None)?;
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
