//! The in-process judge: the same `vigil-guard` evaluation the guard VM
//! runs, executed in this process (baseline, replay, `--judge inproc`).

use std::time::Instant;

use vigil_guard::bundle::Bundle;
use vigil_guard::dense;
use vigil_guard::eval::{self, Verdict};
use vigil_guard::intent;

pub use crate::verdict_report::{VerdictReport, rule_names, verdict_report};

/// A policy bundle that does not load (`vigil-guard`'s reason).
#[derive(Debug, thiserror::Error)]
#[error("invalid policy bundle: {0}")]
pub struct InvalidBundle(pub &'static str);

/// Why an intent file could not be read; nothing was judged.
#[derive(Debug, thiserror::Error)]
pub enum IntentFileError {
    /// The file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A line is not UTF-8, not JSON, or (for labelled cases) repeats a key.
    #[error("{path}:{line}: {problem}")]
    Line {
        /// The file.
        path: String,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
}

/// An in-process judge over a loaded bundle.
pub struct InprocJudge<'b> {
    bundle: Bundle<'b>,
    rule_names: Vec<String>,
}

/// Memory for an in-process judge's dense copies of its bundle's sparse
/// DFAs ([`InprocJudge::with_dense_copies`]): [`dense::DEFAULT_ARENA_LEN`]
/// zeroed bytes, as the guard lends its judge.
pub fn dense_arena() -> Vec<u8> {
    vec![0; dense::DEFAULT_ARENA_LEN]
}

impl<'b> InprocJudge<'b> {
    /// Validates `bytes` as a bundle. The judge runs the bundle's tables as
    /// they are stored; [`InprocJudge::with_dense_copies`] gives the same
    /// verdicts faster.
    pub fn new(bytes: &'b [u8]) -> Result<Self, InvalidBundle> {
        let bundle = Bundle::load(bytes).map_err(|e| InvalidBundle(e.as_str()))?;
        let rule_names = rule_names(&bundle);
        Ok(InprocJudge { bundle, rule_names })
    }

    /// [`InprocJudge::new`], the bundle's sparse DFAs given dense copies in
    /// `arena` (as many as fit: [`vigil_guard::dense`]), as the guard does:
    /// the same verdicts, fewer instructions per intent.
    pub fn with_dense_copies(bytes: &'b [u8], arena: &'b mut [u8]) -> Result<Self, InvalidBundle> {
        let mut judge = Self::new(bytes)?;
        judge.bundle.densify(arena);
        Ok(judge)
    }

    /// The bundle.
    pub fn bundle(&self) -> &Bundle<'b> {
        &self.bundle
    }

    /// Judges a CBOR intent.
    pub fn evaluate(&self, cbor: &[u8]) -> Verdict {
        eval::evaluate(&self.bundle, cbor)
    }

    /// Judges a JSON intent (converted to CBOR first, as the guard sees it,
    /// by [`intent::json::to_cbor`]). A JSON value that cannot be converted
    /// — over the size limit included — is judged as malformed (empty)
    /// bytes, with the reason as the detail.
    pub fn evaluate_json(&self, value: &serde_json::Value) -> VerdictReport {
        match intent::json::to_cbor(value) {
            Ok(cbor) => {
                let started = Instant::now();
                let verdict = self.evaluate(&cbor);
                let ns = started.elapsed().as_nanos() as u64;
                let mut report = self.report(&verdict);
                report.eval_ns = Some(ns);
                report
            }
            Err(e) => {
                let verdict = self.evaluate(&[]);
                let mut report = self.report(&verdict);
                report.id = value.get("id").and_then(|v| v.as_u64()).unwrap_or(0);
                report.detail = Some(e.to_string());
                report
            }
        }
    }

    /// Names the rules of a verdict.
    pub fn report(&self, verdict: &Verdict) -> VerdictReport {
        verdict_report(verdict, &self.rule_names)
    }
}

/// The non-blank lines of a JSON Lines file, with their numbers (from 1).
/// JSON text is UTF-8: a line that is not is an error naming it.
fn jsonl_lines(path: &std::path::Path) -> Result<Vec<(usize, String)>, IntentFileError> {
    let name = || path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| IntentFileError::Read { path: name(), source })?;
    let mut out = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = std::str::from_utf8(line).map_err(|e| IntentFileError::Line {
            path: name(),
            line: i + 1,
            problem: format!("not UTF-8 (at byte {} of the line): JSON text must be UTF-8", e.valid_up_to()),
        })?;
        if !line.trim().is_empty() {
            out.push((i + 1, line.to_string()));
        }
    }
    Ok(out)
}

/// Reads a JSON Lines file of labelled cases (`{"name","expect","intent"}`,
/// see [`crate::policy::read_cases`]), each line with its number, parsed
/// strictly: a line that is not UTF-8 or not JSON, or repeats a key, is an
/// error naming it. Blank lines are skipped.
pub fn read_jsonl(path: &std::path::Path) -> Result<Vec<(usize, serde_json::Value)>, IntentFileError> {
    jsonl_lines(path)?
        .into_iter()
        .map(|(n, line)| {
            let value = intent::json::parse_strict(&line).map_err(|e| IntentFileError::Line {
                path: path.display().to_string(),
                line: n,
                problem: e.to_string(),
            })?;
            Ok((n, value))
        })
        .collect()
}

/// Reads a JSON Lines file of intents for `vigil eval`, one per line, as
/// text: a line that is not UTF-8 or not JSON at all is an error naming it
/// (nothing is judged); a line that is JSON but ambiguous (a repeated key)
/// is kept, to be judged — and recorded — as a malformed intent. Blank
/// lines are skipped.
pub fn read_intent_lines(path: &std::path::Path) -> Result<Vec<String>, IntentFileError> {
    jsonl_lines(path)?
        .into_iter()
        .map(|(n, line)| {
            check_json(&line).map_err(|e| IntentFileError::Line {
                path: path.display().to_string(),
                line: n,
                problem: format!("not valid JSON: {e}"),
            })?;
            Ok(line)
        })
        .collect()
}

/// Whether `text` is JSON (syntax only: repeated keys pass here and are
/// refused when the intent is converted).
pub fn check_json(text: &str) -> Result<(), serde_json::Error> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).map(|_| ())
}
