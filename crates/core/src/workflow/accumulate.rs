//! Rebuilds a `chat.completion` from stream chunks: per choice, content and reasoning are
//! joined, tool-call fragments are joined by `index` (an empty-string id is a continuation),
//! and `finish_reason`/usage are taken whenever they arrive.

use std::collections::BTreeMap;

use crate::model::{ChatChunk, ChatMessage, ChatResponse, Choice, Content, FunctionCall, ToolCall, Usage};

#[derive(Debug, Default)]
pub struct ChunkAccumulator {
    id: String,
    model: String,
    created: u64,
    choices: BTreeMap<u32, ChoiceState>,
    usage: Option<Usage>,
    chunks: usize,
}

#[derive(Debug, Default)]
struct ChoiceState {
    role: Option<String>,
    content: String,
    reasoning: String,
    tool_calls: BTreeMap<u32, ToolCall>,
    finish_reason: Option<String>,
}

impl ChunkAccumulator {
    pub fn push(&mut self, chunk: &ChatChunk) {
        self.chunks += 1;
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if self.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        if self.created == 0 {
            self.created = chunk.created;
        }
        if let Some(Some(u)) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        for c in &chunk.choices {
            let st = self.choices.entry(c.index).or_default();
            let d = &c.delta;
            if st.role.is_none() {
                st.role.clone_from(&d.role);
            }
            if let Some(Some(t)) = &d.content {
                st.content.push_str(t);
            }
            if let Some(Some(t)) = &d.reasoning_content {
                st.reasoning.push_str(t);
            }
            for (pos, tc) in d.tool_calls.iter().flatten().enumerate() {
                let idx = tc.index.unwrap_or(pos as u32);
                let acc = st.tool_calls.entry(idx).or_insert_with(|| ToolCall {
                    index: Some(idx),
                    kind: Some("function".into()),
                    function: Some(FunctionCall::default()),
                    ..Default::default()
                });
                if let Some(id) = tc.id.as_deref().filter(|s| !s.is_empty()) {
                    acc.id = Some(id.to_string());
                }
                if let Some(f) = &tc.function {
                    let af = acc.function.get_or_insert_with(Default::default);
                    if let Some(n) = f.name.as_deref().filter(|s| !s.is_empty()) {
                        af.name = Some(n.to_string());
                    }
                    if let Some(a) = &f.arguments {
                        af.arguments.get_or_insert_with(String::new).push_str(a);
                    }
                }
            }
            if c.finish_reason.is_some() {
                st.finish_reason.clone_from(&c.finish_reason);
            }
        }
    }

    pub fn chunk_count(&self) -> usize {
        self.chunks
    }

    /// The response as far as it got.
    pub fn to_response(&self) -> ChatResponse {
        let choices = self
            .choices
            .iter()
            .map(|(&index, st)| {
                let tool_calls: Vec<ToolCall> = st.tool_calls.values().cloned().collect();
                Choice {
                    index,
                    message: ChatMessage {
                        role: st.role.clone().unwrap_or_else(|| "assistant".into()),
                        content: Some(Some(Content::Text(st.content.clone()))),
                        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                        reasoning_content: (!st.reasoning.is_empty()).then(|| Some(st.reasoning.clone())),
                        ..Default::default()
                    },
                    finish_reason: st.finish_reason.clone(),
                    extra: Default::default(),
                }
            })
            .collect();
        ChatResponse {
            id: self.id.clone(),
            object: "chat.completion".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: self.usage.clone(),
            extra: Default::default(),
        }
    }

    /// True once every choice seen so far has a finish reason.
    pub fn all_finished(&self) -> bool {
        !self.choices.is_empty() && self.choices.values().all(|c| c.finish_reason.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(v: serde_json::Value) -> ChatChunk {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn joins_content_reasoning_and_tool_fragments_by_index() {
        let mut acc = ChunkAccumulator::default();
        acc.push(&chunk(json!({"id":"c1","model":"m","created":5,"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning_content":"think "}}]})));
        acc.push(&chunk(json!({"id":"c1","choices":[{"index":0,"delta":{"content":null,"reasoning_content":"more"}}]})));
        acc.push(&chunk(json!({"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"}}]})));
        acc.push(&chunk(json!({"id":"c1","choices":[{"index":0,"delta":{"content":"lo","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get","arguments":"{\"a\":"}}]}}]})));
        acc.push(&chunk(json!({"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"","type":"function","function":{"arguments":"1}"}}]}}]})));
        assert!(!acc.all_finished());
        acc.push(&chunk(json!({"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})));
        acc.push(&chunk(json!({"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})));
        assert!(acc.all_finished());
        let r = acc.to_response();
        let m = &r.choices[0].message;
        assert_eq!(m.text(), "Hello");
        assert_eq!(m.reasoning_content, Some(Some("think more".into())));
        let tc = &m.tool_calls.as_ref().unwrap()[0];
        assert_eq!(tc.id.as_deref(), Some("call_1"));
        assert_eq!(tc.function.as_ref().unwrap().arguments.as_deref(), Some("{\"a\":1}"));
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(r.usage.unwrap().total_tokens, 7);
        assert_eq!((r.id.as_str(), r.model.as_str(), r.created), ("c1", "m", 5));
        assert_eq!(acc.chunk_count(), 7);
    }
}
