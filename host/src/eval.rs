//! `vigil eval`: judges JSON intents with the guard VM or in process,
//! records every verdict in the journal, and prints each verdict only once
//! its journal frame is on disk.

use std::time::Instant;

use anyhow::Result;

use crate::judge::{InprocJudge, VerdictReport};
use crate::keys;
use crate::recording::{CHUNK, Recorder, deny_all, encode_json, judge_in_vm, size_batches, submissions};
use crate::vm_judge::{BATCH, GuardSetup, TrustAnchors, VmJudge};
use crate::vmm::VmConfig;

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
    mut emit: impl FnMut(&[VerdictReport]) -> Result<()>,
) -> Result<Option<String>> {
    let encoded = encode_json(intents);
    let all = submissions(&encoded);
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
                emit(&reports)?;
            }
            return Ok(Some(reason));
        }
    };
    recorder.boot(&judge)?;
    for chunk in size_batches(&all) {
        let reports = judge_in_vm(&mut judge, recorder, chunk)?;
        recorder.acknowledge()?;
        emit(&reports)?;
    }
    if let Some(reason) = judge.failure() {
        return Ok(Some(reason.to_string()));
    }
    let last = judge.shutdown()?;
    recorder.guard_checkpoint(&last, true)?;
    recorder.acknowledge()?;
    Ok(None)
}
