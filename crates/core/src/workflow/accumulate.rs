//! Rebuilds a `chat.completion` from stream chunks, per choice (`choices[].index`):
//! * `role` from the first delta that has one (`assistant` otherwise);
//! * `content` and `reasoning_content` joined; a field that only ever came as `null` stays
//!   `null`; `content` that never came at all is `""`;
//! * tool calls assembled with [`StreamingToolCallParser`] (index-keyed, empty-string id =
//!   continuation, id collisions, replays): `arguments` is the exact concatenated text when it
//!   is valid JSON, the repaired text when it was cut off (see [`ChunkAccumulator::warnings`]),
//!   `{}` when it could not be repaired or was empty; calls are ordered by slot, carry `index`
//!   and `type` (`function` when never sent); calls that never got a name are dropped (warned);
//! * `finish_reason`: the first non-empty one per choice (a second finish chunk, as OpenRouter
//!   sends, does not replace it); deltas that arrive after it are still joined (warned);
//! * `usage`: the last non-null one, wherever it comes: on the finish chunk, on a following
//!   `choices: []` chunk, or (Moonshot) inside a choice;
//! * `id`, `model`, `created` and unknown top-level fields (`system_fingerprint`,
//!   `service_tier`, ...) from the first chunk that has a non-empty/non-null value
//!   (`obfuscation` padding is dropped);
//! * unknown delta fields become message fields (strings joined, arrays appended, objects
//!   merged the same way, e.g. `refusal`, `reasoning`, legacy `function_call`); unknown choice
//!   fields are kept (`logprobs.content` arrays appended).
//!
//! A chunk that repeats an earlier one but for its content ([`ChunkAccumulator::push_continued`])
//! adds only its content once that earlier one has been counted: most chunks of a stream.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::tool_calls::StreamingToolCallParser;
use crate::model::{ChatChunk, ChatMessage, ChatResponse, Choice, Content, Delta, Extra, FunctionCall, ToolCall, Usage};

#[derive(Debug, Default)]
pub struct ChunkAccumulator {
    id: String,
    model: String,
    created: u64,
    extra: Extra,
    choices: BTreeMap<u32, ChoiceState>,
    usage: Option<Usage>,
    choice_usage: Option<Usage>,
    chunks: usize,
    /// The template of the last `push_continued`, once everything but its content counted.
    continued_from: Option<Arc<ChatChunk>>,
}

#[derive(Debug, Default)]
struct ChoiceState {
    role: Option<String>,
    content: String,
    content_text: bool,
    content_null: bool,
    reasoning: String,
    reasoning_text: bool,
    reasoning_null: bool,
    parser: StreamingToolCallParser,
    tools: BTreeMap<usize, ToolExtras>,
    finish_reason: Option<String>,
    extra: Extra,
    message_extra: Extra,
    deltas_after_finish: usize,
}

impl ChoiceState {
    fn add_content(&mut self, text: &str) {
        self.content.push_str(text);
        self.content_text = true;
    }
}

#[derive(Debug, Default)]
struct ToolExtras {
    kind: Option<String>,
    extra: Extra,
    function_extra: Extra,
}

/// Something in the rebuilt response that is not exactly what the stream said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccumulatorWarning {
    /// `choices[].index`.
    pub choice: u32,
    /// The tool call's slot, for tool-call warnings.
    pub tool_call: Option<usize>,
    pub kind: WarningKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WarningKind {
    /// The arguments were cut off and completed (closing strings/objects/arrays).
    RepairedArguments,
    /// The arguments could not be repaired, or are not a JSON object; `{}` was used where
    /// repair was impossible.
    InvalidArguments,
    /// A named call ended mid-structure or mid-string (the output was probably truncated even
    /// if `finish_reason` says otherwise).
    TruncatedToolCall,
    /// Argument text or an id for a call that never got a name; it is not in the response.
    NamelessToolCall,
    /// Two names for one call, or a new id on a slot whose call was incomplete.
    ConflictingToolCallIdentity,
    /// Content, reasoning or tool-call deltas arrived after the choice's `finish_reason`.
    DeltaAfterFinish,
}

fn merge_first(into: &mut Extra, from: &Extra) {
    for (k, v) in from {
        merge_first_one(into, k, v);
    }
}

/// The first non-null value of `k` wins.
fn merge_first_one(into: &mut Extra, k: &String, v: &Value) {
    match into.get(k) {
        None => {
            into.insert(k.clone(), v.clone());
        }
        Some(Value::Null) if !v.is_null() => {
            into.insert(k.clone(), v.clone());
        }
        _ => {}
    }
}

/// Delta semantics: strings join, arrays append, objects merge recursively, `null` only fills
/// a gap, other values replace.
fn merge_delta_value(into: &mut Value, v: &Value) {
    match (into, v) {
        (_, Value::Null) => {}
        (Value::String(a), Value::String(b)) => a.push_str(b),
        (Value::Array(a), Value::Array(b)) => a.extend(b.iter().cloned()),
        (Value::Object(a), Value::Object(b)) => {
            for (k, bv) in b {
                merge_delta_value(a.entry(k.clone()).or_insert(Value::Null), bv);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

fn merge_delta(into: &mut Extra, from: &Extra) {
    for (k, v) in from {
        merge_delta_value(into.entry(k.clone()).or_insert(Value::Null), v);
    }
}

/// Whether pushing `chunk` again, with any content in its one choice, adds nothing but that
/// content: one choice, a delta with a string `content` and otherwise only `null` fields, no
/// finish reason, only `null` choice fields, no usage. All else it carries (id, model, created,
/// top-level fields) is "the first value wins", which the first push settled.
pub fn only_content_accumulates(chunk: &ChatChunk) -> bool {
    let [c] = chunk.choices.as_slice() else { return false };
    let d = &c.delta;
    matches!(d.content, Some(Some(_)))
        && d.role.is_none()
        && d.reasoning_content.is_none()
        && d.tool_calls.is_none()
        && d.extra.values().all(Value::is_null)
        && c.finish_reason.is_none()
        && c.extra.values().all(Value::is_null)
        && !matches!(chunk.usage, Some(Some(_)))
}

fn has_payload(d: &Delta) -> bool {
    matches!(&d.content, Some(Some(s)) if !s.is_empty())
        || matches!(&d.reasoning_content, Some(Some(s)) if !s.is_empty())
        || d.tool_calls.as_ref().is_some_and(|t| !t.is_empty())
}

impl ChunkAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

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
        if chunk.extra.contains_key("obfuscation") {
            let mut e = chunk.extra.clone();
            e.remove("obfuscation");
            merge_first(&mut self.extra, &e);
        } else {
            merge_first(&mut self.extra, &chunk.extra);
        }
        if let Some(Some(u)) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        for c in &chunk.choices {
            let st = self.choices.entry(c.index).or_default();
            let d = &c.delta;
            if st.finish_reason.is_some() && has_payload(d) {
                st.deltas_after_finish += 1;
            }
            if st.role.is_none() {
                st.role = d.role.clone().filter(|r| !r.is_empty());
            }
            match &d.content {
                Some(Some(t)) => st.add_content(t),
                Some(None) => st.content_null = true,
                None => {}
            }
            match &d.reasoning_content {
                Some(Some(t)) => {
                    st.reasoning.push_str(t);
                    st.reasoning_text = true;
                }
                Some(None) => st.reasoning_null = true,
                None => {}
            }
            for (pos, tc) in d.tool_calls.iter().flatten().enumerate() {
                let idx = tc.index.unwrap_or(pos as u32) as usize;
                let f = tc.function.as_ref();
                let args = f.and_then(|f| f.arguments.as_deref()).unwrap_or("");
                let name = f.and_then(|f| f.name.as_deref());
                let r = st.parser.add_chunk(idx, args, tc.id.as_deref(), name);
                if let Some(slot) = r.actual_index {
                    let t = st.tools.entry(slot).or_default();
                    if t.kind.is_none() {
                        t.kind = tc.kind.clone().filter(|k| !k.is_empty());
                    }
                    merge_first(&mut t.extra, &tc.extra);
                    if let Some(f) = f {
                        merge_first(&mut t.function_extra, &f.extra);
                    }
                }
            }
            if st.finish_reason.is_none() {
                st.finish_reason = c.finish_reason.clone().filter(|r| !r.is_empty());
            }
            for (k, v) in &c.extra {
                match k.as_str() {
                    "usage" if v.is_object() => {
                        if let Ok(u) = serde_json::from_value::<Usage>(v.clone()) {
                            self.choice_usage = Some(u);
                        }
                    }
                    "usage" => {}
                    "logprobs" => match st.extra.get_mut(k) {
                        Some(slot) => merge_delta_value(slot, v),
                        None => merge_delta_value(st.extra.entry(k.clone()).or_insert(Value::Null), v),
                    },
                    _ => merge_first_one(&mut st.extra, k, v),
                }
            }
            merge_delta(&mut st.message_extra, &d.extra);
        }
    }

    /// Pushes `template` with `content` as the content of its one choice. Once a template
    /// for which [`only_content_accumulates`] holds has been pushed this way, the following
    /// pushes of it add the content and count the chunk, without building the chunk.
    pub fn push_continued(&mut self, template: &Arc<ChatChunk>, content: &str) {
        if !self.continued_from.as_ref().is_some_and(|t| Arc::ptr_eq(t, template)) {
            self.push(&template.with_content(content));
            if only_content_accumulates(template) {
                self.continued_from = Some(template.clone());
            }
            return;
        }
        self.chunks += 1;
        let st = self.choices.entry(template.choices[0].index).or_default();
        // `has_payload` of a delta with nothing but content.
        if st.finish_reason.is_some() && !content.is_empty() {
            st.deltas_after_finish += 1;
        }
        st.add_content(content);
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
                let mut calls = st.parser.get_completed_tool_calls();
                calls.sort_by_key(|c| c.index);
                let tool_calls: Vec<ToolCall> = calls
                    .into_iter()
                    .map(|c| {
                        let ex = st.tools.get(&c.index);
                        ToolCall {
                            index: Some(c.index as u32),
                            id: c.id,
                            kind: Some(ex.and_then(|e| e.kind.clone()).unwrap_or_else(|| "function".into())),
                            function: Some(FunctionCall {
                                name: c.name,
                                arguments: Some(c.arguments),
                                extra: ex.map(|e| e.function_extra.clone()).unwrap_or_default(),
                            }),
                            extra: ex.map(|e| e.extra.clone()).unwrap_or_default(),
                        }
                    })
                    .collect();
                let content = if st.content_text {
                    Some(Some(Content::Text(st.content.clone())))
                } else if st.content_null {
                    Some(None)
                } else {
                    Some(Some(Content::Text(String::new())))
                };
                let reasoning_content = if st.reasoning_text {
                    Some(Some(st.reasoning.clone()))
                } else if st.reasoning_null {
                    Some(None)
                } else {
                    None
                };
                let mut extra = st.message_extra.clone();
                let name = match extra.get("name") {
                    Some(Value::String(_)) => extra.remove("name").and_then(|v| v.as_str().map(String::from)),
                    _ => None,
                };
                Choice {
                    index,
                    message: ChatMessage {
                        role: st.role.clone().unwrap_or_else(|| "assistant".into()),
                        content,
                        name,
                        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                        tool_call_id: None,
                        reasoning_content,
                        extra,
                    },
                    finish_reason: st.finish_reason.clone(),
                    extra: st.extra.clone(),
                }
            })
            .collect();
        ChatResponse {
            id: self.id.clone(),
            object: "chat.completion".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: self.usage.clone().or_else(|| self.choice_usage.clone()),
            extra: self.extra.clone(),
        }
    }

    /// True once every choice seen so far has a finish reason.
    pub fn all_finished(&self) -> bool {
        !self.choices.is_empty() && self.choices.values().all(|c| c.finish_reason.is_some())
    }

    /// Where the rebuilt response departs from what the stream said: repaired or invalid
    /// arguments, truncated or nameless tool calls, identity conflicts, deltas after finish.
    pub fn warnings(&self) -> Vec<AccumulatorWarning> {
        let mut out = Vec::new();
        for (&choice, st) in &self.choices {
            let mut warn = |tool_call: Option<usize>, kind: WarningKind, message: String| {
                out.push(AccumulatorWarning { choice, tool_call, kind, message });
            };
            for slot in st.parser.indices() {
                let meta = st.parser.get_tool_call_meta(slot);
                let state = st.parser.get_state(slot);
                if meta.name.is_some() && (state.depth > 0 || state.in_string) {
                    warn(Some(slot), WarningKind::TruncatedToolCall, format!("tool call {slot} ends inside unfinished JSON"));
                }
                if meta.name.is_none() && (meta.id.is_some() || !st.parser.get_buffer(slot).trim().is_empty()) {
                    warn(Some(slot), WarningKind::NamelessToolCall, format!("tool call {slot} never got a name and was dropped"));
                }
            }
            for c in st.parser.get_completed_tool_calls() {
                if c.repaired {
                    warn(Some(c.index), WarningKind::RepairedArguments, format!("the arguments of tool call {} were incomplete and were repaired", c.index));
                }
                if let Some(e) = c.error {
                    warn(Some(c.index), WarningKind::InvalidArguments, format!("tool call {}: {e}", c.index));
                }
            }
            if st.parser.has_conflicting_tool_call_identity() {
                warn(None, WarningKind::ConflictingToolCallIdentity, "a tool call got two names, or a new id while incomplete".into());
            }
            if st.deltas_after_finish > 0 {
                warn(None, WarningKind::DeltaAfterFinish, format!("{} deltas arrived after finish_reason and were kept", st.deltas_after_finish));
            }
        }
        out
    }

    /// Some tool call's arguments had to be repaired.
    pub fn has_repaired_tool_calls(&self) -> bool {
        self.choices.values().any(|st| st.parser.get_completed_tool_calls().iter().any(|c| c.repaired))
    }
}

/// One whole `chat.completion` from a chunk sequence.
pub fn stream_to_response(chunks: &[ChatChunk]) -> ChatResponse {
    let mut acc = ChunkAccumulator::default();
    chunks.iter().for_each(|c| acc.push(c));
    acc.to_response()
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
        assert!(acc.warnings().is_empty());
    }

    /// `push_continued` is `push` of the template with that content, whatever comes between:
    /// other chunks, another template, a finish reason (deltas after it are counted).
    #[test]
    fn continued_chunks_accumulate_as_the_chunks_they_stand_for() {
        let first = chunk(json!({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","system_fingerprint":null,
            "choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}));
        let t1 = Arc::new(chunk(json!({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","system_fingerprint":"fp",
            "choices":[{"index":0,"delta":{"content":"a","refusal":null},"logprobs":null,"finish_reason":null}]})));
        let t2 = Arc::new(chunk(json!({"id":"c1","choices":[{"index":1,"delta":{"content":"x"},"finish_reason":null}]})));
        let finish = chunk(json!({"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}));
        assert!(only_content_accumulates(&t1) && only_content_accumulates(&t2) && !only_content_accumulates(&first));
        enum Step<'a> {
            Push(&'a ChatChunk),
            Continued(&'a Arc<ChatChunk>, &'a str),
        }
        let steps = [
            Step::Push(&first),
            Step::Continued(&t1, "Hel"),
            Step::Continued(&t1, "lo"),
            Step::Continued(&t2, "other"),
            Step::Continued(&t1, ""),
            Step::Continued(&t1, " wé"),
            Step::Push(&finish),
            Step::Continued(&t1, " late"),
            Step::Continued(&t2, " choice"),
        ];
        let (mut fast, mut slow) = (ChunkAccumulator::default(), ChunkAccumulator::default());
        for step in &steps {
            match step {
                Step::Push(c) => {
                    fast.push(c);
                    slow.push(c);
                }
                Step::Continued(t, content) => {
                    fast.push_continued(t, content);
                    slow.push(&t.with_content(content));
                }
            }
        }
        assert_eq!(serde_json::to_value(fast.to_response()).unwrap(), serde_json::to_value(slow.to_response()).unwrap());
        assert_eq!(fast.warnings(), slow.warnings());
        assert_eq!(fast.chunk_count(), steps.len());
        let r = fast.to_response();
        assert_eq!(r.choices[0].message.text(), "Hello wé late");
        assert_eq!(r.choices[1].message.text(), "other choice");
        assert_eq!(r.extra["system_fingerprint"], "fp");
        assert_eq!(fast.warnings()[0].kind, WarningKind::DeltaAfterFinish);

        // A template that would add more than content is pushed whole every time.
        let role = Arc::new(first.clone());
        let (mut fast, mut slow) = (ChunkAccumulator::default(), ChunkAccumulator::default());
        for content in ["a", "b"] {
            fast.push_continued(&role, content);
            slow.push(&role.with_content(content));
        }
        assert_eq!(serde_json::to_value(fast.to_response()).unwrap(), serde_json::to_value(slow.to_response()).unwrap());
    }
}
