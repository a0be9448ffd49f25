//! The scheduler: admission (one deadline per request, a concurrency limit, a bounded
//! priority queue woken by events), selection among breaker-admitted members, retries with
//! backoff that prefer a member this request has not failed on, and stream failover until the
//! first chunk reaches the caller.
//!
//! All shared state sits behind one mutex that is never held across an `.await`; waiting is on
//! oneshot channels (queue slots), a `Notify` (member capacity) and one timer per deadline.
//! Requests submitted with a callback (`submit_chat`) wait as data instead (`parked.rs`): no
//! task, timer or token until they are granted a slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};
use tokio::task::AbortHandle;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::backend::{Backend, BoxFuture, Served};
use super::balancer::{Balancer, Strategy};
use super::breaker::{Admission, CircuitState, Transition};
use super::config::SchedulerConfig;
use super::events::{EventKind, EventSink, NoEvents};
use super::member::{Member, MemberOptions};
use super::metrics::{round3, Histogram, RequestStats, Throughput};
use super::parked::{expire_loop, ChatOutcome, Deadlines, Parked, ParkedChat, Waiter};
use super::priority::Priority;
use super::queue::{QueueKey, WaitQueue};
use super::trace::{Trace, TrackerHook};
use crate::error::{Error, Result, TimeoutPhase};
use crate::llmswitch::Protocol;
use crate::time::epoch_ms;
use crate::model::{ChatRequest, ChatResponse};
use crate::provider::{CallOptions, ChunkSender, ChunkStream, HealthStatus, Route, SharedTap, StreamChunk, StreamTap};
use crate::workflow::ChunkAccumulator;

/// A strategy written in JS: gets the eligible candidates' `PipelineInfo`s, answers an id.
pub trait CustomStrategy: Send + Sync {
    fn select(&self, candidates: Value) -> BoxFuture<Result<Option<String>>>;
}

/// Per-request settings.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    pub request_id: Arc<str>,
    pub priority: Priority,
    /// The deadline from scheduling to the answer (to the first chunk for streams); the
    /// scheduler's `request_timeout` when `None`.
    pub timeout: Option<Duration>,
    /// Overrides the configured `maxRetries`.
    pub max_retries: Option<u32>,
    /// Fires on abort. Take it from `Scheduler::request_token` so that `destroy` reaches it.
    pub cancel: CancellationToken,
    /// A call from an outer scheduler into this one (a Pipeline in a PipelineScheduler).
    pub nested: bool,
}

/// A successful scheduled call.
#[derive(Debug)]
pub struct Completed<T> {
    pub value: T,
    pub route: Route,
    pub attempts: u32,
    pub queued: Duration,
    pub elapsed: Duration,
}

/// A failed scheduled call: the error, and the pipeline that produced it if one was reached.
#[derive(Debug, Clone)]
pub struct Failure {
    pub error: Error,
    pub pipeline_id: Option<Arc<str>>,
    pub attempts: u32,
}

impl Failure {
    pub(super) fn before_any_attempt(error: Error) -> Self {
        Failure { error, pipeline_id: None, attempts: 0 }
    }

    /// The error payload for JS, with the request and pipeline it concerns.
    pub fn to_payload(&self, request_id: &str) -> serde_json::Map<String, Value> {
        let mut p = self.error.to_payload();
        p.insert("requestId".into(), request_id.into());
        if let Some(id) = &self.pipeline_id {
            p.insert("pipelineId".into(), (&**id).into());
        }
        p.insert("attempts".into(), self.attempts.into());
        p
    }
}

impl RequestOptions {
    /// `{requestId?, priority?, timeout?, retries?}` as JS passes it.
    pub fn from_json(v: &Value, cancel: CancellationToken) -> Result<Self> {
        let empty = serde_json::Map::new();
        let obj = match v {
            Value::Object(o) => o,
            Value::Null => &empty,
            other => return Err(crate::validate::invalid("options", "an object", Some(other))),
        };
        let f = crate::validate::Fields::new(obj, "");
        let request_id: Arc<str> = match f.string("requestId")? {
            Some(id) => id.into(),
            None => format!("req_{}_{:08x}", epoch_ms(), fastrand::u32(..)).into(),
        };
        Ok(RequestOptions {
            request_id,
            priority: Priority::from_value(obj.get("priority"), "priority")?,
            timeout: f.millis("timeout")?,
            max_retries: f.non_negative_int("retries")?.map(|n| n.min(100) as u32),
            cancel,
            nested: false,
        })
    }
}

impl Completed<ChatResponse> {
    /// `{requestId, pipelineId, targetId, attempts, queueTime, duration, response}` as JSON text.
    pub fn to_json(&self, request_id: &str) -> Result<String> {
        self.to_json_as(request_id, Protocol::OpenAIChat)
    }

    /// The same envelope with `response` in the caller's protocol.
    pub fn to_json_as(&self, request_id: &str, protocol: Protocol) -> Result<String> {
        let text = match protocol {
            // Serialised straight from the typed response: no intermediate `Value`.
            Protocol::OpenAIChat => serde_json::to_string(&self.envelope(request_id, &self.value)),
            other => serde_json::to_string(&self.envelope(request_id, &self.response_as(other)?)),
        };
        text.map_err(|e| Error::Internal { message: e.to_string() })
    }

    fn envelope<'a, R: serde::Serialize>(&'a self, request_id: &'a str, response: &'a R) -> Envelope<'a, R> {
        Envelope {
            request_id,
            pipeline_id: &self.route.pipeline_id,
            target_id: self.route.target_id.as_deref(),
            attempts: self.attempts,
            queue_time: round3(self.queued.as_secs_f64() * 1000.0),
            duration: round3(self.elapsed.as_secs_f64() * 1000.0),
            response,
        }
    }

    /// Only the response, in the caller's protocol, as JSON text.
    pub fn response_json_as(&self, protocol: Protocol) -> Result<String> {
        let text = match protocol {
            Protocol::OpenAIChat => serde_json::to_string(&self.value),
            other => serde_json::to_string(&self.response_as(other)?),
        };
        text.map_err(|e| Error::Internal { message: e.to_string() })
    }

    fn response_as(&self, protocol: Protocol) -> Result<Value> {
        let response = serde_json::to_value(&self.value).map_err(|e| Error::Internal { message: e.to_string() })?;
        crate::llmswitch::convert_response(&response, Protocol::OpenAIChat, protocol)
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a, R> {
    request_id: &'a str,
    pipeline_id: &'a str,
    target_id: Option<&'a str>,
    attempts: u32,
    queue_time: f64,
    duration: f64,
    response: &'a R,
}

/// Cheap to clone: clones share one scheduler.
#[derive(Clone)]
pub struct Scheduler {
    shared: Arc<Shared>,
}

pub(super) struct Shared {
    state: Mutex<State>,
    events: Arc<dyn EventSink>,
    /// Signalled whenever a member may have become selectable (a call finished, a member was
    /// added or enabled, the config changed).
    capacity_changed: Notify,
    strategies: RwLock<HashMap<Arc<str>, Arc<dyn CustomStrategy>>>,
    shutdown: CancellationToken,
    health_task: Mutex<Option<AbortHandle>>,
    started: Instant,
    tracker: RwLock<Option<TrackerHook>>,
    /// Where parked requests are started (the runtime the scheduler was created in).
    runtime: Option<tokio::runtime::Handle>,
    /// Tells the parked-deadline task that an earlier deadline arrived.
    parked_wake: Arc<Notify>,
}

struct State {
    config: SchedulerConfig,
    members: Vec<Member>,
    queue: WaitQueue<Waiter>,
    /// Deadlines of the parked requests in `queue` (suspended futures keep their own timers).
    parked: Deadlines,
    parked_timer_started: bool,
    running: usize,
    balancer: Balancer,
    stats: RequestStats,
    queue_times: Histogram,
    throughput: Throughput,
    next_uid: u64,
    destroyed: bool,
    trips: u64,
    last_health_check_ms: Option<u64>,
    /// The earliest moment an open breaker half-opens: selection refreshes breakers only once
    /// it has passed, so a decision costs O(1) instead of a pass over every member.
    next_half_open: Option<Instant>,
}


fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

fn destroyed_error() -> Error {
    Error::Cancelled { message: "The scheduler was destroyed".into() }
}

fn queue_timeout(timeout: Duration) -> Error {
    Error::Timeout {
        message: format!("The request waited in the queue for its whole timeout ({} ms)", ms(timeout)),
        phase: TimeoutPhase::Queue,
        timeout_ms: ms(timeout),
    }
}

/// Whether a failure says the member is in trouble (and so feeds its breaker): 5xx, 408, 429,
/// timeouts, connection and stream failures, refused credentials (a revoked key must be routed
/// around). Request errors (400, 404, 422, ...) and cancellations say nothing about it.
fn counts_against_member(e: &Error) -> bool {
    match e {
        Error::Connection { .. }
        | Error::Timeout { .. }
        | Error::RateLimit { .. }
        | Error::Authentication { .. }
        | Error::Stream { .. }
        | Error::Internal { .. } => true,
        Error::Provider { status, .. } => status.is_none_or(|s| s >= 500 || s == 408),
        _ => false,
    }
}

impl State {
    fn lock(shared: &Shared) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough counters; keep serving.
        shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Members are kept in the order they were added, so their uids increase: a binary search.
    fn member_index(&self, uid: u64) -> Option<usize> {
        self.members.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    /// `member_index`, trying first where the member was (it is still there unless an earlier
    /// member was removed since).
    fn member_index_at(&self, hint: usize, uid: u64) -> Option<usize> {
        match self.members.get(hint) {
            Some(m) if m.uid == uid => Some(hint),
            _ => self.member_index(uid),
        }
    }

    /// Tells the balancer that member `i` changed (its load, options or breaker).
    fn member_changed(&mut self, i: usize) {
        self.balancer.changed(i, &self.members[i]);
    }

    /// Notes that breaker `i` may have opened (its half-open time joins the earliest one).
    fn note_breaker(&mut self, i: usize) {
        if let Some(t) = self.members[i].breaker.open_until() {
            self.next_half_open = Some(self.next_half_open.map_or(t, |n| n.min(t)));
        }
    }

    /// Half-opens every breaker whose cooldown is over, when one is due; the transitions.
    fn refresh_breakers(&mut self, now: Instant) -> Vec<(Arc<str>, Transition)> {
        let mut transitions = Vec::new();
        if self.next_half_open.is_none_or(|t| now < t) {
            return transitions;
        }
        let cfg = self.config.breaker.clone();
        let mut next: Option<Instant> = None;
        for (i, m) in self.members.iter_mut().enumerate() {
            if let Some(t) = m.breaker.refresh(now, &cfg) {
                transitions.push((m.id.clone(), t));
                self.balancer.changed(i, m);
            }
            if let Some(t) = m.breaker.open_until() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        self.next_half_open = next;
        transitions
    }

    /// Admission of a new request: true when it takes a running slot now (counted), false when it
    /// must wait (there is room in the queue), or why it is refused.
    fn admit(&mut self) -> Result<bool> {
        if self.destroyed {
            return Err(destroyed_error());
        }
        if self.running < self.config.max_concurrent_requests && self.queue.is_empty() {
            self.running += 1;
            return Ok(true);
        }
        if self.queue.len() >= self.config.max_queue_size {
            let max = self.config.max_queue_size;
            return Err(Error::QueueFull { message: format!("The request queue is full ({max} requests waiting)"), max_size: max });
        }
        Ok(false)
    }

    /// Hands free slots to the longest-waiting highest-priority requests. Parked requests are
    /// returned with their slot counted: the caller starts them (`start_parked`) once the lock
    /// is released.
    #[must_use]
    fn grant_waiting(&mut self) -> Vec<Box<dyn Parked>> {
        let mut ready = Vec::new();
        while self.running < self.config.max_concurrent_requests {
            let Some((key, waiter)) = self.queue.pop_entry() else { break };
            match waiter {
                Waiter::Wake(grant) => {
                    if grant.send(()).is_ok() {
                        self.running += 1;
                    }
                }
                Waiter::Start(parked) => {
                    self.parked.remove(parked.deadline(), key);
                    self.running += 1;
                    ready.push(parked);
                }
            }
        }
        ready
    }
}

type Granted = Vec<(Arc<Shared>, Box<dyn Parked>)>;

thread_local! {
    /// Parked requests granted while this thread is already starting some (see `start_parked`).
    static STARTING: std::cell::RefCell<Option<Granted>> = const { std::cell::RefCell::new(None) };
}

/// Starts parked requests granted a slot by `grant_waiting`.
///
/// A start whose task is dropped at once (the runtime is shutting down) drops its slot, which
/// grants the next parked request: started from here that would recurse once per queued
/// request and overflow the stack. So a start nested in another one only hands its requests
/// to the outermost call on this thread, which starts them in a loop.
fn start_parked(shared: &Arc<Shared>, ready: Vec<Box<dyn Parked>>) {
    if ready.is_empty() {
        return;
    }
    let mut batch: Granted = ready.into_iter().map(|p| (shared.clone(), p)).collect();
    let outermost = STARTING.with(|s| {
        let mut s = s.borrow_mut();
        match s.as_mut() {
            Some(waiting) => {
                waiting.append(&mut batch);
                false
            }
            None => {
                *s = Some(Vec::new());
                true
            }
        }
    });
    if !outermost {
        return;
    }
    loop {
        for (shared, parked) in batch.drain(..) {
            parked.start(Scheduler { shared: shared.clone() }, Slot { shared }, true);
        }
        batch = STARTING.with(|s| std::mem::take(s.borrow_mut().as_mut().expect("set by the outermost call")));
        if batch.is_empty() {
            STARTING.with(|s| *s.borrow_mut() = None);
            return;
        }
    }
}

/// The result of admission.
enum Ticket {
    Running(Slot),
    Queued { key: QueueKey, rx: oneshot::Receiver<()> },
    /// A parked request that waited in the queue and was granted this slot.
    Granted(Slot),
}

/// A running-request slot; freeing it admits the next queued request.
pub(super) struct Slot {
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let ready = {
            let mut st = State::lock(&self.shared);
            st.running = st.running.saturating_sub(1);
            st.grant_waiting()
        };
        start_parked(&self.shared, ready);
    }
}

/// One call in flight on a member. Finishing it updates the member's counters and breaker;
/// dropping it unfinished counts as neutral (nothing leaks).
struct Lease {
    shared: Arc<Shared>,
    uid: u64,
    /// Where the member was in the list when leased: found again in O(1) unless an earlier
    /// member was removed meanwhile (then by uid, O(log n)).
    index: usize,
    id: Arc<str>,
    backend: Arc<dyn Backend>,
    /// The model this member is asked for (a virtual model's target model), if set.
    model: Option<Arc<str>>,
    admission: Admission,
    started: Instant,
    done: bool,
}

enum Outcome<'a> {
    Success,
    Failure(&'a Error),
    Neutral,
}

impl Lease {
    fn finish(&mut self, outcome: Outcome<'_>) {
        if self.done {
            return;
        }
        self.done = true;
        let shared = &self.shared;
        let now = Instant::now();
        let mut transitions = None;
        {
            let mut st = State::lock(shared);
            let breaker_cfg = st.config.breaker.clone();
            if let Some(i) = st.member_index_at(self.index, self.uid) {
                let m = &mut st.members[i];
                m.in_flight = m.in_flight.saturating_sub(1);
                let t = match outcome {
                    Outcome::Success => {
                        m.last_ok = Some(true);
                        m.stats.record(true, now - self.started);
                        m.breaker.on_success(self.admission)
                    }
                    Outcome::Failure(e) if counts_against_member(e) => {
                        m.last_ok = Some(false);
                        m.stats.record(false, now - self.started);
                        let retry_after = e.retry_after_ms().map(Duration::from_millis);
                        m.breaker.on_failure(now, &breaker_cfg, self.admission, retry_after)
                    }
                    Outcome::Failure(_) => {
                        m.last_ok = Some(false);
                        m.stats.record(false, now - self.started);
                        m.breaker.on_neutral(self.admission);
                        None
                    }
                    Outcome::Neutral => {
                        m.breaker.on_neutral(self.admission);
                        None
                    }
                };
                if let Some(t) = t {
                    if matches!(t, Transition::Opened { .. }) {
                        st.trips += 1;
                        st.note_breaker(i);
                    }
                    transitions = Some(t);
                }
                st.member_changed(i);
            }
        }
        if let Some(t) = transitions {
            emit_transition(shared, &self.id, t);
        }
        shared.capacity_changed.notify_waiters();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.finish(Outcome::Neutral);
    }
}

fn emit_transition(shared: &Shared, id: &str, t: Transition) {
    let (kind, payload) = match t {
        Transition::Opened { cooldown } => (EventKind::CircuitOpen, json!({"pipelineId": id, "retryAfterMs": ms(cooldown)})),
        Transition::HalfOpened => (EventKind::CircuitHalfOpen, json!({"pipelineId": id})),
        Transition::Closed => (EventKind::CircuitClose, json!({"pipelineId": id})),
    };
    if shared.events.wants(kind) {
        shared.events.emit(kind, payload);
    }
}

/// What selection decided while holding the lock.
enum Decision {
    Leased(Lease),
    AskCustom(Arc<dyn CustomStrategy>, Arc<str>, Value),
    WaitForCapacity,
    Fail(Error),
}

impl Scheduler {
    pub fn new(config: SchedulerConfig) -> Self {
        Self::with_events(config, Arc::new(NoEvents))
    }

    pub fn with_events(config: SchedulerConfig, events: Arc<dyn EventSink>) -> Self {
        let now = Instant::now();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                config,
                members: Vec::new(),
                queue: WaitQueue::default(),
                parked: Deadlines::default(),
                parked_timer_started: false,
                running: 0,
                balancer: Balancer::default(),
                stats: RequestStats::default(),
                queue_times: Histogram::default(),
                throughput: Throughput::new(now),
                next_uid: 1,
                destroyed: false,
                trips: 0,
                last_health_check_ms: None,
                next_half_open: None,
            }),
            events,
            capacity_changed: Notify::new(),
            strategies: RwLock::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            health_task: Mutex::new(None),
            started: now,
            tracker: RwLock::new(None),
            runtime: tokio::runtime::Handle::try_current().ok(),
            parked_wake: Arc::new(Notify::new()),
        });
        let s = Scheduler { shared };
        s.restart_health_checks();
        s
    }

    /// A cancellation token for one request that `destroy()` also fires.
    pub fn request_token(&self) -> CancellationToken {
        self.shared.shutdown.child_token()
    }

    /// Records every later request's stages into `tracker` under `label` (none when `None`).
    pub fn set_tracker(&self, tracker: Option<Arc<crate::track::Tracker>>, label: &str) {
        let hook = tracker.map(|tracker| TrackerHook { tracker, label: label.into() });
        *self.shared.tracker.write().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// The trace of a request submitted now; nested calls (a Pipeline inside a
    /// PipelineScheduler) are traced by the outer scheduler only.
    fn trace(&self, opts: &RequestOptions, operation: &str, model: Option<&str>) -> Trace {
        if opts.nested {
            return Trace::none();
        }
        let hook = self.shared.tracker.read().unwrap_or_else(|p| p.into_inner()).clone();
        let trace = Trace::begin(hook, &opts.request_id, operation, model, opts.priority.0);
        trace.start("queue", || Value::Null);
        trace
    }

    /// The configured whole-request timeout (without cloning the config).
    fn request_timeout(&self) -> Duration {
        State::lock(&self.shared).config.request_timeout
    }

    pub fn config(&self) -> SchedulerConfig {
        State::lock(&self.shared).config.clone()
    }

    pub fn is_custom_strategy(&self, name: &str) -> bool {
        self.shared.strategies.read().unwrap_or_else(|p| p.into_inner()).contains_key(name)
    }

    pub fn register_strategy(&self, name: &str, strategy: Arc<dyn CustomStrategy>) -> Result<()> {
        if Strategy::parse(name, &|_| false).is_some() {
            return Err(Error::validation("name", format!("'{name}' is a built-in strategy and cannot be replaced")));
        }
        if name.trim().is_empty() {
            return Err(Error::validation("name", "strategy name must be a non-empty string"));
        }
        self.shared.strategies.write().unwrap_or_else(|p| p.into_inner()).insert(name.into(), strategy);
        Ok(())
    }

    /// Applies a new configuration to everything not yet started; in-flight and queued
    /// requests keep running (a raised limit admits queued ones at once).
    pub fn update_config(&self, config: SchedulerConfig) {
        let interval_changed;
        let ready;
        let mut closed = Vec::new();
        {
            let mut st = State::lock(&self.shared);
            interval_changed = st.config.health_check_interval != config.health_check_interval;
            if !config.breaker.enabled {
                for m in st.members.iter_mut() {
                    if m.breaker.reset().is_some() {
                        closed.push(m.id.clone());
                    }
                }
            }
            st.config = config;
            let st = &mut *st;
            st.balancer.changed_all(&st.config.strategy, &st.members);
            ready = st.grant_waiting();
        }
        start_parked(&self.shared, ready);
        for id in closed {
            emit_transition(&self.shared, &id, Transition::Closed);
        }
        self.shared.capacity_changed.notify_waiters();
        if interval_changed {
            self.restart_health_checks();
        }
    }

    pub fn add_member(&self, id: &str, backend: Arc<dyn Backend>, options: MemberOptions) -> Result<()> {
        if id.is_empty() {
            return Err(Error::validation("id", "pipeline id must be a non-empty string"));
        }
        if !(options.weight.is_finite() && options.weight >= 0.0) {
            return Err(Error::validation("weight", format!("weight must be a non-negative number, got {}", options.weight)));
        }
        if options.max_concurrency == Some(0) {
            return Err(Error::validation("maxConcurrentRequests", "maxConcurrentRequests must be a positive integer, got 0"));
        }
        {
            let mut st = State::lock(&self.shared);
            if st.destroyed {
                return Err(destroyed_error());
            }
            if st.members.iter().any(|m| &*m.id == id) {
                return Err(Error::validation("id", format!("a pipeline with id '{id}' is already registered")));
            }
            let uid = st.next_uid;
            st.next_uid += 1;
            let m = Member::new(uid, id.into(), backend, options);
            st.balancer.push(&m);
            st.members.push(m);
        }
        self.shared.capacity_changed.notify_waiters();
        Ok(())
    }

    /// Removes a member; its calls in flight finish normally.
    pub fn remove_member(&self, id: &str) -> bool {
        let mut st = State::lock(&self.shared);
        let Some(i) = st.members.iter().position(|m| &*m.id == id) else { return false };
        st.members.remove(i);
        st.balancer.remove(i);
        true
    }

    /// Applies the fields present in `patch` (`{weight?, maxConcurrentRequests?, enabled?}`);
    /// false when no such member.
    pub fn patch_member(&self, id: &str, patch: &Value) -> Result<bool> {
        let parsed = MemberOptions::from_value(patch)?;
        Ok(self.update_member(id, |o| {
            if patch.get("weight").is_some() {
                o.weight = parsed.weight;
            }
            if patch.get("maxConcurrentRequests").is_some() {
                o.max_concurrency = parsed.max_concurrency;
            }
            if patch.get("enabled").is_some() {
                o.enabled = parsed.enabled;
            }
            if patch.get("model").is_some() {
                o.model = parsed.model;
            }
        }))
    }

    pub fn update_member(&self, id: &str, f: impl FnOnce(&mut MemberOptions)) -> bool {
        let found = {
            let mut st = State::lock(&self.shared);
            match st.members.iter().position(|m| &*m.id == id) {
                Some(i) => {
                    let m = &mut st.members[i];
                    let mut o = m.options.clone();
                    f(&mut o);
                    m.set_options(o);
                    st.member_changed(i);
                    true
                }
                None => false,
            }
        };
        if found {
            self.shared.capacity_changed.notify_waiters();
        }
        found
    }

    pub fn member_ids(&self) -> Vec<Arc<str>> {
        State::lock(&self.shared).members.iter().map(|m| m.id.clone()).collect()
    }

    pub fn circuit_state(&self, id: &str) -> Option<CircuitState> {
        let mut st = State::lock(&self.shared);
        let cfg = st.config.breaker.clone();
        let now = Instant::now();
        let i = st.members.iter().position(|m| &*m.id == id)?;
        let m = &mut st.members[i];
        let t = m.breaker.refresh(now, &cfg);
        let state = m.breaker.state();
        let mid = m.id.clone();
        if t.is_some() {
            st.member_changed(i);
        }
        drop(st);
        if let Some(t) = t {
            emit_transition(&self.shared, &mid, t);
        }
        Some(state)
    }

    fn emit(&self, kind: EventKind, payload: impl FnOnce() -> Value) {
        if self.shared.events.wants(kind) {
            self.shared.events.emit(kind, payload());
        }
    }

    fn cancelled_error(&self) -> Error {
        if self.shared.shutdown.is_cancelled() {
            destroyed_error()
        } else {
            Error::Cancelled { message: "The request was cancelled".into() }
        }
    }

    /// Waits for a running slot (queueing by priority when the scheduler is busy).
    /// Admission, done synchronously at submission so that FIFO within a priority follows the
    /// caller's submission order: a running slot at once, or a place in the queue.
    fn admit(&self, opts: &RequestOptions) -> Result<Ticket> {
        let (key, rx, queue_len) = {
            let mut st = State::lock(&self.shared);
            if st.admit()? {
                return Ok(Ticket::Running(Slot { shared: self.shared.clone() }));
            }
            let (tx, rx) = oneshot::channel();
            let key = st.queue.push(opts.priority, Waiter::Wake(tx));
            (key, rx, st.queue.len())
        };
        self.emit(EventKind::RequestQueued, || {
            json!({"requestId": &*opts.request_id, "priority": opts.priority.0, "queueLength": queue_len})
        });
        Ok(Ticket::Queued { key, rx })
    }

    /// Waits (when queued) for a running slot, until the deadline or a cancellation.
    async fn acquire_slot(&self, ticket: Result<Ticket>, opts: &RequestOptions, entered: Instant, deadline: Instant, timeout: Duration) -> Result<(Slot, Duration)> {
        let (key, mut rx) = match ticket? {
            Ticket::Running(slot) => return Ok((slot, Duration::ZERO)),
            Ticket::Granted(slot) => return Ok((slot, entered.elapsed())),
            Ticket::Queued { key, rx } => (key, rx),
        };
        let error = tokio::select! {
            biased;
            granted = &mut rx => match granted {
                Ok(()) => return Ok((Slot { shared: self.shared.clone() }, entered.elapsed())),
                // The queue was drained by destroy().
                Err(_) => return Err(destroyed_error()),
            },
            _ = opts.cancel.cancelled() => self.cancelled_error(),
            _ = sleep_until(deadline) => queue_timeout(timeout),
        };
        self.leave_queue(key, &mut rx);
        Err(error)
    }

    /// Takes a waiter out of the queue. If it was granted a slot in the meantime the slot is
    /// handed on; if destroy() drained the queue there is nothing to give back.
    fn leave_queue(&self, key: QueueKey, rx: &mut oneshot::Receiver<()>) {
        let ready = {
            let mut st = State::lock(&self.shared);
            if st.queue.remove(key).is_none() && rx.try_recv().is_ok() {
                st.running = st.running.saturating_sub(1);
                st.grant_waiting()
            } else {
                Vec::new()
            }
        };
        start_parked(&self.shared, ready);
    }

    /// Picks a member, preferring those this request has not failed on.
    async fn select(&self, excluded: &[u64], deadline: Instant, opts: &RequestOptions) -> Result<Lease> {
        loop {
            let notified = self.shared.capacity_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let decision = self.decide(excluded, None);
            match decision {
                Decision::Leased(l) => return Ok(l),
                Decision::Fail(e) => return Err(e),
                Decision::WaitForCapacity => {
                    tokio::select! {
                        biased;
                        _ = opts.cancel.cancelled() => return Err(self.cancelled_error()),
                        _ = sleep_until(deadline) => return Err(self.deadline_error(opts)),
                        _ = notified => {}
                    }
                }
                Decision::AskCustom(strategy, name, candidates) => {
                    let chosen = tokio::select! {
                        biased;
                        _ = opts.cancel.cancelled() => return Err(self.cancelled_error()),
                        _ = sleep_until(deadline) => return Err(self.deadline_error(opts)),
                        r = strategy.select(candidates) => r?,
                    };
                    let Some(id) = chosen else {
                        return Err(Error::NoAvailablePipeline { message: format!("Custom strategy '{name}' selected no pipeline") });
                    };
                    match self.decide(excluded, Some(&id)) {
                        Decision::Leased(l) => return Ok(l),
                        Decision::Fail(e) => return Err(e),
                        // The chosen member filled up or opened while JS was deciding: ask
                        // again once something changes.
                        Decision::WaitForCapacity | Decision::AskCustom(..) => {
                            tokio::select! {
                                biased;
                                _ = opts.cancel.cancelled() => return Err(self.cancelled_error()),
                                _ = sleep_until(deadline) => return Err(self.deadline_error(opts)),
                                _ = notified => {}
                            }
                        }
                    }
                }
            }
        }
    }

    fn deadline_error(&self, opts: &RequestOptions) -> Error {
        let t = opts.timeout.unwrap_or_else(|| self.request_timeout());
        Error::Timeout { message: format!("The request timed out after {} ms", ms(t)), phase: TimeoutPhase::Total, timeout_ms: ms(t) }
    }

    fn decide(&self, excluded: &[u64], chosen: Option<&str>) -> Decision {
        let now = Instant::now();
        let transitions;
        let decision = {
            let mut guard = State::lock(&self.shared);
            let st = &mut *guard;
            let cfg = st.config.breaker.clone();
            transitions = st.refresh_breakers(now);
            if let Some(id) = chosen {
                match st.members.iter().position(|m| &*m.id == id) {
                    None => Decision::Fail(Error::NoAvailablePipeline {
                        message: format!("Custom strategy '{}' selected unknown pipeline '{id}'", st.config.strategy.name()),
                    }),
                    Some(i) if st.members[i].eligible(&cfg) => Decision::Leased(self.lease(st, i)),
                    Some(_) => Decision::WaitForCapacity,
                }
            } else {
                let prefer = |_: usize, m: &Member| m.eligible(&cfg) && !excluded.contains(&m.uid);
                let strategy = st.config.strategy.clone();
                if let Strategy::Custom(name) = &strategy {
                    let any_preferred = st.members.iter().any(|m| prefer(0, m));
                    let custom = self.shared.strategies.read().unwrap_or_else(|p| p.into_inner()).get(&**name).cloned();
                    let infos: Vec<Value> = st
                        .members
                        .iter()
                        .filter(|m| if any_preferred { prefer(0, m) } else { m.eligible(&cfg) })
                        .map(|m| m.info())
                        .collect();
                    match custom {
                        _ if infos.is_empty() => self.none_eligible(st, now),
                        Some(s) => Decision::AskCustom(s, name.clone(), Value::Array(infos)),
                        None => Decision::Fail(Error::validation(
                            "loadBalancingStrategy",
                            format!("custom strategy '{name}' is not registered: call registerLoadBalancingStrategy('{name}', {{selectPipeline}}) first"),
                        )),
                    }
                } else {
                    // Members this request failed on only when no other is eligible.
                    let picked = st.balancer.pick_avoiding(&strategy, &st.members, |_, m| m.eligible(&cfg), |_, m| excluded.contains(&m.uid));
                    match picked {
                        Some(i) => Decision::Leased(self.lease(st, i)),
                        None => self.none_eligible(st, now),
                    }
                }
            }
        };
        for (id, t) in transitions {
            emit_transition(&self.shared, &id, t);
        }
        decision
    }

    /// Why nothing can be picked: nothing to route to, all circuits open, or all busy.
    fn none_eligible(&self, st: &State, now: Instant) -> Decision {
        let cfg = &st.config.breaker;
        let enabled: Vec<&Member> = st.members.iter().filter(|m| m.options.enabled).collect();
        if enabled.is_empty() {
            return Decision::Fail(Error::NoAvailablePipeline { message: "No available pipelines for request execution".into() });
        }
        // Busy (at their own cap, or half-open with every probe out) ones free up soon.
        if enabled.iter().any(|m| m.breaker.state() != CircuitState::Open || !cfg.enabled) {
            return Decision::WaitForCapacity;
        }
        let retry_after = enabled.iter().map(|m| m.breaker.retry_after(now)).min().unwrap_or_default();
        Decision::Fail(Error::CircuitOpen {
            message: format!(
                "Circuit breaker is open for every pipeline ({}); the first half-opens in {} ms",
                enabled.len(),
                ms(retry_after)
            ),
            retry_after_ms: ms(retry_after).max(1),
        })
    }

    fn lease(&self, st: &mut State, i: usize) -> Lease {
        let cfg = st.config.breaker.clone();
        let m = &mut st.members[i];
        m.in_flight += 1;
        m.last_used_ms = epoch_ms();
        let admission = m.breaker.admit(&cfg);
        let lease = Lease {
            shared: self.shared.clone(),
            uid: m.uid,
            index: i,
            id: m.id.clone(),
            backend: m.backend.clone(),
            model: m.options.model.clone(),
            admission,
            started: Instant::now(),
            done: false,
        };
        st.member_changed(i);
        lease
    }

    /// The attempt loop shared by chat and streams. `call` performs one attempt on a backend;
    /// on success the lease is handed back so that a stream can keep it until its end.
    async fn attempts<T, F>(&self, opts: &RequestOptions, trace: &Trace, deadline: Instant, mut call: F) -> std::result::Result<(T, Route, Lease, u32), Failure>
    where
        F: FnMut(Arc<dyn Backend>, Option<Arc<str>>, CallOptions) -> BoxFuture<Result<Served<T>>>,
    {
        let (max_retries, backoff, failover) = {
            let st = State::lock(&self.shared);
            (opts.max_retries.unwrap_or(st.config.retry.max_retries), st.config.retry.backoff, st.config.retry.failover_on_member_errors)
        };
        let mut rng = fastrand::Rng::new();
        let mut excluded: Vec<u64> = Vec::new();
        let mut last: Option<Arc<str>> = None;
        let mut attempt: u32 = 0;
        loop {
            trace.start("pipeline-selection", || json!({"attempt": attempt + 1}));
            let mut lease = match self.select(&excluded, deadline, opts).await {
                Ok(l) => l,
                Err(error) => {
                    trace.fail("pipeline-selection", &error);
                    return Err(Failure { error, pipeline_id: last, attempts: attempt });
                }
            };
            attempt += 1;
            trace.done("pipeline-selection", || json!({"attempt": attempt, "pipelineId": &*lease.id}));
            self.emit(EventKind::RequestStarted, || json!({"requestId": &*opts.request_id, "pipelineId": &*lease.id, "attempt": attempt}));
            let call_cancel = opts.cancel.child_token();
            let call_opts = CallOptions { cancel: call_cancel.clone(), ..CallOptions::default() };
            let backend = lease.backend.clone();
            let model = lease.model.clone();
            let stage_data = || json!({"attempt": attempt, "pipelineId": &*lease.id});
            let result = tokio::select! {
                biased;
                r = async {
                    authenticate(&*backend, trace, stage_data).await?;
                    trace.start("api-execution", stage_data);
                    let r = call(backend.clone(), model, call_opts).await;
                    match &r {
                        Ok(s) => trace.done("api-execution", || json!({"attempt": attempt, "pipelineId": &*lease.id, "targetId": s.target_id.as_deref()})),
                        Err(e) => trace.fail("api-execution", e),
                    }
                    r
                } => r,
                _ = sleep_until(deadline) => {
                    call_cancel.cancel();
                    let e = self.deadline_error(opts);
                    trace.fail("api-execution", &e);
                    Err(e)
                }
            };
            let served = match result {
                Ok(s) => s,
                Err(e) => {
                    let e = if opts.cancel.is_cancelled() { self.cancelled_error() } else { e };
                    if matches!(e, Error::Cancelled { .. }) {
                        lease.finish(Outcome::Neutral);
                    } else {
                        lease.finish(Outcome::Failure(&e));
                    }
                    let pipeline_id = Some(lease.id.clone());
                    let give_up = |error: Error| Failure { error, pipeline_id: pipeline_id.clone(), attempts: attempt };
                    let worth_another = e.retryable() || (failover && counts_against_member(&e));
                    if !worth_another || attempt > max_retries {
                        return Err(give_up(e));
                    }
                    let wait = backoff.delay(attempt - 1, e.retry_after_ms().map(Duration::from_millis), &mut rng);
                    if Instant::now() + wait >= deadline {
                        return Err(give_up(e));
                    }
                    self.emit(EventKind::Retry, || {
                        json!({
                            "requestId": &*opts.request_id,
                            "pipelineId": &*lease.id,
                            "attempt": attempt,
                            "delayMs": ms(wait),
                            "error": e.to_payload(),
                        })
                    });
                    tokio::select! {
                        biased;
                        _ = opts.cancel.cancelled() => return Err(give_up(self.cancelled_error())),
                        _ = sleep(wait) => {}
                    }
                    excluded.push(lease.uid);
                    last = pipeline_id;
                    continue;
                }
            };
            let route = Route { pipeline_id: lease.id.clone(), target_id: served.target_id };
            return Ok((served.value, route, lease, attempt));
        }
    }

    fn record_outcome(&self, ok: bool, elapsed: Duration, queued: Duration) {
        let mut st = State::lock(&self.shared);
        st.stats.record(ok, elapsed);
        st.queue_times.record(queued);
        st.throughput.record(Instant::now());
    }

    fn report_failure(&self, opts: &RequestOptions, f: &Failure, queued: Duration, started: Instant) {
        self.record_outcome(false, started.elapsed(), queued);
        self.emit(EventKind::RequestFailed, || {
            json!({
                "requestId": &*opts.request_id,
                "pipelineId": f.pipeline_id.as_deref(),
                "attempts": f.attempts,
                "error": f.error.to_payload(),
            })
        });
    }

    /// A non-streaming chat completion through the scheduler.
    ///
    /// Admission happens when this is called (not when the future is first polled), so
    /// requests submitted one after the other keep their order within a priority.
    pub fn chat(&self, req: ChatRequest, opts: RequestOptions) -> impl std::future::Future<Output = std::result::Result<Completed<ChatResponse>, Failure>> + Send + 'static {
        let started = Instant::now();
        let trace = self.trace(&opts, "chat", req.model.as_deref());
        let ticket = self.admit(&opts);
        let me = self.clone();
        async move { me.run_chat(ticket, started, req, opts, trace).await }
    }

    /// The same chat, for a caller that wants its outcome through `done` (called once, from a
    /// runtime thread) rather than as a future. When the scheduler is busy the request is
    /// *parked*: it waits in the queue as data and its task is created only when a slot is
    /// granted, so queued requests cost little memory. It can be cancelled only by `destroy()`
    /// or its deadline (`opts.cancel` is not used: its token is created when it starts); a
    /// caller that needs to abort it uses `chat`.
    pub fn submit_chat(&self, req: ChatRequest, opts: RequestOptions, done: impl FnOnce(ChatOutcome) + Send + 'static) {
        let started = Instant::now();
        let trace = self.trace(&opts, "chat", req.model.as_deref());
        let timeout = opts.timeout.unwrap_or_else(|| self.request_timeout());
        let priority = opts.priority;
        let request_id = opts.request_id.clone();
        let mut parked = Some(Box::new(ParkedChat::new(req, opts, started, started + timeout, trace, done)));
        let admitted = loop {
            let mut st = State::lock(&self.shared);
            match st.admit() {
                Err(e) => break Err(e),
                Ok(true) => break Ok(None),
                Ok(false) => {}
            }
            let p = parked.as_mut().expect("not parked yet");
            if !p.is_compact() {
                // It will wait: shrink it to its JSON text first, outside the lock, then decide
                // again (a slot may have been freed meanwhile).
                drop(st);
                p.compact();
                continue;
            }
            let p = parked.take().expect("parked once");
            let deadline = p.deadline();
            let key = st.queue.push(priority, Waiter::Start(p));
            let earliest = st.parked.insert(deadline, key);
            let start_timer = !std::mem::replace(&mut st.parked_timer_started, true);
            break Ok(Some((st.queue.len(), earliest, start_timer)));
        };
        match admitted {
            Ok(None) => parked.take().expect("not parked").start(self.clone(), Slot { shared: self.shared.clone() }, false),
            Ok(Some((queue_len, earliest, start_timer))) => {
                if start_timer {
                    let task = expire_loop(Arc::downgrade(&self.shared), self.shared.parked_wake.clone(), self.shared.shutdown.clone());
                    self.spawn(task);
                } else if earliest {
                    self.shared.parked_wake.notify_one();
                }
                self.emit(EventKind::RequestQueued, || json!({"requestId": &*request_id, "priority": priority.0, "queueLength": queue_len}));
            }
            Err(e) => {
                let p = parked.take().expect("not parked");
                p.end(self, e);
            }
        }
    }

    pub(super) fn from_shared(shared: Arc<Shared>) -> Self {
        Scheduler { shared }
    }

    /// Runs a task on the scheduler's runtime (the one it was created in, else the current one).
    pub(super) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        match &self.shared.runtime {
            Some(rt) => {
                rt.spawn(task);
            }
            None => {
                tokio::spawn(task);
            }
        }
    }

    /// A submitted chat granted `slot` (at once, or after waiting in the queue).
    pub(super) async fn run_granted_chat(&self, slot: Slot, waited: bool, started: Instant, req: ChatRequest, opts: RequestOptions, trace: Trace) -> std::result::Result<Completed<ChatResponse>, Failure> {
        let ticket = if waited { Ticket::Granted(slot) } else { Ticket::Running(slot) };
        self.run_chat(Ok(ticket), started, req, opts, trace).await
    }

    /// Ends the parked requests whose deadline is at or before `now`; the next deadline.
    pub(super) fn expire_parked(&self, now: Instant) -> Option<Instant> {
        let (expired, next) = {
            let mut st = State::lock(&self.shared);
            let due = st.parked.take_due(now);
            let expired: Vec<Box<dyn Parked>> = due
                .into_iter()
                .filter_map(|key| match st.queue.remove(key) {
                    Some(Waiter::Start(p)) => Some(p),
                    _ => None,
                })
                .collect();
            (expired, st.parked.first())
        };
        for p in expired {
            let timeout = p.timeout();
            p.end(self, queue_timeout(timeout));
        }
        next
    }

    /// Waits for a running slot; `(slot, time queued, deadline)`. A failure here is reported.
    async fn enter(&self, ticket: Result<Ticket>, started: Instant, opts: &RequestOptions, trace: &Trace) -> std::result::Result<(Slot, Duration, Instant), Failure> {
        let timeout = opts.timeout.unwrap_or_else(|| self.request_timeout());
        let deadline = started + timeout;
        match self.acquire_slot(ticket, opts, started, deadline, timeout).await {
            Ok((slot, queued)) => {
                trace.done("queue", || json!({"queueTime": round3(queued.as_secs_f64() * 1000.0)}));
                Ok((slot, queued, deadline))
            }
            Err(e) => Err(self.queue_failed(e, started, opts, trace)),
        }
    }

    /// Records and reports a request that ended before it got a running slot.
    pub(super) fn queue_failed(&self, e: Error, started: Instant, opts: &RequestOptions, trace: &Trace) -> Failure {
        trace.fail("queue", &e);
        let f = Failure::before_any_attempt(e);
        self.report_failure(opts, &f, started.elapsed(), started);
        trace.finish(|| json!({"success": false, "error": f.error.to_payload(), "duration": round3(started.elapsed().as_secs_f64() * 1000.0)}), false);
        f
    }

    /// Counts a success and emits `requestCompleted`; returns the elapsed time.
    fn report_success(&self, opts: &RequestOptions, route: &Route, attempts: u32, started: Instant, queued: Duration, chunks: Option<usize>) -> Duration {
        let elapsed = started.elapsed();
        self.record_outcome(true, elapsed, queued);
        self.emit(EventKind::RequestCompleted, || {
            let mut p = json!({"requestId": &*opts.request_id, "pipelineId": &*route.pipeline_id, "attempts": attempts, "duration": round3(elapsed.as_secs_f64() * 1000.0)});
            if let Some(n) = chunks {
                p["chunks"] = n.into();
            }
            p
        });
        elapsed
    }

    async fn run_chat(&self, ticket: Result<Ticket>, started: Instant, req: ChatRequest, opts: RequestOptions, trace: Trace) -> std::result::Result<Completed<ChatResponse>, Failure> {
        let (slot, queued, deadline) = self.enter(ticket, started, &opts, &trace).await?;
        // Boxed: its state is allocated once the request runs, so a queued request stays small.
        let result = Box::pin(self.attempts(&opts, &trace, deadline, |backend, model, call_opts| {
            let req = with_model(&req, model);
            Box::pin(async move { backend.chat(req, call_opts).await })
        }))
        .await;
        drop(slot);
        match result {
            Ok((response, route, mut lease, attempts)) => {
                trace.start("response-processing", || Value::Null);
                lease.finish(Outcome::Success);
                trace.route(&route);
                let elapsed = self.report_success(&opts, &route, attempts, started, queued, None);
                trace.done("response-processing", || json!({"pipelineId": &*route.pipeline_id, "attempts": attempts}));
                trace.finish(|| success_io(&req, &route, &response, attempts, elapsed), true);
                Ok(Completed { value: response, route, attempts, queued, elapsed })
            }
            Err(f) => {
                self.report_failure(&opts, &f, queued, started);
                trace.finish(|| failure_io(&req, &f, started), false);
                Err(f)
            }
        }
    }

    /// A streaming chat through the scheduler. Admission, selection and retries happen in a
    /// task; the returned stream yields chunks as they arrive. Until the first chunk has been
    /// handed over a failure is retried elsewhere; after it, the stream ends with a
    /// `StreamError` carrying what was received. The deadline covers the wait for the first
    /// chunk; after that the provider's idle and total timeouts govern.
    pub fn stream(&self, req: ChatRequest, opts: RequestOptions) -> ChunkStream {
        let (tx, stream) = ChunkStream::channel(opts.cancel.clone());
        let route_slot = stream.route_slot();
        let started = Instant::now();
        let trace = self.trace(&opts, "streamChat", req.model.as_deref());
        let ticket = self.admit(&opts);
        let me = self.clone();
        tokio::spawn(async move {
            me.run_stream(ticket, started, req, opts, tx, route_slot, trace).await;
        });
        stream
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_stream(&self, ticket: Result<Ticket>, started: Instant, req: ChatRequest, opts: RequestOptions, tx: ChunkSender, route_slot: Arc<std::sync::OnceLock<Route>>, trace: Trace) {
        let (slot, queued, deadline) = match self.enter(ticket, started, &opts, &trace).await {
            Ok(entered) => entered,
            Err(f) => {
                let _ = tx.send(Err(f.error)).await;
                return;
            }
        };
        let opened = Box::pin(self.attempts(&opts, &trace, deadline, |backend, model, call_opts| {
                let req = with_model(&req, model);
                Box::pin(async move {
                    let served = backend.stream_chat(req, call_opts).await?;
                    let mut s = served.value;
                    // The attempt succeeds only once the first chunk (or a clean end) arrived.
                    let first = match s.next_item().await {
                        Some(Ok(c)) => Some(c),
                        Some(Err(e)) => return Err(e),
                        None => None,
                    };
                    // A nested scheduler (a Pipeline) names its target once the first chunk is out.
                    let target_id = served.target_id.or_else(|| s.route().map(|r| r.pipeline_id.clone()));
                    Ok(Served { value: (s, first), target_id })
                })
            }))
            .await;
        let ((upstream, first), route, lease, attempts) = match opened {
            Ok(((s, first), route, lease, attempts)) => ((s, first), route, lease, attempts),
            Err(f) => {
                drop(slot);
                self.report_failure(&opts, &f, queued, started);
                trace.finish(|| failure_io(&req, &f, started), false);
                let _ = tx.send(Err(f.error)).await;
                return;
            }
        };
        let _ = route_slot.set(route.clone());
        trace.route(&route);
        trace.start("response-processing", || json!({"pipelineId": &*route.pipeline_id}));
        let cancel = opts.cancel.clone();
        let done = CancellationToken::new();
        let mut tap = StreamAccounting {
            scheduler: self.clone(),
            slot: Some(slot),
            lease,
            route,
            attempts,
            started,
            queued,
            opts,
            trace,
            req,
            acc: ChunkAccumulator::default(),
            done: done.clone(),
        };
        let Some(first) = first else {
            // The upstream ended cleanly without a chunk.
            drop(upstream);
            tap.finish(Ok(()));
            return;
        };
        first.accumulate_into(&mut tap.acc);
        if tx.send_item(Ok(first)).await.is_err() {
            drop(upstream);
            tap.finish(Err(self.cancelled_error()));
            return;
        }
        // The reader takes the upstream over: no second channel hop per chunk. The accounting
        // runs on the reader's side; this task only watches for a cancellation (an abort, the
        // reader gone, `destroy`) so that it is accounted for at once.
        let tap: SharedTap = Arc::new(Mutex::new(tap));
        if tx.hand_over(upstream, tap.clone()).await.is_err() {
            lock_tap(&tap).abandon();
            return;
        }
        drop(tx);
        tokio::select! {
            _ = cancel.cancelled() => lock_tap(&tap).abandon(),
            _ = done.cancelled() => {}
        }
    }

    /// Rejects everything queued with `CancelledError`, cancels running calls and stops the
    /// health checks. Later submissions are refused.
    pub fn destroy(&self) {
        let drained: Vec<_> = {
            let mut st = State::lock(&self.shared);
            st.destroyed = true;
            st.parked.clear();
            st.queue.drain().collect()
        };
        for waiter in drained {
            match waiter {
                // Dropping the sender wakes the waiter with "destroyed".
                Waiter::Wake(grant) => drop(grant),
                Waiter::Start(parked) => parked.end(self, destroyed_error()),
            }
        }
        self.shared.shutdown.cancel();
        if let Some(h) = self.shared.health_task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            h.abort();
        }
        self.shared.capacity_changed.notify_waiters();
    }

    fn restart_health_checks(&self) {
        let mut slot = self.shared.health_task.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = slot.take() {
            h.abort();
        }
        let Some(interval) = State::lock(&self.shared).config.health_check_interval else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let weak = Arc::downgrade(&self.shared);
        *slot = Some(rt.spawn(health_loop(weak, interval)).abort_handle());
    }

    /// Runs one round of health checks now (also what the periodic task does).
    pub async fn check_health(&self) {
        run_health_round(&self.shared).await;
    }

    pub fn metrics(&self) -> Value {
        let now = Instant::now();
        let st = State::lock(&self.shared);
        let mut m = st.stats.to_json();
        let o = m.as_object_mut().expect("object");
        let queued = st.queue.len();
        o.insert("activeRequests".into(), (st.running + queued).into());
        o.insert("currentConcurrentRequests".into(), st.running.into());
        o.insert("maxConcurrentRequests".into(), st.config.max_concurrent_requests.into());
        o.insert("queueLength".into(), queued.into());
        o.insert("averageQueueTime".into(), round3(st.queue_times.mean_ms()).into());
        o.insert("throughput".into(), round3(st.throughput.per_second(now)).into());
        let open = st.members.iter().filter(|m| m.breaker.state() == CircuitState::Open).count();
        o.insert("circuitBreakerTripped".into(), (open > 0).into());
        o.insert("circuitBreakerTripCount".into(), st.trips.into());
        o.insert("uptime".into(), ms(now - self.shared.started).into());
        o.insert("lastHealthCheck".into(), st.last_health_check_ms.map(Value::from).unwrap_or(Value::Null));
        o.insert("loadBalancingStrategy".into(), st.config.strategy.name().into());
        let pipelines: serde_json::Map<String, Value> = st.members.iter().map(|m| (m.id.to_string(), m.metrics())).collect();
        o.insert("pipelines".into(), Value::Object(pipelines));
        m
    }

    /// `{status, checks, details}` as SchedulerHealth.
    pub fn health(&self) -> Value {
        let st = State::lock(&self.shared);
        let cfg = &st.config;
        let total = st.members.len();
        let healthy = st
            .members
            .iter()
            .filter(|m| m.options.enabled && m.breaker.state() != CircuitState::Open && m.health != Some(HealthStatus::Unhealthy))
            .count();
        let error_rate = st.stats.error_rate();
        let avg = st.stats.response_times.mean_ms();
        let open = st.members.iter().filter(|m| m.breaker.state() == CircuitState::Open).count();
        let checks = json!({
            "pipelineHealth": healthy > 0,
            "errorRate": error_rate < 0.1,
            "responseTime": avg < 10_000.0,
            "circuitBreaker": open == 0,
            "concurrency": st.running < cfg.max_concurrent_requests,
        });
        let status = if healthy == 0 {
            "unhealthy"
        } else if error_rate < 0.1 && open == 0 && healthy == total {
            "healthy"
        } else {
            "degraded"
        };
        json!({
            "status": status,
            "checks": checks,
            "details": {
                "healthyPipelines": healthy,
                "totalPipelines": total,
                "openCircuits": open,
                "currentErrorRate": round3(error_rate),
                "averageResponseTime": round3(avg),
                "circuitBreakerTripped": open > 0,
                "currentConcurrency": st.running,
                "maxConcurrency": cfg.max_concurrent_requests,
                "queueLength": st.queue.len(),
            }
        })
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // The last handle going away (the JS object was collected) stops the health task; the
        // task itself only holds a weak reference.
        if Arc::strong_count(&self.shared) == 1 {
            if let Some(h) = self.shared.health_task.lock().unwrap_or_else(|p| p.into_inner()).take() {
                h.abort();
            }
        }
    }
}

fn lock_tap(tap: &SharedTap) -> std::sync::MutexGuard<'_, dyn StreamTap + 'static> {
    tap.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the scheduler does for a stream after its first chunk, on the reader's side (see
/// `ChunkSender::hand_over`): gathers the chunks for the partial result and the trace, and
/// accounts for the end — success, a mid-stream failure, or the reader stopping.
struct StreamAccounting {
    scheduler: Scheduler,
    /// The running slot, released at the end.
    slot: Option<Slot>,
    lease: Lease,
    route: Route,
    attempts: u32,
    started: Instant,
    queued: Duration,
    opts: RequestOptions,
    trace: Trace,
    req: ChatRequest,
    acc: ChunkAccumulator,
    /// Fired once accounted for (the watching task ends).
    done: CancellationToken,
}

impl StreamAccounting {
    /// Accounts for the end once; returns the error the reader gets.
    fn finish(&mut self, outcome: std::result::Result<(), Error>) -> Option<Error> {
        if self.done.is_cancelled() {
            return outcome.err();
        }
        self.done.cancel();
        drop(self.slot.take());
        let me = &self.scheduler;
        let (opts, route, acc, attempts) = (&self.opts, &self.route, &self.acc, self.attempts);
        match outcome {
            Ok(()) => {
                self.lease.finish(Outcome::Success);
                let elapsed = me.report_success(opts, route, attempts, self.started, self.queued, Some(acc.chunk_count()));
                self.trace.done("response-processing", || json!({"pipelineId": &*route.pipeline_id, "chunks": acc.chunk_count()}));
                let req = &self.req;
                self.trace.finish(|| success_io(req, route, &json!({"chunks": acc.chunk_count(), "response": acc.to_response()}), attempts, elapsed), true);
                None
            }
            Err(e) => {
                let e = if opts.cancel.is_cancelled() { me.cancelled_error() } else { e };
                if matches!(e, Error::Cancelled { .. }) {
                    self.lease.finish(Outcome::Neutral);
                } else {
                    self.lease.finish(Outcome::Failure(&e));
                }
                let f = Failure { error: e, pipeline_id: Some(route.pipeline_id.clone()), attempts };
                me.report_failure(opts, &f, self.queued, self.started);
                self.trace.fail("response-processing", &f.error);
                let (req, started) = (&self.req, self.started);
                self.trace.finish(|| failure_io(req, &f, started), false);
                Some(f.error)
            }
        }
    }
}

impl StreamTap for StreamAccounting {
    fn item(&mut self, item: Option<Result<StreamChunk>>) -> Option<Result<StreamChunk>> {
        if self.done.is_cancelled() {
            return item;
        }
        match item {
            Some(Ok(c)) => {
                c.accumulate_into(&mut self.acc);
                Some(Ok(c))
            }
            Some(Err(e)) => {
                let e = mid_stream_error(e, &self.acc, self.opts.cancel.is_cancelled());
                self.finish(Err(e)).map(Err)
            }
            None => {
                self.finish(Ok(()));
                None
            }
        }
    }

    fn abandon(&mut self) {
        let e = self.scheduler.cancelled_error();
        self.finish(Err(e));
    }
}

/// After the first chunk every failure is a `StreamError` with what was received.
fn mid_stream_error(e: Error, acc: &ChunkAccumulator, cancelled: bool) -> Error {
    match e {
        Error::Cancelled { .. } => e,
        _ if cancelled => Error::cancelled(),
        Error::Stream { partial: Some(_), .. } => e,
        other => Error::Stream {
            message: format!("The stream failed after {} chunks: {other}", acc.chunk_count()),
            partial: serde_json::to_value(acc.to_response()).ok(),
        },
    }
}

/// The request as a member that serves a fixed model must receive it.
fn with_model(req: &ChatRequest, model: Option<Arc<str>>) -> ChatRequest {
    let mut r = req.clone();
    if let Some(m) = model {
        r.model = Some(m.to_string());
    }
    r
}

/// Runs the backend's authentication step, if it has one, as the `authentication` stage.
async fn authenticate(backend: &dyn Backend, trace: &Trace, data: impl Fn() -> Value) -> Result<()> {
    match backend.authenticate() {
        None => {
            trace.done("authentication", || {
                let mut d = data();
                d["required"] = false.into();
                d
            });
            Ok(())
        }
        Some(step) => {
            trace.start("authentication", &data);
            let r = step.await;
            match &r {
                Ok(()) => trace.done("authentication", &data),
                Err(e) => trace.fail("authentication", e),
            }
            r
        }
    }
}

/// The I/O entry of a request that failed.
/// The `pipeline_end` I/O entry of a request that succeeded.
fn success_io(req: &ChatRequest, route: &Route, output: &impl serde::Serialize, attempts: u32, elapsed: Duration) -> Value {
    json!({
        "pipelineId": &*route.pipeline_id,
        "targetId": route.target_id.as_deref(),
        "input": req,
        "output": output,
        "success": true,
        "attempts": attempts,
        "duration": round3(elapsed.as_secs_f64() * 1000.0),
    })
}

fn failure_io(req: &ChatRequest, f: &Failure, started: Instant) -> Value {
    json!({
        "pipelineId": f.pipeline_id.as_deref(),
        "input": req,
        "success": false,
        "error": f.error.to_payload(),
        "attempts": f.attempts,
        "duration": round3(started.elapsed().as_secs_f64() * 1000.0),
    })
}

async fn health_loop(shared: Weak<Shared>, interval: Duration) {
    loop {
        sleep(interval).await;
        let Some(s) = shared.upgrade() else { return };
        if s.shutdown.is_cancelled() {
            return;
        }
        run_health_round(&s).await;
    }
}

/// Calls every member's health check; an unhealthy answer counts against its breaker.
async fn run_health_round(shared: &Arc<Shared>) {
    let targets: Vec<(u64, Arc<dyn Backend>)> = State::lock(shared).members.iter().map(|m| (m.uid, m.backend.clone())).collect();
    let reports = futures_util::future::join_all(targets.iter().map(|(_, b)| b.health_check())).await;
    let now = Instant::now();
    let mut transitions = Vec::new();
    {
        let mut st = State::lock(shared);
        let cfg = st.config.breaker.clone();
        for ((uid, _), report) in targets.iter().zip(reports) {
            let Some(i) = st.member_index(*uid) else { continue };
            let m = &mut st.members[i];
            m.health = Some(report.status);
            if report.status == HealthStatus::Unhealthy {
                let admission = m.breaker.admit(&cfg);
                if let Some(t) = m.breaker.on_failure(now, &cfg, admission, None) {
                    transitions.push((m.id.clone(), t));
                }
                st.note_breaker(i);
            }
        }
        st.trips += transitions.iter().filter(|(_, t)| matches!(t, Transition::Opened { .. })).count() as u64;
        st.last_health_check_ms = Some(epoch_ms());
    }
    for (id, t) in transitions {
        emit_transition(shared, &id, t);
    }
}

/// The futures handed to napi must be `Send`.
#[allow(dead_code)]
fn chat_future_is_send(s: &Scheduler, r: ChatRequest, o: RequestOptions) {
    fn is_send<T: Send>(_: T) {}
    is_send(s.chat(r, o));
}

/// A scheduler is itself a backend: a `Pipeline` (a scheduler over its targets) scheduled by a
/// `PipelineScheduler`. The served target is reported so that results name it.
impl RequestOptions {
    /// A call made by an outer scheduler into a nested one (a Pipeline): the outer request's
    /// cancellation, the nested scheduler's own timeout.
    fn nested(cancel: CancellationToken) -> Self {
        RequestOptions { request_id: "nested".into(), priority: Priority::default(), timeout: None, max_retries: None, cancel, nested: true }
    }
}

impl Backend for Scheduler {
    fn chat(&self, req: ChatRequest, opts: CallOptions) -> BoxFuture<Result<Served<ChatResponse>>> {
        let s = self.clone();
        Box::pin(async move {
            match s.chat(req, RequestOptions::nested(opts.cancel)).await {
                Ok(c) => Ok(Served { value: c.value, target_id: Some(c.route.pipeline_id) }),
                Err(f) => Err(f.error),
            }
        })
    }

    fn stream_chat(&self, req: ChatRequest, opts: CallOptions) -> BoxFuture<Result<Served<ChunkStream>>> {
        let s = self.clone();
        Box::pin(async move { Ok(Served::direct(s.stream(req, RequestOptions::nested(opts.cancel)))) })
    }

    fn health_check(&self) -> BoxFuture<crate::provider::HealthReport> {
        let h = self.health();
        Box::pin(async move {
            let status = match h["status"].as_str() {
                Some("healthy") => HealthStatus::Healthy,
                Some("degraded") => HealthStatus::Degraded,
                _ => HealthStatus::Unhealthy,
            };
            crate::provider::HealthReport { status, latency_ms: 0.0, error: None }
        })
    }
}
