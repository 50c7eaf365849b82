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
use std::path::{Path, PathBuf};

use vigil::policy;
use vigil_guard::bundle::Bundle;
use vigil_guard::{eval, verdict_codec};

const GOLDEN: &str = "corpus/verdict-records.txt";

fn corpus_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root.join("corpus")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("tests/corpus exists") {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `name<TAB>record as hex`, one line per case, in file order.
fn records(root: &Path) -> String {
    let (compiled, _) = policy::compile_file(&root.join("../policies/default.toml")).expect("default pack compiles");
    let bundle = Bundle::load(&compiled.bundle).expect("the default pack loads");
    let words = bundle.rule_count().div_ceil(64).max(1);
    let mut out = String::new();
    for file in corpus_files(root) {
        for case in policy::read_cases(&file).expect("corpus file parses") {
            let cbor = case.cbor().expect("case encodes");
            let verdict = eval::evaluate(&bundle, &cbor);
            let mut record = vec![0; verdict_codec::record_len(words)];
            let n = verdict_codec::encode(&verdict, words, &mut record).expect("record encodes");
            let hex: String = record[..n].iter().map(|b| format!("{b:02x}")).collect();
            writeln!(out, "{}\t{hex}", case.name).unwrap();
        }
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
