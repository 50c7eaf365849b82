//! The `vigil` command line, run as a user would.

use std::io::Write;
use std::process::{Command, Output};

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil")).args(args).output().expect("run vigil")
}

fn kvm_or_skip(test: &str) -> bool {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => true,
        Err(err) => {
            let _ = std::io::stderr().write_all(format!("\n*** {test}: SKIPPED (no /dev/kvm: {err}) ***\n").as_bytes());
            false
        }
    }
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout)))
}

#[test]
fn doctor_boots_the_embedded_guard() {
    if !kvm_or_skip("doctor_boots_the_embedded_guard") {
        return;
    }
    let output = vigil(&["doctor", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = json(&output);
    assert_eq!(report["ok"], true);
    assert_eq!(report["kvm"]["ok"], true);
    assert_eq!(report["guard_report"]["info"]["privilege"], 3);
    assert_eq!(report["guard_report"]["image"]["origin"], "embedded");
    assert!(report["guard_report"]["cold_boot_us"].as_f64().unwrap() > 0.0);
    assert!(report["pmu"]["detail"].is_string());

    let text = vigil(&["doctor"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("all checks passed") && text.contains("cold boot"), "{text}");
}

#[test]
fn doctor_reports_a_bad_guard_image() {
    if !kvm_or_skip("doctor_reports_a_bad_guard_image") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vigil-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.elf");
    std::fs::write(&bad, b"\x7fELF this is not a guard").unwrap();
    let output = vigil(&["--guard-image", bad.to_str().unwrap(), "doctor", "--json"]);
    assert!(!output.status.success());
    let report = json(&output);
    assert_eq!(report["ok"], false);
    let detail = report["guard"]["detail"].as_str().unwrap();
    assert!(detail.contains("not a guard image") && detail.contains("bad.elf"), "{detail}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_guard_image_is_a_clear_error() {
    let output = vigil(&["--guard-image", "/nonexistent/guard.elf", "bench", "--boots", "1"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/guard.elf") && stderr.contains("--guard-image"), "{stderr}");
}

#[test]
fn bench_prints_every_figure() {
    if !kvm_or_skip("bench_prints_every_figure") {
        return;
    }
    let output = vigil(&["bench", "--boots", "3", "--pings", "200", "--wakes", "3", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = json(&output);
    for key in ["cold_start_p50_us", "cold_start_p99_us", "wake_p50_us", "wake_p99_us", "guest_memory_bytes"] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key}");
    }
    let ping = report["ping"].as_array().unwrap();
    assert_eq!(ping.len(), 2);
    assert_eq!(ping[1]["payload"], 4096);
    assert!(ping[0]["per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_arguments_are_refused() {
    let output = vigil(&["bench", "--boots", "0"]);
    assert!(!output.status.success());
    let output = vigil(&["no-such-command"]);
    assert!(!output.status.success());
    let help = vigil(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("doctor") && help.contains("bench"), "{help}");
}
