//! A whole `chat.completion` as the chunk sequence a streaming upstream would have sent. Per
//! choice, in order:
//! 1. a role chunk: `role`, `content: ""` (or `null` when the message's content is null),
//!    `reasoning_content: ""`/`null` when the message has that field, the message's unknown
//!    fields, and the choice's unknown fields (`logprobs`, ...);
//! 2. `reasoning_content` pieces, then `content` pieces (one piece each unless `chunk_size`);
//! 3. per tool call, a first fragment with `index` (its position), `id`, `type` and
//!    `function.name` with `arguments: ""`, then the arguments in pieces;
//! 4. a finish chunk (`delta: {}`, the choice's `finish_reason`, `stop` when it had none).
//!
//! Then, when usage is wanted and known, a usage chunk with `choices: []`. Every chunk keeps
//! the response's `id`, `created`, `model` and unknown top-level fields (`system_fingerprint`).

use crate::model::{ChatChunk, ChatResponse, ChunkChoice, Content, Delta, FunctionCall, ToolCall};

/// How [`response_to_stream_with`] cuts a response into chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkingOptions {
    /// At most this many characters of content, reasoning or arguments per chunk. `None` (or
    /// 0): each in one piece.
    pub chunk_size: Option<usize>,
    /// `None`: a usage chunk when the response has usage. `Some(true)`: OpenAI's
    /// `stream_options.include_usage` shape, `"usage": null` on every chunk and the usage
    /// chunk last (when the response has usage). `Some(false)`: no usage anywhere.
    pub include_usage: Option<bool>,
}

impl ChunkingOptions {
    /// The JS options `{chunkSize?, includeUsage?}` (`chunk_size`/`include_usage` accepted
    /// too); `null`/absent means the default, `chunkSize: 0` one piece per field.
    pub fn from_value(v: &serde_json::Value) -> crate::Result<Self> {
        use crate::validate::{invalid, Fields};
        let empty = serde_json::Map::new();
        let obj = match v {
            serde_json::Value::Null => &empty,
            serde_json::Value::Object(o) => o,
            other => return Err(invalid("options", "an object", Some(other))),
        };
        let f = Fields::new(obj, "");
        let size = match f.non_negative_int("chunkSize")? {
            Some(n) => Some(n),
            None => f.non_negative_int("chunk_size")?,
        };
        let include_usage = match f.bool("includeUsage")? {
            Some(b) => Some(b),
            None => f.bool("include_usage")?,
        };
        Ok(ChunkingOptions { chunk_size: size.map(|n| n.min(usize::MAX as u64) as usize).filter(|&n| n > 0), include_usage })
    }
}

/// The chunk sequence for a response, with usage when it is known.
pub fn response_to_chunks(r: &ChatResponse) -> Vec<ChatChunk> {
    response_to_stream_with(r, &ChunkingOptions::default())
}

/// API.md's name for [`response_to_chunks`].
pub fn response_to_stream(r: &ChatResponse) -> Vec<ChatChunk> {
    response_to_chunks(r)
}

/// Splits text into pieces of at most `size` characters (never inside a character).
fn pieces(s: &str, size: Option<usize>) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let size = match size {
        Some(n) if n > 0 => n,
        _ => return vec![s],
    };
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, _) in s.char_indices() {
        if count == size {
            out.push(&s[start..i]);
            start = i;
            count = 0;
        }
        count += 1;
    }
    out.push(&s[start..]);
    out
}

pub fn response_to_stream_with(r: &ChatResponse, opts: &ChunkingOptions) -> Vec<ChatChunk> {
    let base = |choices: Vec<ChunkChoice>| ChatChunk {
        id: r.id.clone(),
        object: "chat.completion.chunk".into(),
        created: r.created,
        model: r.model.clone(),
        choices,
        usage: (opts.include_usage == Some(true)).then_some(None),
        extra: r.extra.clone(),
    };
    let one = |index: u32, delta: Delta| base(vec![ChunkChoice { index, delta, finish_reason: None, extra: Default::default() }]);
    let size = opts.chunk_size;
    let mut out = Vec::new();
    for c in &r.choices {
        let m = &c.message;
        let mut role_delta = Delta {
            role: Some(if m.role.is_empty() { "assistant".into() } else { m.role.clone() }),
            content: m.content.as_ref().map(|c| c.as_ref().map(|_| String::new())),
            reasoning_content: m.reasoning_content.as_ref().map(|r| r.as_ref().map(|_| String::new())),
            tool_calls: None,
            extra: m.extra.clone(),
        };
        if let Some(name) = &m.name {
            role_delta.extra.insert("name".into(), name.clone().into());
        }
        out.push(base(vec![ChunkChoice { index: c.index, delta: role_delta, finish_reason: None, extra: c.extra.clone() }]));
        if let Some(Some(reasoning)) = &m.reasoning_content {
            for p in pieces(reasoning, size) {
                out.push(one(c.index, Delta { reasoning_content: Some(Some(p.to_string())), ..Default::default() }));
            }
        }
        let text = match &m.content {
            Some(Some(Content::Text(s))) => s.clone(),
            Some(Some(Content::Parts(_))) => m.text(),
            _ => String::new(),
        };
        for p in pieces(&text, size) {
            out.push(one(c.index, Delta { content: Some(Some(p.to_string())), ..Default::default() }));
        }
        for (pos, tc) in m.tool_calls.iter().flatten().enumerate() {
            let index = Some(pos as u32);
            let f = tc.function.clone().unwrap_or_default();
            let first = ToolCall {
                index,
                id: tc.id.clone(),
                kind: tc.kind.clone(),
                function: Some(FunctionCall { name: f.name.clone(), arguments: Some(String::new()), extra: f.extra.clone() }),
                extra: tc.extra.clone(),
            };
            out.push(one(c.index, Delta { tool_calls: Some(vec![first]), ..Default::default() }));
            for p in pieces(f.arguments.as_deref().unwrap_or(""), size) {
                let frag = ToolCall {
                    index,
                    function: Some(FunctionCall { arguments: Some(p.to_string()), ..Default::default() }),
                    ..Default::default()
                };
                out.push(one(c.index, Delta { tool_calls: Some(vec![frag]), ..Default::default() }));
            }
        }
        out.push(base(vec![ChunkChoice {
            index: c.index,
            delta: Delta::default(),
            finish_reason: Some(c.finish_reason.clone().unwrap_or_else(|| "stop".into())),
            extra: Default::default(),
        }]));
    }
    if opts.include_usage != Some(false) {
        if let Some(u) = &r.usage {
            let mut last = base(Vec::new());
            last.usage = Some(Some(u.clone()));
            out.push(last);
        }
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
                "reasoning_content": "r", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        }))
        .unwrap();
        let chunks = response_to_chunks(&r);
        // role, reasoning, content, tool call head, its arguments, finish, usage
        assert_eq!(chunks.len(), 7);
        assert!(chunks.iter().all(|c| c.id == "chatcmpl-1" && c.created == 7 && c.object == "chat.completion.chunk"));
        let mut acc = ChunkAccumulator::default();
        chunks.iter().for_each(|c| acc.push(c));
        assert_eq!(acc.to_response(), r);
    }

    #[test]
    fn pieces_split_on_characters() {
        assert_eq!(pieces("héllo wörld", Some(3)), vec!["hél", "lo ", "wör", "ld"]);
        assert_eq!(pieces("abc", None), vec!["abc"]);
        assert_eq!(pieces("abc", Some(0)), vec!["abc"]);
        assert!(pieces("", Some(2)).is_empty());
        assert_eq!(pieces("🎉🎉", Some(1)), vec!["🎉", "🎉"]);
    }

    #[test]
    fn options_from_js() {
        assert_eq!(ChunkingOptions::from_value(&json!(null)).unwrap(), ChunkingOptions::default());
        assert_eq!(
            ChunkingOptions::from_value(&json!({"chunkSize": 16, "includeUsage": true})).unwrap(),
            ChunkingOptions { chunk_size: Some(16), include_usage: Some(true) }
        );
        assert_eq!(ChunkingOptions::from_value(&json!({"chunk_size": 0, "include_usage": false})).unwrap(), ChunkingOptions { chunk_size: None, include_usage: Some(false) });
        match ChunkingOptions::from_value(&json!({"chunkSize": -1})) {
            Err(crate::Error::Validation { field: Some(f), .. }) => assert_eq!(f, "chunkSize"),
            other => panic!("{other:?}"),
        }
    }
}
