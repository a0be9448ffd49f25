//! Anthropic Messages ⇄ OpenAI Chat: requests, responses, streams and error bodies.
//!
//! # Mapping (Anthropic ⇄ chat)
//!
//! * `system` (string) ⇄ one leading `system` message with string content. `system` as an
//!   array of text blocks ⇄ one `system` message per block. From chat, every `system` and
//!   `developer` message, wherever it stands, is hoisted into `system`: one message with string
//!   content becomes a string, anything else an array of text blocks.
//! * Content: Anthropic string content ⇄ chat string content. A block array ⇄ a parts array,
//!   except that an array holding exactly one plain text block/part (no `cache_control` or other
//!   field) collapses to a string, in both directions. Several text blocks stay an array (no
//!   boundary is lost). `cache_control` on text/image/document blocks rides on the chat part.
//! * Images: `{type:"base64", media_type, data}` ⇄ `image_url.url` = `data:<media_type>;base64,<data>`;
//!   `{type:"url", url}` ⇄ any other URL. PDF documents `{type:"document", source:{type:"base64"}}`
//!   ⇄ `{type:"file", file:{file_data:<data URL>, filename:<title>}}`.
//! * Assistant turns: text blocks ⇄ `content` (`null` when the turn only calls tools);
//!   `tool_use{id, name, input}` ⇄ `tool_calls[{id, type:"function", function:{name, arguments:<JSON text>}}]`
//!   (arguments must be JSON text of an object, `""` means `{}`); thinking blocks ⇄
//!   `reasoning_content` (their text joined), plus `thinking_blocks` (the blocks verbatim, the
//!   LiteLLM convention) whenever a block is signed or redacted — that is what Anthropic needs
//!   back. From chat *requests*, only `thinking_blocks` become thinking blocks: Anthropic
//!   rejects unsigned thinking, so a bare `reasoning_content` in the history is dropped.
//! * Tool results: each `tool_result` block of a user turn ⇄ one `role:"tool"` message
//!   (`tool_use_id` ⇄ `tool_call_id`); blocks after the results become a following `user`
//!   message; from chat, consecutive tool messages and the one user message right after them
//!   merge back into one user turn. `is_error` ⇄ an `is_error` field on the tool message (chat
//!   has none; OpenAI-compatible upstreams ignore it). An empty result ⇄ no `content`.
//!   From chat, tool call ids are reduced to Anthropic's alphabet `[A-Za-z0-9_-]` (other
//!   characters become `_`, consistently in `tool_use` and `tool_result`).
//! * Tools: `{name, description, input_schema}` ⇄ `{type:"function", function:{name, description,
//!   parameters}}` (a missing `parameters` becomes `{"type":"object","properties":{}}`; server
//!   tools such as `web_search_*` have no chat form and are refused). `tool_choice`:
//!   auto/any/tool/none ⇄ "auto"/"required"/{type:"function",function:{name}}/"none";
//!   `disable_parallel_tool_use` ⇄ `!parallel_tool_calls`.
//! * `max_tokens` ⇄ `max_tokens` (from chat also `max_completion_tokens`; [`DEFAULT_MAX_TOKENS`]
//!   when neither is set, since Anthropic requires one); `temperature`, `top_p`, `top_k` as is
//!   (no range clamping); `stop_sequences` ⇄ `stop`; `stream` ⇄ `stream` (a streaming
//!   Anthropic request asks chat for `stream_options.include_usage`, since Anthropic streams
//!   always report usage); `metadata.user_id` ⇄ `user`.
//! * Thinking: `thinking{type:"enabled", budget_tokens}` ⇄ `reasoning_effort`: budgets below
//!   4096 → "low", below 16384 → "medium", else "high"; back, "minimal" → 1024, "low" → 2048,
//!   "medium" → 8192, "high" → 24576, "none" → `{type:"disabled"}`. Anthropic needs
//!   `budget_tokens < max_tokens`: a defaulted `max_tokens` grows to budget + 4096, an explicit
//!   one caps the budget at `max_tokens - 1` (no thinking when that is under 1024).
//!   `{type:"disabled"}` → no effort; `{type:"adaptive"}` → "medium".
//! * Responses: `stop_reason` ⇄ `finish_reason`: end_turn/stop_sequence/pause_turn → stop,
//!   max_tokens/model_context_window_exceeded → length, tool_use → tool_calls, refusal →
//!   content_filter; back stop → end_turn (refusal when the message or delta carried an
//!   OpenAI `refusal`, which becomes text; stop_sequence when the choice carries a
//!   `stop_sequence` field, which is how the matched sequence travels in chat), length →
//!   max_tokens, tool_calls/function_call → tool_use, content_filter → refusal; a chat answer
//!   that calls tools is always `tool_use` (some upstreams say "stop"). Usage: `prompt_tokens` =
//!   input + cache read + cache creation, `prompt_tokens_details.cached_tokens` = cache read,
//!   `prompt_tokens_details.cache_creation_tokens` = cache creation, `completion_tokens` =
//!   output. Ids are kept (`msg_…` stays `msg_…` in chat and `chatcmpl-…` stays in Anthropic),
//!   generated (`chatcmpl-`/`msg_`) when absent; `created` is now.
//! * Streams: the [`Decoder`] turns `message_start` into a first chunk `{role:"assistant",
//!   content:""}` that carries the start usage, `thinking_delta` into `reasoning_content`,
//!   `signature_delta` into `delta.reasoning_signature`, a `redacted_thinking` block into
//!   `delta.redacted_thinking` (its data), and `message_delta` into a finish chunk followed by a
//!   usage chunk (`choices: []`). The [`Encoder`] does the reverse with the real API's event
//!   order: one content block open at a time, `message_delta` and `message_stop` at
//!   [`StreamEncoder::finish`] so that usage arriving after the finish chunk is reported. When
//!   chat interleaves tool-call indices, the first call keeps streaming and the others are held
//!   and replayed, fragment by fragment, as soon as the open call is over (text, thinking, the
//!   finish reason or the end of the stream), so no block is ever reopened.
//!
//! # What does not survive (both directions)
//!
//! Anthropic-only fields (`service_tier`, `container`, `mcp_servers`, `citations`, other
//! `metadata` keys, `cache_control` anywhere but text/image/document blocks, tools and tool
//! results, `type:"custom"` on tools) and chat-only fields (`n`, `seed`, penalties, `logprobs`,
//! `response_format`, `stream_options`, `metadata`, message `name`, image `detail`, `strict`,
//! choices after the first, `completion_tokens_details`) are dropped. Exact thinking budgets become one of
//! three levels. Text interleaved with `tool_use` in one assistant turn comes back text first.
//! A `system`/`developer` message in mid conversation moves to the front; one system message
//! with several parts comes back as several messages. A stop string becomes a one-element
//! `stop` array. Ping and `citations_delta` events are dropped by the decoder.

use serde_json::{json, Map, Value};

use super::{StreamDecoder, StreamEncoder};
use crate::error::{Error, Result};
use crate::model::{generated_id, now_secs};
use crate::validate::invalid;

/// `max_tokens` sent to Anthropic when the chat request sets none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

type Obj = Map<String, Value>;

// ---------------------------------------------------------------------------------------------
// Small helpers: typed reads that name the JSON path of what is wrong.

fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn nth(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A field that is present and not `null`.
fn get<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Obj> {
    v.as_object().ok_or_else(|| invalid(path, "an object", Some(v)))
}

fn req_obj<'a>(o: &'a Obj, key: &str, path: &str) -> Result<&'a Obj> {
    match get(o, key) {
        Some(Value::Object(m)) => Ok(m),
        other => Err(invalid(&at(path, key), "an object", other)),
    }
}

fn opt_obj<'a>(o: &'a Obj, key: &str, path: &str) -> Result<Option<&'a Obj>> {
    match get(o, key) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        other => Err(invalid(&at(path, key), "an object", other)),
    }
}

fn req_str<'a>(o: &'a Obj, key: &str, path: &str) -> Result<&'a str> {
    match get(o, key) {
        Some(Value::String(s)) => Ok(s),
        other => Err(invalid(&at(path, key), "a string", other)),
    }
}

fn req_nonempty_str<'a>(o: &'a Obj, key: &str, path: &str) -> Result<&'a str> {
    match get(o, key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        other => Err(invalid(&at(path, key), "a non-empty string", other)),
    }
}

fn opt_str<'a>(o: &'a Obj, key: &str, path: &str) -> Result<Option<&'a str>> {
    match get(o, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        other => Err(invalid(&at(path, key), "a string", other)),
    }
}

fn opt_bool(o: &Obj, key: &str, path: &str) -> Result<Option<bool>> {
    match get(o, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        other => Err(invalid(&at(path, key), "a boolean", other)),
    }
}

/// An integer ≥ `min`.
fn opt_uint(o: &Obj, key: &str, path: &str, min: u64) -> Result<Option<u64>> {
    match get(o, key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n >= min => Ok(Some(n)),
            _ => {
                let what = if min == 0 { "a non-negative integer".to_string() } else { format!("an integer ≥ {min}") };
                Err(invalid(&at(path, key), &what, Some(v)))
            }
        },
    }
}

/// A finite number, returned as it came (so `0.7` stays `0.7`).
fn opt_number(o: &Obj, key: &str, path: &str) -> Result<Option<Value>> {
    match get(o, key) {
        None => Ok(None),
        Some(v @ Value::Number(_)) => Ok(Some(v.clone())),
        other => Err(invalid(&at(path, key), "a number", other)),
    }
}

fn opt_array<'a>(o: &'a Obj, key: &str, path: &str, what: &str) -> Result<Option<&'a Vec<Value>>> {
    match get(o, key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        other => Err(invalid(&at(path, key), what, other)),
    }
}

fn type_of(v: &Value) -> Option<&str> {
    v.get("type").and_then(Value::as_str)
}

/// A text block/part with nothing but `type` and `text`.
fn is_plain_text(v: &Value) -> bool {
    matches!(v.as_object(), Some(o) if type_of(v) == Some("text")
        && o.get("text").is_some_and(Value::is_string)
        && o.keys().all(|k| k == "type" || k == "text"))
}

/// Exactly one plain text item → its string; anything else stays an array.
fn collapse(items: Vec<Value>) -> Value {
    if items.len() == 1 && is_plain_text(&items[0]) {
        items[0]["text"].clone()
    } else {
        Value::Array(items)
    }
}

fn copy_key(from: &Obj, to: &mut Value, key: &str) {
    if let Some(v) = get(from, key) {
        to[key] = v.clone();
    }
}

/// Anthropic tool ids must match `^[a-zA-Z0-9_-]+$`.
fn sanitize_tool_id(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// `data:<media type>[;params];base64,<data>` → (media type, data).
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let meta = meta.strip_suffix(";base64")?;
    let media_type = meta.split(';').next().unwrap_or("");
    if media_type.is_empty() {
        return None;
    }
    Some((media_type, data))
}

/// Tool-call `arguments` (JSON text) → the object Anthropic wants as `input`.
fn parse_arguments(text: &str, path: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(Error::validation(path, format!("{path} must be JSON text of an object, got {}", crate::validate::describe(Some(&other))))),
        Err(e) => Err(Error::validation(path, format!("{path} must be JSON text of an object: {e}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Stop reasons, usage, thinking levels.

fn finish_reason_for(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

fn stop_reason_for(finish_reason: &str, has_stop_sequence: bool, has_tools: bool) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ if has_tools => "tool_use",
        "stop" if has_stop_sequence => "stop_sequence",
        _ => "end_turn",
    }
}

fn usage_to_chat(u: &Obj, path: &str) -> Result<Value> {
    let input = opt_uint(u, "input_tokens", path, 0)?.unwrap_or(0);
    let output = opt_uint(u, "output_tokens", path, 0)?.unwrap_or(0);
    let read = opt_uint(u, "cache_read_input_tokens", path, 0)?;
    let creation = opt_uint(u, "cache_creation_input_tokens", path, 0)?;
    let prompt = input.saturating_add(read.unwrap_or(0)).saturating_add(creation.unwrap_or(0));
    let mut usage = json!({"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt.saturating_add(output)});
    if read.is_some() || creation.is_some() {
        let mut details = Obj::new();
        if let Some(r) = read {
            details.insert("cached_tokens".into(), r.into());
        }
        if let Some(c) = creation {
            details.insert("cache_creation_tokens".into(), c.into());
        }
        usage["prompt_tokens_details"] = Value::Object(details);
    }
    Ok(usage)
}

fn usage_from_chat(u: &Obj, path: &str) -> Result<Obj> {
    let prompt = opt_uint(u, "prompt_tokens", path, 0)?.unwrap_or(0);
    let completion = opt_uint(u, "completion_tokens", path, 0)?.unwrap_or(0);
    let dp = at(path, "prompt_tokens_details");
    let (read, creation) = match opt_obj(u, "prompt_tokens_details", path)? {
        Some(d) => (opt_uint(d, "cached_tokens", &dp, 0)?, opt_uint(d, "cache_creation_tokens", &dp, 0)?),
        None => (None, None),
    };
    let mut out = Obj::new();
    let input = prompt.saturating_sub(read.unwrap_or(0)).saturating_sub(creation.unwrap_or(0));
    out.insert("input_tokens".into(), input.into());
    if let Some(c) = creation {
        out.insert("cache_creation_input_tokens".into(), c.into());
    }
    if let Some(r) = read {
        out.insert("cache_read_input_tokens".into(), r.into());
    }
    out.insert("output_tokens".into(), completion.into());
    Ok(out)
}

fn effort_for_budget(budget: u64) -> &'static str {
    if budget < 4096 {
        "low"
    } else if budget < 16384 {
        "medium"
    } else {
        "high"
    }
}

/// `None` = thinking disabled.
fn budget_for_effort(effort: &str) -> Result<Option<u64>> {
    Ok(Some(match effort {
        "none" => return Ok(None),
        "minimal" => 1024,
        "low" => 2048,
        "medium" => 8192,
        "high" => 24576,
        _ => {
            return Err(invalid(
                "reasoning_effort",
                "one of 'none', 'minimal', 'low', 'medium', 'high'",
                Some(&Value::String(effort.into())),
            ))
        }
    }))
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// The Anthropic error body for an engine error:
/// `{"type":"error","error":{"type":<class>,"message":<message>}}`.
pub fn error_body(e: &Error) -> Value {
    json!({"type": "error", "error": {"type": error_type(e), "message": e.to_string()}})
}

fn error_type(e: &Error) -> &'static str {
    match e {
        Error::Validation { .. } => "invalid_request_error",
        Error::Authentication { status: Some(403), .. } => "permission_error",
        Error::Authentication { .. } => "authentication_error",
        Error::RateLimit { .. } => "rate_limit_error",
        Error::CircuitOpen { .. } | Error::QueueFull { .. } => "overloaded_error",
        Error::Provider { status, provider_code, .. } => {
            if *status == Some(529) || provider_code.as_deref().is_some_and(|c| c.contains("overloaded")) {
                return "overloaded_error";
            }
            match status {
                Some(400) | Some(422) => "invalid_request_error",
                Some(401) => "authentication_error",
                Some(403) => "permission_error",
                Some(404) => "not_found_error",
                Some(413) => "request_too_large",
                Some(429) => "rate_limit_error",
                _ => "api_error",
            }
        }
        Error::Timeout { .. }
        | Error::Connection { .. }
        | Error::Stream { .. }
        | Error::Cancelled { .. }
        | Error::NoAvailablePipeline { .. }
        | Error::Internal { .. } => "api_error",
    }
}

/// An Anthropic error body (`{"type":"error","error":{type, message}}`, as an HTTP body or a
/// stream `error` event) → the engine's error. `status` is the HTTP status when there was one;
/// otherwise the error class implies it (overloaded → 529, api_error → 500, ...).
pub fn error_from_body(body: &Value, status: Option<u16>) -> Error {
    let err = body.get("error").unwrap_or(body);
    let kind = err.get("type").and_then(Value::as_str).unwrap_or("api_error").to_string();
    let message = err.get("message").and_then(Value::as_str).map(String::from).unwrap_or_else(|| format!("Anthropic error: {kind}"));
    let implied = match kind.as_str() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    };
    let status = Some(status.unwrap_or(implied));
    let body = Some(body.to_string());
    let provider_code = Some(kind.clone());
    match kind.as_str() {
        "authentication_error" | "permission_error" => Error::Authentication { message, status, body, provider_code },
        "rate_limit_error" => Error::RateLimit { message, status, retry_after_ms: None, body, provider_code },
        _ => Error::Provider { message, status, body, provider_code, retry_after_ms: None },
    }
}

// ---------------------------------------------------------------------------------------------
// Anthropic content blocks → chat parts.

/// A text, image or document block (user, system or tool-result content) → a chat part.
fn block_to_part(b: &Obj, kind: &str, path: &str) -> Result<Value> {
    let mut part = match kind {
        "text" => json!({"type": "text", "text": req_str(b, "text", path)?}),
        "image" => {
            let sp = at(path, "source");
            let src = req_obj(b, "source", path)?;
            let url = match req_str(src, "type", &sp)? {
                "base64" => format!("data:{};base64,{}", req_nonempty_str(src, "media_type", &sp)?, req_str(src, "data", &sp)?),
                "url" => req_nonempty_str(src, "url", &sp)?.to_string(),
                _ => return Err(invalid(&at(&sp, "type"), "'base64' or 'url'", src.get("type"))),
            };
            json!({"type": "image_url", "image_url": {"url": url}})
        }
        "document" => {
            let sp = at(path, "source");
            let src = req_obj(b, "source", path)?;
            if req_str(src, "type", &sp)? != "base64" {
                return Err(invalid(&at(&sp, "type"), "'base64' (other document sources have no chat form)", src.get("type")));
            }
            let mut file = json!({"file_data": format!("data:{};base64,{}", req_nonempty_str(src, "media_type", &sp)?, req_str(src, "data", &sp)?)});
            if let Some(t) = opt_str(b, "title", path)? {
                file["filename"] = t.into();
            }
            json!({"type": "file", "file": file})
        }
        _ => return Err(invalid(&at(path, "type"), "one of 'text', 'image', 'document', 'tool_result'", b.get("type"))),
    };
    copy_key(b, &mut part, "cache_control");
    Ok(part)
}

/// A chat part → an Anthropic text, image or document block.
fn part_to_block(p: &Value, path: &str) -> Result<Value> {
    let po = as_obj(p, path)?;
    let mut block = match req_str(po, "type", path)? {
        "text" => json!({"type": "text", "text": req_str(po, "text", path)?}),
        "image_url" => {
            let (url, up) = match get(po, "image_url") {
                Some(Value::String(s)) => (s.as_str(), at(path, "image_url")),
                Some(Value::Object(o)) => (req_nonempty_str(o, "url", &at(path, "image_url"))?, at(path, "image_url.url")),
                other => return Err(invalid(&at(path, "image_url"), "an object with a url", other)),
            };
            let source = if url.starts_with("data:") {
                let (media_type, data) = parse_data_url(url).ok_or_else(|| invalid(&up, "a base64 data: URL or an http(s) URL", Some(&Value::String(url.into()))))?;
                json!({"type": "base64", "media_type": media_type, "data": data})
            } else {
                json!({"type": "url", "url": url})
            };
            json!({"type": "image", "source": source})
        }
        "file" => {
            let fp = at(path, "file");
            let f = req_obj(po, "file", path)?;
            let url = match get(f, "file_data") {
                Some(Value::String(s)) => s.as_str(),
                other => return Err(invalid(&at(&fp, "file_data"), "a base64 data: URL (file ids have no Anthropic form)", other)),
            };
            let (media_type, data) = parse_data_url(url).ok_or_else(|| invalid(&at(&fp, "file_data"), "a base64 data: URL", Some(&Value::String(url.into()))))?;
            let mut doc = json!({"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}});
            if let Some(name) = opt_str(f, "filename", &fp)? {
                doc["title"] = name.into();
            }
            doc
        }
        _ => return Err(invalid(&at(path, "type"), "one of 'text', 'image_url', 'file'", po.get("type"))),
    };
    copy_key(po, &mut block, "cache_control");
    Ok(block)
}

/// Chat message content → Anthropic content (a string, or blocks collapsed by the one rule).
fn chat_content_to_anthropic(content: Option<&Value>, path: &str) -> Result<Value> {
    match content {
        None => Ok(Value::String(String::new())),
        Some(Value::String(s)) => Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => {
            let blocks = parts.iter().enumerate().map(|(k, p)| part_to_block(p, &nth(path, k))).collect::<Result<Vec<_>>>()?;
            Ok(collapse(blocks))
        }
        Some(other) => Err(invalid(path, "a string or an array of content parts", Some(other))),
    }
}

/// What an assistant turn (request history or response) holds, in chat terms.
#[derive(Default)]
struct AssistantParts {
    parts: Vec<Value>,
    tool_calls: Vec<Value>,
    reasoning: String,
    thinking_blocks: Vec<Value>,
    /// A block reasoning text alone cannot rebuild (signed or redacted).
    keep_blocks: bool,
}

fn walk_assistant(blocks: &[Value], path: &str, response: bool) -> Result<AssistantParts> {
    let mut a = AssistantParts::default();
    for (j, b) in blocks.iter().enumerate() {
        let bp = nth(path, j);
        let bo = as_obj(b, &bp)?;
        match req_str(bo, "type", &bp)? {
            "text" => a.parts.push(block_to_part(bo, "text", &bp)?),
            kind @ ("image" | "document") if !response => a.parts.push(block_to_part(bo, kind, &bp)?),
            "tool_use" => {
                let id = req_nonempty_str(bo, "id", &bp)?;
                let name = req_nonempty_str(bo, "name", &bp)?;
                let input = match get(bo, "input") {
                    None => json!({}),
                    Some(v @ Value::Object(_)) => v.clone(),
                    other => return Err(invalid(&at(&bp, "input"), "an object", other)),
                };
                a.tool_calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()}}));
            }
            "thinking" => {
                a.reasoning.push_str(req_str(bo, "thinking", &bp)?);
                if opt_str(bo, "signature", &bp)?.is_some_and(|s| !s.is_empty()) {
                    a.keep_blocks = true;
                }
                a.thinking_blocks.push(b.clone());
            }
            "redacted_thinking" => {
                req_str(bo, "data", &bp)?;
                a.keep_blocks = true;
                a.thinking_blocks.push(b.clone());
            }
            _ => {
                let expected = if response {
                    "one of 'text', 'tool_use', 'thinking', 'redacted_thinking'"
                } else {
                    "one of 'text', 'image', 'document', 'tool_use', 'thinking', 'redacted_thinking'"
                };
                return Err(invalid(&at(&bp, "type"), expected, bo.get("type")));
            }
        }
    }
    Ok(a)
}

fn assistant_message(a: AssistantParts, content: Value) -> Value {
    let mut m = json!({"role": "assistant", "content": content});
    if !a.reasoning.is_empty() {
        m["reasoning_content"] = a.reasoning.into();
    }
    if a.keep_blocks {
        m["thinking_blocks"] = Value::Array(a.thinking_blocks);
    }
    if !a.tool_calls.is_empty() {
        m["tool_calls"] = Value::Array(a.tool_calls);
    }
    m
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// An Anthropic Messages request → an OpenAI chat request.
pub fn request_to_chat(body: &Value) -> Result<Value> {
    let o = as_obj(body, "request")?;
    let mut out = Obj::new();
    if let Some(m) = opt_str(o, "model", "")? {
        out.insert("model".into(), m.into());
    }
    let mut messages = Vec::new();
    match get(o, "system") {
        None => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                let bp = nth("system", i);
                let bo = as_obj(b, &bp)?;
                if req_str(bo, "type", &bp)? != "text" {
                    return Err(invalid(&at(&bp, "type"), "'text' (system blocks hold text only)", bo.get("type")));
                }
                messages.push(json!({"role": "system", "content": collapse(vec![block_to_part(bo, "text", &bp)?])}));
            }
        }
        other => return Err(invalid("system", "a string or an array of text blocks", other)),
    }
    let list = match get(o, "messages") {
        Some(Value::Array(a)) => a,
        other => return Err(invalid("messages", "an array of messages", other)),
    };
    for (i, m) in list.iter().enumerate() {
        message_to_chat(m, &nth("messages", i), &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));

    if let Some(n) = opt_uint(o, "max_tokens", "", 1)? {
        out.insert("max_tokens".into(), n.into());
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = opt_number(o, key, "")? {
            out.insert(key.into(), v);
        }
    }
    if let Some(k) = opt_uint(o, "top_k", "", 0)? {
        out.insert("top_k".into(), k.into());
    }
    if let Some(stops) = opt_array(o, "stop_sequences", "", "an array of strings")? {
        for (i, s) in stops.iter().enumerate() {
            if !s.is_string() {
                return Err(invalid(&nth("stop_sequences", i), "a string", Some(s)));
            }
        }
        out.insert("stop".into(), Value::Array(stops.clone()));
    }
    if let Some(s) = opt_bool(o, "stream", "")? {
        out.insert("stream".into(), s.into());
        if s {
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
    if let Some(tools) = opt_array(o, "tools", "", "an array of tools")? {
        let mut list = Vec::with_capacity(tools.len());
        for (i, t) in tools.iter().enumerate() {
            list.push(tool_to_chat(t, &nth("tools", i))?);
        }
        out.insert("tools".into(), Value::Array(list));
    }
    if let Some(tc) = opt_obj(o, "tool_choice", "")? {
        let choice = match req_str(tc, "type", "tool_choice")? {
            "auto" => json!("auto"),
            "any" => json!("required"),
            "none" => json!("none"),
            "tool" => json!({"type": "function", "function": {"name": req_nonempty_str(tc, "name", "tool_choice")?}}),
            _ => return Err(invalid("tool_choice.type", "one of 'auto', 'any', 'tool', 'none'", tc.get("type"))),
        };
        out.insert("tool_choice".into(), choice);
        if let Some(d) = opt_bool(tc, "disable_parallel_tool_use", "tool_choice")? {
            out.insert("parallel_tool_calls".into(), (!d).into());
        }
    }
    if let Some(meta) = opt_obj(o, "metadata", "")? {
        if let Some(u) = opt_str(meta, "user_id", "metadata")? {
            out.insert("user".into(), u.into());
        }
    }
    if let Some(t) = opt_obj(o, "thinking", "")? {
        match req_str(t, "type", "thinking")? {
            "enabled" => {
                let budget = opt_uint(t, "budget_tokens", "thinking", 1)?
                    .ok_or_else(|| invalid("thinking.budget_tokens", "an integer ≥ 1", None))?;
                out.insert("reasoning_effort".into(), effort_for_budget(budget).into());
            }
            "adaptive" => {
                out.insert("reasoning_effort".into(), "medium".into());
            }
            "disabled" => {}
            _ => return Err(invalid("thinking.type", "one of 'enabled', 'disabled', 'adaptive'", t.get("type"))),
        }
    }
    Ok(Value::Object(out))
}

fn tool_to_chat(t: &Value, path: &str) -> Result<Value> {
    let to = as_obj(t, path)?;
    match opt_str(to, "type", path)? {
        None | Some("custom") => {}
        Some(_) => return Err(invalid(&at(path, "type"), "'custom' (Anthropic server tools have no chat form)", to.get("type"))),
    }
    let mut f = json!({"name": req_nonempty_str(to, "name", path)?});
    if let Some(d) = opt_str(to, "description", path)? {
        f["description"] = d.into();
    }
    f["parameters"] = Value::Object(req_obj(to, "input_schema", path)?.clone());
    let mut tool = json!({"type": "function", "function": f});
    copy_key(to, &mut tool, "cache_control");
    Ok(tool)
}

fn message_to_chat(m: &Value, path: &str, out: &mut Vec<Value>) -> Result<()> {
    let mo = as_obj(m, path)?;
    let role = req_str(mo, "role", path)?;
    let cp = at(path, "content");
    let content = get(mo, "content");
    match (role, content) {
        ("user" | "assistant", Some(Value::String(s))) => out.push(json!({"role": role, "content": s})),
        ("user", Some(Value::Array(blocks))) => user_blocks_to_chat(blocks, &cp, out)?,
        ("assistant", Some(Value::Array(blocks))) => {
            let mut a = walk_assistant(blocks, &cp, false)?;
            let parts = std::mem::take(&mut a.parts);
            let content = if !parts.is_empty() {
                collapse(parts)
            } else if a.tool_calls.is_empty() {
                Value::String(String::new())
            } else {
                Value::Null
            };
            out.push(assistant_message(a, content));
        }
        ("user" | "assistant", other) => return Err(invalid(&cp, "a string or an array of content blocks", other)),
        _ => return Err(invalid(&at(path, "role"), "'user' or 'assistant'", mo.get("role"))),
    }
    Ok(())
}

/// A user turn: each `tool_result` becomes a tool message; the blocks between results become
/// user messages in place.
fn user_blocks_to_chat(blocks: &[Value], path: &str, out: &mut Vec<Value>) -> Result<()> {
    if blocks.is_empty() {
        out.push(json!({"role": "user", "content": []}));
        return Ok(());
    }
    let mut pending: Vec<Value> = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bp = nth(path, j);
        let bo = as_obj(b, &bp)?;
        let kind = req_str(bo, "type", &bp)?;
        if kind == "tool_result" {
            if !pending.is_empty() {
                out.push(json!({"role": "user", "content": collapse(std::mem::take(&mut pending))}));
            }
            out.push(tool_result_to_chat(bo, &bp)?);
        } else {
            pending.push(block_to_part(bo, kind, &bp)?);
        }
    }
    if !pending.is_empty() {
        out.push(json!({"role": "user", "content": collapse(pending)}));
    }
    Ok(())
}

fn tool_result_to_chat(b: &Obj, path: &str) -> Result<Value> {
    let id = req_nonempty_str(b, "tool_use_id", path)?;
    let cp = at(path, "content");
    let content = match get(b, "content") {
        None => Value::String(String::new()),
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (k, x) in blocks.iter().enumerate() {
                let xp = nth(&cp, k);
                let xo = as_obj(x, &xp)?;
                let kind = req_str(xo, "type", &xp)?;
                if kind == "tool_result" {
                    return Err(invalid(&at(&xp, "type"), "one of 'text', 'image', 'document'", xo.get("type")));
                }
                parts.push(block_to_part(xo, kind, &xp)?);
            }
            collapse(parts)
        }
        other => return Err(invalid(&cp, "a string or an array of content blocks", other)),
    };
    let mut m = json!({"role": "tool", "tool_call_id": id, "content": content});
    if let Some(e) = opt_bool(b, "is_error", path)? {
        m["is_error"] = e.into();
    }
    copy_key(b, &mut m, "cache_control");
    Ok(m)
}

/// An OpenAI chat request → an Anthropic Messages request.
pub fn request_from_chat(chat: &Value) -> Result<Value> {
    let o = as_obj(chat, "request")?;
    let mut out = Obj::new();
    if let Some(m) = opt_str(o, "model", "")? {
        out.insert("model".into(), m.into());
    }
    let list = match get(o, "messages") {
        Some(Value::Array(a)) => a,
        other => return Err(invalid("messages", "an array of messages", other)),
    };
    let mut system: Vec<Value> = Vec::new();
    let mut msgs: Vec<Value> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let mp = nth("messages", i);
        let mo = as_obj(m, &mp)?;
        let cp = at(&mp, "content");
        match req_str(mo, "role", &mp)? {
            "system" | "developer" => match get(mo, "content") {
                None => {}
                Some(Value::String(s)) => system.push(json!({"type": "text", "text": s})),
                Some(Value::Array(parts)) => {
                    for (k, p) in parts.iter().enumerate() {
                        let pp = nth(&cp, k);
                        if type_of(p) != Some("text") {
                            let got = p.as_object().and_then(|po| po.get("type")).or(Some(p));
                            return Err(invalid(&at(&pp, "type"), "'text' (system messages hold text only)", got));
                        }
                        system.push(part_to_block(p, &pp)?);
                    }
                }
                Some(other) => return Err(invalid(&cp, "a string or an array of content parts", Some(other))),
            },
            "user" => {
                let content = chat_content_to_anthropic(get(mo, "content"), &cp)?;
                if let Some(turn) = open_tool_turn(&mut msgs) {
                    match content {
                        Value::String(s) if s.is_empty() => {}
                        Value::String(s) => turn.push(json!({"type": "text", "text": s})),
                        Value::Array(blocks) => turn.extend(blocks),
                        _ => unreachable!("chat_content_to_anthropic returns a string or an array"),
                    }
                } else {
                    msgs.push(json!({"role": "user", "content": content}));
                }
            }
            "assistant" => msgs.push(assistant_from_chat(mo, &mp)?),
            "tool" => {
                let block = tool_result_from_chat(mo, &mp)?;
                match open_tool_turn(&mut msgs) {
                    Some(turn) => turn.push(block),
                    None => msgs.push(json!({"role": "user", "content": [block]})),
                }
            }
            _ => return Err(invalid(&at(&mp, "role"), "one of 'system', 'developer', 'user', 'assistant', 'tool'", mo.get("role"))),
        }
    }
    if system.len() == 1 && is_plain_text(&system[0]) {
        out.insert("system".into(), system[0]["text"].clone());
    } else if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(msgs));

    let explicit = match opt_uint(o, "max_tokens", "", 1)? {
        Some(n) => Some(n),
        None => opt_uint(o, "max_completion_tokens", "", 1)?,
    };
    let mut max_tokens = explicit.unwrap_or(DEFAULT_MAX_TOKENS);
    let mut thinking = None;
    if let Some(effort) = opt_str(o, "reasoning_effort", "")? {
        thinking = Some(match budget_for_effort(effort)? {
            None => json!({"type": "disabled"}),
            Some(mut budget) => {
                if budget >= max_tokens {
                    if explicit.is_none() {
                        max_tokens = budget + DEFAULT_MAX_TOKENS;
                    } else {
                        budget = max_tokens - 1;
                    }
                }
                if budget < 1024 {
                    json!({"type": "disabled"})
                } else {
                    json!({"type": "enabled", "budget_tokens": budget})
                }
            }
        });
    }
    out.insert("max_tokens".into(), max_tokens.into());
    for key in ["temperature", "top_p"] {
        if let Some(v) = opt_number(o, key, "")? {
            out.insert(key.into(), v);
        }
    }
    if let Some(k) = opt_uint(o, "top_k", "", 0)? {
        out.insert("top_k".into(), k.into());
    }
    match get(o, "stop") {
        None => {}
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            for (i, s) in a.iter().enumerate() {
                if !s.is_string() {
                    return Err(invalid(&nth("stop", i), "a string", Some(s)));
                }
            }
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        other => return Err(invalid("stop", "a string or an array of strings", other)),
    }
    if let Some(s) = opt_bool(o, "stream", "")? {
        out.insert("stream".into(), s.into());
    }
    if let Some(tools) = opt_array(o, "tools", "", "an array of tools")? {
        let mut list = Vec::with_capacity(tools.len());
        for (i, t) in tools.iter().enumerate() {
            list.push(tool_from_chat(t, &nth("tools", i))?);
        }
        out.insert("tools".into(), Value::Array(list));
    }
    let parallel = opt_bool(o, "parallel_tool_calls", "")?;
    let mut choice = match get(o, "tool_choice") {
        None => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            _ => return Err(invalid("tool_choice", "'auto', 'required', 'none' or a function choice", get(o, "tool_choice"))),
        }),
        Some(Value::Object(tc)) => {
            if opt_str(tc, "type", "tool_choice")? != Some("function") {
                return Err(invalid("tool_choice.type", "'function'", tc.get("type")));
            }
            let f = req_obj(tc, "function", "tool_choice")?;
            Some(json!({"type": "tool", "name": req_nonempty_str(f, "name", "tool_choice.function")?}))
        }
        other => return Err(invalid("tool_choice", "'auto', 'required', 'none' or a function choice", other)),
    };
    match (parallel, choice.as_mut()) {
        (Some(false), None) => choice = Some(json!({"type": "auto", "disable_parallel_tool_use": true})),
        (Some(p), Some(c)) if c["type"] != "none" => c["disable_parallel_tool_use"] = (!p).into(),
        _ => {}
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    if let Some(u) = opt_str(o, "user", "")? {
        out.insert("metadata".into(), json!({"user_id": u}));
    }
    if let Some(t) = thinking {
        out.insert("thinking".into(), t);
    }
    Ok(Value::Object(out))
}

/// The last Anthropic message, when it is a user turn that ends with a tool result (where the
/// next tool result, or the user message right after the results, belongs).
fn open_tool_turn(msgs: &mut [Value]) -> Option<&mut Vec<Value>> {
    let last = msgs.last_mut()?;
    if last.get("role").and_then(Value::as_str) != Some("user") {
        return None;
    }
    let blocks = last.get_mut("content")?.as_array_mut()?;
    if blocks.last().and_then(type_of) == Some("tool_result") {
        Some(blocks)
    } else {
        None
    }
}

fn tool_result_from_chat(m: &Obj, path: &str) -> Result<Value> {
    let id = req_nonempty_str(m, "tool_call_id", path)?;
    let content = chat_content_to_anthropic(get(m, "content"), &at(path, "content"))?;
    let mut block = json!({"type": "tool_result", "tool_use_id": sanitize_tool_id(id)});
    if content != Value::String(String::new()) {
        block["content"] = content;
    }
    if let Some(e) = opt_bool(m, "is_error", path)? {
        block["is_error"] = e.into();
    }
    copy_key(m, &mut block, "cache_control");
    Ok(block)
}

/// Chat `thinking_blocks` (Anthropic blocks kept verbatim) → checked clones.
fn thinking_blocks_from_chat(m: &Obj, path: &str) -> Result<Vec<Value>> {
    let Some(list) = opt_array(m, "thinking_blocks", path, "an array of thinking blocks")? else {
        return Ok(Vec::new());
    };
    let tp = at(path, "thinking_blocks");
    let mut out = Vec::with_capacity(list.len());
    for (k, b) in list.iter().enumerate() {
        let bp = nth(&tp, k);
        let bo = as_obj(b, &bp)?;
        match req_str(bo, "type", &bp)? {
            "thinking" => {
                req_str(bo, "thinking", &bp)?;
            }
            "redacted_thinking" => {
                req_str(bo, "data", &bp)?;
            }
            _ => return Err(invalid(&at(&bp, "type"), "'thinking' or 'redacted_thinking'", bo.get("type"))),
        }
        out.push(b.clone());
    }
    Ok(out)
}

/// A chat tool call → a `tool_use` block. Requests need the id (results refer to it) and get
/// it sanitized; responses get one made up when the upstream sent none.
fn tool_call_to_block(tc: &Value, path: &str, request: bool) -> Result<Value> {
    let to = as_obj(tc, path)?;
    let id = match opt_str(to, "id", path)? {
        Some(s) if !s.is_empty() => {
            if request {
                sanitize_tool_id(s)
            } else {
                s.to_string()
            }
        }
        other if request => return Err(invalid(&at(path, "id"), "a non-empty string", other.map(|s| Value::String(s.into())).as_ref())),
        _ => generated_id("toolu_"),
    };
    let fp = at(path, "function");
    let f = req_obj(to, "function", path)?;
    let name = req_nonempty_str(f, "name", &fp)?;
    let input = parse_arguments(opt_str(f, "arguments", &fp)?.unwrap_or(""), &at(&fp, "arguments"))?;
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

fn tool_calls_of<'a>(m: &'a Obj, path: &str) -> Result<&'a [Value]> {
    Ok(opt_array(m, "tool_calls", path, "an array of tool calls")?.map(Vec::as_slice).unwrap_or(&[]))
}

fn assistant_from_chat(m: &Obj, path: &str) -> Result<Value> {
    let mut blocks = thinking_blocks_from_chat(m, path)?;
    let calls = tool_calls_of(m, path)?;
    let cp = at(path, "content");
    if blocks.is_empty() && calls.is_empty() {
        return Ok(json!({"role": "assistant", "content": chat_content_to_anthropic(get(m, "content"), &cp)?}));
    }
    match get(m, "content") {
        None => {}
        Some(Value::String(s)) if !s.is_empty() => blocks.push(json!({"type": "text", "text": s})),
        Some(Value::String(_)) => {}
        Some(Value::Array(parts)) => {
            for (k, p) in parts.iter().enumerate() {
                let b = part_to_block(p, &nth(&cp, k))?;
                if !(type_of(&b) == Some("text") && b["text"] == "") {
                    blocks.push(b);
                }
            }
        }
        Some(other) => return Err(invalid(&cp, "a string or an array of content parts", Some(other))),
    }
    let tp = at(path, "tool_calls");
    for (j, tc) in calls.iter().enumerate() {
        blocks.push(tool_call_to_block(tc, &nth(&tp, j), true)?);
    }
    Ok(json!({"role": "assistant", "content": blocks}))
}

fn tool_from_chat(t: &Value, path: &str) -> Result<Value> {
    let to = as_obj(t, path)?;
    if req_str(to, "type", path)? != "function" {
        return Err(invalid(&at(path, "type"), "'function'", to.get("type")));
    }
    let fp = at(path, "function");
    let f = req_obj(to, "function", path)?;
    let mut tool = json!({"name": req_nonempty_str(f, "name", &fp)?});
    if let Some(d) = opt_str(f, "description", &fp)? {
        tool["description"] = d.into();
    }
    tool["input_schema"] = match opt_obj(f, "parameters", &fp)? {
        Some(p) => Value::Object(p.clone()),
        None => json!({"type": "object", "properties": {}}),
    };
    copy_key(to, &mut tool, "cache_control");
    Ok(tool)
}

// ---------------------------------------------------------------------------------------------
// Responses.

/// An Anthropic `message` response → a `chat.completion`. An Anthropic error body comes back
/// as the matching `Err` (see [`error_from_body`]).
pub fn response_to_chat(body: &Value) -> Result<Value> {
    let o = as_obj(body, "response")?;
    if type_of(body) == Some("error") {
        return Err(error_from_body(body, None));
    }
    let id = match opt_str(o, "id", "")? {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => generated_id("chatcmpl-"),
    };
    let model = opt_str(o, "model", "")?.unwrap_or("");
    let blocks = opt_array(o, "content", "", "an array of content blocks")?.map(Vec::as_slice).unwrap_or(&[]);
    let a = walk_assistant(blocks, "content", true)?;
    let text: String = a.parts.iter().filter_map(|p| p["text"].as_str()).collect();
    let content = if !text.is_empty() {
        Value::String(text)
    } else if a.tool_calls.is_empty() {
        Value::String(String::new())
    } else {
        Value::Null
    };
    let message = assistant_message(a, content);
    let stop_reason = opt_str(o, "stop_reason", "")?;
    let mut choice = json!({"index": 0, "message": message, "finish_reason": stop_reason.map(finish_reason_for)});
    if stop_reason == Some("stop_sequence") {
        if let Some(seq) = opt_str(o, "stop_sequence", "")? {
            choice["stop_sequence"] = seq.into();
        }
    }
    let usage = match opt_obj(o, "usage", "")? {
        Some(u) => usage_to_chat(u, "usage")?,
        None => json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
    };
    Ok(json!({
        "id": id,
        "object": "chat.completion",
        "created": now_secs(),
        "model": model,
        "choices": [choice],
        "usage": usage,
    }))
}

/// A `chat.completion` → an Anthropic `message` response (from the first choice).
pub fn response_from_chat(chat: &Value) -> Result<Value> {
    let o = as_obj(chat, "response")?;
    let id = match opt_str(o, "id", "")? {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => generated_id("msg_"),
    };
    let model = opt_str(o, "model", "")?.unwrap_or("");
    let choice = match get(o, "choices") {
        Some(Value::Array(a)) if !a.is_empty() => as_obj(&a[0], "choices[0]")?,
        other => return Err(invalid("choices", "a non-empty array of choices", other)),
    };
    let mp = "choices[0].message";
    let m = req_obj(choice, "message", "choices[0]")?;
    let mut content = thinking_blocks_from_chat(m, mp)?;
    if content.is_empty() {
        let reasoning = match opt_str(m, "reasoning_content", mp)? {
            Some(r) => Some(r),
            None => opt_str(m, "reasoning", mp)?,
        };
        if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
            content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
        }
    }
    let cp = at(mp, "content");
    match get(m, "content") {
        None => {}
        Some(Value::String(s)) if !s.is_empty() => content.push(json!({"type": "text", "text": s})),
        Some(Value::String(_)) => {}
        Some(Value::Array(parts)) => {
            for (k, p) in parts.iter().enumerate() {
                let pp = nth(&cp, k);
                let po = as_obj(p, &pp)?;
                match req_str(po, "type", &pp)? {
                    "text" => {
                        let t = req_str(po, "text", &pp)?;
                        if !t.is_empty() {
                            content.push(json!({"type": "text", "text": t}));
                        }
                    }
                    "refusal" => content.push(json!({"type": "text", "text": req_str(po, "refusal", &pp)?})),
                    _ => return Err(invalid(&at(&pp, "type"), "'text' or 'refusal'", po.get("type"))),
                }
            }
        }
        Some(other) => return Err(invalid(&cp, "a string or an array of content parts", Some(other))),
    }
    // OpenAI puts a refusal beside the content; Anthropic has it as text with its own stop reason.
    let refusal = opt_str(m, "refusal", mp)?.filter(|r| !r.is_empty());
    if let Some(r) = refusal {
        content.push(json!({"type": "text", "text": r}));
    }
    let calls = tool_calls_of(m, mp)?;
    let tp = at(mp, "tool_calls");
    for (j, tc) in calls.iter().enumerate() {
        content.push(tool_call_to_block(tc, &nth(&tp, j), false)?);
    }
    let stop_sequence = opt_str(choice, "stop_sequence", "choices[0]")?;
    let stop_reason = match opt_str(choice, "finish_reason", "choices[0]")? {
        Some(f) => stop_reason_for(f, stop_sequence.is_some(), !calls.is_empty()),
        None if !calls.is_empty() => "tool_use",
        None => "end_turn",
    };
    let stop_reason = if refusal.is_some() && stop_reason == "end_turn" { "refusal" } else { stop_reason };
    let stop_sequence = if stop_reason == "stop_sequence" { stop_sequence.map(Value::from).unwrap_or(Value::Null) } else { Value::Null };
    let usage = match opt_obj(o, "usage", "")? {
        Some(u) => usage_from_chat(u, "usage")?,
        None => {
            let mut u = Obj::new();
            u.insert("input_tokens".into(), 0.into());
            u.insert("output_tokens".into(), 0.into());
            u
        }
    };
    Ok(json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage,
    }))
}

// ---------------------------------------------------------------------------------------------
// Stream decoding: Anthropic events → chat chunks.

#[derive(Debug, Clone, Copy)]
enum DecodedBlock {
    Text,
    Thinking,
    Redacted,
    /// A `tool_use` block and its chat `tool_calls[].index`.
    Tool(u32),
}

/// Anthropic stream events → `chat.completion.chunk`s. See the module doc for the shapes.
#[derive(Debug, Default)]
pub struct Decoder {
    id: String,
    model: String,
    created: u64,
    started: bool,
    /// `message_delta` seen.
    finished: bool,
    /// `message_stop` seen.
    stopped: bool,
    blocks: std::collections::HashMap<u64, DecodedBlock>,
    next_tool: u32,
    /// Anthropic usage, merged over `message_start` and `message_delta`.
    usage: Obj,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn ensure_ids(&mut self) {
        if self.id.is_empty() {
            self.id = generated_id("chatcmpl-");
        }
        if self.created == 0 {
            self.created = now_secs();
        }
    }

    fn chunk(&self, choices: Vec<Value>, usage: Option<Value>) -> Value {
        let mut c = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(u) = usage {
            c["usage"] = u;
        }
        c
    }

    fn delta(&self, delta: Value) -> Value {
        self.chunk(vec![json!({"index": 0, "delta": delta, "finish_reason": null})], None)
    }

    fn merge_usage(&mut self, u: &Obj) {
        for (k, v) in u {
            if !v.is_null() {
                self.usage.insert(k.clone(), v.clone());
            }
        }
    }

    fn index_of(e: &Obj) -> Result<u64> {
        match get(e, "index").and_then(Value::as_u64) {
            Some(i) => Ok(i),
            None => Err(invalid("index", "a non-negative integer", e.get("index"))),
        }
    }
}

impl StreamDecoder for Decoder {
    fn push(&mut self, event: &Value) -> Result<Vec<Value>> {
        let e = as_obj(event, "event")?;
        let kind = req_str(e, "type", "event")?;
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                let m = req_obj(e, "message", "")?;
                if let Some(id) = opt_str(m, "id", "message")?.filter(|s| !s.is_empty()) {
                    self.id = id.to_string();
                }
                if let Some(model) = opt_str(m, "model", "message")? {
                    self.model = model.to_string();
                }
                self.ensure_ids();
                self.started = true;
                let mut first = self.delta(json!({"role": "assistant", "content": ""}));
                if let Some(u) = opt_obj(m, "usage", "message")? {
                    self.merge_usage(u);
                    first["usage"] = usage_to_chat(&self.usage, "message.usage")?;
                }
                out.push(first);
            }
            "content_block_start" => {
                self.ensure_ids();
                let index = Self::index_of(e)?;
                let b = req_obj(e, "content_block", "")?;
                let bp = "content_block";
                match req_str(b, "type", bp)? {
                    "text" => {
                        self.blocks.insert(index, DecodedBlock::Text);
                        let t = opt_str(b, "text", bp)?.unwrap_or("");
                        if !t.is_empty() {
                            out.push(self.delta(json!({"content": t})));
                        }
                    }
                    "tool_use" => {
                        let k = self.next_tool;
                        self.next_tool += 1;
                        self.blocks.insert(index, DecodedBlock::Tool(k));
                        let id = req_nonempty_str(b, "id", bp)?;
                        let name = req_nonempty_str(b, "name", bp)?;
                        let args = match get(b, "input") {
                            Some(Value::Object(i)) if !i.is_empty() => Value::Object(i.clone()).to_string(),
                            None | Some(Value::Object(_)) => String::new(),
                            other => return Err(invalid("content_block.input", "an object", other)),
                        };
                        out.push(self.delta(json!({"tool_calls": [{
                            "index": k, "id": id, "type": "function", "function": {"name": name, "arguments": args}
                        }]})));
                    }
                    "thinking" => {
                        self.blocks.insert(index, DecodedBlock::Thinking);
                        let mut d = Obj::new();
                        if let Some(t) = opt_str(b, "thinking", bp)?.filter(|t| !t.is_empty()) {
                            d.insert("reasoning_content".into(), t.into());
                        }
                        if let Some(s) = opt_str(b, "signature", bp)?.filter(|s| !s.is_empty()) {
                            d.insert("reasoning_signature".into(), s.into());
                        }
                        if !d.is_empty() {
                            out.push(self.delta(Value::Object(d)));
                        }
                    }
                    "redacted_thinking" => {
                        self.blocks.insert(index, DecodedBlock::Redacted);
                        out.push(self.delta(json!({"redacted_thinking": req_str(b, "data", bp)?})));
                    }
                    _ => return Err(invalid("content_block.type", "one of 'text', 'tool_use', 'thinking', 'redacted_thinking'", b.get("type"))),
                }
            }
            "content_block_delta" => {
                self.ensure_ids();
                let index = Self::index_of(e)?;
                let d = req_obj(e, "delta", "")?;
                match req_str(d, "type", "delta")? {
                    "text_delta" => out.push(self.delta(json!({"content": req_str(d, "text", "delta")?}))),
                    "input_json_delta" => {
                        let Some(DecodedBlock::Tool(k)) = self.blocks.get(&index).copied() else {
                            return Err(Error::validation("index", format!("input_json_delta for block {index}, which is not an open tool_use block")));
                        };
                        let part = req_str(d, "partial_json", "delta")?;
                        out.push(self.delta(json!({"tool_calls": [{"index": k, "function": {"arguments": part}}]})));
                    }
                    "thinking_delta" => out.push(self.delta(json!({"reasoning_content": req_str(d, "thinking", "delta")?}))),
                    "signature_delta" => out.push(self.delta(json!({"reasoning_signature": req_str(d, "signature", "delta")?}))),
                    "citations_delta" => {}
                    _ => {
                        return Err(invalid(
                            "delta.type",
                            "one of 'text_delta', 'input_json_delta', 'thinking_delta', 'signature_delta', 'citations_delta'",
                            d.get("type"),
                        ))
                    }
                }
            }
            "content_block_stop" => {
                Self::index_of(e)?;
            }
            "message_delta" => {
                self.ensure_ids();
                let d = opt_obj(e, "delta", "")?;
                let (stop_reason, stop_sequence) = match d {
                    Some(d) => (opt_str(d, "stop_reason", "delta")?, opt_str(d, "stop_sequence", "delta")?),
                    None => (None, None),
                };
                if let Some(u) = opt_obj(e, "usage", "")? {
                    self.merge_usage(u);
                }
                self.finished = true;
                if let Some(sr) = stop_reason {
                    let mut choice = json!({"index": 0, "delta": {}, "finish_reason": finish_reason_for(sr)});
                    if let (Some(seq), "stop_sequence") = (stop_sequence, sr) {
                        choice["stop_sequence"] = seq.into();
                    }
                    out.push(self.chunk(vec![choice], None));
                }
                out.push(self.chunk(vec![], Some(usage_to_chat(&self.usage, "usage")?)));
            }
            "message_stop" => self.stopped = true,
            "error" => return Err(error_from_body(event, None)),
            // `ping` and event types added after this was written.
            _ => {}
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Value>> {
        if self.started && !self.finished && !self.stopped {
            return Err(Error::Stream { message: "Anthropic stream ended before message_delta/message_stop".into(), partial: None });
        }
        Ok(Vec::new())
    }
}

// ---------------------------------------------------------------------------------------------
// Stream encoding: chat chunks → Anthropic events.

#[derive(Debug, Clone, Copy)]
enum OpenBlock {
    Text(u64),
    Thinking { index: u64, sealed: bool },
    /// `tool` is the position in `Encoder::tools`.
    Tool { index: u64, tool: usize },
}

#[derive(Debug)]
enum ToolState {
    /// The open block, at this Anthropic index.
    Streaming(u64),
    /// Seen while another tool block was open: held, replayed later.
    Pending { name: String, fragments: Vec<String> },
    Closed,
}

#[derive(Debug)]
struct EncodedTool {
    chat_index: u32,
    id: String,
    state: ToolState,
}

/// `chat.completion.chunk`s → Anthropic stream events. See the module doc for the shapes.
#[derive(Debug, Default)]
pub struct Encoder {
    started: bool,
    ended: bool,
    next_index: u64,
    open: Option<OpenBlock>,
    tools: Vec<EncodedTool>,
    /// Positions in `tools` of the held calls, in the order they appeared.
    pending: Vec<usize>,
    finish_reason: Option<String>,
    stop_sequence: Option<String>,
    /// A `delta.refusal` was streamed (as text).
    refused: bool,
    /// The latest chat usage seen.
    usage: Option<Obj>,
    /// The Anthropic usage `message_start` reported.
    announced: Obj,
}

fn block_start(index: u64, block: Value) -> Value {
    json!({"type": "content_block_start", "index": index, "content_block": block})
}

fn block_delta(index: u64, delta: Value) -> Value {
    json!({"type": "content_block_delta", "index": index, "delta": delta})
}

fn block_stop(index: u64) -> Value {
    json!({"type": "content_block_stop", "index": index})
}

fn tool_start(index: u64, id: &str, name: &str) -> Value {
    block_start(index, json!({"type": "tool_use", "id": id, "name": name, "input": {}}))
}

fn json_delta(index: u64, partial: &str) -> Value {
    block_delta(index, json!({"type": "input_json_delta", "partial_json": partial}))
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn alloc(&mut self) -> u64 {
        let i = self.next_index;
        self.next_index += 1;
        i
    }

    fn start(&mut self, c: &Obj, usage: Option<&Obj>, out: &mut Vec<Value>) -> Result<()> {
        self.started = true;
        let id = match opt_str(c, "id", "")? {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => generated_id("msg_"),
        };
        let model = opt_str(c, "model", "")?.unwrap_or("");
        self.announced = match usage {
            Some(u) => usage_from_chat(u, "usage")?,
            None => {
                let mut u = Obj::new();
                u.insert("input_tokens".into(), 0.into());
                u.insert("output_tokens".into(), 0.into());
                u
            }
        };
        out.push(json!({"type": "message_start", "message": {
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": self.announced,
        }}));
        Ok(())
    }

    /// Closes the open block, then replays the held tool calls.
    fn close_all(&mut self, out: &mut Vec<Value>) {
        if let Some(open) = self.open.take() {
            let index = match open {
                OpenBlock::Text(i) | OpenBlock::Thinking { index: i, .. } => i,
                OpenBlock::Tool { index, tool } => {
                    self.tools[tool].state = ToolState::Closed;
                    index
                }
            };
            out.push(block_stop(index));
        }
        for pos in std::mem::take(&mut self.pending) {
            let ToolState::Pending { name, fragments } = std::mem::replace(&mut self.tools[pos].state, ToolState::Closed) else {
                continue;
            };
            let index = self.alloc();
            out.push(tool_start(index, &self.tools[pos].id, &name));
            for (k, f) in fragments.iter().enumerate() {
                // The opening fragment only when it holds something, as for a streamed call.
                if k > 0 || !f.is_empty() {
                    out.push(json_delta(index, f));
                }
            }
            out.push(block_stop(index));
        }
    }

    fn text(&mut self, s: &str, out: &mut Vec<Value>) {
        let index = match self.open {
            Some(OpenBlock::Text(i)) => i,
            _ => {
                self.close_all(out);
                let i = self.alloc();
                out.push(block_start(i, json!({"type": "text", "text": ""})));
                self.open = Some(OpenBlock::Text(i));
                i
            }
        };
        out.push(block_delta(index, json!({"type": "text_delta", "text": s})));
    }

    fn open_thinking(&mut self, out: &mut Vec<Value>) -> u64 {
        self.close_all(out);
        let i = self.alloc();
        out.push(block_start(i, json!({"type": "thinking", "thinking": "", "signature": ""})));
        self.open = Some(OpenBlock::Thinking { index: i, sealed: false });
        i
    }

    fn thinking(&mut self, s: &str, out: &mut Vec<Value>) {
        let index = match self.open {
            Some(OpenBlock::Thinking { index, sealed: false }) => index,
            _ => self.open_thinking(out),
        };
        out.push(block_delta(index, json!({"type": "thinking_delta", "thinking": s})));
    }

    fn signature(&mut self, sig: &str, out: &mut Vec<Value>) {
        let index = match self.open {
            Some(OpenBlock::Thinking { index, .. }) => index,
            _ => self.open_thinking(out),
        };
        out.push(block_delta(index, json!({"type": "signature_delta", "signature": sig})));
        // A signature ends a thinking block: more reasoning opens a new one.
        self.open = Some(OpenBlock::Thinking { index, sealed: true });
    }

    fn redacted(&mut self, data: &str, out: &mut Vec<Value>) {
        self.close_all(out);
        let i = self.alloc();
        out.push(block_start(i, json!({"type": "redacted_thinking", "data": data})));
        out.push(block_stop(i));
    }

    fn tool_fragment(&mut self, tc: &Obj, path: &str, out: &mut Vec<Value>) -> Result<()> {
        let id = opt_str(tc, "id", path)?.filter(|s| !s.is_empty());
        let fp = at(path, "function");
        let (name, args) = match opt_obj(tc, "function", path)? {
            Some(f) => (opt_str(f, "name", &fp)?.filter(|s| !s.is_empty()), opt_str(f, "arguments", &fp)?.unwrap_or("")),
            None => (None, ""),
        };
        let chat_index = match get(tc, "index") {
            Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| invalid(&at(path, "index"), "a non-negative integer", Some(v)))?,
            // No index: a known id continues its call, a new id starts one, neither continues the last.
            None => match id.and_then(|id| self.tools.iter().find(|t| t.id == id)) {
                Some(t) => t.chat_index,
                None if id.is_some() => self.tools.iter().map(|t| t.chat_index + 1).max().unwrap_or(0),
                None => self.tools.last().map(|t| t.chat_index).unwrap_or(0),
            },
        };
        match self.tools.iter().position(|t| t.chat_index == chat_index) {
            None => {
                let id = id.map(String::from).unwrap_or_else(|| generated_id("toolu_"));
                let name = name.unwrap_or("").to_string();
                let pos = self.tools.len();
                if matches!(self.open, Some(OpenBlock::Tool { .. })) {
                    self.tools.push(EncodedTool { chat_index, id, state: ToolState::Pending { name, fragments: vec![args.to_string()] } });
                    self.pending.push(pos);
                } else {
                    self.close_all(out);
                    let index = self.alloc();
                    out.push(tool_start(index, &id, &name));
                    if !args.is_empty() {
                        out.push(json_delta(index, args));
                    }
                    self.tools.push(EncodedTool { chat_index, id, state: ToolState::Streaming(index) });
                    self.open = Some(OpenBlock::Tool { index, tool: pos });
                }
            }
            Some(pos) => match &mut self.tools[pos].state {
                ToolState::Streaming(index) => out.push(json_delta(*index, args)),
                ToolState::Pending { name: held, fragments } => {
                    if held.is_empty() {
                        if let Some(n) = name {
                            *held = n.to_string();
                        }
                    }
                    fragments.push(args.to_string());
                }
                ToolState::Closed => {
                    return Err(Error::validation(
                        at(path, "index"),
                        format!("tool call {chat_index} continued after its tool_use block was closed"),
                    ))
                }
            },
        }
        Ok(())
    }
}

impl StreamEncoder for Encoder {
    fn push(&mut self, chunk: &Value) -> Result<Vec<Value>> {
        let c = as_obj(chunk, "chunk")?;
        let mut out = Vec::new();
        if self.ended {
            return Ok(out);
        }
        if let Some(err) = get(c, "error") {
            let message = err.get("message").and_then(Value::as_str).map(String::from).unwrap_or_else(|| err.to_string());
            out.push(json!({"type": "error", "error": {"type": "api_error", "message": message}}));
            return Ok(out);
        }
        let usage = opt_obj(c, "usage", "")?;
        if !self.started {
            self.start(c, usage, &mut out)?;
        }
        if let Some(u) = usage {
            self.usage = Some(u.clone());
        }
        let choices = opt_array(c, "choices", "", "an array of choices")?.map(Vec::as_slice).unwrap_or(&[]);
        for (k, ch) in choices.iter().enumerate() {
            let cp = nth("choices", k);
            let co = as_obj(ch, &cp)?;
            if opt_uint(co, "index", &cp, 0)?.unwrap_or(0) != 0 {
                continue; // Anthropic has one answer: choice 0.
            }
            let delta = match get(co, "delta") {
                Some(d) => Some((d, at(&cp, "delta"))),
                None => get(co, "message").map(|d| (d, at(&cp, "message"))),
            };
            if let Some((d, dp)) = delta {
                let d = as_obj(d, &dp)?;
                let reasoning = match opt_str(d, "reasoning_content", &dp)? {
                    Some(r) => Some(r),
                    None => opt_str(d, "reasoning", &dp)?,
                };
                if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
                    self.thinking(r, &mut out);
                }
                if let Some(s) = opt_str(d, "reasoning_signature", &dp)?.filter(|s| !s.is_empty()) {
                    self.signature(s, &mut out);
                }
                if let Some(data) = opt_str(d, "redacted_thinking", &dp)? {
                    self.redacted(data, &mut out);
                }
                if let Some(t) = opt_str(d, "content", &dp)?.filter(|t| !t.is_empty()) {
                    self.text(t, &mut out);
                }
                if let Some(t) = opt_str(d, "refusal", &dp)?.filter(|t| !t.is_empty()) {
                    self.refused = true;
                    self.text(t, &mut out);
                }
                if let Some(calls) = opt_array(d, "tool_calls", &dp, "an array of tool calls")? {
                    let tp = at(&dp, "tool_calls");
                    for (j, tc) in calls.iter().enumerate() {
                        let p = nth(&tp, j);
                        self.tool_fragment(as_obj(tc, &p)?, &p, &mut out)?;
                    }
                }
            }
            if let Some(f) = opt_str(co, "finish_reason", &cp)? {
                self.close_all(&mut out);
                if self.finish_reason.is_none() {
                    self.finish_reason = Some(f.to_string());
                    self.stop_sequence = opt_str(co, "stop_sequence", &cp)?.map(String::from);
                }
            }
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        if !self.started || self.ended {
            return Ok(out);
        }
        self.ended = true;
        self.close_all(&mut out);
        let has_tools = !self.tools.is_empty();
        let stop_reason = match &self.finish_reason {
            Some(f) => stop_reason_for(f, self.stop_sequence.is_some(), has_tools),
            None if has_tools => "tool_use",
            None => "end_turn",
        };
        let stop_reason = if self.refused && stop_reason == "end_turn" { "refusal" } else { stop_reason };
        let stop_sequence = match (&self.stop_sequence, stop_reason) {
            (Some(s), "stop_sequence") => Value::String(s.clone()),
            _ => Value::Null,
        };
        let last = match &self.usage {
            Some(u) => usage_from_chat(u, "usage")?,
            None => self.announced.clone(),
        };
        let input_keys = ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"];
        let mut usage = Obj::new();
        // Input counts go out again only when they differ from what message_start said (chat
        // upstreams report usage at the end, so message_start usually said 0).
        if input_keys.iter().any(|k| last.get(*k) != self.announced.get(*k)) {
            for k in input_keys {
                if let Some(v) = last.get(k) {
                    usage.insert(k.into(), v.clone());
                }
            }
        }
        usage.insert("output_tokens".into(), last.get("output_tokens").cloned().unwrap_or(0.into()));
        out.push(json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": usage,
        }));
        out.push(json!({"type": "message_stop"}));
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
