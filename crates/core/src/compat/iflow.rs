//! iFlow (`apis.iflow.cn`, the iFlow CLI's API): signed request headers, body fixups, and the
//! answers that differ from OpenAI — business errors inside HTTP 200 bodies
//! (`{"status":"434","msg":"…","body":null}`), `finish_reason:"network_error"`, and the Spring
//! 404 on `/v1/models`.
//!
//! Pure functions only; the provider layer calls them around the OpenAI transport. The stream's
//! `data:{…}` lines without a space already parse in `sse::SseDecoder` (the SSE spec removes
//! one optional space); a test below pins that.

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, USER_AGENT};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::model::{ChatChunk, ChatRequest, Tool};
use crate::provider::error_from_response;

/// CPA's `DefaultAPIBaseURL`; chat is `POST {base}/chat/completions`.
pub const IFLOW_API_BASE: &str = "https://apis.iflow.cn/v1";

/// The CLI's `User-Agent`; it is also part of the signed string.
pub const IFLOW_USER_AGENT: &str = "iFlow-Cli";

// ---------------------------------------------------------------------------------------------
// Signed headers
// ---------------------------------------------------------------------------------------------

/// `x-iflow-signature`: lower-case hex of HMAC-SHA256 keyed with the API key over the UTF-8
/// text `<user_agent>:<session_id>:<timestamp_ms>` (§3.1). iFlow answers unsigned requests
/// with HTTP 406 since February 2026.
pub fn signature(api_key: &str, user_agent: &str, session_id: &str, timestamp_ms: u64) -> String {
    // HMAC takes keys of any length; `new_from_slice` can only fail for fixed-size-key MACs.
    let mut mac = Hmac::<Sha256>::new_from_slice(api_key.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(format!("{user_agent}:{session_id}:{timestamp_ms}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The CLI's per-session ids. One session is meant to be reused for many calls of one account
/// (RCX rotates it every 200 calls); `conversation_id` defaults to the session id, as RCX and
/// CPA send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IFlowSession {
    /// `session-<uuid v4>`.
    pub session_id: String,
    /// `None` sends the session id as the conversation id.
    pub conversation_id: Option<String>,
}

impl Default for IFlowSession {
    fn default() -> Self {
        Self::new()
    }
}

impl IFlowSession {
    /// A fresh `session-<uuid v4>`. fastrand is enough: the id is a correlation handle, not a
    /// secret.
    pub fn new() -> Self {
        IFlowSession { session_id: format!("session-{}", uuid_v4()), conversation_id: None }
    }

    pub fn conversation_id(&self) -> &str {
        self.conversation_id.as_deref().unwrap_or(&self.session_id)
    }
}

/// A random RFC 4122 version-4 UUID in its 8-4-4-4-12 text form.
fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    fastrand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The headers of the real CLI (§3.1) for one request at `now_ms` (Unix milliseconds):
/// `Authorization: Bearer <apiKey>` (marked sensitive), `User-Agent: iFlow-Cli`, `session-id`,
/// `conversation-id`, `x-iflow-timestamp` and `x-iflow-signature`. The transport adds
/// `Content-Type`. The CLI itself sends no `Accept` (the body's `stream` decides the format);
/// the transport's `Accept` does no harm.
///
/// The key must be the API key from `getUserInfo`, not the OAuth access token: iFlow refuses
/// the access token on chat (business error 40308).
pub fn headers(api_key: &str, session: &IFlowSession, now_ms: u64) -> Result<Vec<(HeaderName, HeaderValue)>> {
    if api_key.trim().is_empty() {
        return Err(Error::validation("apiKey", "the iFlow API key is empty"));
    }
    let mut auth = HeaderValue::from_str(&format!("Bearer {api_key}"))
        .map_err(|_| Error::validation("apiKey", "the iFlow API key contains characters not allowed in an HTTP header"))?;
    auth.set_sensitive(true);
    let text = |field: &str, v: &str| {
        HeaderValue::from_str(v).map_err(|_| Error::validation(field, format!("{field} contains characters not allowed in an HTTP header: {v:?}")))
    };
    let timestamp = now_ms.to_string();
    Ok(vec![
        (AUTHORIZATION, auth),
        (USER_AGENT, HeaderValue::from_static(IFLOW_USER_AGENT)),
        (HeaderName::from_static("session-id"), text("session-id", &session.session_id)?),
        (HeaderName::from_static("conversation-id"), text("conversation-id", session.conversation_id())?),
        (HeaderName::from_static("x-iflow-timestamp"), text("x-iflow-timestamp", &timestamp)?),
        (HeaderName::from_static("x-iflow-signature"), text("x-iflow-signature", &signature(api_key, IFLOW_USER_AGENT, &session.session_id, now_ms))?),
    ])
}

// ---------------------------------------------------------------------------------------------
// Request body
// ---------------------------------------------------------------------------------------------

/// Models whose thinking switch is `chat_template_kwargs.enable_thinking` (CPA's list).
fn uses_enable_thinking(model: &str) -> bool {
    model.starts_with("glm") || matches!(model, "qwen3-max-preview" | "deepseek-v3.2" | "deepseek-v3.1")
}

/// Rewrites an OpenAI request for iFlow (§3.2). The model is kept; assistant
/// `reasoning_content` in the history is kept too (glm-4* and minimax-m2* want it back).
pub fn fix_request(req: &mut ChatRequest) {
    apply_thinking_switch(req);
    add_placeholder_tool(req);
}

/// iFlow's models take thinking as on/off, not as an effort level: an OpenAI
/// `reasoning_effort` becomes `chat_template_kwargs.enable_thinking` (plus
/// `clear_thinking:false` for GLM with thinking on) or MiniMax's `reasoning_split`; `"none"`
/// means off, every other level on. Other models keep `reasoning_effort` as sent.
fn apply_thinking_switch(req: &mut ChatRequest) {
    let Some(effort) = req.extra.get("reasoning_effort").and_then(Value::as_str).map(str::to_ascii_lowercase) else { return };
    let on = effort != "none";
    let model = req.model.as_deref().unwrap_or_default().to_ascii_lowercase();
    if uses_enable_thinking(&model) {
        let kwargs = req.extra.entry("chat_template_kwargs").or_insert_with(|| Value::Object(Map::new()));
        if !kwargs.is_object() {
            *kwargs = Value::Object(Map::new());
        }
        if let Some(k) = kwargs.as_object_mut() {
            k.insert("enable_thinking".into(), Value::Bool(on));
            k.remove("clear_thinking");
            if on && model.starts_with("glm") {
                k.insert("clear_thinking".into(), Value::Bool(false));
            }
        }
        req.extra.remove("reasoning_effort");
    } else if model.starts_with("minimax") {
        req.extra.insert("reasoning_split".into(), Value::Bool(on));
        req.extra.remove("reasoning_effort");
    }
}

/// A streaming request with `tools: []` gets CPA's no-op tool "to stabilise streaming".
fn add_placeholder_tool(req: &mut ChatRequest) {
    if req.stream != Some(true) || !req.tools.as_ref().is_some_and(Vec::is_empty) {
        return;
    }
    let noop = json!({"type": "function", "function": {"name": "noop", "description": "Placeholder tool to stabilise streaming", "parameters": {"type": "object"}}});
    if let Ok(tool) = serde_json::from_value::<Tool>(noop) {
        req.tools = Some(vec![tool]);
    }
}

// ---------------------------------------------------------------------------------------------
// Answers that differ from OpenAI
// ---------------------------------------------------------------------------------------------

/// A business error in a 2xx body (§3.5): iFlow answers `{"status":"434","msg":"…","body":null}`
/// with HTTP 200, also to stream requests (as the JSON body or as the one SSE event). A normal
/// `chat.completion` / chunk, an envelope with code `0` or 2xx, `success:true`, or one with
/// neither code nor message gives `None`.
///
/// Code from `status`, `error_code`, `errorCode`, `code` (then `error.code` / `error.status`);
/// message from `msg`, `message`, `error_message`, `error.message`. Mapping:
/// * 434 (invalid or blocked API key), 438 (key blocked), 439 (token expired), 40308 (OAuth
///   access token sent instead of the API key) → `Authentication`;
/// * 449 ("You exceeded your current rate limit") → `RateLimit` with status 429;
/// * other codes in 400–599 → as that HTTP status would be (401/403 → Authentication,
///   429 → RateLimit, else Provider with that status);
/// * anything else by message keywords (rate limit / quota / too many requests → RateLimit,
///   forbidden → Authentication 403, unauthorized / invalid api key / invalid token →
///   Authentication 401, not acceptable → Provider 406, timeout → Provider 408), otherwise
///   `Provider` without a status (an upstream failure, retryable).
///
/// `status` on the error is the HTTP status the business code stands for (CPA's
/// normalisation), never the literal 200; `provider_code` is the business code as sent.
pub fn business_error(body: &Value) -> Option<Error> {
    let obj = body.as_object()?;
    if is_completion(obj) || obj.get("success").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let code = envelope_code(obj);
    let msg = envelope_message(obj);
    let numeric = code.as_deref().and_then(|c| c.parse::<u32>().ok());
    if numeric == Some(0) || numeric.is_some_and(|c| (200..300).contains(&c)) || (code.is_none() && msg.is_none()) {
        return None;
    }
    let message = match (&code, &msg) {
        (Some(c), Some(m)) => format!("iFlow error {c}: {m}"),
        (Some(c), None) => format!("iFlow error {c}"),
        (None, Some(m)) => format!("iFlow error: {m}"),
        (None, None) => return None,
    };
    let kind = classify_business(numeric, &msg.unwrap_or_default().to_lowercase());
    Some(kind.into_error(message, body_text(body), code))
}

fn is_completion(obj: &Map<String, Value>) -> bool {
    obj.contains_key("choices") || obj.get("object").and_then(Value::as_str).is_some_and(|o| o.starts_with("chat.completion"))
}

/// The business code as text (`"434"`, `434` → `"434"`); empty strings count as none.
fn envelope_code(obj: &Map<String, Value>) -> Option<String> {
    let nested = obj.get("error").filter(|e| e.is_object());
    ["status", "error_code", "errorCode", "code"]
        .iter()
        .filter_map(|k| obj.get(*k))
        .chain(nested.iter().flat_map(|e| ["code", "status"].into_iter().filter_map(|k| e.get(k))))
        .find_map(scalar_text)
}

fn envelope_message(obj: &Map<String, Value>) -> Option<String> {
    ["msg", "message", "error_message"]
        .iter()
        .filter_map(|k| obj.get(*k))
        .chain(obj.get("error").and_then(|e| e.get("message")))
        .find_map(scalar_text)
}

fn scalar_text(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// What a business error is, with the HTTP status it stands for.
enum BusinessKind {
    Auth(Option<u16>),
    RateLimit(Option<u16>),
    Provider(Option<u16>),
}

impl BusinessKind {
    fn into_error(self, message: String, body: Option<String>, provider_code: Option<String>) -> Error {
        match self {
            BusinessKind::Auth(status) => Error::Authentication { message, status, body, provider_code },
            BusinessKind::RateLimit(status) => Error::RateLimit { message, status, retry_after_ms: None, body, provider_code },
            BusinessKind::Provider(status) => Error::Provider { message, status, body, provider_code, retry_after_ms: None },
        }
    }
}

fn classify_business(code: Option<u32>, msg: &str) -> BusinessKind {
    match code {
        Some(c @ (434 | 438 | 439)) => BusinessKind::Auth(Some(c as u16)),
        Some(40308) => BusinessKind::Auth(Some(403)),
        Some(449) => BusinessKind::RateLimit(Some(429)),
        Some(c @ 400..=599) => match c as u16 {
            s @ (401 | 403) => BusinessKind::Auth(Some(s)),
            429 => BusinessKind::RateLimit(Some(429)),
            s => BusinessKind::Provider(Some(s)),
        },
        _ => classify_by_message(msg),
    }
}

/// CPA's keyword fallback for codes that name no HTTP status.
fn classify_by_message(msg: &str) -> BusinessKind {
    let has = |words: &[&str]| words.iter().any(|w| msg.contains(w));
    if has(&["rate limit", "quota", "too many requests"]) {
        BusinessKind::RateLimit(Some(429))
    } else if has(&["forbidden"]) {
        BusinessKind::Auth(Some(403))
    } else if has(&["unauthorized", "invalid api key", "invalid apikey", "invalid token"]) {
        BusinessKind::Auth(Some(401))
    } else if has(&["not acceptable"]) {
        BusinessKind::Provider(Some(406))
    } else if has(&["timeout", "timed out"]) {
        BusinessKind::Provider(Some(408))
    } else {
        BusinessKind::Provider(None)
    }
}

/// The envelope as the error's `body`, truncated by the same rule as HTTP error bodies
/// (borrowed from `error_from_response` rather than repeated here).
fn body_text(envelope: &Value) -> Option<String> {
    let raw = serde_json::to_vec(envelope).ok()?;
    match error_from_response(500, &HeaderMap::new(), &raw) {
        Error::Provider { body, .. } => body,
        _ => None,
    }
}

/// iFlow ends a broken stream with a chunk whose `finish_reason` is `"network_error"` (and empty
/// content). That is a failed stream, whether or not text came before it: `Error::Stream` with
/// `partial: None`; the caller fills `partial` from what it accumulated.
pub fn stream_finish_error(chunk: &ChatChunk) -> Option<Error> {
    chunk.choices.iter().any(|c| c.finish_reason.as_deref() == Some("network_error")).then(|| Error::Stream {
        message: "the upstream ended the stream with finish_reason network_error".into(),
        partial: None,
    })
}

/// Whether an answer to `GET /v1/models` is iFlow's Spring Boot 404
/// (`{"timestamp":…,"status":404,"error":"Not Found","path":"/v1/models"}`): the endpoint does
/// not exist there, which says nothing about the account's health.
pub fn models_not_supported(status: u16, body: &[u8]) -> bool {
    if status != 404 {
        return false;
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return false };
    v.get("status").and_then(Value::as_u64) == Some(404) && v.get("error").is_some_and(Value::is_string) && v.get("path").is_some_and(Value::is_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ChatResponse;
    use crate::sse::{SseDecoder, SseEvent};

    const KEY: &str = "sk-0123456789abcdef0123456789abcdef";
    const SESSION: &str = "session-5f0c2a9e-3b1d-4c7a-9e2f-8a6b4d3c2e1f";

    #[test]
    fn signature_matches_the_documented_formula() {
        // Known answer, computed once from the formula (Python hmac/hashlib) and pinned.
        assert_eq!(signature(KEY, "iFlow-Cli", SESSION, 1_765_805_336_000), "76dc1dc0aba952cb2cbe96261da1b58aeebfe3b001a0c872531f9f2b4474e949");
        // And independently, with the hmac crate directly, for other inputs.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k3y").unwrap();
        mac.update(b"UA/1:session-x:42");
        assert_eq!(signature("k3y", "UA/1", "session-x", 42), hex::encode(mac.finalize().into_bytes()));
        assert_ne!(signature(KEY, "iFlow-Cli", SESSION, 1), signature(KEY, "iFlow-Cli", SESSION, 2));
    }

    #[test]
    fn sessions_look_like_the_cli() {
        let s = IFlowSession::new();
        let id = s.session_id.strip_prefix("session-").unwrap();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(groups[2].starts_with('4'), "version 4");
        assert!(matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'), "RFC 4122 variant");
        assert!(id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(IFlowSession::new(), s);
        assert_eq!(s.conversation_id(), s.session_id);
    }

    #[test]
    fn headers_are_signed() {
        let session = IFlowSession { session_id: SESSION.into(), conversation_id: Some("conv-1".into()) };
        let h = headers(KEY, &session, 1_765_805_336_000).unwrap();
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.to_str().unwrap().to_string()).unwrap();
        assert_eq!(get("authorization"), format!("Bearer {KEY}"));
        assert!(h.iter().find(|(k, _)| k == AUTHORIZATION).unwrap().1.is_sensitive());
        assert_eq!(get("user-agent"), "iFlow-Cli");
        assert_eq!(get("session-id"), SESSION);
        assert_eq!(get("conversation-id"), "conv-1");
        assert_eq!(get("x-iflow-timestamp"), "1765805336000");
        assert_eq!(get("x-iflow-signature"), "76dc1dc0aba952cb2cbe96261da1b58aeebfe3b001a0c872531f9f2b4474e949");

        let e = headers("sk-bad\nkey", &session, 1).unwrap_err();
        assert!(!e.to_string().contains("sk-bad"), "the key is never echoed");
        assert_eq!(headers(" ", &session, 1).unwrap_err().code(), "VALIDATION_ERROR");
    }

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn thinking_effort_becomes_the_model_switch() {
        let mut r = req(json!({"model": "glm-4.6", "messages": [], "reasoning_effort": "high", "chat_template_kwargs": {"clear_thinking": true, "x": 1}}));
        fix_request(&mut r);
        assert_eq!(r.extra["chat_template_kwargs"], json!({"x": 1, "enable_thinking": true, "clear_thinking": false}));
        assert!(!r.extra.contains_key("reasoning_effort"));

        let mut r = req(json!({"model": "glm-4.6", "messages": [], "reasoning_effort": "none"}));
        fix_request(&mut r);
        assert_eq!(r.extra["chat_template_kwargs"], json!({"enable_thinking": false}));

        let mut r = req(json!({"model": "deepseek-v3.2", "messages": [], "reasoning_effort": "low"}));
        fix_request(&mut r);
        assert_eq!(r.extra["chat_template_kwargs"], json!({"enable_thinking": true}));

        let mut r = req(json!({"model": "MiniMax-M2", "messages": [], "reasoning_effort": "medium"}));
        fix_request(&mut r);
        assert_eq!((r.extra.get("reasoning_split"), r.extra.get("reasoning_effort")), (Some(&Value::Bool(true)), None));

        let mut r = req(json!({"model": "kimi-k2", "messages": [{"role": "assistant", "content": "a", "reasoning_content": "r"}], "reasoning_effort": "high"}));
        let before = r.clone();
        fix_request(&mut r);
        assert_eq!(r, before, "other models and the history are left alone; the model is kept");
    }

    #[test]
    fn empty_tools_in_a_stream_get_the_placeholder() {
        let mut r = req(json!({"model": "glm-4.6", "stream": true, "messages": [], "tools": []}));
        fix_request(&mut r);
        let tools = serde_json::to_value(&r.tools).unwrap();
        assert_eq!(tools, json!([{"type": "function", "function": {"name": "noop", "description": "Placeholder tool to stabilise streaming", "parameters": {"type": "object"}}}]));
        let mut r = req(json!({"model": "glm-4.6", "messages": [], "tools": []}));
        fix_request(&mut r);
        assert_eq!(r.tools, Some(vec![]), "non-stream requests are left as sent");
    }

    #[test]
    fn business_envelopes_map_to_typed_errors() {
        let e = business_error(&json!({"status": "434", "msg": "Invalid apiKey，get your apiKey: https://iflow.cn/", "body": null})).unwrap();
        assert!(matches!(&e, Error::Authentication { status: Some(434), provider_code: Some(c), .. } if c == "434"), "{e:?}");
        assert_eq!(e.to_string(), "iFlow error 434: Invalid apiKey，get your apiKey: https://iflow.cn/");
        assert!(e.to_payload()["body"].as_str().unwrap().contains("\"status\":\"434\""));

        let blocked = business_error(&json!({"status": "438", "msg": "Access to the current AK has been blocked due to unauthorized requests", "body": null})).unwrap();
        assert_eq!(blocked.code(), "AUTHENTICATION_ERROR");
        let expired = business_error(&json!({"status": "439", "msg": "Your token has expired", "body": null})).unwrap();
        assert_eq!(expired.code(), "AUTHENTICATION_ERROR");
        let limited = business_error(&json!({"status": "449", "msg": "You exceeded your current rate limit", "body": null})).unwrap();
        assert!(matches!(&limited, Error::RateLimit { status: Some(429), provider_code: Some(c), .. } if c == "449"));
        assert!(limited.retryable());
        let wrong_token = business_error(&json!({"code": 40308, "message": "access token not allowed"})).unwrap();
        assert!(matches!(wrong_token, Error::Authentication { status: Some(403), .. }));

        let unknown = business_error(&json!({"status": "777", "msg": "something odd", "body": null})).unwrap();
        assert!(matches!(&unknown, Error::Provider { status: None, provider_code: Some(c), .. } if c == "777"));
        let bad = business_error(&json!({"status": 400, "msg": "bad"})).unwrap();
        assert!(matches!(bad, Error::Provider { status: Some(400), .. }) && !bad.retryable());
        let quota = business_error(&json!({"errorCode": "QUOTA", "error_message": "Quota exhausted"})).unwrap();
        assert_eq!(quota.code(), "RATE_LIMIT_ERROR");
        let nested = business_error(&json!({"error": {"message": "Unauthorized"}})).unwrap();
        assert!(matches!(nested, Error::Authentication { status: Some(401), provider_code: None, .. }));
    }

    #[test]
    fn normal_bodies_are_not_business_errors() {
        let ok: Value = serde_json::from_str(
            r#"{"id":"chatcmpl-69400d18346c05998e629f31","object":"chat.completion","created":1765805336,"model":"kimi-k2",
             "usage":{"prompt_tokens":77722,"completion_tokens":90,"total_tokens":77812},
             "extend_fields":{"traceId":"2101ea3517658053322951857e1ac3","requestId":"ca426b21fc7287f8009e81b23d894b4d"},
             "choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":"",
               "tool_calls":[{"index":0,"id":"shell_command:170","type":"function","function":{"arguments":"{}","name":"shell_command"}}]}}]}"#,
        )
        .unwrap();
        assert!(business_error(&ok).is_none());
        let resp: ChatResponse = serde_json::from_value(ok).unwrap();
        assert_eq!(resp.extra["extend_fields"]["traceId"], "2101ea3517658053322951857e1ac3");
        assert_eq!(resp.choices[0].message.tool_calls.as_ref().unwrap()[0].id.as_deref(), Some("shell_command:170"));
        assert!(business_error(&json!({"status": "0", "msg": "success"})).is_none());
        assert!(business_error(&json!({"code": 200, "msg": "ok"})).is_none());
        assert!(business_error(&json!({"status": "", "msg": ""})).is_none());
        assert!(business_error(&json!({"object": "chat.completion.chunk", "choices": []})).is_none());
        assert!(business_error(&json!({"success": true, "data": {}})).is_none());
        assert!(business_error(&json!([1, 2])).is_none());
    }

    fn decode(text: &str) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        d.feed(text.as_bytes(), &mut out).unwrap();
        d.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn iflow_stream_shape_parses() {
        let wire = concat!(
            "data:{\"id\":\"chat-\",\"object\":\"chat.completion.chunk\",\"created\":1765805336,\"model\":\"glm-4.6\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"你\"},\"finish_reason\":null}]}\n\n",
            "data:{\"id\":\"chat-\",\"object\":\"chat.completion.chunk\",\"created\":1765805336,\"model\":\"glm-4.6\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"好\"},\"finish_reason\":\"stop\"}],\"extend_fields\":{\"traceId\":\"t\"}}\n\n",
            "data:[DONE]\n\n",
        );
        let events = decode(wire);
        assert_eq!(events.len(), 3);
        assert_eq!(events[2].data, "[DONE]");
        let chunks: Vec<ChatChunk> = events[..2].iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
        assert_eq!(chunks.iter().filter_map(|c| c.content()).collect::<String>(), "你好");
        assert_eq!(chunks[1].choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(chunks[1].extra["extend_fields"]["traceId"], "t");
        assert!(chunks.iter().all(|c| stream_finish_error(c).is_none()));
        assert_eq!(decode("data: [DONE]\n\n")[0].data, "[DONE]");
    }

    #[test]
    fn an_envelope_as_the_only_stream_event_is_a_business_error() {
        let events = decode("data:{\"status\":\"449\",\"msg\":\"You exceeded your current rate limit\",\"body\":null}\n\n");
        let v: Value = serde_json::from_str(&events[0].data).unwrap();
        assert_eq!(business_error(&v).unwrap().code(), "RATE_LIMIT_ERROR");
    }

    #[test]
    fn network_error_finish_is_a_stream_error() {
        let chunk: ChatChunk = serde_json::from_value(json!({"choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "network_error"}]})).unwrap();
        assert!(matches!(stream_finish_error(&chunk), Some(Error::Stream { partial: None, .. })));
    }

    #[test]
    fn spring_404_on_models() {
        let spring = br#"{"timestamp":"2025-09-01T00:00:00.000+00:00","status":404,"error":"Not Found","path":"/v1/models"}"#;
        assert!(models_not_supported(404, spring));
        assert!(!models_not_supported(200, spring));
        assert!(!models_not_supported(404, br#"{"error":{"message":"model not found"}}"#));
        assert!(!models_not_supported(404, b"<html>"));
    }
}
