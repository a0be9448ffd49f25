//! Request statistics: counters, a bounded log-linear latency histogram (percentiles within
//! ~3% using 4 KB, whatever the traffic) and a sliding one-minute throughput window. Every
//! derived figure is finite: an empty histogram reports 0, not NaN.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

/// Sub-buckets per power of two (2^5 = 32 → relative error ≤ 1/64 around the midpoint).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Microseconds up to 2^40 (~12.7 days); larger values land in the last bucket.
const MAX_EXP: usize = 40;
const BUCKETS: usize = (MAX_EXP + 1) * SUB;

#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u32]>,
    total: u64,
    sum_us: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS].into_boxed_slice(), total: 0, sum_us: 0 }
    }
}

impl Histogram {
    fn index(us: u64) -> usize {
        if us < SUB as u64 {
            return us as usize;
        }
        let exp = 63 - us.leading_zeros(); // ≥ SUB_BITS
        let mantissa = (us >> (exp - SUB_BITS)) as usize & (SUB - 1);
        (((exp - SUB_BITS + 1) as usize) * SUB + mantissa).min(BUCKETS - 1)
    }

    /// The midpoint of a bucket, in microseconds.
    fn value_of(index: usize) -> f64 {
        if index < SUB {
            return index as f64;
        }
        let exp = (index / SUB) as u32 + SUB_BITS - 1;
        let mantissa = (index % SUB) as u64;
        let low = (1u64 << exp) + (mantissa << (exp - SUB_BITS));
        let width = 1u64 << (exp - SUB_BITS);
        low as f64 + width as f64 / 2.0
    }

    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let i = Self::index(us);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.total += 1;
        self.sum_us += us as u128;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn mean_ms(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.total as f64 / 1000.0
        }
    }

    /// The `q`-quantile (0..=1) in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c as u64;
            if seen >= rank {
                return Self::value_of(i) / 1000.0;
            }
        }
        Self::value_of(BUCKETS - 1) / 1000.0
    }
}

/// Completions per second over the last minute, in one-second slots.
#[derive(Clone)]
pub struct Throughput {
    slots: [u32; 60],
    second_of_slot: [u64; 60],
    origin: Instant,
}

impl Throughput {
    pub fn new(origin: Instant) -> Self {
        Throughput { slots: [0; 60], second_of_slot: [u64::MAX; 60], origin }
    }

    pub fn record(&mut self, now: Instant) {
        let sec = now.saturating_duration_since(self.origin).as_secs();
        let i = (sec % 60) as usize;
        if self.second_of_slot[i] != sec {
            self.second_of_slot[i] = sec;
            self.slots[i] = 0;
        }
        self.slots[i] = self.slots[i].saturating_add(1);
    }

    /// Requests per second over the last minute (or since the start, when younger).
    pub fn per_second(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.origin);
        let sec = elapsed.as_secs();
        let window_start = sec.saturating_sub(59);
        let n: u64 = (0..60).filter(|&i| self.second_of_slot[i] != u64::MAX && self.second_of_slot[i] >= window_start).map(|i| self.slots[i] as u64).sum();
        let span = elapsed.as_secs_f64().clamp(1.0, 60.0);
        n as f64 / span
    }
}

/// Outcome counters shared by the scheduler and each of its pipelines.
#[derive(Clone, Default)]
pub struct RequestStats {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub response_times: Histogram,
}

impl RequestStats {
    pub fn error_rate(&self) -> f64 {
        let done = self.succeeded + self.failed;
        if done == 0 {
            0.0
        } else {
            self.failed as f64 / done as f64
        }
    }

    pub fn record(&mut self, ok: bool, elapsed: Duration) {
        self.total += 1;
        if ok {
            self.succeeded += 1;
            self.response_times.record(elapsed);
        } else {
            self.failed += 1;
        }
    }

    /// The counters as the camelCase fields of SchedulerMetrics / PipelineMetrics.
    pub fn to_json(&self) -> Value {
        json!({
            "totalRequests": self.total,
            "successfulRequests": self.succeeded,
            "failedRequests": self.failed,
            "averageResponseTime": round3(self.response_times.mean_ms()),
            "p50ResponseTime": round3(self.response_times.quantile_ms(0.50)),
            "p95ResponseTime": round3(self.response_times.quantile_ms(0.95)),
            "p99ResponseTime": round3(self.response_times.quantile_ms(0.99)),
            "errorRate": round3(self.error_rate()),
        })
    }
}

pub fn round3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_close_and_empty_is_zero() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_ms(0.5), 0.0);
        assert_eq!(h.mean_ms(), 0.0);
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        for (q, want) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = h.quantile_ms(q);
            assert!((got - want).abs() / want < 0.03, "q{q}: {got} vs {want}");
        }
        assert!((h.mean_ms() - 500.5).abs() < 1e-9);
        h.record(Duration::from_secs(86400 * 365));
        assert!(h.quantile_ms(1.0).is_finite());
    }

    #[test]
    fn bucket_midpoints_are_monotonic() {
        let mut prev = -1.0;
        for i in 0..BUCKETS {
            let v = Histogram::value_of(i);
            assert!(v > prev, "bucket {i}");
            prev = v;
        }
        for us in [0u64, 1, 31, 32, 33, 1000, 123_456, 1 << 39] {
            let v = Histogram::value_of(Histogram::index(us));
            assert!((v - us as f64).abs() <= (us as f64 / 32.0).max(0.5), "{us} → {v}");
        }
    }

    #[test]
    fn throughput_window() {
        let t0 = Instant::now();
        let mut t = Throughput::new(t0);
        for i in 0..120u64 {
            t.record(t0 + Duration::from_millis(i * 500));
        }
        // 120 completions over 60 s; the window holds the last ~60 s = ~120 of them... at 2/s.
        let rate = t.per_second(t0 + Duration::from_secs(60));
        assert!((rate - 2.0).abs() < 0.1, "{rate}");
        assert_eq!(Throughput::new(t0).per_second(t0), 0.0);
        let stats = RequestStats::default();
        assert_eq!(stats.error_rate(), 0.0);
    }
}
