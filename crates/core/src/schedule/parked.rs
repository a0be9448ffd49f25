//! Parked requests: a request submitted with a completion callback (`Scheduler::submit_chat`)
//! waits in the queue as plain data — the request, its settings, its trace and the callback —
//! and becomes a task only when a running slot is granted. A queued request therefore costs
//! its record instead of a spawned future with its own timer and cancellation token, which is
//! what lets 100,000 queued requests fit in a small fraction of the memory.
//!
//! Deadlines of parked requests are kept in one ordered set served by one timer task per
//! scheduler (`expire_loop`), started with the first parked request.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::priority::Priority;
use super::queue::QueueKey;
use super::scheduler::{Completed, Failure, RequestOptions, Scheduler, Shared, Slot};
use super::trace::Trace;
use crate::error::Error;
use crate::model::{ChatRequest, ChatResponse};

/// What waits in the queue.
pub(super) enum Waiter {
    /// A suspended request future, woken when it is granted a slot.
    Wake(oneshot::Sender<()>),
    /// A parked request, started by whoever grants it a slot.
    Start(Box<dyn Parked>),
}

/// A parked request: started with a slot, or ended without one.
pub(super) trait Parked: Send {
    fn deadline(&self) -> Instant;
    /// Its whole timeout (from submission to the deadline).
    fn timeout(&self) -> Duration;
    /// Runs the request in a task of its own; `waited` when it came out of the queue (its
    /// queue time is then measured, else it is zero).
    fn start(self: Box<Self>, scheduler: Scheduler, slot: Slot, waited: bool);
    /// Ends it without running: its deadline passed in the queue, or the scheduler was destroyed.
    fn end(self: Box<Self>, scheduler: &Scheduler, error: Error);
}

/// The outcome of a submitted chat.
pub type ChatOutcome = std::result::Result<Completed<ChatResponse>, Failure>;

/// Calls the callback exactly once: with the outcome, or — when the record or the request's task
/// is dropped before it finished (its runtime shut down) — with a cancellation, so no caller
/// waits forever.
struct Once<F: FnOnce(ChatOutcome)>(Option<F>);

impl<F: FnOnce(ChatOutcome)> Once<F> {
    fn call(mut self, outcome: ChatOutcome) {
        if let Some(done) = self.0.take() {
            done(outcome);
        }
    }
}

impl<F: FnOnce(ChatOutcome)> Drop for Once<F> {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done(Err(Failure::before_any_attempt(Error::Cancelled { message: "The scheduler's runtime shut down before the request finished".into() })));
        }
    }
}

/// `RequestOptions` without the cancellation token, which is created when the request starts.
struct Settings {
    request_id: Arc<str>,
    priority: Priority,
    timeout: Option<Duration>,
    max_retries: Option<u32>,
}

impl Settings {
    fn of(opts: RequestOptions) -> Self {
        Settings { request_id: opts.request_id, priority: opts.priority, timeout: opts.timeout, max_retries: opts.max_retries }
    }

    fn into_options(self, cancel: CancellationToken) -> RequestOptions {
        RequestOptions { request_id: self.request_id, priority: self.priority, timeout: self.timeout, max_retries: self.max_retries, cancel, nested: false }
    }
}

/// A parked request's body. Compacted to JSON text when it has to wait (a one-message request
/// is ~70 bytes of text against ~650 as a `ChatRequest`) and parsed again when it starts; a
/// request that runs at once is never serialised.
enum Body {
    Text(Box<str>),
    Typed(Box<ChatRequest>),
}

impl Body {
    fn compact(self) -> Self {
        match self {
            Body::Typed(req) => match serde_json::to_string(&*req) {
                Ok(text) => Body::Text(text.into_boxed_str()),
                Err(_) => Body::Typed(req),
            },
            text => text,
        }
    }

    fn into_request(self) -> Result<ChatRequest, Error> {
        match self {
            Body::Typed(req) => Ok(*req),
            Body::Text(text) => ChatRequest::from_json(&text),
        }
    }
}

/// Generic over the callback so that it lives inside the parked record (one allocation).
pub(super) struct ParkedChat<F: FnOnce(ChatOutcome)> {
    body: Body,
    settings: Settings,
    started: Instant,
    deadline: Instant,
    trace: Trace,
    /// Settles with a cancellation if the record is ever dropped unstarted.
    done: Once<F>,
    compacted: bool,
}

impl<F: FnOnce(ChatOutcome) + Send + 'static> ParkedChat<F> {
    pub(super) fn new(req: ChatRequest, opts: RequestOptions, started: Instant, deadline: Instant, trace: Trace, done: F) -> Self {
        ParkedChat { body: Body::Typed(Box::new(req)), settings: Settings::of(opts), started, deadline, trace, done: Once(Some(done)), compacted: false }
    }

    pub(super) fn is_compact(&self) -> bool {
        self.compacted
    }

    /// Shrinks the request for its wait in the queue.
    pub(super) fn compact(&mut self) {
        let body = std::mem::replace(&mut self.body, Body::Text("".into()));
        self.body = body.compact();
        self.compacted = true;
    }
}

impl<F: FnOnce(ChatOutcome) + Send + 'static> Parked for ParkedChat<F> {
    fn deadline(&self) -> Instant {
        self.deadline
    }

    fn timeout(&self) -> Duration {
        self.deadline - self.started
    }

    fn start(self: Box<Self>, scheduler: Scheduler, slot: Slot, waited: bool) {
        let ParkedChat { body, settings, started, trace, done, .. } = *self;
        let opts = settings.into_options(scheduler.request_token());
        let req = match body.into_request() {
            Ok(req) => req,
            // Unreachable for a request that was parsed once; still an answer, never a loss.
            Err(e) => {
                drop(slot);
                return done.call(Err(scheduler.queue_failed(e, started, &opts, &trace)));
            }
        };
        let runner = scheduler.clone();
        scheduler.spawn(async move {
            let outcome = runner.run_granted_chat(slot, waited, started, req, opts, trace).await;
            done.call(outcome);
        });
    }

    fn end(self: Box<Self>, scheduler: &Scheduler, error: Error) {
        let ParkedChat { settings, started, trace, done, .. } = *self;
        let opts = settings.into_options(CancellationToken::new());
        done.call(Err(scheduler.queue_failed(error, started, &opts, &trace)));
    }
}

/// The deadlines of parked requests, earliest first.
#[derive(Default)]
pub(super) struct Deadlines {
    set: BTreeSet<(Instant, QueueKey)>,
}

impl Deadlines {
    /// Adds one; true when it is the new earliest (the timer task must be told).
    pub(super) fn insert(&mut self, at: Instant, key: QueueKey) -> bool {
        self.set.insert((at, key));
        self.set.first() == Some(&(at, key))
    }

    pub(super) fn remove(&mut self, at: Instant, key: QueueKey) {
        self.set.remove(&(at, key));
    }

    pub(super) fn first(&self) -> Option<Instant> {
        self.set.first().map(|(at, _)| *at)
    }

    /// Takes every deadline at or before `now`.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<QueueKey> {
        let mut due = Vec::new();
        while let Some(&(at, key)) = self.set.first() {
            if at > now {
                break;
            }
            self.set.pop_first();
            due.push(key);
        }
        due
    }

    pub(super) fn clear(&mut self) {
        self.set.clear();
    }
}

/// Ends parked requests whose deadline passed in the queue. Holds the scheduler weakly: it
/// stops when the scheduler is gone or destroyed.
pub(super) async fn expire_loop(shared: Weak<Shared>, wake: Arc<Notify>, stop: CancellationToken) {
    loop {
        let next = {
            let Some(shared) = shared.upgrade() else { return };
            Scheduler::from_shared(shared).expire_parked(Instant::now())
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = wake.notified() => {}
            _ = sleep_until(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))) => {}
        }
    }
}
