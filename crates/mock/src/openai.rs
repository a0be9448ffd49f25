//! The OpenAI-compatible surface, which is also the Qwen chat mock (providers-wire §2, §6.2):
//!
//! * `POST /v1/chat/completions`: portal.qwen.ai in OAuth mode (`resource_url` + `/v1`), and the
//!   generic OpenAI-compatible mock;
//! * `POST /compatible-mode/v1/chat/completions`: DashScope in API-key mode;
//! * `GET /v1/models`, `GET /compatible-mode/v1/models`: the configured model list.
//!
//! Both answer JSON or SSE in DashScope's shape (providers-wire §2.4, §2.5). A bearer that is
//! an access token issued by the Qwen OAuth mock must still be valid (else 401
//! `invalid_api_key` "invalid access token or token expired"); any other bearer is an API
//! key, checked against the configured list (any is accepted when the list is empty). Faults
//! come from the request's [`Scenario`].

use axum::extract::{Request, State as AxumState};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::plan::{Flavor, Plan};
use crate::request::{delay_and_reset, error_response, json_response, scenario_of, scripted_status, take, Incoming, Shared};
use crate::scenario::Scenario;
use crate::state::{lock, State, TokenStatus};
use crate::stream::sse_response;

pub(crate) fn routes() -> Router<Shared> {
    let api = Router::new().route("/chat/completions", post(chat)).route("/models", get(models));
    Router::new().nest("/v1", api.clone()).nest("/compatible-mode/v1", api)
}

#[allow(clippy::result_large_err)]
fn check_auth(st: &State, inc: &Incoming, sc: &Scenario) -> Result<(), Response> {
    let unauthorized = || error_response(401, "invalid_api_key", "invalid access token or token expired", sc);
    let given = inc.bearer();
    if let Some(token) = given {
        let mut q = lock(&st.qwen);
        match q.token_status(token) {
            TokenStatus::Valid => return Ok(()),
            TokenStatus::Expired => {
                q.rejected_tokens += 1;
                return Err(unauthorized());
            }
            TokenStatus::Unknown => {}
        }
    }
    let keys = st.api_keys.read().unwrap_or_else(|p| p.into_inner());
    if keys.is_empty() {
        return Ok(());
    }
    match given {
        Some(k) if keys.iter().any(|a| a == k) => Ok(()),
        _ => Err(unauthorized()),
    }
}

/// Runs the parts of a scenario that apply before any answer: latency, reset, auth, status.
async fn preamble(st: &State, inc: &Incoming, sc: &Scenario) -> Result<(), Response> {
    delay_and_reset(inc, sc).await;
    check_auth(st, inc, sc)?;
    scripted_status(sc)?;
    qwen_error(sc)
}

/// The Qwen / DashScope error scripts of §2.6 (scenario items `quota`, `quota-403`,
/// `rate-limit`, `throttling`, `tpm-quota`, `thinking-required`).
#[allow(clippy::result_large_err)]
fn qwen_error(sc: &Scenario) -> Result<(), Response> {
    if let Some(status) = sc.quota {
        // The exact body of §2.6: no `param`, no `request_id`.
        return Err(json_response(
            status,
            json!({"error": {"code": "insufficient_quota", "message": "Free allocated quota exceeded.", "type": "insufficient_quota"}}),
        ));
    }
    if sc.rate_limit {
        let mut sc = sc.clone();
        sc.retry_after_secs.get_or_insert_with(|| "1".to_string());
        return Err(error_response(429, "rate_limit_exceeded", "Requests rate limit exceeded, please try again later.", &sc));
    }
    if sc.throttling {
        return Err(error_response(429, "rate_limit_exceeded", "Requests throttling triggered.", sc));
    }
    if sc.tpm_quota {
        return Err(error_response(
            429,
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details. For details, see: https://help.aliyun.com/zh/model-studio/error-code#token-limit",
            sc,
        ));
    }
    if sc.thinking_required {
        return Err(error_response(
            400,
            "invalid_parameter_error",
            "<400> InternalError.Algo.InvalidParameter: The value of the enable_thinking parameter is restricted to True.",
            sc,
        ));
    }
    Ok(())
}

/// Whether an assistant message in the history carries `function.arguments` that is a string
/// but not JSON, which DashScope rejects (§2.3, §2.6).
fn has_bad_tool_arguments(messages: &[Value]) -> bool {
    messages
        .iter()
        .filter(|m| m.get("role").and_then(|r| r.as_str()) == Some("assistant"))
        .filter_map(|m| m.get("tool_calls").and_then(|t| t.as_array()))
        .flatten()
        .any(|tc| matches!(tc.pointer("/function/arguments"), Some(Value::String(s)) if serde_json::from_str::<Value>(s).is_err()))
}

async fn models(AxumState(st): AxumState<Shared>, req: Request) -> Response {
    let inc = match take(&st, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let sc = match scenario_of(&inc) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = preamble(&st, &inc, &sc).await {
        return r;
    }
    let data: Vec<Value> = st.models.iter().map(|m| json!({"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "rcc-mock"})).collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn chat(AxumState(st): AxumState<Shared>, req: Request) -> Response {
    let inc = match take(&st, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    State::bump(&st.chat_requests);
    let sc = match scenario_of(&inc) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = preamble(&st, &inc, &sc).await {
        return r;
    }
    let Some(messages) = inc.body.get("messages").and_then(|m| m.as_array()).filter(|m| !m.is_empty()) else {
        return error_response(400, "invalid_request_error", "messages must be a non-empty array", &sc);
    };
    let model = inc.body.get("model").and_then(|m| m.as_str()).unwrap_or("").to_string();
    if model.is_empty() {
        return error_response(400, "invalid_request_error", "model is required", &sc);
    }
    if has_bad_tool_arguments(messages) {
        return error_response(
            400,
            "invalid_parameter_error",
            "<400> InternalError.Algo.InvalidParameter: The \"function.arguments\" parameter of the code model must be in JSON format.",
            &sc,
        );
    }
    let plan = Plan::new(&sc, messages, model, Flavor::DashScope);
    let streaming = inc.body.get("stream").and_then(|s| s.as_bool()).unwrap_or(false);
    if sc.html {
        return ([("content-type", "text/html")], "<html><body>gateway says hello</body></html>").into_response();
    }
    if !streaming || sc.json_for_stream {
        if sc.malformed {
            return ([("content-type", "application/json")], "{\"id\":\"chatcmpl-broken\",\"choices\":[{").into_response();
        }
        return Json(plan.completion()).into_response();
    }
    let include_usage = inc.body.pointer("/stream_options/include_usage").and_then(|v| v.as_bool()).unwrap_or(false);
    sse_response(st.clone(), plan.stream_events(include_usage), sc, Flavor::DashScope)
}
