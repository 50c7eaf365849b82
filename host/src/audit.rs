//! The auditor's commands over a journal: `vigil journal verify`
//! (no data key), `replay`, `export` and `show` (with it).

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use vigil_attest::dual::DualPublicKey;

use crate::journal::anchor;
use crate::journal::checkpoint::Statement;
use crate::journal::export::{self, cef_line};
use crate::journal::format::{HEADER_LEN, Header};
use crate::journal::replay::{self, ReplayReport};
use crate::journal::scan::{self, Reach, ScanOptions, ScanSummary};
use crate::journal::{JournalError, MasterKey};
use crate::keys;

/// Reads a pinned platform key (`platform.pub`).
pub fn read_trust(path: &Path) -> Result<DualPublicKey> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the public key {}", path.display()))?;
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

/// What `vigil journal verify` checks besides the chain and signatures.
#[derive(Debug, Default)]
pub struct VerifyOptions {
    /// Unsealed frames (after the last checkpoint) do not fail the check —
    /// for a journal whose writer is still running.
    pub allow_unsealed: bool,
    /// Anchors (files or printed marks) the journal must still reach.
    pub anchors: Vec<PathBuf>,
    /// The directory of high-water marks (`DIR/anchors`) to check the
    /// journal against, if it holds one for this journal.
    pub high_water: Option<PathBuf>,
}

/// An anchor or high-water mark, and whether the journal reaches it.
#[derive(Debug, Serialize)]
pub struct MarkCheck {
    /// Where it came from.
    pub source: String,
    /// The mark.
    #[serde(flatten)]
    pub mark: anchor::Mark,
    /// The journal holds frame `seq` with this chain head, and the
    /// checkpoint after it.
    pub reached: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What `vigil journal verify` found.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// The journal.
    pub file: String,
    /// Intact (no tampering, no torn tail), sealed through its last frame
    /// (unless unsealed frames were allowed), and reaching every anchor and
    /// its high-water mark.
    pub ok: bool,
    /// Why not, when not (besides tampering).
    pub problems: Vec<String>,
    /// The anchors given and the high-water mark found.
    pub marks: Vec<MarkCheck>,
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
    Ok(crate::progress::bar(label, file_len(path)? as usize))
}

/// `vigil journal verify`: the chain, every checkpoint's and epoch
/// statement's dual signature, sealing, anchors and the high-water mark.
pub fn verify(file: &Path, trust: &Path, options: &VerifyOptions) -> Result<VerifyReport> {
    verify_with(file, &read_trust(trust)?, options)
}

/// [`verify`] against a platform key already read.
pub fn verify_with(file: &Path, trust: &DualPublicKey, options: &VerifyOptions) -> Result<VerifyReport> {
    let header = read_header(file)?;
    let mut marks: Vec<(String, anchor::Mark)> = Vec::new();
    for path in &options.anchors {
        let mark = anchor::read_mark(path, trust).map_err(anyhow::Error::msg)?;
        marks.push((path.display().to_string(), mark));
    }
    // A journal replaced by another (a fresh header, another id) has no
    // mark of its own; the mark recorded for this path says what was here.
    let mut replaced = None;
    if let Some(dir) = &options.high_water {
        match anchor::read_high_water(dir, &header.journal_id, trust)? {
            Some((path, mark)) => marks.push((format!("high-water mark {}", path.display()), mark)),
            None => {
                if let Ok(real) = std::fs::canonicalize(file)
                    && let Some((path, id)) = anchor::find_by_path(dir, &real)
                    && id != header.journal_id
                    && anchor::read_high_water(dir, &id, trust)?.is_some()
                {
                    replaced = Some(format!(
                        "high-water mark {}: journal {} was at this path, and the file holds journal {}: it was replaced",
                        path.display(),
                        hex::encode(id),
                        hex::encode(header.journal_id)
                    ));
                }
            }
        }
    }
    let mut heads: BTreeMap<u64, String> = marks.iter().map(|(_, m)| (m.seq, String::new())).collect();
    let bar = byte_progress("verify", file)?;
    let mut n = 0u64;
    // The header read above, and the journal scanned, must be one journal.
    let options_scan =
        ScanOptions { trust: Some(trust), reach: Some(Reach::journal(header.journal_id)), ..Default::default() };
    let result = scan::scan_file(file, options_scan, |f| {
        n += 1;
        if n.is_multiple_of(4096) {
            bar.set_position(f.offset);
        }
        if let Some(head) = heads.get_mut(&f.seq) {
            *head = hex::encode(f.chain);
        }
        Ok(())
    });
    bar.finish_and_clear();
    let (summary, tampered) = split_tampering(result, file, "verifying")?;
    let mut problems: Vec<String> = replaced.into_iter().collect();
    let mut checks = Vec::new();
    if let Some(s) = &summary {
        problems.extend(tail_problems(s, options.allow_unsealed));
        let last = s.next_seq - 1;
        for (source, mark) in marks {
            let detail = if mark.journal_id != s.journal_id {
                Some(format!("the anchor is for journal {}, not {}", mark.journal_id, s.journal_id))
            } else if last <= mark.seq {
                Some(format!(
                    "the journal ends at seq {last}, short of the mark's seq {} and the checkpoint after it (seq {}), which it had reached: it was cut back or replaced",
                    mark.seq,
                    mark.seq + 1
                ))
            } else if heads.get(&mark.seq).map(String::as_str) != Some(mark.head.as_str()) {
                Some(format!("the journal has another chain head at seq {}: it was rewritten or replaced", mark.seq))
            } else {
                None
            };
            if let Some(d) = &detail {
                problems.push(format!("{source}: {d}"));
            }
            checks.push(MarkCheck { source, mark, reached: detail.is_none(), detail });
        }
    }
    Ok(VerifyReport {
        file: file.display().to_string(),
        ok: summary.is_some() && problems.is_empty(),
        problems,
        marks: checks,
        summary,
        tampered,
    })
}

/// What is wrong with the end of a scanned journal: a torn tail, and
/// frames no checkpoint seals yet (unless `allow_unsealed`).
fn tail_problems(s: &ScanSummary, allow_unsealed: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(t) = &s.torn {
        problems.push(format!("the journal ends in a torn tail at seq {} (opening it for append cuts it)", t.seq));
    }
    if s.unsealed > 0 && !allow_unsealed {
        problems.push(format!(
            "{} frames after the last checkpoint are unsealed: no platform signature covers them yet (a writer crashed or is still writing; --allow-unsealed accepts that)",
            s.unsealed
        ));
    }
    problems
}

/// The key directory's high-water marks (`DIR/anchors`), when it has any.
pub fn high_water_dir(key_dir: &Path) -> Option<PathBuf> {
    Some(key_dir.join("anchors")).filter(|d| d.is_dir())
}

/// Runs [`verify_with`] before a command that reads the journal for an
/// auditor (`replay`, `export`, `anchor`, `cost verify`) and errors with
/// every problem it found — tampering, a torn tail, unsealed frames
/// (unless allowed), an anchor or the high-water mark not reached — so
/// that a journal cut back to an earlier checkpoint, or ending torn, is
/// never exported, anchored or replayed as if it were whole. `doing` says
/// what was refused.
///
/// Returns the end it verified, for the command's own read of the journal
/// to reach ([`ScanOptions::reach`]): a file cut back or swapped for an
/// older copy between the check and that read fails it.
pub fn require_intact(
    file: &Path,
    trust: &DualPublicKey,
    options: &VerifyOptions,
    doing: &str,
) -> Result<Option<scan::Reach>> {
    let report = verify_with(file, trust, options)?;
    if let Some(t) = &report.tampered {
        bail!(
            "not {doing} {}: it is tampered at seq {}, offset {}: {} (`vigil journal verify` says more)",
            file.display(),
            t.seq,
            t.offset,
            t.detail
        );
    }
    if !report.problems.is_empty() {
        bail!("not {doing} {}: {} (`vigil journal verify` says more)", file.display(), report.problems.join("; "));
    }
    Ok(report.summary.as_ref().map(ScanSummary::reach))
}

/// Reads and checks a journal's file header.
fn read_header(file: &Path) -> Result<Header> {
    let mut bytes = Vec::with_capacity(HEADER_LEN);
    std::fs::File::open(file)
        .and_then(|f| f.take(HEADER_LEN as u64).read_to_end(&mut bytes))
        .with_context(|| format!("reading {}", file.display()))?;
    Header::decode(&bytes).with_context(|| format!("{}", file.display()))
}

/// What `vigil journal anchor` made.
#[derive(Debug, Serialize)]
pub struct AnchorReport {
    /// The journal.
    pub file: String,
    /// Where the anchor file was written.
    pub output: String,
    /// The mark.
    #[serde(flatten)]
    pub mark: anchor::Mark,
    /// The short printable form, for a paper log.
    pub printable: String,
}

/// `vigil journal anchor`: the newest checkpoint of a verified journal, as
/// an anchor file for an external witness.
///
/// The journal must verify whole first ([`require_intact`] with
/// `high_water`; frames after the last checkpoint are allowed: the anchor
/// covers that checkpoint): an anchor of a journal cut back or torn would
/// vouch for the cut.
pub fn export_anchor(file: &Path, trust: &Path, output: &Path, high_water: Option<PathBuf>) -> Result<AnchorReport> {
    crate::output_file::refuse_input(output, file)?;
    let trust = read_trust(trust)?;
    let options = VerifyOptions { allow_unsealed: true, anchors: Vec::new(), high_water };
    let reach = require_intact(file, &trust, &options, "anchoring")?;
    let mut last = None;
    let summary = scan::scan_file(file, ScanOptions { trust: Some(&trust), reach, ..Default::default() }, |f| {
        if f.kind == crate::journal::Kind::Checkpoint {
            last = Some(f.public.to_vec());
        }
        Ok(())
    })
    .with_context(|| format!("verifying {}", file.display()))?;
    let Some(public) = last else {
        bail!("{} has no checkpoint yet: there is nothing signed to anchor", file.display());
    };
    let statement = Statement::decode(&public).map_err(anyhow::Error::msg)?;
    let id = summary.header().journal_id;
    let a = anchor::Anchor::new(&id, &statement, std::fs::canonicalize(file).ok().as_deref());
    let (_, mark) = anchor::Anchor::decode_verified(&a.encode(), &trust).map_err(anyhow::Error::msg)?;
    crate::output_file::write_private(output, &a.encode())?;
    Ok(AnchorReport {
        file: file.display().to_string(),
        output: output.display().to_string(),
        printable: mark.printable(),
        mark,
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

/// Where `journal.key` and `platform.pub` come from.
pub struct KeySource {
    /// The master key.
    pub master: MasterKey,
    /// The pinned platform key.
    pub trust: DualPublicKey,
}

impl KeySource {
    /// The key directory's `journal.key`, and `trust` or its `platform.pub`.
    pub fn load(dir: &Path, trust: Option<&Path>) -> Result<KeySource> {
        let master = keys::read_journal_key(dir)?;
        let trust_path: PathBuf = trust.map(Path::to_path_buf).unwrap_or_else(|| dir.join("platform.pub"));
        Ok(KeySource { master, trust: read_trust(&trust_path)? })
    }
}

/// What `vigil journal replay` found (or the tampering that stopped it).
#[derive(Debug, Serialize)]
pub struct ReplayOutcome {
    /// The journal.
    pub file: String,
    /// Everything verified and replayed equal, and the journal is whole
    /// (no `problems`).
    pub ok: bool,
    /// What `vigil journal verify` would also fail the journal for: a torn
    /// tail, unsealed frames (unless allowed), an anchor or the key
    /// directory's high-water mark not reached.
    pub problems: Vec<String>,
    /// The replay, when no tampering stopped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ReplayReport>,
    /// The tampering, if found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tampered: Option<Tampering>,
}

/// `vigil journal replay`: first everything `vigil journal verify` checks
/// under `options` (the marks, the tail), then the replay.
pub fn replay(
    file: &Path,
    keys: &KeySource,
    reference: &crate::reference::Reference,
    allow_test_image: bool,
    options: &VerifyOptions,
) -> Result<ReplayOutcome> {
    let verified = verify_with(file, &keys.trust, options)?;
    if let Some(t) = verified.tampered {
        return Ok(ReplayOutcome {
            file: file.display().to_string(),
            ok: false,
            problems: verified.problems,
            report: None,
            tampered: Some(t),
        });
    }
    let mut problems = verified.problems;
    // The replay's own read must reach the end verified just now.
    let reach = verified.summary.as_ref().map(ScanSummary::reach);
    let bar = byte_progress("replay", file)?;
    let mut n = 0u64;
    let result =
        replay::replay_reaching(file, &keys.master, &keys.trust, reference, allow_test_image, reach, |offset| {
            n += 1;
            if n.is_multiple_of(4096) {
                bar.set_position(offset);
            }
        });
    bar.finish_and_clear();
    let (report, tampered) = split_tampering(result, file, "replaying")?;
    // A writer may have appended since the check: the replay's own scan
    // says how the journal it read ends.
    if let Some(r) = &report {
        for p in tail_problems(&r.scan, options.allow_unsealed) {
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
    }
    Ok(ReplayOutcome {
        file: file.display().to_string(),
        ok: report.as_ref().is_some_and(|r| r.ok) && problems.is_empty(),
        problems,
        report,
        tampered,
    })
}

/// `vigil journal export`: JSON Lines or CEF, to `output` (atomically) or
/// standard output; the frames from `from_seq` on (all are verified).
///
/// The journal is verified whole first ([`require_intact`] under
/// `options`), and the frames read are checked again for a torn or
/// unsealed end before an output file replaces its destination.
pub fn export(
    file: &Path,
    keys: &KeySource,
    cef: bool,
    output: Option<&Path>,
    from_seq: u64,
    options: &VerifyOptions,
) -> Result<u64> {
    if let Some(path) = output {
        crate::output_file::refuse_input(path, file)?;
    }
    let reach = require_intact(file, &keys.trust, options, "exporting")?;
    let bar = byte_progress("export", file)?;
    let mut lines = 0u64;
    let mut write_all = |out: &mut dyn Write| -> Result<()> {
        let mut io_error = None;
        let summary = export::describe_all(file, &keys.master, Some(&keys.trust), reach, |offset, v| {
            if v["seq"].as_u64().is_some_and(|seq| seq < from_seq) {
                return Ok(());
            }
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
        out.flush().context("writing the export")?;
        let problems = tail_problems(&summary, options.allow_unsealed);
        if !problems.is_empty() {
            bail!("not exporting {}: {}", file.display(), problems.join("; "));
        }
        Ok(())
    };
    match output {
        Some(path) => {
            // Streamed into a private temporary file that replaces `path`
            // only once the whole journal has verified and been written; on
            // any error it is removed (crate::output_file).
            let mut file = crate::output_file::AtomicFile::create(path, crate::output_file::Access::Private)?;
            let mut out = BufWriter::new(&mut file);
            write_all(&mut out)?;
            drop(out);
            file.commit()?;
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
    let summary = export::describe_all(file, &keys.master, Some(&keys.trust), None, |_, v| {
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
