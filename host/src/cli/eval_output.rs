//! How `vigil eval` prints verdicts: a table, or one JSON object a line.

use anyhow::Result;
use vigil::judge::VerdictReport;

/// Prints one verdict (a table row, or a JSON line).
pub fn print_verdict(verdict: &VerdictReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(verdict)?);
    } else {
        println!(
            "{:>10}  {:<9} {:<13} {:<24} {}",
            verdict.id,
            verdict.decision,
            verdict.stage,
            verdict.reason,
            verdict.matched.join(",")
        );
    }
    Ok(())
}

/// The table header for [`print_verdict`].
pub fn print_header() {
    println!("{:>10}  {:<9} {:<13} {:<24} rules", "id", "decision", "stage", "reason");
}
