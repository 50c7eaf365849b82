//! The guard VM as a judge, under KVM: evidence, the attested channel,
//! batch judgement and guard checkpoints, end to end.

use std::path::Path;
use std::sync::Arc;

use vigil::judge::InprocJudge;
use vigil::policy;
use vigil::vm_judge::{TrustAnchors, VmJudge};
use vigil::vmm::{BootTemplate, GuardVm, PlatformSigner, PolicyImage, VmConfig};
use vigil_attest::checkpoint::{self, GuardCheckpoint};
use vigil_attest::dual::DualSigningKey;
use vigil_tests::require_kvm;
use vigil_unikernel::abi::{kind, status};

fn platform_key() -> Arc<DualSigningKey> {
    Arc::new(DualSigningKey::from_seeds(&[11; 32], &[12; 32]))
}

fn template() -> BootTemplate {
    BootTemplate::from_elf(vigil::guard_image::production()).expect("embedded image is valid")
}

fn anchors(template: &BootTemplate, key: &DualSigningKey) -> TrustAnchors {
    let reference = vigil::reference::Reference {
        image: *template.image().measurement(),
        arch: "x86_64".into(),
        hypervisors: vec!["kvm".into()],
        platform: "none".into(),
        features: template.image().features().to_vec(),
        source: "the test's template".into(),
    };
    let allow_test_image = reference.features.iter().any(|f| f == "test-hooks");
    TrustAnchors { platform: key.public(), reference, allow_test_image }
}

fn config(key: &Arc<DualSigningKey>, interval: u64) -> VmConfig {
    VmConfig { platform: Some(PlatformSigner(key.clone())), checkpoint_interval: interval, ..VmConfig::default() }
}

/// Every case of tests/corpus, the independent directories included.
fn corpus_intents() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut files: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    for dir in files.clone().iter().filter(|p| p.is_dir()) {
        files.extend(std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()));
    }
    files.sort();
    let mut out = Vec::new();
    for file in files.iter().filter(|p| p.extension().is_some_and(|e| e == "jsonl")) {
        for case in policy::read_cases(file).unwrap() {
            // Values that cannot become CBOR are judged as empty bytes, as
            // `InprocJudge::evaluate_json` does.
            out.push(case.cbor().unwrap_or_default());
        }
    }
    out
}

/// Judges `chunk` as one batch through the VM; each verdict must be the
/// in-process one.
fn judge_as_in_process(judge: &mut VmJudge, inproc: &InprocJudge<'_>, chunk: &[Vec<u8>]) {
    let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
    let verdicts = judge.judge(&refs).expect("batch judged");
    for (intent, verdict) in chunk.iter().zip(&verdicts) {
        assert_eq!(*verdict, inproc.evaluate(intent), "intent {}", String::from_utf8_lossy(intent));
    }
}

#[test]
fn every_corpus_case_gets_the_same_verdict_in_the_vm_as_in_process() {
    require_kvm!();
    let key = platform_key();
    let template = template();
    let bundle = policy::default_bundle().to_vec();
    let inproc = InprocJudge::new(&bundle).unwrap();
    let intents = corpus_intents();
    assert!(intents.len() > 1000, "corpus has {} cases", intents.len());
    // A small interval, so checkpoints arrive in the middle of the run.
    let mut judge =
        VmJudge::start(&template, PolicyImage::new(bundle.clone()), &anchors(&template, &key), config(&key, 100))
            .expect("guard starts and attests");
    let mut judged = 0;
    for size in [1usize, 7, 64, 256] {
        for chunk in intents.chunks(size).take(if size == 1 { 50 } else { usize::MAX }) {
            judge_as_in_process(&mut judge, &inproc, chunk);
            judged += chunk.len();
        }
    }
    assert_eq!(judge.verdicts(), judged as u64);
    assert!(judge.checkpoints_verified() >= 20, "{} checkpoints", judge.checkpoints_verified());
    let explicit = judge.checkpoint().expect("explicit checkpoint");
    assert_eq!(explicit.count, judged as u64);
    let last = judge.shutdown().expect("final checkpoint verifies against every verdict");
    assert_eq!(last.count, judged as u64);
}

#[test]
fn the_guard_makes_dense_copies_when_idle_and_its_verdicts_stay_the_same() {
    require_kvm!();
    let key = platform_key();
    let template = template();
    let bundle = policy::default_bundle().to_vec();
    let inproc = InprocJudge::new(&bundle).unwrap();
    let intents = corpus_intents();
    let mut judge =
        VmJudge::start(&template, PolicyImage::new(bundle.clone()), &anchors(&template, &key), config(&key, 4096))
            .expect("guard starts and attests");
    // Idle: one DFA copied per step, each well under a millisecond.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (mut made, mut before) = (0, 0);
    while std::time::Instant::now() < deadline {
        made = judge.info().expect("info").dense_bytes;
        if made > 0 && made == before {
            break;
        }
        before = made;
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut arena = vigil::judge::dense_arena();
    let mut expected = vigil_guard::bundle::Bundle::load(&bundle).unwrap();
    let want = expected.densify(&mut arena) as u64;
    assert_eq!(made, want, "the guard's copies take what the same copies take in process");
    for chunk in intents.chunks(256) {
        judge_as_in_process(&mut judge, &inproc, chunk);
    }
    judge.shutdown().expect("final checkpoint");
}

#[test]
fn evidence_binds_keys_nonce_image_and_policy() {
    require_kvm!();
    let key = platform_key();
    let template = template();
    let bundle = policy::default_bundle().to_vec();
    let judge =
        VmJudge::start(&template, PolicyImage::new(bundle.clone()), &anchors(&template, &key), config(&key, 4096))
            .expect("guard starts");
    let claims = judge.claims().clone();
    assert_eq!(claims.policy, vigil_attest::measure(&bundle));
    assert_eq!(claims.image, *template.image().measurement());
    assert_eq!(claims.hypervisor, "kvm");
    assert!(claims.entropy.iter().any(|e| e == "host-seed"));
    drop(judge);

    // The wrong platform key, or another reference image: refused.
    let other = DualSigningKey::from_seeds(&[1; 32], &[2; 32]);
    let err = VmJudge::start(&template, PolicyImage::new(bundle.clone()), &anchors(&template, &other), config(&key, 1))
        .err()
        .expect("foreign platform key refused");
    assert!(format!("{err:#}").contains("evidence rejected"), "{err:#}");
    let mut wrong_image = anchors(&template, &key);
    wrong_image.reference.image[0] ^= 1;
    let err = VmJudge::start(&template, PolicyImage::new(bundle), &wrong_image, config(&key, 1))
        .err()
        .expect("other image refused");
    assert!(format!("{err:#}").contains("image"), "{err:#}");
}

#[test]
fn no_platform_key_no_policy_and_bad_policy_fail_closed() {
    require_kvm!();
    let key = platform_key();
    let template = template();
    let bundle = policy::default_bundle().to_vec();
    // Without a platform key the VMM gives no evidence.
    let no_key = VmConfig { platform: None, ..config(&key, 10) };
    let err = VmJudge::start(&template, PolicyImage::new(bundle.clone()), &anchors(&template, &key), no_key)
        .err()
        .expect("no evidence without a platform key");
    assert!(format!("{err:#}").contains("no evidence"), "{err:#}");

    // A corrupted bundle: the guard refuses to judge (the host also refuses
    // to start with it).
    let mut corrupt = bundle.clone();
    corrupt[0] ^= 0xFF; // the magic
    let mut vm =
        GuardVm::boot(&template, VmConfig { policy: Some(PolicyImage::new(corrupt)), ..config(&key, 10) }).unwrap();
    let ev = vm.request(kind::ATTEST, &[7; 16]).unwrap();
    assert_eq!(ev.status, status::OK);
    let open = vm.request(kind::CHANNEL_OPEN, &[0; 200]).unwrap();
    assert_eq!(open.status, status::NO_POLICY);
    // The guard says so on its console when it prepared the bundle (the
    // console reaches the host asynchronously).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !vm.console().iter().any(|l| l.contains("REFUSED")) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(vm.console().iter().any(|l| l.contains("REFUSED")), "{:?}", vm.console());
}

#[test]
fn a_dead_guard_gives_deny_with_a_reason() {
    require_kvm!();
    let key = platform_key();
    let template = template();
    let bundle = policy::default_bundle().to_vec();
    let mut judge =
        VmJudge::start(&template, PolicyImage::new(bundle), &anchors(&template, &key), config(&key, 4096)).unwrap();
    let intent = vigil_guard::intent::json::to_cbor(
        &serde_json::json!({"id": 1, "agent": "a", "tool": "shell", "args": {"command": "ls"}}),
    )
    .unwrap();
    assert_eq!(judge.judge_or_deny(&[&intent])[0].decision, "ALLOW");
    // An oversize batch (beyond the mailbox) is refused and ends the judge.
    let big = vec![0u8; 600 * 1024];
    let reports = judge.judge_or_deny(&[&big, &big]);
    assert!(reports.iter().all(|r| r.decision == "DENY" && r.reason == "judge_failed"), "{reports:?}");
    // ... and every later call is DENY too, never ALLOW.
    let later = judge.judge_or_deny(&[&intent]);
    assert_eq!((later[0].decision, later[0].reason), ("DENY", "judge_failed"));
    assert!(later[0].detail.as_deref().unwrap_or("").contains("stopped"), "{later:?}");
}

#[test]
fn guard_checkpoint_forgery_is_detected() {
    require_kvm!();
    let key = platform_key();
    let template = template();
    let mut judge = VmJudge::start(
        &template,
        PolicyImage::new(policy::default_bundle().to_vec()),
        &anchors(&template, &key),
        config(&key, 4096),
    )
    .unwrap();
    let intent = vigil_guard::intent::json::to_cbor(
        &serde_json::json!({"id": 1, "agent": "a", "tool": "shell", "args": {"command": "rm -rf /"}}),
    )
    .unwrap();
    judge.judge(&[&intent]).unwrap();
    let cp = judge.checkpoint().unwrap();
    let guard_key = judge.claims().guard_key.clone();
    cp.verify(&guard_key).unwrap();
    let mut bytes = [0u8; checkpoint::LEN];
    cp.encode(&mut bytes);
    // Claiming fewer verdicts, or signing with the platform key instead of
    // the attested guard key: both fail.
    bytes[8] ^= 1;
    assert!(GuardCheckpoint::decode(&bytes).unwrap().verify(&guard_key).is_err());
    let forged = GuardCheckpoint { signature: key.sign(checkpoint::CONTEXT, &[0; 48]).unwrap(), ..cp.clone() };
    assert!(forged.verify(&guard_key).is_err());
    judge.shutdown().unwrap();
}

/// The attack the trust-chain review performed: the test-hooks image
/// (marked never to be trusted) booted through `--guard-image`, judged, and
/// replayed as "boot evidence ok" because it was its own reference.
#[test]
fn a_test_hooks_image_is_never_its_own_reference() {
    use vigil::guard_image::{self, GuardChoice};
    let dir = std::env::temp_dir().join(format!("vigil-test-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("hooks.elf");
    std::fs::write(&image, guard_image::test_hooks()).unwrap();
    let hooks = BootTemplate::from_elf(guard_image::test_hooks()).unwrap();
    assert_eq!(hooks.image().features(), ["test-hooks"], "the image declares its features itself");
    assert!(template().image().features().is_empty());

    // No reference: refused, whatever the image.
    let choice = GuardChoice { path: Some(image.clone()), reference: None, allow_test_image: false, deadline: None };
    let e = guard_image::load(&choice).err().unwrap();
    assert!(format!("{e:#}").contains("needs --reference"), "{e:#}");
    // The production reference: another image.
    let production = dir.join("production.json");
    std::fs::write(&production, guard_image::production_measurements()).unwrap();
    let choice = GuardChoice { reference: Some(production.clone()), allow_test_image: true, ..choice };
    let e = guard_image::load(&choice).err().unwrap();
    assert!(format!("{e:#}").contains("is not the image of the reference"), "{e:#}");
    // Its own measurements: still a test image, refused unless allowed.
    let own = dir.join("hooks.json");
    let measurements = guard_image::production_measurements()
        .replace(&hex_of(template().image().measurement()), &hex_of(hooks.image().measurement()))
        .replace("\"features\": []", "\"features\": [\n    \"test-hooks\"\n  ]");
    std::fs::write(&own, measurements).unwrap();
    let choice = GuardChoice { reference: Some(own.clone()), allow_test_image: false, ..choice };
    let e = guard_image::load(&choice).err().unwrap();
    assert!(format!("{e:#}").contains("test-hooks image"), "{e:#}");
    let (_, _, reference) = guard_image::load(&GuardChoice { allow_test_image: true, ..choice }).unwrap();
    assert_eq!(reference.features, ["test-hooks"]);

    // Evidence from a test-hooks guard is refused by a verifier that was
    // not told otherwise, even against the test image's own reference...
    require_kvm!();
    let key = platform_key();
    let bundle = policy::default_bundle().to_vec();
    let refuse = TrustAnchors { platform: key.public(), reference: reference.clone(), allow_test_image: false };
    let e = VmJudge::start(&hooks, PolicyImage::new(bundle.clone()), &refuse, config(&key, 4096)).err().unwrap();
    assert!(format!("{e:#}").contains("test-hooks"), "{e:#}");
    // ...and a journal recording such a boot does not replay as ok against
    // the production reference.
    let allow = TrustAnchors { allow_test_image: true, ..refuse };
    let judge = VmJudge::start(&hooks, PolicyImage::new(bundle.clone()), &allow, config(&key, 4096)).unwrap();
    let master = vigil::journal::MasterKey::new([9; 32]);
    let path = dir.join("j.vgj");
    let journal =
        vigil::journal::Journal::open(&path, &master, key.clone(), vigil::journal::WriterOptions::default()).unwrap();
    journal.ensure_policy(&bundle).unwrap();
    journal.append_durable(vigil::journal::Kind::Boot, &vigil::journal::body::encode(&judge.boot_body())).unwrap();
    journal.close().unwrap();
    judge.shutdown().unwrap();
    let embedded = vigil::guard_image::production_reference().unwrap();
    let report = vigil::journal::replay::replay(&path, &master, &key.public(), &embedded, false, |_| {}).unwrap();
    assert!(!report.ok && report.counts.boots_verified == 0, "{:?}", report.counts.failures);
    let report = vigil::journal::replay::replay(&path, &master, &key.public(), &reference, false, |_| {}).unwrap();
    assert!(report.counts.failures.iter().any(|f| f.detail.contains("test-hooks")), "{:?}", report.counts.failures);
    let _ = std::fs::remove_dir_all(&dir);
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Single-bit flips of the bundle are refused by the guard itself, not only
/// by the host (which refuses every flip: the engine tests): sampled over
/// the header, the digest, the section table and the tables.
#[test]
fn the_guard_refuses_flipped_bundles() {
    require_kvm!();
    let key = platform_key();
    let template = template();
    let bundle = policy::default_bundle().to_vec();
    let len = bundle.len();
    let open_with = |bytes: Vec<u8>| {
        let mut vm =
            GuardVm::boot(&template, VmConfig { policy: Some(PolicyImage::new(bytes)), ..config(&key, 10) }).unwrap();
        let ev = vm.request(kind::ATTEST, &[7; 16]).unwrap();
        assert_eq!(ev.status, status::OK);
        vm.request(kind::CHANNEL_OPEN, &[0; 200]).unwrap().status
    };
    // The twin: the intact bundle loads (this open fails for its made-up
    // evidence digest, not for the policy).
    assert_eq!(open_with(bundle.clone()), status::CHANNEL_FAILED);
    for bit in [0, 8 * 9, 8 * 12 + 1, 8 * 40 + 3, 8 * 90 + 1, 8 * (len / 3) + 5, 8 * (len / 2) + 7, 8 * len - 1] {
        let mut bad = bundle.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(open_with(bad), status::NO_POLICY, "bit {bit} of {}", 8 * len);
    }
}
