//! OpenAI Responses API (`POST /v1/responses`) ⇄ OpenAI Chat Completions.
//!
//! Requests (`request_to_chat` / `request_from_chat`):
//! * `instructions` ⇄ a leading `system` message; `input` (a string, or items) ⇄ `messages`:
//!   message items (`role` user/system/developer/assistant, content a string or parts:
//!   `input_text`/`output_text` ⇄ `text`, `input_image` ⇄ `image_url`, `input_file` ⇄ `file`,
//!   `refusal` ⇄ `refusal`), `function_call` items ⇄ the assistant message's `tool_calls`
//!   (`call_id` is the chat tool-call `id`; consecutive calls of one turn share one assistant
//!   message), `function_call_output` ⇄ `tool` messages, `reasoning` items → the next
//!   assistant message's `reasoning_content` (their summaries joined with a blank line).
//! * `tools` (flat `{type:"function", name, description, parameters, strict}`) ⇄ chat tools;
//!   `tool_choice` (`{type:"function", name}` ⇄ `{type:"function", function:{name}}`, also
//!   `allowed_tools`); `max_output_tokens` ⇄ `max_tokens` (`max_completion_tokens` wins when
//!   both are given); `text.format` ⇄ `response_format` (json_schema flat ⇄ nested under
//!   `json_schema`); `text.verbosity` ⇄ `verbosity`; `reasoning.effort` ⇄ `reasoning_effort`;
//!   `top_logprobs` ⇄ `logprobs: true` + `top_logprobs`; a streamed Responses request asks
//!   chat for `stream_options.include_usage` (Responses always reports usage).
//! * Passed through unchanged: `model`, `stream`, `temperature`, `top_p`, `parallel_tool_calls`,
//!   `store`, `metadata`, `user`, `service_tier`, `prompt_cache_key`, `safety_identifier` and
//!   any unknown (vendor) field.
//! * Refused with a `Validation` error naming the field, because the other side cannot carry
//!   their meaning: `previous_response_id`, `conversation`, `prompt`, `background: true`,
//!   hosted tools and hosted-tool items, `item_reference`, images/files given by `file_id`
//!   (images) or `file_url`; from chat: `n > 1`, `stop`, audio, `prediction`,
//!   `web_search_options`, legacy `functions`/`function_call`.
//! * Dropped (documented loss): Responses `include`, `truncation`, `max_tool_calls`,
//!   `reasoning.summary`, `stream_options`, the `id`/`status` of input items, annotations and
//!   reasoning `encrypted_content` in input; chat `frequency_penalty`, `presence_penalty`,
//!   `seed`, `logit_bias`, `logprobs` (without `top_logprobs`), `stream_options`, message
//!   `name`, and the `reasoning_content` of history messages (Responses only accepts reasoning
//!   items it issued itself, with their ids).
//!
//! Responses (`response_to_chat` / `response_from_chat`): message items ⇄ `content`
//! (`output_text` texts joined; `url_citation` annotations flat ⇄ nested), `refusal` parts ⇄
//! `refusal`, `function_call` items ⇄ `tool_calls` (`call_id` ⇄ `id`), reasoning summaries ⇄
//! `reasoning_content`; `status: "incomplete"` with `incomplete_details.reason`
//! `max_output_tokens` ⇄ `finish_reason: "length"` (`content_filter` ⇄ `content_filter`),
//! `completed` → `tool_calls` when there are calls, else `stop`; usage `input_tokens` ⇄
//! `prompt_tokens`, `output_tokens` ⇄ `completion_tokens`, the details objects renamed.
//! `created` ⇄ `created_at` (milliseconds brought to seconds, 0 → now).
//! `response_from_chat` keeps the chat `id` as the response id and names items
//! `rs_/msg_/fc_<id>_<output_index>`, as the `Encoder` does, so both give the same object.
//!
//! Streams: the `Decoder` turns Responses events into chat chunks as they come; the `Encoder`
//! turns chat chunks into the Responses event sequence (`response.created`, `in_progress`,
//! `output_item.added`, `content_part.added`, `output_text.delta`…, `output_text.done`,
//! `content_part.done`, `output_item.done`, … `response.completed`) with increasing
//! `sequence_number`s.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use super::{StreamDecoder, StreamEncoder};
use crate::error::{Error, Result};
use crate::model::{generated_id, normalize_created, now_secs, ChatChunk, ChatResponse, ToolCall, Usage};
use crate::validate::{describe, invalid};
use crate::workflow::responses::{error_event_object, normalize_usage, openai_error_object, upstream_error, Ev};

// ---------------------------------------------------------------------------------------------
// Small JSON helpers: every failure names its path.

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| invalid(path, "an object", Some(v)))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn opt_str<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a str>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        other => Err(invalid(&join(path, key), "a string", other)),
    }
}

fn req_str<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s),
        other => Err(invalid(&join(path, key), "a string", other)),
    }
}

fn opt_array<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a Vec<Value>>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        other => Err(invalid(&join(path, key), "an array", other)),
    }
}

fn present(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).is_some_and(|v| !v.is_null())
}

fn cannot(field: impl Into<String>, msg: impl Into<String>) -> Error {
    let field = field.into();
    let msg = msg.into();
    Error::validation(field.clone(), format!("{field}: {msg}"))
}

fn parse_chat<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> Result<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { what.to_string() } else { format!("{what}.{path}") };
        Error::validation(field.clone(), format!("Invalid chat {what}: {field}: {}", e.inner()))
    })
}

// ---------------------------------------------------------------------------------------------
// Requests: Responses → chat

/// A Responses request body → a chat-completions request body.
pub fn request_to_chat(req: &Value) -> Result<Value> {
    let r = object(req, "request")?;
    if present(r, "previous_response_id") {
        return Err(cannot(
            "previous_response_id",
            "cannot be converted to a chat request: chat completions are stateless and have no stored responses to continue; \
             send the whole conversation in `input` instead",
        ));
    }
    if present(r, "conversation") {
        return Err(cannot("conversation", "stored conversations exist only in the Responses API; send the whole conversation in `input` instead"));
    }
    if present(r, "prompt") {
        return Err(cannot("prompt", "stored prompt templates exist only in the Responses API; send `instructions` and `input` instead"));
    }
    if r.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(cannot("background", "background responses need the Responses API's stored state; chat completions have no equivalent"));
    }
    let mut messages = Vec::new();
    if let Some(ins) = opt_str(r, "instructions", "")? {
        messages.push(json!({"role": "system", "content": ins}));
    }
    match r.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => messages.extend(input_items_to_messages(items)?),
        other => return Err(invalid("input", "a string or an array of input items", other)),
    }
    let mut out = Map::new();
    if let Some(m) = r.get("model") {
        out.insert("model".into(), m.clone());
    }
    out.insert("messages".into(), Value::Array(messages));
    for (k, v) in r {
        match k.as_str() {
            "model" | "instructions" | "input" => {}
            "tools" if !v.is_null() => {
                out.insert("tools".into(), tools_to_chat(v)?);
            }
            "tool_choice" if !v.is_null() => {
                out.insert("tool_choice".into(), tool_choice_to_chat(v, "tool_choice")?);
            }
            "max_output_tokens" if !v.is_null() => {
                let n = v.as_u64().ok_or_else(|| invalid("max_output_tokens", "a non-negative integer", Some(v)))?;
                out.insert("max_tokens".into(), n.into());
            }
            "text" if !v.is_null() => text_to_chat(v, &mut out)?,
            "reasoning" if !v.is_null() => {
                let m = object(v, "reasoning")?;
                if let Some(e) = opt_str(m, "effort", "reasoning")? {
                    out.insert("reasoning_effort".into(), e.into());
                }
            }
            "stream" => {
                out.insert("stream".into(), v.clone());
                if v.as_bool() == Some(true) {
                    out.insert("stream_options".into(), json!({"include_usage": true}));
                }
            }
            "top_logprobs" if !v.is_null() => {
                out.insert("logprobs".into(), true.into());
                out.insert("top_logprobs".into(), v.clone());
            }
            // Responses-only knobs chat cannot carry (documented loss), and the unmappable
            // ones already checked above when set.
            "include" | "truncation" | "stream_options" | "max_tool_calls" | "background" | "previous_response_id" | "conversation" | "prompt" => {}
            "tools" | "tool_choice" | "max_output_tokens" | "text" | "reasoning" | "top_logprobs" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(Value::Object(out))
}

fn input_items_to_messages(items: &[Value]) -> Result<Vec<Value>> {
    let mut msgs: Vec<Value> = Vec::new();
    // The assistant message that function_call items of the current turn attach to.
    let mut turn: Option<usize> = None;
    let mut reasoning: Option<String> = None;
    for (i, item) in items.iter().enumerate() {
        let p = format!("input[{i}]");
        let m = object(item, &p)?;
        let ty = match m.get("type") {
            None | Some(Value::Null) if m.contains_key("role") => "message",
            Some(Value::String(s)) => s.as_str(),
            other => return Err(invalid(&join(&p, "type"), "an input item type", other)),
        };
        match ty {
            "message" => {
                let role = req_str(m, "role", &p)?;
                if !matches!(role, "user" | "assistant" | "system" | "developer") {
                    return Err(invalid(&join(&p, "role"), "one of user, assistant, system, developer", m.get("role")));
                }
                let content = input_content_to_chat(m.get("content"), &p)?;
                let mut msg = json!({"role": role, "content": content});
                if role == "assistant" {
                    if let Some(r) = reasoning.take() {
                        msg["reasoning_content"] = r.into();
                    }
                    msgs.push(msg);
                    turn = Some(msgs.len() - 1);
                } else {
                    // A reasoning item not followed by its assistant output has nowhere to go.
                    reasoning = None;
                    msgs.push(msg);
                    turn = None;
                }
            }
            "function_call" => {
                let call_id = req_str(m, "call_id", &p)?;
                let name = req_str(m, "name", &p)?;
                let arguments = req_str(m, "arguments", &p)?;
                let tc = json!({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}});
                match turn {
                    Some(k) => {
                        let msg = msgs[k].as_object_mut().ok_or_else(|| Error::Internal { message: "chat message is not an object".into() })?;
                        match msg.get_mut("tool_calls") {
                            Some(Value::Array(calls)) => calls.push(tc),
                            _ => {
                                msg.insert("tool_calls".into(), json!([tc]));
                            }
                        }
                    }
                    None => {
                        let mut msg = json!({"role": "assistant", "content": null, "tool_calls": [tc]});
                        if let Some(r) = reasoning.take() {
                            msg["reasoning_content"] = r.into();
                        }
                        msgs.push(msg);
                        turn = Some(msgs.len() - 1);
                    }
                }
            }
            "function_call_output" => {
                let call_id = req_str(m, "call_id", &p)?;
                let content = match m.get("output") {
                    Some(Value::String(s)) => Value::String(s.clone()),
                    Some(Value::Array(parts)) => {
                        let mut out = Vec::with_capacity(parts.len());
                        for (j, part) in parts.iter().enumerate() {
                            let pp = format!("{p}.output[{j}]");
                            let pm = object(part, &pp)?;
                            match req_str(pm, "type", &pp)? {
                                "input_text" | "output_text" | "text" => out.push(json!({"type": "text", "text": req_str(pm, "text", &pp)?})),
                                other => {
                                    return Err(cannot(
                                        join(&pp, "type"),
                                        format!("a {other:?} part cannot go into a chat tool message, which carries text only"),
                                    ))
                                }
                            }
                        }
                        Value::Array(out)
                    }
                    other => return Err(invalid(&join(&p, "output"), "a string or an array of content parts", other)),
                };
                msgs.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
                turn = None;
                reasoning = None;
            }
            "reasoning" => {
                let text = reasoning_text(m, &p)?;
                if !text.is_empty() {
                    match &mut reasoning {
                        Some(r) => {
                            r.push_str("\n\n");
                            r.push_str(&text);
                        }
                        None => reasoning = Some(text),
                    }
                }
                turn = None;
            }
            "item_reference" => {
                return Err(cannot(
                    join(&p, "type"),
                    "an item_reference points at an item stored by the Responses API; chat has no stored items, send the item itself",
                ))
            }
            other => {
                return Err(cannot(
                    join(&p, "type"),
                    format!("{other:?} items cannot be expressed in chat completions (only messages, function calls, their outputs and reasoning)"),
                ))
            }
        }
    }
    Ok(msgs)
}

/// The summaries of a reasoning item joined with a blank line, or its `reasoning_text`
/// content when it has no summary.
fn reasoning_text(m: &Map<String, Value>, path: &str) -> Result<String> {
    let mut texts = Vec::new();
    for key in ["summary", "content"] {
        if let Some(parts) = opt_array(m, key, path)? {
            for (j, part) in parts.iter().enumerate() {
                let pp = format!("{}[{j}]", join(path, key));
                let pm = object(part, &pp)?;
                if let Some(t) = opt_str(pm, "text", &pp)? {
                    if !t.is_empty() {
                        texts.push(t.to_string());
                    }
                }
            }
        }
        if !texts.is_empty() {
            break;
        }
    }
    Ok(texts.join("\n\n"))
}

fn input_content_to_chat(content: Option<&Value>, path: &str) -> Result<Value> {
    match content {
        Some(Value::String(s)) => Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| input_part_to_chat(part, &format!("{path}.content[{j}]")))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
        other => Err(invalid(&join(path, "content"), "a string or an array of content parts", other)),
    }
}

fn input_part_to_chat(part: &Value, path: &str) -> Result<Value> {
    let m = object(part, path)?;
    match req_str(m, "type", path)? {
        "input_text" | "output_text" | "text" => Ok(json!({"type": "text", "text": req_str(m, "text", path)?})),
        "refusal" => Ok(json!({"type": "refusal", "refusal": req_str(m, "refusal", path)?})),
        "input_image" => {
            if let Some(url) = opt_str(m, "image_url", path)? {
                let mut image = json!({"url": url});
                if let Some(d) = opt_str(m, "detail", path)? {
                    image["detail"] = d.into();
                }
                Ok(json!({"type": "image_url", "image_url": image}))
            } else if present(m, "file_id") {
                Err(cannot(
                    join(path, "file_id"),
                    "an image given by file id cannot be sent through chat completions, which take image URLs or data URLs; send image_url",
                ))
            } else {
                Err(invalid(&join(path, "image_url"), "an image URL or data URL", None))
            }
        }
        "input_file" => {
            if present(m, "file_url") {
                return Err(cannot(join(path, "file_url"), "chat completions cannot fetch files by URL; send file_data or file_id"));
            }
            let mut file = Map::new();
            for k in ["file_id", "file_data", "filename"] {
                if let Some(s) = opt_str(m, k, path)? {
                    file.insert(k.into(), s.into());
                }
            }
            if file.is_empty() {
                return Err(invalid(&join(path, "file_data"), "a file (file_data or file_id)", None));
            }
            Ok(json!({"type": "file", "file": file}))
        }
        other => Err(cannot(join(path, "type"), format!("content part type {other:?} cannot be expressed in chat completions"))),
    }
}

fn tools_to_chat(v: &Value) -> Result<Value> {
    let Value::Array(tools) = v else { return Err(invalid("tools", "an array of tools", Some(v))) };
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let p = format!("tools[{i}]");
        let m = object(t, &p)?;
        match req_str(m, "type", &p)? {
            "function" => {
                let mut f = Map::new();
                f.insert("name".into(), req_str(m, "name", &p)?.into());
                for k in ["description", "parameters"] {
                    if let Some(x) = m.get(k).filter(|x| !x.is_null()) {
                        f.insert(k.into(), x.clone());
                    }
                }
                // `strict: false` is chat's default; Responses' default (true) cannot be
                // expressed by leaving it out, so only an explicit true is carried.
                if m.get("strict").and_then(Value::as_bool) == Some(true) {
                    f.insert("strict".into(), true.into());
                }
                out.push(json!({"type": "function", "function": f}));
            }
            other => {
                return Err(cannot(
                    join(&p, "type"),
                    format!("the hosted tool {other:?} cannot be expressed in chat completions (function tools only)"),
                ))
            }
        }
    }
    Ok(Value::Array(out))
}

fn tool_choice_to_chat(v: &Value, path: &str) -> Result<Value> {
    match v {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(v.clone()),
        Value::Object(m) => match req_str(m, "type", path)? {
            "function" => Ok(json!({"type": "function", "function": {"name": req_str(m, "name", path)?}})),
            "allowed_tools" => {
                let tools = opt_array(m, "tools", path)?.ok_or_else(|| invalid(&join(path, "tools"), "an array of tools", None))?;
                let mut list = Vec::new();
                for (i, t) in tools.iter().enumerate() {
                    let tp = format!("{path}.tools[{i}]");
                    let tm = object(t, &tp)?;
                    match req_str(tm, "type", &tp)? {
                        "function" => list.push(json!({"type": "function", "function": {"name": req_str(tm, "name", &tp)?}})),
                        other => return Err(cannot(join(&tp, "type"), format!("the hosted tool {other:?} cannot be expressed in chat completions"))),
                    }
                }
                let mut allowed = Map::new();
                if let Some(mode) = opt_str(m, "mode", path)? {
                    allowed.insert("mode".into(), mode.into());
                }
                allowed.insert("tools".into(), Value::Array(list));
                Ok(json!({"type": "allowed_tools", "allowed_tools": allowed}))
            }
            other => Err(cannot(join(path, "type"), format!("a tool_choice of the hosted tool {other:?} cannot be expressed in chat completions"))),
        },
        other => Err(invalid(path, "\"auto\", \"none\", \"required\" or a tool choice object", Some(other))),
    }
}

fn text_to_chat(v: &Value, out: &mut Map<String, Value>) -> Result<()> {
    let m = object(v, "text")?;
    if let Some(f) = m.get("format").filter(|f| !f.is_null()) {
        let fm = object(f, "text.format")?;
        let format = match req_str(fm, "type", "text.format")? {
            "text" => json!({"type": "text"}),
            "json_object" => json!({"type": "json_object"}),
            "json_schema" => {
                let mut js = Map::new();
                js.insert("name".into(), req_str(fm, "name", "text.format")?.into());
                for k in ["description", "schema", "strict"] {
                    if let Some(x) = fm.get(k).filter(|x| !x.is_null()) {
                        js.insert(k.into(), x.clone());
                    }
                }
                json!({"type": "json_schema", "json_schema": js})
            }
            other => return Err(cannot("text.format.type", format!("the output format {other:?} cannot be expressed in chat completions"))),
        };
        out.insert("response_format".into(), format);
    }
    if let Some(verbosity) = m.get("verbosity").filter(|x| !x.is_null()) {
        out.insert("verbosity".into(), verbosity.clone());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Requests: chat → Responses

/// A chat-completions request body → a Responses request body.
pub fn request_from_chat(req: &Value) -> Result<Value> {
    let r = object(req, "request")?;
    for (k, why) in [
        ("functions", "legacy functions cannot be expressed in the Responses API; use tools"),
        ("function_call", "legacy function_call cannot be expressed in the Responses API; use tool_choice"),
        ("audio", "audio output cannot be requested through the Responses API"),
        ("prediction", "predicted outputs cannot be expressed in the Responses API"),
        (
            "web_search_options",
            "chat web search options cannot be expressed as a Responses function request; use a Responses web_search tool directly",
        ),
    ] {
        if present(r, k) {
            return Err(cannot(k, why));
        }
    }
    if let Some(n) = r.get("n").filter(|n| !n.is_null()) {
        if n.as_u64() != Some(1) {
            return Err(Error::validation("n", format!("n must be 1: a Responses request produces exactly one output, got {}", describe(Some(n)))));
        }
    }
    let stop_set = match r.get("stop") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    if stop_set {
        return Err(cannot("stop", "stop sequences cannot be expressed in the Responses API, which has no stop parameter"));
    }
    if r.get("modalities").and_then(Value::as_array).is_some_and(|m| m.iter().any(|x| x.as_str() == Some("audio"))) {
        return Err(cannot("modalities", "audio output cannot be requested through the Responses API"));
    }
    let msgs = match r.get("messages") {
        Some(Value::Array(a)) => a,
        other => return Err(invalid("messages", "an array of messages", other)),
    };
    let mut start = 0;
    let mut instructions = None;
    if let Some(first) = msgs.first().and_then(Value::as_object) {
        if first.get("role").and_then(Value::as_str) == Some("system") {
            if let Some(t) = plain_text(first.get("content")) {
                instructions = Some(t);
                start = 1;
            }
        }
    }
    let mut items = Vec::new();
    for (i, m) in msgs.iter().enumerate().skip(start) {
        message_to_items(m, i, &mut items)?;
    }
    let single_user_text = items.len() == 1 && items[0]["role"] == "user" && items[0]["content"].is_string();
    let input = if single_user_text { items[0]["content"].clone() } else { Value::Array(items) };

    let mut out = Map::new();
    if let Some(m) = r.get("model") {
        out.insert("model".into(), m.clone());
    }
    if let Some(ins) = instructions {
        out.insert("instructions".into(), ins.into());
    }
    out.insert("input".into(), input);
    let has_mct = present(r, "max_completion_tokens");
    let mut text = Map::new();
    for (k, v) in r {
        match k.as_str() {
            "model" | "messages" => {}
            "max_tokens" | "max_completion_tokens" if !v.is_null() => {
                if k == "max_tokens" && has_mct {
                    continue;
                }
                let n = v.as_u64().ok_or_else(|| invalid(k, "a non-negative integer", Some(v)))?;
                out.insert("max_output_tokens".into(), n.into());
            }
            "tools" if !v.is_null() => {
                out.insert("tools".into(), tools_from_chat(v)?);
            }
            "tool_choice" if !v.is_null() => {
                out.insert("tool_choice".into(), tool_choice_from_chat(v, "tool_choice")?);
            }
            "response_format" if !v.is_null() => {
                text.insert("format".into(), format_from_chat(v)?);
            }
            "verbosity" if !v.is_null() => {
                text.insert("verbosity".into(), v.clone());
            }
            "reasoning_effort" if !v.is_null() => {
                out.insert("reasoning".into(), json!({"effort": v}));
            }
            // Chat-only knobs with no Responses counterpart (documented loss).
            "stream_options" | "n" | "stop" | "logprobs" | "frequency_penalty" | "presence_penalty" | "seed" | "logit_bias" | "modalities" => {}
            "max_tokens" | "max_completion_tokens" | "tools" | "tool_choice" | "response_format" | "verbosity" | "reasoning_effort" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if !text.is_empty() {
        out.insert("text".into(), Value::Object(text));
    }
    Ok(Value::Object(out))
}

/// A string content, or text-only parts joined.
fn plain_text(content: Option<&Value>) -> Option<String> {
    match content {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(parts)) => {
            let mut s = String::new();
            for p in parts {
                if p.get("type").and_then(Value::as_str) != Some("text") {
                    return None;
                }
                s.push_str(p.get("text")?.as_str()?);
            }
            Some(s)
        }
        _ => None,
    }
}

fn message_to_items(m: &Value, i: usize, items: &mut Vec<Value>) -> Result<()> {
    let p = format!("messages[{i}]");
    let mo = object(m, &p)?;
    let role = req_str(mo, "role", &p)?;
    match role {
        "system" | "developer" | "user" => {
            let content = chat_content_to_input(mo.get("content"), &p)?;
            items.push(json!({"type": "message", "role": role, "content": content}));
        }
        "assistant" => {
            let mut content = match mo.get("content") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.is_empty() => None,
                Some(Value::String(s)) => Some(Value::String(s.clone())),
                Some(Value::Array(parts)) => {
                    let mut out = Vec::with_capacity(parts.len());
                    for (j, part) in parts.iter().enumerate() {
                        let pp = format!("{p}.content[{j}]");
                        let pm = object(part, &pp)?;
                        match req_str(pm, "type", &pp)? {
                            "text" => out.push(json!({"type": "output_text", "text": req_str(pm, "text", &pp)?, "annotations": []})),
                            "refusal" => out.push(json!({"type": "refusal", "refusal": req_str(pm, "refusal", &pp)?})),
                            other => {
                                return Err(cannot(
                                    join(&pp, "type"),
                                    format!("assistant content part {other:?} cannot be expressed in the Responses API"),
                                ))
                            }
                        }
                    }
                    Some(Value::Array(out))
                }
                other => return Err(invalid(&join(&p, "content"), "a string, an array of content parts or null", other)),
            };
            if let Some(refusal) = opt_str(mo, "refusal", &p)?.filter(|s| !s.is_empty()) {
                let mut parts = match content.take() {
                    Some(Value::String(s)) => vec![json!({"type": "output_text", "text": s, "annotations": []})],
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                parts.push(json!({"type": "refusal", "refusal": refusal}));
                content = Some(Value::Array(parts));
            }
            let calls = opt_array(mo, "tool_calls", &p)?.filter(|c| !c.is_empty());
            if content.is_some() || calls.is_none() {
                items.push(json!({"type": "message", "role": "assistant", "content": content.unwrap_or_else(|| "".into())}));
            }
            for (j, tc) in calls.into_iter().flatten().enumerate() {
                let tp = format!("{p}.tool_calls[{j}]");
                let tm = object(tc, &tp)?;
                if let Some(kind) = opt_str(tm, "type", &tp)? {
                    if kind != "function" {
                        return Err(cannot(join(&tp, "type"), format!("{kind:?} tool calls cannot be expressed as Responses function calls")));
                    }
                }
                let id = req_str(tm, "id", &tp)?;
                let f = tm.get("function").ok_or_else(|| invalid(&join(&tp, "function"), "an object", None))?;
                let fm = object(f, &join(&tp, "function"))?;
                let name = req_str(fm, "name", &join(&tp, "function"))?;
                let arguments = opt_str(fm, "arguments", &join(&tp, "function"))?.unwrap_or("");
                items.push(json!({"type": "function_call", "call_id": id, "name": name, "arguments": arguments}));
            }
        }
        "tool" => {
            let call_id = req_str(mo, "tool_call_id", &p)?;
            let output =
                plain_text(mo.get("content")).ok_or_else(|| invalid(&join(&p, "content"), "text (a string or text parts)", mo.get("content")))?;
            items.push(json!({"type": "function_call_output", "call_id": call_id, "output": output}));
        }
        "function" => return Err(cannot(join(&p, "role"), "legacy function messages cannot be expressed in the Responses API; use tool messages")),
        other => return Err(invalid(&join(&p, "role"), "one of system, developer, user, assistant, tool", Some(&Value::String(other.into())))),
    }
    Ok(())
}

fn chat_content_to_input(content: Option<&Value>, path: &str) -> Result<Value> {
    match content {
        Some(Value::String(s)) => Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let pp = format!("{path}.content[{j}]");
                let pm = object(part, &pp)?;
                match req_str(pm, "type", &pp)? {
                    "text" => out.push(json!({"type": "input_text", "text": req_str(pm, "text", &pp)?})),
                    "image_url" => {
                        let image = pm.get("image_url").ok_or_else(|| invalid(&join(&pp, "image_url"), "an object with url", None))?;
                        let (url, detail) = match image {
                            Value::String(s) => (s.as_str(), None),
                            Value::Object(im) => (req_str(im, "url", &join(&pp, "image_url"))?, opt_str(im, "detail", &join(&pp, "image_url"))?),
                            other => return Err(invalid(&join(&pp, "image_url"), "an object with url", Some(other))),
                        };
                        let mut part = json!({"type": "input_image", "image_url": url});
                        if let Some(d) = detail {
                            part["detail"] = d.into();
                        }
                        out.push(part);
                    }
                    "file" => {
                        let f = pm.get("file").ok_or_else(|| invalid(&join(&pp, "file"), "an object", None))?;
                        let fm = object(f, &join(&pp, "file"))?;
                        let mut part = json!({"type": "input_file"});
                        for k in ["file_id", "file_data", "filename"] {
                            if let Some(s) = opt_str(fm, k, &join(&pp, "file"))? {
                                part[k] = s.into();
                            }
                        }
                        out.push(part);
                    }
                    other => return Err(cannot(join(&pp, "type"), format!("content part type {other:?} cannot be expressed in the Responses API"))),
                }
            }
            Ok(Value::Array(out))
        }
        other => Err(invalid(&join(path, "content"), "a string or an array of content parts", other)),
    }
}

fn tools_from_chat(v: &Value) -> Result<Value> {
    let Value::Array(tools) = v else { return Err(invalid("tools", "an array of tools", Some(v))) };
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let p = format!("tools[{i}]");
        let m = object(t, &p)?;
        match req_str(m, "type", &p)? {
            "function" => {
                let fp = join(&p, "function");
                let f = object(m.get("function").unwrap_or(&Value::Null), &fp)?;
                let mut tool = Map::new();
                tool.insert("type".into(), "function".into());
                tool.insert("name".into(), req_str(f, "name", &fp)?.into());
                for k in ["description", "parameters"] {
                    if let Some(x) = f.get(k).filter(|x| !x.is_null()) {
                        tool.insert(k.into(), x.clone());
                    }
                }
                // Chat's default is non-strict; Responses defaults to strict, so say it.
                tool.insert("strict".into(), f.get("strict").and_then(Value::as_bool).unwrap_or(false).into());
                out.push(Value::Object(tool));
            }
            other => return Err(cannot(join(&p, "type"), format!("{other:?} tools cannot be expressed as Responses function tools"))),
        }
    }
    Ok(Value::Array(out))
}

fn tool_choice_from_chat(v: &Value, path: &str) -> Result<Value> {
    match v {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(v.clone()),
        Value::Object(m) => match req_str(m, "type", path)? {
            "function" => {
                let f = object(m.get("function").unwrap_or(&Value::Null), &join(path, "function"))?;
                Ok(json!({"type": "function", "name": req_str(f, "name", &join(path, "function"))?}))
            }
            "allowed_tools" => {
                let ap = join(path, "allowed_tools");
                let a = object(m.get("allowed_tools").unwrap_or(&Value::Null), &ap)?;
                let tools = opt_array(a, "tools", &ap)?.ok_or_else(|| invalid(&join(&ap, "tools"), "an array of tools", None))?;
                let mut list = Vec::new();
                for (i, t) in tools.iter().enumerate() {
                    let tp = format!("{ap}.tools[{i}]");
                    let tm = object(t, &tp)?;
                    let f = object(tm.get("function").unwrap_or(&Value::Null), &join(&tp, "function"))?;
                    list.push(json!({"type": "function", "name": req_str(f, "name", &join(&tp, "function"))?}));
                }
                let mut out = Map::new();
                out.insert("type".into(), "allowed_tools".into());
                if let Some(mode) = opt_str(a, "mode", &ap)? {
                    out.insert("mode".into(), mode.into());
                }
                out.insert("tools".into(), Value::Array(list));
                Ok(Value::Object(out))
            }
            other => Err(cannot(join(path, "type"), format!("a tool_choice of type {other:?} cannot be expressed in the Responses API"))),
        },
        other => Err(invalid(path, "\"auto\", \"none\", \"required\" or a tool choice object", Some(other))),
    }
}

fn format_from_chat(v: &Value) -> Result<Value> {
    let m = object(v, "response_format")?;
    match req_str(m, "type", "response_format")? {
        "text" => Ok(json!({"type": "text"})),
        "json_object" => Ok(json!({"type": "json_object"})),
        "json_schema" => {
            let js = object(m.get("json_schema").unwrap_or(&Value::Null), "response_format.json_schema")?;
            let mut f = Map::new();
            f.insert("type".into(), "json_schema".into());
            f.insert("name".into(), req_str(js, "name", "response_format.json_schema")?.into());
            for k in ["description", "schema", "strict"] {
                if let Some(x) = js.get(k).filter(|x| !x.is_null()) {
                    f.insert(k.into(), x.clone());
                }
            }
            Ok(Value::Object(f))
        }
        other => Err(cannot("response_format.type", format!("the response format {other:?} cannot be expressed in the Responses API"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Responses: shared pieces

fn id_base(id: &str) -> String {
    let s = id.strip_prefix("chatcmpl-").or_else(|| id.strip_prefix("resp_")).unwrap_or(id);
    if s.is_empty() {
        "0".into()
    } else {
        s.to_string()
    }
}

fn item_id(prefix: &str, base: &str, output_index: usize) -> String {
    format!("{prefix}_{base}_{output_index}")
}

/// `(status, incomplete_details)` for a chat finish reason.
fn status_for(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

fn response_object(id: &str, created_at: u64, model: &str, status: &str, output: Vec<Value>, usage: Value, incomplete_details: Value) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "model": model,
        "output": output,
        "usage": usage,
        "incomplete_details": incomplete_details,
        "error": null,
    })
}

fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"id": id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]})
}

fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

fn output_text_part(text: &str, annotations: Vec<Value>) -> Value {
    json!({"type": "output_text", "text": text, "annotations": annotations})
}

fn refusal_part(text: &str) -> Value {
    json!({"type": "refusal", "refusal": text})
}

fn function_call_item(id: &str, status: &str, call_id: &str, name: &str, arguments: &str) -> Value {
    json!({"id": id, "type": "function_call", "status": status, "call_id": call_id, "name": name, "arguments": arguments})
}

fn usage_from_chat(u: &Usage) -> Value {
    let details = |k: &str, default: Value| u.extra.get(k).filter(|v| v.is_object()).cloned().unwrap_or(default);
    let total = if u.total_tokens == 0 { u.prompt_tokens + u.completion_tokens } else { u.total_tokens };
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": details("prompt_tokens_details", json!({"cached_tokens": 0})),
        "output_tokens": u.completion_tokens,
        "output_tokens_details": details("completion_tokens_details", json!({"reasoning_tokens": 0})),
        "total_tokens": total,
    })
}

/// Responses usage → chat usage. All-zero default details objects are left out.
fn usage_to_chat(u: &Value) -> Value {
    let Some(m) = normalize_usage(u).as_object().cloned() else { return Value::Null };
    let n = |k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut out = Map::new();
    out.insert("prompt_tokens".into(), n("input_tokens").into());
    out.insert("completion_tokens".into(), n("output_tokens").into());
    out.insert("total_tokens".into(), n("total_tokens").into());
    if let Some(d) = m.get("input_tokens_details").filter(|d| **d != json!({"cached_tokens": 0})) {
        out.insert("prompt_tokens_details".into(), d.clone());
    }
    if let Some(d) = m.get("output_tokens_details").filter(|d| **d != json!({"reasoning_tokens": 0})) {
        out.insert("completion_tokens_details".into(), d.clone());
    }
    Value::Object(out)
}

/// Chat `url_citation` `{type, url_citation:{…}}` → Responses' flat form; others unchanged.
fn annotation_from_chat(a: &Value) -> Value {
    match (a.get("type").and_then(Value::as_str), a.get("url_citation").and_then(Value::as_object)) {
        (Some("url_citation"), Some(c)) => {
            let mut m = Map::new();
            m.insert("type".into(), "url_citation".into());
            for (k, v) in c {
                m.insert(k.clone(), v.clone());
            }
            Value::Object(m)
        }
        _ => a.clone(),
    }
}

/// Responses flat `url_citation` → chat's nested form, offsets shifted by `offset` chars.
fn annotation_to_chat(a: &Value, offset: u64) -> Value {
    match a.as_object() {
        Some(m) if m.get("type").and_then(Value::as_str) == Some("url_citation") => {
            let mut c = Map::new();
            for (k, v) in m {
                if k == "type" {
                    continue;
                }
                let v = match (k.as_str(), v.as_u64()) {
                    ("start_index" | "end_index", Some(n)) => (n + offset).into(),
                    _ => v.clone(),
                };
                c.insert(k.clone(), v);
            }
            json!({"type": "url_citation", "url_citation": c})
        }
        _ => a.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Responses: Responses object → chat.completion

/// A Responses object → a `chat.completion`. `failed` responses are the typed error of their
/// `error`; unfinished ones (`queued`, `in_progress`) are a `Validation` error. Hosted-tool
/// items (web search, file search, computer, image generation, MCP, …) have no chat form and
/// are left out; their results are in the message text.
pub fn response_to_chat(resp: &Value) -> Result<Value> {
    let r = object(resp, "response")?;
    let status = opt_str(r, "status", "")?.unwrap_or("completed");
    match status {
        "completed" | "incomplete" => {}
        "failed" => return Err(upstream_error(r.get("error").unwrap_or(&Value::Null), "Responses upstream failed", Some(resp.to_string()))),
        "cancelled" => {
            return Err(Error::Provider {
                message: "Responses upstream cancelled the response".into(),
                status: None,
                body: Some(resp.to_string()),
                provider_code: Some("cancelled".into()),
                retry_after_ms: None,
            })
        }
        other => {
            return Err(cannot("status", format!("the response is {other:?}, not finished; only completed or incomplete responses convert to chat")))
        }
    }
    let output = opt_array(r, "output", "")?.ok_or_else(|| invalid("output", "an array of output items", None))?;
    let mut text = String::new();
    let mut has_message = false;
    let mut refusal: Option<String> = None;
    let mut annotations = Vec::new();
    let mut tool_calls = Vec::new();
    let mut reasoning = Vec::new();
    for (i, item) in output.iter().enumerate() {
        let p = format!("output[{i}]");
        let m = object(item, &p)?;
        match opt_str(m, "type", &p)?.unwrap_or("") {
            "message" => {
                has_message = true;
                match m.get("content") {
                    Some(Value::String(s)) => text.push_str(s),
                    Some(Value::Array(parts)) => {
                        for (j, part) in parts.iter().enumerate() {
                            let pp = format!("{p}.content[{j}]");
                            let pm = object(part, &pp)?;
                            match req_str(pm, "type", &pp)? {
                                "output_text" | "text" => {
                                    let offset = text.chars().count() as u64;
                                    for a in opt_array(pm, "annotations", &pp)?.into_iter().flatten() {
                                        annotations.push(annotation_to_chat(a, offset));
                                    }
                                    text.push_str(req_str(pm, "text", &pp)?);
                                }
                                "refusal" => refusal.get_or_insert_with(String::new).push_str(req_str(pm, "refusal", &pp)?),
                                _ => {}
                            }
                        }
                    }
                    None | Some(Value::Null) => {}
                    other => return Err(invalid(&join(&p, "content"), "an array of content parts", other)),
                }
            }
            "function_call" => {
                let call_id = req_str(m, "call_id", &p)?;
                let name = req_str(m, "name", &p)?;
                let arguments = opt_str(m, "arguments", &p)?.unwrap_or("");
                tool_calls.push(json!({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}));
            }
            "custom_tool_call" => {
                let call_id = req_str(m, "call_id", &p)?;
                let name = req_str(m, "name", &p)?;
                let input = opt_str(m, "input", &p)?.unwrap_or("");
                tool_calls.push(json!({"id": call_id, "type": "custom", "custom": {"name": name, "input": input}}));
            }
            "reasoning" => {
                let t = reasoning_text(m, &p)?;
                if !t.is_empty() {
                    reasoning.push(t);
                }
            }
            _ => {}
        }
    }
    let content = if has_message && !(text.is_empty() && refusal.is_some()) {
        Value::String(text)
    } else if !tool_calls.is_empty() || refusal.is_some() {
        Value::Null
    } else {
        Value::String(String::new())
    };
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert("content".into(), content);
    if let Some(rf) = refusal {
        message.insert("refusal".into(), rf.into());
    }
    if !annotations.is_empty() {
        message.insert("annotations".into(), Value::Array(annotations));
    }
    let has_calls = !tool_calls.is_empty();
    if has_calls {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), reasoning.join("\n\n").into());
    }
    let finish_reason = if status == "incomplete" {
        incomplete_finish_reason(r.get("incomplete_details"))
    } else if has_calls {
        "tool_calls"
    } else {
        "stop"
    };
    let mut chat = Map::new();
    chat.insert("id".into(), r.get("id").and_then(Value::as_str).map(String::from).unwrap_or_else(|| generated_id("chatcmpl-")).into());
    chat.insert("object".into(), "chat.completion".into());
    chat.insert("created".into(), r.get("created_at").and_then(Value::as_u64).unwrap_or_else(now_secs).into());
    chat.insert("model".into(), r.get("model").and_then(Value::as_str).unwrap_or("").into());
    chat.insert("choices".into(), json!([{"index": 0, "message": message, "finish_reason": finish_reason}]));
    if let Some(u) = r.get("usage").filter(|u| u.is_object()) {
        chat.insert("usage".into(), usage_to_chat(u));
    }
    if let Some(t) = r.get("service_tier").filter(|t| !t.is_null()) {
        chat.insert("service_tier".into(), t.clone());
    }
    Ok(Value::Object(chat))
}

fn incomplete_finish_reason(details: Option<&Value>) -> &'static str {
    match details.and_then(|d| d.get("reason")).and_then(Value::as_str) {
        Some("content_filter") => "content_filter",
        _ => "length",
    }
}

// ---------------------------------------------------------------------------------------------
// Responses: chat.completion → Responses object

/// A `chat.completion` → a Responses object: a reasoning item (from `reasoning_content`), a
/// message item (when there is text or a refusal, or nothing else), then one function_call
/// item per tool call. A Responses object holds one output, so exactly one choice is needed.
pub fn response_from_chat(chat: &Value) -> Result<Value> {
    let c: ChatResponse = parse_chat(chat, "response")?;
    let choice = match c.choices.as_slice() {
        [one] => one,
        [] => return Err(Error::validation("response.choices", "response.choices is empty: there is no output to convert")),
        many => {
            return Err(Error::validation(
                "response.choices",
                format!("a Responses object holds one output, but the chat response has {} choices", many.len()),
            ))
        }
    };
    let id = if c.id.is_empty() { generated_id("resp_") } else { c.id.clone() };
    let base = id_base(&id);
    let (status, incomplete_details) = status_for(choice.finish_reason.as_deref());
    let m = &choice.message;
    let mut output = Vec::new();
    if let Some(Some(r)) = &m.reasoning_content {
        if !r.is_empty() {
            output.push(reasoning_item(&item_id("rs", &base, output.len()), r));
        }
    }
    let text = m.text();
    let refusal = m.extra.get("refusal").and_then(Value::as_str).filter(|s| !s.is_empty());
    let calls: &[ToolCall] = m.tool_calls.as_deref().unwrap_or(&[]);
    if !text.is_empty() || refusal.is_some() || calls.is_empty() {
        let annotations: Vec<Value> =
            m.extra.get("annotations").and_then(Value::as_array).map(|a| a.iter().map(annotation_from_chat).collect()).unwrap_or_default();
        let mut parts = Vec::new();
        if !text.is_empty() || refusal.is_none() {
            parts.push(output_text_part(&text, annotations));
        }
        if let Some(rf) = refusal {
            parts.push(refusal_part(rf));
        }
        output.push(message_item(&item_id("msg", &base, output.len()), "completed", parts));
    }
    for (j, tc) in calls.iter().enumerate() {
        if tc.kind.as_deref().is_some_and(|k| k != "function") {
            return Err(cannot(
                format!("response.choices[0].message.tool_calls[{j}].type"),
                format!("{:?} tool calls cannot be expressed as Responses function calls", tc.kind.as_deref().unwrap_or("")),
            ));
        }
        let f = tc.function.as_ref();
        let oi = output.len();
        let call_id = tc.id.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| item_id("call", &base, oi));
        let name = f.and_then(|f| f.name.as_deref()).unwrap_or("");
        let args = f.and_then(|f| f.arguments.as_deref()).unwrap_or("");
        output.push(function_call_item(&item_id("fc", &base, oi), "completed", &call_id, name, args));
    }
    if status == "incomplete" {
        if let Some(last) = output.iter_mut().rev().find(|it| it.get("status").is_some()) {
            last["status"] = "incomplete".into();
        }
    }
    let usage = c.usage.as_ref().map(usage_from_chat).unwrap_or(Value::Null);
    let mut resp = response_object(&id, normalize_created(c.created), &c.model, status, output, usage, incomplete_details);
    if let Some(t) = c.extra.get("service_tier").filter(|t| !t.is_null()) {
        resp["service_tier"] = t.clone();
    }
    Ok(resp)
}

/// The OpenAI error body a Responses endpoint answers with: `{"error": {message, type,
/// param, code}}`.
pub fn error_body(e: &Error) -> Value {
    json!({"error": openai_error_object(e)})
}

// ---------------------------------------------------------------------------------------------
// Stream decoder: Responses events → chat chunks

const TEXT: u8 = 0;
const REFUSAL: u8 = 1;
const SUMMARY: u8 = 2;
const REASONING: u8 = 3;
const ARGS: u8 = 4;

/// Responses stream events → `chat.completion.chunk`s, event by event. It keeps only what it
/// needs: per item its kind, tool-call index and how many bytes of each text it has passed on
/// (so a `*.done` / `output_item.done` / final `response.output` text longer than its deltas
/// passes on just the rest). The ending event gives the finish chunk and a usage chunk.
#[derive(Debug, Default)]
pub struct Decoder {
    id: String,
    model: String,
    created: u64,
    started: bool,
    finished: bool,
    events: usize,
    last_seq: Option<u64>,
    items: HashMap<String, DecItem>,
    by_index: HashMap<u64, String>,
    next_tool: u32,
    any_tool: bool,
    /// The function call argument deltas without an item address go to.
    last_call: Option<String>,
    last_reasoning: Option<(String, u8, u64)>,
}

#[derive(Debug, Default)]
struct DecItem {
    kind: String,
    tool_index: Option<u32>,
    sent: HashMap<(u8, u64), usize>,
    done: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})
    }

    fn adopt(&mut self, r: &Map<String, Value>) {
        if self.id.is_empty() {
            if let Some(id) = r.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                self.id = id.to_string();
            }
        }
        if self.model.is_empty() {
            if let Some(m) = r.get("model").and_then(Value::as_str) {
                self.model = m.to_string();
            }
        }
        if self.created == 0 {
            if let Some(c) = r.get("created_at").and_then(Value::as_u64) {
                self.created = c;
            }
        }
    }

    fn start(&mut self, out: &mut Vec<Value>) {
        if self.started {
            return;
        }
        self.started = true;
        if self.id.is_empty() {
            self.id = generated_id("chatcmpl-");
        }
        if self.created == 0 {
            self.created = now_secs();
        }
        out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
    }

    /// Registers an item (from `output_item.added` or a final output); a function call gets
    /// its tool-call index and a first chunk with its id and name.
    fn register(&mut self, key: String, oi: Option<u64>, item: &Map<String, Value>, out: &mut Vec<Value>) {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("").to_string();
        let mut it = DecItem { kind: kind.clone(), ..Default::default() };
        if kind == "function_call" || kind == "custom_tool_call" {
            let idx = self.next_tool;
            self.next_tool += 1;
            self.any_tool = true;
            it.tool_index = Some(idx);
            self.last_call = Some(key.clone());
            let call_id = item.get("call_id").and_then(Value::as_str).unwrap_or("");
            let name = item.get("name").and_then(Value::as_str).unwrap_or("");
            let field = if kind == "function_call" { "arguments" } else { "input" };
            let args = item.get(field).and_then(Value::as_str).unwrap_or("");
            it.sent.insert((ARGS, 0), args.len());
            let call = if kind == "function_call" {
                json!({"index": idx, "id": call_id, "type": "function", "function": {"name": name, "arguments": args}})
            } else {
                json!({"index": idx, "id": call_id, "type": "custom", "custom": {"name": name, "input": args}})
            };
            self.start(out);
            out.push(self.chunk(json!({"tool_calls": [call]}), None));
        }
        if let Some(oi) = oi {
            self.by_index.insert(oi, key.clone());
        }
        self.items.insert(key, it);
    }

    /// The key of the item an event names. Events that name no item (the seed's shapes) go
    /// to an implicit message / reasoning item (`~message`, `~reasoning`); argument deltas to
    /// the last function call that is not done.
    fn key(&mut self, ev: &Ev, implicit_kind: &str) -> Result<String> {
        if let Some(id) = ev.opt_str("item_id")? {
            return if self.items.contains_key(id) {
                Ok(id.to_string())
            } else {
                Err(ev.bad("item_id", format!("names unknown item {id:?}: no response.output_item.added announced it")))
            };
        }
        if let Some(oi) = ev.opt_u64("output_index")? {
            return self.by_index.get(&oi).cloned().ok_or_else(|| ev.bad("output_index", format!("{oi} names no item")));
        }
        if implicit_kind == "function_call" {
            return self
                .last_call
                .clone()
                .filter(|k| self.items.get(k).is_some_and(|it| !it.done))
                .ok_or_else(|| ev.bad("item_id", "names no item and no function call is open"));
        }
        let key = format!("~{implicit_kind}");
        self.items.entry(key.clone()).or_insert_with(|| DecItem { kind: implicit_kind.to_string(), ..Default::default() });
        Ok(key)
    }

    /// The seed's `response.tool_call.delta` (`{call_id?|id?, name?, delta|arguments}`): with an
    /// item address it is an argument delta; a new `call_id` starts a call; otherwise it
    /// continues the open one.
    fn seed_tool_call(&mut self, ev: &Ev, out: &mut Vec<Value>) -> Result<()> {
        let addressed = ev.obj.get("item_id").is_some_and(|v| !v.is_null()) || ev.obj.get("output_index").is_some_and(|v| !v.is_null());
        let call_id = match ev.opt_str("call_id")? {
            Some(c) => Some(c.to_string()),
            None => ev.opt_str("id")?.map(String::from),
        };
        let delta = match ev.opt_str("delta")? {
            Some(d) => d.to_string(),
            None => ev.opt_str("arguments")?.unwrap_or("").to_string(),
        };
        let key = if addressed {
            self.key(ev, "function_call")?
        } else {
            let open = self.last_call.clone().filter(|k| self.items.get(k).is_some_and(|it| !it.done));
            match (open, call_id) {
                (Some(k), None) => k,
                (Some(k), Some(c)) if k == format!("~call:{c}") => k,
                (_, c) => {
                    let c = c.unwrap_or_else(|| generated_id("call_"));
                    let name = ev.opt_str("name")?.unwrap_or("");
                    let item = json!({"type": "function_call", "call_id": c, "name": name, "arguments": ""});
                    let key = format!("~call:{c}");
                    if let Value::Object(m) = item {
                        self.register(key.clone(), None, &m, out);
                    }
                    key
                }
            }
        };
        self.emit(&key, ARGS, 0, &delta, out);
        Ok(())
    }

    /// Passes `text` on as the channel's delta.
    fn emit(&mut self, key: &str, chan: u8, idx: u64, text: &str, out: &mut Vec<Value>) {
        if text.is_empty() {
            return;
        }
        self.start(out);
        let Some(it) = self.items.get_mut(key) else { return };
        *it.sent.entry((chan, idx)).or_insert(0) += text.len();
        let delta = match chan {
            TEXT => json!({"content": text}),
            REFUSAL => json!({"refusal": text}),
            SUMMARY | REASONING => {
                let here = (key.to_string(), chan, idx);
                let sep = matches!(&self.last_reasoning, Some(prev) if *prev != here);
                self.last_reasoning = Some(here);
                let t = if sep { format!("\n\n{text}") } else { text.to_string() };
                json!({"reasoning_content": t})
            }
            _ => {
                let index = it.tool_index.unwrap_or(0);
                if it.kind == "custom_tool_call" {
                    json!({"tool_calls": [{"index": index, "custom": {"input": text}}]})
                } else {
                    json!({"tool_calls": [{"index": index, "function": {"arguments": text}}]})
                }
            }
        };
        out.push(self.chunk(delta, None));
    }

    /// A full text for a channel: passes on what its deltas did not.
    fn emit_full(&mut self, ev: &Ev, key: &str, chan: u8, idx: u64, full: &str, out: &mut Vec<Value>) -> Result<()> {
        let sent = self.items.get(key).and_then(|it| it.sent.get(&(chan, idx)).copied()).unwrap_or(0);
        if full.len() < sent || !full.is_char_boundary(sent) {
            return Err(Error::Stream {
                message: format!(
                    "Responses event #{} ({}) carries a final text shorter than the {sent} bytes its deltas already streamed; \
                     the chat stream cannot take them back",
                    ev.pos, ev.kind
                ),
                partial: None,
            });
        }
        let rest = full[sent..].to_string();
        self.emit(key, chan, idx, &rest, out);
        Ok(())
    }

    /// Everything a complete item carries that was not passed on yet.
    fn emit_item(&mut self, ev: &Ev, key: &str, item: &Map<String, Value>, out: &mut Vec<Value>) -> Result<()> {
        let kind = self.items.get(key).map(|it| it.kind.clone()).unwrap_or_default();
        match kind.as_str() {
            "message" => {
                for (j, part) in item.get("content").and_then(Value::as_array).into_iter().flatten().enumerate() {
                    match part.get("type").and_then(Value::as_str) {
                        Some("refusal") => {
                            let t = part.get("refusal").and_then(Value::as_str).unwrap_or("");
                            self.emit_full(ev, key, REFUSAL, j as u64, t, out)?;
                        }
                        _ => {
                            let t = part.get("text").and_then(Value::as_str).unwrap_or("");
                            self.emit_full(ev, key, TEXT, j as u64, t, out)?;
                        }
                    }
                }
            }
            "reasoning" => {
                let summary: Vec<String> = item
                    .get("summary")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|p| p.get("text").and_then(Value::as_str).unwrap_or("").to_string())
                    .collect();
                for (j, t) in summary.iter().enumerate() {
                    self.emit_full(ev, key, SUMMARY, j as u64, t, out)?;
                }
                if summary.iter().all(String::is_empty) {
                    let content: Vec<String> = item
                        .get("content")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|p| p.get("text").and_then(Value::as_str).unwrap_or("").to_string())
                        .collect();
                    for (j, t) in content.iter().enumerate() {
                        self.emit_full(ev, key, REASONING, j as u64, t, out)?;
                    }
                }
            }
            "function_call" | "custom_tool_call" => {
                let field = if kind == "function_call" { "arguments" } else { "input" };
                if let Some(a) = item.get(field).and_then(Value::as_str) {
                    self.emit_full(ev, key, ARGS, 0, a, out)?;
                }
            }
            _ => {}
        }
        if let Some(it) = self.items.get_mut(key) {
            it.done = true;
        }
        Ok(())
    }

    fn text_event(&mut self, ev: &Ev, kind: &str, chan: u8, index_key: &str, field: Option<&str>, out: &mut Vec<Value>) -> Result<()> {
        let key = self.key(ev, kind)?;
        let idx = ev.opt_u64(index_key)?.unwrap_or(0);
        match field {
            None => {
                let delta = ev.req_str("delta")?.to_string();
                self.emit(&key, chan, idx, &delta, out);
            }
            Some(f) => {
                let full = ev.req_str(f)?.to_string();
                self.emit_full(ev, &key, chan, idx, &full, out)?;
            }
        }
        Ok(())
    }

    fn terminal(&mut self, ev: &Ev, incomplete: bool, out: &mut Vec<Value>) -> Result<()> {
        let resp = match ev.obj.get("response") {
            Some(Value::Object(r)) => r.clone(),
            None | Some(Value::Null) => Map::new(),
            other => return Err(ev.bad("response", format!("must be an object, got {}", describe(other)))),
        };
        self.adopt(&resp);
        self.start(out);
        for (i, item) in resp.get("output").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let Some(im) = item.as_object() else {
                return Err(ev.bad(&format!("response.output[{i}]"), "must be an output item object"));
            };
            let key = match im.get("id").and_then(Value::as_str) {
                Some(id) => id.to_string(),
                None => self.by_index.get(&(i as u64)).cloned().unwrap_or_else(|| format!("#{i}")),
            };
            if !self.items.contains_key(&key) {
                self.register(key.clone(), None, im, out);
            }
            self.emit_item(ev, &key, im, out)?;
        }
        let finish = if incomplete {
            incomplete_finish_reason(resp.get("incomplete_details"))
        } else if self.any_tool {
            "tool_calls"
        } else {
            "stop"
        };
        out.push(self.chunk(json!({}), Some(finish)));
        let usage = match resp.get("usage") {
            Some(u @ Value::Object(_)) => Some(u.clone()),
            _ => ev.obj.get("usage").filter(|u| u.is_object()).cloned(),
        };
        if let Some(u) = usage {
            out.push(json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage_to_chat(&u)}));
        }
        self.finished = true;
        Ok(())
    }

    fn apply(&mut self, event: &Value, out: &mut Vec<Value>) -> Result<()> {
        let ev = Ev::parse(event, self.events)?;
        self.events += 1;
        self.last_seq = ev.check_order(self.last_seq)?;
        if self.finished {
            return Err(ev.bad("type", format!("{:?} arrived after the stream's ending event", ev.kind)));
        }
        match ev.kind.as_str() {
            "response.created" | "response.in_progress" | "response.queued" => {
                if let Some(Value::Object(r)) = ev.obj.get("response") {
                    self.adopt(r);
                }
                if ev.kind == "response.created" {
                    self.start(out);
                }
            }
            "response.output_item.added" => {
                let item = ev.req_obj("item")?.clone();
                let oi = ev.opt_u64("output_index")?;
                let key = match item.get("id").and_then(Value::as_str) {
                    Some(id) => id.to_string(),
                    None => format!("#{}", oi.unwrap_or(self.by_index.len() as u64)),
                };
                if self.items.contains_key(&key) {
                    return Err(ev.bad("item.id", format!("{key:?} was already added")));
                }
                self.start(out);
                self.register(key, oi, &item, out);
            }
            "response.output_item.done" => {
                let item = ev.req_obj("item")?.clone();
                let key = match item.get("id").and_then(Value::as_str) {
                    Some(id) if self.items.contains_key(id) => id.to_string(),
                    Some(id) => return Err(ev.bad("item.id", format!("names unknown item {id:?}: no response.output_item.added announced it"))),
                    None => {
                        let oi = ev.opt_u64("output_index")?.ok_or_else(|| ev.bad("item.id", "names no item (item.id or output_index is needed)"))?;
                        self.by_index.get(&oi).cloned().ok_or_else(|| ev.bad("output_index", format!("{oi} names no item")))?
                    }
                };
                self.emit_item(&ev, &key, &item, out)?;
            }
            "response.output_text.delta" => self.text_event(&ev, "message", TEXT, "content_index", None, out)?,
            "response.output_text.done" => self.text_event(&ev, "message", TEXT, "content_index", Some("text"), out)?,
            "response.refusal.delta" => self.text_event(&ev, "message", REFUSAL, "content_index", None, out)?,
            "response.refusal.done" => self.text_event(&ev, "message", REFUSAL, "content_index", Some("refusal"), out)?,
            "response.reasoning_summary_text.delta" => self.text_event(&ev, "reasoning", SUMMARY, "summary_index", None, out)?,
            "response.reasoning_summary_text.done" => self.text_event(&ev, "reasoning", SUMMARY, "summary_index", Some("text"), out)?,
            "response.reasoning_text.delta" => self.text_event(&ev, "reasoning", REASONING, "content_index", None, out)?,
            "response.reasoning_text.done" => self.text_event(&ev, "reasoning", REASONING, "content_index", Some("text"), out)?,
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                let key = self.key(&ev, "function_call")?;
                let delta = ev.req_str("delta")?.to_string();
                self.emit(&key, ARGS, 0, &delta, out);
            }
            "response.function_call_arguments.done" | "response.custom_tool_call_input.done" => {
                let key = self.key(&ev, "function_call")?;
                let field = if ev.kind.starts_with("response.function_call") { "arguments" } else { "input" };
                let full = ev.req_str(field)?.to_string();
                self.emit_full(&ev, &key, ARGS, 0, &full, out)?;
            }
            "response.tool_call.delta" => self.seed_tool_call(&ev, out)?,
            "response.completed" | "response.done" => self.terminal(&ev, false, out)?,
            "response.incomplete" => self.terminal(&ev, true, out)?,
            "response.failed" => {
                let err = ev.obj.get("response").and_then(|r| r.get("error")).filter(|e| e.is_object()).cloned().unwrap_or_else(|| json!({}));
                return Err(upstream_error(&err, "Responses stream failed", Some(Value::Object(ev.obj.clone()).to_string())));
            }
            "error" => {
                return Err(upstream_error(&error_event_object(&ev.obj), "Responses stream error", Some(Value::Object(ev.obj.clone()).to_string())));
            }
            k if k.starts_with("response.") => {}
            k => return Err(ev.bad("type", format!("{k:?} is not a Responses stream event"))),
        }
        Ok(())
    }
}

impl StreamDecoder for Decoder {
    fn push(&mut self, event: &Value) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        self.apply(event, &mut out)?;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Value>> {
        if self.finished {
            Ok(Vec::new())
        } else {
            Err(Error::Stream {
                message: format!(
                    "Responses stream ended after {} events without response.completed, response.incomplete or response.failed",
                    self.events
                ),
                partial: None,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stream encoder: chat chunks → Responses events

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EncKind {
    Reasoning,
    Message,
    FunctionCall,
}

#[derive(Debug)]
struct EncItem {
    kind: EncKind,
    id: String,
    /// Message parts in order: `(is_refusal, text)`.
    parts: Vec<(bool, String)>,
    part_open: bool,
    /// Reasoning summary text, or function-call arguments.
    text: String,
    call_id: String,
    name: String,
    open: bool,
    /// The item as its `output_item.done` gave it.
    done: Value,
}

/// Chat chunks → the Responses event sequence, with `sequence_number` from 0. Items open in
/// the order their content first appears: reasoning (closed when anything else starts), a
/// message (closed when reasoning or a tool call starts), function calls (kept open until the
/// finish reason, because chunks may interleave tool-call indices; a continuation — same
/// index, `id` empty or absent — goes to its open item). Text that comes after a closed
/// message opens a new message item. The finish reason closes every open item (in
/// `output_index` order); `finish` sends `response.completed` (or `response.incomplete` for
/// `length` / `content_filter`) with the whole response and the last usage seen. A stream
/// with no message and no tool call gets an empty message item, as `response_from_chat` does.
#[derive(Debug, Default)]
pub struct Encoder {
    seq: u64,
    started: bool,
    closed: bool,
    completed: bool,
    id: String,
    base: String,
    model: String,
    created: u64,
    items: Vec<EncItem>,
    reasoning: Option<usize>,
    message: Option<usize>,
    tools: BTreeMap<u32, usize>,
    finish_reason: Option<String>,
    usage: Value,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn ev(&mut self, kind: &str, fields: Value) -> Value {
        let mut e = Map::new();
        e.insert("type".into(), kind.into());
        e.insert("sequence_number".into(), self.seq.into());
        if let Value::Object(m) = fields {
            e.extend(m);
        }
        self.seq += 1;
        Value::Object(e)
    }

    /// The `error` event for an error that ends the stream: `{type:"error", code, message,
    /// param, sequence_number}`. Nothing more is encoded after it.
    pub fn error_event(&mut self, e: &Error) -> Value {
        let obj = openai_error_object(e);
        self.completed = true;
        self.ev("error", json!({"code": obj["code"], "message": obj["message"], "param": obj["param"]}))
    }

    fn start(&mut self, c: &ChatChunk, out: &mut Vec<Value>) {
        self.started = true;
        self.id = if c.id.is_empty() { generated_id("resp_") } else { c.id.clone() };
        self.base = id_base(&self.id);
        self.model = c.model.clone();
        self.created = normalize_created(c.created);
        let skeleton = response_object(&self.id, self.created, &self.model, "in_progress", Vec::new(), Value::Null, Value::Null);
        let created = self.ev("response.created", json!({"response": skeleton.clone()}));
        out.push(created);
        let progress = self.ev("response.in_progress", json!({"response": skeleton}));
        out.push(progress);
    }

    fn open(&mut self, kind: EncKind, call_id: String, name: String, out: &mut Vec<Value>) -> usize {
        let oi = self.items.len();
        let prefix = match kind {
            EncKind::Reasoning => "rs",
            EncKind::Message => "msg",
            EncKind::FunctionCall => "fc",
        };
        let id = item_id(prefix, &self.base, oi);
        let item = match kind {
            EncKind::Reasoning => json!({"id": id, "type": "reasoning", "summary": []}),
            EncKind::Message => json!({"id": id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}),
            EncKind::FunctionCall => function_call_item(&id, "in_progress", &call_id, &name, ""),
        };
        self.items.push(EncItem {
            kind,
            id: id.clone(),
            parts: Vec::new(),
            part_open: false,
            text: String::new(),
            call_id,
            name,
            open: true,
            done: Value::Null,
        });
        let e = self.ev("response.output_item.added", json!({"output_index": oi, "item": item}));
        out.push(e);
        if kind == EncKind::Reasoning {
            let e = self.ev(
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": oi, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
            );
            out.push(e);
        }
        oi
    }

    fn open_part(&mut self, mi: usize, refusal: bool, out: &mut Vec<Value>) {
        self.close_part(mi, out);
        let ci = self.items[mi].parts.len();
        self.items[mi].parts.push((refusal, String::new()));
        self.items[mi].part_open = true;
        let part = if refusal { refusal_part("") } else { output_text_part("", Vec::new()) };
        let id = self.items[mi].id.clone();
        let e = self.ev("response.content_part.added", json!({"item_id": id, "output_index": mi, "content_index": ci, "part": part}));
        out.push(e);
    }

    fn close_part(&mut self, mi: usize, out: &mut Vec<Value>) {
        if !self.items[mi].part_open {
            return;
        }
        self.items[mi].part_open = false;
        let ci = self.items[mi].parts.len() - 1;
        let (refusal, text) = self.items[mi].parts[ci].clone();
        let id = self.items[mi].id.clone();
        let (done, part) = if refusal {
            (self.ev("response.refusal.done", json!({"item_id": id, "output_index": mi, "content_index": ci, "refusal": text})), refusal_part(&text))
        } else {
            (
                self.ev("response.output_text.done", json!({"item_id": id, "output_index": mi, "content_index": ci, "text": text, "logprobs": []})),
                output_text_part(&text, Vec::new()),
            )
        };
        out.push(done);
        let e = self.ev("response.content_part.done", json!({"item_id": id, "output_index": mi, "content_index": ci, "part": part}));
        out.push(e);
    }

    /// Closes one item; `last_status` is the status the response's last item gets.
    fn close(&mut self, i: usize, item_status: &str, out: &mut Vec<Value>) {
        if !self.items[i].open {
            return;
        }
        let id = self.items[i].id.clone();
        let item = match self.items[i].kind {
            EncKind::Reasoning => {
                let text = self.items[i].text.clone();
                let e = self.ev("response.reasoning_summary_text.done", json!({"item_id": id, "output_index": i, "summary_index": 0, "text": text}));
                out.push(e);
                let e = self.ev(
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id, "output_index": i, "summary_index": 0, "part": {"type": "summary_text", "text": text}}),
                );
                out.push(e);
                reasoning_item(&id, &text)
            }
            EncKind::Message => {
                self.close_part(i, out);
                let parts = self.items[i].parts.iter().map(|(r, t)| if *r { refusal_part(t) } else { output_text_part(t, Vec::new()) }).collect();
                message_item(&id, item_status, parts)
            }
            EncKind::FunctionCall => {
                let it = &self.items[i];
                let (call_id, name, args) = (it.call_id.clone(), it.name.clone(), it.text.clone());
                let e = self.ev("response.function_call_arguments.done", json!({"item_id": id, "output_index": i, "name": name, "arguments": args}));
                out.push(e);
                function_call_item(&id, item_status, &call_id, &name, &args)
            }
        };
        self.items[i].open = false;
        self.items[i].done = item.clone();
        let e = self.ev("response.output_item.done", json!({"output_index": i, "item": item}));
        out.push(e);
        if self.reasoning == Some(i) {
            self.reasoning = None;
        }
        if self.message == Some(i) {
            self.message = None;
        }
    }

    fn close_reasoning(&mut self, out: &mut Vec<Value>) {
        if let Some(i) = self.reasoning {
            self.close(i, "completed", out);
        }
    }

    fn close_message(&mut self, out: &mut Vec<Value>) {
        if let Some(i) = self.message {
            self.close(i, "completed", out);
        }
    }

    /// Closes every open item in `output_index` order; the last item of an incomplete
    /// response is `incomplete`.
    fn close_all(&mut self, out: &mut Vec<Value>) {
        let (status, _) = status_for(self.finish_reason.as_deref());
        let last = self.items.len().saturating_sub(1);
        for i in 0..self.items.len() {
            let s = if i == last && status == "incomplete" { "incomplete" } else { "completed" };
            self.close(i, s, out);
        }
    }

    fn reasoning_delta(&mut self, text: &str, out: &mut Vec<Value>) {
        self.close_message(out);
        let i = match self.reasoning {
            Some(i) => i,
            None => {
                let i = self.open(EncKind::Reasoning, String::new(), String::new(), out);
                self.reasoning = Some(i);
                i
            }
        };
        self.items[i].text.push_str(text);
        let id = self.items[i].id.clone();
        let e = self.ev("response.reasoning_summary_text.delta", json!({"item_id": id, "output_index": i, "summary_index": 0, "delta": text}));
        out.push(e);
    }

    fn text_delta(&mut self, refusal: bool, text: &str, out: &mut Vec<Value>) {
        self.close_reasoning(out);
        let mi = match self.message {
            Some(i) => i,
            None => {
                let i = self.open(EncKind::Message, String::new(), String::new(), out);
                self.message = Some(i);
                i
            }
        };
        let same_part = self.items[mi].part_open && self.items[mi].parts.last().is_some_and(|(r, _)| *r == refusal);
        if !same_part {
            self.open_part(mi, refusal, out);
        }
        let ci = self.items[mi].parts.len() - 1;
        self.items[mi].parts[ci].1.push_str(text);
        let id = self.items[mi].id.clone();
        let e = if refusal {
            self.ev("response.refusal.delta", json!({"item_id": id, "output_index": mi, "content_index": ci, "delta": text}))
        } else {
            self.ev("response.output_text.delta", json!({"item_id": id, "output_index": mi, "content_index": ci, "delta": text, "logprobs": []}))
        };
        out.push(e);
    }

    fn tool_delta(&mut self, index: u32, tc: &ToolCall, path: &str, out: &mut Vec<Value>) -> Result<()> {
        if tc.kind.as_deref().is_some_and(|k| k != "function") {
            return Err(cannot(
                format!("{path}.type"),
                format!("{:?} tool calls cannot be encoded as Responses function calls", tc.kind.as_deref().unwrap_or("")),
            ));
        }
        self.close_reasoning(out);
        self.close_message(out);
        let name = tc.function.as_ref().and_then(|f| f.name.as_deref()).filter(|s| !s.is_empty());
        let args = tc.function.as_ref().and_then(|f| f.arguments.as_deref()).unwrap_or("");
        let i = match self.tools.get(&index) {
            Some(&i) => {
                if !self.items[i].open {
                    return Err(Error::Stream {
                        message: format!("chat tool call {index} continued after its Responses function_call item was closed"),
                        partial: None,
                    });
                }
                if let Some(n) = name {
                    if self.items[i].name.is_empty() {
                        self.items[i].name = n.to_string();
                    }
                }
                i
            }
            None => {
                let oi = self.items.len();
                let call_id = tc.id.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| item_id("call", &self.base, oi));
                let i = self.open(EncKind::FunctionCall, call_id, name.unwrap_or("").to_string(), out);
                self.tools.insert(index, i);
                i
            }
        };
        if !args.is_empty() {
            self.items[i].text.push_str(args);
            let id = self.items[i].id.clone();
            let e = self.ev("response.function_call_arguments.delta", json!({"item_id": id, "output_index": i, "delta": args}));
            out.push(e);
        }
        Ok(())
    }
}

impl StreamEncoder for Encoder {
    fn push(&mut self, chunk: &Value) -> Result<Vec<Value>> {
        if self.completed {
            return Err(Error::Stream { message: "chat chunk after the Responses stream was finished".into(), partial: None });
        }
        let c: ChatChunk = parse_chat(chunk, "chunk")?;
        let mut out = Vec::new();
        if !self.started {
            self.start(&c, &mut out);
        }
        if self.model.is_empty() && !c.model.is_empty() {
            self.model = c.model.clone();
        }
        if let Some(Some(u)) = &c.usage {
            self.usage = usage_from_chat(u);
        }
        for (k, ch) in c.choices.iter().enumerate() {
            if ch.index != 0 {
                return Err(Error::validation(
                    format!("chunk.choices[{k}].index"),
                    format!("chunk.choices[{k}].index is {}: a Responses stream carries one output, so only choice 0 can be encoded", ch.index),
                ));
            }
            let d = &ch.delta;
            let reasoning = d.reasoning_content.as_ref().and_then(|r| r.as_deref()).filter(|s| !s.is_empty());
            let content = d.content.as_ref().and_then(|t| t.as_deref()).filter(|s| !s.is_empty());
            let refusal = d.extra.get("refusal").and_then(Value::as_str).filter(|s| !s.is_empty());
            let calls = d.tool_calls.as_deref().unwrap_or(&[]);
            if self.closed && (reasoning.is_some() || content.is_some() || refusal.is_some() || !calls.is_empty()) {
                return Err(Error::Stream { message: "chat chunk carries content after the choice's finish_reason".into(), partial: None });
            }
            if let Some(r) = reasoning {
                self.reasoning_delta(r, &mut out);
            }
            if let Some(t) = content {
                self.text_delta(false, t, &mut out);
            }
            if let Some(t) = refusal {
                self.text_delta(true, t, &mut out);
            }
            for (pos, tc) in calls.iter().enumerate() {
                let index = tc.index.unwrap_or(pos as u32);
                self.tool_delta(index, tc, &format!("chunk.choices[{k}].delta.tool_calls[{pos}]"), &mut out)?;
            }
            if let Some(fr) = ch.finish_reason.as_deref().filter(|s| !s.is_empty()) {
                if !self.closed {
                    self.finish_reason = Some(fr.to_string());
                    self.close_all(&mut out);
                    self.closed = true;
                }
            }
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Value>> {
        if self.completed {
            return Ok(Vec::new());
        }
        if !self.started {
            return Err(Error::Stream {
                message: "the chat stream ended before its first chunk: there is no Responses stream to encode".into(),
                partial: None,
            });
        }
        let mut out = Vec::new();
        if !self.closed {
            self.close_all(&mut out);
            self.closed = true;
        }
        let (status, incomplete_details) = status_for(self.finish_reason.as_deref());
        if !self.items.iter().any(|it| it.kind != EncKind::Reasoning) {
            let mi = self.open(EncKind::Message, String::new(), String::new(), &mut out);
            self.open_part(mi, false, &mut out);
            self.close(mi, if status == "incomplete" { "incomplete" } else { "completed" }, &mut out);
        }
        let output: Vec<Value> = self.items.iter().map(|it| it.done.clone()).collect();
        let resp = response_object(&self.id, self.created, &self.model, status, output, self.usage.clone(), incomplete_details);
        let kind = if status == "incomplete" { "response.incomplete" } else { "response.completed" };
        let e = self.ev(kind, json!({"response": resp}));
        out.push(e);
        self.completed = true;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{ChunkAccumulator, ResponsesRebuilder, ResponsesRebuilderConfig};

    fn field(e: &Error) -> String {
        match e {
            Error::Validation { field: Some(f), .. } => f.clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn encode(chunks: &[Value]) -> Vec<Value> {
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(enc.push(c).unwrap());
        }
        out.extend(enc.finish().unwrap());
        out
    }

    fn decode(events: &[Value]) -> Result<Vec<Value>> {
        let mut dec = Decoder::new();
        let mut out = Vec::new();
        for e in events {
            out.extend(dec.push(e)?);
        }
        out.extend(dec.finish()?);
        Ok(out)
    }

    fn accumulate(chunks: &[Value]) -> Value {
        let mut acc = ChunkAccumulator::default();
        for c in chunks {
            acc.push(&serde_json::from_value(c.clone()).unwrap());
        }
        serde_json::to_value(acc.to_response()).unwrap()
    }

    fn types(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    /// The chunks a chat upstream would stream for `resp` (one choice), every text cut at
    /// random char boundaries and tool-call arguments sent as continuations (`id: ""`).
    fn chunk_randomly(rng: &mut fastrand::Rng, resp: &Value) -> Vec<Value> {
        let base = |delta: Value, finish: Value| {
            json!({"id": resp["id"], "object": "chat.completion.chunk", "created": resp["created"], "model": resp["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let split = |rng: &mut fastrand::Rng, s: &str| -> Vec<String> {
            let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
            let mut at: Vec<usize> = (0..rng.usize(0..6)).map(|_| bounds[rng.usize(..bounds.len())]).collect();
            at.extend([0, s.len()]);
            at.sort_unstable();
            at.dedup();
            at.windows(2).map(|w| s[w[0]..w[1]].to_string()).collect()
        };
        let m = &resp["choices"][0]["message"];
        let mut out = vec![base(json!({"role": "assistant", "content": ""}), Value::Null)];
        if let Some(r) = m["reasoning_content"].as_str() {
            for piece in split(rng, r) {
                out.push(base(json!({"reasoning_content": piece}), Value::Null));
            }
        }
        if let Some(t) = m["content"].as_str() {
            for piece in split(rng, t) {
                out.push(base(json!({"content": piece}), Value::Null));
            }
        }
        for (i, tc) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
            let args = split(rng, tc["function"]["arguments"].as_str().unwrap());
            let first = args.first().cloned().unwrap_or_default();
            out.push(base(
                json!({"tool_calls": [{"index": i, "id": tc["id"], "type": "function",
                "function": {"name": tc["function"]["name"], "arguments": first}}]}),
                Value::Null,
            ));
            for piece in args.iter().skip(1) {
                out.push(base(json!({"tool_calls": [{"index": i, "id": "", "function": {"arguments": piece}}]}), Value::Null));
            }
        }
        out.push(base(json!({}), resp["choices"][0]["finish_reason"].clone()));
        if !resp["usage"].is_null() {
            let mut u = base(json!({}), Value::Null);
            u["choices"] = json!([]);
            u["usage"] = resp["usage"].clone();
            out.push(u);
        }
        out
    }

    // -- fixtures -----------------------------------------------------------------------------

    fn responses_request() -> Value {
        json!({
            "model": "gpt-4.1",
            "instructions": "You are a helpful assistant.",
            "input": [
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "What is in this image, and what's the weather in Paris?"},
                    {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "high"}]},
                {"type": "reasoning", "id": "rs_9", "summary": [{"type": "summary_text", "text": "Need the weather tool."}], "encrypted_content": "gAAAA"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "A cat. Let me check the weather.", "annotations": []}]},
                {"type": "function_call", "id": "fc_9", "call_id": "call_9", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
                {"type": "function_call", "id": "fc_10", "call_id": "call_10", "name": "get_time", "arguments": "{\"tz\":\"CET\"}"},
                {"type": "function_call_output", "call_id": "call_9", "output": "{\"temp\":18}"},
                {"type": "function_call_output", "call_id": "call_10", "output": "14:00"},
                {"role": "user", "content": "Thanks! Summarize."}
            ],
            "tools": [{"type": "function", "name": "get_weather", "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, "strict": true},
                {"type": "function", "name": "get_time", "parameters": {"type": "object"}, "strict": false}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "max_output_tokens": 512, "temperature": 0.2, "top_p": 0.9,
            "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": true}, "verbosity": "low"},
            "reasoning": {"effort": "high", "summary": "auto"},
            "store": false, "metadata": {"trace": "t1"}, "stream": true, "include": ["reasoning.encrypted_content"],
            "parallel_tool_calls": true, "truncation": "disabled"
        })
    }

    fn chat_request() -> Value {
        json!({
            "model": "qwen3-coder-plus",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Describe"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
                {"role": "tool", "tool_call_id": "call_a", "content": "found"},
                {"role": "assistant", "content": "It is x."},
                {"role": "developer", "content": "Answer in French."},
                {"role": "user", "content": "Again?"}
            ],
            "tools": [{"type": "function", "function": {"name": "lookup", "description": "Looks up", "parameters": {"type": "object"}}}],
            "tool_choice": "auto", "max_tokens": 100, "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}, "strict": true}},
            "reasoning_effort": "low", "stream": true, "stream_options": {"include_usage": true}, "temperature": 0.5, "user": "u1",
            "store": true, "metadata": {"k": "v"}, "extend_fields": {"x": 1}
        })
    }

    fn chat_response() -> Value {
        json!({"id": "chatcmpl-xyz", "object": "chat.completion", "created": 1_700_000_000u64, "model": "qwen3",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Let me look that up.", "reasoning_content": "User wants x; call lookup.",
                "tool_calls": [{"id": "call_q", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":1}"}},
                    {"id": "call_r", "type": "function", "function": {"name": "fetch", "arguments": "{\"url\":\"https://e.x/ü\"}"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30, "prompt_tokens_details": {"cached_tokens": 3}}})
    }

    fn responses_response() -> Value {
        json!({"id": "resp_abc", "object": "response", "created_at": 1_741_476_542u64, "status": "completed", "model": "gpt-4.1-2025-04-14",
            "output": [
                {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Thinking about Paris."}, {"type": "summary_text", "text": "Need weather."}]},
                {"id": "ws_1", "type": "web_search_call", "status": "completed"},
                {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant", "content": [
                    {"type": "output_text", "text": "Checking ", "annotations": []},
                    {"type": "output_text", "text": "Paris weather [1].", "annotations": [{"type": "url_citation", "start_index": 14, "end_index": 17, "url": "https://w.example", "title": "W"}]}]},
                {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}
            ],
            "usage": {"input_tokens": 36, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 87, "output_tokens_details": {"reasoning_tokens": 20}, "total_tokens": 123},
            "parallel_tool_calls": true, "temperature": 1.0, "tools": [], "incomplete_details": null, "error": null})
    }

    // -- requests -----------------------------------------------------------------------------

    #[test]
    fn responses_request_to_chat_golden() {
        assert_eq!(
            request_to_chat(&responses_request()).unwrap(),
            json!({
                "model": "gpt-4.1",
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": [{"type": "text", "text": "What is in this image, and what's the weather in Paris?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}}]},
                    {"role": "assistant", "content": [{"type": "text", "text": "A cat. Let me check the weather."}], "reasoning_content": "Need the weather tool.",
                        "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                            {"id": "call_10", "type": "function", "function": {"name": "get_time", "arguments": "{\"tz\":\"CET\"}"}}]},
                    {"role": "tool", "tool_call_id": "call_9", "content": "{\"temp\":18}"},
                    {"role": "tool", "tool_call_id": "call_10", "content": "14:00"},
                    {"role": "user", "content": "Thanks! Summarize."}
                ],
                "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, "strict": true}},
                    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "max_tokens": 512, "temperature": 0.2, "top_p": 0.9,
                "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}},
                "verbosity": "low", "reasoning_effort": "high", "store": false, "metadata": {"trace": "t1"},
                "stream": true, "stream_options": {"include_usage": true}, "parallel_tool_calls": true
            })
        );
        // A plain string input is one user message; a reasoning item right before a function
        // call goes to the assistant message the call creates.
        let simple = json!({"model": "m", "input": "Hi", "tool_choice": "required", "top_logprobs": 2});
        assert_eq!(
            request_to_chat(&simple).unwrap(),
            json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "tool_choice": "required", "logprobs": true, "top_logprobs": 2})
        );
        let r = request_to_chat(
            &json!({"input": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "a"}, {"type": "summary_text", "text": "b"}]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]}),
        )
        .unwrap();
        assert_eq!(
            r["messages"],
            json!([{"role": "assistant", "content": null, "reasoning_content": "a\n\nb",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}])
        );
    }

    #[test]
    fn responses_request_from_chat_golden() {
        assert_eq!(
            request_from_chat(&chat_request()).unwrap(),
            json!({
                "model": "qwen3-coder-plus",
                "instructions": "Be brief.",
                "input": [
                    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Describe"},
                        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}]},
                    {"type": "function_call", "call_id": "call_a", "name": "lookup", "arguments": "{\"q\":\"x\"}"},
                    {"type": "function_call_output", "call_id": "call_a", "output": "found"},
                    {"type": "message", "role": "assistant", "content": "It is x."},
                    {"type": "message", "role": "developer", "content": "Answer in French."},
                    {"type": "message", "role": "user", "content": "Again?"}
                ],
                "tools": [{"type": "function", "name": "lookup", "description": "Looks up", "parameters": {"type": "object"}, "strict": false}],
                "tool_choice": "auto", "max_output_tokens": 100,
                "text": {"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}, "strict": true}},
                "reasoning": {"effort": "low"}, "stream": true, "temperature": 0.5, "user": "u1", "store": true, "metadata": {"k": "v"},
                "extend_fields": {"x": 1}
            })
        );
        // One user message becomes a string input; max_completion_tokens wins over max_tokens;
        // dropped chat-only knobs; a refusal and reasoning in the history.
        let r =
            request_from_chat(&json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "max_completion_tokens": 9,
            "n": 1, "seed": 3, "frequency_penalty": 0.1, "logprobs": false, "tool_choice": {"type": "function", "function": {"name": "f"}}}))
            .unwrap();
        assert_eq!(r, json!({"model": "m", "input": "Hi", "max_output_tokens": 9, "tool_choice": {"type": "function", "name": "f"}}));
        let r = request_from_chat(&json!({"messages": [{"role": "user", "content": "a"},
            {"role": "assistant", "content": "no", "refusal": "I won't.", "reasoning_content": "dropped"}]}))
        .unwrap();
        assert_eq!(
            r["input"][1]["content"],
            json!([{"type": "output_text", "text": "no", "annotations": []}, {"type": "refusal", "refusal": "I won't."}])
        );
    }

    #[test]
    fn responses_request_conversions_refuse_what_cannot_map() {
        let e = request_to_chat(&json!({"model": "m", "previous_response_id": "resp_1", "input": "next"})).unwrap_err();
        assert_eq!(field(&e), "previous_response_id");
        assert!(e.to_string().contains("stateless"), "{e}");
        let cases = [
            (json!({"input": "x", "conversation": "conv_1"}), "conversation"),
            (json!({"input": "x", "prompt": {"id": "pmpt_1"}}), "prompt"),
            (json!({"input": "x", "background": true}), "background"),
            (json!({"input": "x", "tools": [{"type": "web_search_preview"}]}), "tools[0].type"),
            (json!({"input": "x", "tool_choice": {"type": "file_search"}}), "tool_choice.type"),
            (json!({"input": [{"type": "item_reference", "id": "msg_1"}]}), "input[0].type"),
            (json!({"input": [{"type": "web_search_call", "id": "ws_1"}]}), "input[0].type"),
            (json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]}), "input[0].content[0].file_id"),
            (json!({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}), "input[0].content[0].text"),
            (json!({"input": [{"role": "wizard", "content": "x"}]}), "input[0].role"),
            (json!({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}), "input[0].call_id"),
            (json!({"input": 7}), "input"),
            (json!({}), "input"),
            (json!({"input": "x", "max_output_tokens": -3}), "max_output_tokens"),
            (json!({"input": "x", "text": {"format": {"type": "json_schema"}}}), "text.format.name"),
            (json!("not an object"), "request"),
        ];
        for (req, f) in cases {
            assert_eq!(field(&request_to_chat(&req).unwrap_err()), f, "{req}");
        }
        let msgs = json!([{"role": "user", "content": "x"}]);
        let chat_cases = [
            (json!({"messages": msgs, "n": 2}), "n"),
            (json!({"messages": msgs, "stop": ["\n"]}), "stop"),
            (json!({"messages": msgs, "functions": [{"name": "f"}]}), "functions"),
            (json!({"messages": msgs, "modalities": ["text", "audio"]}), "modalities"),
            (json!({"messages": [{"role": "function", "name": "f", "content": "x"}]}), "messages[0].role"),
            (
                json!({"messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}]}),
                "messages[0].tool_calls[0].id",
            ),
            (json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}), "messages[0].content[0].type"),
            (json!({"messages": msgs, "tools": [{"type": "custom", "custom": {"name": "c"}}]}), "tools[0].type"),
            (json!({}), "messages"),
        ];
        for (req, f) in chat_cases {
            assert_eq!(field(&request_from_chat(&req).unwrap_err()), f, "{req}");
        }
        // An empty stop is no stop.
        assert!(request_from_chat(&json!({"messages": msgs, "stop": []})).is_ok());
    }

    #[test]
    fn responses_request_round_trips() {
        // chat → responses → chat is lossless for this request.
        let chat = chat_request();
        assert_eq!(request_to_chat(&request_from_chat(&chat).unwrap()).unwrap(), chat);

        // responses → chat → responses is lossless for requests written in the canonical shape
        // (typed message items, explicit `strict`, no reasoning items, no item ids). Not
        // lossless: reasoning items (they become `reasoning_content`, which a chat history
        // cannot hand back), item ids/status, `include`/`truncation`, `reasoning.summary`, a
        // missing `strict` (Responses' default true comes back as an explicit false), and a
        // first input message with role system (it comes back as `instructions`).
        let resp = json!({
            "model": "gpt-4.1", "instructions": "Be kind.",
            "input": [
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Look"}, {"type": "input_image", "image_url": "https://e.x/a.png"}]},
                {"type": "message", "role": "assistant", "content": "Calling."},
                {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{\"a\":1}"},
                {"type": "function_call", "call_id": "call_2", "name": "g", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "1"},
                {"type": "function_call_output", "call_id": "call_2", "output": "2"},
                {"type": "message", "role": "developer", "content": "Be terse."},
                {"type": "message", "role": "user", "content": "And?"}
            ],
            "tools": [{"type": "function", "name": "f", "description": "F", "parameters": {"type": "object"}, "strict": true},
                {"type": "function", "name": "g", "parameters": {"type": "object"}, "strict": false}],
            "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"}]},
            "max_output_tokens": 300, "temperature": 0.3, "top_p": 1.0,
            "text": {"format": {"type": "json_object"}, "verbosity": "high"}, "reasoning": {"effort": "medium"},
            "store": true, "metadata": {"a": "b"}, "parallel_tool_calls": false, "user": "u"
        });
        assert_eq!(request_from_chat(&request_to_chat(&resp).unwrap()).unwrap(), resp);
    }

    // -- responses ----------------------------------------------------------------------------

    #[test]
    fn responses_response_to_chat_golden() {
        assert_eq!(
            response_to_chat(&responses_response()).unwrap(),
            json!({"id": "resp_abc", "object": "chat.completion", "created": 1_741_476_542u64, "model": "gpt-4.1-2025-04-14",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Checking Paris weather [1].",
                    "annotations": [{"type": "url_citation", "url_citation": {"start_index": 23, "end_index": 26, "url": "https://w.example", "title": "W"}}],
                    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}],
                    "reasoning_content": "Thinking about Paris.\n\nNeed weather."}}],
                "usage": {"prompt_tokens": 36, "completion_tokens": 87, "total_tokens": 123, "completion_tokens_details": {"reasoning_tokens": 20}}})
        );
        // incomplete → length; a refusal; only tool calls → null content.
        let inc = json!({"id": "resp_i", "created_at": 1, "model": "m", "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"type": "message", "role": "assistant", "status": "incomplete", "content": [{"type": "output_text", "text": "Trunc", "annotations": []}]}],
            "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}});
        let c = response_to_chat(&inc).unwrap();
        assert_eq!((c["choices"][0]["finish_reason"].as_str(), c["choices"][0]["message"]["content"].as_str()), (Some("length"), Some("Trunc")));
        assert_eq!(c["usage"], json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}));
        let filtered = json!({"status": "incomplete", "incomplete_details": {"reason": "content_filter"}, "output": []});
        assert_eq!(response_to_chat(&filtered).unwrap()["choices"][0]["finish_reason"], "content_filter");
        let refusal = json!({"status": "completed", "output": [{"type": "message", "content": [{"type": "refusal", "refusal": "No."}]}]});
        let m = &response_to_chat(&refusal).unwrap()["choices"][0]["message"];
        assert_eq!((m["content"].clone(), m["refusal"].as_str()), (Value::Null, Some("No.")));
        let calls = json!({"status": "completed", "output": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]});
        assert_eq!(response_to_chat(&calls).unwrap()["choices"][0]["message"]["content"], Value::Null);
    }

    #[test]
    fn responses_response_to_chat_failed_and_unfinished() {
        let failed =
            json!({"id": "resp_f", "status": "failed", "error": {"code": "rate_limit_exceeded", "message": "Rate limit reached"}, "output": []});
        assert!(matches!(response_to_chat(&failed), Err(Error::RateLimit { provider_code: Some(c), .. }) if c == "rate_limit_exceeded"));
        let failed = json!({"status": "failed", "error": {"code": "server_error", "message": "boom"}, "output": []});
        assert!(matches!(response_to_chat(&failed), Err(Error::Provider { status: None, .. })));
        assert_eq!(field(&response_to_chat(&json!({"status": "in_progress", "output": []})).unwrap_err()), "status");
        assert_eq!(field(&response_to_chat(&json!({"status": "completed"})).unwrap_err()), "output");
        assert_eq!(field(&response_to_chat(&json!({"output": [{"type": "function_call", "name": "f"}]})).unwrap_err()), "output[0].call_id");
        assert_eq!(
            field(&response_to_chat(&json!({"output": [{"type": "message", "content": [{"type": "output_text"}]}]})).unwrap_err()),
            "output[0].content[0].text"
        );
    }

    #[test]
    fn responses_response_from_chat_golden() {
        assert_eq!(
            response_from_chat(&chat_response()).unwrap(),
            json!({"id": "chatcmpl-xyz", "object": "response", "created_at": 1_700_000_000u64, "status": "completed", "model": "qwen3",
                "output": [
                    {"id": "rs_xyz_0", "type": "reasoning", "summary": [{"type": "summary_text", "text": "User wants x; call lookup."}]},
                    {"id": "msg_xyz_1", "type": "message", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": "Let me look that up.", "annotations": []}]},
                    {"id": "fc_xyz_2", "type": "function_call", "status": "completed", "call_id": "call_q", "name": "lookup", "arguments": "{\"q\":1}"},
                    {"id": "fc_xyz_3", "type": "function_call", "status": "completed", "call_id": "call_r", "name": "fetch", "arguments": "{\"url\":\"https://e.x/ü\"}"}
                ],
                "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 3}, "output_tokens": 20,
                    "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 30},
                "incomplete_details": null, "error": null})
        );
        let length = json!({"id": "chatcmpl-l", "created": 9, "model": "m", "choices": [{"index": 0, "finish_reason": "length",
            "message": {"role": "assistant", "content": "Once upon a"}}]});
        let r = response_from_chat(&length).unwrap();
        assert_eq!((r["status"].as_str(), r["incomplete_details"].clone()), (Some("incomplete"), json!({"reason": "max_output_tokens"})));
        assert_eq!(r["output"][0]["status"], "incomplete");
        assert_eq!(r["usage"], Value::Null);
        let empty =
            json!({"id": "chatcmpl-e", "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": null}}]});
        assert_eq!(response_from_chat(&empty).unwrap()["output"][0]["content"], json!([{"type": "output_text", "text": "", "annotations": []}]));
        let cited = json!({"id": "c", "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "See [1]",
            "annotations": [{"type": "url_citation", "url_citation": {"start_index": 4, "end_index": 7, "url": "u", "title": "t"}}]}}]});
        assert_eq!(
            response_from_chat(&cited).unwrap()["output"][0]["content"][0]["annotations"],
            json!([{"type": "url_citation", "start_index": 4, "end_index": 7, "url": "u", "title": "t"}])
        );

        let two = json!({"choices": [{"index": 0, "message": {"role": "assistant"}}, {"index": 1, "message": {"role": "assistant"}}]});
        assert_eq!(field(&response_from_chat(&two).unwrap_err()), "response.choices");
        assert_eq!(field(&response_from_chat(&json!({"choices": []})).unwrap_err()), "response.choices");
        assert_eq!(
            field(&response_from_chat(&json!({"choices": [{"message": {"content": 5}}]})).unwrap_err()),
            "response.choices[0].message.content"
        );
    }

    #[test]
    fn responses_response_round_trips() {
        // chat → responses → chat: lossless for this response. Not lossless in general: a
        // chat id/created is kept but item ids are made up, `content: ""` beside tool calls
        // comes back `null`, `{"cached_tokens":0}`-only details are dropped, `n > 1` is refused,
        // vendor message fields and `system_fingerprint` are not carried.
        let chat = chat_response();
        assert_eq!(response_to_chat(&response_from_chat(&chat).unwrap()).unwrap(), chat);

        // responses → chat → responses: lossless when the ids follow the `<kind>_<base>_<index>`
        // scheme and each reasoning item has one summary. Lost: hosted-tool items, several
        // summary parts (joined into one), several output_text parts (joined), item ids, echoed
        // request fields (`tools`, `temperature`, ...).
        let resp = json!({"id": "resp_abc", "object": "response", "created_at": 5, "status": "completed", "model": "gpt-4.1",
            "output": [
                {"id": "rs_abc_0", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Hmm."}]},
                {"id": "msg_abc_1", "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "See [1]", "annotations": [{"type": "url_citation", "start_index": 4, "end_index": 7, "url": "u", "title": "t"}]}]},
                {"id": "fc_abc_2", "type": "function_call", "status": "completed", "call_id": "call_1", "name": "f", "arguments": "{}"}
            ],
            "usage": {"input_tokens": 3, "input_tokens_details": {"cached_tokens": 1}, "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 7},
            "incomplete_details": null, "error": null});
        assert_eq!(response_from_chat(&response_to_chat(&resp).unwrap()).unwrap(), resp);
        let mut inc = resp.clone();
        inc["status"] = json!("incomplete");
        inc["incomplete_details"] = json!({"reason": "max_output_tokens"});
        inc["output"] = json!([{"id": "msg_abc_0", "type": "message", "status": "incomplete", "role": "assistant",
            "content": [{"type": "output_text", "text": "Cut", "annotations": []}]}]);
        assert_eq!(response_from_chat(&response_to_chat(&inc).unwrap()).unwrap(), inc);
    }

    // -- streams ------------------------------------------------------------------------------

    #[test]
    fn responses_encoder_emits_exact_event_sequence_for_text() {
        let c = |delta: Value, finish: Value| {
            json!({"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 7, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut usage = c(json!({}), Value::Null);
        usage["choices"] = json!([]);
        usage["usage"] = json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5});
        let events = encode(&[
            c(json!({"role": "assistant", "content": ""}), Value::Null),
            c(json!({"content": "Hel"}), Value::Null),
            c(json!({"content": "lo"}), Value::Null),
            c(json!({}), json!("stop")),
            usage,
        ]);
        assert_eq!(
            types(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], i, "{e}");
        }
        let skeleton = json!({"id": "chatcmpl-t", "object": "response", "created_at": 7, "status": "in_progress", "model": "m", "output": [],
            "usage": null, "incomplete_details": null, "error": null});
        assert_eq!(events[0], json!({"type": "response.created", "sequence_number": 0, "response": skeleton}));
        assert_eq!(
            events[2],
            json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
            "item": {"id": "msg_t_0", "type": "message", "status": "in_progress", "role": "assistant", "content": []}})
        );
        assert_eq!(
            events[3],
            json!({"type": "response.content_part.added", "sequence_number": 3, "item_id": "msg_t_0", "output_index": 0,
            "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}})
        );
        assert_eq!(
            events[4],
            json!({"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_t_0", "output_index": 0,
            "content_index": 0, "delta": "Hel", "logprobs": []})
        );
        assert_eq!(events[6]["text"], "Hello");
        let done = &events[9]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(
            done["usage"],
            json!({"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 2,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 5})
        );
        assert_eq!(
            done["output"],
            json!([{"id": "msg_t_0", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}])
        );

        // length → response.incomplete with the last item incomplete.
        let events = encode(&[c(json!({"content": "Cut"}), Value::Null), c(json!({}), json!("length"))]);
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(last["response"]["incomplete_details"], json!({"reason": "max_output_tokens"}));
        assert_eq!(last["response"]["output"][0]["status"], "incomplete");
    }

    #[test]
    fn responses_encoder_reasoning_and_function_calls() {
        let c = |delta: Value, finish: Value| json!({"id": "chatcmpl-f", "created": 7, "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        let events = encode(&[
            c(json!({"role": "assistant", "reasoning_content": "Think"}), Value::Null),
            c(json!({"content": "Ok."}), Value::Null),
            c(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\""}}]}),
                Value::Null,
            ),
            c(json!({"tool_calls": [{"index": 0, "id": "", "function": {"arguments": ":1}"}}]}), Value::Null),
            c(json!({}), json!("tool_calls")),
        ]);
        assert_eq!(
            types(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_eq!(
            events[14]["item"],
            json!({"id": "fc_f_2", "type": "function_call", "status": "in_progress", "call_id": "call_1", "name": "f", "arguments": ""})
        );
        assert_eq!(
            events[17],
            json!({"type": "response.function_call_arguments.done", "sequence_number": 17, "item_id": "fc_f_2", "output_index": 2, "name": "f", "arguments": "{\"a\":1}"})
        );

        // Interleaved indices: both calls stay open and each fragment goes to its own item.
        let events = encode(&[
            c(
                json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "a", "arguments": "{\"x\":"}},
                {"index": 1, "id": "call_b", "type": "function", "function": {"name": "b", "arguments": "{"}}]}),
                Value::Null,
            ),
            c(json!({"tool_calls": [{"index": 0, "id": "", "function": {"arguments": "1}"}}]}), Value::Null),
            c(json!({"tool_calls": [{"index": 1, "function": {"arguments": "}"}}]}), Value::Null),
            c(json!({}), json!("tool_calls")),
        ]);
        let deltas: Vec<(&str, &str)> = events
            .iter()
            .filter(|e| e["type"] == "response.function_call_arguments.delta")
            .map(|e| (e["item_id"].as_str().unwrap(), e["delta"].as_str().unwrap()))
            .collect();
        assert_eq!(deltas, [("fc_f_0", "{\"x\":"), ("fc_f_1", "{"), ("fc_f_0", "1}"), ("fc_f_1", "}")]);
        let r = ResponsesRebuilder::rebuild(&events, ResponsesRebuilderConfig::default()).unwrap();
        assert_eq!(r["output"][0]["arguments"], "{\"x\":1}");
        assert_eq!(r["output"][1]["arguments"], "{}");
        assert_eq!((r["output"][0]["call_id"].as_str(), r["output"][1]["call_id"].as_str()), (Some("call_a"), Some("call_b")));

        // Misuse is loud.
        let mut enc = Encoder::new();
        enc.push(&c(json!({"content": "x"}), json!("stop"))).unwrap();
        assert!(matches!(enc.push(&c(json!({"content": "late"}), Value::Null)), Err(Error::Stream { .. })));
        let mut enc = Encoder::new();
        let second = json!({"id": "x", "choices": [{"index": 1, "delta": {"content": "a"}}]});
        assert_eq!(field(&enc.push(&second).unwrap_err()), "chunk.choices[0].index");
        assert_eq!(field(&Encoder::new().push(&json!({"choices": "none"})).unwrap_err()), "chunk.choices");
        assert!(matches!(Encoder::new().finish(), Err(Error::Stream { .. })));
        let mut enc = Encoder::new();
        enc.push(&c(json!({"content": "x"}), Value::Null)).unwrap();
        let err =
            enc.error_event(&Error::RateLimit { message: "slow".into(), status: Some(429), retry_after_ms: None, body: None, provider_code: None });
        assert_eq!(err, json!({"type": "error", "sequence_number": 5, "code": "rate_limit_exceeded", "message": "slow", "param": null}));
    }

    #[test]
    fn responses_encoder_output_rebuilds_to_response_from_chat() {
        let fixtures = [
            chat_response(),
            json!({"id": "chatcmpl-1", "created": 11, "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Plain text answer with ünïcödé and emoji 🎉."}}],
                "usage": {"prompt_tokens": 4, "completion_tokens": 9, "total_tokens": 13, "completion_tokens_details": {"reasoning_tokens": 2}}}),
            json!({"id": "chatcmpl-2", "created": 12, "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": "", "tool_calls": [{"id": "call_z", "type": "function", "function": {"name": "z", "arguments": "{\"deep\":{\"a\":[1,2,{\"b\":\"c\"}]}}"}}]}}]}),
            json!({"id": "chatcmpl-3", "created": 13, "model": "m", "choices": [{"index": 0, "finish_reason": "length",
                "message": {"role": "assistant", "content": "Truncated mid-sent", "reasoning_content": "Long thoughts"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 50, "total_tokens": 51}}),
            json!({"id": "chatcmpl-4", "created": 14, "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "", "reasoning_content": "Only thinking"}}]}),
        ];
        let mut rng = fastrand::Rng::with_seed(0xE4C0DE);
        for (f, fixture) in fixtures.iter().enumerate() {
            for run in 0..40 {
                let chunks = chunk_randomly(&mut rng, fixture);
                let accumulated = accumulate(&chunks);
                let expected = response_from_chat(&accumulated).unwrap();
                let events = encode(&chunks);
                for (i, e) in events.iter().enumerate() {
                    assert_eq!(e["sequence_number"], i);
                }
                let rebuilt = ResponsesRebuilder::rebuild(&events, ResponsesRebuilderConfig::default()).unwrap();
                assert_eq!(rebuilt, expected, "fixture {f} run {run}");
                // Also from the events alone, without the final object's output.
                let mut stripped = events.clone();
                stripped.last_mut().unwrap()["response"]["output"] = json!([]);
                let rebuilt = ResponsesRebuilder::rebuild(&stripped, ResponsesRebuilderConfig::default()).unwrap();
                assert_eq!(rebuilt, expected, "fixture {f} run {run} (events only)");
            }
        }
    }

    #[test]
    fn responses_decoder_turns_events_into_chat_chunks() {
        // An api.openai.com-style stream of the golden response (reasoning, message, call).
        let full = {
            let mut r = responses_response();
            r["output"].as_array_mut().unwrap().remove(1); // no hosted tool in this stream
            r["output"][1]["content"] = json!([{"type": "output_text", "text": "Checking Paris weather.", "annotations": []}]);
            r
        };
        let mut skeleton = full.clone();
        skeleton["status"] = json!("in_progress");
        skeleton["output"] = json!([]);
        skeleton["usage"] = Value::Null;
        let ev = vec![
            json!({"type": "response.created", "response": skeleton}),
            json!({"type": "response.in_progress", "response": skeleton}),
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"id": "rs_1", "type": "reasoning", "summary": []}}),
            json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": "Thinking about "}),
            // The done text is longer than the deltas: the rest is passed on.
            json!({"type": "response.reasoning_summary_text.done", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "text": "Thinking about Paris."}),
            json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "output_index": 0, "summary_index": 1, "part": {"type": "summary_text", "text": ""}}),
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 1, "delta": "Need weather."}),
            json!({"type": "response.output_item.done", "output_index": 0, "item": full["output"][0]}),
            json!({"type": "response.output_item.added", "output_index": 1, "item": {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
            json!({"type": "response.content_part.added", "item_id": "msg_1", "output_index": 1, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
            json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0, "delta": "Checking "}),
            json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0, "delta": "Paris weather."}),
            json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 1, "content_index": 0, "text": "Checking Paris weather."}),
            json!({"type": "response.output_item.done", "output_index": 1, "item": full["output"][1]}),
            json!({"type": "response.output_item.added", "output_index": 2, "item": {"id": "fc_1", "type": "function_call", "status": "in_progress", "call_id": "call_1", "name": "get_weather", "arguments": ""}}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": "{\"city\":"}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": "\"Paris\"}"}),
            json!({"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 2, "arguments": "{\"city\":\"Paris\"}"}),
            json!({"type": "response.output_item.done", "output_index": 2, "item": full["output"][2]}),
            json!({"type": "response.completed", "response": full}),
        ];
        let ev: Vec<Value> = ev
            .into_iter()
            .enumerate()
            .map(|(i, mut e)| {
                e["sequence_number"] = json!(i);
                e
            })
            .collect();
        let chunks = decode(&ev).unwrap();
        assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
        assert!(chunks.iter().all(|c| c["id"] == "resp_abc" && c["object"] == "chat.completion.chunk"));
        let expected = response_to_chat(&full).unwrap();
        let mut got = accumulate(&chunks);
        // The accumulator numbers its tool calls; the rest must match the non-stream conversion.
        got["choices"][0]["message"]["tool_calls"][0].as_object_mut().unwrap().remove("index");
        assert_eq!(got["choices"][0]["message"], expected["choices"][0]["message"]);
        assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(got["usage"], expected["usage"]);
        assert_eq!(
            (got["id"].clone(), got["model"].clone(), got["created"].clone()),
            (expected["id"].clone(), expected["model"].clone(), expected["created"].clone())
        );

        // An upstream that sends only the ending with the whole response gets the same answer.
        let only_end = vec![ev[0].clone(), ev.last().unwrap().clone()];
        let mut got = accumulate(&decode(&only_end).unwrap());
        got["choices"][0]["message"]["tool_calls"][0].as_object_mut().unwrap().remove("index");
        assert_eq!(got["choices"][0]["message"], expected["choices"][0]["message"]);

        // The seed's shapes decode too.
        let seed = [
            json!({"type": "response.output_text.delta", "data": {"delta": "Hello"}}),
            json!({"type": "response.output_text.delta", "data": {"delta": " world!"}}),
            json!({"type": "response.done", "data": {"usage": {"total_tokens": 10}}}),
        ];
        let got = accumulate(&decode(&seed).unwrap());
        assert_eq!(got["choices"][0]["message"]["content"], "Hello world!");
        assert_eq!(got["choices"][0]["finish_reason"], "stop");
        assert_eq!(got["usage"]["total_tokens"], 10);
        let seed = [
            json!({"type": "response.reasoning_summary_text.delta", "data": {"delta": "hmm"}}),
            json!({"type": "response.output_text.delta", "data": {"delta": "Calling."}}),
            json!({"type": "response.tool_call.delta", "data": {"call_id": "call_s", "name": "search", "delta": "{\"q\":"}}),
            json!({"type": "response.function_call_arguments.delta", "data": {"delta": "\"x\"}"}}),
            json!({"type": "response.done", "data": {}}),
        ];
        let got = accumulate(&decode(&seed).unwrap());
        let m = &got["choices"][0]["message"];
        assert_eq!((m["content"].as_str(), m["reasoning_content"].as_str()), (Some("Calling."), Some("hmm")));
        assert_eq!(m["tool_calls"][0]["id"], "call_s");
        assert_eq!(m["tool_calls"][0]["function"], json!({"name": "search", "arguments": "{\"q\":\"x\"}"}));
        assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
        let orphan = [json!({"type": "response.function_call_arguments.delta", "delta": "{"})];
        assert_eq!(field(&decode(&orphan).unwrap_err()), "events[0].item_id");
    }

    #[test]
    fn responses_decoder_errors_are_typed() {
        let created = json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_d", "model": "m", "created_at": 1}});
        let failed = json!({"type": "response.failed", "sequence_number": 1, "response": {"status": "failed", "error": {"code": "server_error", "message": "boom"}}});
        assert!(
            matches!(decode(&[created.clone(), failed]), Err(Error::Provider { status: None, provider_code: Some(c), .. }) if c == "server_error")
        );
        let rl = json!({"type": "error", "sequence_number": 1, "code": "rate_limit_exceeded", "message": "slow"});
        assert!(matches!(decode(&[created.clone(), rl]), Err(Error::RateLimit { .. })));
        assert!(
            matches!(decode(std::slice::from_ref(&created)), Err(Error::Stream { message, .. }) if message.contains("without response.completed"))
        );
        let unknown = json!({"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_x", "delta": "a"});
        let e = decode(&[created.clone(), unknown]).unwrap_err();
        assert_eq!(field(&e), "events[1].item_id");
        assert!(e.to_string().contains("sequence_number 1"), "{e}");
        let back = json!({"type": "response.in_progress", "sequence_number": 0});
        assert_eq!(field(&decode(&[created.clone(), back]).unwrap_err()), "events[1].sequence_number");
        let added = json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": {"id": "m", "type": "message"}});
        let delta = json!({"type": "response.output_text.delta", "sequence_number": 2, "item_id": "m", "delta": "abcdef"});
        let shorter = json!({"type": "response.output_text.done", "sequence_number": 3, "item_id": "m", "text": "abc"});
        assert!(matches!(decode(&[created.clone(), added, delta, shorter]), Err(Error::Stream { .. })));
        assert_eq!(field(&decode(&[json!("text")]).unwrap_err()), "events[0]");
        assert_eq!(field(&decode(&[json!({"type": "nonsense"})]).unwrap_err()), "events[0].type");
    }

    #[test]
    fn responses_encoder_decoder_round_trip() {
        let mut rng = fastrand::Rng::with_seed(42);
        for fixture in [
            chat_response(),
            json!({"id": "chatcmpl-p", "created": 3, "model": "m", "choices": [{"index": 0, "finish_reason": "length",
            "message": {"role": "assistant", "content": "Some text that is cut", "reasoning_content": "why"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}),
        ] {
            for _ in 0..20 {
                let chunks = chunk_randomly(&mut rng, &fixture);
                let back = decode(&encode(&chunks)).unwrap();
                assert_eq!(accumulate(&back), accumulate(&chunks));
            }
        }
    }

    #[test]
    fn responses_error_body_is_the_openai_envelope() {
        let e = Error::Provider {
            message: "upstream said no".into(),
            status: Some(400),
            body: None,
            provider_code: Some("context_length_exceeded".into()),
            retry_after_ms: None,
        };
        assert_eq!(
            error_body(&e),
            json!({"error": {"message": "upstream said no", "type": "invalid_request_error", "param": null, "code": "context_length_exceeded"}})
        );
        let v = Error::validation("input[2].type", "input[2].type: nope");
        assert_eq!(
            error_body(&v),
            json!({"error": {"message": "input[2].type: nope", "type": "invalid_request_error", "param": "input[2].type", "code": "invalid_value"}})
        );
        assert_eq!(error_body(&Error::timeout(crate::TimeoutPhase::Total, 5))["error"]["type"], "timeout_error");
        assert_eq!(error_body(&Error::Internal { message: "x".into() })["error"]["code"], "internal_error");
    }
}
