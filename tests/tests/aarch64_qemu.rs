//! The aarch64 guard image builds and boots under QEMU's `virt` machine
//! (booting it under Hypervisor.framework / KVM-arm comes with a later issue).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xtask::guard_build::{self, Arch, GuardBuild};

#[test]
fn aarch64_image_builds_and_boots_under_qemu() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(Into::into).unwrap_or_else(|| workspace.join("target"));
    let built = guard_build::build(&GuardBuild {
        arch: Arch::Aarch64,
        test_hooks: false,
        workspace: workspace.clone(),
        target_dir: target.join("guard-build"),
    })
    .expect("aarch64 guard build");
    assert_eq!(&built.elf[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([built.elf[0x12], built.elf[0x13]]), 183, "EM_AARCH64");

    let qemu = "qemu-system-aarch64";
    if Command::new(qemu).arg("--version").stdout(Stdio::null()).status().is_err() {
        vigil_tests::announce_skip(
            "aarch64 boot under QEMU",
            "qemu-system-aarch64 not installed: apt-get install qemu-system-arm",
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("vigil-aarch64-{}", std::process::id()));
    let (elf, _) = guard_build::write_outputs(&built, &dir).expect("write image");
    let mut child = Command::new(qemu)
        .args(["-M", "virt", "-cpu", "cortex-a72", "-m", "64", "-nographic", "-nic", "none", "-no-reboot", "-kernel"])
        .arg(&elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the aarch64 guard did not power off within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("qemu output");
    let console = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "qemu: {:?} {}", output.status, String::from_utf8_lossy(&output.stderr));
    let banner = format!("vigil guard {} aarch64: booted at EL1", env!("CARGO_PKG_VERSION"));
    assert!(console.contains(&banner), "console: {console}");
    let _ = std::fs::remove_dir_all(&dir);
}
