//! `vigil cost verify | report`: the journal's cost records (docs/cost.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use vigil::audit;
use vigil::cost_audit::{self, GroupBy, Window};

#[derive(Subcommand)]
pub enum CostCommand {
    /// Check every cost statement's two signatures with the cost key, every
    /// record signed exactly once and unchanged, every sum, every verdict
    /// priced exactly once; list cross-check flags. Exit 0 only if all hold.
    Verify {
        /// The journal.
        file: PathBuf,
        /// The pinned cost key (cost.pub).
        #[arg(long, value_name = "FILE")]
        trust: PathBuf,
        /// Key directory holding journal.key (the records' contents) and
        /// platform.pub (the journal's chain).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Check only the statements' signatures and which records they
        /// sign (no data key: contents and sums are not checked).
        #[arg(long)]
        signatures_only: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cost totals out of the journal, by a key.
    Report {
        /// The journal.
        file: PathBuf,
        /// Group by.
        #[arg(long, value_enum, default_value = "agent")]
        by: By,
        /// Only verdicts at or after this time (Unix milliseconds, or a
        /// date `YYYY-MM-DD`, UTC).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        from: Option<u64>,
        /// Only verdicts before this time (as --from).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        to: Option<u64>,
        /// Price per 10⁹ cycles (hardware cycles, else the guard's counter
        /// ticks).
        #[arg(long, value_name = "PER-GIGACYCLE")]
        price: Option<f64>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Key directory holding journal.key and platform.pub.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Report grouping keys.
#[derive(Clone, Copy, ValueEnum)]
pub enum By {
    Agent,
    Session,
    Tool,
    Decision,
    Judge,
    Tier,
}

/// Report formats.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
    Svg,
}

/// `--from`/`--to`: Unix milliseconds or `YYYY-MM-DD` (UTC midnight).
fn parse_time(text: &str) -> Result<u64, String> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts[..] else {
        return Err(format!("`{text}` is neither Unix milliseconds nor a date YYYY-MM-DD"));
    };
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i64>(), m.parse::<i64>(), d.parse::<i64>()) else {
        return Err(format!("`{text}` is not a date YYYY-MM-DD"));
    };
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(format!("`{text}` is out of range"));
    }
    // Days since 1970-01-01 (the civil-from-days inverse, proleptic
    // Gregorian).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days as u64 * 86_400_000)
}

pub fn run(command: CostCommand) -> anyhow::Result<ExitCode> {
    match command {
        CostCommand::Verify { file, trust, dir, signatures_only, json } => {
            let dir = crate::cli::key_directory::resolve(dir.as_deref())?;
            let cost_trust = audit::read_trust(&trust)?;
            let platform_trust = audit::read_trust(&dir.join("platform.pub"))?;
            let master = if signatures_only {
                None
            } else {
                Some(vigil::keys::read_journal_key(&dir).context("the data key (or pass --signatures-only)")?)
            };
            // The journal whole first, as `vigil journal verify` checks it
            // (cost records still unsigned are this report's to count).
            let options = audit::VerifyOptions {
                allow_unsealed: true,
                anchors: Vec::new(),
                high_water: audit::high_water_dir(&dir),
            };
            let reach = audit::require_intact(&file, &platform_trust, &options, "verifying the costs of")?;
            let report = cost_audit::verify(&file, master.as_ref(), &platform_trust, &cost_trust, reach)?;
            if json {
                crate::cli::print_json(&report)?;
            } else {
                crate::cli::cost_output::print_verify(&report);
            }
            Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        CostCommand::Report { file, by, from, to, price, format, dir } => {
            if let (Some(from), Some(to)) = (from, to) {
                anyhow::ensure!(from < to, "--from must be before --to");
            }
            if let Some(p) = price {
                anyhow::ensure!(p.is_finite() && p >= 0.0, "--price must be a non-negative number");
            }
            let keys = audit::KeySource::load(&crate::cli::key_directory::resolve(dir.as_deref())?, None)?;
            let by = match by {
                By::Agent => GroupBy::Agent,
                By::Session => GroupBy::Session,
                By::Tool => GroupBy::Tool,
                By::Decision => GroupBy::Decision,
                By::Judge => GroupBy::Judge,
                By::Tier => GroupBy::Tier,
            };
            let window = Window { from_ms: from, to_ms: to };
            let groups = cost_audit::report(&file, &keys.master, &keys.trust, by, window, price)?;
            match format {
                Format::Json => crate::cli::print_json(&groups)?,
                Format::Table => crate::cli::cost_output::print_table(&groups),
                Format::Csv => print!("{}", crate::cli::cost_output::csv(&groups)),
                Format::Svg => print!("{}", crate::cli::cost_output::svg(&groups)),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_midnights() {
        assert_eq!(parse_time("1970-01-01").unwrap(), 0);
        assert_eq!(parse_time("2000-03-01").unwrap(), 951_868_800_000);
        assert_eq!(parse_time("2026-12-05").unwrap(), 1_796_428_800_000);
        assert_eq!(parse_time("12345").unwrap(), 12345);
        assert!(parse_time("2026-13-01").is_err());
        assert!(parse_time("yesterday").is_err());
    }
}
