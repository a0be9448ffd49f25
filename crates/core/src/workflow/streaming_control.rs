//! `StreamingControlWorkflow` (`workflow-module-README.md`): stream ⇄ non-stream control for
//! OpenAI chat.
//!
//! * **stream → non-stream** (`streamingToNonStreaming`, on by default): a `stream: true`
//!   request goes upstream with `stream: false`, without `stream_options`, and with
//!   `_originalStream: true` in the body, exactly as the seed's usage example shows
//!   (`{ model, messages, stream: false, _originalStream: true }`). The caller's
//!   `stream_options` (`_originalStreamOptions`) are kept in the returned [`Original`] only
//!   (the seed's documented result has no `_originalStreamOptions` in the body), and only when
//!   `preserveStreamOptions` is on. The whole response that comes back is turned into a chunk
//!   stream, with the usage chunk when the caller asked for `include_usage`.
//! * **non-stream → stream** (`nonStreamingToStreaming`, off by default; the seed left it
//!   unimplemented): a request without `stream: true` goes upstream with `stream: true`,
//!   `stream_options: {include_usage: true}` (so that usage can be reported) and
//!   `_originalStream: false`; the chunks that come back are rebuilt into one response.
//!
//! Whatever came back, [`StreamingControl::process_outgoing_response`] hands the caller the
//! shape it asked for: a whole response for a non-stream caller, chunks for a stream caller
//! (a chunk sequence for a stream caller and a response for a non-stream caller pass through
//! unchanged). The markers `_originalStream`/`_originalStreamOptions` are not OpenAI fields:
//! [`strip_markers`] removes them before a body goes to an upstream that rejects unknown
//! parameters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::accumulate::{AccumulatorWarning, ChunkAccumulator};
use super::to_chunks::{response_to_stream_with, ChunkingOptions};
use crate::error::{Error, Result};
use crate::model::{ChatChunk, ChatResponse};
use crate::validate::{invalid, Fields};

pub const WORKFLOW_TYPE: &str = "streaming-control";
pub const WORKFLOW_KIND: &str = "streaming-converter";
/// The body marker holding the caller's `stream`.
pub const ORIGINAL_STREAM: &str = "_originalStream";
/// The marker name of the caller's `stream_options`.
pub const ORIGINAL_STREAM_OPTIONS: &str = "_originalStreamOptions";

/// The seed's `StreamingControlConfig`, with its defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamingControlConfig {
    /// Send `stream: true` requests upstream as non-stream. Default true.
    pub streaming_to_non_streaming: bool,
    /// Send non-stream requests upstream as stream. Default false.
    pub non_streaming_to_streaming: bool,
    /// Accepted and reported (the seed's buffer size, 1024); the conversion holds whole
    /// responses, so it does not limit anything.
    pub buffer_size: usize,
    /// Characters of content/reasoning/arguments per generated chunk. Default 512.
    pub chunk_size: usize,
    /// Milliseconds. Accepted and reported (default 30000) for the caller that drives the
    /// upstream call; the conversion itself does no I/O.
    #[serde(rename = "timeout")]
    pub timeout_ms: u64,
    /// Remember the caller's `stream_options` when they are removed, so that a re-streamed
    /// response honours `include_usage`. Default true.
    pub preserve_stream_options: bool,
}

impl Default for StreamingControlConfig {
    fn default() -> Self {
        StreamingControlConfig {
            streaming_to_non_streaming: true,
            non_streaming_to_streaming: false,
            buffer_size: 1024,
            chunk_size: 512,
            timeout_ms: 30_000,
            preserve_stream_options: true,
        }
    }
}

fn bool_with_alias(f: &Fields, key: &str, alias: &str) -> Result<Option<bool>> {
    let a = f.bool(key)?;
    let b = f.bool(alias)?;
    match (a, b) {
        (Some(x), Some(y)) if x != y => {
            Err(Error::validation(f.path(key), format!("{} and {} disagree", f.path(key), f.path(alias))))
        }
        (x, y) => Ok(x.or(y)),
    }
}

impl StreamingControlConfig {
    /// The JS config: either the seed's constructor argument `{type: 'streaming-control',
    /// config: {...}}` or the config object itself: `{streamingToNonStreaming?,
    /// nonStreamingToStreaming?, bufferSize?, chunkSize?, timeout?, preserveStreamOptions?}`
    /// (`enableStreamingToNonStreaming`, `enableNonStreamingToStreaming` and
    /// `preserveStreamingOptions` are accepted as aliases). `null`/absent values take the
    /// defaults; unknown keys are ignored.
    pub fn from_value(v: &Value) -> Result<Self> {
        let empty = Map::new();
        let obj = match v {
            Value::Null => &empty,
            Value::Object(o) => o,
            other => return Err(invalid("config", "an object", Some(other))),
        };
        let (obj, prefix) = match obj.get("config") {
            None => (obj, ""),
            Some(inner) => {
                match obj.get("type") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(t)) if t == WORKFLOW_TYPE => {}
                    other => return Err(invalid("type", &format!("\"{WORKFLOW_TYPE}\""), other)),
                }
                match inner {
                    Value::Null => (&empty, "config"),
                    Value::Object(o) => (o, "config"),
                    other => return Err(invalid("config", "an object", Some(other))),
                }
            }
        };
        let f = Fields::new(obj, prefix);
        let mut c = StreamingControlConfig::default();
        if let Some(b) = bool_with_alias(&f, "streamingToNonStreaming", "enableStreamingToNonStreaming")? {
            c.streaming_to_non_streaming = b;
        }
        if let Some(b) = bool_with_alias(&f, "nonStreamingToStreaming", "enableNonStreamingToStreaming")? {
            c.non_streaming_to_streaming = b;
        }
        if let Some(b) = bool_with_alias(&f, "preserveStreamOptions", "preserveStreamingOptions")? {
            c.preserve_stream_options = b;
        }
        if let Some(n) = f.positive_int("bufferSize")? {
            c.buffer_size = n.min(1 << 40) as usize;
        }
        if let Some(n) = f.positive_int("chunkSize")? {
            c.chunk_size = n.min(1 << 40) as usize;
        }
        if let Some(d) = f.millis("timeout")? {
            c.timeout_ms = d.as_millis().max(1) as u64;
        }
        Ok(c)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Which way a request was turned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Conversion {
    /// The request went upstream as the caller sent it.
    #[default]
    None,
    StreamToNonStream,
    NonStreamToStream,
}

/// What the caller asked for, kept from `process_incoming` for `process_outgoing_response`.
/// Serialises with the seed's marker names.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Original {
    /// The caller's `stream` (`None` when absent).
    #[serde(rename = "_originalStream", default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// The caller's `stream_options`, when preserved.
    #[serde(rename = "_originalStreamOptions", default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<Value>,
    #[serde(default)]
    pub conversion: Conversion,
}

impl Original {
    /// The caller wants a chunk stream.
    pub fn wants_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// The caller asked for the usage chunk (`stream_options.include_usage`).
    pub fn include_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false)
    }

    /// What a request body says the caller asked for: the markers when it went through
    /// `process_incoming`, its own `stream`/`stream_options` otherwise.
    pub fn from_request(request: &Value) -> Original {
        let get = |k: &str| request.get(k).filter(|v| !v.is_null());
        match get(ORIGINAL_STREAM) {
            Some(s) => Original {
                stream: s.as_bool(),
                stream_options: get(ORIGINAL_STREAM_OPTIONS).cloned(),
                conversion: match (s.as_bool(), get("stream").and_then(Value::as_bool)) {
                    (Some(true), Some(false)) => Conversion::StreamToNonStream,
                    (Some(false) | None, Some(true)) => Conversion::NonStreamToStream,
                    _ => Conversion::None,
                },
            },
            None => Original {
                stream: get("stream").and_then(Value::as_bool),
                stream_options: get("stream_options").cloned(),
                conversion: Conversion::None,
            },
        }
    }
}

/// What goes back to the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// One `chat.completion`.
    Response(Value),
    /// `chat.completion.chunk` objects, in order (no `[DONE]`).
    Chunks(Vec<Value>),
}

impl Outgoing {
    pub fn is_stream(&self) -> bool {
        matches!(self, Outgoing::Chunks(_))
    }

    /// The response, or the chunks as an array.
    pub fn into_value(self) -> Value {
        match self {
            Outgoing::Response(v) => v,
            Outgoing::Chunks(c) => Value::Array(c),
        }
    }
}

/// Removes `_originalStream`/`_originalStreamOptions` from a body.
pub fn strip_markers(body: &mut Value) {
    if let Some(o) = body.as_object_mut() {
        o.remove(ORIGINAL_STREAM);
        o.remove(ORIGINAL_STREAM_OPTIONS);
    }
}

/// The seed's `getStatus()` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStatus {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub workflow_type: &'static str,
    pub is_initialized: bool,
    pub config: StreamingControlConfig,
    pub metrics: WorkflowMetrics,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowMetrics {
    /// `process_incoming` calls.
    pub processed_requests: u64,
    /// Of those, requests with `stream: true`.
    pub streaming_requests_processed: u64,
    /// Responses API events (always 0 here: this workflow handles chat).
    pub responses_events_processed: u64,
    /// Mean milliseconds per `process_incoming`/`process_outgoing_response` call.
    pub average_processing_time: f64,
    pub error_count: u64,
    pub stream_to_non_stream_conversions: u64,
    pub non_stream_to_stream_conversions: u64,
    /// Chunks generated from whole responses.
    pub chunks_emitted: u64,
    /// Chunks rebuilt into whole responses.
    pub chunks_collected: u64,
}

#[derive(Debug, Default)]
struct Metrics {
    processed: AtomicU64,
    streaming: AtomicU64,
    to_non_stream: AtomicU64,
    to_stream: AtomicU64,
    emitted: AtomicU64,
    collected: AtomicU64,
    errors: AtomicU64,
    calls: AtomicU64,
    nanos: AtomicU64,
}

/// The workflow. Methods take `&self`; counters are atomics, so one instance can serve
/// concurrent requests.
#[derive(Debug)]
pub struct StreamingControl {
    id: String,
    config: StreamingControlConfig,
    initialized: AtomicBool,
    metrics: Metrics,
}

impl Default for StreamingControl {
    fn default() -> Self {
        Self::new(StreamingControlConfig::default())
    }
}

fn error_message(e: &Value) -> String {
    match e {
        Value::String(s) => s.clone(),
        Value::Object(o) => o.get("message").and_then(Value::as_str).map(String::from).unwrap_or_else(|| e.to_string()),
        other => other.to_string(),
    }
}

fn envelope_error(v: &Value) -> Option<Error> {
    let e = v.get("error").filter(|e| !e.is_null())?;
    if v.get("choices").is_some_and(|c| c.as_array().is_some_and(|a| !a.is_empty())) {
        return None;
    }
    let code = e.get("code").or_else(|| e.get("type")).and_then(|c| match c {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let status = e.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok());
    Some(Error::Provider {
        message: format!("The upstream reported an error: {}", error_message(e)),
        status,
        body: Some(v.to_string()),
        provider_code: code,
        retry_after_ms: None,
    })
}

impl StreamingControl {
    pub fn new(config: StreamingControlConfig) -> Self {
        StreamingControl { id: WORKFLOW_TYPE.into(), config, initialized: AtomicBool::new(false), metrics: Metrics::default() }
    }

    /// From the JS config (see [`StreamingControlConfig::from_value`]); an `id` at the top
    /// level names the instance.
    pub fn from_value(v: &Value) -> Result<Self> {
        let config = StreamingControlConfig::from_value(v)?;
        let mut w = Self::new(config);
        match v.get("id") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.is_empty() => w.id = s.clone(),
            other => return Err(invalid("id", "a non-empty string", other)),
        }
        Ok(w)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn config(&self) -> &StreamingControlConfig {
        &self.config
    }

    /// The seed's `initialize()`: marks the workflow ready (nothing to set up).
    pub fn initialize(&self) {
        self.initialized.store(true, Ordering::Relaxed);
    }

    pub fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::Relaxed)
    }

    fn timed<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let r = f();
        self.metrics.calls.fetch_add(1, Ordering::Relaxed);
        self.metrics.nanos.fetch_add(started.elapsed().as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        if r.is_err() {
            self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// The body to send upstream and what the caller asked for. A body that already carries
    /// `_originalStream` went through here before and is returned unchanged.
    pub fn process_incoming(&self, request: &Value) -> Result<(Value, Original)> {
        self.timed(|| {
            let obj = request.as_object().ok_or_else(|| invalid("request", "an object", Some(request)))?;
            self.metrics.processed.fetch_add(1, Ordering::Relaxed);
            let stream = match obj.get("stream") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                other => return Err(invalid("stream", "a boolean", other)),
            };
            let stream_options = match obj.get("stream_options") {
                None | Some(Value::Null) => None,
                Some(v @ Value::Object(_)) => Some(v.clone()),
                other => return Err(invalid("stream_options", "an object", other)),
            };
            if stream == Some(true) {
                self.metrics.streaming.fetch_add(1, Ordering::Relaxed);
            }
            if obj.get(ORIGINAL_STREAM).is_some_and(|v| !v.is_null()) {
                return Ok((request.clone(), Original::from_request(request)));
            }
            let kept_options = if self.config.preserve_stream_options { stream_options.clone() } else { None };
            let mut body = obj.clone();
            let original = if stream == Some(true) && self.config.streaming_to_non_streaming {
                self.metrics.to_non_stream.fetch_add(1, Ordering::Relaxed);
                body.insert("stream".into(), false.into());
                body.remove("stream_options");
                body.insert(ORIGINAL_STREAM.into(), true.into());
                Original { stream, stream_options: kept_options, conversion: Conversion::StreamToNonStream }
            } else if stream != Some(true) && self.config.non_streaming_to_streaming {
                self.metrics.to_stream.fetch_add(1, Ordering::Relaxed);
                body.insert("stream".into(), true.into());
                body.insert("stream_options".into(), json!({"include_usage": true}));
                body.insert(ORIGINAL_STREAM.into(), false.into());
                Original { stream, stream_options: kept_options, conversion: Conversion::NonStreamToStream }
            } else {
                Original { stream, stream_options, conversion: Conversion::None }
            };
            Ok((Value::Object(body), original))
        })
    }

    /// What the upstream answered, in the shape the caller asked for. `response` is a
    /// `chat.completion`, one `chat.completion.chunk`, or an array of chunks (`"[DONE]"`
    /// strings are skipped). An error envelope (`{"error": {...}}`) is returned as an error.
    pub fn process_outgoing_response(&self, response: &Value, original: &Original) -> Result<Outgoing> {
        self.timed(|| {
            let is_chunk = |v: &Value| {
                v.get("object").and_then(Value::as_str) == Some("chat.completion.chunk")
                    || v.get("choices").and_then(Value::as_array).is_some_and(|cs| cs.iter().any(|c| c.get("delta").is_some()))
            };
            match response {
                Value::Array(items) => {
                    if original.wants_stream() {
                        return Ok(Outgoing::Chunks(items.iter().filter(|v| v.as_str() != Some("[DONE]")).cloned().collect()));
                    }
                    let mut c = StreamCollector::new();
                    for v in items {
                        c.push(v)?;
                    }
                    self.metrics.collected.fetch_add(c.chunk_count() as u64, Ordering::Relaxed);
                    Ok(Outgoing::Response(c.finish()?))
                }
                Value::Object(_) => {
                    if let Some(e) = envelope_error(response) {
                        return Err(e);
                    }
                    if is_chunk(response) {
                        if original.wants_stream() {
                            return Ok(Outgoing::Chunks(vec![response.clone()]));
                        }
                        let mut c = StreamCollector::new();
                        c.push(response)?;
                        self.metrics.collected.fetch_add(1, Ordering::Relaxed);
                        return Ok(Outgoing::Response(c.finish()?));
                    }
                    if !original.wants_stream() {
                        return Ok(Outgoing::Response(response.clone()));
                    }
                    let r: ChatResponse = serde_json::from_value(response.clone())
                        .map_err(|e| Error::validation("response", format!("response is not a chat.completion: {e}")))?;
                    let chunks = self.to_chunks(&r, original);
                    self.metrics.emitted.fetch_add(chunks.len() as u64, Ordering::Relaxed);
                    let values = chunks
                        .iter()
                        .map(serde_json::to_value)
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(|e| Error::Internal { message: format!("could not serialise a chunk: {e}") })?;
                    Ok(Outgoing::Chunks(values))
                }
                other => Err(invalid("response", "a chat.completion object or an array of chunks", Some(other))),
            }
        })
    }

    /// A whole response as the chunks a stream caller gets: pieces of `chunkSize` characters,
    /// `usage: null` on each chunk and a usage chunk last when the caller asked for
    /// `include_usage`.
    pub fn to_chunks(&self, response: &ChatResponse, original: &Original) -> Vec<ChatChunk> {
        let opts = ChunkingOptions { chunk_size: Some(self.config.chunk_size), include_usage: Some(original.include_usage()) };
        response_to_stream_with(response, &opts)
    }

    /// An incremental collector for a chunk stream going to a non-stream caller.
    pub fn collector(&self) -> StreamCollector {
        StreamCollector::new()
    }

    /// The seed's `createStreamingErrorResponse`: one chunk carrying the error text, for a
    /// caller that is being streamed to.
    pub fn error_chunk(&self, error: &Error) -> Value {
        json!({
            "id": format!("error_{}", crate::model::now_secs() * 1000),
            "object": "chat.completion.chunk",
            "created": crate::model::now_secs(),
            "model": "error-model",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": format!("Error: {error}")}, "finish_reason": "error"}],
            "_errorContext": {"originalError": error.to_string(), "code": error.code(), "workflowType": WORKFLOW_TYPE},
        })
    }

    pub fn status(&self) -> WorkflowStatus {
        let m = &self.metrics;
        let calls = m.calls.load(Ordering::Relaxed);
        let nanos = m.nanos.load(Ordering::Relaxed);
        WorkflowStatus {
            id: self.id.clone(),
            kind: WORKFLOW_TYPE,
            workflow_type: WORKFLOW_KIND,
            is_initialized: self.is_initialized(),
            config: self.config.clone(),
            metrics: WorkflowMetrics {
                processed_requests: m.processed.load(Ordering::Relaxed),
                streaming_requests_processed: m.streaming.load(Ordering::Relaxed),
                responses_events_processed: 0,
                average_processing_time: if calls == 0 { 0.0 } else { nanos as f64 / calls as f64 / 1e6 },
                error_count: m.errors.load(Ordering::Relaxed),
                stream_to_non_stream_conversions: m.to_non_stream.load(Ordering::Relaxed),
                non_stream_to_stream_conversions: m.to_stream.load(Ordering::Relaxed),
                chunks_emitted: m.emitted.load(Ordering::Relaxed),
                chunks_collected: m.collected.load(Ordering::Relaxed),
            },
        }
    }
}

/// Collects a chunk stream, one chunk at a time, into one `chat.completion`.
#[derive(Debug, Default)]
pub struct StreamCollector {
    acc: ChunkAccumulator,
}

impl StreamCollector {
    pub fn new() -> Self {
        Self::default()
    }

    /// One chunk as JSON. `"[DONE]"` is ignored; an error envelope fails with a provider error
    /// (before any chunk) or a stream error carrying the partial response.
    pub fn push(&mut self, chunk: &Value) -> Result<()> {
        if chunk.as_str().is_some_and(|s| s.trim() == "[DONE]") {
            return Ok(());
        }
        if let Some(e) = envelope_error(chunk) {
            return Err(if self.acc.chunk_count() == 0 {
                e
            } else {
                Error::Stream {
                    message: format!("The upstream reported an error mid-stream after {} chunks: {e}", self.acc.chunk_count()),
                    partial: serde_json::to_value(self.acc.to_response()).ok(),
                }
            });
        }
        if !chunk.is_object() {
            return Err(invalid(&format!("chunks[{}]", self.acc.chunk_count()), "a chat.completion.chunk object", Some(chunk)));
        }
        let c: ChatChunk = serde_json::from_value(chunk.clone()).map_err(|e| {
            let field = format!("chunks[{}]", self.acc.chunk_count());
            Error::validation(field.clone(), format!("{field} is not a chat.completion.chunk: {e}"))
        })?;
        self.acc.push(&c);
        Ok(())
    }

    pub fn push_chunk(&mut self, chunk: &ChatChunk) {
        self.acc.push(chunk);
    }

    pub fn chunk_count(&self) -> usize {
        self.acc.chunk_count()
    }

    pub fn warnings(&self) -> Vec<AccumulatorWarning> {
        self.acc.warnings()
    }

    /// The rebuilt response so far.
    pub fn response(&self) -> ChatResponse {
        self.acc.to_response()
    }

    /// The rebuilt response. A stream without any chunk is a stream error. A stream that
    /// ended without `finish_reason` still gives its response (`finish_reason: null`).
    pub fn finish_response(self) -> Result<ChatResponse> {
        if self.acc.chunk_count() == 0 {
            return Err(Error::Stream { message: "The stream ended without any chunk".into(), partial: None });
        }
        Ok(self.acc.to_response())
    }

    pub fn finish(self) -> Result<Value> {
        let r = self.finish_response()?;
        serde_json::to_value(r).map_err(|e| Error::Internal { message: format!("could not serialise the response: {e}") })
    }
}
