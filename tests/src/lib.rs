//! Helpers for Vigil's end-to-end tests.

#![forbid(unsafe_code)]

use std::io::Write;

/// Prints a loud skip line straight to the terminal (bypassing the test
/// harness's output capture), so a skipped test never passes quietly.
pub fn announce_skip(test: &str, reason: &str) {
    let line = format!("\n*** {test}: SKIPPED ({reason}) ***\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Whether `/dev/kvm` can be opened. When it cannot, prints a loud
/// `SKIPPED (no /dev/kvm)` line straight to the terminal (bypassing the test
/// harness's output capture) so a skipped KVM test never passes quietly.
pub fn kvm_or_skip(test: &str) -> bool {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => true,
        Err(err) => {
            announce_skip(test, &format!("no /dev/kvm: {err}"));
            false
        }
    }
}

/// Skips the calling test (returns) when `/dev/kvm` is missing.
#[macro_export]
macro_rules! require_kvm {
    () => {
        if !$crate::kvm_or_skip(module_path!()) {
            return;
        }
    };
}
