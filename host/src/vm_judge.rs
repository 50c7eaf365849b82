//! The guard-VM judge: boots a guard with the measured policy, obtains and
//! verifies its evidence, opens the attested channel and sends intents to
//! it in batches (docs/protocol.md). Every verdict is checked against the
//! guard's verdict chain; every guard checkpoint is verified against the
//! attested guard key and the chain the host recomputed.
//!
//! Fail-closed: a failure anywhere on the path (boot, evidence, channel,
//! guest fault, deadline, a checkpoint that does not verify) ends the judge,
//! and [`VmJudge::judge_or_deny`] answers DENY with the reason.

use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha384};
use vigil_abi::batch::{self, op, reply_status};
use vigil_abi::{kind, status};
use vigil_attest::channel::{self, Session};
use vigil_attest::checkpoint::{self, GuardCheckpoint, VerdictChain};
use vigil_attest::dual::DualPublicKey;
use vigil_attest::evidence::{self, Claims, Expectations};
use vigil_attest::{MEASUREMENT_LEN, Measurement};
use vigil_guard::eval::Verdict;
use vigil_guard::verdict_codec;

use crate::judge::{VerdictReport, rule_names, verdict_report};
use crate::keys;
use crate::reference::Reference;
use crate::stats::micros;
use crate::vmm::{BootTemplate, GuardVm, PolicyImage, VmConfig};

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
    /// The `ATTEST` round trip, including evidence signing in the VMM.
    pub attest_us: f64,
    /// Evidence verification in this process.
    pub verify_us: f64,
    /// Channel open (handshake and key confirmation).
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
}

impl VmJudge {
    /// Boots a guard with `policy`, attests it with a fresh nonce, verifies
    /// the evidence against `trust` and opens the channel.
    pub fn start(template: &BootTemplate, policy: PolicyImage, trust: &TrustAnchors, config: VmConfig) -> Result<Self> {
        let started = Instant::now();
        let names = {
            let bundle = vigil_guard::bundle::Bundle::load(policy.bytes())
                .map_err(|e| anyhow!("invalid policy bundle: {}", e.as_str()))?;
            rule_names(&bundle)
        };
        let policy_digest = *policy.measurement();
        let policy_signer = policy.signer().copied();
        let boot_config = crate::reference::expected_config_with(policy.bytes().len(), config.checkpoint_interval);
        let config = VmConfig { policy: Some(policy), ..config };
        let mut vm = GuardVm::boot(template, config).context("booting the guard VM")?;
        vm.ping(&[]).context("the guard did not come up")?;
        let booted = started.elapsed();

        let nonce: [u8; 32] = keys::random()?;
        let response = vm.request(kind::ATTEST, &nonce).context("asking the guard for evidence")?;
        if response.status != status::OK {
            bail!("the guard gave no evidence: {}", crate::vmm::status_name(response.status));
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
            ..trust.reference.expectations(&trust.platform, &nonce)
        };
        let claims = evidence::verify(&evidence, &expect).map_err(|e| anyhow!("guard evidence rejected: {e}"))?;
        let verified = started.elapsed();

        let digest: [u8; MEASUREMENT_LEN] = Sha384::digest(&evidence).into();
        let (client_public, mut session) = Session::client(keys::random()?, &claims.guard_x25519, &digest)
            .map_err(|e| anyhow!("channel handshake failed: {e:?}"))?;
        let mut open = Vec::with_capacity(80 + 32 + channel::OVERHEAD);
        open.extend_from_slice(&digest);
        open.extend_from_slice(&client_public);
        let mut confirm = [0u8; 32 + channel::OVERHEAD];
        let n = session.confirm(&mut confirm).map_err(|e| anyhow!("channel confirmation failed: {e:?}"))?;
        open.extend_from_slice(&confirm[..n]);
        let response = vm.request(kind::CHANNEL_OPEN, &open).context("opening the channel")?;
        if response.status != status::OK {
            bail!("the guard refused the channel: {}", crate::vmm::status_name(response.status));
        }
        let mut reply = response.payload;
        session
            .check_confirmation(&mut reply)
            .map_err(|e| anyhow!("the guard's key confirmation failed ({e:?}): not the attested guard"))?;
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
        })
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
            bail!("the guard judge has stopped: {reason}");
        }
        match self.exchange(op::JUDGE, intents) {
            Ok(batch) => Ok(batch),
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
            Err(e) => intents.iter().map(|_| VerdictReport::judge_failed(format!("{e:#}"))).collect(),
        }
    }

    /// Asks for a checkpoint now; returns it, verified.
    pub fn checkpoint(&mut self) -> Result<GuardCheckpoint> {
        match self.exchange(op::CHECKPOINT, &[]) {
            Ok(JudgedBatch { checkpoint: Some(cp), .. }) => Ok(cp),
            Ok(JudgedBatch { checkpoint: None, .. }) => {
                let e = anyhow!("the guard sent no checkpoint when asked for one");
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
        let vm = self.vm.take().context("the guard VM is gone")?;
        let payload = vm.shutdown().context("shutting the guard down")?;
        let cp = GuardCheckpoint::decode(&payload).map_err(|e| anyhow!("final guard checkpoint: {}", e.as_str()))?;
        cp.verify_against(&self.claims.guard_key, &self.chain)
            .map_err(|e| anyhow!("final guard checkpoint: {}", e.as_str()))?;
        Ok(cp)
    }

    fn stop(&mut self, e: &anyhow::Error) {
        self.failure = Some(format!("{e:#}"));
        if let Some(mut vm) = self.vm.take() {
            vm.kill();
        }
    }

    fn exchange(&mut self, operation: u8, intents: &[&[u8]]) -> Result<JudgedBatch> {
        let vm = self.vm.as_mut().context("the guard VM is gone")?;
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
            .map_err(|e| anyhow!("sealing the batch failed: {e:?}"))?;
        let response = vm.request(kind::CHANNEL_RECORD, &self.request)?;
        if response.status != status::OK {
            bail!("the guard refused the batch: {}", crate::vmm::status_name(response.status));
        }
        let mut record = response.payload;
        let reply = self.session.open(&mut record).map_err(|e| anyhow!("the guard's reply record failed: {e:?}"))?;
        parse_reply(reply, operation, intents, &mut self.chain, &self.claims.guard_key, &mut self.checkpoints_verified)
    }
}

/// One judged batch.
pub struct JudgedBatch {
    /// Each verdict with its record as the guard sent it.
    pub verdicts: Vec<(Verdict, Vec<u8>)>,
    /// The guard checkpoint that came with the reply, verified.
    pub checkpoint: Option<GuardCheckpoint>,
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
    let header = reply.get(..batch::REPLY_HEADER_LEN).context("batch reply shorter than its header")?;
    if header[0] != batch::VERSION || header[1] != operation || header[3] != 0 {
        bail!("batch reply with a bad header");
    }
    match header[2] {
        reply_status::OK => {}
        reply_status::MALFORMED => bail!("the guard found the batch malformed"),
        reply_status::TOO_LARGE => bail!("the batch's verdicts do not fit one reply: send smaller batches"),
        reply_status::CHECKPOINT_FAILED => bail!("the guard failed to sign its checkpoint"),
        other => bail!("batch reply status {other}"),
    }
    let count = u32::from_le_bytes(header[4..8].try_into()?) as usize;
    let chain_count = u64::from_le_bytes(header[8..16].try_into()?);
    if count != intents.len() {
        bail!("the guard answered {count} verdicts for {} intents", intents.len());
    }
    let mut verdicts = Vec::with_capacity(count);
    let mut at = batch::REPLY_HEADER_LEN;
    for intent in intents {
        let (verdict, len) =
            verdict_codec::decode(&reply[at..]).map_err(|e| anyhow!("undecodable verdict record: {e:?}"))?;
        chain.append(intent, &reply[at..at + len]);
        verdicts.push((verdict, reply[at..at + len].to_vec()));
        at += len;
    }
    if chain_count != chain.count() {
        bail!("the guard's verdict count {chain_count} differs from the {} verdicts received", chain.count());
    }
    let cp_len = reply.get(at..at + 4).context("batch reply without its checkpoint length")?;
    let cp_len = u32::from_le_bytes(cp_len.try_into()?) as usize;
    let cp_bytes = reply.get(at + 4..).context("batch reply truncated")?;
    if cp_bytes.len() != cp_len || (cp_len != 0 && cp_len != checkpoint::LEN) {
        bail!("batch reply with a checkpoint of {} bytes (length field {cp_len})", cp_bytes.len());
    }
    let checkpoint = if cp_len == 0 {
        None
    } else {
        let cp = GuardCheckpoint::decode(cp_bytes).map_err(|e| anyhow!("guard checkpoint: {}", e.as_str()))?;
        cp.verify_against(guard_key, chain).map_err(|e| anyhow!("guard checkpoint: {}", e.as_str()))?;
        *checkpoints_verified += 1;
        Some(cp)
    };
    Ok(JudgedBatch { verdicts, checkpoint })
}

/// Intents per batch for [`judge_json`].
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
        bail!("the nonce is {} bytes; it must be 8 to 64 bytes", nonce.len());
    }
    let config = VmConfig {
        policy: Some(policy),
        platform: Some(crate::vmm::PlatformSigner(std::sync::Arc::new(platform))),
        ..VmConfig::default()
    };
    let mut vm = GuardVm::boot(template, config).context("booting the guard VM")?;
    let response = vm.request(kind::ATTEST, nonce).context("asking the guard for evidence")?;
    if response.status != status::OK {
        bail!("the guard gave no evidence: {}", crate::vmm::status_name(response.status));
    }
    vm.shutdown().context("shutting the guard down")?;
    Ok(response.payload)
}
