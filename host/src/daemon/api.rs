//! The daemon's HTTP/1.1 + JSON API (docs/api.md), served by axum.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use vigil_guard::intent::json as intent_json;

use crate::journal::body::Peer;

use super::metrics::Metrics;
use super::queue::{Encoded, Job, Queue, Refused, Work};

/// The most intents one request may carry.
pub const MAX_INTENTS_PER_REQUEST: usize = 4096;

/// What the handlers share.
pub struct ApiState {
    /// Jobs for the guard workers.
    pub queue: Arc<Queue>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Pool size.
    pub guards: usize,
    /// The journal file.
    pub journal: String,
    /// SHA-384 of the policy bundle, hex.
    pub policy_sha384: String,
    /// When the daemon started.
    pub started: Instant,
    /// Test-hooks builds running a test-hooks guard image: the fault
    /// injection route answers.
    pub fault_injection: bool,
}

/// The peer of a Unix socket connection (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug)]
pub struct PeerCredentials(pub Option<Peer>);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::UnixListener>>
    for PeerCredentials
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        PeerCredentials(
            stream
                .io()
                .peer_cred()
                .ok()
                .map(|c| Peer { uid: c.uid(), pid: c.pid().and_then(|p| u32::try_from(p).ok()).unwrap_or(0) }),
        )
    }
}

/// An error answer: status, a message saying what was wrong and what to do.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The router, with `max_body` bytes per request body.
pub fn router(state: Arc<ApiState>, max_body: usize) -> Router {
    let router = Router::new();
    #[cfg(feature = "test-hooks")]
    let router = router.route("/v1/test/fault", post(test_fault));
    router
        .route("/v1/evaluate", post(evaluate))
        .route("/v1/health", get(health))
        .route("/v1/evidence", get(evidence))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no route {uri}: see docs/api.md (POST /v1/evaluate, GET /v1/health, GET /metrics)"),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {uri}: see docs/api.md"))
}

async fn health(State(state): State<Arc<ApiState>>) -> Response {
    let ready = state.metrics.guards_ready.load(Relaxed);
    let status = if ready > 0 { "ok" } else { "no_guard" };
    let code = if ready > 0 { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "version": 1,
        "status": status,
        "guards": state.guards,
        "guards_ready": ready,
        "queue_intents": state.queue.depth(),
        "uptime_s": state.started.elapsed().as_secs(),
        "journal": state.journal,
        "policy_sha384": state.policy_sha384,
    });
    (code, Json(body)).into_response()
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let text = state.metrics.render(state.queue.depth(), state.guards);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Reads the body: one intent (a JSON object), or `{"intents": [...]}`.
fn parse_intents(body: &[u8]) -> Result<(Vec<Encoded>, bool), String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the body is not UTF-8: {e}"))?;
    let value = intent_json::parse_strict(text).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let (values, batch) = match value {
        Value::Object(mut map) if map.contains_key("intents") => match map.remove("intents") {
            Some(Value::Array(items)) if map.is_empty() => (items, true),
            Some(Value::Array(_)) => return Err("a batch is {\"intents\": [...]} and nothing else".into()),
            _ => return Err("`intents` must be an array of intent objects".into()),
        },
        Value::Object(map) => (vec![Value::Object(map)], false),
        _ => return Err("the body must be one intent (a JSON object) or {\"intents\": [...]}".into()),
    };
    if values.is_empty() {
        return Err("`intents` is empty".into());
    }
    if values.len() > MAX_INTENTS_PER_REQUEST {
        return Err(format!("{} intents in one request; at most {MAX_INTENTS_PER_REQUEST}", values.len()));
    }
    let encoded = values
        .into_iter()
        .map(|value| {
            let id = value.get("id").and_then(Value::as_u64).unwrap_or(0);
            match intent_json::to_cbor(&value) {
                Ok(cbor) if cbor.len() <= vigil_guard::intent::MAX_INTENT_BYTES => Encoded { cbor, id, detail: None },
                Ok(cbor) => Encoded {
                    cbor: Vec::new(),
                    id,
                    detail: Some(format!(
                        "the intent is {} bytes as CBOR; at most {}",
                        cbor.len(),
                        vigil_guard::intent::MAX_INTENT_BYTES
                    )),
                },
                Err(e) => Encoded { cbor: Vec::new(), id, detail: Some(e.to_string()) },
            }
        })
        .collect();
    Ok((encoded, batch))
}

async fn evaluate(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(PeerCredentials(peer)): ConnectInfo<PeerCredentials>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    judge(&state, peer, body, None).await
}

/// Test-hooks builds only: `POST /v1/test/fault?kind=N` with intents as
/// for `/v1/evaluate`: the guard that takes them is made to fail with
/// test-hooks request kind N first.
#[cfg(feature = "test-hooks")]
async fn test_fault(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(PeerCredentials(peer)): ConnectInfo<PeerCredentials>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, u32>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !state.fault_injection {
        return error(StatusCode::NOT_FOUND, "fault injection needs a test-hooks guard image");
    }
    judge(&state, peer, body, query.get("kind").copied()).await
}

/// 503 with Retry-After: the queue is full, or the daemon is stopping.
fn refused(state: &ApiState, why: Refused) -> Response {
    state.metrics.requests_busy.fetch_add(1, Relaxed);
    let message = match why {
        Refused::Busy => "the daemon is busy (its queue is full); retry after the time in Retry-After",
        Refused::Closed => "the daemon is shutting down",
    };
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// `GET /v1/evidence?nonce=HEX`: fresh evidence from a running guard.
async fn evidence(
    State(state): State<Arc<ApiState>>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let nonce = match query.get("nonce").map(hex::decode) {
        Some(Ok(nonce)) if (8..=64).contains(&nonce.len()) => nonce,
        Some(Ok(nonce)) => {
            state.metrics.requests_bad.fetch_add(1, Relaxed);
            return error(StatusCode::BAD_REQUEST, format!("the nonce is {} bytes; give 8 to 64", nonce.len()));
        }
        _ => {
            state.metrics.requests_bad.fetch_add(1, Relaxed);
            return error(StatusCode::BAD_REQUEST, "give ?nonce=HEX (8 to 64 bytes, hex)");
        }
    };
    let (reply, answer) = oneshot::channel();
    if let Err((_, why)) = state.queue.push(Work::Evidence { nonce: nonce.clone(), reply }) {
        return refused(&state, why);
    }
    match answer.await {
        Ok(Ok(e)) => {
            state.metrics.requests_ok.fetch_add(1, Relaxed);
            Json(json!({
                "version": 1,
                "nonce": hex::encode(&nonce),
                "boot_seq": e.boot_seq,
                "evidence": hex::encode(&e.evidence),
            }))
            .into_response()
        }
        Ok(Err(reason)) => {
            state.metrics.requests_failed.fetch_add(1, Relaxed);
            error(StatusCode::BAD_GATEWAY, format!("no evidence: {reason}"))
        }
        Err(_) => {
            state.metrics.requests_failed.fetch_add(1, Relaxed);
            error(StatusCode::INTERNAL_SERVER_ERROR, "the guard worker stopped before answering")
        }
    }
}

async fn judge(
    state: &ApiState,
    peer: Option<Peer>,
    body: Result<Bytes, BytesRejection>,
    fault: Option<u32>,
) -> Response {
    #[cfg(not(feature = "test-hooks"))]
    let _ = fault;
    let bad = |status: StatusCode, message: String| {
        state.metrics.requests_bad.fetch_add(1, Relaxed);
        error(status, message)
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "the body is larger than the daemon accepts (--max-body); split the batch".to_string()
            } else {
                rejection.body_text()
            };
            return bad(status, message);
        }
    };
    let (intents, batch) = match parse_intents(&body) {
        Ok(parsed) => parsed,
        Err(message) => return bad(StatusCode::BAD_REQUEST, message),
    };
    let (reply, answer) = oneshot::channel();
    let job = Job {
        intents,
        peer,
        reply,
        #[cfg(feature = "test-hooks")]
        fault,
    };
    if let Err((_, why)) = state.queue.push(Work::Judge(job)) {
        return refused(state, why);
    }
    match answer.await {
        Ok(Ok(verdicts)) => {
            state.metrics.requests_ok.fetch_add(1, Relaxed);
            let body = if batch { json!({ "verdicts": verdicts }) } else { json!({ "verdict": verdicts[0] }) };
            Json(body).into_response()
        }
        Ok(Err(reason)) => {
            state.metrics.requests_failed.fetch_add(1, Relaxed);
            error(StatusCode::INTERNAL_SERVER_ERROR, format!("no verdict can be shown: {reason}"))
        }
        Err(_) => {
            state.metrics.requests_failed.fetch_add(1, Relaxed);
            error(StatusCode::INTERNAL_SERVER_ERROR, "the guard worker stopped before answering")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_one_intent_or_a_batch_and_nothing_else() {
        let (one, batch) = parse_intents(br#"{"id": 7, "tool": "shell", "args": {"command": "ls"}}"#).unwrap();
        assert!(!batch && one.len() == 1 && one[0].id == 7 && one[0].detail.is_none());
        let (two, batch) = parse_intents(br#"{"intents": [{"id": 1}, {"id": 2, "tool": 5}]}"#).unwrap();
        assert!(batch && two.len() == 2);
        for bad in [
            &br#"[1, 2]"#[..],
            br#"{"intents": []}"#,
            br#"{"intents": 3}"#,
            br#"{"intents": [], "id": 1}"#,
            br#"{"id": 1, "id": 2}"#,
            b"{",
            b"\xff",
        ] {
            assert!(parse_intents(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
