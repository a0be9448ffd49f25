//! The Qwen and iFlow providers end to end over loopback HTTP against `rcc-mock`: OAuth tokens
//! through the transport's credentials hook (refresh ahead of expiry, one refresh for a burst of
//! 401s), DashScope quirks, and iFlow's signed requests and business envelopes.

use std::time::Duration;

use rcc_core::model::ChatRequest;
use rcc_core::provider::auth::{Clock, SystemClock, TokenSet, TokenStore};
use rcc_core::provider::iflow::{IFlowConfig, IFlowProvider};
use rcc_core::provider::qwen::{QwenConfig, QwenProvider};
use rcc_core::provider::CallOptions;
use rcc_core::Error;
use rcc_mock::{MockConfig, MockServer};
use serde_json::json;

fn ask(text: &str) -> ChatRequest {
    ChatRequest::from_json(&json!({"model": "qwen3-coder-plus", "messages": [{"role": "user", "content": text}]}).to_string()).unwrap()
}

fn content(r: &rcc_core::model::ChatResponse) -> String {
    serde_json::to_value(r).unwrap()["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_401s_causes_one_refresh_and_every_request_is_replayed() {
    let m = MockServer::start(MockConfig::default()).await.unwrap();
    let issued = m.qwen().issue_tokens();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oauth_creds.json");
    let mut t = TokenSet::bearer(issued.access_token.clone(), Some(issued.refresh_token), Some(SystemClock.now_ms() + 3_600_000));
    t.resource_url = Some(m.qwen().resource_url());
    TokenStore::new(&path).save(&t).unwrap();
    let config = QwenConfig::from_value(&json!({"name": "qwen", "oauth": {"baseUrl": m.url()}, "tokenStoragePath": path})).unwrap();
    let qwen = QwenProvider::new(config, None).unwrap();

    assert_eq!(content(&qwen.transport.chat(ask("first"), CallOptions::default()).await.unwrap()), "Hello from the mock upstream! You said: first");
    m.qwen().set_refresh_delay(Duration::from_millis(150));
    m.qwen().expire_access_tokens();
    let calls: Vec<_> = (0..100)
        .map(|i| {
            let p = qwen.transport.clone();
            tokio::spawn(async move { p.chat(ask(&format!("n{i}")), CallOptions::default()).await })
        })
        .collect();
    for (i, c) in calls.into_iter().enumerate() {
        assert_eq!(content(&c.await.unwrap().unwrap()), format!("Hello from the mock upstream! You said: n{i}"));
    }
    assert_eq!(m.qwen().stats().refreshes, 1, "one refresh for 100 rejected requests");
    assert_eq!(TokenStore::new(&path).load().unwrap().unwrap().access_token, m.qwen().stats().access_token.unwrap());
}

#[tokio::test]
async fn a_token_near_expiry_is_refreshed_before_the_request() {
    let m = MockServer::start(MockConfig::default()).await.unwrap();
    let issued = m.qwen().issue_tokens();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("creds.json");
    TokenStore::new(&path).save(&TokenSet::bearer(issued.access_token, Some(issued.refresh_token), Some(SystemClock.now_ms() + 5_000))).unwrap();
    let config = QwenConfig::from_value(&json!({"name": "qwen", "oauth": {"baseUrl": m.url()}, "tokenStoragePath": path, "endpoint": format!("{}/v1", m.url())})).unwrap();
    let qwen = QwenProvider::new(config, None).unwrap();
    qwen.transport.chat(ask("x"), CallOptions::default()).await.unwrap();
    assert_eq!(m.qwen().stats().refreshes, 1);
    assert_eq!(m.qwen().stats().rejected_tokens, 0, "no request went out with the old token");
}

#[tokio::test]
async fn iflow_requests_are_signed_and_envelopes_are_typed() {
    let m = MockServer::start(MockConfig::default()).await.unwrap();
    let key = m.iflow().api_key();
    let good = IFlowProvider::new(IFlowConfig::from_value(&json!({"apiKey": key, "endpoint": format!("{}/iflow/v1", m.url())})).unwrap(), None).unwrap();
    assert!(content(&good.transport.chat(ask("signed"), CallOptions::default()).await.unwrap()).ends_with("signed"));
    assert_eq!(m.iflow().stats().signature_failures, 0);
    let wrong = IFlowProvider::new(IFlowConfig::from_value(&json!({"apiKey": "wrong-key-1234", "endpoint": format!("{}/iflow/v1", m.url())})).unwrap(), None).unwrap();
    let e = wrong.transport.chat(ask("x"), CallOptions::default()).await.unwrap_err();
    assert!(matches!(e, Error::Authentication { .. }), "{e:?}");
    assert!(!e.to_string().contains("wrong-key-1234"));
}
