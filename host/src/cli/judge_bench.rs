//! The attested judge's figures for `vigil bench`: evidence generation and
//! verification, cold start to an attested and verified guard, warm
//! single-intent round trips through the VM against in-process evaluation
//! of the same intents in the same run, and batched throughput.
//!
//! The platform key here is an ephemeral one made for the run: benchmarks
//! need no key directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use serde::Serialize;
use vigil_attest::dual::DualSigningKey;
use vigil_attest::evidence::{self, Expectations};

use vigil::judge::InprocJudge;
use vigil::keys;
use vigil::stats::{micros, quantile};
use vigil::vm_judge::{TrustAnchors, VmJudge};
use vigil::vmm::{BootTemplate, PlatformSigner, PolicyImage, VmConfig};

/// How much to measure.
#[derive(Debug, Clone)]
pub struct JudgeBenchOptions {
    /// Cold starts to an attested guard.
    pub starts: usize,
    /// Timed single-intent round trips (cycling through the intents).
    pub round_trips: usize,
    /// Verdicts per batch size for the throughput figures.
    pub batch_verdicts: usize,
}

/// Throughput with one batch size.
#[derive(Debug, Serialize)]
pub struct BatchFigures {
    /// Intents per batch.
    pub batch: usize,
    /// Verdicts per second.
    pub verdicts_per_second: f64,
    /// Median time per batch, µs.
    pub p50_batch_us: f64,
    /// Time the guard itself spent judging (its counter, from the first
    /// intent's judgement to the last record's encoding), µs per verdict;
    /// absent where the counter's frequency is unknown.
    pub guard_judging_us_per_verdict: Option<f64>,
    /// The rest of the time from posting a batch to its reply in hand —
    /// the guard opening the request record and sealing its reply, the
    /// mailbox both ways — µs per verdict: the run's total over its
    /// verdicts (absent as above).
    pub guard_channel_and_mailbox_us_per_verdict: Option<f64>,
    /// The host writing and sealing the requests, opening the replies and
    /// checking their verdict records into its chain, µs per verdict: the
    /// run's total over its verdicts.
    pub host_us_per_verdict: f64,
}

/// The parts of a warm single-intent round trip through the VM, each the
/// median over the counted round trips, µs (medians: they need not add up
/// to the round trip's median). What none of them holds is the cost
/// counting (two reads of the thread's CPU clock) and the call itself.
#[derive(Debug, Default, Serialize)]
pub struct RoundTripParts {
    /// The host writing the request and sealing it (ChaCha20-Poly1305).
    pub host_seal: f64,
    /// From posting the record to the reply in hand.
    pub guard: f64,
    /// … of which the guard judging (its counter; absent where the
    /// counter's frequency is unknown),
    pub guard_judging: Option<f64>,
    /// … and the rest: the mailbox both ways, the guard opening the
    /// request record and sealing its reply.
    pub guard_channel_and_mailbox: Option<f64>,
    /// The host opening the reply record.
    pub host_open: f64,
    /// The host decoding the verdict record and extending its verdict
    /// chain.
    pub host_check: f64,
}

/// Samples of [`RoundTripParts`], µs.
#[derive(Default)]
struct PartSamples {
    seal: Vec<Duration>,
    guard: Vec<Duration>,
    judging: Vec<Duration>,
    rest: Vec<Duration>,
    open: Vec<Duration>,
    check: Vec<Duration>,
}

impl PartSamples {
    fn push(&mut self, judged: &vigil::vm_judge::JudgedBatch, counter_khz: Option<u32>) {
        let t = judged.timings;
        self.seal.push(t.seal);
        self.guard.push(t.guard);
        self.open.push(t.open);
        self.check.push(t.check);
        if let Some(khz) = counter_khz {
            let judging = Duration::from_secs_f64(judged.judge_ticks as f64 / (f64::from(khz) * 1e3));
            self.judging.push(judging);
            self.rest.push(t.guard.saturating_sub(judging));
        }
    }

    fn medians(mut self) -> RoundTripParts {
        let optional = |v: &mut Vec<Duration>| (!v.is_empty()).then(|| micros(quantile(v, 0.5)));
        RoundTripParts {
            host_seal: micros(quantile(&mut self.seal, 0.5)),
            guard: micros(quantile(&mut self.guard, 0.5)),
            guard_judging: optional(&mut self.judging),
            guard_channel_and_mailbox: optional(&mut self.rest),
            host_open: micros(quantile(&mut self.open, 0.5)),
            host_check: micros(quantile(&mut self.check, 0.5)),
        }
    }
}

/// The judge figures.
#[derive(Debug, Serialize)]
pub struct JudgeBenchReport {
    /// Distinct intents cycled through.
    pub intents: usize,
    /// Evidence signing (COSE_Sign, EdDSA + ML-DSA-65) in the VMM, median µs.
    pub evidence_sign_p50_us: f64,
    /// Evidence verification (both signatures, claims), median µs.
    pub evidence_verify_p50_us: f64,
    /// `ATTEST` in an attested start, median µs: from the first ping
    /// answered to the evidence received (the host checks its own copy of
    /// the bundle first, while the guard makes its keys; then the guard's
    /// request, the VMM's signing and the reply).
    pub attest_round_trip_p50_us: f64,
    /// Evidence size, bytes.
    pub evidence_bytes: usize,
    /// Cold starts measured.
    pub starts: usize,
    /// Cold start to an attested, verified guard with an open channel, median µs.
    pub cold_start_attested_p50_us: f64,
    /// Its 99th percentile, µs.
    pub cold_start_attested_p99_us: f64,
    /// Of an attested start, median µs: boot to the first ping answered.
    pub start_boot_p50_us: f64,
    /// … the host's evidence verification.
    pub start_verify_p50_us: f64,
    /// … the channel open (handshake, the guard's bundle check if still
    /// under way, key confirmation).
    pub start_open_p50_us: f64,
    /// Warm single-intent round trip through the VM, median µs.
    pub vm_round_trip_p50_us: f64,
    /// Its 99th percentile, µs.
    pub vm_round_trip_p99_us: f64,
    /// In-process evaluation of the same intents, median µs.
    pub inproc_p50_us: f64,
    /// Its 99th percentile, µs.
    pub inproc_p99_us: f64,
    /// VM median / in-process median.
    pub vm_to_inproc_ratio: f64,
    /// Where a counted warm round trip's time goes, each part's median.
    pub vm_round_trip_parts_p50_us: RoundTripParts,
    /// Batched throughput.
    pub batches: Vec<BatchFigures>,
    /// Warm single-intent round trip with cost counting off (interleaved
    /// with the counted ones), µs.
    pub vm_uncounted_p50_us: f64,
    /// Counted / uncounted p50.
    pub counting_overhead_ratio: f64,
    /// Cost records journaled per second (appending and signing).
    pub cost_records_per_second: f64,
    /// `cost verify` throughput, records per second (with the data key).
    pub cost_verify_records_per_second: f64,
}

/// Runs the judge benchmark over `intents` (CBOR).
pub fn run(
    template: &BootTemplate,
    reference: &vigil::reference::Reference,
    base: VmConfig,
    bundle: &[u8],
    intents: &[Vec<u8>],
    options: &JudgeBenchOptions,
    progress: &dyn Fn(&'static str, usize) -> indicatif::ProgressBar,
) -> Result<JudgeBenchReport> {
    if intents.is_empty() {
        return Err(anyhow!("the judge benchmark needs at least one intent"));
    }
    let key = Arc::new(DualSigningKey::from_seeds(&keys::random()?, &keys::random()?));
    let trust = TrustAnchors { platform: key.public(), reference: reference.clone(), allow_test_image: false };
    let config = VmConfig { platform: Some(PlatformSigner(key.clone())), ..base };
    let policy = PolicyImage::new(bundle.to_vec());

    // Cold start to an attested guard; the last one stays for the rest.
    let bar = progress("attested", options.starts);
    let mut starts = Vec::with_capacity(options.starts);
    let mut attests = Vec::with_capacity(options.starts);
    let (mut boots, mut start_verifies, mut opens) = (Vec::new(), Vec::new(), Vec::new());
    let mut judge = None;
    for _ in 0..options.starts.max(1) {
        let started = Instant::now();
        let j = VmJudge::start(template, policy.clone(), &trust, config.clone())?;
        starts.push(started.elapsed());
        let timings = j.timings();
        attests.push(Duration::from_secs_f64(timings.attest_us / 1e6));
        boots.push(Duration::from_secs_f64(timings.boot_us / 1e6));
        start_verifies.push(Duration::from_secs_f64(timings.verify_us / 1e6));
        opens.push(Duration::from_secs_f64(timings.open_us / 1e6));
        judge = Some(j);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut judge = judge.ok_or_else(|| anyhow!("no guard started"))?;

    // Evidence signing and verification on the host, on this guard's claims.
    let claims = judge.claims().clone();
    let evidence_bytes = judge.evidence().to_vec();
    let (mut signs, mut verifies) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let started = Instant::now();
        let signed = evidence::sign(&claims, &key).map_err(|e| anyhow!(e))?;
        signs.push(started.elapsed());
        let expect =
            Expectations { policy: Some(&claims.policy), ..reference.expectations(&trust.platform, &claims.nonce) };
        let started = Instant::now();
        evidence::verify(&signed, &expect).map_err(|e| anyhow!("{e}"))?;
        verifies.push(started.elapsed());
    }

    // Warm single-intent round trips, and the same intents in process.
    let counter_khz = vigil::vmm::backend::host().ok().and_then(|h| h.counter_khz()).filter(|&k| k > 0);
    let mut arena = vigil::judge::dense_arena();
    let inproc = InprocJudge::with_dense_copies(bundle, &mut arena)?;
    let mut parts = PartSamples::default();
    let bar = progress("round trips", options.round_trips);
    let (mut vm, mut local) = (Vec::with_capacity(options.round_trips), Vec::with_capacity(options.round_trips));
    let mut uncounted = Vec::with_capacity(options.round_trips);
    for i in 0..options.round_trips {
        // Blocks of 512 round trips alternate counting on and off.
        let counting = (i / 512) % 2 == 0;
        if i % 512 == 0 {
            judge = judge.counting(counting);
        }
        let intent = intents[i % intents.len()].as_slice();
        let started = Instant::now();
        let judged = judge.judge_records(&[intent])?;
        if counting {
            vm.push(started.elapsed());
            parts.push(&judged, counter_khz);
        } else {
            uncounted.push(started.elapsed())
        };
        let started = Instant::now();
        std::hint::black_box(inproc.evaluate(std::hint::black_box(intent)));
        local.push(started.elapsed());
        if i % 1024 == 0 {
            bar.set_position(i as u64);
        }
    }
    bar.finish_and_clear();

    let mut batches = Vec::new();
    for size in [1usize, 16, 256] {
        let bar = progress("batches", options.batch_verdicts);
        let rounds = (options.batch_verdicts / size).max(1);
        let mut times = Vec::with_capacity(rounds);
        let mut start = 0;
        let mut guard_ticks = 0u64;
        let (mut guard, mut host) = (Duration::ZERO, Duration::ZERO);
        let total = Instant::now();
        for _ in 0..rounds {
            let batch: Vec<&[u8]> = (0..size).map(|k| intents[(start + k) % intents.len()].as_slice()).collect();
            start += size;
            let started = Instant::now();
            let judged = judge.judge_records(&batch)?;
            guard_ticks += judged.judge_ticks;
            guard += judged.timings.guard;
            host += judged.timings.seal + judged.timings.open + judged.timings.check;
            times.push(started.elapsed());
            bar.inc(size as u64);
        }
        let elapsed = total.elapsed();
        bar.finish_and_clear();
        let verdicts = (rounds * size) as f64;
        let judging_us = counter_khz.map(|khz| guard_ticks as f64 / f64::from(khz) * 1e3);
        batches.push(BatchFigures {
            batch: size,
            verdicts_per_second: verdicts / elapsed.as_secs_f64(),
            p50_batch_us: micros(quantile(&mut times, 0.5)),
            guard_judging_us_per_verdict: judging_us.map(|us| us / verdicts),
            guard_channel_and_mailbox_us_per_verdict: judging_us
                .map(|us| (guard.as_secs_f64() * 1e6 - us).max(0.0) / verdicts),
            host_us_per_verdict: host.as_secs_f64() * 1e6 / verdicts,
        });
    }
    judge.shutdown()?;
    let (cost_records_per_second, cost_verify_records_per_second) = cost_throughput(bundle)?;

    let vm_p50 = micros(quantile(&mut vm, 0.5));
    let vm_uncounted_p50_us = micros(quantile(&mut uncounted, 0.5));
    let inproc_p50 = micros(quantile(&mut local, 0.5));
    Ok(JudgeBenchReport {
        intents: intents.len(),
        evidence_sign_p50_us: micros(quantile(&mut signs, 0.5)),
        evidence_verify_p50_us: micros(quantile(&mut verifies, 0.5)),
        attest_round_trip_p50_us: micros(quantile(&mut attests, 0.5)),
        evidence_bytes: evidence_bytes.len(),
        starts: starts.len(),
        cold_start_attested_p50_us: micros(quantile(&mut starts, 0.5)),
        cold_start_attested_p99_us: micros(quantile(&mut starts, 0.99)),
        start_boot_p50_us: micros(quantile(&mut boots, 0.5)),
        start_verify_p50_us: micros(quantile(&mut start_verifies, 0.5)),
        start_open_p50_us: micros(quantile(&mut opens, 0.5)),
        vm_round_trip_p50_us: vm_p50,
        vm_round_trip_p99_us: micros(quantile(&mut vm, 0.99)),
        inproc_p50_us: inproc_p50,
        inproc_p99_us: micros(quantile(&mut local, 0.99)),
        vm_to_inproc_ratio: vm_p50 / inproc_p50.max(1e-9),
        vm_round_trip_parts_p50_us: parts.medians(),
        batches,
        vm_uncounted_p50_us,
        counting_overhead_ratio: vm_p50 / vm_uncounted_p50_us.max(1e-9),
        cost_records_per_second,
        cost_verify_records_per_second,
    })
}

/// Cost records journaled per second (each pricing one verdict, signed in
/// statements of 64), and `cost verify` records per second, on a scratch
/// key directory and journal.
fn cost_throughput(bundle: &[u8]) -> anyhow::Result<(f64, f64)> {
    const RECORDS: usize = 5_000;
    let dir = std::env::temp_dir().join(format!("vigil-cost-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> anyhow::Result<(f64, f64)> {
        vigil::keys::init(&dir, false)?;
        let journal = dir.join("bench.vgj");
        let mut recorder = vigil::recording::Recorder::open(&dir, Some(&journal), bundle)?;
        let judge = InprocJudge::new(bundle)?;
        let encoded = vigil::recording::encode_json(&[
            "{\"id\":1,\"agent\":\"a\",\"tool\":\"shell\",\"args\":{\"command\":\"ls\"}}",
        ]);
        let intent = &vigil::recording::submissions(&encoded)[0];
        let verdict = judge.evaluate(intent.cbor);
        let counters = vigil::vmm::counters::ThreadCounters::for_current_thread();
        let tier = recorder.shared().inproc_tier();
        let mut spent = Duration::ZERO;
        for _ in 0..RECORDS {
            let meter = vigil::cost::Meter::start(&counters);
            let seq = recorder.inproc(intent, &verdict, 0)?;
            let record = meter.finish().record(vec![seq], tier.clone(), 0);
            let started = Instant::now();
            recorder.cost(&record)?;
            spent += started.elapsed();
        }
        let started = Instant::now();
        recorder.close()?;
        spent += started.elapsed();
        let (_, platform) = vigil::keys::platform_pair(&dir)?;
        let (_, cost) = vigil::keys::cost_pair(&dir)?;
        let master = vigil::keys::read_journal_key(&dir)?;
        let started = Instant::now();
        let report = vigil::cost_audit::verify(&journal, Some(&master), &platform, &cost, None)?;
        let verify = started.elapsed();
        anyhow::ensure!(report.ok(), "the benchmark's own costs do not verify: {:?}", report.problems);
        Ok((RECORDS as f64 / spent.as_secs_f64(), RECORDS as f64 / verify.as_secs_f64()))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The guard's time split into judging and the rest, µs, as printed (both
/// are known, or neither: they come from the same counter).
fn guard_split(judging: Option<f64>, rest: Option<f64>) -> Option<String> {
    let (judging, rest) = judging.zip(rest)?;
    Some(format!("judging {judging:.2}, its channel records and the mailbox {rest:.2}"))
}

/// Human-readable figures.
pub fn print(r: &JudgeBenchReport) {
    println!(
        "evidence           sign p50 {:8.1} µs  verify p50 {:8.1} µs  ATTEST round trip p50 {:8.1} µs  ({} bytes)",
        r.evidence_sign_p50_us, r.evidence_verify_p50_us, r.attest_round_trip_p50_us, r.evidence_bytes
    );
    println!(
        "attested start     p50 {:8.1} µs  p99 {:8.1} µs  ({} boots → evidence verified → channel open)",
        r.cold_start_attested_p50_us, r.cold_start_attested_p99_us, r.starts
    );
    println!(
        "  its steps, p50   boot {:.0} µs  ATTEST {:.0} µs (from the first ping; the host checks its bundle copy, decodes the platform key and makes its channel key meanwhile)  verify {:.0} µs (the guard opening the channel meanwhile)  open {:.0} µs (left after it)",
        r.start_boot_p50_us, r.attest_round_trip_p50_us, r.start_verify_p50_us, r.start_open_p50_us
    );
    println!(
        "intent via VM      p50 {:8.2} µs  p99 {:8.2} µs  (warm, one intent per record, {} distinct intents)",
        r.vm_round_trip_p50_us, r.vm_round_trip_p99_us, r.intents
    );
    println!(
        "intent in process  p50 {:8.2} µs  p99 {:8.2} µs  (same intents, same run): VM/in-process = {:.2}",
        r.inproc_p50_us, r.inproc_p99_us, r.vm_to_inproc_ratio
    );
    let p = &r.vm_round_trip_parts_p50_us;
    let judging =
        guard_split(p.guard_judging, p.guard_channel_and_mailbox).map_or_else(String::new, |t| format!(" ({t})"));
    println!(
        "  its parts, p50   host seal {:.2} µs  guard {:.2} µs{judging}  host open {:.2} µs  host check {:.2} µs",
        p.host_seal, p.guard, p.host_open, p.host_check
    );
    println!(
        "cost counting      on p50 {:8.2} µs  off p50 {:8.2} µs  on/off = {:.3}  (interleaved blocks, same intents)",
        r.vm_round_trip_p50_us, r.vm_uncounted_p50_us, r.counting_overhead_ratio
    );
    println!(
        "cost records       {:.0} journaled/s (signed in statements of 64)   cost verify {:.0} records/s",
        r.cost_records_per_second, r.cost_verify_records_per_second
    );
    for b in &r.batches {
        let guard = guard_split(b.guard_judging_us_per_verdict, b.guard_channel_and_mailbox_us_per_verdict)
            .map(|t| format!("the guard {t}, "))
            .unwrap_or_default();
        println!(
            "batch {:>4}         {:>10.0} verdicts/s  p50 {:9.1} µs per batch  (per verdict: {guard}the host {:.2} µs)",
            b.batch, b.verdicts_per_second, b.p50_batch_us, b.host_us_per_verdict
        );
    }
}
