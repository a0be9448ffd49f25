//! The workflow and LLMSwitch surface: protocol conversion, chunk streams ⇄ responses, the
//! streaming tool-call parser, stream control and the Responses event rebuild. JSON text in and
//! out; everything is in `rcc_core::workflow` and `rcc_core::llmswitch`.

use std::sync::Mutex;

use napi_derive::napi;
use rcc_core::llmswitch::{self, Protocol, StreamConverter};
use rcc_core::model::{ChatChunk, ChatResponse};
use rcc_core::workflow::{self, ChunkingOptions, Original, ResponsesRebuilder, ResponsesRebuilderConfig, StreamingControl, StreamingToolCallParser};
use rcc_core::Error;
use serde_json::{json, Value};

use crate::error::{parse_json, to_napi};

fn protocol(name: &str) -> napi::Result<Protocol> {
    Protocol::parse(name).map_err(|e| to_napi(e, None))
}

fn core<T>(r: rcc_core::Result<T>) -> napi::Result<T> {
    r.map_err(|e| to_napi(e, None))
}

fn text(v: &impl serde::Serialize) -> napi::Result<String> {
    serde_json::to_string(v).map_err(|e| to_napi(Error::Internal { message: e.to_string() }, None))
}

fn typed<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> napi::Result<T> {
    serde_json::from_value(v).map_err(|e| to_napi(Error::validation(what, format!("{what} does not have the expected shape: {e}")), None))
}

#[napi]
pub fn convert_request(body_json: String, from: String, to: String) -> napi::Result<String> {
    let body = parse_json(&body_json, "request")?;
    text(&core(llmswitch::convert_request(&body, protocol(&from)?, protocol(&to)?))?)
}

#[napi]
pub fn convert_response(body_json: String, from: String, to: String) -> napi::Result<String> {
    let body = parse_json(&body_json, "response")?;
    text(&core(llmswitch::convert_response(&body, protocol(&from)?, protocol(&to)?))?)
}

/// The error body a client of `protocol` expects, from a JS error's `{code, message, status, retryAfterMs}`.
#[napi]
pub fn protocol_error_body(payload_json: String, protocol_name: String) -> napi::Result<String> {
    let payload = parse_json(&payload_json, "error")?;
    let e = Error::from_payload(&payload);
    text(&llmswitch::error_body(&e, protocol(&protocol_name)?))
}

/// Converts a stream event by event.
#[napi(js_name = "NativeStreamConverter")]
pub struct NativeStreamConverter {
    inner: Mutex<StreamConverter>,
}

#[napi]
impl NativeStreamConverter {
    #[napi(constructor)]
    pub fn new(from: String, to: String) -> napi::Result<Self> {
        Ok(NativeStreamConverter { inner: Mutex::new(StreamConverter::new(protocol(&from)?, protocol(&to)?)) })
    }

    /// One event in; a JSON array of events out.
    #[napi]
    pub fn push(&self, event_json: String) -> napi::Result<String> {
        let event = parse_json(&event_json, "event")?;
        let out = core(self.inner.lock().unwrap_or_else(|p| p.into_inner()).push(&event))?;
        text(&out)
    }

    /// The closing events.
    #[napi]
    pub fn finish(&self) -> napi::Result<String> {
        text(&core(self.inner.lock().unwrap_or_else(|p| p.into_inner()).finish())?)
    }
}

/// A chat.completion as its chunk stream; options `{chunkSize?, includeUsage?}`.
#[napi]
pub fn response_to_stream(response_json: String, options_json: Option<String>) -> napi::Result<String> {
    let response: ChatResponse = typed(parse_json(&response_json, "response")?, "response")?;
    let options = match options_json {
        Some(t) => core(ChunkingOptions::from_value(&parse_json(&t, "options")?))?,
        None => ChunkingOptions::default(),
    };
    text(&workflow::response_to_stream_with(&response, &options))
}

/// A chunk stream rebuilt into one chat.completion.
#[napi]
pub fn stream_to_response(chunks_json: String) -> napi::Result<String> {
    let chunks: Vec<ChatChunk> = typed(parse_json(&chunks_json, "chunks")?, "chunks")?;
    text(&workflow::stream_to_response(&chunks))
}

#[napi(js_name = "NativeToolCallParser")]
pub struct NativeToolCallParser {
    inner: Mutex<StreamingToolCallParser>,
}

#[napi]
impl NativeToolCallParser {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        NativeToolCallParser { inner: Mutex::new(StreamingToolCallParser::new()) }
    }

    #[napi]
    pub fn add_chunk(&self, index: u32, chunk: String, id: Option<String>, name: Option<String>) -> napi::Result<String> {
        let r = self.inner.lock().unwrap_or_else(|p| p.into_inner()).add_chunk(index as usize, &chunk, id.as_deref(), name.as_deref());
        text(&r)
    }

    #[napi]
    pub fn get_completed_tool_calls(&self) -> napi::Result<String> {
        text(&self.inner.lock().unwrap_or_else(|p| p.into_inner()).get_completed_tool_calls())
    }

    #[napi]
    pub fn reset(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).reset();
    }
}

#[napi(js_name = "NativeStreamingControl")]
pub struct NativeStreamingControl {
    inner: StreamingControl,
}

#[napi]
impl NativeStreamingControl {
    #[napi(constructor)]
    pub fn new(config_json: String) -> napi::Result<Self> {
        let config = parse_json(&config_json, "config")?;
        Ok(NativeStreamingControl { inner: core(StreamingControl::from_value(&config))? })
    }

    /// `{request, original}`: the request to send, and what the caller asked for.
    #[napi]
    pub fn process_incoming(&self, request_json: String) -> napi::Result<String> {
        let request = parse_json(&request_json, "request")?;
        let (out, original) = core(self.inner.process_incoming(&request))?;
        text(&json!({"request": out, "original": original}))
    }

    /// The answer in the shape the caller asked for (`original` from `processIncoming`).
    #[napi]
    pub fn process_outgoing(&self, response_json: String, original_json: String) -> napi::Result<String> {
        let response = parse_json(&response_json, "response")?;
        let original: Original = typed(parse_json(&original_json, "original")?, "original")?;
        text(&core(self.inner.process_outgoing_response(&response, &original))?.into_value())
    }

    #[napi]
    pub fn status(&self) -> napi::Result<String> {
        text(&self.inner.status())
    }
}

/// `Original` as a request body marks it (for callers that kept only the body).
#[napi]
pub fn original_from_request(request_json: String) -> napi::Result<String> {
    text(&Original::from_request(&parse_json(&request_json, "request")?))
}

#[napi(js_name = "NativeResponsesRebuilder")]
pub struct NativeResponsesRebuilder {
    inner: Mutex<Option<ResponsesRebuilder>>,
}

#[napi]
impl NativeResponsesRebuilder {
    #[napi(constructor)]
    pub fn new(config_json: String) -> napi::Result<Self> {
        let config = core(ResponsesRebuilderConfig::from_json(&parse_json(&config_json, "config")?))?;
        Ok(NativeResponsesRebuilder { inner: Mutex::new(Some(ResponsesRebuilder::with_config(config))) })
    }

    #[napi]
    pub fn push(&self, event_json: String) -> napi::Result<()> {
        let event = parse_json(&event_json, "event")?;
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let r = guard.as_mut().ok_or_else(|| to_napi(Error::validation("events", "the stream was already finished"), None))?;
        core(r.push(&event))
    }

    /// The complete Responses object.
    #[napi]
    pub fn finish(&self) -> napi::Result<String> {
        let r = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        let r = r.ok_or_else(|| to_napi(Error::validation("events", "the stream was already finished"), None))?;
        text(&core(r.finish())?)
    }
}

/// Responses SSE text → its events.
#[napi]
pub fn parse_responses_sse(sse: String) -> napi::Result<String> {
    text(&core(workflow::responses::parse_sse(&sse))?)
}
