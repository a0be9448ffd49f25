//! Conversion between any two protocols through OpenAI Chat, and the stream converter.

use serde_json::Value;

use super::{anthropic, gemini, responses, Protocol, StreamDecoder, StreamEncoder};
use crate::error::{Error, Result};

/// `body` of protocol `from` as an OpenAI chat request.
fn request_to_chat(body: &Value, from: Protocol) -> Result<Value> {
    match from {
        Protocol::OpenAIChat => Ok(body.clone()),
        Protocol::OpenAIResponses => responses::request_to_chat(body),
        Protocol::Anthropic => anthropic::request_to_chat(body),
        Protocol::Gemini => gemini::request_to_chat(body),
    }
}

fn request_from_chat(chat: &Value, to: Protocol) -> Result<Value> {
    match to {
        Protocol::OpenAIChat => Ok(chat.clone()),
        Protocol::OpenAIResponses => responses::request_from_chat(chat),
        Protocol::Anthropic => anthropic::request_from_chat(chat),
        Protocol::Gemini => gemini::request_from_chat(chat),
    }
}

fn response_to_chat(body: &Value, from: Protocol) -> Result<Value> {
    match from {
        Protocol::OpenAIChat => Ok(body.clone()),
        Protocol::OpenAIResponses => responses::response_to_chat(body),
        Protocol::Anthropic => anthropic::response_to_chat(body),
        Protocol::Gemini => gemini::response_to_chat(body),
    }
}

fn response_from_chat(chat: &Value, to: Protocol) -> Result<Value> {
    match to {
        Protocol::OpenAIChat => Ok(chat.clone()),
        Protocol::OpenAIResponses => responses::response_from_chat(chat),
        Protocol::Anthropic => anthropic::response_from_chat(chat),
        Protocol::Gemini => gemini::response_from_chat(chat),
    }
}

/// A request body of protocol `from` (JSON text) as the engine's chat request.
pub fn chat_request(text: &str, from: Protocol) -> Result<crate::model::ChatRequest> {
    if from == Protocol::OpenAIChat {
        return crate::model::ChatRequest::from_json(text);
    }
    let body: Value = serde_json::from_str(text).map_err(|e| Error::validation("request", format!("request is not valid JSON: {e}")))?;
    crate::model::ChatRequest::from_value(request_to_chat(&body, from)?)
}

/// A request of protocol `from` in protocol `to`.
pub fn convert_request(body: &Value, from: Protocol, to: Protocol) -> Result<Value> {
    if from == to {
        return Ok(body.clone());
    }
    request_from_chat(&request_to_chat(body, from)?, to)
}

/// A response of protocol `from` in protocol `to`.
pub fn convert_response(body: &Value, from: Protocol, to: Protocol) -> Result<Value> {
    if from == to {
        return Ok(body.clone());
    }
    response_from_chat(&response_to_chat(body, from)?, to)
}

/// Chat chunks → `to`'s events (`None` for chat itself: chunks pass through).
pub fn encoder(to: Protocol) -> Option<Box<dyn StreamEncoder>> {
    match to {
        Protocol::OpenAIChat => None,
        Protocol::OpenAIResponses => Some(Box::new(responses::Encoder::new())),
        Protocol::Anthropic => Some(Box::new(anthropic::Encoder::new())),
        Protocol::Gemini => Some(Box::new(gemini::Encoder::new())),
    }
}

/// `from`'s events → chat chunks (`None` for chat itself).
pub fn decoder(from: Protocol) -> Option<Box<dyn StreamDecoder>> {
    match from {
        Protocol::OpenAIChat => None,
        Protocol::OpenAIResponses => Some(Box::new(responses::Decoder::new())),
        Protocol::Anthropic => Some(Box::new(anthropic::Decoder::new())),
        Protocol::Gemini => Some(Box::new(gemini::Decoder::new())),
    }
}

/// Converts a stream event by event: `from`'s events in, `to`'s events out.
pub struct StreamConverter {
    decoder: Option<Box<dyn StreamDecoder>>,
    encoder: Option<Box<dyn StreamEncoder>>,
}

impl StreamConverter {
    pub fn new(from: Protocol, to: Protocol) -> Self {
        if from == to {
            return StreamConverter { decoder: None, encoder: None };
        }
        StreamConverter { decoder: decoder(from), encoder: encoder(to) }
    }

    fn encode(&mut self, chunks: Vec<Value>, out: &mut Vec<Value>) -> Result<()> {
        match &mut self.encoder {
            None => out.extend(chunks),
            Some(enc) => {
                for c in &chunks {
                    out.extend(enc.push(c)?);
                }
            }
        }
        Ok(())
    }

    pub fn push(&mut self, event: &Value) -> Result<Vec<Value>> {
        let chunks = match &mut self.decoder {
            None => vec![event.clone()],
            Some(dec) => dec.push(event)?,
        };
        let mut out = Vec::new();
        self.encode(chunks, &mut out)?;
        Ok(out)
    }

    pub fn finish(&mut self) -> Result<Vec<Value>> {
        let chunks = match &mut self.decoder {
            None => Vec::new(),
            Some(dec) => dec.finish()?,
        };
        let mut out = Vec::new();
        self.encode(chunks, &mut out)?;
        if let Some(enc) = &mut self.encoder {
            out.extend(enc.finish()?);
        }
        Ok(out)
    }
}

/// The error body a client of `protocol` expects for `e`.
pub fn error_body(e: &Error, protocol: Protocol) -> Value {
    match protocol {
        Protocol::OpenAIChat => serde_json::json!({"error": {"message": e.to_string(), "type": e.code(), "code": e.code()}}),
        Protocol::OpenAIResponses => responses::error_body(e),
        Protocol::Anthropic => anthropic::error_body(e),
        Protocol::Gemini => gemini::error_body(e),
    }
}
