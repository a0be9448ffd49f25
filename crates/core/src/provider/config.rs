//! Provider configuration as it arrives from JS (camelCase JSON), validated field by field so
//! that a bad value is reported with its path.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::validate::{invalid, invalid_redacted};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_token: Duration,
    pub idle: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_millis(10_000),
            first_token: Duration::from_millis(60_000),
            idle: Duration::from_millis(60_000),
            total: Duration::from_millis(600_000),
        }
    }
}

/// Per-call overrides of some timeouts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeoutsOverride {
    pub connect: Option<Duration>,
    pub first_token: Option<Duration>,
    pub idle: Option<Duration>,
    pub total: Option<Duration>,
}

impl Timeouts {
    pub fn with(self, o: &TimeoutsOverride) -> Timeouts {
        Timeouts {
            connect: o.connect.unwrap_or(self.connect),
            first_token: o.first_token.unwrap_or(self.first_token),
            idle: o.idle.unwrap_or(self.idle),
            total: o.total.unwrap_or(self.total),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    /// HTTP/2 when TLS negotiates it (ALPN), HTTP/1.1 otherwise.
    Auto,
    Http1,
    /// HTTP/2 only; over plain http this is h2c with prior knowledge.
    Http2,
}

/// What one call may carry besides the request.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    pub timeouts: TimeoutsOverride,
    pub cancel: CancellationToken,
}

#[derive(Clone, PartialEq)]
pub struct ProviderConfig {
    pub name: String,
    /// Base URL such as `https://api.openai.com/v1`.
    pub endpoint: String,
    pub api_keys: Vec<String>,
    pub supported_models: Vec<String>,
    pub default_model: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub max_retries: u32,
    pub timeouts: Timeouts,
    pub http_version: HttpVersion,
}

// Keys are secrets: Debug must never print them.
impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("api_keys", &format_args!("[{} redacted]", self.api_keys.len()))
            .field("supported_models", &self.supported_models)
            .field("default_model", &self.default_model)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("max_retries", &self.max_retries)
            .field("timeouts", &self.timeouts)
            .field("http_version", &self.http_version)
            .finish()
    }
}

pub const DEFAULT_OPENAI_ENDPOINT: &str = "https://api.openai.com/v1";

impl ProviderConfig {
    /// Parses and validates the JS config object. Keys the engine does not use (debug flags,
    /// metadata, ...) are ignored here; the JS layer keeps them.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::validation("config", format!("config is not valid JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| Error::validation("config", "config must be an object"))?;
        Self::from_object(obj)
    }

    pub fn from_object(obj: &Map<String, Value>) -> Result<Self> {
        let name = match obj.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            other => return Err(invalid("name", "a non-empty string", other)),
        };
        let endpoint = match obj.get("endpoint") {
            None | Some(Value::Null) => DEFAULT_OPENAI_ENDPOINT.to_string(),
            Some(Value::String(s)) => validate_url("endpoint", s)?,
            other => return Err(invalid("endpoint", "an http(s) URL", other)),
        };
        let mut api_keys = Vec::new();
        match obj.get("apiKey") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.is_empty() => api_keys.push(sendable_key("apiKey", s)?),
            Some(Value::String(_)) => return Err(Error::validation("apiKey", "apiKey must be a non-empty string, got an empty string")),
            Some(other) => return Err(invalid_redacted("apiKey", "a non-empty string", Some(other))),
        }
        match obj.get("apiKeys") {
            None | Some(Value::Null) => {}
            Some(Value::Array(keys)) => {
                for (i, k) in keys.iter().enumerate() {
                    match k {
                        Value::String(s) if !s.is_empty() => {
                            if !api_keys.contains(s) {
                                api_keys.push(sendable_key(&format!("apiKeys[{i}]"), s)?)
                            }
                        }
                        other => return Err(invalid_redacted(&format!("apiKeys[{i}]"), "a non-empty string", Some(other))),
                    }
                }
            }
            Some(other) => return Err(invalid_redacted("apiKeys", "an array of strings", Some(other))),
        }
        let supported_models = string_list(obj, "supportedModels")?;
        let default_model = match obj.get("defaultModel") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            other => return Err(invalid("defaultModel", "a non-empty string", other)),
        };
        let mut headers = BTreeMap::new();
        match obj.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                for (k, v) in h {
                    let path = format!("headers.{k}");
                    if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                        return Err(Error::validation(path.clone(), format!("{path} is not a valid HTTP header name")));
                    }
                    match v {
                        Value::String(s) if reqwest::header::HeaderValue::from_str(s).is_ok() => {
                            headers.insert(k.clone(), s.clone());
                        }
                        other => return Err(invalid_redacted(&path, "a string usable as an HTTP header value", Some(other))),
                    }
                }
            }
            other => return Err(invalid("headers", "an object of strings", other)),
        }
        let max_retries = match obj.get("maxRetries") {
            None | Some(Value::Null) => 0,
            Some(v) => match v.as_u64() {
                Some(n) if n <= 100 => n as u32,
                _ => return Err(invalid("maxRetries", "an integer from 0 to 100", Some(v))),
            },
        };
        let timeouts = match obj.get("timeouts") {
            None | Some(Value::Null) => Timeouts::default(),
            Some(Value::Object(t)) => Timeouts::default().with(&TimeoutsOverride::from_object(t, "timeouts")?),
            other => return Err(invalid("timeouts", "an object", other)),
        };
        let http_version = match obj.get("httpVersion") {
            None | Some(Value::Null) => HttpVersion::Auto,
            Some(Value::String(s)) if s == "auto" => HttpVersion::Auto,
            Some(Value::String(s)) if s == "1.1" => HttpVersion::Http1,
            Some(Value::String(s)) if s == "2" => HttpVersion::Http2,
            other => return Err(invalid("httpVersion", "'auto', '1.1' or '2'", other)),
        };
        Ok(ProviderConfig {
            name,
            endpoint,
            api_keys,
            supported_models,
            default_model,
            headers,
            max_retries,
            timeouts,
            http_version,
        })
    }
}

impl TimeoutsOverride {
    /// Reads `{connect, firstToken, idle, total}` (ms, positive integers); `prefix` names the
    /// object in errors.
    pub fn from_object(t: &Map<String, Value>, prefix: &str) -> Result<Self> {
        let mut o = TimeoutsOverride::default();
        for (key, slot) in [
            ("connect", &mut o.connect),
            ("firstToken", &mut o.first_token),
            ("idle", &mut o.idle),
            ("total", &mut o.total),
        ] {
            match t.get(key) {
                None | Some(Value::Null) => {}
                Some(v) => match v.as_u64() {
                    Some(ms) if ms > 0 => *slot = Some(Duration::from_millis(ms)),
                    _ => return Err(invalid(&format!("{prefix}.{key}"), "a positive integer (milliseconds)", Some(v))),
                },
            }
        }
        if let Some(unknown) = t.keys().find(|k| !matches!(k.as_str(), "connect" | "firstToken" | "idle" | "total")) {
            return Err(Error::validation(
                format!("{prefix}.{unknown}"),
                format!("{prefix}.{unknown} is not a known timeout (connect, firstToken, idle, total)"),
            ));
        }
        Ok(o)
    }
}

fn string_list(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                // The original accepted model objects ({id, name, ...}); keep their id.
                Value::Object(m) => match m.get("id").or_else(|| m.get("name")) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    _ => Err(invalid(&format!("{key}[{i}]"), "a string or an object with an id", Some(v))),
                },
                other => Err(invalid(&format!("{key}[{i}]"), "a string", Some(other))),
            })
            .collect(),
        other => Err(invalid(key, "an array of strings", other)),
    }
}

fn validate_url(field: &str, s: &str) -> Result<String> {
    let parsed = url::Url::parse(s).map_err(|e| Error::validation(field, format!("{field} must be an http(s) URL, got {s:?} ({e})")))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(Error::validation(field, format!("{field} must be an http(s) URL, got scheme {:?}", parsed.scheme())));
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// `key` as it will be sent (`Authorization: Bearer <key>`); a key with a control character
/// (a pasted newline, say) cannot be sent in a header and is refused here, naming the field
/// but not the key, rather than every request going out without credentials. The same test
/// as for `headers` values: what `HeaderValue` accepts.
fn sendable_key(field: &str, key: &str) -> Result<String> {
    if reqwest::header::HeaderValue::from_str(key).is_err() {
        return Err(Error::validation(field, format!("{field} contains a control character (such as a newline), which cannot be sent in an HTTP header; the key itself is not shown")));
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> (String, String) {
        let e = ProviderConfig::from_json(json).unwrap_err();
        (e.to_payload()["field"].as_str().unwrap().to_string(), e.to_string())
    }

    #[test]
    fn defaults_and_overrides() {
        let c = ProviderConfig::from_json(r#"{"name":"p","endpoint":"http://127.0.0.1:1/v1/","apiKey":"k","timeouts":{"idle":5}}"#).unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:1/v1");
        assert_eq!(c.timeouts.idle, Duration::from_millis(5));
        assert_eq!(c.timeouts.connect, Duration::from_millis(10_000));
        assert_eq!(c.max_retries, 0);
        assert_eq!(c.api_keys, vec!["k"]);
        assert!(!format!("{c:?}").contains("\"k\""), "keys are redacted from Debug");
    }

    #[test]
    fn bad_values_name_their_path() {
        assert_eq!(err(r#"{"endpoint":"x"}"#).0, "name");
        assert_eq!(err(r#"{"name":"p","timeouts":{"connect":-1}}"#), (
            "timeouts.connect".into(),
            "timeouts.connect must be a positive integer (milliseconds), got -1".into()
        ));
        assert_eq!(err(r#"{"name":"p","timeouts":{"conect":1}}"#).0, "timeouts.conect");
        assert_eq!(err(r#"{"name":"p","endpoint":"ftp://x"}"#).0, "endpoint");
        assert_eq!(err(r#"{"name":"p","maxRetries":1.5}"#).0, "maxRetries");
        assert_eq!(err(r#"{"name":"p","headers":{"bad header":"x"}}"#).0, "headers.bad header");
        assert_eq!(err(r#"{"name":"p","httpVersion":"3"}"#).0, "httpVersion");
        let (field, msg) = err(r#"{"name":"p","apiKeys":["sk-secret", 5]}"#);
        assert_eq!(field, "apiKeys[1]");
        assert!(!msg.contains("sk-secret"));
    }

    #[test]
    fn a_key_that_cannot_be_sent_in_a_header_is_refused_without_showing_it() {
        let (field, msg) = err(r#"{"name":"p","apiKey":"sk-pasted\n"}"#);
        assert_eq!(field, "apiKey");
        assert!(msg.contains("control character") && !msg.contains("sk-pasted"), "{msg}");
        assert_eq!(err(r#"{"name":"p","apiKeys":["sk-a","sk-b\u0000"]}"#).0, "apiKeys[1]");
        // Tabs and non-ASCII bytes are valid in a header value.
        let ok = ProviderConfig::from_json(r#"{"name":"p","apiKeys":["sk-\u00e9", "a\tb"]}"#).unwrap();
        assert_eq!(ok.api_keys.len(), 2);
    }
}
