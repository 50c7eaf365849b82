//! Journal figures for `vigil bench` and `vigil journal bench`: append
//! throughput with group commit (an fsync per group) and the acknowledgement
//! latency under that load, then verify (no key) and replay (decrypt and
//! re-evaluate) throughput over the journal just written. Reports what one
//! run measured; asserts nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha384};
use vigil_attest::dual::DualSigningKey;
use vigil_guard::bundle::Bundle;
use vigil_guard::{eval, verdict_codec};

use vigil::journal::body::{self, VerdictBody};
use vigil::journal::scan::{self, ScanOptions};
use vigil::journal::{Journal, Kind, MasterKey, WriterOptions, replay};
use vigil::stats::{micros, quantile};

/// How much to measure.
#[derive(Debug, Clone)]
pub struct JournalBenchOptions {
    /// Verdict records to append (and then verify and replay).
    pub records: usize,
    /// Where to write the journal (a fresh subdirectory is made and removed).
    pub dir: PathBuf,
}

/// What one run measured.
#[derive(Debug, Serialize)]
pub struct JournalBenchReport {
    /// Directory the journal was written in.
    pub dir: String,
    /// Verdict records appended.
    pub records: usize,
    /// Mean verdict body size (CBOR plaintext), bytes.
    pub record_body_bytes: f64,
    /// Whole frame size on disk (header, tag, chain included), bytes.
    pub frame_bytes: f64,
    /// Append throughput: records acknowledged per second (fsync per group).
    pub append_per_second: f64,
    /// Groups written (= fsyncs).
    pub groups: u64,
    /// Mean records per group.
    pub records_per_group: f64,
    /// Acknowledgement latency (append → its group's fsync returned), median, µs.
    pub ack_p50_us: f64,
    /// Acknowledgement latency, 99th percentile, µs.
    pub ack_p99_us: f64,
    /// Verify without the data key (chain + checkpoint signatures), records/s.
    pub verify_per_second: f64,
    /// Reopening the closed journal for append (lock, chain, every
    /// signature, high-water mark, new signed epoch), milliseconds.
    pub reopen_ms: f64,
    /// Decrypt and verify with the data key (what replay does before
    /// re-evaluating), records/s.
    pub decrypt_per_second: f64,
    /// Replay (decrypt, verify, re-evaluate every intent), records/s.
    pub replay_per_second: f64,
    /// Worker threads re-evaluating during replay.
    pub replay_threads: usize,
    /// Platform checkpoints in the journal.
    pub checkpoints: u64,
}

/// Verdict bodies for the corpus intents under the default pack.
fn bodies(bundle_bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let bundle = Bundle::load(bundle_bytes).map_err(|e| anyhow::anyhow!("default bundle: {}", e.as_str()))?;
    let hash: [u8; 48] = Sha384::digest(bundle_bytes).into();
    let words = bundle.rule_count().div_ceil(64).max(1);
    let mut intents = crate::cli::corpus::source_corpus_intents();
    if intents.is_empty() {
        intents = crate::cli::demo::script_intents()?;
    }
    let mut out = Vec::with_capacity(intents.len());
    for intent in intents {
        let verdict = eval::evaluate(&bundle, &intent);
        let mut record = vec![0; verdict_codec::record_len(words)];
        let n = verdict_codec::encode(&verdict, words, &mut record).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        record.truncate(n);
        let v = VerdictBody {
            time_ms: body::now_ms(),
            judge: body::judge::INPROC,
            policy_sha384: hash.to_vec(),
            boot_seq: None,
            intent_id: verdict.intent_id,
            peer: None,
            intent,
            verdict: record,
            eval_ns: Some(1_000),
            detail: None,
            judge_failure: None,
        };
        out.push(body::encode(&v));
    }
    Ok(out)
}

/// Runs the journal benchmark.
pub fn run(options: &JournalBenchOptions) -> Result<JournalBenchReport> {
    let suffix: [u8; 8] = vigil::keys::random()?;
    let dir = options.dir.join(format!("vigil-journal-bench-{}", hex::encode(suffix)));
    let result = run_in(&dir, options);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(dir: &Path, options: &JournalBenchOptions) -> Result<JournalBenchReport> {
    let master = MasterKey::new(vigil::keys::random()?);
    let platform = Arc::new(DualSigningKey::from_seeds(&vigil::keys::random()?, &vigil::keys::random()?));
    let trust = platform.public();
    let path = dir.join("bench.vgj");
    let bundle = vigil::policy::default_bundle();
    let bodies = bodies(bundle)?;
    let n = options.records;

    // As `vigil eval` writes: with a high-water mark advanced at every
    // checkpoint.
    let writer_options = WriterOptions { high_water: Some(dir.join("anchors")), ..WriterOptions::default() };
    let journal = Journal::open(&path, &master, Arc::clone(&platform), writer_options.clone())
        .with_context(|| format!("opening {}", path.display()))?;
    journal.ensure_policy(bundle)?;
    let first = journal.append(Kind::Verdict, &bodies[0])?;
    journal.wait(first)?;
    let origin = Instant::now();
    // Per record: when it was appended (ns since `origin`) and its seq
    // (0 until the append returned).
    let appended: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let seqs: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let mut latencies = vec![std::time::Duration::ZERO; n];
    let bar = vigil::progress::bar("journal", n);
    let (started, groups) = std::thread::scope(|scope| -> Result<(Instant, u64)> {
        let started = Instant::now();
        let producer = scope.spawn(|| -> Result<u64> {
            let mut seq = 0;
            for (i, (at, slot)) in appended.iter().zip(&seqs).enumerate() {
                at.store(origin.elapsed().as_nanos() as u64, Ordering::Release);
                seq = journal.append(Kind::Verdict, &bodies[i % bodies.len()])?;
                slot.store(seq, Ordering::Release);
            }
            Ok(seq)
        });
        // The acknowledger, standing in for the callers: each time the
        // durable seq moves, every record it covers is acknowledged now.
        let groups_before = journal.groups_written();
        let (mut acked, mut durable) = (0usize, first);
        while acked < n {
            durable = journal.wait_next(durable, std::time::Duration::from_millis(1))?;
            let now = origin.elapsed().as_nanos() as u64;
            while acked < n {
                let seq = seqs[acked].load(Ordering::Acquire);
                if seq == 0 || seq > durable {
                    break;
                }
                let at = appended[acked].load(Ordering::Acquire);
                latencies[acked] = std::time::Duration::from_nanos(now.saturating_sub(at));
                acked += 1;
            }
            bar.set_position(acked as u64);
        }
        let last = producer.join().map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
        journal.wait(last)?;
        Ok((started, journal.groups_written() - groups_before))
    })?;
    let append_elapsed = started.elapsed();
    bar.finish_and_clear();
    journal.close()?;

    let file_len = std::fs::metadata(&path)?.len();
    // Reopening for append: chain, every signature, the high-water mark
    // (nothing is unsealed after a clean close).
    let started = Instant::now();
    Journal::open(&path, &master, Arc::clone(&platform), writer_options)?.close()?;
    let reopen_elapsed = started.elapsed();
    let started = Instant::now();
    let summary =
        scan::scan_file(&path, ScanOptions { trust: Some(&trust), key: None, ..Default::default() }, |_| Ok(()))?;
    let verify_elapsed = started.elapsed();
    let started = Instant::now();
    scan::scan_file(&path, ScanOptions { trust: Some(&trust), key: Some(&master), ..Default::default() }, |_| Ok(()))?;
    let decrypt_elapsed = started.elapsed();
    let started = Instant::now();
    let report = replay::replay(&path, &master, &trust, &vigil::guard_image::production_reference()?, false, |_| {})?;
    let replay_elapsed = started.elapsed();
    anyhow::ensure!(report.ok, "the benchmark journal did not replay cleanly: {:?}", report.counts.failures.first());
    let records = report.counts.verdicts as f64;

    Ok(JournalBenchReport {
        dir: options.dir.display().to_string(),
        records: n,
        record_body_bytes: bodies.iter().map(Vec::len).sum::<usize>() as f64 / bodies.len() as f64,
        frame_bytes: file_len as f64 / summary.frames as f64,
        append_per_second: n as f64 / append_elapsed.as_secs_f64(),
        groups,
        records_per_group: n as f64 / groups as f64,
        ack_p50_us: micros(quantile(&mut latencies, 0.5)),
        ack_p99_us: micros(quantile(&mut latencies, 0.99)),
        verify_per_second: records / verify_elapsed.as_secs_f64(),
        reopen_ms: reopen_elapsed.as_secs_f64() * 1e3,
        decrypt_per_second: records / decrypt_elapsed.as_secs_f64(),
        replay_per_second: records / replay_elapsed.as_secs_f64(),
        replay_threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        checkpoints: summary.checkpoints,
    })
}

/// Human-readable figures.
pub fn print(r: &JournalBenchReport) {
    println!(
        "journal append     {:>10.0} records/s  ({} verdict records, {:.0} B bodies, {:.0} B frames, {} fsync groups of {:.0} on average; in {})",
        r.append_per_second, r.records, r.record_body_bytes, r.frame_bytes, r.groups, r.records_per_group, r.dir
    );
    println!(
        "journal ack        p50 {:8.1} µs  p99 {:8.1} µs  (append → its group's fsync returned, at full load)",
        r.ack_p50_us, r.ack_p99_us
    );
    println!(
        "journal verify     {:>10.0} records/s  (no data key: chain + {} checkpoints' EdDSA + ML-DSA-65 signatures)",
        r.verify_per_second, r.checkpoints
    );
    println!(
        "journal reopen     {:>10.1} ms         (for append: lock, chain, signatures, high-water mark, signed epoch)",
        r.reopen_ms
    );
    println!(
        "journal decrypt    {:>10.0} records/s  (with the data key: chain, signatures, AES-256-GCM open)",
        r.decrypt_per_second
    );
    println!(
        "journal replay     {:>10.0} records/s  (decrypt, verify, re-evaluate every intent on {} threads)",
        r.replay_per_second, r.replay_threads
    );
}
