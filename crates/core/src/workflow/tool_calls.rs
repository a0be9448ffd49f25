//! Streaming tool-call assembly after qwen-code's `StreamingToolCallParser` (QC-latest rules).
//!
//! Argument fragments are kept per storage *slot*. A slot is normally the provider's
//! `tool_calls[].index`, but a new call whose index is already held by a complete call with a
//! different id is moved to the lowest free slot, and later id-less fragments at that provider
//! index follow it (`remaps`). For every slot the scanner tracks bracket depth, whether it is
//! inside a string and whether the next character is escaped, across chunk boundaries, so
//! completeness is known without re-parsing on every fragment.
//!
//! Rules (qwen-code, `providers-wire.md` §4.1/§4.2):
//! * an empty-string id or a blank name counts as absent (DashScope repeats `"id": ""`);
//! * a known id goes to its slot; a chunk with a known id whose slot already holds complete
//!   JSON is a replay and is ignored;
//! * a new id at an index held by a complete call with another id is a collision: the new call
//!   gets the lowest free slot (counting from 0);
//! * a chunk without id continues the call at its index (or the slot that index was moved to);
//!   if that call is complete, the chunk goes to the most recent incomplete slot;
//! * blank chunks without id and name are ignored unless the target slot is mid-structure;
//! * a name-only delta just names the call; a different name for the same call is a conflict
//!   (flagged, the first name stays);
//! * at the end, incomplete arguments are repaired ([`repair_json`]); arguments that cannot be
//!   repaired, or are not a JSON object, become `{}` with an error noted; a named call with no
//!   argument text gets `{}` (a no-argument tool). Calls without a name are not emitted, and
//!   calls are de-duplicated by id.
//!
//! One deliberate refinement over qwen-code: a call moved to another slot because of a
//! collision is remembered for its provider index even when it carries an id, so id-less
//! continuation fragments at that index reach it (qwen-code only remembers moves of calls that
//! have no id yet, and loses the arguments of a collided call whose fragments omit the id).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{Map, Value};

/// What [`StreamingToolCallParser::add_chunk`] made of one fragment.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCallParseResult {
    /// The slot that received the fragment (`None` when the fragment was ignored).
    pub actual_index: Option<usize>,
    /// The slot's argument text is a whole JSON value (possibly after closing a string).
    pub complete: bool,
    /// The parsed arguments, when `complete`.
    pub value: Option<Value>,
    /// Why the text at depth 0 does not parse yet.
    pub error: Option<String>,
    /// `value` needed a closing quote.
    pub repaired: bool,
}

/// The scanner state of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCallParserState {
    /// `{`/`[` minus `}`/`]` outside strings. Negative when the text closes more than it opened.
    pub depth: i64,
    pub in_string: bool,
    pub escape: bool,
}

/// The id and name recorded for a slot.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ToolCallMeta {
    pub id: Option<String>,
    pub name: Option<String>,
}

/// One finished tool call, as `get_completed_tool_calls` returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletedToolCall {
    pub id: Option<String>,
    pub name: Option<String>,
    /// The arguments as a JSON object (qwen-code's `args`): `{}` when there were none, when
    /// they could not be repaired, or when they are not an object.
    pub args: Value,
    /// The slot.
    pub index: usize,
    /// The argument text to put on the wire: the exact concatenated text when it is valid
    /// JSON, the repaired text when it had to be repaired, `{}` otherwise.
    pub arguments: String,
    /// The text was incomplete and was repaired.
    pub repaired: bool,
    /// Why `args` is `{}` although there was argument text.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    buffer: String,
    state: ToolCallParserState,
    meta: ToolCallMeta,
    /// `buffer` parses as JSON (kept up to date on every append; only possible at depth 0).
    complete: bool,
}

impl Slot {
    fn blank(&self) -> bool {
        self.buffer.trim().is_empty()
    }
}

#[derive(Debug, Clone, Default)]
pub struct StreamingToolCallParser {
    slots: BTreeMap<usize, Slot>,
    /// Slots in creation order (the order qwen-code emits calls in).
    order: Vec<usize>,
    id_to_slot: HashMap<String, usize>,
    /// Provider index → the slot its current call was moved to.
    remaps: HashMap<usize, usize>,
    nameless: BTreeSet<usize>,
    next_available: usize,
    conflicting_identity: bool,
}

fn parses(text: &str) -> Result<Value, String> {
    serde_json::from_str::<Value>(text).map_err(|e| e.to_string())
}

impl StreamingToolCallParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one `tool_calls[]` fragment: `index` as the provider sent it, `chunk` the
    /// `function.arguments` text (`""` when absent), `id` and `name` when present.
    pub fn add_chunk(&mut self, index: usize, chunk: &str, id: Option<&str>, name: Option<&str>) -> ToolCallParseResult {
        let id = id.filter(|s| !s.is_empty());
        let name = name.map(str::trim).filter(|s| !s.is_empty());
        let occupant = self.remaps.get(&index).copied().unwrap_or(index);

        if id.is_none() && name.is_none() && chunk.trim().is_empty() {
            match self.slots.get(&occupant) {
                None => return ToolCallParseResult::default(),
                Some(s) if s.state.depth == 0 && !s.state.in_string => return ToolCallParseResult::default(),
                Some(_) => {}
            }
        }

        let is_known_id = id.is_some_and(|id| self.id_to_slot.contains_key(id));
        let existing_name = self.slots.get(&occupant).and_then(|s| s.meta.name.as_deref());
        let is_name_only = name.is_some() && chunk.is_empty() && existing_name.is_none_or(|n| Some(n) == name);

        let mut actual = occupant;
        if let Some(id) = id {
            if let Some(&slot) = self.id_to_slot.get(id) {
                actual = slot;
            } else {
                if let Some(existing) = self.slots.get(&occupant) {
                    match existing.meta.id.as_deref() {
                        // An id arriving after the name/arguments adopts the call.
                        None => {}
                        Some(other) if other != id => {
                            let existing_complete = existing.state.depth == 0 && (existing.blank() || existing.complete);
                            if existing_complete {
                                if existing.meta.name.is_none() {
                                    self.conflicting_identity = true;
                                }
                                actual = self.lowest_free_slot();
                            } else {
                                self.conflicting_identity = true;
                            }
                        }
                        Some(_) => {}
                    }
                }
                self.id_to_slot.insert(id.to_string(), actual);
            }
        } else if !is_name_only {
            if let Some(s) = self.slots.get(&occupant) {
                if s.state.depth > 0 || s.blank() || !s.complete {
                    actual = occupant;
                } else {
                    actual = self.find_most_recent_incomplete_index();
                }
            }
        }

        if let std::collections::btree_map::Entry::Vacant(e) = self.slots.entry(actual) {
            e.insert(Slot::default());
            self.order.push(actual);
        }
        if actual != index {
            self.remaps.insert(index, actual);
        }
        let slot = self.slots.get_mut(&actual).expect("slot exists");

        if chunk.is_empty() && (id.is_some() || name.is_some()) {
            if let Some(id) = id {
                slot.meta.id = Some(id.to_string());
            }
            if let (Some(n), None) = (name, &slot.meta.name) {
                slot.meta.name = Some(n.to_string());
            }
            let nameless = slot.meta.name.is_none() && slot.meta.id.is_some();
            self.set_nameless(actual, nameless);
            return ToolCallParseResult { actual_index: Some(actual), ..Default::default() };
        }

        if is_known_id && slot.state.depth == 0 && !slot.blank() && slot.complete {
            // A replay of a call that is already complete.
            return ToolCallParseResult { actual_index: Some(actual), ..Default::default() };
        }

        let identity_changed = matches!((id, slot.meta.id.as_deref()), (Some(new), Some(old)) if new != old);
        if let Some(id) = id {
            slot.meta.id = Some(id.to_string());
        }
        if let Some(n) = name {
            match slot.meta.name.as_deref() {
                Some(old) if !identity_changed && old != n => self.conflicting_identity = true,
                _ => slot.meta.name = Some(n.to_string()),
            }
        }

        slot.buffer.push_str(chunk);
        let mut st = slot.state;
        for c in chunk.chars() {
            if !st.in_string {
                match c {
                    '{' | '[' => st.depth += 1,
                    '}' | ']' => st.depth -= 1,
                    _ => {}
                }
            }
            if c == '"' && !st.escape {
                st.in_string = !st.in_string;
            }
            st.escape = c == '\\' && !st.escape;
        }
        slot.state = st;
        let blank = slot.blank();
        let parsed = if st.depth == 0 && !blank { Some(parses(&slot.buffer)) } else { None };
        slot.complete = matches!(parsed, Some(Ok(_)));
        let nameless = slot.meta.name.is_none() && (slot.meta.id.is_some() || !blank);
        let retry_closed = match &parsed {
            Some(Err(_)) if st.in_string => Some(parses(&format!("{}\"", slot.buffer))),
            _ => None,
        };
        self.set_nameless(actual, nameless);

        let mut result = ToolCallParseResult { actual_index: Some(actual), ..Default::default() };
        match (parsed, retry_closed) {
            (Some(Ok(v)), _) => {
                result.complete = true;
                result.value = Some(v);
            }
            (Some(Err(_)), Some(Ok(v))) => {
                result.complete = true;
                result.value = Some(v);
                result.repaired = true;
            }
            (Some(Err(e)), _) => result.error = Some(e),
            (None, _) => {}
        }
        result
    }

    fn set_nameless(&mut self, slot: usize, nameless: bool) {
        if nameless {
            self.nameless.insert(slot);
        } else {
            self.nameless.remove(&slot);
        }
    }

    fn lowest_free_slot(&self) -> usize {
        (0..).find(|i| !self.slots.contains_key(i)).unwrap_or(0)
    }

    /// Starting at the counter: a slot that does not exist, or exists but is unnamed, has no id,
    /// is mid-structure or holds text that does not parse, is returned; complete calls (a
    /// named call with an empty buffer is a complete no-argument call) are skipped.
    fn find_next_available_index(&mut self) -> usize {
        while let Some(s) = self.slots.get(&self.next_available) {
            if s.meta.name.is_none() || s.state.depth > 0 || s.meta.id.is_none() {
                return self.next_available;
            }
            if !s.blank() && !s.complete {
                return self.next_available;
            }
            self.next_available += 1;
        }
        let i = self.next_available;
        self.next_available += 1;
        i
    }

    /// The highest slot whose call is still incomplete, else the next available one.
    fn find_most_recent_incomplete_index(&mut self) -> usize {
        let found = self
            .slots
            .iter()
            .filter(|(_, s)| {
                if s.meta.id.is_some() && (s.state.depth > 0 || (s.blank() && s.meta.name.is_none())) {
                    true
                } else {
                    !s.blank() && !s.complete
                }
            })
            .map(|(&i, _)| i)
            .max();
        match found {
            Some(i) => i,
            None => self.find_next_available_index(),
        }
    }

    /// Every named call with its arguments, in the order the calls started. Incomplete
    /// argument text is repaired here; this never fails.
    pub fn get_completed_tool_calls(&self) -> Vec<CompletedToolCall> {
        let mut seen_ids = BTreeSet::new();
        let mut out = Vec::new();
        for &index in &self.order {
            let Some(slot) = self.slots.get(&index) else { continue };
            if slot.meta.name.is_none() {
                continue;
            }
            if let Some(id) = &slot.meta.id {
                if !seen_ids.insert(id.clone()) {
                    continue;
                }
            }
            let (args, arguments, repaired, error) = finalize_arguments(slot);
            out.push(CompletedToolCall {
                id: slot.meta.id.clone(),
                name: slot.meta.name.clone(),
                args,
                index,
                arguments,
                repaired,
                error,
            });
        }
        out
    }

    /// The argument text collected for a slot (`""` for an unknown slot).
    pub fn get_buffer(&self, index: usize) -> &str {
        self.slots.get(&index).map(|s| s.buffer.as_str()).unwrap_or("")
    }

    /// The scanner state of a slot (all zero for an unknown slot).
    pub fn get_state(&self, index: usize) -> ToolCallParserState {
        self.slots.get(&index).map(|s| s.state).unwrap_or_default()
    }

    pub fn get_tool_call_meta(&self, index: usize) -> ToolCallMeta {
        self.slots.get(&index).map(|s| s.meta.clone()).unwrap_or_default()
    }

    /// The slots in use, in creation order.
    pub fn indices(&self) -> Vec<usize> {
        self.order.clone()
    }

    /// Some slot has an id or argument text but no name (such calls are not emitted).
    pub fn has_nameless_tool_call(&self) -> bool {
        !self.nameless.is_empty()
    }

    /// Slots that have argument text or an id but no name.
    pub fn nameless_indices(&self) -> Vec<usize> {
        self.nameless.iter().copied().collect()
    }

    /// Two different names for one call, or a new id on an index whose call is incomplete.
    pub fn has_conflicting_tool_call_identity(&self) -> bool {
        self.conflicting_identity
    }

    /// A named call ends mid-structure or mid-string: the output was most likely truncated.
    pub fn has_incomplete_tool_calls(&self) -> bool {
        self.slots.values().any(|s| s.meta.name.is_some() && (s.state.depth > 0 || s.state.in_string))
    }

    /// A named call whose text does not parse as a JSON object (empty text is fine).
    pub fn has_invalid_tool_call_arguments(&self) -> bool {
        self.slots.values().any(|s| {
            s.meta.name.is_some() && !s.buffer.is_empty() && !matches!(parses(&s.buffer), Ok(Value::Object(_)))
        })
    }

    /// Empties one slot (it stays known, as in qwen-code).
    pub fn reset_index(&mut self, index: usize) {
        let slot = self.slots.entry(index).or_default();
        *slot = Slot::default();
        if !self.order.contains(&index) {
            self.order.push(index);
        }
        self.nameless.remove(&index);
        self.remaps.retain(|&from, &mut to| from != index && to != index);
    }

    /// Forgets everything, for a new stream.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

fn finalize_arguments(slot: &Slot) -> (Value, String, bool, Option<String>) {
    let empty = || Value::Object(Map::new());
    if slot.blank() {
        return (empty(), "{}".into(), false, None);
    }
    if let Ok(v) = parses(&slot.buffer) {
        return match v {
            Value::Object(_) => (v, slot.buffer.clone(), false, None),
            other => {
                let kind = json_kind(&other);
                (empty(), slot.buffer.clone(), false, Some(format!("the arguments are {kind}, not a JSON object")))
            }
        };
    }
    match repair_json(&slot.buffer) {
        Some(text) => match parses(&text) {
            Ok(v @ Value::Object(_)) => (v, text, true, None),
            Ok(other) => {
                let kind = json_kind(&other);
                (empty(), "{}".into(), true, Some(format!("the repaired arguments are {kind}, not a JSON object")))
            }
            Err(e) => (empty(), "{}".into(), false, Some(format!("the arguments could not be repaired: {e}"))),
        },
        None => {
            let why = parses(&slot.buffer).err().unwrap_or_default();
            (empty(), "{}".into(), false, Some(format!("the arguments are not valid JSON and could not be repaired: {why}")))
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ObjState {
    /// After `{`.
    KeyOrEnd,
    /// After `,`.
    Key,
    /// After a key.
    Colon,
    /// After `:`.
    Value,
    CommaOrEnd,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ArrState {
    /// After `[`.
    ValueOrEnd,
    /// After `,`.
    Value,
    CommaOrEnd,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Frame {
    Obj(ObjState),
    Arr(ArrState),
}

/// Where the text stopped, for the repair.
enum Tail {
    /// Complete or between tokens.
    Between,
    /// Inside a string that started at this byte; `key` for an object key.
    InString { key: bool },
    /// Inside a number that started at this byte.
    InNumber { start: usize },
    /// Inside `true`/`false`/`null`; the rest of the word.
    InLiteral { rest: &'static str },
}

/// Completes JSON text that was cut off: closes an open string (dropping a partial escape or
/// an unpaired high surrogate at its end), finishes a partial `true`/`false`/`null` or number,
/// drops a trailing comma, gives a key without value `null`, and closes every open object and
/// array. Returns the repaired text when it parses, `None` when the text is not a prefix of
/// JSON (stray characters, mismatched brackets, text after the value).
pub fn repair_json(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut top_done = false;
    let mut last_comma = 0usize;
    let mut i = 0usize;
    let mut tail = Tail::Between;
    // Inside a string: where the pending escape started, and the last complete `\uD8xx`.
    let mut esc_start: Option<usize> = None;
    let mut high_surrogate: Option<(usize, usize)> = None;

    fn after_value(stack: &mut [Frame], top_done: &mut bool) {
        match stack.last_mut() {
            Some(Frame::Obj(s)) => *s = ObjState::CommaOrEnd,
            Some(Frame::Arr(s)) => *s = ArrState::CommaOrEnd,
            None => *top_done = true,
        }
    }

    while i < b.len() {
        let c = b[i];
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
            continue;
        }
        if top_done {
            return None;
        }
        let expects_value =
            matches!(stack.last(), None | Some(Frame::Obj(ObjState::Value)) | Some(Frame::Arr(ArrState::ValueOrEnd | ArrState::Value)));
        let expects_key = matches!(stack.last(), Some(Frame::Obj(ObjState::KeyOrEnd | ObjState::Key)));
        match c {
            b'"' if expects_value || expects_key => {
                // Scan the string.
                let key = expects_key;
                let mut j = i + 1;
                esc_start = None;
                high_surrogate = None;
                let mut closed = false;
                while j < b.len() {
                    match b[j] {
                        b'\\' => {
                            let start = j;
                            if j + 1 >= b.len() {
                                esc_start = Some(start);
                                j = b.len();
                                break;
                            }
                            if b[j + 1] == b'u' {
                                let hex_end = (j + 6).min(b.len());
                                let hex = &b[j + 2..hex_end];
                                if hex.len() < 4 {
                                    esc_start = Some(start);
                                    j = b.len();
                                    break;
                                }
                                let code = std::str::from_utf8(hex).ok().and_then(|h| u16::from_str_radix(h, 16).ok());
                                match code {
                                    Some(cp) if (0xD800..0xDC00).contains(&cp) => high_surrogate = Some((start, j + 6)),
                                    Some(_) => high_surrogate = None,
                                    None => return None,
                                }
                                j += 6;
                            } else {
                                high_surrogate = None;
                                j += 2;
                            }
                        }
                        b'"' => {
                            closed = true;
                            j += 1;
                            break;
                        }
                        _ => {
                            high_surrogate = None;
                            j += 1;
                        }
                    }
                }
                if !closed {
                    tail = Tail::InString { key };
                    break;
                }
                if key {
                    if let Some(Frame::Obj(s)) = stack.last_mut() {
                        *s = ObjState::Colon;
                    }
                } else {
                    after_value(&mut stack, &mut top_done);
                }
                i = j;
                continue;
            }
            b'{' if expects_value => stack.push(Frame::Obj(ObjState::KeyOrEnd)),
            b'[' if expects_value => stack.push(Frame::Arr(ArrState::ValueOrEnd)),
            b'}' if matches!(stack.last(), Some(Frame::Obj(ObjState::KeyOrEnd | ObjState::CommaOrEnd))) => {
                stack.pop();
                after_value(&mut stack, &mut top_done);
            }
            b']' if matches!(stack.last(), Some(Frame::Arr(ArrState::ValueOrEnd | ArrState::CommaOrEnd))) => {
                stack.pop();
                after_value(&mut stack, &mut top_done);
            }
            b',' => match stack.last_mut() {
                Some(Frame::Obj(s @ ObjState::CommaOrEnd)) => {
                    *s = ObjState::Key;
                    last_comma = i;
                }
                Some(Frame::Arr(s @ ArrState::CommaOrEnd)) => {
                    *s = ArrState::Value;
                    last_comma = i;
                }
                _ => return None,
            },
            b':' => match stack.last_mut() {
                Some(Frame::Obj(s @ ObjState::Colon)) => *s = ObjState::Value,
                _ => return None,
            },
            b'-' | b'0'..=b'9' if expects_value => {
                let start = i;
                let mut j = i;
                while j < b.len() && matches!(b[j], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                    j += 1;
                }
                if j == b.len() {
                    tail = Tail::InNumber { start };
                    break;
                }
                after_value(&mut stack, &mut top_done);
                i = j;
                continue;
            }
            b't' | b'f' | b'n' if expects_value => {
                let word: &'static str = match c {
                    b't' => "true",
                    b'f' => "false",
                    _ => "null",
                };
                let avail = (b.len() - i).min(word.len());
                if b[i..i + avail] != word.as_bytes()[..avail] {
                    return None;
                }
                if avail < word.len() {
                    tail = Tail::InLiteral { rest: &word[avail..] };
                    break;
                }
                after_value(&mut stack, &mut top_done);
                i += word.len();
                continue;
            }
            _ => return None,
        }
        i += 1;
    }

    let mut cut = text.len();
    let mut suffix = String::new();
    match tail {
        Tail::InString { key } => {
            if let Some(e) = esc_start {
                cut = e;
            }
            if let Some((start, end)) = high_surrogate {
                if end == cut {
                    cut = start;
                }
            }
            suffix.push('"');
            if key {
                suffix.push_str(":null");
            }
        }
        Tail::InNumber { start } => {
            let mut end = text.len();
            while end > start && matches!(b[end - 1], b'.' | b'e' | b'E' | b'+' | b'-') {
                end -= 1;
            }
            cut = end;
            if end == start {
                suffix.push_str("null");
            }
        }
        Tail::InLiteral { rest } => suffix.push_str(rest),
        Tail::Between => match stack.last() {
            None if !top_done => return None, // nothing but whitespace
            Some(Frame::Obj(ObjState::Key)) | Some(Frame::Arr(ArrState::Value)) => cut = last_comma,
            Some(Frame::Obj(ObjState::Colon)) => suffix.push_str(":null"),
            Some(Frame::Obj(ObjState::Value)) => suffix.push_str("null"),
            _ => {}
        },
    }
    for f in stack.iter().rev() {
        suffix.push(match f {
            Frame::Obj(_) => '}',
            Frame::Arr(_) => ']',
        });
    }
    let repaired = format!("{}{}", &text[..cut], suffix);
    parses(&repaired).ok().map(|_| repaired)
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_call_in_fragments_completes_at_depth_zero() {
        let mut p = StreamingToolCallParser::new();
        let r = p.add_chunk(0, "", Some("call_1"), Some("get_weather"));
        assert!(!r.complete);
        assert!(!p.add_chunk(0, "{\"loc", Some(""), None).complete);
        assert_eq!(p.get_state(0), ToolCallParserState { depth: 1, in_string: true, escape: false });
        let r = p.add_chunk(0, "\": \"杭州\"}", None, None);
        assert!(r.complete);
        assert_eq!(r.value, Some(json!({"loc": "杭州"})));
        assert_eq!(p.get_buffer(0), "{\"loc\": \"杭州\"}");
        let done = p.get_completed_tool_calls();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].id.as_deref(), Some("call_1"));
        assert_eq!(done[0].arguments, "{\"loc\": \"杭州\"}");
        p.reset();
        assert!(p.get_completed_tool_calls().is_empty());
        assert_eq!(p.get_buffer(0), "");
    }

    #[test]
    fn repair_closes_what_is_open() {
        let cases = [
            (r#"{"a":"hel"#, r#"{"a":"hel"}"#),
            (r#"{"a":[1,2"#, r#"{"a":[1,2]}"#),
            (r#"{"a":1,"#, r#"{"a":1}"#),
            (r#"{"a":1, "#, r#"{"a":1}"#),
            (r#"{"a":"#, r#"{"a":null}"#),
            (r#"{"a""#, r#"{"a":null}"#),
            (r#"{"a"#, r#"{"a":null}"#),
            (r#"{"a":tr"#, r#"{"a":true}"#),
            (r#"{"a":-"#, r#"{"a":null}"#),
            (r#"{"a":1.5e+"#, r#"{"a":1.5}"#),
            (r#"{"a":"x\"#, r#"{"a":"x"}"#),
            (r#"{"a":"x\u00"#, r#"{"a":"x"}"#),
            (r#"{"a":"x\ud83d"#, r#"{"a":"x"}"#),
            (r#"{"a":"x\ud83d\ude"#, r#"{"a":"x"}"#),
            (r#"{"a":"x\ud83d\ude00"#, r#"{"a":"x\ud83d\ude00"}"#),
            (r#"{"a":{"b":[{"c":"d"#, r#"{"a":{"b":[{"c":"d"}]}}"#),
            (r#"[1,[2,"#, r#"[1,[2]]"#),
            (r#"{"#, r#"{}"#),
            (r#"{"a":1}"#, r#"{"a":1}"#),
        ];
        for (input, want) in cases {
            assert_eq!(repair_json(input).as_deref(), Some(want), "{input}");
        }
        for bad in ["", "   ", "{]", r#"{"a":1}}"#, r#"{"a":1}x"#, "abc", r#"{"a" 1}"#, r#"{"a":"\uZZZZ"}"#] {
            assert_eq!(repair_json(bad), None, "{bad}");
        }
    }
}
