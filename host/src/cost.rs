//! Cost records (docs/cost.md): what judging each batch cost, counted by
//! the host (wall clock, the judging thread's CPU time, hardware events
//! where a PMU exists, VM exits) and by the guard (its counter ticks,
//! sealed in its channel reply), cross-checked, journaled as cost frames
//! and signed in runs by the cost key (cost statements).

use std::time::Instant;

use minicbor::{Decode, Encode};
use vigil_attest::cose_dual;
use vigil_attest::dual::{DualPublicKey, DualSigningKey};

use crate::journal::body::{AbsentCounter, CostBody, CostCounter, CostTier};
use crate::vmm::counters::{Reading, ThreadCounters};

/// Cost record version.
pub const RECORD_VERSION: u32 = 1;
/// Cost statement payload version.
pub const STATEMENT_VERSION: u32 = 1;
/// The COSE external AAD of every cost statement: no evidence, checkpoint
/// or other signature verifies as a cost statement, nor the reverse.
pub const STATEMENT_AAD: &[u8] = b"vigil-cost-statement-v1";
/// Cost records one statement signs (the last statement of a run may sign
/// fewer).
pub const RECORDS_PER_STATEMENT: usize = 64;

/// The cross-check's tolerance: a time may exceed the one that bounds it by
/// this fraction plus [`SLACK_NS`] (timer reads and scheduling jitter).
pub const TOLERANCE: f64 = 0.10;
/// The cross-check's fixed slack, in nanoseconds.
pub const SLACK_NS: u64 = 100_000;

/// What was counted around one batch, before it becomes a record: plain
/// numbers (the record's strings are made only when it is recorded, off
/// the judging path).
#[derive(Clone, Debug, Default)]
pub struct BatchCost {
    wall_ns: u64,
    cpu_ns: Option<u64>,
    /// (name, source, count) of each hardware counter open.
    hardware: Vec<(&'static str, &'static str, u64)>,
    /// The counters that could not be had, shared with their
    /// [`ThreadCounters`].
    absent: std::sync::Arc<[crate::vmm::counters::Absent]>,
    /// Hardware counters open but unreadable around this batch.
    unread: Vec<&'static str>,
    /// The guard's ticks, its arch's counter source, and the VM exits.
    guard: Option<(u64, &'static str, u64)>,
}

fn counter(name: &str, source: &str, unit: &str, value: u64) -> CostCounter {
    CostCounter { name: name.into(), source: source.into(), unit: unit.into(), value }
}

/// Measures a batch with a thread's counters: [`Meter::start`] before,
/// [`Meter::finish`] after.
pub struct Meter<'c> {
    counters: &'c ThreadCounters,
    before: Reading,
    started: Instant,
}

impl<'c> Meter<'c> {
    /// Reads the clock and the counters (the wall-clock span encloses the
    /// counters' span: CPU time never exceeds it honestly).
    pub fn start(counters: &'c ThreadCounters) -> Self {
        let started = Instant::now();
        let before = counters.read();
        Meter { counters, before, started }
    }

    /// Reads them again: the differences, with the wall time.
    pub fn finish(self) -> BatchCost {
        let after = self.counters.read();
        let wall_ns = self.started.elapsed().as_nanos() as u64;
        let cpu_ns = self.before.cpu_ns.zip(after.cpu_ns).map(|(a, b)| b.saturating_sub(a));
        let mut hardware = Vec::new();
        let mut unread = Vec::new();
        for (i, (name, source)) in self.counters.hardware().enumerate() {
            match (self.before.hardware.get(i).copied().flatten(), after.hardware.get(i).copied().flatten()) {
                (Some(a), Some(b)) => hardware.push((name, source, b.saturating_sub(a))),
                _ => unread.push(name),
            }
        }
        BatchCost { wall_ns, cpu_ns, hardware, absent: self.counters.absent_shared(), unread, guard: None }
    }
}

impl BatchCost {
    /// Adds what the guard reported and the VM exits the VMM counted.
    pub fn with_guard(mut self, judge_ticks: u64, arch: &str, exits: u64) -> Self {
        let source = if arch == "aarch64" { "guard:cntvct" } else { "guard:tsc" };
        self.guard = Some((judge_ticks, source, exits));
        self
    }

    /// The record pricing `verdict_seqs`, judged on `tier`, with the
    /// cross-check's flags.
    pub fn record(self, verdict_seqs: Vec<u64>, tier: CostTier, time_ms: u64) -> CostBody {
        let mut counters = vec![counter("wall_ns", "host:monotonic", "ns", self.wall_ns)];
        let mut absent: Vec<AbsentCounter> =
            self.absent.iter().map(|a| AbsentCounter { name: a.name.into(), reason: a.reason.clone() }).collect();
        absent.extend(self.unread.iter().map(|name| AbsentCounter {
            name: (*name).into(),
            reason: "not counted for this batch (the PMU counter was taken or the read failed)".into(),
        }));
        match self.cpu_ns {
            Some(ns) => counters.push(counter("cpu_ns", "host:thread-cpu-clock", "ns", ns)),
            None if absent.iter().any(|a| a.name == "cpu_ns") => {}
            None => absent.push(AbsentCounter {
                name: "cpu_ns".into(),
                reason: "the thread's CPU clock could not be read".into(),
            }),
        }
        counters.extend(self.hardware.iter().map(|(name, source, value)| counter(name, source, "events", *value)));
        if let Some((ticks, source, exits)) = self.guard {
            counters.push(counter("guard_ticks", source, "ticks", ticks));
            counters.push(counter("vm_exits", "host:vmm", "exits", exits));
        }
        let mut body =
            CostBody { version: RECORD_VERSION, time_ms, verdict_seqs, tier, counters, absent, flags: Vec::new() };
        body.flags = cross_check(&body);
        body
    }
}

/// Whether `value` exceeds `bound` beyond the tolerance.
fn exceeds(value: u64, bound: u64) -> bool {
    value as f64 > bound as f64 * (1.0 + TOLERANCE) + SLACK_NS as f64
}

/// The disagreements between a record's clocks (docs/cost.md,
/// "Cross-check"): the judging thread's CPU time cannot exceed the wall
/// time, nor can the guard's time (its ticks at the host-reported rate).
/// (The guard's counter keeps running while its vCPU thread waits for a
/// CPU, so the guard's time may exceed that thread's CPU time honestly.) A
/// guard or a host that lies about time is flagged, never corrected.
pub fn cross_check(record: &CostBody) -> Vec<String> {
    let mut flags = Vec::new();
    let wall = record.counter("wall_ns");
    let cpu = record.counter("cpu_ns");
    if let (Some(cpu), Some(wall)) = (cpu, wall)
        && exceeds(cpu, wall)
    {
        flags.push(format!("host CPU time {cpu} ns exceeds the wall time {wall} ns"));
    }
    if let (Some(ticks), Some(khz)) = (record.counter("guard_ticks"), record.tier.counter_khz.filter(|&k| k > 0)) {
        let guard_ns = u64::try_from(u128::from(ticks) * 1_000_000 / u128::from(khz)).unwrap_or(u64::MAX);
        if let Some(wall) = wall
            && exceeds(guard_ns, wall)
        {
            flags.push(format!("guard time {guard_ns} ns exceeds the host's wall time {wall} ns"));
        }
    }
    flags
}

/// A cost record as a statement names it: its frame and the SHA-384 of
/// its body.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct RecordRef {
    /// The cost frame's seq.
    #[n(0)]
    pub seq: u64,
    /// SHA-384 of the frame's body (the record's CBOR).
    #[cbor(n(1), with = "minicbor::bytes")]
    pub sha384: Vec<u8>,
}

/// The sum of one counter over a statement's records.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize)]
#[cbor(map)]
pub struct Total {
    /// Counter name.
    #[n(0)]
    pub name: String,
    /// Its unit.
    #[n(1)]
    pub unit: String,
    /// The sum (saturating).
    #[n(2)]
    pub sum: u64,
}

/// What a cost statement signs.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct StatementPayload {
    /// [`STATEMENT_VERSION`].
    #[n(0)]
    pub version: u32,
    /// The journal's id: a statement cannot be moved to another journal.
    #[cbor(n(1), with = "minicbor::bytes")]
    pub journal_id: Vec<u8>,
    /// The records signed, in journal order.
    #[n(2)]
    pub records: Vec<RecordRef>,
    /// Per counter, the sum over those records.
    #[n(3)]
    pub totals: Vec<Total>,
    /// Unix time in milliseconds.
    #[n(4)]
    pub time_ms: u64,
}

/// Sums counters by (name, unit), in first-seen order.
pub fn totals<'a>(records: impl IntoIterator<Item = &'a CostBody>) -> Vec<Total> {
    let mut totals: Vec<Total> = Vec::new();
    for record in records {
        for c in &record.counters {
            match totals.iter_mut().find(|t| t.name == c.name && t.unit == c.unit) {
                Some(t) => t.sum = t.sum.saturating_add(c.value),
                None => totals.push(Total { name: c.name.clone(), unit: c.unit.clone(), sum: c.value }),
            }
        }
    }
    totals
}

impl StatementPayload {
    /// Signs the payload with the cost key: the frame's public part.
    pub fn sign(&self, key: &DualSigningKey) -> Result<Vec<u8>, String> {
        let bytes = minicbor::to_vec(self).map_err(|e| e.to_string())?;
        cose_dual::sign(bytes, key, STATEMENT_AAD).map_err(|e| e.as_str().to_string())
    }

    /// Verifies a statement's two signatures against `trust` and decodes
    /// its payload.
    pub fn verify(public: &[u8], trust: &DualPublicKey) -> Result<Self, String> {
        let payload = cose_dual::verify(public, trust, STATEMENT_AAD).map_err(|e| e.to_string())?;
        let statement: StatementPayload = minicbor::decode(&payload).map_err(|e| format!("statement payload: {e}"))?;
        if statement.version != STATEMENT_VERSION {
            return Err(format!("statement version {} (this vigil reads {STATEMENT_VERSION})", statement.version));
        }
        Ok(statement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(counters: &[(&str, u64)], khz: Option<u32>) -> CostBody {
        let tier = CostTier {
            judge: 1,
            arch: "x86_64".into(),
            hypervisor: Some("kvm".into()),
            cpu_model: "test".into(),
            boot_seq: Some(3),
            evidence_sha384: None,
            counter_khz: khz,
        };
        let mut body = CostBody {
            version: RECORD_VERSION,
            time_ms: 0,
            verdict_seqs: vec![4, 5],
            tier,
            counters: counters.iter().map(|(n, v)| counter(n, "test", "ns", *v)).collect(),
            absent: vec![],
            flags: vec![],
        };
        body.flags = cross_check(&body);
        body
    }

    #[test]
    fn clocks_that_agree_raise_no_flag_and_a_lying_guard_or_host_is_flagged() {
        // 1 GHz counter: ticks = ns.
        let honest = record(&[("wall_ns", 1_000_000), ("cpu_ns", 990_000), ("guard_ticks", 800_000)], Some(1_000_000));
        assert!(honest.flags.is_empty(), "{:?}", honest.flags);
        let guard_lies =
            record(&[("wall_ns", 1_000_000), ("cpu_ns", 990_000), ("guard_ticks", 800_000_000)], Some(1_000_000));
        assert_eq!(guard_lies.flags.len(), 1, "{:?}", guard_lies.flags);
        // A guard whose vCPU thread waited for a CPU: more guard time than
        // CPU time, within the wall time — honest, not flagged.
        let preempted =
            record(&[("wall_ns", 1_000_000), ("cpu_ns", 300_000), ("guard_ticks", 900_000)], Some(1_000_000));
        assert!(preempted.flags.is_empty(), "{:?}", preempted.flags);
        let host_lies = record(&[("wall_ns", 1_000_000), ("cpu_ns", 50_000_000)], None);
        assert_eq!(host_lies.flags.len(), 1);
        // Within the tolerance: no flag.
        let close = record(&[("wall_ns", 1_000_000), ("guard_ticks", 1_150_000)], Some(1_000_000));
        assert!(close.flags.is_empty());
    }

    #[test]
    fn statements_verify_only_with_the_cost_key_and_their_own_context() {
        let cost = DualSigningKey::from_seeds(&[1; 32], &[2; 32]);
        let platform = DualSigningKey::from_seeds(&[3; 32], &[4; 32]);
        let payload = StatementPayload {
            version: STATEMENT_VERSION,
            journal_id: vec![7; 16],
            records: vec![RecordRef { seq: 9, sha384: vec![1; 48] }],
            totals: totals([&record(&[("wall_ns", 5)], None)]),
            time_ms: 1,
        };
        let signed = payload.sign(&cost).unwrap();
        assert_eq!(StatementPayload::verify(&signed, &cost.public()).unwrap(), payload);
        assert!(StatementPayload::verify(&signed, &platform.public()).is_err());
        let by_platform = payload.sign(&platform).unwrap();
        assert!(StatementPayload::verify(&by_platform, &cost.public()).is_err());
        // The same payload signed as evidence (no AAD) is not a statement.
        let as_evidence = cose_dual::sign(minicbor::to_vec(&payload).unwrap(), &cost, &[]).unwrap();
        assert!(StatementPayload::verify(&as_evidence, &cost.public()).is_err());
    }
}
