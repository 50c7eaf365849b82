//! `vigil eval`: judges JSON intents with the guard VM or in process,
//! records every verdict in the journal, and prints each verdict only once
//! its journal frame is on disk.

use std::time::Instant;

use anyhow::Result;
use vigil_guard::bundle::Bundle;
use vigil_guard::eval;

use crate::judge::{VerdictReport, rule_names, verdict_report};
use crate::recording::{CHUNK, Recorder, encode_json, submissions};

/// `vigil eval --judge inproc`: judges in this process, [`CHUNK`] intents
/// at a time; `emit` gets each chunk after its acknowledgement.
pub fn judge_inproc(
    bundle_bytes: &[u8],
    intents: &[&serde_json::Value],
    recorder: &mut Recorder,
    mut emit: impl FnMut(&[VerdictReport]) -> Result<()>,
) -> Result<()> {
    let bundle = Bundle::load(bundle_bytes).map_err(|e| anyhow::anyhow!("invalid policy bundle: {}", e.as_str()))?;
    let names = rule_names(&bundle);
    let encoded = encode_json(intents);
    for chunk in submissions(&encoded).chunks(CHUNK) {
        let mut reports = Vec::with_capacity(chunk.len());
        for intent in chunk {
            let started = Instant::now();
            let verdict = eval::evaluate(&bundle, intent.cbor);
            let ns = started.elapsed().as_nanos() as u64;
            recorder.inproc(intent, &verdict, ns)?;
            let mut report = verdict_report(&verdict, &names);
            report.eval_ns = Some(ns);
            if let Some(detail) = intent.detail {
                report.id = intent.id;
                report.detail = Some(detail.to_string());
            }
            reports.push(report);
        }
        recorder.acknowledge()?;
        emit(&reports)?;
    }
    Ok(())
}

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
