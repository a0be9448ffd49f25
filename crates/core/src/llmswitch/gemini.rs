//! Gemini `generateContent` / `streamGenerateContent?alt=sse` ⇄ OpenAI Chat.
//!
//! Public pieces (see `llmswitch` for the contract): [`request_to_chat`], [`request_from_chat`],
//! [`response_to_chat`], [`response_from_chat`], [`Decoder`] (Gemini stream fragments → chat
//! chunks), [`Encoder`] (chat chunks → Gemini fragments), [`error_body`] (an [`Error`] as
//! Gemini error JSON) and its inverse [`error_from_body`]. Only the camelCase JSON names that
//! Google's clients send are read (`inlineData`, not `inline_data`).
//!
//! # The model and streaming
//! Gemini puts the model (and the choice between `generateContent` and
//! `streamGenerateContent`) in the URL. For conversion purposes a Gemini request body may carry
//! an optional top-level `"model"` string: it becomes the chat `model`, and
//! [`request_from_chat`] writes the chat `model` there. The caller that sends the body to Google
//! must move it into the URL (`models/{model}:generateContent`) and drop it from the body.
//! `stream` / `stream_options` have no body field in Gemini and are dropped (usage is always
//! sent by Gemini).
//!
//! # Mapping decisions where the protocols do not line up
//! * **System**: `systemInstruction.parts[].text` ⇄ one `system` message (string content for
//!   one part, text parts for several). Every chat `system`/`developer` message, wherever it
//!   stands, is hoisted into `systemInstruction` (one part per text), in order.
//! * **Turns**: `user`/`model` ⇄ `user`/`assistant`; a content without `role` and the legacy
//!   `"function"` role read as `user`. Consecutive user (or assistant) messages stay separate
//!   turns.
//! * **Text**: a user turn with exactly one text part ⇄ string content; several text parts (or
//!   media) ⇄ a part array. Assistant text parts are joined into one string (a model turn
//!   without text part gets `content: null`). In requests, an empty text part is not written
//!   next to other parts (Gemini rejects empty text parameters).
//! * **Media**: `inlineData` image ⇄ `image_url` with a `data:<mime>;base64,` URL; `audio/wav`
//!   and `audio/mp3` ⇄ `input_audio` (`wav`/`mp3`); any other inline mime ⇄ a `file` part with
//!   a `file_data` data URL. `fileData` ⇄ `image_url` with the plain URI; on the way back the
//!   `mimeType` is guessed from the URI's extension and left out when it cannot be. Images in
//!   model turns / responses (image generation) ⇄ the assistant message's `images` array
//!   (OpenRouter's convention, `[{type:"image_url", image_url:{url}}]`).
//! * **Function calls**: `functionCall` parts ⇄ assistant `tool_calls` (`args` object ⇄
//!   `arguments` JSON text). A call without `id` gets the stable id `call_<k>_<name>`, where
//!   `k` counts the function calls of the whole conversation (requests), of the candidate
//!   (responses) or of the candidate's stream (streams); an id of exactly that form is left out
//!   again on the way back, so `gemini → chat → gemini` keeps id-less calls id-less. Other ids
//!   are written as `functionCall.id` / `functionResponse.id`. A part's `thoughtSignature` ⇄
//!   the tool call's `extra_content.google.thought_signature` (the field Google's own OpenAI
//!   endpoint uses), so Gemini 3 signatures survive a chat client.
//! * **Function responses**: `functionResponse` parts ⇄ `role:"tool"` messages. The tool call
//!   id is the response's `id` when present, else the first not yet answered call of the same
//!   name (in conversation order). A user turn's `functionResponse` parts become tool messages
//!   placed *before* a user message holding its other parts; on the way back consecutive tool
//!   messages form one user turn, and a user message right after them joins that turn. The
//!   `functionResponse.name` comes from the answered call (or the tool message's `name`); a
//!   `functionResponse` whose `id` answers no call in the request keeps its name as the tool
//!   message's `name`, so it converts back.
//!   `response` must be an object: tool content that is a JSON object is sent as that object;
//!   anything else (plain text, arrays, numbers, and the ambiguous `{"content": "<string>"}`)
//!   is wrapped as `{"content": "<text>"}`. On the way back a response that is exactly
//!   `{"content": <string>}` is unwrapped to that string; any other object becomes its JSON
//!   text.
//! * **Tools**: `functionDeclarations` ⇄ `{type:"function", function:{name, description,
//!   parameters}}` (all declarations go into one Gemini tool object). Gemini schema type names
//!   (`OBJECT`) are lower-cased for chat; `parametersJsonSchema` becomes `parameters`. Chat
//!   JSON Schemas are reduced to the OpenAPI subset Gemini's `parameters` accepts: `type: [T,
//!   "null"]` → `type: T, nullable: true`, `const` → one-value `enum`, `oneOf` → `anyOf`,
//!   string `format`s other than `enum`/`date-time` and unknown keywords
//!   (`additionalProperties`, `$schema`, `$ref`, …) are dropped. Tools other than
//!   `functionDeclarations` (`googleSearch`, `codeExecution`, …) have no chat form: a
//!   Validation error.
//! * **Tool choice**: `AUTO`/`VALIDATED` ⇄ `"auto"`, `ANY` ⇄ `"required"`, `NONE` ⇄ `"none"`,
//!   `ANY` + one allowed name ⇄ `{type:"function", function:{name}}`, `AUTO`/`ANY` + several
//!   names ⇄ `{type:"allowed_tools", allowed_tools:{mode:"auto"|"required", tools}}`.
//! * **Generation config**: `temperature`, `topP`⇄`top_p`, `topK`⇄`top_k`,
//!   `maxOutputTokens`⇄`max_tokens` (`max_completion_tokens` is read too), `stopSequences`⇄`stop`
//!   (a string `stop` becomes a one-item list), `candidateCount`⇄`n`, `seed`,
//!   `presencePenalty`/`frequencyPenalty`, `responseLogprobs`⇄`logprobs`, `logprobs`⇄
//!   `top_logprobs`. `responseMimeType: application/json` ⇄ `response_format: json_object`,
//!   plus `responseSchema` (or `responseJsonSchema`) ⇄ `json_schema` (named `"response"`),
//!   `text/plain` ⇄ `{type:"text"}`. `thinkingConfig` ⇄ `reasoning_effort`: budget 0 ⇄ `none`,
//!   1–512 ⇄ `minimal` (512), ≤1024 ⇄ `low` (1024), ≤8192 ⇄ `medium` (8192), more ⇄ `high`
//!   (24576); `thinkingLevel` becomes the effort of the same name. The Qwen-style chat
//!   extensions `thinking_budget` (exact budget) and `enable_thinking` (`includeThoughts`) are
//!   read too. Chat `safetySettings` / `cachedContent` / `labels` pass through to Gemini.
//! * **Responses**: `responseId` ⇄ `id` (a `chatcmpl-…` id is made when absent), `modelVersion`
//!   ⇄ `model`, `createTime` → `created` (now when absent), candidates ⇄ choices by `index`,
//!   `thought:true` parts ⇄ `reasoning_content`.
//! * **Finish reasons**: `STOP` → `stop` (`tool_calls` when the candidate has function calls),
//!   `MAX_TOKENS` → `length`, `SAFETY`, `RECITATION`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII`
//!   and the `IMAGE_*` filters → `content_filter`, anything else → `stop`/`tool_calls`. Back:
//!   `stop`/`tool_calls`/`function_call` → `STOP`, `length` → `MAX_TOKENS`, `content_filter` →
//!   `SAFETY`, others → `OTHER`. A Gemini reason that would not come back the same is kept in
//!   the choice as `native_finish_reason` (OpenRouter's field) and preferred on the way back.
//!   A prompt blocked by `promptFeedback.blockReason` (no candidates) becomes one
//!   `content_filter` choice with `content: null`.
//! * **Usage**: `promptTokenCount` ⇄ `prompt_tokens`, `candidatesTokenCount + thoughtsTokenCount`
//!   ⇄ `completion_tokens` (OpenAI counts reasoning in the completion), `totalTokenCount` ⇄
//!   `total_tokens`, `thoughtsTokenCount` ⇄ `completion_tokens_details.reasoning_tokens`,
//!   `cachedContentTokenCount` ⇄ `prompt_tokens_details.cached_tokens`. Zero counts are left out
//!   on the Gemini side, as Gemini (proto3 JSON) does.
//! * **Streams**: each Gemini fragment part becomes one chunk (the first chunk of a candidate
//!   carries `role`); a function call arrives whole and becomes one tool-call chunk with id,
//!   name and the full arguments; `finish_reason` rides on the candidate's last chunk of the
//!   fragment, and usage (the latest `usageMetadata`) on the chunk that finishes the last
//!   candidate, or in a `choices: []` chunk when it comes later. The encoder writes text as
//!   `{text}` parts, reasoning as `{thought:true, text}`, buffers tool calls per index until
//!   their arguments are complete (the choice's finish chunk, or a chunk for another index once
//!   the buffered text parses as a JSON object) and then writes one `functionCall` part with
//!   parsed `args` (cut-off JSON is repaired by closing strings/arrays/objects; what cannot be
//!   repaired is a Validation error naming the tool call's index:
//!   `choices[0].delta.tool_calls[<index>].function.arguments`). The fragment with
//!   `finishReason` is held until usage arrives (a separate `choices: []` chunk) or the stream
//!   ends, so `finishReason` and `usageMetadata` are on the last fragment.
//! * **Errors**: see [`error_body`] / [`error_from_body`]. An error envelope given to
//!   [`response_to_chat`] or the [`Decoder`] is returned as that `Err`.
//!
//! # What is lossy
//! * gemini → chat: `safetySettings`, `cachedContent`, `labels`, `toolConfig.retrievalConfig`,
//!   `thinkingConfig.includeThoughts` and a dynamic (`-1`) budget, exact budgets (bucketed into
//!   an effort), `thinkingLevel` (comes back as a budget), `VALIDATED` mode (comes back as
//!   `AUTO`), generation fields without a chat equivalent (`responseModalities`,
//!   `speechConfig`, `mediaResolution`, …), part metadata (`videoMetadata`, text parts'
//!   `thoughtSignature`), `functionResponse` extras (`willContinue`, `scheduling`, multimodal
//!   `parts`), `promptFeedback`/`safetyRatings`/`citationMetadata`/`avgLogprobs`,
//!   `toolUsePromptTokenCount` and per-modality token details, `usageMetadata` of intermediate
//!   stream fragments (only the latest is kept). Part order inside a model turn (thoughts
//!   first, then text, media, calls), text-part boundaries in model turns (joined), separate
//!   `tools` objects (merged), `content` roles left out (become `user`), `fileData.mimeType`
//!   that the URI's extension does not reveal, a user turn with text before its
//!   `functionResponse` parts (reordered), a separate user turn right after a
//!   `functionResponse` turn (joins it on the way back), a `functionCall.id` that happens to
//!   have the generated form `call_<k>_<name>` (left out on the way back), and a
//!   `functionResponse.response` of the form `{"content": "<JSON object text>"}` (comes back
//!   as that object).
//! * chat → gemini: `stream`/`stream_options`, `name` on user messages, `image_url.detail`,
//!   `file.filename`, `input_audio` formats other than wav/mp3 (a `file` part on the way back),
//!   the position of system messages (hoisted) and `developer` (becomes `system`), several
//!   system messages (one `systemInstruction`), text-part boundaries of assistant and tool
//!   messages (joined), `refusal` (joined into the text), assistant `content: ""` beside tool
//!   calls in requests (`null` on the way back), tool `strict` and JSON-Schema keywords outside
//!   Gemini's subset, `json_schema.name`/`strict`, `max_completion_tokens` (comes back as
//!   `max_tokens`), `xhigh` effort and the Qwen `thinking_budget`/`enable_thinking` (come back
//!   as an effort), `parallel_tool_calls`, `user`, `metadata`, `store`, `logit_bias`,
//!   `service_tier`, whitespace inside JSON tool results and arguments, `system_fingerprint`,
//!   `logprobs` content in responses, finish reasons other than the four standard ones (→
//!   `OTHER`), zero usage details, `created` (Gemini has no such field; it is "now" again on
//!   the way back).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{StreamDecoder, StreamEncoder};
use crate::error::{Error, Result};
use crate::model::{generated_id, now_secs};
use crate::validate::{describe, invalid};

type Obj = Map<String, Value>;

// =============================================================================================
// Small helpers: paths and typed field access (null = absent)
// =============================================================================================

fn at(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

fn nth(base: &str, i: impl std::fmt::Display) -> String {
    format!("{base}[{i}]")
}

fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Obj> {
    v.as_object().ok_or_else(|| invalid(path, "an object", Some(v)))
}

fn get<'a>(m: &'a Obj, k: &str) -> Option<&'a Value> {
    m.get(k).filter(|v| !v.is_null())
}

fn opt_str<'a>(m: &'a Obj, k: &str, path: &str) -> Result<Option<&'a str>> {
    match get(m, k) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(o) => Err(invalid(&at(path, k), "a string", Some(o))),
    }
}

fn req_str<'a>(m: &'a Obj, k: &str, path: &str) -> Result<&'a str> {
    match opt_str(m, k, path)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(invalid(&at(path, k), "a non-empty string", get(m, k))),
    }
}

fn opt_arr<'a>(m: &'a Obj, k: &str, path: &str) -> Result<Option<&'a Vec<Value>>> {
    match get(m, k) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(o) => Err(invalid(&at(path, k), "an array", Some(o))),
    }
}

fn req_arr<'a>(m: &'a Obj, k: &str, path: &str) -> Result<&'a Vec<Value>> {
    opt_arr(m, k, path)?.ok_or_else(|| invalid(&at(path, k), "an array", None))
}

fn opt_obj<'a>(m: &'a Obj, k: &str, path: &str) -> Result<Option<&'a Obj>> {
    match get(m, k) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(o) => Err(invalid(&at(path, k), "an object", Some(o))),
    }
}

fn req_obj<'a>(m: &'a Obj, k: &str, path: &str) -> Result<&'a Obj> {
    opt_obj(m, k, path)?.ok_or_else(|| invalid(&at(path, k), "an object", None))
}

fn opt_bool(m: &Obj, k: &str, path: &str) -> Result<Option<bool>> {
    match get(m, k) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(o) => Err(invalid(&at(path, k), "a boolean", Some(o))),
    }
}

fn opt_num<'a>(m: &'a Obj, k: &str, path: &str) -> Result<Option<&'a Value>> {
    match get(m, k) {
        None => Ok(None),
        Some(v @ Value::Number(_)) => Ok(Some(v)),
        Some(o) => Err(invalid(&at(path, k), "a number", Some(o))),
    }
}

fn opt_uint(m: &Obj, k: &str, path: &str) -> Result<Option<u64>> {
    match get(m, k) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| invalid(&at(path, k), "a non-negative integer", Some(v))),
    }
}

fn opt_int(m: &Obj, k: &str, path: &str) -> Result<Option<i64>> {
    match get(m, k) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| invalid(&at(path, k), "an integer", Some(v))),
    }
}

fn str_list(m: &Obj, k: &str, path: &str) -> Result<Option<Vec<String>>> {
    let Some(a) = opt_arr(m, k, path)? else { return Ok(None) };
    a.iter()
        .enumerate()
        .map(|(i, v)| v.as_str().map(String::from).ok_or_else(|| invalid(&nth(&at(path, k), i), "a string", Some(v))))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

fn non_empty(s: &&str) -> bool {
    !s.is_empty()
}

/// The stable id of a function call that came without one.
fn call_id(k: usize, name: &str) -> String {
    format!("call_{k}_{name}")
}

// =============================================================================================
// Tool-call arguments: parsing and repair
// =============================================================================================

/// Closes what a cut-off JSON text left open (a string, arrays, objects), drops a trailing
/// comma and completes a dangling `"key":` with `null`. `None` when the brackets do not match.
fn repair_json(t: &str) -> Option<String> {
    let mut stack = Vec::new();
    let (mut in_str, mut esc) = (false, false);
    for c in t.chars() {
        if in_str {
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' => stack.push('}'),
            '[' => stack.push(']'),
            '}' | ']' if stack.pop() != Some(c) => return None,
            _ => {}
        }
    }
    let mut s = t.to_string();
    if in_str {
        if esc {
            s.pop();
        }
        s.push('"');
    }
    loop {
        let len = s.trim_end().len();
        s.truncate(len);
        if s.ends_with(',') {
            s.pop();
        } else {
            break;
        }
    }
    if s.ends_with(':') {
        s.push_str("null");
    }
    while let Some(c) = stack.pop() {
        s.push(c);
    }
    Some(s)
}

/// Arguments text → the `args` object. Blank text is `{}`; cut-off JSON is repaired.
fn parse_args(text: &str, path: &str, what: &str) -> Result<Value> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(Value::Object(Obj::new()));
    }
    let v = match serde_json::from_str::<Value>(t) {
        Ok(v) => v,
        Err(e) => repair_json(t).and_then(|r| serde_json::from_str::<Value>(&r).ok()).ok_or_else(|| {
            Error::validation(path, format!("{what}: {path} is not valid JSON ({e}): {}", describe(Some(&Value::String(t.to_string())))))
        })?,
    };
    if v.is_object() {
        Ok(v)
    } else {
        Err(Error::validation(path, format!("{what}: {path} must be a JSON object, got {}", describe(Some(&v)))))
    }
}

/// `function.arguments` of a chat tool call (text, or an object some providers send).
fn args_value(v: Option<&Value>, path: &str, what: &str) -> Result<Value> {
    match v {
        None => Ok(Value::Object(Obj::new())),
        Some(Value::String(s)) => parse_args(s, path, what),
        Some(o @ Value::Object(_)) => Ok(o.clone()),
        Some(o) => Err(invalid(path, "a JSON object text", Some(o))),
    }
}

// =============================================================================================
// Tool results: functionResponse.response ⇄ tool message content
// =============================================================================================

fn is_content_wrapper(o: &Obj) -> bool {
    o.len() == 1 && o.get("content").is_some_and(Value::is_string)
}

/// Tool message text → `functionResponse.response` (always an object).
fn response_from_tool_content(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) if !is_content_wrapper(&o) => Value::Object(o),
        _ => json!({ "content": text }),
    }
}

/// `functionResponse.response` → tool message text.
fn tool_content_from_response(r: &Value) -> String {
    match r {
        Value::Object(o) if is_content_wrapper(o) => o["content"].as_str().unwrap_or_default().to_string(),
        other => other.to_string(),
    }
}

// =============================================================================================
// Media
// =============================================================================================

/// `data:<mime>[;params];base64,<data>` → (mime, data).
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mut segs = meta.split(';');
    let mime = segs.next().unwrap_or_default();
    if !segs.any(|s| s.eq_ignore_ascii_case("base64")) {
        return None;
    }
    Some((if mime.is_empty() { "application/octet-stream" } else { mime }, data))
}

fn guess_mime(uri: &str) -> Option<&'static str> {
    let path = uri.split(['?', '#']).next()?;
    let last = path.rsplit('/').next()?;
    let (_, ext) = last.rsplit_once('.')?;
    Some(match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "mov" => "video/mov",
        "webm" => "video/webm",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "txt" => "text/plain",
        "html" => "text/html",
        "csv" => "text/csv",
        _ => return None,
    })
}

fn image_url_part(url: String) -> Value {
    json!({"type": "image_url", "image_url": {"url": url}})
}

/// `inlineData` → a chat content part.
fn inline_to_chat(d: &Obj, path: &str) -> Result<Value> {
    let mime = req_str(d, "mimeType", path)?;
    let data = req_str(d, "data", path)?;
    Ok(if mime.starts_with("image/") {
        image_url_part(format!("data:{mime};base64,{data}"))
    } else if let Some(format) = match mime {
        "audio/wav" => Some("wav"),
        "audio/mp3" => Some("mp3"),
        _ => None,
    } {
        json!({"type": "input_audio", "input_audio": {"data": data, "format": format}})
    } else {
        json!({"type": "file", "file": {"file_data": format!("data:{mime};base64,{data}")}})
    })
}

/// `fileData` → an `image_url` part with the URI.
fn file_to_chat(d: &Obj, path: &str) -> Result<Value> {
    opt_str(d, "mimeType", path)?;
    Ok(image_url_part(req_str(d, "fileUri", path)?.to_string()))
}

/// A media part of a model turn → an entry of the assistant's `images`.
fn model_media_to_chat(part: &Part, path: &str) -> Result<Value> {
    match part {
        Part::Inline(d) => {
            let p = at(path, "inlineData");
            Ok(image_url_part(format!("data:{};base64,{}", req_str(d, "mimeType", &p)?, req_str(d, "data", &p)?)))
        }
        Part::File(d) => file_to_chat(d, &at(path, "fileData")),
        _ => unreachable!("only media parts"),
    }
}

/// A URL of a chat part → `inlineData` (data URL) or `fileData`.
fn url_to_part(url: &str, path: &str) -> Result<Value> {
    if url.starts_with("data:") {
        let (mime, data) = parse_data_url(url).ok_or_else(|| {
            Error::validation(path, format!("{path} must be a base64 data URL (data:<mime>;base64,<data>) or a plain URL"))
        })?;
        Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
    } else if url.is_empty() {
        Err(invalid(path, "a non-empty URL", Some(&Value::String(String::new()))))
    } else {
        let mut fd = Obj::new();
        if let Some(mime) = guess_mime(url) {
            fd.insert("mimeType".into(), mime.into());
        }
        fd.insert("fileUri".into(), url.into());
        Ok(json!({ "fileData": fd }))
    }
}

/// One chat content part → one Gemini part.
fn chat_part_to_gemini(p: &Value, path: &str) -> Result<Value> {
    let pm = as_obj(p, path)?;
    let kind = req_str(pm, "type", path)?;
    match kind {
        "text" | "input_text" | "output_text" => Ok(json!({"text": opt_str(pm, "text", path)?.unwrap_or_default()})),
        "refusal" => Ok(json!({"text": opt_str(pm, "refusal", path)?.unwrap_or_default()})),
        "image_url" => {
            let ip = at(path, "image_url");
            match get(pm, "image_url") {
                Some(Value::String(s)) => url_to_part(s, &ip),
                Some(Value::Object(o)) => url_to_part(req_str(o, "url", &ip)?, &at(&ip, "url")),
                other => Err(invalid(&ip, "an object with a url", other)),
            }
        }
        "input_audio" => {
            let ap = at(path, "input_audio");
            let a = req_obj(pm, "input_audio", path)?;
            let data = req_str(a, "data", &ap)?;
            let format = req_str(a, "format", &ap)?;
            Ok(json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}))
        }
        "file" => {
            let fp = at(path, "file");
            let f = req_obj(pm, "file", path)?;
            match opt_str(f, "file_data", &fp)? {
                Some(d) => url_to_part(d, &at(&fp, "file_data")),
                None => Err(Error::validation(
                    at(&fp, "file_data"),
                    format!("{fp} needs file_data (a base64 data URL): a file_id cannot be sent to Gemini"),
                )),
            }
        }
        other => Err(Error::validation(
            at(path, "type"),
            format!("{path}.type {other:?} cannot be converted to Gemini (supported: text, image_url, input_audio, file)"),
        )),
    }
}

// =============================================================================================
// Parts
// =============================================================================================

enum Part<'a> {
    Text(&'a str, bool),
    Inline(&'a Obj),
    File(&'a Obj),
    Call(&'a Obj),
    Response(&'a Obj),
    /// Only metadata (`thoughtSignature`, `videoMetadata`, ...).
    Empty,
}

const PART_METADATA: [&str; 5] = ["thought", "thoughtSignature", "partMetadata", "videoMetadata", "mediaResolution"];

fn classify_part<'a>(p: &'a Value, path: &str) -> Result<Part<'a>> {
    let m = as_obj(p, path)?;
    for (key, make) in [
        ("functionCall", Part::Call as fn(&'a Obj) -> Part<'a>),
        ("functionResponse", Part::Response),
        ("inlineData", Part::Inline),
        ("fileData", Part::File),
    ] {
        if let Some(o) = opt_obj(m, key, path)? {
            return Ok(make(o));
        }
    }
    if let Some(t) = opt_str(m, "text", path)? {
        return Ok(Part::Text(t, opt_bool(m, "thought", path)?.unwrap_or(false)));
    }
    match m.iter().find(|(k, v)| !v.is_null() && !PART_METADATA.contains(&k.as_str())) {
        Some((k, _)) => Err(Error::validation(
            path,
            format!("{path} has an unsupported part kind {k:?} (supported: text, inlineData, fileData, functionCall, functionResponse)"),
        )),
        None => Ok(Part::Empty),
    }
}

fn thought_signature<'a>(p: &'a Value, path: &str) -> Result<Option<&'a str>> {
    p.as_object().map_or(Ok(None), |m| opt_str(m, "thoughtSignature", path))
}

/// A `functionCall` → a chat tool call; `assign` turns (id, name) into the id to use.
fn function_call_to_chat(
    fc: &Obj,
    path: &str,
    signature: Option<&str>,
    assign: &mut dyn FnMut(Option<&str>, &str) -> String,
) -> Result<Value> {
    let name = req_str(fc, "name", path)?;
    let args = match get(fc, "args") {
        None => "{}".to_string(),
        Some(v @ Value::Object(_)) => v.to_string(),
        Some(o) => return Err(invalid(&at(path, "args"), "an object", Some(o))),
    };
    let id = assign(opt_str(fc, "id", path)?.filter(non_empty), name);
    let mut tc = json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}});
    if let Some(sig) = signature {
        tc["extra_content"] = json!({"google": {"thought_signature": sig}});
    }
    Ok(tc)
}

/// What a model turn / candidate says, in chat terms.
#[derive(Default)]
struct ModelTurn {
    text: Option<String>,
    reasoning: Option<String>,
    tool_calls: Vec<Value>,
    images: Vec<Value>,
}

impl ModelTurn {
    fn read(parts: &[Value], path: &str, assign: &mut dyn FnMut(Option<&str>, &str) -> String) -> Result<ModelTurn> {
        let mut t = ModelTurn::default();
        for (j, p) in parts.iter().enumerate() {
            let pp = nth(path, j);
            match classify_part(p, &pp)? {
                Part::Text(s, true) => t.reasoning.get_or_insert_with(String::new).push_str(s),
                Part::Text(s, false) => t.text.get_or_insert_with(String::new).push_str(s),
                part @ (Part::Inline(_) | Part::File(_)) => t.images.push(model_media_to_chat(&part, &pp)?),
                Part::Call(fc) => {
                    let sig = thought_signature(p, &pp)?;
                    t.tool_calls.push(function_call_to_chat(fc, &at(&pp, "functionCall"), sig, assign)?)
                }
                Part::Response(_) => {
                    return Err(Error::validation(
                        at(&pp, "functionResponse"),
                        format!("{pp}: functionResponse parts belong in user turns, not in model output"),
                    ))
                }
                Part::Empty => {}
            }
        }
        Ok(t)
    }

    fn into_message(self) -> Value {
        let mut m = Obj::new();
        m.insert("role".into(), "assistant".into());
        m.insert("content".into(), self.text.map_or(Value::Null, Value::String));
        if let Some(r) = self.reasoning {
            m.insert("reasoning_content".into(), r.into());
        }
        if !self.tool_calls.is_empty() {
            m.insert("tool_calls".into(), Value::Array(self.tool_calls));
        }
        if !self.images.is_empty() {
            m.insert("images".into(), Value::Array(self.images));
        }
        Value::Object(m)
    }
}

/// Function calls of a conversation, to pair them with their responses.
#[derive(Default)]
struct CallLedger {
    calls: Vec<LedgerCall>,
    count: usize,
}

struct LedgerCall {
    id: String,
    name: String,
    answered: bool,
    /// The id is the generated `call_<k>_<name>` (left out on the Gemini side).
    implicit: bool,
}

impl CallLedger {
    fn record(&mut self, id: Option<&str>, name: &str) -> (String, bool) {
        let generated = call_id(self.count, name);
        self.count += 1;
        let (id, implicit) = match id.filter(non_empty) {
            Some(id) => (id.to_string(), id == generated),
            None => (generated, true),
        };
        self.calls.push(LedgerCall { id: id.clone(), name: name.to_string(), answered: false, implicit });
        (id, implicit)
    }

    fn first_open_by_name(&self, name: &str) -> Option<usize> {
        self.calls.iter().position(|c| !c.answered && c.name == name)
    }

    fn by_id(&self, id: &str) -> Option<usize> {
        self.calls.iter().position(|c| !c.answered && c.id == id).or_else(|| self.calls.iter().position(|c| c.id == id))
    }
}

// =============================================================================================
// JSON schemas
// =============================================================================================

const SCHEMA_CHILD: [&str; 2] = ["items", "not"];
const SCHEMA_LIST: [&str; 4] = ["anyOf", "oneOf", "allOf", "prefixItems"];
const SCHEMA_MAP: [&str; 4] = ["properties", "$defs", "definitions", "patternProperties"];

/// Gemini schema → JSON Schema: upper-case type names (`OBJECT`) become lower-case.
fn schema_to_chat(v: &Value) -> Value {
    let Value::Object(m) = v else { return v.clone() };
    let mut out = Obj::new();
    for (k, x) in m {
        let k_ = k.as_str();
        let y = match x {
            Value::String(s) if k_ == "type" => Value::String(s.to_ascii_lowercase()),
            Value::Array(a) if k_ == "type" => {
                Value::Array(a.iter().map(|t| t.as_str().map_or(t.clone(), |s| Value::String(s.to_ascii_lowercase()))).collect())
            }
            _ if SCHEMA_CHILD.contains(&k_) => schema_to_chat(x),
            Value::Array(a) if SCHEMA_LIST.contains(&k_) => Value::Array(a.iter().map(schema_to_chat).collect()),
            Value::Object(props) if SCHEMA_MAP.contains(&k_) => {
                Value::Object(props.iter().map(|(n, s)| (n.clone(), schema_to_chat(s))).collect())
            }
            other => other.clone(),
        };
        out.insert(k.clone(), y);
    }
    Value::Object(out)
}

const GEMINI_SCHEMA_KEYS: [&str; 19] = [
    "description",
    "title",
    "nullable",
    "enum",
    "required",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "example",
    "default",
    "propertyOrdering",
    "format",
    "type",
];

/// JSON Schema → the OpenAPI subset Gemini's `parameters` / `responseSchema` accept.
fn schema_to_gemini(v: &Value) -> Value {
    let Value::Object(m) = v else { return v.clone() };
    let mut out = Obj::new();
    for (k, x) in m {
        match (k.as_str(), x) {
            ("type", Value::Array(types)) => {
                let real: Vec<&Value> = types.iter().filter(|t| t.as_str() != Some("null")).collect();
                if real.len() < types.len() {
                    out.insert("nullable".into(), true.into());
                }
                if let Some(t) = real.first() {
                    out.insert("type".into(), (*t).clone());
                }
            }
            ("format", Value::String(f)) => {
                let string_type = m.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("string"));
                if !string_type || f == "enum" || f == "date-time" {
                    out.insert(k.clone(), x.clone());
                }
            }
            ("const", c) => {
                out.insert("enum".into(), json!([c]));
            }
            ("properties", Value::Object(props)) => {
                out.insert(k.clone(), Value::Object(props.iter().map(|(n, s)| (n.clone(), schema_to_gemini(s))).collect()));
            }
            ("items", s) => {
                out.insert(k.clone(), schema_to_gemini(s));
            }
            ("anyOf" | "oneOf", Value::Array(list)) => {
                out.insert("anyOf".into(), Value::Array(list.iter().map(schema_to_gemini).collect()));
            }
            (key, _) if GEMINI_SCHEMA_KEYS.contains(&key) => {
                out.insert(k.clone(), x.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

// =============================================================================================
// Requests: Gemini → chat
// =============================================================================================

/// A Gemini `GenerateContentRequest` (plus an optional top-level `model`) → a chat request.
pub fn request_to_chat(body: &Value) -> Result<Value> {
    let b = as_obj(body, "request")?;
    let mut out = Obj::new();
    if let Some(m) = opt_str(b, "model", "")? {
        out.insert("model".into(), m.into());
    }
    let mut messages = Vec::new();
    if let Some(si) = get(b, "systemInstruction") {
        messages.extend(system_to_chat(si)?);
    }
    let mut ledger = CallLedger::default();
    for (i, c) in req_arr(b, "contents", "")?.iter().enumerate() {
        content_to_chat(c, &nth("contents", i), &mut ledger, &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(tools) = opt_arr(b, "tools", "")? {
        let tools = tools_to_chat(tools)?;
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(tc) = opt_obj(b, "toolConfig", "")? {
        if let Some(choice) = tool_config_to_chat(tc)? {
            out.insert("tool_choice".into(), choice);
        }
    }
    if let Some(gc) = opt_obj(b, "generationConfig", "")? {
        generation_config_to_chat(gc, &mut out)?;
    }
    Ok(Value::Object(out))
}

fn system_to_chat(si: &Value) -> Result<Option<Value>> {
    let texts: Vec<&str> = match si {
        Value::String(s) => vec![s.as_str()],
        Value::Object(m) => {
            let path = "systemInstruction.parts";
            req_arr(m, "parts", "systemInstruction")?
                .iter()
                .enumerate()
                .map(|(j, p)| {
                    let pp = nth(path, j);
                    match get(as_obj(p, &pp)?, "text") {
                        Some(Value::String(s)) => Ok(s.as_str()),
                        other => Err(invalid(&at(&pp, "text"), "a string (systemInstruction takes text parts only)", other)),
                    }
                })
                .collect::<Result<_>>()?
        }
        other => return Err(invalid("systemInstruction", "an object with parts", Some(other))),
    };
    Ok(match texts.as_slice() {
        [] => None,
        [one] => Some(json!({"role": "system", "content": one})),
        many => Some(json!({"role": "system", "content": many.iter().map(|t| json!({"type": "text", "text": t})).collect::<Vec<_>>()})),
    })
}

fn content_to_chat(c: &Value, path: &str, ledger: &mut CallLedger, out: &mut Vec<Value>) -> Result<()> {
    let m = as_obj(c, path)?;
    let role = opt_str(m, "role", path)?.unwrap_or("user");
    let parts = req_arr(m, "parts", path)?;
    let pp = at(path, "parts");
    match role {
        "model" => {
            let mut assign = |id: Option<&str>, name: &str| ledger.record(id, name).0;
            out.push(ModelTurn::read(parts, &pp, &mut assign)?.into_message());
        }
        "user" | "function" => user_parts_to_chat(parts, &pp, ledger, out)?,
        other => {
            return Err(Error::validation(at(path, "role"), format!("{path}.role must be \"user\" or \"model\", got {other:?}")));
        }
    }
    Ok(())
}

fn user_parts_to_chat(parts: &[Value], path: &str, ledger: &mut CallLedger, out: &mut Vec<Value>) -> Result<()> {
    let mut tools = Vec::new();
    let mut content = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let pp = nth(path, j);
        match classify_part(p, &pp)? {
            Part::Text(_, true) => {
                return Err(Error::validation(at(&pp, "thought"), format!("{pp}: thought parts belong in model turns")));
            }
            Part::Text(s, false) => content.push(json!({"type": "text", "text": s})),
            Part::Inline(d) => content.push(inline_to_chat(d, &at(&pp, "inlineData"))?),
            Part::File(d) => content.push(file_to_chat(d, &at(&pp, "fileData"))?),
            Part::Response(fr) => tools.push(function_response_to_chat(fr, &at(&pp, "functionResponse"), ledger)?),
            Part::Call(_) => {
                return Err(Error::validation(at(&pp, "functionCall"), format!("{pp}: functionCall parts belong in model turns")));
            }
            Part::Empty => {}
        }
    }
    let only_tools = !tools.is_empty() && content.is_empty();
    out.extend(tools);
    if !only_tools {
        let content = match content.as_slice() {
            [] => Value::String(String::new()),
            [one] if one["type"] == "text" => one["text"].clone(),
            _ => Value::Array(content),
        };
        out.push(json!({"role": "user", "content": content}));
    }
    Ok(())
}

fn function_response_to_chat(fr: &Obj, path: &str, ledger: &mut CallLedger) -> Result<Value> {
    let name = req_str(fr, "name", path)?;
    // A response whose id answers no call we saw keeps its name on the tool message, so the
    // way back can still name the functionResponse.
    let mut orphan = false;
    let tool_call_id = match opt_str(fr, "id", path)?.filter(non_empty) {
        Some(id) => {
            match ledger.by_id(id) {
                Some(k) => ledger.calls[k].answered = true,
                None => orphan = true,
            }
            id.to_string()
        }
        None => match ledger.first_open_by_name(name) {
            Some(k) => {
                ledger.calls[k].answered = true;
                ledger.calls[k].id.clone()
            }
            None => {
                return Err(Error::validation(
                    path,
                    format!("{path} ({name:?}) answers no earlier unanswered functionCall of that name; give it the call's id"),
                ))
            }
        },
    };
    let content = get(fr, "response").map_or_else(|| "{}".to_string(), tool_content_from_response);
    let mut msg = json!({"role": "tool", "tool_call_id": tool_call_id, "content": content});
    if orphan {
        msg["name"] = name.into();
    }
    Ok(msg)
}

fn tools_to_chat(tools: &[Value]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let path = nth("tools", i);
        for (k, v) in as_obj(t, &path)? {
            if v.is_null() {
                continue;
            }
            let kp = at(&path, k);
            if k != "functionDeclarations" {
                return Err(Error::validation(
                    kp.clone(),
                    format!("{kp} cannot be converted to OpenAI chat: only functionDeclarations tools are supported"),
                ));
            }
            let decls = v.as_array().ok_or_else(|| invalid(&kp, "an array", Some(v)))?;
            for (j, d) in decls.iter().enumerate() {
                let dp = nth(&kp, j);
                let dm = as_obj(d, &dp)?;
                let mut f = Obj::new();
                f.insert("name".into(), req_str(dm, "name", &dp)?.into());
                if let Some(desc) = opt_str(dm, "description", &dp)? {
                    f.insert("description".into(), desc.into());
                }
                if let Some(p) = get(dm, "parameters") {
                    f.insert("parameters".into(), schema_to_chat(p));
                } else if let Some(p) = get(dm, "parametersJsonSchema") {
                    f.insert("parameters".into(), p.clone());
                }
                out.push(json!({"type": "function", "function": f}));
            }
        }
    }
    Ok(out)
}

fn allowed_tools(mode: &str, names: &[String]) -> Value {
    let tools: Vec<Value> = names.iter().map(|n| json!({"type": "function", "function": {"name": n}})).collect();
    json!({"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}})
}

fn tool_config_to_chat(tc: &Obj) -> Result<Option<Value>> {
    let Some(f) = opt_obj(tc, "functionCallingConfig", "toolConfig")? else { return Ok(None) };
    let fp = "toolConfig.functionCallingConfig";
    let mode = opt_str(f, "mode", fp)?.unwrap_or("AUTO").to_ascii_uppercase();
    let names = str_list(f, "allowedFunctionNames", fp)?.unwrap_or_default();
    Ok(Some(match mode.as_str() {
        "AUTO" | "VALIDATED" | "MODE_UNSPECIFIED" if names.is_empty() => json!("auto"),
        "AUTO" | "VALIDATED" | "MODE_UNSPECIFIED" => allowed_tools("auto", &names),
        "ANY" if names.is_empty() => json!("required"),
        "ANY" if names.len() == 1 => json!({"type": "function", "function": {"name": names[0]}}),
        "ANY" => allowed_tools("required", &names),
        "NONE" => json!("none"),
        _ => return Err(invalid(&at(fp, "mode"), "one of AUTO, ANY, NONE, VALIDATED", get(f, "mode"))),
    }))
}

fn generation_config_to_chat(gc: &Obj, out: &mut Obj) -> Result<()> {
    let p = "generationConfig";
    for (g, c) in [
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("topK", "top_k"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
    ] {
        if let Some(v) = opt_num(gc, g, p)? {
            out.insert(c.into(), v.clone());
        }
    }
    for (g, c) in [("maxOutputTokens", "max_tokens"), ("candidateCount", "n"), ("logprobs", "top_logprobs")] {
        if let Some(v) = opt_uint(gc, g, p)? {
            out.insert(c.into(), v.into());
        }
    }
    if let Some(s) = opt_int(gc, "seed", p)? {
        out.insert("seed".into(), s.into());
    }
    if let Some(b) = opt_bool(gc, "responseLogprobs", p)? {
        out.insert("logprobs".into(), b.into());
    }
    if let Some(stops) = str_list(gc, "stopSequences", p)? {
        out.insert("stop".into(), stops.into());
    }
    let mime = opt_str(gc, "responseMimeType", p)?;
    let schema = match (get(gc, "responseSchema"), get(gc, "responseJsonSchema")) {
        (Some(s), _) => Some(schema_to_chat(s)),
        (None, Some(s)) => Some(s.clone()),
        (None, None) => None,
    };
    let format = match (mime, schema) {
        (None | Some("application/json"), Some(schema)) => {
            Some(json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}))
        }
        (Some("application/json"), None) => Some(json!({"type": "json_object"})),
        (Some("text/plain"), None) => Some(json!({"type": "text"})),
        (None, None) => None,
        (Some(_), _) => {
            return Err(invalid(
                &at(p, "responseMimeType"),
                "application/json or text/plain (with responseSchema: application/json)",
                get(gc, "responseMimeType"),
            ))
        }
    };
    if let Some(f) = format {
        out.insert("response_format".into(), f);
    }
    if let Some(tc) = opt_obj(gc, "thinkingConfig", p)? {
        if let Some(effort) = thinking_to_effort(tc, &at(p, "thinkingConfig"))? {
            out.insert("reasoning_effort".into(), effort.into());
        }
    }
    Ok(())
}

fn thinking_to_effort(tc: &Obj, path: &str) -> Result<Option<String>> {
    if let Some(level) = opt_str(tc, "thinkingLevel", path)? {
        let l = level.to_ascii_lowercase();
        if l != "thinking_level_unspecified" {
            return Ok(Some(l));
        }
    }
    Ok(opt_int(tc, "thinkingBudget", path)?.and_then(|b| {
        Some(
            match b {
                0 => "none",
                b if b < 0 => return None,
                1..=512 => "minimal",
                513..=1024 => "low",
                1025..=8192 => "medium",
                _ => "high",
            }
            .to_string(),
        )
    }))
}

// =============================================================================================
// Requests: chat → Gemini
// =============================================================================================

/// A chat request → a Gemini `GenerateContentRequest`, with the chat `model` as a top-level
/// `model` field (move it into the URL before sending).
pub fn request_from_chat(chat: &Value) -> Result<Value> {
    let c = as_obj(chat, "request")?;
    let mut out = Obj::new();
    if let Some(m) = opt_str(c, "model", "")? {
        out.insert("model".into(), m.into());
    }
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    let mut ledger = CallLedger::default();
    // The last content is a user turn made of tool results that a user message may still join.
    let mut tool_turn_open = false;
    for (i, msg) in req_arr(c, "messages", "")?.iter().enumerate() {
        let path = nth("messages", i);
        let m = as_obj(msg, &path)?;
        match req_str(m, "role", &path)? {
            "system" | "developer" => system.extend(system_parts(m, &path)?),
            "user" => {
                let parts = user_content_to_parts(m, &path)?;
                match contents.last_mut().filter(|_| tool_turn_open) {
                    Some(turn) => push_parts(turn, parts),
                    None => contents.push(json!({"role": "user", "parts": parts})),
                }
                tool_turn_open = false;
            }
            "assistant" => {
                let parts = assistant_parts(m, &path, false, &mut |id, name| ledger.record(id, name))?;
                contents.push(json!({"role": "model", "parts": parts}));
                tool_turn_open = false;
            }
            "tool" => {
                let part = tool_message_to_part(m, &path, &mut ledger)?;
                match contents.last_mut().filter(|_| tool_turn_open) {
                    Some(turn) => push_parts(turn, vec![part]),
                    None => contents.push(json!({"role": "user", "parts": [part]})),
                }
                tool_turn_open = true;
            }
            other => {
                return Err(Error::validation(
                    at(&path, "role"),
                    format!("{path}.role must be one of system, developer, user, assistant, tool, got {other:?}"),
                ))
            }
        }
    }
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    if let Some(tools) = opt_arr(c, "tools", "")? {
        if let Some(t) = tools_to_gemini(tools)? {
            out.insert("tools".into(), t);
        }
    }
    if let Some(tc) = get(c, "tool_choice") {
        out.insert("toolConfig".into(), tool_choice_to_gemini(tc)?);
    }
    let gc = generation_config_from_chat(c)?;
    if !gc.is_empty() {
        out.insert("generationConfig".into(), Value::Object(gc));
    }
    for k in ["safetySettings", "cachedContent", "labels"] {
        if let Some(v) = get(c, k) {
            out.insert(k.into(), v.clone());
        }
    }
    Ok(Value::Object(out))
}

fn push_parts(turn: &mut Value, parts: Vec<Value>) {
    if let Some(a) = turn.get_mut("parts").and_then(Value::as_array_mut) {
        a.extend(parts);
    }
}

/// Text of a `content` that may only hold text (system, tool): a string or text parts.
fn text_only_content(m: &Obj, path: &str) -> Result<Vec<String>> {
    let cp = at(path, "content");
    match get(m, "content") {
        None => Ok(vec![]),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let pp = nth(&cp, j);
                let pm = as_obj(p, &pp)?;
                match req_str(pm, "type", &pp)? {
                    "text" | "input_text" | "output_text" => Ok(opt_str(pm, "text", &pp)?.unwrap_or_default().to_string()),
                    other => Err(Error::validation(at(&pp, "type"), format!("{pp}.type must be \"text\" here, got {other:?}"))),
                }
            })
            .collect(),
        Some(o) => Err(invalid(&cp, "a string or an array of text parts", Some(o))),
    }
}

fn system_parts(m: &Obj, path: &str) -> Result<Vec<Value>> {
    Ok(text_only_content(m, path)?.into_iter().map(|t| json!({ "text": t })).collect())
}

fn is_empty_text(p: &Value) -> bool {
    p.as_object().is_some_and(|o| o.len() == 1 && o.get("text").and_then(Value::as_str) == Some(""))
}

fn user_content_to_parts(m: &Obj, path: &str) -> Result<Vec<Value>> {
    let cp = at(path, "content");
    let mut parts = match get(m, "content") {
        None => vec![],
        Some(Value::String(s)) => vec![json!({ "text": s })],
        Some(Value::Array(a)) => a.iter().enumerate().map(|(j, p)| chat_part_to_gemini(p, &nth(&cp, j))).collect::<Result<_>>()?,
        Some(o) => return Err(invalid(&cp, "a string or an array of content parts", Some(o))),
    };
    if parts.len() > 1 {
        parts.retain(|p| !is_empty_text(p));
    }
    if parts.is_empty() {
        parts.push(json!({"text": ""}));
    }
    Ok(parts)
}

/// Gives a tool call (its id if any, its name) the id to use and whether that id is the
/// generated `call_<k>_<name>` (left out on the Gemini side).
type RecordCall<'a> = dyn FnMut(Option<&str>, &str) -> (String, bool) + 'a;

/// An assistant message (request history or response choice) → Gemini parts: thought, text,
/// media, function calls. `keep_empty_text`: write a `{text:""}` part even next to other parts.
/// `record` gives (id, implicit) for each tool call.
fn assistant_parts(m: &Obj, path: &str, keep_empty_text: bool, record: &mut RecordCall) -> Result<Vec<Value>> {
    let mut thought = Vec::new();
    if let Some(r) = opt_str(m, "reasoning_content", path)?.filter(non_empty) {
        thought.push(json!({"text": r, "thought": true}));
    }
    let mut text: Option<String> = None;
    let mut media = Vec::new();
    let cp = at(path, "content");
    match get(m, "content") {
        None => {}
        Some(Value::String(s)) => text = Some(s.clone()),
        Some(Value::Array(a)) => {
            for (j, p) in a.iter().enumerate() {
                let part = chat_part_to_gemini(p, &nth(&cp, j))?;
                match part.get("text").and_then(Value::as_str) {
                    Some(t) => text.get_or_insert_with(String::new).push_str(t),
                    None => media.push(part),
                }
            }
        }
        Some(o) => return Err(invalid(&cp, "a string, null or an array of content parts", Some(o))),
    }
    if let Some(r) = opt_str(m, "refusal", path)?.filter(non_empty) {
        text.get_or_insert_with(String::new).push_str(r);
    }
    if let Some(images) = opt_arr(m, "images", path)? {
        for (j, p) in images.iter().enumerate() {
            media.push(chat_part_to_gemini(p, &nth(&at(path, "images"), j))?);
        }
    }
    let mut calls = Vec::new();
    if let Some(tcs) = opt_arr(m, "tool_calls", path)? {
        for (j, tc) in tcs.iter().enumerate() {
            let tp = nth(&at(path, "tool_calls"), j);
            let tm = as_obj(tc, &tp)?;
            let fp = at(&tp, "function");
            let f = req_obj(tm, "function", &tp)?;
            let name = req_str(f, "name", &fp)?;
            let args = args_value(get(f, "arguments"), &at(&fp, "arguments"), &format!("tool call {j} ({name})"))?;
            let (id, implicit) = record(opt_str(tm, "id", &tp)?, name);
            calls.push(function_call_part(name, args, (!implicit).then_some(id), signature_of_tool_call(tm)));
        }
    }
    let mut parts = thought;
    if let Some(t) = text {
        if keep_empty_text || !t.is_empty() || (parts.is_empty() && media.is_empty() && calls.is_empty()) {
            parts.push(json!({ "text": t }));
        }
    }
    parts.extend(media);
    parts.extend(calls);
    Ok(parts)
}

fn signature_of_tool_call(tc: &Obj) -> Option<Value> {
    tc.get("extra_content")?.get("google")?.get("thought_signature").filter(|v| v.is_string()).cloned()
}

fn function_call_part(name: &str, args: Value, id: Option<String>, signature: Option<Value>) -> Value {
    let mut call = Obj::new();
    call.insert("name".into(), name.into());
    call.insert("args".into(), args);
    if let Some(id) = id {
        call.insert("id".into(), id.into());
    }
    let mut part = Obj::new();
    part.insert("functionCall".into(), Value::Object(call));
    if let Some(sig) = signature {
        part.insert("thoughtSignature".into(), sig);
    }
    Value::Object(part)
}

fn tool_message_to_part(m: &Obj, path: &str, ledger: &mut CallLedger) -> Result<Value> {
    let id = req_str(m, "tool_call_id", path)?;
    let text = text_only_content(m, path)?.concat();
    let (name, write_id) = match ledger.by_id(id) {
        Some(k) => {
            let name = ledger.calls[k].name.clone();
            // Left out when the id is the generated one and pairing by name finds this call.
            let write_id = !(ledger.calls[k].implicit && ledger.first_open_by_name(&name) == Some(k));
            ledger.calls[k].answered = true;
            (name, write_id)
        }
        None => match opt_str(m, "name", path)?.filter(non_empty) {
            Some(n) => (n.to_string(), true),
            None => {
                return Err(Error::validation(
                    at(path, "tool_call_id"),
                    format!("{path}.tool_call_id {id:?} matches no earlier assistant tool call (and the message has no name)"),
                ))
            }
        },
    };
    let mut fr = Obj::new();
    fr.insert("name".into(), name.into());
    fr.insert("response".into(), response_from_tool_content(&text));
    if write_id {
        fr.insert("id".into(), id.into());
    }
    Ok(json!({ "functionResponse": fr }))
}

fn tools_to_gemini(tools: &[Value]) -> Result<Option<Value>> {
    let mut decls = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let tp = nth("tools", i);
        let tm = as_obj(t, &tp)?;
        match opt_str(tm, "type", &tp)?.unwrap_or("function") {
            "function" => {}
            other => {
                return Err(Error::validation(
                    at(&tp, "type"),
                    format!("{tp}.type {other:?} cannot be converted to Gemini: only function tools are supported"),
                ))
            }
        }
        let fp = at(&tp, "function");
        let f = req_obj(tm, "function", &tp)?;
        let mut d = Obj::new();
        d.insert("name".into(), req_str(f, "name", &fp)?.into());
        if let Some(desc) = opt_str(f, "description", &fp)? {
            d.insert("description".into(), desc.into());
        }
        if let Some(p) = get(f, "parameters") {
            d.insert("parameters".into(), schema_to_gemini(p));
        }
        decls.push(Value::Object(d));
    }
    Ok((!decls.is_empty()).then(|| json!([{ "functionDeclarations": decls }])))
}

fn tool_choice_names(tools: &[Value], path: &str) -> Result<Vec<String>> {
    tools
        .iter()
        .enumerate()
        .map(|(j, t)| {
            let tp = nth(path, j);
            let tm = as_obj(t, &tp)?;
            match opt_obj(tm, "function", &tp)? {
                Some(f) => req_str(f, "name", &at(&tp, "function")),
                None => req_str(tm, "name", &tp),
            }
            .map(String::from)
        })
        .collect()
}

fn tool_choice_to_gemini(tc: &Value) -> Result<Value> {
    let p = "tool_choice";
    let (mode, names): (&str, Vec<String>) = match tc {
        Value::String(s) => match s.as_str() {
            "auto" => ("AUTO", vec![]),
            "required" => ("ANY", vec![]),
            "none" => ("NONE", vec![]),
            _ => return Err(invalid(p, "\"auto\", \"required\", \"none\" or an object", Some(tc))),
        },
        Value::Object(m) => match opt_str(m, "type", p)? {
            Some("function") => {
                let name = match opt_obj(m, "function", p)? {
                    Some(f) => req_str(f, "name", "tool_choice.function")?,
                    None => req_str(m, "name", p)?,
                };
                ("ANY", vec![name.to_string()])
            }
            Some("allowed_tools") => {
                let ap = "tool_choice.allowed_tools";
                let a = req_obj(m, "allowed_tools", p)?;
                let mode = match opt_str(a, "mode", ap)?.unwrap_or("auto") {
                    "auto" => "AUTO",
                    "required" => "ANY",
                    _ => return Err(invalid(&at(ap, "mode"), "\"auto\" or \"required\"", get(a, "mode"))),
                };
                (mode, tool_choice_names(req_arr(a, "tools", ap)?, &at(ap, "tools"))?)
            }
            _ => return Err(invalid(&at(p, "type"), "\"function\" or \"allowed_tools\"", get(m, "type"))),
        },
        other => return Err(invalid(p, "a string or an object", Some(other))),
    };
    let mut f = Obj::new();
    f.insert("mode".into(), mode.into());
    if !names.is_empty() {
        f.insert("allowedFunctionNames".into(), names.into());
    }
    Ok(json!({ "functionCallingConfig": f }))
}

fn generation_config_from_chat(c: &Obj) -> Result<Obj> {
    let mut g = Obj::new();
    for (ck, gk) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = opt_num(c, ck, "")? {
            g.insert(gk.into(), v.clone());
        }
    }
    let max = match opt_uint(c, "max_tokens", "")? {
        Some(m) => Some(m),
        None => opt_uint(c, "max_completion_tokens", "")?,
    };
    if let Some(m) = max {
        g.insert("maxOutputTokens".into(), m.into());
    }
    match get(c, "stop") {
        None => {}
        Some(Value::String(s)) => {
            g.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(_)) => {
            g.insert("stopSequences".into(), str_list(c, "stop", "")?.unwrap_or_default().into());
        }
        Some(o) => return Err(invalid("stop", "a string or an array of strings", Some(o))),
    }
    if let Some(n) = opt_uint(c, "n", "")? {
        g.insert("candidateCount".into(), n.into());
    }
    if let Some(s) = opt_int(c, "seed", "")? {
        g.insert("seed".into(), s.into());
    }
    if let Some(b) = opt_bool(c, "logprobs", "")? {
        g.insert("responseLogprobs".into(), b.into());
    }
    if let Some(n) = opt_uint(c, "top_logprobs", "")? {
        g.insert("logprobs".into(), n.into());
    }
    if let Some(rf) = opt_obj(c, "response_format", "")? {
        let p = "response_format";
        match req_str(rf, "type", p)? {
            "text" => {
                g.insert("responseMimeType".into(), "text/plain".into());
            }
            "json_object" => {
                g.insert("responseMimeType".into(), "application/json".into());
            }
            "json_schema" => {
                g.insert("responseMimeType".into(), "application/json".into());
                let js = req_obj(rf, "json_schema", p)?;
                if let Some(s) = get(js, "schema") {
                    g.insert("responseSchema".into(), schema_to_gemini(s));
                }
            }
            _ => return Err(invalid(&at(p, "type"), "\"text\", \"json_object\" or \"json_schema\"", get(rf, "type"))),
        }
    }
    let mut thinking = Obj::new();
    if let Some(e) = opt_str(c, "reasoning_effort", "")? {
        let budget = match e {
            "none" => 0,
            "minimal" => 512,
            "low" => 1024,
            "medium" => 8192,
            "high" => 24576,
            "xhigh" => 32768,
            _ => return Err(invalid("reasoning_effort", "one of none, minimal, low, medium, high, xhigh", get(c, "reasoning_effort"))),
        };
        thinking.insert("thinkingBudget".into(), budget.into());
    }
    if let Some(b) = opt_int(c, "thinking_budget", "")? {
        thinking.insert("thinkingBudget".into(), b.into());
    }
    if let Some(on) = opt_bool(c, "enable_thinking", "")? {
        thinking.insert("includeThoughts".into(), on.into());
        if !on {
            thinking.insert("thinkingBudget".into(), 0.into());
        }
    }
    if !thinking.is_empty() {
        g.insert("thinkingConfig".into(), Value::Object(thinking));
    }
    Ok(g)
}

// =============================================================================================
// Finish reasons and usage
// =============================================================================================

/// Gemini finish reason → (chat finish reason, whether the Gemini name must be kept because
/// it would not come back the same).
fn finish_to_chat(reason: &str, has_calls: bool) -> (&'static str, bool) {
    let stop = if has_calls { "tool_calls" } else { "stop" };
    match reason {
        "STOP" => (stop, false),
        "MAX_TOKENS" => ("length", false),
        "SAFETY" => ("content_filter", false),
        "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" | "IMAGE_PROHIBITED_CONTENT" | "IMAGE_RECITATION" => {
            ("content_filter", true)
        }
        _ => (stop, true),
    }
}

/// Chat finish reason (and the Gemini one kept beside it) → Gemini finish reason.
fn finish_from_chat(reason: &str, native: Option<&str>) -> String {
    if let Some(n) = native {
        if finish_to_chat(n, reason == "tool_calls").0 == reason {
            return n.to_string();
        }
    }
    match reason {
        "stop" | "tool_calls" | "function_call" => "STOP",
        "length" => "MAX_TOKENS",
        "content_filter" => "SAFETY",
        _ => "OTHER",
    }
    .to_string()
}

fn usage_to_chat(u: &Obj, path: &str) -> Result<Value> {
    let prompt = opt_uint(u, "promptTokenCount", path)?.unwrap_or(0);
    let candidates = opt_uint(u, "candidatesTokenCount", path)?.unwrap_or(0);
    let thoughts = opt_uint(u, "thoughtsTokenCount", path)?;
    let cached = opt_uint(u, "cachedContentTokenCount", path)?;
    let completion = candidates + thoughts.unwrap_or(0);
    let total = opt_uint(u, "totalTokenCount", path)?.unwrap_or(prompt + completion);
    let mut out = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total});
    if let Some(c) = cached {
        out["prompt_tokens_details"] = json!({ "cached_tokens": c });
    }
    if let Some(t) = thoughts {
        out["completion_tokens_details"] = json!({ "reasoning_tokens": t });
    }
    Ok(out)
}

fn usage_from_chat(u: &Obj, path: &str) -> Result<Value> {
    let prompt = opt_uint(u, "prompt_tokens", path)?.unwrap_or(0);
    let completion = opt_uint(u, "completion_tokens", path)?.unwrap_or(0);
    let total = opt_uint(u, "total_tokens", path)?.unwrap_or(0);
    let detail = |k: &str, d: &str| -> Result<Option<u64>> {
        let dp = at(path, k);
        match opt_obj(u, k, path)? {
            Some(o) => opt_uint(o, d, &dp),
            None => Ok(None),
        }
    };
    let reasoning = detail("completion_tokens_details", "reasoning_tokens")?.unwrap_or(0);
    let cached = detail("prompt_tokens_details", "cached_tokens")?.unwrap_or(0);
    let mut out = Obj::new();
    for (k, v) in [
        ("promptTokenCount", prompt),
        ("candidatesTokenCount", completion.saturating_sub(reasoning)),
        ("totalTokenCount", total),
        ("thoughtsTokenCount", reasoning),
        ("cachedContentTokenCount", cached),
    ] {
        if v > 0 {
            out.insert(k.into(), v.into());
        }
    }
    Ok(Value::Object(out))
}

/// RFC 3339 (`2025-01-02T03:04:05.123Z`, `+01:00`) → Unix seconds.
fn parse_rfc3339(s: &str) -> Option<u64> {
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes().all(|b| b.is_ascii_digit()).then(|| t.parse().ok())?
    };
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        rest = r.get(n..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from the civil date (H. Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + se - offset).ok()
}

fn created_of(b: &Obj) -> Result<u64> {
    Ok(opt_str(b, "createTime", "")?.and_then(parse_rfc3339).unwrap_or_else(now_secs))
}

fn block_reason(b: &Obj) -> Result<Option<&str>> {
    match opt_obj(b, "promptFeedback", "")? {
        Some(f) => opt_str(f, "blockReason", "promptFeedback"),
        None => Ok(None),
    }
}

// =============================================================================================
// Responses
// =============================================================================================

/// A Gemini `GenerateContentResponse` → a `chat.completion`. An error envelope
/// (`{"error":{...}}`) is returned as its `Err` (see [`error_from_body`]).
pub fn response_to_chat(body: &Value) -> Result<Value> {
    if let Some(e) = error_from_body(body) {
        return Err(e);
    }
    let b = as_obj(body, "response")?;
    let id = opt_str(b, "responseId", "")?.filter(non_empty).map_or_else(|| generated_id("chatcmpl-"), String::from);
    let created = created_of(b)?;
    let model = opt_str(b, "modelVersion", "")?.unwrap_or_default();
    let mut choices = Vec::new();
    for (pos, c) in opt_arr(b, "candidates", "")?.into_iter().flatten().enumerate() {
        choices.push(candidate_to_choice(c, &nth("candidates", pos), pos)?);
    }
    if choices.is_empty() && block_reason(b)?.is_some() {
        choices.push(json!({"index": 0, "message": {"role": "assistant", "content": null}, "finish_reason": "content_filter"}));
    }
    let mut out = json!({"id": id, "object": "chat.completion", "created": created, "model": model, "choices": choices});
    if let Some(u) = opt_obj(b, "usageMetadata", "")? {
        out["usage"] = usage_to_chat(u, "usageMetadata")?;
    }
    Ok(out)
}

fn candidate_to_choice(c: &Value, path: &str, pos: usize) -> Result<Value> {
    let cm = as_obj(c, path)?;
    let index = opt_uint(cm, "index", path)?.unwrap_or(pos as u64);
    let cp = at(path, "content");
    let parts = match opt_obj(cm, "content", path)? {
        Some(content) => opt_arr(content, "parts", &cp)?.map(Vec::as_slice).unwrap_or_default(),
        None => &[],
    };
    let mut k = 0;
    let mut assign = |id: Option<&str>, name: &str| {
        let generated = call_id(k, name);
        k += 1;
        id.map_or(generated, String::from)
    };
    let turn = ModelTurn::read(parts, &at(&cp, "parts"), &mut assign)?;
    let has_calls = !turn.tool_calls.is_empty();
    let mut choice = json!({"index": index, "message": turn.into_message(), "finish_reason": null});
    if let Some(f) = opt_str(cm, "finishReason", path)? {
        let (reason, keep) = finish_to_chat(f, has_calls);
        choice["finish_reason"] = reason.into();
        if keep {
            choice["native_finish_reason"] = f.into();
        }
    }
    Ok(choice)
}

/// A `chat.completion` → a Gemini `GenerateContentResponse`.
pub fn response_from_chat(chat: &Value) -> Result<Value> {
    let c = as_obj(chat, "response")?;
    let mut candidates = Vec::new();
    for (i, ch) in req_arr(c, "choices", "")?.iter().enumerate() {
        let path = nth("choices", i);
        let cm = as_obj(ch, &path)?;
        let index = opt_uint(cm, "index", &path)?.unwrap_or(i as u64);
        let msg = req_obj(cm, "message", &path)?;
        let mut k = 0;
        let mut record = |id: Option<&str>, name: &str| {
            let generated = call_id(k, name);
            k += 1;
            match id.filter(non_empty) {
                Some(id) => (id.to_string(), id == generated),
                None => (generated, true),
            }
        };
        let parts = assistant_parts(msg, &at(&path, "message"), true, &mut record)?;
        let mut cand = json!({"content": {"role": "model", "parts": parts}});
        if let Some(f) = opt_str(cm, "finish_reason", &path)? {
            cand["finishReason"] = finish_from_chat(f, opt_str(cm, "native_finish_reason", &path)?).into();
        }
        cand["index"] = index.into();
        candidates.push(cand);
    }
    let mut out = Obj::new();
    out.insert("candidates".into(), Value::Array(candidates));
    if let Some(u) = opt_obj(c, "usage", "")? {
        out.insert("usageMetadata".into(), usage_from_chat(u, "usage")?);
    }
    if let Some(m) = opt_str(c, "model", "")?.filter(non_empty) {
        out.insert("modelVersion".into(), m.into());
    }
    if let Some(id) = opt_str(c, "id", "")?.filter(non_empty) {
        out.insert("responseId".into(), id.into());
    }
    Ok(Value::Object(out))
}

// =============================================================================================
// Errors
// =============================================================================================

fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        c if c < 500 => "INVALID_ARGUMENT",
        _ => "INTERNAL",
    }
}

fn code_of_status(status: &str) -> Option<u16> {
    Some(match status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "ABORTED" | "ALREADY_EXISTS" => 409,
        "RESOURCE_EXHAUSTED" => 429,
        "CANCELLED" => 499,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => 500,
        "UNIMPLEMENTED" => 501,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => return None,
    })
}

fn retry_delay_text(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

/// An [`Error`] as Gemini's error JSON, `{"error": {"code", "message", "status", "details"?}}`:
/// Validation → 400 `INVALID_ARGUMENT` (with a `google.rpc.BadRequest` field violation naming
/// the path), Authentication → 401 `UNAUTHENTICATED` (403 → `PERMISSION_DENIED`), RateLimit and
/// QueueFull → 429 `RESOURCE_EXHAUSTED`, Timeout → 504 `DEADLINE_EXCEEDED`, Provider → its HTTP
/// status when it is 4xx/5xx (status name by code: 503 `UNAVAILABLE`, 504 `DEADLINE_EXCEEDED`,
/// other 5xx `INTERNAL`), else 500 `INTERNAL`; Connection, CircuitOpen and NoAvailablePipeline
/// → 503 `UNAVAILABLE`; Cancelled → 499 `CANCELLED`; Stream and Internal → 500 `INTERNAL`. A
/// known retry wait is added as `google.rpc.RetryInfo.retryDelay` (what Google's clients read).
pub fn error_body(e: &Error) -> Value {
    let code: u16 = match e {
        Error::Validation { .. } => 400,
        Error::Authentication { status, .. } => {
            if *status == Some(403) {
                403
            } else {
                401
            }
        }
        Error::RateLimit { .. } | Error::QueueFull { .. } => 429,
        Error::Timeout { .. } => 504,
        Error::Provider { status, .. } => status.filter(|s| (400..=599).contains(s)).unwrap_or(500),
        Error::Connection { .. } | Error::CircuitOpen { .. } | Error::NoAvailablePipeline { .. } => 503,
        Error::Cancelled { .. } => 499,
        Error::Stream { .. } | Error::Internal { .. } => 500,
    };
    let mut err = json!({"code": code, "message": e.to_string(), "status": status_name(code)});
    let mut details = Vec::new();
    if let Error::Validation { field: Some(f), message } = e {
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": f, "description": message}],
        }));
    }
    if let Some(ms) = e.retry_after_ms() {
        details.push(json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay_text(ms)}));
    }
    if !details.is_empty() {
        err["details"] = Value::Array(details);
    }
    json!({ "error": err })
}

fn retry_delay_ms(e: &Obj) -> Option<u64> {
    e.get("details")?.as_array()?.iter().find_map(|d| {
        if !d.get("@type")?.as_str()?.ends_with("google.rpc.RetryInfo") {
            return None;
        }
        let secs: f64 = d.get("retryDelay")?.as_str()?.strip_suffix('s')?.parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).round() as u64)
    })
}

fn error_info_reason(e: &Obj) -> Option<&str> {
    e.get("details")?
        .as_array()?
        .iter()
        .find(|d| d.get("@type").and_then(Value::as_str).is_some_and(|t| t.ends_with("google.rpc.ErrorInfo")))?
        .get("reason")?
        .as_str()
}

/// Gemini error JSON (`{"error":{code, message, status, details}}`, also as the one element of
/// an array, as the non-SSE stream sends it) → the engine's [`Error`]: 401/403 (or
/// `UNAUTHENTICATED`/`PERMISSION_DENIED`) → Authentication, 429 / `RESOURCE_EXHAUSTED` →
/// RateLimit (with `RetryInfo.retryDelay`), an `ErrorInfo` reason `API_KEY_*` (Gemini's 400 for
/// a bad key) → Authentication with that reason, anything else → Provider with that status;
/// the status name is the `provider_code`, the JSON the `body`. `None` for a body without
/// `error`.
pub fn error_from_body(body: &Value) -> Option<Error> {
    let body = match body {
        Value::Array(a) => a.iter().find(|v| v.get("error").is_some())?,
        other => other,
    };
    let e = body.get("error")?.as_object()?;
    let status_text = e.get("status").and_then(Value::as_str).map(String::from);
    let code = e
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..=599).contains(c))
        .or_else(|| status_text.as_deref().and_then(code_of_status));
    let message = e.get("message").and_then(Value::as_str).filter(non_empty).map(String::from).unwrap_or_else(|| {
        format!("Gemini error {} {}", code.map(|c| c.to_string()).unwrap_or_default(), status_text.clone().unwrap_or_default())
            .trim()
            .to_string()
    });
    let body_text = Some(body.to_string());
    let retry_after_ms = retry_delay_ms(e);
    // Gemini answers a bad API key with 400 INVALID_ARGUMENT and an ErrorInfo reason.
    if let Some(reason) = error_info_reason(e).filter(|r| r.starts_with("API_KEY_")) {
        return Some(Error::Authentication { message, status: code, body: body_text, provider_code: Some(reason.to_string()) });
    }
    Some(match code {
        Some(401 | 403) => Error::Authentication { message, status: code, body: body_text, provider_code: status_text },
        Some(429) => Error::RateLimit { message, status: code, retry_after_ms, body: body_text, provider_code: status_text },
        _ => Error::Provider { message, status: code, body: body_text, provider_code: status_text, retry_after_ms },
    })
}

// =============================================================================================
// Stream: Gemini fragments → chat chunks
// =============================================================================================

/// Gemini stream fragments (each SSE `data` of `streamGenerateContent?alt=sse`, a whole
/// `GenerateContentResponse`) → `chat.completion.chunk`s. An error fragment is returned as its
/// `Err`; a JSON array event (the non-SSE stream form) is read as its fragments in order.
#[derive(Debug, Default)]
pub struct Decoder {
    id: Option<String>,
    model: String,
    created: u64,
    candidates: BTreeMap<u64, DecodedCandidate>,
    /// The latest usage (chat shape), and whether it still has to be sent.
    usage: Option<Value>,
    usage_pending: bool,
}

#[derive(Debug, Default)]
struct DecodedCandidate {
    started: bool,
    calls: usize,
    finished: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    fn chunk(&self, choices: Vec<Value>) -> Value {
        json!({
            "id": self.id.clone().unwrap_or_default(),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    fn push_fragment(&mut self, event: &Value) -> Result<Vec<Value>> {
        if let Some(e) = error_from_body(event) {
            return Err(e);
        }
        let m = as_obj(event, "event")?;
        if self.id.is_none() {
            self.id = Some(opt_str(m, "responseId", "")?.filter(non_empty).map_or_else(|| generated_id("chatcmpl-"), String::from));
        }
        if self.model.is_empty() {
            self.model = opt_str(m, "modelVersion", "")?.unwrap_or_default().to_string();
        }
        if self.created == 0 {
            self.created = created_of(m)?;
        }
        if let Some(u) = opt_obj(m, "usageMetadata", "")? {
            self.usage = Some(usage_to_chat(u, "usageMetadata")?);
            self.usage_pending = true;
        }
        // (choice, finish) per chunk, in order.
        let mut choices: Vec<(Value, bool)> = Vec::new();
        for (pos, c) in opt_arr(m, "candidates", "")?.into_iter().flatten().enumerate() {
            self.decode_candidate(c, &nth("candidates", pos), pos, &mut choices)?;
        }
        if opt_arr(m, "candidates", "")?.is_none_or(Vec::is_empty) && block_reason(m)?.is_some() {
            let st = self.candidates.entry(0).or_default();
            st.finished = true;
            let delta = if std::mem::replace(&mut st.started, true) { json!({}) } else { json!({"role": "assistant"}) };
            choices.push((json!({"index": 0, "delta": delta, "finish_reason": "content_filter"}), true));
        }
        let mut chunks: Vec<Value> = choices.iter().map(|(c, _)| self.chunk(vec![c.clone()])).collect();
        let all_done = !self.candidates.is_empty() && self.candidates.values().all(|c| c.finished);
        if self.usage_pending && all_done {
            let usage = self.usage.clone().unwrap_or(Value::Null);
            match choices.iter().rposition(|(_, fin)| *fin) {
                Some(k) => chunks[k]["usage"] = usage,
                None => {
                    let mut c = self.chunk(vec![]);
                    c["usage"] = usage;
                    chunks.push(c);
                }
            }
            self.usage_pending = false;
        }
        Ok(chunks)
    }

    fn decode_candidate(&mut self, c: &Value, path: &str, pos: usize, out: &mut Vec<(Value, bool)>) -> Result<()> {
        let cm = as_obj(c, path)?;
        let index = opt_uint(cm, "index", path)?.unwrap_or(pos as u64);
        let st = self.candidates.entry(index).or_default();
        let cp = at(path, "content");
        let parts = match opt_obj(cm, "content", path)? {
            Some(content) => opt_arr(content, "parts", &cp)?.map(Vec::as_slice).unwrap_or_default(),
            None => &[],
        };
        let pp = at(&cp, "parts");
        let mut deltas: Vec<Value> = Vec::new();
        for (j, p) in parts.iter().enumerate() {
            let jp = nth(&pp, j);
            let part = classify_part(p, &jp)?;
            match part {
                Part::Text("", _) | Part::Empty => {}
                Part::Text(s, true) => deltas.push(json!({ "reasoning_content": s })),
                Part::Text(s, false) => deltas.push(json!({ "content": s })),
                Part::Inline(_) | Part::File(_) => deltas.push(json!({"images": [model_media_to_chat(&part, &jp)?]})),
                Part::Call(fc) => {
                    let k = st.calls;
                    st.calls += 1;
                    let mut assign = |id: Option<&str>, name: &str| id.map_or_else(|| call_id(k, name), String::from);
                    let mut tc = function_call_to_chat(fc, &at(&jp, "functionCall"), thought_signature(p, &jp)?, &mut assign)?;
                    if let Some(o) = tc.as_object_mut() {
                        let mut with_index = Obj::new();
                        with_index.insert("index".into(), k.into());
                        with_index.extend(std::mem::take(o));
                        *o = with_index;
                    }
                    deltas.push(json!({ "tool_calls": [tc] }));
                }
                Part::Response(_) => {
                    return Err(Error::validation(
                        at(&jp, "functionResponse"),
                        format!("{jp}: functionResponse parts belong in user turns"),
                    ))
                }
            }
        }
        let finish = opt_str(cm, "finishReason", path)?;
        if deltas.is_empty() && finish.is_none() {
            return Ok(());
        }
        if deltas.is_empty() {
            deltas.push(json!({}));
        }
        if !st.started {
            st.started = true;
            if let Some(o) = deltas[0].as_object_mut() {
                let mut with_role = Obj::new();
                with_role.insert("role".into(), "assistant".into());
                with_role.extend(std::mem::take(o));
                *o = with_role;
            }
        }
        let last = deltas.len() - 1;
        for (k, delta) in deltas.into_iter().enumerate() {
            let mut choice = json!({"index": index, "delta": delta, "finish_reason": null});
            let mut fin = false;
            if let (true, Some(f)) = (k == last, finish) {
                let (reason, keep) = finish_to_chat(f, st.calls > 0);
                choice["finish_reason"] = reason.into();
                if keep {
                    choice["native_finish_reason"] = f.into();
                }
                st.finished = true;
                fin = true;
            }
            out.push((choice, fin));
        }
        Ok(())
    }
}

impl StreamDecoder for Decoder {
    fn push(&mut self, event: &Value) -> Result<Vec<Value>> {
        match event {
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    out.extend(self.push_fragment(item)?);
                }
                Ok(out)
            }
            _ => self.push_fragment(event),
        }
    }

    fn finish(&mut self) -> Result<Vec<Value>> {
        if !self.usage_pending || self.id.is_none() {
            return Ok(vec![]);
        }
        self.usage_pending = false;
        let mut c = self.chunk(vec![]);
        c["usage"] = self.usage.clone().unwrap_or(Value::Null);
        Ok(vec![c])
    }
}

// =============================================================================================
// Stream: chat chunks → Gemini fragments
// =============================================================================================

/// `chat.completion.chunk`s → Gemini stream fragments (one `GenerateContentResponse` per SSE
/// `data`). See the module documentation for buffering of tool calls and of the final fragment.
#[derive(Debug, Default)]
pub struct Encoder {
    id: Option<String>,
    model: Option<String>,
    choices: BTreeMap<u64, EncodedChoice>,
    /// The fragment carrying `finishReason`, waiting for usage.
    held: Option<Value>,
    /// Usage (Gemini shape) not yet written, and the last one written.
    usage: Option<Value>,
    written_usage: Option<Value>,
}

#[derive(Debug, Default)]
struct EncodedChoice {
    open: Vec<OpenCall>,
    /// Tool index → (id, arguments text) of the call last written for it.
    closed: BTreeMap<u64, (String, String)>,
    finished: bool,
}

#[derive(Debug)]
struct OpenCall {
    index: u64,
    id: String,
    name: String,
    args: String,
    signature: Option<Value>,
}

fn is_complete_object(text: &str) -> bool {
    matches!(serde_json::from_str::<Value>(text), Ok(Value::Object(_)))
}

impl EncodedChoice {
    fn write(&mut self, call: OpenCall, base: &str, parts: &mut Vec<Value>) -> Result<()> {
        let tp = nth(base, call.index);
        if call.name.is_empty() {
            return Err(Error::validation(at(&tp, "function.name"), format!("tool call {}: {tp} never got a function name", call.index)));
        }
        let what = format!("tool call {} ({})", call.index, call.name);
        let args = parse_args(&call.args, &at(&tp, "function.arguments"), &what)?;
        let implicit = call.id.is_empty() || usize::try_from(call.index).is_ok_and(|k| call.id == call_id(k, &call.name));
        parts.push(function_call_part(&call.name, args, (!implicit).then_some(call.id.clone()), call.signature));
        self.closed.insert(call.index, (call.id, call.args));
        Ok(())
    }

    fn flush_all(&mut self, base: &str, parts: &mut Vec<Value>) -> Result<()> {
        for call in std::mem::take(&mut self.open) {
            self.write(call, base, parts)?;
        }
        Ok(())
    }

    /// The "next index" rule: calls of other indices whose arguments already form a whole JSON
    /// object are done.
    fn flush_complete_except(&mut self, index: u64, base: &str, parts: &mut Vec<Value>) -> Result<()> {
        let (done, open): (Vec<OpenCall>, Vec<OpenCall>) =
            std::mem::take(&mut self.open).into_iter().partition(|c| c.index != index && !c.name.is_empty() && is_complete_object(&c.args));
        self.open = open;
        for call in done {
            self.write(call, base, parts)?;
        }
        Ok(())
    }

    fn feed(&mut self, tc: &Value, pos: usize, base: &str, parts: &mut Vec<Value>) -> Result<()> {
        let tm = as_obj(tc, &nth(base, pos))?;
        let index = opt_uint(tm, "index", &nth(base, pos))?.unwrap_or(pos as u64);
        let tp = nth(base, index);
        let id = opt_str(tm, "id", &tp)?.filter(non_empty);
        let fp = at(&tp, "function");
        let f = opt_obj(tm, "function", &tp)?;
        let name = match f {
            Some(f) => opt_str(f, "name", &fp)?.filter(non_empty),
            None => None,
        };
        let args = match f.and_then(|f| get(f, "arguments")) {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(o @ Value::Object(_)) => o.to_string(),
            Some(o) => return Err(invalid(&at(&fp, "arguments"), "a string", Some(o))),
        };
        let signature = signature_of_tool_call(tm);
        self.flush_complete_except(index, base, parts)?;
        match self.open.iter().position(|c| c.index == index) {
            Some(k) if id.is_some_and(|id| !self.open[k].id.is_empty() && self.open[k].id != id) => {
                // A new call reusing the index: the previous one is done.
                let old = self.open.remove(k);
                self.write(old, base, parts)?;
                self.open.push(OpenCall {
                    index,
                    id: id.unwrap_or_default().into(),
                    name: name.unwrap_or_default().into(),
                    args,
                    signature,
                });
            }
            Some(k) => {
                let c = &mut self.open[k];
                if let (true, Some(id)) = (c.id.is_empty(), id) {
                    c.id = id.into();
                }
                if let (true, Some(name)) = (c.name.is_empty(), name) {
                    c.name = name.into();
                }
                c.args.push_str(&args);
                if c.signature.is_none() {
                    c.signature = signature;
                }
            }
            None => {
                let closed = self.closed.get(&index).filter(|(done_id, _)| id.is_none_or(|id| id == done_id));
                if let Some((_, done)) = closed {
                    // A continuation (no id, or the same id repeated) of a call already written:
                    // only blanks or a replay of the whole arguments are fine.
                    if args.trim().is_empty() || args == *done {
                        return Ok(());
                    }
                    return Err(Error::validation(
                        at(&fp, "arguments"),
                        format!("tool call {index}: arguments continue after the call's JSON was complete"),
                    ));
                }
                self.open.push(OpenCall {
                    index,
                    id: id.unwrap_or_default().into(),
                    name: name.unwrap_or_default().into(),
                    args,
                    signature,
                });
            }
        }
        Ok(())
    }
}

impl Encoder {
    pub fn new() -> Self {
        Encoder::default()
    }

    fn fragment(&self, candidates: Vec<Value>) -> Value {
        let mut m = Obj::new();
        if !candidates.is_empty() {
            m.insert("candidates".into(), Value::Array(candidates));
        }
        if let Some(model) = &self.model {
            m.insert("modelVersion".into(), model.clone().into());
        }
        if let Some(id) = &self.id {
            m.insert("responseId".into(), id.clone().into());
        }
        Value::Object(m)
    }

    fn attach_usage(&mut self, frag: &mut Value) {
        if let Some(u) = self.usage.take() {
            frag["usageMetadata"] = u.clone();
            self.written_usage = Some(u);
        }
    }

    /// A fragment with only usage, unless that usage was written already.
    fn usage_fragment(&mut self) -> Option<Value> {
        let u = self.usage.take()?;
        if self.written_usage.as_ref() == Some(&u) {
            return None;
        }
        let mut f = self.fragment(vec![]);
        f["usageMetadata"] = u.clone();
        self.written_usage = Some(u);
        Some(f)
    }

    fn encode_choice(&mut self, ch: &Value, path: &str, pos: usize) -> Result<Option<(Value, bool)>> {
        let cm = as_obj(ch, path)?;
        let index = opt_uint(cm, "index", path)?.unwrap_or(pos as u64);
        let key = if get(cm, "delta").is_none() && get(cm, "message").is_some() { "message" } else { "delta" };
        let dp = at(path, key);
        let empty = Obj::new();
        let d = opt_obj(cm, key, path)?.unwrap_or(&empty);
        let mut parts = Vec::new();
        if let Some(r) = opt_str(d, "reasoning_content", &dp)?.filter(non_empty) {
            parts.push(json!({"text": r, "thought": true}));
        }
        if let Some(t) = opt_str(d, "content", &dp)?.filter(non_empty) {
            parts.push(json!({ "text": t }));
        }
        if let Some(images) = opt_arr(d, "images", &dp)? {
            for (j, p) in images.iter().enumerate() {
                parts.push(chat_part_to_gemini(p, &nth(&at(&dp, "images"), j))?);
            }
        }
        let st = self.choices.entry(index).or_default();
        let tool_base = at(&dp, "tool_calls");
        if let Some(tcs) = opt_arr(d, "tool_calls", &dp)? {
            for (j, tc) in tcs.iter().enumerate() {
                st.feed(tc, j, &tool_base, &mut parts)?;
            }
        }
        let finish = opt_str(cm, "finish_reason", path)?.filter(non_empty);
        if finish.is_some() {
            st.flush_all(&tool_base, &mut parts)?;
            st.finished = true;
        }
        if parts.is_empty() && finish.is_none() {
            return Ok(None);
        }
        let mut cand = json!({"content": {"role": "model", "parts": parts}});
        if let Some(f) = finish {
            cand["finishReason"] = finish_from_chat(f, opt_str(cm, "native_finish_reason", path)?).into();
        }
        cand["index"] = index.into();
        Ok(Some((cand, finish.is_some())))
    }
}

impl StreamEncoder for Encoder {
    fn push(&mut self, chunk: &Value) -> Result<Vec<Value>> {
        let c = as_obj(chunk, "chunk")?;
        if self.id.is_none() {
            self.id = opt_str(c, "id", "")?.filter(non_empty).map(String::from);
        }
        if self.model.is_none() {
            self.model = opt_str(c, "model", "")?.filter(non_empty).map(String::from);
        }
        let chunk_usage = match opt_obj(c, "usage", "")? {
            Some(u) => Some(usage_from_chat(u, "usage")?),
            None => None,
        };
        let mut candidates = Vec::new();
        let mut finishes = false;
        for (pos, ch) in opt_arr(c, "choices", "")?.into_iter().flatten().enumerate() {
            if let Some((cand, fin)) = self.encode_choice(ch, &nth("choices", pos), pos)? {
                finishes |= fin;
                candidates.push(cand);
            }
        }
        let has_usage = chunk_usage.is_some();
        if has_usage {
            self.usage = chunk_usage;
        }
        let mut out = Vec::new();
        if !candidates.is_empty() {
            out.extend(self.held.take());
            let mut frag = self.fragment(candidates);
            if !finishes {
                out.push(frag);
            } else if has_usage {
                self.attach_usage(&mut frag);
                out.push(frag);
            } else {
                self.held = Some(frag);
            }
        } else if has_usage {
            if let Some(mut held) = self.held.take() {
                self.attach_usage(&mut held);
                out.push(held);
            } else if !self.choices.is_empty() && self.choices.values().all(|c| c.finished) {
                out.extend(self.usage_fragment());
            }
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Value>> {
        let mut frags: Vec<Value> = self.held.take().into_iter().collect();
        // Calls of a stream that ended without a finish chunk.
        let mut candidates = Vec::new();
        for (index, st) in self.choices.iter_mut() {
            if !st.open.is_empty() {
                let mut parts = Vec::new();
                st.flush_all(&format!("choices[{index}].delta.tool_calls"), &mut parts)?;
                candidates.push(json!({"content": {"role": "model", "parts": parts}, "index": index}));
            }
        }
        if !candidates.is_empty() {
            frags.push(self.fragment(candidates));
        }
        match frags.pop() {
            Some(mut last) => {
                self.attach_usage(&mut last);
                frags.push(last);
            }
            None => frags.extend(self.usage_fragment()),
        }
        Ok(frags)
    }
}

#[cfg(test)]
mod tests;
