use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::de::deserialize_keeping_extra;
use super::{double_option, Extra};

/// One message of a conversation. `role` stays a free string so that newer roles
/// (`developer`, `function`) pass through.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ChatMessage {
    #[serde(default)]
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub content: Option<Option<Content>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Vendor extension (Qwen, DeepSeek, ...): the model's visible reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub reasoning_content: Option<Option<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

deserialize_keeping_extra!(ChatMessage { role: plain, content: nullable, name: plain, tool_calls: plain, tool_call_id: plain, reasoning_content: nullable });

impl ChatMessage {
    /// The text of the message: the string content, or its text parts joined.
    pub fn text(&self) -> String {
        match &self.content {
            Some(Some(Content::Text(s))) => s.clone(),
            Some(Some(Content::Parts(parts))) => parts.iter().filter_map(|p| p.text.as_deref()).collect::<Vec<_>>().join(""),
            _ => String::new(),
        }
    }
}

/// `content` is either a plain string or a list of typed parts (text, image_url, input_audio, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// By hand rather than derived: `#[serde(untagged)]` buffers the value to try each variant.
/// A value of neither shape is refused naming both (the derive said "data did not match any
/// variant of untagged enum Content").
impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of content parts")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Content, E> {
                Ok(Content::Text(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Content, E> {
                Ok(Content::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Content, A::Error> {
                Vec::<ContentPart>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(Content::Parts)
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tool call, whole (in a response) or a fragment (in a stream delta, keyed by `index`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCall>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FunctionCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// JSON text; in streams a fragment that is valid JSON only once joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tool the model may call (`{"type":"function","function":{name, description, parameters}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDef>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Token accounting. Details objects (`prompt_tokens_details.cached_tokens`,
/// `completion_tokens_details.reasoning_tokens`) pass through as they came.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

deserialize_keeping_extra!(Usage { prompt_tokens: plain, completion_tokens: plain, total_tokens: plain });
