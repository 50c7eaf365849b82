//! `vigil policy compile | check | test`, and the default policy pack built
//! into vigil.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use vigil_guard::compile::{self, Compiled, DfaReport};

use crate::judge::{InprocJudge, read_jsonl};
use crate::policy_signature;

/// The default pack's source (`policies/default.toml`).
pub const DEFAULT_SOURCE: &str = include_str!("../../policies/default.toml");

/// The default pack, compiled at build time.
pub fn default_bundle() -> &'static [u8] {
    include_bytes!(concat!(env!("OUT_DIR"), "/default.vgp"))
}

/// A policy file: a `.vgp` bundle (its integrity digest checked, and its
/// signature verified when it carries one), anything else compiled as TOML.
pub fn load_bundle(path: &Path) -> Result<Vec<u8>> {
    Ok(read_policy(path)?.bundle)
}

/// A policy ready to run: the bundle, who signed it, where it came from.
#[derive(Clone, Debug)]
pub struct LoadedPolicy {
    /// The bundle (without any signature trailer): what the guard runs and
    /// what is measured.
    pub bundle: Vec<u8>,
    /// Fingerprint of the policy signer, when the file was signed (and the
    /// signature verified).
    pub signer: Option<[u8; 32]>,
    /// `built-in default pack` or the file.
    pub origin: String,
    /// Compiled here from TOML source (which cannot carry a signature).
    pub from_source: bool,
}

impl LoadedPolicy {
    /// The bundle as the VMM loads and attests it.
    pub fn image(&self) -> crate::vmm::PolicyImage {
        crate::vmm::PolicyImage::signed(self.bundle.clone(), self.signer)
    }
}

/// Reads a policy file: a bundle (digest checked, signature verified when
/// present) or TOML (compiled, unsigned).
pub fn read_policy(path: &Path) -> Result<LoadedPolicy> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the policy {}", path.display()))?;
    let origin = path.display().to_string();
    if bytes.starts_with(&vigil_guard::bundle::MAGIC) {
        let (bundle, trailer) =
            policy_signature::split(&bytes).with_context(|| format!("{origin}: invalid policy bundle"))?;
        vigil_guard::bundle::Bundle::load(bundle)
            .map_err(|e| anyhow::anyhow!("{origin}: invalid policy bundle: {}", e.as_str()))?;
        let signer =
            trailer.map(|t| policy_signature::verify(bundle, t)).transpose().with_context(|| origin.clone())?;
        return Ok(LoadedPolicy { bundle: bundle.to_vec(), signer, origin, from_source: false });
    }
    let source =
        String::from_utf8(bytes).with_context(|| format!("{} is neither a bundle nor UTF-8 TOML", path.display()))?;
    Ok(LoadedPolicy { bundle: compile::compile(&source, &origin)?.bundle, signer: None, origin, from_source: true })
}

/// The policy `eval`, `attest` and `demo` run: `path`, or the pack built
/// into vigil — held to the key directory's pins. A pinned signer admits
/// only bundles it signed (the built-in pack is trusted as part of the
/// vigil binary itself); a pinned digest admits only that bundle.
pub fn load_policy(path: Option<&Path>, pin: &crate::keys::PolicyPin) -> Result<LoadedPolicy> {
    let policy = match path {
        Some(path) => read_policy(path)?,
        None => LoadedPolicy {
            bundle: default_bundle().to_vec(),
            signer: None,
            origin: "built-in default pack".into(),
            from_source: false,
        },
    };
    if let (Some(pinned), Some(path)) = (&pin.signer, path) {
        match &policy.signer {
            // TOML source carries no signature: it is compiled and signed
            // into a bundle, and the bundle is what runs.
            None if policy.from_source => bail!(
                "{} is policy source (TOML), which cannot be signed, and the key directory pins policy signer {}: compile and sign it with `vigil policy compile {} -o POLICY.vgp --sign --dir DIR`, then run POLICY.vgp",
                policy.origin,
                hex::encode(pinned),
                path.display()
            ),
            None => bail!(
                "{} is not signed, and the key directory pins policy signer {}: sign it with `vigil policy sign {} --dir DIR` (or compile with `--sign`)",
                policy.origin,
                hex::encode(pinned),
                path.display()
            ),
            Some(signer) if signer != pinned => bail!(
                "{} is signed by {}, not by the pinned policy signer {}: get it signed by the pinned key, or change `policy_signer` in config.toml",
                policy.origin,
                hex::encode(signer),
                hex::encode(pinned)
            ),
            Some(_) => {}
        }
    }
    if let Some(digest) = &pin.digest {
        let have = vigil_attest::measure(&policy.bundle);
        if &have != digest {
            bail!(
                "{} has SHA-384 {}, but config.toml pins policy_digest {}: run the pinned policy, or change the pin",
                policy.origin,
                hex::encode(have),
                hex::encode(digest)
            );
        }
    }
    Ok(policy)
}

/// What `compile` and `check` print.
#[derive(Debug, Serialize)]
pub struct CompileSummary {
    /// Policy name.
    pub name: String,
    /// SHA-384 of the bundle.
    pub sha384: String,
    /// Bundle size.
    pub bytes: usize,
    /// The on-chip budget a bundle should stay under
    /// ([`vigil_guard::bundle::ON_CHIP_BUDGET`]).
    pub on_chip_budget: usize,
    /// Whether the bundle is within it.
    pub fits_on_chip: bool,
    /// Rules.
    pub rules: usize,
    /// Compile time, ms.
    pub compile_ms: f64,
    /// Per-DFA facts.
    pub dfas: Vec<DfaReport>,
    /// Where it was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// Compiles a TOML policy file.
pub fn compile_file(path: &Path) -> Result<(Compiled, f64)> {
    let source = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let started = Instant::now();
    let compiled = compile::compile(&source, &path.display().to_string())?;
    Ok((compiled, started.elapsed().as_secs_f64() * 1e3))
}

/// Summary of a compiled policy.
pub fn summary(compiled: &Compiled, compile_ms: f64, output: Option<&Path>) -> CompileSummary {
    CompileSummary {
        name: compiled.name.clone(),
        sha384: hex::encode(vigil_attest::measure(&compiled.bundle)),
        bytes: compiled.bundle.len(),
        on_chip_budget: vigil_guard::bundle::ON_CHIP_BUDGET,
        fits_on_chip: compiled.bundle.len() <= vigil_guard::bundle::ON_CHIP_BUDGET,
        rules: compiled.rules,
        compile_ms,
        dfas: compiled.dfas.clone(),
        output: output.map(|p| p.display().to_string()),
    }
}

/// One failed case of `vigil policy test`.
#[derive(Debug, Serialize)]
pub struct CaseFailure {
    /// Case name (or line number).
    pub name: String,
    /// Expected decision.
    pub expected: String,
    /// What the policy decided.
    pub got: &'static str,
    /// Stage and reason.
    pub why: String,
}

/// Result of `vigil policy test`.
#[derive(Debug, Serialize)]
pub struct TestReport {
    /// Cases run.
    pub cases: usize,
    /// Cases expected to be ESCALATE or DENY.
    pub dangerous: usize,
    /// Of those, judged ESCALATE or DENY.
    pub blocked: usize,
    /// Cases expected to be ALLOW.
    pub benign: usize,
    /// Of those, judged ESCALATE or DENY.
    pub false_positives: usize,
    /// Mismatches.
    pub failures: Vec<CaseFailure>,
}

/// One labelled test case of `vigil policy test` and the corpus: a line
/// `{"name", "expect", "intent"}`. This is the only place an `intent` field
/// is unwrapped; `vigil eval` judges its input exactly as written
/// (docs/intent.md).
#[derive(Clone, Debug)]
pub struct Case {
    /// Its `name`, else FILE#LINE.
    pub name: String,
    /// The expected decision: `ALLOW`, `ESCALATE` or `DENY`.
    pub expect: String,
    /// The intent, as JSON.
    pub intent: serde_json::Value,
}

impl Case {
    /// The intent as the guard judges it: the one conversion
    /// ([`vigil_guard::intent::json::to_cbor`]).
    pub fn cbor(&self) -> Result<Vec<u8>, vigil_guard::intent::json::JsonError> {
        vigil_guard::intent::json::to_cbor(&self.intent)
    }
}

/// Runs expected-decision cases.
pub fn run_cases(bundle: &[u8], cases: &[Case]) -> Result<TestReport> {
    let mut arena = crate::judge::dense_arena();
    let judge = InprocJudge::with_dense_copies(bundle, &mut arena)?;
    let mut report =
        TestReport { cases: 0, dangerous: 0, blocked: 0, benign: 0, false_positives: 0, failures: Vec::new() };
    for case in cases {
        let verdict = judge.evaluate_json(&case.intent);
        report.cases += 1;
        if case.expect == "ALLOW" {
            report.benign += 1;
            report.false_positives += usize::from(verdict.decision != "ALLOW");
        } else {
            report.dangerous += 1;
            report.blocked += usize::from(verdict.decision != "ALLOW");
        }
        if verdict.decision != case.expect {
            let mut why = format!("{}/{}", verdict.stage, verdict.reason);
            if let Some(rule) = &verdict.rule {
                why.push_str(&format!(" ({rule})"));
            }
            report.failures.push(CaseFailure {
                name: case.name.clone(),
                expected: case.expect.clone(),
                got: verdict.decision,
                why,
            });
        }
    }
    Ok(report)
}

/// Reads a case file: each line `{"name", "expect", "intent"}`, parsed
/// strictly (a repeated key is an error naming the line, as is a missing
/// `expect` or `intent`). Blank lines are skipped.
pub fn read_cases(path: &Path) -> Result<Vec<Case>> {
    read_jsonl(path)?
        .into_iter()
        .map(|(line, mut v)| {
            let at = format!("{}:{line}", path.display());
            let name = v
                .get("name")
                .and_then(|n| n.as_str())
                .map_or_else(|| format!("{}#{line}", path.display()), str::to_string);
            let expect = v
                .get("expect")
                .and_then(|v| v.as_str())
                .with_context(|| format!("{at}: case {name}: missing \"expect\" (ALLOW, ESCALATE or DENY)"))?
                .to_ascii_uppercase();
            if !matches!(expect.as_str(), "ALLOW" | "ESCALATE" | "DENY") {
                bail!("{at}: case {name}: \"expect\" must be ALLOW, ESCALATE or DENY, not {expect}");
            }
            let intent = v
                .get_mut("intent")
                .map(serde_json::Value::take)
                .with_context(|| format!("{at}: case {name}: missing \"intent\""))?;
            Ok(Case { name, expect, intent })
        })
        .collect()
}
