//! The streaming call: a task reads SSE from the upstream, turns events into normalized
//! chunks and hands them to the caller through a bounded channel (backpressure: a slow reader
//! slows the upstream read, it does not grow memory).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use super::config::Timeouts;
use super::http_error::{bad_answer, error_from_envelope};
use super::openai::{ms, root_cause, Endpoint, Inner};
use crate::error::{Error, Result, TimeoutPhase};
use crate::model::{ChatChunk, ChatRequest};
use crate::schedule::backoff::Backoff;
use crate::sse::{SseDecoder, SseEvent};
use crate::workflow::{response_to_chunks, ChunkAccumulator};

const CHANNEL_CAPACITY: usize = 256;

/// The receiving end of a streaming call. Dropping it (or calling `cancel`) stops the
/// producer and closes the upstream connection.
pub struct ChunkStream {
    rx: mpsc::Receiver<Result<ChatChunk>>,
    cancel: CancellationToken,
    route: Arc<OnceLock<Route>>,
}

/// Which pipeline (and target inside it) served a scheduled stream; known once the first chunk
/// has been handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub pipeline_id: Arc<str>,
    pub target_id: Option<Arc<str>>,
}

/// The producing end of a `ChunkStream`.
pub type ChunkSender = mpsc::Sender<Result<ChatChunk>>;

impl ChunkStream {
    /// A stream fed through the returned sender. `cancel` fires when the reader stops.
    pub fn channel(cancel: CancellationToken) -> (ChunkSender, ChunkStream) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        (tx, ChunkStream { rx, cancel, route: Arc::default() })
    }

    /// The slot the producer fills with the route that served the stream.
    pub fn route_slot(&self) -> Arc<OnceLock<Route>> {
        self.route.clone()
    }

    pub fn route(&self) -> Option<&Route> {
        self.route.get()
    }

    /// The next chunk; `None` once the stream ended normally.
    pub async fn next(&mut self) -> Option<Result<ChatChunk>> {
        if self.cancel.is_cancelled() {
            return Some(Err(Error::cancelled()));
        }
        tokio::select! {
            biased;
            item = self.rx.recv() => item,
            _ = self.cancel.cancelled() => Some(Err(Error::cancelled())),
        }
    }

    /// A chunk that is already waiting, without blocking (for batching).
    pub fn try_next(&mut self) -> Option<Result<ChatChunk>> {
        self.rx.try_recv().ok()
    }

    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl Drop for ChunkStream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub(crate) fn spawn(inner: Arc<Inner>, req: ChatRequest, timeouts: Timeouts, cancel: CancellationToken) -> ChunkStream {
    let token = cancel.child_token();
    let (tx, stream) = ChunkStream::channel(token.clone());
    let producer_token = token;
    tokio::spawn(async move {
        let deadline = Instant::now() + timeouts.total;
        let mut emitted = false;
        let result = tokio::select! {
            biased;
            _ = producer_token.cancelled() => Err(Error::cancelled()),
            r = timeout_at(deadline, produce_with_retries(&inner, req, &timeouts, deadline, &tx, &mut emitted)) =>
                r.unwrap_or_else(|_| Err(Error::timeout(TimeoutPhase::Total, ms(timeouts.total)))),
        };
        if let Err(e) = result {
            // The reader may be gone (cancelled or dropped); then nobody needs the error.
            let _ = tx.try_send(Err(inner.redact(e)));
        }
    });
    stream
}

async fn produce_with_retries(
    inner: &Inner,
    req: ChatRequest,
    t: &Timeouts,
    deadline: Instant,
    tx: &mpsc::Sender<Result<ChatChunk>>,
    emitted: &mut bool,
) -> Result<()> {
    let model = req.model.clone().unwrap_or_default();
    let body = Bytes::from(serde_json::to_vec(&req).map_err(|e| Error::Internal { message: e.to_string() })?);
    let mut rng = fastrand::Rng::new();
    let mut attempt = 0;
    loop {
        match produce_once(inner, body.clone(), &model, t, tx, emitted).await {
            // Once a chunk reached the caller the stream cannot be replayed transparently.
            Err(e) if !*emitted && e.retryable() && attempt < inner.config.max_retries => {
                let wait = Backoff::default().delay(attempt, e.retry_after_ms().map(Duration::from_millis), &mut rng);
                if Instant::now() + wait >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// What the SSE loop decided about one event.
enum Step {
    Chunk(Box<ChatChunk>),
    Done,
    Skip,
}

async fn produce_once(
    inner: &Inner,
    body: Bytes,
    model: &str,
    t: &Timeouts,
    tx: &mpsc::Sender<Result<ChatChunk>>,
    emitted: &mut bool,
) -> Result<()> {
    let started = Instant::now();
    let mut resp = inner.send(reqwest::Method::POST, Endpoint::Chat, Some(body), t, "text/event-stream").await?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let bytes = inner.read_body(&mut resp, t).await?;
        return Err(inner.error_from(status, resp.headers(), &bytes));
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    if content_type.starts_with("application/json") {
        // The upstream ignored `stream:true` and sent a whole completion (or an error
        // envelope): deliver it as the equivalent chunk sequence.
        let bytes = inner.read_body(&mut resp, t).await?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| bad_answer(format!("the upstream answered a stream request with invalid JSON: {e}"), status, &bytes))?;
        if let Some(e) = inner.error_in_body(&value) {
            return Err(e);
        }
        let mut response: crate::model::ChatResponse = serde_json::from_value(value).map_err(|e| bad_answer(format!("the upstream's chat.completion does not have the expected shape: {e}"), status, &bytes))?;
        response.normalize(model);
        for chunk in response_to_chunks(&response) {
            if tx.send(Ok(chunk)).await.is_err() {
                return Ok(());
            }
            *emitted = true;
        }
        return Ok(());
    }
    let is_stream_type = content_type.is_empty()
        || content_type.starts_with("text/event-stream")
        || content_type.starts_with("application/x-ndjson")
        || content_type.starts_with("application/stream+json");
    if !is_stream_type {
        let bytes = inner.read_body(&mut resp, t).await.unwrap_or_default();
        return Err(bad_answer(format!("expected an event stream from {}, got content-type {content_type}", inner.origin), status, &bytes));
    }

    let first_token_deadline = started + t.first_token;
    let mut decoder = SseDecoder::new();
    let mut events: Vec<SseEvent> = Vec::new();
    let mut acc = ChunkAccumulator::default();
    let mut stream_id = None;
    let mut event_no = 0u64;
    let mut done = false;
    let stream_error = |acc: &ChunkAccumulator, message: String| Error::Stream {
        message,
        partial: Some(serde_json::to_value(acc.to_response()).unwrap_or(Value::Null)),
    };
    'read: loop {
        let (limit, phase, budget) = if acc.chunk_count() == 0 {
            (first_token_deadline, TimeoutPhase::FirstToken, t.first_token)
        } else {
            (Instant::now() + t.idle, TimeoutPhase::Idle, t.idle)
        };
        let eof = match timeout_at(limit, resp.chunk()).await {
            Err(_) => {
                let e = Error::timeout(phase, ms(budget));
                return Err(e);
            }
            Ok(Err(e)) => {
                let cause = root_cause(e);
                return Err(if acc.chunk_count() == 0 {
                    Error::Connection { message: format!("the connection to {} broke before the first chunk: {cause}", inner.origin) }
                } else {
                    stream_error(&acc, format!("the upstream connection broke mid-stream after {} chunks: {cause}", acc.chunk_count()))
                });
            }
            Ok(Ok(Some(bytes))) => {
                decoder.feed(&bytes, &mut events).map_err(|e| stream_error(&acc, format!("malformed event stream: {e}")))?;
                false
            }
            Ok(Ok(None)) => {
                decoder.finish(&mut events).map_err(|e| stream_error(&acc, format!("malformed event stream: {e}")))?;
                true
            }
        };
        for ev in events.drain(..) {
            event_no += 1;
            let step = interpret(inner, &ev, model, &mut stream_id).map_err(|e| match e {
                Interpret::Malformed(msg) => stream_error(&acc, format!("malformed chunk in event {event_no}: {msg}")),
                Interpret::Upstream(err) => {
                    if acc.chunk_count() == 0 {
                        err
                    } else {
                        stream_error(&acc, format!("the upstream reported an error mid-stream: {err}"))
                    }
                }
            })?;
            match step {
                Step::Done => {
                    done = true;
                    break 'read;
                }
                Step::Skip => {}
                Step::Chunk(chunk) => {
                    acc.push(&chunk);
                    if let Some(e) = inner.quirks.as_ref().and_then(|q| q.stream_failure(&chunk)) {
                        return Err(match e {
                            Error::Stream { message, .. } => stream_error(&acc, message),
                            // Nothing reached the caller yet: the vendor's own error (a rate
                            // limit stays retryable elsewhere).
                            other if !*emitted => other,
                            other => stream_error(&acc, other.to_string()),
                        });
                    }
                    if let Some(reason) = vendor_failure(&chunk) {
                        return Err(stream_error(&acc, reason));
                    }
                    if tx.send(Ok(*chunk)).await.is_err() {
                        return Ok(()); // the reader is gone
                    }
                    *emitted = true;
                }
            }
        }
        if eof {
            break;
        }
    }
    if !done && !acc.all_finished() {
        return Err(stream_error(&acc, format!("the upstream closed the stream after {} chunks without finishing it", acc.chunk_count())));
    }
    drain_rest(&mut resp).await;
    Ok(())
}

enum Interpret {
    Malformed(String),
    Upstream(Error),
}

fn interpret(inner: &Inner, ev: &SseEvent, model: &str, stream_id: &mut Option<String>) -> std::result::Result<Step, Interpret> {
    let data = ev.data.trim();
    if data.starts_with("[DONE]") {
        return Ok(Step::Done);
    }
    if data.is_empty() {
        return Ok(Step::Skip);
    }
    let value: Value = serde_json::from_str(data).map_err(|e| Interpret::Malformed(e.to_string()))?;
    if let Some(e) = inner.quirks.as_ref().and_then(|q| q.business_error(&value)) {
        return Err(Interpret::Upstream(e));
    }
    if ev.event.as_deref() == Some("error") || (value.get("error").is_some_and(|e| !e.is_null()) && value.get("choices").is_none()) {
        let envelope = if value.get("error").is_some() { value } else { serde_json::json!({ "error": value }) };
        return Err(Interpret::Upstream(error_from_envelope(&envelope)));
    }
    let mut chunk: ChatChunk = serde_json::from_value(value).map_err(|e| Interpret::Malformed(e.to_string()))?;
    chunk.normalize(model, stream_id);
    Ok(Step::Chunk(Box::new(chunk)))
}

/// Finish reasons some vendors use to report a failure inside an otherwise normal stream:
/// `network_error` (iFlow) and `error_finish` (DashScope throttling, text in the content).
fn vendor_failure(chunk: &ChatChunk) -> Option<String> {
    chunk.choices.iter().find_map(|c| match c.finish_reason.as_deref() {
        Some("network_error") => Some("the upstream ended the stream with finish_reason network_error".to_string()),
        Some("error_finish") => Some(format!(
            "the upstream ended the stream with finish_reason error_finish: {}",
            c.delta.content.clone().flatten().unwrap_or_default()
        )),
        _ => None,
    })
}

/// Reads what little may follow `[DONE]` (the chunked-encoding terminator) so the connection
/// can go back to the pool, within a small bound.
async fn drain_rest(resp: &mut reqwest::Response) {
    let until = Instant::now() + Duration::from_millis(50);
    for _ in 0..8 {
        match timeout_at(until, resp.chunk()).await {
            Ok(Ok(Some(_))) => continue,
            _ => return,
        }
    }
}
