//! The iFlow mocks (providers-wire §3, §6.3) over real HTTP: OAuth authorization code, user
//! info, the signed chat API and its odd responses.

mod common;

use base64::Engine;
use common::{chunks, client, form, mock, sse_data, status_json};
use hmac::{Hmac, Mac};
use rcc_mock::{MockServer, IFLOW_CLIENT_ID, IFLOW_DEFAULT_API_KEY};
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "test-secret";
const CALLBACK: &str = "http://localhost:11451/oauth2callback";

/// §3.1: lower-case hex of HMAC-SHA256 keyed with the API key over `UA:session-id:timestamp`.
fn signature(api_key: &str, ua: &str, session: &str, ts: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(api_key.as_bytes()).unwrap();
    mac.update(format!("{ua}:{session}:{ts}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn now_ms() -> String {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis().to_string()
}

/// A chat request with the real CLI's headers, signed with `key`.
fn signed(m: &MockServer, key: &str, body: &Value) -> reqwest::RequestBuilder {
    let session = "session-0b7f3a52-7c1e-4c8e-9a55-1f0e2d3c4b5a";
    let ts = now_ms();
    client()
        .post(format!("{}/chat/completions", m.iflow_base()))
        .bearer_auth(key)
        .header("user-agent", "iFlow-Cli")
        .header("session-id", session)
        .header("conversation-id", session)
        .header("x-iflow-timestamp", &ts)
        .header("x-iflow-signature", signature(key, "iFlow-Cli", session, &ts))
        .json(body)
}

fn hello(stream: bool) -> Value {
    json!({"model": "glm-4.6", "messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

async fn token_request(m: &MockServer, auth: Option<String>, pairs: &[(&str, &str)]) -> (u16, Value) {
    let mut req = client()
        .post(format!("{}/iflow/oauth/token", m.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(form(pairs));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    status_json(req.send().await.unwrap()).await
}

/// Opens the authorize page; returns the redirect target.
async fn authorize(m: &MockServer, query: &str) -> String {
    let r = client().get(format!("{}/iflow/oauth?{query}", m.url())).send().await.unwrap();
    assert_eq!(r.status(), 302);
    r.headers()["location"].to_str().unwrap().to_string()
}

fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    let q = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

async fn exchange(m: &MockServer, code: &str) -> (u16, Value) {
    token_request(
        m,
        Some(basic(IFLOW_CLIENT_ID, SECRET)),
        &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CALLBACK), ("client_id", IFLOW_CLIENT_ID), ("client_secret", SECRET)],
    )
    .await
}

async fn login(m: &MockServer) -> Value {
    let q = format!("loginMethod=phone&type=phone&redirect={}&state=abc&client_id={IFLOW_CLIENT_ID}", urlencode(CALLBACK));
    let loc = authorize(m, &q).await;
    let (s, t) = exchange(m, &query_of(&loc)["code"]).await;
    assert_eq!(s, 200, "{t}");
    t
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn authorize_redirects_with_code_and_state() {
    let m = mock().await;
    let q = format!("loginMethod=phone&type=phone&redirect={}&state=s1&client_id={IFLOW_CLIENT_ID}", urlencode(CALLBACK));
    let loc = authorize(&m, &q).await;
    assert!(loc.starts_with(&format!("{CALLBACK}?")), "{loc}");
    let params = query_of(&loc);
    assert_eq!(params["state"], "s1");
    assert!(!params["code"].is_empty());

    // `redirect_uri` for `redirect`, and a state carried inside the redirect value.
    let q = format!("redirect_uri={}&client_id={IFLOW_CLIENT_ID}", urlencode(&format!("{CALLBACK}&state=s2")));
    let loc = authorize(&m, &q).await;
    assert!(loc.starts_with(&format!("{CALLBACK}?")), "{loc}");
    assert_eq!(query_of(&loc)["state"], "s2");
    // That code is bound to the callback without the state.
    assert_eq!(exchange(&m, &query_of(&loc)["code"]).await.0, 200);

    m.iflow().deny_authorization(true);
    let loc = authorize(&m, &format!("redirect={}&state=s3&client_id={IFLOW_CLIENT_ID}", urlencode(CALLBACK))).await;
    let params = query_of(&loc);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "s3");
    assert!(!params.contains_key("code"));
    assert_eq!(m.iflow().stats().authorizations, 3);

    let r = client().get(format!("{}/iflow/oauth?redirect={}&client_id=other", m.url(), urlencode(CALLBACK))).send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn token_endpoint_requires_basic_and_form_credentials() {
    let m = mock().await;
    let loc = authorize(&m, &format!("redirect={}&state=x&client_id={IFLOW_CLIENT_ID}", urlencode(CALLBACK))).await;
    let code = query_of(&loc)["code"].clone();
    let full = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CALLBACK), ("client_id", IFLOW_CLIENT_ID), ("client_secret", SECRET)];

    let (s, b) = token_request(&m, None, &full).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
    let (s, b) = token_request(&m, Some(basic(IFLOW_CLIENT_ID, SECRET)), &full[..4]).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")), "the form needs client_secret too");
    let (s, _) = token_request(&m, Some(basic(IFLOW_CLIENT_ID, "other")), &full).await;
    assert_eq!(s, 401, "Basic and form must agree");
    let r = client()
        .post(format!("{}/iflow/oauth/token", m.url()))
        .header("authorization", basic(IFLOW_CLIENT_ID, SECRET))
        .json(&json!({"grant_type": "authorization_code", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    m.iflow().set_client_secret(Some("the-real-secret".into()));
    assert_eq!(token_request(&m, Some(basic(IFLOW_CLIENT_ID, SECRET)), &full).await.0, 401);
    m.iflow().set_client_secret(None);
    let mut wrong_redirect = full;
    wrong_redirect[2] = ("redirect_uri", "http://localhost:1/elsewhere");
    let (s, b) = token_request(&m, Some(basic(IFLOW_CLIENT_ID, SECRET)), &wrong_redirect).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));

    // A redirect mismatch burnt the code, like a real single-use code; get a new one.
    let loc = authorize(&m, &format!("redirect={}&state=x&client_id={IFLOW_CLIENT_ID}", urlencode(CALLBACK))).await;
    let (s, t) = exchange(&m, &query_of(&loc)["code"]).await;
    assert_eq!(s, 200);
    for k in ["access_token", "refresh_token", "token_type", "scope"] {
        assert!(t[k].is_string(), "{k} in {t}");
    }
    assert_eq!(t["expires_in"], 48 * 3600);
    let (s, b) = exchange(&m, &query_of(&loc)["code"]).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")), "codes are single-use");
    let st = m.iflow().stats();
    assert_eq!((st.code_exchanges, st.token_calls), (1, 8));
}

#[tokio::test]
async fn refresh_rotates_counts_and_can_fail() {
    let m = mock().await;
    let t = login(&m).await;
    let refresh = |rt: String| {
        let m = &m;
        async move {
            token_request(
                m,
                Some(basic(IFLOW_CLIENT_ID, SECRET)),
                &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", IFLOW_CLIENT_ID), ("client_secret", SECRET)],
            )
            .await
        }
    };
    let (s, t2) = refresh(t["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(s, 200);
    assert_ne!(t2["access_token"], t["access_token"]);
    assert_ne!(t2["refresh_token"], t["refresh_token"]);
    let (s, b) = refresh(t["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    m.iflow().fail_refresh(Some("invalid_grant")).unwrap();
    let (s, b) = refresh(t2["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    m.iflow().fail_refresh(None).unwrap();
    assert_eq!(refresh(t2["refresh_token"].as_str().unwrap().to_string()).await.0, 200);
    assert_eq!(m.iflow().stats().refreshes, 4);
}

async fn user_info(m: &MockServer, token: &str) -> (u16, Value) {
    status_json(client().get(format!("{}/iflow/api/oauth/getUserInfo?accessToken={}", m.url(), urlencode(token))).send().await.unwrap()).await
}

#[tokio::test]
async fn user_info_hands_out_the_api_key() {
    let m = mock().await;
    let t = login(&m).await;
    let at = t["access_token"].as_str().unwrap();
    let (s, b) = user_info(&m, at).await;
    assert_eq!(s, 200);
    assert_eq!(b["success"], true);
    assert_eq!(b["data"]["apiKey"], IFLOW_DEFAULT_API_KEY);
    assert!(b["data"]["email"].is_string() && b["data"]["phone"].is_string());

    m.iflow().set_api_key("sk-ffffffffffffffffffffffffffffffff");
    m.iflow().set_user_info(None, Some("+8613900000000".into()));
    let (_, b) = user_info(&m, at).await;
    assert_eq!(b["data"]["apiKey"], "sk-ffffffffffffffffffffffffffffffff");
    assert!(b["data"]["email"].is_null());

    let (s, b) = user_info(&m, "not-a-token").await;
    assert_eq!((s, b["success"].as_bool()), (200, Some(false)));
    assert!(b["data"].is_null());

    m.iflow().script_user_info(&["500", "empty_key", "failure"]).unwrap();
    assert_eq!(user_info(&m, at).await.0, 500);
    assert_eq!(user_info(&m, at).await.1["data"]["apiKey"], "");
    assert_eq!(user_info(&m, at).await.1["success"], false);
    assert_eq!(user_info(&m, at).await.1["success"], true);
    assert!(m.iflow().script_user_info(&["maybe"]).is_err());

    m.iflow().expire_access_tokens();
    assert_eq!(user_info(&m, at).await.1["success"], false);
    assert_eq!(m.iflow().stats().user_info_calls, 8);
}

#[tokio::test]
async fn chat_accepts_a_good_signature() {
    let m = mock().await;
    let r = signed(&m, IFLOW_DEFAULT_API_KEY, &hello(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json;charset=UTF-8");
    assert_eq!(r.headers()["server"], "Tengine");
    assert!(r.headers().contains_key("eagleeye-traceid"));
    let b: Value = r.json().await.unwrap();
    assert!(b["extend_fields"]["traceId"].is_string() && b["extend_fields"]["requestId"].is_string());
    assert!(b.get("system_fingerprint").is_none());
    assert!(b["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(b["choices"][0]["finish_reason"], "stop");

    let tools = json!({"model": "kimi-k2", "messages": [{"role": "user", "content": "hi"}], "stream": false});
    let b: Value = signed(&m, IFLOW_DEFAULT_API_KEY, &tools).header("x-mock-scenario", "tools,odd-id").send().await.unwrap().json().await.unwrap();
    assert_eq!(b["id"], "chat-");
    let id = b["choices"][0]["message"]["tool_calls"][0]["id"].as_str().unwrap();
    assert!(!id.starts_with("call_") && id.contains(':'), "{id}");
}

#[tokio::test]
async fn chat_rejects_a_bad_or_missing_signature_with_406() {
    let m = mock().await;
    let url = format!("{}/chat/completions", m.iflow_base());
    let expected = json!({"error": {"message": "status 406", "type": "invalid_request_error"}});
    // No signature headers at all.
    let (s, b) = status_json(client().post(&url).bearer_auth(IFLOW_DEFAULT_API_KEY).json(&hello(false)).send().await.unwrap()).await;
    assert_eq!((s, &b), (406, &expected));
    // Signed with the wrong key.
    let ts = now_ms();
    let r = client()
        .post(&url)
        .bearer_auth(IFLOW_DEFAULT_API_KEY)
        .header("user-agent", "iFlow-Cli")
        .header("session-id", "session-1")
        .header("x-iflow-timestamp", &ts)
        .header("x-iflow-signature", signature("sk-other", "iFlow-Cli", "session-1", &ts))
        .json(&hello(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    // Upper-case hex, or the fields in another order, is not the documented signature.
    let r = client()
        .post(&url)
        .bearer_auth(IFLOW_DEFAULT_API_KEY)
        .header("user-agent", "iFlow-Cli")
        .header("session-id", "session-1")
        .header("x-iflow-timestamp", &ts)
        .header("x-iflow-signature", signature(IFLOW_DEFAULT_API_KEY, "iFlow-Cli", "session-1", &ts).to_uppercase())
        .json(&hello(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    let r = client()
        .post(&url)
        .bearer_auth(IFLOW_DEFAULT_API_KEY)
        .header("user-agent", "iFlow-Cli")
        .header("session-id", "session-1")
        .header("x-iflow-timestamp", &ts)
        .header("x-iflow-signature", signature(IFLOW_DEFAULT_API_KEY, "iFlow-Cli", &ts, "session-1"))
        .json(&hello(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    // A correct signature for another User-Agent.
    let r = client()
        .post(&url)
        .bearer_auth(IFLOW_DEFAULT_API_KEY)
        .header("user-agent", "curl/8")
        .header("session-id", "session-1")
        .header("x-iflow-timestamp", &ts)
        .header("x-iflow-signature", signature(IFLOW_DEFAULT_API_KEY, "curl/8", "session-1", &ts))
        .json(&hello(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    assert_eq!(m.iflow().stats().signature_failures, 5);

    m.iflow().set_strict_signature(false);
    let r = client().post(&url).bearer_auth(IFLOW_DEFAULT_API_KEY).json(&hello(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn wrong_keys_and_access_tokens_get_200_business_envelopes() {
    let m = mock().await;
    for stream in [false, true] {
        let r = signed(&m, "sk-00000000000000000000000000000000", &hello(stream)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let b: Value = r.json().await.unwrap();
        assert_eq!(b, json!({"status": "434", "msg": "Invalid apiKey，get your apiKey: https://iflow.cn/", "body": null}));
    }
    let t = login(&m).await;
    let b: Value = signed(&m, t["access_token"].as_str().unwrap(), &hello(false)).send().await.unwrap().json().await.unwrap();
    assert_eq!(b["status"], "40308");
    assert!(b["body"].is_null());

    // A rotated key is rejected; the new one works.
    m.iflow().set_api_key("sk-11111111111111111111111111111111");
    assert_eq!(signed(&m, IFLOW_DEFAULT_API_KEY, &hello(false)).send().await.unwrap().json::<Value>().await.unwrap()["status"], "434");
    assert_eq!(signed(&m, "sk-11111111111111111111111111111111", &hello(false)).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn scripted_business_errors_for_stream_and_non_stream() {
    let m = mock().await;
    for (code, needle) in [("434", "Invalid apiKey"), ("438", "blocked"), ("439", "token has expired"), ("449", "rate limit")] {
        for stream in [false, true] {
            let r = signed(&m, IFLOW_DEFAULT_API_KEY, &hello(stream)).header("x-mock-scenario", format!("biz={code}")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
            let b: Value = r.json().await.unwrap();
            assert_eq!(b["status"], code);
            assert!(b["msg"].as_str().unwrap().contains(needle), "{b}");
            assert!(b["body"].is_null());
        }
    }
    assert_eq!(m.iflow().stats().business_errors, 8);
    let r = signed(&m, IFLOW_DEFAULT_API_KEY, &hello(false)).header("x-mock-scenario", "bad-request").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert!(b["error"]["message"].as_str().unwrap().starts_with("Bad request!: {\"routify_response\""));
    // The model prefix selects a scenario too.
    let body = json!({"model": "mock:biz=449", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(signed(&m, IFLOW_DEFAULT_API_KEY, &body).send().await.unwrap().json::<Value>().await.unwrap()["status"], "449");
}

#[tokio::test]
async fn stream_uses_data_without_a_space() {
    let m = mock().await;
    let r = signed(&m, IFLOW_DEFAULT_API_KEY, &hello(true)).header("x-mock-scenario", "reply=hi_there").send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream;charset=UTF-8");
    let text = r.text().await.unwrap();
    assert!(text.starts_with("data:{"), "{text}");
    assert!(!text.contains("data: "), "{text}");
    assert!(text.trim_end().ends_with("data:[DONE]"));
    let c = chunks(&text);
    let content: String = c.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "hi there");
    assert_eq!(c.last().unwrap()["choices"][0]["finish_reason"], "stop");
    assert!(c.iter().all(|c| c.get("system_fingerprint").is_none()));
}

#[tokio::test]
async fn stream_can_end_in_network_error() {
    let m = mock().await;
    let text = signed(&m, IFLOW_DEFAULT_API_KEY, &hello(true)).header("x-mock-scenario", "network-error,reply=a_b").send().await.unwrap().text().await.unwrap();
    let c = chunks(&text);
    let last = c.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "network_error");
    assert_eq!(last["choices"][0]["delta"]["content"], "");
    assert_eq!(sse_data(&text).last().unwrap(), "[DONE]");
    let content: String = c.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "a b");
    // With nothing before it.
    let text = signed(&m, IFLOW_DEFAULT_API_KEY, &hello(true)).header("x-mock-scenario", "network-error=0").send().await.unwrap().text().await.unwrap();
    let c = chunks(&text);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["choices"][0]["finish_reason"], "network_error");
    // And a stream request can be answered with a whole JSON completion.
    let r = signed(&m, IFLOW_DEFAULT_API_KEY, &hello(true)).header("x-mock-scenario", "json-for-stream").send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
}

#[tokio::test]
async fn models_is_a_spring_404() {
    let m = mock().await;
    let (s, b) = status_json(client().get(format!("{}/models", m.iflow_base())).bearer_auth(IFLOW_DEFAULT_API_KEY).send().await.unwrap()).await;
    assert_eq!(s, 404);
    assert_eq!(b["status"], 404);
    assert_eq!(b["error"], "Not Found");
    assert_eq!(b["path"], "/v1/models");
    assert!(b["timestamp"].as_str().unwrap().ends_with("+00:00"));
    let (s, b) = status_json(client().get(format!("{}/iflow/nowhere", m.url())).send().await.unwrap()).await;
    assert_eq!((s, b["path"].as_str()), (404, Some("/nowhere")));
}

#[tokio::test]
async fn cookie_mode_api_key() {
    let m = mock().await;
    let url = format!("{}/iflow/api/openapi/apikey", m.url());
    let (_, b) = status_json(client().get(&url).send().await.unwrap()).await;
    assert_eq!(b["success"], false);
    let (_, b) = status_json(client().get(&url).header("cookie", "BXAuth=abc").send().await.unwrap()).await;
    assert_eq!(b["success"], true);
    assert_eq!(b["data"]["apiKey"], IFLOW_DEFAULT_API_KEY);
    assert_eq!(b["data"]["hasExpired"], false);
    let (_, b) = status_json(client().post(&url).header("cookie", "BXAuth=abc").json(&json!({"name": "mine"})).send().await.unwrap()).await;
    assert_eq!(b["data"]["name"], "mine");
    assert_ne!(b["data"]["apiKey"], IFLOW_DEFAULT_API_KEY);
    assert_eq!(m.iflow().api_key(), b["data"]["apiKey"].as_str().unwrap());
}

#[tokio::test]
async fn control_endpoints_over_http() {
    let m = mock().await;
    let ctl = |action: &str, body: Value| {
        let url = format!("{}/__mock/iflow/{action}", m.url());
        async move { status_json(client().post(url).json(&body).send().await.unwrap()).await }
    };
    assert_eq!(ctl("api-key", json!({"apiKey": "sk-22222222222222222222222222222222"})).await.0, 200);
    assert_eq!(signed(&m, "sk-22222222222222222222222222222222", &hello(false)).send().await.unwrap().status(), 200);
    assert_eq!(ctl("strict-signature", json!({"strict": false})).await.0, 200);
    let r = client().post(format!("{}/chat/completions", m.iflow_base())).bearer_auth("sk-22222222222222222222222222222222").json(&hello(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(ctl("deny-authorization", json!({"deny": true})).await.0, 200);
    let loc = authorize(&m, &format!("redirect={}&client_id={IFLOW_CLIENT_ID}", urlencode(CALLBACK))).await;
    assert_eq!(query_of(&loc)["error"], "access_denied");
    let (s, t) = ctl("issue-tokens", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(user_info(&m, t["access_token"].as_str().unwrap()).await.1["data"]["apiKey"], "sk-22222222222222222222222222222222");
    assert_eq!(ctl("script-user-info", json!({"steps": ["503"]})).await.0, 200);
    assert_eq!(user_info(&m, t["access_token"].as_str().unwrap()).await.0, 503);
    assert_eq!(ctl("fail-refresh", json!({"error": "server_error"})).await.0, 200);
    assert_eq!(ctl("strict-signature", json!({"strict": "yes"})).await.0, 400);

    let (s, stats) = status_json(client().get(format!("{}/__mock/iflow/stats", m.url())).send().await.unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(stats["apiKey"], "sk-22222222222222222222222222222222");
    assert_eq!(stats["chatRequests"], 2);
    assert_eq!(stats["authorizations"], 1);
    assert_eq!(stats["userInfoCalls"], 2);

    // Reset puts the defaults back.
    assert_eq!(ctl("reset", json!({})).await.0, 200);
    assert_eq!(m.iflow().api_key(), IFLOW_DEFAULT_API_KEY);
    let r = client().post(format!("{}/chat/completions", m.iflow_base())).bearer_auth(IFLOW_DEFAULT_API_KEY).json(&hello(false)).send().await.unwrap();
    assert_eq!(r.status(), 406, "strict again after reset");
    m.iflow().set_strict_signature(false);
    m.reset();
    assert_eq!(m.iflow().stats().chat_requests, 0);
    assert_eq!(
        m.control("iflow/strict-signature", &json!({"strict": true})).unwrap(),
        json!({}),
    );
}
