//! Secret redaction. Everything the tracker stores (metadata, stage data, I/O entries, error
//! texts) passes through here first, so a secret never reaches memory that JS can read back or
//! a debug file.
//!
//! Three nets: values under secret-looking keys at any depth, bearer tokens and `sk-…` keys
//! inside any string, and the exact secrets the owner registered (the API keys it was given).

use std::sync::RwLock;

use serde_json::Value;

pub const REDACTED: &str = "[REDACTED]";

/// Keys whose values are secret, compared lower-case with `-`/`_` removed.
const SECRET_KEYS: &[&str] = &[
    "authorization",
    "proxyauthorization",
    "apikey",
    "apikeys",
    "xapikey",
    "password",
    "passwd",
    "secret",
    "token",
    "cookie",
    "setcookie",
    "privatekey",
    "pkceverifier",
    "codeverifier",
    "devicecode",
    "xiflowsignature",
];

/// Suffixes that make a key secret (`access_token`, `client_secret`, `db_password`…). Plural
/// `…tokens` (`max_tokens`, `prompt_tokens`) are counts, not secrets.
const SECRET_SUFFIXES: &[&str] = &["token", "secret", "password", "apikey", "privatekey"];

/// Shorter registered secrets are ignored: replacing every "ab" in a log helps nobody.
const MIN_REGISTERED_SECRET: usize = 6;

fn normalize(key: &str) -> String {
    key.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect()
}

pub fn is_secret_key(key: &str) -> bool {
    let k = normalize(key);
    SECRET_KEYS.contains(&k.as_str()) || SECRET_SUFFIXES.iter().any(|s| k.ends_with(s))
}

/// Replaces what follows `Bearer ` (any case) and `sk-` up to the next delimiter.
fn scrub_patterns(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    if !lower.contains("bearer ") && !s.contains("sk-") {
        return None;
    }
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let is_token_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=');
    while i < bytes.len() {
        let rest = &lower[i..];
        let prefix_len = if rest.starts_with("bearer ") {
            7
        } else if s[i..].starts_with("sk-") && (i == 0 || !is_token_char(bytes[i - 1])) {
            3
        } else {
            0
        };
        if prefix_len > 0 {
            let start = i + prefix_len;
            let mut end = start;
            while end < bytes.len() && is_token_char(bytes[end]) {
                end += 1;
            }
            if end > start {
                out.push_str(&s[i..start]);
                out.push_str(REDACTED);
                i = end;
                continue;
            }
        }
        // Advance one whole character (the input may hold multi-byte text).
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    Some(out)
}

/// A redactor that also knows the exact secrets its owner registered.
#[derive(Default)]
pub struct Redactor {
    known: RwLock<Vec<String>>,
}

impl Redactor {
    /// Remembers a secret value (an API key) so it is scrubbed wherever it shows up.
    pub fn add_secret(&self, secret: &str) {
        if secret.len() < MIN_REGISTERED_SECRET {
            return;
        }
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        if !known.iter().any(|k| k == secret) {
            known.push(secret.to_string());
            // Longest first, so a secret containing another is replaced whole.
            known.sort_by_key(|k| std::cmp::Reverse(k.len()));
        }
    }

    pub fn redact_str(&self, s: &str) -> String {
        let mut out = scrub_patterns(s).unwrap_or_else(|| s.to_string());
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        for k in known.iter() {
            if out.contains(k.as_str()) {
                out = out.replace(k.as_str(), REDACTED);
            }
        }
        out
    }

    /// A redacted copy of `v`.
    pub fn redact(&self, v: &Value) -> Value {
        let mut copy = v.clone();
        self.redact_in_place(&mut copy);
        copy
    }

    pub fn redact_in_place(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                let r = self.redact_str(s);
                if r != *s {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.redact_in_place(i)),
            Value::Object(map) => {
                for (k, val) in map.iter_mut() {
                    if is_secret_key(k) && !val.is_null() {
                        *val = Value::String(REDACTED.into());
                    } else {
                        self.redact_in_place(val);
                    }
                }
            }
            _ => {}
        }
    }
}
