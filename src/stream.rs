//! `NativeChunkStream`: a stream of chunks handed to JS in batches. Each `nextBatch()` gives
//! every chunk already waiting (at least one, at most 256) as one string of entries separated
//! by NUL, which valid JSON text never contains (control characters are escaped inside strings
//! and are not whitespace). A fast stream thus costs one JS↔Rust round trip per batch, not per
//! chunk, and JS builds each chunk only when it hands it out: the objects die young instead of a
//! whole batch of them surviving garbage collections while it is consumed. An entry is
//! * a chunk's JSON text: the upstream's text when the chunk carries it (no serialisation),
//!   else serialised here (protocol conversions too);
//! * [`TEMPLATE`] and a template's JSON text (see `rcc_core::provider::ContentTemplate`): not a
//!   chunk; the chunks that continue it follow;
//! * [`CONTINUED`] and a JSON string literal: the chunk is the last template with that string
//!   as `choices[0].delta.content`. JS builds it from the template it parsed once, which costs a
//!   fraction of parsing the chunk's text.
//!
//! `cancel()` (a `break` in `for await`, an aborted signal) stops the producer and closes the
//! upstream connection.

use std::sync::{Arc, OnceLock};

use napi::bindgen_prelude::{spawn, PromiseRaw};
use napi::Env;
use napi_derive::napi;
use rcc_core::llmswitch::StreamEncoder;
use rcc_core::provider::{ChunkStream, ContentTemplate, Route, StreamChunk};
use rcc_core::Error;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::error::to_napi;
use crate::settle::Settler;

/// Most chunks handed over in one batch.
const MAX_BATCH: usize = 256;

struct State {
    /// Dropped once the stream has ended, which releases what it holds (the upstream, the
    /// scheduler's accounting) without waiting for the JS object to be collected.
    stream: Option<ChunkStream>,
    /// An error met while filling a batch, delivered by the following `next()`.
    pending_error: Option<Error>,
    finished: bool,
    /// The size of the last batch, to allocate the next one at once.
    batch_hint: usize,
    /// Set when the caller speaks another protocol: chunks become its stream events.
    encoder: Option<Box<dyn StreamEncoder>>,
    /// The template JS was last given.
    template: Option<Arc<ContentTemplate>>,
}

impl State {
    /// The stream has ended (or failed): nothing more to read.
    fn end(&mut self) {
        self.finished = true;
        self.stream = None;
    }

    /// Appends one chunk to the batch — as itself (the upstream's text when it has it), or as
    /// the caller's protocol events.
    fn push(&mut self, batch: &mut String, item: &StreamChunk) -> Result<(), Error> {
        match &mut self.encoder {
            None => match (item.continued(), item.raw()) {
                (Some((template, literal)), _) => {
                    if !self.template.as_ref().is_some_and(|t| Arc::ptr_eq(t, template)) {
                        push_entry(batch, Some(TEMPLATE), template.text());
                        self.template = Some(template.clone());
                    }
                    push_entry(batch, Some(CONTINUED), literal);
                }
                (None, Some(raw)) => push_entry(batch, None, raw),
                (None, None) => push_item(batch, &*item.chunk()),
            },
            Some(enc) => {
                let value = serde_json::to_value(&*item.chunk()).map_err(|e| Error::Internal { message: e.to_string() })?;
                for event in enc.push(&value)? {
                    push_item(batch, &event);
                }
            }
        }
        Ok(())
    }

    /// The encoder's closing events (`message_stop`, `response.completed`, ...), as a batch.
    fn closing_batch(&mut self) -> Result<Option<String>, Error> {
        let Some(enc) = self.encoder.as_mut() else { return Ok(None) };
        let events = enc.finish()?;
        self.encoder = None;
        if events.is_empty() {
            return Ok(None);
        }
        let mut batch = String::new();
        for e in &events {
            push_item(&mut batch, e);
        }
        Ok(Some(batch))
    }
}

/// Turns a core error into the JS error, adding what the stream is about (provider name,
/// request and pipeline ids).
pub type ErrorMapper = Arc<dyn Fn(Error) -> napi::Error + Send + Sync>;

#[napi]
pub struct NativeChunkStream {
    state: Arc<Mutex<State>>,
    cancel: CancellationToken,
    route: Arc<OnceLock<Route>>,
    map_error: ErrorMapper,
}

impl NativeChunkStream {
    pub fn new(stream: ChunkStream, map_error: ErrorMapper) -> Self {
        Self::encoded(stream, map_error, None)
    }

    /// A stream whose chunks are handed over as another protocol's events.
    pub fn encoded(stream: ChunkStream, map_error: ErrorMapper, encoder: Option<Box<dyn StreamEncoder>>) -> Self {
        let cancel = stream.cancel_token();
        let route = stream.route_slot();
        NativeChunkStream {
            state: Arc::new(Mutex::new(State { stream: Some(stream), pending_error: None, finished: false, batch_hint: 512, encoder, template: None })),
            cancel,
            route,
            map_error,
        }
    }

    pub fn for_provider(stream: ChunkStream, provider_name: String) -> Self {
        Self::new(stream, Arc::new(move |e| to_napi(e, Some(&provider_name))))
    }
}

/// Fills the next batch: waits for one chunk, then takes every chunk already waiting (at most
/// [`MAX_BATCH`]). `None` once the stream has ended.
async fn fill_batch(state: Arc<Mutex<State>>, map_error: ErrorMapper) -> napi::Result<Option<String>> {
    let mut guard = state.lock().await;
    let st = &mut *guard;
    if let Some(e) = st.pending_error.take() {
        st.end();
        return Err(map_error(e));
    }
    let Some(stream) = st.stream.as_mut().filter(|_| !st.finished) else { return Ok(None) };
    let first = match stream.next_item().await {
        None => {
            st.end();
            return st.closing_batch().map_err(|e| map_error(e));
        }
        Some(Err(e)) => {
            st.end();
            return Err(map_error(e));
        }
        Some(Ok(c)) => c,
    };
    let mut batch = String::with_capacity(st.batch_hint);
    if let Err(e) = st.push(&mut batch, &first) {
        st.end();
        return Err(map_error(e));
    }
    for _ in 1..MAX_BATCH {
        let Some(stream) = st.stream.as_mut() else { break };
        match stream.try_next_item() {
            Some(Ok(c)) => {
                if let Err(e) = st.push(&mut batch, &c) {
                    st.pending_error = Some(e);
                    st.stream = None;
                    break;
                }
            }
            Some(Err(e)) => {
                st.pending_error = Some(e);
                st.stream = None;
                break;
            }
            None => break,
        }
    }
    st.batch_hint = batch.len().clamp(512, 1 << 20);
    // An encoder may turn chunks into no event yet (a buffered tool call): then the batch is
    // empty and JS simply asks again.
    Ok(Some(batch))
}

/// Separates the entries of a batch (see the module comment).
const SEPARATOR: char = '\0';
/// Starts an entry that gives a template.
const TEMPLATE: char = '\u{1}';
/// Starts an entry that is a chunk continuing the last template.
const CONTINUED: char = '\u{2}';

/// Appends an entry (JSON text, after its mark if it has one) to a batch under construction.
fn push_entry(out: &mut String, mark: Option<char>, json: &str) {
    if !out.is_empty() {
        out.push(SEPARATOR);
    }
    if let Some(mark) = mark {
        out.push(mark);
    }
    out.push_str(json);
}

/// Appends one item, serialised, to a batch under construction.
fn push_item<T: serde::Serialize>(out: &mut String, item: &T) {
    // Serialising our own model types and JSON values cannot fail (string keys, finite numbers).
    if let Ok(s) = serde_json::to_string(item) {
        push_entry(out, None, &s);
    }
}

#[napi]
impl NativeChunkStream {
    /// The next batch (see the module comment), or `null` once the stream has ended; rejects
    /// with the stream's error. Settled through the shared settle queue: no threadsafe function
    /// per call, and the batches of many streams ready at once reach JS in one wake-up.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn next_batch<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Option<String>>> {
        let settler = Settler::get(env)?;
        let (deferred, promise) = settler.promise(env)?;
        let batch = fill_batch(self.state.clone(), self.map_error.clone());
        spawn(async move { settler.settle_text(deferred, batch.await.map_err(|e| e.reason)) });
        Ok(promise)
    }

    /// Stops the stream (AbortSignal); a pending or later `next()` rejects with CANCELLED.
    #[napi]
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// `{pipelineId, targetId}` of a scheduled stream once its first chunk is out, else null.
    #[napi]
    pub fn route(&self) -> Option<String> {
        self.route.get().map(|r| serde_json::json!({"pipelineId": &*r.pipeline_id, "targetId": r.target_id.as_deref()}).to_string())
    }
}
