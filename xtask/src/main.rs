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
