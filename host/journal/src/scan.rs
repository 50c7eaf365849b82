//! The one journal reader. It walks the frames in order and checks, for
//! each: the length field, the chain hash, the sequence number, the epoch
//! and kind rules, every checkpoint (and, given the platform key, its dual
//! signature), and — given the master key — the AES-256-GCM tag, handing
//! the decrypted body to a visitor.
//!
//! What it concludes (docs/journal.md, "Reading"):
//! - an incomplete *last* frame — cut short by the end of the file, or
//!   full length but partly zero-filled — is a torn tail (a write the crash
//!   interrupted): reported, never visited;
//! - anything wrong before that is tampering: an error naming the seq and
//!   the offset.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use serde::Serialize;
use vigil_attest::dual::DualPublicKey;

use super::JournalError;
use super::checkpoint::{EpochPosition, EpochStatement, Statement};
use super::format::{
    CHAIN_LEN, FRAME_HEADER_LEN, FrameHeader, HEADER_LEN, Header, JOURNAL_ID_LEN, Kind, TAG_LEN, aad, chain_hash,
};
use super::seal::{EpochKey, MasterKey};

/// Length of a policy frame's public part: the bundle's SHA-384.
pub const POLICY_PUBLIC_LEN: usize = 48;

/// What to check beyond the chain.
#[derive(Clone, Copy, Default)]
pub struct ScanOptions<'a> {
    /// Verify every checkpoint's and every epoch statement's dual signature
    /// with this platform key.
    pub trust: Option<&'a DualPublicKey>,
    /// Authenticate (and, with [`KeyScope::All`], decrypt) bodies with this
    /// master key.
    pub key: Option<&'a MasterKey>,
    /// Which frames the master key authenticates.
    pub key_scope: KeyScope,
    /// A frame the journal must still hold, with the chain head an earlier
    /// read found there: a second pass over a journal already verified
    /// (against its anchors and high-water mark) gives the first pass's
    /// end here, so that a file cut back or swapped for another copy
    /// between the two reads fails instead of being read as the verified one.
    pub reach: Option<Reach>,
}

/// A frame, by seq, and the chain hash after it: since each chain hash
/// covers every frame before it, a journal holding frame `seq` with this
/// chain hash holds the same frames 1..=`seq` as the journal it was
/// taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reach {
    /// The journal's id (its header's): a file holding another journal
    /// fails at once, even one without frames.
    pub journal_id: [u8; JOURNAL_ID_LEN],
    /// The frame's seq (0: the journal had no frame yet).
    pub seq: u64,
    /// The chain hash after it.
    pub head: [u8; CHAIN_LEN],
}

impl Reach {
    /// The journal `journal_id` alone, no frame of it: a read must find
    /// that journal's header (a check that a header read first and the
    /// frames read after are one journal).
    pub fn journal(journal_id: [u8; JOURNAL_ID_LEN]) -> Reach {
        // Seq 0 names no frame: the head is never compared.
        Reach { journal_id, seq: 0, head: [0; CHAIN_LEN] }
    }
}

/// Which frames a scan with the master key authenticates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyScope {
    /// Every frame: each tag is checked and each body decrypted and handed
    /// to the visitor.
    #[default]
    All,
    /// Only the frames after the last checkpoint (those no platform
    /// signature covers yet): their tags are checked once the scan reaches
    /// the end, and the visitor gets no bodies. What a writer does on open.
    Unsealed,
}

/// Frames a writer found after the last checkpoint on open, authenticated
/// with the data key only, and adopted (a crashed predecessor's frames).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Adoption {
    /// The epoch frame of the adopting writer.
    pub epoch_seq: u64,
    /// First adopted seq.
    pub first: u64,
    /// Last adopted seq.
    pub last: u64,
}

/// One whole, verified frame, as handed to the visitor.
pub struct FrameRef<'a> {
    /// Byte offset in the file.
    pub offset: u64,
    /// Sequence number.
    pub seq: u64,
    /// Kind.
    pub kind: Kind,
    /// Epoch number.
    pub epoch: u32,
    /// Whole frame length.
    pub len: u32,
    /// The public (authenticated, unencrypted) part.
    pub public: &'a [u8],
    /// The decrypted body, when a master key was given.
    pub body: Option<&'a [u8]>,
    /// This frame's chain hash.
    pub chain: &'a [u8; CHAIN_LEN],
}

/// A torn tail: the last frame was not completely written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TornTail {
    /// Where the torn frame starts (the journal is whole up to here).
    pub offset: u64,
    /// Bytes from there to the end of the file.
    pub bytes: u64,
    /// The sequence number the torn frame would have had.
    pub seq: u64,
    /// What was incomplete.
    pub reason: String,
}

/// What a scan found.
#[derive(Clone, Debug, Serialize)]
pub struct ScanSummary {
    /// Journal id, hex.
    pub journal_id: String,
    /// Master-key fingerprint from the header, hex.
    pub key_fingerprint: String,
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
    /// File length in bytes.
    pub file_len: u64,
    /// End of the last whole frame.
    pub end: u64,
    /// Whole frames.
    pub frames: u64,
    /// The sequence number the next frame gets.
    pub next_seq: u64,
    /// Chain hash after the last whole frame, hex.
    pub head: String,
    /// The last epoch number (0 if no frame).
    pub epoch: u32,
    /// Frames by kind.
    pub by_kind: BTreeMap<&'static str, u64>,
    /// Checkpoints whose statement verified (and, with a platform key,
    /// whose signatures verified).
    pub checkpoints: u64,
    /// Whether checkpoint signatures were checked.
    pub signatures_checked: bool,
    /// The last seq a checkpoint covers.
    pub sealed_through: Option<u64>,
    /// Frames after the last checkpoint: whole, chained, but not yet signed.
    pub unsealed: u64,
    /// Whether the last frame is a closing checkpoint.
    pub closed: bool,
    /// Unsealed frames later writers adopted from crashed predecessors:
    /// they were authenticated with the data key only before a platform
    /// checkpoint covered them.
    pub adopted: Vec<Adoption>,
    /// Frames in `adopted`, summed.
    pub adopted_frames: u64,
    /// A torn tail, if there is one.
    pub torn: Option<TornTail>,
    #[serde(skip)]
    pub(crate) header: Option<Header>,
    #[serde(skip)]
    pub(crate) head_bytes: [u8; CHAIN_LEN],
    #[serde(skip)]
    pub(crate) policies: Vec<[u8; POLICY_PUBLIC_LEN]>,
}

impl ScanSummary {
    /// The parsed file header.
    pub fn header(&self) -> &Header {
        self.header.as_ref().expect("a summary always has its header")
    }

    /// Whether the file is intact: no torn tail. (Tampering is an error,
    /// not a summary.)
    pub fn intact(&self) -> bool {
        self.torn.is_none()
    }

    /// The journal's id, its last whole frame (seq 0 when it has none) and
    /// the chain head after it: what a later read must reach
    /// ([`ScanOptions::reach`]).
    pub fn reach(&self) -> Reach {
        Reach { journal_id: self.header().journal_id, seq: self.next_seq - 1, head: self.head_bytes }
    }
}

/// Scans the journal at `path`.
pub fn scan_file(
    path: &Path,
    options: ScanOptions<'_>,
    visit: impl FnMut(&FrameRef<'_>) -> Result<(), JournalError>,
) -> Result<ScanSummary, JournalError> {
    let file = File::open(path).map_err(JournalError::io(format!("opening {}", path.display())))?;
    let len = file.metadata().map_err(JournalError::io(format!("reading {}", path.display())))?.len();
    scan(BufReader::with_capacity(1 << 20, file), len, options, visit)
}

/// Reads into `buf` until it is full or the input ends; returns the count.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize, JournalError> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(JournalError::Io { what: "reading the journal".into(), source: e }),
        }
    }
    Ok(got)
}

/// Whether everything left in `reader` is zero bytes.
fn rest_is_zero(reader: &mut impl Read) -> Result<bool, JournalError> {
    let mut buf = [0u8; 8192];
    loop {
        let n = read_up_to(reader, &mut buf)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        if n < buf.len() {
            return Ok(true);
        }
    }
}

/// A run of this many zero bytes in a full-length last frame marks it as
/// unwritten by a crash: ciphertext, tags and hashes practically never
/// hold one, the plaintext header fields are too short to, and a signature's
/// zero padding (ML-DSA-65 hints: at most 55 bytes) is shorter.
const UNWRITTEN_RUN: usize = 64;

/// Whether a full-length last frame shows the marks of an unfinished write:
/// its chain field is all zero (the trailing block never reached the disk),
/// or it holds a long zero run (a block in the middle did not).
fn unwritten(frame: &[u8]) -> bool {
    frame[frame.len() - CHAIN_LEN..].iter().all(|&b| b == 0) || has_zero_run(frame, UNWRITTEN_RUN)
}

fn has_zero_run(bytes: &[u8], run: usize) -> bool {
    let mut zeros = 0;
    for &b in bytes {
        zeros = if b == 0 { zeros + 1 } else { 0 };
        if zeros >= run {
            return true;
        }
    }
    false
}

/// Scans a journal of `file_len` bytes read from `reader`.
pub fn scan(
    mut reader: impl Read,
    file_len: u64,
    options: ScanOptions<'_>,
    mut visit: impl FnMut(&FrameRef<'_>) -> Result<(), JournalError>,
) -> Result<ScanSummary, JournalError> {
    let mut header_bytes = [0u8; HEADER_LEN];
    let got = read_up_to(&mut reader, &mut header_bytes)?;
    let header = Header::decode(&header_bytes[..got]).map_err(|e| match options.reach {
        Some(_) => JournalError::Changed(format!("its header no longer reads ({e})")),
        None => e,
    })?;
    if let Some(reach) = options.reach
        && reach.journal_id != header.journal_id
    {
        return Err(JournalError::Changed(format!(
            "it now holds journal {}, not journal {} read before: the file was replaced",
            hex::encode(header.journal_id),
            hex::encode(reach.journal_id)
        )));
    }
    if let Some(key) = options.key {
        let fingerprint = key.fingerprint();
        if fingerprint != header.key_fingerprint {
            return Err(JournalError::WrongKey {
                file: hex::encode(header.key_fingerprint),
                key: hex::encode(fingerprint),
            });
        }
    }
    let mut s = ScanSummary {
        journal_id: hex::encode(header.journal_id),
        key_fingerprint: hex::encode(header.key_fingerprint),
        created_ms: header.created_ms,
        file_len,
        end: HEADER_LEN as u64,
        frames: 0,
        next_seq: 1,
        head: String::new(),
        epoch: 0,
        by_kind: BTreeMap::new(),
        checkpoints: 0,
        signatures_checked: options.trust.is_some(),
        sealed_through: None,
        unsealed: 0,
        closed: false,
        adopted: Vec::new(),
        adopted_frames: 0,
        torn: None,
        header: None,
        head_bytes: header.chain_start(),
        policies: Vec::new(),
    };
    let mut epoch_key: Option<EpochKey> = None;
    let mut stash: Vec<Stashed> = Vec::new();
    let mut frame = Vec::with_capacity(4096);
    let mut aad_buf = Vec::with_capacity(256);
    loop {
        let offset = s.end;
        let seq = s.next_seq;
        let tampered = |detail: String| JournalError::Tampered { seq, offset, detail };
        let torn = |reason: &str| TornTail { offset, bytes: file_len - offset, seq, reason: reason.into() };
        frame.clear();
        frame.resize(FRAME_HEADER_LEN, 0);
        let got = read_up_to(&mut reader, &mut frame[..FRAME_HEADER_LEN])?;
        if got == 0 {
            break;
        }
        if got < FRAME_HEADER_LEN {
            s.torn = Some(torn("incomplete frame header"));
            break;
        }
        let fh = match FrameHeader::decode(frame[..FRAME_HEADER_LEN].try_into().expect("24 bytes")) {
            Ok(fh) => fh,
            Err(defect) => {
                if frame.iter().all(|&b| b == 0) && rest_is_zero(&mut reader)? {
                    s.torn = Some(torn("zero-filled tail (a write the crash did not finish)"));
                    break;
                }
                return Err(tampered(format!("frame length field damaged ({defect:?})")));
            }
        };
        let len = fh.len as usize;
        if offset + len as u64 > file_len {
            s.torn = Some(torn("the last frame extends past the end of the file (incomplete write)"));
            break;
        }
        frame.resize(len, 0);
        if read_up_to(&mut reader, &mut frame[FRAME_HEADER_LEN..])? != len - FRAME_HEADER_LEN {
            s.torn = Some(torn("the file ended inside the last frame"));
            break;
        }
        let chain = chain_hash(&s.head_bytes, &frame[..len - CHAIN_LEN]);
        if chain[..] != frame[len - CHAIN_LEN..] {
            if offset + len as u64 == file_len && unwritten(&frame) {
                s.torn = Some(torn("the last frame is partly zero-filled (a write the crash did not finish)"));
                break;
            }
            return Err(tampered(if fh.seq != seq {
                format!(
                    "found seq {} where {seq} was expected: frames dropped, duplicated, reordered or spliced",
                    fh.seq
                )
            } else {
                "chain hash does not match: the frame or one before it was altered".into()
            }));
        }
        // The bytes are as the writer chained them; what follows checks the
        // writer's rules (a failure here is a forgery that recomputed the
        // chain, or a foreign writer).
        if fh.seq != seq {
            return Err(tampered(format!("found seq {} where {seq} was expected", fh.seq)));
        }
        if let Some(reach) = options.reach
            && reach.seq == seq
            && reach.head != chain
        {
            return Err(JournalError::Changed(format!(
                "frame seq {seq} (offset {offset}) is not the frame read there before: the file was replaced or rewritten"
            )));
        }
        let kind = Kind::from_code(fh.kind).ok_or_else(|| tampered(format!("unknown frame kind {}", fh.kind)))?;
        let public_len = fh.public_len as usize;
        match kind {
            Kind::Epoch if fh.epoch != s.epoch + 1 || public_len == 0 => {
                return Err(tampered(format!(
                    "epoch frame for epoch {} (public part {public_len} bytes) after epoch {}",
                    fh.epoch, s.epoch
                )));
            }
            Kind::Epoch => {}
            _ if s.epoch == 0 => return Err(tampered("the first frame is not an epoch frame".into())),
            _ if s.closed => {
                return Err(tampered(format!(
                    "a {} frame follows a closing checkpoint: only a signed epoch frame may",
                    kind.as_str()
                )));
            }
            _ if fh.epoch != s.epoch => {
                return Err(tampered(format!("frame in epoch {} during epoch {}", fh.epoch, s.epoch)));
            }
            Kind::Checkpoint if public_len == 0 => return Err(tampered("checkpoint without a statement".into())),
            Kind::Policy if public_len != POLICY_PUBLIC_LEN => {
                return Err(tampered("policy frame without its SHA-384".into()));
            }
            Kind::CostStatement if public_len == 0 => {
                return Err(tampered("cost statement without its signed statement".into()));
            }
            Kind::Checkpoint | Kind::Policy | Kind::CostStatement => {}
            _ if public_len != 0 => return Err(tampered(format!("{} frame with a public part", kind.as_str()))),
            _ => {}
        }
        let public = &frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + public_len];
        let mut checkpoint = None;
        if kind == Kind::Checkpoint {
            let statement = Statement::decode(public).map_err(&tampered)?;
            if statement.covered_seq + 1 != seq || statement.head != s.head_bytes {
                return Err(tampered(format!(
                    "checkpoint covers seq {} with another chain head than the journal's",
                    statement.covered_seq
                )));
            }
            if let Some(trust) = options.trust {
                statement.verify(&header.journal_id, trust).map_err(&tampered)?;
            }
            checkpoint = Some((statement.covered_seq, statement.closing));
        }
        let mut salt = None;
        if kind == Kind::Epoch {
            let statement = EpochStatement::decode(public, seq).map_err(&tampered)?;
            let unsealed_from = s.sealed_through.map_or(1, |c| c + 1);
            let expected = (s.unsealed > 0).then(|| (unsealed_from, seq - 1));
            if statement.adopted != expected {
                return Err(tampered(format!(
                    "the epoch statement adopts {:?} but frames {:?} are unsealed before it",
                    statement.adopted, expected
                )));
            }
            if let Some(trust) = options.trust {
                let at = EpochPosition { journal_id: &header.journal_id, seq, epoch: fh.epoch, prev: &s.head_bytes };
                statement.verify(&at, trust).map_err(|e| {
                    // The journal's first signature: what fails it is as
                    // likely the key given as the frame.
                    if seq == 1 {
                        tampered(format!(
                            "{e} (the journal's first signature: either this frame was altered, or the platform key given is not the one that signed this journal — check that it is the platform.pub of the key directory that wrote it)"
                        ))
                    } else {
                        tampered(e)
                    }
                })?;
            }
            if let Some((first, last)) = statement.adopted {
                s.adopted.push(Adoption { epoch_seq: seq, first, last });
                s.adopted_frames += last - first + 1;
            }
            salt = Some(statement.salt());
        }
        if kind == Kind::Policy {
            let hash: [u8; POLICY_PUBLIC_LEN] = public.try_into().expect("48 bytes");
            if !s.policies.contains(&hash) {
                s.policies.push(hash);
            }
        }
        if let Some(master) = options.key
            && let Some(salt) = salt
        {
            epoch_key = Some(master.epoch_key(&salt, &header.journal_id));
        }
        let body = match (options.key, &epoch_key) {
            (Some(_), Some(key)) if options.key_scope == KeyScope::Unsealed => {
                // A checkpoint covers what came before it only if its
                // signature was checked.
                if checkpoint.is_some() && options.trust.is_some() {
                    stash.clear();
                } else {
                    stash.push(Stashed {
                        offset,
                        seq,
                        epoch: fh.epoch,
                        public_len,
                        key: key.clone(),
                        prev: s.head_bytes,
                        frame: frame.clone(),
                    });
                }
                None
            }
            (Some(_), Some(key)) => {
                aad(&mut aad_buf, &header.journal_id, &frame[..FRAME_HEADER_LEN + public_len], &s.head_bytes);
                let body_end = len - CHAIN_LEN - TAG_LEN;
                let tag: [u8; TAG_LEN] = frame[body_end..body_end + TAG_LEN].try_into().expect("16 bytes");
                if !key.open(fh.epoch, seq, &aad_buf, &mut frame[FRAME_HEADER_LEN + public_len..body_end], &tag) {
                    return Err(tampered(
                        "authentication tag does not verify: the frame was altered by someone without the data key, or sealed under another key".into(),
                    ));
                }
                Some(FRAME_HEADER_LEN + public_len..body_end)
            }
            _ => None,
        };
        let view = FrameRef {
            offset,
            seq,
            kind,
            epoch: fh.epoch,
            len: fh.len,
            public: &frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + public_len],
            body: body.map(|r| &frame[r]),
            chain: &chain,
        };
        visit(&view)?;
        s.head_bytes = chain;
        s.end = offset + len as u64;
        s.next_seq = seq + 1;
        s.frames += 1;
        s.epoch = fh.epoch;
        *s.by_kind.entry(kind.as_str()).or_default() += 1;
        if let Some((covered, closing)) = checkpoint {
            s.checkpoints += 1;
            s.sealed_through = Some(covered);
            s.unsealed = 0;
            s.closed = closing;
        } else {
            s.unsealed += 1;
            s.closed = false;
        }
    }
    if let Some(reach) = options.reach
        && s.next_seq <= reach.seq
    {
        return Err(JournalError::Changed(format!(
            "it now ends at seq {}, short of seq {} read before: the file was cut back or replaced",
            s.next_seq - 1,
            reach.seq
        )));
    }
    for f in &stash {
        aad(&mut aad_buf, &header.journal_id, &f.frame[..FRAME_HEADER_LEN + f.public_len], &f.prev);
        let body_end = f.frame.len() - CHAIN_LEN - TAG_LEN;
        let tag: [u8; TAG_LEN] = f.frame[body_end..body_end + TAG_LEN].try_into().expect("16 bytes");
        let mut body = f.frame[FRAME_HEADER_LEN + f.public_len..body_end].to_vec();
        if !f.key.open(f.epoch, f.seq, &aad_buf, &mut body, &tag) {
            return Err(JournalError::Tampered { seq: f.seq, offset: f.offset, detail: UNAUTHENTIC_UNSEALED.into() });
        }
    }
    s.head = hex::encode(s.head_bytes);
    s.header = Some(header);
    Ok(s)
}

/// Why a frame after the last checkpoint is refused.
const UNAUTHENTIC_UNSEALED: &str = "a frame after the last checkpoint does not authenticate under journal.key: it was appended by someone without the data key (or sealed under another key); no writer continues over it";

/// An unsealed frame kept until the end of a [`KeyScope::Unsealed`] scan.
struct Stashed {
    offset: u64,
    seq: u64,
    epoch: u32,
    public_len: usize,
    key: EpochKey,
    prev: [u8; CHAIN_LEN],
    frame: Vec<u8>,
}
