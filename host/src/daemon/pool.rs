//! The pool of warm, attested guards. Each worker thread owns one guard
//! VM: it takes every job waiting (up to a batch), judges them in one
//! round trip, records each verdict (with its guard's boot frame and the
//! submitting peer) and replies only once the journal has them on disk. A
//! guard that fails (fault, hang past its deadline, bad checkpoint) is
//! dropped — the intents it held are recorded and answered as DENY
//! `judge_failed` — and a new one is booted and attested for the next
//! batch.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;

use crate::journal::body::Peer;
use crate::judge::VerdictReport;
use crate::recording::{Judged, SharedRecorder, Submitted, size_batches};
use crate::vm_judge::{BATCH, TrustAnchors, VmJudge};
use crate::vmm::{BootTemplate, PolicyImage, VmConfig};

use super::metrics::Metrics;
use super::queue::{Answered, Evidence, Job, Queue, Taken, Work};

/// What every guard of the pool boots with.
#[derive(Clone)]
pub struct GuardRecipe {
    /// The guard image, prepared.
    pub template: BootTemplate,
    /// The policy every guard loads.
    pub policy: PolicyImage,
    /// What every guard's evidence must satisfy.
    pub trust: TrustAnchors,
    /// VM settings (the platform signer included).
    pub config: VmConfig,
    /// How often a running guard is attested again (fresh evidence for a
    /// random nonce, verified; a guard that fails is replaced); `None`:
    /// never.
    pub reattest: Option<std::time::Duration>,
}

/// A running guard and the journal frame of its boot.
struct Guard {
    vm: VmJudge,
    boot_seq: u64,
    /// When it was last attested.
    attested: std::time::Instant,
}

/// Judged and recorded, waiting to be durable before anyone sees it.
struct Recorded {
    jobs: Vec<Job>,
    answered: Vec<Answered>,
    /// The last frame of these verdicts.
    last: u64,
}

/// The worker threads, and the thread that answers once verdicts are
/// durable (so that a worker judges its next batch while the journal
/// commits the last one: commits group across workers and batches).
pub struct Pool {
    queue: Arc<Queue>,
    workers: Vec<JoinHandle<()>>,
    acknowledger: JoinHandle<()>,
}

/// Answers each recorded batch once its last frame is on disk, in order.
/// When no batch comes for a second, signs the cost records waiting for a
/// statement (docs/cost.md), so that an idle daemon's journal verifies.
fn acknowledge(recorder: SharedRecorder, recorded: std::sync::mpsc::Receiver<Recorded>) {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        let Recorded { jobs, answered, last } = match recorded.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = recorder.sign_pending_costs() {
                    tracing::error!("signing cost records: {e}");
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        match recorder.wait(last) {
            Ok(()) => {
                let mut answered = answered.into_iter();
                for job in jobs {
                    let mine: Vec<Answered> = answered.by_ref().take(job.intents.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                // Not durable: nothing may be shown.
                let e = format!("the journal did not make the verdicts durable: {e}");
                tracing::error!("{e}");
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

impl Pool {
    /// Starts `size` workers; each boots its guard before taking work.
    pub fn start(
        size: usize,
        recipe: GuardRecipe,
        recorder: SharedRecorder,
        queue: Arc<Queue>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let (durable, recorded) = std::sync::mpsc::channel();
        let acknowledger = {
            let recorder = recorder.clone();
            std::thread::Builder::new().name("vigil-ack".into()).spawn(move || acknowledge(recorder, recorded))?
        };
        let mut workers = Vec::with_capacity(size);
        for i in 0..size {
            let worker = Worker {
                recipe: recipe.clone(),
                recorder: recorder.clone(),
                queue: queue.clone(),
                metrics: metrics.clone(),
                durable: durable.clone(),
                guard: None,
            };
            let spawned = std::thread::Builder::new().name(format!("vigil-guard-{i}")).spawn(move || worker.run());
            match spawned {
                Ok(worker) => workers.push(worker),
                Err(e) => {
                    // Stop what started (their guards shut down cleanly).
                    drop(durable);
                    Pool { queue, workers, acknowledger }.shutdown();
                    return Err(e);
                }
            }
        }
        Ok(Pool { queue, workers, acknowledger })
    }

    /// Closes the queue, lets the workers judge what it still holds, shut
    /// their guards down and record their final checkpoints.
    pub fn shutdown(self) {
        self.queue.close();
        for worker in self.workers {
            let _ = worker.join();
        }
        // Every worker's sender is gone: the acknowledger answers what is
        // left and stops.
        let _ = self.acknowledger.join();
    }
}

struct Worker {
    recipe: GuardRecipe,
    recorder: SharedRecorder,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    durable: std::sync::mpsc::Sender<Recorded>,
    guard: Option<Guard>,
}

impl Worker {
    fn run(mut self) {
        let _ = self.ensure_guard();
        loop {
            // Idle: wake up when the guard is due for attesting again.
            let wait = match (&self.guard, self.recipe.reattest) {
                (Some(guard), Some(every)) => every.saturating_sub(guard.attested.elapsed()),
                _ => std::time::Duration::from_secs(3600),
            };
            let work = match self.queue.take_within(BATCH, wait) {
                Taken::Work(work) => work,
                Taken::Closed => break,
                Taken::Idle => {
                    self.reattest_if_due();
                    continue;
                }
            };
            // A bug that panics here must not take the worker away: the
            // requests it held are answered with an error (their reply
            // channels drop, nothing unrecorded is shown), its guard is
            // dropped, and the worker goes on with a new one.
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.work(work)));
            if done.is_err() {
                tracing::error!("a guard worker panicked; its requests failed and its guard is replaced");
                self.metrics.guard_failures.fetch_add(1, Relaxed);
                if self.guard.take().is_some() {
                    self.metrics.guards_ready.fetch_sub(1, Relaxed);
                }
            }
        }
        if let Some(guard) = self.guard.take() {
            self.metrics.guards_ready.fetch_sub(1, Relaxed);
            let recorded = match guard.vm.shutdown() {
                Ok(cp) => self
                    .recorder
                    .guard_checkpoint(guard.boot_seq, &cp, true)
                    .and_then(|seq| self.recorder.wait(seq))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.chain()),
            };
            if let Err(e) = recorded {
                tracing::error!("guard of boot frame {}: no final checkpoint: {e}", guard.boot_seq);
            }
        }
    }

    /// Does what one take from the queue got.
    fn work(&mut self, work: Vec<Work>) {
        self.reattest_if_due();
        let mut jobs = Vec::with_capacity(work.len());
        for item in work {
            match item {
                Work::Judge(job) => jobs.push(job),
                Work::Evidence { nonce, reply } => {
                    let _ = reply.send(self.evidence(&nonce));
                }
            }
        }
        if !jobs.is_empty() {
            self.judge_jobs(jobs);
        }
    }

    /// Boots, attests and records a guard if none runs; why not, if that
    /// fails.
    fn ensure_guard(&mut self) -> Result<(), String> {
        if self.guard.is_some() {
            return Ok(());
        }
        let r = &self.recipe;
        match VmJudge::start(&r.template, r.policy.clone(), &r.trust, r.config.clone()) {
            Ok(vm) => {
                let boot_seq = self.recorder.boot(&vm).map_err(|e| format!("recording the guard's boot: {e}"))?;
                self.metrics.guard_starts.fetch_add(1, Relaxed);
                self.metrics.guards_ready.fetch_add(1, Relaxed);
                tracing::info!("guard of boot frame {boot_seq} attested and ready");
                self.guard = Some(Guard { vm, boot_seq, attested: std::time::Instant::now() });
                Ok(())
            }
            Err(e) => {
                self.metrics.guard_failures.fetch_add(1, Relaxed);
                let reason = format!("no guard could be started: {}", e.chain());
                tracing::error!("{reason}");
                Err(reason)
            }
        }
    }

    /// Attests the guard again when it is due: fresh evidence for a random
    /// nonce, verified against the trust anchors and the guard's own boot
    /// evidence. A guard that fails is dropped (the next batch boots and
    /// attests a new one).
    fn reattest_if_due(&mut self) {
        let Some(every) = self.recipe.reattest else { return };
        let Some(guard) = &mut self.guard else { return };
        if guard.attested.elapsed() < every {
            return;
        }
        let outcome = crate::random::bytes::<32>()
            .map_err(|e| e.to_string())
            .and_then(|nonce| guard.vm.fresh_evidence(&nonce, &self.recipe.trust).map_err(|e| e.chain()));
        match outcome {
            Ok(_) => {
                guard.attested = std::time::Instant::now();
                self.metrics.reattestations.fetch_add(1, Relaxed);
                tracing::info!("guard of boot frame {} attested again", guard.boot_seq);
            }
            Err(e) => {
                tracing::error!("guard of boot frame {} failed its attestation: {e}; it is replaced", guard.boot_seq);
                self.guard = None;
                self.metrics.guards_ready.fetch_sub(1, Relaxed);
                self.metrics.guard_failures.fetch_add(1, Relaxed);
            }
        }
    }

    /// Fresh evidence from this worker's guard (booted first if needed).
    fn evidence(&mut self, nonce: &[u8]) -> Result<Evidence, String> {
        self.ensure_guard()?;
        let guard = self.guard.as_mut().ok_or("no guard")?;
        match guard.vm.fresh_evidence(nonce, &self.recipe.trust) {
            Ok(evidence) => Ok(Evidence { evidence, boot_seq: guard.boot_seq }),
            Err(e) => {
                if guard.vm.failure().is_some() {
                    self.guard = None;
                    self.metrics.guards_ready.fetch_sub(1, Relaxed);
                    self.metrics.guard_failures.fetch_add(1, Relaxed);
                }
                Err(e.chain())
            }
        }
    }

    fn judge_jobs(&mut self, jobs: Vec<Job>) {
        #[cfg(feature = "test-hooks")]
        for kind in jobs.iter().filter_map(|j| j.fault) {
            if let Some(guard) = &mut self.guard {
                let _ = guard.vm.inject_fault(kind);
            }
        }
        let mut peers: Vec<Option<Peer>> = Vec::new();
        let mut intents: Vec<Submitted<'_>> = Vec::new();
        for job in &jobs {
            for e in &job.intents {
                intents.push(Submitted { cbor: &e.cbor, id: e.id, detail: e.detail.as_deref() });
                peers.push(job.peer);
            }
        }
        let outcome = self.judge_and_record(&intents, &peers);
        drop(intents);
        match outcome {
            Ok((answered, last)) => {
                if let Err(std::sync::mpsc::SendError(r)) = self.durable.send(Recorded { jobs, answered, last }) {
                    for job in r.jobs {
                        let _ = job.reply.send(Err("the daemon is stopping".into()));
                    }
                }
            }
            Err(e) => {
                // Not durable: nothing may be shown.
                tracing::error!("{e}");
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Judges `intents` batch by batch and records every verdict; returns
    /// the reports and the last frame recorded (not yet waited for).
    fn judge_and_record(
        &mut self,
        intents: &[Submitted<'_>],
        peers: &[Option<Peer>],
    ) -> Result<(Vec<Answered>, u64), String> {
        let mut reports = Vec::with_capacity(intents.len());
        let mut last = 0;
        let mut offset = 0;
        for batch in size_batches(intents) {
            let batch_peers = &peers[offset..offset + batch.len()];
            offset += batch.len();
            let started = self.ensure_guard();
            let judged = match (&mut self.guard, started) {
                (Some(guard), _) => {
                    self.metrics.batches.fetch_add(1, Relaxed);
                    let refs: Vec<&[u8]> = batch.iter().map(|i| i.cbor).collect();
                    guard
                        .vm
                        .judge_records(&refs)
                        .map_err(|e| (Some(guard.boot_seq), format!("the guard failed: {}", e.chain())))
                }
                (None, Err(reason)) => Err((None, reason)),
                (None, Ok(())) => Err((None, "no guard".to_string())),
            };
            let record = |r: crate::recording::Result<u64>| r.map_err(|e| format!("recording a verdict: {e}"));
            match judged {
                Ok(judged) => {
                    let guard = self.guard.as_ref().expect("judged by a running guard");
                    let mut verdicts = Vec::with_capacity(batch.len());
                    let mut answered = Vec::with_capacity(batch.len());
                    for (((verdict, bytes), intent), peer) in judged.verdicts.into_iter().zip(batch).zip(batch_peers) {
                        let mut report = guard.vm.report(&verdict);
                        intent.annotate(&mut report);
                        let review = (report.decision == "ESCALATE").then(|| super::queue::review(intent.cbor));
                        answered.push((report, review));
                        verdicts.push((intent, bytes, *peer));
                    }
                    let (seqs, batch_last) = self
                        .recorder
                        .guard_batch(&guard.vm, guard.boot_seq, verdicts, judged.cost)
                        .map_err(|e| format!("recording a verdict: {e}"))?;
                    last = batch_last;
                    for ((report, review), seq) in answered.into_iter().zip(seqs) {
                        reports.push(Answered { report, seq, review });
                    }
                    if let Some(cp) = judged.checkpoint {
                        last = record(self.recorder.guard_checkpoint(guard.boot_seq, &cp, false))?;
                    }
                }
                Err((boot_seq, reason)) => {
                    if self.guard.take().is_some() {
                        self.metrics.guards_ready.fetch_sub(1, Relaxed);
                        self.metrics.guard_failures.fetch_add(1, Relaxed);
                        tracing::error!("{reason}; the guard is replaced");
                    }
                    for (intent, peer) in batch.iter().zip(batch_peers) {
                        last = record(self.recorder.judge_failed(intent, Judged::Guard { boot_seq }, &reason, *peer))?;
                        let mut report = VerdictReport::judge_failed(reason.clone());
                        report.id = intent.id;
                        reports.push(Answered { report, seq: last, review: None });
                    }
                }
            }
        }
        Ok((reports, last))
    }
}
