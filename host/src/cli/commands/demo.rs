//! `vigil demo`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use vigil::guard_image::GuardChoice;

/// The main job, end to end: keys in a temporary directory, a guard VM
/// with the default pack, its evidence verified, a scripted agent session
/// judged over the attested channel, the final checkpoint verified.
#[derive(Args)]
pub struct DemoArgs {
    /// Use (and initialise if empty) this key directory instead of a
    /// temporary one.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Record the session in this journal (default: DIR/journal/vigil.vgj).
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `vigil demo`.
pub fn run(args: DemoArgs, choice: &GuardChoice) -> anyhow::Result<ExitCode> {
    let DemoArgs { dir, journal, json } = args;

    let (template, _, reference) = vigil::guard_image::load(choice)?;
    let report = crate::cli::demo::run(&template, &reference, dir.as_deref(), journal.as_deref())?;
    if json {
        crate::cli::print_json(&report)?;
    } else {
        crate::cli::demo::print(&report);
    }
    Ok(if report.mismatches == 0 && report.journal.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
