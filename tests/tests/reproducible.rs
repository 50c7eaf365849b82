//! Two guard builds of the same source — in two different directories, with
//! cold caches — give the same bytes and the same SHA-384.

use std::path::{Path, PathBuf};
use std::{env, fs};

use xtask::guard_build::{self, Arch, GuardBuild};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Copies the source tree (without build output or VCS data).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

fn build_in(root: &Path, arch: Arch) -> guard_build::BuiltGuard {
    let source = root.join("src");
    if !source.exists() {
        copy_tree(&workspace(), &source);
    }
    guard_build::build(&GuardBuild {
        arch,
        test_hooks: false,
        workspace: source.clone(),
        target_dir: root.join("target"),
    })
    .expect("guard build")
}

#[test]
fn two_builds_in_different_directories_are_identical() {
    let scratch = env::temp_dir().join(format!("vigil-repro-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let a = build_in(&scratch.join("first-build"), arch);
        let b = build_in(&scratch.join("second/build/elsewhere"), arch);
        assert_eq!(a.measurements.image_sha384, b.measurements.image_sha384, "{}", arch.name());
        assert!(a.elf == b.elf, "{} images differ", arch.name());
        assert_eq!(a.measurements.arch, arch);
        // No build path leaks into the image.
        let text = String::from_utf8_lossy(&a.elf);
        assert!(!text.contains(scratch.to_str().unwrap()), "build path in image");
        assert!(!text.contains("/root/") && !text.contains("/home/"), "home path in image");
        // The embedded image (the host's architecture) is the same build.
        if arch.name() == vigil::vmm::GuestArch::HOST.name() {
            assert_eq!(a.elf, vigil::guard_image::production(), "embedded image differs from a fresh build");
        }
    }
    let _ = fs::remove_dir_all(&scratch);
}
