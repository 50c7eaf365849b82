//! Every corpus case (tests/corpus, the independent directories included)
//! gives the verdict record written in `tests/corpus/verdict-records.txt`,
//! byte for byte: the decision, the stage, the reason, the deciding rule,
//! the score and every matched rule.
//!
//! The file was written by an earlier executor and bundle format, so this
//! is the check that a new executor (or a new table encoding) agrees with
//! the old one. A change to the default pack or to the judge's semantics
//! changes records on purpose: then run
//! `VIGIL_BLESS_VERDICTS=1 cargo test --release -p vigil-tests --test verdict_records`
//! and review the diff of the file like any other change.

use std::fmt::Write as _;
use std::path::Path;

use vigil::{policy, verdict_records};

const GOLDEN: &str = "corpus/verdict-records.txt";

/// `name<TAB>record as hex`, one line per case, in file order (the
/// records `vigil policy records` prints).
fn records(root: &Path) -> String {
    let (compiled, _) = policy::compile_file(&root.join("../policies/default.toml")).expect("default pack compiles");
    let workspace = root.parent().expect("tests/ lives in the workspace");
    let mut cases = Vec::new();
    for file in xtask::arm64_vm::corpus_files(workspace).expect("tests/corpus exists") {
        cases.extend(policy::read_cases(&file).expect("corpus file parses"));
    }
    assert!(cases.iter().all(|case| case.cbor().is_ok()), "every corpus case encodes");
    let records = verdict_records::inproc(&compiled.bundle, &cases).expect("the default pack judges");
    let mut out = String::new();
    for (case, record) in cases.iter().zip(&records) {
        writeln!(out, "{}", verdict_records::line(&case.name, record)).unwrap();
    }
    out
}

#[test]
fn every_corpus_case_gives_the_recorded_verdict_record() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let golden = root.join(GOLDEN);
    let got = records(root);
    if std::env::var_os("VIGIL_BLESS_VERDICTS").is_some() {
        std::fs::write(&golden, &got).expect("writing the verdict records");
        eprintln!("\nBLESSED {} verdict records into {}\n", got.lines().count(), golden.display());
        return;
    }
    let want = std::fs::read_to_string(&golden).expect("tests/corpus/verdict-records.txt exists");
    let differences: Vec<String> = want
        .lines()
        .zip(got.lines())
        .filter(|(w, g)| w != g)
        .map(|(w, g)| format!("  want {w}\n  got  {g}\n"))
        .collect();
    if want.lines().count() != got.lines().count() || !differences.is_empty() {
        let new = root.join("../target/verdict-records.new");
        let _ = std::fs::write(&new, &got);
        panic!(
            "{} of {} verdict records differ ({} cases recorded, {} now); the new records are in {}:\n{}",
            differences.len(),
            want.lines().count(),
            want.lines().count(),
            got.lines().count(),
            new.display(),
            differences.iter().take(20).cloned().collect::<String>()
        );
    }
    eprintln!("\n{} corpus verdict records equal the recorded ones\n", got.lines().count());
}
