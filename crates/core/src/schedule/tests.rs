//! The scheduler's rules, on tokio's paused clock with scripted backends.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::error::{Error, Result, TimeoutPhase};
use crate::model::{ChatChunk, ChatRequest, ChatResponse};
use crate::provider::{CallOptions, ChunkStream, HealthReport, HealthStatus};

/// What one call to a fake backend does.
#[derive(Clone)]
enum Step {
    Ok,
    Fail(Error),
    /// Streams: `n` chunks then this error (or a clean end).
    Chunks(usize, Option<Error>),
}

/// A backend with a fixed latency and a script of outcomes (then `Ok` forever).
struct Fake {
    name: &'static str,
    latency: Duration,
    script: Mutex<VecDeque<Step>>,
    calls: AtomicU32,
    log: Arc<Mutex<Vec<String>>>,
    healthy: Mutex<HealthStatus>,
}

impl Fake {
    fn new(name: &'static str, latency_ms: u64, log: &Arc<Mutex<Vec<String>>>) -> Arc<Fake> {
        Arc::new(Fake {
            name,
            latency: Duration::from_millis(latency_ms),
            script: Mutex::new(VecDeque::new()),
            calls: AtomicU32::new(0),
            log: log.clone(),
            healthy: Mutex::new(HealthStatus::Healthy),
        })
    }

    fn script(self: &Arc<Self>, steps: impl IntoIterator<Item = Step>) -> Arc<Self> {
        self.script.lock().unwrap().extend(steps);
        self.clone()
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    fn next_step(&self, req: &ChatRequest) -> Step {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let tag = req.extra.get("tag").and_then(|v| v.as_str()).unwrap_or("").to_string();
        self.log.lock().unwrap().push(format!("{}:{tag}", self.name));
        self.script.lock().unwrap().pop_front().unwrap_or(Step::Ok)
    }
}

fn response(from: &str) -> ChatResponse {
    serde_json::from_value(json!({
        "id": "r", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": from}, "finish_reason": "stop"}]
    }))
    .unwrap()
}

fn chunk(text: &str) -> ChatChunk {
    serde_json::from_value(json!({
        "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]
    }))
    .unwrap()
}

impl Backend for Fake {
    fn chat(&self, req: ChatRequest, opts: CallOptions) -> BoxFuture<Result<Served<ChatResponse>>> {
        let step = self.next_step(&req);
        let latency = self.latency;
        let name = self.name;
        Box::pin(async move {
            tokio::select! {
                _ = opts.cancel.cancelled() => return Err(Error::cancelled()),
                _ = sleep(latency) => {}
            }
            match step {
                Step::Fail(e) => Err(e),
                _ => Ok(Served::direct(response(name))),
            }
        })
    }

    fn stream_chat(&self, req: ChatRequest, opts: CallOptions) -> BoxFuture<Result<Served<ChunkStream>>> {
        let step = self.next_step(&req);
        let latency = self.latency;
        let name = self.name;
        Box::pin(async move {
            let (tx, stream) = ChunkStream::channel(opts.cancel.child_token());
            tokio::spawn(async move {
                sleep(latency).await;
                match step {
                    Step::Fail(e) => {
                        let _ = tx.send(Err(e)).await;
                    }
                    Step::Ok => {
                        for i in 0..3 {
                            let _ = tx.send(Ok(chunk(&format!("{name}{i} ")))).await;
                        }
                    }
                    Step::Chunks(n, end) => {
                        for i in 0..n {
                            let _ = tx.send(Ok(chunk(&format!("{name}{i} ")))).await;
                        }
                        if let Some(e) = end {
                            let _ = tx.send(Err(e)).await;
                        }
                    }
                }
            });
            Ok(Served::direct(stream))
        })
    }

    fn health_check(&self) -> BoxFuture<HealthReport> {
        let status = *self.healthy.lock().unwrap();
        Box::pin(async move { HealthReport { status, latency_ms: 1.0, error: None } })
    }
}

fn http(status: u16) -> Error {
    Error::Provider { message: format!("HTTP {status}"), status: Some(status), body: None, provider_code: None, retry_after_ms: None }
}

fn rate_limited(retry_after_ms: u64) -> Error {
    Error::RateLimit { message: "slow down".into(), status: Some(429), retry_after_ms: Some(retry_after_ms), body: None, provider_code: None }
}

fn req(tag: &str) -> ChatRequest {
    ChatRequest::from_json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tag": tag}).to_string()).unwrap()
}

fn config(f: impl FnOnce(&mut SchedulerConfig)) -> SchedulerConfig {
    let mut c = SchedulerConfig::default();
    c.retry.backoff.jitter = false;
    c.retry.backoff.base = Duration::from_millis(100);
    f(&mut c);
    c
}

fn opts(s: &Scheduler, id: &str) -> RequestOptions {
    RequestOptions { request_id: id.into(), priority: Priority::MEDIUM, timeout: None, max_retries: None, cancel: s.request_token(), nested: false }
}

/// Collects events.
#[derive(Default)]
struct Events(Mutex<Vec<(EventKind, Value)>>);

impl EventSink for Events {
    fn wants(&self, _: EventKind) -> bool {
        true
    }
    fn emit(&self, kind: EventKind, payload: Value) {
        self.0.lock().unwrap().push((kind, payload));
    }
}

impl Events {
    fn kinds(&self) -> Vec<EventKind> {
        self.0.lock().unwrap().iter().map(|(k, _)| *k).collect()
    }
}

fn log() -> Arc<Mutex<Vec<String>>> {
    Arc::default()
}

#[tokio::test(start_paused = true)]
async fn priority_order_and_fifo_ties() {
    let log = log();
    let s = Arc::new(Scheduler::new(config(|c| c.max_concurrent_requests = 1)));
    s.add_member("a", Fake::new("a", 100, &log), MemberOptions::default()).unwrap();
    let mut handles = Vec::new();
    let plan = [("first", 50.0), ("low", 25.0), ("high-1", 75.0), ("medium", 50.0), ("high-2", 75.0), ("critical", 100.0), ("numeric-80", 80.0)];
    for (tag, p) in plan {
        let s = s.clone();
        let mut o = opts(&s, tag);
        o.priority = Priority(p);
        handles.push(tokio::spawn(async move { s.chat(req(tag), o).await.map(|c| c.value.choices.len()) }));
        tokio::task::yield_now().await; // submit in this order
    }
    for h in handles {
        assert_eq!(h.await.unwrap().unwrap(), 1, "queued calls resolve with the model's response");
    }
    let order: Vec<String> = log.lock().unwrap().clone();
    assert_eq!(order, ["a:first", "a:critical", "a:numeric-80", "a:high-1", "a:high-2", "a:medium", "a:low"]);
}

#[tokio::test(start_paused = true)]
async fn queue_is_bounded_and_queue_wait_has_its_own_timeout_phase() {
    let log = log();
    let s = Arc::new(Scheduler::new(config(|c| {
        c.max_concurrent_requests = 1;
        c.max_queue_size = 2;
    })));
    s.add_member("a", Fake::new("a", 1000, &log), MemberOptions::default()).unwrap();
    let running = tokio::spawn({
        let s = s.clone();
        async move { s.chat(req("r"), opts(&s, "r")).await }
    });
    tokio::task::yield_now().await;
    let mut short = opts(&s, "q1");
    short.timeout = Some(Duration::from_millis(300));
    let q1 = tokio::spawn({
        let s = s.clone();
        async move { s.chat(req("q1"), short).await }
    });
    let q2 = tokio::spawn({
        let s = s.clone();
        async move { s.chat(req("q2"), opts(&s, "q2")).await }
    });
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    let full = s.chat(req("q3"), opts(&s, "q3")).await.unwrap_err();
    assert!(matches!(full.error, Error::QueueFull { max_size: 2, .. }), "{:?}", full.error);
    let t = q1.await.unwrap().unwrap_err();
    assert!(matches!(t.error, Error::Timeout { phase: TimeoutPhase::Queue, timeout_ms: 300, .. }), "{:?}", t.error);
    assert!(running.await.unwrap().is_ok());
    assert!(q2.await.unwrap().is_ok());
    assert_eq!(log.lock().unwrap().len(), 2, "the timed-out request never ran");
    let m = s.metrics();
    assert_eq!((m["successfulRequests"].as_u64(), m["failedRequests"].as_u64(), m["queueLength"].as_u64()), (Some(2), Some(2), Some(0)));
    assert_eq!(m["currentConcurrentRequests"], 0);
}

#[tokio::test(start_paused = true)]
async fn one_deadline_covers_queue_attempts_and_backoff() {
    let log = log();
    let s = Arc::new(Scheduler::new(config(|c| {
        c.retry.max_retries = 10;
        c.retry.backoff.base = Duration::from_millis(400);
        c.breaker.enabled = false;
    })));
    let a = Fake::new("a", 100, &log).script(std::iter::repeat_n(Step::Fail(http(503)), 20));
    s.add_member("a", a.clone(), MemberOptions::default()).unwrap();
    let mut o = opts(&s, "x");
    o.timeout = Some(Duration::from_millis(1450));
    let t0 = Instant::now();
    let f = s.chat(req("x"), o).await.unwrap_err();
    // 100 + 400 (backoff) + 100 + 800 (backoff) = 1400 ms; the third attempt is cut by the
    // deadline at 1450 ms: TimeoutError phase total, never later.
    assert_eq!(t0.elapsed(), Duration::from_millis(1450));
    assert_eq!(a.calls(), 3);
    assert!(matches!(f.error, Error::Timeout { phase: TimeoutPhase::Total, timeout_ms: 1450, .. }), "{:?}", f.error);
    assert_eq!(f.attempts, 3);

    // A backoff that would end past the deadline is not slept: the last upstream error is
    // returned at once.
    let b = Fake::new("b", 100, &log).script(std::iter::repeat_n(Step::Fail(http(503)), 20));
    let s1 = Scheduler::new(config(|c| {
        c.retry.backoff.base = Duration::from_millis(2000);
        c.breaker.enabled = false;
    }));
    s1.add_member("b", b.clone(), MemberOptions::default()).unwrap();
    let mut o = opts(&s1, "z");
    o.timeout = Some(Duration::from_millis(1500));
    let t0 = Instant::now();
    let f = s1.chat(req("z"), o).await.unwrap_err();
    assert_eq!((t0.elapsed(), b.calls(), f.error.status()), (Duration::from_millis(100), 1, Some(503)));

    // A slow attempt is cut by the deadline itself: TimeoutError phase total.
    let slow = Fake::new("slow", 10_000, &log);
    let s2 = Scheduler::new(config(|_| {}));
    s2.add_member("slow", slow, MemberOptions::default()).unwrap();
    let mut o = opts(&s2, "y");
    o.timeout = Some(Duration::from_millis(700));
    let t0 = Instant::now();
    let f = s2.chat(req("y"), o).await.unwrap_err();
    assert!(matches!(f.error, Error::Timeout { phase: TimeoutPhase::Total, timeout_ms: 700, .. }), "{:?}", f.error);
    assert_eq!(t0.elapsed(), Duration::from_millis(700));
}

#[tokio::test(start_paused = true)]
async fn retries_reselect_a_pipeline_that_has_not_failed() {
    let log = log();
    let events = Arc::new(Events::default());
    let s = Scheduler::with_events(config(|_| {}), events.clone());
    s.add_member("a", Fake::new("a", 10, &log).script([Step::Fail(http(502))]), MemberOptions::default()).unwrap();
    s.add_member("b", Fake::new("b", 10, &log).script([Step::Fail(http(500))]), MemberOptions::default()).unwrap();
    s.add_member("c", Fake::new("c", 10, &log), MemberOptions::default()).unwrap();
    let done = s.chat(req("x"), opts(&s, "x")).await.unwrap();
    assert_eq!(*log.lock().unwrap(), ["a:x", "b:x", "c:x"]);
    assert_eq!(&*done.route.pipeline_id, "c");
    assert_eq!(done.attempts, 3);
    let kinds = events.kinds();
    assert_eq!(kinds.iter().filter(|k| **k == EventKind::Retry).count(), 2);
    assert_eq!(kinds.last(), Some(&EventKind::RequestCompleted));

    // Non-retryable errors are not retried.
    log.lock().unwrap().clear();
    let s = Scheduler::new(config(|_| {}));
    s.add_member("a", Fake::new("a", 10, &log).script([Step::Fail(http(400))]), MemberOptions::default()).unwrap();
    s.add_member("b", Fake::new("b", 10, &log), MemberOptions::default()).unwrap();
    let f = s.chat(req("x"), opts(&s, "x")).await.unwrap_err();
    assert_eq!((f.error.status(), f.attempts, f.pipeline_id.as_deref()), (Some(400), 1, Some("a")));
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_and_lengthens_the_breaker_cooldown() {
    let log = log();
    let events = Arc::new(Events::default());
    let s = Scheduler::with_events(
        config(|c| {
            c.breaker.failure_threshold = 1;
            c.breaker.recovery_timeout = Duration::from_millis(1000);
        }),
        events.clone(),
    );
    let a = Fake::new("a", 0, &log).script([Step::Fail(rate_limited(3000))]);
    s.add_member("a", a.clone(), MemberOptions::default()).unwrap();
    let t0 = Instant::now();
    // The 429 opens the breaker for its Retry-After (3 s, longer than the recovery timeout);
    // the retry waits exactly that long, finds the circuit half-open, and its probe closes it.
    let done = s.chat(req("x"), opts(&s, "x")).await.unwrap();
    assert_eq!((t0.elapsed(), done.attempts), (Duration::from_millis(3000), 2));
    let opened = events.0.lock().unwrap().iter().find(|(k, _)| *k == EventKind::CircuitOpen).map(|(_, p)| p.clone()).unwrap();
    assert_eq!(opened, json!({"pipelineId": "a", "retryAfterMs": 3000}));
    let kinds: Vec<_> = events.kinds().into_iter().filter(|k| matches!(k, EventKind::CircuitOpen | EventKind::CircuitHalfOpen | EventKind::CircuitClose)).collect();
    assert_eq!(kinds, [EventKind::CircuitOpen, EventKind::CircuitHalfOpen, EventKind::CircuitClose]);

    // Without retries, the next request meets the open circuit with the remaining cooldown.
    a.script([Step::Fail(rate_limited(3000))]);
    let mut once = opts(&s, "y");
    once.max_retries = Some(0);
    assert_eq!(s.chat(req("y"), once).await.unwrap_err().error.status(), Some(429));
    sleep(Duration::from_millis(1000)).await;
    let f = s.chat(req("z"), opts(&s, "z")).await.unwrap_err();
    assert!(matches!(f.error, Error::CircuitOpen { retry_after_ms: 2000, .. }), "{:?}", f.error);
    assert_eq!(f.error.retry_after_ms(), Some(2000));
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_rejects_half_opens_with_limited_probes_and_closes() {
    let log = log();
    let s = Arc::new(Scheduler::new(config(|c| {
        c.retry.max_retries = 0;
        c.breaker.failure_threshold = 3;
        c.breaker.recovery_timeout = Duration::from_millis(5000);
        c.breaker.half_open_max_calls = 1;
    })));
    let a = Fake::new("a", 200, &log).script(std::iter::repeat_n(Step::Fail(http(503)), 3));
    s.add_member("a", a.clone(), MemberOptions::default()).unwrap();
    for _ in 0..3 {
        assert_eq!(s.chat(req("x"), opts(&s, "x")).await.unwrap_err().error.status(), Some(503));
    }
    assert_eq!(s.circuit_state("a"), Some(CircuitState::Open));
    let rejected = s.chat(req("x"), opts(&s, "x")).await.unwrap_err();
    assert!(matches!(rejected.error, Error::CircuitOpen { retry_after_ms: 5000, .. }), "{:?}", rejected.error);
    assert_eq!(a.calls(), 3, "a rejected call never reaches the upstream");
    sleep(Duration::from_millis(2000)).await;
    // Rejections do not count as failures: the cooldown did not restart.
    let r = s.chat(req("x"), opts(&s, "x")).await.unwrap_err();
    assert!(matches!(r.error, Error::CircuitOpen { retry_after_ms: 3000, .. }), "{:?}", r.error);
    sleep(Duration::from_millis(3000)).await;
    // Half-open, one probe: the second concurrent request waits for the probe's result.
    let p1 = tokio::spawn({
        let s = s.clone();
        async move { s.chat(req("probe"), opts(&s, "p1")).await }
    });
    tokio::task::yield_now().await;
    let p2 = tokio::spawn({
        let s = s.clone();
        async move { s.chat(req("second"), opts(&s, "p2")).await }
    });
    sleep(Duration::from_millis(100)).await;
    assert_eq!(a.calls(), 4, "only the probe is in flight");
    assert!(p1.await.unwrap().is_ok());
    assert!(p2.await.unwrap().is_ok());
    assert_eq!(s.circuit_state("a"), Some(CircuitState::Closed));
    assert_eq!(s.metrics()["circuitBreakerTripCount"], 1);
}

#[tokio::test(start_paused = true)]
async fn weighted_distribution_is_exact_over_10000_requests() {
    let log = log();
    let s = Scheduler::new(config(|c| c.strategy = Strategy::Weighted));
    for (name, w) in [("a", 5.0), ("b", 3.0), ("c", 2.0)] {
        s.add_member(name, Fake::new(name, 0, &log), MemberOptions { weight: w, ..Default::default() }).unwrap();
    }
    for i in 0..10_000 {
        s.chat(req(""), opts(&s, &i.to_string())).await.unwrap();
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for l in log.lock().unwrap().iter() {
        *counts.entry(l.split(':').next().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!((counts["a"], counts["b"], counts["c"]), (5000, 3000, 2000));
    let m = s.metrics();
    assert_eq!(m["pipelines"]["a"]["successfulRequests"], 5000);
}

#[tokio::test(start_paused = true)]
async fn least_connections_sends_more_to_the_fast_member() {
    let log = log();
    let s = Arc::new(Scheduler::new(config(|c| {
        c.strategy = Strategy::LeastConnections;
        c.max_concurrent_requests = 8;
    })));
    s.add_member("slow", Fake::new("slow", 500, &log), MemberOptions::default()).unwrap();
    s.add_member("fast", Fake::new("fast", 10, &log), MemberOptions::default()).unwrap();
    let mut hs = Vec::new();
    for i in 0..400 {
        let s = s.clone();
        hs.push(tokio::spawn(async move { s.chat(req(""), opts(&s, &i.to_string())).await.is_ok() }));
    }
    for h in hs {
        assert!(h.await.unwrap());
    }
    let fast = log.lock().unwrap().iter().filter(|l| l.starts_with("fast")).count();
    assert!(fast > 300, "fast member served {fast} of 400");
}

#[tokio::test(start_paused = true)]
async fn per_member_concurrency_cap_is_respected() {
    let log = log();
    let s = Arc::new(Scheduler::new(config(|c| c.max_concurrent_requests = 10)));
    s.add_member("a", Fake::new("a", 100, &log), MemberOptions { max_concurrency: Some(2), ..Default::default() }).unwrap();
    let t0 = Instant::now();
    let hs: Vec<_> = (0..6)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.chat(req(""), opts(&s, &i.to_string())).await.is_ok() })
        })
        .collect();
    sleep(Duration::from_millis(50)).await;
    assert_eq!(s.metrics()["pipelines"]["a"]["activeRequests"], 2);
    for h in hs {
        assert!(h.await.unwrap());
    }
    assert_eq!(t0.elapsed(), Duration::from_millis(300), "three waves of two");
}

#[tokio::test(start_paused = true)]
async fn cancelling_removes_a_queued_request_at_once_and_aborts_a_running_one() {
    let log = log();
    let s = Arc::new(Scheduler::new(config(|c| c.max_concurrent_requests = 1)));
    let a = Fake::new("a", 1000, &log);
    s.add_member("a", a.clone(), MemberOptions::default()).unwrap();
    let running = opts(&s, "run");
    let run_token = running.cancel.clone();
    let r = tokio::spawn({
        let s = s.clone();
        async move { s.chat(req("run"), running).await }
    });
    tokio::task::yield_now().await;
    let queued = opts(&s, "q");
    let q_token = queued.cancel.clone();
    let q = tokio::spawn({
        let s = s.clone();
        async move { s.chat(req("q"), queued).await }
    });
    sleep(Duration::from_millis(10)).await;
    assert_eq!(s.metrics()["queueLength"], 1);
    q_token.cancel();
    let f = q.await.unwrap().unwrap_err();
    assert!(matches!(f.error, Error::Cancelled { .. }));
    assert_eq!(s.metrics()["queueLength"], 0);
    let t0 = Instant::now();
    run_token.cancel();
    let f = r.await.unwrap().unwrap_err();
    assert!(matches!(f.error, Error::Cancelled { .. }));
    assert!(t0.elapsed() < Duration::from_millis(5));
    assert_eq!(a.calls(), 1, "the cancelled queued request never ran");
    assert_eq!(s.circuit_state("a"), Some(CircuitState::Closed));
    assert_eq!(s.metrics()["pipelines"]["a"]["consecutiveFailures"], 0, "cancellations do not feed the breaker");
}

#[tokio::test(start_paused = true)]
async fn stream_fails_over_before_the_first_chunk() {
    let log = log();
    let s = Scheduler::new(config(|_| {}));
    s.add_member("a", Fake::new("a", 5, &log).script([Step::Fail(http(503))]), MemberOptions::default()).unwrap();
    s.add_member("b", Fake::new("b", 5, &log), MemberOptions::default()).unwrap();
    let mut st = s.stream(req("x"), opts(&s, "x"));
    let mut text = String::new();
    while let Some(c) = st.next().await {
        text.push_str(c.unwrap().content().unwrap());
    }
    assert_eq!(text, "b0 b1 b2 ");
    assert_eq!(st.route().map(|r| &*r.pipeline_id), Some("b"));
    assert_eq!(*log.lock().unwrap(), ["a:x", "b:x"]);
}

#[tokio::test(start_paused = true)]
async fn a_mid_stream_failure_is_a_stream_error_with_what_was_received() {
    let log = log();
    let s = Scheduler::new(config(|_| {}));
    s.add_member("a", Fake::new("a", 5, &log).script([Step::Chunks(2, Some(Error::Connection { message: "reset".into() }))]), MemberOptions::default())
        .unwrap();
    s.add_member("b", Fake::new("b", 5, &log), MemberOptions::default()).unwrap();
    let mut st = s.stream(req("x"), opts(&s, "x"));
    let mut got = Vec::new();
    let err = loop {
        match st.next().await {
            Some(Ok(c)) => got.push(c.content().unwrap().to_string()),
            Some(Err(e)) => break e,
            None => panic!("silent truncation"),
        }
    };
    assert_eq!(got, ["a0 ", "a1 "]);
    match err {
        Error::Stream { partial: Some(p), message } => {
            assert_eq!(p["choices"][0]["message"]["content"], "a0 a1 ");
            assert!(message.contains("after 2 chunks"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(log.lock().unwrap().len(), 1, "no retry after the first chunk");
    assert_eq!(s.metrics()["failedRequests"], 1);
}

#[tokio::test(start_paused = true)]
async fn update_config_raises_the_limit_without_dropping_queued_work() {
    let log = log();
    let s = Arc::new(Scheduler::new(config(|c| c.max_concurrent_requests = 1)));
    s.add_member("a", Fake::new("a", 1000, &log), MemberOptions::default()).unwrap();
    let t0 = Instant::now();
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.chat(req(""), opts(&s, &i.to_string())).await.is_ok() })
        })
        .collect();
    sleep(Duration::from_millis(10)).await;
    assert_eq!(s.metrics()["queueLength"], 3);
    s.update_config(config(|c| c.max_concurrent_requests = 4));
    assert_eq!(s.metrics()["queueLength"], 0);
    for h in hs {
        assert!(h.await.unwrap());
    }
    assert_eq!(t0.elapsed(), Duration::from_millis(1010));
    assert_eq!(log.lock().unwrap().len(), 4, "each ran exactly once");
}

#[tokio::test(start_paused = true)]
async fn destroy_rejects_queued_and_running_work() {
    let log = log();
    let s = Arc::new(Scheduler::new(config(|c| c.max_concurrent_requests = 1)));
    s.add_member("a", Fake::new("a", 1000, &log), MemberOptions::default()).unwrap();
    let hs: Vec<_> = (0..3)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.chat(req(""), opts(&s, &i.to_string())).await })
        })
        .collect();
    sleep(Duration::from_millis(10)).await;
    s.destroy();
    for h in hs {
        let f = h.await.unwrap().unwrap_err();
        assert_eq!(f.error, Error::Cancelled { message: "The scheduler was destroyed".into() });
    }
    let f = s.chat(req(""), opts(&s, "late")).await.unwrap_err();
    assert!(matches!(f.error, Error::Cancelled { .. }));
}

#[tokio::test(start_paused = true)]
async fn no_members_and_disabled_members() {
    let s = Scheduler::new(config(|_| {}));
    let f = s.chat(req(""), opts(&s, "x")).await.unwrap_err();
    assert_eq!(f.error.to_string(), "No available pipelines for request execution");
    let log = log();
    s.add_member("a", Fake::new("a", 0, &log), MemberOptions::default()).unwrap();
    assert!(s.update_member("a", |o| o.enabled = false));
    assert!(matches!(s.chat(req(""), opts(&s, "x")).await.unwrap_err().error, Error::NoAvailablePipeline { .. }));
    s.update_member("a", |o| o.enabled = true);
    assert!(s.chat(req(""), opts(&s, "x")).await.is_ok());
    assert!(s.add_member("a", Fake::new("a", 0, &log), MemberOptions::default()).is_err(), "duplicate id");
    assert!(s.remove_member("a"));
    assert!(!s.remove_member("a"));
}

#[tokio::test(start_paused = true)]
async fn health_checks_feed_the_breakers() {
    let log = log();
    let s = Scheduler::new(config(|c| {
        c.breaker.failure_threshold = 2;
        c.health_check_interval = Some(Duration::from_millis(1000));
    }));
    let a = Fake::new("a", 0, &log);
    *a.healthy.lock().unwrap() = HealthStatus::Unhealthy;
    s.add_member("a", a.clone(), MemberOptions::default()).unwrap();
    s.add_member("b", Fake::new("b", 0, &log), MemberOptions::default()).unwrap();
    assert_eq!(s.metrics()["lastHealthCheck"], Value::Null);
    sleep(Duration::from_millis(2100)).await;
    assert_eq!(s.circuit_state("a"), Some(CircuitState::Open));
    assert_eq!(s.circuit_state("b"), Some(CircuitState::Closed));
    assert!(s.metrics()["lastHealthCheck"].is_u64());
    let h = s.health();
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["details"]["healthyPipelines"], 1);
    s.destroy();
}

#[tokio::test(start_paused = true)]
async fn custom_strategy_chooses_and_bad_answers_are_typed() {
    struct Last;
    impl CustomStrategy for Last {
        fn select(&self, candidates: Value) -> BoxFuture<Result<Option<String>>> {
            let id = candidates.as_array().and_then(|a| a.last()).and_then(|c| c["id"].as_str()).map(String::from);
            Box::pin(async move { Ok(id) })
        }
    }
    struct Nobody;
    impl CustomStrategy for Nobody {
        fn select(&self, _: Value) -> BoxFuture<Result<Option<String>>> {
            Box::pin(async { Ok(Some("ghost".into())) })
        }
    }
    let log = log();
    let s = Scheduler::new(config(|_| {}));
    s.register_strategy("last", Arc::new(Last)).unwrap();
    s.register_strategy("nobody", Arc::new(Nobody)).unwrap();
    assert!(s.register_strategy("weighted", Arc::new(Last)).is_err());
    for n in ["a", "b", "c"] {
        s.add_member(n, Fake::new(if n == "a" { "a" } else if n == "b" { "b" } else { "c" }, 0, &log), MemberOptions::default()).unwrap();
    }
    s.update_config(config(|c| c.strategy = Strategy::Custom("last".into())));
    for _ in 0..3 {
        assert_eq!(&*s.chat(req(""), opts(&s, "x")).await.unwrap().route.pipeline_id, "c");
    }
    s.update_config(config(|c| c.strategy = Strategy::Custom("nobody".into())));
    let f = s.chat(req(""), opts(&s, "x")).await.unwrap_err();
    assert_eq!(f.error.to_string(), "Custom strategy 'nobody' selected unknown pipeline 'ghost'");
}

/// 10,000 concurrent submissions with random failures, latencies and cancellations: every one
/// resolves exactly once, the counters add up, and nothing stays queued or running.
#[tokio::test(start_paused = true)]
async fn no_request_is_lost_or_resolved_twice() {
    let log = log();
    let s = Arc::new(Scheduler::new(config(|c| {
        c.max_concurrent_requests = 32;
        c.max_queue_size = 20_000;
        c.request_timeout = Duration::from_secs(3600);
        c.breaker.failure_threshold = 1_000_000;
        c.retry.backoff.base = Duration::from_millis(1);
    })));
    let mut rng = fastrand::Rng::with_seed(42);
    for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let steps: Vec<Step> = (0..5000)
            .map(|_| match rng.u32(..10) {
                0 => Step::Fail(http(503)),
                1 => Step::Fail(http(400)),
                2 => Step::Fail(Error::Connection { message: "reset".into() }),
                _ => Step::Ok,
            })
            .collect();
        s.add_member(name, Fake::new(name, 1 + i as u64 * 3, &log).script(steps), MemberOptions::default()).unwrap();
    }
    let resolved = Arc::new(AtomicU32::new(0));
    let mut handles = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..10_000u32 {
        let s = s.clone();
        let mut o = opts(&s, &i.to_string());
        o.priority = Priority(rng.u32(..4) as f64);
        if rng.u32(..10) == 0 {
            tokens.push((rng.u64(..200), o.cancel.clone()));
        }
        let resolved = resolved.clone();
        handles.push(tokio::spawn(async move {
            let r = s.chat(req(""), o).await;
            resolved.fetch_add(1, Ordering::SeqCst);
            r
        }));
    }
    let canceller = tokio::spawn(async move {
        tokens.sort_by_key(|(t, _)| *t);
        let t0 = Instant::now();
        for (at, token) in tokens {
            tokio::time::sleep_until(t0 + Duration::from_millis(at)).await;
            token.cancel();
        }
    });
    let (mut ok, mut failed, mut cancelled) = (0u64, 0u64, 0u64);
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(f) if matches!(f.error, Error::Cancelled { .. }) => {
                cancelled += 1;
                failed += 1
            }
            Err(_) => failed += 1,
        }
    }
    canceller.await.unwrap();
    assert_eq!(resolved.load(Ordering::SeqCst), 10_000);
    assert_eq!(ok + failed, 10_000);
    assert!(ok > 7000 && cancelled > 0, "ok {ok}, failed {failed}, cancelled {cancelled}");
    let m = s.metrics();
    assert_eq!(m["totalRequests"], 10_000);
    assert_eq!(m["successfulRequests"].as_u64(), Some(ok));
    assert_eq!(m["failedRequests"].as_u64(), Some(failed));
    assert_eq!((m["queueLength"].as_u64(), m["currentConcurrentRequests"].as_u64()), (Some(0), Some(0)));
    let in_flight: u64 = ["a", "b", "c", "d"].iter().map(|n| m["pipelines"][n]["activeRequests"].as_u64().unwrap()).sum();
    assert_eq!(in_flight, 0);
    // Each upstream call is one log line; successes ran exactly once each.
    assert!(log.lock().unwrap().len() as u64 >= ok);
    let _ = CancellationToken::new();
}

fn tracked(s: &Scheduler, io: bool) -> Arc<crate::track::Tracker> {
    let mut cfg = crate::track::TrackerConfig::default();
    if io {
        cfg.io = Some(crate::track::IoConfig::default());
    }
    let t = Arc::new(crate::track::Tracker::new(cfg));
    s.set_tracker(Some(t.clone()), "vm-1");
    t
}

fn stage_list(ctx: &Value) -> Vec<String> {
    ctx["stages"].as_array().unwrap().iter().map(|s| format!("{}:{}", s["stage"].as_str().unwrap(), s["status"].as_str().unwrap())).collect()
}

#[tokio::test(start_paused = true)]
async fn a_tracked_request_records_its_stages_once_per_attempt() {
    let log = log();
    let s = Scheduler::new(config(|c| c.strategy = Strategy::RoundRobin));
    let t = tracked(&s, true);
    s.add_member("a", Fake::new("a", 10, &log).script([Step::Fail(http(503))]), MemberOptions::default()).unwrap();
    s.add_member("b", Fake::new("b", 10, &log), MemberOptions::default()).unwrap();
    let mut r = req("x");
    r.extra.insert("metadata".into(), json!({"api_key": "sk-should-not-be-kept-1234"}));
    let done = s.chat(r, opts(&s, "r1")).await.unwrap();
    assert_eq!(done.attempts, 2);
    let ctx = t.get("r1").expect("the context is retained after completion");
    assert_eq!(
        stage_list(&ctx),
        [
            "request-init:completed",
            "queue:completed",
            "pipeline-selection:completed",
            "authentication:completed",
            "api-execution:failed",
            "pipeline-selection:completed",
            "authentication:completed",
            "api-execution:completed",
            "response-processing:completed"
        ]
    );
    assert_eq!(ctx["status"], "completed", "a request that succeeded on retry is completed");
    assert_eq!(ctx["pipelineId"], "b");
    assert_eq!(ctx["model"], "m");
    assert_eq!(ctx["operation"], "chat");
    assert!(ctx["stages"][4]["error"].as_str().unwrap().contains("503"));
    assert!(ctx["stages"].as_array().unwrap().iter().all(|s| s["duration"].as_f64().is_some()));
    let io = t.io().unwrap().entries(&crate::track::IoFilter::default());
    assert_eq!(io.len(), 1);
    assert_eq!(io[0]["operationType"], "pipeline_end");
    assert_eq!(io[0]["requestId"], "r1");
    assert_eq!(io[0]["success"], true);
    assert_eq!(io[0]["output"]["choices"][0]["message"]["content"], "b");
    assert!(!io[0].to_string().contains("sk-should-not-be-kept"));
    assert_eq!(t.statistics()["completedRequests"], 1);
}

#[tokio::test(start_paused = true)]
async fn a_queue_timeout_is_a_failed_queue_stage_and_a_failed_io_entry() {
    let log = log();
    let s = Arc::new(Scheduler::new(config(|c| c.max_concurrent_requests = 1)));
    let t = tracked(&s, true);
    s.add_member("a", Fake::new("a", 1000, &log), MemberOptions::default()).unwrap();
    let busy = tokio::spawn({
        let s = s.clone();
        async move { s.chat(req("busy"), opts(&s, "busy")).await }
    });
    tokio::task::yield_now().await;
    let mut o = opts(&s, "late");
    o.timeout = Some(Duration::from_millis(100));
    let e = s.chat(req("late"), o).await.unwrap_err();
    assert!(matches!(e.error, Error::Timeout { phase: TimeoutPhase::Queue, .. }));
    let ctx = t.get("late").unwrap();
    assert_eq!(stage_list(&ctx), ["request-init:completed", "queue:failed"]);
    assert_eq!(ctx["status"], "failed");
    let failed = t.io().unwrap().entries(&crate::track::IoFilter { success: Some(false), ..Default::default() });
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["error"]["code"], "TIMEOUT");
    busy.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_tracked_stream_times_the_first_chunk_and_the_rest() {
    let log = log();
    let s = Scheduler::new(config(|_| {}));
    let t = tracked(&s, false);
    s.add_member("a", Fake::new("a", 10, &log), MemberOptions::default()).unwrap();
    let mut stream = s.stream(req("s"), opts(&s, "s1"));
    let mut n = 0;
    while let Some(c) = stream.next().await {
        c.unwrap();
        n += 1;
    }
    assert_eq!(n, 3);
    tokio::task::yield_now().await;
    let ctx = t.get("s1").unwrap();
    assert_eq!(ctx["operation"], "streamChat");
    assert_eq!(
        stage_list(&ctx),
        ["request-init:completed", "queue:completed", "pipeline-selection:completed", "authentication:completed", "api-execution:completed", "response-processing:completed"]
    );
    assert_eq!(ctx["stages"][5]["data"]["chunks"], 3);
}

#[tokio::test(start_paused = true)]
async fn a_context_the_caller_opened_gets_the_stages_and_stays_open() {
    let log = log();
    let s = Scheduler::new(config(|_| {}));
    let t = tracked(&s, false);
    s.add_member("a", Fake::new("a", 10, &log), MemberOptions::default()).unwrap();
    t.create_context(Some("mine"), "p", "user", "chat", &Value::Null).unwrap();
    s.chat(req("x"), opts(&s, "mine")).await.unwrap();
    assert!(t.is_active("mine"), "the caller completes its own context");
    assert!(stage_list(&t.get("mine").unwrap()).contains(&"api-execution:completed".to_string()));
}

/// Answers with the model it was asked for.
struct Echo;

impl Backend for Echo {
    fn chat(&self, req: ChatRequest, _: CallOptions) -> BoxFuture<Result<Served<ChatResponse>>> {
        let model = req.model.clone().unwrap_or_default();
        Box::pin(async move { Ok(Served::direct(response(&model))) })
    }
    fn stream_chat(&self, _: ChatRequest, _: CallOptions) -> BoxFuture<Result<Served<ChunkStream>>> {
        Box::pin(async { Err(Error::cancelled()) })
    }
    fn health_check(&self) -> BoxFuture<HealthReport> {
        Box::pin(async { HealthReport { status: HealthStatus::Healthy, latency_ms: 0.0, error: None } })
    }
}

#[tokio::test(start_paused = true)]
async fn a_member_with_a_model_receives_that_model() {
    let s = Scheduler::new(config(|_| {}));
    s.add_member("fixed", Arc::new(Echo), MemberOptions { model: Some("target-model".into()), ..MemberOptions::default() }).unwrap();
    let done = s.chat(req("x"), opts(&s, "m1")).await.unwrap();
    assert_eq!(serde_json::to_value(&done.value).unwrap()["choices"][0]["message"]["content"].as_str(), Some("target-model"));
    assert!(s.patch_member("fixed", &json!({"model": "other"})).unwrap());
    let done = s.chat(req("x"), opts(&s, "m2")).await.unwrap();
    assert_eq!(serde_json::to_value(&done.value).unwrap()["choices"][0]["message"]["content"].as_str(), Some("other"));
}

#[tokio::test(start_paused = true)]
async fn a_refused_key_fails_over_only_when_asked() {
    let refused = || Error::Authentication { message: "401 invalid key".into(), status: Some(401), body: None, provider_code: None };
    for failover in [false, true] {
        let log = log();
        let s = Scheduler::new(config(|c| {
            c.strategy = Strategy::RoundRobin;
            c.retry.failover_on_member_errors = failover;
        }));
        s.add_member("key-0", Fake::new("k0", 10, &log).script([Step::Fail(refused())]), MemberOptions::default()).unwrap();
        s.add_member("key-1", Fake::new("k1", 10, &log), MemberOptions::default()).unwrap();
        let r = s.chat(req("x"), opts(&s, "r")).await;
        if failover {
            let done = r.unwrap();
            assert_eq!((done.attempts, &*done.route.pipeline_id), (2, "key-1"));
        } else {
            let f = r.unwrap_err();
            assert!(matches!(f.error, Error::Authentication { .. }));
            assert_eq!(f.attempts, 1, "an auth error is not retried by default");
        }
    }
}

/// Who served each logged call, counted, for the calls logged from `from` on.
fn served_since(log: &Arc<Mutex<Vec<String>>>, from: usize) -> HashMap<String, usize> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for l in log.lock().unwrap()[from..].iter() {
        *counts.entry(l.split(':').next().unwrap().to_string()).or_default() += 1;
    }
    counts
}

#[tokio::test(start_paused = true)]
async fn weighted_shares_stay_exact_after_a_reweight_a_removal_and_an_addition() {
    let log = log();
    let s = Scheduler::new(config(|c| c.strategy = Strategy::Weighted));
    s.add_member("a", Fake::new("a", 0, &log), MemberOptions { weight: 3.0, ..Default::default() }).unwrap();
    s.add_member("b", Fake::new("b", 0, &log), MemberOptions { weight: 1.0, ..Default::default() }).unwrap();
    let run = |n: usize| {
        let s = s.clone();
        let log = log.clone();
        async move {
            let from = log.lock().unwrap().len();
            for i in 0..n {
                s.chat(req(""), opts(&s, &i.to_string())).await.unwrap();
            }
            served_since(&log, from)
        }
    };
    let c = run(400).await;
    assert_eq!((c["a"], c["b"]), (300, 100));
    // Re-weighted mid-period: from then on every window of 3+3 picks is exact.
    run(1).await;
    assert!(s.patch_member("b", &json!({"weight": 3})).unwrap());
    let c = run(600).await;
    assert_eq!((c["a"], c["b"]), (300, 300));
    assert!(s.remove_member("a"));
    s.add_member("c", Fake::new("c", 0, &log), MemberOptions { weight: 2.0, ..Default::default() }).unwrap();
    let c = run(500).await;
    assert_eq!((c["b"], c["c"]), (300, 200));
    assert!(!c.contains_key("a"));
}

/// A call that finishes after its member (or an earlier one) was removed: the removed member's
/// count goes with it, the others' stay right, and selection keeps working on the rest.
#[tokio::test(start_paused = true)]
async fn in_flight_counts_stay_right_when_members_are_removed_during_calls() {
    for strategy in [Strategy::LeastConnections, Strategy::Weighted, Strategy::RoundRobin] {
        let log = log();
        let s = Arc::new(Scheduler::new(config(|c| {
            c.strategy = strategy.clone();
            c.max_concurrent_requests = 10;
        })));
        for n in ["a", "b", "c", "d"] {
            s.add_member(n, Fake::new(n, 100, &log), MemberOptions::default()).unwrap();
        }
        let spawn = |i: usize| {
            let s = s.clone();
            tokio::spawn(async move { s.chat(req(""), opts(&s, &i.to_string())).await.map(|c| c.route.pipeline_id) })
        };
        let hs: Vec<_> = (0..4).map(spawn).collect();
        sleep(Duration::from_millis(10)).await;
        let m = s.metrics();
        for n in ["a", "b", "c", "d"] {
            assert_eq!(m["pipelines"][n]["activeRequests"], 1, "{strategy:?} {n}");
        }
        // "a" is removed with its call in flight; "c" and "d" move down a place.
        assert!(s.remove_member("a"));
        for h in hs {
            assert!(h.await.unwrap().is_ok());
        }
        let m = s.metrics();
        assert!(m["pipelines"].get("a").is_none());
        for n in ["b", "c", "d"] {
            assert_eq!(m["pipelines"][n]["activeRequests"], 0, "{strategy:?} {n}");
            assert_eq!(m["pipelines"][n]["successfulRequests"], 1, "{strategy:?} {n}");
        }
        // Calls started before a removal and finished after it, on moved members.
        let hs: Vec<_> = (0..3).map(spawn).collect();
        sleep(Duration::from_millis(10)).await;
        assert!(s.remove_member("b"));
        let served: Vec<_> = futures_util::future::join_all(hs).await.into_iter().map(|h| h.unwrap().unwrap()).collect();
        assert!(served.iter().any(|p| &**p == "d"), "{strategy:?}: {served:?}");
        let m = s.metrics();
        for n in ["c", "d"] {
            assert_eq!(m["pipelines"][n]["activeRequests"], 0, "{strategy:?} {n}");
        }
        // The rest share the work evenly.
        let from = log.lock().unwrap().len();
        let hs: Vec<_> = (0..8).map(spawn).collect();
        for h in hs {
            assert!(h.await.unwrap().is_ok());
        }
        let c = served_since(&log, from);
        assert_eq!((c["c"], c["d"]), (4, 4), "{strategy:?}");
    }
}

/// Weighted and least-connections take members out of their index when they find them
/// ineligible; every way back (breaker half-open, calls finishing under a per-member cap,
/// re-enabling, a configuration change) must bring them back. Debug builds also check at every
/// pick that no eligible member is left out.
#[tokio::test(start_paused = true)]
async fn members_left_out_by_weighted_and_least_connections_come_back() {
    for strategy in [Strategy::Weighted, Strategy::LeastConnections] {
        let log = log();
        let s = Arc::new(Scheduler::new(config(|c| {
            c.strategy = strategy.clone();
            c.max_concurrent_requests = 4;
            c.retry.max_retries = 0;
            c.breaker.failure_threshold = 1;
            c.breaker.recovery_timeout = Duration::from_millis(1000);
        })));
        s.add_member("a", Fake::new("a", 0, &log).script([Step::Fail(http(503))]), MemberOptions::default()).unwrap();
        s.add_member("b", Fake::new("b", 0, &log), MemberOptions::default()).unwrap();
        let run = |n: usize| {
            let s = s.clone();
            let log = log.clone();
            async move {
                let from = log.lock().unwrap().len();
                for i in 0..n {
                    let _ = s.chat(req(""), opts(&s, &i.to_string())).await;
                }
                served_since(&log, from)
            }
        };
        // "a" fails once: its breaker opens, "b" serves everything.
        let c = run(10).await;
        assert_eq!((c.get("a").copied(), c["b"]), (Some(1), 9), "{strategy:?}");
        assert_eq!(s.circuit_state("a"), Some(CircuitState::Open));
        // Half-open after the cooldown: the probe succeeds and "a" is back to an even share.
        sleep(Duration::from_millis(1100)).await;
        assert_eq!(s.circuit_state("a"), Some(CircuitState::HalfOpen));
        let c = run(100).await;
        assert_eq!((c["a"], c["b"]), (50, 50), "{strategy:?}");
        // Disabled, then enabled.
        assert!(s.update_member("a", |o| o.enabled = false));
        let c = run(10).await;
        assert_eq!((c.get("a"), c["b"]), (None, 10), "{strategy:?}");
        assert!(s.update_member("a", |o| o.enabled = true));
        let c = run(10).await;
        assert_eq!((c["a"], c["b"]), (5, 5), "{strategy:?}");
        // A configuration change (the breaker switched off) with "a" open again.
        log.lock().unwrap().clear();
        let s2 = Arc::new(Scheduler::new(config(|c| {
            c.strategy = strategy.clone();
            c.retry.max_retries = 0;
            c.breaker.failure_threshold = 1;
        })));
        s2.add_member("a", Fake::new("a", 0, &log).script([Step::Fail(http(503))]), MemberOptions::default()).unwrap();
        s2.add_member("b", Fake::new("b", 0, &log), MemberOptions::default()).unwrap();
        for i in 0..4 {
            let _ = s2.chat(req(""), opts(&s2, &i.to_string())).await;
        }
        assert_eq!(s2.circuit_state("a"), Some(CircuitState::Open));
        s2.update_config(config(|c| {
            c.strategy = strategy.clone();
            c.retry.max_retries = 0;
            c.breaker.enabled = false;
        }));
        let from = log.lock().unwrap().len();
        for i in 0..10 {
            s2.chat(req(""), opts(&s2, &i.to_string())).await.unwrap();
        }
        let c = served_since(&log, from);
        assert_eq!((c["a"], c["b"]), (5, 5), "{strategy:?}");
    }
    // A member at its own cap is left out while full and back as soon as a call finishes.
    let log = log();
    let s = Arc::new(Scheduler::new(config(|c| {
        c.strategy = Strategy::LeastConnections;
        c.max_concurrent_requests = 4;
    })));
    s.add_member("a", Fake::new("a", 100, &log), MemberOptions { max_concurrency: Some(1), ..Default::default() }).unwrap();
    s.add_member("b", Fake::new("b", 100, &log), MemberOptions::default()).unwrap();
    let hs: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.chat(req(""), opts(&s, &i.to_string())).await.is_ok() })
        })
        .collect();
    for h in hs {
        assert!(h.await.unwrap());
    }
    let c = served_since(&log, 0);
    // Five waves of four: "a" takes one call per wave, "b" the other three.
    assert_eq!((c["a"], c["b"]), (5, 15));
}

#[tokio::test(start_paused = true)]
async fn switching_strategies_at_run_time_keeps_every_member_in_play() {
    let log = log();
    let s = Scheduler::new(config(|c| c.strategy = Strategy::Weighted));
    for (name, w) in [("a", 2.0), ("b", 1.0), ("c", 1.0)] {
        s.add_member(name, Fake::new(name, 0, &log), MemberOptions { weight: w, ..Default::default() }).unwrap();
    }
    let expect = |strategy: Strategy, n: usize, shares: (usize, usize, usize)| {
        s.update_config(config(|c| c.strategy = strategy.clone()));
        let s = s.clone();
        let log = log.clone();
        async move {
            let from = log.lock().unwrap().len();
            for i in 0..n {
                s.chat(req(""), opts(&s, &i.to_string())).await.unwrap();
            }
            let c = served_since(&log, from);
            assert_eq!((c["a"], c["b"], c["c"]), shares, "{strategy:?}");
        }
    };
    expect(Strategy::Weighted, 8, (4, 2, 2)).await;
    expect(Strategy::RoundRobin, 9, (3, 3, 3)).await;
    expect(Strategy::LeastConnections, 9, (3, 3, 3)).await;
    expect(Strategy::Weighted, 8, (4, 2, 2)).await;
}

// ---------------------------------------------------------------------------------------------
// Parked submissions (`submit_chat`): queued as data, started when granted.

/// Submits a chat whose outcome arrives on the returned receiver.
fn submit(s: &Scheduler, tag: &str, o: RequestOptions) -> tokio::sync::oneshot::Receiver<std::result::Result<Completed<ChatResponse>, Failure>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    s.submit_chat(req(tag), o, move |r| {
        let _ = tx.send(r);
    });
    rx
}

#[tokio::test(start_paused = true)]
async fn parked_submissions_run_in_priority_order_and_fifo_with_futures() {
    let log = log();
    let s = Scheduler::new(config(|c| c.max_concurrent_requests = 1));
    s.add_member("a", Fake::new("a", 100, &log), MemberOptions::default()).unwrap();
    let mut rxs = Vec::new();
    let plan = [("first", 50.0), ("low", 25.0), ("high-1", 75.0), ("medium", 50.0), ("high-2", 75.0), ("critical", 100.0)];
    for (tag, p) in plan {
        let mut o = opts(&s, tag);
        o.priority = Priority(p);
        rxs.push(submit(&s, tag, o));
    }
    // A future-style call queued behind them keeps its FIFO place among the parked ones.
    let mut o = opts(&s, "future-high");
    o.priority = Priority(75.0);
    let fut = tokio::spawn(s.chat(req("future-high"), o));
    for rx in rxs {
        let done = rx.await.unwrap().unwrap();
        assert_eq!(done.value.choices.len(), 1);
    }
    assert!(fut.await.unwrap().is_ok());
    let order: Vec<String> = log.lock().unwrap().clone();
    assert_eq!(order, ["a:first", "a:critical", "a:high-1", "a:high-2", "a:future-high", "a:medium", "a:low"]);
    let m = s.metrics();
    assert_eq!((m["successfulRequests"].as_u64(), m["queueLength"].as_u64(), m["currentConcurrentRequests"].as_u64()), (Some(7), Some(0), Some(0)));
}

#[tokio::test(start_paused = true)]
async fn a_parked_request_measures_its_queue_time_and_an_immediate_one_does_not() {
    let log = log();
    let s = Scheduler::new(config(|c| c.max_concurrent_requests = 1));
    s.add_member("a", Fake::new("a", 100, &log), MemberOptions::default()).unwrap();
    let first = submit(&s, "first", opts(&s, "first"));
    let second = submit(&s, "second", opts(&s, "second"));
    let first = first.await.unwrap().unwrap();
    let second = second.await.unwrap().unwrap();
    assert_eq!(first.queued, Duration::ZERO);
    assert_eq!(second.queued, Duration::from_millis(100), "waited for the first call");
}

#[tokio::test(start_paused = true)]
async fn a_parked_request_times_out_in_the_queue_without_running() {
    let log = log();
    let s = Scheduler::new(config(|c| c.max_concurrent_requests = 1));
    s.add_member("a", Fake::new("a", 1000, &log), MemberOptions::default()).unwrap();
    let running = submit(&s, "r", opts(&s, "r"));
    let mut short = opts(&s, "short");
    short.timeout = Some(Duration::from_millis(300));
    let mut shorter = opts(&s, "shorter");
    shorter.timeout = Some(Duration::from_millis(200));
    let t0 = Instant::now();
    let short = submit(&s, "short", short);
    let shorter = submit(&s, "shorter", shorter);
    let later = submit(&s, "later", opts(&s, "later"));
    let f = shorter.await.unwrap().unwrap_err();
    assert_eq!(t0.elapsed(), Duration::from_millis(200), "the earlier deadline fires first, though submitted second");
    assert!(matches!(f.error, Error::Timeout { phase: TimeoutPhase::Queue, timeout_ms: 200, .. }), "{:?}", f.error);
    let f = short.await.unwrap().unwrap_err();
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
    assert!(matches!(f.error, Error::Timeout { phase: TimeoutPhase::Queue, timeout_ms: 300, .. }), "{:?}", f.error);
    assert!(running.await.unwrap().is_ok());
    assert!(later.await.unwrap().is_ok());
    assert_eq!(*log.lock().unwrap(), ["a:r", "a:later"], "timed-out requests never ran");
    let m = s.metrics();
    assert_eq!((m["successfulRequests"].as_u64(), m["failedRequests"].as_u64(), m["queueLength"].as_u64()), (Some(2), Some(2), Some(0)));
}

#[tokio::test(start_paused = true)]
async fn parked_requests_are_bounded_and_ended_by_destroy() {
    let log = log();
    let events = Arc::new(Events::default());
    let s = Scheduler::with_events(config(|c| {
        c.max_concurrent_requests = 1;
        c.max_queue_size = 2;
    }), events.clone());
    s.add_member("a", Fake::new("a", 1000, &log), MemberOptions::default()).unwrap();
    let running = submit(&s, "r", opts(&s, "r"));
    let q1 = submit(&s, "q1", opts(&s, "q1"));
    let q2 = submit(&s, "q2", opts(&s, "q2"));
    let full = submit(&s, "q3", opts(&s, "q3")).await.unwrap().unwrap_err();
    assert!(matches!(full.error, Error::QueueFull { max_size: 2, .. }), "{:?}", full.error);
    assert_eq!(events.kinds().iter().filter(|k| **k == EventKind::RequestQueued).count(), 2);
    sleep(Duration::from_millis(10)).await;
    s.destroy();
    for rx in [running, q1, q2] {
        assert_eq!(rx.await.unwrap().unwrap_err().error, Error::Cancelled { message: "The scheduler was destroyed".into() });
    }
    let late = submit(&s, "late", opts(&s, "late")).await.unwrap().unwrap_err();
    assert!(matches!(late.error, Error::Cancelled { .. }));
    assert_eq!(*log.lock().unwrap(), ["a:r"]);
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_parked_requests_all_complete_and_a_raised_limit_starts_them() {
    let log = log();
    let s = Scheduler::new(config(|c| c.max_concurrent_requests = 4));
    s.add_member("a", Fake::new("a", 1, &log), MemberOptions::default()).unwrap();
    let rxs: Vec<_> = (0..10_000).map(|i| submit(&s, "", opts(&s, &i.to_string()))).collect();
    assert_eq!(s.metrics()["queueLength"].as_u64(), Some(9_996));
    let mut c = s.config();
    c.max_concurrent_requests = 64;
    s.update_config(c);
    assert_eq!(s.metrics()["currentConcurrentRequests"].as_u64(), Some(64), "the raised limit started parked requests at once");
    let mut ok = 0;
    for rx in rxs {
        ok += rx.await.unwrap().is_ok() as usize;
    }
    assert_eq!(ok, 10_000);
    assert_eq!(log.lock().unwrap().len(), 10_000);
    let m = s.metrics();
    assert_eq!((m["queueLength"].as_u64(), m["currentConcurrentRequests"].as_u64()), (Some(0), Some(0)));
}

/// The reader takes the upstream stream over after the first chunk (no forwarding task per
/// chunk); the scheduler's accounting still happens at the end, once.
#[tokio::test(start_paused = true)]
async fn a_handed_over_stream_is_accounted_for_once_at_its_end() {
    let log = log();
    let events = Arc::new(Events::default());
    let s = Scheduler::with_events(config(|_| {}), events.clone());
    s.add_member("a", Fake::new("a", 5, &log).script([Step::Chunks(100, None)]), MemberOptions::default()).unwrap();
    let mut st = s.stream(req("x"), opts(&s, "x"));
    let mut n = 0;
    while let Some(c) = st.next().await {
        assert_eq!(c.unwrap().content().unwrap(), format!("a{n} "));
        n += 1;
        if n == 50 {
            assert_eq!(s.metrics()["currentConcurrentRequests"], 1, "running until the reader reaches the end");
        }
    }
    assert_eq!(n, 100);
    assert!(st.next().await.is_none(), "the end stays the end");
    let m = s.metrics();
    assert_eq!((m["successfulRequests"].as_u64(), m["failedRequests"].as_u64(), m["currentConcurrentRequests"].as_u64()), (Some(1), Some(0), Some(0)));
    let completed: Vec<Value> = events.0.lock().unwrap().iter().filter(|(k, _)| *k == EventKind::RequestCompleted).map(|(_, p)| p.clone()).collect();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0]["chunks"], 100);
}

#[tokio::test(start_paused = true)]
async fn a_stream_dropped_or_cancelled_mid_way_is_accounted_for_at_once() {
    for drop_it in [true, false] {
        let log = log();
        let events = Arc::new(Events::default());
        let s = Scheduler::with_events(config(|_| {}), events.clone());
        s.add_member("a", Fake::new("a", 5, &log).script([Step::Chunks(1000, None)]), MemberOptions::default()).unwrap();
        let o = opts(&s, "x");
        let token = o.cancel.clone();
        let mut st = s.stream(req("x"), o);
        for _ in 0..3 {
            st.next().await.unwrap().unwrap();
        }
        assert_eq!(s.metrics()["currentConcurrentRequests"], 1);
        if drop_it {
            drop(st);
        } else {
            // The reader keeps the stream but stops reading (an abort while JS holds it).
            token.cancel();
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            assert!(matches!(st.next().await, Some(Err(Error::Cancelled { .. }))));
        }
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        let m = s.metrics();
        assert_eq!((m["failedRequests"].as_u64(), m["currentConcurrentRequests"].as_u64()), (Some(1), Some(0)), "drop {drop_it}");
        let failed: Vec<Value> = events.0.lock().unwrap().iter().filter(|(k, _)| *k == EventKind::RequestFailed).map(|(_, p)| p.clone()).collect();
        assert_eq!(failed.len(), 1, "drop {drop_it}");
        assert_eq!(failed[0]["error"]["code"], "CANCELLED");
        assert_eq!(m["pipelines"]["a"]["consecutiveFailures"], 0, "a cancellation does not count against the member");
    }
}

/// A Pipeline (a scheduler) inside a scheduler: the outer reader takes over the inner
/// scheduler's stream, which took over the upstream; both account for it.
#[tokio::test(start_paused = true)]
async fn nested_schedulers_hand_their_streams_over_in_turn() {
    for fail in [false, true] {
        let log = log();
        let inner = Scheduler::new(config(|_| {}));
        let end = fail.then(|| Error::Connection { message: "reset".into() });
        inner.add_member("t", Fake::new("t", 5, &log).script([Step::Chunks(40, end)]), MemberOptions::default()).unwrap();
        let outer = Scheduler::new(config(|_| {}));
        outer.add_member("p", Arc::new(inner.clone()), MemberOptions::default()).unwrap();
        let mut st = outer.stream(req("x"), opts(&outer, "x"));
        let mut text = String::new();
        let mut err = None;
        while let Some(c) = st.next().await {
            match c {
                Ok(c) => text.push_str(c.content().unwrap()),
                Err(e) => err = Some(e),
            }
        }
        let want: String = (0..40).map(|i| format!("t{i} ")).collect();
        assert_eq!(text, want);
        for s in [&inner, &outer] {
            let m = s.metrics();
            let counts = (m["successfulRequests"].as_u64(), m["failedRequests"].as_u64(), m["currentConcurrentRequests"].as_u64());
            assert_eq!(counts, if fail { (Some(0), Some(1), Some(0)) } else { (Some(1), Some(0), Some(0)) }, "fail {fail}");
        }
        match err {
            None => assert!(!fail),
            Some(Error::Stream { partial: Some(p), message }) => {
                assert!(fail);
                assert_eq!(p["choices"][0]["message"]["content"], want.as_str());
                assert!(message.contains("after 40 chunks"), "{message}");
            }
            Some(other) => panic!("{other:?}"),
        }
    }
}
