//! Batch messages: the plaintext carried inside channel records
//! (docs/protocol.md, "Batch messages"). One record holds many intents, so
//! a batch costs one mailbox round trip.
//!
//! Request (client → guard), little-endian:
//! `version u8 (2) || op u8 || reserved u16 (0) || count u32 ||
//! count × (length u32 || intent CBOR)`.
//!
//! Reply (guard → client):
//! `version u8 (2) || op u8 (echo) || status u8 || reserved u8 (0) ||
//! count u32 || chain count u64 || judge ticks u64 || count × verdict
//! record || checkpoint length u32 || checkpoint`. The chain count is the
//! guard's verdict total after this batch; the judge ticks are the guard's
//! counter (TSC, `CNTVCT_EL0`) elapsed while it judged the batch's intents
//! (the cost the guard vouches for, docs/cost.md); the checkpoint is empty
//! or one `vigil_attest::checkpoint` encoding.

/// Message version (2: the reply carries the judge ticks).
pub const VERSION: u8 = 2;
/// Request header length.
pub const REQUEST_HEADER_LEN: usize = 8;
/// Reply header length.
pub const REPLY_HEADER_LEN: usize = 24;
/// Most intents in one batch.
pub const MAX_INTENTS: usize = 4096;

/// Operations.
pub mod op {
    /// Judge the intents of the batch.
    pub const JUDGE: u8 = 1;
    /// Judge nothing; reply with a checkpoint of the chain as it stands.
    pub const CHECKPOINT: u8 = 2;
}

/// Reply status.
pub mod reply_status {
    /// Every intent was judged.
    pub const OK: u8 = 0;
    /// The request is malformed (version, op, framing, count); nothing was
    /// judged and the chain did not move.
    pub const MALFORMED: u8 = 1;
    /// The verdicts would not fit one reply; nothing was judged.
    pub const TOO_LARGE: u8 = 2;
    /// Signing the checkpoint failed.
    pub const CHECKPOINT_FAILED: u8 = 3;
}

/// Why a batch request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// Shorter than its header, or an intent runs past the end.
    Truncated,
    /// Unknown version or op, non-zero reserved bytes, too many intents,
    /// or bytes after the last intent.
    Malformed,
}

/// A parsed batch request, borrowing the message.
#[derive(Clone, Copy, Debug)]
pub struct BatchRequest<'m> {
    /// [`op`] code.
    pub op: u8,
    /// Number of intents.
    pub count: usize,
    body: &'m [u8],
}

impl<'m> BatchRequest<'m> {
    /// Parses and checks the framing of every intent (not their content).
    pub fn parse(message: &'m [u8]) -> Result<Self, BatchError> {
        let header = message.get(..REQUEST_HEADER_LEN).ok_or(BatchError::Truncated)?;
        let count = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let known_op = matches!(header[1], op::JUDGE | op::CHECKPOINT);
        if header[0] != VERSION || !known_op || header[2..4] != [0, 0] || count > MAX_INTENTS {
            return Err(BatchError::Malformed);
        }
        if header[1] == op::CHECKPOINT && count != 0 {
            return Err(BatchError::Malformed);
        }
        let request = BatchRequest { op: header[1], count, body: &message[REQUEST_HEADER_LEN..] };
        let mut seen = 0;
        let mut rest = request.body;
        while !rest.is_empty() {
            let (_, tail) = split_intent(rest)?;
            rest = tail;
            seen += 1;
            if seen > count {
                return Err(BatchError::Malformed);
            }
        }
        if seen != count {
            return Err(BatchError::Truncated);
        }
        Ok(request)
    }

    /// The intents, in order.
    pub fn intents(&self) -> impl Iterator<Item = &'m [u8]> + 'm {
        let mut rest = self.body;
        core::iter::from_fn(move || {
            let (intent, tail) = split_intent(rest).ok()?;
            rest = tail;
            Some(intent)
        })
    }
}

fn split_intent(bytes: &[u8]) -> Result<(&[u8], &[u8]), BatchError> {
    let len = bytes.get(..4).ok_or(BatchError::Truncated)?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let end = 4usize.checked_add(len).ok_or(BatchError::Truncated)?;
    let intent = bytes.get(4..end).ok_or(BatchError::Truncated)?;
    Ok((intent, &bytes[end..]))
}

/// Bytes a request with these intents takes.
pub fn request_len<'a>(intents: impl IntoIterator<Item = &'a [u8]>) -> usize {
    REQUEST_HEADER_LEN + intents.into_iter().map(|i| 4 + i.len()).sum::<usize>()
}

/// Writes a request header for `count` intents of `op` into `out[..8]`.
pub fn write_request_header(out: &mut [u8], op: u8, count: u32) {
    out[0] = VERSION;
    out[1] = op;
    out[2..4].copy_from_slice(&[0, 0]);
    out[4..8].copy_from_slice(&count.to_le_bytes());
}

/// The reply header's fields after version and op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyHeader {
    /// A [`reply_status`] code.
    pub status: u8,
    /// Verdicts that follow.
    pub count: u32,
    /// The guard's verdict total after this batch.
    pub chain_count: u64,
    /// Counter ticks the guard spent judging this batch's intents.
    pub judge_ticks: u64,
}

/// Writes a reply header into `out[..24]`.
pub fn write_reply_header(out: &mut [u8], op: u8, header: ReplyHeader) {
    out[0] = VERSION;
    out[1] = op;
    out[2] = header.status;
    out[3] = 0;
    out[4..8].copy_from_slice(&header.count.to_le_bytes());
    out[8..16].copy_from_slice(&header.chain_count.to_le_bytes());
    out[16..24].copy_from_slice(&header.judge_ticks.to_le_bytes());
}

/// Reads a reply header for `op`: `None` when it is short or its version,
/// op or reserved byte is wrong.
pub fn read_reply_header(reply: &[u8], op: u8) -> Option<ReplyHeader> {
    let h = reply.get(..REPLY_HEADER_LEN)?;
    if h[0] != VERSION || h[1] != op || h[3] != 0 {
        return None;
    }
    let u32_at = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let u64_at = |at: usize| u64::from(u32_at(at)) | (u64::from(u32_at(at + 4)) << 32);
    Some(ReplyHeader { status: h[2], count: u32_at(4), chain_count: u64_at(8), judge_ticks: u64_at(16) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(op: u8, intents: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0u8; REQUEST_HEADER_LEN];
        write_request_header(&mut out, op, intents.len() as u32);
        for i in intents {
            out.extend_from_slice(&(i.len() as u32).to_le_bytes());
            out.extend_from_slice(i);
        }
        assert_eq!(out.len(), request_len(intents.iter().copied()));
        out
    }

    #[test]
    fn reply_headers_round_trip_and_refuse_another_version_or_op() {
        let header = ReplyHeader { status: 0, count: 7, chain_count: 1 << 40, judge_ticks: 123_456_789_012 };
        let mut out = [0u8; REPLY_HEADER_LEN];
        write_reply_header(&mut out, op::JUDGE, header);
        assert_eq!(read_reply_header(&out, op::JUDGE), Some(header));
        assert_eq!(read_reply_header(&out, op::CHECKPOINT), None);
        assert_eq!(read_reply_header(&out[..REPLY_HEADER_LEN - 1], op::JUDGE), None);
        let mut old = out;
        old[0] = 1;
        assert_eq!(read_reply_header(&old, op::JUDGE), None, "version 1 replies have no ticks");
        let mut reserved = out;
        reserved[3] = 1;
        assert_eq!(read_reply_header(&reserved, op::JUDGE), None);
    }

    #[test]
    fn intents_come_back_in_order() {
        let msg = request(op::JUDGE, &[b"one", b"", b"three"]);
        let parsed = BatchRequest::parse(&msg).unwrap();
        assert_eq!(parsed.count, 3);
        assert_eq!(parsed.intents().collect::<Vec<_>>(), [&b"one"[..], b"", b"three"]);
    }

    #[test]
    fn framing_errors_are_refused() {
        let msg = request(op::JUDGE, &[b"one", b"two"]);
        for cut in 0..msg.len() {
            assert!(BatchRequest::parse(&msg[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = msg.clone();
        extra.push(0);
        assert!(BatchRequest::parse(&extra).is_err());
        for (at, value) in [(0, 1), (0, 3), (1, 9), (2, 1), (4, 3), (4, 1)] {
            let mut bad = msg.clone();
            bad[at] = value;
            assert!(BatchRequest::parse(&bad).is_err(), "byte {at} = {value}");
        }
        let mut huge = msg.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(BatchRequest::parse(&huge).unwrap_err(), BatchError::Truncated);
        let mut too_many = request(op::JUDGE, &[]);
        too_many[4..8].copy_from_slice(&(MAX_INTENTS as u32 + 1).to_le_bytes());
        assert_eq!(BatchRequest::parse(&too_many).unwrap_err(), BatchError::Malformed);
        assert!(BatchRequest::parse(&request(op::CHECKPOINT, &[b"x"])).is_err());
        assert_eq!(BatchRequest::parse(&request(op::CHECKPOINT, &[])).unwrap().count, 0);
    }
}
