//! The hypervisor back end of this host: KVM on Linux,
//! Hypervisor.framework on macOS (Apple Silicon), none elsewhere.

use crate::VmError;
use crate::hypervisor::Hypervisor;

/// The hypervisor of this host: KVM on Linux, Hypervisor.framework on
/// macOS (Apple Silicon).
#[cfg(target_os = "linux")]
pub fn host() -> Result<&'static dyn Hypervisor, VmError> {
    Ok(crate::kvm::platform()?)
}

/// The hypervisor of this host: KVM on Linux, Hypervisor.framework on
/// macOS (Apple Silicon).
#[cfg(all(target_os = "macos", target_arch = "aarch64"))]
pub fn host() -> Result<&'static dyn Hypervisor, VmError> {
    Ok(crate::hvf::platform()?)
}

/// The hypervisor of this host: none on this operating system.
#[cfg(not(any(target_os = "linux", all(target_os = "macos", target_arch = "aarch64"))))]
pub fn host() -> Result<&'static dyn Hypervisor, VmError> {
    Err(VmError::HypervisorUnavailable {
        hypervisor: "a hypervisor",
        message: "this operating system has no hypervisor back end".into(),
        hint: "run the guard on Linux with KVM, or on macOS on Apple Silicon",
    })
}
