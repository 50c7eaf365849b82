//! How `vigil eval` prints verdicts: a table, or one JSON object a line.

use std::io::Write;

use anyhow::Result;
use serde_json::Value;

/// Prints one verdict (its JSON form, as `VerdictReport` serialises): a
/// table row, or a JSON line that also says which judge decided. A closed
/// standard output is an error (see [`crate::cli::is_closed_output`]), not
/// a panic: the caller still closes the journal.
pub fn print_verdict(verdict: &Value, json: bool, judged_by: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let mut v = verdict.clone();
        v["judged_by"] = judged_by.into();
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
    } else {
        let text = |k: &str| verdict[k].as_str().unwrap_or("").to_string();
        let matched: Vec<&str> =
            verdict["matched"].as_array().map(|m| m.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        writeln!(
            out,
            "{:>10}  {:<9} {:<13} {:<24} {}",
            verdict["id"],
            text("decision"),
            text("stage"),
            text("reason"),
            matched.join(",")
        )?;
    }
    Ok(())
}

/// The table header for [`print_verdict`].
pub fn print_header() -> Result<()> {
    writeln!(std::io::stdout().lock(), "{:>10}  {:<9} {:<13} {:<24} rules", "id", "decision", "stage", "reason")?;
    Ok(())
}
