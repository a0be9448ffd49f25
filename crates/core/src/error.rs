//! The one error type of the engine. Every variant has a stable `code` that crosses the napi
//! boundary; `index.js` turns codes into the exported JS error classes (`RateLimitError`, ...).

use serde::Serialize;
use serde_json::{Map, Value};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which part of a call's time budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TimeoutPhase {
    /// Waiting in a scheduler queue.
    Queue,
    /// Establishing the TCP/TLS connection.
    Connect,
    /// Waiting for the first byte of a response (non-stream) or the first chunk (stream).
    FirstToken,
    /// The gap between two chunks (or body reads) was too long.
    Idle,
    /// The whole call, from start to the last byte.
    Total,
}

impl TimeoutPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutPhase::Queue => "queue",
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::FirstToken => "firstToken",
            TimeoutPhase::Idle => "idle",
            TimeoutPhase::Total => "total",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Bad configuration or request. `field` is the path of the offending value.
    #[error("{message}")]
    Validation { message: String, field: Option<String> },

    /// 401/403, a refused or failed credential.
    #[error("{message}")]
    Authentication { message: String, status: Option<u16>, body: Option<String>, provider_code: Option<String> },

    /// 429 or a quota error.
    #[error("{message}")]
    RateLimit {
        message: String,
        status: Option<u16>,
        retry_after_ms: Option<u64>,
        body: Option<String>,
        provider_code: Option<String>,
    },

    /// Every candidate's breaker is open.
    #[error("{message}")]
    CircuitOpen { message: String, retry_after_ms: u64 },

    #[error("{message}")]
    Timeout { message: String, phase: TimeoutPhase, timeout_ms: u64 },

    #[error("{message}")]
    QueueFull { message: String, max_size: usize },

    /// An AbortSignal fired or the owner was destroyed.
    #[error("{message}")]
    Cancelled { message: String },

    /// The upstream answered with an HTTP error or an error envelope.
    #[error("{message}")]
    Provider {
        message: String,
        status: Option<u16>,
        body: Option<String>,
        provider_code: Option<String>,
        retry_after_ms: Option<u64>,
    },

    /// The connection could not be made or broke before a response arrived.
    #[error("{message}")]
    Connection { message: String },

    /// Malformed SSE / chunk JSON, or the upstream closed mid-stream. `partial` is the response
    /// rebuilt from what had been received (a `chat.completion` object).
    #[error("{message}")]
    Stream { message: String, partial: Option<Value> },

    #[error("{message}")]
    NoAvailablePipeline { message: String },

    /// A defect inside the engine (a caught panic, a broken invariant).
    #[error("{message}")]
    Internal { message: String },
}

impl Error {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation { message: message.into(), field: Some(field.into()) }
    }

    pub fn cancelled() -> Self {
        Error::Cancelled { message: "Request was cancelled".into() }
    }

    pub fn timeout(phase: TimeoutPhase, timeout_ms: u64) -> Self {
        let what = match phase {
            TimeoutPhase::Queue => "waiting in the queue",
            TimeoutPhase::Connect => "connecting to the upstream",
            TimeoutPhase::FirstToken => "waiting for the first token",
            TimeoutPhase::Idle => "waiting for the next chunk",
            TimeoutPhase::Total => "the whole request",
        };
        Error::Timeout { message: format!("Timed out after {timeout_ms}ms {what}"), phase, timeout_ms }
    }

    /// Stable machine-readable code; `index.js` maps it to an error class.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation { .. } => "VALIDATION_ERROR",
            Error::Authentication { .. } => "AUTHENTICATION_ERROR",
            Error::RateLimit { .. } => "RATE_LIMIT_ERROR",
            Error::CircuitOpen { .. } => "CIRCUIT_BREAKER_OPEN",
            Error::Timeout { .. } => "TIMEOUT",
            Error::QueueFull { .. } => "QUEUE_FULL",
            Error::Cancelled { .. } => "CANCELLED",
            Error::Provider { .. } => "PROVIDER_ERROR",
            Error::Connection { .. } => "CONNECTION_ERROR",
            Error::Stream { .. } => "STREAM_ERROR",
            Error::NoAvailablePipeline { .. } => "NO_AVAILABLE_PIPELINE",
            Error::Internal { .. } => "INTERNAL_ERROR",
        }
    }

    /// Whether trying again (possibly elsewhere) may succeed: connection errors, per-attempt
    /// timeouts, 408, 409, 429 and 5xx.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Connection { .. } | Error::RateLimit { .. } => true,
            Error::Timeout { phase, .. } => {
                matches!(phase, TimeoutPhase::Connect | TimeoutPhase::FirstToken | TimeoutPhase::Idle)
            }
            Error::Provider { status, .. } => match status {
                Some(s) => *s == 408 || *s == 409 || *s >= 500,
                // An error envelope without a status (e.g. inside a stream) is the upstream's
                // failure, not the request's.
                None => true,
            },
            _ => false,
        }
    }

    /// The wait the upstream asked for, if any.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Error::RateLimit { retry_after_ms, .. } | Error::Provider { retry_after_ms, .. } => *retry_after_ms,
            Error::CircuitOpen { retry_after_ms, .. } => Some(*retry_after_ms),
            _ => None,
        }
    }

    /// HTTP status of the upstream answer, if the error came from one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Authentication { status, .. } | Error::RateLimit { status, .. } | Error::Provider { status, .. } => *status,
            _ => None,
        }
    }

    /// The error as a flat JSON object with camelCase keys, the form that crosses into JS.
    pub fn to_payload(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("code".into(), self.code().into());
        m.insert("message".into(), self.to_string().into());
        m.insert("retryable".into(), self.retryable().into());
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        match self {
            Error::Validation { field, .. } => put("field", field.clone().map(Value::from)),
            Error::Authentication { status, body, provider_code, .. } => {
                put("status", status.map(Value::from));
                put("body", body.clone().map(Value::from));
                put("providerCode", provider_code.clone().map(Value::from));
            }
            Error::RateLimit { status, retry_after_ms, body, provider_code, .. } => {
                put("status", status.map(Value::from));
                put("retryAfterMs", retry_after_ms.map(Value::from));
                put("body", body.clone().map(Value::from));
                put("providerCode", provider_code.clone().map(Value::from));
            }
            Error::CircuitOpen { retry_after_ms, .. } => put("retryAfterMs", Some((*retry_after_ms).into())),
            Error::Timeout { phase, timeout_ms, .. } => {
                put("phase", Some(phase.as_str().into()));
                put("timeoutMs", Some((*timeout_ms).into()));
            }
            Error::QueueFull { max_size, .. } => put("maxQueueSize", Some((*max_size).into())),
            Error::Provider { status, body, provider_code, retry_after_ms, .. } => {
                put("status", status.map(Value::from));
                put("body", body.clone().map(Value::from));
                put("providerCode", provider_code.clone().map(Value::from));
                put("retryAfterMs", retry_after_ms.map(Value::from));
            }
            Error::Stream { partial, .. } => put("partial", partial.clone()),
            Error::Cancelled { .. }
            | Error::Connection { .. }
            | Error::NoAvailablePipeline { .. }
            | Error::Internal { .. } => {}
        }
        m
    }

    /// The inverse of `to_payload`, for errors thrown by JS code (a `BaseProvider` subclass, a
    /// custom strategy). A known `code` keeps its class; otherwise an HTTP `status` decides
    /// (401/403 → authentication, 429 → rate limit, other → provider error), and an error
    /// without either is a provider failure (retryable: the JS provider is the upstream here).
    pub fn from_payload(p: &Value) -> Error {
        let str_of = |k: &str| p.get(k).and_then(Value::as_str).map(String::from);
        let u64_of = |k: &str| p.get(k).and_then(Value::as_f64).filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64);
        let message = str_of("message").unwrap_or_else(|| "JS provider failed without a message".into());
        let status = u64_of("status").and_then(|s| u16::try_from(s).ok());
        let body = p.get("body").and_then(|b| match b {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        });
        let provider_code = str_of("providerCode").or_else(|| str_of("name"));
        let retry_after_ms = u64_of("retryAfterMs");
        match str_of("code").as_deref() {
            Some("VALIDATION_ERROR") => Error::Validation { message, field: str_of("field") },
            Some("AUTHENTICATION_ERROR") => Error::Authentication { message, status, body, provider_code },
            Some("RATE_LIMIT_ERROR") => Error::RateLimit { message, status, retry_after_ms, body, provider_code },
            Some("CIRCUIT_BREAKER_OPEN") => Error::CircuitOpen { message, retry_after_ms: retry_after_ms.unwrap_or(0) },
            Some("TIMEOUT") => Error::Timeout {
                message,
                phase: match str_of("phase").as_deref() {
                    Some("queue") => TimeoutPhase::Queue,
                    Some("connect") => TimeoutPhase::Connect,
                    Some("firstToken") => TimeoutPhase::FirstToken,
                    Some("idle") => TimeoutPhase::Idle,
                    _ => TimeoutPhase::Total,
                },
                timeout_ms: u64_of("timeoutMs").unwrap_or(0),
            },
            Some("QUEUE_FULL") => Error::QueueFull { message, max_size: u64_of("maxQueueSize").unwrap_or(0) as usize },
            Some("CANCELLED") => Error::Cancelled { message },
            Some("CONNECTION_ERROR") => Error::Connection { message },
            Some("STREAM_ERROR") => Error::Stream { message, partial: p.get("partial").cloned().filter(|v| !v.is_null()) },
            Some("NO_AVAILABLE_PIPELINE") => Error::NoAvailablePipeline { message },
            Some("INTERNAL_ERROR") => Error::Internal { message },
            _ => match status {
                Some(401) | Some(403) => Error::Authentication { message, status, body, provider_code },
                Some(429) => Error::RateLimit { message, status, retry_after_ms, body, provider_code },
                _ => Error::Provider { message, status, body, provider_code, retry_after_ms },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        let all = [
            Error::validation("model", "Model is required"),
            Error::Authentication { message: "x".into(), status: Some(401), body: None, provider_code: None },
            Error::RateLimit { message: "x".into(), status: Some(429), retry_after_ms: Some(5), body: None, provider_code: None },
            Error::CircuitOpen { message: "x".into(), retry_after_ms: 1 },
            Error::timeout(TimeoutPhase::Idle, 10),
            Error::QueueFull { message: "x".into(), max_size: 1 },
            Error::cancelled(),
            Error::Provider { message: "x".into(), status: Some(500), body: None, provider_code: None, retry_after_ms: None },
            Error::Connection { message: "x".into() },
            Error::Stream { message: "x".into(), partial: None },
            Error::NoAvailablePipeline { message: "x".into() },
            Error::Internal { message: "x".into() },
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), all.len());
        for e in &all {
            assert_eq!(e.to_payload()["code"], e.code());
        }
    }

    #[test]
    fn retryable_follows_the_status_rules() {
        let p = |s| Error::Provider { message: "x".into(), status: Some(s), body: None, provider_code: None, retry_after_ms: None };
        for s in [408, 409, 500, 502, 503, 504] {
            assert!(p(s).retryable(), "{s}");
        }
        for s in [400, 404, 422] {
            assert!(!p(s).retryable(), "{s}");
        }
        assert!(Error::timeout(TimeoutPhase::FirstToken, 1).retryable());
        assert!(!Error::timeout(TimeoutPhase::Total, 1).retryable());
        assert!(!Error::timeout(TimeoutPhase::Queue, 1).retryable());
        assert!(!Error::cancelled().retryable());
        assert!(!Error::validation("x", "y").retryable());
    }

    #[test]
    fn payload_carries_the_fields_of_each_kind() {
        let e = Error::RateLimit {
            message: "429 slow down".into(),
            status: Some(429),
            retry_after_ms: Some(1500),
            body: Some("{}".into()),
            provider_code: Some("rate_limit_exceeded".into()),
        };
        let p = e.to_payload();
        assert_eq!(p["retryAfterMs"], 1500);
        assert_eq!(p["status"], 429);
        assert_eq!(p["providerCode"], "rate_limit_exceeded");
        assert_eq!(p["retryable"], true);
        let t = Error::timeout(TimeoutPhase::FirstToken, 250).to_payload();
        assert_eq!(t["phase"], "firstToken");
        assert_eq!(t["timeoutMs"], 250);
    }

    #[test]
    fn payloads_round_trip_and_js_errors_map_by_status() {
        let all = [
            Error::validation("model", "Model is required"),
            Error::Authentication { message: "a".into(), status: Some(401), body: Some("b".into()), provider_code: Some("c".into()) },
            Error::RateLimit { message: "x".into(), status: Some(429), retry_after_ms: Some(5), body: None, provider_code: None },
            Error::CircuitOpen { message: "x".into(), retry_after_ms: 1 },
            Error::timeout(TimeoutPhase::Idle, 10),
            Error::QueueFull { message: "x".into(), max_size: 1 },
            Error::Cancelled { message: "x".into() },
            Error::Provider { message: "x".into(), status: Some(500), body: None, provider_code: None, retry_after_ms: Some(7) },
            Error::Connection { message: "x".into() },
            Error::Stream { message: "x".into(), partial: Some(serde_json::json!({"id": "p"})) },
            Error::NoAvailablePipeline { message: "x".into() },
            Error::Internal { message: "x".into() },
        ];
        for e in all {
            assert_eq!(Error::from_payload(&Value::Object(e.to_payload())), e);
        }
        let plain = Error::from_payload(&serde_json::json!({"message": "boom", "name": "TypeError"}));
        assert!(matches!(&plain, Error::Provider { status: None, provider_code: Some(c), .. } if c == "TypeError"));
        assert!(plain.retryable());
        assert!(matches!(Error::from_payload(&serde_json::json!({"message": "m", "status": 429})), Error::RateLimit { .. }));
        assert!(matches!(Error::from_payload(&serde_json::json!({"message": "m", "status": 403})), Error::Authentication { .. }));
        assert!(!Error::from_payload(&serde_json::json!({"message": "m", "status": 400})).retryable());
    }
}
