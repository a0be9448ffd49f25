//! The streaming call: a task reads SSE from the upstream, turns events into normalized
//! chunks and hands them to the caller through a bounded channel (backpressure: a slow reader
//! slows the upstream read, it does not grow memory). The chunks of one read travel as one
//! message; each keeps the upstream's JSON text when that text is what the caller would get
//! anyway ([`StreamChunk::raw`]), so that a binding forwards it without serialising again.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use super::chunk_template::{ContentTemplate, ContinuedContent};
use super::config::Timeouts;
use super::fast_chunk;
use super::http_error::{bad_answer, error_from_envelope};
use super::openai::{ms, root_cause, Endpoint, Inner};
use crate::error::{Error, Result, TimeoutPhase};
use crate::model::{ChatChunk, ChatRequest};
use crate::schedule::backoff::Backoff;
use crate::sse::{SseDecoder, SseEvent};
use crate::workflow::{response_to_chunks, ChunkAccumulator};

/// Messages a stream's channel holds (a chunk, or a batch of at most `MAX_SEND_BATCH`): with
/// a slow reader at most 128 chunks wait. Enough to keep a reader busy (it takes up to 256
/// per batch from whatever is waiting); more only held memory: 200 streams with a reader
/// behind them buffered more at 512 without being faster (bench, streaming scenario).
const CHANNEL_CAPACITY: usize = 8;

/// The most chunks of one upstream read sent as one message.
const MAX_SEND_BATCH: usize = 16;

/// One chunk on its way from a provider to the caller: the typed chunk, which the engine
/// reads (accumulation, usage, finish reasons, vendor failures, protocol conversion), and, when
/// it is exactly what serialising the typed chunk would give the caller once parsed, the
/// upstream's JSON text, which a binding can hand over as it is instead of serialising again.
/// A chunk that repeats the stream's template but for its content (see `chunk_template`) is
/// kept as its text and that content; the typed chunk is built only if asked for.
#[derive(Debug, Clone)]
pub struct StreamChunk(Repr);

#[derive(Debug, Clone)]
enum Repr {
    /// A parsed chunk, with the upstream's text when the caller gets that as it is (else it is
    /// serialised for the caller: built here, converted, or from a JS provider).
    Parsed { chunk: Arc<ChatChunk>, text: Option<String> },
    /// The upstream's text, which the caller gets as it is: `template` with another content.
    Continued { text: String, template: Arc<ContentTemplate>, content: ContinuedContent },
}

impl StreamChunk {
    /// A chunk without upstream text (built here, converted, or from a JS provider).
    pub fn typed(chunk: ChatChunk) -> Self {
        StreamChunk(Repr::Parsed { chunk: Arc::new(chunk), text: None })
    }

    /// The upstream's JSON text, when the caller may get it as it is.
    pub fn raw(&self) -> Option<&str> {
        match &self.0 {
            Repr::Parsed { text, .. } => text.as_deref(),
            Repr::Continued { text, .. } => Some(text),
        }
    }

    /// The typed chunk (built for a chunk kept as its text and content).
    pub fn chunk(&self) -> Cow<'_, ChatChunk> {
        match &self.0 {
            Repr::Parsed { chunk, .. } => Cow::Borrowed(chunk),
            Repr::Continued { text, template, content } => Cow::Owned(template.chunk.with_content(content.get(text))),
        }
    }

    pub fn into_chunk(self) -> ChatChunk {
        match self.0 {
            Repr::Parsed { chunk, .. } => Arc::unwrap_or_clone(chunk),
            Repr::Continued { text, template, content } => template.chunk.with_content(content.get(&text)),
        }
    }

    /// Adds the chunk to `acc` (without building it when it continues a template).
    pub fn accumulate_into(&self, acc: &mut ChunkAccumulator) {
        match &self.0 {
            Repr::Parsed { chunk, .. } => acc.push(chunk),
            Repr::Continued { text, template, content } => acc.push_continued(&template.chunk, content.get(text)),
        }
    }

    /// For a chunk that continues a template: the template, and the chunk's content as its
    /// JSON string literal.
    pub fn continued(&self) -> Option<(&Arc<ContentTemplate>, &str)> {
        match &self.0 {
            Repr::Continued { text, template, .. } => Some((template, template.literal(text))),
            _ => None,
        }
    }

    /// Whether a choice of the chunk has a finish reason (a chunk that continues a template
    /// has none).
    pub fn has_finish_reason(&self) -> bool {
        match &self.0 {
            Repr::Parsed { chunk, .. } => chunk.choices.iter().any(|c| c.finish_reason.is_some()),
            Repr::Continued { .. } => false,
        }
    }
}

impl From<ChatChunk> for StreamChunk {
    fn from(chunk: ChatChunk) -> Self {
        StreamChunk::typed(chunk)
    }
}

/// The receiving end of a streaming call. Dropping it (or calling `cancel`) stops the
/// producer and closes the upstream connection.
///
/// A stream can take over another one ([`ChunkSender::hand_over`]): a scheduler that has
/// opened an upstream stream hands it to its reader with a [`StreamTap`] that does its
/// accounting, instead of forwarding every chunk through a channel of its own. The reader then
/// receives straight from the upstream, and each item goes through the taps on the way.
pub struct ChunkStream {
    rx: mpsc::Receiver<Msg>,
    /// The rest of a batch received, handed out before the next message.
    pending: std::vec::IntoIter<StreamChunk>,
    cancel: CancellationToken,
    route: Arc<OnceLock<Route>>,
    /// The accounting of the streams taken over, innermost first.
    taps: Vec<SharedTap>,
    /// The tokens of the streams taken over, cancelled with this one.
    upstream_cancels: Vec<CancellationToken>,
    /// The end (or an error) has been handed out.
    ended: bool,
    /// Taken over by another stream: dropping this one must not stop anything.
    moved: bool,
}

#[allow(clippy::large_enum_variant)] // a chunk is the usual message; boxing it would cost an allocation
enum Msg {
    Item(Result<StreamChunk>),
    /// Chunks of one upstream read, in order (one message instead of one each).
    Batch(Vec<StreamChunk>),
    HandOver(Box<(ChunkStream, SharedTap)>),
}

/// What a scheduler keeps doing for a stream it handed over to its reader (see
/// [`ChunkSender::hand_over`]): it sees every item on the reader's side.
pub trait StreamTap: Send {
    /// An item on its way to the reader (`None`: the stream ended); returns what the reader
    /// gets (an error may be replaced).
    fn item(&mut self, item: Option<Result<StreamChunk>>) -> Option<Result<StreamChunk>>;
    /// The reader stopped before the end (cancelled, or dropped the stream). Called at most
    /// once per way it can happen; must do nothing once the stream was accounted for.
    fn abandon(&mut self);
}

/// A tap, shared by the reader and the task that watches for cancellation.
pub type SharedTap = Arc<Mutex<dyn StreamTap>>;

fn lock(tap: &SharedTap) -> std::sync::MutexGuard<'_, dyn StreamTap + 'static> {
    tap.lock().unwrap_or_else(|p| p.into_inner())
}

/// Which pipeline (and target inside it) served a scheduled stream; known once the first chunk
/// has been handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub pipeline_id: Arc<str>,
    pub target_id: Option<Arc<str>>,
}

/// The producing end of a `ChunkStream`.
#[derive(Clone)]
pub struct ChunkSender(mpsc::Sender<Msg>);

/// The reader of the stream is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderGone;

impl ChunkSender {
    /// Waits for room, then hands over a typed chunk (or the error that ends the stream).
    pub async fn send(&self, item: Result<ChatChunk>) -> std::result::Result<(), ReaderGone> {
        self.send_item(item.map(StreamChunk::typed)).await
    }

    pub async fn send_item(&self, item: Result<StreamChunk>) -> std::result::Result<(), ReaderGone> {
        self.0.send(Msg::Item(item)).await.map_err(|_| ReaderGone)
    }

    /// Hands over without waiting; fails when the channel is full or the reader gone.
    pub fn try_send(&self, item: Result<ChatChunk>) -> std::result::Result<(), ReaderGone> {
        self.try_send_item(item.map(StreamChunk::typed))
    }

    pub fn try_send_item(&self, item: Result<StreamChunk>) -> std::result::Result<(), ReaderGone> {
        self.0.try_send(Msg::Item(item)).map_err(|_| ReaderGone)
    }

    /// Hands over consecutive chunks as one message (the reader still gets them one by one).
    pub async fn send_batch(&self, mut chunks: Vec<StreamChunk>) -> std::result::Result<(), ReaderGone> {
        let msg = match chunks.len() {
            0 => return Ok(()),
            1 => Msg::Item(Ok(chunks.pop().expect("one chunk"))),
            _ => Msg::Batch(chunks),
        };
        self.0.send(msg).await.map_err(|_| ReaderGone)
    }

    /// The rest of the stream comes from `upstream`: once the reader has received what was sent
    /// before, it reads `upstream` directly, passing every item (and the end) through `tap`.
    /// Nothing may be sent after this. When the reader is gone `upstream` is dropped (which
    /// stops it) and the caller must abandon `tap` itself.
    pub async fn hand_over(&self, upstream: ChunkStream, tap: SharedTap) -> std::result::Result<(), ReaderGone> {
        self.0.send(Msg::HandOver(Box::new((upstream, tap)))).await.map_err(|_| ReaderGone)
    }
}

impl ChunkStream {
    /// A stream fed through the returned sender. `cancel` fires when the reader stops.
    pub fn channel(cancel: CancellationToken) -> (ChunkSender, ChunkStream) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let stream = ChunkStream {
            rx,
            pending: Vec::new().into_iter(),
            cancel,
            route: Arc::default(),
            taps: Vec::new(),
            upstream_cancels: Vec::new(),
            ended: false,
            moved: false,
        };
        (ChunkSender(tx), stream)
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
        self.next_item().await.map(|r| r.map(StreamChunk::into_chunk))
    }

    /// The next chunk with its upstream text; `None` once the stream ended normally.
    pub async fn next_item(&mut self) -> Option<Result<StreamChunk>> {
        loop {
            if self.cancel.is_cancelled() {
                return Some(self.cancelled());
            }
            if self.ended {
                return None;
            }
            if let Some(c) = self.pending.next() {
                return self.through_taps(Some(Ok(c)));
            }
            let msg = tokio::select! {
                biased;
                msg = self.rx.recv() => Some(msg),
                _ = self.cancel.cancelled() => None,
            };
            match msg {
                None => return Some(self.cancelled()),
                Some(Some(Msg::HandOver(h))) => self.take_over(*h),
                Some(Some(Msg::Batch(b))) => self.pending = b.into_iter(),
                Some(Some(Msg::Item(item))) => return self.through_taps(Some(item)),
                Some(None) => return self.through_taps(None),
            }
        }
    }

    /// A chunk that is already waiting, without blocking (for batching). `None` when nothing
    /// is waiting or the stream ended: `next` says which.
    pub fn try_next(&mut self) -> Option<Result<ChatChunk>> {
        self.try_next_item().map(|r| r.map(StreamChunk::into_chunk))
    }

    pub fn try_next_item(&mut self) -> Option<Result<StreamChunk>> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(c) = self.pending.next() {
                return self.through_taps(Some(Ok(c)));
            }
            match self.rx.try_recv() {
                Ok(Msg::HandOver(h)) => self.take_over(*h),
                Ok(Msg::Batch(b)) => self.pending = b.into_iter(),
                Ok(Msg::Item(item)) => return self.through_taps(Some(item)),
                Err(_) => return None,
            }
        }
    }

    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    fn cancelled(&mut self) -> Result<StreamChunk> {
        self.abandon_taps();
        Err(Error::cancelled())
    }

    fn through_taps(&mut self, mut item: Option<Result<StreamChunk>>) -> Option<Result<StreamChunk>> {
        if !matches!(item, Some(Ok(_))) {
            self.ended = true;
        }
        for tap in &self.taps {
            item = lock(tap).item(item);
        }
        item
    }

    /// Reads `upstream` from now on; its taps run before `tap`, which runs before ours. (Our
    /// own batch is used up: a hand-over is read only then.)
    fn take_over(&mut self, (mut upstream, tap): (ChunkStream, SharedTap)) {
        upstream.moved = true;
        let (_, closed) = mpsc::channel(1);
        self.rx = std::mem::replace(&mut upstream.rx, closed);
        self.pending = std::mem::replace(&mut upstream.pending, Vec::new().into_iter());
        let mut taps = std::mem::take(&mut upstream.taps);
        taps.push(tap);
        taps.append(&mut self.taps);
        self.taps = taps;
        self.upstream_cancels.push(upstream.cancel.clone());
        self.upstream_cancels.append(&mut upstream.upstream_cancels);
        self.ended = upstream.ended;
    }

    fn abandon_taps(&mut self) {
        for tap in &self.taps {
            lock(tap).abandon();
        }
    }
}

impl Drop for ChunkStream {
    fn drop(&mut self) {
        if self.moved {
            return;
        }
        self.cancel.cancel();
        for c in &self.upstream_cancels {
            c.cancel();
        }
        self.abandon_taps();
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
    tx: &ChunkSender,
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
#[allow(clippy::large_enum_variant)] // short-lived; boxing would cost an allocation per chunk
enum Step {
    Chunk(StreamChunk),
    Done,
    Skip,
}

async fn produce_once(
    inner: &Inner,
    body: Bytes,
    model: &str,
    t: &Timeouts,
    tx: &ChunkSender,
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
    let mut template = None;
    let mut event_no = 0u64;
    let mut done = false;
    // Chunks of the current read not yet handed over: sent together at the end of the read
    // (the first chunk of the stream at once), and always before an error, so that the reader
    // gets everything that came before it and `emitted` says whether anything did.
    let mut out = Outbox { batch: Vec::new() };
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
            let step = match interpret(inner, ev, model, &mut stream_id, &mut template) {
                Ok(step) => step,
                Err(e) => {
                    if !out.flush(tx, emitted).await {
                        return Ok(()); // the reader is gone
                    }
                    return Err(match e {
                        Interpret::Malformed(msg) => stream_error(&acc, format!("malformed chunk in event {event_no}: {msg}")),
                        Interpret::Upstream(err) => {
                            if acc.chunk_count() == 0 {
                                err
                            } else {
                                stream_error(&acc, format!("the upstream reported an error mid-stream: {err}"))
                            }
                        }
                    });
                }
            };
            match step {
                Step::Done => {
                    done = true;
                    break 'read;
                }
                Step::Skip => {}
                Step::Chunk(item) => {
                    item.accumulate_into(&mut acc);
                    let (failure, vendor) = if item.has_finish_reason() {
                        let chunk = item.chunk();
                        let failure = inner.quirks.as_ref().and_then(|q| q.stream_failure(&chunk));
                        let vendor = if failure.is_none() { vendor_failure(&chunk) } else { None };
                        (failure, vendor)
                    } else {
                        (None, None)
                    };
                    if (failure.is_some() || vendor.is_some()) && !out.flush(tx, emitted).await {
                        return Ok(());
                    }
                    if let Some(e) = failure {
                        return Err(match e {
                            Error::Stream { message, .. } => stream_error(&acc, message),
                            // Nothing reached the caller yet: the vendor's own error (a rate
                            // limit stays retryable elsewhere).
                            other if !*emitted => other,
                            other => stream_error(&acc, other.to_string()),
                        });
                    }
                    if let Some(reason) = vendor {
                        return Err(stream_error(&acc, reason));
                    }
                    out.batch.push(item);
                    if (!*emitted || out.batch.len() >= MAX_SEND_BATCH) && !out.flush(tx, emitted).await {
                        return Ok(());
                    }
                }
            }
        }
        if !out.flush(tx, emitted).await {
            return Ok(());
        }
        if eof {
            break;
        }
    }
    if !out.flush(tx, emitted).await {
        return Ok(());
    }
    if !done && !acc.all_finished() {
        return Err(stream_error(&acc, format!("the upstream closed the stream after {} chunks without finishing it", acc.chunk_count())));
    }
    drain_rest(&mut resp).await;
    Ok(())
}

/// The chunks of one read on their way to the reader.
struct Outbox {
    batch: Vec<StreamChunk>,
}

impl Outbox {
    /// Hands the waiting chunks over; false when the reader is gone.
    async fn flush(&mut self, tx: &ChunkSender, emitted: &mut bool) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(MAX_SEND_BATCH));
        if tx.send_batch(batch).await.is_err() {
            return false;
        }
        *emitted = true;
        true
    }
}

enum Interpret {
    Malformed(String),
    Upstream(Error),
}

fn interpret(
    inner: &Inner,
    ev: SseEvent,
    model: &str,
    stream_id: &mut Option<String>,
    template: &mut Option<Arc<ContentTemplate>>,
) -> std::result::Result<Step, Interpret> {
    let data = ev.data.trim();
    if data.starts_with("[DONE]") {
        return Ok(Step::Done);
    }
    if data.is_empty() {
        return Ok(Step::Skip);
    }
    // The common case, parsed straight into the chunk. An object with `choices` is a chunk, not
    // an error envelope (nor a business error: iFlow's check says the same), so the checks
    // below cannot apply to it.
    if ev.event.as_deref() != Some("error") {
        let start = data.as_ptr() as usize - ev.data.as_ptr() as usize;
        let trimmed = start..start + data.len();
        if let Some((template, content)) = template.as_ref().and_then(|t| t.continued(data).map(|content| (t.clone(), content))) {
            return Ok(Step::Chunk(StreamChunk(Repr::Continued { text: into_text(ev.data, trimmed), template, content })));
        }
        if let Some(fast) = fast_chunk::parse(data) {
            let mut chunk = fast.chunk;
            if !fast.canonical {
                chunk.normalize(model, stream_id);
                return Ok(Step::Chunk(StreamChunk::typed(chunk)));
            }
            let chunk = Arc::new(chunk);
            if let Some(t) = fast.content_span.and_then(|span| ContentTemplate::new(data, span, chunk.clone())) {
                *template = Some(Arc::new(t));
            }
            return Ok(Step::Chunk(StreamChunk(Repr::Parsed { chunk, text: Some(into_text(ev.data, trimmed)) })));
        }
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
    Ok(Step::Chunk(StreamChunk::typed(chunk)))
}

/// An event's data, of which `trimmed` is the chunk's text.
fn into_text(data: String, trimmed: Range<usize>) -> String {
    if trimmed.len() == data.len() {
        data
    } else {
        data[trimmed].to_string()
    }
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
