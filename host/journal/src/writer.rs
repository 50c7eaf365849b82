//! The one journal writer: locks the journal's own inode, recovers from a
//! crash (cuts a torn tail, authenticates and adopts unsealed frames,
//! refuses a tampered journal or one behind its high-water mark), starts a
//! signed epoch, and appends frames with group commit — an append is
//! acknowledged only once the fsync of its group has returned — advancing
//! the high-water mark with every checkpoint (docs/journal.md, "Writing").

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha384};
use vigil_attest::dual::DualSigningKey;

use super::JournalError;
use super::anchor::{self, Anchor};
use super::body::{self, EpochBody, PolicyBody};
use super::checkpoint::{EpochPosition, EpochStatement, Statement};
use super::format::{
    CHAIN_LEN, FRAME_HEADER_LEN, FrameHeader, HEADER_LEN, Header, JOURNAL_ID_LEN, Kind, MAX_FRAME_LEN, SALT_LEN,
    TAG_LEN, aad, chain_hash, frame_len,
};
use super::scan::{self, KeyScope, POLICY_PUBLIC_LEN, ScanOptions, TornTail};
use super::seal::{EpochKey, MasterKey};

/// When the writer signs checkpoints (besides on close), and where it
/// keeps the high-water mark.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// After this many frames since the last checkpoint.
    pub checkpoint_frames: u64,
    /// After this long since the last checkpoint, if any frame came since.
    pub checkpoint_interval: Duration,
    /// A private directory (`DIR/anchors`) holding the journal's
    /// high-water mark: checked on open, advanced with every checkpoint.
    /// `None`: no mark (scratch journals).
    pub high_water: Option<PathBuf>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions { checkpoint_frames: 10_000, checkpoint_interval: Duration::from_secs(10), high_water: None }
    }
}

/// What opening for append found and did.
#[derive(Clone, Debug, Serialize)]
pub struct OpenReport {
    /// The journal file.
    pub path: String,
    /// Whether the file was created.
    pub created: bool,
    /// Whole frames found.
    pub frames_found: u64,
    /// The torn tail that was cut, if any.
    pub cut: Option<TornTail>,
    /// Unsealed frames of a crashed predecessor, authenticated with the
    /// data key and adopted (first, last seq).
    pub adopted: Option<(u64, u64)>,
    /// The high-water mark the journal was checked against (its seq).
    pub high_water: Option<u64>,
    /// The epoch this writer appends in.
    pub epoch: u32,
}

/// An open journal. Appends from any thread; dropping it closes it (with a
/// closing checkpoint) as [`Journal::close`] does, ignoring errors.
pub struct Journal {
    shared: Arc<Shared>,
    committer: Option<JoinHandle<()>>,
    report: OpenReport,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the committer: frames are pending, or close was asked.
    work: Condvar,
    /// Wakes waiters: the durable seq moved, or the writer failed.
    durable: Condvar,
}

struct State {
    journal_id: [u8; JOURNAL_ID_LEN],
    platform: Arc<DualSigningKey>,
    options: WriterOptions,
    key: EpochKey,
    epoch: u32,
    next_seq: u64,
    head: [u8; CHAIN_LEN],
    /// Sealed frames not yet written.
    pending: Vec<u8>,
    /// The last seq in `pending`.
    pending_last: u64,
    /// Every seq up to this one is on disk (fsynced).
    durable: u64,
    failed: Option<String>,
    closing: bool,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    policies: HashSet<[u8; POLICY_PUBLIC_LEN]>,
    aad: Vec<u8>,
    /// Groups written (one fsync each).
    groups: u64,
    /// The newest checkpoint (its frame seq and statement) not yet in the
    /// high-water mark.
    mark_due: Option<(u64, Statement)>,
}

impl State {
    /// Seals one frame into `pending`; returns its seq.
    fn push_frame(&mut self, kind: Kind, public: &[u8], body: &[u8]) -> Result<u64, JournalError> {
        let len = frame_len(public.len(), body.len());
        if len > MAX_FRAME_LEN || public.len() > u16::MAX as usize {
            return Err(JournalError::Failed(format!(
                "a {} frame of {len} bytes is larger than a frame may be",
                kind.as_str()
            )));
        }
        let seq = self.next_seq;
        let start = self.pending.len();
        self.pending.resize(start + len, 0);
        let frame = &mut self.pending[start..];
        let header =
            FrameHeader { len: len as u32, seq, kind: kind as u16, public_len: public.len() as u16, epoch: self.epoch };
        header.encode(&mut frame[..FRAME_HEADER_LEN]);
        let body_at = FRAME_HEADER_LEN + public.len();
        frame[FRAME_HEADER_LEN..body_at].copy_from_slice(public);
        let tag_at = body_at + body.len();
        frame[body_at..tag_at].copy_from_slice(body);
        aad(&mut self.aad, &self.journal_id, &frame[..body_at], &self.head);
        let tag = self.key.seal(self.epoch, seq, &self.aad, &mut frame[body_at..tag_at]);
        frame[tag_at..tag_at + TAG_LEN].copy_from_slice(&tag);
        let chain = chain_hash(&self.head, &frame[..len - CHAIN_LEN]);
        frame[len - CHAIN_LEN..].copy_from_slice(&chain);
        self.head = chain;
        self.next_seq = seq + 1;
        self.pending_last = seq;
        Ok(seq)
    }

    /// Appends a platform checkpoint over the current head.
    fn push_checkpoint(&mut self, closing: bool) -> Result<u64, JournalError> {
        let statement =
            Statement::sign(&self.platform, &self.journal_id, self.next_seq - 1, &self.head, body::now_ms(), closing)
                .map_err(JournalError::Failed)?;
        let seq = self.push_frame(Kind::Checkpoint, &statement.encode(), &[])?;
        self.mark_due = Some((seq, statement));
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(seq)
    }

    fn check_open(&self) -> Result<(), JournalError> {
        if let Some(reason) = &self.failed {
            return Err(JournalError::Failed(reason.clone()));
        }
        if self.closing {
            return Err(JournalError::Failed("the journal is closing".into()));
        }
        Ok(())
    }
}

/// Opens the journal at `path` for reading and writing without following a
/// symbolic link, creating it (header only) when it does not exist, and
/// takes an exclusive `flock` on the file itself — so that every name of
/// the file (a hard link, a bind mount, a symlink's target) meets the same
/// lock. After locking, the path must still name the locked inode (else it
/// was replaced meanwhile, and opening starts again). Returns the file and
/// whether this call created it.
fn open_locked(path: &Path, master: &MasterKey, high_water: Option<&HighWater>) -> Result<(File, bool), JournalError> {
    let mut created = false;
    for _ in 0..16 {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(hw) = high_water
                    && let Some((anchor, _)) = anchor::find_by_path(&hw.dir, &hw.journal_path)
                {
                    return Err(JournalError::HighWater {
                        anchor,
                        detail: format!(
                            "the journal {} is missing, but its high-water mark says it existed",
                            path.display()
                        ),
                    });
                }
                created |= create(path, master)?;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(JournalError::Io {
                    what: format!(
                        "opening {}: it is a symbolic link, and Vigil opens a journal only by its real path (give the link's target)",
                        path.display()
                    ),
                    source: e,
                });
            }
            Err(e) => {
                return Err(JournalError::Io { what: format!("opening {} for append", path.display()), source: e });
            }
        };
        let meta = file.metadata().map_err(JournalError::io(format!("reading {}", path.display())))?;
        if !meta.file_type().is_file() {
            return Err(JournalError::Failed(format!("{} is not a regular file", path.display())));
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(JournalError::Locked { path: path.to_path_buf(), pid: lock_holder(&meta) });
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(JournalError::Io { what: format!("locking {}", path.display()), source: e });
            }
        }
        match fs::symlink_metadata(path) {
            Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => return Ok((file, created)),
            // Renamed, replaced or removed between open and lock: again.
            _ => continue,
        }
    }
    Err(JournalError::Failed(format!(
        "{} kept changing while it was being opened; is something replacing it?",
        path.display()
    )))
}

/// The pid holding a `flock` on the file `meta` describes, as
/// `/proc/locks` tells it (Linux); `None` where it does not.
fn lock_holder(meta: &fs::Metadata) -> Option<u32> {
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let wanted = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    // The kernel lists the locks a page at a time: a lock taken or dropped
    // elsewhere between two pages can shift this one past a page boundary
    // unseen, so a miss is read again.
    (0..3).find_map(|_| {
        let text = fs::read_to_string("/proc/locks").ok()?;
        text.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&wanted.as_str()))
                .then(|| fields.get(4).and_then(|pid| pid.parse().ok()))
                .flatten()
        })
    })
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(JournalError::io(format!("syncing {}", dir.display())))
}

/// The directory part of `path` (`.` when it has none).
fn dir_of(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Creates a journal file holding just its header, atomically and without
/// replacing anything: a temporary file (random name, `O_EXCL`, 0600),
/// fsync, a hard link to `path` (which fails if `path` exists), fsync of
/// the directory. Returns false if another process created `path` first.
fn create(path: &Path, master: &MasterKey) -> Result<bool, JournalError> {
    let header = Header {
        journal_id: random_bytes("making a journal id")?,
        key_fingerprint: master.fingerprint(),
        created_ms: body::now_ms(),
    };
    let dir = dir_of(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let suffix: [u8; 8] = random_bytes("naming a temporary file")?;
    let tmp = dir.join(format!(".{name}.{}.new", hex::encode(suffix)));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(JournalError::io(format!("creating {}", tmp.display())))?;
    let linked = f
        .write_all(&header.encode())
        .and_then(|_| f.sync_all())
        .map_err(JournalError::io(format!("writing {}", tmp.display())))
        .and_then(|_| match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(JournalError::Io { what: format!("creating {}", path.display()), source: e }),
        });
    let _ = fs::remove_file(&tmp);
    let linked = linked?;
    sync_dir(dir)?;
    Ok(linked)
}

fn random_bytes<const N: usize>(what: &str) -> Result<[u8; N], JournalError> {
    vigil_os::random::bytes().map_err(|e| JournalError::Failed(format!("{what}: reading /dev/urandom: {e}")))
}

/// Where a writer keeps the high-water mark of its journal.
struct HighWater {
    /// The private directory of marks.
    dir: PathBuf,
    /// The journal's path with its directory resolved (recorded in the
    /// mark, to notice a deleted or replaced journal).
    journal_path: PathBuf,
}

impl Journal {
    /// Opens (or creates) the journal at `path` for append under `master`,
    /// signing checkpoints and epoch statements with `platform`.
    ///
    /// Before appending anything it checks, with both keys: the chain and
    /// every platform signature; the AES-GCM tag of every frame after the
    /// last checkpoint (frames no signature covers yet — a crashed
    /// predecessor's, or a forger's: the latter refuse the journal, the
    /// former are adopted and said so in the signed epoch statement); and,
    /// with [`WriterOptions::high_water`], that the journal still reaches
    /// its high-water mark.
    pub fn open(
        path: &Path,
        master: &MasterKey,
        platform: Arc<DualSigningKey>,
        options: WriterOptions,
    ) -> Result<Journal, JournalError> {
        let dir = dir_of(path);
        let Some(name) = path.file_name() else {
            return Err(JournalError::Failed(format!("{} does not name a file", path.display())));
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(JournalError::io(format!("creating {}", dir.display())))?;
        let high_water = match &options.high_water {
            Some(marks) => Some(HighWater {
                dir: marks.clone(),
                journal_path: fs::canonicalize(dir)
                    .map_err(JournalError::io(format!("resolving {}", dir.display())))?
                    .join(name),
            }),
            None => None,
        };
        let (file, created) = open_locked(path, master, high_water.as_ref())?;
        let trust = platform.public();
        let file_len = file.metadata().map_err(JournalError::io(format!("reading {}", path.display())))?.len();
        let mut header_bytes = [0u8; HEADER_LEN];
        let got =
            file.read_at(&mut header_bytes, 0).map_err(JournalError::io(format!("reading {}", path.display())))?;
        let header = Header::decode(&header_bytes[..got])?;
        let mark = match &high_water {
            Some(hw) => {
                if let Some((anchor, id)) = anchor::find_by_path(&hw.dir, &hw.journal_path)
                    && id != header.journal_id
                {
                    return Err(JournalError::HighWater {
                        anchor,
                        detail: format!(
                            "{} holds journal {}, but a high-water mark says journal {} was here: it was replaced",
                            path.display(),
                            hex::encode(header.journal_id),
                            hex::encode(id)
                        ),
                    });
                }
                anchor::read_high_water(&hw.dir, &header.journal_id, &trust)?
            }
            None => None,
        };
        let mark_seq = mark.as_ref().map(|(_, m)| m.seq);
        let mut at_mark = None;
        let found = scan::scan(
            std::io::BufReader::with_capacity(1 << 20, &file),
            file_len,
            ScanOptions { trust: Some(&trust), key: Some(master), key_scope: KeyScope::Unsealed, reach: None },
            |f| {
                if Some(f.seq) == mark_seq {
                    at_mark = Some(hex::encode(f.chain));
                }
                Ok(())
            },
        )?;
        if let Some((anchor, mark)) = &mark {
            let last = found.next_seq - 1;
            if at_mark.as_deref() != Some(mark.head.as_str()) || last <= mark.seq {
                let detail = if at_mark.is_some() && at_mark.as_deref() != Some(mark.head.as_str()) {
                    format!(
                        "{} has another chain head at seq {} than its high-water mark: it was rewritten or replaced",
                        path.display(),
                        mark.seq
                    )
                } else {
                    format!(
                        "{} ends at seq {last}, short of the checkpoint at seq {} it had reached: it was cut back or replaced by an older copy",
                        path.display(),
                        mark.seq + 1
                    )
                };
                return Err(JournalError::HighWater { anchor: anchor.clone(), detail });
            }
        }
        let end = found.end;
        let cut = found.torn.clone();
        if cut.is_some() {
            file.set_len(end)
                .and_then(|_| file.sync_all())
                .map_err(JournalError::io(format!("cutting the torn tail of {}", path.display())))?;
        }
        let adopted = (found.unsealed > 0).then(|| (found.sealed_through.map_or(1, |c| c + 1), found.next_seq - 1));

        let salt: [u8; SALT_LEN] = random_bytes("making an epoch salt")?;
        let epoch = found.epoch + 1;
        let mut state = State {
            journal_id: header.journal_id,
            platform,
            options,
            key: master.epoch_key(&salt, &header.journal_id),
            epoch,
            next_seq: found.next_seq,
            head: found.head_bytes,
            pending: Vec::with_capacity(1 << 20),
            pending_last: 0,
            durable: 0,
            failed: None,
            closing: false,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            policies: found.policies.iter().copied().collect(),
            aad: Vec::with_capacity(256),
            groups: 0,
            mark_due: None,
        };
        state.durable = state.next_seq - 1;
        let time_ms = body::now_ms();
        let at = EpochPosition { journal_id: &header.journal_id, seq: state.next_seq, epoch, prev: &state.head };
        let statement =
            EpochStatement::sign(&state.platform, &at, &salt, time_ms, adopted).map_err(JournalError::Failed)?;
        let epoch_body = EpochBody {
            time_ms,
            writer: format!("vigil {}", env!("CARGO_PKG_VERSION")),
            pid: std::process::id(),
            cut_bytes: cut.as_ref().map(|c| c.bytes),
            cut_seq: cut.as_ref().map(|c| c.seq),
        };
        let epoch_seq = state.push_frame(Kind::Epoch, &statement.encode(), &body::encode(&epoch_body))?;
        state.since_checkpoint = 1;
        let shared = Arc::new(Shared { state: Mutex::new(state), work: Condvar::new(), durable: Condvar::new() });
        let committer = {
            let shared = Arc::clone(&shared);
            let output = Output { file, end, high_water };
            std::thread::Builder::new()
                .name("vigil-journal".into())
                .spawn(move || commit_loop(&shared, output))
                .map_err(JournalError::io("starting the journal committer thread"))?
        };
        let journal = Journal {
            shared,
            committer: Some(committer),
            report: OpenReport {
                path: path.display().to_string(),
                created,
                frames_found: found.frames,
                cut,
                adopted,
                high_water: mark.map(|(_, m)| m.seq),
                epoch,
            },
        };
        journal.wait(epoch_seq)?;
        Ok(journal)
    }

    /// What opening found and did.
    pub fn report(&self) -> &OpenReport {
        &self.report
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seals a frame and queues it for the next group; returns its seq.
    /// Not yet durable: [`Journal::wait`] for it.
    pub fn append(&self, kind: Kind, body: &[u8]) -> Result<u64, JournalError> {
        let mut st = self.state();
        st.check_open()?;
        let seq = st.push_frame(kind, &[], body)?;
        st.since_checkpoint += 1;
        if st.since_checkpoint >= st.options.checkpoint_frames
            && let Err(e) = st.push_checkpoint(false)
        {
            st.failed = Some(e.to_string());
            return Err(e);
        }
        drop(st);
        self.shared.work.notify_one();
        Ok(seq)
    }

    /// Seals `bodies` as frames of `kind`, then the frame `trailer` makes
    /// from their seqs (a cost record pricing them), all under one lock,
    /// so that one commit group holds them all: a caller waiting for the
    /// trailer waits for one fsync, not two. Returns the seqs of `bodies`
    /// and of the trailer.
    pub fn append_with_trailer(
        &self,
        kind: Kind,
        bodies: &[Vec<u8>],
        trailer: impl FnOnce(&[u64]) -> Option<(Kind, Vec<u8>)>,
    ) -> Result<(Vec<u64>, Option<u64>), JournalError> {
        // Refuse an oversized body before anything is written (a trailer
        // is small: a cost record).
        if let Some(body) = bodies.iter().find(|b| frame_len(0, b.len()) > MAX_FRAME_LEN) {
            return Err(JournalError::Failed(format!(
                "a {} frame of {} bytes is larger than a frame may be",
                kind.as_str(),
                frame_len(0, body.len())
            )));
        }
        let mut st = self.state();
        st.check_open()?;
        let mut seqs = Vec::with_capacity(bodies.len());
        let mut last = None;
        let result: Result<(), JournalError> = (|| {
            for body in bodies {
                seqs.push(st.push_frame(kind, &[], body)?);
                st.since_checkpoint += 1;
            }
            if let Some((kind, body)) = trailer(&seqs) {
                last = Some(st.push_frame(kind, &[], &body)?);
                st.since_checkpoint += 1;
            }
            if st.since_checkpoint >= st.options.checkpoint_frames {
                st.push_checkpoint(false)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            st.failed = Some(e.to_string());
            return Err(e);
        }
        drop(st);
        self.shared.work.notify_one();
        Ok((seqs, last))
    }

    /// The journal's id (its header's).
    pub fn journal_id(&self) -> [u8; JOURNAL_ID_LEN] {
        self.state().journal_id
    }

    /// Seals a frame with a public part (a cost statement) and queues it;
    /// returns its seq. Not yet durable: [`Journal::wait`] for it.
    pub fn append_public(&self, kind: Kind, public: &[u8], body: &[u8]) -> Result<u64, JournalError> {
        let mut st = self.state();
        st.check_open()?;
        let seq = st.push_frame(kind, public, body)?;
        st.since_checkpoint += 1;
        drop(st);
        self.shared.work.notify_one();
        Ok(seq)
    }

    /// Appends a policy frame for `bundle` unless the journal already holds
    /// one with its SHA-384; returns the SHA-384.
    pub fn ensure_policy(&self, bundle: &[u8]) -> Result<[u8; POLICY_PUBLIC_LEN], JournalError> {
        let hash: [u8; POLICY_PUBLIC_LEN] = Sha384::digest(bundle).into();
        let mut st = self.state();
        st.check_open()?;
        if st.policies.contains(&hash) {
            return Ok(hash);
        }
        let body = body::encode(&PolicyBody { sha384: hash.to_vec(), bundle: bundle.to_vec() });
        st.push_frame(Kind::Policy, &hash, &body)?;
        st.since_checkpoint += 1;
        st.policies.insert(hash);
        drop(st);
        self.shared.work.notify_one();
        Ok(hash)
    }

    /// Blocks until frame `seq` (and every frame before it) is on disk.
    pub fn wait(&self, seq: u64) -> Result<(), JournalError> {
        let mut st = self.state();
        loop {
            if st.durable >= seq {
                return Ok(());
            }
            if let Some(reason) = &st.failed {
                return Err(JournalError::Failed(reason.clone()));
            }
            st = self.shared.durable.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Groups written so far, one fsync each.
    pub fn groups_written(&self) -> u64 {
        self.state().groups
    }

    /// Blocks until some frame after `after` is on disk or `timeout`
    /// passes; returns the last durable seq (`after` or less on timeout).
    pub fn wait_next(&self, after: u64, timeout: Duration) -> Result<u64, JournalError> {
        let deadline = Instant::now() + timeout;
        let mut st = self.state();
        loop {
            if st.durable > after {
                return Ok(st.durable);
            }
            if let Some(reason) = &st.failed {
                return Err(JournalError::Failed(reason.clone()));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(st.durable);
            }
            st = self.shared.durable.wait_timeout(st, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Appends and waits for the acknowledgement.
    pub fn append_durable(&self, kind: Kind, body: &[u8]) -> Result<u64, JournalError> {
        let seq = self.append(kind, body)?;
        self.wait(seq)?;
        Ok(seq)
    }

    /// Writes a closing checkpoint, waits for it to be on disk and stops
    /// the committer.
    pub fn close(mut self) -> Result<(), JournalError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), JournalError> {
        let Some(committer) = self.committer.take() else { return Ok(()) };
        let result = {
            let mut st = self.state();
            let r = st.check_open().and_then(|_| st.push_checkpoint(true));
            st.closing = true;
            r
        };
        self.shared.work.notify_one();
        let _ = committer.join();
        let st = self.state();
        let seq = result?;
        if let Some(reason) = &st.failed {
            return Err(JournalError::Failed(reason.clone()));
        }
        if st.durable < seq {
            return Err(JournalError::Failed("the closing checkpoint was not written".into()));
        }
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("closing the journal: {e}");
        }
    }
}

/// Where the committer writes: the locked file, the length this writer
/// left it at, and the high-water mark.
struct Output {
    file: File,
    end: u64,
    high_water: Option<HighWater>,
}

impl Output {
    /// Writes one group at the end this writer left, after checking that
    /// nobody else changed the file's length, and fsyncs it.
    fn write_group(&mut self, group: &[u8]) -> std::io::Result<()> {
        let len = self.file.metadata()?.len();
        if len != self.end {
            return Err(std::io::Error::other(format!(
                "the journal file is {len} bytes where this writer left {}: another process changed it",
                self.end
            )));
        }
        self.file.write_all_at(group, self.end)?;
        self.file.sync_data()?;
        self.end += group.len() as u64;
        Ok(())
    }

    /// Advances the high-water mark to a durable checkpoint.
    fn advance_mark(&self, journal_id: &[u8; JOURNAL_ID_LEN], statement: &Statement) -> Result<(), JournalError> {
        let Some(hw) = &self.high_water else { return Ok(()) };
        let anchor = Anchor::new(journal_id, statement, Some(&hw.journal_path));
        anchor::write_high_water(&hw.dir, &anchor)
    }
}

/// The committer: writes each group of pending frames and fsyncs it, then
/// acknowledges every frame in it and advances the high-water mark to the
/// newest durable checkpoint; signs time-based checkpoints.
fn commit_loop(shared: &Shared, mut out: Output) {
    let mut spare = Vec::with_capacity(1 << 20);
    loop {
        let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if st.failed.is_some() {
                return;
            }
            if !st.pending.is_empty() {
                break;
            }
            if st.closing {
                return;
            }
            let due = st.last_checkpoint + st.options.checkpoint_interval;
            let now = Instant::now();
            if st.since_checkpoint > 0 && now >= due {
                if let Err(e) = st.push_checkpoint(false) {
                    st.failed = Some(e.to_string());
                    shared.durable.notify_all();
                    return;
                }
                continue;
            }
            let timeout = if st.since_checkpoint > 0 { due - now } else { st.options.checkpoint_interval };
            st = shared.work.wait_timeout(st, timeout).unwrap_or_else(|p| p.into_inner()).0;
        }
        std::mem::swap(&mut st.pending, &mut spare);
        let last = st.pending_last;
        drop(st);
        let result = out.write_group(&spare);
        spare.clear();
        let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        let mark = match result {
            Ok(()) => {
                st.durable = last;
                st.groups += 1;
                match &st.mark_due {
                    Some((seq, _)) if *seq <= last => st.mark_due.take().map(|(_, statement)| statement),
                    _ => None,
                }
            }
            Err(e) => {
                st.failed = Some(format!("writing the journal: {e}"));
                None
            }
        };
        let journal_id = st.journal_id;
        drop(st);
        shared.durable.notify_all();
        if let Some(statement) = mark
            && let Err(e) = out.advance_mark(&journal_id, &statement)
        {
            let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            st.failed = Some(e.to_string());
            drop(st);
            shared.durable.notify_all();
        }
    }
}
