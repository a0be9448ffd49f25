use serde::Serialize;

use super::de::deserialize_keeping_extra;
use super::{generated_id, normalize_created, ChatMessage, Extra, Usage};

/// A whole `chat.completion`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ChatResponse {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub message: ChatMessage,
    /// Always written (as `null` when unknown), as OpenAI does.
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

deserialize_keeping_extra!(ChatResponse { id: plain, object: plain, created: plain, model: plain, choices: plain, usage: plain });
deserialize_keeping_extra!(Choice { index: plain, message: plain, finish_reason: plain });

impl ChatResponse {
    /// Brings an upstream body to the standard shape: `object`, an id, `created` in seconds,
    /// the model when the upstream left it out.
    pub fn normalize(&mut self, requested_model: &str) {
        if self.object.is_empty() {
            self.object = "chat.completion".into();
        }
        if self.id.is_empty() {
            self.id = generated_id("chatcmpl-");
        }
        if self.model.is_empty() {
            self.model = requested_model.to_string();
        }
        self.created = normalize_created(self.created);
        for c in &mut self.choices {
            if c.message.role.is_empty() {
                c.message.role = "assistant".into();
            }
        }
    }
}
