//! How `vigil journal verify` and `replay` print their reports (the
//! library returns them; `--json` prints them as they are).

use std::collections::BTreeMap;

use vigil::audit::{ReplayOutcome, VerifyReport, iso8601};
use vigil::journal::scan::ScanSummary;

fn kinds(by_kind: &BTreeMap<&'static str, u64>) -> String {
    by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

fn print_summary(s: &ScanSummary) {
    println!("  journal id   {}  created {}", s.journal_id, iso8601(s.created_ms));
    println!("  key          fingerprint {}", s.key_fingerprint);
    println!("  frames       {} ({}) in {} epochs, {} bytes", s.frames, kinds(&s.by_kind), s.epoch, s.end);
    println!(
        "  checkpoints  {}{}",
        s.checkpoints,
        if s.signatures_checked { ", every dual signature verified (EdDSA + ML-DSA-65)" } else { "" }
    );
    match s.sealed_through {
        Some(seq) => println!("  sealed       through seq {seq}; {} frames after it are unsealed", s.unsealed),
        None => println!("  sealed       nothing yet; {} frames are unsealed", s.unsealed),
    }
    println!(
        "  closed       {}",
        if s.closed { "yes (closing checkpoint)" } else { "no: the last writer crashed or is still writing" }
    );
    for a in &s.adopted {
        println!(
            "  ADOPTED      seq {}..={}: unsealed frames of a crashed writer, authenticated with the data key only, adopted by the writer of epoch frame {}",
            a.first, a.last, a.epoch_seq
        );
    }
    if let Some(t) = &s.torn {
        println!("  TORN TAIL    {} bytes at offset {} (frame seq {}): {}", t.bytes, t.offset, t.seq, t.reason);
    }
}

/// Prints a verify report.
pub fn print_verify(r: &VerifyReport) {
    println!("journal {}", r.file);
    if let Some(s) = &r.summary {
        print_summary(s);
    }
    for m in &r.marks {
        println!(
            "  anchor       {} seq {}{}: {}",
            m.source,
            m.mark.seq,
            if m.mark.signed { " (signed)" } else { " (printed, unsigned)" },
            if m.reached { "reached" } else { "NOT REACHED" }
        );
    }
    if let Some(t) = &r.tampered {
        println!("FAILED: tampered at seq {}, offset {}: {}", t.seq, t.offset, t.detail);
    } else if r.ok {
        println!("ok: intact — chain, epochs and checkpoints verify, sealed through the last frame");
    } else {
        for p in &r.problems {
            println!("FAILED: {p}");
        }
    }
}

/// Prints a replay outcome.
pub fn print_replay(o: &ReplayOutcome) {
    println!("journal {}", o.file);
    if let Some(t) = &o.tampered {
        println!("FAILED: tampered at seq {}, offset {}: {}", t.seq, t.offset, t.detail);
        return;
    }
    for p in &o.problems {
        println!("  PROBLEM      {p}");
    }
    let Some(r) = &o.report else { return };
    print_summary(&r.scan);
    let (ok, intact, policies) = (o.ok, r.scan.intact(), r.policies);
    let r = &r.counts;
    println!(
        "  verified     boot evidence {}, guard checkpoints {}, policies {}",
        r.boots_verified, r.guard_checkpoints_verified, policies
    );
    println!(
        "  verdicts     {} ({}){}",
        r.verdicts,
        r.by_decision.iter().map(|(d, n)| format!("{d} {n}")).collect::<Vec<_>>().join(", "),
        if r.judge_failures > 0 {
            format!(", {} fail-closed after a judge failure", r.judge_failures)
        } else {
            String::new()
        }
    );
    for c in r.judge_failure_causes.iter().take(20) {
        println!(
            "  JUDGE FAILED {} verdicts from seq {} ({} judge{}): {}",
            c.count,
            c.first_seq,
            c.judge,
            c.boot_seq.map(|b| format!(", boot frame {b}")).unwrap_or_else(|| ", never booted".into()),
            vigil::vmm::guest_text::escape(c.reason.as_bytes())
        );
    }
    if r.vm_verdicts_uncovered > 0 {
        println!(
            "  uncovered    {} guard verdicts after their guard's last checkpoint (the writer crashed or the guard failed before the next one)",
            r.vm_verdicts_uncovered
        );
    }
    let mut agents: Vec<(&String, &u64)> = r.agents.iter().collect();
    agents.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let shown: Vec<String> = agents.iter().take(5).map(|(a, n)| format!("{a} {n}")).collect();
    println!("  agents       {} ({}{})", r.agents.len(), shown.join(", "), if agents.len() > 5 { ", …" } else { "" });
    if let (Some(first), Some(last)) = (r.first_ms, r.last_ms) {
        println!("  time span    {} .. {}", iso8601(first), iso8601(last));
    }
    if !r.approvals.is_empty() {
        let shown: Vec<String> = r.approvals.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("  approvals    {} ({})", r.approvals.values().sum::<u64>(), shown.join(", "));
    }
    println!("  re-evaluated {} equal, {} mismatches", r.replayed_equal, r.mismatches.len());
    for m in r.mismatches.iter().take(50) {
        println!(
            "  MISMATCH     seq {} intent {}: recorded {}, replayed {}",
            m.seq, m.intent_id, m.recorded, m.replayed
        );
    }
    for f in r.failures.iter().take(50) {
        println!("  FAILURE      seq {}: {}", f.seq, f.detail);
    }
    if ok {
        println!("ok: every frame verifies and every verdict replays equal");
    } else if !intact {
        println!("FAILED: the journal ends in a torn tail");
    } else if !o.problems.is_empty() {
        println!("FAILED: the journal is not whole (PROBLEM above), whatever its verdicts replay to");
    } else {
        println!("FAILED: {} mismatches, {} failures", r.mismatches.len(), r.failures.len());
    }
}

/// Tells the user (stderr) what opening the journal found: a torn tail
/// cut, frames of a crashed writer adopted.
pub fn say_what_open_found(recorder: &vigil::recording::Recorder) {
    let path = recorder.path().display();
    let report = recorder.report();
    if let Some(cut) = &report.cut {
        eprintln!(
            "journal {path}: cut a torn tail of {} bytes (frame seq {}, {}) left by a crash",
            cut.bytes, cut.seq, cut.reason
        );
    }
    if let Some((first, last)) = report.adopted {
        eprintln!(
            "journal {path}: adopted frames {first}..={last}, left unsealed by a writer that crashed (they authenticate under journal.key; the new epoch records the adoption)"
        );
    }
}
