use serde::Serialize;
use serde_json::Value;

use super::de::deserialize_keeping_extra;
use super::{ChatMessage, Extra, Tool};
use crate::error::{Error, Result};

/// An OpenAI chat-completions request. Sampling knobs the engine never reads stay in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ChatRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

deserialize_keeping_extra!(ChatRequest { model: plain, messages: plain, stream: plain, stream_options: plain, max_tokens: plain, tools: plain, tool_choice: plain });
deserialize_keeping_extra!(StreamOptions { include_usage: plain });

impl ChatRequest {
    /// Parses a request from JSON text. A value of the wrong type is reported with its path
    /// (`messages[1].content: invalid type ...`).
    pub fn from_json(text: &str) -> Result<Self> {
        // Tracking the path costs a fifth of the parse: only a request that fails pays for it.
        match serde_json::from_str::<ChatRequest>(text) {
            Ok(req) => Ok(req.settled()),
            Err(_) => Self::deserialize_from(&mut serde_json::Deserializer::from_str(text)),
        }
    }

    /// The same from an already parsed value (a request converted from another protocol).
    pub fn from_value(value: Value) -> Result<Self> {
        Self::deserialize_from(value)
    }

    fn deserialize_from<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Self>
    where
        D::Error: std::fmt::Display,
    {
        let req: ChatRequest = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "request".to_string() } else { path };
            Error::validation(field.clone(), format!("Invalid request: {field}: {}", e.inner()))
        })?;
        Ok(req.settled())
    }

    /// A freshly parsed request, made ready to wait in a queue.
    fn settled(mut self) -> Self {
        self.adopt_camel_case_aliases();
        // serde grows the Vec to 4 slots of 224 bytes for a single message: give back what a
        // request that may wait in a queue for a while does not use.
        self.messages.shrink_to_fit();
        self
    }

    /// The original README's examples write `maxTokens`; the wire name is `max_tokens`.
    fn adopt_camel_case_aliases(&mut self) {
        if let Some(v) = self.extra.remove("maxTokens") {
            if self.max_tokens.is_none() {
                self.max_tokens = v.as_u64();
            }
        }
    }

    /// Checks what every upstream needs, with the original package's messages.
    /// `default_model` fills in a missing model.
    pub fn validate(&mut self, default_model: Option<&str>) -> Result<()> {
        let has_model = self.model.as_deref().is_some_and(|m| !m.trim().is_empty());
        if !has_model {
            match default_model {
                Some(m) if !m.is_empty() => self.model = Some(m.to_string()),
                _ => return Err(Error::validation("model", "Model is required")),
            }
        }
        if self.messages.is_empty() {
            return Err(Error::validation("messages", "Messages are required"));
        }
        for (i, m) in self.messages.iter().enumerate() {
            if m.role.trim().is_empty() {
                return Err(Error::validation(format!("messages[{i}].role"), format!("messages[{i}].role is required")));
            }
        }
        Ok(())
    }

    pub fn wants_usage_in_stream(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.include_usage).unwrap_or(false)
    }
}
