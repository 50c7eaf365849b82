//! A daemon whose guard dies mid-batch: the intents it held are recorded
//! and answered DENY `judge_failed`, the pool boots and attests a new guard,
//! later requests are judged again, and the journal replays. The guards
//! are test-hooks images (they panic or spin on request); the daemon runs
//! in this process, stopped through its `stop` future.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil::daemon::client;
use vigil::daemon::pool::GuardRecipe;
use vigil::daemon::{ServeOptions, Socket};
use vigil::vm_judge::TrustAnchors;
use vigil::vmm::{BootTemplate, PlatformSigner, PolicyImage, VmConfig};
use vigil_tests::require_kvm;
use vigil_unikernel::abi::kind;

fn call(socket: &Path, method: &str, path: &str, body: &Value) -> client::Answer {
    let text = if body.is_null() { String::new() } else { body.to_string() };
    client::call(socket, method, path, text.as_bytes(), Duration::from_secs(30)).expect("the daemon answers")
}

fn wait_ready(socket: &Path, guards: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(a) = client::call(socket, "GET", "/v1/health", b"", Duration::from_secs(5))
            && a.json()["guards_ready"] == guards
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the pool did not get {guards} guard(s) ready");
}

fn metric(socket: &Path, name: &str) -> u64 {
    let text = String::from_utf8(call(socket, "GET", "/metrics", &Value::Null).body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

/// A daemon of one test-hooks guard running in this process.
struct InProcess {
    dir: PathBuf,
    socket: PathBuf,
    journal: PathBuf,
    public: vigil_attest::dual::DualPublicKey,
    reference: vigil::reference::Reference,
    stop: tokio::sync::oneshot::Sender<()>,
    daemon: std::thread::JoinHandle<Result<(), vigil::daemon::ServeError>>,
}

fn start(name: &str, options: ServeOptions) -> InProcess {
    let dir: PathBuf = std::env::temp_dir().join(format!("vigil-daemon-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    vigil::keys::init(&dir, false).unwrap();
    let bundle = vigil::policy::default_bundle().to_vec();
    let hooks = BootTemplate::from_elf(vigil::guard_image::test_hooks()).unwrap();
    let reference = vigil::reference::Reference {
        image: *hooks.image().measurement(),
        arch: "x86_64".into(),
        hypervisors: vec!["kvm".into()],
        platform: "none".into(),
        features: hooks.image().features().to_vec(),
        source: "the test-hooks image".into(),
    };
    let (secret, public) = vigil::keys::platform_pair(&dir).unwrap();
    let recipe = GuardRecipe {
        template: hooks,
        policy: PolicyImage::new(bundle.clone()),
        trust: TrustAnchors { platform: public.clone(), reference: reference.clone(), allow_test_image: true },
        config: VmConfig { platform: Some(PlatformSigner(Arc::new(secret))), ..VmConfig::default() },
        reattest: Some(Duration::from_millis(200)),
    };
    let recorder = vigil::recording::Recorder::open(&dir, None, &bundle).unwrap();
    let journal = recorder.path().to_path_buf();
    let socket_path = dir.join("vigil.sock");
    let socket = Socket::bind(&socket_path).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = std::thread::spawn(move || {
        vigil::daemon::serve(socket, None, &options, recipe, recorder, "test".into(), |_| {}, async move {
            let _ = stopped.await;
        })
    });
    wait_ready(&socket_path, 1);
    InProcess { dir, socket: socket_path, journal, public, reference, stop, daemon }
}

#[test]
fn a_guard_that_dies_mid_batch_denies_what_it_held_and_is_replaced() {
    require_kvm!();
    let options = ServeOptions {
        guards: 1,
        queue: 1024,
        max_body: 1 << 20,
        fault_injection: true,
        approval_timeout: Duration::from_secs(60),
        ..ServeOptions::default()
    };
    let InProcess { dir, socket: socket_path, journal, public, reference, stop, daemon } = start("faults", options);

    let intent = |id: u64, command: &str| json!({"id": id, "agent": "t", "tool": "shell", "args": {"command": command}, "cwd": "/w"});
    let mut failed = 0;
    for (fault, what) in [(kind::TEST_PANIC, "panic"), (kind::TEST_SPIN, "hang"), (kind::TEST_FAULT, "fault")] {
        // The guard dies while it holds three intents: each is DENY.
        let batch = json!({"intents": [intent(1, "ls"), intent(2, "rm -rf /"), intent(3, "git status")]});
        let a = call(&socket_path, "POST", &format!("/v1/test/fault?kind={fault}"), &batch);
        assert_eq!(a.status, 200, "{what}: {}", String::from_utf8_lossy(&a.body));
        for v in a.json()["verdicts"].as_array().unwrap() {
            assert_eq!(v["decision"], "DENY", "{what}: {v}");
            assert_eq!(v["reason"], "judge_failed", "{what}: {v}");
        }
        failed += 3;
        // The next request is judged by a new, attested guard.
        let a = call(&socket_path, "POST", "/v1/evaluate", &intent(4, "ls"));
        assert_eq!(a.json()["verdict"]["decision"], "ALLOW", "{what}: {}", a.json());
        wait_ready(&socket_path, 1);
    }
    // Idle guards are attested again on the interval.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&socket_path, "vigil_reattestations_total") == 0 {
        assert!(Instant::now() < deadline, "no re-attestation");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&socket_path, "vigil_guard_starts_total"), 4);
    assert_eq!(metric(&socket_path, "vigil_guard_failures_total"), 3);
    assert_eq!(metric(&socket_path, "vigil_judge_failed_total"), failed);

    stop.send(()).unwrap();
    daemon.join().unwrap().expect("the daemon stops cleanly");
    assert!(!socket_path.exists(), "the socket is removed");
    // Every DENY is in the journal as a judge failure, and four boots.
    // Replay refuses to trust test-hooks guards (as it must), and so
    // everything they judged: that is all it finds wrong.
    let master = vigil::keys::read_journal_key(&dir).unwrap();
    let report = vigil::journal::replay::replay(&journal, &master, &public, &reference, false, |_| {}).unwrap();
    let failures = &report.counts.failures;
    assert_eq!(report.counts.judge_failures, failed, "{failures:?}");
    assert_eq!(failures.iter().filter(|f| f.detail.contains("test-hooks image")).count(), 4, "{failures:?}");
    assert!(
        failures.iter().all(|f| f.detail.contains("test-hooks image") || f.detail.contains("did not verify")),
        "{failures:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn slow_idle_and_too_many_clients_cannot_hold_the_daemon() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    require_kvm!();
    let limits = vigil::daemon::connections::Limits {
        max_connections: 3,
        head_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_millis(500),
        drain: Duration::from_secs(5),
    };
    let daemon = start("limits", ServeOptions { limits, ..ServeOptions::default() });
    // Three connections take every slot and trickle a request head.
    let mut slow: Vec<UnixStream> = (0..3)
        .map(|_| {
            let mut s = UnixStream::connect(&daemon.socket).unwrap();
            s.write_all(b"POST /v1/evaluate HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    // A fourth client waits for a slot, and gets one once the head
    // deadline has cut the slow ones off.
    let started = Instant::now();
    let health = client::call(&daemon.socket, "GET", "/v1/health", b"", Duration::from_secs(10)).unwrap();
    assert_eq!(health.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300), "served before any slot was free");
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(!String::from_utf8_lossy(&rest).contains("200 OK"), "a request with no end was answered");
    }
    // A body that never arrives in full: 408, and nothing is judged.
    let mut s = UnixStream::connect(&daemon.socket).unwrap();
    s.write_all(b"POST /v1/evaluate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\": 1").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = [0u8; 12];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 408", "{}", String::from_utf8_lossy(&answer));
    let judged: u64 = ["ALLOW", "ESCALATE", "DENY"]
        .iter()
        .map(|d| metric(&daemon.socket, &format!("vigil_verdicts_total{{decision=\"{d}\"}}")))
        .sum();
    assert_eq!(judged, 0);
    // An idle connection does not hold the stop up.
    let _idle = UnixStream::connect(&daemon.socket).unwrap();
    let stopping = Instant::now();
    daemon.stop.send(()).unwrap();
    daemon.daemon.join().unwrap().expect("the daemon stops cleanly");
    assert!(stopping.elapsed() < Duration::from_secs(5), "{:?}", stopping.elapsed());
    let _ = std::fs::remove_dir_all(&daemon.dir);
}
