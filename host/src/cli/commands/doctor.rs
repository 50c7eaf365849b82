//! `vigil doctor`.

use std::process::ExitCode;

use clap::Args;
use vigil::guard_image::GuardChoice;

/// Check that this machine can run the guard: /dev/kvm, boot, ping,
/// platform facts and timings.
#[derive(Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `vigil doctor`.
pub fn run(args: DoctorArgs, choice: &GuardChoice) -> anyhow::Result<ExitCode> {
    let DoctorArgs { json } = args;

    let report = crate::cli::doctor::run(choice);
    if json {
        crate::cli::print_json(&report)?;
    } else {
        crate::cli::doctor::print(&report);
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
