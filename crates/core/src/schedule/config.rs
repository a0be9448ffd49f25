//! Scheduler configuration, as it arrives from JS. Both spellings are accepted: the README's
//! nested form (`circuitBreaker: {...}`, `retry: {...}`) and the original `SchedulerConfig`'s
//! flat form (`enableCircuitBreaker`, `circuitBreakerThreshold`, `circuitBreakerTimeout`,
//! `retryStrategy`). Every bad value is a `ValidationError` naming its path.

use std::time::Duration;

use serde_json::{Map, Value};

use super::backoff::Backoff;
use super::balancer::Strategy;
use crate::error::{Error, Result};
use crate::validate::{invalid, Fields};

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    pub enabled: bool,
    /// Consecutive counted failures that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit stays open (longer when the upstream sent `Retry-After`).
    pub recovery_timeout: Duration,
    /// Probes let through while half-open.
    pub half_open_max_calls: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { enabled: true, failure_threshold: 5, recovery_timeout: Duration::from_millis(60_000), half_open_max_calls: 1 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    pub max_retries: u32,
    pub backoff: Backoff,
    /// Also fail over on errors that are not retryable in general but say this member is in
    /// trouble (a refused API key: another key may work). Used for API-key rotation.
    pub failover_on_member_errors: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { max_retries: 2, backoff: Backoff::default(), failover_on_member_errors: false }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    pub max_concurrent_requests: usize,
    /// Default deadline of a request, from scheduling to its answer.
    pub request_timeout: Duration,
    pub strategy: Strategy,
    pub breaker: BreakerConfig,
    pub retry: RetryConfig,
    pub max_queue_size: usize,
    /// Period of the background health checks; none when unset.
    pub health_check_interval: Option<Duration>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_concurrent_requests: 10,
            request_timeout: Duration::from_millis(30_000),
            strategy: Strategy::RoundRobin,
            breaker: BreakerConfig::default(),
            retry: RetryConfig::default(),
            max_queue_size: 10_000,
            health_check_interval: None,
        }
    }
}

/// Largest accepted limits, to keep a typo from allocating the machine away.
const MAX_CONCURRENCY: u64 = 1_000_000;
const MAX_QUEUE: u64 = 100_000_000;
const MAX_RETRIES: u64 = 100;

impl SchedulerConfig {
    /// `is_custom(name)` tells whether a custom strategy of that name is registered.
    pub fn from_json(text: &str, is_custom: &dyn Fn(&str) -> bool) -> Result<Self> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::validation("config", format!("config is not valid JSON: {e}")))?;
        match v {
            Value::Null => Ok(Self::default()),
            Value::Object(o) => Self::from_object(&o, is_custom),
            other => Err(invalid("config", "an object", Some(&other))),
        }
    }

    /// `is_custom(name)` tells whether a custom strategy of that name is registered.
    pub fn from_object(obj: &Map<String, Value>, is_custom: &dyn Fn(&str) -> bool) -> Result<Self> {
        let f = Fields::new(obj, "");
        let mut c = SchedulerConfig::default();
        if let Some(n) = f.positive_int("maxConcurrentRequests")? {
            c.max_concurrent_requests = bounded(n, MAX_CONCURRENCY, "maxConcurrentRequests")? as usize;
        }
        if let Some(d) = f.millis("requestTimeout")? {
            c.request_timeout = d;
        }
        if let Some(n) = f.positive_int("maxQueueSize")? {
            c.max_queue_size = bounded(n, MAX_QUEUE, "maxQueueSize")? as usize;
        }
        if let Some(d) = f.millis("healthCheckInterval")? {
            c.health_check_interval = Some(d);
        }

        let lb = f.object("loadBalancer")?;
        let strategy = match f.string("loadBalancingStrategy")? {
            Some(s) => Some(("loadBalancingStrategy", s)),
            None => lb.map(|o| Fields::new(o, "loadBalancer").string("strategy")).transpose()?.flatten().map(|s| ("loadBalancer.strategy", s)),
        };
        if let Some((path, name)) = strategy {
            c.strategy = Strategy::parse(name, is_custom).ok_or_else(|| {
                Error::validation(
                    path,
                    format!("{path} must be one of 'round-robin', 'random', 'weighted', 'least-connections' or a registered custom strategy, got {name:?}"),
                )
            })?;
        }

        // Flat (original) then nested (README): the nested form wins where both are given.
        if let Some(b) = f.bool("enableCircuitBreaker")? {
            c.breaker.enabled = b;
        }
        if let Some(n) = f.positive_int("circuitBreakerThreshold")? {
            c.breaker.failure_threshold = bounded(n, u32::MAX as u64, "circuitBreakerThreshold")? as u32;
        }
        if let Some(d) = f.millis("circuitBreakerTimeout")? {
            c.breaker.recovery_timeout = d;
        }
        if let Some(cb) = f.object("circuitBreaker")? {
            let g = Fields::new(cb, "circuitBreaker");
            if let Some(b) = g.bool("enabled")? {
                c.breaker.enabled = b;
            }
            if let Some(n) = g.positive_int("failureThreshold")? {
                c.breaker.failure_threshold = bounded(n, u32::MAX as u64, "circuitBreaker.failureThreshold")? as u32;
            }
            if let Some(d) = g.millis("recoveryTimeout")? {
                c.breaker.recovery_timeout = d;
            }
            if let Some(n) = g.positive_int("halfOpenMaxCalls")? {
                c.breaker.half_open_max_calls = bounded(n, u32::MAX as u64, "circuitBreaker.halfOpenMaxCalls")? as u32;
            }
        }

        for key in ["retryStrategy", "retry"] {
            if let Some(r) = f.object(key)? {
                let g = Fields::new(r, key);
                if let Some(n) = g.non_negative_int("maxRetries")? {
                    c.retry.max_retries = bounded(n, MAX_RETRIES, &g.path("maxRetries"))? as u32;
                }
                if let Some(d) = g.millis("baseDelay")? {
                    c.retry.backoff.base = d;
                }
                if let Some(d) = g.millis("maxDelay")? {
                    c.retry.backoff.max = d;
                }
                if let Some(m) = g.number_at_least("backoffMultiplier", 1.0)? {
                    c.retry.backoff.multiplier = m;
                }
                if let Some(j) = g.bool("jitter")? {
                    c.retry.backoff.jitter = j;
                }
                if let Some(b) = g.bool("failoverOnMemberErrors")? {
                    c.retry.failover_on_member_errors = b;
                }
            }
        }
        if c.retry.backoff.max < c.retry.backoff.base {
            let path = if obj.contains_key("retry") { "retry.maxDelay" } else { "retryStrategy.maxDelay" };
            return Err(Error::validation(
                path,
                format!(
                    "{path} must be at least baseDelay ({} ms), got {} ms",
                    c.retry.backoff.base.as_millis(),
                    c.retry.backoff.max.as_millis()
                ),
            ));
        }
        Ok(c)
    }
}

fn bounded(n: u64, max: u64, path: &str) -> Result<u64> {
    if n > max {
        return Err(Error::validation(path, format!("{path} must be at most {max}, got {n}")));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<SchedulerConfig> {
        let v: Value = serde_json::from_str(json).unwrap();
        SchedulerConfig::from_object(v.as_object().unwrap(), &|n| n == "mine")
    }

    fn message(json: &str) -> String {
        parse(json).unwrap_err().to_string()
    }

    #[test]
    fn readme_defaults() {
        let c = parse("{}").unwrap();
        assert_eq!(c, SchedulerConfig::default());
        assert_eq!(c.max_concurrent_requests, 10);
        assert_eq!(c.breaker.failure_threshold, 5);
        assert_eq!(c.retry.max_retries, 2);
    }

    #[test]
    fn nested_and_flat_forms() {
        let c = parse(r#"{"maxConcurrentRequests":3,"requestTimeout":30000,"healthCheckInterval":60000,
            "retryStrategy":{"maxRetries":3,"baseDelay":1000,"maxDelay":10000,"backoffMultiplier":2},
            "loadBalancingStrategy":"round-robin","enableCircuitBreaker":true,"circuitBreakerThreshold":3,"circuitBreakerTimeout":30000}"#)
        .unwrap();
        assert_eq!(c.retry.max_retries, 3);
        assert_eq!(c.breaker.failure_threshold, 3);
        assert_eq!(c.breaker.recovery_timeout, Duration::from_secs(30));
        assert_eq!(c.health_check_interval, Some(Duration::from_secs(60)));
        let n = parse(r#"{"loadBalancingStrategy":"weighted","circuitBreaker":{"enabled":false,"failureThreshold":2,"recoveryTimeout":100,"halfOpenMaxCalls":3},"retry":{"maxRetries":0,"jitter":false}}"#).unwrap();
        assert_eq!(n.strategy, Strategy::Weighted);
        assert!(!n.breaker.enabled);
        assert_eq!(n.breaker.half_open_max_calls, 3);
        assert!(!n.retry.backoff.jitter);
        assert_eq!(parse(r#"{"loadBalancer":{"strategy":"least-connections"}}"#).unwrap().strategy, Strategy::LeastConnections);
        assert_eq!(parse(r#"{"loadBalancingStrategy":"mine"}"#).unwrap().strategy, Strategy::Custom("mine".into()));
    }

    #[test]
    fn bad_values_name_their_path() {
        assert_eq!(message(r#"{"circuitBreaker":{"failureThreshold":-1}}"#), "circuitBreaker.failureThreshold must be a positive integer, got -1");
        assert_eq!(message(r#"{"maxConcurrentRequests":0}"#), "maxConcurrentRequests must be a positive integer, got 0");
        assert_eq!(message(r#"{"requestTimeout":"soon"}"#), "requestTimeout must be a positive number of milliseconds, got \"soon\"");
        assert_eq!(message(r#"{"retry":{"backoffMultiplier":0.5}}"#), "retry.backoffMultiplier must be a number ≥ 1, got 0.5");
        assert_eq!(message(r#"{"retry":{"baseDelay":500,"maxDelay":100}}"#), "retry.maxDelay must be at least baseDelay (500 ms), got 100 ms");
        assert!(message(r#"{"loadBalancingStrategy":"fastest"}"#).starts_with("loadBalancingStrategy must be one of"));
        assert_eq!(message(r#"{"circuitBreaker":true}"#), "circuitBreaker must be an object, got true");
        assert_eq!(message(r#"{"maxQueueSize":1.5}"#), "maxQueueSize must be a positive integer, got 1.5");
    }
}
