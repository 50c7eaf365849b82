//! Forensic replay: decrypts every frame, verifies the chain, every
//! platform checkpoint, every boot's evidence and every guard checkpoint,
//! then re-evaluates every recorded intent with `vigil-guard` under the
//! recorded bundle and compares the verdict records byte for byte
//! (docs/journal.md, "Replay").

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sha2::{Digest, Sha384};
use vigil_attest::checkpoint::{GuardCheckpoint, VerdictChain};
use vigil_attest::dual::DualPublicKey;
use vigil_attest::evidence::{self, Expectations};
use vigil_attest::{MEASUREMENT_LEN, Measurement};
use vigil_guard::bundle::Bundle;
use vigil_guard::{dense, eval, intent, verdict_codec};

use super::JournalError;
use super::body::{self, ApprovalBody, BootBody, GuardCheckpointBody, PolicyBody, VerdictBody};
use super::checkpoint::Statement;
use super::format::Kind;
use super::scan::{self, ScanOptions, ScanSummary};
use super::seal::MasterKey;
use vigil_attest::reference::Reference;

/// Verdicts handed to a re-evaluation worker at a time.
const CHUNK: usize = 4096;

/// Recorded bundles by SHA-384.
type Policies = HashMap<[u8; MEASUREMENT_LEN], Arc<Vec<u8>>>;

/// Bundles per replay worker whose tables get dense copies
/// (`vigil_guard::dense`, 1 MiB each); a journal's further bundles are
/// judged from their tables as stored (the same verdicts).
const DENSE_BUNDLES: usize = 8;

/// A chunk of verdicts to re-evaluate, with the bundles recorded so far.
type Work = (Vec<Job>, Arc<Policies>);

/// A recorded verdict the re-evaluation disagrees with.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Mismatch {
    /// The verdict frame.
    pub seq: u64,
    /// The intent id.
    pub intent_id: u64,
    /// The recorded decision.
    pub recorded: String,
    /// What `vigil-guard` decides now under the recorded bundle.
    pub replayed: String,
}

/// A failed check other than a verdict mismatch.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Failure {
    /// The frame.
    pub seq: u64,
    /// What failed.
    pub detail: String,
}

/// What replay found.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    /// The chain/checkpoint scan.
    pub scan: ScanSummary,
    /// What the frames held and what re-evaluation found.
    #[serde(flatten)]
    pub counts: ReplayCounts,
    /// Policy bundles recorded.
    pub policies: u64,
    /// Whether everything verified and every verdict replayed equal.
    pub ok: bool,
}

/// Counts and findings of a replay.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReplayCounts {
    /// Verdict frames.
    pub verdicts: u64,
    /// Recorded verdicts by decision.
    pub by_decision: BTreeMap<String, u64>,
    /// Distinct agents, with their verdict counts.
    pub agents: BTreeMap<String, u64>,
    /// Earliest verdict time (Unix ms).
    pub first_ms: Option<u64>,
    /// Latest verdict time (Unix ms).
    pub last_ms: Option<u64>,
    /// Verdicts re-evaluated and equal to the record.
    pub replayed_equal: u64,
    /// Fail-closed DENY verdicts recorded when a judge failed (nothing to
    /// re-evaluate).
    pub judge_failures: u64,
    /// Judge failures by judge, boot and reason (one entry per distinct
    /// triple, with its first seq and count).
    pub judge_failure_causes: Vec<JudgeFailure>,
    /// Guard-VM verdicts no guard checkpoint of their boot covers, where
    /// that is explained: the writer crashed, or the guard failed, before
    /// the next checkpoint. (Unexplained ones are failures.)
    pub vm_verdicts_uncovered: u64,
    /// Boot frames whose evidence verified.
    pub boots_verified: u64,
    /// Approval frames by outcome (approved, denied, timed_out, stopped).
    pub approvals: BTreeMap<String, u64>,
    /// Guard checkpoints that verified against the recomputed verdict chain.
    pub guard_checkpoints_verified: u64,
    /// Re-evaluations that disagree with the record.
    pub mismatches: Vec<Mismatch>,
    /// Other failures (evidence, guard checkpoints, bodies).
    pub failures: Vec<Failure>,
}

impl ReplayCounts {
    /// Adds what a re-evaluation worker found.
    fn absorb(&mut self, worker: ReplayCounts) {
        for (agent, n) in worker.agents {
            *self.agents.entry(agent).or_default() += n;
        }
        self.replayed_equal += worker.replayed_equal;
        self.mismatches.extend(worker.mismatches);
        self.failures.extend(worker.failures);
    }
}

/// Why a judge failed, as its fail-closed verdict frames record it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct JudgeFailure {
    /// The first verdict frame with this cause.
    pub first_seq: u64,
    /// Verdict frames with this cause.
    pub count: u64,
    /// `inproc` or `vm`.
    pub judge: String,
    /// The boot frame of the guard that failed (absent: it never booted).
    pub boot_seq: Option<u64>,
    /// The recorded reason.
    pub reason: String,
}

/// Adds one to `key`'s count (allocating its name only the first time).
fn count(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_string(), 1);
        }
    }
}

/// The agent an intent names, as the replay report counts it.
fn agent_of<'a>(intent: &Result<intent::Intent<'a>, intent::IntentError>) -> &'a str {
    intent.as_ref().map_or("(malformed)", |i| i.agent)
}

/// Counts a verdict's agent (for verdicts not re-evaluated: a worker
/// counts the agents of those it re-evaluates, decoding each intent once).
fn count_agent(agents: &mut BTreeMap<String, u64>, intent_bytes: &[u8]) {
    count(agents, agent_of(&intent::decode(intent_bytes)));
}

/// A verdict frame to re-evaluate (its agent is counted by the worker).
struct Job {
    seq: u64,
    policy: [u8; MEASUREMENT_LEN],
    intent: Vec<u8>,
    verdict: Vec<u8>,
    intent_id: u64,
}

struct Boot {
    guard_key: DualPublicKey,
    chain: VerdictChain,
    /// The epoch whose writer recorded the boot.
    epoch: u32,
    /// The policy the guard attested.
    policy: [u8; MEASUREMENT_LEN],
    /// Verdicts the newest verified guard checkpoint covers.
    covered: u64,
    /// The guard failed (a judge-failure frame names this boot).
    failed: bool,
}

struct Replayer<'a> {
    trust: &'a DualPublicKey,
    reference: &'a Reference,
    allow_test_image: bool,
    policies: Arc<Policies>,
    boots: HashMap<u64, Boot>,
    /// Boot ids seen, with the boot frame that carried each.
    boot_ids: HashMap<[u8; 16], u64>,
    /// The epoch of the frames being read.
    epoch: u32,
    /// Whether the last frame read was a closing checkpoint.
    closed: bool,
    jobs: Vec<Job>,
    report: ReplayCounts,
    work: SyncSender<Work>,
    /// ESCALATE verdicts not settled yet: verdict seq → intent id.
    escalated: HashMap<u64, u64>,
}

fn decision_name(code: u8) -> String {
    match code {
        0 => "ALLOW".into(),
        1 => "ESCALATE".into(),
        2 => "DENY".into(),
        other => format!("code {other}"),
    }
}

impl Replayer<'_> {
    fn fail(&mut self, seq: u64, detail: impl Into<String>) {
        self.report.failures.push(Failure { seq, detail: detail.into() });
    }

    fn frame(&mut self, seq: u64, kind: Kind, epoch: u32, public: &[u8], plain: &[u8]) -> Result<(), JournalError> {
        if kind == Kind::Epoch {
            self.end_epoch();
        }
        self.epoch = epoch;
        self.closed = false;
        match kind {
            Kind::Policy => {
                let p: PolicyBody = body::decode(seq, plain)?;
                let digest: [u8; MEASUREMENT_LEN] = Sha384::digest(&p.bundle).into();
                if p.sha384 != digest || public != digest {
                    self.fail(seq, "policy frame: the bundle's SHA-384 is not the recorded one");
                } else if let Err(e) = Bundle::load(&p.bundle) {
                    self.fail(seq, format!("policy frame: the bundle does not load: {}", e.as_str()));
                } else {
                    Arc::make_mut(&mut self.policies).insert(digest, Arc::new(p.bundle));
                }
            }
            Kind::Boot => {
                let b: BootBody = body::decode(seq, plain)?;
                match self.verify_boot(&b) {
                    Ok((boot, boot_id)) => {
                        if let Some(first) = self.boot_ids.insert(boot_id, seq) {
                            self.fail(
                                seq,
                                format!(
                                    "boot id {} was already used by boot frame {first}: evidence replayed from another boot",
                                    hex::encode(boot_id)
                                ),
                            );
                        } else {
                            self.boots.insert(seq, boot);
                            self.report.boots_verified += 1;
                        }
                    }
                    Err(e) => self.fail(seq, format!("boot evidence: {e}")),
                }
            }
            Kind::Verdict => {
                let v: VerdictBody = body::decode(seq, plain)?;
                self.verdict(seq, v);
                if self.jobs.len() >= CHUNK {
                    self.flush();
                }
            }
            Kind::GuardCheckpoint => {
                let g: GuardCheckpointBody = body::decode(seq, plain)?;
                let epoch = self.epoch;
                let result = match self.boots.get_mut(&g.boot_seq) {
                    None => Err(format!("refers to boot frame {} which did not verify", g.boot_seq)),
                    Some(boot) if boot.epoch != epoch => {
                        Err(format!("refers to boot frame {} of an earlier writer (epoch {})", g.boot_seq, boot.epoch))
                    }
                    Some(boot) => GuardCheckpoint::decode(&g.checkpoint)
                        .and_then(|cp| cp.verify_against(&boot.guard_key, &boot.chain))
                        .map(|()| boot.covered = boot.chain.count())
                        .map_err(|e| e.as_str().to_string()),
                };
                match result {
                    Ok(()) => self.report.guard_checkpoints_verified += 1,
                    Err(e) => self.fail(seq, format!("guard checkpoint: {e}")),
                }
            }
            Kind::Epoch => {
                body::decode::<body::EpochBody>(seq, plain)?;
            }
            Kind::Checkpoint => {
                // The scan verified the statement; only its flag matters here.
                self.closed = Statement::decode(public).is_ok_and(|s| s.closing);
            }
            // Priced and verified by `vigil cost verify` (docs/cost.md).
            Kind::Cost | Kind::CostStatement => {}
            Kind::Approval => {
                let a: ApprovalBody = body::decode(seq, plain)?;
                self.approval(seq, a);
            }
        }
        Ok(())
    }

    /// An approval settles one ESCALATE verdict of this journal, once; a
    /// person's decision names who made it.
    fn approval(&mut self, seq: u64, a: ApprovalBody) {
        let Some(outcome) = body::outcome::name(a.outcome) else {
            self.fail(seq, format!("approval with unknown outcome {}", a.outcome));
            return;
        };
        match self.escalated.remove(&a.verdict_seq) {
            None => self.fail(
                seq,
                format!("approval of frame {}, which is no unsettled ESCALATE verdict before it", a.verdict_seq),
            ),
            Some(id) if id != a.intent_id => self.fail(
                seq,
                format!("approval names intent {} but verdict frame {} judged intent {id}", a.intent_id, a.verdict_seq),
            ),
            Some(_) if a.by.is_none() && a.outcome <= body::outcome::DENIED => {
                self.fail(seq, "a person's decision that does not say who made it")
            }
            Some(_) => count(&mut self.report.approvals, outcome),
        }
    }

    /// At the end of an epoch (or of the journal): every guard-VM verdict
    /// of its boots must be covered by a guard checkpoint of its boot —
    /// unless the writer crashed or the guard failed before the next one.
    fn end_epoch(&mut self) {
        let (epoch, closed) = (self.epoch, self.closed);
        let mut unexplained = Vec::new();
        for (&seq, boot) in self.boots.iter().filter(|(_, b)| b.epoch == epoch) {
            let uncovered = boot.chain.count() - boot.covered;
            if uncovered == 0 {
                continue;
            }
            if closed && !boot.failed {
                unexplained.push((seq, uncovered));
            } else {
                self.report.vm_verdicts_uncovered += uncovered;
            }
        }
        unexplained.sort_unstable();
        for (seq, uncovered) in unexplained {
            self.fail(
                seq,
                format!(
                    "{uncovered} verdicts of this boot's guard are covered by no guard checkpoint, though the guard did not fail and the writer closed the journal"
                ),
            );
        }
    }

    fn verify_boot(&self, b: &BootBody) -> Result<(Boot, [u8; 16]), String> {
        let image: Measurement =
            b.reference_image.as_slice().try_into().map_err(|_| "recorded reference image is not 48 bytes")?;
        if image != self.reference.image {
            return Err(format!(
                "the guard was verified against image {} at the time, not {} ({}); pass --reference with the measurements.json it was built with",
                hex::encode(image),
                self.reference.source,
                hex::encode(self.reference.image)
            ));
        }
        let policy: [u8; MEASUREMENT_LEN] =
            b.policy_sha384.as_slice().try_into().map_err(|_| "recorded policy hash is not 48 bytes")?;
        let bundle_len = self
            .policies
            .get(&policy)
            .map(|bundle| bundle.len())
            .ok_or("the boot's policy was not recorded before it")?;
        let config = vigil_attest::reference::expected_config(bundle_len);
        let expect = Expectations {
            policy: Some(&policy),
            config: Some(&config),
            allow_test_image: self.allow_test_image,
            ..self.reference.expectations(self.trust, &b.nonce)
        };
        let claims = evidence::verify(&b.evidence, &expect).map_err(|e| e.to_string())?;
        let boot = Boot {
            chain: VerdictChain::new(&claims.guard_key.fingerprint()),
            guard_key: claims.guard_key,
            epoch: self.epoch,
            policy: claims.policy,
            covered: 0,
            failed: false,
        };
        Ok((boot, claims.boot_id))
    }

    fn verdict(&mut self, seq: u64, v: VerdictBody) {
        let r = &mut self.report;
        r.verdicts += 1;
        r.first_ms = Some(r.first_ms.map_or(v.time_ms, |t| t.min(v.time_ms)));
        r.last_ms = Some(r.last_ms.map_or(v.time_ms, |t| t.max(v.time_ms)));
        if let Err(problem) = self.tie_to_judge(&v) {
            self.fail(seq, problem);
        }
        let r = &mut self.report;
        if v.verdict.is_empty() {
            count_agent(&mut r.agents, &v.intent);
            r.judge_failures += 1;
            count(&mut r.by_decision, "DENY");
            let Some(reason) = v.judge_failure else {
                self.fail(seq, "verdict frame with neither a verdict record nor a judge failure");
                return;
            };
            let judge = if v.judge == body::judge::VM { "vm" } else { "inproc" };
            match r
                .judge_failure_causes
                .iter_mut()
                .find(|c| c.judge == judge && c.boot_seq == v.boot_seq && c.reason == reason)
            {
                Some(cause) => cause.count += 1,
                None => r.judge_failure_causes.push(JudgeFailure {
                    first_seq: seq,
                    count: 1,
                    judge: judge.into(),
                    boot_seq: v.boot_seq,
                    reason,
                }),
            }
            if let Some(boot) = v.boot_seq.and_then(|b| self.boots.get_mut(&b)) {
                boot.failed = true;
            }
            return;
        }
        match verdict_codec::decode(&v.verdict) {
            Ok((verdict, _)) => {
                count(&mut r.by_decision, verdict.decision.as_str());
                if verdict.decision == vigil_guard::Decision::Escalate {
                    self.escalated.insert(seq, v.intent_id);
                }
            }
            Err(e) => {
                count_agent(&mut r.agents, &v.intent);
                self.fail(seq, format!("verdict record does not decode: {e:?}"));
                return;
            }
        }
        if let Some(boot_seq) = v.boot_seq {
            match self.boots.get_mut(&boot_seq) {
                Some(boot) => boot.chain.append(&v.intent, &v.verdict),
                None => {
                    self.fail(seq, format!("judged by the guard of boot frame {boot_seq}, which did not verify"));
                }
            }
        }
        let Ok(policy) = v.policy_sha384.as_slice().try_into() else {
            count_agent(&mut self.report.agents, &v.intent);
            self.fail(seq, "recorded policy hash is not 48 bytes");
            return;
        };
        self.jobs.push(Job { seq, policy, intent: v.intent, verdict: v.verdict, intent_id: v.intent_id });
    }

    /// Checks that a verdict names the judge that could have made it: an
    /// in-process verdict names no guard; a guard-VM verdict names the boot
    /// frame of a verified guard booted by the same writer (epoch), and
    /// the policy that guard attested.
    fn tie_to_judge(&self, v: &VerdictBody) -> Result<(), String> {
        match (v.judge, v.boot_seq) {
            (body::judge::INPROC, None) => Ok(()),
            (body::judge::INPROC, Some(b)) => Err(format!("an in-process verdict names guard boot frame {b}")),
            (body::judge::VM, None) if v.verdict.is_empty() => Ok(()), // the guard never started
            (body::judge::VM, None) => Err("a guard-VM verdict names no boot frame".into()),
            (body::judge::VM, Some(b)) => match self.boots.get(&b) {
                // A boot that did not verify is reported where it failed.
                None => Ok(()),
                Some(boot) if boot.epoch != self.epoch => Err(format!(
                    "judged by the guard of boot frame {b}, which an earlier writer (epoch {}) booted",
                    boot.epoch
                )),
                Some(boot) if v.policy_sha384 != boot.policy => Err(format!(
                    "the verdict's policy {} is not the policy {} its guard (boot frame {b}) attested",
                    hex::encode(&v.policy_sha384),
                    hex::encode(boot.policy)
                )),
                Some(_) => Ok(()),
            },
            (other, _) => Err(format!("unknown judge {other}")),
        }
    }

    /// Hands the queued verdicts to the re-evaluation workers.
    fn flush(&mut self) {
        if self.jobs.is_empty() {
            return;
        }
        let jobs = std::mem::replace(&mut self.jobs, Vec::with_capacity(CHUNK));
        // A send fails only if every worker is gone (one panicked); the
        // join below reports that.
        let _ = self.work.send((jobs, Arc::clone(&self.policies)));
    }
}

/// A re-evaluation worker: takes chunks until the scan is done.
fn worker(queue: &Mutex<Receiver<Work>>) -> ReplayCounts {
    let mut out = ReplayCounts::default();
    let mut next = receive(queue);
    while let Some((jobs, policies)) = next {
        next = replay_under(&policies, jobs, queue, &mut out);
    }
    out
}

/// The next chunk, or `None` when the scan is done.
fn receive(queue: &Mutex<Receiver<Work>>) -> Option<Work> {
    queue.lock().unwrap_or_else(|p| p.into_inner()).recv().ok()
}

/// Replays chunks for as long as they come with this same set of policies,
/// loading (digest, tables) each bundle once for all of them; returns the
/// first chunk that comes with another set.
fn replay_under(
    policies: &Arc<Policies>,
    first: Vec<Job>,
    queue: &Mutex<Receiver<Work>>,
    out: &mut ReplayCounts,
) -> Option<Work> {
    let mut bundles = HashMap::new();
    // Memory for the dense copies of the bundles' tables (the judge as the
    // guard runs it), for the first few bundles this worker loads; it is
    // zeroed by the allocator and touched only by the copies made.
    let mut arenas: Vec<Vec<u8>> =
        (0..policies.len().min(DENSE_BUNDLES)).map(|_| vec![0; dense::DEFAULT_ARENA_LEN]).collect();
    let mut arenas = arenas.iter_mut();
    let mut jobs = first;
    loop {
        for job in &jobs {
            if let Some(bytes) = policies.get(&job.policy)
                && !bundles.contains_key(&job.policy)
                && let Ok(mut bundle) = Bundle::load(bytes)
            {
                if let Some(arena) = arenas.next() {
                    bundle.densify(arena);
                }
                bundles.insert(job.policy, bundle);
            }
        }
        replay_chunk(&jobs, &bundles, out);
        match receive(queue) {
            Some((next, same)) if Arc::ptr_eq(&same, policies) => jobs = next,
            other => return other,
        }
    }
}

fn replay_chunk(jobs: &[Job], bundles: &HashMap<[u8; MEASUREMENT_LEN], Bundle<'_>>, out: &mut ReplayCounts) {
    let mut record = Vec::new();
    for job in jobs {
        let decoded = intent::decode(&job.intent);
        count(&mut out.agents, agent_of(&decoded));
        let Some(bundle) = bundles.get(&job.policy) else {
            out.failures.push(Failure { seq: job.seq, detail: "no policy frame with the recorded bundle hash".into() });
            continue;
        };
        // What `eval::evaluate` does, with the intent decoded once.
        let verdict = match &decoded {
            Ok(intent) => eval::evaluate_intent(bundle, intent),
            Err(_) => eval::evaluate(bundle, &job.intent),
        };
        let rule_words = bundle.rule_count().div_ceil(64).max(1);
        record.resize(verdict_codec::record_len(rule_words), 0);
        let n = match verdict_codec::encode(&verdict, rule_words, &mut record) {
            Ok(n) => n,
            Err(e) => {
                out.failures.push(Failure { seq: job.seq, detail: format!("re-encoding the verdict: {e:?}") });
                continue;
            }
        };
        if record[..n] == job.verdict[..] {
            out.replayed_equal += 1;
        } else {
            out.mismatches.push(Mismatch {
                seq: job.seq,
                intent_id: job.intent_id,
                recorded: job.verdict.get(8).map_or_else(|| "?".into(), |&d| decision_name(d)),
                replayed: verdict.decision.as_str().to_string(),
            });
        }
    }
}

/// Replays the journal at `path`: `trust` is the pinned platform key,
/// `reference` the reference values every boot's evidence must match
/// (image, arch, hypervisor, platform, features; the boot configuration is
/// recomputed from each recorded bundle), `allow_test_image` admits
/// test-hooks guards. `progress` gets the byte offset of each frame.
pub fn replay(
    path: &Path,
    key: &MasterKey,
    trust: &DualPublicKey,
    reference: &Reference,
    allow_test_image: bool,
    progress: impl FnMut(u64),
) -> Result<ReplayReport, JournalError> {
    replay_reaching(path, key, trust, reference, allow_test_image, None, progress)
}

/// [`replay`] of a journal that must still reach `reach` (the end an
/// earlier verifying read found; [`ScanOptions::reach`]).
pub fn replay_reaching(
    path: &Path,
    key: &MasterKey,
    trust: &DualPublicKey,
    reference: &Reference,
    allow_test_image: bool,
    reach: Option<scan::Reach>,
    mut progress: impl FnMut(u64),
) -> Result<ReplayReport, JournalError> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (work, queue) = sync_channel::<Work>(threads * 2);
    let queue = Mutex::new(queue);
    let (summary, r, results) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads).map(|_| scope.spawn(|| worker(&queue))).collect();
        let mut r = Replayer {
            trust,
            reference,
            allow_test_image,
            policies: Arc::new(HashMap::new()),
            boots: HashMap::new(),
            boot_ids: HashMap::new(),
            epoch: 0,
            closed: false,
            jobs: Vec::with_capacity(CHUNK),
            report: ReplayCounts::default(),
            work,
            escalated: HashMap::new(),
        };
        let summary = scan::scan_file(
            path,
            ScanOptions { trust: Some(trust), key: Some(key), reach, ..Default::default() },
            |f| {
                progress(f.offset);
                r.frame(f.seq, f.kind, f.epoch, f.public, f.body.unwrap_or_default())
            },
        );
        r.end_epoch();
        r.flush();
        let Replayer { work, report, policies, .. } = r;
        drop(work);
        let results: Vec<ReplayCounts> =
            workers.into_iter().map(|w| w.join().expect("a replay worker panicked")).collect();
        (summary, (report, policies), results)
    });
    let summary = summary?;
    let (mut c, policies) = r;
    for w in results {
        c.absorb(w);
    }
    c.mismatches.sort_by_key(|m| m.seq);
    c.failures.sort_by_key(|f| f.seq);
    let ok = c.mismatches.is_empty() && c.failures.is_empty() && summary.intact();
    Ok(ReplayReport { scan: summary, counts: c, policies: policies.len() as u64, ok })
}
