//! `vigil policy suggest`: learning from escalations. Reads the ESCALATE
//! verdicts of a journal (verified and decrypted), proposes candidate
//! allow rules in policy TOML — a command shape, a tool, a domain — and
//! measures each by compiling the policy with it and judging every
//! escalated intent again: how many verdicts it would have changed.
//! Nothing is ever applied; the report is for a person to read.
//!
//! Until approvals are journaled, every escalation counts; once they are,
//! this is where only the approved ones will be taken.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use vigil_guard::Decision;
use vigil_guard::bundle::Bundle;
use vigil_guard::compile;
use vigil_guard::intent;
use vigil_guard::shell::{self, ParseBuffers};
use vigil_guard::verdict_codec;

use crate::journal::body::{self, VerdictBody};
use crate::journal::scan::{self, ScanOptions};
use crate::journal::{JournalError, Kind, MasterKey};
use vigil_attest::dual::DualPublicKey;

/// Why suggestions could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SuggestError {
    /// The journal did not verify or could not be read.
    #[error("reading the journal {path}")]
    Journal {
        /// The journal.
        path: String,
        /// What the reader found.
        #[source]
        source: JournalError,
    },
    /// The policy (or the policy with a candidate) did not compile.
    #[error("{0}")]
    Policy(String),
}

/// One candidate and what it would have changed.
#[derive(Clone, Debug, Serialize)]
pub struct Suggestion {
    /// What kind of change: `command`, `tool` or `domain`.
    pub kind: &'static str,
    /// What it allows (a command shape, a tool name, a domain).
    pub subject: String,
    /// The TOML to add to the policy.
    pub toml: String,
    /// Escalated verdicts it appears in.
    pub seen: usize,
    /// Escalated verdicts that would have been ALLOW with it.
    pub would_allow: usize,
}

/// The report.
#[derive(Debug, Serialize)]
pub struct SuggestReport {
    /// Verdicts read.
    pub verdicts: u64,
    /// ESCALATE verdicts among them.
    pub escalated: usize,
    /// Candidates, most verdicts changed first.
    pub suggestions: Vec<Suggestion>,
}

/// What a candidate adds to the policy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Candidate {
    /// An anchored command shape: program and, for multi-command tools, the
    /// subcommand.
    Command { program: String, sub: Option<String> },
    /// A tool on the allow list.
    Tool(String),
    /// An allowed domain.
    Domain(String),
}

impl Candidate {
    fn kind(&self) -> &'static str {
        match self {
            Candidate::Command { .. } => "command",
            Candidate::Tool(_) => "tool",
            Candidate::Domain(_) => "domain",
        }
    }

    fn subject(&self) -> String {
        match self {
            Candidate::Command { program, sub: Some(sub) } => format!("{program} {sub}"),
            Candidate::Command { program, sub: None } => program.clone(),
            Candidate::Tool(t) | Candidate::Domain(t) => t.clone(),
        }
    }

    fn pattern(&self) -> Option<String> {
        match self {
            Candidate::Command { program, sub } => Some(match sub {
                Some(sub) => format!("^{} {}( |$)", escape(program), escape(sub)),
                None => format!("^{}( |$)", escape(program)),
            }),
            _ => None,
        }
    }

    fn toml(&self, index: usize) -> String {
        match self {
            Candidate::Command { .. } => format!(
                "[[rules]]\nid = \"suggested.{index}\"\nclass = \"command\"\npattern = '{}'\ndecision = \"allow\"\nseverity = \"info\"\nreason = \"approved everyday work: {}\"\n",
                self.pattern().unwrap_or_default(),
                self.subject()
            ),
            // A list entry to add (a policy has each list once): said as a
            // TOML comment, so the output stays valid TOML.
            Candidate::Tool(t) => format!("# [tools] allow: add \"{t}\"\n"),
            Candidate::Domain(d) => format!("# [tripwire] allowed_domains: add \"{d}\"\n"),
        }
    }

    /// The policy source with this candidate added.
    fn apply(&self, source: &str, index: usize) -> Result<String, SuggestError> {
        let mut table: toml::Table =
            source.parse().map_err(|e| SuggestError::Policy(format!("the policy is not valid TOML: {e}")))?;
        let push = |table: &mut toml::Table, section: &str, key: &str, value: toml::Value| {
            let section = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(section) = section.as_table_mut() {
                let list = section.entry(key).or_insert_with(|| toml::Value::Array(Vec::new()));
                if let Some(list) = list.as_array_mut() {
                    list.push(value);
                }
            }
        };
        match self {
            Candidate::Command { .. } => {
                let rule: toml::Table = self
                    .toml(index)
                    .trim_start_matches("[[rules]]\n")
                    .parse()
                    .map_err(|e| SuggestError::Policy(format!("internal: candidate rule: {e}")))?;
                let rules = table.entry("rules").or_insert_with(|| toml::Value::Array(Vec::new()));
                if let Some(rules) = rules.as_array_mut() {
                    rules.push(toml::Value::Table(rule));
                }
            }
            Candidate::Tool(t) => push(&mut table, "tools", "allow", toml::Value::String(t.clone())),
            Candidate::Domain(d) => push(&mut table, "tripwire", "allowed_domains", toml::Value::String(d.clone())),
        }
        toml::to_string(&table).map_err(|e| SuggestError::Policy(format!("internal: writing the policy: {e}")))
    }
}

/// Regex-escapes a program or subcommand name.
fn escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' && c != '-' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Tools whose first operand is a subcommand (`git push`, `kubectl get`).
fn has_subcommands(program: &str, sub: &str) -> bool {
    !sub.is_empty()
        && sub.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
        && sub.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b':')
        && !matches!(program, "cat" | "ls" | "rm" | "cp" | "mv" | "echo")
}

/// The candidates one escalated intent suggests.
fn candidates(intent_cbor: &[u8]) -> Vec<Candidate> {
    let Ok(intent) = intent::decode(intent_cbor) else { return Vec::new() };
    let mut out = Vec::new();
    match intent.tool {
        "shell" => {
            let mut buffers = Box::new(ParseBuffers::new());
            let mut parsed = buffers.parsed();
            if shell::parse(intent.args.get("command").unwrap_or(""), &mut parsed).is_ok() {
                for cmd in parsed.commands() {
                    let program = cmd.program();
                    if program.is_empty() || !program.bytes().all(|c| c.is_ascii_graphic()) {
                        continue;
                    }
                    let sub = cmd.operands().find(|w| !w.starts_with('-')).filter(|w| has_subcommands(program, w));
                    out.push(Candidate::Command { program: program.to_string(), sub: sub.map(str::to_string) });
                }
            }
        }
        "http" => {
            if let Some(url) = intent.args.get("url")
                && let Ok(parsed) = vigil_guard::url::parse(url)
                && let vigil_guard::url::Host::Domain(domain) = parsed.host
            {
                out.push(Candidate::Domain(domain.to_ascii_lowercase()));
            }
        }
        "read_file" | "write_file" => {}
        tool => out.push(Candidate::Tool(tool.to_string())),
    }
    out.sort();
    out.dedup();
    out
}

/// Reads the escalated intents of a verified journal.
fn escalated_intents(
    journal: &Path,
    key: &MasterKey,
    trust: &DualPublicKey,
    mut progress: impl FnMut(u64),
) -> Result<(u64, Vec<Vec<u8>>), SuggestError> {
    let mut verdicts = 0u64;
    let mut escalated = Vec::new();
    let failed = |source| SuggestError::Journal { path: journal.display().to_string(), source };
    scan::scan_file(journal, ScanOptions { trust: Some(trust), key: Some(key), ..Default::default() }, |f| {
        progress(f.offset);
        if f.kind != Kind::Verdict {
            return Ok(());
        }
        let Some(plain) = f.body else { return Ok(()) };
        let body: VerdictBody = body::decode(f.seq, plain)?;
        verdicts += 1;
        if let Ok((verdict, _)) = verdict_codec::decode(&body.verdict)
            && verdict.decision == Decision::Escalate
        {
            escalated.push(body.intent);
        }
        Ok(())
    })
    .map_err(failed)?;
    Ok((verdicts, escalated))
}

/// Suggests at most `top` candidates for `policy_source` (named
/// `policy_name` in errors) from the escalations in `journal`. `progress`
/// gets the journal offset while reading, then `u64::MAX - n` as the n-th
/// candidate is measured.
pub fn suggest(
    journal: &Path,
    key: &MasterKey,
    trust: &DualPublicKey,
    policy_source: &str,
    policy_name: &str,
    top: usize,
    mut progress: impl FnMut(u64),
) -> Result<SuggestReport, SuggestError> {
    let (verdicts, escalated) = escalated_intents(journal, key, trust, &mut progress)?;
    let mut seen: BTreeMap<Candidate, usize> = BTreeMap::new();
    for intent in &escalated {
        for candidate in candidates(intent) {
            *seen.entry(candidate).or_default() += 1;
        }
    }
    let mut ranked: Vec<(Candidate, usize)> = seen.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(top);
    let mut suggestions = Vec::new();
    for (index, (candidate, count)) in ranked.into_iter().enumerate() {
        progress(u64::MAX - index as u64);
        let source = candidate.apply(policy_source, index + 1)?;
        let compiled = compile::compile(&source, policy_name).map_err(|e| SuggestError::Policy(e.to_string()))?;
        let bundle = Bundle::load(&compiled.bundle)
            .map_err(|e| SuggestError::Policy(format!("internal: bundle: {}", e.as_str())))?;
        let would_allow =
            escalated.iter().filter(|i| vigil_guard::eval::evaluate(&bundle, i).decision == Decision::Allow).count();
        suggestions.push(Suggestion {
            kind: candidate.kind(),
            subject: candidate.subject(),
            toml: candidate.toml(index + 1),
            seen: count,
            would_allow,
        });
    }
    // A candidate that changes nothing (already known, or not enough on
    // its own) is not worth a person's time.
    suggestions.retain(|s| s.would_allow > 0);
    suggestions.sort_by(|a, b| b.would_allow.cmp(&a.would_allow).then(b.seen.cmp(&a.seen)));
    Ok(SuggestReport { verdicts, escalated: escalated.len(), suggestions })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell_intent(command: &str) -> Vec<u8> {
        intent::json::to_cbor(
            &serde_json::json!({"id": 1, "agent": "a", "tool": "shell", "args": {"command": command}, "cwd": "/w/p"}),
        )
        .unwrap()
    }

    #[test]
    fn candidates_name_programs_and_subcommands() {
        let c = candidates(&shell_intent("aws s3 ls && frob --x"));
        assert_eq!(
            c,
            vec![
                Candidate::Command { program: "aws".into(), sub: Some("s3".into()) },
                Candidate::Command { program: "frob".into(), sub: None },
            ]
        );
        assert_eq!(c[0].pattern().unwrap(), "^aws s3( |$)");
    }

    #[test]
    fn a_candidate_is_measured_by_judging_again() {
        let source = crate::policy::DEFAULT_SOURCE;
        let candidate = Candidate::Command { program: "frobnicate".into(), sub: None };
        let with = compile::compile(&candidate.apply(source, 1).unwrap(), "p").unwrap();
        let bundle = Bundle::load(&with.bundle).unwrap();
        let intent = shell_intent("frobnicate --all");
        assert_eq!(vigil_guard::eval::evaluate(&bundle, &intent).decision, Decision::Allow);
        let dangerous = shell_intent("frobnicate --all && rm -rf ~");
        assert_eq!(vigil_guard::eval::evaluate(&bundle, &dangerous).decision, Decision::Deny);
    }
}
