//! A whole `chat.completion` as the chunk sequence a streaming upstream would have sent:
//! per choice a role+content chunk (with reasoning and tool calls), then a finish chunk, then
//! a usage chunk when usage is known.

use crate::model::{ChatChunk, ChatResponse, ChunkChoice, Content, Delta, ToolCall};

pub fn response_to_chunks(r: &ChatResponse) -> Vec<ChatChunk> {
    let base = |choices: Vec<ChunkChoice>| ChatChunk {
        id: r.id.clone(),
        object: "chat.completion.chunk".into(),
        created: r.created,
        model: r.model.clone(),
        choices,
        usage: None,
        extra: Default::default(),
    };
    let mut out = Vec::with_capacity(r.choices.len() * 2 + 1);
    for c in &r.choices {
        let m = &c.message;
        let content = match &m.content {
            Some(Some(Content::Text(s))) => Some(Some(s.clone())),
            Some(Some(Content::Parts(_))) => Some(Some(m.text())),
            Some(None) => Some(None),
            None => None,
        };
        let tool_calls = m.tool_calls.as_ref().map(|calls| {
            calls
                .iter()
                .enumerate()
                .map(|(i, tc)| ToolCall { index: Some(tc.index.unwrap_or(i as u32)), ..tc.clone() })
                .collect()
        });
        let delta = Delta {
            role: Some(if m.role.is_empty() { "assistant".into() } else { m.role.clone() }),
            content,
            reasoning_content: m.reasoning_content.clone(),
            tool_calls,
            extra: Default::default(),
        };
        out.push(base(vec![ChunkChoice { index: c.index, delta, finish_reason: None, extra: Default::default() }]));
        out.push(base(vec![ChunkChoice {
            index: c.index,
            delta: Delta::default(),
            finish_reason: Some(c.finish_reason.clone().unwrap_or_else(|| "stop".into())),
            extra: Default::default(),
        }]));
    }
    if let Some(u) = &r.usage {
        let mut last = base(Vec::new());
        last.usage = Some(Some(u.clone()));
        out.push(last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::ChunkAccumulator;
    use serde_json::json;

    #[test]
    fn chunks_rebuild_the_same_response() {
        let r: ChatResponse = serde_json::from_value(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "hi",
                "reasoning_content": "r", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        }))
        .unwrap();
        let chunks = response_to_chunks(&r);
        assert_eq!(chunks.len(), 3);
        let mut acc = ChunkAccumulator::default();
        chunks.iter().for_each(|c| acc.push(c));
        let back = acc.to_response();
        assert_eq!(back.choices[0].message.text(), "hi");
        assert_eq!(back.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(back.choices[0].message.tool_calls.as_ref().unwrap()[0].id.as_deref(), Some("call_1"));
        assert_eq!(back.usage, r.usage);
    }
}
