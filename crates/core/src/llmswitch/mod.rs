//! LLMSwitch: conversion between OpenAI Chat Completions, OpenAI Responses, Anthropic Messages
//! and Gemini `generateContent` — requests, responses and streams. Every conversion pivots
//! through OpenAI Chat (the engine's own shape): `X → chat → Y`. Streams are converted event
//! by event (an encoder/decoder keeps the little state a protocol needs), never by buffering
//! the whole stream.
//!
//! Each protocol module (`anthropic`, `gemini`, `responses`) provides the same six pieces:
//! `request_to_chat` / `request_from_chat`, `response_to_chat` / `response_from_chat`, a
//! `Decoder` (the protocol's stream events → chat chunks) and an `Encoder` (chat chunks → the
//! protocol's stream events), plus `error_body` (the protocol's error JSON for an `Error`).
//! Chat-side values are `serde_json::Value`s in the OpenAI shapes (`chat.completion`,
//! `chat.completion.chunk`); unknown fields the target protocol can carry pass through.

use serde_json::Value;

use crate::error::{Error, Result};

pub mod anthropic;
mod dispatch;
pub mod gemini;
pub mod responses;

pub use dispatch::{chat_request, convert_request, convert_response, decoder, encoder, error_body, StreamConverter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    OpenAIChat,
    OpenAIResponses,
    Anthropic,
    Gemini,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [Protocol::OpenAIChat, Protocol::OpenAIResponses, Protocol::Anthropic, Protocol::Gemini];

    /// `openai-chat`, `openai-responses`, `anthropic` or `gemini`.
    pub fn parse(s: &str) -> Result<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            Error::validation("protocol", format!("protocol must be one of 'openai-chat', 'openai-responses', 'anthropic', 'gemini', got '{s}'"))
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenAIChat => "openai-chat",
            Protocol::OpenAIResponses => "openai-responses",
            Protocol::Anthropic => "anthropic",
            Protocol::Gemini => "gemini",
        }
    }
}

/// Turns one protocol's stream events into OpenAI chat chunks.
pub trait StreamDecoder: Send {
    /// One event (an SSE `data` JSON; Anthropic events carry their `type`) → zero or more chunks.
    fn push(&mut self, event: &Value) -> Result<Vec<Value>>;
    /// The end of the stream → any chunks still owed (a final finish/usage chunk).
    fn finish(&mut self) -> Result<Vec<Value>>;
}

/// Turns OpenAI chat chunks into one protocol's stream events.
pub trait StreamEncoder: Send {
    fn push(&mut self, chunk: &Value) -> Result<Vec<Value>>;
    /// The end of the stream → closing events (Anthropic `message_stop`, Responses `response.completed`, ...).
    fn finish(&mut self) -> Result<Vec<Value>>;
}

