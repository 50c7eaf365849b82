//! `vigil serve`: the daemon. It owns the journal (the one writer, commits
//! grouped across all clients), keeps a pool of warm attested guards, and
//! answers a local HTTP/1.1 + JSON API on a Unix socket (docs/api.md).
//! tokio lives here only: the guards run on their own threads (the
//! synchronous core), the handlers wait for them on channels.

pub mod api;
pub mod approvals;
pub mod client;
pub mod connections;
pub mod metrics;
pub mod pool;
pub mod queue;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::recording::{RecordError, Recorder};

use api::{ApiState, PeerCredentials};
use metrics::Metrics;
use pool::{GuardRecipe, Pool};
use queue::Queue;

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Guards in the pool.
    pub guards: usize,
    /// Intents that may wait for a guard before requests get 503.
    pub queue: usize,
    /// Largest request body, in bytes (413 above).
    pub max_body: usize,
    /// Answer the fault-injection route (test-hooks builds running a
    /// test-hooks guard image only).
    pub fault_injection: bool,
    /// How long an ESCALATE verdict waits for a person before it is DENY.
    pub approval_timeout: std::time::Duration,
    /// Who may allow an ESCALATE verdict.
    pub approvers: approvals::Approvers,
    /// The most approvals waiting at once (more are DENY at once).
    pub max_waiting_approvals: usize,
    /// Connection limits and deadlines.
    pub limits: connections::Limits,
}

impl Default for ServeOptions {
    /// `vigil serve`'s defaults, one guard.
    fn default() -> Self {
        ServeOptions {
            guards: 1,
            queue: 16_384,
            max_body: 4 << 20,
            fault_injection: false,
            approval_timeout: std::time::Duration::from_secs(60),
            approvers: approvals::Approvers::NotTheRequester,
            max_waiting_approvals: approvals::MAX_WAITING,
            limits: connections::Limits::default(),
        }
    }
}

/// Why the daemon could not run or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another daemon answers on the socket.
    #[error("another daemon is listening on {0}: stop it first (or give --socket)")]
    AlreadyRunning(String),
    /// The socket could not be set up.
    #[error("setting up the socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime or the server failed.
    #[error("serving: {0}")]
    Serve(#[source] std::io::Error),
    /// The TCP listener could not be set up.
    #[error("{0}")]
    Tcp(String),
    /// The journal could not be closed.
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// The daemon's socket, bound (claimed before anything else is opened, so
/// that a second daemon is refused before it touches a journal).
/// Dropping it removes the socket file.
pub struct Socket {
    listener: Option<std::os::unix::net::UnixListener>,
    path: PathBuf,
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Socket {
    /// Binds `path`: refuses if a daemon answers there, replaces a stale
    /// socket file, and sets mode 0660.
    pub fn bind(path: &Path) -> Result<Socket, ServeError> {
        let failed = |source| ServeError::Socket { path: path.display().to_string(), source };
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            // Only a stale socket is replaced; anything else is left alone.
            if !meta.file_type().is_socket() {
                return Err(failed(std::io::Error::other("it exists and is not a socket: give another --socket")));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServeError::AlreadyRunning(path.display().to_string()));
            }
            std::fs::remove_file(path).map_err(failed)?;
        }
        // Made with no access for others: the umask covers the moment
        // between bind and chmod (the process has no other thread yet).
        let before = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o117));
        let bound = std::os::unix::net::UnixListener::bind(path);
        rustix::process::umask(before);
        let listener = bound.map_err(failed)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(failed)?;
        listener.set_nonblocking(true).map_err(failed)?;
        Ok(Socket { listener: Some(listener), path: path.to_path_buf() })
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The optional loopback TCP listener and the bearer token every request
/// on it must carry.
pub struct TcpAccess {
    listener: std::net::TcpListener,
    token: String,
}

impl TcpAccess {
    /// Binds `addr` (a loopback address only) with the token in
    /// `token_file`, which must be a regular file of mode 0600 (or
    /// stricter) holding at least 32 characters.
    pub fn bind(addr: std::net::SocketAddr, token_file: &Path) -> Result<TcpAccess, ServeError> {
        use std::os::unix::fs::MetadataExt;
        if !addr.ip().is_loopback() {
            return Err(ServeError::Tcp(format!(
                "{addr} is not a loopback address: the TCP listener serves this host only"
            )));
        }
        // Checked on the file opened (no window between check and read),
        // never through a symbolic link.
        let unreadable = |e: std::io::Error| ServeError::Tcp(format!("the token file {}: {e}", token_file.display()));
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(token_file)
                .map_err(unreadable)?
        };
        let meta = file.metadata().map_err(unreadable)?;
        let owner = rustix::process::geteuid().as_raw();
        if !meta.is_file() || meta.mode() & 0o077 != 0 || meta.uid() != owner {
            return Err(ServeError::Tcp(format!(
                "the token file {} must be a regular file of this user ({owner}) readable by its owner only (chmod 600)",
                token_file.display()
            )));
        }
        let mut token = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(&mut file, 4096), &mut token).map_err(unreadable)?;
        let token = token.trim().to_string();
        if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServeError::Tcp(format!(
                "the token in {} must be at least 32 printable characters (e.g. `head -c 32 /dev/urandom | xxd -p -c 64`)",
                token_file.display()
            )));
        }
        let listener =
            std::net::TcpListener::bind(addr).map_err(|e| ServeError::Tcp(format!("binding {addr}: {e}")))?;
        listener.set_nonblocking(true).map_err(|e| ServeError::Tcp(format!("binding {addr}: {e}")))?;
        Ok(TcpAccess { listener, token })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.local_addr().ok()
    }
}

/// Waits for SIGTERM or SIGINT (the `stop` of [`serve`] for a process).
pub async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
    tracing::info!("stopping: no new requests; finishing those in flight");
}

/// Runs the daemon on `socket` until `stop` completes (a process passes
/// [`termination`]: SIGTERM or SIGINT): the guards of `recipe` judge,
/// `recorder` records; `ready` is called once the socket accepts. Then:
/// stop accepting, answer every request in flight, shut every guard down
/// with its final checkpoint, close the journal.
#[allow(clippy::too_many_arguments)]
pub fn serve(
    mut socket: Socket,
    tcp: Option<TcpAccess>,
    options: &ServeOptions,
    recipe: GuardRecipe,
    recorder: Recorder,
    policy_sha384: String,
    ready: impl FnOnce(&Path),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vigil-api")
        .enable_all()
        .build()
        .map_err(ServeError::Serve)?;
    let listener = {
        let _context = runtime.enter();
        let bound = socket.listener.take().ok_or_else(|| std::io::Error::other("the socket was already served"));
        match bound.and_then(tokio::net::UnixListener::from_std) {
            Ok(listener) => listener,
            Err(source) => {
                recorder.close()?;
                return Err(ServeError::Socket { path: socket.path.display().to_string(), source });
            }
        }
    };
    let queue = Arc::new(Queue::new(options.queue));
    let metrics = Arc::new(Metrics::default());
    let pool = match Pool::start(options.guards, recipe, recorder.shared(), queue.clone(), metrics.clone()) {
        Ok(pool) => pool,
        Err(e) => {
            recorder.close()?;
            return Err(ServeError::Serve(e));
        }
    };
    let approvals = Arc::new(approvals::Approvals::new(options.approvers.clone(), options.max_waiting_approvals));
    let state = Arc::new(ApiState {
        queue,
        metrics,
        guards: options.guards,
        journal: recorder.path().display().to_string(),
        policy_sha384,
        started: Instant::now(),
        fault_injection: options.fault_injection,
        approvals: approvals.clone(),
        approval_timeout: options.approval_timeout,
        recorder: recorder.shared(),
    });
    let tcp = match tcp.map(|t| {
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(t.listener).map(|l| (l, t.token))
    }) {
        Some(Err(source)) => {
            pool.shutdown();
            recorder.close()?;
            return Err(ServeError::Serve(source));
        }
        Some(Ok(tcp)) => Some(tcp),
        None => None,
    };
    ready(&socket.path);
    let limits = options.limits;
    let router = api::router(state, options.max_body, limits.body_timeout);
    let served = runtime
        .block_on(async {
            // On the signal, waiting approvals are settled (DENY, recorded)
            // so that their requests can finish; every listener stops.
            let (stopping, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                stop.await;
                approvals.stop_all();
                let _ = stopping.send(true);
            });
            let unix = connections::serve(listener, router.clone(), PeerCredentials::of_unix, limits, stopped.clone());
            match tcp {
                None => unix.await,
                Some((listener, token)) => {
                    let app = api::with_token(router, token);
                    let tcp = connections::serve(listener, app, PeerCredentials::of_tcp, limits, stopped);
                    tokio::join!(unix, tcp);
                }
            }
            Ok::<(), std::io::Error>(())
        })
        .map_err(ServeError::Serve);
    drop(socket);
    pool.shutdown();
    drop(runtime);
    let closed = recorder.close();
    served?;
    closed?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_token_file_must_be_ours_private_and_no_link() {
        let dir = std::env::temp_dir().join(format!("vigil-token-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "0123456789abcdef0123456789abcdef").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(TcpAccess::bind(addr, &token).is_ok());
        // A link to it, however private the target, is refused.
        let link = dir.join("link");
        std::os::unix::fs::symlink(&token, &link).unwrap();
        assert!(TcpAccess::bind(addr, &link).is_err());
        // Readable by others, a short token, a directory, no file.
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(TcpAccess::bind(addr, &token).is_err());
        std::fs::write(dir.join("short"), "abc").unwrap();
        std::fs::set_permissions(dir.join("short"), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(TcpAccess::bind(addr, &dir.join("short")).is_err());
        assert!(TcpAccess::bind(addr, &dir).is_err());
        assert!(TcpAccess::bind(addr, &dir.join("none")).is_err());
        // Not loopback.
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(TcpAccess::bind("0.0.0.0:0".parse().unwrap(), &token).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
