//! A verdict as people and machines read it: decision, stage, reason,
//! rule names, score. Shared by the judges, the CLI and the journal's
//! export (so it depends on nothing but `vigil-guard`).

use serde::Serialize;
use vigil_guard::bundle::Bundle;
use vigil_guard::eval::{self, Verdict};

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

impl VerdictReport {
    /// DENY because the judge itself failed (fail-closed).
    pub fn judge_failed(detail: String) -> Self {
        VerdictReport {
            id: 0,
            decision: vigil_guard::Decision::Deny.as_str(),
            stage: "judge",
            reason: "judge_failed",
            detail: Some(detail),
            rule: None,
            matched: Vec::new(),
            score: 0,
            eval_ns: None,
        }
    }
}

/// The rule ids of a bundle, by index.
pub fn rule_names(bundle: &Bundle<'_>) -> Vec<String> {
    (0..bundle.rule_count())
        .map(|i| bundle.rule(i).map(|r| r.id.to_string()).unwrap_or_else(|| format!("#{i}")))
        .collect()
}

/// Names the rules of a verdict.
pub fn verdict_report(verdict: &Verdict, rule_names: &[String]) -> VerdictReport {
    let name = |i: usize| rule_names.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
    VerdictReport {
        id: verdict.intent_id,
        decision: verdict.decision.as_str(),
        stage: verdict.stage.as_str(),
        reason: verdict.reason.as_str(),
        detail: match verdict.reason {
            eval::Reason::Malformed(e) => Some(format!("{}: {e}", e.as_str())),
            _ => None,
        },
        rule: verdict.rule.map(|i| name(i as usize)),
        matched: verdict.rules.iter().map(name).collect(),
        score: verdict.score,
        eval_ns: None,
    }
}
