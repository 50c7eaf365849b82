//! `vigil eval`: judges JSON intents with the guard VM or in process,
//! records every verdict in the journal, and prints each verdict only once
//! its journal frame is on disk.

use std::time::Instant;

use crate::judge::{InprocJudge, InvalidBundle, VerdictReport};
use crate::keys;
use crate::keys::KeyError;
use crate::recording::{CHUNK, RecordError, Recorder, deny_all, encode_json, judge_in_vm, size_batches, submissions};
use crate::vm_judge::{BATCH, GuardSetup, JudgeError, TrustAnchors, VmJudge};
use crate::vmm::VmConfig;

/// What the caller's `emit` returned when it could not pass verdicts on
/// (a closed pipe, a full disk): judging stops there.
pub type EmitError = Box<dyn std::error::Error + Send + Sync>;

/// Why judging stopped. Every verdict shown before it was recorded first.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The policy bundle does not load.
    #[error(transparent)]
    Bundle(#[from] InvalidBundle),
    /// The platform key could not be read.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// A verdict could not be recorded.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The guard's final checkpoint could not be had or verified.
    #[error(transparent)]
    Judge(#[from] JudgeError),
    /// The caller could not pass verdicts on.
    #[error("passing verdicts on")]
    Emit(#[source] EmitError),
}

/// Results of this module.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;

/// `vigil eval --judge inproc`: judges in this process, [`CHUNK`] intents
/// at a time; `emit` gets each chunk after its acknowledgement.
pub fn judge_inproc(
    bundle: &[u8],
    intents: &[&str],
    recorder: &mut Recorder,
    mut emit: impl FnMut(&[VerdictReport]) -> Result<(), EmitError>,
) -> Result<()> {
    let mut arena = crate::judge::dense_arena();
    let judge = InprocJudge::with_dense_copies(bundle, &mut arena)?;
    let encoded = encode_json(intents);
    let counters = crate::vmm::counters::ThreadCounters::for_current_thread();
    for chunk in submissions(&encoded).chunks(CHUNK) {
        let mut reports = Vec::with_capacity(chunk.len());
        let mut seqs = Vec::with_capacity(chunk.len());
        let meter = crate::cost::Meter::start(&counters);
        for intent in chunk {
            let started = Instant::now();
            let verdict = judge.evaluate(intent.cbor);
            let ns = started.elapsed().as_nanos() as u64;
            seqs.push(recorder.inproc(intent, &verdict, ns)?);
            let mut report = judge.report(&verdict);
            report.eval_ns = Some(ns);
            intent.annotate(&mut report);
            reports.push(report);
        }
        // The chunk's cost: judging and recording it in this thread.
        let tier = recorder.shared().inproc_tier();
        recorder.cost(&meter.finish().record(seqs, tier, crate::journal::body::now_ms()))?;
        recorder.acknowledge()?;
        emit(&reports).map_err(EvalError::Emit)?;
    }
    Ok(())
}

/// `vigil eval --judge vm`: judges JSON intents inside an attested guard in
/// batches of [`BATCH`], recording the boot, every verdict and every guard
/// checkpoint; `emit` gets each batch's verdicts only once they are on
/// disk. If the guard cannot start or fails, the intents it did not judge
/// are recorded and reported as DENY; returns why it failed.
pub fn judge_vm(
    guard: &GuardSetup<'_>,
    key_dir: &std::path::Path,
    policy: &crate::policy::LoadedPolicy,
    intents: &[&str],
    recorder: &mut crate::recording::Recorder,
    emit: impl FnMut(&[VerdictReport]) -> Result<(), EmitError>,
) -> Result<Option<String>> {
    judge_vm_encoded(guard, key_dir, policy, &encode_json(intents), recorder, emit)
}

/// [`judge_vm`] over intents already converted ([`encode_json`]'s form:
/// CBOR, id, and why it is malformed when it is).
pub fn judge_vm_encoded(
    guard: &GuardSetup<'_>,
    key_dir: &std::path::Path,
    policy: &crate::policy::LoadedPolicy,
    encoded: &[crate::recording::Converted],
    recorder: &mut crate::recording::Recorder,
    mut emit: impl FnMut(&[VerdictReport]) -> Result<(), EmitError>,
) -> Result<Option<String>> {
    let all = submissions(encoded);
    let (secret, public) = keys::platform_pair(key_dir)?;
    let trust =
        TrustAnchors { platform: public, reference: guard.reference.clone(), allow_test_image: guard.allow_test_image };
    let template = guard.template;
    let config =
        VmConfig { platform: Some(crate::vmm::PlatformSigner(std::sync::Arc::new(secret))), ..VmConfig::default() };
    let mut judge = match VmJudge::start(template, policy.image(), &trust, config) {
        Ok(judge) => judge,
        Err(e) => {
            let reason = format!("the guard did not start: {}", e.chain());
            for chunk in all.chunks(BATCH) {
                let reports = deny_all(recorder, chunk, crate::journal::body::judge::VM, &reason)?;
                recorder.acknowledge()?;
                emit(&reports).map_err(EvalError::Emit)?;
            }
            return Ok(Some(reason));
        }
    };
    recorder.boot(&judge)?;
    for chunk in size_batches(&all) {
        let reports = judge_in_vm(&mut judge, recorder, chunk)?;
        recorder.acknowledge()?;
        emit(&reports).map_err(EvalError::Emit)?;
    }
    if let Some(reason) = judge.failure() {
        return Ok(Some(reason.to_string()));
    }
    let last = judge.shutdown()?;
    recorder.guard_checkpoint(&last, true)?;
    recorder.acknowledge()?;
    Ok(None)
}
