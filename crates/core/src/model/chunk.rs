use serde::{Deserialize, Serialize};

use super::{double_option, generated_id, normalize_created, Extra, ToolCall, Usage};

/// One `chat.completion.chunk` of a stream.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatChunk {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub usage: Option<Option<Usage>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub content: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub reasoning_content: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatChunk {
    /// Standard shape for callers: `object`, an id, `created` in seconds, the model, and a
    /// `delta` even from upstreams that put a `message` in stream chunks.
    pub fn normalize(&mut self, requested_model: &str, stream_id: &mut Option<String>) {
        self.object = "chat.completion.chunk".into();
        if self.id.is_empty() {
            self.id = stream_id.get_or_insert_with(|| generated_id("chatcmpl-")).clone();
        }
        if self.model.is_empty() {
            self.model = requested_model.to_string();
        }
        self.created = normalize_created(self.created);
        for c in &mut self.choices {
            if c.delta == Delta::default() {
                if let Some(msg) = c.extra.remove("message") {
                    if let Ok(d) = serde_json::from_value::<Delta>(msg) {
                        c.delta = d;
                    }
                }
            }
        }
    }

    /// This chunk with `content` as the delta content of its first choice.
    pub fn with_content(&self, content: &str) -> ChatChunk {
        let mut c = self.clone();
        if let Some(choice) = c.choices.first_mut() {
            choice.delta.content = Some(Some(content.to_string()));
        }
        c
    }

    pub fn content(&self) -> Option<&str> {
        self.choices.first().and_then(|c| c.delta.content.as_ref()).and_then(|c| c.as_deref())
    }
}
