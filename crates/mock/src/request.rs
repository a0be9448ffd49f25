//! Plumbing shared by every surface: reading and recording a request, its scenario, the
//! preamble faults, error envelopes, form bodies, and random ids.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::scenario::Scenario;
use crate::server::ConnHandle;
use crate::state::{RecordedRequest, State};

pub(crate) type Shared = Arc<State>;

const MAX_BODY: usize = 32 << 20;

/// Everything a handler needs from the raw request.
pub(crate) struct Incoming {
    pub headers: HeaderMap,
    pub raw: Bytes,
    /// The body as JSON, or as a JSON string when it is not JSON, or null when empty.
    pub body: Value,
    pub query: HashMap<String, String>,
    pub conn: Option<ConnHandle>,
}

impl Incoming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization").and_then(|v| v.strip_prefix("Bearer "))
    }

    /// Whether the body is declared `application/x-www-form-urlencoded`.
    pub fn is_form(&self) -> bool {
        self.header("content-type")
            .map(|c| c.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
            .unwrap_or(false)
    }

    /// The body's form fields (the last value of a repeated key wins).
    pub fn form(&self) -> HashMap<String, String> {
        form_urlencoded::parse(&self.raw).into_owned().collect()
    }
}

/// Reads the whole request, counts it and records it.
pub(crate) async fn take(st: &State, req: Request) -> Result<Incoming, Response> {
    State::bump(&st.requests);
    let (parts, body) = req.into_parts();
    let raw = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| error_response(400, "invalid_request_error", &format!("could not read the body: {e}"), &Scenario::default()))?;
    let body = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()))
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
    let query = parts.uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    Ok(Incoming { conn: parts.extensions.get::<ConnHandle>().cloned(), headers: parts.headers, raw, body, query })
}

/// The request's scenario: the `x-mock-scenario` header, else a model named `mock:<scenario>`.
// An early HTTP answer is the natural error of a handler step; boxing it would buy nothing.
#[allow(clippy::result_large_err)]
pub(crate) fn scenario_of(inc: &Incoming) -> Result<Scenario, Response> {
    let text = match inc.header("x-mock-scenario") {
        Some(h) => h.to_string(),
        None => inc.body.get("model").and_then(|m| m.as_str()).and_then(|m| m.strip_prefix("mock:")).unwrap_or("").to_string(),
    };
    Scenario::parse(&text).map_err(|e| error_response(400, "invalid_request_error", &e, &Scenario::default()))
}

/// The faults that come before any check: `latency`, then `reset`.
pub(crate) async fn delay_and_reset(inc: &Incoming, sc: &Scenario) {
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
}

/// The `status=CODE` fault, as an OpenAI / DashScope error envelope.
#[allow(clippy::result_large_err)]
pub(crate) fn scripted_status(sc: &Scenario) -> Result<(), Response> {
    if let Some(status) = sc.status {
        let code = sc.error_code.clone().unwrap_or_else(|| default_code(status).to_string());
        return Err(error_response(status, &code, default_message(status), sc));
    }
    Ok(())
}

pub(crate) fn json_response(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(body)).into_response()
}

/// An RFC 6749 error body, `{"error":…,"error_description":…}`.
pub(crate) fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    json_response(status, json!({"error": error, "error_description": description}))
}

pub(crate) fn default_code(status: u16) -> &'static str {
    match status {
        401 => "invalid_api_key",
        403 => "access_denied",
        404 => "model_not_found",
        429 => "rate_limit_exceeded",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

pub(crate) fn default_message(status: u16) -> &'static str {
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

/// DashScope's OpenAI-compatible error envelope, with `x-request-id` and any scripted
/// `Retry-After` headers.
pub(crate) fn error_response(status: u16, code: &str, message: &str, sc: &Scenario) -> Response {
    let kind = if status >= 500 { "server_error" } else if status == 429 { code } else { "invalid_request_error" };
    let request_id = uuid_like();
    let body = json!({"error": {"code": code, "message": message, "param": null, "type": kind}, "request_id": request_id});
    let mut resp = json_response(status, body);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    add_retry_after(&mut resp, sc);
    resp
}

pub(crate) fn add_retry_after(resp: &mut Response, sc: &Scenario) {
    let h = resp.headers_mut();
    if let Some(v) = sc.retry_after_secs.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
        h.insert("retry-after", v);
    }
    if let Some(v) = sc.retry_after_ms.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
        h.insert("retry-after-ms", v);
    }
}

pub(crate) fn uuid_like() -> String {
    let h = random_hex(16);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

pub(crate) fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", fastrand::u8(..))).collect()
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
