//! `cargo xtask arm64-vm`: the aarch64 guard under a real KVM-arm64, on an
//! x86_64 machine. QEMU emulates an arm64 machine with virtualisation
//! (`-M virt,virtualization=on -cpu max`); Debian's arm64 cloud kernel
//! runs KVM in it; inside, `vigil` (built for aarch64-linux-musl, with the
//! aarch64 guard image embedded) boots the guard, verifies its evidence,
//! opens the channel and judges the whole corpus, and the boot and fault
//! tests run against the aarch64 guard. The verdict records must equal the
//! x86_64 in-process ones (`tests/corpus/verdict-records.txt`) byte for
//! byte.
//!
//! Timings inside are those of an emulated CPU: correctness, not speed.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The Rust target `vigil` is built for to run in the VM.
pub const TARGET: &str = "aarch64-unknown-linux-musl";

/// The Debian packages fetched (architecture arm64).
const KERNEL_PACKAGE: &str = "linux-image-cloud-arm64:arm64";
const BUSYBOX_PACKAGE: &str = "busybox-static:arm64";

/// How long the whole VM run may take.
const VM_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// What to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// The workspace root.
    pub workspace: PathBuf,
    /// The target directory root (`target/`); work goes to `arm64-vm/`.
    pub target: PathBuf,
    /// Also run the boot and fault tests inside the VM.
    pub tests: bool,
    /// Also run `vigil bench` (small counts) inside the VM.
    pub bench: bool,
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// It ran; the report says what passed.
    Ran(Report),
    /// It could not run here, and why (no QEMU, no packages).
    Skipped(String),
}

/// What the VM run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Verdict records the guard gave.
    pub records: usize,
    /// Verdict records expected (the x86_64 in-process ones).
    pub expected: usize,
    /// Cases whose record differs, is missing or is extra.
    pub mismatches: Vec<String>,
    /// Exit code of `vigil policy records` in the VM.
    pub records_rc: Option<i32>,
    /// Exit code of the boot and fault tests in the VM (when run).
    pub tests_rc: Option<i32>,
    /// The test harness's summary line.
    pub tests_summary: Option<String>,
    /// Exit code of `vigil doctor` in the VM, and its guard line.
    pub doctor_rc: Option<i32>,
    /// The doctor's line about the guard it booted.
    pub doctor_guard: Option<String>,
    /// Exit code of `vigil cost verify` over the journal of a `vigil eval
    /// --judge vm` run in the VM.
    pub cost_verify_rc: Option<i32>,
    /// That journal's first cost record (JSON), as exported.
    pub cost_record: Option<String>,
    /// `vigil bench` output in the VM (when run).
    pub bench: Option<String>,
    /// Wall time of the VM run.
    pub vm_seconds: f64,
    /// Where the whole console output was written.
    pub console: PathBuf,
}

impl Report {
    /// Whether everything asked for passed.
    pub fn passed(&self, options: &Options) -> bool {
        self.records_rc == Some(0)
            && self.doctor_rc == Some(0)
            && self.cost_verify_rc == Some(0)
            && self.records == self.expected
            && self.mismatches.is_empty()
            && (!options.tests || self.tests_rc == Some(0))
    }
}

fn run(command: &mut Command, what: &str) -> Result<()> {
    let status = command.status().with_context(|| format!("{what}: could not start"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn output(command: &mut Command, what: &str) -> Result<String> {
    let out = command.output().with_context(|| format!("{what}: could not start"))?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn have(program: &str) -> bool {
    Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// The kernel image and busybox, from Debian's arm64 packages (fetched
/// once into `dir`, then reused). `Err(reason)` when they cannot be had.
fn packages(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let root = dir.join("root");
    let busybox = root.join("bin/busybox");
    let find_kernel = || -> Option<PathBuf> {
        std::fs::read_dir(root.join("boot"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))
    };
    if let Some(kernel) = find_kernel()
        && busybox.exists()
    {
        return Ok((kernel, busybox));
    }
    if !have("apt-get") || !have("dpkg-deb") {
        return Err("apt-get and dpkg-deb are needed to fetch Debian's arm64 kernel and busybox".into());
    }
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("creating {}: {e}", debs.display()))?;
    let foreign = output(Command::new("dpkg").arg("--print-foreign-architectures"), "dpkg").unwrap_or_default();
    if !foreign.lines().any(|a| a.trim() == "arm64") {
        let setup = run(Command::new("dpkg").args(["--add-architecture", "arm64"]), "dpkg --add-architecture arm64")
            .and_then(|()| run(Command::new("apt-get").args(["update", "-q"]).stdout(Stdio::null()), "apt-get update"));
        if let Err(e) = setup {
            return Err(format!(
                "{e:#} (as root: `dpkg --add-architecture arm64 && apt-get update`, then run this again)"
            ));
        }
    }
    // apt's own warnings (it downloads as root, not as `_apt`) are noise:
    // its output is shown only when it fails.
    let download = |package: &str| {
        output(Command::new("apt-get").args(["download", "-q", package]).current_dir(&debs), package)
            .map(|_| ())
            .map_err(|e| format!("{e:#}: the arm64 packages cannot be fetched here"))
    };
    download(KERNEL_PACKAGE)?;
    download(BUSYBOX_PACKAGE)?;
    let debs_named = |prefix: &str| -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&debs)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    };
    // The meta package depends on the versioned image package.
    let meta = debs_named("linux-image-cloud-arm64_").pop().ok_or("the kernel meta package did not download")?;
    let depends = output(Command::new("dpkg-deb").arg("-f").arg(&meta).arg("Depends"), "dpkg-deb -f")
        .map_err(|e| format!("{e:#}"))?;
    let image = depends
        .split([',', '|'])
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .find(|d| d.starts_with("linux-image-") && d.ends_with("-cloud-arm64"))
        .ok_or_else(|| format!("no versioned kernel in the meta package's Depends: {depends}"))?
        .to_string();
    download(&format!("{image}:arm64"))?;
    for deb in debs_named(&format!("{image}_")).into_iter().chain(debs_named("busybox-static_")) {
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root), "dpkg-deb -x").map_err(|e| format!("{e:#}"))?;
    }
    match (find_kernel(), busybox.exists()) {
        (Some(kernel), true) => Ok((kernel, busybox)),
        _ => Err("the packages did not hold a kernel image and busybox".into()),
    }
}

/// Adds the Rust target when rustup has not installed it.
fn ensure_rust_target() -> Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]), "rustup target list")?;
    if !installed.lines().any(|t| t.trim() == TARGET) {
        run(Command::new("rustup").args(["target", "add", TARGET]), "rustup target add aarch64-unknown-linux-musl")?;
    }
    Ok(())
}

/// `cargo SUBCOMMAND… --target aarch64-unknown-linux-musl --release
/// --locked --target-dir BUILD_DIR`, linked with rust-lld (statically).
fn cargo(workspace: &Path, build_dir: &Path, subcommand: &[&str]) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(workspace)
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .args(subcommand)
        .args(["--quiet", "--target", TARGET, "--release", "--locked", "--target-dir"])
        .arg(build_dir);
    command
}

/// Builds `vigil` and (with `tests`) the boot-test binary for aarch64.
fn build(options: &Options, build_dir: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    ensure_rust_target()?;
    run(
        &mut cargo(&options.workspace, build_dir, &["build", "-p", "vigil"]),
        "building vigil for aarch64-unknown-linux-musl",
    )?;
    let vigil = build_dir.join(TARGET).join("release/vigil");
    if !options.tests {
        return Ok((vigil, None));
    }
    let mut tests = cargo(
        &options.workspace,
        build_dir,
        &["test", "-p", "vigil-tests", "--test", "boot", "--no-run", "--message-format=json"],
    );
    let messages = output(&mut tests, "building the boot tests for aarch64-unknown-linux-musl")?;
    let binary = messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "boot")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo did not name the boot test binary")?;
    Ok((vigil, Some(binary)))
}

/// The corpus case files (`tests/corpus`, subdirectories included), sorted.
pub fn corpus_files(workspace: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![workspace.join("tests/corpus")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The script the VM runs as `/init`; its markers are what [`parse`] reads.
fn init_script(options: &Options) -> String {
    let mut script = String::from(
        "#!/bin/busybox sh\n\
         /bin/busybox mount -t proc proc /proc\n\
         /bin/busybox mount -t sysfs sys /sys\n\
         /bin/busybox mount -t devtmpfs dev /dev\n\
         export HOME=/tmp\n\
         echo \"@@VIGIL kvm $(/bin/busybox ls /dev/kvm 2>&1)\"\n\
         /bin/vigil init --dir /tmp/keys >/tmp/init.log 2>&1 || /bin/busybox cat /tmp/init.log\n\
         echo \"@@VIGIL doctor begin\"\n\
         /bin/vigil --guard-deadline-ms 120000 doctor 2>&1\n\
         echo \"@@VIGIL doctor end rc=$?\"\n\
         /bin/vigil --guard-deadline-ms 120000 policy records --judge vm --dir /tmp/keys --cases /corpus/*.jsonl >/tmp/records.txt 2>/tmp/records.err\n\
         rc=$?\n\
         echo \"@@VIGIL records begin\"\n\
         /bin/busybox cat /tmp/records.txt\n\
         echo \"@@VIGIL records end rc=$rc\"\n\
         /bin/busybox cat /tmp/records.err\n\
         /bin/vigil --guard-deadline-ms 120000 eval --no-daemon --judge vm --dir /tmp/keys --in /corpus/000.jsonl >/dev/null 2>/tmp/eval.err || /bin/busybox cat /tmp/eval.err\n\
         echo \"@@VIGIL cost begin\"\n\
         /bin/vigil journal export /tmp/keys/journal/vigil.vgj --dir /tmp/keys 2>/dev/null | /bin/busybox grep '\"kind\":\"cost\"' | /bin/busybox head -n 1\n\
         /bin/vigil cost verify /tmp/keys/journal/vigil.vgj --trust /tmp/keys/cost.pub --dir /tmp/keys 2>&1\n\
         echo \"@@VIGIL cost end rc=$?\"\n",
    );
    if options.bench {
        script.push_str(
            "echo \"@@VIGIL bench begin\"\n\
             /bin/vigil --guard-deadline-ms 120000 bench --boots 5 --pings 2000 --wakes 10 --attested-starts 3 --round-trips 500 --batch-verdicts 5000 --no-journal 2>/dev/null\n\
             echo \"@@VIGIL bench end rc=$?\"\n",
        );
    }
    if options.tests {
        script.push_str(
            "echo \"@@VIGIL tests begin\"\n\
             VIGIL_TEST_DEADLINE_SECS=120 /bin/boot-tests --test-threads=1 2>&1\n\
             echo \"@@VIGIL tests end rc=$?\"\n",
        );
    }
    script.push_str("/bin/busybox poweroff -f\n");
    script
}

/// Writes the initramfs (an uncompressed `newc` cpio archive).
fn initramfs(path: &Path, files: &[(String, Vec<u8>, u32)]) -> Result<()> {
    let mut inputs = Vec::new();
    for dir in ["bin", "dev", "proc", "sys", "tmp", "corpus"] {
        inputs.push((cpio::NewcBuilder::new(dir).mode(0o040_755), std::io::Cursor::new(Vec::new())));
    }
    for (name, bytes, mode) in files {
        inputs.push((cpio::NewcBuilder::new(name).mode(0o100_000 | mode), std::io::Cursor::new(bytes.clone())));
    }
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = cpio::write_cpio(inputs.into_iter(), std::io::BufWriter::new(file))?;
    out.flush()?;
    Ok(())
}

/// The lines between `@@VIGIL NAME begin` and `@@VIGIL NAME end rc=N`,
/// and N.
fn section<'a>(console: &'a str, name: &str) -> (Vec<&'a str>, Option<i32>) {
    let begin = format!("@@VIGIL {name} begin");
    let end = format!("@@VIGIL {name} end rc=");
    let mut inside = false;
    let mut lines = Vec::new();
    for line in console.lines() {
        let line = line.trim_end_matches('\r');
        if line == begin {
            inside = true;
        } else if let Some(rc) = line.strip_prefix(&end) {
            return (lines, rc.trim().parse().ok());
        } else if inside {
            lines.push(line);
        }
    }
    (lines, None)
}

/// Compares the records the VM printed with the expected ones (NAME TAB
/// HEX per line).
fn compare(got: &[&str], expected: &str) -> (usize, usize, Vec<String>) {
    let parse = |lines: &mut dyn Iterator<Item = &str>| -> BTreeMap<String, String> {
        lines.filter_map(|l| l.split_once('\t')).map(|(name, hex)| (name.to_string(), hex.trim().to_string())).collect()
    };
    let got_map = parse(&mut got.iter().copied());
    let want_map = parse(&mut expected.lines());
    let mut mismatches = Vec::new();
    for (name, want) in &want_map {
        match got_map.get(name) {
            Some(got) if got == want => {}
            Some(got) => mismatches.push(format!("{name}: x86_64 in process {want}, aarch64 guard {got}")),
            None => mismatches.push(format!("{name}: no record from the aarch64 guard")),
        }
    }
    for name in got_map.keys().filter(|n| !want_map.contains_key(*n)) {
        mismatches.push(format!("{name}: a record nobody expected"));
    }
    (got_map.len(), want_map.len(), mismatches)
}

/// Runs everything. `Ok(Outcome::Skipped)` when QEMU or the packages
/// cannot be had here; `Err` when something that should work failed.
pub fn run_vm(options: &Options) -> Result<Outcome> {
    if !have("qemu-system-aarch64") {
        return Ok(Outcome::Skipped("qemu-system-aarch64 is not installed: apt-get install qemu-system-arm".into()));
    }
    let work = options.target.join("arm64-vm");
    std::fs::create_dir_all(&work)?;
    let (kernel, busybox) = match packages(&work.join("debian")) {
        Ok(found) => found,
        Err(reason) => return Ok(Outcome::Skipped(reason)),
    };
    let (vigil, tests) = build(options, &work.join("build"))?;
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let mut files = vec![
        ("init".to_string(), init_script(options).into_bytes(), 0o755),
        ("bin/busybox".to_string(), read(&busybox)?, 0o755),
        ("bin/vigil".to_string(), read(&vigil)?, 0o755),
    ];
    if let Some(tests) = &tests {
        files.push(("bin/boot-tests".to_string(), read(tests)?, 0o755));
    }
    for (i, file) in corpus_files(&options.workspace)?.iter().enumerate() {
        files.push((format!("corpus/{i:03}.jsonl"), read(file)?, 0o644));
    }
    let initrd = work.join("initramfs.cpio");
    initramfs(&initrd, &files)?;

    let started = Instant::now();
    let mut child = Command::new("qemu-system-aarch64")
        .args(["-M", "virt,virtualization=on,gic-version=3", "-cpu", "max", "-smp", "2", "-m", "1024"])
        .args(["-nographic", "-nic", "none", "-no-reboot", "-kernel"])
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyAMA0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-aarch64")?;
    let mut stdout = child.stdout.take().context("qemu's output")?;
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut all);
        all
    });
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > VM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the arm64 VM did not finish within {} minutes", VM_TIMEOUT.as_secs() / 60);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let console_bytes = reader.join().unwrap_or_default();
    let console = String::from_utf8_lossy(&console_bytes).into_owned();
    let console_path = work.join("console.txt");
    std::fs::write(&console_path, &console)?;

    let expected = std::fs::read_to_string(options.workspace.join("tests/corpus/verdict-records.txt"))?;
    let (records, records_rc) = section(&console, "records");
    let (got, want, mismatches) = compare(&records, &expected);
    let (test_lines, tests_rc) = section(&console, "tests");
    let (bench, _) = section(&console, "bench");
    let (doctor, doctor_rc) = section(&console, "doctor");
    let (cost, cost_verify_rc) = section(&console, "cost");
    Ok(Outcome::Ran(Report {
        cost_verify_rc,
        cost_record: cost.iter().find(|l| l.trim_start().starts_with('{')).map(|l| l.trim().to_string()),
        records: got,
        expected: want,
        mismatches,
        records_rc,
        tests_rc,
        doctor_rc,
        doctor_guard: doctor.iter().find(|l| l.contains("booted guard")).map(|l| l.trim().to_string()),
        tests_summary: test_lines.iter().rev().find(|l| l.starts_with("test result:")).map(|l| l.to_string()),
        bench: options.bench.then(|| bench.join("\n")),
        vm_seconds: started.elapsed().as_secs_f64(),
        console: console_path,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_records_are_read_from_the_console() {
        let console = "noise\n@@VIGIL records begin\r\na\t0102\r\nb\t03\n@@VIGIL records end rc=0\n";
        let (lines, rc) = section(console, "records");
        assert_eq!((lines.clone(), rc), (vec!["a\t0102", "b\t03"], Some(0)));
        let (got, want, bad) = compare(&lines, "a\t0102\nb\t04\nc\t05\n");
        assert_eq!((got, want), (2, 3));
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].starts_with("b:") && bad[1].starts_with("c:"), "{bad:?}");
        // A section that never ends has no exit code.
        assert_eq!(section("@@VIGIL tests begin\nx\n", "tests").1, None);
    }
}
