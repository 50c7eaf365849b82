//! The fixed binary form of a [`Verdict`]: what the guard VM sends back over
//! the attested channel and hashes into its verdict chain (docs/protocol.md,
//! "Verdict record"). Every field of the verdict survives a round trip, so a
//! verdict from the VM compares equal to an in-process one.
//!
//! Layout (little-endian), version [`VERSION`]:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | intent id |
//! | 8 | 1 | decision (0 ALLOW, 1 ESCALATE, 2 DENY) |
//! | 9 | 1 | stage ([`Stage`] discriminant) |
//! | 10 | 1 | reason code ([`reason_code`]) |
//! | 11 | 1 | malformed detail ([`intent_error_code`], 0 unless reason = malformed) |
//! | 12 | 4 | deciding rule index, `0xFFFF_FFFF` = none |
//! | 16 | 4 | score (i32) |
//! | 20 | 2 | `n` = rule bitset words that follow |
//! | 22 | 2 | reserved, 0 |
//! | 24 | 8·n | matched-rule bitset words |

use crate::Decision;
use crate::bundle::RULE_WORDS;
use crate::dfa::RuleSet;
use crate::eval::{Reason, Stage, Verdict};
use crate::intent::IntentError;

/// Record layout version (the record itself carries none: it lives inside
/// versioned messages).
pub const VERSION: u8 = 1;
/// Bytes before the bitset.
pub const HEADER_LEN: usize = 24;
/// Rule index meaning "no rule".
pub const NO_RULE: u32 = u32::MAX;

/// Length of a record with `rule_words` bitset words.
pub const fn record_len(rule_words: usize) -> usize {
    HEADER_LEN + 8 * rule_words
}

/// Why a record could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// Shorter than its header or its bitset.
    Truncated,
    /// A decision, stage, reason or detail code this version does not define.
    BadCode,
    /// More bitset words than a bundle can have, or a non-zero reserved field.
    BadLayout,
    /// The output buffer is too small.
    BufferTooSmall,
}

const REASONS: [Reason; 26] = [
    Reason::Malformed(IntentError::Cbor),
    Reason::MissingArgument,
    Reason::ToolDenied,
    Reason::ToolEscalated,
    Reason::UnknownTool,
    Reason::ShellUnparseable,
    Reason::ShellTooComplex,
    Reason::ShellMetacharacters,
    Reason::NonAsciiProgram,
    Reason::BannedProgram,
    Reason::BadPath,
    Reason::OutsideWorkspace,
    Reason::PathRule,
    Reason::BadUrl,
    Reason::PlainHttp,
    Reason::Userinfo,
    Reason::IpLiteral,
    Reason::UnlistedDomain,
    Reason::UnlistedDomainUpload,
    Reason::RuleMatched,
    Reason::Score,
    Reason::ShortJustification,
    Reason::Default,
    Reason::UnknownCommand,
    Reason::OpaqueCode,
    Reason::Unresolved,
];

const INTENT_ERRORS: [IntentError; 14] = [
    IntentError::TooLarge,
    IntentError::Cbor,
    IntentError::NotAMap,
    IntentError::IndefiniteLength,
    IntentError::UnknownKey,
    IntentError::DuplicateKey,
    IntentError::Missing("id"),
    IntentError::Missing("agent"),
    IntentError::Missing("tool"),
    IntentError::Missing("args"),
    IntentError::StringTooLong,
    IntentError::TooManyArgs,
    IntentError::TrailingBytes,
    IntentError::EmptyTool,
];

const STAGES: [Stage; 7] =
    [Stage::Schema, Stage::Tools, Stage::Tripwire, Stage::Rules, Stage::Scorer, Stage::Justification, Stage::Default];

/// The code of a reason: its position in the table of docs/protocol.md
/// (0 = malformed … 22 = default, 23 = unknown_command, 24 = opaque_code,
/// 25 = unresolved).
pub fn reason_code(reason: Reason) -> u8 {
    let same = |r: &Reason| core::mem::discriminant(r) == core::mem::discriminant(&reason);
    REASONS.iter().position(same).unwrap_or(0) as u8
}

/// The code of a malformed-intent error: 1-based position in the table of
/// docs/protocol.md (0 = none).
pub fn intent_error_code(error: IntentError) -> u8 {
    INTENT_ERRORS.iter().position(|e| *e == error).map_or(0, |i| i as u8 + 1)
}

/// Writes `verdict` with `rule_words` bitset words into `out`; returns the
/// record length.
pub fn encode(verdict: &Verdict, rule_words: usize, out: &mut [u8]) -> Result<usize, CodecError> {
    if rule_words > RULE_WORDS {
        return Err(CodecError::BadLayout);
    }
    let len = record_len(rule_words);
    let out = out.get_mut(..len).ok_or(CodecError::BufferTooSmall)?;
    let detail = match verdict.reason {
        Reason::Malformed(e) => intent_error_code(e),
        _ => 0,
    };
    out[0..8].copy_from_slice(&verdict.intent_id.to_le_bytes());
    out[8] = verdict.decision as u8;
    out[9] = verdict.stage as u8;
    out[10] = reason_code(verdict.reason);
    out[11] = detail;
    out[12..16].copy_from_slice(&verdict.rule.unwrap_or(NO_RULE).to_le_bytes());
    out[16..20].copy_from_slice(&verdict.score.to_le_bytes());
    out[20..22].copy_from_slice(&(rule_words as u16).to_le_bytes());
    out[22..24].copy_from_slice(&[0, 0]);
    for i in 0..rule_words {
        out[HEADER_LEN + 8 * i..HEADER_LEN + 8 * i + 8].copy_from_slice(&verdict.rules.word(i).to_le_bytes());
    }
    Ok(len)
}

/// Reads one record from the front of `bytes`; returns it and its length.
pub fn decode(bytes: &[u8]) -> Result<(Verdict, usize), CodecError> {
    let header = bytes.get(..HEADER_LEN).ok_or(CodecError::Truncated)?;
    let u16_at = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&header[0..8]);
    let rule_words = u16_at(20) as usize;
    if rule_words > RULE_WORDS || u16_at(22) != 0 {
        return Err(CodecError::BadLayout);
    }
    let len = record_len(rule_words);
    let body = bytes.get(HEADER_LEN..len).ok_or(CodecError::Truncated)?;
    let decision = Decision::from_u8(header[8]).ok_or(CodecError::BadCode)?;
    let stage = *STAGES.get(header[9] as usize).ok_or(CodecError::BadCode)?;
    let mut reason = *REASONS.get(header[10] as usize).ok_or(CodecError::BadCode)?;
    match (reason, header[11]) {
        (Reason::Malformed(_), 0) => return Err(CodecError::BadCode),
        (Reason::Malformed(_), d) => {
            reason = Reason::Malformed(*INTENT_ERRORS.get(d as usize - 1).ok_or(CodecError::BadCode)?)
        }
        (_, 0) => {}
        _ => return Err(CodecError::BadCode),
    }
    let rule = match u32_at(12) {
        NO_RULE => None,
        index => Some(index),
    };
    let mut words = [0u64; RULE_WORDS];
    for (i, chunk) in body.chunks_exact(8).enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        words[i] = u64::from_le_bytes(w);
    }
    let verdict = Verdict {
        intent_id: u64::from_le_bytes(id),
        decision,
        stage,
        reason,
        rule,
        rules: RuleSet::from_words(&words[..rule_words]),
        score: u32_at(16) as i32,
    };
    Ok((verdict, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(reason: Reason) -> Verdict {
        let mut rules = RuleSet::default();
        rules.insert(3);
        rules.insert(70);
        Verdict {
            intent_id: 0x0102_0304_0506_0708,
            decision: Decision::Escalate,
            stage: Stage::Rules,
            reason,
            rule: Some(70),
            rules,
            score: -17,
        }
    }

    #[test]
    fn every_reason_and_detail_round_trips() {
        let mut buf = [0u8; 64];
        let mut reasons: Vec<Reason> = REASONS[1..].to_vec();
        reasons.extend(INTENT_ERRORS.iter().map(|e| Reason::Malformed(*e)));
        for reason in reasons {
            let v = sample(reason);
            let len = encode(&v, 2, &mut buf).unwrap();
            assert_eq!(len, 40);
            assert_eq!(decode(&buf[..len]).unwrap(), (v, len));
        }
    }

    #[test]
    fn no_rule_and_truncation() {
        let mut v = sample(Reason::Default);
        v.rule = None;
        v.rules = RuleSet::default();
        let mut buf = [0u8; 32];
        let len = encode(&v, 1, &mut buf).unwrap();
        assert_eq!(decode(&buf[..len]).unwrap().0, v);
        for cut in 0..len {
            assert_eq!(decode(&buf[..cut]).unwrap_err(), CodecError::Truncated);
        }
        assert_eq!(encode(&v, 2, &mut buf).unwrap_err(), CodecError::BufferTooSmall);
    }

    #[test]
    fn bad_codes_are_refused() {
        let mut buf = [0u8; 32];
        let len = encode(&sample(Reason::Default), 1, &mut buf).unwrap();
        for (at, value) in [(8, 3), (9, 7), (10, 26), (11, 1), (22, 1)] {
            let mut bad = buf;
            bad[at] = value;
            assert!(decode(&bad[..len]).is_err(), "byte {at} = {value}");
        }
        let mut malformed_without_detail = buf;
        malformed_without_detail[10] = 0;
        assert_eq!(decode(&malformed_without_detail[..len]).unwrap_err(), CodecError::BadCode);
    }
}
