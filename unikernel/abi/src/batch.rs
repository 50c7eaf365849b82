//! Batch messages: the plaintext carried inside channel records
//! (docs/protocol.md, "Batch messages"). One record holds many intents, so
//! a batch costs one mailbox round trip.
//!
//! Request (client → guard), little-endian:
//! `version u8 (1) || op u8 || reserved u16 (0) || count u32 ||
//! count × (length u32 || intent CBOR)`.
//!
//! Reply (guard → client):
//! `version u8 (1) || op u8 (echo) || status u8 || reserved u8 (0) ||
//! count u32 || chain count u64 || count × verdict record ||
//! checkpoint length u32 || checkpoint`. The chain count is the guard's
//! verdict total after this batch; the checkpoint is empty or one
//! `vigil_attest::checkpoint` encoding.

/// Message version.
pub const VERSION: u8 = 1;
/// Request header length.
pub const REQUEST_HEADER_LEN: usize = 8;
/// Reply header length.
pub const REPLY_HEADER_LEN: usize = 16;
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

/// Writes a reply header into `out[..16]`.
pub fn write_reply_header(out: &mut [u8], op: u8, status: u8, count: u32, chain_count: u64) {
    out[0] = VERSION;
    out[1] = op;
    out[2] = status;
    out[3] = 0;
    out[4..8].copy_from_slice(&count.to_le_bytes());
    out[8..16].copy_from_slice(&chain_count.to_le_bytes());
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
        for (at, value) in [(0, 2), (1, 9), (2, 1), (4, 3), (4, 1)] {
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
