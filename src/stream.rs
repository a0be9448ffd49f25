//! `NativeChunkStream`: an async iterator over batches of chunks. Each `next()` yields a JSON
//! array of every chunk already waiting (at least one), so a fast stream costs one JS↔Rust
//! round trip per batch, not per chunk. `return()` (a `break` in `for await`) and `cancel()`
//! stop the producer and close the upstream connection.

use std::sync::Arc;

use napi::bindgen_prelude::AsyncGenerator;
use napi_derive::napi;
use rcc_core::provider::ChunkStream;
use rcc_core::Error;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::error::to_napi;

/// Most chunks handed over in one batch.
const MAX_BATCH: usize = 256;

struct State {
    stream: ChunkStream,
    /// An error met while filling a batch, delivered by the following `next()`.
    pending_error: Option<Error>,
    finished: bool,
}

#[napi(async_iterator)]
pub struct NativeChunkStream {
    state: Arc<Mutex<State>>,
    cancel: CancellationToken,
    provider_name: Arc<str>,
}

impl NativeChunkStream {
    pub fn new(stream: ChunkStream, provider_name: String) -> Self {
        let cancel = stream.cancel_token();
        NativeChunkStream {
            state: Arc::new(Mutex::new(State { stream, pending_error: None, finished: false })),
            cancel,
            provider_name: provider_name.into(),
        }
    }
}

#[napi]
impl AsyncGenerator for NativeChunkStream {
    type Yield = String;
    type Next = ();
    type Return = ();

    fn next(&mut self, _value: Option<()>) -> impl std::future::Future<Output = napi::Result<Option<String>>> + Send + 'static {
        let state = self.state.clone();
        let name = self.provider_name.clone();
        async move {
            let mut st = state.lock().await;
            if let Some(e) = st.pending_error.take() {
                st.finished = true;
                return Err(to_napi(e, Some(&name)));
            }
            if st.finished {
                return Ok(None);
            }
            let first = match st.stream.next().await {
                None => {
                    st.finished = true;
                    return Ok(None);
                }
                Some(Err(e)) => {
                    st.finished = true;
                    return Err(to_napi(e, Some(&name)));
                }
                Some(Ok(c)) => c,
            };
            let mut batch = String::with_capacity(512);
            batch.push('[');
            push_json(&mut batch, &first);
            for _ in 1..MAX_BATCH {
                match st.stream.try_next() {
                    Some(Ok(c)) => {
                        batch.push(',');
                        push_json(&mut batch, &c);
                    }
                    Some(Err(e)) => {
                        st.pending_error = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            batch.push(']');
            Ok(Some(batch))
        }
    }

    fn complete(&mut self, _value: Option<()>) -> impl std::future::Future<Output = napi::Result<Option<String>>> + Send + 'static {
        self.cancel.cancel();
        async move { Ok(None) }
    }
}

fn push_json(out: &mut String, chunk: &rcc_core::model::ChatChunk) {
    // Serialising our own model types cannot fail (string keys, finite numbers).
    if let Ok(s) = serde_json::to_string(chunk) {
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
}
