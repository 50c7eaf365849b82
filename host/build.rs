//! Builds the guard image(s) the `vigil` binary embeds, with the same
//! reproducible build as `cargo xtask build-guard`, in a separate target dir.

use std::env;
use std::path::{Path, PathBuf};

use xtask::guard_build::{self, Arch, GuardBuild};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().expect("host/ lives in the workspace").to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for path in
        ["unikernel", "attest", "xtask/src", "policies", "Cargo.lock", ".cargo/config.toml", "rust-toolchain.toml"]
    {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let target_root = env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"));
    let target_dir = target_root.join("guard-build");
    compile_default_policy(&workspace, &out);
    build(&workspace, &target_dir, &out, false);
    // The test-hooks image is only built when asked for; an empty file keeps
    // `include_bytes!` happy otherwise and is never booted.
    let hooks = out.join("vigil-guard-test-hooks.elf");
    if env::var_os("CARGO_FEATURE_TEST_HOOKS").is_some() {
        build(&workspace, &target_dir, &out, true);
    } else {
        std::fs::write(&hooks, b"").expect("writing the placeholder test-hooks image");
    }
}

fn build(workspace: &Path, target_dir: &Path, out: &Path, test_hooks: bool) {
    // A hypervisor runs guests of its own architecture: embed the image of
    // the architecture `vigil` is built for.
    let arch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => Arch::Aarch64,
        _ => Arch::X86_64,
    };
    let request =
        GuardBuild { arch, test_hooks, workspace: workspace.to_path_buf(), target_dir: target_dir.to_path_buf() };
    let built = match guard_build::build(&request) {
        Ok(built) => built,
        Err(err) => {
            eprintln!("error: building the embedded guard image failed: {err:#}");
            std::process::exit(1);
        }
    };
    let name = if test_hooks { "vigil-guard-test-hooks.elf" } else { "vigil-guard.elf" };
    std::fs::write(out.join(name), &built.elf).expect("writing the guard image to OUT_DIR");
    let json = guard_build::measurements_json(&built.measurements);
    let json_name = if test_hooks { "measurements-test-hooks.json" } else { "measurements.json" };
    std::fs::write(out.join(json_name), json).expect("writing measurements to OUT_DIR");
}

/// Compiles the default policy pack into OUT_DIR/default.vgp.
fn compile_default_policy(workspace: &Path, out: &Path) {
    let path = workspace.join("policies/default.toml");
    let source = std::fs::read_to_string(&path).expect("reading policies/default.toml");
    match vigil_guard::compile::compile(&source, "policies/default.toml") {
        Ok(compiled) => std::fs::write(out.join("default.vgp"), compiled.bundle).expect("writing default.vgp"),
        Err(err) => {
            eprintln!("error: the default policy pack does not compile: {err}");
            std::process::exit(1);
        }
    }
}
