//! Helpers shared by the HTTP tests of the mock.
#![allow(dead_code)]

use base64::Engine;
use rcc_mock::{MockConfig, MockServer};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub async fn mock() -> MockServer {
    MockServer::start(MockConfig::default()).await.unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// POSTs a form body; returns (status, JSON body or the text as a JSON string).
pub async fn post_form(url: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    let r = client()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(form(pairs))
        .send()
        .await
        .unwrap();
    status_json(r).await
}

pub async fn status_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A PKCE pair as §1.2 describes it: 32 random bytes base64url (no padding), and
/// base64url(SHA-256(verifier)).
pub fn pkce() -> (String, String) {
    let bytes: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The `data` payloads of an SSE body, whichever of `data:` / `data: ` it uses.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let line = e.trim_start();
            let d = line.strip_prefix("data:").unwrap_or_else(|| panic!("not a data line: {line:?}"));
            d.strip_prefix(' ').unwrap_or(d).to_string()
        })
        .collect()
}

pub fn chunks(text: &str) -> Vec<Value> {
    sse_data(text).iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect()
}
