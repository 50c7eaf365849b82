//! Checking and summing a journal's cost records (docs/cost.md): `vigil
//! cost verify` (every statement's two signatures, every record signed
//! exactly once and unchanged, sums, every verdict priced exactly once,
//! the cross-check recomputed) and `vigil cost report` (totals by a key,
//! out of the journal itself).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha384};
use vigil_attest::dual::DualPublicKey;
use vigil_guard::{intent, verdict_codec};

use crate::cost::{self, StatementPayload};
use crate::journal::body::{self, CostBody, VerdictBody, judge};
use crate::journal::scan::{self, ScanOptions};
use crate::journal::{JournalError, Kind, MasterKey};

/// What `vigil cost verify` found.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Cost statements whose two signatures verified.
    pub statements: u64,
    /// Cost records seen.
    pub records: u64,
    /// Verdicts seen.
    pub verdicts: u64,
    /// Whether record contents were checked (with the data key).
    pub contents_checked: bool,
    /// Records whose cross-check flagged a disagreement: (seq, flags).
    pub flagged: Vec<(u64, Vec<String>)>,
    /// Every failure; empty when the costs verify.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// Whether everything verified.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

// What a verdict frame needs from the cost records.
/// Judged: must be priced exactly once.
const UNPRICED: u8 = 0;
/// Priced once (set on top of the state).
const PRICED: u8 = 1;
/// A fail-closed DENY after a judge failure: nothing was judged, so it
/// needs no price.
const EXEMPT: u8 = 2;

/// A bounded list of seqs for a message.
fn seq_list(seqs: &[u64]) -> String {
    let shown: Vec<String> = seqs.iter().take(10).map(u64::to_string).collect();
    let more = if seqs.len() > 10 { format!(" and {} more", seqs.len() - 10) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

/// Verifies the cost statements of the journal at `path` against
/// `cost_trust`; with `key` (the data key) also the records they sign.
/// The journal's chain and checkpoints are verified against
/// `platform_trust` on the way: a journal that fails that is an error, as
/// is one that no longer reaches `reach`, when given (the end an earlier
/// verifying read found; [`ScanOptions::reach`]).
pub fn verify(
    path: &Path,
    key: Option<&MasterKey>,
    platform_trust: &DualPublicKey,
    cost_trust: &DualPublicKey,
    reach: Option<scan::Reach>,
) -> Result<VerifyReport, JournalError> {
    let mut report = VerifyReport { contents_checked: key.is_some(), ..VerifyReport::default() };
    // seq → (SHA-384 of the body, record) for records not yet signed.
    let mut unsigned: BTreeMap<u64, Option<([u8; 48], CostBody)>> = BTreeMap::new();
    let mut signed: BTreeMap<u64, u64> = BTreeMap::new();
    let mut verdicts: BTreeMap<u64, VerdictSeen> = BTreeMap::new();
    let mut boots: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut journal_id = None;
    let options = ScanOptions { trust: Some(platform_trust), key, reach, ..Default::default() };
    let summary = scan::scan_file(path, options, |f| {
        match f.kind {
            Kind::Verdict => {
                report.verdicts += 1;
                // A fail-closed DENY recorded because the judge failed was
                // not judged: it needs no price (it may still have one).
                let seen = match f.body {
                    Some(bytes) => {
                        let v: VerdictBody = body::decode(f.seq, bytes)?;
                        let state = if v.judge_failure.is_some() { EXEMPT } else { UNPRICED };
                        VerdictSeen { state, judge: Some(v.judge), boot_seq: v.boot_seq }
                    }
                    None => VerdictSeen { state: UNPRICED, judge: None, boot_seq: None },
                };
                verdicts.insert(f.seq, seen);
            }
            Kind::Boot => {
                if let Some(bytes) = f.body {
                    let boot: body::BootBody = body::decode(f.seq, bytes)?;
                    boots.insert(f.seq, Sha384::digest(&boot.evidence).to_vec());
                }
            }
            Kind::Cost => {
                report.records += 1;
                let record = match f.body {
                    Some(bytes) => {
                        let record: CostBody = body::decode(f.seq, bytes)?;
                        check_record(f.seq, &record, &mut verdicts, &boots, &mut report);
                        Some((Sha384::digest(bytes).into(), record))
                    }
                    None => None,
                };
                unsigned.insert(f.seq, record);
            }
            Kind::CostStatement => match StatementPayload::verify(f.public, cost_trust) {
                Ok(statement) => {
                    report.statements += 1;
                    check_statement(f.seq, &statement, &mut unsigned, &mut signed, &mut journal_id, &mut report);
                }
                Err(e) => report.problems.push(format!("cost statement at seq {}: {e}", f.seq)),
            },
            _ => {}
        }
        Ok(())
    })?;
    let header_id = summary.journal_id.clone();
    if let Some(id) = journal_id
        && id != header_id
    {
        report.problems.push(format!("cost statements name journal {id}, not this journal ({header_id})"));
    }
    if !unsigned.is_empty() {
        let seqs: Vec<u64> = unsigned.keys().copied().collect();
        report.problems.push(format!(
            "{} cost record(s) signed by no statement (seq {}): tampered, or the writer stopped before signing them",
            seqs.len(),
            seq_list(&seqs)
        ));
    }
    if key.is_some() {
        let uncovered: Vec<u64> = verdicts.iter().filter(|(_, v)| v.state == UNPRICED).map(|(s, _)| *s).collect();
        if !uncovered.is_empty() {
            report.problems.push(format!(
                "{} verdict(s) priced by no cost record (seq {})",
                uncovered.len(),
                seq_list(&uncovered)
            ));
        }
    }
    Ok(report)
}

/// A verdict frame as the cost check needs it.
struct VerdictSeen {
    state: u8,
    /// Its judge and guard boot (with the data key).
    judge: Option<u8>,
    boot_seq: Option<u64>,
}

/// A record's own checks: the verdicts it prices exist, earlier, priced
/// once, judged by the judge (and guard boot) its tier names, whose boot
/// evidence has the digest it names; its flags are what its counters give.
fn check_record(
    seq: u64,
    record: &CostBody,
    verdicts: &mut BTreeMap<u64, VerdictSeen>,
    boots: &BTreeMap<u64, Vec<u8>>,
    report: &mut VerifyReport,
) {
    if record.version != cost::RECORD_VERSION {
        report.problems.push(format!("cost record at seq {seq}: version {}", record.version));
    }
    if record.verdict_seqs.is_empty() {
        report.problems.push(format!("cost record at seq {seq} prices no verdict"));
    }
    if let (Some(boot_seq), Some(digest)) = (record.tier.boot_seq, &record.tier.evidence_sha384)
        && boots.get(&boot_seq) != Some(digest)
    {
        report.problems.push(format!(
            "cost record at seq {seq} names boot {boot_seq} with evidence that is not that boot frame's"
        ));
    }
    for v in &record.verdict_seqs {
        if let Some(seen) = verdicts.get(v)
            && let Some(judge) = seen.judge
            && (judge != record.tier.judge || (judge == judge::VM && seen.boot_seq != record.tier.boot_seq))
        {
            report.problems.push(format!(
                "cost record at seq {seq} prices verdict {v}, which another judge or guard boot decided"
            ));
        }
        match verdicts.get_mut(v).map(|seen| &mut seen.state) {
            Some(n) if *n == UNPRICED || *n == EXEMPT => *n |= PRICED,
            Some(_) => report.problems.push(format!("verdict {v} is priced twice (again by the record at seq {seq})")),
            None => {
                report.problems.push(format!("cost record at seq {seq} prices seq {v}, which is no earlier verdict"))
            }
        }
    }
    let expected = cost::cross_check(record);
    if expected != record.flags {
        report.problems.push(format!(
            "cost record at seq {seq}: its flags {:?} are not what its counters give {expected:?}",
            record.flags
        ));
    }
    if !record.flags.is_empty() {
        report.flagged.push((seq, record.flags.clone()));
    }
}

fn check_statement(
    seq: u64,
    statement: &StatementPayload,
    unsigned: &mut BTreeMap<u64, Option<([u8; 48], CostBody)>>,
    signed: &mut BTreeMap<u64, u64>,
    journal_id: &mut Option<String>,
    report: &mut VerifyReport,
) {
    let id = hex::encode(&statement.journal_id);
    if journal_id.as_ref().is_some_and(|known| *known != id) {
        report.problems.push(format!("cost statement at seq {seq} names another journal ({id})"));
    }
    journal_id.get_or_insert(id);
    let mut records = Vec::with_capacity(statement.records.len());
    let mut contents = true;
    for r in &statement.records {
        if let Some(by) = signed.get(&r.seq) {
            report.problems.push(format!("cost record {} is signed twice (statements {by} and {seq})", r.seq));
            continue;
        }
        match unsigned.remove(&r.seq) {
            Some(Some((digest, record))) => {
                if digest[..] != r.sha384[..] {
                    report
                        .problems
                        .push(format!("cost record {} differs from what the statement at seq {seq} signed", r.seq));
                }
                records.push(record);
            }
            Some(None) => contents = false,
            None => report.problems.push(format!(
                "the statement at seq {seq} signs cost record {}, which is not an earlier cost frame",
                r.seq
            )),
        }
        signed.insert(r.seq, seq);
    }
    if contents && records.len() == statement.records.len() && cost::totals(&records) != statement.totals {
        report.problems.push(format!("the totals of the statement at seq {seq} are not the sums of its records"));
    }
}

/// What a cost report groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// The intent's agent.
    Agent,
    /// The intent's session.
    Session,
    /// The intent's tool.
    Tool,
    /// The verdict's decision.
    Decision,
    /// In process or guard VM.
    Judge,
    /// Judge, architecture, hypervisor and CPU model.
    Tier,
}

/// One group's totals: each verdict gets an equal share of its batch's
/// counts (the last verdict of a batch also gets the remainder).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Group {
    /// The key.
    pub key: String,
    /// Verdicts in the group.
    pub verdicts: u64,
    /// Of those, verdicts whose cost record the cross-check flagged.
    pub flagged: u64,
    /// Counter totals by name.
    pub counters: BTreeMap<String, u64>,
    /// `--price` × gigacycles, where cycles were counted (hardware
    /// `cycles`, else the guard's `guard_ticks`).
    pub price: Option<f64>,
}

/// Which verdicts a report takes: Unix milliseconds `[from, to)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    /// First millisecond, inclusive.
    pub from_ms: Option<u64>,
    /// Last millisecond, exclusive.
    pub to_ms: Option<u64>,
}

/// Totals of the journal's costs by `by`, attributed to verdicts.
pub fn report(
    path: &Path,
    key: &MasterKey,
    platform_trust: &DualPublicKey,
    by: GroupBy,
    window: Window,
    price_per_gigacycle: Option<f64>,
) -> Result<Vec<Group>, JournalError> {
    let mut keys: HashMap<u64, (String, u64)> = HashMap::new();
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let options = ScanOptions { trust: Some(platform_trust), key: Some(key), ..Default::default() };
    scan::scan_file(path, options, |f| {
        let Some(bytes) = f.body else { return Ok(()) };
        match f.kind {
            Kind::Verdict => {
                let v: VerdictBody = body::decode(f.seq, bytes)?;
                keys.insert(f.seq, (verdict_key(by, &v), v.time_ms));
            }
            Kind::Cost => {
                let record: CostBody = body::decode(f.seq, bytes)?;
                attribute(&record, by, window, &mut keys, &mut groups);
            }
            _ => {}
        }
        Ok(())
    })?;
    let mut out: Vec<Group> = groups.into_values().collect();
    if let Some(price) = price_per_gigacycle {
        for g in &mut out {
            let cycles = g.counters.get("cycles").or_else(|| g.counters.get("guard_ticks"));
            g.price = cycles.map(|c| *c as f64 / 1e9 * price);
        }
    }
    Ok(out)
}

fn attribute(
    record: &CostBody,
    by: GroupBy,
    window: Window,
    keys: &mut HashMap<u64, (String, u64)>,
    groups: &mut BTreeMap<String, Group>,
) {
    let n = record.verdict_seqs.len() as u64;
    for (i, seq) in record.verdict_seqs.iter().enumerate() {
        let Some((key, time_ms)) = keys.remove(seq) else { continue };
        if window.from_ms.is_some_and(|from| time_ms < from) || window.to_ms.is_some_and(|to| time_ms >= to) {
            continue;
        }
        let key = if by == GroupBy::Tier { tier_key(record) } else { key };
        let group = groups.entry(key.clone()).or_insert_with(|| Group { key, ..Group::default() });
        group.verdicts += 1;
        group.flagged += u64::from(!record.flags.is_empty());
        let last = i as u64 + 1 == n;
        for c in &record.counters {
            let share = c.value / n + if last { c.value % n } else { 0 };
            let total = group.counters.entry(c.name.clone()).or_insert(0);
            *total = total.saturating_add(share);
        }
    }
}

/// The group of a verdict (for every key but the tier, which is the cost
/// record's).
fn verdict_key(by: GroupBy, v: &VerdictBody) -> String {
    let from_intent = |pick: for<'a> fn(&intent::Intent<'a>) -> &'a str| match intent::decode(&v.intent) {
        Ok(i) if pick(&i).is_empty() => "(none)".to_string(),
        Ok(i) => pick(&i).to_string(),
        Err(_) => "(malformed intent)".into(),
    };
    match by {
        GroupBy::Agent => from_intent(|i| i.agent),
        GroupBy::Session => from_intent(|i| i.session),
        GroupBy::Tool => from_intent(|i| i.tool),
        GroupBy::Decision => match verdict_codec::decode(&v.verdict) {
            Ok((verdict, _)) => verdict.decision.as_str().to_string(),
            // No record: the judge failed and the intent was denied.
            Err(_) => "DENY".into(),
        },
        GroupBy::Judge | GroupBy::Tier => if v.judge == judge::VM { "vm" } else { "inproc" }.into(),
    }
}

/// The tier of a cost record: judge/arch/hypervisor/CPU model.
fn tier_key(r: &CostBody) -> String {
    format!(
        "{}/{}/{}/{}",
        if r.tier.judge == judge::VM { "vm" } else { "inproc" },
        r.tier.arch,
        r.tier.hypervisor.as_deref().unwrap_or("-"),
        r.tier.cpu_model
    )
}
