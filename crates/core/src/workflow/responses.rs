//! Rebuilds a complete OpenAI Responses object (`"object": "response"`) from the Responses
//! API's stream events — the event-rebuild half of the seed's `ResponsesStreamingWorkflow`.
//!
//! Items are keyed by `output_index` and found by `item_id` (deltas name the item `id`, never
//! the `call_id`). Text deltas are appended per `(item, content_index)`, reasoning summary
//! deltas per `(item, summary_index)`, argument deltas per item. What arrives later is
//! authoritative over what was accumulated: `*.done` texts over deltas, `content_part.done`
//! over both, `output_item.done` over the item's parts (when it carries them), and the
//! `response` of `response.completed` / `response.incomplete` over everything — its fields
//! override the ones collected from `response.created`, and its `output` is used as is, with
//! any item the events built but the final object lacks merged back in at its index.
//!
//! Endings: `response.completed` (and the seed's `response.done`) → `status: "completed"`;
//! `response.incomplete` → `status: "incomplete"` with the upstream's `incomplete_details`;
//! `response.failed` and `error` events → the typed error of their `code` (rate limits →
//! `RateLimit`, bad keys → `Authentication`, invalid requests → `Provider` with status 400,
//! the rest → retryable `Provider`), `response.failed` carrying the failed response with what
//! was built so far in the error's `body`. A stream that stops without an ending is an
//! `Error::Stream` whose `partial` is the Responses object built so far.
//!
//! Order is checked, never repaired: a `sequence_number` that does not increase, an item id no
//! `output_item.added` announced, a delta after its part or item was done, a second item at an
//! `output_index`, or any event after the ending is a `Validation` error naming the event's
//! position and sequence number. After the first error the rebuilder stays failed.
//!
//! The seed's event shapes also work: a payload wrapped in `data` (`{type, data: {delta}}`),
//! text deltas that name no item (they go to the open message, created on demand), the legacy
//! `response.done` ending with a bare `usage`, and `response.tool_call.delta`.
//!
//! Bound: every pushed event counts against `max_event_buffer_size` (the seed's
//! `maxEventBufferSize`, default 1000), since the rebuilder holds the whole response until
//! `finish`. One event more is an `Error::Stream` saying the bound was hit (with the partial
//! response) — the seed's buffer silently dropped the oldest events instead.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::model::{generated_id, now_secs};
use crate::sse::{SseDecoder, SseError};
use crate::validate::{describe, invalid, Fields};

/// The seed's `defaultResponsesConfig.maxEventBufferSize`.
pub const DEFAULT_MAX_EVENT_BUFFER_SIZE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsesRebuilderConfig {
    /// The most events one rebuild accepts; one more is a loud `Error::Stream`.
    pub max_event_buffer_size: usize,
}

impl Default for ResponsesRebuilderConfig {
    fn default() -> Self {
        ResponsesRebuilderConfig { max_event_buffer_size: DEFAULT_MAX_EVENT_BUFFER_SIZE }
    }
}

impl ResponsesRebuilderConfig {
    /// Reads the seed's camelCase `ResponsesStreamingConfig`. `maxEventBufferSize` must be a
    /// positive integer; the other documented keys (`enableEventProcessing`,
    /// `rebuildCompleteResponse`, `preserveEventOrder`, `enableMetrics`: booleans;
    /// `eventTimeout`: milliseconds) are type-checked and otherwise belong to the caller — the
    /// rebuilder always checks event order. `null` gives the defaults.
    pub fn from_json(config: &Value) -> Result<Self> {
        let obj = match config {
            Value::Null => return Ok(Self::default()),
            Value::Object(o) => o,
            other => return Err(invalid("config", "an object", Some(other))),
        };
        let f = Fields::new(obj, "");
        for key in ["enableEventProcessing", "rebuildCompleteResponse", "preserveEventOrder", "enableMetrics"] {
            f.bool(key)?;
        }
        f.millis("eventTimeout")?;
        let max = match f.positive_int("maxEventBufferSize")? {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => DEFAULT_MAX_EVENT_BUFFER_SIZE,
        };
        Ok(ResponsesRebuilderConfig { max_event_buffer_size: max })
    }
}

/// Folds Responses stream events into the complete Responses object.
#[derive(Debug)]
pub struct ResponsesRebuilder {
    config: ResponsesRebuilderConfig,
    events: usize,
    last_seq: Option<u64>,
    /// Fields of the response collected from `response.created` / `in_progress` / `queued`.
    meta: Map<String, Value>,
    items: BTreeMap<u64, Item>,
    ids: HashMap<String, u64>,
    terminal: Option<(Terminal, Map<String, Value>)>,
    /// A bare `usage` on the ending event (the seed's `response.done`).
    event_usage: Option<Value>,
    error: Option<Error>,
    fallback_id: String,
    fallback_created: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Terminal {
    Completed,
    Incomplete,
    Failed,
}

impl Terminal {
    fn event_name(self) -> &'static str {
        match self {
            Terminal::Completed => "response.completed",
            Terminal::Incomplete => "response.incomplete",
            Terminal::Failed => "response.failed",
        }
    }
}

/// One content part, summary part or reasoning-text part.
#[derive(Debug, Clone, Default)]
struct Part {
    obj: Map<String, Value>,
    text: String,
    /// Its `*.done` text arrived: no more deltas.
    text_final: bool,
    /// Its `*_part.done` arrived.
    done: bool,
}

impl Part {
    fn from_obj(obj: Map<String, Value>) -> Part {
        let text = obj.get(text_key(&obj)).and_then(Value::as_str).unwrap_or("").to_string();
        Part { obj, text, text_final: false, done: false }
    }

    fn fresh(kind: &str) -> Part {
        let mut obj = Map::new();
        obj.insert("type".into(), kind.into());
        obj.insert(text_key_of(kind).into(), "".into());
        if kind == "output_text" {
            obj.insert("annotations".into(), json!([]));
        }
        Part { obj, ..Default::default() }
    }

    fn to_value(&self) -> Value {
        let mut o = self.obj.clone();
        o.insert(text_key(&self.obj).into(), self.text.clone().into());
        if o.get("type").and_then(Value::as_str) == Some("output_text") && !o.contains_key("annotations") {
            o.insert("annotations".into(), json!([]));
        }
        Value::Object(o)
    }
}

fn text_key(part: &Map<String, Value>) -> &'static str {
    text_key_of(part.get("type").and_then(Value::as_str).unwrap_or(""))
}

fn text_key_of(kind: &str) -> &'static str {
    if kind == "refusal" {
        "refusal"
    } else {
        "text"
    }
}

/// The field holding an item's streamed argument text.
fn args_key(kind: &str) -> Option<&'static str> {
    match kind {
        "function_call" | "mcp_call" => Some("arguments"),
        "custom_tool_call" => Some("input"),
        _ => None,
    }
}

#[derive(Debug, Clone)]
struct Item {
    /// The item as added, replaced by the item of `output_item.done`.
    item: Map<String, Value>,
    kind: String,
    /// `content` parts (message text/refusal, reasoning text) by `content_index`.
    parts: BTreeMap<u64, Part>,
    /// Reasoning `summary` parts by `summary_index`.
    summary: BTreeMap<u64, Part>,
    args: String,
    args_final: bool,
    done: bool,
}

impl Item {
    fn from_added(item: Map<String, Value>) -> Item {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("").to_string();
        let parts_of = |key: &str| -> BTreeMap<u64, Part> {
            item.get(key)
                .and_then(Value::as_array)
                .map(|a| a.iter().enumerate().filter_map(|(i, p)| p.as_object().map(|o| (i as u64, Part::from_obj(o.clone())))).collect())
                .unwrap_or_default()
        };
        let parts = if kind == "message" || kind == "reasoning" { parts_of("content") } else { BTreeMap::new() };
        let summary = if kind == "reasoning" { parts_of("summary") } else { BTreeMap::new() };
        let args = args_key(&kind).and_then(|k| item.get(k)).and_then(Value::as_str).unwrap_or("").to_string();
        Item { item, kind, parts, summary, args, args_final: false, done: false }
    }

    /// The item as it stands. `status` replaces an `in_progress` status once the response ended.
    fn to_value(&self, status: Option<&str>) -> Value {
        let mut m = self.item.clone();
        let done_has = |m: &Map<String, Value>, k: &str| self.done && m.get(k).and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        let parts = |p: &BTreeMap<u64, Part>| Value::Array(p.values().map(Part::to_value).collect());
        match self.kind.as_str() {
            "message" => {
                if !done_has(&m, "content") {
                    m.insert("content".into(), parts(&self.parts));
                }
            }
            "reasoning" => {
                if !done_has(&m, "summary") {
                    m.insert("summary".into(), parts(&self.summary));
                }
                if !self.parts.is_empty() && !done_has(&m, "content") {
                    m.insert("content".into(), parts(&self.parts));
                }
            }
            kind => {
                if let Some(k) = args_key(kind) {
                    let done_text = self.done && m.get(k).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
                    if !done_text {
                        m.insert(k.into(), self.args.clone().into());
                    }
                }
            }
        }
        if let Some(s) = status {
            if m.get("status").and_then(Value::as_str) == Some("in_progress") {
                m.insert("status".into(), s.into());
            }
        }
        Value::Object(m)
    }
}

/// One event being applied: its position, sequence number, type and (flattened) fields.
#[derive(Debug)]
pub(crate) struct Ev {
    pub pos: usize,
    pub seq: Option<u64>,
    pub kind: String,
    pub obj: Map<String, Value>,
}

impl Ev {
    /// Checks the envelope: an object (a seed-style `data` payload is flattened into it) with
    /// a non-empty `type` and, when present, an integer `sequence_number`.
    pub fn parse(event: &Value, pos: usize) -> Result<Ev> {
        let Some(obj) = normalize_event(event) else {
            return Err(Error::validation(format!("events[{pos}]"), format!("event #{pos} must be a JSON object, got {}", describe(Some(event)))));
        };
        let kind = match obj.get("type") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            other => {
                return Err(Error::validation(
                    format!("events[{pos}].type"),
                    format!("event #{pos}: type must be a non-empty string naming the event, got {}", describe(other)),
                ))
            }
        };
        let mut ev = Ev { pos, seq: None, kind, obj };
        ev.seq = ev.opt_u64("sequence_number")?;
        Ok(ev)
    }

    pub fn bad(&self, field: &str, msg: impl std::fmt::Display) -> Error {
        let at = match self.seq {
            Some(s) => format!("event #{} ({}, sequence_number {s})", self.pos, self.kind),
            None => format!("event #{} ({})", self.pos, self.kind),
        };
        Error::validation(format!("events[{}].{field}", self.pos), format!("{at}: {field} {msg}"))
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| self.bad(key, format!("must be a non-negative integer, got {}", describe(Some(v))))),
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.bad(key, format!("must be a string, got {}", describe(Some(v))))),
        }
    }

    pub fn req_str(&self, key: &str) -> Result<&str> {
        self.opt_str(key)?.ok_or_else(|| self.bad(key, "must be a string, got nothing"))
    }

    pub fn req_obj(&self, key: &str) -> Result<&Map<String, Value>> {
        match self.obj.get(key) {
            Some(Value::Object(o)) => Ok(o),
            other => Err(self.bad(key, format!("must be an object, got {}", describe(other)))),
        }
    }

    /// Checks that sequence numbers only go up; returns the new last one.
    pub fn check_order(&self, last: Option<u64>) -> Result<Option<u64>> {
        match (self.seq, last) {
            (Some(s), Some(l)) if s <= l => {
                Err(self.bad("sequence_number", format!("{s} does not come after the previous event's {l} (events out of order or repeated)")))
            }
            (Some(s), _) => Ok(Some(s)),
            (None, l) => Ok(l),
        }
    }
}

/// Where a delta goes when it names no item (seed-style events).
#[derive(Clone, Copy)]
enum Implicit {
    /// The last item if it is an open item of this kind, else a new one.
    Create(&'static str),
    /// The last open item of this kind, else an error.
    LastOpen(&'static str),
}

#[derive(Clone, Copy)]
enum Slot {
    Content,
    Summary,
}

impl Default for ResponsesRebuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponsesRebuilder {
    pub fn new() -> Self {
        Self::with_config(ResponsesRebuilderConfig::default())
    }

    pub fn with_config(config: ResponsesRebuilderConfig) -> Self {
        ResponsesRebuilder {
            config,
            events: 0,
            last_seq: None,
            meta: Map::new(),
            items: BTreeMap::new(),
            ids: HashMap::new(),
            terminal: None,
            event_usage: None,
            error: None,
            fallback_id: generated_id("resp_"),
            fallback_created: now_secs(),
        }
    }

    /// Rebuilds one whole event list.
    pub fn rebuild(events: &[Value], config: ResponsesRebuilderConfig) -> Result<Value> {
        let mut r = ResponsesRebuilder::with_config(config);
        for e in events {
            r.push(e)?;
        }
        r.finish()
    }

    pub fn config(&self) -> &ResponsesRebuilderConfig {
        &self.config
    }

    /// Events accepted so far.
    pub fn event_count(&self) -> usize {
        self.events
    }

    /// True once an ending event (`response.completed`, `.incomplete`, `.failed`) was seen.
    pub fn is_finished(&self) -> bool {
        self.terminal.is_some()
    }

    /// Applies one event (a parsed SSE `data` object). The first error is kept: later pushes
    /// and `finish` return it again.
    pub fn push(&mut self, event: &Value) -> Result<()> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let r = self.apply(event);
        if let Err(e) = &r {
            self.error = Some(e.clone());
        }
        r
    }

    /// The Responses object as far as it got (status as the stream last said).
    pub fn partial(&self) -> Value {
        self.build()
    }

    /// The complete Responses object.
    pub fn finish(self) -> Result<Value> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.events == 0 {
            return Err(Error::Stream { message: "Responses stream carried no events".into(), partial: None });
        }
        if self.terminal.is_none() {
            return Err(Error::Stream {
                message: format!(
                    "Responses stream ended after {} events without response.completed, response.incomplete or response.failed",
                    self.events
                ),
                partial: Some(self.build()),
            });
        }
        Ok(self.build())
    }

    fn apply(&mut self, event: &Value) -> Result<()> {
        let pos = self.events;
        if pos >= self.config.max_event_buffer_size {
            return Err(Error::Stream {
                message: format!(
                    "Responses event buffer bound hit: more than maxEventBufferSize ({}) events for one response; \
                     the rebuild stops here instead of dropping events (raise maxEventBufferSize)",
                    self.config.max_event_buffer_size
                ),
                partial: Some(self.build()),
            });
        }
        self.events += 1;
        let ev = Ev::parse(event, pos)?;
        self.last_seq = ev.check_order(self.last_seq)?;
        if let Some((t, _)) = &self.terminal {
            return Err(ev.bad("type", format!("{:?} arrived after the stream's ending event {}", ev.kind, t.event_name())));
        }
        match ev.kind.as_str() {
            "response.created" | "response.in_progress" | "response.queued" => self.on_meta(&ev),
            "response.output_item.added" => self.on_item_added(&ev),
            "response.output_item.done" => self.on_item_done(&ev),
            "response.content_part.added" => self.on_part_added(&ev, Slot::Content),
            "response.content_part.done" => self.on_part_done(&ev, Slot::Content),
            "response.reasoning_summary_part.added" => self.on_part_added(&ev, Slot::Summary),
            "response.reasoning_summary_part.done" => self.on_part_done(&ev, Slot::Summary),
            "response.output_text.delta" => self.on_text_delta(&ev, &["message"], Implicit::Create("message"), Slot::Content, "output_text"),
            "response.output_text.done" => self.on_text_done(&ev, &["message"], Implicit::Create("message"), Slot::Content, "output_text", "text"),
            "response.refusal.delta" => self.on_text_delta(&ev, &["message"], Implicit::Create("message"), Slot::Content, "refusal"),
            "response.refusal.done" => self.on_text_done(&ev, &["message"], Implicit::Create("message"), Slot::Content, "refusal", "refusal"),
            "response.reasoning_summary_text.delta" => {
                self.on_text_delta(&ev, &["reasoning"], Implicit::Create("reasoning"), Slot::Summary, "summary_text")
            }
            "response.reasoning_summary_text.done" => {
                self.on_text_done(&ev, &["reasoning"], Implicit::Create("reasoning"), Slot::Summary, "summary_text", "text")
            }
            "response.reasoning_text.delta" => {
                self.on_text_delta(&ev, &["reasoning"], Implicit::Create("reasoning"), Slot::Content, "reasoning_text")
            }
            "response.reasoning_text.done" => {
                self.on_text_done(&ev, &["reasoning"], Implicit::Create("reasoning"), Slot::Content, "reasoning_text", "text")
            }
            "response.output_text.annotation.added" => self.on_annotation(&ev),
            "response.function_call_arguments.delta" => self.on_args_delta(&ev, "function_call"),
            "response.function_call_arguments.done" => self.on_args_done(&ev, "function_call", "arguments"),
            "response.custom_tool_call_input.delta" => self.on_args_delta(&ev, "custom_tool_call"),
            "response.custom_tool_call_input.done" => self.on_args_done(&ev, "custom_tool_call", "input"),
            "response.mcp_call_arguments.delta" => self.on_args_delta(&ev, "mcp_call"),
            "response.mcp_call_arguments.done" => self.on_args_done(&ev, "mcp_call", "arguments"),
            "response.tool_call.delta" => self.on_seed_tool_call_delta(&ev),
            "response.completed" | "response.done" => self.on_terminal(&ev, Terminal::Completed),
            "response.incomplete" => self.on_terminal(&ev, Terminal::Incomplete),
            "response.failed" => {
                self.on_terminal(&ev, Terminal::Failed)?;
                let partial = self.build();
                let err = match partial.get("error") {
                    Some(e @ Value::Object(_)) => e.clone(),
                    _ => ev.obj.get("error").cloned().unwrap_or_else(|| json!({})),
                };
                Err(upstream_error(&err, "Responses stream failed", Some(partial.to_string())))
            }
            "error" => Err(upstream_error(&error_event_object(&ev.obj), "Responses stream error", Some(Value::Object(ev.obj.clone()).to_string()))),
            // Progress events of hosted tools, audio, etc.: their items arrive through
            // output_item.added/done.
            k if k.starts_with("response.") => Ok(()),
            k => Err(ev.bad("type", format!("{k:?} is not a Responses stream event"))),
        }
    }

    fn check_id(&self, ev: &Ev, resp: &Map<String, Value>, field: &str) -> Result<()> {
        if let (Some(a), Some(b)) = (self.meta.get("id").and_then(Value::as_str), resp.get("id").and_then(Value::as_str)) {
            if a != b {
                return Err(ev.bad(field, format!("{b:?} differs from the id {a:?} the stream began with")));
            }
        }
        Ok(())
    }

    fn on_meta(&mut self, ev: &Ev) -> Result<()> {
        match ev.obj.get("response") {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Object(r)) => {
                self.check_id(ev, r, "response.id")?;
                for (k, v) in r {
                    if k != "output" {
                        self.meta.insert(k.clone(), v.clone());
                    }
                }
                Ok(())
            }
            other => Err(ev.bad("response", format!("must be an object, got {}", describe(other)))),
        }
    }

    fn next_index(&self) -> u64 {
        self.items.keys().next_back().map_or(0, |k| k + 1)
    }

    fn on_item_added(&mut self, ev: &Ev) -> Result<()> {
        let item = ev.req_obj("item")?.clone();
        if item.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(ev.bad("item.type", format!("must be a non-empty string, got {}", describe(item.get("type")))));
        }
        let next = self.next_index();
        let oi = ev.opt_u64("output_index")?.unwrap_or(next);
        if oi < next {
            return Err(ev.bad("output_index", format!("{oi} repeats or precedes an item already added (the next is {next}): events out of order")));
        }
        match item.get("id") {
            None | Some(Value::Null) => {}
            Some(Value::String(id)) => {
                if self.ids.contains_key(id) {
                    return Err(ev.bad("item.id", format!("{id:?} was already added")));
                }
                self.ids.insert(id.clone(), oi);
            }
            other => return Err(ev.bad("item.id", format!("must be a string, got {}", describe(other)))),
        }
        self.items.insert(oi, Item::from_added(item));
        Ok(())
    }

    /// The item an event names by `item_id` (or `id_field`) and/or `output_index`.
    fn resolve(&self, ev: &Ev, id: Option<&Value>, id_field: &str) -> Result<Option<u64>> {
        let id = match id {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            other => return Err(ev.bad(id_field, format!("must be a string, got {}", describe(other)))),
        };
        let oi = ev.opt_u64("output_index")?;
        match (id, oi) {
            (Some(id), oi) => {
                let &at = self
                    .ids
                    .get(id)
                    .ok_or_else(|| ev.bad(id_field, format!("names unknown item {id:?}: no response.output_item.added announced it")))?;
                if let Some(oi) = oi {
                    if oi != at {
                        return Err(ev.bad("output_index", format!("{oi} does not match item {id:?}, which is at output_index {at}")));
                    }
                }
                Ok(Some(at))
            }
            (None, Some(oi)) => {
                if self.items.contains_key(&oi) {
                    Ok(Some(oi))
                } else {
                    Err(ev.bad("output_index", format!("{oi} names no item: no response.output_item.added announced one there")))
                }
            }
            (None, None) => Ok(None),
        }
    }

    fn on_item_done(&mut self, ev: &Ev) -> Result<()> {
        let item = ev.req_obj("item")?.clone();
        let oi =
            self.resolve(ev, item.get("id"), "item.id")?.ok_or_else(|| ev.bad("item.id", "names no item (item.id or output_index is needed)"))?;
        let it = self.items.get_mut(&oi).ok_or_else(|| internal("resolved item vanished"))?;
        if it.done {
            return Err(ev.bad("item.id", format!("the item at output_index {oi} was already done")));
        }
        if let Some(t) = item.get("type").and_then(Value::as_str) {
            if t != it.kind {
                return Err(ev.bad("item.type", format!("{t:?} differs from the {:?} item added at output_index {oi}", it.kind)));
            }
        }
        if let Some(id) = item.get("id").and_then(Value::as_str) {
            self.ids.entry(id.to_string()).or_insert(oi);
        }
        it.item = item;
        it.done = true;
        Ok(())
    }

    /// The open item a delta goes to.
    fn target(&mut self, ev: &Ev, kinds: &[&str], implicit: Implicit) -> Result<u64> {
        let oi = match self.resolve(ev, ev.obj.get("item_id"), "item_id")? {
            Some(oi) => oi,
            None => match implicit {
                Implicit::Create(kind) => self.implicit_item(kind),
                Implicit::LastOpen(kind) => self
                    .items
                    .iter()
                    .rev()
                    .find(|(_, it)| it.kind == kind && !it.done)
                    .map(|(k, _)| *k)
                    .ok_or_else(|| ev.bad("item_id", format!("names no item and no {kind} item is open")))?,
            },
        };
        let it = self.items.get(&oi).ok_or_else(|| internal("resolved item vanished"))?;
        if !kinds.contains(&it.kind.as_str()) {
            return Err(
                ev.bad("item_id", format!("names the {:?} item at output_index {oi}, but {} applies to {} items", it.kind, ev.kind, kinds.join("/")))
            );
        }
        if it.done {
            return Err(ev.bad("item_id", format!("names the item at output_index {oi}, which was already done (events out of order)")));
        }
        Ok(oi)
    }

    fn implicit_item(&mut self, kind: &'static str) -> u64 {
        if let Some((&k, it)) = self.items.iter().next_back() {
            if it.kind == kind && !it.done {
                return k;
            }
        }
        let oi = self.next_index();
        let (prefix, item) = match kind {
            "message" => ("msg_", json!({"type": "message", "role": "assistant", "status": "in_progress", "content": []})),
            "reasoning" => ("rs_", json!({"type": "reasoning", "summary": []})),
            _ => ("fc_", json!({"type": kind, "status": "in_progress", "call_id": generated_id("call_"), "name": "", "arguments": ""})),
        };
        let mut item = match item {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let id = generated_id(prefix);
        item.insert("id".into(), id.clone().into());
        self.ids.insert(id, oi);
        self.items.insert(oi, Item::from_added(item));
        oi
    }

    fn item_mut(&mut self, oi: u64) -> Result<&mut Item> {
        self.items.get_mut(&oi).ok_or_else(|| internal("resolved item vanished"))
    }

    fn on_part_added(&mut self, ev: &Ev, slot: Slot) -> Result<()> {
        let (kinds, implicit, index_key): (&[&str], _, _) = match slot {
            Slot::Content => (&["message", "reasoning"], Implicit::Create("message"), "content_index"),
            Slot::Summary => (&["reasoning"], Implicit::Create("reasoning"), "summary_index"),
        };
        let oi = self.target(ev, kinds, implicit)?;
        let idx = ev.opt_u64(index_key)?.unwrap_or(0);
        let part = ev.req_obj("part")?.clone();
        let it = self.item_mut(oi)?;
        let map = match slot {
            Slot::Content => &mut it.parts,
            Slot::Summary => &mut it.summary,
        };
        if map.contains_key(&idx) {
            return Err(ev.bad(index_key, format!("{idx} of the item at output_index {oi} already exists (added twice, or its deltas came first)")));
        }
        map.insert(idx, Part::from_obj(part));
        Ok(())
    }

    fn on_part_done(&mut self, ev: &Ev, slot: Slot) -> Result<()> {
        let (kinds, implicit, index_key): (&[&str], _, _) = match slot {
            Slot::Content => (&["message", "reasoning"], Implicit::Create("message"), "content_index"),
            Slot::Summary => (&["reasoning"], Implicit::Create("reasoning"), "summary_index"),
        };
        let oi = self.target(ev, kinds, implicit)?;
        let idx = ev.opt_u64(index_key)?.unwrap_or(0);
        let part = ev.req_obj("part")?.clone();
        let it = self.item_mut(oi)?;
        let map = match slot {
            Slot::Content => &mut it.parts,
            Slot::Summary => &mut it.summary,
        };
        let p = map.entry(idx).or_default();
        if p.done {
            return Err(ev.bad(index_key, format!("{idx} of the item at output_index {oi} was already done")));
        }
        let old_text = std::mem::take(&mut p.text);
        let mut fresh = Part::from_obj(part);
        if !fresh.obj.get(text_key(&fresh.obj)).is_some_and(Value::is_string) {
            fresh.text = old_text;
        }
        fresh.text_final = true;
        fresh.done = true;
        *p = fresh;
        Ok(())
    }

    fn on_text_delta(&mut self, ev: &Ev, kinds: &[&str], implicit: Implicit, slot: Slot, part_type: &str) -> Result<()> {
        let index_key = match slot {
            Slot::Content => "content_index",
            Slot::Summary => "summary_index",
        };
        let delta = ev.req_str("delta")?;
        let idx = ev.opt_u64(index_key)?.unwrap_or(0);
        let oi = self.target(ev, kinds, implicit)?;
        let it = self.item_mut(oi)?;
        let map = match slot {
            Slot::Content => &mut it.parts,
            Slot::Summary => &mut it.summary,
        };
        let p = map.entry(idx).or_insert_with(|| Part::fresh(part_type));
        if p.text_final || p.done {
            return Err(ev.bad("delta", format!("came after part {idx} of the item at output_index {oi} was done (events out of order)")));
        }
        p.text.push_str(delta);
        Ok(())
    }

    /// `*.done` with the full text: it replaces what the deltas built.
    fn on_text_done(&mut self, ev: &Ev, kinds: &[&str], implicit: Implicit, slot: Slot, part_type: &str, field: &str) -> Result<()> {
        let index_key = match slot {
            Slot::Content => "content_index",
            Slot::Summary => "summary_index",
        };
        let full = ev.req_str(field)?.to_string();
        let idx = ev.opt_u64(index_key)?.unwrap_or(0);
        let oi = self.target(ev, kinds, implicit)?;
        let it = self.item_mut(oi)?;
        let map = match slot {
            Slot::Content => &mut it.parts,
            Slot::Summary => &mut it.summary,
        };
        let p = map.entry(idx).or_insert_with(|| Part::fresh(part_type));
        if p.text_final || p.done {
            return Err(ev.bad(field, format!("part {idx} of the item at output_index {oi} was already done")));
        }
        p.text = full;
        p.text_final = true;
        Ok(())
    }

    fn on_annotation(&mut self, ev: &Ev) -> Result<()> {
        let annotation = ev.req_obj("annotation")?.clone();
        let idx = ev.opt_u64("content_index")?.unwrap_or(0);
        let at = ev.opt_u64("annotation_index")?;
        let oi = self.target(ev, &["message"], Implicit::Create("message"))?;
        let it = self.item_mut(oi)?;
        let p = it.parts.entry(idx).or_insert_with(|| Part::fresh("output_text"));
        let slot = p.obj.entry("annotations").or_insert_with(|| json!([]));
        if !slot.is_array() {
            *slot = json!([]);
        }
        let Value::Array(list) = slot else { return Err(internal("annotations is not an array")) };
        match at.map(|a| a as usize) {
            None => list.push(Value::Object(annotation)),
            Some(a) if a == list.len() => list.push(Value::Object(annotation)),
            Some(a) if a < list.len() => list[a] = Value::Object(annotation),
            Some(a) => {
                return Err(ev.bad("annotation_index", format!("{a} skips ahead of the {} annotations seen (events out of order)", list.len())))
            }
        }
        Ok(())
    }

    fn on_args_delta(&mut self, ev: &Ev, kind: &'static str) -> Result<()> {
        let delta = ev.req_str("delta")?;
        let oi = self.target(ev, &[kind], Implicit::LastOpen(kind))?;
        let it = self.item_mut(oi)?;
        if it.args_final {
            return Err(ev.bad("delta", format!("came after the arguments of the item at output_index {oi} were done (events out of order)")));
        }
        it.args.push_str(delta);
        Ok(())
    }

    fn on_args_done(&mut self, ev: &Ev, kind: &'static str, field: &str) -> Result<()> {
        let full = ev.req_str(field)?.to_string();
        let name = ev.opt_str("name")?.map(String::from);
        let oi = self.target(ev, &[kind], Implicit::LastOpen(kind))?;
        let it = self.item_mut(oi)?;
        if it.args_final {
            return Err(ev.bad(field, format!("of the item at output_index {oi} were already done")));
        }
        it.args = full;
        it.args_final = true;
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            if it.item.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
                it.item.insert("name".into(), n.into());
            }
        }
        Ok(())
    }

    /// The seed's `response.tool_call.delta`: `{call_id?|id?, name?, delta|arguments}`. With an
    /// `item_id`/`output_index` it is an argument delta; otherwise a new `call_id` starts a new
    /// function call and anything else continues the open one.
    fn on_seed_tool_call_delta(&mut self, ev: &Ev) -> Result<()> {
        let addressed = ev.obj.get("item_id").is_some_and(|v| !v.is_null()) || ev.obj.get("output_index").is_some_and(|v| !v.is_null());
        if addressed {
            return self.on_args_delta(ev, "function_call");
        }
        let call_id = match ev.opt_str("call_id")? {
            Some(c) => Some(c.to_string()),
            None => ev.opt_str("id")?.map(String::from),
        };
        let name = ev.opt_str("name")?.map(String::from);
        let delta = match ev.opt_str("delta")? {
            Some(d) => d.to_string(),
            None => ev.opt_str("arguments")?.unwrap_or("").to_string(),
        };
        let open =
            self.items.iter().rev().find(|(_, it)| it.kind == "function_call" && !it.done).map(|(k, it)| (*k, it.item.get("call_id").cloned()));
        let oi = match (open, &call_id) {
            (Some((oi, _)), None) => oi,
            (Some((oi, Some(Value::String(c)))), Some(want)) if &c == want => oi,
            _ => {
                let oi = self.next_index();
                let id = generated_id("fc_");
                let item = json!({"id": id, "type": "function_call", "status": "in_progress",
                    "call_id": call_id.clone().unwrap_or_else(|| generated_id("call_")), "name": name.clone().unwrap_or_default(), "arguments": ""});
                let Value::Object(item) = item else { return Err(internal("item is not an object")) };
                self.ids.insert(id, oi);
                self.items.insert(oi, Item::from_added(item));
                oi
            }
        };
        let it = self.item_mut(oi)?;
        if it.args_final {
            return Err(ev.bad("delta", "came after the call's arguments were done (events out of order)"));
        }
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            it.item.insert("name".into(), n.into());
        }
        it.args.push_str(&delta);
        Ok(())
    }

    fn on_terminal(&mut self, ev: &Ev, t: Terminal) -> Result<()> {
        let resp = match ev.obj.get("response") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(r)) => {
                self.check_id(ev, r, "response.id")?;
                r.clone()
            }
            other => return Err(ev.bad("response", format!("must be an object, got {}", describe(other)))),
        };
        match resp.get("output") {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) => {
                for (i, x) in a.iter().enumerate() {
                    if !x.is_object() {
                        return Err(ev.bad(&format!("response.output[{i}]"), format!("must be an output item object, got {}", describe(Some(x)))));
                    }
                }
            }
            other => return Err(ev.bad("response.output", format!("must be an array, got {}", describe(other)))),
        }
        for (field, v) in [("response.usage", resp.get("usage")), ("usage", ev.obj.get("usage"))] {
            if let Some(v) = v {
                if !(v.is_null() || v.is_object()) {
                    return Err(ev.bad(field, format!("must be an object, got {}", describe(Some(v)))));
                }
            }
        }
        if let Some(u @ Value::Object(_)) = ev.obj.get("usage") {
            self.event_usage = Some(u.clone());
        }
        self.terminal = Some((t, resp));
        Ok(())
    }

    fn build(&self) -> Value {
        let (t, tresp) = match &self.terminal {
            Some((t, r)) => (Some(*t), Some(r)),
            None => (None, None),
        };
        let mut resp = self.meta.clone();
        if let Some(r) = tresp {
            for (k, v) in r {
                if k != "output" {
                    resp.insert(k.clone(), v.clone());
                }
            }
        }
        if resp.get("id").and_then(Value::as_str).is_none_or(str::is_empty) {
            resp.insert("id".into(), self.fallback_id.clone().into());
        }
        resp.insert("object".into(), "response".into());
        if !resp.get("created_at").is_some_and(Value::is_number) {
            resp.insert("created_at".into(), self.fallback_created.into());
        }
        if !resp.get("model").is_some_and(Value::is_string) {
            resp.insert("model".into(), "".into());
        }
        let status = match t {
            Some(Terminal::Completed) => "completed".to_string(),
            Some(Terminal::Incomplete) => "incomplete".to_string(),
            Some(Terminal::Failed) => "failed".to_string(),
            None => resp.get("status").and_then(Value::as_str).unwrap_or("in_progress").to_string(),
        };
        let item_status = match t {
            Some(Terminal::Completed) => Some("completed"),
            Some(Terminal::Incomplete) => Some("incomplete"),
            _ => None,
        };
        resp.insert("status".into(), status.into());
        let built: Vec<(u64, Value)> = self.items.iter().map(|(k, it)| (*k, it.to_value(item_status))).collect();
        let final_output = tresp.and_then(|r| r.get("output")).and_then(Value::as_array).filter(|a| !a.is_empty());
        let output = match final_output {
            Some(final_items) => merge_output(final_items, built),
            None => built.into_iter().map(|(_, v)| v).collect(),
        };
        resp.insert("output".into(), Value::Array(output));
        let usage = match resp.get("usage") {
            Some(u @ Value::Object(_)) => normalize_usage(u),
            _ => self.event_usage.as_ref().map(normalize_usage).unwrap_or(Value::Null),
        };
        resp.insert("usage".into(), usage);
        resp.entry("incomplete_details").or_insert(Value::Null);
        resp.entry("error").or_insert(Value::Null);
        Value::Object(resp)
    }
}

/// The final object's `output`, with any built item it lacks (by id) put back at its index.
fn merge_output(final_items: &[Value], built: Vec<(u64, Value)>) -> Vec<Value> {
    let mut out: Vec<Value> = final_items.to_vec();
    let have: HashSet<String> = out.iter().filter_map(|v| v.get("id").and_then(Value::as_str).map(String::from)).collect();
    for (oi, v) in built {
        let missing = match v.get("id").and_then(Value::as_str) {
            Some(id) => !have.contains(id),
            None => (oi as usize) >= final_items.len(),
        };
        if missing {
            let at = (oi as usize).min(out.len());
            out.insert(at, v);
        }
    }
    out
}

fn internal(what: &str) -> Error {
    Error::Internal { message: format!("Responses rebuilder: {what}") }
}

/// An event as an object; a seed-style `data` object payload is merged into it.
pub(crate) fn normalize_event(event: &Value) -> Option<Map<String, Value>> {
    let mut obj = event.as_object()?.clone();
    if let Some(Value::Object(data)) = obj.get("data").cloned() {
        obj.remove("data");
        for (k, v) in data {
            obj.entry(k).or_insert(v);
        }
    }
    Some(obj)
}

/// The error object of an `error` event: its nested `error`, or the event itself.
pub(crate) fn error_event_object(ev: &Map<String, Value>) -> Value {
    match ev.get("error") {
        Some(e @ Value::Object(_)) => e.clone(),
        _ => {
            let mut m = ev.clone();
            m.remove("type");
            m.remove("sequence_number");
            Value::Object(m)
        }
    }
}

/// Responses usage with every documented field: `input_tokens`, `output_tokens`,
/// `total_tokens` (their sum when missing) and the two details objects (zeros when missing).
pub(crate) fn normalize_usage(u: &Value) -> Value {
    let Some(m) = u.as_object() else { return Value::Null };
    let n = |k: &str| m.get(k).and_then(Value::as_u64);
    let input = n("input_tokens").unwrap_or(0);
    let output = n("output_tokens").unwrap_or(0);
    let total = n("total_tokens").unwrap_or(input + output);
    let mut out = m.clone();
    out.insert("input_tokens".into(), input.into());
    out.insert("output_tokens".into(), output.into());
    out.insert("total_tokens".into(), total.into());
    if !out.get("input_tokens_details").is_some_and(Value::is_object) {
        out.insert("input_tokens_details".into(), json!({"cached_tokens": 0}));
    }
    if !out.get("output_tokens_details").is_some_and(Value::is_object) {
        out.insert("output_tokens_details".into(), json!({"reasoning_tokens": 0}));
    }
    Value::Object(out)
}

/// The typed error for an upstream error object `{code, type, message, param}` (from
/// `response.failed`'s `response.error`, an `error` event, or a failed response).
pub(crate) fn upstream_error(err: &Value, what: &str, body: Option<String>) -> Error {
    let s = |k: &str| match err.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let code = s("code");
    let etype = s("type").filter(|t| t != "error");
    let msg = s("message").unwrap_or_else(|| "the upstream gave no message".into());
    let provider_code = code.clone().or_else(|| etype.clone());
    let message = match &provider_code {
        Some(c) => format!("{what}: {msg} ({c})"),
        None => format!("{what}: {msg}"),
    };
    let keys: Vec<&str> = [code.as_deref(), etype.as_deref()].into_iter().flatten().collect();
    let any = |f: &dyn Fn(&str) -> bool| keys.iter().any(|k| f(k));
    if any(&|k| k.contains("rate_limit") || k.contains("quota") || matches!(k, "too_many_requests" | "requests" | "tokens" | "429")) {
        Error::RateLimit { message, status: None, retry_after_ms: None, body, provider_code }
    } else if any(&|k| {
        matches!(
            k,
            "invalid_api_key"
                | "authentication_error"
                | "unauthorized"
                | "permission_denied"
                | "permission_error"
                | "invalid_authentication"
                | "401"
                | "403"
        )
    }) {
        Error::Authentication { message, status: None, body, provider_code }
    } else if any(&|k| matches!(k, "model_not_found" | "not_found_error" | "not_found")) {
        Error::Provider { message, status: Some(404), body, provider_code, retry_after_ms: None }
    } else if any(&|k| {
        k.starts_with("invalid")
            || matches!(k, "context_length_exceeded" | "bad_request" | "unsupported_value" | "unsupported_parameter" | "missing_required_parameter")
    }) {
        // A request the upstream refused: retrying cannot help, so it reads as the 400 a
        // non-stream call would have answered.
        Error::Provider { message, status: Some(400), body, provider_code, retry_after_ms: None }
    } else {
        Error::Provider { message, status: None, body, provider_code, retry_after_ms: None }
    }
}

/// The OpenAI-style error object `{message, type, param, code}` for an engine error.
pub(crate) fn openai_error_object(e: &Error) -> Value {
    let (etype, default_code) = match e {
        Error::Validation { .. } => ("invalid_request_error", "invalid_value"),
        Error::Authentication { .. } => ("authentication_error", "invalid_api_key"),
        Error::RateLimit { .. } => ("rate_limit_error", "rate_limit_exceeded"),
        Error::CircuitOpen { .. } => ("server_error", "circuit_breaker_open"),
        Error::Timeout { .. } => ("timeout_error", "timeout"),
        Error::QueueFull { .. } => ("rate_limit_error", "queue_full"),
        Error::Cancelled { .. } => ("request_cancelled", "cancelled"),
        Error::Provider { status: Some(s), .. } if (400..500).contains(s) => ("invalid_request_error", "provider_error"),
        Error::Provider { .. } => ("server_error", "provider_error"),
        Error::Connection { .. } => ("server_error", "connection_error"),
        Error::Stream { .. } => ("server_error", "streaming_processing_error"),
        Error::NoAvailablePipeline { .. } => ("server_error", "no_available_pipeline"),
        Error::Internal { .. } => ("server_error", "internal_error"),
    };
    let provider_code = match e {
        Error::Authentication { provider_code, .. } | Error::RateLimit { provider_code, .. } | Error::Provider { provider_code, .. } => {
            provider_code.clone()
        }
        _ => None,
    };
    let param = match e {
        Error::Validation { field: Some(f), .. } => Value::from(f.clone()),
        _ => Value::Null,
    };
    json!({"message": e.to_string(), "type": etype, "param": param, "code": provider_code.unwrap_or_else(|| default_code.to_string())})
}

fn now_millis() -> u64 {
    crate::time::epoch_ms()
}

/// The Responses error body of the seed's `createResponsesErrorResponse`:
/// `{id: "error_<ms>", type: "error", error: {type, message, code, param}, _protocol:
/// "responses", _errorContext: {workflowType, timestamp, errorCode, retryable}}`. Unlike the
/// seed (always `invalid_request_error` / `streaming_processing_error`), `error.type` and
/// `error.code` follow the error: the upstream's code when it gave one.
pub fn error_body(e: &Error) -> Value {
    let ms = now_millis();
    json!({
        "id": format!("error_{ms}"),
        "type": "error",
        "error": openai_error_object(e),
        "_protocol": "responses",
        "_errorContext": {
            "workflowType": "responses-streaming-workflow",
            "timestamp": ms,
            "errorCode": e.code(),
            "retryable": e.retryable(),
        },
    })
}

fn sse_error(e: SseError) -> Error {
    Error::Stream { message: format!("Malformed Responses SSE: {e}"), partial: None }
}

/// Splits a whole `text/event-stream` body into event objects with the house SSE decoder.
/// Each event's `data` must be a JSON object; an `event:` name fills in a missing `type` and
/// must agree with a present one. Comments, empty data and a `[DONE]` terminator are skipped.
/// Undecodable JSON is an `Error::Stream` (malformed SSE) naming the event.
pub fn parse_sse(text: &str) -> Result<Vec<Value>> {
    let mut dec = SseDecoder::new();
    let mut raw = Vec::new();
    dec.feed(text.as_bytes(), &mut raw).map_err(sse_error)?;
    dec.finish(&mut raw).map_err(sse_error)?;
    let mut out = Vec::with_capacity(raw.len());
    for (i, e) in raw.into_iter().enumerate() {
        let data = e.data.trim();
        if data.is_empty() || data.starts_with("[DONE]") {
            continue;
        }
        let name = e.event.as_deref().unwrap_or("message");
        let v: Value = serde_json::from_str(data).map_err(|err| Error::Stream {
            message: format!("Malformed Responses SSE: event #{i} ({name}) is not valid JSON: {err}"),
            partial: None,
        })?;
        let Value::Object(mut m) = v else {
            return Err(Error::Stream { message: format!("Malformed Responses SSE: event #{i} ({name}) is not a JSON object"), partial: None });
        };
        if let Some(ev_name) = e.event.as_deref().filter(|n| *n != "message") {
            match m.get("type").and_then(Value::as_str) {
                None => {
                    m.insert("type".into(), ev_name.into());
                }
                Some(t) if t == ev_name => {}
                Some(t) => {
                    return Err(Error::Stream {
                        message: format!("Malformed Responses SSE: event #{i} is named {ev_name:?} but its data says type {t:?}"),
                        partial: None,
                    })
                }
            }
        }
        out.push(Value::Object(m));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers the events 0, 1, 2, ...
    fn numbered(events: Vec<Value>) -> Vec<Value> {
        events
            .into_iter()
            .enumerate()
            .map(|(i, mut e)| {
                e["sequence_number"] = json!(i);
                e
            })
            .collect()
    }

    fn rebuild(events: &[Value]) -> Result<Value> {
        ResponsesRebuilder::rebuild(events, ResponsesRebuilderConfig::default())
    }

    /// The error of the first event that fails.
    fn first_error(events: &[Value]) -> Error {
        let mut r = ResponsesRebuilder::new();
        for e in events {
            if let Err(err) = r.push(e) {
                return err;
            }
        }
        r.finish().expect_err("the events should fail")
    }

    fn validation_field(e: &Error) -> String {
        match e {
            Error::Validation { field: Some(f), .. } => f.clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn usage() -> Value {
        json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 30,
            "output_tokens_details": {"reasoning_tokens": 9}, "total_tokens": 42})
    }

    /// A stream as api.openai.com sends it: a reasoning item, a message, a function call. With
    /// `with_done` the `*.done` / `output_item.done` events are sent; with `final_output` the
    /// `response.completed` carries the whole output (otherwise `output: []`).
    fn openai_stream(reasoning: &[String], text: &[String], args: &[String], with_done: bool, final_output: bool) -> (Vec<Value>, Value) {
        let (r, t, a) = (reasoning.concat(), text.concat(), args.concat());
        let skeleton = json!({"id": "resp_1", "object": "response", "created_at": 1_700_000_000u64, "status": "in_progress",
            "model": "gpt-4.1", "output": [], "usage": null, "error": null, "incomplete_details": null, "temperature": 1.0, "tools": []});
        let rs = json!({"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": r}]});
        let msg = json!({"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": t, "annotations": []}]});
        let fc = json!({"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "call_1", "name": "get_weather", "arguments": a});
        let mut full = skeleton.clone();
        full["status"] = json!("completed");
        full["output"] = json!([rs, msg, fc]);
        full["usage"] = usage();

        let mut ev = vec![json!({"type": "response.created", "response": skeleton}), json!({"type": "response.in_progress", "response": skeleton})];
        ev.push(json!({"type": "response.output_item.added", "output_index": 0, "item": {"id": "rs_1", "type": "reasoning", "summary": []}}));
        ev.push(json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "output_index": 0, "summary_index": 0,
            "part": {"type": "summary_text", "text": ""}}));
        for d in reasoning {
            ev.push(json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": d}));
        }
        if with_done {
            ev.push(json!({"type": "response.reasoning_summary_text.done", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "text": r}));
            ev.push(json!({"type": "response.reasoning_summary_part.done", "item_id": "rs_1", "output_index": 0, "summary_index": 0,
                "part": {"type": "summary_text", "text": r}}));
            ev.push(json!({"type": "response.output_item.done", "output_index": 0, "item": rs}));
        }
        ev.push(json!({"type": "response.output_item.added", "output_index": 1,
            "item": {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}}));
        ev.push(json!({"type": "response.content_part.added", "item_id": "msg_1", "output_index": 1, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []}}));
        for d in text {
            ev.push(
                json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0, "delta": d, "logprobs": []}),
            );
        }
        if with_done {
            ev.push(
                json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 1, "content_index": 0, "text": t, "logprobs": []}),
            );
            ev.push(json!({"type": "response.content_part.done", "item_id": "msg_1", "output_index": 1, "content_index": 0,
                "part": {"type": "output_text", "text": t, "annotations": []}}));
            ev.push(json!({"type": "response.output_item.done", "output_index": 1, "item": msg}));
        }
        ev.push(json!({"type": "response.output_item.added", "output_index": 2,
            "item": {"id": "fc_1", "type": "function_call", "status": "in_progress", "call_id": "call_1", "name": "get_weather", "arguments": ""}}));
        for d in args {
            ev.push(json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": d}));
        }
        if with_done {
            ev.push(
                json!({"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 2, "name": "get_weather", "arguments": a}),
            );
            ev.push(json!({"type": "response.output_item.done", "output_index": 2, "item": fc}));
        }
        let mut fin = full.clone();
        if !final_output {
            fin["output"] = json!([]);
        }
        ev.push(json!({"type": "response.completed", "response": fin}));
        (numbered(ev), full)
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Cuts `s` at random char boundaries (empty pieces included now and then).
    fn split_random(rng: &mut fastrand::Rng, s: &str) -> Vec<String> {
        let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
        let cuts = rng.usize(0..=bounds.len().min(12));
        let mut at: Vec<usize> = (0..cuts).map(|_| bounds[rng.usize(..bounds.len())]).collect();
        at.push(0);
        at.push(s.len());
        at.sort_unstable();
        at.windows(2).map(|w| s[w[0]..w[1]].to_string()).collect()
    }

    #[test]
    fn responses_seed_usage_example_rebuilds_documented_response() {
        // The seed's `streamingEvents` list, as documented.
        let events = [
            json!({"type": "response.output_text.delta", "data": {"delta": "Hello"}}),
            json!({"type": "response.output_text.delta", "data": {"delta": " world!"}}),
            json!({"type": "response.done", "data": {"usage": {"total_tokens": 10}}}),
        ];
        let config = ResponsesRebuilderConfig::from_json(&json!({"enableEventProcessing": true, "rebuildCompleteResponse": true})).unwrap();
        let mut r = ResponsesRebuilder::rebuild(&events, config).unwrap();
        assert!(r["id"].as_str().unwrap().starts_with("resp_"));
        assert!(r["created_at"].as_u64().unwrap() > 1_600_000_000);
        let msg_id = r["output"][0]["id"].take();
        assert!(msg_id.as_str().unwrap().starts_with("msg_"));
        r["id"] = json!("resp_x");
        r["created_at"] = json!(0);
        // The seed's rebuilt response, with its defects fixed (`output_text`, not `input_text`;
        // every documented field present).
        assert_eq!(
            r,
            json!({"id": "resp_x", "object": "response", "created_at": 0, "status": "completed", "model": "",
                "output": [{"id": null, "type": "message", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "Hello world!", "annotations": []}]}],
                "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 10,
                    "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
                "incomplete_details": null, "error": null})
        );
    }

    #[test]
    fn responses_rebuilds_reasoning_text_and_function_call() {
        let reasoning = strs(&["The user ", "wants the ", "weather."]);
        let text = strs(&["Let me ", "check Paris ", "for you."]);
        let args = strs(&["{\"ci", "ty\":\"Pa", "ris\"}"]);
        for (with_done, final_output) in [(true, true), (true, false), (false, true), (false, false)] {
            let (events, full) = openai_stream(&reasoning, &text, &args, with_done, final_output);
            let mut r = ResponsesRebuilder::new();
            for e in &events {
                r.push(e).unwrap();
            }
            assert!(r.is_finished());
            assert_eq!(r.event_count(), events.len());
            assert_eq!(r.finish().unwrap(), full, "with_done={with_done} final_output={final_output}");
        }
    }

    #[test]
    fn responses_done_events_override_deltas() {
        let events = numbered(vec![
            json!({"type": "response.created", "response": {"id": "resp_2", "model": "m", "created_at": 5, "status": "in_progress"}}),
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"id": "msg_2", "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
            json!({"type": "response.content_part.added", "item_id": "msg_2", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
            json!({"type": "response.output_text.delta", "item_id": "msg_2", "output_index": 0, "content_index": 0, "delta": "Helo wrld"}),
            json!({"type": "response.output_text.done", "item_id": "msg_2", "output_index": 0, "content_index": 0, "text": "Hello world"}),
            json!({"type": "response.output_item.added", "output_index": 1, "item": {"id": "fc_2", "type": "function_call", "status": "in_progress", "call_id": "call_2", "name": "", "arguments": ""}}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_2", "output_index": 1, "delta": "{\"a\":"}),
            json!({"type": "response.function_call_arguments.done", "item_id": "fc_2", "output_index": 1, "name": "f", "arguments": "{\"a\":1}"}),
            json!({"type": "response.completed", "response": {"id": "resp_2", "status": "completed"}}),
        ]);
        let r = rebuild(&events).unwrap();
        assert_eq!(r["output"][0]["content"][0]["text"], "Hello world");
        assert_eq!(r["output"][1]["arguments"], "{\"a\":1}");
        assert_eq!(r["output"][1]["name"], "f", "the name of arguments.done fills in a missing one");
        assert_eq!(r["output"][1]["status"], "completed");

        // content_part.done beats output_text.done; output_item.done beats both.
        let mut more = events[..5].to_vec();
        more.push(json!({"type": "response.content_part.done", "item_id": "msg_2", "output_index": 0, "content_index": 0,
            "part": {"type": "output_text", "text": "Hello, world", "annotations": []}}));
        let r = rebuild(&numbered([more.clone(), vec![json!({"type": "response.completed"})]].concat())).unwrap();
        assert_eq!(r["output"][0]["content"][0]["text"], "Hello, world");
        more.push(json!({"type": "response.output_item.done", "output_index": 0, "item": {"id": "msg_2", "type": "message",
            "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": "Hello, world!", "annotations": []}]}}));
        let r = rebuild(&numbered([more, vec![json!({"type": "response.completed"})]].concat())).unwrap();
        assert_eq!(r["output"][0]["content"][0]["text"], "Hello, world!");
        assert_eq!(r["output"][0]["status"], "completed");
        assert_eq!((r["id"].as_str(), r["model"].as_str(), r["created_at"].as_u64()), (Some("resp_2"), Some("m"), Some(5)));
    }

    #[test]
    fn responses_completed_response_is_authoritative_and_merged() {
        let (mut events, full) = openai_stream(&strs(&["r"]), &strs(&["deltas say this"]), &strs(&["{}"]), false, true);
        // The final object says otherwise about the text, and has more usage detail: it wins.
        let last = events.len() - 1;
        events[last]["response"]["output"][1]["content"][0]["text"] = json!("the final text");
        let r = rebuild(&events).unwrap();
        assert_eq!(r["output"][1]["content"][0]["text"], "the final text");
        assert_eq!(r["usage"], full["usage"]);

        // A final output that lacks an item the events built: the item is merged back at its index.
        let (mut events, full) = openai_stream(&strs(&["r"]), &strs(&["t"]), &strs(&["{\"x\":1}"]), false, true);
        let last = events.len() - 1;
        events[last]["response"]["output"].as_array_mut().unwrap().remove(1);
        assert_eq!(rebuild(&events).unwrap(), full);

        // The final object is for another response: refused.
        let (mut events, _) = openai_stream(&strs(&["r"]), &strs(&["t"]), &strs(&["{}"]), true, true);
        let last = events.len() - 1;
        events[last]["response"]["id"] = json!("resp_other");
        let e = first_error(&events);
        assert_eq!(validation_field(&e), format!("events[{last}].response.id"));
        assert!(e.to_string().contains(&format!("sequence_number {last}")), "{e}");
    }

    #[test]
    fn responses_failed_event_is_typed_error_with_partial() {
        let mut events = openai_stream(&strs(&["r"]), &strs(&["partial text"]), &strs(&[]), false, false).0;
        events.truncate(8); // created .. the message's delta
        events.push(json!({"type": "response.failed", "sequence_number": 100, "response": {"id": "resp_1", "status": "failed",
            "error": {"code": "server_error", "message": "The server had an error while processing your request."}}}));
        let mut r = ResponsesRebuilder::new();
        let mut got = None;
        for e in &events {
            if let Err(err) = r.push(e) {
                got = Some(err);
            }
        }
        let err = got.expect("response.failed is an error");
        match &err {
            Error::Provider { message, status: None, provider_code: Some(code), body: Some(body), .. } => {
                assert_eq!(code, "server_error");
                assert!(message.contains("The server had an error"), "{message}");
                let partial: Value = serde_json::from_str(body).unwrap();
                assert_eq!(partial["status"], "failed");
                assert_eq!(partial["output"][1]["content"][0]["text"], "partial text");
                assert_eq!(partial["error"]["code"], "server_error");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.retryable());
        assert_eq!(r.finish().unwrap_err(), err, "finish repeats the failure");

        let failed = numbered(vec![json!({"type": "response.failed", "response": {"status": "failed",
            "error": {"code": "rate_limit_exceeded", "message": "Rate limit reached for gpt-4.1"}}})]);
        assert!(matches!(first_error(&failed), Error::RateLimit { provider_code: Some(c), .. } if c == "rate_limit_exceeded"));
    }

    #[test]
    fn responses_incomplete_event_gives_incomplete_response() {
        let (mut events, _) = openai_stream(&strs(&["r"]), &strs(&["cut o"]), &strs(&[]), false, false);
        events.truncate(events.len() - 2); // drop the function call and the ending
        events.push(json!({"type": "response.incomplete", "sequence_number": 99, "response": {"id": "resp_1", "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"}, "output": [], "usage": {"input_tokens": 5, "output_tokens": 16}}}));
        let r = rebuild(&events).unwrap();
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"], json!({"reason": "max_output_tokens"}));
        assert_eq!(r["output"][1]["status"], "incomplete");
        assert_eq!(r["output"][1]["content"][0]["text"], "cut o");
        assert_eq!(r["usage"]["total_tokens"], 21);
        assert_eq!(r["error"], Value::Null);
    }

    #[test]
    fn responses_error_events_are_typed_errors() {
        let case = |err: Value| first_error(&numbered(vec![json!({"type": "response.created", "response": {"id": "resp_e"}}), err]));
        let e = case(json!({"type": "error", "code": "rate_limit_exceeded", "message": "Slow down", "param": null}));
        assert!(
            matches!(&e, Error::RateLimit { provider_code: Some(c), message, .. } if c == "rate_limit_exceeded" && message.contains("Slow down"))
        );
        let e = case(json!({"type": "error", "code": "insufficient_quota", "message": "You exceeded your current quota"}));
        assert!(matches!(e, Error::RateLimit { .. }));
        let e = case(json!({"type": "error", "code": "invalid_api_key", "message": "Incorrect API key provided"}));
        assert!(matches!(e, Error::Authentication { .. }));
        let e = case(json!({"type": "error", "code": "context_length_exceeded", "message": "Too long", "param": "input"}));
        assert!(matches!(e, Error::Provider { status: Some(400), .. }));
        assert!(!e.retryable());
        let e = case(json!({"type": "error", "error": {"type": "server_error", "code": null, "message": "Upstream hiccup"}}));
        assert!(matches!(&e, Error::Provider { status: None, provider_code: Some(c), .. } if c == "server_error"));
        assert!(e.retryable());
        let e = case(json!({"type": "error", "message": "no code at all"}));
        assert!(matches!(&e, Error::Provider { provider_code: None, body: Some(_), .. }));

        // After an error the rebuilder stays failed.
        let mut r = ResponsesRebuilder::new();
        let err = r.push(&json!({"type": "error", "code": "rate_limit_exceeded", "message": "x"})).unwrap_err();
        assert_eq!(r.push(&json!({"type": "response.completed"})).unwrap_err(), err);
        assert_eq!(r.finish().unwrap_err(), err);
    }

    #[test]
    fn responses_buffer_bound_errors_loudly() {
        let config = ResponsesRebuilderConfig { max_event_buffer_size: 5 };
        let events = numbered(vec![
            json!({"type": "response.created", "response": {"id": "resp_b"}}),
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"id": "m", "type": "message", "role": "assistant", "content": []}}),
            json!({"type": "response.output_text.delta", "item_id": "m", "delta": "a"}),
            json!({"type": "response.output_text.delta", "item_id": "m", "delta": "b"}),
            json!({"type": "response.completed"}),
        ]);
        assert_eq!(ResponsesRebuilder::rebuild(&events, config).unwrap()["output"][0]["content"][0]["text"], "ab", "exactly the bound is fine");

        let mut longer = events[..4].to_vec();
        longer.push(json!({"type": "response.output_text.delta", "item_id": "m", "delta": "c", "sequence_number": 4}));
        longer.push(json!({"type": "response.completed", "sequence_number": 5}));
        let mut r = ResponsesRebuilder::with_config(config);
        let results: Vec<Result<()>> = longer.iter().map(|e| r.push(e)).collect();
        assert!(results[..5].iter().all(Result::is_ok));
        match &results[5] {
            Err(Error::Stream { message, partial: Some(p) }) => {
                assert!(message.contains("maxEventBufferSize (5)"), "{message}");
                assert!(message.contains("bound hit"), "{message}");
                assert_eq!(p["output"][0]["content"][0]["text"], "abc", "nothing was dropped");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(r.finish(), Err(Error::Stream { .. })));
    }

    #[test]
    fn responses_randomized_rechunking_rebuilds_same_response() {
        let mut rng = fastrand::Rng::with_seed(0x0E5_9011);
        let reasoning = "The user asks about Paris — weather first, then a summary. 🤔";
        let text = "Héllo! In Paris it is 18°C and sunny ☀️; 你好, have a nice day.\nSecond line with \"quotes\" and \\ slashes.";
        let args = r#"{"city":"Paris","units":"metric","days":[1,2,3],"note":"naïve ☃"}"#;
        for run in 0..200 {
            let with_done = run % 2 == 0;
            let final_output = run % 3 == 0;
            let (events, full) = openai_stream(
                &split_random(&mut rng, reasoning),
                &split_random(&mut rng, text),
                &split_random(&mut rng, args),
                with_done,
                final_output,
            );
            assert_eq!(rebuild(&events).unwrap(), full, "run {run}");
        }
    }

    #[test]
    fn responses_out_of_order_and_unknown_items_are_validation_errors() {
        let (base, _) = openai_stream(&strs(&["r"]), &strs(&["a", "b"]), &strs(&["{}"]), true, true);
        let find = |t: &str| base.iter().position(|e| e["type"] == t).unwrap();

        // A delta for an item nobody announced.
        let mut ev = base.clone();
        let i = find("response.output_text.delta");
        ev[i]["item_id"] = json!("msg_unknown");
        let e = first_error(&ev);
        assert_eq!(validation_field(&e), format!("events[{i}].item_id"));
        let msg = e.to_string();
        assert!(msg.contains(&format!("sequence_number {i}")) && msg.contains("msg_unknown"), "{msg}");

        // Sequence numbers going back.
        let mut ev = base.clone();
        ev[5]["sequence_number"] = json!(2);
        assert_eq!(validation_field(&first_error(&ev)), "events[5].sequence_number");

        // A delta after its text was done, and after its item was done.
        let mut ev = base.clone();
        let done = find("response.output_text.done");
        ev.insert(
            done + 1,
            json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0, "delta": "late"}),
        );
        let ev = numbered(ev);
        assert_eq!(validation_field(&first_error(&ev)), format!("events[{}].delta", done + 1));
        let mut ev = base.clone();
        let item_done = base.iter().rposition(|e| e["type"] == "response.output_item.done" && e["output_index"] == 1).unwrap();
        ev.insert(item_done + 1, json!({"type": "response.output_text.delta", "item_id": "msg_1", "delta": "late"}));
        assert_eq!(validation_field(&first_error(&numbered(ev))), format!("events[{}].item_id", item_done + 1));

        // Two items at one output_index; an item id added twice.
        let mut ev = base.clone();
        let added = find("response.output_item.added");
        ev.insert(added + 1, json!({"type": "response.output_item.added", "output_index": 0, "item": {"id": "x", "type": "message"}}));
        assert_eq!(validation_field(&first_error(&numbered(ev))), format!("events[{}].output_index", added + 1));
        let mut ev = base.clone();
        ev.insert(added + 1, json!({"type": "response.output_item.added", "output_index": 7, "item": {"id": "rs_1", "type": "message"}}));
        assert_eq!(validation_field(&first_error(&numbered(ev))), format!("events[{}].item.id", added + 1));

        // Deltas before their content_part.added.
        let ev = numbered(vec![
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"id": "m", "type": "message", "content": []}}),
            json!({"type": "response.output_text.delta", "item_id": "m", "content_index": 0, "delta": "x"}),
            json!({"type": "response.content_part.added", "item_id": "m", "content_index": 0, "part": {"type": "output_text", "text": ""}}),
        ]);
        assert_eq!(validation_field(&first_error(&ev)), "events[2].content_index");

        // item_id and output_index disagree; arguments for a message; done for an unknown item.
        let mut ev = base.clone();
        let i = find("response.output_text.delta");
        ev[i]["output_index"] = json!(2);
        assert_eq!(validation_field(&first_error(&ev)), format!("events[{i}].output_index"));
        let mut ev = base.clone();
        let i = find("response.function_call_arguments.delta");
        ev[i]["item_id"] = json!("msg_1");
        ev[i]["output_index"] = json!(1);
        assert_eq!(validation_field(&first_error(&ev)), format!("events[{i}].item_id"));
        let mut ev = base.clone();
        let i = find("response.output_item.done");
        ev[i]["item"]["id"] = json!("nope");
        assert_eq!(validation_field(&first_error(&ev)), format!("events[{i}].item.id"));

        // Anything after the ending.
        let mut ev = base.clone();
        ev.push(json!({"type": "response.output_text.delta", "item_id": "msg_1", "delta": "x"}));
        let n = ev.len() - 1;
        assert_eq!(validation_field(&first_error(&numbered(ev))), format!("events[{n}].type"));
    }

    #[test]
    fn responses_malformed_events_are_validation_errors_never_panic() {
        let start = json!({"type": "response.output_item.added", "output_index": 0, "item": {"id": "m", "type": "message", "content": []}});
        let cases: Vec<(Value, &str)> = vec![
            (json!(42), "events[1]"),
            (json!([1, 2]), "events[1]"),
            (json!({"delta": "x"}), "events[1].type"),
            (json!({"type": 7}), "events[1].type"),
            (json!({"type": "response.output_text.delta", "item_id": "m", "delta": 5}), "events[1].delta"),
            (json!({"type": "response.output_text.delta", "item_id": 5, "delta": "x"}), "events[1].item_id"),
            (json!({"type": "response.output_text.delta", "output_index": "0", "delta": "x"}), "events[1].output_index"),
            (json!({"type": "response.output_text.delta", "item_id": "m", "content_index": -1, "delta": "x"}), "events[1].content_index"),
            (json!({"type": "response.output_item.added", "output_index": 1}), "events[1].item"),
            (json!({"type": "response.output_item.added", "output_index": 1, "item": {"id": "n"}}), "events[1].item.type"),
            (json!({"type": "response.created", "response": "resp"}), "events[1].response"),
            (json!({"type": "response.completed", "response": {"output": {}}}), "events[1].response.output"),
            (json!({"type": "response.completed", "response": {"output": [3]}}), "events[1].response.output[0]"),
            (json!({"type": "response.completed", "response": {"usage": "lots"}}), "events[1].response.usage"),
            (json!({"type": "response.output_text.done", "item_id": "m"}), "events[1].text"),
            (json!({"type": "response.function_call_arguments.delta", "delta": "{"}), "events[1].item_id"),
            (
                json!({"type": "response.output_text.annotation.added", "item_id": "m", "annotation_index": 3, "annotation": {}}),
                "events[1].annotation_index",
            ),
            (json!({"type": "ping"}), "events[1].type"),
            (json!({"type": "response.output_text.delta", "item_id": "m", "delta": "x", "sequence_number": "1"}), "events[1].sequence_number"),
        ];
        for (bad, field) in cases {
            let e = first_error(&[start.clone(), bad.clone()]);
            assert_eq!(validation_field(&e), field, "{bad}");
        }

        // Random garbage in plausible shapes: typed errors or success, never a panic.
        let mut rng = fastrand::Rng::with_seed(7);
        let types = [
            "response.created",
            "response.output_item.added",
            "response.output_item.done",
            "response.content_part.added",
            "response.content_part.done",
            "response.output_text.delta",
            "response.output_text.done",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_part.added",
            "response.refusal.delta",
            "response.output_text.annotation.added",
            "response.tool_call.delta",
            "response.completed",
            "response.incomplete",
            "response.failed",
            "error",
            "response.done",
            "bogus",
        ];
        let values = |rng: &mut fastrand::Rng| -> Value {
            match rng.u8(0..8) {
                0 => Value::Null,
                1 => json!(rng.u64(0..4)),
                2 => {
                    let s = ["m", "fc", "rs", ""][rng.usize(0..4)];
                    json!(s)
                }
                3 => {
                    let id = ["m", "fc"][rng.usize(0..2)];
                    let kind = ["message", "function_call", "reasoning"][rng.usize(0..3)];
                    json!({"id": id, "type": kind, "content": [], "summary": []})
                }
                4 => json!([1, {"text": "x"}]),
                5 => json!(-1),
                6 => json!({"type": "output_text", "text": "t"}),
                _ => json!("δ"),
            }
        };
        for _ in 0..300 {
            let mut r = ResponsesRebuilder::with_config(ResponsesRebuilderConfig { max_event_buffer_size: 20 });
            for _ in 0..rng.usize(1..25) {
                let mut e = Map::new();
                e.insert("type".into(), types[rng.usize(..types.len())].into());
                for key in [
                    "item_id",
                    "output_index",
                    "content_index",
                    "summary_index",
                    "delta",
                    "text",
                    "arguments",
                    "item",
                    "part",
                    "response",
                    "sequence_number",
                    "annotation",
                ] {
                    if rng.bool() {
                        e.insert(key.into(), values(&mut rng));
                    }
                }
                let _ = r.push(&Value::Object(e));
            }
            match r.finish() {
                Ok(v) => assert_eq!(v["object"], "response"),
                Err(e) => assert!(matches!(
                    e,
                    Error::Validation { .. } | Error::Stream { .. } | Error::Provider { .. } | Error::RateLimit { .. } | Error::Authentication { .. }
                )),
            }
        }
    }

    #[test]
    fn responses_stream_without_ending_is_stream_error_with_partial() {
        let (events, _) = openai_stream(&strs(&["r"]), &strs(&["so far"]), &strs(&[]), false, false);
        let mut r = ResponsesRebuilder::new();
        for e in &events[..8] {
            r.push(e).unwrap();
        }
        assert_eq!(r.partial()["output"][1]["content"][0]["text"], "so far");
        match r.finish() {
            Err(Error::Stream { message, partial: Some(p) }) => {
                assert!(message.contains("without response.completed"), "{message}");
                assert_eq!(p["status"], "in_progress");
                assert_eq!(p["output"][1]["content"][0]["text"], "so far");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(ResponsesRebuilder::new().finish(), Err(Error::Stream { partial: None, .. })));
    }

    #[test]
    fn responses_annotations_refusals_and_seed_tool_call_deltas() {
        let events = numbered(vec![
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"id": "m", "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
            json!({"type": "response.content_part.added", "item_id": "m", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
            json!({"type": "response.output_text.delta", "item_id": "m", "content_index": 0, "delta": "See [1]."}),
            json!({"type": "response.output_text.annotation.added", "item_id": "m", "content_index": 0, "annotation_index": 0,
                "annotation": {"type": "url_citation", "start_index": 4, "end_index": 7, "url": "https://e.x", "title": "E"}}),
            json!({"type": "response.content_part.added", "item_id": "m", "output_index": 0, "content_index": 1, "part": {"type": "refusal", "refusal": ""}}),
            json!({"type": "response.refusal.delta", "item_id": "m", "content_index": 1, "delta": "I can't "}),
            json!({"type": "response.refusal.delta", "item_id": "m", "content_index": 1, "delta": "do that."}),
            // The seed's tool-call delta shape: no item ids.
            json!({"type": "response.tool_call.delta", "data": {"call_id": "call_s", "name": "search", "delta": "{\"q\":"}}),
            json!({"type": "response.tool_call.delta", "data": {"delta": "\"x\"}"}}),
            json!({"type": "response.completed"}),
        ]);
        let r = rebuild(&events).unwrap();
        assert_eq!(
            r["output"][0]["content"],
            json!([{"type": "output_text", "text": "See [1].", "annotations": [{"type": "url_citation", "start_index": 4, "end_index": 7, "url": "https://e.x", "title": "E"}]},
                {"type": "refusal", "refusal": "I can't do that."}])
        );
        assert_eq!(r["output"][1]["type"], "function_call");
        assert_eq!((r["output"][1]["call_id"].as_str(), r["output"][1]["name"].as_str()), (Some("call_s"), Some("search")));
        assert_eq!(r["output"][1]["arguments"], "{\"q\":\"x\"}");
        assert_eq!(r["output"][1]["status"], "completed");
    }

    #[test]
    fn responses_parse_sse_reads_named_events() {
        let (events, full) = openai_stream(&strs(&["r"]), &strs(&["Hi ", "there"]), &strs(&["{}"]), true, true);
        let mut text = String::from(": keep-alive\n\n");
        for (i, e) in events.iter().enumerate() {
            let mut data = e.clone();
            if i % 2 == 0 {
                data.as_object_mut().unwrap().remove("type"); // the `event:` name alone says it
            }
            text.push_str(&crate::sse::encode_event(e["type"].as_str(), &data.to_string(), i % 3 != 0));
        }
        text.push_str("data: [DONE]\n\n");
        let parsed = parse_sse(&text).unwrap();
        assert_eq!(parsed, events);
        assert_eq!(rebuild(&parsed).unwrap(), full);

        let mismatch = "event: response.completed\ndata: {\"type\":\"response.created\"}\n\n";
        assert!(matches!(parse_sse(mismatch), Err(Error::Stream { message, .. }) if message.contains("response.completed")));
        let bad_json = "event: response.output_text.delta\ndata: {\"delta\": \n\n";
        assert!(matches!(parse_sse(bad_json), Err(Error::Stream { message, .. }) if message.contains("event #0")));
        assert!(matches!(parse_sse("data: [1,2]\n\n"), Err(Error::Stream { .. })));
        assert_eq!(parse_sse("").unwrap(), Vec::<Value>::new());
    }

    #[test]
    fn responses_error_body_has_seed_shape() {
        let e = Error::Stream { message: "upstream closed mid-stream".into(), partial: None };
        let b = error_body(&e);
        assert!(b["id"].as_str().unwrap().starts_with("error_"));
        assert_eq!(b["type"], "error");
        assert_eq!(
            b["error"],
            json!({"type": "server_error", "message": "upstream closed mid-stream", "code": "streaming_processing_error", "param": null})
        );
        assert_eq!(b["_protocol"], "responses");
        assert_eq!(b["_errorContext"]["workflowType"], "responses-streaming-workflow");
        assert_eq!(b["_errorContext"]["errorCode"], "STREAM_ERROR");
        assert!(b["_errorContext"]["timestamp"].as_u64().unwrap() > 1_600_000_000_000);

        let v = error_body(&Error::validation("events[3].delta", "bad delta"));
        assert_eq!((v["error"]["type"].as_str(), v["error"]["param"].as_str()), (Some("invalid_request_error"), Some("events[3].delta")));
        let rl = Error::RateLimit {
            message: "slow".into(),
            status: Some(429),
            retry_after_ms: None,
            body: None,
            provider_code: Some("rate_limit_exceeded".into()),
        };
        assert_eq!(error_body(&rl)["error"]["code"], "rate_limit_exceeded");
        assert_eq!(error_body(&rl)["_errorContext"]["retryable"], true);
    }

    #[test]
    fn responses_config_from_json_validates() {
        assert_eq!(ResponsesRebuilderConfig::from_json(&Value::Null).unwrap().max_event_buffer_size, 1000);
        assert_eq!(ResponsesRebuilderConfig::from_json(&json!({"maxEventBufferSize": 50})).unwrap().max_event_buffer_size, 50);
        for (bad, field) in [
            (json!({"maxEventBufferSize": 0}), "maxEventBufferSize"),
            (json!({"maxEventBufferSize": -1}), "maxEventBufferSize"),
            (json!({"maxEventBufferSize": "many"}), "maxEventBufferSize"),
            (json!({"enableMetrics": "yes"}), "enableMetrics"),
            (json!({"eventTimeout": -5}), "eventTimeout"),
            (json!(3), "config"),
        ] {
            let e = ResponsesRebuilderConfig::from_json(&bad).unwrap_err();
            assert_eq!(validation_field(&e), field, "{bad}");
        }
    }
}
