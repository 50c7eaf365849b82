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

use super::approvals::{Approvals, DecideError, Opened, PendingInfo, Settled};
pub use super::connections::PeerCredentials;
use super::metrics::Metrics;
use super::queue::{Answered, Encoded, Job, Queue, Refused, Work};
use crate::journal::body::{ApprovalBody, outcome};
use crate::recording::SharedRecorder;

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
    /// ESCALATE verdicts waiting for a person.
    pub approvals: Arc<Approvals>,
    /// How long an ESCALATE verdict waits before it is DENY.
    pub approval_timeout: std::time::Duration,
    /// Where approvals are recorded.
    pub recorder: SharedRecorder,
}

/// `router` behind a bearer token (the loopback TCP listener): every
/// request without `Authorization: Bearer TOKEN` gets 401.
pub fn with_token(router: Router, token: String) -> Router {
    let token = Arc::new(token);
    router.layer(axum::middleware::from_fn(move |request: axum::extract::Request, next: axum::middleware::Next| {
        let token = token.clone();
        async move {
            let given = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.as_bytes())) {
                next.run(request).await
            } else {
                error(StatusCode::UNAUTHORIZED, "a bearer token is required on this listener (Authorization: Bearer …)")
            }
        }
    }))
}

/// An error answer: status, a message saying what was wrong and what to do.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The router, with `max_body` bytes per request body, each body to
/// arrive within `body_timeout`.
pub fn router(state: Arc<ApiState>, max_body: usize, body_timeout: std::time::Duration) -> Router {
    let router = Router::new();
    #[cfg(feature = "test-hooks")]
    let router = router.route("/v1/test/fault", post(test_fault));
    router
        .route("/v1/evaluate", post(evaluate))
        .route("/v1/health", get(health))
        .route("/v1/evidence", get(evidence))
        .route("/v1/approvals", get(list_approvals))
        .route("/v1/approvals/{id}", post(decide))
        .route("/v1/hooks/claude-code", post(claude_code_hook))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(move |request, next| {
            super::connections::body_deadline(body_timeout, max_body, request, next)
        }))
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

/// Reads the body: one intent (a JSON object), `{"intents": [...]}` or
/// `{"texts": [...]}`; whether it was a batch.
fn parse_intents(body: &[u8]) -> Result<(Vec<Encoded>, bool), String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the body is not UTF-8: {e}"))?;
    let value = intent_json::parse_strict(text).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    // `{"texts": [...]}`: intents as JSON texts, each converted exactly as
    // `vigil eval` converts a line (text that is not an intent is judged
    // as malformed and recorded, not refused).
    // An object with an intent's keys is one intent, whatever else it
    // holds (a stray `texts` or `intents` makes it malformed, recorded).
    let is_intent =
        |map: &serde_json::Map<String, Value>| ["id", "agent", "tool", "args"].iter().any(|k| map.contains_key(*k));
    if let Value::Object(map) = &value
        && !is_intent(map)
        && let Some(texts) = map.get("texts")
    {
        let texts: Vec<&str> = match texts.as_array() {
            Some(items) if map.len() == 1 && !items.is_empty() && items.len() <= MAX_INTENTS_PER_REQUEST => items
                .iter()
                .map(Value::as_str)
                .collect::<Option<_>>()
                .ok_or("every element of `texts` must be a string")?,
            _ => return Err(format!("`texts` must be the only key, holding 1 to {MAX_INTENTS_PER_REQUEST} strings")),
        };
        let encoded = crate::recording::encode_json(&texts)
            .into_iter()
            .map(|(cbor, id, detail)| Encoded { cbor, id, detail })
            .collect();
        return Ok((encoded, true));
    }
    let (values, batch) = match value {
        Value::Object(mut map) if !is_intent(&map) && map.contains_key("intents") => match map.remove("intents") {
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

/// `?escalate=wait` (the default): an ESCALATE verdict waits for a person;
/// `?escalate=return`: it is answered at once (the caller asks its own
/// user, as the Claude Code hook does).
#[derive(serde::Deserialize, Default)]
struct EvaluateQuery {
    escalate: Option<String>,
}

async fn evaluate(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(PeerCredentials(peer)): ConnectInfo<PeerCredentials>,
    query: Result<axum::extract::Query<EvaluateQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let wait = match query.map(|q| q.0.escalate) {
        Ok(None) => true,
        Ok(Some(e)) if e == "wait" => true,
        Ok(Some(e)) if e == "return" => false,
        _ => {
            state.metrics.requests_bad.fetch_add(1, Relaxed);
            return error(StatusCode::BAD_REQUEST, "escalate= takes `wait` (the default) or `return`");
        }
    };
    judge(&state, peer, body, None, wait).await
}

async fn list_approvals(State(state): State<Arc<ApiState>>) -> Response {
    Json(json!({ "version": 1, "pending": state.approvals.list() })).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    decision: String,
}

/// `POST /v1/approvals/{id}` with `{"decision": "allow" | "deny"}`.
async fn decide(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(PeerCredentials(peer)): ConnectInfo<PeerCredentials>,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let decision = body
        .ok()
        .and_then(|b| intent_json::parse_strict(std::str::from_utf8(&b).ok()?).ok())
        .and_then(|v| serde_json::from_value::<Decision>(v).ok());
    // The journal names who decided: only a connection whose peer the
    // kernel vouches for (the Unix socket) may decide.
    if peer.is_none() {
        state.metrics.requests_bad.fetch_add(1, Relaxed);
        return error(
            StatusCode::FORBIDDEN,
            "approvals are decided on the daemon's Unix socket, where the decider's uid is known (vigil approve/deny)",
        );
    }
    let approve = match decision.as_ref().map(|d| d.decision.as_str()) {
        Some("allow") => true,
        Some("deny") => false,
        _ => {
            state.metrics.requests_bad.fetch_add(1, Relaxed);
            return error(
                StatusCode::BAD_REQUEST,
                "the body must be {\"decision\": \"allow\"} or {\"decision\": \"deny\"}",
            );
        }
    };
    match state.approvals.decide(&id, approve, peer) {
        Ok(info) => {
            state.metrics.requests_ok.fetch_add(1, Relaxed);
            Json(json!({ "id": id, "decision": if approve { "ALLOW" } else { "DENY" }, "intent_id": info.intent_id }))
                .into_response()
        }
        Err(e) => {
            state.metrics.requests_bad.fetch_add(1, Relaxed);
            let status = match e {
                DecideError::NotPending(_) => StatusCode::NOT_FOUND,
                DecideError::NotAnApprover(_) => StatusCode::FORBIDDEN,
            };
            error(status, e.to_string())
        }
    }
}

/// Waits for a person's decision on each ESCALATE verdict (all at once,
/// until the timeout), records each outcome and adds it to the answer.
async fn settle_escalations(
    state: &ApiState,
    peer: Option<Peer>,
    answered: &[Answered],
    out: &mut [Value],
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + state.approval_timeout;
    // However this ends (an error below, the task dropped), no approval
    // it opened is left waiting.
    let mut opened = Opened::new(&state.approvals);
    let mut waiting = Vec::new();
    for (i, a) in answered.iter().enumerate().filter(|(_, a)| a.report.decision == "ESCALATE") {
        let review = a.review.clone().unwrap_or_default();
        let info = PendingInfo {
            id: String::new(),
            verdict_seq: a.seq,
            intent_id: a.report.id,
            summary: review.summary,
            intent: review.intent,
            why: a.report.rule.clone().unwrap_or_else(|| format!("{}/{}", a.report.stage, a.report.reason)),
            peer_uid: peer.map(|p| p.uid),
            since_ms: crate::journal::body::now_ms(),
        };
        let (id, settled) = state.approvals.open(info);
        opened.ids.push(id.clone());
        waiting.push((i, id, settled));
    }
    for (i, id, mut settled) in waiting {
        let settled = match tokio::time::timeout_at(deadline, &mut settled).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => Settled { outcome: outcome::STOPPED, by: None },
            Err(_) => {
                state.approvals.expire(&id);
                // A decision taken before the expiry still counts (it was
                // sent under the same lock that expiry takes).
                settled.try_recv().unwrap_or(Settled { outcome: outcome::TIMED_OUT, by: None })
            }
        };
        let body = ApprovalBody {
            time_ms: crate::journal::body::now_ms(),
            verdict_seq: answered[i].seq,
            intent_id: answered[i].report.id,
            outcome: settled.outcome,
            by: settled.by,
            approval_id: id.clone(),
        };
        let recorder = state.recorder.clone();
        tokio::task::spawn_blocking(move || recorder.approval(&body).and_then(|seq| recorder.wait(seq)))
            .await
            .map_err(|e| format!("recording an approval: {e}"))?
            .map_err(|e| format!("recording an approval: {e}"))?;
        let approved = settled.outcome == outcome::APPROVED;
        let mut approval = json!({
            "id": id,
            "outcome": outcome::name(settled.outcome).unwrap_or("unknown"),
            "decision": if approved { "ALLOW" } else { "DENY" },
        });
        if let Some(by) = settled.by {
            approval["by"] = json!({ "uid": by.uid, "pid": by.pid });
        }
        out[i]["approval"] = approval;
    }
    Ok(())
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
    judge(&state, peer, body, query.get("kind").copied(), false).await
}

/// `POST /v1/hooks/claude-code`: Claude Code's HTTP hook. Always 200 with
/// the hook's answer (Claude Code treats other statuses as errors that do
/// not block): anything that yields no verdict is `deny`.
async fn claude_code_hook(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(PeerCredentials(peer)): ConnectInfo<PeerCredentials>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    use crate::claude_code;
    let id = claude_code::call_id();
    let body = match body {
        Ok(body) => Ok(body),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err("the hook input is larger than the daemon accepts (--max-body)".to_string())
        }
        Err(rejection) => Err(rejection.body_text()),
    };
    let intents = match body.and_then(|body| claude_code::intents_of_text(&body, id)) {
        Ok(intents) => intents,
        Err(why) => vec![(Vec::new(), id, Some(why))],
    };
    let intents = intents.into_iter().map(|(cbor, id, detail)| Encoded { cbor, id, detail }).collect();
    let answer = match verdicts(&state, peer, intents, None, false).await {
        Ok(out) => claude_code::answer_verdicts(&out),
        Err(response) => {
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            claude_code::no_verdict(value["error"].as_str().unwrap_or("the daemon gave no verdict"))
        }
    };
    Json(answer).into_response()
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
    state: &Arc<ApiState>,
    peer: Option<Peer>,
    body: Result<Bytes, BytesRejection>,
    fault: Option<u32>,
    wait_for_approval: bool,
) -> Response {
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
    match verdicts(state, peer, intents, fault, wait_for_approval).await {
        Ok(out) => {
            let body = if batch { json!({ "verdicts": out }) } else { json!({ "verdict": out[0] }) };
            Json(body).into_response()
        }
        Err(response) => response,
    }
}

/// Judges `intents` (recorded, whatever they are) and returns their
/// verdicts (JSON), or the error response to give instead.
async fn verdicts(
    state: &Arc<ApiState>,
    peer: Option<Peer>,
    intents: Vec<Encoded>,
    fault: Option<u32>,
    wait_for_approval: bool,
) -> Result<Vec<Value>, Response> {
    #[cfg(not(feature = "test-hooks"))]
    let _ = fault;
    let (reply, answer) = oneshot::channel();
    let job = Job {
        intents,
        peer,
        reply,
        #[cfg(feature = "test-hooks")]
        fault,
    };
    if let Err((_, why)) = state.queue.push(Work::Judge(job)) {
        return Err(refused(state, why));
    }
    let failed = |status: StatusCode, message: String| {
        state.metrics.requests_failed.fetch_add(1, Relaxed);
        error(status, message)
    };
    match answer.await {
        Ok(Ok(answered)) => {
            let reports: Vec<_> = answered.iter().map(|a| a.report.clone()).collect();
            state.metrics.count_verdicts(&reports);
            let mut out: Vec<Value> = reports.iter().map(|r| serde_json::to_value(r).unwrap_or_default()).collect();
            if wait_for_approval && reports.iter().any(|r| r.decision == "ESCALATE") {
                // In a task of its own: if the client goes away, the wait
                // still ends (decision, timeout or stop) and is recorded.
                let task_state = state.clone();
                let settled = tokio::spawn(async move {
                    settle_escalations(&task_state, peer, &answered, &mut out).await.map(|()| out)
                });
                match settled.await {
                    Ok(Ok(settled)) => out = settled,
                    Ok(Err(e)) => {
                        return Err(failed(StatusCode::INTERNAL_SERVER_ERROR, format!("no verdict can be shown: {e}")));
                    }
                    Err(e) => {
                        return Err(failed(StatusCode::INTERNAL_SERVER_ERROR, format!("no verdict can be shown: {e}")));
                    }
                }
            }
            state.metrics.requests_ok.fetch_add(1, Relaxed);
            Ok(out)
        }
        Ok(Err(reason)) => Err(failed(StatusCode::INTERNAL_SERVER_ERROR, format!("no verdict can be shown: {reason}"))),
        Err(_) => Err(failed(StatusCode::INTERNAL_SERVER_ERROR, "the guard worker stopped before answering".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_one_intent_or_a_batch_and_nothing_else() {
        let (one, batch) =
            parse_intents(br#"{"id": 7, "agent": "a", "tool": "shell", "args": {"command": "ls"}}"#).unwrap();
        assert!(!batch && one.len() == 1 && one[0].id == 7 && one[0].detail.is_none());
        let (two, batch) = parse_intents(br#"{"intents": [{"id": 1}, {"id": 2, "tool": 5}]}"#).unwrap();
        assert!(batch && two.len() == 2);
        // Texts: each converted as `vigil eval` converts a line; bad ones
        // are judged (malformed), not refused.
        let (texts, batch) = parse_intents(br#"{"texts": ["{\"id\": 3}", "not json"]}"#).unwrap();
        assert!(batch && texts.len() == 2 && texts[0].id == 3 && texts[1].detail.is_some() && texts[1].cbor.is_empty());
        for bad in [&br#"{"texts": []}"#[..], br#"{"texts": [1]}"#, br#"{"texts": ["{}"], "x": 1}"#] {
            assert!(parse_intents(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        for bad in
            [&br#"[1, 2]"#[..], br#"{"intents": []}"#, br#"{"intents": 3}"#, br#"{"id": 1, "id": 2}"#, b"{", b"\xff"]
        {
            assert!(parse_intents(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        // An intent with a stray batch key is one malformed intent (judged
        // and recorded), not a refused request.
        for odd in [&br#"{"intents": [], "id": 1}"#[..], br#"{"id": 2, "tool": "shell", "texts": ["x"]}"#] {
            let (one, batch) = parse_intents(odd).unwrap();
            assert!(!batch && one.len() == 1 && one[0].detail.is_some(), "{}", String::from_utf8_lossy(odd));
        }
    }
}
