//! Qwen (DashScope compatible-mode with an API key, and portal.qwen.ai with a Qwen OAuth token):
//! what the real client (qwen-code on the OpenAI SDK) sends beyond plain OpenAI chat
//! completions, and how Qwen's error answers map onto the engine's error kinds.
//!
//! Pure functions only; the provider layer calls them around the OpenAI transport.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::model::{ChatChunk, ChatMessage, ChatRequest, Content, ContentPart, StreamOptions};
use crate::provider::{error_from_response, parse_retry_after};

/// qwen-code's `DEFAULT_DASHSCOPE_BASE_URL`: the chat base when the credentials carry no
/// `resource_url`.
pub const DEFAULT_DASHSCOPE_BASE_URL: &str = "https://dashscope.aliyuncs.com/compatible-mode/v1";

/// Output-token ceilings of the models whose limit the real client enforces (tokenLimits.ts);
/// a larger `max_tokens` is rejected upstream, so it is capped before sending.
const OUTPUT_LIMITS: &[(&str, u64)] = &[("coder-model", 65_536), ("qwen3-coder-plus", 65_536), ("vision-model", 8_192)];

// ---------------------------------------------------------------------------------------------
// Base URL
// ---------------------------------------------------------------------------------------------

/// The chat base URL for a Qwen OAuth credential (§1.9): `resource_url` (or `default` when it is
/// missing or blank), with `https://` prepended when it has no `http(s)://` scheme and `/v1`
/// appended when it does not already end with it. `POST {base}/chat/completions` follows.
///
/// Trailing slashes are trimmed and `/v1` is compared case-insensitively (CPA's rule): qwen-code
/// keeps the slash and would build `https://host//v1`, which is a bug, not a contract.
pub fn chat_base_from_resource_url(resource_url: Option<&str>, default: &str) -> String {
    let raw = resource_url.map(str::trim).filter(|s| !s.is_empty()).unwrap_or(default.trim());
    let with_scheme = if has_http_scheme(raw) { raw.to_string() } else { format!("https://{raw}") };
    let base = with_scheme.trim_end_matches('/');
    if ends_with_ignore_case(base, "/v1") {
        base.to_string()
    } else {
        format!("{base}/v1")
    }
}

fn has_http_scheme(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len() && s.is_char_boundary(s.len() - suffix.len()) && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

// ---------------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------------

/// How the request is authenticated; it decides `X-DashScope-AuthType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QwenMode {
    /// A Qwen OAuth access token (portal.qwen.ai, or whatever `resource_url` names).
    OAuth,
    /// A DashScope API key (compatible-mode).
    ApiKey,
}

impl QwenMode {
    /// qwen-code's AuthType enum value.
    pub fn auth_type(self) -> &'static str {
        match self {
            QwenMode::OAuth => "qwen-oauth",
            QwenMode::ApiKey => "openai",
        }
    }

    /// The mode as the JS API names it (`authMode`).
    pub fn as_str(self) -> &'static str {
        match self {
            QwenMode::OAuth => "oauth",
            QwenMode::ApiKey => "apikey",
        }
    }
}

/// The client identity the headers claim. The OAuth tier throttled clients that did not look
/// like qwen-code (issue #1742), so the defaults copy a real install; every string can be
/// overridden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QwenClientInfo {
    /// qwen-code's version, the `<v>` of `QwenCode/<v> (<platform>; <arch>)`.
    pub cli_version: String,
    /// Node's `process.platform`: `darwin`, `linux`, `win32`.
    pub platform: String,
    /// Node's `process.arch`: `arm64`, `x64`.
    pub arch: String,
    /// Also send the `X-Stainless-*` headers the OpenAI SDK adds (CPA copies them).
    pub sdk_headers: bool,
    /// The OpenAI SDK version in `X-Stainless-Package-Version`.
    pub sdk_version: String,
    /// The Node version in `X-Stainless-Runtime-Version`.
    pub node_version: String,
}

impl Default for QwenClientInfo {
    /// The host's platform and architecture in Node's spelling, with the versions CPA uses.
    fn default() -> Self {
        QwenClientInfo {
            cli_version: "0.14.2".into(),
            platform: node_platform(std::env::consts::OS).into(),
            arch: node_arch(std::env::consts::ARCH).into(),
            sdk_headers: true,
            sdk_version: "5.11.0".into(),
            node_version: "v22.17.0".into(),
        }
    }
}

impl QwenClientInfo {
    /// `QwenCode/<version> (<platform>; <arch>)`, used for both `User-Agent` and
    /// `X-DashScope-UserAgent`.
    pub fn user_agent(&self) -> String {
        format!("QwenCode/{} ({}; {})", self.cli_version, self.platform, self.arch)
    }
}

fn node_platform(os: &str) -> &str {
    match os {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    }
}

fn node_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        "x86" => "ia32",
        other => other,
    }
}

/// The OpenAI SDK's names for Node's platform and arch (`X-Stainless-Os` / `-Arch`).
fn stainless_os(platform: &str) -> String {
    match platform {
        "darwin" => "MacOS".into(),
        "linux" => "Linux".into(),
        "win32" => "Windows".into(),
        "freebsd" => "FreeBSD".into(),
        "openbsd" => "OpenBSD".into(),
        other => format!("Other:{other}"),
    }
}

fn stainless_arch(arch: &str) -> String {
    match arch {
        "x64" | "arm64" | "arm" => arch.into(),
        "ia32" => "x32".into(),
        other => format!("other:{other}"),
    }
}

/// The headers qwen-code sends on every chat request (§2.2), in addition to what the transport
/// sets itself: `Authorization` (per call, it changes on refresh), `Content-Type` and `Accept`.
///
/// Left out on purpose although CPA copies them: `Accept-Encoding: gzip, deflate` (the engine's
/// reqwest has no decompression, so a gzipped body would be unreadable) and
/// `Connection: keep-alive` (forbidden in HTTP/2, and the pool keeps connections anyway).
/// Configured custom headers should be applied after these so that they win, as in qwen-code.
pub fn headers(mode: QwenMode, info: &QwenClientInfo) -> Result<Vec<(HeaderName, HeaderValue)>> {
    let ua = info.user_agent();
    let mut out = vec![
        (USER_AGENT, header_value("User-Agent", &ua)?),
        (HeaderName::from_static("x-dashscope-cachecontrol"), HeaderValue::from_static("enable")),
        (HeaderName::from_static("x-dashscope-useragent"), header_value("X-DashScope-UserAgent", &ua)?),
        (HeaderName::from_static("x-dashscope-authtype"), HeaderValue::from_static(mode.auth_type())),
    ];
    if info.sdk_headers {
        out.extend([
            (HeaderName::from_static("x-stainless-lang"), HeaderValue::from_static("js")),
            (HeaderName::from_static("x-stainless-package-version"), header_value("X-Stainless-Package-Version", &info.sdk_version)?),
            (HeaderName::from_static("x-stainless-os"), header_value("X-Stainless-Os", &stainless_os(&info.platform))?),
            (HeaderName::from_static("x-stainless-arch"), header_value("X-Stainless-Arch", &stainless_arch(&info.arch))?),
            (HeaderName::from_static("x-stainless-runtime"), HeaderValue::from_static("node")),
            (HeaderName::from_static("x-stainless-runtime-version"), header_value("X-Stainless-Runtime-Version", &info.node_version)?),
            (HeaderName::from_static("x-stainless-retry-count"), HeaderValue::from_static("0")),
            (HeaderName::from_static("accept-language"), HeaderValue::from_static("*")),
            (HeaderName::from_static("sec-fetch-mode"), HeaderValue::from_static("cors")),
        ]);
    }
    Ok(out)
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(value).map_err(|_| Error::validation(name, format!("{name} contains characters not allowed in an HTTP header: {value:?}")))
}

// ---------------------------------------------------------------------------------------------
// Request body
// ---------------------------------------------------------------------------------------------

/// Per-request inputs of the body rewrite that the request itself does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QwenRequestOptions {
    /// `metadata.sessionId`: one id per client session (qwen-code's CLI session uuid).
    pub session_id: Option<String>,
    /// `metadata.promptId`: one id per user prompt.
    pub prompt_id: Option<String>,
    /// `metadata.channel`, sent only when set.
    pub channel: Option<String>,
    /// DashScope context caching markers (`cache_control`); on by default, as in qwen-code.
    pub cache_control: bool,
}

impl Default for QwenRequestOptions {
    fn default() -> Self {
        QwenRequestOptions { session_id: None, prompt_id: None, channel: None, cache_control: true }
    }
}

/// Rewrites an OpenAI request the way qwen-code's DashScope provider does before sending it
/// (§2.3). Only changes that either avoid an upstream rejection or that the real client always
/// makes are applied; the request's `model` is never touched (the original package replaced it
/// with its default model). Idempotent, so a retry may run it again.
///
/// The body rules are the same for OAuth and API-key mode (qwen-code uses one provider class
/// for both), so no mode is needed here.
pub fn fix_request(req: &mut ChatRequest, opts: &QwenRequestOptions) {
    set_stream_fields(req);
    drop_empty_tools(req);
    drop_conflicting_knobs(req);
    clamp_max_tokens(req);
    let model = req.model.clone().unwrap_or_default().to_ascii_lowercase();
    if model.starts_with("glm-") && !has_function_calling_context(req) {
        flatten_text_content(&mut req.messages);
    } else if opts.cache_control {
        add_cache_control(req);
    }
    if is_vision_model(&model) {
        req.extra.entry("vl_high_resolution_images").or_insert(Value::Bool(true));
    }
    add_metadata(req, opts);
}

/// Streams always ask for the usage chunk; non-stream requests say `stream:false` explicitly
/// because some gateways default to SSE when the field is missing.
fn set_stream_fields(req: &mut ChatRequest) {
    if req.stream == Some(true) {
        req.stream_options.get_or_insert_with(StreamOptions::default).include_usage = Some(true);
    } else {
        req.stream = Some(false);
        req.stream_options = None;
    }
}

/// Some OpenAI-compatible hosts reject `tools: []`; qwen-code leaves the field out instead.
fn drop_empty_tools(req: &mut ChatRequest) {
    if req.tools.as_ref().is_some_and(Vec::is_empty) {
        req.tools = None;
    }
}

/// Combinations DashScope rejects with a 400: `tool_choice:"required"` while thinking is
/// enabled, and `reasoning_effort` together with `enable_thinking` / `thinking_budget`.
fn drop_conflicting_knobs(req: &mut ChatRequest) {
    let thinking_on = req.extra.get("enable_thinking").and_then(Value::as_bool) == Some(true);
    if thinking_on && req.tool_choice.as_ref().and_then(Value::as_str) == Some("required") {
        req.tool_choice = None;
    }
    if req.extra.contains_key("reasoning_effort") {
        req.extra.remove("enable_thinking");
        req.extra.remove("thinking_budget");
    }
}

fn clamp_max_tokens(req: &mut ChatRequest) {
    let model = req.model.as_deref().unwrap_or_default().to_ascii_lowercase();
    let limit = OUTPUT_LIMITS.iter().find(|(prefix, _)| model.starts_with(prefix)).map(|(_, l)| *l);
    if let (Some(limit), Some(max)) = (limit, req.max_tokens) {
        req.max_tokens = Some(max.min(limit));
    }
}

/// glm-* models on DashScope read content-part arrays only in function-calling mode.
fn has_function_calling_context(req: &ChatRequest) -> bool {
    req.tools.as_ref().is_some_and(|t| !t.is_empty())
        || req.messages.iter().any(|m| m.role == "tool" || (m.role == "assistant" && m.tool_calls.as_ref().is_some_and(|c| !c.is_empty())))
}

/// Text-only part arrays become one string (parts joined by a blank line); arrays with images
/// or audio stay. Without this a tool-less glm request loses its prompt silently upstream.
fn flatten_text_content(messages: &mut [ChatMessage]) {
    for m in messages {
        if let Some(Some(Content::Parts(parts))) = &m.content {
            if !parts.is_empty() && parts.iter().all(|p| p.kind == "text") {
                let text = parts.iter().map(|p| p.text.as_deref().unwrap_or_default()).collect::<Vec<_>>().join("\n\n");
                m.content = Some(Some(Content::Text(text)));
            }
        }
    }
}

/// DashScope context caching: the first system message always; when streaming, also the last
/// message and the last tool. Messages without content are left alone.
fn add_cache_control(req: &mut ChatRequest) {
    let streaming = req.stream == Some(true);
    let system = req.messages.iter().position(|m| m.role == "system");
    let last = req.messages.len().checked_sub(1);
    for (i, m) in req.messages.iter_mut().enumerate() {
        if Some(i) == system || (streaming && Some(i) == last) {
            mark_content(m);
        }
    }
    if streaming {
        if let Some(tool) = req.tools.as_mut().and_then(|t| t.last_mut()) {
            tool.extra.insert("cache_control".into(), ephemeral());
        }
    }
}

/// Puts the marker on the last part (whatever its type, as QC-latest does), turning a string
/// content into one text part first.
fn mark_content(m: &mut ChatMessage) {
    let parts = match m.content.take() {
        Some(Some(Content::Text(text))) => vec![ContentPart { kind: "text".into(), text: Some(text), ..Default::default() }],
        Some(Some(Content::Parts(parts))) => parts,
        other => {
            m.content = other;
            return;
        }
    };
    let mut parts = parts;
    if let Some(last) = parts.last_mut() {
        last.extra.insert("cache_control".into(), ephemeral());
    }
    m.content = Some(Some(Content::Parts(parts)));
}

fn ephemeral() -> Value {
    json!({"type": "ephemeral"})
}

/// Models that get `vl_high_resolution_images` (union of the QC-2025 and QC-latest lists).
fn is_vision_model(model: &str) -> bool {
    const EXACT: &[&str] = &["vision-model", "coder-model"];
    const PREFIXES: &[&str] = &["qwen-vl", "qwen3-vl-plus", "qwen3.5-plus", "qwen3.6-plus", "qwen3.7-plus"];
    EXACT.contains(&model) || PREFIXES.iter().any(|p| model.starts_with(p))
}

/// `metadata: {sessionId, promptId, channel?}` as qwen-code adds to every request, when the
/// caller has ids to give and the request carries no metadata of its own.
fn add_metadata(req: &mut ChatRequest, opts: &QwenRequestOptions) {
    if req.extra.contains_key("metadata") || (opts.session_id.is_none() && opts.prompt_id.is_none()) {
        return;
    }
    let mut meta = serde_json::Map::new();
    if let Some(s) = &opts.session_id {
        meta.insert("sessionId".into(), s.clone().into());
    }
    if let Some(p) = &opts.prompt_id {
        meta.insert("promptId".into(), p.clone().into());
    }
    if let Some(c) = &opts.channel {
        meta.insert("channel".into(), c.clone().into());
    }
    req.extra.insert("metadata".into(), Value::Object(meta));
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Qwen-specific reading of an HTTP error (§2.6), for the cases the generic mapping
/// (`error_from_response`: 401/403 → Authentication, 429 → RateLimit, else Provider) gets wrong
/// or should state explicitly. `None` means "use the generic mapping".
///
/// * A quota error (`insufficient_quota`, "Free allocated quota exceeded.", "quota … exceeded")
///   on 429 **or 403** → `RateLimit` with the status and provider code. The 403 form is the
///   same exhausted quota (CPA: "Qwen returns HTTP 403 with error.code=insufficient_quota"), not
///   a bad credential: the credential works again once the quota resets, and classing it as
///   Authentication would mark a healthy account as revoked. qwen-code does treat any 403 as an
///   auth error first, so [`is_token_rejection`] is true for it (one refresh and one retry);
///   what remains after that retry is this RateLimit.
/// * A 429 with throttling text (`throttling`, `rate limit`, `too many requests`) → `RateLimit`.
/// * A 400 `invalid_parameter_error` (e.g. `function.arguments` that is not JSON) → `Provider`
///   400, which is not retryable: the same body would fail again.
pub fn classify_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Option<Error> {
    let generic = error_from_response(status, headers, body);
    let text = searchable_text(&generic);
    if matches!(status, 403 | 429) && is_quota_text(&text) {
        return Some(into_rate_limit(generic, headers));
    }
    if status == 429 && is_throttling_text(&text) {
        return Some(into_rate_limit(generic, headers));
    }
    if status == 400 && provider_code(&generic).as_deref() == Some("invalid_parameter_error") {
        return Some(generic);
    }
    None
}

/// Whether qwen-code would force a token refresh and retry once: status 401 or 403 (which
/// includes the 403 quota answer, see [`classify_error`]), or a 4xx whose message says the
/// credential was refused (`unauthorized`, `forbidden`, `invalid api key`, `invalid access
/// token`, `token expired`, `authentication`, `access denied`, or `token` with `expired`).
///
/// The keyword test is limited to 4xx: a 5xx gateway page that happens to say "forbidden" is an
/// outage, and refreshing on it would only add load. Meaningful for OAuth; with an API key
/// there is nothing to refresh.
pub fn is_token_rejection(status: u16, body: &[u8]) -> bool {
    if matches!(status, 401 | 403) {
        return true;
    }
    if !(400..500).contains(&status) {
        return false;
    }
    let text = searchable_text(&error_from_response(status, &HeaderMap::new(), body));
    const WORDS: &[&str] = &["unauthorized", "forbidden", "invalid api key", "invalid access token", "token expired", "authentication", "access denied"];
    WORDS.iter().any(|w| text.contains(w)) || (text.contains("token") && text.contains("expired"))
}

/// A 400 saying the model only runs with thinking on (`enable_thinking` … "must be true" /
/// "restricted to true"); qwen-code then retries once with `enable_thinking: true`.
pub fn requires_thinking(status: u16, body: &[u8]) -> bool {
    if status != 400 {
        return false;
    }
    let text = searchable_text(&error_from_response(status, &HeaderMap::new(), body));
    text.contains("enable_thinking") && (text.contains("must be true") || text.contains("restricted to true"))
}

/// DashScope's in-stream failure: a chunk with `finish_reason:"error_finish"` and the error text
/// in `delta.content`. Throttling text → `RateLimit` (no status: it came inside a 200 stream),
/// anything else → `Stream` with `partial: None` for the caller to fill.
pub fn stream_finish_error(chunk: &ChatChunk) -> Option<Error> {
    let choice = chunk.choices.iter().find(|c| c.finish_reason.as_deref() == Some("error_finish"))?;
    let detail = choice.delta.content.clone().flatten().unwrap_or_default();
    let message = format!("the upstream ended the stream with finish_reason error_finish: {detail}");
    let lower = detail.to_lowercase();
    if is_throttling_text(&lower) || is_quota_text(&lower) {
        return Some(Error::RateLimit { message, status: None, retry_after_ms: None, body: None, provider_code: Some("error_finish".into()) });
    }
    Some(Error::Stream { message, partial: None })
}

/// qwen-code's `isQwenQuotaExceededError` on lower-cased text.
fn is_quota_text(t: &str) -> bool {
    t.contains("insufficient_quota") || t.contains("free allocated quota exceeded") || (t.contains("quota") && t.contains("exceeded"))
}

/// qwen-code's `isQwenThrottlingError` on lower-cased text.
fn is_throttling_text(t: &str) -> bool {
    ["throttling", "requests throttling triggered", "rate limit", "too many requests"].iter().any(|w| t.contains(w))
}

/// Message and provider code of a generically mapped error, lower-cased, for keyword tests.
fn searchable_text(e: &Error) -> String {
    format!("{} {}", e, provider_code(e).unwrap_or_default()).to_lowercase()
}

fn provider_code(e: &Error) -> Option<String> {
    match e {
        Error::Authentication { provider_code, .. } | Error::RateLimit { provider_code, .. } | Error::Provider { provider_code, .. } => provider_code.clone(),
        _ => None,
    }
}

/// The same answer as a `RateLimit`, keeping message, status, body and code.
fn into_rate_limit(e: Error, headers: &HeaderMap) -> Error {
    let header_wait = || parse_retry_after(headers).map(|d| d.as_millis() as u64);
    match e {
        Error::Authentication { message, status, body, provider_code } => {
            Error::RateLimit { message, status, retry_after_ms: header_wait(), body, provider_code }
        }
        Error::Provider { message, status, body, provider_code, retry_after_ms } => {
            Error::RateLimit { message, status, retry_after_ms: retry_after_ms.or_else(header_wait), body, provider_code }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tool;

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    fn body_of(r: &ChatRequest) -> Value {
        serde_json::to_value(r).unwrap()
    }

    #[test]
    fn base_url_from_resource_url() {
        let d = DEFAULT_DASHSCOPE_BASE_URL;
        assert_eq!(chat_base_from_resource_url(Some("portal.qwen.ai"), d), "https://portal.qwen.ai/v1");
        assert_eq!(chat_base_from_resource_url(Some("https://x.example/v1"), d), "https://x.example/v1");
        assert_eq!(chat_base_from_resource_url(Some("http://127.0.0.1:8080"), d), "http://127.0.0.1:8080/v1");
        assert_eq!(chat_base_from_resource_url(Some("HTTP://Host.Example/V1/"), d), "HTTP://Host.Example/V1");
        assert_eq!(chat_base_from_resource_url(Some("host.example/"), d), "https://host.example/v1");
        assert_eq!(chat_base_from_resource_url(Some("host.example/api"), d), "https://host.example/api/v1");
        assert_eq!(chat_base_from_resource_url(None, d), d);
        assert_eq!(chat_base_from_resource_url(Some("  "), d), d);
        assert_eq!(chat_base_from_resource_url(None, "portal.qwen.ai"), "https://portal.qwen.ai/v1");
        // Not fooled by a multi-byte character where the suffix would be cut.
        assert_eq!(chat_base_from_resource_url(Some("h.example/é"), d), "https://h.example/é/v1");
    }

    #[test]
    fn headers_follow_the_real_client() {
        let info = QwenClientInfo { platform: "darwin".into(), arch: "arm64".into(), ..QwenClientInfo::default() };
        let h: std::collections::HashMap<String, String> =
            headers(QwenMode::OAuth, &info).unwrap().into_iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string())).collect();
        assert_eq!(h["user-agent"], "QwenCode/0.14.2 (darwin; arm64)");
        assert_eq!(h["x-dashscope-useragent"], h["user-agent"]);
        assert_eq!(h["x-dashscope-cachecontrol"], "enable");
        assert_eq!(h["x-dashscope-authtype"], "qwen-oauth");
        assert_eq!(h["x-stainless-os"], "MacOS");
        assert_eq!(h["x-stainless-arch"], "arm64");
        assert_eq!(h["x-stainless-package-version"], "5.11.0");
        assert!(!h.contains_key("accept-encoding") && !h.contains_key("connection") && !h.contains_key("authorization"));

        let plain = QwenClientInfo { sdk_headers: false, cli_version: "9.9.9".into(), ..info };
        let h = headers(QwenMode::ApiKey, &plain).unwrap();
        assert_eq!(h.len(), 4);
        assert!(h.iter().any(|(k, v)| k == "x-dashscope-authtype" && v == "openai"));
        assert!(h.iter().any(|(k, v)| k == "user-agent" && v.to_str().unwrap().starts_with("QwenCode/9.9.9 ")));

        let bad = QwenClientInfo { cli_version: "1\n2".into(), ..QwenClientInfo::default() };
        assert_eq!(headers(QwenMode::OAuth, &bad).unwrap_err().code(), "VALIDATION_ERROR");
    }

    #[test]
    fn default_client_info_uses_node_names() {
        let info = QwenClientInfo::default();
        assert!(!info.platform.is_empty() && info.platform != "macos" && info.platform != "windows");
        assert!(info.arch != "x86_64" && info.arch != "aarch64");
    }

    #[test]
    fn stream_request_asks_for_usage_and_marks_cache_points() {
        let mut r = req(json!({
            "model": "qwen3-coder-plus", "stream": true, "stream_options": {"foo": 1},
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:x"}}]}
            ],
            "tools": [
                {"type": "function", "function": {"name": "a", "parameters": {}}},
                {"type": "function", "function": {"name": "b", "parameters": {}}}
            ]
        }));
        fix_request(&mut r, &QwenRequestOptions::default());
        let b = body_of(&r);
        assert_eq!(b["model"], "qwen3-coder-plus");
        assert_eq!(b["stream_options"], json!({"include_usage": true, "foo": 1}));
        assert_eq!(b["messages"][0]["content"], json!([{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]));
        // QC-latest: the last part gets the marker whatever its type.
        assert_eq!(b["messages"][1]["content"][1]["cache_control"], json!({"type": "ephemeral"}));
        assert!(b["messages"][1]["content"][0].get("cache_control").is_none());
        assert!(b["tools"][0].get("cache_control").is_none());
        assert_eq!(b["tools"][1]["cache_control"], json!({"type": "ephemeral"}));
        assert!(b.get("metadata").is_none(), "no ids, no metadata");
        // Idempotent: a retry may fix the same request again.
        let once = r.clone();
        fix_request(&mut r, &QwenRequestOptions::default());
        assert_eq!(r, once);
    }

    #[test]
    fn non_stream_request_marks_only_the_system_message() {
        let mut r = req(json!({
            "model": "qwen-plus", "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"}, {"role": "user", "content": "last"}],
            "tools": [{"type": "function", "function": {"name": "a"}}]
        }));
        fix_request(&mut r, &QwenRequestOptions::default());
        let b = body_of(&r);
        assert_eq!(b["stream"], false);
        assert!(b.get("stream_options").is_none());
        assert_eq!(b["messages"][0]["content"], "q");
        assert_eq!(b["messages"][1]["content"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(b["messages"][2]["content"], "last");
        assert!(b["tools"][0].get("cache_control").is_none());
    }

    #[test]
    fn cache_control_can_be_switched_off_and_skips_empty_content() {
        let mut r = req(json!({"model": "qwen-plus", "stream": true, "messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}));
        let mut off = r.clone();
        fix_request(&mut off, &QwenRequestOptions { cache_control: false, ..Default::default() });
        assert_eq!(body_of(&off)["messages"][0]["content"], "s");
        fix_request(&mut r, &QwenRequestOptions::default());
        let b = body_of(&r);
        assert_eq!(b["messages"][1]["content"], Value::Null);
        assert_eq!(b["messages"][0]["content"][0]["cache_control"]["type"], "ephemeral");
    }

    #[test]
    fn metadata_tools_and_knob_fixups() {
        let mut r = req(json!({
            "model": "qwen3-max", "messages": [{"role": "user", "content": "x"}], "tools": [],
            "tool_choice": "required", "enable_thinking": true
        }));
        let opts = QwenRequestOptions { session_id: Some("s-1".into()), prompt_id: Some("p-1".into()), ..Default::default() };
        fix_request(&mut r, &opts);
        let b = body_of(&r);
        assert!(b.get("tools").is_none(), "tools: [] is dropped");
        assert!(b.get("tool_choice").is_none(), "required + thinking is rejected by DashScope");
        assert_eq!(b["metadata"], json!({"sessionId": "s-1", "promptId": "p-1"}));

        let mut r = req(json!({"model": "qwen3.8-max", "messages": [], "reasoning_effort": "high", "enable_thinking": true, "thinking_budget": 100, "metadata": {"mine": 1}}));
        fix_request(&mut r, &QwenRequestOptions { channel: Some("c".into()), ..opts });
        let b = body_of(&r);
        assert!(b.get("enable_thinking").is_none() && b.get("thinking_budget").is_none());
        assert_eq!(b["reasoning_effort"], "high");
        assert_eq!(b["metadata"], json!({"mine": 1}), "the caller's metadata wins");
    }

    #[test]
    fn max_tokens_clamp_and_vision_flag() {
        let mut r = req(json!({"model": "coder-model", "max_tokens": 200000, "messages": []}));
        fix_request(&mut r, &QwenRequestOptions::default());
        assert_eq!(r.max_tokens, Some(65_536));
        assert_eq!(r.extra["vl_high_resolution_images"], true);
        let mut r = req(json!({"model": "qwen3-coder-plus-2025-09-23", "max_tokens": 1000, "messages": []}));
        fix_request(&mut r, &QwenRequestOptions::default());
        assert_eq!(r.max_tokens, Some(1000));
        assert!(!r.extra.contains_key("vl_high_resolution_images"));
        let mut r = req(json!({"model": "vision-model", "max_tokens": 9000, "messages": []}));
        fix_request(&mut r, &QwenRequestOptions::default());
        assert_eq!((r.max_tokens, r.extra.get("vl_high_resolution_images")), (Some(8192), Some(&Value::Bool(true))));
        let mut r = req(json!({"model": "Qwen-VL-Max", "messages": [], "vl_high_resolution_images": false}));
        fix_request(&mut r, &QwenRequestOptions::default());
        assert_eq!(r.extra["vl_high_resolution_images"], false, "an explicit choice is kept");
    }

    #[test]
    fn toolless_glm_gets_plain_strings_and_no_cache_markers() {
        let mut r = req(json!({"model": "glm-4.6", "stream": true, "messages": [
            {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "user", "content": [{"type": "text", "text": "t"}, {"type": "image_url", "image_url": {"url": "u"}}]}
        ]}));
        fix_request(&mut r, &QwenRequestOptions::default());
        let b = body_of(&r);
        assert_eq!(b["messages"][0]["content"], "a\n\nb");
        assert!(b["messages"][1]["content"].is_array(), "media parts stay");
        assert!(b["messages"][1]["content"][1].get("cache_control").is_none());

        let mut with_tools = req(json!({"model": "glm-4.6", "messages": [{"role": "system", "content": "s"}], "tools": [{"type": "function", "function": {"name": "f"}}]}));
        fix_request(&mut with_tools, &QwenRequestOptions::default());
        assert!(body_of(&with_tools)["messages"][0]["content"].is_array());
        let _: &Vec<Tool> = with_tools.tools.as_ref().unwrap();
    }

    fn hm() -> HeaderMap {
        HeaderMap::new()
    }

    #[test]
    fn quota_errors_are_rate_limits_on_429_and_403() {
        let body = br#"{"error":{"code":"insufficient_quota","message":"Free allocated quota exceeded.","type":"insufficient_quota"}}"#;
        let e = classify_error(429, &hm(), body).unwrap();
        assert!(matches!(&e, Error::RateLimit { status: Some(429), provider_code: Some(c), .. } if c == "insufficient_quota"), "{e:?}");
        assert_eq!(e.to_string(), "429 Free allocated quota exceeded.");
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        let e = classify_error(403, &h, body).unwrap();
        assert!(matches!(&e, Error::RateLimit { status: Some(403), retry_after_ms: Some(7000), provider_code: Some(c), .. } if c == "insufficient_quota"), "{e:?}");
        assert!(e.retryable());
        // DashScope's TPM throttle says "quota" but is transient: also a rate limit.
        let tpm = br#"{"error":{"code":"insufficient_quota","message":"You exceeded your current quota, please check your plan and billing details."}}"#;
        assert_eq!(classify_error(429, &hm(), tpm).unwrap().code(), "RATE_LIMIT_ERROR");
    }

    #[test]
    fn throttling_and_bad_parameters() {
        let e = classify_error(429, &hm(), br#"{"error":{"message":"Requests throttling triggered","code":"Throttling"}}"#).unwrap();
        assert_eq!(e.code(), "RATE_LIMIT_ERROR");
        let e = classify_error(429, &hm(), br#"{"error":{"code":"rate_limit_exceeded","message":"slow","type":"rate_limit_exceeded"}}"#);
        assert!(e.is_none(), "plain 429s are left to the generic mapping (which also says RateLimit)");
        let bad = br#"{"error":{"code":"invalid_parameter_error","message":"<400> InternalError.Algo.InvalidParameter: The \"function.arguments\" parameter of the code model must be in JSON format.","param":null,"type":"invalid_request_error"},"request_id":"83871168"}"#;
        let e = classify_error(400, &hm(), bad).unwrap();
        assert!(matches!(&e, Error::Provider { status: Some(400), provider_code: Some(c), .. } if c == "invalid_parameter_error"));
        assert!(!e.retryable());
        assert!(classify_error(401, &hm(), br#"{"error":{"code":"invalid_api_key","message":"invalid access token or token expired"}}"#).is_none());
        assert!(classify_error(403, &hm(), br#"{"error":{"code":"AccessDenied","message":"denied"}}"#).is_none());
        assert!(classify_error(500, &hm(), b"oops").is_none());
    }

    #[test]
    fn token_rejections_follow_qwen_code() {
        assert!(is_token_rejection(401, br#"{"error":{"code":"invalid_api_key","message":"invalid access token or token expired"}}"#));
        assert!(is_token_rejection(403, br#"{"error":{"code":"insufficient_quota","message":"Free allocated quota exceeded."}}"#));
        assert!(is_token_rejection(400, br#"{"error":{"message":"Your token has expired"}}"#));
        assert!(is_token_rejection(400, br#"{"message":"Invalid API key provided"}"#));
        assert!(!is_token_rejection(429, br#"{"error":{"code":"insufficient_quota","message":"Free allocated quota exceeded."}}"#));
        assert!(!is_token_rejection(502, b"<html>403 Forbidden</html>"));
        assert!(!is_token_rejection(400, br#"{"error":{"code":"invalid_parameter_error","message":"bad"}}"#));
    }

    #[test]
    fn thinking_required_errors() {
        assert!(requires_thinking(400, br#"{"error":{"message":"The value of the enable_thinking parameter is restricted to True."}}"#));
        assert!(requires_thinking(400, br#"{"error":{"message":"parameter.enable_thinking must be true for this model"}}"#));
        assert!(!requires_thinking(400, br#"{"error":{"message":"bad"}}"#));
        assert!(!requires_thinking(500, br#"{"error":{"message":"enable_thinking must be true"}}"#));
    }

    #[test]
    fn error_finish_chunks() {
        let chunk = |reason: &str, content: &str| -> ChatChunk {
            serde_json::from_value(json!({"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": reason}]})).unwrap()
        };
        let e = stream_finish_error(&chunk("error_finish", "Requests throttling triggered.")).unwrap();
        assert!(matches!(e, Error::RateLimit { status: None, .. }));
        let e = stream_finish_error(&chunk("error_finish", "internal")).unwrap();
        assert!(matches!(&e, Error::Stream { partial: None, message } if message.ends_with("internal")));
        assert!(stream_finish_error(&chunk("stop", "")).is_none());
    }
}
