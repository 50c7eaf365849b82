//! The in-process judge: the same `vigil-guard` evaluation the guard VM
//! runs, executed in this process (baseline, replay, `--judge inproc`).

use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use vigil_guard::bundle::Bundle;
use vigil_guard::eval::{self, Verdict};
use vigil_guard::intent;

/// A verdict as printed and serialised.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VerdictReport {
    /// The intent's id.
    pub id: u64,
    /// ALLOW, ESCALATE or DENY.
    pub decision: &'static str,
    /// Deciding stage.
    pub stage: &'static str,
    /// Reason code.
    pub reason: &'static str,
    /// Detail for malformed intents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The rule that decided, if a rule did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Every matched rule id.
    pub matched: Vec<String>,
    /// Scorer total.
    pub score: i32,
    /// Evaluation time in nanoseconds (not part of the judgement).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_ns: Option<u64>,
}

/// An in-process judge over a loaded bundle.
pub struct InprocJudge<'b> {
    bundle: Bundle<'b>,
}

impl<'b> InprocJudge<'b> {
    /// Validates `bytes` as a bundle.
    pub fn new(bytes: &'b [u8]) -> Result<Self> {
        let bundle = Bundle::load(bytes).map_err(|e| anyhow::anyhow!("invalid policy bundle: {}", e.as_str()))?;
        Ok(InprocJudge { bundle })
    }

    /// The bundle.
    pub fn bundle(&self) -> &Bundle<'b> {
        &self.bundle
    }

    /// Judges a CBOR intent.
    pub fn evaluate(&self, cbor: &[u8]) -> Verdict {
        eval::evaluate(&self.bundle, cbor)
    }

    /// Judges a JSON intent (converted to CBOR first, as the guard sees it).
    /// A JSON value that cannot be converted is judged as malformed bytes.
    pub fn evaluate_json(&self, value: &serde_json::Value) -> VerdictReport {
        match intent::json::to_cbor(value) {
            Ok(cbor) => {
                let started = Instant::now();
                let verdict = self.evaluate(&cbor);
                let ns = started.elapsed().as_nanos() as u64;
                let mut report = self.report(&verdict);
                report.eval_ns = Some(ns);
                if let eval::Reason::Malformed(e) = verdict.reason {
                    report.detail = Some(format!("{e:?}"));
                }
                report
            }
            Err(message) => {
                let verdict = self.evaluate(&[]);
                let mut report = self.report(&verdict);
                report.id = value.get("id").and_then(|v| v.as_u64()).unwrap_or(0);
                report.detail = Some(message);
                report
            }
        }
    }

    /// Names the rules of a verdict.
    pub fn report(&self, verdict: &Verdict) -> VerdictReport {
        let name = |i: usize| self.bundle.rule(i).map(|r| r.id.to_string()).unwrap_or_else(|| format!("#{i}"));
        VerdictReport {
            id: verdict.intent_id,
            decision: verdict.decision.as_str(),
            stage: verdict.stage.as_str(),
            reason: verdict.reason.as_str(),
            detail: None,
            rule: verdict.rule.map(|i| name(i as usize)),
            matched: verdict.rules.iter().map(name).collect(),
            score: verdict.score,
            eval_ns: None,
        }
    }
}

/// Reads a JSON Lines file of intents (or of corpus cases with an `intent`
/// field). Blank lines are skipped; a bad line is an error naming it.
pub fn read_jsonl(path: &std::path::Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}:{}: not valid JSON", path.display(), n + 1))?;
        out.push(value);
    }
    Ok(out)
}
