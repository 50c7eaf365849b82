//! The guard-VM judge: boots a guard with the measured policy, obtains and
//! verifies its evidence, opens the attested channel and sends intents to
//! it in batches (docs/protocol.md). Every verdict is checked against the
//! guard's verdict chain; every guard checkpoint is verified against the
//! attested guard key and the chain the host recomputed.
//!
//! Fail-closed: a failure anywhere on the path (boot, evidence, channel,
//! guest fault, deadline, a checkpoint that does not verify) ends the judge,
//! and [`VmJudge::judge_or_deny`] answers DENY with the reason.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha384};
use vigil_abi::batch::{self, op, reply_status};
use vigil_abi::{kind, status};
use vigil_attest::channel::ChannelError;
use vigil_attest::channel::{self, ClientKey, Session};
use vigil_attest::checkpoint::{self, GuardCheckpoint, VerdictChain};
use vigil_attest::dual::{DecodedPublicKey, DualPublicKey};
use vigil_attest::evidence::EvidenceError;
use vigil_attest::evidence::{self, Claims, Expectations};
use vigil_attest::{MEASUREMENT_LEN, Measurement};
use vigil_guard::eval::Verdict;
use vigil_guard::verdict_codec;

use crate::judge::{VerdictReport, rule_names, verdict_report};
use crate::reference::Reference;
use crate::stats::micros;
use crate::vmm::{BootTemplate, GuardVm, PolicyImage, Posted, VmConfig, VmError};

/// Why the VM judge could not start or judge. Any of them ends the judge:
/// every intent it did not decide is DENY with this reason.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The bundle does not load.
    #[error("invalid policy bundle: {0}")]
    InvalidPolicy(&'static str),
    /// A VM operation failed (`what` was being done).
    #[error("{what}")]
    Vm {
        /// What was being done.
        what: &'static str,
        /// The VMM's error.
        #[source]
        source: VmError,
    },
    /// The guard answered a request with a failure status.
    #[error("the guard {what}: {status}")]
    Refused {
        /// What the guard refused or failed to give.
        what: &'static str,
        /// The status name.
        status: &'static str,
    },
    /// The evidence did not verify.
    #[error("guard evidence rejected: {0}")]
    Evidence(#[source] EvidenceError),
    /// The attested channel failed.
    #[error("{what}: {source}")]
    Channel {
        /// Which step.
        what: &'static str,
        /// The channel's error.
        source: ChannelError,
    },
    /// A guard checkpoint did not decode or verify.
    #[error("{what}: {detail}")]
    Checkpoint {
        /// Which checkpoint.
        what: &'static str,
        /// What failed.
        detail: &'static str,
    },
    /// The guard's reply broke the batch protocol.
    #[error("{0}")]
    Protocol(String),
    /// An earlier failure stopped the judge.
    #[error("the guard judge has stopped: {0}")]
    Stopped(String),
    /// The VM is gone (shut down or killed).
    #[error("the guard VM is gone")]
    Gone,
    /// The verifier's nonce has the wrong length.
    #[error("the nonce is {0} bytes; it must be 8 to 64 bytes")]
    Nonce(usize),
    /// No randomness for the nonce or the channel key.
    #[error("reading /dev/urandom: {0}")]
    Random(#[source] std::io::Error),
}

/// The results of the VM judge.
pub type Result<T, E = JudgeError> = std::result::Result<T, E>;

impl JudgeError {
    fn vm(what: &'static str) -> impl FnOnce(VmError) -> JudgeError {
        move |source| JudgeError::Vm { what, source }
    }

    fn channel(what: &'static str) -> impl FnOnce(ChannelError) -> JudgeError {
        move |source| JudgeError::Channel { what, source }
    }

    /// The message with its causes, as recorded and shown with a DENY.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cause = e.source();
        }
        out
    }
}

/// The host's side of a start that does not wait for the guard's
/// evidence: its own check of the bundle (with the rule names), the
/// platform key decoded (`None` if it does not decode: the verification
/// then refuses the evidence), and its ephemeral channel key.
fn prepare_start(
    policy: &PolicyImage,
    platform: &DualPublicKey,
) -> Result<(Vec<String>, Option<DecodedPublicKey>, ClientKey)> {
    let bundle =
        vigil_guard::bundle::Bundle::load(policy.bytes()).map_err(|e| JudgeError::InvalidPolicy(e.as_str()))?;
    let names = rule_names(&bundle);
    let client = ClientKey::new(crate::random::bytes().map_err(JudgeError::Random)?);
    Ok((names, platform.decode().ok(), client))
}

/// Starts the channel's opening with the guard whose X25519 key is
/// `guard_x25519`, for the evidence whose SHA-384 is `digest`: posts
/// `CHANNEL_OPEN` (digest, the host's ephemeral public key, its key
/// confirmation) without waiting for the answer.
fn post_open(
    vm: &mut GuardVm,
    client: ClientKey,
    guard_x25519: &[u8; 32],
    digest: &[u8; MEASUREMENT_LEN],
) -> Result<(Session, Posted)> {
    let client_public = client.public();
    let mut session = client.session(guard_x25519, digest).map_err(JudgeError::channel("channel handshake failed"))?;
    let mut open = Vec::with_capacity(80 + 32 + channel::OVERHEAD);
    open.extend_from_slice(digest);
    open.extend_from_slice(&client_public);
    let mut confirm = [0u8; 32 + channel::OVERHEAD];
    let n = session.confirm(&mut confirm).map_err(JudgeError::channel("channel confirmation failed"))?;
    open.extend_from_slice(&confirm[..n]);
    let posted = vm.post(kind::CHANNEL_OPEN, &open).map_err(JudgeError::vm("opening the channel"))?;
    Ok((session, posted))
}

fn refused(what: &'static str, code: u32) -> JudgeError {
    JudgeError::Refused { what, status: crate::vmm::status_name(code) }
}

fn protocol(message: impl Into<String>) -> JudgeError {
    JudgeError::Protocol(message.into())
}

/// What a verifier pins: the platform key and the reference values.
#[derive(Clone, Debug)]
pub struct TrustAnchors {
    /// The platform public key (`platform.pub`).
    pub platform: DualPublicKey,
    /// The reference (`measurements.json`): image, arch, hypervisors,
    /// platform, features.
    pub reference: Reference,
    /// Accept a test-hooks guard (tests only).
    pub allow_test_image: bool,
}

/// The guard to boot for a run: the prepared image, the reference it and
/// its evidence are checked against, and whether a test image is admitted.
#[derive(Clone, Copy, Debug)]
pub struct GuardSetup<'a> {
    /// The validated image.
    pub template: &'a BootTemplate,
    /// The reference (`measurements.json`).
    pub reference: &'a Reference,
    /// Accept a test-hooks guard (tests only).
    pub allow_test_image: bool,
}

/// How long each phase of starting took.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StartTimings {
    /// Boot to the first answer (microseconds).
    pub boot_us: f64,
    /// From the first answer to the evidence: the `ATTEST` round trip (the
    /// guard making its keys, the VMM signing the evidence), while the host
    /// checks its copy of the bundle, decodes the platform key and makes its
    /// channel key.
    pub attest_us: f64,
    /// From the evidence to its verification in this process: the host's
    /// half of the channel's opening is posted first, and the guard works
    /// on its half meanwhile.
    pub verify_us: f64,
    /// From the evidence verified to the channel open: what was left of
    /// the guard's half of the handshake, and the host's check of its key
    /// confirmation.
    pub open_us: f64,
    /// Total.
    pub total_us: f64,
}

/// A guard VM judging over an attested channel.
pub struct VmJudge {
    vm: Option<GuardVm>,
    session: Session,
    evidence: Vec<u8>,
    nonce: [u8; 32],
    reference_image: Measurement,
    claims: Claims,
    chain: VerdictChain,
    rule_names: Vec<String>,
    checkpoints_verified: u64,
    failure: Option<String>,
    timings: StartTimings,
    request: Vec<u8>,
    /// The vCPU thread's counters, while costs are counted.
    counters: Option<crate::vmm::counters::ThreadCounters>,
}

impl VmJudge {
    /// Boots a guard with `policy`, attests it with a fresh nonce, verifies
    /// the evidence against `trust` and opens the channel.
    pub fn start(template: &BootTemplate, policy: PolicyImage, trust: &TrustAnchors, config: VmConfig) -> Result<Self> {
        let started = Instant::now();
        let policy_digest = *policy.measurement();
        let policy_signer = policy.signer().copied();
        let boot_config = crate::reference::expected_config_with(policy.bytes().len(), config.checkpoint_interval);
        // A second handle on the same bytes (an `Arc`), for the host's check.
        let host_copy = policy.clone();
        let config = VmConfig { policy: Some(policy), ..config };
        let mut vm = GuardVm::boot(template, config).map_err(JudgeError::vm("booting the guard VM"))?;
        vm.ping(&[]).map_err(JudgeError::vm("the guard did not come up"))?;
        let booted = started.elapsed();

        // The evidence is asked for at once: the guard makes its keys first
        // (most of the wait). Meanwhile the host does what does not depend
        // on the answer: it validates its own copy of the bundle, decodes
        // the platform key and makes its ephemeral channel key.
        let nonce: [u8; 32] = crate::random::bytes().map_err(JudgeError::Random)?;
        let asked = vm.post(kind::ATTEST, &nonce).map_err(JudgeError::vm("asking the guard for evidence"))?;
        let prepared = prepare_start(&host_copy, &trust.platform);
        // The request is answered (or the guard stopped) before anything
        // else, even when the host's preparation failed.
        let response = vm.wait(asked).map_err(JudgeError::vm("asking the guard for evidence"));
        let (names, platform, client) = prepared?;
        let response = response?;
        if response.status != status::OK {
            return Err(refused("gave no evidence", response.status));
        }
        let evidence = response.payload;
        let attested = started.elapsed();

        // Every claim against a reference the host did not make from this
        // boot: image, arch, hypervisor, platform and features from the
        // reference; the boot configuration this VMM uses; the policy and
        // its signer as the caller loaded and verified them.
        let expect = Expectations {
            policy: Some(&policy_digest),
            config: Some(&boot_config),
            policy_signer: Some(policy_signer.as_ref()),
            allow_test_image: trust.allow_test_image,
            decoded_trust: platform.as_ref(),
            ..trust.reference.expectations(&trust.platform, &nonce)
        };
        // The guard answers the channel's opening only once it has checked
        // its bundle; the host's check of the evidence takes about as long.
        // The two overlap: the handshake starts with the X25519 key the
        // evidence claims, before its signatures are checked, and the judge
        // exists (nothing can go through the channel) only once the
        // evidence verified and names that same key. What the host sends
        // first (its ephemeral public key, a key confirmation) tells a guard
        // that is not the attested one nothing.
        let digest: [u8; MEASUREMENT_LEN] = Sha384::digest(&evidence).into();
        // Unreadable evidence, or a failed opening: the verification's
        // error, if any, comes first (it says precisely what is wrong).
        let opening =
            evidence::claimed_x25519_unverified(&evidence).map(|key| (key, post_open(&mut vm, client, &key, &digest)));
        let claims = evidence::verify(&evidence, &expect).map_err(JudgeError::Evidence)?;
        let verified = started.elapsed();
        let (mut session, posted) = match opening {
            Some((key, opening)) if key == claims.guard_x25519 => opening?,
            _ => return Err(protocol("the verified evidence names another X25519 key than the one it was read with")),
        };
        let response = vm.wait(posted).map_err(JudgeError::vm("opening the channel"))?;
        if response.status != status::OK {
            return Err(refused("refused the channel", response.status));
        }
        let mut reply = response.payload;
        session
            .check_confirmation(&mut reply)
            .map_err(JudgeError::channel("the guard's key confirmation failed (not the attested guard)"))?;
        let opened = started.elapsed();

        let chain = VerdictChain::new(&claims.guard_key.fingerprint());
        Ok(VmJudge {
            vm: Some(vm),
            session,
            evidence,
            nonce,
            reference_image: trust.reference.image,
            claims,
            chain,
            rule_names: names,
            checkpoints_verified: 0,
            failure: None,
            timings: StartTimings {
                boot_us: micros(booted),
                attest_us: micros(attested - booted),
                verify_us: micros(verified - attested),
                open_us: micros(opened - verified),
                total_us: micros(opened),
            },
            request: Vec::new(),
            counters: None,
        }
        .counting(true))
    }

    /// Counts what each batch costs (on by default; docs/cost.md) or not.
    pub fn counting(mut self, on: bool) -> Self {
        self.counters = if on { self.vm.as_ref().and_then(GuardVm::counters) } else { None };
        self
    }

    /// The rate of the guard's counter in kHz, as the host knows it.
    pub fn counter_khz(&self) -> Option<u32> {
        self.vm.as_ref().and_then(GuardVm::counter_khz)
    }

    /// The verified evidence.
    pub fn evidence(&self) -> &[u8] {
        &self.evidence
    }

    /// What the journal's boot frame records: the evidence, the nonce it
    /// was asked for, the policy measurement and the reference image it
    /// was verified against.
    pub fn boot_body(&self) -> crate::journal::body::BootBody {
        crate::journal::body::BootBody {
            time_ms: crate::journal::body::now_ms(),
            evidence: self.evidence.clone(),
            nonce: self.nonce.to_vec(),
            policy_sha384: self.claims.policy.to_vec(),
            reference_image: self.reference_image.to_vec(),
        }
    }

    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// Start-up timings.
    pub fn timings(&self) -> &StartTimings {
        &self.timings
    }

    /// Guard checkpoints received and verified so far.
    pub fn checkpoints_verified(&self) -> u64 {
        self.checkpoints_verified
    }

    /// Verdicts in the chain so far.
    pub fn verdicts(&self) -> u64 {
        self.chain.count()
    }

    /// Why the judge stopped, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Judges CBOR intents in one batch (one mailbox round trip).
    pub fn judge(&mut self, intents: &[&[u8]]) -> Result<Vec<Verdict>> {
        Ok(self.judge_records(intents)?.verdicts.into_iter().map(|(v, _)| v).collect())
    }

    /// Judges CBOR intents in one batch; returns each verdict with its
    /// record exactly as the guard sent it (what the verdict chain and the
    /// journal hold), and the guard checkpoint if one came with the reply.
    pub fn judge_records(&mut self, intents: &[&[u8]]) -> Result<JudgedBatch> {
        if let Some(reason) = &self.failure {
            return Err(JudgeError::Stopped(reason.clone()));
        }
        let counters = self.counters.take();
        let meter = counters.as_ref().map(crate::cost::Meter::start);
        let exits = self.vm.as_ref().map_or(0, GuardVm::exits);
        let result = self.exchange(op::JUDGE, intents);
        let cost = meter.map(crate::cost::Meter::finish);
        self.counters = counters;
        match result {
            Ok(mut batch) => {
                let exits = self.vm.as_ref().map_or(0, GuardVm::exits).saturating_sub(exits);
                batch.cost = cost.map(|c| c.with_guard(batch.judge_ticks, &self.claims.arch, exits));
                Ok(batch)
            }
            Err(e) => {
                self.stop(&e);
                Err(e)
            }
        }
    }

    /// Names the rules of a verdict.
    pub fn report(&self, verdict: &Verdict) -> VerdictReport {
        verdict_report(verdict, &self.rule_names)
    }

    /// Judges and names the verdicts; on any failure every intent gets
    /// DENY with the reason.
    pub fn judge_or_deny(&mut self, intents: &[&[u8]]) -> Vec<VerdictReport> {
        match self.judge_records(intents) {
            Ok(batch) => batch.verdicts.iter().map(|(v, _)| verdict_report(v, &self.rule_names)).collect(),
            Err(e) => intents.iter().map(|_| VerdictReport::judge_failed(e.chain())).collect(),
        }
    }

    /// Makes the guard fail with a test-hooks request kind (panic, fault,
    /// spin past a short deadline): for the tests of what happens to a
    /// pool when a guard dies. Only in test-hooks builds, and only a
    /// test-hooks image knows the kinds.
    #[cfg(feature = "test-hooks")]
    pub fn inject_fault(&mut self, kind: u32) -> Result<()> {
        let vm = self.vm.as_mut().ok_or(JudgeError::Gone)?;
        let outcome = vm
            .request_within(kind, &[], std::time::Duration::from_millis(300))
            .map(|_| ())
            .map_err(JudgeError::vm("a fault injected by a test"));
        if let Err(e) = &outcome {
            self.stop(e);
        }
        outcome
    }

    /// The guard's `Info` reply (its facts and counters, the dense copies
    /// of its bundle's tables included).
    pub fn info(&mut self) -> Result<crate::vmm::GuestInfo> {
        let vm = self.vm.as_mut().ok_or(JudgeError::Gone)?;
        let outcome = vm.info().map_err(JudgeError::vm("asking the guard for its info"));
        if let Err(e) = &outcome {
            self.stop(e);
        }
        outcome
    }

    /// Fresh evidence from this running guard for `nonce` (8–64 bytes),
    /// verified against `trust` and checked to come from the same guard
    /// (keys), under the same policy and configuration, as its boot
    /// evidence.
    pub fn fresh_evidence(&mut self, nonce: &[u8], trust: &TrustAnchors) -> Result<Vec<u8>> {
        let range = vigil_abi::attest_request::NONCE_MIN..=vigil_abi::attest_request::NONCE_MAX;
        if !range.contains(&nonce.len()) {
            return Err(JudgeError::Nonce(nonce.len()));
        }
        if let Some(reason) = &self.failure {
            return Err(JudgeError::Stopped(reason.clone()));
        }
        let vm = self.vm.as_mut().ok_or(JudgeError::Gone)?;
        let response = match vm.request(kind::ATTEST, nonce) {
            Ok(response) => response,
            Err(e) => {
                let e = JudgeError::vm("asking the guard for evidence")(e);
                self.stop(&e);
                return Err(e);
            }
        };
        if response.status != status::OK {
            return Err(refused("gave no evidence", response.status));
        }
        let expect = Expectations {
            allow_test_image: trust.allow_test_image,
            ..trust.reference.expectations(&trust.platform, nonce)
        };
        let claims = evidence::verify(&response.payload, &expect).map_err(JudgeError::Evidence)?;
        let same = claims.guard_key.fingerprint() == self.claims.guard_key.fingerprint()
            && claims.guard_x25519 == self.claims.guard_x25519
            && claims.policy == self.claims.policy
            && claims.config == self.claims.config;
        if !same {
            let e = protocol("the fresh evidence is not from the attested guard (other keys, policy or configuration)");
            self.stop(&e);
            return Err(e);
        }
        Ok(response.payload)
    }

    /// Asks for a checkpoint now; returns it, verified.
    pub fn checkpoint(&mut self) -> Result<GuardCheckpoint> {
        match self.exchange(op::CHECKPOINT, &[]) {
            Ok(JudgedBatch { checkpoint: Some(cp), .. }) => Ok(cp),
            Ok(JudgedBatch { checkpoint: None, .. }) => {
                let e = protocol("the guard sent no checkpoint when asked for one");
                self.stop(&e);
                Err(e)
            }
            Err(e) => {
                self.stop(&e);
                Err(e)
            }
        }
    }

    /// Shuts the guard down; returns its final checkpoint, verified against
    /// every verdict received.
    pub fn shutdown(mut self) -> Result<GuardCheckpoint> {
        let vm = self.vm.take().ok_or(JudgeError::Gone)?;
        let payload = vm.shutdown().map_err(JudgeError::vm("shutting the guard down"))?;
        let final_checkpoint = |e: checkpoint::CheckpointError| JudgeError::Checkpoint {
            what: "final guard checkpoint",
            detail: e.as_str(),
        };
        let cp = GuardCheckpoint::decode(&payload).map_err(final_checkpoint)?;
        cp.verify_against(&self.claims.guard_key, &self.chain).map_err(final_checkpoint)?;
        Ok(cp)
    }

    fn stop(&mut self, e: &JudgeError) {
        self.failure = Some(e.chain());
        if let Some(mut vm) = self.vm.take() {
            vm.kill();
        }
    }

    fn exchange(&mut self, operation: u8, intents: &[&[u8]]) -> Result<JudgedBatch> {
        let vm = self.vm.as_mut().ok_or(JudgeError::Gone)?;
        let started = Instant::now();
        let plain_len = batch::request_len(intents.iter().copied());
        self.request.clear();
        self.request.resize(plain_len + channel::OVERHEAD, 0);
        {
            let plain = &mut self.request[channel::HEADER_LEN..channel::HEADER_LEN + plain_len];
            batch::write_request_header(plain, operation, intents.len() as u32);
            let mut at = batch::REQUEST_HEADER_LEN;
            for intent in intents {
                plain[at..at + 4].copy_from_slice(&(intent.len() as u32).to_le_bytes());
                plain[at + 4..at + 4 + intent.len()].copy_from_slice(intent);
                at += 4 + intent.len();
            }
        }
        self.session
            .seal_in_place(&mut self.request, plain_len)
            .map_err(JudgeError::channel("sealing the batch failed"))?;
        let sealed = Instant::now();
        // The guard judges an intent in a few microseconds: a large batch
        // takes long enough that this thread is better asleep than polling.
        let expected = std::time::Duration::from_micros(4 * intents.len() as u64);
        let response = vm
            .request_expecting(kind::CHANNEL_RECORD, &self.request, expected)
            .map_err(JudgeError::vm("sending the batch"))?;
        let answered = Instant::now();
        if response.status != status::OK {
            return Err(refused("refused the batch", response.status));
        }
        let mut record = response.payload;
        let reply = self.session.open(&mut record).map_err(JudgeError::channel("the guard's reply record failed"))?;
        let opened = Instant::now();
        let mut batch = parse_reply(
            reply,
            operation,
            intents,
            &mut self.chain,
            &self.claims.guard_key,
            &mut self.checkpoints_verified,
        )?;
        batch.timings = ExchangeTimings {
            seal: sealed - started,
            guard: answered - sealed,
            open: opened - answered,
            check: opened.elapsed(),
        };
        Ok(batch)
    }
}

/// One judged batch.
pub struct JudgedBatch {
    /// Each verdict with its record as the guard sent it.
    pub verdicts: Vec<(Verdict, Vec<u8>)>,
    /// The guard checkpoint that came with the reply, verified.
    pub checkpoint: Option<GuardCheckpoint>,
    /// The guard's counter ticks spent judging the batch, as it reports
    /// them (sealed in the channel record: only the attested guard could
    /// have written them).
    pub judge_ticks: u64,
    /// What the batch cost, when counted (by [`VmJudge::judge_records`]).
    pub cost: Option<crate::cost::BatchCost>,
    /// Where the exchange's time went.
    pub timings: ExchangeTimings,
}

/// Where one exchange's time went, as the host's clock saw it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExchangeTimings {
    /// Writing the request and sealing it into a channel record.
    pub seal: Duration,
    /// From the record's posting to the guard's reply in hand: the mailbox
    /// both ways, the guard opening the record, judging (its reported
    /// [`JudgedBatch::judge_ticks`]) and sealing its reply.
    pub guard: Duration,
    /// Opening the reply record.
    pub open: Duration,
    /// Decoding the verdict records, extending the verdict chain and
    /// verifying a checkpoint if one came.
    pub check: Duration,
}

/// Decodes a batch reply, appends every verdict to `chain`, verifies a
/// checkpoint if one came.
fn parse_reply(
    reply: &[u8],
    operation: u8,
    intents: &[&[u8]],
    chain: &mut VerdictChain,
    guard_key: &DualPublicKey,
    checkpoints_verified: &mut u64,
) -> Result<JudgedBatch> {
    if reply.len() < batch::REPLY_HEADER_LEN {
        return Err(protocol("batch reply shorter than its header"));
    }
    let header = batch::read_reply_header(reply, operation)
        .ok_or_else(|| protocol("batch reply with a bad header (version, op or reserved byte)"))?;
    match header.status {
        reply_status::OK => {}
        reply_status::MALFORMED => return Err(protocol("the guard found the batch malformed")),
        reply_status::TOO_LARGE => {
            return Err(protocol("the batch's verdicts do not fit one reply: send smaller batches"));
        }
        reply_status::CHECKPOINT_FAILED => return Err(protocol("the guard failed to sign its checkpoint")),
        other => return Err(protocol(format!("batch reply status {other}"))),
    }
    let count = header.count as usize;
    let chain_count = header.chain_count;
    if count != intents.len() {
        return Err(protocol(format!("the guard answered {count} verdicts for {} intents", intents.len())));
    }
    let mut verdicts = Vec::with_capacity(count);
    let mut at = batch::REPLY_HEADER_LEN;
    for intent in intents {
        let (verdict, len) =
            verdict_codec::decode(&reply[at..]).map_err(|e| protocol(format!("undecodable verdict record: {e:?}")))?;
        chain.append(intent, &reply[at..at + len]);
        verdicts.push((verdict, reply[at..at + len].to_vec()));
        at += len;
    }
    if chain_count != chain.count() {
        return Err(protocol(format!(
            "the guard's verdict count {chain_count} differs from the {} verdicts received",
            chain.count()
        )));
    }
    let cp_len = reply.get(at..at + 4).ok_or_else(|| protocol("batch reply without its checkpoint length"))?;
    let cp_len = u32::from_le_bytes(cp_len.try_into().expect("get(at..at + 4) is 4 bytes")) as usize;
    let cp_bytes = reply.get(at + 4..).ok_or_else(|| protocol("batch reply truncated"))?;
    if cp_bytes.len() != cp_len || (cp_len != 0 && cp_len != checkpoint::LEN) {
        return Err(protocol(format!(
            "batch reply with a checkpoint of {} bytes (length field {cp_len})",
            cp_bytes.len()
        )));
    }
    let checkpoint = if cp_len == 0 {
        None
    } else {
        let bad =
            |e: checkpoint::CheckpointError| JudgeError::Checkpoint { what: "guard checkpoint", detail: e.as_str() };
        let cp = GuardCheckpoint::decode(cp_bytes).map_err(bad)?;
        cp.verify_against(guard_key, chain).map_err(bad)?;
        *checkpoints_verified += 1;
        Some(cp)
    };
    Ok(JudgedBatch {
        verdicts,
        checkpoint,
        judge_ticks: header.judge_ticks,
        cost: None,
        timings: ExchangeTimings::default(),
    })
}

/// Intents per batch (`vigil eval --judge vm`, [`crate::eval::judge_vm`]).
pub const BATCH: usize = 256;

/// Boots a guard with `bundle`, asks it for evidence over `nonce`, and shuts
/// it down: what `vigil attest` writes.
pub fn attest_once(
    template: &BootTemplate,
    policy: PolicyImage,
    platform: vigil_attest::dual::DualSigningKey,
    nonce: &[u8],
) -> Result<Vec<u8>> {
    let range = vigil_abi::attest_request::NONCE_MIN..=vigil_abi::attest_request::NONCE_MAX;
    if !range.contains(&nonce.len()) {
        return Err(JudgeError::Nonce(nonce.len()));
    }
    let config = VmConfig {
        policy: Some(policy),
        platform: Some(crate::vmm::PlatformSigner(std::sync::Arc::new(platform))),
        ..VmConfig::default()
    };
    let mut vm = GuardVm::boot(template, config).map_err(JudgeError::vm("booting the guard VM"))?;
    let response = vm.request(kind::ATTEST, nonce).map_err(JudgeError::vm("asking the guard for evidence"))?;
    if response.status != status::OK {
        return Err(refused("gave no evidence", response.status));
    }
    vm.shutdown().map_err(JudgeError::vm("shutting the guard down"))?;
    Ok(response.payload)
}
