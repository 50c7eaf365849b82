//! `vigil doctor`: can this machine run the guard, and how fast?

use std::time::Instant;

use serde::Serialize;

use vigil::guard_image::{self, ImageSource};
use vigil::stats::{micros, quantile};
use vigil::vmm::{GuardVm, GuestInfo, backend, pmu};

/// One check's outcome.
#[derive(Debug, Serialize)]
pub struct Check {
    /// Passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Guard boot results.
#[derive(Debug, Serialize)]
pub struct GuardReport {
    /// Image booted.
    pub image: ImageSource,
    /// `Info` from the running guard.
    pub info: GuestInfo,
    /// VM created → first `Ping` answered, µs.
    pub cold_boot_us: f64,
    /// Median warm `Ping` round trip (64 bytes), µs.
    pub ping_p50_us: f64,
    /// 99th percentile warm `Ping` round trip, µs.
    pub ping_p99_us: f64,
}

/// Everything `vigil doctor` found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Vigil version.
    pub vigil_version: &'static str,
    /// The hypervisor this host uses: `kvm` (Linux) or `hvf` (macOS).
    pub hypervisor: &'static str,
    /// Access to the hypervisor (`/dev/kvm`; Hypervisor.framework). The
    /// key keeps its first name for readers of earlier reports.
    pub kvm: Check,
    /// `KVM_GET_API_VERSION` (KVM only).
    pub kvm_api_version: Option<i32>,
    /// The guest counter's rate (the TSC; `CNTVCT_EL0`) as the hypervisor
    /// reports it.
    pub tsc_khz: Option<u32>,
    /// Host CPU has RDRAND.
    pub rdrand: bool,
    /// Host CPU has RDSEED.
    pub rdseed: bool,
    /// Hardware PMU.
    pub pmu: pmu::PmuProbe,
    /// Guard boot and ping.
    pub guard: Check,
    /// Details when the guard ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard_report: Option<GuardReport>,
    /// All checks passed.
    pub ok: bool,
}

#[cfg(target_os = "linux")]
const HYPERVISOR: &str = "kvm";
#[cfg(not(target_os = "linux"))]
const HYPERVISOR: &str = "hvf";

#[cfg(not(target_os = "linux"))]
fn check_hypervisor_access() -> Check {
    match backend::host() {
        Ok(_) => Check { ok: true, detail: "Hypervisor.framework created a VM".into(), fix: None },
        Err(err) => Check { ok: false, detail: err.to_string(), fix: None },
    }
}

#[cfg(target_os = "linux")]
fn check_hypervisor_access() -> Check {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => Check { ok: true, detail: "/dev/kvm is readable and writable".into(), fix: None },
        Err(err) => Check {
            ok: false,
            detail: format!("cannot open /dev/kvm: {err}"),
            fix: Some(vigil::vmm::kvm::kvm_hint(err.raw_os_error().unwrap_or(0)).into()),
        },
    }
}

fn run_guard(choice: &guard_image::GuardChoice) -> anyhow::Result<GuardReport> {
    let (template, image, _) = guard_image::load(choice)?;
    let started = Instant::now();
    let mut vm = GuardVm::boot(&template, choice.vm_config())?;
    vm.ping(&[0; 64])?;
    let cold = started.elapsed();
    let mut samples = Vec::with_capacity(1000);
    let payload = [0x5a; 64];
    for _ in 0..1000 {
        let t = Instant::now();
        let reply = vm.ping(&payload)?;
        samples.push(t.elapsed());
        anyhow::ensure!(reply.payload == payload, "the guard returned a different ping payload");
    }
    let info = vm.info()?;
    vm.shutdown()?;
    Ok(GuardReport {
        image,
        info,
        cold_boot_us: micros(cold),
        ping_p50_us: micros(quantile(&mut samples, 0.5)),
        ping_p99_us: micros(quantile(&mut samples, 0.99)),
    })
}

/// Runs all checks.
pub fn run(choice: &guard_image::GuardChoice) -> Report {
    let kvm_check = check_hypervisor_access();
    let (guard, guard_report) = if kvm_check.ok {
        match run_guard(choice) {
            Ok(report) => (
                Check {
                    ok: true,
                    detail: format!(
                        "booted guard {} at {}{}, answered 1001 pings",
                        report.info.version,
                        if report.info.arch == "aarch64" { "EL" } else { "CPL" },
                        report.info.privilege
                    ),
                    fix: None,
                },
                Some(report),
            ),
            Err(err) => (
                Check {
                    ok: false,
                    detail: format!("{err:#}"),
                    fix: Some("run with VIGIL_LOG=debug for the guard's console output".into()),
                },
                None,
            ),
        }
    } else {
        (Check { ok: false, detail: "not attempted: the hypervisor is not usable".into(), fix: None }, None)
    };
    let ok = kvm_check.ok && guard.ok;
    #[cfg(target_os = "linux")]
    let kvm_api_version = vigil::vmm::kvm::platform().ok().map(|p| p.api_version());
    #[cfg(not(target_os = "linux"))]
    let kvm_api_version = None;
    Report {
        vigil_version: env!("CARGO_PKG_VERSION"),
        hypervisor: HYPERVISOR,
        kvm: kvm_check,
        kvm_api_version,
        tsc_khz: backend::host().ok().and_then(|h| h.counter_khz()),
        #[cfg(target_arch = "x86_64")]
        rdrand: std::arch::is_x86_feature_detected!("rdrand"),
        #[cfg(target_arch = "x86_64")]
        rdseed: std::arch::is_x86_feature_detected!("rdseed"),
        #[cfg(not(target_arch = "x86_64"))]
        rdrand: false,
        #[cfg(not(target_arch = "x86_64"))]
        rdseed: false,
        pmu: pmu::probe(),
        guard,
        guard_report,
        ok,
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok  " } else { "FAIL" }
}

/// Human-readable report.
pub fn print(report: &Report) {
    println!("vigil doctor (vigil {})", report.vigil_version);
    println!("  [{}] {:<10} {}", mark(report.kvm.ok), report.hypervisor.to_uppercase(), report.kvm.detail);
    if let Some(fix) = &report.kvm.fix {
        println!("              fix: {fix}");
    }
    if let Some(api) = report.kvm_api_version {
        println!("       KVM API    version {api}");
    }
    match report.tsc_khz {
        Some(khz) => {
            println!("       counter    {:.3} GHz (the guard's clock, from the hypervisor)", f64::from(khz) / 1e6)
        }
        None => println!("       counter    rate unknown"),
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("       RDRAND     {}   RDSEED {}", yes(report.rdrand), yes(report.rdseed));
    println!(
        "       PMU        {} ({})",
        if report.pmu.hardware { "hardware counters usable" } else { "no hardware counters: cost records use the TSC" },
        report.pmu.detail
    );
    println!("  [{}] guard      {}", mark(report.guard.ok), report.guard.detail);
    if let Some(fix) = &report.guard.fix {
        println!("              hint: {fix}");
    }
    if let Some(g) = &report.guard_report {
        println!("       image      {} ({} bytes, sha384 {})", g.image.origin, g.image.size, g.image.sha384);
        println!(
            "       guest      {} abi {}, {} MiB, entropy: {}",
            g.info.arch,
            g.info.abi_version,
            g.info.memory_size >> 20,
            g.info.entropy_sources.join(", ")
        );
        println!("       cold boot  {:.0} µs (VM created → first ping answered)", g.cold_boot_us);
        println!("       ping       p50 {:.2} µs, p99 {:.2} µs (64 bytes, exitless)", g.ping_p50_us, g.ping_p99_us);
    }
    println!("{}", if report.ok { "all checks passed" } else { "some checks failed" });
}
