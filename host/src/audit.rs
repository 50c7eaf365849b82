//! The auditor's commands over a journal: `vigil journal verify`
//! (no data key), `replay`, `export` and `show` (with it).

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use vigil_attest::dual::DualPublicKey;

use crate::journal::export::{self, cef_line};
use crate::journal::replay::{self, ReplayReport};
use crate::journal::scan::{self, ScanOptions, ScanSummary};
use crate::journal::{JournalError, MasterKey};
use crate::keys;

/// Reads a pinned platform key (`platform.pub`).
pub fn read_trust(path: &Path) -> Result<DualPublicKey> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the platform key {}", path.display()))?;
    keys::read_cose_key_set(&bytes).with_context(|| format!("{}", path.display()))
}

/// A journal whose damage was found: where and what.
#[derive(Debug, Serialize)]
pub struct Tampering {
    /// The expected seq of the damaged frame.
    pub seq: u64,
    /// Its byte offset.
    pub offset: u64,
    /// What did not check out.
    pub detail: String,
}

/// What `vigil journal verify` found.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// The journal.
    pub file: String,
    /// Intact: no tampering, no torn tail.
    pub ok: bool,
    /// The scan, when no tampering stopped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<ScanSummary>,
    /// The tampering, if found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tampered: Option<Tampering>,
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len())
}

/// A byte-position progress bar on a terminal.
fn byte_progress(label: &'static str, path: &Path) -> Result<indicatif::ProgressBar> {
    Ok(crate::bench::progress(label, file_len(path)? as usize))
}

/// `vigil journal verify`: the chain and every checkpoint's dual signature.
pub fn verify(file: &Path, trust: &Path) -> Result<VerifyReport> {
    let trust = read_trust(trust)?;
    let bar = byte_progress("verify", file)?;
    let mut n = 0u64;
    let result = scan::scan_file(file, ScanOptions { trust: Some(&trust), key: None }, |f| {
        n += 1;
        if n.is_multiple_of(4096) {
            bar.set_position(f.offset);
        }
        Ok(())
    });
    bar.finish_and_clear();
    let (summary, tampered) = split_tampering(result, file, "verifying")?;
    Ok(VerifyReport {
        file: file.display().to_string(),
        ok: summary.as_ref().is_some_and(ScanSummary::intact),
        summary,
        tampered,
    })
}

/// Separates tampering (a finding to report) from errors that stop the
/// command (unreadable file, wrong key).
fn split_tampering<T>(
    result: Result<T, JournalError>,
    file: &Path,
    doing: &str,
) -> Result<(Option<T>, Option<Tampering>)> {
    match result {
        Ok(found) => Ok((Some(found), None)),
        Err(JournalError::Tampered { seq, offset, detail }) => Ok((None, Some(Tampering { seq, offset, detail }))),
        Err(e) => Err(e).with_context(|| format!("{doing} {}", file.display())),
    }
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian).
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

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
    if let Some(t) = &r.tampered {
        println!("FAILED: tampered at seq {}, offset {}: {}", t.seq, t.offset, t.detail);
    } else if r.ok {
        println!("ok: intact — chain and checkpoints verify");
    } else {
        println!("FAILED: the journal ends in a torn tail (opening it for append cuts and reports it)");
    }
}

/// Where `journal.key` and `platform.pub` come from.
pub struct KeySource {
    /// The master key.
    pub master: MasterKey,
    /// The pinned platform key.
    pub trust: DualPublicKey,
}

impl KeySource {
    /// The key directory's `journal.key`, and `trust` or its `platform.pub`.
    pub fn load(dir: Option<&Path>, trust: Option<&Path>) -> Result<KeySource> {
        let dir = keys::key_dir(dir)?;
        let master = keys::read_journal_key(&dir)?;
        let trust_path: PathBuf = trust.map(Path::to_path_buf).unwrap_or_else(|| dir.join("platform.pub"));
        Ok(KeySource { master, trust: read_trust(&trust_path)? })
    }
}

/// What `vigil journal replay` found (or the tampering that stopped it).
#[derive(Debug, Serialize)]
pub struct ReplayOutcome {
    /// The journal.
    pub file: String,
    /// Everything verified and replayed equal.
    pub ok: bool,
    /// The replay, when no tampering stopped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ReplayReport>,
    /// The tampering, if found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tampered: Option<Tampering>,
}

/// `vigil journal replay`.
pub fn replay(file: &Path, keys: &KeySource, reference: Option<&Path>) -> Result<ReplayOutcome> {
    let reference = reference.map(crate::verify::reference_image).transpose()?;
    let bar = byte_progress("replay", file)?;
    let mut n = 0u64;
    let result = replay::replay(file, &keys.master, &keys.trust, reference.as_ref(), |offset| {
        n += 1;
        if n.is_multiple_of(4096) {
            bar.set_position(offset);
        }
    });
    bar.finish_and_clear();
    let (report, tampered) = split_tampering(result, file, "replaying")?;
    Ok(ReplayOutcome { file: file.display().to_string(), ok: report.as_ref().is_some_and(|r| r.ok), report, tampered })
}

/// Prints a replay outcome.
pub fn print_replay(o: &ReplayOutcome) {
    println!("journal {}", o.file);
    if let Some(t) = &o.tampered {
        println!("FAILED: tampered at seq {}, offset {}: {}", t.seq, t.offset, t.detail);
        return;
    }
    let Some(r) = &o.report else { return };
    print_summary(&r.scan);
    let (ok, intact, policies) = (r.ok, r.scan.intact(), r.policies);
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
    let mut agents: Vec<(&String, &u64)> = r.agents.iter().collect();
    agents.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let shown: Vec<String> = agents.iter().take(5).map(|(a, n)| format!("{a} {n}")).collect();
    println!("  agents       {} ({}{})", r.agents.len(), shown.join(", "), if agents.len() > 5 { ", …" } else { "" });
    if let (Some(first), Some(last)) = (r.first_ms, r.last_ms) {
        println!("  time span    {} .. {}", iso8601(first), iso8601(last));
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
    } else {
        println!("FAILED: {} mismatches, {} failures", r.mismatches.len(), r.failures.len());
    }
}

/// `vigil journal export`: JSON Lines or CEF, to `output` (atomically) or
/// standard output.
pub fn export(file: &Path, keys: &KeySource, cef: bool, output: Option<&Path>) -> Result<u64> {
    let bar = byte_progress("export", file)?;
    let mut lines = 0u64;
    let mut write_all = |out: &mut dyn Write| -> Result<()> {
        let mut io_error = None;
        export::describe_all(file, &keys.master, Some(&keys.trust), |offset, v| {
            lines += 1;
            if lines.is_multiple_of(4096) {
                bar.set_position(offset);
            }
            let line = if cef { cef_line(&v) } else { v.to_string() };
            if let Err(e) = writeln!(out, "{line}") {
                io_error = Some(e);
                return Err(JournalError::Failed("writing the export".into()));
            }
            Ok(())
        })
        .map_err(|e| match io_error.take() {
            Some(io) => anyhow::Error::new(io).context("writing the export"),
            None => anyhow::Error::new(e).context(format!("exporting {}", file.display())),
        })?;
        out.flush().context("writing the export")
    };
    match output {
        Some(path) => {
            let mut bytes = Vec::new();
            write_all(&mut bytes)?;
            crate::policy::write_atomically(path, &bytes)?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            write_all(&mut out)?;
        }
    }
    bar.finish_and_clear();
    Ok(lines)
}

/// `vigil journal show`: one frame, decrypted (the whole journal is
/// verified on the way).
pub fn show(file: &Path, keys: &KeySource, seq: u64) -> Result<serde_json::Value> {
    let mut found = None;
    let summary = export::describe_all(file, &keys.master, Some(&keys.trust), |_, v| {
        if v["seq"] == seq {
            found = Some(v);
        }
        Ok(())
    })
    .with_context(|| format!("reading {}", file.display()))?;
    match found {
        Some(v) => Ok(v),
        None => bail!("{} has no frame seq {seq} (its frames are 1..={})", file.display(), summary.next_seq - 1),
    }
}
