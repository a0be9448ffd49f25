//! `NativeChunkStream`: an async iterator over batches of chunks. Each `next()` yields a JSON
//! array of every chunk already waiting (at least one, at most 256), so a fast stream costs one
//! JS↔Rust round trip per batch, not per chunk. A chunk that carries the upstream's text goes
//! into the array as that text (no serialisation); the others, and protocol conversions, are
//! serialised here. `return()` (a `break` in `for await`) and `cancel()`
//! stop the producer and close the upstream connection.

use std::sync::{Arc, OnceLock};

use napi::bindgen_prelude::AsyncGenerator;
use napi_derive::napi;
use rcc_core::llmswitch::StreamEncoder;
use rcc_core::provider::{ChunkStream, Route, StreamChunk};
use rcc_core::Error;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::error::to_napi;

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
            None => match &item.raw {
                Some(raw) => push_raw(batch, raw),
                None => push_item(batch, &item.chunk),
            },
            Some(enc) => {
                let value = serde_json::to_value(&item.chunk).map_err(|e| Error::Internal { message: e.to_string() })?;
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
        let mut batch = String::from("[");
        for e in &events {
            push_item(&mut batch, e);
        }
        batch.push(']');
        Ok(Some(batch))
    }
}

/// Turns a core error into the JS error, adding what the stream is about (provider name,
/// request and pipeline ids).
pub type ErrorMapper = Arc<dyn Fn(Error) -> napi::Error + Send + Sync>;

#[napi(async_iterator)]
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
            state: Arc::new(Mutex::new(State { stream: Some(stream), pending_error: None, finished: false, batch_hint: 512, encoder })),
            cancel,
            route,
            map_error,
        }
    }

    pub fn for_provider(stream: ChunkStream, provider_name: String) -> Self {
        Self::new(stream, Arc::new(move |e| to_napi(e, Some(&provider_name))))
    }
}

#[napi]
impl AsyncGenerator for NativeChunkStream {
    type Yield = String;
    type Next = ();
    type Return = ();

    fn next(&mut self, _value: Option<()>) -> impl std::future::Future<Output = napi::Result<Option<String>>> + Send + 'static {
        let state = self.state.clone();
        let map_error = self.map_error.clone();
        async move {
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
            batch.push('[');
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
            batch.push(']');
            st.batch_hint = batch.len().clamp(512, 1 << 20);
            // An encoder may turn chunks into no event yet (a buffered tool call): then the
            // batch is `[]` and JS simply asks again.
            Ok(Some(batch))
        }
    }

    fn complete(&mut self, _value: Option<()>) -> impl std::future::Future<Output = napi::Result<Option<String>>> + Send + 'static {
        self.cancel.cancel();
        async move { Ok(None) }
    }
}

/// Appends JSON text (one value) to a batch under construction (`[` already written).
fn push_raw(out: &mut String, json: &str) {
    if !out.ends_with('[') {
        out.push(',');
    }
    out.push_str(json);
}

/// Appends one JSON item to a batch under construction (`[` already written).
fn push_item<T: serde::Serialize>(out: &mut String, item: &T) {
    // Serialising our own model types and JSON values cannot fail (string keys, finite numbers).
    if let Ok(s) = serde_json::to_string(item) {
        if !out.ends_with('[') {
            out.push(',');
        }
        out.push_str(&s);
    }
}

#[napi]
impl NativeChunkStream {
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
