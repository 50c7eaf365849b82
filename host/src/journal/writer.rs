//! The one journal writer: takes the lock file, recovers from a crash (cuts
//! a torn tail, refuses a tampered journal), starts a new epoch, and appends
//! frames with group commit — an append is acknowledged only once the fsync
//! of its group has returned (docs/journal.md, "Writing").

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha384};
use vigil_attest::dual::DualSigningKey;

use super::JournalError;
use super::body::{self, EpochBody, PolicyBody};
use super::checkpoint::Statement;
use super::format::{
    CHAIN_LEN, FRAME_HEADER_LEN, FrameHeader, HEADER_LEN, Header, JOURNAL_ID_LEN, Kind, MAX_FRAME_LEN, SALT_LEN,
    TAG_LEN, aad, chain_hash, frame_len,
};
use super::scan::{self, POLICY_PUBLIC_LEN, ScanOptions, TornTail};
use super::seal::{EpochKey, MasterKey};

/// When the writer signs checkpoints (besides on close).
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// After this many frames since the last checkpoint.
    pub checkpoint_frames: u64,
    /// After this long since the last checkpoint, if any frame came since.
    pub checkpoint_interval: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions { checkpoint_frames: 10_000, checkpoint_interval: Duration::from_secs(10) }
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
    /// The epoch this writer appends in.
    pub epoch: u32,
}

/// An open journal. Appends from any thread; dropping it closes it (with a
/// closing checkpoint) as [`Journal::close`] does, ignoring errors.
pub struct Journal {
    shared: Arc<Shared>,
    committer: Option<JoinHandle<()>>,
    report: OpenReport,
    _lock: File,
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

/// `PATH.lock`: the file whose lock marks the one writer.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    path.with_file_name(name)
}

fn take_lock(path: &Path) -> Result<File, JournalError> {
    let lock_path = lock_path(path);
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(JournalError::io(format!("opening the lock file {}", lock_path.display())))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = lock.read_to_string(&mut text);
            return Err(JournalError::Locked { path: path.to_path_buf(), pid: text.trim().parse().ok() });
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(JournalError::Io { what: format!("locking {}", lock_path.display()), source: e });
        }
    }
    let pid = std::process::id().to_string();
    lock.set_len(0)
        .and_then(|_| lock.seek(SeekFrom::Start(0)))
        .and_then(|_| lock.write_all(pid.as_bytes()))
        .map_err(JournalError::io(format!("writing {}", lock_path.display())))?;
    Ok(lock)
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(JournalError::io(format!("syncing {}", dir.display())))
}

/// Creates a journal file holding just its header, atomically (a temporary
/// file, fsync, rename, fsync of the directory).
fn create(path: &Path, master: &MasterKey) -> Result<Header, JournalError> {
    let header = Header {
        journal_id: crate::keys::random().map_err(|e| JournalError::Failed(format!("{e:#}")))?,
        key_fingerprint: master.fingerprint(),
        created_ms: body::now_ms(),
    };
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".new");
    let tmp = path.with_file_name(tmp_name);
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(JournalError::io(format!("creating {}", tmp.display())))?;
    f.write_all(&header.encode())
        .and_then(|_| f.sync_all())
        .map_err(JournalError::io(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(JournalError::io(format!("renaming {} to {}", tmp.display(), path.display())))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    Ok(header)
}

impl Journal {
    /// Opens (or creates) the journal at `path` for append under `master`,
    /// signing checkpoints with `platform`.
    pub fn open(
        path: &Path,
        master: &MasterKey,
        platform: Arc<DualSigningKey>,
        options: WriterOptions,
    ) -> Result<Journal, JournalError> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(JournalError::io(format!("creating {}", dir.display())))?;
        let lock = take_lock(path)?;
        let created = !path.exists();
        let (header, found) = if created {
            (create(path, master)?, None)
        } else {
            let trust = platform.public();
            let summary = scan::scan_file(path, ScanOptions { trust: Some(&trust), key: None }, |_| Ok(()))?;
            let header = summary.header().clone();
            if header.key_fingerprint != master.fingerprint() {
                return Err(JournalError::WrongKey {
                    file: hex::encode(header.key_fingerprint),
                    key: hex::encode(master.fingerprint()),
                });
            }
            (header, Some(summary))
        };
        let mut file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(JournalError::io(format!("opening {} for append", path.display())))?;
        let end = found.as_ref().map(|s| s.end).unwrap_or(HEADER_LEN as u64);
        let cut = found.as_ref().and_then(|s| s.torn.clone());
        if cut.is_some() {
            file.set_len(end)
                .and_then(|_| file.sync_all())
                .map_err(JournalError::io(format!("cutting the torn tail of {}", path.display())))?;
        }
        file.seek(SeekFrom::Start(end)).map_err(JournalError::io(format!("seeking in {}", path.display())))?;

        let salt: [u8; SALT_LEN] = crate::keys::random().map_err(|e| JournalError::Failed(format!("{e:#}")))?;
        let epoch = found.as_ref().map(|s| s.epoch).unwrap_or(0) + 1;
        let mut state = State {
            journal_id: header.journal_id,
            platform,
            options,
            key: master.epoch_key(&salt, &header.journal_id),
            epoch,
            next_seq: found.as_ref().map(|s| s.next_seq).unwrap_or(1),
            head: found.as_ref().map(|s| s.head_bytes).unwrap_or_else(|| header.chain_start()),
            pending: Vec::with_capacity(1 << 20),
            pending_last: 0,
            durable: 0,
            failed: None,
            closing: false,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            policies: found.as_ref().map(|s| s.policies.iter().copied().collect()).unwrap_or_default(),
            aad: Vec::with_capacity(256),
            groups: 0,
        };
        state.durable = state.next_seq - 1;
        let epoch_body = EpochBody {
            time_ms: body::now_ms(),
            writer: format!("vigil {}", env!("CARGO_PKG_VERSION")),
            pid: std::process::id(),
            cut_bytes: cut.as_ref().map(|c| c.bytes),
            cut_seq: cut.as_ref().map(|c| c.seq),
        };
        let epoch_seq = state.push_frame(Kind::Epoch, &salt, &body::encode(&epoch_body))?;
        state.since_checkpoint = 1;
        let shared = Arc::new(Shared { state: Mutex::new(state), work: Condvar::new(), durable: Condvar::new() });
        let committer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("vigil-journal".into())
                .spawn(move || commit_loop(&shared, file))
                .map_err(JournalError::io("starting the journal committer thread"))?
        };
        let journal = Journal {
            shared,
            committer: Some(committer),
            report: OpenReport {
                path: path.display().to_string(),
                created,
                frames_found: found.as_ref().map(|s| s.frames).unwrap_or(0),
                cut,
                epoch,
            },
            _lock: lock,
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

/// The committer: writes each group of pending frames and fsyncs it, then
/// acknowledges every frame in it; signs time-based checkpoints.
fn commit_loop(shared: &Shared, mut file: File) {
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
        let result = file.write_all(&spare).and_then(|_| file.sync_data());
        spare.clear();
        let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                st.durable = last;
                st.groups += 1;
            }
            Err(e) => st.failed = Some(format!("writing the journal: {e}")),
        }
        drop(st);
        shared.durable.notify_all();
    }
}
