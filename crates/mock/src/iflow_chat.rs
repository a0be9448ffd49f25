//! The iFlow chat mock (replaces `apis.iflow.cn`, providers-wire §3.1, §3.5, §6.3), under
//! `/iflow/v1`:
//!
//! * `POST /iflow/v1/chat/completions`, checked in this order:
//!   1. `Authorization: Bearer <apiKey>` must be the current API key. An OAuth access token
//!      issued by the iFlow mock gets the business envelope `{"status":"40308",…}`; anything
//!      else `{"status":"434","msg":"Invalid apiKey，get your apiKey: https://iflow.cn/","body":null}`
//!      (both HTTP 200, `application/json`, even for stream requests).
//!   2. While strict signature checking is on (the default): `User-Agent: iFlow-Cli`, a
//!      `session-id`, a decimal `x-iflow-timestamp` and `x-iflow-signature` = lower-case
//!      hex(HMAC-SHA256(key = API key, message = `<User-Agent>:<session-id>:<timestamp>`)),
//!      else 406 `{"error":{"message":"status 406","type":"invalid_request_error"}}`. The
//!      timestamp is not compared with the clock.
//!   3. Scenario faults (`status`, `bad-request`, `biz=CODE`, stream items, see
//!      [`crate::Scenario`]).
//!
//!   Success: `application/json;charset=UTF-8` with `extend_fields`, no `system_fingerprint`,
//!   ids `chatcmpl-<24 hex>` (or `chat-` with `odd-id`), tool ids like `get_weather:170`,
//!   headers `server: Tengine` and `eagleeye-traceid`. Streams: `text/event-stream;charset=UTF-8`,
//!   `data:{…}` with no space, ending `data:[DONE]`; `network-error` ends one with
//!   `finish_reason:"network_error"`.
//! * `GET /iflow/v1/models` → 404 with Spring Boot's error body (the real one is unreliable).

use axum::extract::{Request, State as AxumState};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::plan::{Flavor, Plan};
use crate::request::{delay_and_reset, json_response, random_hex, scenario_of, scripted_status, take, Incoming, Shared};
use crate::state::{lock, State};
use crate::stream::sse_response;

/// The `User-Agent` the real CLI sends, and the only one accepted in strict mode.
pub(crate) const IFLOW_USER_AGENT: &str = "iFlow-Cli";

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/v1/chat/completions", post(chat)).route("/v1/models", get(crate::iflow::not_found))
}

/// The message the real service sends with each business code (§3.5).
fn business_message(code: &str) -> String {
    match code {
        "434" => "Invalid apiKey，get your apiKey: https://iflow.cn/".into(),
        "438" => "Access to the current AK has been blocked due to unauthorized requests".into(),
        "439" => "Your token has expired, please log in again".into(),
        "449" => "You exceeded your current rate limit".into(),
        "40308" => "An OAuth access token is not an apiKey，get your apiKey: https://iflow.cn/".into(),
        other => format!("mock business error {other}"),
    }
}

/// An iFlow business error: HTTP 200 `{"status":"CODE","msg":…,"body":null}`.
fn business(st: &State, code: &str) -> Response {
    lock(&st.iflow).business_errors += 1;
    json_response(200, json!({"status": code, "msg": business_message(code), "body": null}))
}

/// hex(HMAC-SHA256(key = api key, message = `UA:session-id:timestamp`)).
pub(crate) fn iflow_signature(api_key: &str, user_agent: &str, session_id: &str, timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(api_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{user_agent}:{session_id}:{timestamp}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn signature_ok(inc: &Incoming, api_key: &str) -> bool {
    let (Some(ua), Some(sid), Some(ts), Some(sig)) =
        (inc.header("user-agent"), inc.header("session-id"), inc.header("x-iflow-timestamp"), inc.header("x-iflow-signature"))
    else {
        return false;
    };
    ua == IFLOW_USER_AGENT
        && !sid.is_empty()
        && !ts.is_empty()
        && ts.bytes().all(|b| b.is_ascii_digit())
        && sig == iflow_signature(api_key, ua, sid, ts)
}

fn bad_request(detail: &str) -> Response {
    let inner = json!({"routify_response": {"code": 400, "message": detail}}).to_string();
    json_response(400, json!({"error": {"message": format!("Bad request!: {inner}")}}))
}

async fn chat(AxumState(st): AxumState<Shared>, req: Request) -> Response {
    let inc = match take(&st, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    State::bump(&st.chat_requests);
    lock(&st.iflow).chat_requests += 1;
    let sc = match scenario_of(&inc) {
        Ok(s) => s,
        Err(r) => return r,
    };
    delay_and_reset(&inc, &sc).await;
    let (api_key, strict, is_access_token) = {
        let q = lock(&st.iflow);
        let given = inc.bearer().unwrap_or("");
        (q.api_key.clone(), q.strict_signature, q.access_tokens.contains_key(given))
    };
    match inc.bearer() {
        Some(k) if k == api_key => {}
        _ if is_access_token => return business(&st, "40308"),
        _ => return business(&st, "434"),
    }
    if strict && !signature_ok(&inc, &api_key) {
        lock(&st.iflow).signature_failures += 1;
        return json_response(406, json!({"error": {"message": "status 406", "type": "invalid_request_error"}}));
    }
    if let Err(r) = scripted_status(&sc) {
        return r;
    }
    if sc.bad_request {
        return bad_request("invalid request");
    }
    if let Some(code) = &sc.biz {
        return business(&st, code);
    }
    let Some(messages) = inc.body.get("messages").and_then(|m| m.as_array()).filter(|m| !m.is_empty()) else {
        return bad_request("messages must be a non-empty array");
    };
    let model = inc.body.get("model").and_then(|m| m.as_str()).unwrap_or("").to_string();
    if model.is_empty() {
        return bad_request("model is required");
    }
    let plan = Plan::new(&sc, messages, model, Flavor::IFlow);
    let streaming = inc.body.get("stream").and_then(|s| s.as_bool()).unwrap_or(false);
    if sc.html {
        return ([("content-type", "text/html")], "<html><body>gateway says hello</body></html>").into_response();
    }
    if !streaming || sc.json_for_stream {
        let body = if sc.malformed { "{\"id\":\"chatcmpl-broken\",\"choices\":[{".to_string() } else { plan.completion().to_string() };
        let mut resp = ([("content-type", "application/json;charset=UTF-8"), ("server", "Tengine")], body).into_response();
        if let Ok(v) = HeaderValue::from_str(&random_hex(15)) {
            resp.headers_mut().insert("eagleeye-traceid", v);
        }
        return resp;
    }
    let include_usage = inc.body.pointer("/stream_options/include_usage").and_then(|v| v.as_bool()).unwrap_or(false);
    sse_response(st.clone(), plan.stream_events(include_usage), sc, Flavor::IFlow)
}
