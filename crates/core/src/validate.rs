//! Field checks shared by every config parser: a bad value is reported with its path and what
//! was expected (`circuitBreaker.failureThreshold must be a positive integer, got -1`).

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A short rendering of a received value for an error message.
pub(crate) fn describe(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "nothing".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => {
            let s = other.to_string();
            if s.len() > 60 {
                format!("{}…", &s[..s.char_indices().nth(60).map(|(i, _)| i).unwrap_or(s.len())])
            } else {
                s
            }
        }
    }
}

pub(crate) fn invalid(field: &str, expected: &str, got: Option<&Value>) -> Error {
    Error::validation(field, format!("{field} must be {expected}, got {}", describe(got)))
}

/// Like `invalid`, without echoing the value: the field may hold a secret.
pub(crate) fn invalid_redacted(field: &str, expected: &str, got: Option<&Value>) -> Error {
    let kind = match got {
        None | Some(Value::Null) => "nothing",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "a string",
        Some(Value::Array(_)) => "an array",
        Some(Value::Object(_)) => "an object",
    };
    Error::validation(field, format!("{field} must be {expected}, got {kind}"))
}

/// Reads optional fields of one object, naming each by `prefix.key`.
pub(crate) struct Fields<'a> {
    pub obj: &'a Map<String, Value>,
    pub prefix: &'a str,
}

impl<'a> Fields<'a> {
    pub fn new(obj: &'a Map<String, Value>, prefix: &'a str) -> Self {
        Fields { obj, prefix }
    }

    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            other => Err(invalid(&self.path(key), "a boolean", other)),
        }
    }

    /// An integer ≥ 1.
    pub fn positive_int(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => Ok(Some(n)),
                _ => Err(invalid(&self.path(key), "a positive integer", Some(v))),
            },
        }
    }

    /// An integer ≥ 0.
    pub fn non_negative_int(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n)),
                _ => Err(invalid(&self.path(key), "a non-negative integer", Some(v))),
            },
        }
    }

    /// A finite number ≥ `min`.
    pub fn number_at_least(&self, key: &str, min: f64) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(n) if n.is_finite() && n >= min => Ok(Some(n)),
                _ => Err(invalid(&self.path(key), &format!("a number ≥ {min}"), Some(v))),
            },
        }
    }

    /// Milliseconds, a positive number.
    pub fn millis(&self, key: &str) -> Result<Option<Duration>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(n) if n.is_finite() && n > 0.0 && n <= 1e12 => Ok(Some(Duration::from_secs_f64(n / 1000.0))),
                _ => Err(invalid(&self.path(key), "a positive number of milliseconds", Some(v))),
            },
        }
    }

    pub fn string(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            other => Err(invalid(&self.path(key), "a non-empty string", other)),
        }
    }

    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            other => Err(invalid(&self.path(key), "an object", other)),
        }
    }
}
