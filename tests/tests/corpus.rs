//! The labelled corpus (tests/corpus/*.jsonl) against the default pack:
//! prints the block rate and the false-positive rate and fails on any
//! mismatch.

use std::io::Write;
use std::path::Path;

use vigil::policy;

#[test]
fn default_pack_judges_the_corpus_as_labelled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (compiled, _) = policy::compile_file(&root.join("../policies/default.toml")).expect("default pack compiles");
    let mut files: Vec<_> = std::fs::read_dir(root.join("corpus"))
        .expect("tests/corpus exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in &files {
        cases.extend(policy::read_cases(file).expect("corpus file parses"));
    }
    assert!(cases.len() >= 400, "the corpus must hold at least 400 cases, it has {}", cases.len());
    let report = policy::run_cases(&compiled.bundle, &cases).expect("cases run");
    print_rates("corpus", "benign", &report, report.failures.len(), "mismatches");
    assert!(report.dangerous * 2 >= report.cases, "at least half the corpus must be dangerous");
    assert!(report.benign >= 150, "at least 150 benign cases");
    if !report.failures.is_empty() {
        let mut table = String::new();
        for f in &report.failures {
            table.push_str(&format!("  {:<50} expected {:<9} got {:<9} {}\n", f.name, f.expected, f.got, f.why));
        }
        panic!("{} corpus cases judged differently than labelled:\n{table}", report.failures.len());
    }
}

/// The independent part of the corpus (tests/corpus/independent*/), written
/// by someone who had not read the pack, given only the intent schema and
/// the families of the policy-semantics issue: every dangerous case must be
/// stopped (DENY or ESCALATE) and none of the everyday cases (where the
/// writers disagreed with each other, the case follows the posture of
/// docs/policy.md; the issue notes list them). Whether
/// a stopped case is DENY or ESCALATE is reported, not asserted: the
/// writers guessed the pack's posture. The cases listed in
/// `tests/corpus/known-gaps.txt` are judged wrongly and known to be: they
/// are reported, and the test fails once one of them is judged right (so
/// the list only shrinks).
#[test]
fn default_pack_stops_the_independent_dangerous_cases_and_allows_the_everyday_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (compiled, _) = policy::compile_file(&root.join("../policies/default.toml")).expect("default pack compiles");
    // Every `tests/corpus/independent*/` directory.
    let mut files = Vec::new();
    for dir in std::fs::read_dir(root.join("corpus")).expect("tests/corpus exists") {
        let dir = dir.unwrap().path();
        if !dir.is_dir() || !dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with("independent")) {
            continue;
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut cases = Vec::new();
    for file in &files {
        cases.extend(policy::read_cases(file).expect("independent corpus file parses"));
    }
    assert!(cases.len() >= 600, "the independent corpus must hold at least 600 cases, it has {}", cases.len());
    let report = policy::run_cases(&compiled.bundle, &cases).expect("cases run");
    assert!(report.benign >= 200, "at least 200 everyday cases, there are {}", report.benign);
    // Known gaps (tests/corpus/known-gaps.txt): reported, and each must
    // still be one — a gap closed is taken off the list.
    let gaps: Vec<(String, String)> = std::fs::read_to_string(root.join("corpus/known-gaps.txt"))
        .expect("tests/corpus/known-gaps.txt exists")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, why) = l.split_once('\t').expect("known-gaps.txt: `name<TAB>why` per line");
            (name.to_string(), why.to_string())
        })
        .collect();
    let is_gap = |name: &str| gaps.iter().any(|(g, _)| g == name);
    let wrong = |f: &&policy::CaseFailure| {
        (f.expected != "ALLOW" && f.got == "ALLOW") || (f.expected == "ALLOW" && f.got != "ALLOW")
    };
    for (name, why) in &gaps {
        assert!(
            report.failures.iter().filter(wrong).any(|f| &f.name == name),
            "{name} is listed in tests/corpus/known-gaps.txt but is judged as labelled now: delete its line ({why})"
        );
    }
    let leaks: Vec<_> =
        report.failures.iter().filter(|f| f.expected != "ALLOW" && f.got == "ALLOW" && !is_gap(&f.name)).collect();
    let stopped: Vec<_> =
        report.failures.iter().filter(|f| f.expected == "ALLOW" && f.got != "ALLOW" && !is_gap(&f.name)).collect();
    let differences = report.failures.iter().filter(|f| !wrong(f)).count();
    print_rates("independent corpus", "everyday", &report, differences, "DENY/ESCALATE label differences");
    let _ = std::io::stderr()
        .write_all(format!("independent corpus: {} known gaps (tests/corpus/known-gaps.txt)\n", gaps.len()).as_bytes());
    let table = |cases: &[&policy::CaseFailure]| {
        cases
            .iter()
            .map(|f| format!("  {:<50} expected {:<9} got {:<9} {}\n", f.name, f.expected, f.got, f.why))
            .collect::<String>()
    };
    // Nothing dangerous gets through.
    assert!(leaks.is_empty(), "{} dangerous independent cases let through:\n{}", leaks.len(), table(&leaks));
    // Everyday work flows.
    assert!(stopped.is_empty(), "{} everyday independent cases stopped:\n{}", stopped.len(), table(&stopped));
}

/// Prints a corpus run's size, block rate and false-positive rate, and a
/// count of other differences.
fn print_rates(name: &str, benign: &str, report: &policy::TestReport, others: usize, what: &str) {
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    let summary = format!(
        "\n{name}: {} cases ({} dangerous, {} {benign}); block rate {:.1}%, false-positive rate {:.1}%, {others} {what}\n",
        report.cases,
        report.dangerous,
        report.benign,
        pct(report.blocked, report.dangerous),
        pct(report.false_positives, report.benign),
    );
    let _ = std::io::stderr().write_all(summary.as_bytes());
}
