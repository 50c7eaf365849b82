//! Reproducible guard image builds.
//!
//! The image is built by a nested `cargo build` with a fixed profile
//! (`[profile.guard]`), explicit compiler flags, build paths remapped
//! (`--remap-path-prefix`) and no ambient flags from the environment, so that
//! two builds of the same source with the same compiler give the same bytes.
//! The result is measured with SHA-384; `measurements.json` records it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fmt, fs};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};

/// Version of the `measurements.json` format (`docs/measurements.md`).
pub const MEASUREMENTS_VERSION: u32 = 2;

/// The package and binary that make the image.
const PACKAGE: &str = "vigil-unikernel";
const BINARY: &str = "vigil-guard";

/// Guest architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// x86_64 (KVM).
    #[value(name = "x86_64")]
    X86_64,
    /// aarch64 (Hypervisor.framework, KVM on arm64, QEMU `virt`).
    #[value(name = "aarch64")]
    Aarch64,
}

impl Arch {
    /// The Rust target triple for the guard on this architecture.
    pub fn triple(self) -> &'static str {
        match self {
            // A hosted target built without its C library (`no_std`,
            // linked by rust-lld with the guard's script): unlike
            // x86_64-unknown-none it has SSE2, and the crypto crates detect
            // SHA and AVX2 at run time on it (docs/guest-abi.md, "Build").
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => "aarch64-unknown-none",
        }
    }

    /// The hypervisors a guard of this architecture runs under: KVM on
    /// x86_64; KVM and Hypervisor.framework on aarch64.
    pub fn hypervisors(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &["kvm"],
            Arch::Aarch64 => &["kvm", "hvf"],
        }
    }

    /// Short name, as in paths and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct GuardBuild {
    /// Guest architecture.
    pub arch: Arch,
    /// Include the `test-hooks` request kinds (never for production).
    pub test_hooks: bool,
    /// Workspace root (holds the root `Cargo.toml`).
    pub workspace: PathBuf,
    /// Cargo target directory for the nested build.
    pub target_dir: PathBuf,
}

/// `measurements.json`: the reference values a verifier compares evidence to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurements {
    /// Format version: [`MEASUREMENTS_VERSION`].
    pub version: u32,
    /// Guest architecture.
    pub arch: Arch,
    /// File name of the image next to this file.
    pub image: String,
    /// SHA-384 of the image file, lower-case hex.
    pub image_sha384: String,
    /// Image size in bytes.
    pub image_size: u64,
    /// Cargo features the image was built with (the image declares the
    /// same in its `.vigil_features` section, and the evidence carries them).
    pub features: Vec<String>,
    /// Hypervisors the image is built to run under (the evidence's
    /// `hypervisor` claim must be one of them).
    pub hypervisors: Vec<String>,
    /// Confidential-computing platform (`none` today).
    pub platform: String,
    /// `rustc -V` of the compiler that built it.
    pub rustc: String,
    /// Vigil version of the source.
    pub vigil_version: String,
}

/// A built and measured image.
#[derive(Clone, Debug)]
pub struct BuiltGuard {
    /// The ELF image bytes.
    pub elf: Vec<u8>,
    /// Its measurements.
    pub measurements: Measurements,
}

/// Environment variables that would make the nested build depend on how the
/// caller was invoked (a build script, `cargo clippy`, a user's shell).
fn is_ambient(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
        "RUSTC_LINKER",
        "SOURCE_DATE_EPOCH",
    ];
    EXACT.contains(&key) || (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_NET_OFFLINE")
}

fn tool(var: &str, default: &str) -> PathBuf {
    env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default))
}

fn cargo_home() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent-cargo-home"))
}

fn rustc_version(rustc: &Path) -> Result<String> {
    let out = Command::new(rustc).arg("-V").output().with_context(|| format!("running `{} -V`", rustc.display()))?;
    if !out.status.success() {
        bail!("`{} -V` failed: {}", rustc.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Makes sure the standard library for `triple` is installed, adding it
/// with rustup when it is missing (machines may set `RUSTUP_AUTO_INSTALL=0`).
pub fn ensure_target(rustc: &Path, triple: &str) -> Result<()> {
    let out = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", triple])
        .output()
        .with_context(|| format!("asking {} for the {triple} library dir", rustc.display()))?;
    let libdir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let installed = out.status.success()
        && fs::read_dir(&libdir)
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok())
                    .any(|entry| entry.file_name().to_string_lossy().starts_with("libcore-"))
            })
            .unwrap_or(false);
    if installed {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["target", "add", triple])
        .status()
        .with_context(|| {
            format!("the Rust target {triple} is missing and rustup could not be run; install it with `rustup target add {triple}`")
        })?;
    if !status.success() {
        bail!("`rustup target add {triple}` failed; install the target by hand and retry");
    }
    Ok(())
}

/// The compiler flags of a guard build, in order.
pub fn rustflags(arch: Arch, workspace: &Path) -> Vec<String> {
    // The image's own code (runtime, entry point, linker script): see
    // `unikernel/kernel/build.rs`.
    let mut flags = vec!["--cfg".to_string(), "vigil_guest".to_string()];
    // The channel's Poly1305 as the host builds it (`.cargo/config.toml`).
    flags.push("--cfg".to_string());
    flags.push("poly1305_backend=\"soft\"".to_string());
    if arch == Arch::X86_64 {
        // ChaCha20's portable back end in the guard: a single intent's
        // records are a few hundred bytes, where the AVX2 back end opened
        // and sealed them 0.4–1.2 µs slower per round trip on these
        // machines (`vigil bench`, "its channel records and the mailbox");
        // a batch of 256 pays ≈ 0.13 µs per verdict more (docs/performance.md).
        flags.push("--cfg".to_string());
        flags.push("chacha20_backend=\"soft\"".to_string());
        // curve25519-dalek's serial back end: choosing its AVX2 one at run
        // time costs three CPUID instructions, each a VM exit (≈ 35 µs
        // under nested KVM), more than AVX2 saves on the guard's few
        // X25519/Ed25519 operations: the evidence (`ATTEST`) came back
        // 0.10–0.12 ms sooner without them (docs/performance.md).
        flags.push("--cfg".to_string());
        flags.push("curve25519_dalek_backend=\"serial\"".to_string());
        // No C library and no startup files: rust-lld links the image with
        // the guard's linker script, statically.
        flags.push("-Clinker=rust-lld".to_string());
        flags.push("-Clinker-flavor=ld.lld".to_string());
        flags.push("-Ctarget-feature=+crt-static".to_string());
    }
    // The image is loaded at its link address: no self-relocation needed.
    flags.push("-Crelocation-model=static".to_string());
    flags.push(format!("--remap-path-prefix={}=/vigil", workspace.display()));
    flags.push(format!("--remap-path-prefix={}=/cargo", cargo_home().display()));
    flags
}

/// Builds and measures one guard image.
pub fn build(request: &GuardBuild) -> Result<BuiltGuard> {
    let rustc = tool("RUSTC", "rustc");
    let cargo = tool("CARGO", "cargo");
    let triple = request.arch.triple();
    ensure_target(&rustc, triple)?;
    let workspace = request
        .workspace
        .canonicalize()
        .with_context(|| format!("workspace {} not found", request.workspace.display()))?;

    let mut cmd = Command::new(&cargo);
    for (key, _) in env::vars_os() {
        if let Some(key) = key.to_str()
            && is_ambient(key)
        {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(&workspace)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags(request.arch, &workspace).join("\x1f"))
        .env("RUSTC", &rustc)
        .args(["build", "--profile", "guard", "--package", PACKAGE, "--bin", BINARY, "--target", triple])
        .arg("--target-dir")
        .arg(&request.target_dir)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"));
    if workspace.join("Cargo.lock").exists() {
        cmd.arg("--locked");
    }
    let mut features = Vec::new();
    if request.test_hooks {
        cmd.args(["--features", "test-hooks"]);
        features.push("test-hooks".to_string());
    }
    let status = cmd.status().with_context(|| format!("running {}", cargo.display()))?;
    if !status.success() {
        bail!("building the {} guard image failed (see the compiler output above)", request.arch);
    }
    let elf_path = request.target_dir.join(triple).join("guard").join(BINARY);
    let elf = fs::read(&elf_path).with_context(|| format!("reading the built image {}", elf_path.display()))?;
    let measurements = Measurements {
        version: MEASUREMENTS_VERSION,
        arch: request.arch,
        image: image_file_name().to_string(),
        image_sha384: hex::encode(Sha384::digest(&elf)),
        image_size: elf.len() as u64,
        features,
        hypervisors: request.arch.hypervisors().iter().map(|h| h.to_string()).collect(),
        platform: "none".to_string(),
        rustc: rustc_version(&rustc)?,
        vigil_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    Ok(BuiltGuard { elf, measurements })
}

/// `measurements.json` text (pretty JSON with a final newline).
pub fn measurements_json(measurements: &Measurements) -> String {
    let mut json = serde_json::to_string_pretty(measurements).unwrap_or_default();
    json.push('\n');
    json
}

/// File name of the image in an output directory.
pub fn image_file_name() -> &'static str {
    "vigil-guard.elf"
}

/// Writes `vigil-guard.elf` and `measurements.json` to `out_dir`, each
/// through a temporary file and a rename (never a half-written file).
pub fn write_outputs(built: &BuiltGuard, out_dir: &Path) -> Result<(PathBuf, PathBuf)> {
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let elf_path = out_dir.join(image_file_name());
    let json_path = out_dir.join("measurements.json");
    let json = measurements_json(&built.measurements);
    write_atomically(&elf_path, &built.elf)?;
    write_atomically(&json_path, json.as_bytes())?;
    Ok((elf_path, json_path))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// The default output directory: `<target>/guard/<arch>[-test-hooks]`.
pub fn default_out_dir(target_root: &Path, arch: Arch, test_hooks: bool) -> PathBuf {
    let name = if test_hooks { format!("{arch}-test-hooks") } else { arch.to_string() };
    target_root.join("guard").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambient_flags_are_scrubbed_but_cargo_home_is_kept() {
        for key in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "RUSTC_WORKSPACE_WRAPPER", "CARGO_TARGET_DIR", "OUT_DIR"] {
            assert!(is_ambient(key), "{key}");
        }
        for key in ["CARGO_HOME", "PATH", "RUSTUP_TOOLCHAIN", "HOME"] {
            assert!(!is_ambient(key), "{key}");
        }
    }

    #[test]
    fn flags_remap_the_workspace_and_mark_the_guest_build() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let flags = rustflags(arch, Path::new("/src/vigil"));
            assert!(flags.contains(&"--remap-path-prefix=/src/vigil=/vigil".to_string()));
            assert!(flags.windows(2).any(|w| w == ["--cfg", "vigil_guest"]), "{arch}");
            // Poly1305's portable back end, as the host's, and on x86_64
            // ChaCha20's (both faster for the channel's short records) and
            // curve25519-dalek's serial one (no CPUID exits to choose);
            // every other crypto crate chooses at run time.
            let backends: Vec<&String> = flags.iter().filter(|f| f.contains("backend")).collect();
            match arch {
                Arch::X86_64 => assert_eq!(
                    backends,
                    ["poly1305_backend=\"soft\"", "chacha20_backend=\"soft\"", "curve25519_dalek_backend=\"serial\""]
                ),
                Arch::Aarch64 => assert_eq!(backends, ["poly1305_backend=\"soft\""]),
            }
        }
        assert!(rustflags(Arch::X86_64, Path::new("/w")).contains(&"-Clinker=rust-lld".to_string()));
    }
}
