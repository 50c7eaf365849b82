//! The `vigil` command line, run as a user would.

use std::io::Write;
use std::process::{Command, Output};

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil")).args(args).output().expect("run vigil")
}

/// A key directory shared by the tests that only need keys (initialised
/// once).
fn shared_keys() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("shared-keys");
        let out = vigil(&["init", "--dir", dir.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        dir
    })
}

/// `vigil eval --judge inproc ARGS` with the shared keys and a journal of
/// its own (tests run in parallel; a journal has one writer).
fn eval_inproc(args: &[&str]) -> Output {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let journal = shared_keys().join(format!("journal/eval-{n}.vgj"));
    let mut all = vec!["eval", "--judge", "inproc", "--dir", shared_keys().to_str().unwrap()];
    all.extend(["--journal", journal.to_str().unwrap()]);
    all.extend(args);
    vigil(&all)
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
    let output = vigil(&[
        "bench",
        "--boots",
        "3",
        "--pings",
        "200",
        "--wakes",
        "3",
        "--attested-starts",
        "2",
        "--round-trips",
        "300",
        "--batch-verdicts",
        "512",
        "--journal-records",
        "2000",
        "--json",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = json(&output);
    for key in [
        "cold_start_p50_us",
        "cold_start_p99_us",
        "cold_start_vm_made_p50_us",
        "cold_start_guest_p50_us",
        "wake_p50_us",
        "wake_p99_us",
        "guest_memory_bytes",
    ] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key}");
    }
    let ping = report["ping"].as_array().unwrap();
    assert_eq!(ping.len(), 2);
    assert_eq!(ping[1]["payload"], 4096);
    assert!(ping[0]["per_second"].as_f64().unwrap() > 0.0);
    let judge = &report["judge"];
    for key in [
        "evidence_sign_p50_us",
        "evidence_verify_p50_us",
        "cold_start_attested_p50_us",
        "vm_round_trip_p50_us",
        "vm_round_trip_p99_us",
        "inproc_p50_us",
        "vm_to_inproc_ratio",
    ] {
        assert!(judge[key].as_f64().unwrap() > 0.0, "{key}: {judge}");
    }
    // The round trip's parts, where its time goes.
    let parts = &judge["vm_round_trip_parts_p50_us"];
    for key in ["host_seal", "guard", "host_open", "host_check"] {
        assert!(parts[key].as_f64().unwrap() > 0.0, "{key}: {parts}");
    }
    let batches: Vec<u64> = judge["batches"].as_array().unwrap().iter().map(|b| b["batch"].as_u64().unwrap()).collect();
    assert_eq!(batches, [1, 16, 256]);
    for batch in judge["batches"].as_array().unwrap() {
        assert!(batch["host_us_per_verdict"].as_f64().unwrap() > 0.0, "{batch}");
        assert!(batch.get("guard_channel_and_mailbox_us_per_verdict").is_some(), "{batch}");
    }
    let journal = &report["journal"];
    for key in [
        "append_per_second",
        "ack_p50_us",
        "ack_p99_us",
        "verify_per_second",
        "reopen_ms",
        "decrypt_per_second",
        "replay_per_second",
    ] {
        assert!(journal[key].as_f64().unwrap() > 0.0, "{key}: {journal}");
    }
    assert_eq!(journal["records"], 2000);
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

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn eval_judges_with_the_default_pack() {
    let intent = r#"{"id":9,"agent":"a","tool":"shell","args":{"command":"'r''m' -rf ~"},"cwd":"/home/dev/p"}"#;
    let output = eval_inproc(&["--intent", intent, "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let verdict = json(&output);
    assert_eq!(verdict["id"], 9);
    assert_eq!(verdict["decision"], "DENY");
    // The tripwire sees first that the deletion reaches the protected
    // paths inside the home; the rule on deleting a home matches too.
    assert_eq!((verdict["stage"].as_str(), verdict["reason"].as_str()), (Some("tripwire"), Some("path_rule")));
    assert!(verdict["matched"].as_array().unwrap().iter().any(|r| r == "fs.rm-recursive-critical"), "{verdict}");

    let benign = r#"{"id":10,"agent":"a","tool":"shell","args":{"command":"cargo test"},"cwd":"/home/dev/p"}"#;
    let verdict = json(&eval_inproc(&["--intent", benign, "--json"]));
    assert_eq!(verdict["decision"], "ALLOW");

    // A malformed intent is judged DENY, not an error.
    let verdict = json(&eval_inproc(&["--intent", r#"{"id":11,"tool":"shell"}"#, "--json"]));
    assert_eq!((verdict["decision"].as_str(), verdict["reason"].as_str()), (Some("DENY"), Some("malformed")));

    // Input that is not JSON is a usage error.
    let output = eval_inproc(&["--intent", "not json"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not valid JSON"));
}

#[test]
fn a_malformed_intent_says_what_was_refused_in_words() {
    for (intent, says) in [
        (r#"{"id":5,"agent":"a","tool":"shell"}"#, "missing_field: the required field `args` is missing"),
        (r#"{"id":5,"agent":"a","tool":"","args":{}}"#, "empty_tool: `tool` is empty"),
    ] {
        let output = eval_inproc(&["--json", "--intent", intent]);
        let v = json(&output);
        assert_eq!((v["decision"].as_str(), v["reason"].as_str()), (Some("DENY"), Some("malformed")), "{v}");
        assert_eq!(v["detail"].as_str(), Some(says), "{v}");
    }
}

#[test]
fn policy_compile_check_test_and_bad_input() {
    let dir = scratch("policy");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default.toml");
    let bundle = dir.join("default.vgp");
    let output = vigil(&["policy", "compile", source.to_str().unwrap(), "-o", bundle.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = json(&output);
    let bytes = std::fs::read(&bundle).unwrap();
    assert_eq!(summary["sha384"].as_str().unwrap(), hex::encode(vigil_attest::measure(&bytes)));
    assert!(!summary["dfas"].as_array().unwrap().is_empty());
    // The default pack is within the on-chip budget; the report says so.
    assert_eq!(summary["on_chip_budget"], ON_CHIP_BUDGET);
    assert_eq!(summary["bytes"].as_u64().unwrap(), bytes.len() as u64);
    assert!(bytes.len() <= ON_CHIP_BUDGET);
    assert_eq!(summary["fits_on_chip"], true);

    let intent = r#"{"id":1,"agent":"a","tool":"http","args":{"url":"http://169.254.169.254/latest/meta-data"}}"#;
    // The key directory pins its policy key: an unsigned bundle is refused,
    // saying how to sign it; signed, it runs.
    let output = eval_inproc(&["--policy", bundle.to_str().unwrap(), "--intent", intent, "--json"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("vigil policy sign"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let keys = shared_keys().to_str().unwrap();
    let signed = dir.join("signed.vgp");
    let output = vigil(&["policy", "sign", bundle.to_str().unwrap(), "-o", signed.to_str().unwrap(), "--dir", keys]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let verdict = json(&eval_inproc(&["--policy", signed.to_str().unwrap(), "--intent", intent, "--json"]));
    assert_eq!(verdict["decision"], "DENY");
    // TOML source cannot carry a signature: the advice is to compile and
    // sign it, not to sign the TOML.
    let output = eval_inproc(&["--policy", source.to_str().unwrap(), "--intent", intent]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("vigil policy compile") && stderr.contains("--sign") && !stderr.contains("policy sign "),
        "{stderr}"
    );

    // A corrupted bundle is refused with a clear error.
    let mut corrupt = bytes.clone();
    let at = corrupt.len() / 2;
    corrupt.truncate(at);
    let bad_bundle = dir.join("corrupt.vgp");
    std::fs::write(&bad_bundle, &corrupt).unwrap();
    let output = eval_inproc(&["--policy", bad_bundle.to_str().unwrap(), "--intent", intent]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid policy bundle"));

    // Compile errors name the file, the line and the rule; nothing is written.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "version = 1\nname = \"x\"\n[[rules]]\nid = \"oops\"\nclass = \"command\"\npattern = '(x'\ndecision = \"deny\"\nreason = \"r\"\n").unwrap();
    let out_file = dir.join("bad.vgp");
    let output = vigil(&["policy", "compile", bad.to_str().unwrap(), "-o", out_file.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml:3: rule `oops`"), "{stderr}");
    assert!(!out_file.exists(), "a failed compile must not write output");
    assert!(!vigil(&["policy", "check", bad.to_str().unwrap()]).status.success());

    // An output naming the source is refused: the TOML stays.
    let own = dir.join("own.toml");
    std::fs::copy(&source, &own).unwrap();
    let output = vigil(&["policy", "compile", own.to_str().unwrap(), "-o", own.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is also the input"));
    assert_eq!(std::fs::read(&own).unwrap(), std::fs::read(&source).unwrap());

    // Cases: one passes, one fails -> exit 1 with a table.
    let cases = dir.join("cases.jsonl");
    std::fs::write(
        &cases,
        concat!(
            r#"{"name":"ok","expect":"DENY","intent":{"id":1,"agent":"a","tool":"shell","args":{"command":"rm -rf /"},"cwd":"/w"}}"#,
            "\n",
            r#"{"name":"wrong","expect":"ALLOW","intent":{"id":2,"agent":"a","tool":"shell","args":{"command":"nmap 10.0.0.1"},"cwd":"/w"}}"#,
            "\n"
        ),
    )
    .unwrap();
    let output = vigil(&["policy", "test", source.to_str().unwrap(), "--cases", cases.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("wrong") && stdout.contains("1 failed"), "{stdout}");
    // No case at all tests nothing: an error, not a pass.
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let output = vigil(&["policy", "test", source.to_str().unwrap(), "--cases", empty.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing was tested"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn init_creates_private_keys_once_and_keys_show_checks_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("init");
    let keys = dir.join("keys");
    let d = keys.to_str().unwrap();
    let output = vigil(&["init", "--dir", d, "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(json(&output)["created"], true);
    for (file, mode) in [("platform.key", 0o600), ("cost.key", 0o600), ("journal.key", 0o600), ("platform.pub", 0o644)]
    {
        let m = std::fs::metadata(keys.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, mode, "{file}");
    }
    assert_eq!(std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o700);
    let before = std::fs::read(keys.join("platform.key")).unwrap();

    // Twice: nothing changes, and it says so.
    let output = vigil(&["init", "--dir", d]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("nothing was changed"));
    assert_eq!(std::fs::read(keys.join("platform.key")).unwrap(), before);

    // The public key set is a COSE_KeySet the secret key matches.
    let shown = json(&vigil(&["keys", "show", "--dir", d, "--json"]));
    assert_eq!(shown[0]["name"], "platform");
    assert_eq!(shown[0]["secret_matches"], true);
    let public = vigil::keys::read_cose_key_set(&std::fs::read(keys.join("platform.pub")).unwrap()).unwrap();
    assert_eq!(shown[0]["fingerprint"].as_str().unwrap(), hex::encode(public.fingerprint()));
    // VIGIL_DIR is honoured.
    let via_env = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["keys", "show", "--json"])
        .env("VIGIL_DIR", d)
        .output()
        .unwrap();
    assert_eq!(json(&via_env)[0]["fingerprint"], shown[0]["fingerprint"]);

    // A secret readable by others is refused with the chmod that fixes it.
    std::fs::set_permissions(keys.join("platform.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = vigil(&["keys", "show", "--dir", d]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("platform.key") && stderr.contains("chmod 600"), "{stderr}");
    std::fs::set_permissions(keys.join("platform.key"), std::fs::Permissions::from_mode(0o600)).unwrap();

    // --force replaces the keys.
    assert!(vigil(&["init", "--dir", d, "--force"]).status.success());
    assert_ne!(std::fs::read(keys.join("platform.key")).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verify_evidence_checks_signatures_nonce_and_measurements() {
    use vigil_attest::dual::DualSigningKey;
    use vigil_attest::evidence::{Claims, sign};
    let dir = scratch("verify");
    let keys = dir.join("keys");
    assert!(vigil(&["init", "--dir", keys.to_str().unwrap()]).status.success());
    let platform = vigil::keys::read_dual_key(&keys.join("platform.key")).unwrap();
    let policy = vigil::policy::default_bundle();
    let claims = Claims {
        nonce: vec![0x42; 16],
        image: [1; 48],
        config: vigil::reference::expected_config(policy.len()),
        policy: vigil_attest::measure(policy),
        arch: "x86_64".into(),
        hypervisor: "kvm".into(),
        platform: "none".into(),
        guard_x25519: [4; 32],
        guard_key: DualSigningKey::from_seeds(&[5; 32], &[6; 32]).public(),
        boot_id: [7; 16],
        timestamp: 1_790_000_000,
        vigil_version: "0.1.0".into(),
        entropy: vec!["host-seed".into()],
        policy_signer: None,
        features: Vec::new(),
    };
    let evidence = dir.join("evidence.cbor");
    std::fs::write(&evidence, sign(&claims, &platform).unwrap()).unwrap();
    let reference = dir.join("measurements.json");
    let measurements = |image: [u8; 48]| {
        format!(
            r#"{{"version": 2, "arch": "x86_64", "image": "vigil-guard.elf", "image_sha384": "{}", "image_size": 1, "features": [], "hypervisors": ["kvm"], "platform": "none", "rustc": "r", "vigil_version": "0.1.0"}}"#,
            hex::encode(image)
        )
    };
    std::fs::write(&reference, measurements([1; 48])).unwrap();
    let policy_file = dir.join("default.vgp");
    std::fs::write(&policy_file, policy).unwrap();
    let nonce = hex::encode([0x42u8; 16]);
    let run = |trust: &str, reference: &std::path::Path, nonce: &str, evidence: &std::path::Path| {
        vigil(&[
            "verify",
            "evidence",
            evidence.to_str().unwrap(),
            "--trust",
            trust,
            "--reference",
            reference.to_str().unwrap(),
            "--nonce",
            nonce,
            "--policy",
            policy_file.to_str().unwrap(),
            "--json",
        ])
    };
    let trust = keys.join("platform.pub");
    let t = trust.to_str().unwrap();
    let ok = run(t, &reference, &nonce, &evidence);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(json(&ok)["verified"], true);

    let fails = |output: Output, needle: &str| {
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
    };
    fails(run(t, &reference, &hex::encode([0u8; 16]), &evidence), "nonce");
    fails(run(keys.join("cost.pub").to_str().unwrap(), &reference, &nonce, &evidence), "trusted platform key");
    let other_ref = dir.join("other.json");
    std::fs::write(&other_ref, measurements([9; 48])).unwrap();
    fails(run(t, &other_ref, &nonce, &evidence), "image measurement");
    // Every other claim against its reference value, each with its own
    // message: claims the host once never compared with anything.
    let variants: Vec<(Claims, &str)> = vec![
        (Claims { config: [2; 48], ..claims.clone() }, "boot configuration"),
        (Claims { arch: "aarch64".into(), ..claims.clone() }, "architecture"),
        (Claims { hypervisor: "qemu-tcg".into(), ..claims.clone() }, "hypervisor"),
        (Claims { platform: "sev-snp".into(), ..claims.clone() }, "platform"),
        (Claims { features: vec!["test-hooks".into()], ..claims.clone() }, "test-hooks"),
        (Claims { features: vec!["unmarked".into()], ..claims.clone() }, "features"),
        (Claims { policy_signer: Some([3; 32]), ..claims.clone() }, "signer"),
    ];
    for (i, (variant, needle)) in variants.into_iter().enumerate() {
        let path = dir.join(format!("variant-{i}.cbor"));
        std::fs::write(&path, sign(&variant, &platform).unwrap()).unwrap();
        fails(run(t, &reference, &nonce, &path), needle);
    }
    // Without --policy or --policy-digest: verified, but loudly not the
    // policy.
    let without_policy = |extra: &[&str]| {
        let mut args = vec!["verify", "evidence", evidence.to_str().unwrap(), "--trust", t];
        args.extend(["--reference", reference.to_str().unwrap(), "--nonce", &nonce]);
        args.extend(extra);
        vigil(&args)
    };
    let unchecked = without_policy(&["--json"]);
    assert!(unchecked.status.success(), "{}", String::from_utf8_lossy(&unchecked.stderr));
    assert_eq!(json(&unchecked)["policy_checked"], false);
    assert!(String::from_utf8_lossy(&unchecked.stderr).contains("policy was NOT checked"));
    let by_digest = without_policy(&["--policy-digest", &hex::encode([5u8; 48])]);
    assert!(!by_digest.status.success());
    assert!(String::from_utf8_lossy(&by_digest.stderr).contains("policy measurement"));
    let mut bytes = std::fs::read(&evidence).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 1;
    let tampered = dir.join("tampered.cbor");
    std::fs::write(&tampered, bytes).unwrap();
    fails(run(t, &reference, &nonce, &tampered), "rejected");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_in_the_guard_vm_matches_in_process_and_needs_keys() {
    if !kvm_or_skip("eval_in_the_guard_vm_matches_in_process_and_needs_keys") {
        return;
    }
    let dir = scratch("eval-vm");
    let keys = dir.join("keys");
    let k = keys.to_str().unwrap();
    // Without keys: a clear error that says what to do, exit 1.
    let intent = r#"{"id":9,"agent":"a","tool":"shell","args":{"command":"rm -rf /"}}"#;
    let output = vigil(&["eval", "--dir", k, "--intent", intent]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("vigil init"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    assert!(vigil(&["init", "--dir", k]).status.success());
    let cases = dir.join("cases.jsonl");
    let lines = [
        r#"{"id":1,"agent":"a","tool":"shell","args":{"command":"ls -la"}}"#,
        r#"{"id":2,"agent":"a","tool":"shell","args":{"command":"rm -rf /"}}"#,
        r#"{"id":3,"agent":"a","tool":"shell","args":{"command":"git push --force origin feature/x"},"justification":"Overwrite my rebased feature branch."}"#,
        r#"{"id":4,"tool":"shell"}"#,
        r#"{"id":5,"agent":"a","tool":"shell","args":{"command":["rm","-rf","/"]}}"#,
    ];
    std::fs::write(&cases, lines.join("\n")).unwrap();
    let run = |judge: &str| {
        let output = vigil(&["eval", "--judge", judge, "--dir", k, "--in", cases.to_str().unwrap(), "--json"]);
        assert!(output.status.success(), "{judge}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("eval_ns");
                // No daemon runs here: the judge is the one asked for.
                let by = v.as_object_mut().unwrap().remove("judged_by");
                assert_eq!(by.as_ref().and_then(|b| b.as_str()), Some(if judge == "vm" { "guard" } else { "inproc" }));
                v
            })
            .collect::<Vec<_>>()
    };
    let vm = run("vm");
    let local = run("inproc");
    assert_eq!(vm, local);
    let decisions: Vec<&str> = vm.iter().map(|v| v["decision"].as_str().unwrap()).collect();
    assert_eq!(decisions, ["ALLOW", "DENY", "ESCALATE", "DENY", "DENY"]);
    // Both runs went into the default journal; the VM run with its boot
    // evidence and final guard checkpoint. Replay verifies all of it.
    let journal = keys.join("journal/vigil.vgj");
    let output = vigil(&["journal", "replay", journal.to_str().unwrap(), "--dir", k, "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let outcome = json(&output);
    let report = &outcome["report"];
    assert_eq!((report["verdicts"].as_u64(), report["replayed_equal"].as_u64()), (Some(10), Some(10)));
    assert_eq!((report["boots_verified"].as_u64(), report["guard_checkpoints_verified"].as_u64()), (Some(1), Some(1)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_runs_the_scripted_session_in_the_guard() {
    if !kvm_or_skip("demo_runs_the_scripted_session_in_the_guard") {
        return;
    }
    let output = vigil(&["demo", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = json(&output);
    assert_eq!(report["mismatches"], 0);
    let decisions: Vec<&str> =
        report["steps"].as_array().unwrap().iter().map(|s| s["decision"].as_str().unwrap()).collect();
    for d in ["ALLOW", "ESCALATE", "DENY"] {
        assert!(decisions.contains(&d), "{decisions:?}");
    }
    assert!(!std::path::Path::new(report["dir"].as_str().unwrap()).exists(), "temporary keys removed");
    let text = vigil(&["demo"]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("ok: every verdict"));
}

#[test]
fn attest_writes_evidence_that_verify_accepts() {
    if !kvm_or_skip("attest_writes_evidence_that_verify_accepts") {
        return;
    }
    let dir = scratch("attest");
    let keys = dir.join("keys");
    let k = keys.to_str().unwrap();
    assert!(vigil(&["init", "--dir", k]).status.success());
    let evidence = dir.join("evidence.cbor");
    let nonce = "00112233445566778899aabbccddeeff";
    let output = vigil(&["attest", "--dir", k, "--nonce", nonce, "-o", evidence.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&evidence).unwrap().permissions().mode() & 0o777, 0o600);
        // A symlinked destination: refused, its target untouched.
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.join("link.cbor");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let output = vigil(&["attest", "--dir", k, "--nonce", nonce, "-o", link.to_str().unwrap()]);
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("symbolic link"));
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }
    let reference = dir.join("measurements.json");
    std::fs::write(&reference, vigil::guard_image::production_measurements()).unwrap();
    let policy = dir.join("default.vgp");
    std::fs::write(&policy, vigil::policy::default_bundle()).unwrap();
    let verify = |nonce: &str| {
        vigil(&[
            "verify",
            "evidence",
            evidence.to_str().unwrap(),
            "--trust",
            keys.join("platform.pub").to_str().unwrap(),
            "--reference",
            reference.to_str().unwrap(),
            "--nonce",
            nonce,
            "--policy",
            policy.to_str().unwrap(),
            "--json",
        ])
    };
    let ok = verify(nonce);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(json(&ok)["hypervisor"], "kvm");
    assert!(!verify("ffffffffffffffff").status.success(), "another nonce is refused");
    // The hex `vigil attest` prints without -o verifies as the same evidence;
    // one hex digit changed does not.
    let bytes = std::fs::read(&evidence).unwrap();
    std::fs::write(&evidence, format!("{}\n", hex::encode(&bytes))).unwrap();
    assert!(verify(nonce).status.success(), "hex evidence");
    let mut flipped = hex::encode(&bytes).into_bytes();
    let at = flipped.len() / 2;
    flipped[at] = if flipped[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&evidence, &flipped).unwrap();
    assert!(!verify(nonce).status.success(), "altered hex evidence is refused");
    // Nonces outside 8..=64 bytes and non-hex are refused before booting.
    for bad in ["0011", "zz", &"00".repeat(65)] {
        let output = vigil(&["attest", "--dir", k, "--nonce", bad]);
        assert!(!output.status.success(), "{bad}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn journal_commands_verify_replay_export_show_and_refuse_damage() {
    let dir = scratch("journal-cli");
    let keys = dir.join("keys");
    let k = keys.to_str().unwrap();
    assert!(vigil(&["init", "--dir", k]).status.success());
    let cases = dir.join("cases.jsonl");
    let lines = [
        r#"{"id":1,"agent":"alice","tool":"shell","args":{"command":"ls -la"}}"#,
        r#"{"id":2,"agent":"bob","tool":"shell","args":{"command":"rm -rf /"}}"#,
        r#"{"id":3,"agent":"alice","tool":"shell","args":{"command":"git push --force origin feature/x"},"justification":"Overwrite my rebased feature branch."}"#,
        r#"{"id":4,"tool":"shell"}"#,
    ];
    std::fs::write(&cases, lines.join("\n")).unwrap();
    let output = vigil(&["eval", "--judge", "inproc", "--dir", k, "--in", cases.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let journal = keys.join("journal/vigil.vgj");
    let j = journal.to_str().unwrap();
    let trust = keys.join("platform.pub");
    let t = trust.to_str().unwrap();

    // verify: no data key; epoch, policy, 4 verdicts, their cost record
    // and its statement, closing checkpoint.
    let output = vigil(&["journal", "verify", j, "--trust", t, "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let report = json(&output);
    assert_eq!(report["summary"]["frames"], 9);
    assert_eq!(report["summary"]["closed"], true);
    assert_eq!(report["summary"]["unsealed"], 0);
    let text = vigil(&["journal", "verify", j, "--trust", t]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("ok: intact"), "{}", String::from_utf8_lossy(&text.stdout));

    // replay: decisions, agents, every verdict equal.
    let output = vigil(&["journal", "replay", j, "--dir", k, "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let report = json(&output)["report"].clone();
    assert_eq!(report["replayed_equal"], 4);
    assert_eq!(report["by_decision"]["DENY"], 2);
    assert_eq!(report["agents"]["alice"], 2);
    let text = String::from_utf8_lossy(&vigil(&["journal", "replay", j, "--dir", k]).stdout).to_string();
    assert!(text.contains("re-evaluated 4 equal, 0 mismatches") && text.contains("ok: every frame"), "{text}");

    // export: one line per frame, JSON Lines and CEF.
    let output = vigil(&["journal", "export", j, "--dir", k, "--format", "jsonl"]);
    assert!(output.status.success());
    let frames: Vec<serde_json::Value> =
        String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(frames.len(), 9);
    assert_eq!((&frames[6]["kind"], &frames[7]["kind"]), (&"cost".into(), &"cost_statement".into()));
    assert_eq!(frames[6]["verdict_seqs"], serde_json::json!([3, 4, 5, 6]));
    assert_eq!(frames[3]["decision"], "DENY");
    assert_eq!(frames[3]["intent"]["agent"], "bob");
    assert_eq!(frames[3]["rule"], "fs.rm-recursive-critical");
    let output = vigil(&["journal", "export", j, "--dir", k, "--format", "cef"]);
    let cef = String::from_utf8_lossy(&output.stdout).to_string();
    assert_eq!(cef.lines().count(), 9);
    assert!(cef.lines().all(|l| l.starts_with("CEF:0|Vigil|Vigil|")), "{cef}");
    assert!(cef.contains("|verdict:DENY|agent intent DENY|8|") && cef.contains("suser=bob"), "{cef}");

    // cost verify: the cost key's statement covers the one record, which
    // prices all four verdicts; the platform key is not the cost key.
    let cost_pub = keys.join("cost.pub");
    let output = vigil(&["cost", "verify", j, "--trust", cost_pub.to_str().unwrap(), "--dir", k]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    assert!(String::from_utf8_lossy(&output.stdout).contains("costs verify"));
    let output = vigil(&["cost", "verify", j, "--trust", t, "--dir", k]);
    assert!(!output.status.success());
    let output = vigil(&["cost", "report", j, "--dir", k, "--by", "agent", "--format", "json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let groups = json(&output);
    assert_eq!(groups.as_array().unwrap().len(), 3, "alice, bob and the malformed intent: {groups}");
    let output = vigil(&["cost", "report", j, "--dir", k, "--format", "svg"]);
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("<svg"));

    // An output naming the journal itself is refused: the journal stays.
    let output = vigil(&["journal", "export", j, "--dir", k, "-o", j]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is also the input"));
    let output = vigil(&["journal", "anchor", j, "--dir", k, "-o", j]);
    assert!(!output.status.success());
    assert!(vigil(&["journal", "verify", j, "--trust", t]).status.success(), "the journal is intact");

    // show: one frame; a missing seq is a clear error.
    let output = vigil(&["journal", "show", j, "--dir", k, "--seq", "3", "--json"]);
    assert!(output.status.success());
    let frame = json(&output);
    assert_eq!((frame["kind"].as_str(), frame["intent_id"].as_u64()), (Some("verdict"), Some(1)));
    let output = vigil(&["journal", "show", j, "--dir", k, "--seq", "99"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no frame seq 99"));

    // Another key directory's master key: a clear error.
    let other = dir.join("other");
    assert!(vigil(&["init", "--dir", other.to_str().unwrap()]).status.success());
    let output = vigil(&["journal", "replay", j, "--dir", other.to_str().unwrap(), "--trust", t]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("another master key"));
    // Another directory's platform key: the report says it may be the key,
    // not only tampering; against the high-water mark, it does not advise
    // giving up the mark.
    let other_trust = other.join("platform.pub");
    let output = vigil(&["journal", "verify", j, "--trust", other_trust.to_str().unwrap()]);
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("the platform key given is not the one that signed this journal"), "{stdout}");
    let output = vigil(&["journal", "verify", j, "--trust", other_trust.to_str().unwrap(), "--dir", k]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not verify under the platform key given") && !stderr.contains("move the mark"),
        "{stderr}"
    );

    // Damage before the tail: verify and replay fail with the seq; eval
    // refuses to append and changes nothing.
    let bytes = std::fs::read(&journal).unwrap();
    let mut damaged = bytes.clone();
    damaged[300] ^= 4;
    std::fs::write(&journal, &damaged).unwrap();
    let output = vigil(&["journal", "verify", j, "--trust", t, "--json"]);
    assert!(!output.status.success());
    assert!(json(&output)["tampered"]["seq"].as_u64().is_some());
    assert!(!vigil(&["journal", "replay", j, "--dir", k]).status.success());
    let output = vigil(&["eval", "--judge", "inproc", "--dir", k, "--in", cases.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("tampered"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty() || !String::from_utf8_lossy(&output.stdout).contains("DENY"));
    assert_eq!(std::fs::read(&journal).unwrap(), damaged);

    // A torn tail (the first 100 bytes of a frame a crash interrupted):
    // verify reports it (exit 1); the next eval cuts it, says so, and the
    // journal verifies again.
    let mut torn = bytes.clone();
    torn.extend_from_slice(&bytes[96..196]);
    std::fs::write(&journal, &torn).unwrap();
    let output = vigil(&["journal", "verify", j, "--trust", t]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("TORN TAIL"));
    // Replay and export see it too (they used to pass it by).
    let output = vigil(&["journal", "replay", j, "--dir", k, "--json"]);
    assert!(!output.status.success());
    assert!(json(&output)["problems"].to_string().contains("torn tail"), "{}", json(&output));
    let exported = dir.join("torn-export.jsonl");
    let output = vigil(&["journal", "export", j, "--dir", k, "-o", exported.to_str().unwrap()]);
    assert!(!output.status.success() && !exported.exists());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("torn tail"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = vigil(&["eval", "--judge", "inproc", "--dir", k, "--in", cases.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cut a torn tail"));
    assert!(vigil(&["journal", "verify", j, "--trust", t]).status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn journal_anchor_unsealed_frames_and_a_journal_name_without_a_directory() {
    let dir = scratch("journal-anchor");
    let keys = dir.join("keys");
    let k = keys.to_str().unwrap();
    assert!(vigil(&["init", "--dir", k]).status.success());
    let cases = dir.join("cases.jsonl");
    std::fs::write(&cases, r#"{"id":1,"agent":"a","tool":"shell","args":{"command":"ls"}}"#).unwrap();
    let trust = keys.join("platform.pub");
    let t = trust.to_str().unwrap();

    // `--journal name.vgj` with no directory part, from another working
    // directory: created next to where the command runs.
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let run_in =
        |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_vigil")).current_dir(&work).args(args).output().unwrap();
    let c = cases.to_str().unwrap();
    for _ in 0..2 {
        let output = run_in(&["eval", "--judge", "inproc", "--dir", k, "--journal", "name.vgj", "--in", c]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let journal = work.join("name.vgj");
    let j = journal.to_str().unwrap();
    let output = vigil(&["journal", "verify", j, "--trust", t, "--dir", k, "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    assert_eq!(json(&output)["summary"]["epoch"], 2);
    assert_eq!(json(&output)["marks"][0]["reached"], true, "the high-water mark in DIR/anchors is checked");

    // An anchor for a witness, and its printed form for a paper log.
    let anchor = dir.join("witness.anchor");
    let output = vigil(&["journal", "anchor", j, "-o", anchor.to_str().unwrap(), "--dir", k, "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = json(&output)["printable"].as_str().unwrap().to_string();
    assert!(printed.starts_with("vigil-anchor-v1 "), "{printed}");
    let paper = dir.join("paper.txt");
    std::fs::write(&paper, &printed).unwrap();
    let full = std::fs::read(&journal).unwrap();
    let a = anchor.to_str().unwrap();
    let p = paper.to_str().unwrap();
    assert!(vigil(&["journal", "verify", j, "--trust", t, "--anchor", a, "--anchor", p]).status.success());

    // Cut back to the first run: the anchors are no longer reached.
    let output = vigil(&["journal", "show", j, "--dir", k, "--seq", "1", "--json"]);
    assert!(output.status.success());
    let first_run_end = {
        let out = vigil(&["journal", "export", j, "--dir", k]);
        let frames: Vec<serde_json::Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let second_epoch = frames.iter().find(|f| f["kind"] == "epoch" && f["epoch"] == 2).unwrap();
        second_epoch["offset"].as_u64().unwrap() as usize
    };
    std::fs::write(&journal, &full[..first_run_end]).unwrap();
    let output = vigil(&["journal", "verify", j, "--trust", t, "--anchor", a, "--json"]);
    assert!(!output.status.success());
    assert_eq!(json(&output)["marks"][0]["reached"], false);
    let output = vigil(&["journal", "verify", j, "--trust", t, "--anchor", p]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("NOT REACHED"));
    // ...nor the high-water mark: eval refuses to append.
    let output = run_in(&["eval", "--judge", "inproc", "--dir", k, "--journal", "name.vgj", "--in", c]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("high-water mark"));
    // The auditor's other commands do not take the cut journal as whole
    // either: replay, export, anchor and cost verify check the key
    // directory's high-water mark as verify does, fail, and write nothing.
    let cut = std::fs::read(&journal).unwrap();
    let output = vigil(&["journal", "replay", j, "--dir", k, "--json"]);
    assert!(!output.status.success(), "replay of a cut journal must fail");
    assert_eq!(json(&output)["ok"], false);
    assert!(json(&output)["problems"].to_string().contains("cut back"), "{}", json(&output));
    let text = String::from_utf8_lossy(&vigil(&["journal", "replay", j, "--dir", k]).stdout).to_string();
    assert!(text.contains("PROBLEM") && text.contains("FAILED") && !text.contains("ok: every frame"), "{text}");
    let exported = dir.join("cut-export.jsonl");
    let output = vigil(&["journal", "export", j, "--dir", k, "-o", exported.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cut back"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!exported.exists(), "nothing exported");
    let output = vigil(&["journal", "export", j, "--dir", k]);
    assert!(!output.status.success() && output.stdout.is_empty(), "no frame printed before the check");
    let cut_anchor = dir.join("cut.anchor");
    let output = vigil(&["journal", "anchor", j, "-o", cut_anchor.to_str().unwrap(), "--dir", k]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cut back"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!cut_anchor.exists(), "no anchor vouches for the cut");
    let cost_pub = keys.join("cost.pub");
    let output = vigil(&["cost", "verify", j, "--trust", cost_pub.to_str().unwrap(), "--dir", k]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cut back"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(std::fs::read(&journal).unwrap(), cut, "the journal is left as it is");

    // Unsealed frames fail verify unless --allow-unsealed.
    std::fs::write(&journal, &full[..full.len() - last_frame_len(&full)]).unwrap();
    let output = vigil(&["journal", "verify", j, "--trust", t, "--json"]);
    assert!(!output.status.success());
    let problems = json(&output)["problems"].to_string();
    assert!(problems.contains("unsealed"), "{problems}");
    assert!(vigil(&["journal", "verify", j, "--trust", t, "--allow-unsealed"]).status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The length of a journal's last frame (its closing checkpoint here).
fn last_frame_len(bytes: &[u8]) -> usize {
    let mut at = 96;
    let mut last = 0;
    while at + 4 <= bytes.len() {
        last = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += last;
    }
    last
}

/// Runs `vigil eval --json` on `lines` with `judge`; returns the exit
/// status and each verdict (without its timing).
fn eval_lines(keys: &std::path::Path, judge: &str, lines: &[String]) -> (bool, Vec<serde_json::Value>) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = keys.join(format!("lines-{n}.jsonl"));
    std::fs::write(&file, lines.join("\n")).unwrap();
    let output =
        vigil(&["eval", "--judge", judge, "--dir", keys.to_str().unwrap(), "--in", file.to_str().unwrap(), "--json"]);
    let verdicts = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("eval_ns");
            let by = v.as_object_mut().unwrap().remove("judged_by");
            assert_eq!(by.as_ref().and_then(|b| b.as_str()), Some(if judge == "vm" { "guard" } else { "inproc" }));
            v
        })
        .collect();
    (output.status.success(), verdicts)
}

#[test]
fn ambiguous_json_is_refused_not_resolved_and_what_is_judged_is_recorded() {
    let dir = scratch("ambiguous");
    let keys = dir.join("keys");
    assert!(vigil(&["init", "--dir", keys.to_str().unwrap()]).status.success());
    // Each line with the detail its refusal must give.
    let refused: [(&str, &str); 9] = [
        // serde_json alone keeps the last key: this would be judged as `ls`.
        (
            r#"{"id":1,"agent":"a","tool":"shell","args":{"command":"shred -u /dev/nvme0n1","command":"ls"}}"#,
            r#"duplicate key "command""#,
        ),
        // The same key spelled with an escape.
        (
            r#"{"id":2,"agent":"a","tool":"shell","args":{"command":"rm -rf /","comm\u0061nd":"ls"}}"#,
            r#"duplicate key "command""#,
        ),
        (r#"{"id":3,"tool":"shell","tool":"read_file","args":{"path":"/etc/shadow"}}"#, r#"duplicate key "tool""#),
        // `args` and an `intent` wrapper: once judged on the wrapper.
        (
            r#"{"id":4,"agent":"a","tool":"shell","args":{"command":"rm -rf /"},"intent":{"id":4,"agent":"a","tool":"shell","args":{"command":"ls"}}}"#,
            "unknown intent field `intent`",
        ),
        (
            r#"{"id":5,"agent":"a","tool":"shell","args":{"command":"ls"},"args":{"command":"rm -rf /"}}"#,
            r#"duplicate key "args""#,
        ),
        // A number without one text form: once rounded to 1.2345678901234568e22.
        (
            r#"{"id":6,"agent":"a","tool":"shell","args":{"command":"ls","n":12345678901234567890123}}"#,
            "argument `n` is a number",
        ),
        (r#"{"id":7,"agent":"a","tool":"shell","args":{"command":"ls","n":1e2}}"#, "argument `n` is a number"),
        // A lone surrogate has no UTF-8 form.
        (r#"{"id":8,"agent":"a","tool":"shell","args":{"command":"ls\udc00"}}"#, "surrogate"),
        // Deeper than serde_json's recursion limit: refused, not a crash.
        (
            &*Box::leak(
                format!(
                    r#"{{"id":9,"agent":"a","tool":"x","args":{{}},"cwd":{}0{}}}"#,
                    "[".repeat(500),
                    "]".repeat(500)
                )
                .into_boxed_str(),
            ),
            "recursion limit",
        ),
    ];
    let allowed = r#"{"id":10,"agent":"a","tool":"shell","args":{"command":"ls","n":-5,"b":true}}"#;
    let lines: Vec<String> = refused.iter().map(|(l, _)| l.to_string()).chain([allowed.to_string()]).collect();
    let judges: &[&str] = if kvm_or_skip("ambiguous_json (vm judge)") { &["inproc", "vm"] } else { &["inproc"] };
    for judge in judges {
        let (ok, v) = eval_lines(&keys, judge, &lines);
        assert!(ok, "{judge}");
        assert_eq!(v.len(), lines.len(), "{judge}: {v:?}");
        for (i, ((_, why), v)) in refused.iter().zip(&v).enumerate() {
            assert_eq!(
                (v["decision"].as_str(), v["reason"].as_str()),
                (Some("DENY"), Some("malformed")),
                "{judge}: {v}"
            );
            // Where even a lenient parser finds no id, the caller sees 0.
            assert_eq!(v["id"], if i >= 7 { 0 } else { i as u64 + 1 }, "{judge}: {v}");
            assert!(v["detail"].as_str().unwrap().contains(why), "{judge}: {why}: {v}");
        }
        assert_eq!(v[9]["decision"], "ALLOW", "{judge}: {}", v[9]);

        // One intent on the command line is converted the same way.
        let journal = dir.join(format!("single-{judge}.vgj"));
        let out = vigil(&[
            "eval",
            "--judge",
            judge,
            "--dir",
            keys.to_str().unwrap(),
            "--journal",
            journal.to_str().unwrap(),
            "--json",
            "--intent",
            refused[0].0,
        ]);
        assert!(out.status.success(), "{judge}: {}", String::from_utf8_lossy(&out.stderr));
        let v = json(&out);
        assert_eq!((v["decision"].as_str(), v["reason"].as_str()), (Some("DENY"), Some("malformed")), "{judge}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(r#"duplicate key "command""#), "{judge}: {v}");
    }
    // The journal holds exactly the bytes judged: nothing for the refused
    // intents (with the reason), the intent as written for the last.
    let journal = keys.join("journal/vigil.vgj");
    let out = vigil(&["journal", "export", journal.to_str().unwrap(), "--dir", keys.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let frames: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let verdicts: Vec<&serde_json::Value> = frames.iter().filter(|f| f["kind"] == "verdict").collect();
    assert_eq!(verdicts.len(), lines.len() * judges.len());
    let written: serde_json::Value = serde_json::from_str(allowed).unwrap();
    for (i, v) in verdicts.iter().enumerate() {
        if i % lines.len() < refused.len() {
            assert_eq!(v["intent"]["cbor_hex"], "", "a refused intent was recorded as something: {v}");
            assert_eq!((v["decision"].as_str(), v["reason"].as_str()), (Some("DENY"), Some("malformed")), "{v}");
            assert!(v["detail"].as_str().unwrap().contains(refused[i % lines.len()].1), "{v}");
        } else {
            for field in ["id", "agent", "tool"] {
                assert_eq!(v["intent"][field], written[field], "{v}");
            }
            assert_eq!(v["intent"]["args"], serde_json::json!({"command": "ls", "n": "-5", "b": "true"}), "{v}");
        }
    }
    let replay = vigil(&["journal", "replay", journal.to_str().unwrap(), "--dir", keys.to_str().unwrap()]);
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn input_that_is_not_utf8_or_not_json_is_an_error_naming_the_line() {
    let dir = scratch("not-json");
    let good = br#"{"id":1,"agent":"a","tool":"shell","args":{"command":"ls"}}"#;
    for (bad, why) in [
        (&b"{\"id\":2,\"agent\":\"a\",\"tool\":\"shell\",\"args\":{\"command\":\"ls \xff\"}}"[..], ":2: not UTF-8"),
        (&b"{\"id\":2,\"agent\":\"a\","[..], ":2: not valid JSON"),
    ] {
        let file = dir.join("in.jsonl");
        std::fs::write(&file, [&good[..], b"\n", bad, b"\n"].concat()).unwrap();
        let out = eval_inproc(&["--in", file.to_str().unwrap(), "--json"]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{stderr}");
        assert!(out.stdout.is_empty(), "nothing is judged: {}", String::from_utf8_lossy(&out.stdout));
    }
    // A labelled case with a repeated key is an error too, naming the line.
    let cases = dir.join("cases.jsonl");
    std::fs::write(
        &cases,
        r#"{"name":"x","expect":"DENY","intent":{"id":1,"agent":"a","tool":"shell","args":{"command":"rm -rf /","command":"ls"}}}"#,
    )
    .unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default.toml");
    let out = vigil(&["policy", "test", source.to_str().unwrap(), "--cases", cases.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cases.jsonl:1:") && stderr.contains(r#"duplicate key "command""#), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_oversized_intent_is_refused_alone_and_batches_split_by_size() {
    let dir = scratch("oversize");
    let keys = dir.join("keys");
    assert!(vigil(&["init", "--dir", keys.to_str().unwrap()]).status.success());
    let intent = |id: u64, command: &str| {
        serde_json::json!({"id": id, "agent": "a", "tool": "shell", "args": {"command": command}}).to_string()
    };
    let mut lines: Vec<String> = (0..40).map(|i| intent(i, if i % 3 == 0 { "rm -rf /" } else { "ls" })).collect();
    lines.insert(20, intent(999, &"x".repeat(1 << 20)));
    let Err(vigil_guard::intent::json::JsonError::TooLarge { len }) =
        vigil_guard::intent::json::text_to_cbor(&lines[20])
    else {
        panic!("the 1 MiB intent must be over the limit")
    };
    let detail = format!("the intent is {len} bytes as CBOR, over the 16384-byte limit");
    let vm_available = kvm_or_skip("oversize (vm judge)");
    let (ok, local) = eval_lines(&keys, "inproc", &lines);
    assert!(ok, "exit code 0: nothing failed");
    assert_eq!(local.len(), 41);
    assert_eq!((local[20]["id"].as_u64(), local[20]["decision"].as_str()), (Some(999), Some("DENY")));
    assert_eq!(local[20]["reason"], "malformed");
    assert!(local[20]["detail"].as_str().unwrap().contains(&detail), "{}", local[20]);
    assert!(local.iter().enumerate().all(|(i, v)| i == 20 || v["detail"].is_null()), "{local:?}");
    let mut judges = 1;
    if vm_available {
        let (ok, vm) = eval_lines(&keys, "vm", &lines);
        assert!(ok, "one oversized intent must not fail the run");
        assert_eq!(vm, local);
        judges += 1;
    }
    // Journaled as refused: no bytes, the size and the limit.
    let journal = keys.join("journal/vigil.vgj");
    let out = vigil(&["journal", "export", journal.to_str().unwrap(), "--dir", keys.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let frames: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let refused: Vec<&serde_json::Value> =
        frames.iter().filter(|f| f["kind"] == "verdict" && f["intent_id"] == 999).collect();
    assert_eq!(refused.len(), judges);
    for f in refused {
        assert_eq!((f["decision"].as_str(), f["reason"].as_str()), (Some("DENY"), Some("malformed")), "{f}");
        assert_eq!(f["intent"]["cbor_hex"], "", "{f}");
        assert!(f["detail"].as_str().unwrap().contains(&detail), "{f}");
    }

    // Intents just under the limit, many of them: together far more than
    // one mailbox request carries. Split by size, every one is judged.
    let arg = "a".repeat(3900);
    let big: Vec<String> = (0..300)
        .map(|i| {
            serde_json::json!({"id": i, "agent": "a", "tool": "http", "args": {"url": "https://example.org/",
                "h1": arg, "h2": arg, "h3": arg, "body": arg}})
            .to_string()
        })
        .collect();
    for line in &big {
        let len = vigil_guard::intent::json::text_to_cbor(line).unwrap().len();
        assert!(len > vigil_guard::intent::MAX_INTENT_BYTES - 1024, "{len}: just under the limit");
        assert!(len * vigil::vm_judge::BATCH > vigil_abi::mailbox::REQUEST_CAPACITY, "a batch by count would overflow");
    }
    let (ok, local) = eval_lines(&keys, "inproc", &big);
    assert!(ok && local.len() == 300);
    assert!(local.iter().all(|v| v["reason"] != "malformed"), "{}", local[0]);
    if vm_available {
        let (ok, vm) = eval_lines(&keys, "vm", &big);
        assert!(ok, "batches must be split by size");
        assert_eq!(vm, local);
        assert!(vm.iter().all(|v| v["reason"] != "judge_failed"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn secret_files_are_checked_on_the_opened_handle_and_outputs_are_private() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = scratch("secrets");
    let keys = dir.join("keys");
    let d = keys.to_str().unwrap();
    assert!(vigil(&["init", "--dir", d]).status.success());
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).to_string();

    // A secret key replaced by a symlink to a private file elsewhere (same
    // owner, mode 0600: a path-based mode check would pass): refused.
    let key = keys.join("journal.key");
    let elsewhere = dir.join("elsewhere.key");
    std::fs::rename(&key, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &key).unwrap();
    let output = vigil(&["keys", "show", "--dir", d]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("symbolic link"), "{}", stderr(&output));
    std::fs::remove_file(&key).unwrap();
    std::fs::rename(&elsewhere, &key).unwrap();
    assert!(vigil(&["keys", "show", "--dir", d]).status.success());

    // A key file owned by someone else (when this test can arrange one).
    let euid = std::fs::metadata(&keys).unwrap().uid();
    if euid == 0 {
        let platform = keys.join("platform.key");
        std::os::unix::fs::chown(&platform, Some(65534), None).unwrap();
        let output = vigil(&["keys", "show", "--dir", d]);
        assert!(!output.status.success());
        assert!(stderr(&output).contains("belongs to uid 65534"), "{}", stderr(&output));
        std::os::unix::fs::chown(&platform, Some(0), None).unwrap();
    } else {
        eprintln!("\n*** secret owner check: SKIPPED (not root: cannot chown a key to another user) ***");
    }

    // Exports are 0600, written under a random temporary name, refuse a
    // symlinked destination, and work with no directory part.
    let cases = dir.join("cases.jsonl");
    std::fs::write(&cases, r#"{"id":1,"agent":"a","tool":"shell","args":{"command":"ls"}}"#).unwrap();
    assert!(vigil(&["eval", "--judge", "inproc", "--dir", d, "--in", cases.to_str().unwrap()]).status.success());
    let journal = keys.join("journal/vigil.vgj");
    let j = journal.to_str().unwrap();
    let out = dir.join("export.jsonl");
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("export.vgp.tmp")).unwrap();
    let output = vigil(&["journal", "export", j, "--dir", d, "-o", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let link = dir.join("link.jsonl");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let output = vigil(&["journal", "export", j, "--dir", d, "-o", link.to_str().unwrap()]);
    assert!(!output.status.success());
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(&dir)
        .args(["journal", "export", j, "--dir", d, "-o", "here.jsonl"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(dir.join("here.jsonl").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pinned_policy_signer_and_digest_admit_only_what_they_name() {
    let dir = scratch("pins");
    let keys = dir.join("keys");
    let k = keys.to_str().unwrap();
    assert!(vigil(&["init", "--dir", k]).status.success());
    let other = dir.join("other");
    assert!(vigil(&["init", "--dir", other.to_str().unwrap()]).status.success());
    let config = std::fs::read_to_string(keys.join("config.toml")).unwrap();
    assert!(config.contains("policy_signer"), "init pins its policy key: {config}");
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).to_string();

    let source = dir.join("p.toml");
    std::fs::write(&source, "version = 1\nname = \"p\"\ndefault = \"allow\"\n[tools]\nallow = [\"shell\"]\n[[rules]]\nid = \"no-rm\"\nclass = \"command\"\npattern = 'rm\\s+-rf'\ndecision = \"deny\"\nreason = \"destructive\"\n").unwrap();
    let mine = dir.join("mine.vgp");
    let theirs = dir.join("theirs.vgp");
    let compile = |out: &std::path::Path, key_dir: &str| {
        vigil(&["policy", "compile", source.to_str().unwrap(), "-o", out.to_str().unwrap(), "--sign", "--dir", key_dir])
    };
    assert!(compile(&mine, k).status.success());
    assert!(compile(&theirs, other.to_str().unwrap()).status.success());
    let intent = r#"{"id":1,"agent":"a","tool":"shell","args":{"command":"rm -rf /srv"}}"#;
    let eval = |policy: &std::path::Path| {
        vigil(&[
            "eval",
            "--judge",
            "inproc",
            "--dir",
            k,
            "--policy",
            policy.to_str().unwrap(),
            "--intent",
            intent,
            "--json",
        ])
    };
    let ok = eval(&mine);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(json(&ok)["decision"], "DENY");
    // Signed by another key, unsigned, TOML, or altered after signing.
    let refused = eval(&theirs);
    assert!(
        !refused.status.success() && stderr(&refused).contains("not by the pinned policy signer"),
        "{}",
        stderr(&refused)
    );
    let refused = eval(&source);
    assert!(!refused.status.success() && stderr(&refused).contains("cannot be signed"), "{}", stderr(&refused));
    let mut flipped = std::fs::read(&mine).unwrap();
    let at = flipped.len() - 40; // inside the signature trailer
    flipped[at] ^= 1;
    let altered = dir.join("altered.vgp");
    std::fs::write(&altered, &flipped).unwrap();
    assert!(!eval(&altered).status.success());
    let mut flipped = std::fs::read(&mine).unwrap();
    flipped[200] ^= 1; // inside the bundle
    std::fs::write(&altered, &flipped).unwrap();
    let refused = eval(&altered);
    assert!(!refused.status.success() && stderr(&refused).contains("invalid policy bundle"), "{}", stderr(&refused));
    // A pinned digest admits exactly that bundle, even from the right signer.
    let digest =
        hex::encode(vigil_attest::measure(vigil::policy_signature::split(&std::fs::read(&theirs).unwrap()).unwrap().0));
    std::fs::write(keys.join("config.toml"), format!("{config}policy_digest = \"{}\"\n", "ab".repeat(48))).unwrap();
    let refused = eval(&mine);
    assert!(!refused.status.success() && stderr(&refused).contains("policy_digest"), "{}", stderr(&refused));
    std::fs::write(keys.join("config.toml"), format!("{config}policy_digest = \"{digest}\"\n")).unwrap();
    assert!(eval(&mine).status.success(), "same bundle bytes as theirs, signed by the pinned key");

    // The evidence carries the signer; verify evidence checks it.
    if kvm_or_skip("pinned policy (attest)") {
        std::fs::write(keys.join("config.toml"), &config).unwrap();
        let nonce = "00112233445566778899aabbccddeeff";
        let evidence = dir.join("evidence.cbor");
        let out = vigil(&[
            "attest",
            "--dir",
            k,
            "--nonce",
            nonce,
            "--policy",
            mine.to_str().unwrap(),
            "-o",
            evidence.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let trust = keys.join("platform.pub");
        let verify = |policy: &std::path::Path| {
            vigil(&[
                "verify",
                "evidence",
                evidence.to_str().unwrap(),
                "--trust",
                trust.to_str().unwrap(),
                "--nonce",
                nonce,
                "--policy",
                policy.to_str().unwrap(),
                "--json",
            ])
        };
        let ok = verify(&mine);
        assert!(ok.status.success(), "{}", stderr(&ok));
        let fingerprint =
            vigil::keys::read_cose_key_set(&std::fs::read(keys.join("policy.pub")).unwrap()).unwrap().fingerprint();
        assert_eq!(json(&ok)["policy_signer"], hex::encode(fingerprint));
        assert_eq!(
            (json(&ok)["policy_checked"].as_bool(), json(&ok)["config_checked"].as_bool()),
            (Some(true), Some(true))
        );
        // The same bundle signed by someone else: the measurement matches,
        // the signer does not.
        let refused = verify(&theirs);
        assert!(!refused.status.success() && stderr(&refused).contains("signer"), "{}", stderr(&refused));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_key_directory_from_before_policy_keys_gets_one_added_and_pinned() {
    let dir = scratch("old-keys");
    let keys = dir.join("keys");
    let k = keys.to_str().unwrap();
    assert!(vigil(&["init", "--dir", k]).status.success());
    std::fs::remove_file(keys.join("policy.key")).unwrap();
    std::fs::remove_file(keys.join("policy.pub")).unwrap();
    let config = std::fs::read_to_string(keys.join("config.toml")).unwrap();
    let old: String = config.lines().filter(|l| !l.contains("policy_signer")).map(|l| format!("{l}\n")).collect();
    std::fs::write(keys.join("config.toml"), &old).unwrap();
    let platform = std::fs::read(keys.join("platform.key")).unwrap();
    let out = vigil(&["init", "--dir", k]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("added a policy signing key"));
    assert!(keys.join("policy.key").exists());
    assert!(std::fs::read_to_string(keys.join("config.toml")).unwrap().contains("policy_signer"));
    assert_eq!(std::fs::read(keys.join("platform.key")).unwrap(), platform, "other keys untouched");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `.*.tmp` files left in `dir`.
fn temporaries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.ends_with(".tmp"))
        .collect()
}

#[test]
fn no_command_writes_through_a_planted_link_and_every_output_is_private() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = scratch("planted");
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).to_string();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious").unwrap();

    // `vigil init` into a directory where someone planted a dangling link
    // as platform.key (pointing where they can read it later): refused,
    // nothing created at the link's target.
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let stolen = dir.join("stolen.key");
    symlink(&stolen, keys.join("platform.key")).unwrap();
    let output = vigil(&["init", "--dir", keys.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("symbolic link"), "{}", stderr(&output));
    assert!(!stolen.exists(), "a secret key was written through the planted link");
    std::fs::remove_dir_all(&keys).unwrap();

    // Links at the predictable temporary names of earlier versions: never
    // followed; every key private, the directory 0700.
    std::fs::create_dir_all(&keys).unwrap();
    for name in ["platform.key", "cost.key", "policy.key", "journal.key", "config.toml"] {
        let old_name = std::path::Path::new(name).with_extension("tmp"); // what 0.1 used
        for planted in [old_name, format!("{name}.tmp").into(), format!(".{name}.tmp").into()] {
            symlink(&victim, keys.join(planted)).unwrap();
        }
    }
    let k = keys.to_str().unwrap();
    let output = vigil(&["init", "--dir", k]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(mode(&keys), 0o700);
    for name in ["platform.key", "cost.key", "policy.key", "journal.key"] {
        assert_eq!(mode(&keys.join(name)), 0o600, "{name}");
    }

    // A FIFO planted as a key: refused at once, not a hang.
    let journal_key = keys.join("journal.key");
    let saved = dir.join("journal.key.saved");
    std::fs::rename(&journal_key, &saved).unwrap();
    if Command::new("mkfifo").arg(&journal_key).status().is_ok_and(|s| s.success()) {
        let output = vigil(&["keys", "show", "--dir", k]);
        assert!(!output.status.success());
        assert!(stderr(&output).contains("not a regular file"), "{}", stderr(&output));
        std::fs::remove_file(&journal_key).unwrap();
    }
    std::fs::rename(&saved, &journal_key).unwrap();

    // `policy compile -o` and `policy sign -o`: a symlinked destination is
    // refused; an existing world-readable output becomes 0600; links at
    // old temporary names are left alone; a bare file name works.
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default.toml");
    let s = source.to_str().unwrap();
    let link = dir.join("link.vgp");
    symlink(&victim, &link).unwrap();
    let output = vigil(&["policy", "compile", s, "-o", link.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("symbolic link"), "{}", stderr(&output));
    let bundle = dir.join("bundle.vgp");
    std::fs::write(&bundle, b"old").unwrap();
    std::fs::set_permissions(&bundle, std::fs::Permissions::from_mode(0o644)).unwrap();
    symlink(&victim, dir.join("bundle.vgp.tmp")).unwrap();
    let output = vigil(&["policy", "compile", s, "-o", bundle.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(mode(&bundle), 0o600);
    let output = vigil(&["policy", "sign", bundle.to_str().unwrap(), "--dir", k, "-o", link.to_str().unwrap()]);
    assert!(!output.status.success());
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(&dir)
        .args(["policy", "compile", s, "-o", "bare.vgp"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(mode(&dir.join("bare.vgp")), 0o600);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");

    // `journal export -o` over an existing export, of a file that is no
    // journal: an error, the old export untouched, no temporary left.
    let previous = dir.join("previous.jsonl");
    std::fs::write(&previous, b"previous export\n").unwrap();
    let bogus = dir.join("bogus.vgj");
    std::fs::write(&bogus, vec![0x5a; 4096]).unwrap();
    let output = vigil(&["journal", "export", bogus.to_str().unwrap(), "--dir", k, "-o", previous.to_str().unwrap()]);
    assert!(!output.status.success());
    assert_eq!(std::fs::read(&previous).unwrap(), b"previous export\n");
    assert_eq!(
        temporaries(&dir).into_iter().filter(|n| n.starts_with(".previous")).count(),
        0,
        "a temporary export was left behind"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn policy_suggest_proposes_allow_rules_from_escalations_and_measures_them() {
    let dir = scratch("suggest");
    let out = vigil(&["init", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let intents = dir.join("intents.jsonl");
    let lines = [
        r#"{"id":1,"agent":"a","tool":"shell","args":{"command":"aws s3 mb s3://b"},"cwd":"/home/a/p"}"#,
        r#"{"id":2,"agent":"a","tool":"shell","args":{"command":"aws s3 cp x s3://b/x"},"cwd":"/home/a/p"}"#,
        r#"{"id":3,"agent":"a","tool":"shell","args":{"command":"frob --x"},"cwd":"/home/a/p"}"#,
        r#"{"id":4,"agent":"a","tool":"shell","args":{"command":"cargo test"},"cwd":"/home/a/p"}"#,
        r#"{"id":5,"agent":"a","tool":"shell","args":{"command":"rm -rf ~"},"cwd":"/home/a/p"}"#,
    ];
    std::fs::write(&intents, lines.join("\n")).unwrap();
    let d = dir.to_str().unwrap();
    let out = vigil(&["eval", "--judge", "inproc", "--dir", d, "--in", intents.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let journal = dir.join("journal/vigil.vgj");
    let before = std::fs::read(&journal).unwrap();
    let out = vigil(&["policy", "suggest", "--dir", d, journal.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json(&out);
    assert_eq!(report["verdicts"], 5);
    assert_eq!(report["escalated"], 3);
    let first = &report["suggestions"][0];
    assert_eq!((first["subject"].as_str(), first["would_allow"].as_u64()), (Some("aws s3"), Some(2)), "{report}");
    assert!(first["toml"].as_str().unwrap().contains("pattern = '^aws s3( |$)'"));
    // Nothing is applied: the journal is unchanged, nothing denied is offered.
    assert_eq!(std::fs::read(&journal).unwrap(), before);
    assert!(!report.to_string().contains("\"rm\""), "{report}");

    // A tampered journal is refused, not mined.
    let mut bad = before.clone();
    let at = bad.len() - 40;
    bad[at] ^= 1;
    let tampered = dir.join("tampered.vgj");
    std::fs::write(&tampered, &bad).unwrap();
    let out = vigil(&["policy", "suggest", "--dir", d, tampered.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("reading the journal"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A reader that closes the output early (`vigil … | head`) stops vigil
/// quietly with 141, as SIGPIPE would, not with a panic.
#[test]
fn a_closed_output_stops_vigil_quietly() {
    let dir = scratch("closed-output");
    let out = dir.join("pack.vgp");
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/default.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["policy", "compile", policy, "-o", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run vigil");
    // The reader goes away before vigil writes anything.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait for vigil");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // `vigil eval --in … | head -1`: every intent is still judged and
    // journaled, and the journal closed and sealed, before the quiet 141;
    // `vigil journal export … | head -1` stops quietly too.
    let keys = dir.join("keys");
    let k = keys.to_str().unwrap();
    assert!(vigil(&["init", "--dir", k]).status.success());
    let cases = dir.join("many.jsonl");
    let line = r#"{"id":1,"agent":"a","tool":"shell","args":{"command":"ls"}}"#;
    std::fs::write(&cases, [line; 300].join("\n")).unwrap();
    let closed = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run vigil");
        drop(child.stdout.take());
        child.wait_with_output().expect("wait for vigil")
    };
    let output = closed(&["eval", "--judge", "inproc", "--dir", k, "--in", cases.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("error"), "{stderr}");
    let journal = keys.join("journal/vigil.vgj");
    let trust = keys.join("platform.pub");
    let output = vigil(&["journal", "verify", journal.to_str().unwrap(), "--trust", trust.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "sealed and closed: {}", String::from_utf8_lossy(&output.stdout));
    assert_eq!(json(&output)["summary"]["by_kind"]["verdict"], 300, "every intent journaled");
    let output = closed(&["journal", "export", journal.to_str().unwrap(), "--dir", k]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

/// The on-chip budget docs/bundle.md states (384 KiB).
const ON_CHIP_BUDGET: usize = 384 * 1024;

#[test]
fn policy_compile_says_when_a_bundle_is_over_the_on_chip_budget() {
    // Ten rules more than the default pack: the compiler must group its
    // patterns loosely, and the bundle no longer fits the budget. It is
    // still written and valid; the report says what that means.
    let dir = scratch("over-budget");
    let default = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default.toml");
    let mut source = std::fs::read_to_string(default).unwrap();
    for i in 0..10 {
        source.push_str(&format!(
            "\n[[rules]]\nid = \"extra.r{i}\"\nclass = \"command\"\npattern = '^tool{i}( [^ ]+)* --flag-{i}( |$)'\ndecision = \"escalate\"\nreason = \"extra rule {i}\"\n"
        ));
    }
    let policy = dir.join("bigger.toml");
    std::fs::write(&policy, source).unwrap();
    let out = dir.join("bigger.vgp");
    let output = vigil(&["policy", "compile", policy.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    let bytes = std::fs::metadata(&out).unwrap().len() as usize;
    assert!(bytes > ON_CHIP_BUDGET, "the test needs a bundle over the budget: {bytes} bytes");
    let line = text.lines().find(|l| l.starts_with("on chip")).expect("an `on chip` line");
    let over = format!("over the {ON_CHIP_BUDGET}-byte table budget of an FPGA judge by {}", bytes - ON_CHIP_BUDGET);
    assert!(line.contains(&over), "{line}");
}
