//! Attacks on the journal's trust chain, each performed for real: forging
//! with the data key alone, appending without any key, cutting the file
//! back to an earlier run, deleting or replacing it, two writers through
//! two names, a planted lock-file symlink, bytes written behind the
//! writer's back. Each must fail against the code.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vigil::audit::{self, VerifyOptions};
use vigil::journal::body::{self, EpochBody, VerdictBody};
use vigil::journal::checkpoint::{EpochPosition, EpochStatement};
use vigil::journal::format::{self, CHAIN_LEN, FRAME_HEADER_LEN, FrameHeader, Header, Kind};
use vigil::journal::scan::{self, ScanOptions, ScanSummary};
use vigil::journal::seal::EpochKey;
use vigil::journal::{Journal, JournalError, MasterKey, WriterOptions, replay};
use vigil_attest::dual::DualSigningKey;

const POLICY: &str = r#"
version = 1
name = "attack-test"
default = "allow"

[tools]
allow = ["shell"]

[[rules]]
id = "no-rm"
class = "command"
pattern = 'rm\s+-rf'
decision = "deny"
reason = "destructive"
"#;

fn master() -> MasterKey {
    MasterKey::new([0x11; 32])
}

fn platform() -> Arc<DualSigningKey> {
    Arc::new(DualSigningKey::from_seeds(&[0x22; 32], &[0x33; 32]))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-attack-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bundle() -> Vec<u8> {
    vigil_guard::compile::compile(POLICY, "attack-test.toml").expect("test policy compiles").bundle
}

fn verdict(policy: &[u8; 48], id: u64, command: &str, decision: u8) -> Vec<u8> {
    let intent = vigil_guard::intent::json::to_cbor(&serde_json::json!({"id": id, "agent": "a", "session": "s",
        "tool": "shell", "args": {"command": command}, "cwd": "/home/dev"}))
    .unwrap();
    // A hand-made record is enough here: these tests stop at the chain and
    // signatures, before re-evaluation.
    let mut record = vec![0u8; 16];
    record[8] = decision;
    body::encode(&VerdictBody {
        time_ms: 1_700_000_000_000,
        judge: body::judge::INPROC,
        policy_sha384: policy.to_vec(),
        boot_seq: None,
        intent,
        verdict: record,
        eval_ns: None,
        detail: None,
        judge_failure: None,
        intent_id: id,
        peer: None,
    })
}

fn options(marks: Option<&Path>) -> WriterOptions {
    WriterOptions {
        checkpoint_frames: 1_000_000,
        checkpoint_interval: Duration::from_secs(3600),
        high_water: marks.map(Path::to_path_buf),
    }
}

/// One run of a writer: `n` verdicts, then close.
fn run(path: &Path, marks: Option<&Path>, n: u64) {
    let journal = Journal::open(path, &master(), platform(), options(marks)).unwrap();
    let policy = journal.ensure_policy(&bundle()).unwrap();
    for i in 0..n {
        journal.append(Kind::Verdict, &verdict(&policy, i, "ls", 0)).unwrap();
    }
    journal.close().unwrap();
}

/// The bytes of a journal whose writer "crashed": `n` durable verdicts, no
/// closing checkpoint.
fn crashed_snapshot(dir: &Path, n: u64) -> Vec<u8> {
    let path = dir.join("live.vgj");
    let journal = Journal::open(&path, &master(), platform(), options(None)).unwrap();
    let policy = journal.ensure_policy(&bundle()).unwrap();
    let mut last = 0;
    for i in 0..n {
        last = journal.append(Kind::Verdict, &verdict(&policy, i, "ls", 0)).unwrap();
    }
    journal.wait(last).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    journal.close().unwrap();
    bytes
}

/// What an attacker learns by reading a journal (with the data key when
/// given): the header, the head, the next seq and epoch, the epoch key.
struct Tail {
    header: Header,
    head: [u8; CHAIN_LEN],
    next_seq: u64,
    epoch: u32,
    key: Option<EpochKey>,
    policy: [u8; 48],
}

fn tail(bytes: &[u8], key: Option<&MasterKey>) -> Tail {
    let header = Header::decode(bytes).unwrap();
    let (mut head, mut salt, mut policy) = (header.chain_start(), None, [0u8; 48]);
    let s: ScanSummary = scan::scan(Cursor::new(bytes), bytes.len() as u64, ScanOptions::default(), |f| {
        head = *f.chain;
        if f.kind == Kind::Epoch {
            salt = Some(EpochStatement::decode(f.public, f.seq).unwrap().salt());
        }
        if f.kind == Kind::Policy {
            policy = f.public.try_into().unwrap();
        }
        Ok(())
    })
    .unwrap();
    let key = key.map(|m| m.epoch_key(&salt.unwrap(), &header.journal_id));
    Tail { header, head, next_seq: s.next_seq, epoch: s.epoch, key, policy }
}

/// Appends one frame as a writer would — sealed with `t.key` when the
/// attacker has it, random bytes in place of ciphertext and tag otherwise —
/// and chains it correctly (the chain needs no key).
fn append_frame(out: &mut Vec<u8>, t: &mut Tail, kind: Kind, epoch: u32, public: &[u8], body: &[u8]) {
    let len = format::frame_len(public.len(), body.len());
    let mut frame = vec![0u8; len];
    let seq = t.next_seq;
    FrameHeader { len: len as u32, seq, kind: kind as u16, public_len: public.len() as u16, epoch }
        .encode(&mut frame[..FRAME_HEADER_LEN]);
    let body_at = FRAME_HEADER_LEN + public.len();
    frame[FRAME_HEADER_LEN..body_at].copy_from_slice(public);
    frame[body_at..body_at + body.len()].copy_from_slice(body);
    match &t.key {
        Some(key) => {
            let mut aad = Vec::new();
            format::aad(&mut aad, &t.header.journal_id, &frame[..body_at], &t.head);
            let tag = key.seal(epoch, seq, &aad, &mut frame[body_at..body_at + body.len()]);
            frame[body_at + body.len()..len - CHAIN_LEN].copy_from_slice(&tag);
        }
        None => {
            for (i, b) in frame[body_at..len - CHAIN_LEN].iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(151).wrapping_add(seq as u8);
            }
        }
    }
    t.head = format::chain_hash(&t.head, &frame[..len - CHAIN_LEN]);
    frame[len - CHAIN_LEN..].copy_from_slice(&t.head);
    t.next_seq += 1;
    out.extend_from_slice(&frame);
}

fn tampered(result: Result<impl std::fmt::Debug, JournalError>) -> (u64, String) {
    match result {
        Err(JournalError::Tampered { seq, detail, .. }) => (seq, detail),
        other => panic!("expected tampering, got {other:?}"),
    }
}

fn open_err(path: &Path, marks: Option<&Path>) -> JournalError {
    match Journal::open(path, &master(), platform(), options(marks)) {
        Err(e) => e,
        Ok(j) => {
            let report = j.report().clone();
            j.close().unwrap();
            panic!("the writer opened {}: {report:?}", path.display())
        }
    }
}

#[test]
fn a_forger_with_the_data_key_cannot_extend_a_closed_journal() {
    let dir = scratch("closed");
    let path = dir.join("j.vgj");
    run(&path, None, 5);
    let original = std::fs::read(&path).unwrap();
    let trust = platform().public();

    // 1. A new epoch (own salt, a statement signed with the forger's own
    //    key), then a back-dated, fabricated verdict under it.
    let mut forged = original.clone();
    let mut t = tail(&forged, Some(&master()));
    let salt = [0x5a; 32];
    let forger = DualSigningKey::from_seeds(&[0x77; 32], &[0x78; 32]);
    let epoch = t.epoch + 1;
    let at = EpochPosition { journal_id: &t.header.journal_id, seq: t.next_seq, epoch, prev: &t.head };
    let statement = EpochStatement::sign(&forger, &at, &salt, 1_600_000_000_000, None).unwrap();
    let epoch_body = body::encode(&EpochBody {
        time_ms: 1_600_000_000_000,
        writer: "vigil 0.1.0".into(),
        pid: 1,
        cut_bytes: None,
        cut_seq: None,
    });
    t.key = Some(master().epoch_key(&salt, &t.header.journal_id));
    append_frame(&mut forged, &mut t, Kind::Epoch, epoch, &statement.encode(), &epoch_body);
    let policy = t.policy;
    append_frame(&mut forged, &mut t, Kind::Verdict, epoch, &[], &verdict(&policy, 99, "shred -u /dev/nvme0n1", 2));
    std::fs::write(&path, &forged).unwrap();
    // The keyless checks and replay see it; the writer refuses to go on
    // and leaves the file as it found it.
    let trusted = ScanOptions { trust: Some(&trust), ..Default::default() };
    let (seq, detail) = tampered(scan::scan_file(&path, trusted, |_| Ok(())));
    assert!(detail.contains("epoch signature"), "{detail}");
    assert_eq!(seq, original_next_seq(&original));
    assert!(matches!(open_err(&path, None), JournalError::Tampered { .. }));
    assert!(matches!(
        replay::replay(&path, &master(), &trust, &sim_reference(), false, |_| {}),
        Err(JournalError::Tampered { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), forged, "a refused journal is left untouched");

    // 2. No new epoch: the verdict straight after the closing checkpoint.
    let mut forged = original.clone();
    let mut t = tail(&forged, Some(&master()));
    let epoch = t.epoch;
    append_frame(&mut forged, &mut t, Kind::Verdict, epoch, &[], &verdict(&policy, 99, "rm -rf /", 0));
    std::fs::write(&path, &forged).unwrap();
    let (_, detail) = tampered(scan::scan_file(&path, trusted, |_| Ok(())));
    assert!(detail.contains("follows a closing checkpoint"), "{detail}");
    assert!(matches!(open_err(&path, None), JournalError::Tampered { .. }));

    // 3. A copy of a genuine epoch statement (valid signature, wrong place).
    let mut forged = original.clone();
    let mut t = tail(&forged, Some(&master()));
    let mut genuine = None;
    scan::scan(Cursor::new(&original[..]), original.len() as u64, ScanOptions::default(), |f| {
        if f.kind == Kind::Epoch {
            genuine = Some(f.public.to_vec());
        }
        Ok(())
    })
    .unwrap();
    let genuine = genuine.unwrap();
    let salt = EpochStatement::decode(&genuine, 1).unwrap().salt();
    t.key = Some(master().epoch_key(&salt, &t.header.journal_id));
    let epoch = t.epoch + 1;
    append_frame(&mut forged, &mut t, Kind::Epoch, epoch, &genuine, &epoch_body);
    std::fs::write(&path, &forged).unwrap();
    let (_, detail) = tampered(scan::scan_file(&path, trusted, |_| Ok(())));
    assert!(detail.contains("epoch signature"), "{detail}");
}

fn original_next_seq(bytes: &[u8]) -> u64 {
    scan::scan(Cursor::new(bytes), bytes.len() as u64, ScanOptions::default(), |_| Ok(())).unwrap().next_seq
}

#[test]
fn frames_appended_without_the_data_key_are_refused_and_data_key_frames_are_reported_as_adopted() {
    let dir = scratch("unsealed");
    let snapshot = crashed_snapshot(&dir, 6);
    let trust = platform().public();

    // No key at all: random bytes, correctly chained, in the open epoch.
    let path = dir.join("nokey.vgj");
    let mut forged = snapshot.clone();
    let mut t = tail(&forged, None);
    let (epoch, policy) = (t.epoch, t.policy);
    append_frame(&mut forged, &mut t, Kind::Verdict, epoch, &[], &[0u8; 300]);
    std::fs::write(&path, &forged).unwrap();
    // The chain and signatures alone cannot tell...
    scan::scan_file(&path, ScanOptions { trust: Some(&trust), ..Default::default() }, |_| Ok(())).unwrap();
    // ...but the writer authenticates what no checkpoint covers, and stops.
    match open_err(&path, None) {
        JournalError::Tampered { seq, detail, .. } => {
            assert_eq!(seq, t.next_seq - 1);
            assert!(detail.contains("does not authenticate"), "{detail}");
        }
        e => panic!("expected tampering, got {e}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), forged, "untouched");

    // With the data key the frame authenticates — that is all a data key
    // can prove. The writer adopts it and says so in its signed epoch
    // statement, and every reader reports the adoption.
    let path = dir.join("datakey.vgj");
    let mut forged = snapshot.clone();
    let mut t = tail(&forged, Some(&master()));
    let first_unsealed = 1; // no checkpoint in the crashed run
    append_frame(&mut forged, &mut t, Kind::Verdict, epoch, &[], &verdict(&policy, 77, "rm -rf /srv", 0));
    let forged_seq = t.next_seq - 1;
    std::fs::write(&path, &forged).unwrap();
    let journal = Journal::open(&path, &master(), platform(), options(None)).unwrap();
    assert_eq!(journal.report().adopted, Some((first_unsealed, forged_seq)));
    journal.close().unwrap();
    let s = scan::scan_file(&path, ScanOptions { trust: Some(&trust), ..Default::default() }, |_| Ok(())).unwrap();
    assert_eq!(s.adopted.len(), 1);
    assert_eq!((s.adopted[0].first, s.adopted[0].last), (first_unsealed, forged_seq));
    assert_eq!(s.adopted_frames, forged_seq);
    assert!(s.closed);

    // An epoch statement that hides the adoption does not verify (the
    // forger would need the platform key to sign another).
    let bytes = std::fs::read(&path).unwrap();
    let mut public = None;
    scan::scan(Cursor::new(&bytes[..]), bytes.len() as u64, ScanOptions::default(), |f| {
        if f.kind == Kind::Epoch && f.seq == forged_seq + 1 {
            public = Some(EpochStatement::decode(f.public, f.seq).unwrap());
        }
        Ok(())
    })
    .unwrap();
    let public = public.unwrap();
    let header = Header::decode(&bytes).unwrap();
    let mut hidden = public.clone();
    hidden.adopted = None;
    let at = EpochPosition { journal_id: &header.journal_id, seq: forged_seq + 1, epoch: epoch + 1, prev: &t.head };
    public.verify(&at, &trust).unwrap();
    assert!(hidden.verify(&at, &trust).is_err());
}

#[test]
fn cutting_back_deleting_or_replacing_a_journal_is_seen() {
    let dir = scratch("cutback");
    let marks = dir.join("anchors");
    let path = dir.join("j.vgj");
    let trust_path = dir.join("platform.pub");
    std::fs::write(&trust_path, vigil::keys::cose_key_set(&platform().public()).unwrap()).unwrap();
    run(&path, Some(&marks), 4);
    let first_run = std::fs::read(&path).unwrap();
    run(&path, Some(&marks), 4);
    let full = std::fs::read(&path).unwrap();
    let anchor_file = dir.join("witness.anchor");
    let exported = audit::export_anchor(&path, &trust_path, &anchor_file, Some(marks.clone())).unwrap();
    let printed = dir.join("paper.txt");
    std::fs::write(&printed, format!("{}\n", exported.printable)).unwrap();
    let verify = |marks_dir: Option<&Path>, anchors: Vec<PathBuf>| {
        let options = VerifyOptions { allow_unsealed: false, anchors, high_water: marks_dir.map(Path::to_path_buf) };
        audit::verify(&path, &trust_path, &options).unwrap()
    };
    let r = verify(Some(&marks), vec![anchor_file.clone(), printed.clone()]);
    assert!(r.ok && r.marks.len() == 3 && r.marks.iter().all(|m| m.reached), "{r:?}");

    // Cut back to the end of the first run: on its own, a perfectly
    // chained, signed and closed journal.
    std::fs::write(&path, &first_run).unwrap();
    let alone = verify(None, vec![]);
    assert!(alone.ok, "without a mark the cut is invisible: {alone:?}");
    // Against the high-water mark, the exported anchor and the printed one:
    let r = verify(Some(&marks), vec![anchor_file.clone(), printed.clone()]);
    assert!(!r.ok && r.marks.iter().all(|m| !m.reached), "{r:?}");
    assert!(r.problems.iter().any(|p| p.contains("cut back")), "{:?}", r.problems);
    let e = open_err(&path, Some(&marks));
    assert!(matches!(e, JournalError::HighWater { .. }) && e.to_string().contains("cut back"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), first_run, "untouched");

    // Cut by a single frame (the closing checkpoint): still behind.
    std::fs::write(&path, &full[..full.len() - last_frame_len(&full)]).unwrap();
    assert!(matches!(open_err(&path, Some(&marks)), JournalError::HighWater { .. }));

    // Deleted: the writer does not quietly start a new journal.
    std::fs::remove_file(&path).unwrap();
    let e = open_err(&path, Some(&marks));
    assert!(e.to_string().contains("missing"), "{e}");
    assert!(!path.exists());

    // Replaced by a fresh journal (another id) at the same path.
    run(&dir.join("other.vgj"), None, 1);
    std::fs::rename(dir.join("other.vgj"), &path).unwrap();
    let e = open_err(&path, Some(&marks));
    assert!(e.to_string().contains("replaced"), "{e}");

    // Replaced by another journal's bare header (a fresh id, no frames,
    // so no mark of its own): the mark recorded for the path says so, to
    // the auditor as to the writer.
    let other = std::fs::read(&path).unwrap();
    std::fs::write(&path, &other[..format::HEADER_LEN]).unwrap();
    let r = verify(Some(&marks), vec![]);
    assert!(!r.ok, "{r:?}");
    assert!(r.problems.iter().any(|p| p.contains("it was replaced")), "{:?}", r.problems);

    // Restored: it reaches its mark again and the writer goes on.
    std::fs::write(&path, &full).unwrap();
    run(&path, Some(&marks), 1);

    // A mark altered by anyone without the platform key is refused.
    let mark_path = std::fs::read_dir(&marks).unwrap().next().unwrap().unwrap().path();
    let mut mark = std::fs::read(&mark_path).unwrap();
    let at = mark.len() - 100;
    mark[at] ^= 1;
    std::fs::write(&mark_path, &mark).unwrap();
    let e = open_err(&path, Some(&marks));
    assert!(e.to_string().contains("does not verify"), "{e}");
}

fn last_frame_len(bytes: &[u8]) -> usize {
    let mut last = 0;
    scan::scan(Cursor::new(bytes), bytes.len() as u64, ScanOptions::default(), |f| {
        last = f.len as usize;
        Ok(())
    })
    .unwrap();
    last
}

#[test]
fn two_names_meet_one_lock_and_planted_symlinks_are_not_followed() {
    let dir = scratch("names");
    let path = dir.join("j.vgj");
    run(&path, None, 1);
    let first = Journal::open(&path, &master(), platform(), options(None)).unwrap();

    // A hard link: another name, the same file, the same lock.
    let link = dir.join("hard.vgj");
    std::fs::hard_link(&path, &link).unwrap();
    match Journal::open(&link, &master(), platform(), options(None)) {
        Err(e @ JournalError::Locked { .. }) => {
            assert!(e.to_string().contains(&format!("pid {}", std::process::id())), "{e}")
        }
        Err(e) => panic!("expected a lock error, got {e}"),
        Ok(_) => panic!("two writers on one file through two names"),
    }
    // A symbolic link is refused outright.
    let sym = dir.join("sym.vgj");
    std::os::unix::fs::symlink(&path, &sym).unwrap();
    let e = Journal::open(&sym, &master(), platform(), options(None)).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    first.close().unwrap();

    // The old lock-file name, planted as a symlink to a victim, is never
    // opened, truncated or written.
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("j.vgj.lock")).unwrap();
    run(&path, None, 1);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    // Nor is a journal path that is itself a planted symlink.
    let planted = dir.join("planted.vgj");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    assert!(Journal::open(&planted, &master(), platform(), options(None)).is_err());
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn a_writer_stops_when_the_file_changes_behind_its_back() {
    let dir = scratch("behind");
    let path = dir.join("j.vgj");
    let journal = Journal::open(&path, &master(), platform(), options(None)).unwrap();
    let policy = journal.ensure_policy(&bundle()).unwrap();
    journal.append_durable(Kind::Verdict, &verdict(&policy, 1, "ls", 0)).unwrap();
    // Someone ignores the advisory lock and appends.
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&[0xee; 100]).unwrap();
    let seq = journal.append(Kind::Verdict, &verdict(&policy, 2, "ls", 0)).unwrap();
    let e = journal.wait(seq).unwrap_err();
    assert!(e.to_string().contains("another process changed it"), "{e}");
    drop(journal);
}

#[test]
fn a_version_1_journal_is_refused_with_a_clear_message() {
    let dir = scratch("v1");
    let path = dir.join("j.vgj");
    run(&path, None, 1);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8] = 1;
    std::fs::write(&path, &bytes).unwrap();
    let e = open_err(&path, None);
    assert!(e.to_string().contains("version 1"), "{e}");
}

/// A guard as the replay sees one: evidence signed by the platform key over
/// a per-boot guard key, and that key's verdict chain and checkpoints.
/// (What a host holding both keys could fabricate; the checks below are
/// about *which* guard a verdict is tied to.)
struct SimGuard {
    key: DualSigningKey,
    chain: vigil_attest::checkpoint::VerdictChain,
    boot: body::BootBody,
}

impl SimGuard {
    fn new(boot_id: u8, policy: &[u8; 48]) -> SimGuard {
        use vigil_attest::evidence::{self, Claims};
        let key = DualSigningKey::from_seeds(&[boot_id; 32], &[boot_id ^ 0x55; 32]);
        let claims = Claims {
            nonce: vec![boot_id; 32],
            image: [7; 48],
            config: vigil::reference::expected_config(bundle().len()),
            policy: *policy,
            arch: "x86_64".into(),
            hypervisor: "kvm".into(),
            platform: "none".into(),
            guard_x25519: [9; 32],
            guard_key: key.public(),
            boot_id: [boot_id; 16],
            timestamp: 1_700_000_000,
            vigil_version: "0.1.0".into(),
            entropy: vec!["host".into()],
            policy_signer: None,
            features: Vec::new(),
        };
        let boot = body::BootBody {
            time_ms: 1_700_000_000_000,
            evidence: evidence::sign(&claims, &platform()).unwrap(),
            nonce: claims.nonce.clone(),
            policy_sha384: policy.to_vec(),
            reference_image: vec![7; 48],
        };
        let chain = vigil_attest::checkpoint::VerdictChain::new(&key.public().fingerprint());
        SimGuard { key, chain, boot }
    }

    /// A guard verdict on `command` (the real evaluation, so that replay
    /// agrees), recorded as judged by boot frame `boot_seq` under `policy`.
    fn verdict(&mut self, boot_seq: Option<u64>, policy: &[u8; 48], id: u64, command: &str) -> Vec<u8> {
        let bytes = bundle();
        let b = vigil_guard::bundle::Bundle::load(&bytes).unwrap();
        let intent = vigil_guard::intent::json::to_cbor(&serde_json::json!({"id": id, "agent": "a", "session": "s",
            "tool": "shell", "args": {"command": command}, "cwd": "/home/dev"}))
        .unwrap();
        let verdict = vigil_guard::eval::evaluate(&b, &intent);
        let words = b.rule_count().div_ceil(64).max(1);
        let mut record = vec![0; vigil_guard::verdict_codec::record_len(words)];
        let n = vigil_guard::verdict_codec::encode(&verdict, words, &mut record).unwrap();
        record.truncate(n);
        self.chain.append(&intent, &record);
        body::encode(&VerdictBody {
            time_ms: 1_700_000_000_000,
            judge: body::judge::VM,
            policy_sha384: policy.to_vec(),
            boot_seq,
            intent,
            verdict: record,
            eval_ns: None,
            detail: None,
            judge_failure: None,
            intent_id: id,
            peer: None,
        })
    }

    fn checkpoint(&self, boot_seq: u64, last: bool) -> Vec<u8> {
        use vigil_attest::checkpoint::{GuardCheckpoint, LEN};
        let mut bytes = [0u8; LEN];
        GuardCheckpoint::sign(&self.chain, &self.key).unwrap().encode(&mut bytes);
        body::encode(&body::GuardCheckpointBody {
            time_ms: 1_700_000_000_000,
            boot_seq,
            checkpoint: bytes.to_vec(),
            last,
        })
    }
}

/// The reference the simulated guards were built to.
fn sim_reference() -> vigil::reference::Reference {
    vigil::reference::Reference {
        image: [7; 48],
        arch: "x86_64".into(),
        hypervisors: vec!["kvm".into()],
        platform: "none".into(),
        features: Vec::new(),
        source: "the simulated guard's reference".into(),
    }
}

fn replay_failures(path: &Path) -> (bool, Vec<String>, replay::ReplayReport) {
    let report = replay::replay(path, &master(), &platform().public(), &sim_reference(), false, |_| {}).unwrap();
    let failures = report.counts.failures.iter().map(|f| format!("seq {}: {}", f.seq, f.detail)).collect();
    (report.ok, failures, report)
}

#[test]
fn replay_ties_every_guard_verdict_to_its_own_boot_policy_and_checkpoints() {
    let dir = scratch("ties");
    let j = |name: &str| {
        let path = dir.join(name);
        let journal = Journal::open(&path, &master(), platform(), options(None)).unwrap();
        let policy = journal.ensure_policy(&bundle()).unwrap();
        (path, journal, policy)
    };

    // The honest shape: boot, verdicts, a final guard checkpoint.
    let (path, journal, policy) = j("honest.vgj");
    let mut g = SimGuard::new(1, &policy);
    let boot = journal.append(Kind::Boot, &body::encode(&g.boot)).unwrap();
    for (i, c) in ["ls", "rm -rf /srv", "cargo test"].iter().enumerate() {
        journal.append(Kind::Verdict, &g.verdict(Some(boot), &policy, i as u64, c)).unwrap();
    }
    journal.append(Kind::GuardCheckpoint, &g.checkpoint(boot, true)).unwrap();
    journal.close().unwrap();
    let (ok, failures, report) = replay_failures(&path);
    assert!(ok, "{failures:?}");
    assert_eq!((report.counts.boots_verified, report.counts.guard_checkpoints_verified), (1, 1));
    assert_eq!(report.counts.replayed_equal, 3);

    // Verdicts no checkpoint of their guard covers, in a journal closed
    // cleanly by a guard that did not fail.
    let (path, journal, policy) = j("uncovered.vgj");
    let mut g = SimGuard::new(2, &policy);
    let boot = journal.append(Kind::Boot, &body::encode(&g.boot)).unwrap();
    journal.append(Kind::Verdict, &g.verdict(Some(boot), &policy, 1, "ls")).unwrap();
    journal.append(Kind::GuardCheckpoint, &g.checkpoint(boot, false)).unwrap();
    journal.append(Kind::Verdict, &g.verdict(Some(boot), &policy, 2, "ls -la")).unwrap();
    journal.close().unwrap();
    let (ok, failures, _) = replay_failures(&path);
    assert!(!ok && failures.iter().any(|f| f.contains("covered by no guard checkpoint")), "{failures:?}");

    // The same, but the guard failed afterwards (a judge-failure frame
    // names its boot): reported, explained, and named.
    let (path, journal, policy) = j("failed.vgj");
    let mut g = SimGuard::new(3, &policy);
    let boot = journal.append(Kind::Boot, &body::encode(&g.boot)).unwrap();
    journal.append(Kind::Verdict, &g.verdict(Some(boot), &policy, 1, "ls")).unwrap();
    let mut failed: VerdictBody = body::decode(0, &g.verdict(None, &policy, 2, "ls")).unwrap();
    (failed.boot_seq, failed.verdict, failed.judge_failure) = (Some(boot), Vec::new(), Some("deadline".into()));
    journal.append(Kind::Verdict, &body::encode(&failed)).unwrap();
    journal.close().unwrap();
    let (ok, failures, report) = replay_failures(&path);
    assert!(ok, "{failures:?}");
    assert_eq!(report.counts.vm_verdicts_uncovered, 1);
    assert_eq!(report.counts.judge_failures, 1);
    let cause = &report.counts.judge_failure_causes[0];
    assert_eq!((cause.boot_seq, cause.reason.as_str(), cause.count), (Some(boot), "deadline", 1));

    // A verdict recorded under another policy than its guard attested.
    let (path, journal, policy) = j("policy.vgj");
    let other = journal
        .ensure_policy(
            &vigil_guard::compile::compile(&POLICY.replace("attack-test", "other"), "o.toml").unwrap().bundle,
        )
        .unwrap();
    assert_ne!(other, policy);
    let mut g = SimGuard::new(4, &policy);
    let boot = journal.append(Kind::Boot, &body::encode(&g.boot)).unwrap();
    journal.append(Kind::Verdict, &g.verdict(Some(boot), &other, 1, "ls")).unwrap();
    journal.append(Kind::GuardCheckpoint, &g.checkpoint(boot, true)).unwrap();
    journal.close().unwrap();
    let (ok, failures, _) = replay_failures(&path);
    assert!(!ok && failures.iter().any(|f| f.contains("not the policy")), "{failures:?}");

    // A later writer reusing an earlier writer's guard, and recording the
    // same evidence again as if it were a new boot.
    let (path, journal, policy) = j("epochs.vgj");
    let mut g = SimGuard::new(5, &policy);
    let boot = journal.append(Kind::Boot, &body::encode(&g.boot)).unwrap();
    journal.append(Kind::Verdict, &g.verdict(Some(boot), &policy, 1, "ls")).unwrap();
    journal.append(Kind::GuardCheckpoint, &g.checkpoint(boot, true)).unwrap();
    journal.close().unwrap();
    let journal = Journal::open(&path, &master(), platform(), options(None)).unwrap();
    journal.append(Kind::Verdict, &g.verdict(Some(boot), &policy, 2, "ls -la")).unwrap();
    journal.append(Kind::GuardCheckpoint, &g.checkpoint(boot, true)).unwrap();
    journal.append(Kind::Boot, &body::encode(&g.boot)).unwrap();
    journal.close().unwrap();
    let (ok, failures, _) = replay_failures(&path);
    assert!(!ok, "{failures:?}");
    assert!(failures.iter().any(|f| f.contains("earlier writer")), "{failures:?}");
    assert!(failures.iter().any(|f| f.contains("already used by boot frame")), "{failures:?}");

    // A guard verdict naming no boot, an in-process verdict naming one.
    let (path, journal, policy) = j("unnamed.vgj");
    let mut g = SimGuard::new(6, &policy);
    let boot = journal.append(Kind::Boot, &body::encode(&g.boot)).unwrap();
    journal.append(Kind::Verdict, &g.verdict(None, &policy, 1, "ls")).unwrap();
    let mut inproc: VerdictBody = body::decode(0, &g.verdict(Some(boot), &policy, 2, "ls")).unwrap();
    inproc.judge = body::judge::INPROC;
    journal.append(Kind::Verdict, &body::encode(&inproc)).unwrap();
    journal.close().unwrap();
    let (ok, failures, _) = replay_failures(&path);
    assert!(!ok, "{failures:?}");
    assert!(failures.iter().any(|f| f.contains("names no boot frame")), "{failures:?}");
    assert!(failures.iter().any(|f| f.contains("in-process verdict names guard boot")), "{failures:?}");
}

/// Reads `bytes` as a journal that must reach `reach`.
fn read_reaching(bytes: &[u8], reach: Option<scan::Reach>) -> Result<ScanSummary, JournalError> {
    let trust = platform().public();
    let options = ScanOptions { trust: Some(&trust), reach, ..Default::default() };
    scan::scan(Cursor::new(bytes), bytes.len() as u64, options, |_| Ok(()))
}

#[test]
fn a_second_read_that_does_not_reach_the_first_reads_end_is_refused() {
    let dir = scratch("reach");
    let path = dir.join("j.vgj");
    run(&path, None, 4);
    let first_run = std::fs::read(&path).unwrap();
    run(&path, None, 4);
    let full = std::fs::read(&path).unwrap();
    let reach = Some(read_reaching(&full, None).unwrap().reach());
    assert!(read_reaching(&full, reach).is_ok(), "the same journal reaches its own end");

    // Cut back to the end of the first run, or by its last frame: each on
    // its own whole, chained, signed.
    let cut_by_one = &full[..full.len() - last_frame_len(&full)];
    for cut in [&first_run[..], cut_by_one] {
        assert!(read_reaching(cut, None).is_ok());
        let e = read_reaching(cut, reach).unwrap_err();
        assert!(matches!(e, JournalError::Changed(_)) && e.to_string().contains("cut back"), "{e}");
    }
    // Another journal at least as long (another id, another chain).
    let other = dir.join("other.vgj");
    for _ in 0..3 {
        run(&other, None, 4);
    }
    let other = std::fs::read(&other).unwrap();
    assert!(other.len() >= full.len());
    let e = read_reaching(&other, reach).unwrap_err();
    assert!(matches!(e, JournalError::Changed(_)) && e.to_string().contains("replaced"), "{e}");
    // Another journal's bare header (no frames): refused at the header,
    // and so is a bare header where the first read had found no frame.
    let decoy = &other[..format::HEADER_LEN];
    let e = read_reaching(decoy, reach).unwrap_err();
    assert!(matches!(e, JournalError::Changed(_)) && e.to_string().contains("replaced"), "{e}");
    let empty = read_reaching(&full[..format::HEADER_LEN], None).unwrap().reach();
    assert_eq!(empty.seq, 0);
    let empty_reach = Some(empty);
    read_reaching(&first_run, empty_reach).unwrap();
    let e = read_reaching(decoy, empty_reach).unwrap_err();
    assert!(matches!(e, JournalError::Changed(_)), "{e}");
    // The same journal grown by a writer since: it still holds that end.
    run(&path, None, 2);
    let grown = std::fs::read(&path).unwrap();
    assert!(grown.len() > full.len());
    read_reaching(&grown, reach).unwrap();

    // Each second reader the auditor commands use takes the end.
    std::fs::write(&path, &first_run).unwrap();
    let trust = platform().public();
    let e = replay::replay_reaching(&path, &master(), &trust, &sim_reference(), false, reach, |_| {}).unwrap_err();
    assert!(matches!(e, JournalError::Changed(_)), "{e}");
    let e = vigil::journal::export::describe_all(&path, &master(), Some(&trust), reach, |_, _| Ok(())).unwrap_err();
    assert!(matches!(e, JournalError::Changed(_)), "{e}");
    let e = vigil::cost_audit::verify(&path, Some(&master()), &trust, &trust, reach).unwrap_err();
    assert!(matches!(e, JournalError::Changed(_)), "{e}");
}

/// The attack for real: while `journal export` runs again and again, the
/// journal's name is swapped back and forth between the whole journal
/// (which reaches its high-water mark) and a copy cut back to an earlier
/// run (which, alone, is chained, signed and closed). Whichever copy each
/// of the command's two reads opens, an export that succeeds holds the
/// whole journal.
#[test]
fn a_journal_swapped_while_it_is_exported_never_exports_the_cut_copy() {
    let dir = scratch("swap");
    let marks = dir.join("anchors");
    let path = dir.join("j.vgj");
    run(&path, Some(&marks), 4);
    let first_run = std::fs::read(&path).unwrap();
    run(&path, Some(&marks), 4);
    let full = std::fs::read(&path).unwrap();
    let full_frames = read_reaching(&full, None).unwrap().frames;
    let keys = audit::KeySource { master: master(), trust: platform().public() };
    let options = VerifyOptions { allow_unsealed: false, anchors: Vec::new(), high_water: Some(marks.clone()) };
    let out = dir.join("export.jsonl");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (mut whole, mut refused_cut, mut refused_changed) = (0u32, 0u32, 0u32);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let staged = dir.join(format!("staged-{n}"));
                std::fs::write(&staged, if n.is_multiple_of(2) { &first_run } else { &full }).unwrap();
                std::fs::rename(&staged, &path).unwrap();
                n += 1;
            }
        });
        // Stops the swapping however this thread leaves the scope (a
        // failed assertion included).
        struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&stop);
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            match audit::export(&path, &keys, false, Some(&out), 0, &options) {
                Ok(lines) => {
                    assert_eq!(lines, full_frames, "an export succeeded with a cut copy");
                    let text = std::fs::read_to_string(&out).unwrap();
                    assert_eq!(text.lines().count() as u64, full_frames);
                    whole += 1;
                }
                Err(e) if format!("{e:#}").contains("changed while it was read") => refused_changed += 1,
                Err(e) if format!("{e:#}").contains("cut back") => refused_cut += 1,
                Err(e) => panic!("unexpected failure: {e:#}"),
            }
        }
    });
    println!(
        "exports of the whole journal {whole}, refused as cut {refused_cut}, refused as changed between reads {refused_changed}"
    );
    assert!(whole + refused_cut + refused_changed > 0);
}
