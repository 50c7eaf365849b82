//! A client for the daemon's Unix socket: one HTTP/1.1 request (hyper) per
//! call, for `vigil` commands and tests.

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket (no daemon, or a stale file).
    #[error("no daemon answers on {socket}: {source}")]
    Connect {
        /// The socket path.
        socket: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The exchange failed.
    #[error("talking to the daemon: {0}")]
    Http(String),
    /// No answer in time.
    #[error("the daemon did not answer within {0:?}")]
    Timeout(Duration),
}

/// An answer: status code and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers (name, value), names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends `method path` with `body` (JSON) to the daemon on `socket`.
pub fn call(socket: &Path, method: &str, path: &str, body: &[u8], timeout: Duration) -> Result<Answer, ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Http(format!("starting the client runtime: {e}")))?;
    runtime.block_on(async {
        tokio::time::timeout(timeout, exchange(socket, method, path, body))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    })
}

async fn exchange(socket: &Path, method: &str, path: &str, body: &[u8]) -> Result<Answer, ClientError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| ClientError::Connect { socket: socket.display().to_string(), source })?;
    let http = |e: &dyn std::fmt::Display| ClientError::Http(e.to_string());
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| http(&e))?;
    let connection = tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "vigil")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| http(&e))?;
    let response = sender.send_request(request).await.map_err(|e| http(&e))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response.into_body().collect().await.map_err(|e| http(&e))?.to_bytes().to_vec();
    connection.abort();
    Ok(Answer { status, headers, body })
}
