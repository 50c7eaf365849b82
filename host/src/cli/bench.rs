//! `vigil bench`: cold start, exitless ping round trips, wake from sleep,
//! the attested judge and the journal.
//! Reports medians and tails measured in one run; nothing here asserts a
//! speed.

use std::time::{Duration, Instant};

use serde::Serialize;

use vigil::guard_image::{self, ImageSource};
use vigil::stats::{micros, quantile};
use vigil::vmm::{GuardVm, VmConfig};
use vigil_abi::layout;

/// How much to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Cold boots.
    pub boots: usize,
    /// Timed pings per payload size.
    pub pings: usize,
    /// Wake-from-sleep round trips.
    pub wakes: usize,
    /// The attested judge's figures (`None`: skip them).
    pub judge: Option<crate::cli::judge_bench::JudgeBenchOptions>,
    /// The journal's figures (`None`: skip them).
    pub journal: Option<crate::cli::journal_bench::JournalBenchOptions>,
    /// The daemon's figures (`None`: skip them).
    pub daemon: Option<crate::cli::daemon_bench::DaemonBenchOptions>,
}

/// Round-trip figures for one payload size.
#[derive(Debug, Serialize)]
pub struct PingFigures {
    /// Payload bytes.
    pub payload: usize,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Back-to-back round trips per second.
    pub per_second: f64,
    /// VM exits during the timed loop (0 = exitless).
    pub exits: u64,
}

/// Everything measured.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Image measured.
    pub image: ImageSource,
    /// Guest memory size, bytes.
    pub guest_memory_bytes: u64,
    /// Cold boots measured.
    pub boots: usize,
    /// Cold start median, µs (`KVM_CREATE_VM` → first `Ping` answered).
    pub cold_start_p50_us: f64,
    /// Cold start 99th percentile, µs.
    pub cold_start_p99_us: f64,
    /// Of a cold start, median µs: until the VM is made (the host's KVM
    /// calls, the image and boot info written; the vCPU about to run).
    pub cold_start_vm_made_p50_us: f64,
    /// Of a cold start, median µs: from then to the first ping answered
    /// (the guest's boot and its first answer).
    pub cold_start_guest_p50_us: f64,
    /// Warm ping figures.
    pub ping: Vec<PingFigures>,
    /// Wake-from-sleep round trips measured.
    pub wakes: usize,
    /// Wake-from-sleep median, µs.
    pub wake_p50_us: f64,
    /// Wake-from-sleep 99th percentile, µs.
    pub wake_p99_us: f64,
    /// The attested judge (evidence, round trips, batches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<crate::cli::judge_bench::JudgeBenchReport>,
    /// The journal (append, acknowledgement, verify, replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal: Option<crate::cli::journal_bench::JournalBenchReport>,
    /// The daemon (`vigil serve` over its socket).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon: Option<crate::cli::daemon_bench::DaemonBenchReport>,
}

/// Runs the benchmark.
pub fn run(choice: &guard_image::GuardChoice, options: &BenchOptions) -> anyhow::Result<BenchReport> {
    let (template, image, reference) = guard_image::load(choice)?;
    // Warm the process-wide state (KVM handle, CPUID cache) once.
    GuardVm::boot(&template, choice.vm_config())?.shutdown()?;

    let mut cold = Vec::with_capacity(options.boots);
    let mut vm_made = Vec::with_capacity(options.boots);
    let mut guest = Vec::with_capacity(options.boots);
    let bar = vigil::progress::bar("cold boots", options.boots);
    for _ in 0..options.boots {
        let started = Instant::now();
        let mut vm = GuardVm::boot(&template, choice.vm_config())?;
        let made = Instant::now();
        vm.ping(&[0; 64])?;
        let answered = Instant::now();
        cold.push(answered - started);
        vm_made.push(made - started);
        guest.push(answered - made);
        vm.shutdown()?;
        bar.inc(1);
    }
    bar.finish_and_clear();

    // Warm pings: a long idle budget so the guard never sleeps mid-loop.
    let config = VmConfig { idle_budget: Duration::from_millis(50), ..choice.vm_config() };
    let mut vm = GuardVm::boot(&template, config)?;
    let mut ping = Vec::new();
    for size in [64usize, 4096] {
        let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
        for _ in 0..1000 {
            vm.ping(&payload)?;
        }
        let mut samples = Vec::with_capacity(options.pings);
        let exits_before = vm.exits();
        let loop_started = Instant::now();
        for _ in 0..options.pings {
            let t = Instant::now();
            let reply = vm.ping(&payload)?;
            samples.push(t.elapsed());
            anyhow::ensure!(reply.payload == payload, "the guard returned a different ping payload");
        }
        let total = loop_started.elapsed();
        let exits = vm.exits() - exits_before;
        ping.push(PingFigures {
            payload: size,
            p50_us: micros(quantile(&mut samples, 0.5)),
            p99_us: micros(quantile(&mut samples, 0.99)),
            per_second: options.pings as f64 / total.as_secs_f64(),
            exits,
        });
    }
    vm.shutdown()?;

    // Wake from sleep: a short idle budget, then wait well past it.
    let config = VmConfig { idle_budget: Duration::from_micros(100), ..choice.vm_config() };
    let mut vm = GuardVm::boot(&template, config)?;
    vm.ping(&[0; 64])?;
    let mut wakes = Vec::with_capacity(options.wakes);
    let bar = vigil::progress::bar("wake-ups", options.wakes);
    for _ in 0..options.wakes {
        let deadline = Instant::now() + Duration::from_millis(500);
        while !vm.is_asleep() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        anyhow::ensure!(vm.is_asleep(), "the guard did not go to sleep within 500 ms");
        let t = Instant::now();
        vm.ping(&[0; 64])?;
        wakes.push(t.elapsed());
        bar.inc(1);
    }
    bar.finish_and_clear();
    vm.shutdown()?;

    let judge = match &options.judge {
        Some(judge_options) => {
            let mut intents = crate::cli::corpus::source_corpus_intents();
            if intents.is_empty() {
                intents = crate::cli::demo::script_intents()?;
            }
            let bundle = vigil::policy::default_bundle();
            Some(crate::cli::judge_bench::run(
                &template,
                &reference,
                choice.vm_config(),
                bundle,
                &intents,
                judge_options,
                &vigil::progress::bar,
            )?)
        }
        None => None,
    };
    let journal = options.journal.as_ref().map(crate::cli::journal_bench::run).transpose()?;
    let daemon = options.daemon.as_ref().map(crate::cli::daemon_bench::run).transpose()?;

    Ok(BenchReport {
        image,
        guest_memory_bytes: layout::MEMORY_SIZE,
        boots: options.boots,
        cold_start_p50_us: micros(quantile(&mut cold, 0.5)),
        cold_start_p99_us: micros(quantile(&mut cold, 0.99)),
        cold_start_vm_made_p50_us: micros(quantile(&mut vm_made, 0.5)),
        cold_start_guest_p50_us: micros(quantile(&mut guest, 0.5)),
        ping,
        wakes: options.wakes,
        wake_p50_us: micros(quantile(&mut wakes, 0.5)),
        wake_p99_us: micros(quantile(&mut wakes, 0.99)),
        judge,
        journal,
        daemon,
    })
}

/// Human-readable report.
pub fn print(report: &BenchReport) {
    println!(
        "guard image        {} ({} bytes, sha384 {})",
        report.image.origin, report.image.size, report.image.sha384
    );
    println!("guest memory       {} MiB", report.guest_memory_bytes >> 20);
    println!(
        "cold start         p50 {:8.1} µs  p99 {:8.1} µs  ({} boots, KVM_CREATE_VM → first ping answered)",
        report.cold_start_p50_us, report.cold_start_p99_us, report.boots
    );
    println!(
        "  its steps, p50   VM made {:.0} µs (the host's KVM calls, the image loaded meanwhile)  guest {:.0} µs (its boot and first answer)",
        report.cold_start_vm_made_p50_us, report.cold_start_guest_p50_us
    );
    for p in &report.ping {
        println!(
            "ping {:>5} B       p50 {:8.3} µs  p99 {:8.3} µs  {:>10.0} round trips/s  {} exits",
            p.payload, p.p50_us, p.p99_us, p.per_second, p.exits
        );
    }
    println!(
        "wake from sleep    p50 {:8.1} µs  p99 {:8.1} µs  ({} wake-ups)",
        report.wake_p50_us, report.wake_p99_us, report.wakes
    );
    if let Some(judge) = &report.judge {
        crate::cli::judge_bench::print(judge);
    }
    if let Some(daemon) = &report.daemon {
        crate::cli::daemon_bench::print(daemon);
    }
    if let Some(journal) = &report.journal {
        crate::cli::journal_bench::print(journal);
    }
}
