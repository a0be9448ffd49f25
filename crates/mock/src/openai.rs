//! The OpenAI-compatible surface: `POST /v1/chat/completions` (JSON and SSE, in the shape
//! DashScope and OpenAI send), `GET /v1/models`, and the `/__mock/*` control endpoints.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::scenario::Scenario;
use crate::server::ConnHandle;
use crate::state::{RecordedRequest, State};

type Shared = Arc<State>;

/// The longest a `stall-after` stream holds its connection open.
const MAX_STALL: Duration = Duration::from_secs(120);
const MAX_BODY: usize = 32 << 20;

pub(crate) fn router(state: Shared) -> Router {
    let api = Router::new().route("/chat/completions", post(chat)).route("/models", get(models));
    Router::new()
        .nest("/v1", api.clone())
        .nest("/compatible-mode/v1", api)
        .route("/__mock/stats", get(stats))
        .route("/__mock/requests", get(requests))
        .route("/__mock/reset", post(reset))
        .with_state(state)
}

async fn stats(AxumState(st): AxumState<Shared>) -> Json<Value> {
    Json(serde_json::to_value(st.stats()).unwrap_or_default())
}

async fn requests(AxumState(st): AxumState<Shared>) -> Json<Value> {
    Json(serde_json::to_value(st.requests()).unwrap_or_default())
}

async fn reset(AxumState(st): AxumState<Shared>) -> StatusCode {
    st.reset();
    StatusCode::NO_CONTENT
}

/// Everything a handler needs from the raw request.
struct Incoming {
    headers: HeaderMap,
    body: Value,
    conn: Option<ConnHandle>,
}

async fn take(st: &State, req: Request) -> Result<Incoming, Response> {
    State::bump(&st.requests);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| error_response(400, "invalid_request_error", &format!("could not read the body: {e}"), &Scenario::default()))?;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let headers_json: Map<String, Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned())))
        .collect();
    st.record(RecordedRequest {
        method: parts.method.to_string(),
        // `nest` strips its prefix from `uri`; the original is kept in an extension.
        path: parts.extensions.get::<axum::extract::OriginalUri>().map(|u| u.0.path().to_string()).unwrap_or_else(|| parts.uri.path().to_string()),
        http_version: format!("{:?}", parts.version),
        headers: headers_json,
        body: body.clone(),
    });
    Ok(Incoming { conn: parts.extensions.get::<ConnHandle>().cloned(), headers: parts.headers, body })
}

// An early HTTP answer is the natural error of a handler step; boxing it would buy nothing.
#[allow(clippy::result_large_err)]
fn scenario_of(inc: &Incoming) -> Result<Scenario, Response> {
    let text = match inc.headers.get("x-mock-scenario").and_then(|v| v.to_str().ok()) {
        Some(h) => h.to_string(),
        None => inc.body.get("model").and_then(|m| m.as_str()).and_then(|m| m.strip_prefix("mock:")).unwrap_or("").to_string(),
    };
    Scenario::parse(&text).map_err(|e| error_response(400, "invalid_request_error", &e, &Scenario::default()))
}

#[allow(clippy::result_large_err)]
fn check_auth(st: &State, headers: &HeaderMap, sc: &Scenario) -> Result<(), Response> {
    let keys = st.api_keys.read().unwrap_or_else(|p| p.into_inner());
    if keys.is_empty() {
        return Ok(());
    }
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(k) if keys.iter().any(|a| a == k) => Ok(()),
        _ => Err(error_response(401, "invalid_api_key", "invalid access token or token expired", sc)),
    }
}

/// Runs the parts of a scenario that apply before any answer: latency, reset, status.
async fn preamble(st: &State, inc: &Incoming, sc: &Scenario) -> Result<(), Response> {
    if let Some(d) = sc.latency {
        tokio::time::sleep(d).await;
    }
    if sc.reset {
        if let Some(conn) = &inc.conn {
            conn.reset();
            // The connection task drops this handler with the connection.
            std::future::pending::<()>().await;
        }
    }
    check_auth(st, &inc.headers, sc)?;
    if let Some(status) = sc.status {
        let code = sc.error_code.clone().unwrap_or_else(|| default_code(status).to_string());
        return Err(error_response(status, &code, default_message(status), sc));
    }
    Ok(())
}

async fn models(AxumState(st): AxumState<Shared>, req: Request) -> Response {
    let inc = match take(&st, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let sc = match scenario_of(&inc) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = preamble(&st, &inc, &sc).await {
        return r;
    }
    let data: Vec<Value> = st.models.iter().map(|m| json!({"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "rcc-mock"})).collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn chat(AxumState(st): AxumState<Shared>, req: Request) -> Response {
    let inc = match take(&st, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    State::bump(&st.chat_requests);
    let sc = match scenario_of(&inc) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = preamble(&st, &inc, &sc).await {
        return r;
    }
    let Some(messages) = inc.body.get("messages").and_then(|m| m.as_array()).filter(|m| !m.is_empty()) else {
        return error_response(400, "invalid_request_error", "messages must be a non-empty array", &sc);
    };
    let model = inc.body.get("model").and_then(|m| m.as_str()).unwrap_or("").to_string();
    if model.is_empty() {
        return error_response(400, "invalid_request_error", "model is required", &sc);
    }
    let plan = Plan::new(&sc, messages, model);
    let streaming = inc.body.get("stream").and_then(|s| s.as_bool()).unwrap_or(false);
    if sc.html {
        return ([("content-type", "text/html")], "<html><body>gateway says hello</body></html>").into_response();
    }
    if !streaming || sc.json_for_stream {
        if sc.malformed {
            return ([("content-type", "application/json")], "{\"id\":\"chatcmpl-broken\",\"choices\":[{").into_response();
        }
        return Json(plan.completion()).into_response();
    }
    State::bump(&st.stream_requests);
    let include_usage = inc.body.pointer("/stream_options/include_usage").and_then(|v| v.as_bool()).unwrap_or(false);
    let events = plan.stream_events(include_usage);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(send_stream(st.clone(), tx, events, sc));
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert("content-type", HeaderValue::from_static("text/event-stream"));
    resp.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

/// The client closed the connection.
struct Gone;

async fn pause(tx: &mpsc::Sender<Result<Bytes, std::io::Error>>, d: Duration) -> Result<(), Gone> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = tx.closed() => Err(Gone),
    }
}

async fn send(tx: &mpsc::Sender<Result<Bytes, std::io::Error>>, data: &str) -> Result<(), Gone> {
    tx.send(Ok(Bytes::from(format!("data: {data}\n\n")))).await.map_err(|_| Gone)
}

async fn send_stream(st: Shared, tx: mpsc::Sender<Result<Bytes, std::io::Error>>, events: Vec<String>, sc: Scenario) {
    let outcome: Result<(), Gone> = async {
        for (i, ev) in events.iter().enumerate() {
            if i == 0 {
                if let Some(d) = sc.first_token_delay {
                    pause(&tx, d).await?;
                }
            } else if let Some(d) = sc.chunk_delay {
                pause(&tx, d).await?;
            }
            if sc.stall_after == Some(i) {
                pause(&tx, MAX_STALL).await?;
                return Ok(());
            }
            if sc.truncate_after == Some(i) {
                // An error in the body makes hyper drop the connection without the final
                // chunk: the client sees a body cut short. The pause lets what was sent
                // before reach the client first, as it would from a real upstream.
                pause(&tx, Duration::from_millis(20)).await?;
                let _ = tx.send(Err(std::io::Error::other("mock truncation"))).await;
                return Ok(());
            }
            if sc.malformed_after == Some(i) {
                send(&tx, "{\"id\":\"chatcmpl-x\",\"choices\":[{\"delta\":{\"content\":\"bro").await?;
            }
            if sc.error_after == Some(i) {
                send(&tx, r#"{"error":{"message":"The upstream model crashed","type":"server_error","code":"internal_error"}}"#).await?;
                return Ok(());
            }
            send(&tx, ev).await?;
        }
        if !sc.no_done {
            send(&tx, "[DONE]").await?;
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => State::bump(&st.streams_completed),
        Err(Gone) => State::bump(&st.streams_cancelled),
    }
}

/// The answer to one chat request, in either form.
struct Plan {
    id: String,
    model: String,
    created: u64,
    words: Vec<String>,
    tools: bool,
    reasoning: bool,
    prompt_tokens: u64,
}

impl Plan {
    fn new(sc: &Scenario, messages: &[Value], model: String) -> Plan {
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))
            .map(message_text)
            .unwrap_or_default();
        let reply = sc.reply.clone().unwrap_or_else(|| format!("Hello from the mock upstream! You said: {last_user}"));
        let mut words: Vec<String> = Vec::new();
        for (i, w) in reply.split(' ').enumerate() {
            words.push(if i == 0 { w.to_string() } else { format!(" {w}") });
        }
        if let Some(n) = sc.chunks {
            let base = words.clone();
            words = (0..n).map(|i| base[i % base.len()].clone()).collect();
        }
        let prompt_chars: usize = messages.iter().map(|m| message_text(m).chars().count()).sum();
        Plan {
            id: format!("chatcmpl-{}", uuid_like()),
            model,
            created: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            words,
            tools: sc.tools,
            reasoning: sc.reasoning,
            prompt_tokens: (prompt_chars as u64 / 4).max(1),
        }
    }

    fn usage(&self) -> Value {
        let completion = self.words.len() as u64;
        json!({"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
               "total_tokens": self.prompt_tokens + completion, "prompt_tokens_details": {"cached_tokens": 0}})
    }

    fn completion(&self) -> Value {
        let mut message = json!({"role": "assistant", "content": self.words.concat()});
        let mut finish = "stop";
        if self.tools {
            message["content"] = json!("");
            message["tool_calls"] = json!([{"index": 0, "id": tool_call_id(), "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\": \"Hangzhou\"}"}}]);
            finish = "tool_calls";
        }
        if self.reasoning {
            message["reasoning_content"] = json!("Let me think about that.");
        }
        json!({"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
               "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
               "usage": self.usage(), "system_fingerprint": null})
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
               "system_fingerprint": null, "usage": null,
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        .to_string()
    }

    fn stream_events(&self, include_usage: bool) -> Vec<String> {
        let mut out = vec![self.chunk(json!({"role": "assistant", "content": ""}), None)];
        if self.reasoning {
            for part in ["Let me", " think", " about that."] {
                out.push(self.chunk(json!({"content": null, "reasoning_content": part}), None));
            }
        }
        let finish = if self.tools {
            let id = tool_call_id();
            out.push(self.chunk(
                json!({"content": null, "tool_calls": [{"index": 0, "id": id, "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"location\":"}}]}),
                None,
            ));
            // DashScope continuation fragments repeat an empty id.
            out.push(self.chunk(json!({"tool_calls": [{"index": 0, "id": "", "type": "function", "function": {"arguments": " \"Hangzhou\"}"}}]}), None));
            "tool_calls"
        } else {
            for w in &self.words {
                out.push(self.chunk(json!({"content": w}), None));
            }
            "stop"
        };
        out.push(self.chunk(json!({}), Some(finish)));
        if include_usage {
            out.push(
                json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                       "system_fingerprint": null, "choices": [], "usage": self.usage()})
                .to_string(),
            );
        }
        out
    }
}

fn message_text(m: &Value) -> String {
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(|t| t.as_str())).collect::<Vec<_>>().join(""),
        _ => String::new(),
    }
}

fn uuid_like() -> String {
    let a = fastrand::u128(..);
    let h = format!("{a:032x}");
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn tool_call_id() -> String {
    format!("call_{:024x}", fastrand::u128(..) & ((1u128 << 96) - 1))
}

fn default_code(status: u16) -> &'static str {
    match status {
        401 => "invalid_api_key",
        403 => "access_denied",
        404 => "model_not_found",
        429 => "rate_limit_exceeded",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

fn default_message(status: u16) -> &'static str {
    match status {
        401 => "invalid access token or token expired",
        403 => "Access denied",
        404 => "The model does not exist",
        408 => "Request timed out",
        409 => "Conflict, please retry",
        429 => "Requests rate limit exceeded, please try again later.",
        400..=499 => "Bad request",
        503 => "Service temporarily unavailable",
        _ => "The server had an error while processing your request",
    }
}

fn error_response(status: u16, code: &str, message: &str, sc: &Scenario) -> Response {
    let kind = if status >= 500 { "server_error" } else if status == 429 { code } else { "invalid_request_error" };
    let request_id = uuid_like();
    let body = json!({"error": {"code": code, "message": message, "param": null, "type": kind}, "request_id": request_id});
    let mut resp = (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(body)).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-request-id", v);
    }
    if let Some(v) = sc.retry_after_secs.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
        h.insert("retry-after", v);
    }
    if let Some(v) = sc.retry_after_ms.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
        h.insert("retry-after-ms", v);
    }
    resp
}
