//! One thing the scheduler can route to (a provider or a pipeline) and its live state.

use std::sync::Arc;

use serde_json::{json, Value};

use super::backend::Backend;
use super::balancer::{weight_units, Candidate};
use super::breaker::Breaker;
use super::config::BreakerConfig;
use super::metrics::{round3, RequestStats};
use crate::provider::HealthStatus;

#[derive(Debug, Clone, PartialEq)]
pub struct MemberOptions {
    pub weight: f64,
    /// Calls allowed in flight on this member at once; unlimited when `None`.
    pub max_concurrency: Option<u32>,
    pub enabled: bool,
    /// Sent as the request's `model` (a virtual model's target model); the caller's when `None`.
    pub model: Option<Arc<str>>,
}

impl MemberOptions {
    /// `{weight?, maxConcurrentRequests?, enabled?, model?}` as JS passes it.
    pub fn from_value(v: &Value) -> crate::error::Result<Self> {
        let mut o = MemberOptions::default();
        let Value::Object(obj) = v else { return Ok(o) };
        let f = crate::validate::Fields::new(obj, "");
        if let Some(w) = f.number_at_least("weight", 0.0)? {
            o.weight = w;
        }
        if let Some(n) = f.positive_int("maxConcurrentRequests")? {
            o.max_concurrency = Some(n.min(u32::MAX as u64) as u32);
        }
        if let Some(e) = f.bool("enabled")? {
            o.enabled = e;
        }
        if let Some(m) = f.string("model")? {
            o.model = Some(m.into());
        }
        Ok(o)
    }
}

impl Default for MemberOptions {
    fn default() -> Self {
        MemberOptions { weight: 1.0, max_concurrency: None, enabled: true, model: None }
    }
}

pub(crate) struct Member {
    /// Unique for the scheduler's lifetime (ids can be re-registered after removal).
    pub uid: u64,
    pub id: Arc<str>,
    pub backend: Arc<dyn Backend>,
    pub options: MemberOptions,
    units: i64,
    /// Calls in flight. The scheduler tells its balancer after every change (and after any
    /// change that may make the member eligible again: breaker, options, configuration).
    pub in_flight: u32,
    pub breaker: Breaker,
    pub stats: RequestStats,
    pub health: Option<HealthStatus>,
    pub last_used_ms: u64,
    /// Whether the last finished call succeeded (`None` before any).
    pub last_ok: Option<bool>,
}

impl Member {
    pub fn new(uid: u64, id: Arc<str>, backend: Arc<dyn Backend>, options: MemberOptions) -> Self {
        Member {
            uid,
            id,
            backend,
            units: weight_units(options.weight),
            options,
            in_flight: 0,
            breaker: Breaker::default(),
            stats: RequestStats::default(),
            health: None,
            last_used_ms: 0,
            last_ok: None,
        }
    }

    pub fn set_options(&mut self, options: MemberOptions) {
        self.units = weight_units(options.weight);
        self.options = options;
    }

    pub fn has_capacity(&self) -> bool {
        self.options.max_concurrency.is_none_or(|m| self.in_flight < m)
    }

    /// Enabled, breaker admits, below its own concurrency cap.
    pub fn eligible(&self, breaker: &BreakerConfig) -> bool {
        self.options.enabled && self.has_capacity() && self.breaker.can_admit(breaker)
    }

    /// The `PipelineInfo` handed to custom strategies and listed in metrics.
    pub fn info(&self) -> Value {
        json!({
            "id": &*self.id,
            "weight": self.options.weight,
            "enabled": self.options.enabled,
            "activeRequests": self.in_flight,
            "maxConcurrentRequests": self.options.max_concurrency,
            "totalRequests": self.stats.total,
            "successfulRequests": self.stats.succeeded,
            "failedRequests": self.stats.failed,
            "errorRate": round3(self.stats.error_rate()),
            "averageResponseTime": round3(self.stats.response_times.mean_ms()),
            "circuitState": self.breaker.state().as_str(),
            "healthStatus": self.health.map(|h| h.as_str()).unwrap_or("unknown"),
        })
    }

    pub fn metrics(&self) -> Value {
        let mut m = self.stats.to_json();
        let o = m.as_object_mut().expect("object");
        o.insert("activeRequests".into(), self.in_flight.into());
        o.insert("weight".into(), self.options.weight.into());
        o.insert("enabled".into(), self.options.enabled.into());
        o.insert("circuitState".into(), self.breaker.state().as_str().into());
        o.insert("consecutiveFailures".into(), self.breaker.consecutive_failures().into());
        o.insert("circuitBreakerTripCount".into(), self.breaker.trips().into());
        o.insert("healthStatus".into(), self.health.map(|h| h.as_str()).unwrap_or("unknown").into());
        o.insert("lastUsed".into(), self.last_used_ms.into());
        o.insert("lastOutcome".into(), self.last_ok.map(|ok| if ok { "success" } else { "failure" }).into());
        m
    }
}

impl Candidate for Member {
    fn weight_units(&self) -> i64 {
        self.units
    }
    fn in_flight(&self) -> u32 {
        self.in_flight
    }
}
