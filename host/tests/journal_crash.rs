//! Crash safety: `vigil eval` appending verdicts is killed with SIGKILL at
//! random moments. After every kill the journal opens (a torn tail is cut),
//! every verdict the child printed — printing happens only after the
//! journal acknowledged it — is in the journal, the chain and checkpoints
//! verify, and no (epoch key, nonce) pair was ever used twice. Every third
//! trial a second writer races the first through a hard link to the same
//! file.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use vigil::journal::body::{self, VerdictBody};
use vigil::journal::checkpoint::EpochStatement;
use vigil::journal::scan::{self, ScanOptions};
use vigil::journal::{Journal, Kind, WriterOptions};

/// Kills of a running child required.
const KILLS: u64 = 200;
/// Give up (and fail) after this many trials.
const MAX_TRIALS: u64 = 600;
const TRIALS_PER_JOURNAL: u64 = 20;
const INTENTS: u64 = 2000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn write_intents(path: &Path, first_id: u64) {
    let commands = ["ls -la", "rm -rf /", "cargo build", "curl https://example.com/x", "cat ~/.ssh/id_rsa"];
    let mut text = String::new();
    for i in 0..INTENTS {
        let id = first_id + i;
        let line = serde_json::json!({"id": id, "agent": format!("agent-{}", id % 7), "session": "crash",
            "tool": "shell", "args": {"command": commands[(id % 5) as usize]}, "cwd": "/home/dev/p"});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_verdict() {
    let dir = std::env::temp_dir().join(format!("vigil-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let keys = dir.join("keys");
    let out =
        Command::new(env!("CARGO_BIN_EXE_vigil")).args(["init", "--dir", keys.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let master = vigil::keys::read_journal_key(&keys).unwrap();
    let (platform, trust) = vigil::keys::platform_pair(&keys).unwrap();
    let platform = Arc::new(platform);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut rng = Rng(seed);
    eprintln!("crash test seed {seed:#x}");
    let intents = dir.join("intents.jsonl");
    let (mut killed, mut cuts, mut acked_total, mut races) = (0, 0, 0, 0);

    let mut trial = 0;
    while killed < KILLS {
        assert!(trial < MAX_TRIALS, "only {killed} of {trial} trials killed a running child");
        let journal = dir.join(format!("j{}.vgj", trial / TRIALS_PER_JOURNAL));
        let first_id = trial * 1_000_000;
        write_intents(&intents, first_id);
        // Every third trial, a second writer races the first through
        // another name of the same file (a hard link): the lock is on the
        // file itself, so one of them is refused and nothing is lost.
        let mut names = vec![journal.clone()];
        if trial % 3 == 0 && journal.exists() {
            let link = dir.join(format!("j{}-link.vgj", trial / TRIALS_PER_JOURNAL));
            if !link.exists() {
                std::fs::hard_link(&journal, &link).unwrap();
            }
            names.push(link);
            races += 1;
        }
        let mut children = Vec::new();
        for name in &names {
            let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
                .args(["eval", "--judge", "inproc", "--json", "--dir", keys.to_str().unwrap()])
                .args(["--journal", name.to_str().unwrap(), "--in", intents.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let reader = std::thread::spawn(move || {
                let mut ids = Vec::new();
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let v: serde_json::Value = match serde_json::from_str(&line) {
                        Ok(v) => v,
                        Err(_) => break, // a line cut by the kill
                    };
                    ids.push(v["id"].as_u64().unwrap());
                }
                ids
            });
            children.push((child, reader));
        }
        std::thread::sleep(Duration::from_micros(rng.next() % 50_000));
        if children[0].0.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let mut printed = Vec::new();
        let mut status = None;
        for (mut child, reader) in children {
            let _ = child.kill(); // SIGKILL
            status = Some(child.wait().unwrap());
            let ids = reader.join().unwrap();
            acked_total += ids.len();
            printed.extend(ids);
        }
        let status = status.unwrap();

        // The journal opens (cutting a torn tail) and closes cleanly.
        let writer = Journal::open(&journal, &master, Arc::clone(&platform), WriterOptions::default())
            .unwrap_or_else(|e| panic!("trial {trial} (seed {seed:#x}, {status}): the journal does not open: {e}"));
        if writer.report().cut.is_some() {
            cuts += 1;
        }
        writer.close().unwrap();

        // Every printed verdict is recorded; chain and checkpoints verify.
        let mut recorded = HashSet::new();
        let summary = scan::scan_file(
            &journal,
            ScanOptions { trust: Some(&trust), key: Some(&master), ..Default::default() },
            |f| {
                if f.kind == Kind::Verdict {
                    let v: VerdictBody = body::decode(f.seq, f.body.unwrap())?;
                    if v.intent_id >= first_id {
                        recorded.insert(v.intent_id);
                    }
                }
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("trial {trial} (seed {seed:#x}): {e}"));
        assert!(summary.intact() && summary.closed, "trial {trial}: {summary:?}");
        for id in &printed {
            assert!(
                recorded.contains(id),
                "trial {trial} (seed {seed:#x}): verdict {id} was printed but is not in the journal"
            );
        }
        trial += 1;
    }

    // No (key, nonce) pair repeats: each epoch has its own salt (so its own
    // key), and within an epoch every seq is used once.
    for j in 0..trial.div_ceil(TRIALS_PER_JOURNAL) {
        let path = dir.join(format!("j{j}.vgj"));
        let (mut salts, mut nonces) = (HashSet::new(), HashSet::new());
        let mut salt = Vec::new();
        scan::scan_file(&path, ScanOptions::default(), |f| {
            if f.kind == Kind::Epoch {
                salt = EpochStatement::decode(f.public, f.seq).unwrap().salt().to_vec();
                assert!(salts.insert(salt.clone()), "{}: an epoch salt repeats", path.display());
            }
            assert!(nonces.insert((salt.clone(), f.epoch, f.seq)), "{}: nonce reused at seq {}", path.display(), f.seq);
            Ok(())
        })
        .unwrap();
    }
    eprintln!(
        "crash test: {trial} trials ({races} with two writers racing through two names), {killed} killed mid-run, {cuts} torn tails cut, {acked_total} acknowledged verdicts all found"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
