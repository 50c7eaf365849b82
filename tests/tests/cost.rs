//! Cost records end to end (docs/cost.md): a guard VM and the in-process
//! judge price every verdict; `cost verify` accepts that journal and
//! catches a forged, re-priced, dropped or wrongly signed record; a guard
//! that lies about its time is flagged; report totals are the sums of the
//! records.

use std::path::PathBuf;
use std::sync::Arc;

use vigil::cost::{self, RecordRef, StatementPayload};
use vigil::cost_audit::{self, GroupBy, Window};
use vigil::journal::body::{self, CostBody, judge};
use vigil::journal::{Journal, Kind, WriterOptions};
use vigil::recording::{self, Recorder};
use vigil::vm_judge::{TrustAnchors, VmJudge};
use vigil::vmm::{BootTemplate, PlatformSigner, VmConfig};
use vigil_tests::require_kvm;
use vigil_unikernel::abi::kind;

struct Keys {
    dir: PathBuf,
}

impl Keys {
    fn new(name: &str) -> Keys {
        let dir = std::env::temp_dir().join(format!("vigil-cost-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        vigil::keys::init(&dir, false).unwrap();
        Keys { dir }
    }

    fn journal(&self) -> PathBuf {
        self.dir.join("j.vgj")
    }

    fn verify(&self, key: bool) -> cost_audit::VerifyReport {
        let (_, platform) = vigil::keys::platform_pair(&self.dir).unwrap();
        let (_, cost) = vigil::keys::cost_pair(&self.dir).unwrap();
        let master = vigil::keys::read_journal_key(&self.dir).unwrap();
        cost_audit::verify(&self.journal(), key.then_some(&master), &platform, &cost, None).unwrap()
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn intents(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let command = if i % 3 == 0 { format!("cat /etc/shadow-{i}") } else { format!("ls -la /tmp/{i}") };
            format!(r#"{{"id":{i},"agent":"agent-{}","tool":"shell","args":{{"command":"{command}"}}}}"#, i % 2)
        })
        .collect()
}

/// Judges `n` intents in process into the journal (one cost record per
/// chunk of 256).
fn judge_inproc(keys: &Keys, n: usize) {
    let bundle = vigil::policy::default_bundle();
    let mut recorder = Recorder::open(&keys.dir, Some(&keys.journal()), bundle).unwrap();
    let texts = intents(n);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    vigil::eval::judge_inproc(bundle, &refs, &mut recorder, |_| Ok(())).unwrap();
    recorder.close().unwrap();
}

fn anchors(template: &BootTemplate, platform: vigil_attest::dual::DualPublicKey) -> TrustAnchors {
    let reference = vigil::reference::Reference {
        image: *template.image().measurement(),
        arch: vigil::vmm::GuestArch::HOST.name().into(),
        hypervisors: vec!["kvm".into()],
        platform: "none".into(),
        features: template.image().features().to_vec(),
        source: "the test's template".into(),
    };
    let allow_test_image = reference.features.iter().any(|f| f == "test-hooks");
    TrustAnchors { platform, reference, allow_test_image }
}

/// Boots `image`, optionally makes it lie about its ticks, judges `n`
/// intents in batches, and records everything; returns the records.
fn judge_in_vm(keys: &Keys, image: &[u8], n: usize, inflate: bool) -> Vec<CostBody> {
    let bundle = vigil::policy::default_bundle();
    let template = BootTemplate::from_elf(image).unwrap();
    let (secret, public) = vigil::keys::platform_pair(&keys.dir).unwrap();
    let config = VmConfig { platform: Some(PlatformSigner(Arc::new(secret))), ..VmConfig::default() };
    let policy = vigil::vmm::PolicyImage::new(bundle.to_vec());
    let mut judge = VmJudge::start(&template, policy, &anchors(&template, public), config).unwrap();
    if inflate {
        judge.inject_fault(kind::TEST_INFLATE_COST).unwrap();
    }
    let mut recorder = Recorder::open(&keys.dir, Some(&keys.journal()), bundle).unwrap();
    recorder.boot(&judge).unwrap();
    let encoded = recording::encode_json(&intents(n).iter().map(String::as_str).collect::<Vec<_>>());
    let all = recording::submissions(&encoded);
    for batch in recording::size_batches(&all) {
        recording::judge_in_vm(&mut judge, &mut recorder, batch).unwrap();
    }
    recorder.close().unwrap();
    records(keys)
}

/// Every cost record in the journal, decrypted.
fn records(keys: &Keys) -> Vec<CostBody> {
    let master = vigil::keys::read_journal_key(&keys.dir).unwrap();
    let mut out = Vec::new();
    let options = vigil::journal::scan::ScanOptions { key: Some(&master), ..Default::default() };
    vigil::journal::scan::scan_file(&keys.journal(), options, |f| {
        if f.kind == Kind::Cost {
            out.push(body::decode(f.seq, f.body.unwrap())?);
        }
        Ok(())
    })
    .unwrap();
    out
}

/// Opens the journal as its writer would (data key and platform key), as
/// an insider who does not hold the cost key.
fn insider(keys: &Keys) -> Journal {
    let master = vigil::keys::read_journal_key(&keys.dir).unwrap();
    let (platform, _) = vigil::keys::platform_pair(&keys.dir).unwrap();
    Journal::open(&keys.journal(), &master, Arc::new(platform), WriterOptions::default()).unwrap()
}

/// Signs a statement over one record with `key` and appends it, as a
/// writer would.
fn append_statement(
    journal: &Journal,
    key: &vigil_attest::dual::DualSigningKey,
    record: RecordRef,
    totals: Vec<cost::Total>,
) {
    let statement = StatementPayload {
        version: cost::STATEMENT_VERSION,
        journal_id: journal.journal_id().to_vec(),
        records: vec![record],
        totals,
        time_ms: 0,
    };
    journal.append_public(Kind::CostStatement, &statement.sign(key).unwrap(), &[]).unwrap();
}

/// Every cost statement's public part (its COSE_Sign), as signed.
fn statements(keys: &Keys) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    vigil::journal::scan::scan_file(&keys.journal(), Default::default(), |f| {
        if f.kind == Kind::CostStatement {
            out.push(f.public.to_vec());
        }
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn a_statement_replayed_in_its_journal_or_moved_to_another_is_caught() {
    // The cost key's own, valid statement from journal A: appended again
    // to A (its records signed twice) and copied into journal B (whose
    // cost frames happen to have the same seqs).
    let a = Keys::new("move-a");
    judge_inproc(&a, 10);
    let signed = statements(&a).remove(0);
    let journal = insider(&a);
    journal.append_public(Kind::CostStatement, &signed, &[]).unwrap();
    journal.close().unwrap();
    let all = a.verify(true).problems.join("\n");
    assert!(all.contains("is signed twice"), "{all}");

    let b = Keys::new("move-b");
    // B uses A's keys: the copied statement's signatures verify.
    for file in ["platform.key", "platform.pub", "cost.key", "cost.pub", "journal.key", "config.toml"] {
        std::fs::copy(a.dir.join(file), b.dir.join(file)).unwrap();
    }
    judge_inproc(&b, 10);
    let journal = insider(&b);
    journal.append_public(Kind::CostStatement, &signed, &[]).unwrap();
    journal.close().unwrap();
    let all = b.verify(true).problems.join("\n");
    assert!(all.contains("names another journal") || all.contains("not this journal"), "{all}");
}

#[test]
fn in_process_costs_verify_and_carry_what_was_counted_or_why_not() {
    let keys = Keys::new("inproc");
    judge_inproc(&keys, 600);
    let report = keys.verify(true);
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!((report.verdicts, report.records, report.statements), (600, 3, 1));
    for record in records(&keys) {
        assert_eq!(record.tier.judge, judge::INPROC);
        assert!(record.counter("wall_ns").unwrap() > 0);
        assert!(record.counter("cpu_ns").is_some());
        // No guard, so no guard ticks; each hardware event is counted or
        // absent with a reason — never a made-up zero.
        assert_eq!(record.counter("guard_ticks"), None);
        for event in ["cycles", "instructions", "branch_misses"] {
            let counted = record.counter(event).is_some();
            let absent = record.absent.iter().any(|a| a.name == event && !a.reason.is_empty());
            assert!(counted != absent, "{event}: counted {counted}, absent {absent}");
        }
    }
    // Signatures only (a holder of cost.pub alone).
    let signatures = keys.verify(false);
    assert!(signatures.ok() && !signatures.contents_checked, "{:?}", signatures.problems);
}

#[test]
fn guard_costs_carry_the_guards_ticks_and_a_lying_guard_is_flagged() {
    require_kvm!();
    let keys = Keys::new("vm");
    let honest = judge_in_vm(&keys, vigil::guard_image::production(), 300, false);
    assert_eq!(honest.len(), 2, "300 intents: two batches");
    for record in &honest {
        assert_eq!(record.tier.judge, judge::VM);
        assert_eq!(record.tier.hypervisor.as_deref(), Some("kvm"));
        assert_eq!(record.tier.evidence_sha384.as_ref().map(Vec::len), Some(48));
        assert!(record.counter("guard_ticks").unwrap() > 0);
        assert!(record.counter("vm_exits").is_some());
        assert!(record.flags.is_empty(), "honest guard flagged: {:?}", record.flags);
    }
    assert!(keys.verify(true).ok());

    let liar = Keys::new("liar");
    let lied = judge_in_vm(&liar, vigil::guard_image::test_hooks(), 300, true);
    assert!(lied.iter().all(|r| r.flags.iter().any(|f| f.contains("guard time"))), "{lied:?}");
    let report = liar.verify(true);
    // Flagged, listed — and not a verification failure: the record says
    // truthfully what the guard claimed.
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.flagged.len(), 2);
    // Reports say which verdicts' costs are flagged.
    let (_, platform) = vigil::keys::platform_pair(&liar.dir).unwrap();
    let master = vigil::keys::read_journal_key(&liar.dir).unwrap();
    let groups =
        cost_audit::report(&liar.journal(), &master, &platform, GroupBy::Judge, Window::default(), None).unwrap();
    assert_eq!((groups[0].verdicts, groups[0].flagged), (300, 300));
}

#[test]
fn a_record_re_priced_or_forged_by_an_insider_without_the_cost_key_is_caught() {
    let keys = Keys::new("forge");
    judge_inproc(&keys, 300);
    let original = records(&keys);
    let journal = insider(&keys);
    // Price the first verdicts again, at nothing, signed with the platform
    // key instead of the cost key.
    let mut forged = original[0].clone();
    forged.counters.iter_mut().for_each(|c| c.value = 1);
    // ... and claims a guard judged them.
    forged.tier.judge = judge::VM;
    forged.flags = cost::cross_check(&forged);
    let bytes = body::encode(&forged);
    let seq = journal.append(Kind::Cost, &bytes).unwrap();
    let (platform, _) = vigil::keys::platform_pair(&keys.dir).unwrap();
    use sha2::Digest;
    let record = RecordRef { seq, sha384: sha2::Sha384::digest(&bytes).to_vec() };
    append_statement(&journal, &platform, record, cost::totals([&forged]));
    journal.close().unwrap();
    let report = keys.verify(true);
    assert!(!report.ok());
    let all = report.problems.join("\n");
    assert!(all.contains("another key than the trusted one"), "{all}");
    assert!(all.contains("priced twice"), "{all}");
    assert!(all.contains("signed by no statement"), "{all}");
    assert!(all.contains("another judge or guard boot decided"), "{all}");
}

#[test]
fn a_record_changed_under_its_statement_or_left_out_of_it_is_caught() {
    let keys = Keys::new("swap");
    judge_inproc(&keys, 10);
    let journal = insider(&keys);
    let (cost_key, _) = vigil::keys::cost_pair(&keys.dir).unwrap();
    // A statement (by the real cost key) whose digest is of other bytes
    // than the record it names, and whose totals do not add up.
    let mut record = records(&keys)[0].clone();
    record.verdict_seqs.clear();
    let bytes = body::encode(&record);
    let seq = journal.append(Kind::Cost, &bytes).unwrap();
    append_statement(&journal, &cost_key, RecordRef { seq, sha384: vec![0; 48] }, vec![]);
    journal.close().unwrap();
    let all = keys.verify(true).problems.join("\n");
    assert!(all.contains("differs from what the statement"), "{all}");
    assert!(all.contains("prices no verdict"), "{all}");
}

#[test]
fn a_verdict_whose_cost_record_was_dropped_is_reported() {
    let keys = Keys::new("drop");
    // Verdicts recorded without their cost record (a writer that skipped
    // it): appended directly, then closed.
    judge_inproc(&keys, 5);
    let bundle = vigil::policy::default_bundle();
    let mut recorder = Recorder::open(&keys.dir, Some(&keys.journal()), bundle).unwrap();
    let judge = vigil::judge::InprocJudge::new(bundle).unwrap();
    let encoded =
        recording::encode_json(&["{\"id\":1,\"agent\":\"a\",\"tool\":\"shell\",\"args\":{\"command\":\"ls\"}}"]);
    let intent = &recording::submissions(&encoded)[0];
    recorder.inproc(intent, &judge.evaluate(intent.cbor), 1).unwrap();
    // A fail-closed DENY after a judge failure judged nothing: it needs no
    // price, and is not reported.
    recorder.judge_failed(intent, judge::VM, "the guard did not start").unwrap();
    recorder.close().unwrap();
    let all = keys.verify(true).problems.join("\n");
    assert!(all.contains("1 verdict(s) priced by no cost record"), "{all}");
}

#[test]
fn report_totals_equal_the_sums_of_the_exported_records() {
    let keys = Keys::new("report");
    judge_inproc(&keys, 700);
    let recs = records(&keys);
    let (_, platform) = vigil::keys::platform_pair(&keys.dir).unwrap();
    let master = vigil::keys::read_journal_key(&keys.dir).unwrap();
    for by in [GroupBy::Agent, GroupBy::Decision, GroupBy::Judge, GroupBy::Tier, GroupBy::Tool, GroupBy::Session] {
        let groups = cost_audit::report(&keys.journal(), &master, &platform, by, Window::default(), Some(2.0)).unwrap();
        assert_eq!(groups.iter().map(|g| g.verdicts).sum::<u64>(), 700, "{by:?}");
        for name in ["wall_ns", "cpu_ns"] {
            let brute: u64 = recs.iter().map(|r| r.counter(name).unwrap_or(0)).sum();
            let reported: u64 = groups.iter().map(|g| g.counters.get(name).copied().unwrap_or(0)).sum();
            assert_eq!(reported, brute, "{by:?} {name}");
        }
    }
    let by_agent =
        cost_audit::report(&keys.journal(), &master, &platform, GroupBy::Agent, Window::default(), None).unwrap();
    assert_eq!(by_agent.iter().map(|g| g.key.as_str()).collect::<Vec<_>>(), ["agent-0", "agent-1"]);
    // A window that excludes everything.
    let none = Window { from_ms: Some(u64::MAX - 1), to_ms: None };
    assert!(cost_audit::report(&keys.journal(), &master, &platform, GroupBy::Agent, none, None).unwrap().is_empty());
}
