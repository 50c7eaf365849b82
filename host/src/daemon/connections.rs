//! Serving HTTP/1.1 connections (hyper) with the limits a daemon on a
//! shared machine needs: at most so many connections open at once (the
//! next one waits to be accepted), a deadline for each request head and
//! body (a client that trickles bytes is cut off) that also closes idle
//! keep-alive connections, and a stop that lets requests in flight finish
//! up to a deadline.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Semaphore, watch};
use tower_service::Service;

use crate::journal::body::Peer;

/// The peer of a Unix socket connection (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug)]
pub struct PeerCredentials(pub Option<Peer>);

impl PeerCredentials {
    /// The kernel's word on who is at the other end of a Unix socket.
    pub fn of_unix(stream: &tokio::net::UnixStream) -> Self {
        PeerCredentials(
            stream
                .peer_cred()
                .ok()
                .map(|c| Peer { uid: c.uid(), pid: c.pid().and_then(|p| u32::try_from(p).ok()).unwrap_or(0) }),
        )
    }

    /// A TCP peer proves nothing but the token.
    pub fn of_tcp(_: &tokio::net::TcpStream) -> Self {
        PeerCredentials(None)
    }
}

/// The limits of [`serve`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// How long a client may take to send a request's head (and how long
    /// an idle keep-alive connection stays open).
    pub head_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// After the stop: how long requests in flight may take to finish.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            drain: Duration::from_secs(30),
        }
    }
}

/// Reads the whole request body within `timeout` (at most `max` bytes;
/// a larger one is left for the handler's limit to refuse), so that the
/// handlers never wait on a slow client.
pub async fn body_deadline(
    timeout: Duration,
    max: usize,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, max.saturating_add(1))).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Ok(Err(_)) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            axum::Json(serde_json::json!({
                "error": "the body is larger than the daemon accepts (--max-body), or was cut off"
            })),
        )
            .into_response(),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            axum::Json(serde_json::json!({
                "error": format!("the request body did not arrive within {} s", timeout.as_secs())
            })),
        )
            .into_response(),
    }
}

/// Serves `router` on `listener` until `stop` turns true: each connection's
/// peer is what `peer_of` says. Then stops accepting and waits up to
/// [`Limits::drain`] for the connections open to finish their requests.
pub async fn serve<L: axum::serve::Listener>(
    mut listener: L,
    router: Router,
    peer_of: impl Fn(&L::Io) -> PeerCredentials,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let open = Arc::new(Semaphore::new(max));
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => permit,
            _ = stopped(&mut stop) => break,
        };
        let Ok(permit) = permit else { break };
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut stop) => break,
        };
        let peer = peer_of(&io);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().call(request.map(axum::body::Body::new))
        });
        let mut stopping = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.head_timeout);
            let connection = builder.serve_connection(TokioIo::new(io), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopped(&mut stopping) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    // Every connection holds a permit: all of them back means all closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain, open.acquire_many(all)).await.is_err() {
        tracing::warn!(
            "stopping: connections still open after {} s are closed without their answers",
            limits.drain.as_secs()
        );
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
