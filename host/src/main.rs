//! The `vigil` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vigil::{bench, doctor};

#[derive(Parser)]
#[command(name = "vigil", version, about = "Judge AI agent tool calls inside an attested guard VM")]
struct Cli {
    /// Boot this guard image (an ELF from `cargo xtask build-guard`) instead
    /// of the one built into vigil.
    #[arg(long, global = true, value_name = "PATH")]
    guard_image: Option<PathBuf>,
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
    /// Measure cold start, exitless ping round trips and wake-from-sleep.
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
    let image = cli.guard_image.as_deref();
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
        Command::Bench { json, boots, pings, wakes } => {
            let options = bench::BenchOptions { boots: boots as usize, pings: pings as usize, wakes: wakes as usize };
            let report = bench::run(image, &options)?;
            if json {
                print_json(&report)?;
            } else {
                bench::print(&report);
            }
            Ok(ExitCode::SUCCESS)
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
