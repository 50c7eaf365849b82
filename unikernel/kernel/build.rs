//! Links the guard image with its architecture's linker script.
use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // `cargo xtask build-guard` sets `--cfg vigil_guest` for the image;
    // any other build makes the hosted stub, linked normally.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if env::var_os("CARGO_CFG_VIGIL_GUEST").is_none() {
        return;
    }
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = format!("{dir}/src/arch/{arch}/link.ld");
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rustc-link-arg-bins=-T{script}");
    println!("cargo:rustc-link-arg-bins=--build-id=none");
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
}
