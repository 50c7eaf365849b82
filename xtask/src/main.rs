//! `cargo xtask`: Vigil's build tasks.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};
use xtask::guard_build::{self, Arch, GuardBuild};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Vigil build tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the guard unikernel reproducibly and write
    /// target/guard/<arch>/{vigil-guard.elf,measurements.json}.
    BuildGuard {
        /// Guest architecture.
        #[arg(long, value_enum, default_value = "x86_64")]
        arch: Arch,
        /// Build the test-hooks variant (extra request kinds for tests; never
        /// deploy it). Written to target/guard/<arch>-test-hooks/.
        #[arg(long)]
        test_hooks: bool,
        /// Output directory (default: target/guard/<arch>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the measurements as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run the aarch64 guard under a real KVM-arm64 inside QEMU: build
    /// vigil for aarch64-linux-musl, fetch Debian's arm64 kernel and
    /// busybox, boot them, and inside judge the whole corpus through an
    /// attested aarch64 guard (its records must equal x86_64 in-process
    /// evaluation byte for byte) and run the boot and fault tests.
    Arm64Vm {
        /// Skip the boot and fault tests.
        #[arg(long)]
        no_tests: bool,
        /// Also run `vigil bench` (small counts; emulated timings).
        #[arg(long)]
        bench: bool,
    },
    /// Check that crates depend only on the layers below them, that no
    /// crate has a module cycle, and that host modules import only their
    /// own layer or lower (docs/design.md, "Layers").
    CheckLayers,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn target_root(workspace: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Task::BuildGuard { arch, test_hooks, out, json } => {
            let workspace = workspace_root();
            let target = target_root(&workspace);
            let built = guard_build::build(&GuardBuild {
                arch,
                test_hooks,
                workspace: workspace.clone(),
                target_dir: target.join("guard-build"),
            })?;
            let out = out.unwrap_or_else(|| guard_build::default_out_dir(&target, arch, test_hooks));
            let (elf, measurements) = guard_build::write_outputs(&built, &out)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&built.measurements)?);
            } else {
                println!("image         {}", elf.display());
                println!("measurements  {}", measurements.display());
                println!("sha384        {}", built.measurements.image_sha384);
                println!("size          {} bytes", built.measurements.image_size);
            }
        }
        Task::Arm64Vm { no_tests, bench } => {
            let workspace = workspace_root();
            let options =
                xtask::arm64_vm::Options { target: target_root(&workspace), workspace, tests: !no_tests, bench };
            match xtask::arm64_vm::run_vm(&options)? {
                xtask::arm64_vm::Outcome::Skipped(reason) => {
                    anyhow::bail!("the arm64 VM cannot run here: {reason}")
                }
                xtask::arm64_vm::Outcome::Ran(report) => {
                    println!("arm64 VM          {:.1} s (QEMU-emulated arm64, KVM inside)", report.vm_seconds);
                    println!(
                        "verdict records   {} of {} equal to x86_64 in-process (vigil policy records rc {:?})",
                        report.expected - report.mismatches.len().min(report.expected),
                        report.expected,
                        report.records_rc
                    );
                    for m in report.mismatches.iter().take(20) {
                        println!("  MISMATCH {m}");
                    }
                    println!(
                        "vigil doctor      rc {:?}: {}",
                        report.doctor_rc,
                        report.doctor_guard.as_deref().unwrap_or("no guard line")
                    );
                    if let Some(summary) = &report.tests_summary {
                        println!("boot/fault tests  {summary}");
                    }
                    println!(
                        "cost verify       rc {:?} (vigil eval --judge vm, then vigil cost verify)",
                        report.cost_verify_rc
                    );
                    println!("cost record       {}", report.cost_record.as_deref().unwrap_or("none exported"));
                    if let Some(bench) = &report.bench {
                        println!("vigil bench inside the VM (emulated CPU: correctness, not speed):\n{bench}");
                    }
                    println!("console           {}", report.console.display());
                    if !report.passed(&options) {
                        anyhow::bail!("the arm64 VM run failed (see the console file)");
                    }
                }
            }
        }
        Task::CheckLayers => {
            let problems = xtask::layers::check(&workspace_root())?;
            if !problems.is_empty() {
                for p in &problems {
                    eprintln!("layers: {p}");
                }
                anyhow::bail!("{} layering problems (see docs/design.md, \"Layers\")", problems.len());
            }
            println!("layers: ok — crates point one way, no module cycles, host modules point down");
        }
    }
    Ok(())
}
