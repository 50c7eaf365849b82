//! `vigil bench`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use vigil::guard_image::GuardChoice;

/// Measure cold start, exitless ping round trips, wake-from-sleep, and
/// the attested judge: evidence, round trips against in-process, batches.
#[derive(Args)]
pub struct BenchArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Cold boots to time.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub boots: u32,
    /// Timed pings per payload size.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub pings: u32,
    /// Wake-from-sleep round trips to time.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub wakes: u32,
    /// Cold starts to an attested, verified guard.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub attested_starts: u32,
    /// Warm single-intent round trips through the VM (and in process).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub round_trips: u32,
    /// Verdicts per batch size (1, 16, 256) for the throughput figures.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(256..))]
    pub batch_verdicts: u32,
    /// Skip the attested-judge figures.
    #[arg(long)]
    pub no_judge: bool,
    /// Verdict records for the journal figures.
    #[arg(long, default_value_t = 300_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub journal_records: u32,
    /// Write the benchmark journal under this directory (default: the
    /// system temporary directory). Measure on the disk that will hold
    /// the real journal.
    #[arg(long, value_name = "DIR")]
    pub journal_dir: Option<PathBuf>,
    /// Skip the journal figures.
    #[arg(long)]
    pub no_journal: bool,
    /// Also measure the daemon: a real `vigil serve` with 2 guards driven
    /// over its socket (single intents, concurrent clients, batches), the
    /// hook process against it, its memory.
    #[arg(long)]
    pub daemon: bool,
    /// Concurrent clients for the daemon figures.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub daemon_clients: u32,
    /// Seconds per daemon load run.
    #[arg(long, default_value_t = 3.0)]
    pub daemon_seconds: f64,
}

/// Runs `vigil bench`.
pub fn run(args: BenchArgs, choice: &GuardChoice) -> anyhow::Result<ExitCode> {
    let BenchArgs {
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
        daemon,
        daemon_clients,
        daemon_seconds,
    } = args;

    let judge = (!no_judge).then_some(crate::cli::judge_bench::JudgeBenchOptions {
        starts: attested_starts as usize,
        round_trips: round_trips as usize,
        batch_verdicts: batch_verdicts as usize,
    });
    let journal = (!no_journal).then(|| crate::cli::journal_bench::JournalBenchOptions {
        records: journal_records as usize,
        dir: journal_dir.unwrap_or_else(std::env::temp_dir),
    });
    let daemon = daemon.then(|| crate::cli::daemon_bench::DaemonBenchOptions {
        clients: daemon_clients as usize,
        seconds: daemon_seconds.clamp(0.1, 600.0),
    });
    let options = crate::cli::bench::BenchOptions {
        boots: boots as usize,
        pings: pings as usize,
        wakes: wakes as usize,
        judge,
        journal,
        daemon,
    };
    let report = crate::cli::bench::run(choice, &options)?;
    if json {
        crate::cli::print_json(&report)?;
    } else {
        crate::cli::bench::print(&report);
    }
    Ok(ExitCode::SUCCESS)
}
