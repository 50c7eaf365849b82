//! The CBOR bodies of journal frames (docs/journal.md, "Bodies"). Every
//! body is a CBOR map with small unsigned integer keys; readers ignore keys
//! they do not know, and absent optional keys mean "not recorded".

use minicbor::{Decode, Encode};

use super::JournalError;

/// Body of an epoch frame: who opened the journal for append.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct EpochBody {
    /// Unix time in milliseconds.
    #[n(0)]
    pub time_ms: u64,
    /// The writing program and its version, e.g. `vigil 0.1.0`.
    #[n(1)]
    pub writer: String,
    /// Process id of the writer.
    #[n(2)]
    pub pid: u32,
    /// Bytes of torn tail cut when this writer opened the journal.
    #[n(3)]
    pub cut_bytes: Option<u64>,
    /// The sequence number of the torn frame that was cut.
    #[n(4)]
    pub cut_seq: Option<u64>,
}

/// Body of a boot frame: a guard VM booted and attested.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct BootBody {
    /// Unix time in milliseconds.
    #[n(0)]
    pub time_ms: u64,
    /// The evidence (tagged COSE_Sign) exactly as the guard returned it.
    #[cbor(n(1), with = "minicbor::bytes")]
    pub evidence: Vec<u8>,
    /// The nonce the host asked the evidence for.
    #[cbor(n(2), with = "minicbor::bytes")]
    pub nonce: Vec<u8>,
    /// SHA-384 of the policy bundle the guard was given.
    #[cbor(n(3), with = "minicbor::bytes")]
    pub policy_sha384: Vec<u8>,
    /// The reference image measurement the host verified the evidence
    /// against (SHA-384).
    #[cbor(n(4), with = "minicbor::bytes")]
    pub reference_image: Vec<u8>,
}

/// Body of a policy frame: a bundle, written once per SHA-384.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct PolicyBody {
    /// SHA-384 of `bundle`.
    #[cbor(n(0), with = "minicbor::bytes")]
    pub sha384: Vec<u8>,
    /// The compiled bundle (docs/policy.md).
    #[cbor(n(1), with = "minicbor::bytes")]
    pub bundle: Vec<u8>,
}

/// Which judge decided.
pub mod judge {
    /// `vigil-guard` in the recording process.
    pub const INPROC: u8 = 0;
    /// An attested guard VM over the encrypted channel.
    pub const VM: u8 = 1;
}

/// Body of a verdict frame: one judged intent.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct VerdictBody {
    /// Unix time in milliseconds when the verdict was received.
    #[n(0)]
    pub time_ms: u64,
    /// [`judge::INPROC`] or [`judge::VM`].
    #[n(1)]
    pub judge: u8,
    /// SHA-384 of the policy bundle (its policy frame comes earlier).
    #[cbor(n(2), with = "minicbor::bytes")]
    pub policy_sha384: Vec<u8>,
    /// For the VM judge: the seq of the boot frame of the guard that judged.
    #[n(3)]
    pub boot_seq: Option<u64>,
    /// The intent exactly as judged (CBOR, docs/intent.md); empty when the
    /// submitted JSON could not be converted (judged as empty bytes).
    #[cbor(n(4), with = "minicbor::bytes")]
    pub intent: Vec<u8>,
    /// The verdict record (docs/protocol.md, "Verdict record"); empty when
    /// the judge failed and the intent was denied fail-closed.
    #[cbor(n(5), with = "minicbor::bytes")]
    pub verdict: Vec<u8>,
    /// Evaluation time in nanoseconds, where measured.
    #[n(6)]
    pub eval_ns: Option<u64>,
    /// Why the intent could not be converted to CBOR, where it could not.
    #[n(7)]
    pub detail: Option<String>,
    /// Why the judge failed (the intent was then denied fail-closed).
    #[n(8)]
    pub judge_failure: Option<String>,
    /// The intent id the caller saw (the record carries it too, when there
    /// is a record).
    #[n(9)]
    pub intent_id: u64,
    /// Who submitted the intent, where known (`vigil serve`: the peer of
    /// its Unix socket connection, from `SO_PEERCRED`).
    #[n(10)]
    pub peer: Option<Peer>,
}

/// The process that submitted an intent to the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct Peer {
    /// Its user id.
    #[n(0)]
    pub uid: u32,
    /// Its process id (0 when the kernel did not say).
    #[n(1)]
    pub pid: u32,
}

/// Body of a guard-checkpoint frame.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct GuardCheckpointBody {
    /// Unix time in milliseconds.
    #[n(0)]
    pub time_ms: u64,
    /// The boot frame of the guard that signed it.
    #[n(1)]
    pub boot_seq: u64,
    /// The checkpoint (docs/protocol.md, "Guard checkpoints").
    #[cbor(n(2), with = "minicbor::bytes")]
    pub checkpoint: Vec<u8>,
    /// Whether this is the guard's final checkpoint (at shutdown).
    #[n(3)]
    pub last: bool,
}

/// How an ESCALATE verdict was settled.
pub mod outcome {
    /// A person allowed it.
    pub const APPROVED: u8 = 0;
    /// A person denied it.
    pub const DENIED: u8 = 1;
    /// Nobody decided in time: DENY.
    pub const TIMED_OUT: u8 = 2;
    /// The daemon stopped while it waited: DENY.
    pub const STOPPED: u8 = 3;
    /// Too many approvals were already waiting: DENY at once.
    pub const TOO_MANY_WAITING: u8 = 4;

    /// Lower-case name, or `None` for a code this version does not define.
    pub fn name(code: u8) -> Option<&'static str> {
        Some(match code {
            APPROVED => "approved",
            DENIED => "denied",
            TIMED_OUT => "timed_out",
            STOPPED => "stopped",
            TOO_MANY_WAITING => "too_many_waiting",
            _ => return None,
        })
    }
}

/// Body of an approval frame: the decision on one ESCALATE verdict.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct ApprovalBody {
    /// Unix time in milliseconds of the decision.
    #[n(0)]
    pub time_ms: u64,
    /// The verdict frame it settles (an ESCALATE verdict, earlier in the
    /// same journal).
    #[n(1)]
    pub verdict_seq: u64,
    /// That verdict's intent id.
    #[n(2)]
    pub intent_id: u64,
    /// [`outcome`]: approved (ALLOW), denied, timed out or stopped (DENY).
    #[n(3)]
    pub outcome: u8,
    /// Who decided (approved or denied), from their socket connection.
    #[n(4)]
    pub by: Option<Peer>,
    /// The approval id people used.
    #[n(5)]
    pub approval_id: String,
}

/// Body of a cost frame: what judging one batch cost (docs/cost.md).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct CostBody {
    /// Record version, 1.
    #[n(0)]
    pub version: u32,
    /// Unix time in milliseconds.
    #[n(1)]
    pub time_ms: u64,
    /// The seqs of the verdict frames it prices (one batch).
    #[n(2)]
    pub verdict_seqs: Vec<u64>,
    /// Who judged, on what.
    #[n(3)]
    pub tier: CostTier,
    /// What was counted.
    #[n(4)]
    pub counters: Vec<CostCounter>,
    /// What could not be counted, and why.
    #[n(5)]
    pub absent: Vec<AbsentCounter>,
    /// Cross-check disagreements (empty when the clocks agree).
    #[n(6)]
    pub flags: Vec<String>,
}

/// The tier of a cost record: what did the work.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize)]
#[cbor(map)]
pub struct CostTier {
    /// [`judge::INPROC`] or [`judge::VM`].
    #[n(0)]
    pub judge: u8,
    /// The judge's architecture (`x86_64`, `aarch64`).
    #[n(1)]
    pub arch: String,
    /// The hypervisor (`kvm`, `hvf`), for the VM judge.
    #[n(2)]
    pub hypervisor: Option<String>,
    /// The CPU model as the host reports it (not attested).
    #[n(3)]
    pub cpu_model: String,
    /// The boot frame of the guard that judged (VM judge).
    #[n(4)]
    pub boot_seq: Option<u64>,
    /// SHA-384 of that guard's boot evidence (VM judge).
    #[cbor(n(5), with = "minicbor::bytes")]
    pub evidence_sha384: Option<Vec<u8>>,
    /// The rate of the guard's counter in kHz, as the host reports it.
    #[n(6)]
    pub counter_khz: Option<u32>,
}

/// One counted quantity.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize)]
#[cbor(map)]
pub struct CostCounter {
    /// Its name (`wall_ns`, `cpu_ns`, `guard_ticks`, `vm_exits`, `cycles`,
    /// `instructions`, `branch_misses`).
    #[n(0)]
    pub name: String,
    /// Who counted it (`host:monotonic`, `host:thread-cpu-clock`,
    /// `guard:tsc`, `guard:cntvct`, `host:vmm`, `perf:guest`, `perf:user`).
    #[n(1)]
    pub source: String,
    /// Its unit (`ns`, `ticks`, `exits`, `events`).
    #[n(2)]
    pub unit: String,
    /// The count.
    #[n(3)]
    pub value: u64,
}

/// A counter that could not be had.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize)]
#[cbor(map)]
pub struct AbsentCounter {
    /// Its name.
    #[n(0)]
    pub name: String,
    /// Why (`no PMU`, `not permitted`, `unsupported`, …).
    #[n(1)]
    pub reason: String,
}

impl CostBody {
    /// The value of counter `name`, if counted.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.counters.iter().find(|c| c.name == name).map(|c| c.value)
    }

    /// The record as JSON (export, reports).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "version": self.version,
            "time_ms": self.time_ms,
            "verdict_seqs": self.verdict_seqs,
            "tier": {
                "judge": if self.tier.judge == judge::VM { "vm" } else { "inproc" },
                "arch": self.tier.arch,
                "hypervisor": self.tier.hypervisor,
                "cpu_model": self.tier.cpu_model,
                "cpu_model_source": "host-reported",
                "boot_seq": self.tier.boot_seq,
                "evidence_sha384": self.tier.evidence_sha384.as_ref().map(hex::encode),
                "counter_khz": self.tier.counter_khz,
            },
            "counters": self.counters,
            "absent": self.absent,
            "flags": self.flags,
        })
    }
}

/// Encodes a body.
pub fn encode<T: Encode<()>>(body: &T) -> Vec<u8> {
    minicbor::to_vec(body).expect("encoding into a Vec cannot fail")
}

/// Decodes the body of frame `seq`.
pub fn decode<'b, T: Decode<'b, ()>>(seq: u64, bytes: &'b [u8]) -> Result<T, JournalError> {
    minicbor::decode(bytes).map_err(|e| JournalError::Body { seq, detail: e.to_string() })
}

/// Unix time now, in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_body_round_trips_and_omits_absent_fields() {
        let body = VerdictBody {
            time_ms: 5,
            judge: judge::VM,
            policy_sha384: vec![1; 48],
            boot_seq: Some(3),
            intent: vec![0xa0],
            verdict: vec![0; 32],
            eval_ns: None,
            detail: None,
            judge_failure: None,
            intent_id: 9,
            peer: Some(Peer { uid: 1000, pid: 42 }),
        };
        let bytes = encode(&body);
        assert_eq!(decode::<VerdictBody>(1, &bytes).unwrap(), body);
        let without = VerdictBody { boot_seq: None, ..body.clone() };
        assert!(encode(&without).len() < bytes.len());
        assert!(matches!(decode::<VerdictBody>(4, &bytes[..bytes.len() - 1]), Err(JournalError::Body { seq: 4, .. })));
    }
}
