//! The front ends only the `vigil` command runs, over the library: the
//! demo (the main job and its script), the benchmarks, the machine check,
//! the corpus of the source tree, and how each command prints its report.
//! The library below never prints; these modules do.

pub mod bench;
pub mod commands;
pub mod corpus;
pub mod cost_output;
pub mod daemon_bench;
pub mod demo;
pub mod doctor;
pub mod eval_output;
pub mod journal_bench;
pub mod journal_output;
pub mod judge_bench;
pub mod key_directory;
pub mod policy_bench;
pub mod policy_output;

/// Whether `err` is standard output closed under us (`vigil … | head`):
/// a broken pipe anywhere in its chain.
pub fn is_closed_output(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Prints a report as pretty JSON on stdout (`--json`).
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
