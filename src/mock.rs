//! `MockUpstream`: the mock upstream (crates/mock) running inside the addon, for the demo and
//! for jest. It needs no binary and no child process, and stops with `close()`.

use std::sync::Mutex;

use napi_derive::napi;
use rcc_mock::{MockConfig, MockServer};

use crate::error::parse_json;

#[napi]
pub struct MockUpstream {
    server: Mutex<Option<MockServer>>,
    port: u32,
    blackhole_port: u32,
}

/// Starts a mock upstream on 127.0.0.1. Options (JSON): `{port?, apiKeys?, models?}`.
#[napi]
pub async fn start_mock_upstream(options_json: Option<String>) -> napi::Result<MockUpstream> {
    let mut cfg = MockConfig::default();
    if let Some(text) = options_json {
        let v = parse_json(&text, "mock options")?;
        cfg.port = v.get("port").and_then(|p| p.as_u64()).and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
        let strings = |k: &str| -> Vec<String> {
            v.get(k).and_then(|a| a.as_array()).map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
        };
        cfg.api_keys = strings("apiKeys");
        cfg.models = strings("models");
    }
    let server = MockServer::start(cfg).await.map_err(|e| napi::Error::from_reason(format!("the mock upstream could not listen: {e}")))?;
    Ok(MockUpstream { port: server.port() as u32, blackhole_port: server.blackhole_port() as u32, server: Mutex::new(Some(server)) })
}

#[napi]
impl MockUpstream {
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.port
    }

    #[napi(getter)]
    pub fn blackhole_port(&self) -> u32 {
        self.blackhole_port
    }

    fn with<T>(&self, f: impl FnOnce(&MockServer) -> T) -> napi::Result<T> {
        let guard = self.server.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(f).ok_or_else(|| napi::Error::from_reason("the mock upstream is closed"))
    }

    /// Counters as JSON: requests, streams completed/cancelled, connections.
    #[napi]
    pub fn stats(&self) -> napi::Result<String> {
        self.with(|s| serde_json::to_string(&s.stats()).unwrap_or_default())
    }

    /// The last requests received (method, path, httpVersion, headers, body) as JSON.
    #[napi]
    pub fn requests(&self) -> napi::Result<String> {
        self.with(|s| serde_json::to_string(&s.requests()).unwrap_or_default())
    }

    /// Replaces the accepted bearer keys (empty accepts any): a dropped key starts getting 401.
    #[napi]
    pub fn set_api_keys(&self, keys: Vec<String>) -> napi::Result<()> {
        self.with(|s| s.set_api_keys(keys))
    }

    /// Resets counters, recorded requests, and the Qwen and iFlow mocks' state and switches.
    #[napi]
    pub fn reset(&self) -> napi::Result<()> {
        self.with(|s| s.reset())
    }

    /// Runs one control action, `qwen/<action>` or `iflow/<action>` (the same actions as
    /// `POST /__mock/<group>/<action>`, listed in crates/mock/src/control.rs), with a JSON body;
    /// returns the JSON answer. mock.js wraps these as `mock.qwen.*` and `mock.iflow.*`.
    #[napi]
    pub fn control(&self, action: String, body_json: Option<String>) -> napi::Result<String> {
        let body = match body_json {
            Some(text) => parse_json(&text, "mock control body")?,
            None => serde_json::json!({}),
        };
        self.with(|s| s.control(&action, &body))?
            .map(|v| v.to_string())
            .map_err(|e| napi::Error::new(napi::Status::InvalidArg, format!("mock control {action}: {e}")))
    }

    /// Stops listening and closes every connection. Safe to call twice.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(s) = server {
            s.shutdown().await;
        }
        Ok(())
    }
}
