//! Engine micro benchmarks (criterion): selection, the wait queue, breaker bookkeeping, and one
//! full scheduler decision with an in-memory backend (the engine's per-request overhead
//! without HTTP or napi).
//!
//! `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 2` (add a filter such as
//! `select/` to run one group).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rcc_core::error::Error;
use rcc_core::model::{ChatMessage, ChatRequest, ChatResponse, Choice};
use rcc_core::provider::{CallOptions, ChunkStream, HealthReport, HealthStatus};
use rcc_core::schedule::balancer::{weight_units, Balancer, Candidate, Strategy};
use rcc_core::schedule::breaker::{Admission, Breaker};
use rcc_core::schedule::queue::{QueueKey, WaitQueue};
use rcc_core::schedule::{Backend, BoxFuture, BreakerConfig, MemberOptions, Priority, RequestOptions, Scheduler, SchedulerConfig, Served};

const SIZES: [usize; 3] = [10, 100, 1_000];

// ---------------------------------------------------------------------------------------------
// Selection

/// A candidate with what `Member` carries for the balancer, plus an eligibility flag.
struct Cand {
    units: i64,
    load: u32,
    ok: bool,
}

impl Candidate for Cand {
    fn weight_units(&self) -> i64 {
        self.units
    }
    fn in_flight(&self) -> u32 {
        self.load
    }
}

/// `n` eligible candidates with weights 1..=5 and, when `busy`, 1..=8 calls in flight each
/// (so least-connections has no idle candidate to stop at).
fn candidates(n: usize, busy: bool) -> Vec<Cand> {
    (0..n).map(|i| Cand { units: weight_units(1.0 + (i % 5) as f64), load: if busy { 1 + (i % 8) as u32 } else { 0 }, ok: true }).collect()
}

/// What the scheduler does per decision: `Balancer::pick` over the members (weighted and
/// least-connections keep their index in the balancer; the first pick builds it, untimed).
fn bench_select(c: &mut Criterion) {
    let mut g = c.benchmark_group("select");
    g.throughput(Throughput::Elements(1));
    let cases: [(&str, Strategy, bool); 5] = [
        ("round-robin", Strategy::RoundRobin, false),
        ("random", Strategy::Random, false),
        ("weighted", Strategy::Weighted, false),
        // Every candidate busy (loads 1..=8, unchanged between picks: ties rotate).
        ("least-connections", Strategy::LeastConnections, true),
        // Every candidate idle.
        ("least-connections-idle", Strategy::LeastConnections, false),
    ];
    for (name, strategy, busy) in cases {
        for n in SIZES {
            let items = candidates(n, busy);
            let mut b = Balancer::with_seed(42);
            b.pick(&strategy, &items, |_, c| c.ok);
            g.bench_with_input(BenchmarkId::new(name, n), &n, |bench, _| {
                bench.iter(|| black_box(b.pick(black_box(&strategy), &items, |_, c| c.ok)))
            });
        }
    }
    // 90% of the candidates ineligible (open breakers, full): round-robin and random walk past
    // them; weighted and least-connections park them when first met (until the scheduler says
    // they changed), so they cost nothing afterwards.
    let sparse: [(&str, Strategy); 4] = [
        ("round-robin-10pct-eligible", Strategy::RoundRobin),
        ("random-10pct-eligible", Strategy::Random),
        ("weighted-10pct-eligible", Strategy::Weighted),
        ("least-connections-10pct-eligible", Strategy::LeastConnections),
    ];
    for (name, strategy) in sparse {
        for n in SIZES {
            let mut items = candidates(n, strategy == Strategy::LeastConnections);
            for (i, c) in items.iter_mut().enumerate() {
                c.ok = i % 10 == 0;
            }
            let mut b = Balancer::with_seed(42);
            for _ in 0..n {
                b.pick(&strategy, &items, |_, c| c.ok);
            }
            g.bench_with_input(BenchmarkId::new(name, n), &n, |bench, _| {
                bench.iter(|| black_box(b.pick(black_box(&strategy), &items, |_, c| c.ok)))
            });
        }
    }
    // The in-flight bookkeeping least-connections now does outside the pick: one load change
    // told to the balancer (a call starting or finishing).
    for n in SIZES {
        let mut items = candidates(n, true);
        let mut b = Balancer::with_seed(42);
        b.pick(&Strategy::LeastConnections, &items, |_, c| c.ok);
        let mut i = 0usize;
        let mut up = true;
        g.bench_with_input(BenchmarkId::new("in-flight-update", n), &n, |bench, _| {
            bench.iter(|| {
                i = (i + 7) % n;
                if up {
                    items[i].load += 1;
                } else {
                    items[i].load -= 1;
                }
                up = !up;
                b.changed(black_box(i), &items[i]);
            })
        });
    }
    // A whole call as the balancer sees it under least-connections with every member busy:
    // the pick, the call starting on it, and one finishing elsewhere (loads stay put).
    for n in SIZES {
        let mut items = candidates(n, true);
        let mut b = Balancer::with_seed(42);
        b.pick(&Strategy::LeastConnections, &items, |_, c| c.ok);
        let mut j = 0usize;
        g.bench_with_input(BenchmarkId::new("least-connections-call", n), &n, |bench, _| {
            bench.iter(|| {
                let i = b.pick(&Strategy::LeastConnections, &items, |_, c| c.ok).expect("eligible");
                items[i].load += 1;
                b.changed(i, &items[i]);
                // A call finishes on the busiest-but-one candidate in a rotation, so the loads
                // do not drift.
                j = (j + 1) % n;
                let k = if items[j].load > 1 { j } else { i };
                items[k].load -= 1;
                b.changed(k, &items[k]);
                i
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Wait queue

const QUEUE_SIZES: [usize; 3] = [1_000, 10_000, 100_000];
/// Operations timed per batch; the queue stays within 0.1–1% of its nominal size.
const BATCH: usize = 100;

fn prio(i: u64) -> Priority {
    // Four named levels plus occasional numeric ones, like real traffic.
    match i % 5 {
        0 => Priority::LOW,
        1 => Priority::MEDIUM,
        2 => Priority::HIGH,
        3 => Priority::CRITICAL,
        _ => Priority((i % 97) as f64),
    }
}

/// The scheduler queues `oneshot::Sender<()>` (one pointer); a `u64` payload is the same size.
fn filled(n: usize) -> (WaitQueue<u64>, Vec<QueueKey>) {
    let mut q = WaitQueue::default();
    let keys = (0..n as u64).map(|i| q.push(prio(i.wrapping_mul(0x9E37_79B9)), i)).collect();
    (q, keys)
}

fn bench_queue(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue");
    g.throughput(Throughput::Elements(1));
    for n in QUEUE_SIZES {
        // push: timed pushes of a batch, untimed removal of what was pushed.
        let (mut q, _) = filled(n);
        let mut seq = n as u64;
        g.bench_with_input(BenchmarkId::new("push", n), &n, |bench, _| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                let mut keys = Vec::with_capacity(BATCH);
                while left > 0 {
                    let k = left.min(BATCH as u64);
                    let t = Instant::now();
                    for _ in 0..k {
                        seq += 1;
                        keys.push(q.push(prio(seq), black_box(seq)));
                    }
                    total += t.elapsed();
                    for key in keys.drain(..) {
                        q.remove(key);
                    }
                    left -= k;
                }
                total
            })
        });

        // pop: timed pops of a batch (the head: highest priority, oldest), untimed refill.
        let (mut q, _) = filled(n);
        g.bench_with_input(BenchmarkId::new("pop", n), &n, |bench, _| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(BATCH as u64);
                    let t = Instant::now();
                    for _ in 0..k {
                        black_box(q.pop());
                    }
                    total += t.elapsed();
                    for _ in 0..k {
                        seq += 1;
                        q.push(prio(seq), seq);
                    }
                    left -= k;
                }
                total
            })
        });

        // remove from the middle (a waiter that timed out or was cancelled): timed removal of a
        // batch of keys spread over the queue, untimed re-insertion.
        let (mut q, mut keys) = filled(n);
        let mut cursor = 0usize;
        let stride = 7919; // prime: walks every position over time
        g.bench_with_input(BenchmarkId::new("remove-middle", n), &n, |bench, _| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                let mut picked = Vec::with_capacity(BATCH);
                while left > 0 {
                    let k = left.min(BATCH as u64) as usize;
                    picked.clear();
                    for _ in 0..k {
                        cursor = (cursor + stride) % keys.len();
                        picked.push(cursor);
                    }
                    picked.sort_unstable();
                    picked.dedup();
                    let t = Instant::now();
                    for &i in &picked {
                        black_box(q.remove(keys[i]));
                    }
                    total += t.elapsed();
                    for &i in &picked {
                        seq += 1;
                        keys[i] = q.push(prio(seq), seq);
                    }
                    left -= picked.len() as u64;
                }
                total
            })
        });
        assert!((q.len() as isize - n as isize).abs() <= BATCH as isize);
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Breaker

fn bench_breaker(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker");
    g.throughput(Throughput::Elements(1));
    let cfg = BreakerConfig::default();
    let now = tokio::time::Instant::now();

    // What the scheduler does per successful call on a closed breaker: refresh (per member per
    // decision), can_admit (eligibility), admit (lease), on_success (finish).
    let mut b = Breaker::default();
    g.bench_function("closed-call-success", |bench| {
        bench.iter(|| {
            b.refresh(black_box(now), &cfg);
            let ok = b.can_admit(&cfg);
            let a = b.admit(&cfg);
            black_box(b.on_success(a));
            ok
        })
    });

    // A failing call that does not trip it (threshold 5; a success every 4th call resets it).
    let mut b = Breaker::default();
    let mut i = 0u32;
    g.bench_function("closed-call-failure", |bench| {
        bench.iter(|| {
            i = i.wrapping_add(1);
            b.refresh(black_box(now), &cfg);
            let a = b.admit(&cfg);
            if i % 4 == 0 {
                black_box(b.on_success(a))
            } else {
                black_box(b.on_failure(now, &cfg, a, None))
            }
        })
    });

    // refresh alone: closed (the common case) and open-not-yet-due.
    let mut b = Breaker::default();
    g.bench_function("refresh-closed", |bench| bench.iter(|| black_box(b.refresh(black_box(now), &cfg))));
    let mut open = Breaker::default();
    for _ in 0..cfg.failure_threshold {
        let a = open.admit(&cfg);
        open.on_failure(now, &cfg, a, None);
    }
    g.bench_function("refresh-open", |bench| bench.iter(|| black_box(open.refresh(black_box(now), &cfg))));

    // A whole trip cycle: threshold failures → open → refresh past the cooldown → half-open →
    // a probe succeeds → closed. Reported per cycle (failure_threshold + 3 operations).
    let mut b = Breaker::default();
    let later = now + cfg.recovery_timeout;
    g.bench_function("trip-cycle", |bench| {
        bench.iter(|| {
            for _ in 0..cfg.failure_threshold {
                let a = b.admit(&cfg);
                b.on_failure(now, &cfg, a, None);
            }
            b.refresh(later, &cfg);
            let p = b.admit(&cfg);
            debug_assert_eq!(p, Admission::Probe);
            black_box(b.on_success(p))
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// One full scheduler decision, in memory

/// Answers every chat at once with a fixed response.
struct Instant200 {
    response: ChatResponse,
}

impl Backend for Instant200 {
    fn chat(&self, _req: ChatRequest, _opts: CallOptions) -> BoxFuture<rcc_core::Result<Served<ChatResponse>>> {
        let r = self.response.clone();
        Box::pin(async move { Ok(Served::direct(r)) })
    }
    fn stream_chat(&self, _req: ChatRequest, _opts: CallOptions) -> BoxFuture<rcc_core::Result<Served<ChunkStream>>> {
        Box::pin(async { Err(Error::Internal { message: "not used by the benchmark".into() }) })
    }
    fn health_check(&self) -> BoxFuture<HealthReport> {
        Box::pin(async { HealthReport { status: HealthStatus::Healthy, latency_ms: 0.0, error: None } })
    }
}

fn bench_decision(c: &mut Criterion) {
    let mut g = c.benchmark_group("decision");
    g.throughput(Throughput::Elements(1));
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let response = ChatResponse {
        id: "chatcmpl-bench".into(),
        object: "chat.completion".into(),
        created: 1,
        model: "gpt-4o-mini".into(),
        choices: vec![Choice { message: ChatMessage { role: "assistant".into(), ..Default::default() }, finish_reason: Some("stop".into()), ..Default::default() }],
        ..Default::default()
    };
    let request = ChatRequest {
        model: Some("gpt-4o-mini".into()),
        messages: vec![ChatMessage { role: "user".into(), ..Default::default() }],
        ..Default::default()
    };
    // The floor under every case below: the same call straight to the backend, on the same
    // runtime, with no scheduler (block_on, the request clone, the boxed future, the response).
    {
        let backend: Arc<dyn Backend> = Arc::new(Instant200 { response: response.clone() });
        g.bench_function("backend-direct", |bench| {
            bench.iter(|| {
                let b = backend.clone();
                let req = request.clone();
                let done = rt.block_on(async move { b.chat(req, CallOptions::default()).await });
                black_box(done.expect("in-memory backend never fails").value.choices.len())
            })
        });
    }
    let cases: [(&str, Strategy, usize); 6] = [
        ("round-robin", Strategy::RoundRobin, 1),
        ("round-robin", Strategy::RoundRobin, 10),
        ("round-robin", Strategy::RoundRobin, 1_000),
        ("random", Strategy::Random, 1_000),
        ("weighted", Strategy::Weighted, 1_000),
        ("least-connections", Strategy::LeastConnections, 1_000),
    ];
    for (name, strategy, members) in cases {
        let sched = Scheduler::new(SchedulerConfig { strategy: strategy.clone(), ..SchedulerConfig::default() });
        let backend: Arc<dyn Backend> = Arc::new(Instant200 { response: response.clone() });
        for i in 0..members {
            sched.add_member(&format!("p{i}"), backend.clone(), MemberOptions { weight: 1.0 + (i % 5) as f64, ..MemberOptions::default() }).expect("add_member");
        }
        let request_id: Arc<str> = "req_bench".into();
        g.bench_with_input(BenchmarkId::new(name, members), &members, |bench, _| {
            bench.iter(|| {
                let opts = RequestOptions {
                    request_id: request_id.clone(),
                    priority: Priority::MEDIUM,
                    timeout: None,
                    max_retries: None,
                    cancel: sched.request_token(),
                    nested: false,
                };
                let done = rt.block_on(sched.chat(request.clone(), opts));
                black_box(done.expect("in-memory backend never fails").attempts)
            })
        });
        sched.destroy();
    }
    g.finish();
}

criterion_group!(benches, bench_select, bench_queue, bench_breaker, bench_decision);
criterion_main!(benches);
