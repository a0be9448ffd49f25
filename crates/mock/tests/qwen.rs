//! The Qwen OAuth device flow (providers-wire §1, §6.1) and the Qwen chat mock (§2, §6.2), over
//! real HTTP.

mod common;

use std::time::{Duration, Instant};

use common::{chunks, client, mock, pkce, post_form, sse_data, status_json};
use rcc_mock::{MockConfig, MockServer, QWEN_CLIENT_ID};
use serde_json::{json, Value};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const SCOPE: &str = "openid profile email model.completion";

/// Starts a device flow; returns (device_code, verifier, the whole answer).
async fn device_code(m: &MockServer) -> (String, String, Value) {
    let (verifier, challenge) = pkce();
    let (status, body) = post_form(
        &format!("{}/api/v1/oauth2/device/code", m.url()),
        &[("client_id", QWEN_CLIENT_ID), ("scope", SCOPE), ("code_challenge", &challenge), ("code_challenge_method", "S256")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (body["device_code"].as_str().unwrap().to_string(), verifier, body)
}

async fn poll(m: &MockServer, device_code: &str, verifier: &str) -> (u16, Value) {
    post_form(
        &format!("{}/api/v1/oauth2/token", m.url()),
        &[("grant_type", DEVICE_GRANT), ("client_id", QWEN_CLIENT_ID), ("device_code", device_code), ("code_verifier", verifier)],
    )
    .await
}

async fn refresh(m: &MockServer, refresh_token: &str) -> (u16, Value) {
    post_form(
        &format!("{}/api/v1/oauth2/token", m.url()),
        &[("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", QWEN_CLIENT_ID)],
    )
    .await
}

async fn chat(m: &MockServer, base: &str, token: &str, scenario: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = client().post(format!("{}{base}/chat/completions", m.url())).bearer_auth(token).json(&body);
    if let Some(s) = scenario {
        req = req.header("x-mock-scenario", s);
    }
    req.send().await.unwrap()
}

fn hello() -> Value {
    json!({"model": "coder-model", "messages": [{"role": "user", "content": "hi"}]})
}

fn stream_body() -> Value {
    json!({"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}], "stream": true, "stream_options": {"include_usage": true}})
}

#[tokio::test]
async fn device_code_answers_the_documented_fields() {
    let m = mock().await;
    let (code, _, body) = device_code(&m).await;
    assert!(!code.is_empty());
    let user = body["user_code"].as_str().unwrap();
    assert_eq!(user.len(), 8);
    assert_eq!(body["verification_uri"], format!("{}/authorize", m.url()));
    assert_eq!(body["verification_uri_complete"], format!("{}/authorize?user_code={user}&client=qwen-code", m.url()));
    assert_eq!(body["expires_in"], 1800);
    assert!(body.get("interval").is_none());
    m.qwen().set_poll_interval(Some(5));
    let (_, _, body) = device_code(&m).await;
    assert_eq!(body["interval"], 5);
    assert_eq!(m.qwen().stats().device_codes, 2);
}

#[tokio::test]
async fn device_code_rejects_json_missing_fields_and_plain_pkce() {
    let m = mock().await;
    let url = format!("{}/api/v1/oauth2/device/code", m.url());
    let (_, challenge) = pkce();
    let r = client()
        .post(&url)
        .json(&json!({"client_id": QWEN_CLIENT_ID, "scope": SCOPE, "code_challenge": challenge, "code_challenge_method": "S256"}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    let (status, body) = post_form(&url, &[("client_id", QWEN_CLIENT_ID), ("scope", SCOPE), ("code_challenge_method", "S256")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    assert!(body["error_description"].as_str().unwrap().contains("code_challenge"));
    let (status, body) =
        post_form(&url, &[("client_id", QWEN_CLIENT_ID), ("scope", SCOPE), ("code_challenge", &challenge), ("code_challenge_method", "plain")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    let (status, body) =
        post_form(&url, &[("client_id", "someone-else"), ("scope", SCOPE), ("code_challenge", &challenge), ("code_challenge_method", "S256")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_client")));
}

#[tokio::test]
async fn scripted_polls_then_success_with_recorded_times() {
    let m = mock().await;
    m.qwen().script(&["pending", "slow_down", "slow_down_400", "pending_200", "approve"]).unwrap();
    let (code, verifier, _) = device_code(&m).await;
    let (s, b) = poll(&m, &code, &verifier).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("authorization_pending")));
    let (s, b) = poll(&m, &code, &verifier).await;
    assert_eq!((s, b["error"].as_str()), (429, Some("slow_down")));
    let (s, b) = poll(&m, &code, &verifier).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("slow_down")));
    let (s, b) = poll(&m, &code, &verifier).await;
    assert_eq!((s, b), (200, json!({"status": "pending"})));
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (s, b) = poll(&m, &code, &verifier).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(b["refresh_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["expires_in"], 21600);
    assert_eq!(b["resource_url"], m.url());
    assert_eq!(b["scope"], SCOPE);
    let access = b["access_token"].clone();
    // A device code is good for one success.
    let (s, b) = poll(&m, &code, &verifier).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));

    let stats = m.qwen().stats();
    assert_eq!(stats.polls, 6);
    assert_eq!(stats.poll_times.len(), 6);
    assert!(stats.poll_times.windows(2).all(|w| w[0] <= w[1]));
    assert!(stats.poll_times[4] - stats.poll_times[3] >= 25, "{:?}", stats.poll_times);
    assert_eq!(stats.issued_tokens, 1);
    assert_eq!(stats.access_token.as_deref(), access.as_str());
}

#[tokio::test]
async fn expired_denied_and_server_error_steps() {
    let m = mock().await;
    m.qwen().script(&["expired_token", "access_denied", "server_error"]).unwrap();
    let (code, verifier, _) = device_code(&m).await;
    let (s, b) = poll(&m, &code, &verifier).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("expired_token")));
    let (s, b) = poll(&m, &code, &verifier).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("access_denied")));
    let (s, b) = poll(&m, &code, &verifier).await;
    assert_eq!(s, 500);
    assert!(b.is_string(), "a 500 body that is not JSON: {b}");
    assert!(m.qwen().script(&["bogus"]).unwrap_err().contains("bogus"));
}

#[tokio::test]
async fn pkce_mismatch_is_rejected() {
    let m = mock().await;
    let (code, verifier, _) = device_code(&m).await;
    let (wrong, _) = pkce();
    let (s, b) = poll(&m, &code, &wrong).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    assert!(b["error_description"].as_str().unwrap().contains("code_verifier"));
    let (s, b) = poll(&m, "no-such-code", &verifier).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    let (s, _) = poll(&m, &code, &verifier).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn poll_rejects_json_and_unknown_grants() {
    let m = mock().await;
    let url = format!("{}/api/v1/oauth2/token", m.url());
    let r = client().post(&url).json(&json!({"grant_type": DEVICE_GRANT})).send().await.unwrap();
    let (s, b) = status_json(r).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")));
    let (s, b) = post_form(&url, &[("grant_type", "password")]).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("unsupported_grant_type")));
}

#[tokio::test]
async fn approve_after_n_polls_and_manual_approval() {
    let m = mock().await;
    m.qwen().approve_after(Some(2));
    let (code, verifier, _) = device_code(&m).await;
    assert_eq!(poll(&m, &code, &verifier).await.0, 400);
    assert_eq!(poll(&m, &code, &verifier).await.0, 400);
    assert_eq!(poll(&m, &code, &verifier).await.0, 200);

    m.qwen().approve_after(None);
    let (code, verifier, body) = device_code(&m).await;
    for _ in 0..3 {
        assert_eq!(poll(&m, &code, &verifier).await.1["error"], "authorization_pending");
    }
    // The user opens the verification page: that approves.
    let page = client().get(body["verification_uri_complete"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(poll(&m, &code, &verifier).await.0, 200);

    let (code, verifier, _) = device_code(&m).await;
    assert_eq!(m.qwen().deny(None), 1);
    assert_eq!(poll(&m, &code, &verifier).await.1["error"], "access_denied");
    let (code, verifier, _) = device_code(&m).await;
    assert_eq!(m.qwen().approve(None), 2, "the denied one is outstanding too");
    assert_eq!(poll(&m, &code, &verifier).await.0, 200);
}

#[tokio::test]
async fn device_codes_expire() {
    let m = mock().await;
    m.qwen().set_device_code_lifetime(Duration::from_millis(50));
    m.qwen().approve_after(None);
    let (code, verifier, _) = device_code(&m).await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    let (s, b) = poll(&m, &code, &verifier).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("expired_token")));
}

/// Runs a whole device flow; returns the token answer.
async fn login(m: &MockServer) -> Value {
    let (code, verifier, _) = device_code(m).await;
    let (s, b) = poll(m, &code, &verifier).await;
    assert_eq!(s, 200, "{b}");
    b
}

#[tokio::test]
async fn refresh_rotates_both_tokens_and_counts() {
    let m = mock().await;
    m.qwen().set_resource_url(Some("portal.example".into()));
    let first = login(&m).await;
    assert_eq!(first["resource_url"], "portal.example");
    let (s, second) = refresh(&m, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{second}");
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(second["resource_url"], "portal.example");
    assert_eq!(second["token_type"], "Bearer");
    assert_eq!(m.qwen().stats().refreshes, 1);
    assert_eq!(m.qwen().stats().issued_tokens, 2);
    // The old refresh token is single-use; the old access token stops working.
    let (s, b) = refresh(&m, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(chat(&m, "/v1", first["access_token"].as_str().unwrap(), None, hello()).await.status(), 401);
    assert_eq!(chat(&m, "/v1", second["access_token"].as_str().unwrap(), None, hello()).await.status(), 200);
    assert_eq!(m.qwen().stats().refreshes, 2);
}

#[tokio::test]
async fn old_access_tokens_can_get_a_grace_period() {
    let m = mock().await;
    m.qwen().set_old_token_grace(Duration::from_millis(300));
    let first = login(&m).await;
    let (s, _) = refresh(&m, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 200);
    let old = first["access_token"].as_str().unwrap();
    assert_eq!(chat(&m, "/v1", old, None, hello()).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(chat(&m, "/v1", old, None, hello()).await.status(), 401);
}

#[tokio::test]
async fn fail_refresh_switch_answers_invalid_grant() {
    let m = mock().await;
    let t = login(&m).await;
    m.qwen().fail_refresh(Some("invalid_grant")).unwrap();
    let (s, b) = refresh(&m, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    assert!(b["error_description"].is_string());
    m.qwen().fail_refresh(Some("invalid_client")).unwrap();
    assert_eq!(refresh(&m, t["refresh_token"].as_str().unwrap()).await.0, 401);
    m.qwen().fail_refresh(Some("error_200")).unwrap();
    let (s, b) = refresh(&m, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!((s, b["error"].as_str()), (200, Some("invalid_grant")));
    m.qwen().fail_refresh(Some("invalid_json")).unwrap();
    let (s, b) = refresh(&m, t["refresh_token"].as_str().unwrap()).await;
    assert!(s == 200 && b.is_string());
    assert!(m.qwen().fail_refresh(Some("nope")).is_err());
    m.qwen().fail_refresh(None).unwrap();
    // The failed attempts did not consume the refresh token.
    assert_eq!(refresh(&m, t["refresh_token"].as_str().unwrap()).await.0, 200);
    assert_eq!(m.qwen().stats().refreshes, 5);
}

#[tokio::test]
async fn refresh_delay_makes_concurrent_refreshers_overlap() {
    let m = mock().await;
    let t = login(&m).await;
    m.qwen().set_refresh_delay(Duration::from_millis(300));
    let rt = t["refresh_token"].as_str().unwrap();
    let start = Instant::now();
    let (a, b) = tokio::join!(refresh(&m, rt), refresh(&m, rt));
    assert!(start.elapsed() >= Duration::from_millis(300));
    // Run one after the other they would take 600 ms.
    assert!(start.elapsed() < Duration::from_millis(590), "the two refreshes overlapped: {:?}", start.elapsed());
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 400], "only one of two racing refreshers wins");
    assert_eq!(m.qwen().stats().refreshes, 2);
}

#[tokio::test]
async fn issued_tokens_are_checked_on_both_chat_bases() {
    let m = mock().await;
    // No API keys configured: an unknown bearer is an API key and is not checked.
    assert_eq!(chat(&m, "/compatible-mode/v1", "sk-anything", None, hello()).await.status(), 200);
    let t = m.qwen().issue_tokens();
    assert_eq!(t.resource_url.as_deref(), Some(m.url().as_str()));
    for base in ["/v1", "/compatible-mode/v1"] {
        assert_eq!(chat(&m, base, &t.access_token, None, hello()).await.status(), 200);
    }
    m.qwen().expire_access_tokens();
    for base in ["/v1", "/compatible-mode/v1"] {
        let (s, b) = status_json(chat(&m, base, &t.access_token, None, hello()).await).await;
        assert_eq!(s, 401);
        assert_eq!(b["error"]["code"], "invalid_api_key");
        assert_eq!(b["error"]["message"], "invalid access token or token expired");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert!(b["error"]["param"].is_null());
        assert!(b["request_id"].is_string());
    }
    assert_eq!(m.qwen().stats().rejected_tokens, 2);
    // 401 → refresh → retry works.
    let (s, fresh) = refresh(&m, &t.refresh_token).await;
    assert_eq!(s, 200);
    assert_eq!(chat(&m, "/v1", fresh["access_token"].as_str().unwrap(), None, hello()).await.status(), 200);
}

#[tokio::test]
async fn tokens_expire_after_their_lifetime() {
    let m = mock().await;
    m.qwen().set_token_lifetime(Duration::from_millis(150));
    let t = m.qwen().issue_tokens();
    assert_eq!(chat(&m, "/v1", &t.access_token, None, hello()).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(chat(&m, "/v1", &t.access_token, None, hello()).await.status(), 401);
    m.qwen().set_token_lifetime(Duration::from_secs(3600));
    assert_eq!(login(&m).await["expires_in"], 3600);
}

#[tokio::test]
async fn api_keys_and_issued_tokens_together() {
    let m = MockServer::start(MockConfig { api_keys: vec!["sk-dash".into()], ..Default::default() }).await.unwrap();
    let t = m.qwen().issue_tokens();
    assert_eq!(chat(&m, "/compatible-mode/v1", "sk-dash", None, hello()).await.status(), 200);
    assert_eq!(chat(&m, "/v1", &t.access_token, None, hello()).await.status(), 200);
    assert_eq!(chat(&m, "/compatible-mode/v1", "sk-wrong", None, hello()).await.status(), 401);
}

#[tokio::test]
async fn quota_rate_limit_and_throttling_bodies() {
    let m = mock().await;
    let (s, b) = status_json(chat(&m, "/v1", "k", Some("quota"), hello()).await).await;
    assert_eq!(s, 429);
    assert_eq!(b, json!({"error": {"code": "insufficient_quota", "message": "Free allocated quota exceeded.", "type": "insufficient_quota"}}));
    let (s, b) = status_json(chat(&m, "/v1", "k", Some("quota-403"), hello()).await).await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("insufficient_quota")));

    let r = chat(&m, "/v1", "k", Some("rate-limit"), hello()).await;
    assert_eq!(r.headers()["retry-after"], "1");
    let (s, b) = status_json(r).await;
    assert_eq!((s, b["error"]["code"].as_str(), b["error"]["type"].as_str()), (429, Some("rate_limit_exceeded"), Some("rate_limit_exceeded")));
    let r = chat(&m, "/v1", "k", Some("rate-limit,retry-after=7"), hello()).await;
    assert_eq!(r.headers()["retry-after"], "7");

    let (s, b) = status_json(chat(&m, "/v1", "k", Some("throttling"), hello()).await).await;
    assert_eq!(s, 429);
    assert!(b["error"]["message"].as_str().unwrap().contains("Requests throttling triggered"));
    let (s, b) = status_json(chat(&m, "/compatible-mode/v1", "k", Some("tpm-quota"), hello()).await).await;
    assert_eq!((s, b["error"]["code"].as_str()), (429, Some("insufficient_quota")));
    assert!(b["error"]["message"].as_str().unwrap().starts_with("You exceeded your current quota"));
    let (s, b) = status_json(chat(&m, "/v1", "k", Some("thinking-required"), hello()).await).await;
    assert_eq!(s, 400);
    assert!(b["error"]["message"].as_str().unwrap().contains("enable_thinking"));
    let (s, b) = status_json(chat(&m, "/v1", "k", Some("status=503"), hello()).await).await;
    assert_eq!((s, b["error"]["type"].as_str()), (503, Some("server_error")));
    // The model prefix selects a scenario too.
    let body = json!({"model": "mock:quota", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(chat(&m, "/v1", "k", None, body).await.status(), 429);
}

#[tokio::test]
async fn tool_arguments_that_are_not_json_get_400() {
    let m = mock().await;
    let history = |args: &str| {
        json!({"model": "coder-model", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": args}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]})
    };
    let (s, b) = status_json(chat(&m, "/v1", "k", None, history("{\"location\":")).await).await;
    assert_eq!(s, 400);
    assert_eq!(b["error"]["code"], "invalid_parameter_error");
    assert_eq!(b["error"]["type"], "invalid_request_error");
    assert!(b["error"]["message"].as_str().unwrap().contains("function.arguments"));
    assert_eq!(chat(&m, "/v1", "k", None, history("{\"location\":\"Paris\"}")).await.status(), 200);
}

#[tokio::test]
async fn dashscope_stream_shape() {
    let m = mock().await;
    let r = chat(&m, "/compatible-mode/v1", "k", Some("reply=hello_world"), stream_body()).await;
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    assert!(text.starts_with("data: {"), "DashScope puts a space after data:");
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let c = chunks(&text);
    assert_eq!(c[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    assert!(c[0]["usage"].is_null() && c[0].get("usage").is_some());
    let content: String = c.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "hello world");
    let fin = &c[c.len() - 2];
    assert_eq!(fin["choices"][0]["delta"], json!({}));
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    let usage = c.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["prompt_tokens_details"]["cached_tokens"].is_number());

    // Tool calls: content null next to the call, continuation with id "".
    let text = chat(&m, "/v1", "k", Some("tools"), stream_body()).await.text().await.unwrap();
    let c = chunks(&text);
    let first_call = &c[1]["choices"][0]["delta"];
    assert!(first_call["content"].is_null() && first_call.get("content").is_some());
    assert!(first_call["tool_calls"][0]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(c[2]["choices"][0]["delta"]["tool_calls"][0]["id"], "");
    assert_eq!(c[3]["choices"][0]["finish_reason"], "tool_calls");

    // Reasoning before content.
    let text = chat(&m, "/v1", "k", Some("reasoning,reply=ok"), stream_body()).await.text().await.unwrap();
    let c = chunks(&text);
    assert!(c[1]["choices"][0]["delta"]["reasoning_content"].is_string());
    assert!(c[1]["choices"][0]["delta"]["content"].is_null());
}

#[tokio::test]
async fn optional_stream_modes() {
    let m = mock().await;
    let deltas = |text: &str| -> Vec<String> {
        chunks(text).iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string)).filter(|s| !s.is_empty()).collect()
    };
    let text = chat(&m, "/v1", "k", Some("cumulative,reply=a_b_c"), stream_body()).await.text().await.unwrap();
    assert_eq!(deltas(&text), ["a", "a b", "a b c"]);

    let text = chat(&m, "/v1", "k", Some("error-finish,reply=a_b"), stream_body()).await.text().await.unwrap();
    let c = chunks(&text);
    let last = c.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "error_finish");
    assert!(last["choices"][0]["delta"]["content"].as_str().unwrap().contains("throttling"));
    assert_eq!(sse_data(&text).last().unwrap(), "[DONE]");
    let text = chat(&m, "/v1", "k", Some("error-finish=1,reply=a_b"), stream_body()).await.text().await.unwrap();
    assert_eq!(chunks(&text).len(), 2, "the role chunk, then the error finish");

    let text = chat(&m, "/v1", "k", Some("duplicate-finish"), stream_body()).await.text().await.unwrap();
    assert_eq!(chunks(&text).iter().filter(|c| c["choices"][0]["finish_reason"] == "stop").count(), 2);

    let text = chat(&m, "/v1", "k", Some("usage-on-finish"), stream_body()).await.text().await.unwrap();
    let c = chunks(&text);
    assert_eq!(c.last().unwrap()["choices"][0]["finish_reason"], "stop");
    assert!(c.last().unwrap()["usage"]["total_tokens"].is_number());

    // Without include_usage there is no usage chunk.
    let body = json!({"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let text = chat(&m, "/v1", "k", None, body).await.text().await.unwrap();
    assert!(chunks(&text).iter().all(|c| c["choices"] != json!([])));
}

#[tokio::test]
async fn non_stream_shape() {
    let m = mock().await;
    let (s, b) = status_json(chat(&m, "/v1", "k", Some("tools"), hello()).await).await;
    assert_eq!(s, 200);
    assert!(b["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let call = &b["choices"][0]["message"]["tool_calls"][0];
    let id = call["id"].as_str().unwrap();
    assert!(id.starts_with("call_") && id.len() == 29 && id[5..].chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    assert_eq!(call["index"], 0);
    assert_eq!(b["choices"][0]["message"]["content"], "");
    assert!(b["usage"]["prompt_tokens_details"]["cached_tokens"].is_number());
}

#[tokio::test]
async fn models_on_both_bases() {
    let m = mock().await;
    for base in ["/v1", "/compatible-mode/v1"] {
        let (s, b) = status_json(client().get(format!("{}{base}/models", m.url())).send().await.unwrap()).await;
        assert_eq!(s, 200);
        let ids: Vec<&str> = b["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"coder-model") && ids.contains(&"qwen3-coder-plus"), "{ids:?}");
    }
}

#[tokio::test]
async fn dashscope_headers_and_body_are_recorded() {
    let m = mock().await;
    let body = json!({"model": "coder-model", "messages": [{"role": "user", "content": "hi"}], "metadata": {"sessionId": "s1", "promptId": "p1"}});
    client()
        .post(format!("{}/v1/chat/completions", m.url()))
        .header("x-dashscope-cachecontrol", "enable")
        .header("x-dashscope-authtype", "qwen-oauth")
        .header("user-agent", "QwenCode/0.14.2 (linux; x64)")
        .json(&body)
        .send()
        .await
        .unwrap();
    let r = m.requests().pop().unwrap();
    assert_eq!(r.headers["x-dashscope-cachecontrol"], "enable");
    assert_eq!(r.headers["x-dashscope-authtype"], "qwen-oauth");
    assert_eq!(r.body["metadata"]["sessionId"], "s1");
}

#[tokio::test]
async fn control_endpoints_over_http() {
    let m = mock().await;
    let ctl = |action: &str, body: Value| {
        let url = format!("{}/__mock/qwen/{action}", m.url());
        async move { status_json(client().post(url).json(&body).send().await.unwrap()).await }
    };
    assert_eq!(ctl("script", json!({"steps": ["pending", "approve"]})).await.0, 200);
    assert_eq!(ctl("token-lifetime", json!({"seconds": 60})).await.0, 200);
    assert_eq!(ctl("refresh-delay", json!({"ms": 1})).await.0, 200);
    assert_eq!(ctl("resource-url", json!({"url": "127.0.0.1:1"})).await.0, 200);
    let (code, verifier, _) = device_code(&m).await;
    assert_eq!(poll(&m, &code, &verifier).await.0, 400);
    let (s, t) = poll(&m, &code, &verifier).await;
    assert_eq!((s, t["expires_in"].as_u64(), t["resource_url"].as_str()), (200, Some(60), Some("127.0.0.1:1")));

    let (s, stats) = status_json(client().get(format!("{}/__mock/qwen/stats", m.url())).send().await.unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(stats["polls"], 2);
    assert_eq!(stats["deviceCodes"], 1);
    assert_eq!(stats["pollTimes"].as_array().unwrap().len(), 2);
    assert_eq!(stats["accessToken"], t["access_token"]);

    assert_eq!(ctl("expire-access-tokens", json!({})).await.0, 200);
    assert_eq!(chat(&m, "/v1", t["access_token"].as_str().unwrap(), None, hello()).await.status(), 401);
    assert_eq!(ctl("fail-refresh", json!({"error": "invalid_grant"})).await.0, 200);
    assert_eq!(refresh(&m, t["refresh_token"].as_str().unwrap()).await.0, 400);
    assert_eq!(ctl("fail-refresh", json!({"error": null})).await.0, 200);
    assert_eq!(refresh(&m, t["refresh_token"].as_str().unwrap()).await.0, 200);

    let (s, issued) = ctl("issue-tokens", json!({})).await;
    assert_eq!(s, 200);
    assert!(issued["access_token"].is_string() && issued["refresh_token"].is_string());
    assert_eq!(ctl("approve-after", json!({"polls": null})).await.0, 200);
    assert_eq!(ctl("approve", json!({})).await, (200, json!({"approved": 0})));

    let (s, b) = ctl("script", json!({"steps": ["sideways"]})).await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().contains("sideways"));
    assert_eq!(ctl("no-such-action", json!({})).await.0, 400);
    assert_eq!(ctl("token-lifetime", json!({"seconds": "x"})).await.0, 400);

    // The global reset resets the Qwen state too.
    assert_eq!(client().post(format!("{}/__mock/reset", m.url())).send().await.unwrap().status(), 204);
    let s = m.qwen().stats();
    assert_eq!((s.polls, s.refreshes, s.issued_tokens, s.access_token), (0, 0, 0, None));
    assert_eq!(m.qwen().resource_url(), m.url());
    // The same actions in-process, in their JSON form.
    assert_eq!(m.control("qwen/stats", &json!({})).unwrap()["polls"], 0);
    assert!(m.control("qwen/bogus", &json!({})).is_err());
}

/// 500 chunks sent without delay (coalesced into a few writes) arrive complete and in order.
#[tokio::test]
async fn a_long_stream_arrives_complete_and_in_order() {
    let m = mock().await;
    let words: Vec<String> = (0..500).map(|i| format!("w{i}")).collect();
    let scenario = format!("chunks=500,reply={}", words.join("_"));
    let mut r = chat(&m, "/v1", "k", Some(&scenario), stream_body()).await;
    let mut text = Vec::new();
    let mut reads = 0;
    while let Some(piece) = r.chunk().await.unwrap() {
        text.extend_from_slice(&piece);
        reads += 1;
    }
    let text = String::from_utf8(text).unwrap();
    assert!(reads < 500, "{reads} reads for 500 chunks: the events were not coalesced");
    assert_eq!(sse_data(&text).last().unwrap(), "[DONE]");
    let c = chunks(&text);
    assert_eq!(c.len(), 1 + 500 + 2, "role chunk, 500 content chunks, finish, usage");
    let content: Vec<&str> = c.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).filter(|s| !s.is_empty()).collect();
    let want: Vec<String> = words.iter().enumerate().map(|(i, w)| if i == 0 { w.clone() } else { format!(" {w}") }).collect();
    assert_eq!(content, want);
    assert_eq!(c[501]["choices"][0]["finish_reason"], "stop");
    assert_eq!(m.stats().streams_completed, 1);
}
