//! `vigil eval`: judges JSON intents with the guard VM or in process,
//! records every verdict in the journal, and prints each verdict only once
//! its journal frame is on disk.

use std::time::Instant;

use anyhow::Result;

use crate::judge::{InprocJudge, VerdictReport};
use crate::recording::{CHUNK, Recorder, encode_json, submissions};

/// `vigil eval --judge inproc`: judges in this process, [`CHUNK`] intents
/// at a time; `emit` gets each chunk after its acknowledgement.
pub fn judge_inproc(
    bundle: &[u8],
    intents: &[&str],
    recorder: &mut Recorder,
    mut emit: impl FnMut(&[VerdictReport]) -> Result<()>,
) -> Result<()> {
    let judge = InprocJudge::new(bundle)?;
    let encoded = encode_json(intents);
    for chunk in submissions(&encoded).chunks(CHUNK) {
        let mut reports = Vec::with_capacity(chunk.len());
        for intent in chunk {
            let started = Instant::now();
            let verdict = judge.evaluate(intent.cbor);
            let ns = started.elapsed().as_nanos() as u64;
            recorder.inproc(intent, &verdict, ns)?;
            let mut report = judge.report(&verdict);
            report.eval_ns = Some(ns);
            intent.annotate(&mut report);
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
