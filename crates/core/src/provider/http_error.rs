//! Turns an upstream HTTP error (status, headers, body) into the typed error a caller gets.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::error::Error;

/// Largest part of an error body kept on the error.
const MAX_BODY: usize = 8 * 1024;

/// `retry-after-ms` (milliseconds, OpenAI) first, then `retry-after` (seconds or HTTP date).
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers.get("retry-after-ms").and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// Reads `error.message` / `message` / `msg` and `error.code` / `error.type` from an error body.
fn describe_body(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return (None, None) };
    let err = v.get("error").filter(|e| e.is_object()).unwrap_or(&v);
    let message = err
        .get("message")
        .or_else(|| v.get("message"))
        .or_else(|| v.get("msg"))
        .or_else(|| v.get("error").filter(|e| e.is_string()))
        .and_then(|m| m.as_str())
        .map(str::to_string);
    let code = err.get("code").or_else(|| err.get("type")).and_then(|c| match c {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    (message, code)
}

pub(crate) fn truncate_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= MAX_BODY {
        return text.into_owned();
    }
    let mut end = MAX_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], body.len())
}

/// A 2xx answer the engine cannot use (not JSON, wrong shape, wrong content type).
pub(crate) fn bad_answer(message: String, status: u16, body: &[u8]) -> Error {
    Error::Provider { message, status: Some(status), body: Some(truncate_body(body)), provider_code: None, retry_after_ms: None }
}

/// Maps a non-2xx answer: 401/403 → Authentication, 429 → RateLimit, everything else →
/// Provider. The message reads like the OpenAI SDK's: `429 Free allocated quota exceeded.`
pub fn error_from_response(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    let (detail, provider_code) = describe_body(body);
    let reason = reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("error");
    let message = format!("{status} {}", detail.unwrap_or_else(|| reason.to_string()));
    let body = (!body.is_empty()).then(|| truncate_body(body));
    let retry_after_ms = parse_retry_after(headers).map(|d| d.as_millis() as u64);
    match status {
        401 | 403 => Error::Authentication { message, status: Some(status), body, provider_code },
        429 => Error::RateLimit { message, status: Some(status), retry_after_ms, body, provider_code },
        _ => Error::Provider { message, status: Some(status), body, provider_code, retry_after_ms },
    }
}

/// An error object that arrived inside a 200 body or a stream (`{"error":{...}}`).
pub(crate) fn error_from_envelope(envelope: &Value) -> Error {
    let raw = serde_json::to_vec(envelope).unwrap_or_default();
    let (detail, provider_code) = describe_body(&raw);
    let status = envelope
        .get("error")
        .and_then(|e| e.get("status").or_else(|| e.get("code")))
        .and_then(|s| s.as_u64().or_else(|| s.as_str().and_then(|s| s.parse().ok())))
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (400..600).contains(s));
    let message = detail.unwrap_or_else(|| "the upstream reported an error".into());
    let body = Some(truncate_body(&raw));
    match status {
        Some(s @ (401 | 403)) => Error::Authentication { message, status: Some(s), body, provider_code },
        Some(429) => Error::RateLimit { message, status: Some(429), retry_after_ms: None, body, provider_code },
        _ => Error::Provider { message, status, body, provider_code, retry_after_ms: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn statuses_map_to_kinds_with_sdk_like_messages() {
        let body = br#"{"error":{"code":"insufficient_quota","message":"Free allocated quota exceeded.","type":"insufficient_quota"}}"#;
        let e = error_from_response(429, &headers(&[("retry-after", "2")]), body);
        assert_eq!(e.to_string(), "429 Free allocated quota exceeded.");
        assert_eq!(e.retry_after_ms(), Some(2000));
        assert_eq!(e.to_payload()["providerCode"], "insufficient_quota");
        assert_eq!(error_from_response(401, &HeaderMap::new(), b"").code(), "AUTHENTICATION_ERROR");
        assert_eq!(error_from_response(403, &HeaderMap::new(), b"").code(), "AUTHENTICATION_ERROR");
        let e = error_from_response(503, &HeaderMap::new(), b"<html>down</html>");
        assert_eq!((e.code(), e.status(), e.to_string().as_str()), ("PROVIDER_ERROR", Some(503), "503 Service Unavailable"));
        assert_eq!(e.to_payload()["body"], "<html>down</html>");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(&headers(&[("retry-after-ms", "1500")])), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after(&headers(&[("retry-after-ms", "12.5"), ("retry-after", "9")])), Some(Duration::from_micros(12500)));
        assert_eq!(parse_retry_after(&headers(&[("retry-after", "3")])), Some(Duration::from_secs(3)));
        let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let d = parse_retry_after(&headers(&[("retry-after", &future)])).unwrap();
        assert!(d <= Duration::from_secs(30) && d >= Duration::from_secs(28), "{d:?}");
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h), None);
        assert_eq!(parse_retry_after(&headers(&[("retry-after", "-1")])), None);
    }

    #[test]
    fn long_bodies_are_truncated_on_a_char_boundary() {
        let body = "é".repeat(MAX_BODY);
        let t = truncate_body(body.as_bytes());
        assert!(t.len() < body.len() && t.ends_with("bytes in all)"));
    }

    #[test]
    fn envelopes_inside_streams() {
        let e = error_from_envelope(&serde_json::json!({"error":{"message":"overloaded","type":"server_error","code":529}}));
        assert_eq!((e.code(), e.to_string().as_str()), ("PROVIDER_ERROR", "overloaded"));
        let e = error_from_envelope(&serde_json::json!({"error":{"message":"slow","code":429}}));
        assert_eq!(e.code(), "RATE_LIMIT_ERROR");
    }
}
