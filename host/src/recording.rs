//! Recording decisions: every judged intent goes into the journal, and a
//! verdict is shown to anyone only after its frame is on disk
//! (docs/journal.md, "What Vigil records").

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil_attest::checkpoint::{self, GuardCheckpoint};
use vigil_guard::bundle::Bundle;
use vigil_guard::eval::Verdict;
use vigil_guard::intent::json;
use vigil_guard::verdict_codec;

use crate::cost::{self, RecordRef, StatementPayload};
use crate::journal::body::{self, ApprovalBody, CostBody, CostTier, GuardCheckpointBody, Peer, VerdictBody, judge};
use crate::journal::writer::OpenReport;
use crate::journal::{Journal, JournalError, Kind, WriterOptions};
use crate::judge::{InvalidBundle, VerdictReport};
use crate::keys::{self, KeyError};
use crate::vm_judge::{BATCH, VmJudge};

/// Why a verdict could not be recorded (and so must not be shown).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The policy bundle does not load.
    #[error(transparent)]
    Bundle(#[from] InvalidBundle),
    /// A key or the configuration could not be read.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The journal refused or failed, doing `what` (empty: appending).
    #[error("{what}")]
    Journal {
        /// What was being done.
        what: String,
        /// The journal's error, with its fix.
        #[source]
        source: JournalError,
    },
    /// Appending to the journal failed.
    #[error(transparent)]
    Append(#[from] JournalError),
    /// The verdict could not be encoded as a record.
    #[error("encoding the verdict record: {0}")]
    Encode(String),
    /// A guard checkpoint arrived before the guard's boot was recorded.
    #[error("a guard checkpoint before any boot frame")]
    CheckpointBeforeBoot,
    /// A guard verdict arrived before the guard's boot was recorded.
    #[error("a guard verdict before any boot frame")]
    VerdictBeforeBoot,
    /// A cost statement could not be signed.
    #[error("signing a cost statement: {0}")]
    CostStatement(String),
    /// The journal was closed while another thread could still record.
    #[error("closing the journal while a recording handle is still in use")]
    StillShared,
}

/// Results of this module.
pub type Result<T, E = RecordError> = std::result::Result<T, E>;

fn journal_failed(what: String) -> impl FnOnce(JournalError) -> RecordError {
    move |source| RecordError::Journal { what, source }
}

/// Intents judged, recorded and acknowledged together.
pub const CHUNK: usize = 256;

/// The journal of one run, with the policy it judges under; verdicts from
/// the VM refer to the last guard boot recorded.
pub struct Recorder {
    shared: SharedRecorder,
    boot_seq: Option<u64>,
    last: u64,
}

/// The journal and the policy it judges under, for several threads at once
/// (`vigil serve`: every guard of the pool records here). Every method
/// appends and returns the frame's seq; [`SharedRecorder::wait`] waits
/// until a seq is durable (commits are grouped across all callers).
#[derive(Clone)]
pub struct SharedRecorder {
    journal: Arc<Journal>,
    path: PathBuf,
    policy: [u8; 48],
    rule_words: usize,
    costs: Arc<CostLedger>,
}

/// Cost records not yet signed, and the key that signs them.
struct CostLedger {
    key: vigil_attest::dual::DualSigningKey,
    journal_id: [u8; 16],
    cpu_model: String,
    /// Records appended since the last statement, in journal order (the
    /// lock is held while a record is appended).
    pending: std::sync::Mutex<Vec<(RecordRef, CostBody)>>,
}

/// An intent as submitted: its CBOR (empty when the JSON could not be
/// converted), the id the caller sees, and why it could not be converted.
pub struct Submitted<'a> {
    /// CBOR intent, or empty.
    pub cbor: &'a [u8],
    /// The intent id.
    pub id: u64,
    /// Why the JSON could not become CBOR.
    pub detail: Option<&'a str>,
}

impl Submitted<'_> {
    /// Gives a report the caller's id and the conversion failure, where the
    /// JSON could not become CBOR (the verdict is then about empty bytes).
    pub fn annotate(&self, report: &mut VerdictReport) {
        if let Some(detail) = self.detail {
            report.id = self.id;
            report.detail = Some(detail.to_string());
        }
    }
}

/// Who judged a verdict about to be recorded.
#[derive(Clone, Copy, Debug)]
pub enum Judged {
    /// In this process, taking `eval_ns`.
    InProcess {
        /// Evaluation time.
        eval_ns: u64,
    },
    /// By the guard of boot frame `boot_seq`.
    Guard {
        /// Its boot frame.
        boot_seq: Option<u64>,
    },
}

impl SharedRecorder {
    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, kind: Kind, body: &[u8]) -> Result<u64> {
        Ok(self.journal.append(kind, body)?)
    }

    /// Records a guard's boot (its evidence); returns the seq its verdicts
    /// and checkpoints refer to.
    pub fn boot(&self, judge: &VmJudge) -> Result<u64> {
        self.append(Kind::Boot, &body::encode(&judge.boot_body()))
    }

    fn verdict_body(&self, intent: &Submitted<'_>, judged: Judged, record: Vec<u8>, peer: Option<Peer>) -> VerdictBody {
        let (judge, boot_seq, eval_ns) = match judged {
            Judged::InProcess { eval_ns } => (judge::INPROC, None, Some(eval_ns)),
            Judged::Guard { boot_seq } => (judge::VM, boot_seq, None),
        };
        VerdictBody {
            time_ms: body::now_ms(),
            judge,
            policy_sha384: self.policy.to_vec(),
            boot_seq,
            intent: intent.cbor.to_vec(),
            verdict: record,
            eval_ns,
            detail: intent.detail.map(str::to_string),
            judge_failure: None,
            intent_id: intent.id,
            peer,
        }
    }

    /// Records an in-process verdict.
    pub fn inproc(&self, intent: &Submitted<'_>, verdict: &Verdict, eval_ns: u64, peer: Option<Peer>) -> Result<u64> {
        let mut record = vec![0; verdict_codec::record_len(self.rule_words)];
        let n = verdict_codec::encode(verdict, self.rule_words, &mut record)
            .map_err(|e| RecordError::Encode(format!("{e:?}")))?;
        record.truncate(n);
        let body = self.verdict_body(intent, Judged::InProcess { eval_ns }, record, peer);
        self.append(Kind::Verdict, &body::encode(&body))
    }

    /// Records a batch the guard of boot frame `boot_seq` judged: every
    /// verdict (its record as received, the peer that sent it) and, when
    /// counted, the cost record pricing them — in one commit group, so a
    /// caller waiting for the last frame waits for one fsync. Returns the
    /// verdicts' seqs and the last seq written.
    pub fn guard_batch(
        &self,
        guard: &VmJudge,
        boot_seq: u64,
        verdicts: Vec<(&Submitted<'_>, Vec<u8>, Option<Peer>)>,
        cost: Option<cost::BatchCost>,
    ) -> Result<(Vec<u64>, u64)> {
        use sha2::Digest;
        let bodies: Vec<Vec<u8>> = verdicts
            .into_iter()
            .map(|(intent, record, peer)| {
                body::encode(&self.verdict_body(intent, Judged::Guard { boot_seq: Some(boot_seq) }, record, peer))
            })
            .collect();
        let Some(cost) = cost else {
            let (seqs, _) = self.journal.append_with_trailer(Kind::Verdict, &bodies, |_| None)?;
            let last = seqs.last().copied().unwrap_or(0);
            return Ok((seqs, last));
        };
        let tier = self.guard_tier(guard, Some(boot_seq));
        let mut pending = self.costs.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut priced = None;
        let (seqs, cost_seq) = self.journal.append_with_trailer(Kind::Verdict, &bodies, |seqs| {
            let record = cost.record(seqs.to_vec(), tier, body::now_ms());
            let bytes = body::encode(&record);
            priced = Some((sha2::Sha384::digest(&bytes).to_vec(), record));
            Some((Kind::Cost, bytes))
        })?;
        let mut last = cost_seq.or(seqs.last().copied()).unwrap_or(0);
        if let (Some(seq), Some((sha384, record))) = (cost_seq, priced) {
            pending.push((RecordRef { seq, sha384 }, record));
            if pending.len() >= cost::RECORDS_PER_STATEMENT {
                last = self.sign_costs(&mut pending)?;
            }
        }
        Ok((seqs, last))
    }

    /// Records a fail-closed DENY: the judge failed before deciding.
    pub fn judge_failed(
        &self,
        intent: &Submitted<'_>,
        judged: Judged,
        reason: &str,
        peer: Option<Peer>,
    ) -> Result<u64> {
        let mut body = self.verdict_body(intent, judged, Vec::new(), peer);
        body.eval_ns = None;
        body.judge_failure = Some(reason.to_string());
        self.append(Kind::Verdict, &body::encode(&body))
    }

    /// Records a checkpoint (verified by the caller) of the guard of boot
    /// frame `boot_seq`.
    pub fn guard_checkpoint(&self, boot_seq: u64, cp: &GuardCheckpoint, last: bool) -> Result<u64> {
        let mut bytes = [0u8; checkpoint::LEN];
        cp.encode(&mut bytes);
        let body = GuardCheckpointBody { time_ms: body::now_ms(), boot_seq, checkpoint: bytes.to_vec(), last };
        self.append(Kind::GuardCheckpoint, &body::encode(&body))
    }

    /// Records how an ESCALATE verdict was settled.
    pub fn approval(&self, approval: &ApprovalBody) -> Result<u64> {
        self.append(Kind::Approval, &body::encode(approval))
    }

    /// The tier of work done in this process (the in-process judge).
    pub fn inproc_tier(&self) -> CostTier {
        CostTier {
            judge: judge::INPROC,
            arch: crate::vmm::GuestArch::HOST.name().to_string(),
            hypervisor: None,
            cpu_model: self.costs.cpu_model.clone(),
            boot_seq: None,
            evidence_sha384: None,
            counter_khz: None,
        }
    }

    /// The tier of work done by `guard`, whose boot frame is `boot_seq`.
    pub fn guard_tier(&self, guard: &VmJudge, boot_seq: Option<u64>) -> CostTier {
        use sha2::Digest;
        CostTier {
            judge: judge::VM,
            arch: guard.claims().arch.clone(),
            hypervisor: Some(guard.claims().hypervisor.clone()),
            cpu_model: self.costs.cpu_model.clone(),
            boot_seq,
            evidence_sha384: Some(sha2::Sha384::digest(guard.evidence()).to_vec()),
            counter_khz: guard.counter_khz(),
        }
    }

    /// Records what judging a batch cost (a cost frame); every
    /// [`cost::RECORDS_PER_STATEMENT`] records, signs a cost statement.
    /// Returns the last seq written.
    pub fn cost(&self, record: &CostBody) -> Result<u64> {
        use sha2::Digest;
        let bytes = body::encode(record);
        let mut pending = self.costs.pending.lock().unwrap_or_else(|e| e.into_inner());
        let seq = self.append(Kind::Cost, &bytes)?;
        pending.push((RecordRef { seq, sha384: sha2::Sha384::digest(&bytes).to_vec() }, record.clone()));
        if pending.len() >= cost::RECORDS_PER_STATEMENT {
            return self.sign_costs(&mut pending);
        }
        Ok(seq)
    }

    /// Signs every pending cost record in one statement (nothing when none
    /// is pending); returns the statement's seq, or 0.
    pub fn sign_pending_costs(&self) -> Result<u64> {
        let mut pending = self.costs.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.sign_costs(&mut pending)
    }

    fn sign_costs(&self, pending: &mut Vec<(RecordRef, CostBody)>) -> Result<u64> {
        if pending.is_empty() {
            return Ok(0);
        }
        let statement = StatementPayload {
            version: cost::STATEMENT_VERSION,
            journal_id: self.costs.journal_id.to_vec(),
            records: pending.iter().map(|(r, _)| r.clone()).collect(),
            totals: cost::totals(pending.iter().map(|(_, b)| b)),
            time_ms: body::now_ms(),
        };
        let public = statement.sign(&self.costs.key).map_err(RecordError::CostStatement)?;
        let seq = self.journal.append_public(Kind::CostStatement, &public, &[])?;
        pending.clear();
        Ok(seq)
    }

    /// Waits until frame `seq` and every one before it is on disk.
    pub fn wait(&self, seq: u64) -> Result<()> {
        if seq > 0 {
            self.journal.wait(seq).map_err(journal_failed(format!("writing the journal {}", self.path.display())))?;
        }
        Ok(())
    }
}

impl Recorder {
    /// Opens the journal (`explicit`, else the configured or default path
    /// under `dir`) with the keys in `dir`, and records `bundle` in it.
    pub fn open(dir: &Path, explicit: Option<&Path>, bundle: &[u8]) -> Result<Recorder> {
        // Validate the bundle first: an invalid one must not reach the journal.
        let rule_words = Bundle::load(bundle).map_err(|e| InvalidBundle(e.as_str()))?.rule_count().div_ceil(64).max(1);
        let path = keys::journal_path(dir, explicit)?;
        let master = keys::read_journal_key(dir)?;
        let (secret, _) = keys::platform_pair(dir)?;
        let options = WriterOptions { high_water: Some(dir.join("anchors")), ..WriterOptions::default() };
        let journal = Journal::open(&path, &master, Arc::new(secret), options)
            .map_err(journal_failed(format!("opening the journal {}", path.display())))?;
        let policy = journal.ensure_policy(bundle)?;
        let (cost_key, _) = keys::cost_pair(dir)?;
        let costs = Arc::new(CostLedger {
            key: cost_key,
            journal_id: journal.journal_id(),
            cpu_model: vigil_os::cpu_model::cpu_model(),
            pending: std::sync::Mutex::new(Vec::new()),
        });
        let shared = SharedRecorder { journal: Arc::new(journal), path, policy, rule_words, costs };
        Ok(Recorder { shared, boot_seq: None, last: 0 })
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// What opening found.
    pub fn report(&self) -> &OpenReport {
        self.shared.journal.report()
    }

    /// A handle for recording from several threads (drop every handle
    /// before [`Recorder::close`]).
    pub fn shared(&self) -> SharedRecorder {
        self.shared.clone()
    }

    fn track(&mut self, seq: Result<u64>) -> Result<u64> {
        let seq = seq?;
        self.last = seq;
        Ok(seq)
    }

    /// Records a guard's boot (its evidence); later verdicts refer to it.
    pub fn boot(&mut self, judge: &VmJudge) -> Result<u64> {
        let seq = self.track(self.shared.boot(judge))?;
        self.boot_seq = Some(seq);
        Ok(seq)
    }

    /// Records an in-process verdict.
    pub fn inproc(&mut self, intent: &Submitted<'_>, verdict: &Verdict, eval_ns: u64) -> Result<u64> {
        let seq = self.shared.inproc(intent, verdict, eval_ns, None);
        self.track(seq)
    }

    /// Records a fail-closed DENY: the judge failed before deciding.
    pub fn judge_failed(&mut self, intent: &Submitted<'_>, judge: u8, reason: &str) -> Result<u64> {
        let judged = if judge == judge::VM {
            Judged::Guard { boot_seq: self.boot_seq }
        } else {
            Judged::InProcess { eval_ns: 0 }
        };
        let seq = self.shared.judge_failed(intent, judged, reason, None);
        self.track(seq)
    }

    /// Records a guard checkpoint (verified by the caller).
    pub fn guard_checkpoint(&mut self, cp: &GuardCheckpoint, last: bool) -> Result<u64> {
        let boot_seq = self.boot_seq.ok_or(RecordError::CheckpointBeforeBoot)?;
        let seq = self.shared.guard_checkpoint(boot_seq, cp, last);
        self.track(seq)
    }

    /// Records what judging a batch cost.
    pub fn cost(&mut self, record: &CostBody) -> Result<u64> {
        let seq = self.shared.cost(record);
        self.track(seq)
    }

    /// The seq of the guard boot later verdicts refer to.
    pub fn boot_seq(&self) -> Option<u64> {
        self.boot_seq
    }

    /// Waits until everything recorded so far is on disk.
    pub fn acknowledge(&self) -> Result<()> {
        self.shared.wait(self.last)
    }

    /// Closes the journal with a signed closing checkpoint. Every
    /// [`SharedRecorder`] handle must be gone by then.
    pub fn close(self) -> Result<()> {
        self.shared.sign_pending_costs()?;
        let path = self.shared.path.clone();
        let journal = Arc::try_unwrap(self.shared.journal).map_err(|_| RecordError::StillShared)?;
        journal.close().map_err(journal_failed(format!("closing the journal {}", path.display())))
    }
}

/// Judges `intents` in the guard VM as one batch and records every verdict
/// (or, if the guard fails, a fail-closed DENY for each), plus any guard
/// checkpoint that came back. The caller acknowledges before showing them.
pub fn judge_in_vm(vm: &mut VmJudge, recorder: &mut Recorder, intents: &[Submitted<'_>]) -> Result<Vec<VerdictReport>> {
    let refs: Vec<&[u8]> = intents.iter().map(|i| i.cbor).collect();
    let mut reports = Vec::with_capacity(intents.len());
    match vm.judge_records(&refs) {
        Ok(batch) => {
            let boot_seq = recorder.boot_seq.ok_or(RecordError::VerdictBeforeBoot)?;
            let mut verdicts = Vec::with_capacity(intents.len());
            for ((verdict, record), intent) in batch.verdicts.into_iter().zip(intents) {
                let mut report = vm.report(&verdict);
                intent.annotate(&mut report);
                verdicts.push((intent, record, None));
                reports.push(report);
            }
            let (_, last) = recorder.shared.guard_batch(vm, boot_seq, verdicts, batch.cost)?;
            recorder.last = recorder.last.max(last);
            if let Some(cp) = batch.checkpoint {
                recorder.guard_checkpoint(&cp, false)?;
            }
        }
        Err(e) => reports = deny_all(recorder, intents, judge::VM, &e.chain())?,
    }
    Ok(reports)
}

/// Records and reports a fail-closed DENY for every intent: `judge` failed
/// before deciding them, for `reason`.
pub fn deny_all(
    recorder: &mut Recorder,
    intents: &[Submitted<'_>],
    judge: u8,
    reason: &str,
) -> Result<Vec<VerdictReport>> {
    let mut reports = Vec::with_capacity(intents.len());
    for intent in intents {
        recorder.judge_failed(intent, judge, reason)?;
        let mut report = VerdictReport::judge_failed(reason.to_string());
        report.id = intent.id;
        reports.push(report);
    }
    Ok(reports)
}

/// An intent converted for judging: its CBOR (empty when it cannot be
/// judged), its id, and why it is malformed when it is.
pub type Converted = (Vec<u8>, u64, Option<String>);

/// Converts submitted intent JSON texts for judging: the CBOR to judge (and
/// journal), the id, and — where the text cannot be judged as given — empty
/// bytes (judged, and recorded, as a malformed intent: DENY) with the
/// reason. The conversion is the one of [`vigil_guard::intent::json`]:
/// strict parsing (a repeated key is refused, never resolved), no `intent`
/// unwrapping, and an intent over [`vigil_guard::intent::MAX_INTENT_BYTES`]
/// refused here, before batching, so that it cannot take other intents
/// down with it.
pub fn encode_json(texts: &[&str]) -> Vec<Converted> {
    texts
        .iter()
        .map(|text| match json::parse_strict(text) {
            Ok(value) => {
                let id = value.get("id").and_then(|id| id.as_u64()).unwrap_or(0);
                match json::to_cbor(&value) {
                    Ok(cbor) => (cbor, id, None),
                    Err(e) => (Vec::new(), id, Some(e.to_string())),
                }
            }
            // Ambiguous: the id shown is the lenient parser's guess, for the
            // caller to find the line; nothing of it is judged.
            Err(e) => (Vec::new(), lenient_id(text), Some(e.to_string())),
        })
        .collect()
}

fn lenient_id(text: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(text).ok().and_then(|v| v.get("id")?.as_u64()).unwrap_or(0)
}

/// Borrows converted intents as submissions.
pub fn submissions(encoded: &[Converted]) -> Vec<Submitted<'_>> {
    encoded.iter().map(|(cbor, id, detail)| Submitted { cbor, id: *id, detail: detail.as_deref() }).collect()
}

/// The most intent bytes one batch request may carry: what the mailbox
/// takes, less the channel record's and the batch header's overhead (each
/// intent adds its 4-byte length).
const BATCH_BYTES: usize =
    vigil_abi::mailbox::REQUEST_CAPACITY - vigil_attest::channel::OVERHEAD - vigil_abi::batch::REQUEST_HEADER_LEN;

// Any one intent fits a batch; the reply to a full batch (a verdict record
// per intent, at the largest rule count a bundle may have, and a
// checkpoint) fits one mailbox response.
const _: () = {
    assert!(4 + vigil_guard::intent::MAX_INTENT_BYTES <= BATCH_BYTES);
    assert!(
        vigil_abi::batch::REPLY_HEADER_LEN
            + BATCH * verdict_codec::record_len(vigil_guard::bundle::RULE_WORDS)
            + 4
            + checkpoint::LEN
            + vigil_attest::channel::OVERHEAD
            <= vigil_abi::mailbox::RESPONSE_CAPACITY
    );
};

/// Splits submissions into batches of at most [`BATCH`] intents and as
/// many bytes as one mailbox request carries. Every single intent fits
/// (intents are at most `MAX_INTENT_BYTES`, refused before this otherwise).
pub fn size_batches<'a, 'b>(all: &'a [Submitted<'b>]) -> Vec<&'a [Submitted<'b>]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, intent) in all.iter().enumerate() {
        let cost = 4 + intent.cbor.len();
        if i > start && (i - start == BATCH || bytes + cost > BATCH_BYTES) {
            out.push(&all[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += cost;
    }
    if start < all.len() {
        out.push(&all[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_split_so_that_every_request_fits_the_mailbox() {
        // Intents of every size up to the limit, in an order where filling
        // greedily by count alone would overflow.
        let sizes = [vigil_guard::intent::MAX_INTENT_BYTES, 0, 1, 9_000, vigil_guard::intent::MAX_INTENT_BYTES - 1];
        let intents: Vec<Vec<u8>> = (0..1_000).map(|i| vec![0xA5; sizes[i % sizes.len()]]).collect();
        let all: Vec<Submitted<'_>> =
            intents.iter().enumerate().map(|(i, cbor)| Submitted { cbor, id: i as u64, detail: None }).collect();
        let batches = size_batches(&all);
        assert!(batches.len() > all.len() / BATCH, "split by size, not only by count");
        let mut next = 0;
        for batch in &batches {
            assert!(!batch.is_empty() && batch.len() <= BATCH);
            let request = vigil_abi::batch::request_len(batch.iter().map(|s| s.cbor)) + vigil_attest::channel::OVERHEAD;
            assert!(request <= vigil_abi::mailbox::REQUEST_CAPACITY, "{request}");
            for s in batch.iter() {
                assert_eq!(s.id, next, "in order, each once");
                next += 1;
            }
        }
        assert_eq!(next, all.len() as u64);
        // Small intents fill a batch by count.
        let small: Vec<Submitted<'_>> = (0..600).map(|i| Submitted { cbor: b"x", id: i, detail: None }).collect();
        let lens: Vec<usize> = size_batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(lens, [BATCH, BATCH, 600 - 2 * BATCH]);
        assert!(size_batches(&[]).is_empty());
    }
}
