//! Verdict records of test cases, by any judge: the encoded verdict
//! (decision, stage, reason, deciding rule, score, every matched rule;
//! docs/protocol.md) is what lets judges be compared byte for byte — in
//! process against the guard VM, one architecture against another, and
//! later the FPGA judge. The text form is `NAME<TAB>RECORD-HEX` per case,
//! as `tests/corpus/verdict-records.txt` holds it.

use anyhow::{Context, Result};
use vigil_guard::verdict_codec;

use crate::judge::InprocJudge;
use crate::policy::Case;
use crate::recording::{Submitted, size_batches};
use crate::vm_judge::VmJudge;

/// The intent bytes of each case (a case that does not convert is judged
/// as the empty, malformed intent: still a record).
fn intents(cases: &[Case]) -> Vec<Vec<u8>> {
    cases.iter().map(|case| case.cbor().unwrap_or_default()).collect()
}

/// Each case's record, judged in this process.
pub fn inproc(bundle: &[u8], cases: &[Case]) -> Result<Vec<Vec<u8>>> {
    let mut arena = crate::judge::dense_arena();
    let judge = InprocJudge::with_dense_copies(bundle, &mut arena)?;
    let words = judge.bundle().rule_count().div_ceil(64).max(1);
    intents(cases)
        .iter()
        .map(|cbor| {
            let verdict = judge.evaluate(cbor);
            let mut record = vec![0; verdict_codec::record_len(words)];
            let n = verdict_codec::encode(&verdict, words, &mut record)
                .map_err(|e| anyhow::anyhow!("encoding a verdict record: {e:?}"))?;
            record.truncate(n);
            Ok(record)
        })
        .collect()
}

/// Each case's record as `judge` (an attested guard, over its channel)
/// sent it, in batches; `progress` is told how many are done.
pub fn guard(judge: &mut VmJudge, cases: &[Case], mut progress: impl FnMut(usize)) -> Result<Vec<Vec<u8>>> {
    let all = intents(cases);
    let submitted: Vec<Submitted<'_>> =
        all.iter().enumerate().map(|(i, cbor)| Submitted { cbor, id: i as u64, detail: None }).collect();
    let mut records = Vec::with_capacity(all.len());
    for chunk in size_batches(&submitted) {
        let refs: Vec<&[u8]> = chunk.iter().map(|s| s.cbor).collect();
        let judged = judge.judge_records(&refs).context("the guard judging the cases")?;
        records.extend(judged.verdicts.into_iter().map(|(_, record)| record));
        progress(records.len());
    }
    Ok(records)
}

/// One line of the text form.
pub fn line(name: &str, record: &[u8]) -> String {
    format!("{name}\t{}", hex::encode(record))
}
