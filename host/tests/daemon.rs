//! `vigil serve` as a user runs it: a real daemon with real guards on a
//! temporary socket, driven over HTTP by concurrent clients.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil::daemon::client::{self, Answer};

fn kvm_or_skip(test: &str) -> bool {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => true,
        Err(err) => {
            let _ = std::io::stderr().write_all(format!("\n*** {test}: SKIPPED (no /dev/kvm: {err}) ***\n").as_bytes());
            false
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-daemon-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

/// A running `vigil serve`, killed if the test fails before stopping it.
struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    fn start(name: &str, extra: &[&str]) -> Daemon {
        let dir = scratch(name);
        let init = vigil().args(["init", "--dir", dir.to_str().unwrap()]).output().unwrap();
        assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
        let socket = dir.join("vigil.sock");
        let child = vigil()
            .args(["serve", "--dir", dir.to_str().unwrap(), "--guards", "2"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let daemon = Daemon { child: Some(child), dir, socket };
        // Ready when both guards are attested.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(a) = daemon.call("GET", "/v1/health", b"")
                && a.status == 200
                && a.json()["guards_ready"] == 2
            {
                return daemon;
            }
            assert!(Instant::now() < deadline, "the daemon did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn call(&self, method: &str, path: &str, body: &[u8]) -> Result<Answer, client::ClientError> {
        client::call(&self.socket, method, path, body, Duration::from_secs(30))
    }

    fn post(&self, body: &Value) -> Answer {
        self.call("POST", "/v1/evaluate", body.to_string().as_bytes()).expect("the daemon answers")
    }

    /// Judged, with ESCALATE verdicts answered at once (no person waited for).
    fn post_now(&self, body: &Value) -> Answer {
        self.call("POST", "/v1/evaluate?escalate=return", body.to_string().as_bytes()).expect("the daemon answers")
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let pid = self.child.as_ref().unwrap().id();
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    }

    /// SIGTERM (again: harmless), then the exit status and what it wrote
    /// on stderr.
    fn stop(&mut self) -> (std::process::ExitStatus, String) {
        self.terminate();
        let mut child = self.child.take().unwrap();
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr);
        (status, stderr)
    }

    fn journal(&self) -> PathBuf {
        self.dir.join("journal/vigil.vgj")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every case of the corpus (tests/corpus/*.jsonl).
fn corpus() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files.iter().flat_map(|f| vigil::policy::read_cases(f).unwrap()).map(|c| c.intent).collect()
}

/// What must agree between judges: everything but the timing.
fn judgement(report: &Value) -> Value {
    let mut r = report.clone();
    r.as_object_mut().unwrap().remove("eval_ns");
    r
}

/// The journal's frames, exported while the daemon may still be writing
/// it (`--allow-unsealed`: frames after its last checkpoint are expected).
fn export(dir: &Path, journal: &Path) -> Vec<Value> {
    let out = vigil()
        .args(["journal", "export", "--allow-unsealed", "--dir", dir.to_str().unwrap(), journal.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Runs `vigil ARGS…` and asserts it succeeds, showing its output if not.
fn vigil_ok(what: &str, args: &[&std::ffi::OsStr]) {
    let out = vigil().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `vigil cost verify` accepts the journal: every verdict priced once, every
/// record signed by the cost key.
fn costs_ok(dir: &Path, journal: &Path) {
    let trust = dir.join("cost.pub");
    let args = ["cost", "verify", "--dir"].map(std::ffi::OsStr::new);
    vigil_ok(
        "cost verify",
        &[&args[..], &[dir.as_os_str(), "--trust".as_ref(), trust.as_os_str(), journal.as_os_str()]].concat(),
    );
}

fn replay_ok(dir: &Path, journal: &Path) {
    vigil_ok(
        "replay",
        &["journal".as_ref(), "replay".as_ref(), "--dir".as_ref(), dir.as_os_str(), journal.as_os_str()],
    );
}

#[test]
fn concurrent_clients_get_the_in_process_verdicts_and_the_journal_has_every_one() {
    if !kvm_or_skip("concurrent_clients_get_the_in_process_verdicts_and_the_journal_has_every_one") {
        return;
    }
    let mut daemon = Daemon::start("concurrent", &[]);
    let cases = corpus();
    let judge = vigil::judge::InprocJudge::new(vigil::policy::default_bundle()).unwrap();
    let expected: Vec<Value> =
        cases.iter().map(|c| judgement(&serde_json::to_value(judge.evaluate_json(c)).unwrap())).collect();
    // 8 clients; each sends its share as single intents and as batches of
    // varying size, all at once.
    let answered: Vec<(usize, Value)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (daemon, cases) = (&daemon, &cases);
                s.spawn(move || {
                    let mine: Vec<usize> = (t..cases.len()).step_by(8).collect();
                    let mut got = Vec::new();
                    let mut at = 0;
                    let mut size = 1;
                    while at < mine.len() {
                        let part = &mine[at..(at + size).min(mine.len())];
                        if part.len() == 1 {
                            let a = daemon.post_now(&cases[part[0]]);
                            assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
                            got.push((part[0], a.json()["verdict"].clone()));
                        } else {
                            let batch: Vec<&Value> = part.iter().map(|&i| &cases[i]).collect();
                            let a = daemon.post_now(&json!({ "intents": batch }));
                            assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
                            let verdicts = a.json()["verdicts"].as_array().unwrap().clone();
                            assert_eq!(verdicts.len(), part.len());
                            got.extend(part.iter().copied().zip(verdicts));
                        }
                        at += part.len();
                        size = size % 37 + 1;
                    }
                    got
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(answered.len(), cases.len());
    for (i, verdict) in &answered {
        assert_eq!(judgement(verdict), expected[*i], "case {i}: {}", cases[*i]);
    }
    let metrics = String::from_utf8(daemon.call("GET", "/metrics", b"").unwrap().body).unwrap();
    assert!(metrics.contains("vigil_guards_ready 2"), "{metrics}");
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{stderr}");
    // Every verdict shown is in the journal, from one of the two guards,
    // with the peer that sent it; replay agrees with every one.
    let frames = export(&daemon.dir, &daemon.journal());
    let verdicts: Vec<&Value> = frames.iter().filter(|f| f["kind"] == "verdict").collect();
    assert_eq!(verdicts.len(), cases.len());
    let uid = u64::from(rustix::process::getuid().as_raw());
    assert!(
        verdicts.iter().all(|v| v["judge"] == "vm" && v["peer"]["uid"] == uid && v["peer"]["pid"].as_u64() > Some(0))
    );
    let boots: std::collections::BTreeSet<u64> = verdicts.iter().map(|v| v["boot_seq"].as_u64().unwrap()).collect();
    assert!(boots.len() <= 2 && !boots.is_empty());
    assert_eq!(frames.iter().filter(|f| f["kind"] == "guard_checkpoint" && f["last"] == true).count(), 2);
    replay_ok(&daemon.dir, &daemon.journal());
    // Every batch the daemon judged was priced, by guard VM records.
    assert!(frames.iter().filter(|f| f["kind"] == "cost").all(|f| f["tier"]["judge"] == "vm"));
    costs_ok(&daemon.dir, &daemon.journal());
}

#[test]
fn bad_requests_get_a_clear_4xx_and_the_daemon_keeps_serving() {
    if !kvm_or_skip("bad_requests_get_a_clear_4xx_and_the_daemon_keeps_serving") {
        return;
    }
    let mut daemon = Daemon::start("bad", &["--max-body", "65536"]);
    let ls = json!({"id": 1, "agent": "t", "tool": "shell", "args": {"command": "ls"}, "cwd": "/w"});
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("POST", "/v1/evaluate", b"{not json".to_vec(), 400, "not valid JSON"),
        ("POST", "/v1/evaluate", br#"{"id":1,"id":2}"#.to_vec(), 400, "duplicate key"),
        ("POST", "/v1/evaluate", b"[1,2]".to_vec(), 400, "one intent"),
        ("POST", "/v1/evaluate", br#"{"intents":[]}"#.to_vec(), 400, "empty"),
        ("POST", "/v1/evaluate", b"\xff\xfe".to_vec(), 400, "UTF-8"),
        ("POST", "/v1/evaluate", vec![b' '; 70_000], 413, "larger than"),
        ("GET", "/v1/evaluate", Vec::new(), 405, "not allowed"),
        ("DELETE", "/v1/health", Vec::new(), 405, "not allowed"),
        ("GET", "/v2/nothing", Vec::new(), 404, "no route"),
    ];
    for (method, path, body, status, says) in cases {
        let a = daemon.call(method, path, &body).unwrap();
        assert_eq!(a.status, status, "{method} {path}: {}", String::from_utf8_lossy(&a.body));
        let message = a.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(says), "{method} {path}: {message}");
        // Still serving.
        let ok = daemon.post(&ls);
        assert_eq!(ok.status, 200);
        assert_eq!(ok.json()["verdict"]["decision"], "ALLOW");
    }
    // Fresh evidence from a running guard, verifiable offline for the
    // nonce asked; bad nonces are refused.
    let nonce = "00112233445566778899aabbccddeeff";
    let a = daemon.call("GET", &format!("/v1/evidence?nonce={nonce}"), b"").unwrap();
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let evidence = daemon.dir.join("evidence.cose");
    std::fs::write(&evidence, hex::decode(a.json()["evidence"].as_str().unwrap()).unwrap()).unwrap();
    let trust = daemon.dir.join("platform.pub");
    let verify = |nonce: &str| {
        vigil()
            .args(["verify", "evidence", "--trust", trust.to_str().unwrap(), "--nonce", nonce])
            .arg(&evidence)
            .output()
            .unwrap()
    };
    let ok = verify(nonce);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(!verify("ffeeddccbbaa99887766554433221100").status.success(), "evidence for another nonce");
    for bad in ["", "?nonce=zz", "?nonce=0011", &format!("?nonce={}", "00".repeat(65))] {
        let a = daemon.call("GET", &format!("/v1/evidence{bad}"), b"").unwrap();
        assert_eq!(a.status, 400, "{bad}: {}", String::from_utf8_lossy(&a.body));
    }
    // A malformed intent inside a well-formed request is judged: DENY.
    let a = daemon.post(&json!({"intents": [{"id": 9, "tool": 3}, ls]}));
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["verdicts"][0]["decision"], "DENY");
    assert_eq!(a.json()["verdicts"][0]["reason"], "malformed");
    assert_eq!(a.json()["verdicts"][1]["decision"], "ALLOW");
    // A second daemon on the same socket is refused before it opens any
    // journal; one on another socket but the same journal is refused too;
    // the first keeps serving.
    let dir = daemon.dir.to_str().unwrap();
    let other = daemon.dir.join("other.vgj");
    let second = vigil().args(["serve", "--dir", dir, "--journal", other.to_str().unwrap()]).output().unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another daemon is listening"), "{stderr}");
    assert!(!other.exists(), "the refused daemon created a journal");
    // A socket path that is some other file is never replaced.
    let file = daemon.dir.join("not-a-socket");
    std::fs::write(&file, "keep me").unwrap();
    let refused = vigil().args(["serve", "--dir", dir, "--socket", file.to_str().unwrap()]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not a socket"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    let socket = daemon.dir.join("second.sock");
    let second = vigil().args(["serve", "--dir", dir, "--socket", socket.to_str().unwrap()]).output().unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("open for append by another process"), "{stderr}");
    assert_eq!(daemon.post(&ls).status, 200);
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{stderr}");
    replay_ok(&daemon.dir, &daemon.journal());
}

#[test]
fn sigterm_with_requests_in_flight_loses_nothing() {
    if !kvm_or_skip("sigterm_with_requests_in_flight_loses_nothing") {
        return;
    }
    let mut daemon = Daemon::start("sigterm", &[]);
    let cases = corpus();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let shown: usize = std::thread::scope(|s| {
        let clients: Vec<_> = (0..6)
            .map(|t| {
                let (daemon, cases, stop) = (&daemon, &cases, &stop);
                s.spawn(move || {
                    let mut shown = 0;
                    for round in 0.. {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) && round > 1000 {
                            break;
                        }
                        let batch: Vec<&Value> =
                            cases.iter().skip((t * 97 + round * 13) % cases.len()).take(16).collect();
                        match daemon.call(
                            "POST",
                            "/v1/evaluate?escalate=return",
                            json!({ "intents": batch }).to_string().as_bytes(),
                        ) {
                            Ok(a) if a.status == 200 => shown += a.json()["verdicts"].as_array().unwrap().len(),
                            // Refused while stopping: nothing shown, fine.
                            Ok(a) => assert_eq!(a.status, 503, "{}", String::from_utf8_lossy(&a.body)),
                            // The socket is gone: the daemon stopped.
                            Err(_) => break,
                        }
                    }
                    shown
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700));
        daemon.terminate();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        clients.into_iter().map(|c| c.join().unwrap()).sum()
    });
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{stderr}");
    assert!(shown > 0);
    // Every verdict a client saw is in the closed journal, which replays.
    let frames = export(&daemon.dir, &daemon.journal());
    let recorded = frames.iter().filter(|f| f["kind"] == "verdict").count();
    assert!(recorded >= shown, "{recorded} recorded, {shown} shown");
    assert_eq!(frames.last().map(|f| (&f["kind"], &f["closing"])), Some((&json!("checkpoint"), &json!(true))));
    assert_eq!(frames.iter().filter(|f| f["kind"] == "guard_checkpoint" && f["last"] == true).count(), 2);
    replay_ok(&daemon.dir, &daemon.journal());
}

#[test]
fn sigkill_loses_no_shown_verdict_and_the_next_daemon_recovers_the_journal() {
    if !kvm_or_skip("sigkill_loses_no_shown_verdict_and_the_next_daemon_recovers_the_journal") {
        return;
    }
    let mut daemon = Daemon::start("sigkill", &[]);
    let cases = corpus();
    let mut shown = std::collections::BTreeSet::new();
    std::thread::scope(|s| {
        let client = s.spawn(|| {
            let mut shown = Vec::new();
            // Until the daemon is gone: the kill lands under load.
            for (i, chunk) in cases.chunks(8).cycle().enumerate() {
                let batch: Vec<Value> = chunk
                    .iter()
                    .enumerate()
                    .map(|(j, c)| {
                        let mut c = c.clone();
                        c["id"] = json!(1_000_000 + i * 8 + j);
                        c
                    })
                    .collect();
                match daemon.call(
                    "POST",
                    "/v1/evaluate?escalate=return",
                    json!({ "intents": batch }).to_string().as_bytes(),
                ) {
                    Ok(a) if a.status == 200 => {
                        shown.extend(a.json()["verdicts"].as_array().unwrap().iter().map(|v| v["id"].as_u64().unwrap()))
                    }
                    _ => break,
                }
            }
            shown
        });
        std::thread::sleep(Duration::from_millis(1500));
        let pid = daemon.child.as_ref().unwrap().id();
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        shown.extend(client.join().unwrap());
    });
    let _ = daemon.child.take().unwrap().wait();
    assert!(shown.len() > cases.len(), "the kill came before the load: {} shown", shown.len());
    // A new daemon on the same journal recovers it, then stops cleanly.
    let mut again = Daemon {
        child: Some(
            vigil()
                .args(["serve", "--dir", daemon.dir.to_str().unwrap(), "--guards", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ),
        dir: daemon.dir.clone(),
        socket: daemon.socket.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while again.call("GET", "/v1/health", b"").map(|a| a.json()["guards_ready"] != 1).unwrap_or(true) {
        assert!(Instant::now() < deadline, "the second daemon did not become ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, stderr) = again.stop();
    assert!(status.success(), "{stderr}");
    let recorded: std::collections::BTreeSet<u64> = export(&daemon.dir, &daemon.journal())
        .iter()
        .filter(|f| f["kind"] == "verdict")
        .map(|f| f["intent_id"].as_u64().unwrap())
        .collect();
    let lost: Vec<_> = shown.difference(&recorded).collect();
    assert!(lost.is_empty(), "{} verdicts shown but not in the journal: {lost:?}", lost.len());
    replay_ok(&daemon.dir, &daemon.journal());
}

#[test]
fn escalations_wait_for_a_person_and_every_outcome_is_journaled() {
    if !kvm_or_skip("escalations_wait_for_a_person_and_every_outcome_is_journaled") {
        return;
    }
    // The test's uid submits and approves: it must be named an approver.
    let me = rustix::process::getuid().as_raw().to_string();
    let mut daemon = Daemon::start("approvals", &["--approval-timeout", "4", "--approver", &me]);
    let dir = daemon.dir.to_str().unwrap().to_string();
    let push = |id: u64| json!({"id": id, "agent": "t", "tool": "shell", "args": {"command": "git push --force origin feature/x"}, "cwd": "/home/dev/p"});
    // `escalate=return`: answered at once, nothing waits.
    let a = daemon.call("POST", "/v1/evaluate?escalate=return", push(1).to_string().as_bytes()).unwrap();
    assert_eq!(a.json()["verdict"]["decision"], "ESCALATE");
    assert!(a.json()["verdict"].get("approval").is_none());
    assert_eq!(daemon.call("POST", "/v1/evaluate?escalate=maybe", push(1).to_string().as_bytes()).unwrap().status, 400);
    // A client that gives up while its ESCALATE waits: the wait still ends
    // (here by the timeout) and is recorded.
    let gone = client::call(
        &daemon.socket,
        "POST",
        "/v1/evaluate",
        push(30).to_string().as_bytes(),
        Duration::from_millis(300),
    );
    assert!(matches!(gone, Err(client::ClientError::Timeout(_))), "{gone:?}");
    std::thread::scope(|s| {
        let waiting: Vec<_> = (10..13)
            .map(|id| {
                let daemon = &daemon;
                s.spawn(move || daemon.post(&push(id)).json()["verdict"].clone())
            })
            .collect();
        // Three wait; a person allows 10, denies 11, leaves 12 to time out.
        let deadline = Instant::now() + Duration::from_secs(10);
        let pending = loop {
            let list = vigil().args(["approvals", "--dir", &dir, "--json"]).output().unwrap();
            assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
            let pending = serde_json::from_slice::<Value>(&list.stdout).unwrap()["pending"].as_array().unwrap().clone();
            // The abandoned wait (intent 30) may still be listed: wait for
            // these three by their intent ids, not by the list's length.
            if [10, 11, 12].iter().all(|id| pending.iter().any(|p| p["intent_id"] == *id)) {
                break pending;
            }
            assert!(Instant::now() < deadline, "{pending:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let id_of = |intent: u64| {
            pending.iter().find(|p| p["intent_id"] == intent).unwrap()["id"].as_str().unwrap().to_string()
        };
        assert!(pending.iter().all(|p| p["summary"].as_str().unwrap().contains("git push --force")), "{pending:?}");
        let ok = vigil().args(["approve", &id_of(10), "--dir", &dir]).output().unwrap();
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        let ok = vigil().args(["deny", &id_of(11), "--dir", &dir]).output().unwrap();
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        // Deciding twice, or an id that never was: refused.
        let again = vigil().args(["approve", &id_of(10), "--dir", &dir]).output().unwrap();
        assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("no pending approval"));
        assert!(!vigil().args(["deny", "0123456789abcdef", "--dir", &dir]).output().unwrap().status.success());
        assert!(!vigil().args(["deny", "not-an-id", "--dir", &dir]).output().unwrap().status.success());
        let verdicts: Vec<Value> = waiting.into_iter().map(|t| t.join().unwrap()).collect();
        let outcome =
            |i: usize| (verdicts[i]["approval"]["outcome"].clone(), verdicts[i]["approval"]["decision"].clone());
        assert_eq!(outcome(0), (json!("approved"), json!("ALLOW")), "{verdicts:?}");
        assert_eq!(outcome(1), (json!("denied"), json!("DENY")));
        assert_eq!(outcome(2), (json!("timed_out"), json!("DENY")));
        let uid = u64::from(rustix::process::getuid().as_raw());
        assert_eq!(verdicts[0]["approval"]["by"]["uid"], uid);
    });
    // One still waiting when the daemon stops: DENY, recorded as stopped.
    std::thread::scope(|s| {
        let waiting = s.spawn(|| daemon.post(&push(20)).json()["verdict"].clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while daemon.call("GET", "/v1/approvals", b"").unwrap().json()["pending"].as_array().unwrap().is_empty() {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon.terminate();
        let v = waiting.join().unwrap();
        assert_eq!(v["approval"]["outcome"], "stopped", "{v}");
    });
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{stderr}");
    let approvals: Vec<Value> =
        export(&daemon.dir, &daemon.journal()).into_iter().filter(|f| f["kind"] == "approval").collect();
    let outcomes: Vec<&str> = approvals.iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.len(), 5, "{approvals:?}");
    let abandoned = approvals.iter().find(|a| a["intent_id"] == 30).expect("the abandoned wait is recorded");
    assert_eq!(abandoned["outcome"], "timed_out");
    for o in ["approved", "denied", "timed_out", "stopped"] {
        assert!(outcomes.contains(&o), "{outcomes:?}");
    }
    replay_ok(&daemon.dir, &daemon.journal());
}

#[test]
fn an_agent_cannot_approve_its_own_escalation_and_a_person_sees_all_of_it() {
    if !kvm_or_skip("an_agent_cannot_approve_its_own_escalation_and_a_person_sees_all_of_it") {
        return;
    }
    let mut daemon = Daemon::start("self-approval", &["--approval-timeout", "20"]);
    let dir = daemon.dir.to_str().unwrap().to_string();
    // The gist a terminal shows hides nothing: control characters escaped,
    // and the whole intent (here a long tail after the cut) is listed.
    let tail = format!("&& echo {} hidden-tail", "a".repeat(300));
    let command = format!("git push --force origin feature/x\u{1b}[2K\r {tail}");
    let intent = json!({"id": 41, "agent": "t", "tool": "shell", "args": {"command": command}, "cwd": "/home/dev/p"});
    std::thread::scope(|s| {
        let waiting = s.spawn(|| daemon.post(&intent).json()["verdict"].clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        let pending = loop {
            let pending = daemon.call("GET", "/v1/approvals", b"").unwrap().json()["pending"].clone();
            if pending.as_array().is_some_and(|p| !p.is_empty()) {
                break pending[0].clone();
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        };
        let summary = pending["summary"].as_str().unwrap();
        assert!(!summary.chars().any(char::is_control), "{summary:?}");
        assert_eq!(pending["intent"]["args"]["command"], command.as_str(), "the whole call is shown");
        let listed = vigil().args(["approvals", "--dir", &dir]).output().unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(listed.contains("hidden-tail") && !listed.contains('\u{1b}'), "{listed}");
        // The uid that submitted it (the agent's) cannot allow it …
        let id = pending["id"].as_str().unwrap();
        let own = vigil().args(["approve", id, "--dir", &dir]).output().unwrap();
        assert!(!own.status.success());
        assert!(
            String::from_utf8_lossy(&own.stderr).contains("cannot allow it"),
            "{}",
            String::from_utf8_lossy(&own.stderr)
        );
        assert_eq!(daemon.call("GET", "/v1/approvals", b"").unwrap().json()["pending"].as_array().unwrap().len(), 1);
        // … nor with a body the API does not define; it may refuse it.
        let odd = daemon.call("POST", &format!("/v1/approvals/{id}"), br#"{"decision": "allow", "by": 1000}"#).unwrap();
        assert_eq!(odd.status, 400);
        let no = vigil().args(["deny", id, "--dir", &dir]).output().unwrap();
        assert!(no.status.success(), "{}", String::from_utf8_lossy(&no.stderr));
        let v = waiting.join().unwrap();
        assert_eq!((v["approval"]["outcome"].as_str(), v["decision"].as_str()), (Some("denied"), Some("ESCALATE")));
    });
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{stderr}");
    replay_ok(&daemon.dir, &daemon.journal());
}

/// The recorded Claude Code `PreToolUse` payloads of tests/hooks/claude-code,
/// each with the decision the hook must give.
fn hook_fixtures() -> Vec<(String, Value, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/hooks/claude-code");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            (
                f.file_name().unwrap().to_string_lossy().into_owned(),
                v["payload"].clone(),
                v["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `vigil hook claude-code --dir DIR` with `stdin`; its decision and reason.
fn run_hook(dir: &Path, stdin: &[u8]) -> (String, String) {
    let mut child = vigil()
        .args(["hook", "claude-code", "--dir", dir.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the hook exits 0 so that Claude Code reads its answer");
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let h = &v["hookSpecificOutput"];
    assert_eq!(h["hookEventName"], "PreToolUse");
    (h["permissionDecision"].as_str().unwrap().to_string(), h["permissionDecisionReason"].as_str().unwrap().to_string())
}

#[test]
fn the_claude_code_hook_decides_every_tool_with_or_without_the_daemon_and_fails_closed() {
    if !kvm_or_skip("the_claude_code_hook_decides_every_tool_with_or_without_the_daemon_and_fails_closed") {
        return;
    }
    let fixtures = hook_fixtures();
    assert!(fixtures.len() >= 12);
    // The token for the loopback listener, and a free port for it.
    let dir = scratch("hook-token");
    let token = "4f1c9e7a2b3d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";
    let token_file = dir.join("token");
    std::fs::write(&token_file, token).unwrap();
    std::fs::set_permissions(&token_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut daemon = Daemon::start("hook", &["--listen-tcp", &addr, "--token-file", token_file.to_str().unwrap()]);
    let http = |path: &str, auth: Option<&str>, body: &Value| -> (u16, Value) {
        use std::io::Read;
        let body = body.to_string();
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        let auth = auth.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        write!(stream, "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().unwrap();
        let json =
            response.split_once("\r\n\r\n").map(|(_, b)| serde_json::from_str(b).unwrap_or(Value::Null)).unwrap();
        (status, json)
    };
    for (name, payload, want) in &fixtures {
        // The command hook, through the daemon.
        let (got, why) = run_hook(&daemon.dir, payload.to_string().as_bytes());
        assert_eq!(&got, want, "{name}: {why}");
        // The HTTP hook on the socket and on the token-protected listener.
        let a = daemon.call("POST", "/v1/hooks/claude-code", payload.to_string().as_bytes()).unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.json()["hookSpecificOutput"]["permissionDecision"], want.as_str(), "{name} (socket)");
        let (status, answer) = http("/v1/hooks/claude-code", Some(token), payload);
        assert_eq!(status, 200, "{name}: {answer}");
        assert_eq!(answer["hookSpecificOutput"]["permissionDecision"], want.as_str(), "{name} (tcp)");
    }
    // The listener refuses requests without the token, or with another.
    let (_, payload, _) = &fixtures[0];
    assert_eq!(http("/v1/hooks/claude-code", None, payload).0, 401);
    assert_eq!(http("/v1/hooks/claude-code", Some(&token.replace('4', "5")), payload).0, 401);
    assert_eq!(http("/v1/evaluate", Some("short"), payload).0, 401);
    // Approvals are decided only where the decider is known.
    let (status, answer) = http("/v1/approvals/0011223344556677", Some(token), &json!({"decision": "allow"}));
    assert_eq!(status, 403, "{answer}");
    // Malformed hook input: deny, never allow, and recorded as a DENY.
    let malformed = |frames: &[Value]| {
        frames
            .iter()
            .filter(|f| f["kind"] == "verdict" && f["reason"] == "malformed" && f["decision"] == "DENY")
            .count()
    };
    let before = malformed(&export(&daemon.dir, &daemon.journal()));
    let bad_inputs =
        [&b"not json"[..], br#"{"tool_name": "Bash"}"#, br#"{"tool_name": "Bash", "tool_input": {"command": 1}}"#];
    for bad in bad_inputs {
        let (got, why) = run_hook(&daemon.dir, bad);
        assert_eq!(got, "deny", "{}: {why}", String::from_utf8_lossy(bad));
        let a = daemon.call("POST", "/v1/hooks/claude-code", bad).unwrap();
        assert_eq!(a.json()["hookSpecificOutput"]["permissionDecision"], "deny");
    }
    assert_eq!(malformed(&export(&daemon.dir, &daemon.journal())), before + 2 * bad_inputs.len());
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{stderr}");
    // With the daemon down, the hook boots its own guard: same decisions.
    for (name, payload, want) in fixtures.iter().take(6) {
        let (got, why) = run_hook(&daemon.dir, payload.to_string().as_bytes());
        assert_eq!(&got, want, "{name} without the daemon: {why}");
    }
    // Nothing set up at all: deny, saying what to do.
    let (got, why) = run_hook(&dir.join("nowhere"), fixtures[0].1.to_string().as_bytes());
    assert!(got == "deny" && why.contains("vigil init"), "{why}");
    // Every verdict is in the journal (daemon and own-guard runs alike).
    replay_ok(&daemon.dir, &daemon.journal());
}

#[test]
fn hook_install_keeps_foreign_settings_and_a_second_run_changes_nothing() {
    let dir = scratch("install");
    let settings = dir.join(".claude/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    let foreign = r#"{"env": {"A": "1"}, "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "audit.sh"}]}]}}"#;
    std::fs::write(&settings, foreign).unwrap();
    let install = |extra: &[&str]| {
        let out = vigil()
            .args(["hook", "install", "claude-code", "--settings", settings.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(install(&[]).contains("installed"));
    let once = std::fs::read_to_string(&settings).unwrap();
    assert!(install(&[]).contains("nothing changed"));
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), once, "a second install changes nothing");
    let v: Value = serde_json::from_str(&once).unwrap();
    assert_eq!(v["env"]["A"], "1");
    let pre = v["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(pre[0]["hooks"][0]["command"], "audit.sh");
    assert!(pre[1]["hooks"][0]["command"].as_str().unwrap().ends_with("vigil hook claude-code"));
    // The HTTP form is a separate entry, installed once too.
    install(&["--http", "http://127.0.0.1:7878/v1/hooks/claude-code"]);
    assert!(install(&["--http", "http://127.0.0.1:7878/v1/hooks/claude-code"]).contains("nothing changed"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    let http = &v["hooks"]["PreToolUse"][2]["hooks"][0];
    assert_eq!(http["type"], "http");
    assert_eq!(http["onFailure"], "block");
    // A broken settings file is left as it is.
    std::fs::write(&settings, "{ not json").unwrap();
    let out =
        vigil().args(["hook", "install", "claude-code", "--settings", settings.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), "{ not json");
}

#[test]
fn eval_and_attest_use_a_running_daemon_and_say_so() {
    if !kvm_or_skip("eval_and_attest_use_a_running_daemon_and_say_so") {
        return;
    }
    let mut daemon = Daemon::start("eval", &[]);
    let dir = daemon.dir.to_str().unwrap().to_string();
    let input = daemon.dir.join("in.jsonl");
    let lines = [
        r#"{"id": 1, "agent": "a", "tool": "shell", "args": {"command": "ls"}, "cwd": "/w"}"#,
        r#"{"id": 2, "agent": "a", "tool": "shell", "args": {"command": "rm -rf /"}, "cwd": "/w"}"#,
        r#"{"id": 3, "agent": "a", "tool": 7, "args": {}}"#,
    ];
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = vigil().args(["eval", "--dir", &dir, "--in", input.to_str().unwrap(), "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let verdicts: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let decisions: Vec<&str> = verdicts.iter().map(|v| v["decision"].as_str().unwrap()).collect();
    assert_eq!(decisions, ["ALLOW", "DENY", "DENY"]);
    assert!(verdicts.iter().all(|v| v["judged_by"] == "daemon"), "{verdicts:?}");
    assert_eq!(verdicts[2]["reason"], "malformed");
    // Evidence from one of its running guards, verifiable offline.
    let nonce = "0123456789abcdef0123456789abcdef";
    let out = vigil().args(["attest", "--dir", &dir, "--nonce", nonce, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let attested: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(attested["source"], "daemon");
    let evidence = daemon.dir.join("evidence.cose");
    std::fs::write(&evidence, hex::decode(attested["evidence"].as_str().unwrap()).unwrap()).unwrap();
    let trust = daemon.dir.join("platform.pub");
    let verify = vigil()
        .args(["verify", "evidence", "--trust", trust.to_str().unwrap(), "--nonce", nonce, "--policy-digest"])
        .arg(vigil_attest_hex(vigil::policy::default_bundle()))
        .arg(&evidence)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    // `--no-daemon` boots its own guard, into another journal.
    let other = daemon.dir.join("own.vgj");
    let out = vigil()
        .args([
            "eval",
            "--dir",
            &dir,
            "--no-daemon",
            "--journal",
            other.to_str().unwrap(),
            "--intent",
            lines[0],
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""judged_by":"guard""#));
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{stderr}");
    let recorded = export(&daemon.dir, &daemon.journal()).iter().filter(|f| f["kind"] == "verdict").count();
    assert_eq!(recorded, 3);
    replay_ok(&daemon.dir, &daemon.journal());
}

fn vigil_attest_hex(bundle: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha384::digest(bundle))
}

#[test]
fn journal_export_follow_streams_each_verdict_of_a_running_daemon() {
    if !kvm_or_skip("journal_export_follow_streams_each_verdict_of_a_running_daemon") {
        return;
    }
    let mut daemon = Daemon::start("follow", &[]);
    let mut follower = vigil()
        .args(["journal", "export", "--follow", "--dir", daemon.dir.to_str().unwrap()])
        .arg(daemon.journal())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    // Each verdict, once answered, shows up in the stream.
    for id in 1..=5u64 {
        let a =
            daemon.post_now(&json!({"id": id, "agent": "t", "tool": "shell", "args": {"command": "ls"}, "cwd": "/w"}));
        assert_eq!(a.status, 200);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = seen.recv_timeout(left).unwrap_or_else(|_| panic!("verdict {id} not streamed"));
            if frame["kind"] == "verdict" && frame["intent_id"] == id {
                assert_eq!(frame["decision"], "ALLOW");
                break;
            }
        }
    }
    // The closing checkpoint comes through too.
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{stderr}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let frame = seen.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("closing checkpoint");
        if frame["kind"] == "checkpoint" && frame["closing"] == true {
            break;
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    // `--from-seq` without --follow: only the later frames.
    let out = vigil()
        .args(["journal", "export", "--from-seq", "5", "--allow-unsealed", "--dir", daemon.dir.to_str().unwrap()])
        .arg(daemon.journal())
        .output()
        .unwrap();
    assert!(out.status.success());
    let first: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["seq"], 5);
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_drops_nothing_silently() {
    if !kvm_or_skip("a_full_queue_answers_503_with_retry_after_and_drops_nothing_silently") {
        return;
    }
    let mut daemon = Daemon::start("busy", &["--queue", "1"]);
    let cases = corpus();
    let (judged, refused) = std::thread::scope(|s| {
        let clients: Vec<_> = (0..24)
            .map(|t| {
                let (daemon, cases) = (&daemon, &cases);
                s.spawn(move || {
                    let (mut judged, mut refused) = (0usize, 0usize);
                    for round in 0..6 {
                        let batch: Vec<&Value> =
                            cases.iter().skip((t * 31 + round * 7) % cases.len()).take(48).collect();
                        let body = json!({ "intents": batch }).to_string();
                        let a = daemon.call("POST", "/v1/evaluate?escalate=return", body.as_bytes()).unwrap();
                        match a.status {
                            200 => judged += a.json()["verdicts"].as_array().unwrap().len(),
                            503 => {
                                assert!(
                                    a.headers.iter().any(|(k, v)| k == "retry-after" && v == "1"),
                                    "{:?}",
                                    a.headers
                                );
                                assert!(a.json()["error"].as_str().unwrap().contains("busy"));
                                refused += 1;
                            }
                            other => panic!("status {other}: {}", String::from_utf8_lossy(&a.body)),
                        }
                    }
                    (judged, refused)
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    assert!(refused > 0, "no request was refused with a queue of one intent");
    assert!(judged > 0);
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{stderr}");
    // Exactly what was answered is recorded: refused requests left nothing.
    let recorded = export(&daemon.dir, &daemon.journal()).iter().filter(|f| f["kind"] == "verdict").count();
    assert_eq!(recorded, judged);
}
