//! `vigil init` and the key directory's config.toml, run as a user would:
//! each test makes the failure happen and checks the exit code, the message
//! and that nothing was changed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const INTENT: &str = r#"{"id":1,"agent":"a","tool":"shell","args":{"command":"ls"}}"#;

/// `vigil ARGS` run in `cwd`.
fn vigil_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(cwd)
        .env_remove("VIGIL_DIR")
        .args(args)
        .output()
        .expect("run vigil")
}

fn vigil(args: &[&str]) -> Output {
    vigil_in(&std::env::temp_dir(), args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A fresh scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-init-config-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file and directory under `dir`: path, mode and bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                stack.push(path.clone());
                out.push((path, mode, Vec::new()));
            } else {
                out.push((path.clone(), mode, std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// `vigil eval --judge inproc --dir DIR --intent INTENT ARGS`.
fn eval(cwd: &Path, dir: &str, args: &[&str]) -> Output {
    let mut all = vec!["eval", "--judge", "inproc", "--dir", dir, "--intent", INTENT];
    all.extend(args);
    vigil_in(cwd, &all)
}

fn init(dir: &Path) {
    let out = vigil(&["init", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_relative_dir_gets_a_journal_path_relative_to_itself() {
    let cwd = scratch("relative");
    // init and init --force (no journal yet) both write the default path.
    for args in [&["init", "--dir", "rel"][..], &["init", "--force", "--dir", "rel"]] {
        let out = vigil_in(&cwd, args);
        assert!(out.status.success(), "{}", stderr(&out));
        let config = std::fs::read_to_string(cwd.join("rel/config.toml")).unwrap();
        assert!(config.contains("\njournal = \"journal/vigil.vgj\"\n"), "{config}");
    }
    let out = eval(&cwd, "rel", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cwd.join("rel/journal/vigil.vgj").is_file(), "the journal is in the key directory");
    assert!(!cwd.join("rel/rel").exists(), "the journal landed in rel/rel");
    // The same directory by its absolute name reaches the same journal.
    let out = eval(&cwd, cwd.join("rel").to_str().unwrap(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!cwd.join("rel/rel").exists());

    // An absolute `journal` setting is used as it is.
    let elsewhere = cwd.join("elsewhere/j.vgj");
    let config = std::fs::read_to_string(cwd.join("rel/config.toml")).unwrap();
    let config = config.replace("journal/vigil.vgj", elsewhere.to_str().unwrap());
    std::fs::write(cwd.join("rel/config.toml"), config).unwrap();
    let out = eval(&cwd, "rel", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(elsewhere.is_file());
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
fn an_unknown_setting_or_version_in_config_toml_is_refused_and_nothing_runs() {
    let dir = scratch("strict");
    let keys = dir.join("keys");
    init(&keys);
    let k = keys.to_str().unwrap();
    let unsigned = dir.join("unsigned.toml");
    std::fs::write(&unsigned, "version = 1\nname = \"p\"\ndefault = \"allow\"\n[tools]\nallow = [\"shell\"]\n")
        .unwrap();
    let config = keys.join("config.toml");
    let path = config.display().to_string();

    // A misspelt pin: the unsigned policy must not run.
    std::fs::write(&config, "version = 1\npolicy_signr = \"abc\"\n").unwrap();
    let before = snapshot(&keys);
    let out = eval(&dir, k, &["--policy", unsigned.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let why = stderr(&out);
    assert!(why.contains(&format!("{path}: unknown setting `policy_signr` (did you mean `policy_signer`?)")), "{why}");
    assert!(
        why.contains("config.toml version 1 has only `version`, `journal`, `policy_signer`, `policy_digest`"),
        "{why}"
    );
    assert!(stdout(&out).is_empty(), "nothing was judged: {}", stdout(&out));
    assert_eq!(snapshot(&keys), before, "no journal was written");

    // Another version.
    std::fs::write(&config, "version = 2\n").unwrap();
    let before = snapshot(&keys);
    let out = eval(&dir, k, &[]);
    assert_eq!(out.status.code(), Some(1));
    let why = stderr(&out);
    assert!(
        why.contains(&format!("{path}: config.toml version 2 is not supported: this vigil reads version 1 only")),
        "{why}"
    );
    assert_eq!(snapshot(&keys), before);

    // init reads it as strictly: refused, nothing written.
    std::fs::remove_file(keys.join("policy.key")).unwrap();
    std::fs::remove_file(keys.join("policy.pub")).unwrap();
    std::fs::write(&config, "version = 1\njournl = \"j.vgj\"\n").unwrap();
    let before = snapshot(&keys);
    for args in [&["init", "--dir", k][..], &["init", "--force", "--dir", k]] {
        let out = vigil(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains("unknown setting `journl` (did you mean `journal`?)"), "{}", stderr(&out));
        assert_eq!(snapshot(&keys), before, "{args:?}");
    }

    // A correct config with every setting still works.
    std::fs::write(&config, "version = 1\njournal = \"journal/vigil.vgj\"\n").unwrap();
    let out = vigil(&["init", "--dir", k]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = eval(&dir, k, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn init_force_refuses_to_orphan_a_journal_and_says_what_to_move() {
    let dir = scratch("force");
    let keys = dir.join("keys");
    init(&keys);
    let k = keys.to_str().unwrap();
    let out = eval(&dir, k, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(keys.join("journal/vigil.vgj").is_file() && keys.join("anchors").is_dir());

    let before = snapshot(&keys);
    let out = vigil(&["init", "--force", "--dir", k]);
    assert_eq!(out.status.code(), Some(1));
    let why = stderr(&out);
    assert!(
        why.contains(&format!("refusing to replace the keys in {k}: it holds a journal written with them")),
        "{why}"
    );
    assert!(why.contains(&format!("{k}/journal: holding vigil.vgj")), "{why}");
    assert!(why.contains(&format!("{k}/anchors: 1 high-water mark")), "{why}");
    assert!(why.contains(&format!("`mv {k} {k}.old && vigil init --dir {k}`")), "{why}");
    assert!(why.contains("Nothing was changed"), "{why}");
    assert_eq!(snapshot(&keys), before);
    // The journal still opens with its keys.
    let out = eval(&dir, k, &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The advice works: the old journal verifies with the old directory,
    // and the new directory starts a journal of its own.
    let old = dir.join("keys.old");
    std::fs::rename(&keys, &old).unwrap();
    init(&keys);
    let out = vigil(&[
        "journal",
        "verify",
        old.join("journal/vigil.vgj").to_str().unwrap(),
        "--trust",
        old.join("platform.pub").to_str().unwrap(),
        "--dir",
        old.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = eval(&dir, k, &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // High-water marks alone (the journal kept elsewhere) are enough to refuse.
    let lone = dir.join("lone");
    init(&lone);
    let journal = dir.join("outside.vgj");
    let out = eval(&dir, lone.to_str().unwrap(), &["--journal", journal.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = snapshot(&lone);
    let out = vigil(&["init", "--force", "--dir", lone.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("1 high-water mark"), "{}", stderr(&out));
    assert_eq!(snapshot(&lone), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn init_completes_a_partial_directory_and_says_what_it_created() {
    let dir = scratch("partial");
    let full = dir.join("full");
    init(&full);
    let keys = dir.join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    for name in ["platform.key", "platform.pub"] {
        std::fs::copy(full.join(name), keys.join(name)).unwrap();
    }
    std::fs::set_permissions(keys.join("platform.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let platform = std::fs::read(keys.join("platform.key")).unwrap();
    let k = keys.to_str().unwrap();

    let out = vigil(&["init", "--dir", k, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["created"], true);
    let files: Vec<&str> = report["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert_eq!(files, ["cost.key", "cost.pub", "policy.key", "policy.pub", "journal.key", "config.toml"]);
    let message = report["message"].as_str().unwrap();
    assert!(
        message.starts_with("added a cost signing key (cost.key, cost.pub), a policy signing key (policy.key, policy.pub) and a journal key (journal.key)"),
        "{message}"
    );
    assert!(message.contains("created config.toml, which pins the policy key"), "{message}");
    assert!(message.ends_with("the other keys were not changed (platform.key, platform.pub)"), "{message}");
    assert_eq!(std::fs::read(keys.join("platform.key")).unwrap(), platform);
    let out = eval(&dir, k, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = vigil(&["keys", "show", "--dir", k]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = vigil(&["init", "--dir", k]);
    assert!(out.status.success() && stdout(&out).contains("nothing was changed"), "{}", stdout(&out));

    // A public key without its secret key: refused, nothing written.
    std::fs::remove_file(keys.join("cost.key")).unwrap();
    let before = snapshot(&keys);
    let out = vigil(&["init", "--dir", k]);
    assert_eq!(out.status.code(), Some(1));
    let why = stderr(&out);
    assert!(why.contains(&format!("{k}/cost.pub is there without its secret key cost.key")), "{why}");
    assert!(why.contains(&format!("`mv {k}/cost.pub {k}/cost.pub.old`")), "{why}");
    assert_eq!(snapshot(&keys), before);

    // With a journal in the directory, keys it was written with are not
    // made anew: refused, nothing written.
    std::fs::remove_file(keys.join("cost.pub")).unwrap();
    let before = snapshot(&keys);
    let out = vigil(&["init", "--dir", k]);
    assert_eq!(out.status.code(), Some(1));
    let why = stderr(&out);
    assert!(
        why.contains(&format!("{k} holds a journal")) && why.contains("cost.key and cost.pub are missing"),
        "{why}"
    );
    assert!(why.contains("Restore the missing files from a backup"), "{why}");
    assert_eq!(snapshot(&keys), before);

    // A secret key whose public key is missing gets it back.
    std::fs::copy(full.join("cost.key"), keys.join("cost.key")).unwrap();
    std::fs::set_permissions(keys.join("cost.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = vigil(&["init", "--dir", k]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("added cost.pub (the public key of the existing cost.key)"), "{}", stdout(&out));
    assert_eq!(std::fs::read(keys.join("cost.pub")).unwrap(), std::fs::read(full.join("cost.pub")).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}
