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

/// One kept-alive connection to the daemon (for load generation).
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    async fn open(socket: &Path) -> Result<Connection, ClientError> {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|source| ClientError::Connect { socket: socket.display().to_string(), source })?;
        let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(connection);
        Ok(Connection { sender })
    }

    async fn post(&mut self, path: &str, body: Bytes) -> Result<(u16, Bytes), ClientError> {
        let http = |e: &dyn std::fmt::Display| ClientError::Http(e.to_string());
        self.sender.ready().await.map_err(|e| http(&e))?;
        let request = hyper::Request::builder()
            .method("POST")
            .uri(path)
            .header(hyper::header::HOST, "vigil")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| http(&e))?;
        let response = self.sender.send_request(request).await.map_err(|e| http(&e))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| http(&e))?.to_bytes();
        Ok((status, body))
    }
}

/// What a load run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    /// Concurrent clients (one kept-alive connection each).
    pub clients: usize,
    /// Intents per request.
    pub batch: usize,
    /// Requests answered 200.
    pub requests: u64,
    /// Verdicts received (each durable before it was sent).
    pub verdicts: u64,
    /// Requests answered otherwise (e.g. 503 when the queue was full).
    pub refused: u64,
    /// Wall time.
    pub seconds: f64,
    /// Latency of each request, nanoseconds (every one).
    #[serde(skip)]
    pub latencies_ns: Vec<u64>,
}

/// Drives the daemon on `socket` with `clients` concurrent clients, each
/// posting `bodies` round-robin (each a request body of `batch` intents)
/// for `duration`; bounded by the duration. Every answer's status is
/// counted; 200 answers' verdicts are counted.
pub fn load(
    socket: &Path,
    clients: usize,
    batch: usize,
    bodies: &[Vec<u8>],
    duration: Duration,
) -> Result<LoadReport, ClientError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ClientError::Http(format!("starting the client runtime: {e}")))?;
    let bodies: std::sync::Arc<Vec<Bytes>> =
        std::sync::Arc::new(bodies.iter().map(|b| Bytes::copy_from_slice(b)).collect());
    runtime.block_on(async {
        let started = std::time::Instant::now();
        let deadline = started + duration;
        let mut tasks = Vec::with_capacity(clients);
        for c in 0..clients {
            let mut connection = Connection::open(socket).await?;
            let bodies = bodies.clone();
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut refused, mut latencies) = (0u64, 0u64, Vec::new());
                let mut i = c;
                while std::time::Instant::now() < deadline {
                    let sent = std::time::Instant::now();
                    let (status, _) =
                        connection.post("/v1/evaluate?escalate=return", bodies[i % bodies.len()].clone()).await?;
                    latencies.push(sent.elapsed().as_nanos() as u64);
                    if status == 200 {
                        ok += 1
                    } else {
                        refused += 1
                    }
                    i += clients;
                }
                Ok::<_, ClientError>((ok, refused, latencies))
            }));
        }
        let mut report =
            LoadReport { clients, batch, requests: 0, verdicts: 0, refused: 0, seconds: 0.0, latencies_ns: Vec::new() };
        for task in tasks {
            let (ok, refused, latencies) = task.await.map_err(|e| ClientError::Http(e.to_string()))??;
            report.requests += ok;
            report.refused += refused;
            report.latencies_ns.extend(latencies);
        }
        report.seconds = started.elapsed().as_secs_f64();
        report.verdicts = report.requests * batch as u64;
        Ok(report)
    })
}

/// A running daemon, as `GET /v1/health` describes it.
#[derive(Debug, Clone)]
pub struct Running {
    /// Its journal file.
    pub journal: String,
    /// SHA-384 of the policy its guards run, hex.
    pub policy_sha384: String,
}

/// The daemon on `socket`, if one answers with a guard ready.
pub fn running(socket: &Path) -> Option<Running> {
    let answer = call(socket, "GET", "/v1/health", b"", Duration::from_secs(5)).ok()?;
    let health = answer.json();
    (answer.status == 200 && health["status"] == "ok").then(|| Running {
        journal: health["journal"].as_str().unwrap_or_default().to_string(),
        policy_sha384: health["policy_sha384"].as_str().unwrap_or_default().to_string(),
    })
}

/// Judges intent JSON texts through the daemon (each converted exactly as
/// `vigil eval` converts a line), ESCALATE answered at once; `emit` gets
/// each request's verdicts (durable in the daemon's journal) in order.
pub fn evaluate_texts(
    socket: &Path,
    texts: &[&str],
    mut emit: impl FnMut(&[serde_json::Value]) -> Result<(), ClientError>,
) -> Result<(), ClientError> {
    for chunk in texts.chunks(1024) {
        let body = serde_json::json!({ "texts": chunk }).to_string();
        let answer = call(socket, "POST", "/v1/evaluate?escalate=return", body.as_bytes(), Duration::from_secs(120))?;
        let json = answer.json();
        if answer.status != 200 {
            return Err(ClientError::Http(format!(
                "the daemon answered {}: {}",
                answer.status,
                json["error"].as_str().unwrap_or("no reason given")
            )));
        }
        let verdicts = json["verdicts"].as_array().cloned().unwrap_or_default();
        if verdicts.len() != chunk.len() {
            return Err(ClientError::Http(format!("{} verdicts for {} intents", verdicts.len(), chunk.len())));
        }
        emit(&verdicts)?;
    }
    Ok(())
}

/// Fresh evidence from a running guard of the daemon: the evidence bytes
/// and the journal frame of that guard's boot.
pub fn evidence(socket: &Path, nonce: &[u8]) -> Result<(Vec<u8>, u64), ClientError> {
    let answer =
        call(socket, "GET", &format!("/v1/evidence?nonce={}", hex::encode(nonce)), b"", Duration::from_secs(30))?;
    let json = answer.json();
    if answer.status != 200 {
        return Err(ClientError::Http(json["error"].as_str().unwrap_or("no evidence").to_string()));
    }
    let evidence = json["evidence"]
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| ClientError::Http("the answer holds no evidence".into()))?;
    Ok((evidence, json["boot_seq"].as_u64().unwrap_or(0)))
}
