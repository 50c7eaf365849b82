//! Exports for people and SIEMs: one JSON object per frame (JSON Lines),
//! one CEF event per frame, or one frame in full (docs/journal.md,
//! "Export"). Every export decrypts and verifies as it goes; a journal that
//! fails verification is an error, not an export.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha384};
use vigil_attest::MEASUREMENT_LEN;
use vigil_attest::dual::DualPublicKey;
use vigil_guard::bundle::Bundle;
use vigil_guard::{intent, verdict_codec};

use super::JournalError;
use super::body::{self, ApprovalBody, BootBody, EpochBody, GuardCheckpointBody, PolicyBody, VerdictBody};
use super::checkpoint::Statement;
use super::format::Kind;
use super::scan::{self, FrameRef, ScanOptions, ScanSummary};
use super::seal::MasterKey;

/// Turns frames into JSON, remembering rule names per policy.
#[derive(Default)]
pub struct FrameDescriber {
    rule_names: HashMap<[u8; MEASUREMENT_LEN], Vec<String>>,
}

fn intent_json(bytes: &[u8]) -> Value {
    match intent::decode(bytes) {
        Ok(i) => {
            let args: serde_json::Map<String, Value> = i.args.iter().map(|(k, v)| (k.into(), v.into())).collect();
            json!({"id": i.id, "agent": i.agent, "session": i.session, "tool": i.tool, "args": args, "cwd": i.cwd,
                   "justification": i.justification})
        }
        Err(e) => json!({"malformed": e.as_str(), "cbor_hex": hex::encode(bytes)}),
    }
}

impl FrameDescriber {
    /// One frame as a JSON object: the common fields (`seq`, `kind`,
    /// `epoch`, `offset`, `len`) and the decoded body.
    pub fn describe(&mut self, f: &FrameRef<'_>) -> Result<Value, JournalError> {
        let mut v = json!({"seq": f.seq, "kind": f.kind.as_str(), "epoch": f.epoch, "offset": f.offset, "len": f.len});
        let plain = f.body.unwrap_or_default();
        let extra = match f.kind {
            Kind::Epoch => {
                let b: EpochBody = body::decode(f.seq, plain)?;
                json!({"time_ms": b.time_ms, "writer": b.writer, "pid": b.pid, "cut_bytes": b.cut_bytes,
                       "cut_seq": b.cut_seq, "salt": hex::encode(f.public)})
            }
            Kind::Checkpoint => {
                let s = Statement::decode(f.public).map_err(|detail| JournalError::Body { seq: f.seq, detail })?;
                json!({"covered_seq": s.covered_seq, "head": hex::encode(&s.head), "time_ms": s.time_ms,
                       "closing": s.closing})
            }
            Kind::Boot => {
                let b: BootBody = body::decode(f.seq, plain)?;
                json!({"time_ms": b.time_ms, "evidence_sha384": hex::encode(Sha384::digest(&b.evidence)),
                       "evidence_bytes": b.evidence.len(), "nonce": hex::encode(&b.nonce),
                       "policy_sha384": hex::encode(&b.policy_sha384), "reference_image": hex::encode(&b.reference_image)})
            }
            Kind::Policy => {
                let b: PolicyBody = body::decode(f.seq, plain)?;
                let names = Bundle::load(&b.bundle)
                    .map(|bundle| crate::verdict_report::rule_names(&bundle))
                    .unwrap_or_default();
                let rules = names.len();
                if let Ok(hash) = b.sha384.as_slice().try_into() {
                    self.rule_names.insert(hash, names);
                }
                json!({"sha384": hex::encode(&b.sha384), "bundle_bytes": b.bundle.len(), "rules": rules})
            }
            Kind::Verdict => {
                let b: VerdictBody = body::decode(f.seq, plain)?;
                let mut out = json!({"time_ms": b.time_ms,
                    "judge": if b.judge == body::judge::VM { "vm" } else { "inproc" },
                    "policy_sha384": hex::encode(&b.policy_sha384), "boot_seq": b.boot_seq, "intent_id": b.intent_id,
                    "intent": intent_json(&b.intent), "eval_ns": b.eval_ns, "detail": b.detail,
                    "judge_failure": b.judge_failure});
                if let Some(peer) = b.peer {
                    out["peer"] = json!({"uid": peer.uid, "pid": peer.pid});
                }
                if b.verdict.is_empty() {
                    out["decision"] = "DENY".into();
                    out["reason"] = "judge_failed".into();
                } else if let Ok((verdict, _)) = verdict_codec::decode(&b.verdict) {
                    let names =
                        b.policy_sha384.as_slice().try_into().ok().and_then(|h: [u8; 48]| self.rule_names.get(&h));
                    let report =
                        crate::verdict_report::verdict_report(&verdict, names.map(Vec::as_slice).unwrap_or_default());
                    out["decision"] = report.decision.into();
                    out["stage"] = report.stage.into();
                    out["reason"] = report.reason.into();
                    out["rule"] = report.rule.into();
                    out["matched"] = report.matched.into();
                    out["score"] = report.score.into();
                } else {
                    out["verdict_hex"] = hex::encode(&b.verdict).into();
                }
                out
            }
            Kind::GuardCheckpoint => {
                let b: GuardCheckpointBody = body::decode(f.seq, plain)?;
                json!({"time_ms": b.time_ms, "boot_seq": b.boot_seq, "last": b.last,
                       "checkpoint_bytes": b.checkpoint.len()})
            }
            Kind::Cost => {
                let b: body::CostBody = body::decode(f.seq, plain)?;
                serde_json::to_value(b.json()).unwrap_or_default()
            }
            Kind::CostStatement => json!({"statement_hex": hex::encode(f.public)}),
            Kind::Approval => {
                let b: ApprovalBody = body::decode(f.seq, plain)?;
                let mut out = json!({"time_ms": b.time_ms, "verdict_seq": b.verdict_seq, "intent_id": b.intent_id,
                    "outcome": body::outcome::name(b.outcome).unwrap_or("unknown"), "approval_id": b.approval_id,
                    "decision": if b.outcome == body::outcome::APPROVED { "ALLOW" } else { "DENY" }});
                if let Some(by) = b.by {
                    out["by"] = json!({"uid": by.uid, "pid": by.pid});
                }
                out
            }
        };
        if let (Value::Object(v), Value::Object(extra)) = (&mut v, extra) {
            v.extend(extra);
        }
        Ok(v)
    }
}

fn cef_header_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|")
}

fn cef_value_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('=', "\\=").replace('\n', "\\n").replace('\r', "\\r")
}

/// One frame (as described) as a CEF:0 event line.
pub fn cef_line(v: &Value) -> String {
    let kind = v["kind"].as_str().unwrap_or("?");
    let text = |key: &str| match &v[key] {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    let (signature, name, severity) = match kind {
        "verdict" => {
            let decision = text("decision").unwrap_or_default();
            let severity = match decision.as_str() {
                "ALLOW" => 1,
                "ESCALATE" => 5,
                _ => 8,
            };
            (format!("verdict:{decision}"), format!("agent intent {decision}"), severity)
        }
        "checkpoint" => ("checkpoint".into(), "journal checkpoint signed".into(), 1),
        "boot" => ("boot".into(), "guard VM booted and attested".into(), 3),
        other => (other.to_string(), format!("journal {other} frame"), 1),
    };
    let mut ext = vec![format!("cn1Label=seq cn1={}", v["seq"])];
    if let Some(t) = text("time_ms") {
        ext.push(format!("rt={t}"));
    }
    if kind == "verdict" {
        let intent = &v["intent"];
        let field = |k: &str| intent[k].as_str().map(cef_value_escape);
        if let Some(agent) = field("agent") {
            ext.push(format!("suser={agent}"));
        }
        if let Some(tool) = field("tool") {
            ext.push(format!("cs1Label=tool cs1={tool}"));
        }
        if let Some(session) = field("session") {
            ext.push(format!("cs4Label=session cs4={session}"));
        }
        ext.push(format!("act={}", cef_value_escape(&text("decision").unwrap_or_default())));
        if let Some(reason) = text("reason") {
            ext.push(format!("cs2Label=reason cs2={}", cef_value_escape(&reason)));
        }
        if let Some(rule) = text("rule") {
            ext.push(format!("cs3Label=rule cs3={}", cef_value_escape(&rule)));
        }
        ext.push(format!("externalId={}", v["intent_id"]));
        if let Some(judge) = text("judge") {
            ext.push(format!("cs5Label=judge cs5={judge}"));
        }
        if let (Some(uid), Some(pid)) = (v["peer"]["uid"].as_u64(), v["peer"]["pid"].as_u64()) {
            ext.push(format!("suid={uid} spid={pid}"));
        }
    }
    format!(
        "CEF:0|Vigil|Vigil|{}|{}|{}|{severity}|{}",
        cef_header_escape(env!("CARGO_PKG_VERSION")),
        cef_header_escape(&signature),
        cef_header_escape(&name),
        ext.join(" ")
    )
}

/// Decrypts and verifies the journal, calling `each` with every frame's
/// description (in order); the journal must still reach `reach`, when
/// given (the end an earlier verifying read found;
/// [`ScanOptions::reach`]).
pub fn describe_all(
    path: &Path,
    key: &MasterKey,
    trust: Option<&DualPublicKey>,
    reach: Option<scan::Reach>,
    mut each: impl FnMut(u64, Value) -> Result<(), JournalError>,
) -> Result<ScanSummary, JournalError> {
    let mut describer = FrameDescriber::default();
    scan::scan_file(path, ScanOptions { trust, key: Some(key), reach, ..Default::default() }, |f| {
        let v = describer.describe(f)?;
        each(f.offset, v)
    })
}

/// Reads a journal file that a writer is still appending to: at the end of
/// what is there it waits (polling every `poll`) for more, until `stop`
/// says to end; a file that shrinks under it (a writer cut a torn tail on
/// recovery) is an error.
struct GrowingFile<'a> {
    file: std::fs::File,
    position: u64,
    poll: std::time::Duration,
    stop: &'a dyn Fn() -> bool,
}

impl std::io::Read for GrowingFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        loop {
            let n = self.file.read_at(buf, self.position)?;
            if n > 0 {
                self.position += n as u64;
                return Ok(n);
            }
            if self.file.metadata()?.len() < self.position {
                return Err(std::io::Error::other(format!(
                    "the journal was cut below byte {} while it was followed (a writer recovered a torn tail); follow it again with --from-seq",
                    self.position
                )));
            }
            if (self.stop)() {
                return Ok(0);
            }
            std::thread::sleep(self.poll);
        }
    }
}

/// Follows the journal at `path` as writers append to it: decrypts and
/// verifies every frame (chain, checkpoint signatures with `trust`) and
/// calls `each` with the description of every frame from `from_seq` on,
/// as soon as the frame is whole in the file (a writer writes each group
/// of frames, then fsyncs it, and acknowledges none of them before). Runs
/// until `stop` returns true while waiting for more.
pub fn follow(
    path: &Path,
    key: &MasterKey,
    trust: Option<&DualPublicKey>,
    from_seq: u64,
    poll: std::time::Duration,
    stop: &dyn Fn() -> bool,
    mut each: impl FnMut(Value) -> Result<(), JournalError>,
) -> Result<ScanSummary, JournalError> {
    let file = std::fs::File::open(path).map_err(JournalError::io(format!("opening {}", path.display())))?;
    let reader = GrowingFile { file, position: 0, poll, stop };
    let mut describer = FrameDescriber::default();
    scan::scan(reader, u64::MAX, ScanOptions { trust, key: Some(key), ..Default::default() }, |f| {
        // Policies are described (and their rule names kept) even before
        // `from_seq`: later verdicts name their rules.
        let v = describer.describe(f)?;
        if f.seq >= from_seq { each(v) } else { Ok(()) }
    })
}
