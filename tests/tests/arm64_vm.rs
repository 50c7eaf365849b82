//! The aarch64 guard under a real KVM-arm64: `cargo xtask arm64-vm` runs
//! QEMU's arm64 `virt` machine with virtualisation, Debian's arm64 kernel
//! with KVM, and inside it `vigil` for aarch64. There the attested aarch64
//! guard judges the whole corpus — every verdict record must equal the
//! x86_64 in-process one byte for byte — and the boot and fault tests
//! (tests/boot.rs) pass against it. SKIPPED, loudly, only where QEMU or
//! Debian's arm64 packages cannot be had.

use std::path::Path;

use xtask::arm64_vm::{Options, Outcome, run_vm};

#[test]
fn the_aarch64_guard_under_kvm_arm64_judges_the_corpus_as_x86_64_does_and_passes_the_fault_tests() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(Into::into).unwrap_or_else(|| workspace.join("target"));
    let options = Options { workspace, target, tests: true, bench: false };
    match run_vm(&options).expect("the arm64 VM run") {
        Outcome::Skipped(reason) => {
            vigil_tests::announce_skip("aarch64 guard under KVM-arm64 (cargo xtask arm64-vm)", &reason)
        }
        Outcome::Ran(report) => {
            assert_eq!(
                report.records_rc,
                Some(0),
                "vigil policy records failed in the VM; console: {}",
                report.console.display()
            );
            assert!(
                report.mismatches.is_empty(),
                "{} of {} records differ from x86_64 in process:\n{}",
                report.mismatches.len(),
                report.expected,
                report.mismatches.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
            );
            assert_eq!(report.records, report.expected);
            assert!(report.expected >= 2000, "the corpus is all there");
            assert_eq!(report.doctor_rc, Some(0), "vigil doctor in the VM; console: {}", report.console.display());
            assert!(
                report.doctor_guard.as_deref().is_some_and(|l| l.contains("at EL0")),
                "the guard runs at EL0: {:?}",
                report.doctor_guard
            );
            // Cost records under KVM-arm64, where an emulated PMUv3 exists:
            // the guard's ticks come from CNTVCT_EL0, and each hardware event
            // is counted from the guest or absent with the kernel's reason.
            assert_eq!(
                report.cost_verify_rc,
                Some(0),
                "vigil cost verify in the VM; console: {}",
                report.console.display()
            );
            let record: serde_json::Value =
                serde_json::from_str(report.cost_record.as_deref().expect("a cost record was exported")).unwrap();
            let counters = record["counters"].as_array().unwrap();
            assert!(counters.iter().any(|c| c["name"] == "guard_ticks" && c["source"] == "guard:cntvct"), "{record}");
            for event in ["cycles", "instructions", "branch_misses"] {
                let counted = counters.iter().any(|c| c["name"] == event && c["source"] == "perf:guest");
                let absent = record["absent"].as_array().unwrap().iter().any(|a| a["name"] == event);
                assert!(counted != absent, "{event} must be counted or absent with a reason: {record}");
            }
            assert_eq!(
                report.tests_rc,
                Some(0),
                "boot/fault tests in the VM: {:?}; console: {}",
                report.tests_summary,
                report.console.display()
            );
        }
    }
}
