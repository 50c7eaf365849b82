//! Journal robustness: bit flips, truncation, tampering, reordering,
//! splicing, forgery with one or both keys, wrong keys, the single writer.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vigil::journal::body::{self, VerdictBody};
use vigil::journal::checkpoint::{EpochPosition, EpochStatement, Statement};
use vigil::journal::format::{self, CHAIN_LEN, FRAME_HEADER_LEN, FrameHeader, HEADER_LEN, Header, Kind, TAG_LEN};
use vigil::journal::scan::{self, ScanOptions, ScanSummary};
use vigil::journal::{Journal, JournalError, MasterKey, WriterOptions, replay};
use vigil_attest::dual::DualSigningKey;
use vigil_guard::bundle::Bundle;
use vigil_guard::{eval, verdict_codec};

const POLICY: &str = r#"
version = 1
name = "journal-test"
default = "allow"

[tools]
allow = ["shell"]

[[rules]]
id = "no-rm"
class = "command"
pattern = 'rm\s+-rf'
decision = "deny"
reason = "destructive"

[[rules]]
id = "ask-curl"
class = "command"
pattern = 'curl'
decision = "escalate"
reason = "network"
"#;

fn reference() -> vigil::reference::Reference {
    vigil::guard_image::production_reference().unwrap()
}

fn master() -> MasterKey {
    MasterKey::new([0x11; 32])
}

fn platform() -> Arc<DualSigningKey> {
    Arc::new(DualSigningKey::from_seeds(&[0x22; 32], &[0x33; 32]))
}

fn bundle() -> Vec<u8> {
    vigil_guard::compile::compile(POLICY, "journal-test.toml").expect("test policy compiles").bundle
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-journal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const COMMANDS: [&str; 4] = ["ls -la", "rm -rf /srv/data", "curl https://example.org", "cargo test"];

fn intent(i: u64) -> Vec<u8> {
    let value = serde_json::json!({"id": i, "agent": format!("agent-{}", i % 3), "session": "s1", "tool": "shell",
        "args": {"command": COMMANDS[i as usize % COMMANDS.len()]}, "cwd": "/home/dev/p"});
    vigil_guard::intent::json::to_cbor(&value).unwrap()
}

/// A verdict body as `vigil eval --judge inproc` records it.
fn verdict_body(bundle: &Bundle<'_>, policy: &[u8; 48], i: u64) -> VerdictBody {
    let intent = intent(i);
    let verdict = eval::evaluate(bundle, &intent);
    let words = bundle.rule_count().div_ceil(64).max(1);
    let mut record = vec![0; verdict_codec::record_len(words)];
    let n = verdict_codec::encode(&verdict, words, &mut record).unwrap();
    record.truncate(n);
    VerdictBody {
        time_ms: 1_700_000_000_000 + i,
        judge: body::judge::INPROC,
        policy_sha384: policy.to_vec(),
        boot_seq: None,
        intent,
        verdict: record,
        eval_ns: Some(1000),
        detail: None,
        judge_failure: None,
        intent_id: i,
        peer: None,
    }
}

/// Writes `verdicts` verdicts (plus epoch, policy and checkpoint frames) and
/// closes the journal.
fn write_journal(path: &Path, verdicts: u64, checkpoint_frames: u64) {
    let bytes = bundle();
    let b = Bundle::load(&bytes).unwrap();
    let options =
        WriterOptions { checkpoint_frames, checkpoint_interval: Duration::from_secs(3600), ..Default::default() };
    let journal = Journal::open(path, &master(), platform(), options).unwrap();
    let policy = journal.ensure_policy(&bytes).unwrap();
    let mut last = 0;
    for i in 0..verdicts {
        last = journal.append(Kind::Verdict, &body::encode(&verdict_body(&b, &policy, i))).unwrap();
    }
    journal.wait(last).unwrap();
    journal.close().unwrap();
}

fn scan_bytes(bytes: &[u8], options: ScanOptions<'_>) -> Result<ScanSummary, JournalError> {
    scan::scan(Cursor::new(bytes), bytes.len() as u64, options, |_| Ok(()))
}

/// (offset, len) of every frame.
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    scan::scan(Cursor::new(bytes), bytes.len() as u64, ScanOptions::default(), |f| {
        out.push((f.offset as usize, f.len as usize));
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn replay_counts_every_verdicts_agent_once_whichever_path_it_takes() {
    // Re-evaluated verdicts have their agent counted by a worker (which
    // decodes the intent once for both); judge failures, undecodable
    // verdict records and malformed intents by the scan. Each verdict must
    // count exactly once, under its agent or "(malformed)".
    let dir = scratch("agents");
    let path = dir.join("j.vgj");
    let bytes = bundle();
    let b = Bundle::load(&bytes).unwrap();
    let journal = Journal::open(&path, &master(), platform(), WriterOptions::default()).unwrap();
    let policy = journal.ensure_policy(&bytes).unwrap();
    let mut last = 0;
    let mut append = |v: &VerdictBody| last = journal.append(Kind::Verdict, &body::encode(v)).unwrap();
    // 10 000 re-evaluated (several worker chunks): agent-0/1/2.
    for i in 0..10_000 {
        append(&verdict_body(&b, &policy, i));
    }
    // 3 judge failures of agent-1.
    for i in [10_000, 10_003, 10_006] {
        let mut v = verdict_body(&b, &policy, i);
        v.verdict.clear();
        v.judge_failure = Some("the guard stopped".into());
        append(&v);
    }
    // 2 malformed intents (re-evaluated: the guard's fail-closed DENY).
    for i in [10_010, 10_011] {
        let mut v = verdict_body(&b, &policy, i);
        v.intent = vec![0xa1, 0x61];
        let verdict = eval::evaluate(&b, &v.intent);
        let words = b.rule_count().div_ceil(64).max(1);
        v.verdict = vec![0; verdict_codec::record_len(words)];
        let n = verdict_codec::encode(&verdict, words, &mut v.verdict).unwrap();
        v.verdict.truncate(n);
        append(&v);
    }
    // 1 verdict record that does not decode (agent-2).
    let mut v = verdict_body(&b, &policy, 10_013);
    v.verdict = vec![0xff; 3];
    append(&v);
    journal.wait(last).unwrap();
    journal.close().unwrap();

    let report = replay::replay(&path, &master(), &platform().public(), &reference(), false, |_| {}).unwrap();
    let c = &report.counts;
    assert_eq!(c.verdicts, 10_006);
    assert_eq!(c.replayed_equal, 10_002, "{:?}", c.mismatches.first());
    assert_eq!(c.judge_failures, 3);
    assert_eq!(c.failures.len(), 1, "{:?}", c.failures);
    let expected: std::collections::BTreeMap<String, u64> = [
        ("agent-0".to_string(), 3334),
        ("agent-1".to_string(), 3333 + 3),
        ("agent-2".to_string(), 3333 + 1),
        ("(malformed)".to_string(), 2),
    ]
    .into();
    assert_eq!(c.agents, expected);
    assert_eq!(c.agents.values().sum::<u64>(), c.verdicts);
}

#[test]
fn written_journal_verifies_and_replays_equal() {
    let dir = scratch("roundtrip");
    let path = dir.join("j.vgj");
    write_journal(&path, 95, 30);
    let trust = platform().public();
    let s =
        scan::scan_file(&path, ScanOptions { trust: Some(&trust), key: Some(&master()), ..Default::default() }, |_| {
            Ok(())
        })
        .unwrap();
    assert!(s.intact() && s.closed, "{s:?}");
    assert_eq!(s.by_kind["verdict"], 95);
    assert_eq!(s.unsealed, 0);
    assert_eq!(s.checkpoints, 4, "3 periodic (every 30 frames) and 1 closing");
    let report = replay::replay(&path, &master(), &trust, &reference(), false, |_| {}).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.counts.verdicts, 95);
    assert_eq!(report.counts.replayed_equal, 95);
    assert_eq!(report.counts.agents.len(), 3);
    assert_eq!(report.counts.by_decision.len(), 3, "{:?}", report.counts.by_decision);

    // Reopening appends a new epoch after the closing checkpoint; the
    // policy already recorded is not recorded again.
    let journal = Journal::open(&path, &master(), platform(), WriterOptions::default()).unwrap();
    journal.ensure_policy(&bundle()).unwrap();
    drop(journal);
    let s =
        scan::scan_file(&path, ScanOptions { trust: Some(&trust), key: Some(&master()), ..Default::default() }, |_| {
            Ok(())
        })
        .unwrap();
    assert_eq!((s.epoch, s.by_kind["epoch"], s.by_kind["policy"]), (2, 2, 1));
    assert!(s.closed);
}

#[test]
fn every_single_bit_flip_is_detected() {
    let dir = scratch("bitflip");
    let path = dir.join("j.vgj");
    write_journal(&path, 96, 1_000_000);
    let bytes = std::fs::read(&path).unwrap();
    let n = frames(&bytes).len();
    assert!((98..=100).contains(&n), "{n} frames");
    let mut flipped = bytes.clone();
    for bit in 0..bytes.len() * 8 {
        flipped[bit / 8] ^= 1 << (bit % 8);
        match scan_bytes(&flipped, ScanOptions::default()) {
            Err(_) => {}
            Ok(s) => panic!("flipping bit {bit} (byte {}) went unnoticed: {s:?}", bit / 8),
        }
        flipped[bit / 8] ^= 1 << (bit % 8);
    }
    // With the data key, a flip inside a sealed body is also an
    // authentication failure; spot-check one.
    let (offset, len) = frames(&bytes)[5];
    flipped[offset + len - CHAIN_LEN - TAG_LEN - 3] ^= 0x40;
    assert!(scan_bytes(&flipped, ScanOptions { trust: None, key: Some(&master()), ..Default::default() }).is_err());
}

#[test]
fn truncation_anywhere_inside_the_last_frame_is_a_torn_tail_that_open_cuts() {
    let dir = scratch("truncate");
    let path = dir.join("j.vgj");
    write_journal(&path, 20, 1_000_000);
    let bytes = std::fs::read(&path).unwrap();
    let all = frames(&bytes);
    let (last_offset, last_len) = *all.last().unwrap();
    let last_seq = all.len() as u64;
    for cut in last_offset + 1..last_offset + last_len {
        let s = scan_bytes(&bytes[..cut], ScanOptions::default()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let torn = s.torn.as_ref().unwrap_or_else(|| panic!("cut at {cut}: no torn tail reported"));
        assert_eq!((torn.offset, torn.bytes, torn.seq), (last_offset as u64, (cut - last_offset) as u64, last_seq));
        assert_eq!(s.frames, last_seq - 1);
    }
    // Zero-filled tails (the file grew but the data never reached the disk).
    let mut zeroed = bytes.clone();
    zeroed[last_offset + 40..].fill(0);
    assert!(scan_bytes(&zeroed, ScanOptions::default()).unwrap().torn.is_some());
    let mut grown = bytes.clone();
    grown.extend_from_slice(&[0; 700]);
    assert!(scan_bytes(&grown, ScanOptions::default()).unwrap().torn.is_some());

    // Opening for append cuts, reports, and continues the chain.
    for cut in [last_offset + 1, last_offset + 24, last_offset + last_len / 2, last_offset + last_len - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let journal = Journal::open(&path, &master(), platform(), WriterOptions::default()).unwrap();
        let report = journal.report().cut.clone().expect("the cut is reported");
        assert_eq!((report.bytes, report.seq), ((cut - last_offset) as u64, last_seq));
        journal.close().unwrap();
        let trust = platform().public();
        let s = scan::scan_file(
            &path,
            ScanOptions { trust: Some(&trust), key: Some(&master()), ..Default::default() },
            |_| Ok(()),
        )
        .unwrap();
        assert!(s.intact() && s.closed);
        assert_eq!(s.frames, last_seq - 1 + 2, "the cut frame is gone; epoch and closing checkpoint added");
    }
}

#[test]
fn damage_before_the_tail_is_tampering_and_refused_for_append() {
    let dir = scratch("tamper");
    let path = dir.join("j.vgj");
    write_journal(&path, 30, 1_000_000);
    let mut bytes = std::fs::read(&path).unwrap();
    let all = frames(&bytes);
    let (offset, len) = all[10];
    bytes[offset + len / 2] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    match Journal::open(&path, &master(), platform(), WriterOptions::default()) {
        Err(JournalError::Tampered { seq, offset: at, .. }) => assert_eq!((seq, at), (11, offset as u64)),
        Err(e) => panic!("expected tampering, got {e}"),
        Ok(_) => panic!("a tampered journal was opened for append"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "a refused journal is left exactly as it was");
}

#[test]
fn reordered_dropped_duplicated_and_spliced_frames_are_detected() {
    let dir = scratch("reorder");
    write_journal(&dir.join("a.vgj"), 30, 10);
    write_journal(&dir.join("b.vgj"), 30, 10);
    let a = std::fs::read(dir.join("a.vgj")).unwrap();
    let b = std::fs::read(dir.join("b.vgj")).unwrap();
    let fa = frames(&a);
    let fb = frames(&b);
    let piece = |bytes: &[u8], (o, l): (usize, usize)| bytes[o..o + l].to_vec();
    let rebuild = |order: &[Vec<u8>]| {
        let mut out = a[..HEADER_LEN].to_vec();
        for f in order {
            out.extend_from_slice(f);
        }
        out
    };
    let original: Vec<Vec<u8>> = fa.iter().map(|&f| piece(&a, f)).collect();
    for i in [1, 5, 12, original.len() - 3] {
        let mut swapped = original.clone();
        swapped.swap(i, i + 1);
        let mut dropped = original.clone();
        dropped.remove(i);
        let mut duplicated = original.clone();
        duplicated.insert(i, original[i].clone());
        let mut spliced = original.clone();
        spliced[i] = piece(&b, fb[i]);
        let mut inserted = original.clone();
        inserted.insert(i, piece(&b, fb[i]));
        for (what, frames) in
            [("swap", swapped), ("drop", dropped), ("dup", duplicated), ("splice", spliced), ("insert", inserted)]
        {
            let bytes = rebuild(&frames);
            assert!(
                matches!(scan_bytes(&bytes, ScanOptions::default()), Err(JournalError::Tampered { .. })),
                "{what} at frame {i} went unnoticed"
            );
        }
    }
    // Another journal's frame appended at the end is not a torn tail.
    let mut appended = a.clone();
    appended.extend_from_slice(&piece(&b, fb[7]));
    assert!(matches!(scan_bytes(&appended, ScanOptions::default()), Err(JournalError::Tampered { .. })));
    // Dropping the closing checkpoint (truncating whole frames) leaves the
    // journal unclosed, its last frames unsealed.
    let mut cut = original.clone();
    cut.pop();
    cut.pop();
    let s = scan_bytes(&rebuild(&cut), ScanOptions::default()).unwrap();
    assert!(!s.closed && s.unsealed > 0, "{s:?}");
    // The same frames under another header (journal id) do not verify.
    let mut rehomed = b[..HEADER_LEN].to_vec();
    rehomed.extend_from_slice(&a[HEADER_LEN..]);
    assert!(scan_bytes(&rehomed, ScanOptions::default()).is_err());
}

#[test]
fn a_journal_cannot_be_read_or_appended_with_another_master_key() {
    let dir = scratch("wrongkey");
    let path = dir.join("j.vgj");
    write_journal(&path, 5, 1000);
    let other = MasterKey::new([0x99; 32]);
    let before = std::fs::read(&path).unwrap();
    for result in [
        scan::scan_file(&path, ScanOptions { trust: None, key: Some(&other), ..Default::default() }, |_| Ok(()))
            .map(|_| ()),
        Journal::open(&path, &other, platform(), WriterOptions::default()).map(|_| ()),
        replay::replay(&path, &other, &platform().public(), &reference(), false, |_| {}).map(|_| ()),
    ] {
        let e = result.expect_err("another key must be refused");
        assert!(matches!(e, JournalError::WrongKey { .. }), "{e}");
        assert!(e.to_string().contains("another master key"), "{e}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_second_writer_gets_a_clear_error() {
    let dir = scratch("lock");
    let path = dir.join("j.vgj");
    let first = Journal::open(&path, &master(), platform(), WriterOptions::default()).unwrap();
    match Journal::open(&path, &master(), platform(), WriterOptions::default()) {
        Err(e @ JournalError::Locked { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&format!("pid {}", std::process::id())) && text.contains("one writer"), "{text}");
        }
        Err(e) => panic!("expected a lock error, got {e}"),
        Ok(_) => panic!("two writers on one journal"),
    }
    first.close().unwrap();
    Journal::open(&path, &master(), platform(), WriterOptions::default()).unwrap().close().unwrap();
}

/// A forger: decrypts every frame, lets `edit` change bodies, then re-seals
/// and re-chains everything with the data key. Checkpoint statements are
/// re-signed with `platform` when given, else kept (with their heads
/// updated, so only the signatures can give the forgery away).
fn forge(bytes: &[u8], edit: impl Fn(u64, Kind, &mut Vec<u8>), platform: Option<&DualSigningKey>) -> Vec<u8> {
    let header = Header::decode(bytes).unwrap();
    let mut frames = Vec::new();
    scan::scan(
        Cursor::new(bytes),
        bytes.len() as u64,
        ScanOptions { trust: None, key: Some(&master()), ..Default::default() },
        |f| {
            frames.push((f.seq, f.kind, f.epoch, f.public.to_vec(), f.body.unwrap().to_vec()));
            Ok(())
        },
    )
    .unwrap();
    let mut out = bytes[..HEADER_LEN].to_vec();
    let mut head = header.chain_start();
    let mut key = None;
    for (seq, kind, epoch, mut public, mut body) in frames {
        edit(seq, kind, &mut body);
        if kind == Kind::Epoch {
            let st = EpochStatement::decode(&public, seq).unwrap();
            key = Some(master().epoch_key(&st.salt(), &header.journal_id));
            if let Some(p) = platform {
                let at = EpochPosition { journal_id: &header.journal_id, seq, epoch, prev: &head };
                public = EpochStatement::sign(p, &at, &st.salt(), st.time_ms, st.adopted).unwrap().encode();
            }
        }
        if kind == Kind::Checkpoint {
            let old = Statement::decode(&public).unwrap();
            let new = match platform {
                Some(p) => Statement::sign(p, &header.journal_id, seq - 1, &head, old.time_ms, old.closing).unwrap(),
                None => Statement { head: head.to_vec(), ..old },
            };
            public = new.encode();
        }
        let len = format::frame_len(public.len(), body.len());
        let mut frame = vec![0; len];
        let fh = FrameHeader { len: len as u32, seq, kind: kind as u16, public_len: public.len() as u16, epoch };
        fh.encode(&mut frame[..FRAME_HEADER_LEN]);
        let body_at = FRAME_HEADER_LEN + public.len();
        frame[FRAME_HEADER_LEN..body_at].copy_from_slice(&public);
        frame[body_at..body_at + body.len()].copy_from_slice(&body);
        let mut aad = Vec::new();
        format::aad(&mut aad, &header.journal_id, &frame[..body_at], &head);
        let tag = key.as_ref().unwrap().seal(epoch, seq, &aad, &mut frame[body_at..body_at + body.len()]);
        frame[body_at + body.len()..len - CHAIN_LEN].copy_from_slice(&tag);
        head = format::chain_hash(&head, &frame[..len - CHAIN_LEN]);
        frame[len - CHAIN_LEN..].copy_from_slice(&head);
        out.extend_from_slice(&frame);
    }
    out
}

/// Turns the DENY of verdict frame `target` into ALLOW.
fn allow_instead_of_deny(target: u64) -> impl Fn(u64, Kind, &mut Vec<u8>) {
    move |seq, kind, body| {
        if seq == target && kind == Kind::Verdict {
            let mut v: VerdictBody = body::decode(seq, body).unwrap();
            assert_eq!(v.verdict[8], 2, "the target verdict is a DENY");
            v.verdict[8] = 0;
            *body = body::encode(&v);
        }
    }
}

#[test]
fn replay_catches_forgery_with_the_data_key_and_with_both_keys() {
    let dir = scratch("forgery");
    let path = dir.join("j.vgj");
    write_journal(&path, 40, 16);
    let bytes = std::fs::read(&path).unwrap();
    let trust = platform().public();
    // Seq 1 epoch, 2 policy, then verdict i at seq 3 + i (plus checkpoints):
    // find a DENY verdict frame.
    let mut target = 0;
    scan::scan(
        Cursor::new(&bytes[..]),
        bytes.len() as u64,
        ScanOptions { trust: None, key: Some(&master()), ..Default::default() },
        |f| {
            if target == 0 && f.kind == Kind::Verdict {
                let v: VerdictBody = body::decode(f.seq, f.body.unwrap())?;
                if v.verdict[8] == 2 {
                    target = f.seq;
                }
            }
            Ok(())
        },
    )
    .unwrap();
    assert!(target > 0);

    // The forgery itself is sound: re-sealed with the data key, it
    // decrypts and chains.
    let data_only = forge(&bytes, allow_instead_of_deny(target), None);
    assert!(scan_bytes(&data_only, ScanOptions { trust: None, key: Some(&master()), ..Default::default() }).is_ok());
    // ...but the platform checkpoints do not verify.
    let forged_path = dir.join("data-only.vgj");
    std::fs::write(&forged_path, &data_only).unwrap();
    let e = replay::replay(&forged_path, &master(), &trust, &reference(), false, |_| {})
        .expect_err("data-key forgery must fail");
    assert!(matches!(&e, JournalError::Tampered { detail, .. } if detail.contains("checkpoint signature")), "{e}");

    // With both keys the chain and checkpoints verify, and re-evaluation
    // disagrees with the forged verdict.
    let both = forge(&bytes, allow_instead_of_deny(target), Some(&platform()));
    let both_path = dir.join("both.vgj");
    std::fs::write(&both_path, &both).unwrap();
    let report = replay::replay(&both_path, &master(), &trust, &reference(), false, |_| {}).unwrap();
    assert!(!report.ok);
    assert_eq!(report.counts.mismatches.len(), 1, "{:?}", report.counts.mismatches);
    let m = &report.counts.mismatches[0];
    assert_eq!((m.seq, m.recorded.as_str(), m.replayed.as_str()), (target, "ALLOW", "DENY"));
    // Unforged, the same replay is clean.
    assert!(replay::replay(&path, &master(), &trust, &reference(), false, |_| {}).unwrap().ok);
}

#[test]
fn a_checkpoint_is_signed_after_the_interval_even_without_more_frames() {
    let dir = scratch("interval");
    let path = dir.join("j.vgj");
    let options = WriterOptions {
        checkpoint_frames: 1_000_000,
        checkpoint_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let journal = Journal::open(&path, &master(), platform(), options).unwrap();
    let bytes = bundle();
    let b = Bundle::load(&bytes).unwrap();
    let policy = journal.ensure_policy(&bytes).unwrap();
    let seq = journal.append_durable(Kind::Verdict, &body::encode(&verdict_body(&b, &policy, 1))).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let trust = platform().public();
    loop {
        let s =
            scan::scan_file(&path, ScanOptions { trust: Some(&trust), key: None, ..Default::default() }, |_| Ok(()))
                .unwrap();
        if s.sealed_through == Some(seq) {
            assert_eq!((s.unsealed, s.closed), (0, false));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no timed checkpoint: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    journal.close().unwrap();
}

/// Approval frames (the daemon's record of a person's decision on an
/// ESCALATE verdict) are checked by replay: each settles one earlier
/// ESCALATE verdict of the same intent, once, and a person's decision says
/// who made it. Forged ones (written with the keys, as a writer could) are
/// caught.
#[test]
fn approvals_settle_an_escalate_verdict_once_and_say_who() {
    use vigil::journal::body::{ApprovalBody, Peer, outcome};
    let dir = scratch("approvals");
    let bytes = bundle();
    let b = Bundle::load(&bytes).unwrap();
    let person = Some(Peer { uid: 1000, pid: 4242 });
    let approval = |verdict_seq: u64, intent_id: u64, outcome: u8, by: Option<Peer>| ApprovalBody {
        time_ms: 1_700_000_000_500,
        verdict_seq,
        intent_id,
        outcome,
        by,
        approval_id: "00112233aabbccdd".into(),
    };
    // Intent 2 is `curl …`: ESCALATE; intent 0 is `ls -la`: ALLOW.
    // (name, the approvals given the ESCALATE and the ALLOW verdict's
    // seqs, why replay refuses them).
    type Approvals<'a> = Box<dyn Fn(u64, u64) -> Vec<ApprovalBody> + 'a>;
    let cases: Vec<(&str, Approvals, Option<&str>)> = vec![
        ("approved", Box::new(|esc, _| vec![approval(esc, 2, outcome::APPROVED, person)]), None),
        ("timed out", Box::new(|esc, _| vec![approval(esc, 2, outcome::TIMED_OUT, None)]), None),
        (
            "of an ALLOW verdict",
            Box::new(|_, allow| vec![approval(allow, 0, outcome::APPROVED, person)]),
            Some("no unsettled ESCALATE"),
        ),
        (
            "twice",
            Box::new(|esc, _| {
                vec![approval(esc, 2, outcome::DENIED, person), approval(esc, 2, outcome::APPROVED, person)]
            }),
            Some("no unsettled ESCALATE"),
        ),
        (
            "of another intent",
            Box::new(|esc, _| vec![approval(esc, 7, outcome::APPROVED, person)]),
            Some("names intent 7"),
        ),
        ("by nobody", Box::new(|esc, _| vec![approval(esc, 2, outcome::APPROVED, None)]), Some("does not say who")),
        (
            "of a later frame",
            Box::new(|esc, _| vec![approval(esc + 100, 2, outcome::APPROVED, person)]),
            Some("no unsettled ESCALATE"),
        ),
        ("with an unknown outcome", Box::new(|esc, _| vec![approval(esc, 2, 9, person)]), Some("unknown outcome")),
    ];
    for (name, approvals, refused) in cases {
        let path = dir.join(format!("{}.vgj", name.replace(' ', "-")));
        let journal = Journal::open(&path, &master(), platform(), WriterOptions::default()).unwrap();
        let policy = journal.ensure_policy(&bytes).unwrap();
        let allow = journal.append(Kind::Verdict, &body::encode(&verdict_body(&b, &policy, 0))).unwrap();
        let esc = journal.append(Kind::Verdict, &body::encode(&verdict_body(&b, &policy, 2))).unwrap();
        for a in approvals(esc, allow) {
            journal.append(Kind::Approval, &body::encode(&a)).unwrap();
        }
        journal.close().unwrap();
        let report = replay::replay(&path, &master(), &platform().public(), &reference(), false, |_| {}).unwrap();
        match refused {
            None => {
                assert!(report.ok, "{name}: {:?}", report.counts.failures);
                assert_eq!(report.counts.approvals.values().sum::<u64>(), 1, "{name}");
            }
            Some(why) => {
                assert!(!report.ok, "{name}: accepted");
                assert!(
                    report.counts.failures.iter().any(|f| f.detail.contains(why)),
                    "{name}: {:?}",
                    report.counts.failures
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
