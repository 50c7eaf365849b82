//! How `vigil policy compile | check | test` print their reports.

use vigil::policy::{CompileSummary, TestReport};

/// Prints a summary as text.
pub fn print_summary(s: &CompileSummary) {
    println!("policy   {}", s.name);
    println!("sha384   {}", s.sha384);
    println!(
        "size     {} bytes, {} rules, {} DFAs, compiled in {:.1} ms",
        s.bytes,
        s.rules,
        s.dfas.len(),
        s.compile_ms
    );
    let (bytes, budget) = (s.bytes, s.on_chip_budget);
    if s.fits_on_chip {
        println!("on chip  within the {budget}-byte table budget of an FPGA judge ({} bytes to spare)", budget - bytes);
    } else {
        println!(
            "on chip  over the {budget}-byte table budget of an FPGA judge by {} bytes: still a valid bundle (the guard takes up to 8 MiB), but an FPGA judge's block RAM would not hold it",
            bytes - budget
        );
    }
    for (i, d) in s.dfas.iter().enumerate() {
        let table = match (d.sparse, d.templates) {
            (false, _) => "dense".to_string(),
            (true, 0) => "sparse".to_string(),
            (true, 1) => "sparse, 1 template".to_string(),
            (true, n) => format!("sparse, {n} templates"),
        };
        println!(
            "  dfa {i:>3}  {:<8} {:<14} {:>4} patterns {:>6} states {:>3} columns {:>7} bytes  {table}",
            d.class, d.start, d.patterns, d.states, d.alphabet, d.bytes
        );
    }
    if let Some(out) = &s.output {
        println!("written  {out}");
    }
}

/// Prints a test report as text.
pub fn print_test_report(r: &TestReport) {
    if !r.failures.is_empty() {
        println!("{:<48} {:<9} {:<9} why", "case", "expected", "got");
        for f in &r.failures {
            println!("{:<48} {:<9} {:<9} {}", f.name, f.expected, f.got, f.why);
        }
    }
    let pct = |a: usize, b: usize| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
    println!(
        "{} cases, {} failed; block rate {:.1}% ({}/{} dangerous), false-positive rate {:.1}% ({}/{} benign)",
        r.cases,
        r.failures.len(),
        pct(r.blocked, r.dangerous),
        r.blocked,
        r.dangerous,
        pct(r.false_positives, r.benign),
        r.false_positives,
        r.benign
    );
}

/// Prints `vigil policy suggest`: each candidate as policy TOML, with what
/// it would have changed.
pub fn print_suggestions(report: &vigil::suggest::SuggestReport) {
    println!(
        "# {} verdicts read, {} ESCALATE. Candidates, most verdicts changed first; none is applied.",
        report.verdicts, report.escalated
    );
    if report.suggestions.is_empty() && report.escalated == 0 {
        println!("# no candidates: nothing was escalated");
    } else if report.suggestions.is_empty() {
        println!(
            "# no candidates: no single allow rule this command proposes (a command shape, a tool, a domain) would make any of the {} escalated verdicts ALLOW",
            report.escalated
        );
    }
    for s in &report.suggestions {
        println!();
        println!(
            "# {} `{}`: would have made {} of {} escalated verdicts ALLOW (appears in {})",
            s.kind, s.subject, s.would_allow, report.escalated, s.seen
        );
        print!("{}", s.toml);
    }
}
