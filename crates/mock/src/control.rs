//! The control surface: typed Rust handles ([`QwenControl`], [`IflowControl`]) and the same
//! operations over HTTP, so that another process (jest, the demo) can drive the mock.
//!
//! HTTP (JSON bodies; an empty body counts as `{}`; answers are JSON, `{}` for setters,
//! 400 `{"error":"…"}` for an unknown action or a bad body):
//!
//! | endpoint | body | effect |
//! |---|---|---|
//! | `GET /__mock/stats` | | [`crate::Stats`] |
//! | `GET /__mock/requests` | | recorded requests |
//! | `POST /__mock/reset` | | resets everything ([`crate::MockServer::reset`]) |
//! | `POST /__mock/qwen/script` | `{"steps":["pending","slow_down","approve",…]}` | [`QwenControl::script`] |
//! | `POST /__mock/qwen/approve-after` | `{"polls":N\|null}` | [`QwenControl::approve_after`] |
//! | `POST /__mock/qwen/approve` | `{"userCode"?:S}` → `{"approved":N}` | [`QwenControl::approve`] |
//! | `POST /__mock/qwen/deny` | `{"userCode"?:S}` → `{"denied":N}` | [`QwenControl::deny`] |
//! | `POST /__mock/qwen/token-lifetime` | `{"seconds":N}` | [`QwenControl::set_token_lifetime`] |
//! | `POST /__mock/qwen/device-code-lifetime` | `{"seconds":N}` | [`QwenControl::set_device_code_lifetime`] |
//! | `POST /__mock/qwen/poll-interval` | `{"seconds":N\|null}` | [`QwenControl::set_poll_interval`] |
//! | `POST /__mock/qwen/resource-url` | `{"url":S\|null}` | [`QwenControl::set_resource_url`] |
//! | `POST /__mock/qwen/client-id` | `{"clientId":S\|null}` | [`QwenControl::set_client_id`] |
//! | `POST /__mock/qwen/expire-access-tokens` | | [`QwenControl::expire_access_tokens`] |
//! | `POST /__mock/qwen/fail-refresh` | `{"error":S\|null}` | [`QwenControl::fail_refresh`] |
//! | `POST /__mock/qwen/refresh-delay` | `{"ms":N}` | [`QwenControl::set_refresh_delay`] |
//! | `POST /__mock/qwen/old-token-grace` | `{"ms":N}` | [`QwenControl::set_old_token_grace`] |
//! | `POST /__mock/qwen/issue-tokens` | → [`TokenPair`] | [`QwenControl::issue_tokens`] |
//! | `GET`/`POST /__mock/qwen/stats` | → [`QwenStats`] | [`QwenControl::stats`] |
//! | `POST /__mock/qwen/reset` | | [`QwenControl::reset`] |
//! | `POST /__mock/iflow/api-key` | `{"apiKey":S}` | [`IflowControl::set_api_key`] |
//! | `POST /__mock/iflow/strict-signature` | `{"strict":B}` | [`IflowControl::set_strict_signature`] |
//! | `POST /__mock/iflow/deny-authorization` | `{"deny":B}` | [`IflowControl::deny_authorization`] |
//! | `POST /__mock/iflow/client-id` | `{"clientId":S\|null}` | [`IflowControl::set_client_id`] |
//! | `POST /__mock/iflow/client-secret` | `{"clientSecret":S\|null}` | [`IflowControl::set_client_secret`] |
//! | `POST /__mock/iflow/token-lifetime` | `{"seconds":N}` | [`IflowControl::set_token_lifetime`] |
//! | `POST /__mock/iflow/fail-refresh` | `{"error":S\|null}` | [`IflowControl::fail_refresh`] |
//! | `POST /__mock/iflow/expire-access-tokens` | | [`IflowControl::expire_access_tokens`] |
//! | `POST /__mock/iflow/user-info` | `{"email":S\|null,"phone":S\|null}` | [`IflowControl::set_user_info`] |
//! | `POST /__mock/iflow/script-user-info` | `{"steps":["500","ok",…]}` | [`IflowControl::script_user_info`] |
//! | `POST /__mock/iflow/issue-tokens` | → [`TokenPair`] | [`IflowControl::issue_tokens`] |
//! | `GET`/`POST /__mock/iflow/stats` | → [`IflowStats`] | [`IflowControl::stats`] |
//! | `POST /__mock/iflow/reset` | | [`IflowControl::reset`] |

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::qwen_oauth::{decide, resource_url, REFRESH_FAILURES};
use crate::request::{json_response, Shared};
use crate::state::{lock, DeviceState, IflowState, IflowStats, PollStep, QwenState, QwenStats, State, TokenPair};

/// Controls the Qwen OAuth and Qwen chat mocks. Cheap to clone; usable from any task.
#[derive(Clone)]
pub struct QwenControl {
    st: Arc<State>,
}

impl QwenControl {
    pub(crate) fn new(st: Arc<State>) -> QwenControl {
        QwenControl { st }
    }

    /// Replaces the poll script: each device-grant poll (after its PKCE check) takes the next
    /// step. Steps: `pending` (400 `authorization_pending`), `pending_200` (200
    /// `{"status":"pending"}`), `slow_down` (429 `slow_down`), `slow_down_400` (400
    /// `slow_down`), `expired` (400 `expired_token`), `denied` (400 `access_denied`), `approve`
    /// (200 with tokens), `server_error` (500, HTML body). The RFC names
    /// `authorization_pending`, `expired_token`, `access_denied` are accepted too. When the
    /// script is empty, polls fall back to the approval rules ([`Self::approve_after`]).
    pub fn script<S: AsRef<str>>(&self, steps: &[S]) -> Result<(), String> {
        let parsed = steps.iter().map(|s| PollStep::parse(s.as_ref())).collect::<Result<Vec<_>, _>>()?;
        lock(&self.st.qwen).script = parsed.into();
        Ok(())
    }

    /// Without a script, a device code answers `authorization_pending` to its first `polls`
    /// polls and succeeds on the next one. `None`: it stays pending until [`Self::approve`]
    /// (or a visit to its `verification_uri_complete`). Default `Some(0)`: the first poll
    /// succeeds.
    pub fn approve_after(&self, polls: Option<u32>) {
        lock(&self.st.qwen).approve_after = polls;
    }

    /// The user approves the device code with `user_code`, or every outstanding one.
    /// Returns how many were approved.
    pub fn approve(&self, user_code: Option<&str>) -> usize {
        decide(&mut lock(&self.st.qwen), user_code, DeviceState::Approved)
    }

    /// The user denies: later polls get 400 `access_denied`. Returns how many were denied.
    pub fn deny(&self, user_code: Option<&str>) -> usize {
        decide(&mut lock(&self.st.qwen), user_code, DeviceState::Denied)
    }

    /// Lifetime of access tokens issued from now on: their `expires_in`, and when the chat
    /// endpoints start answering 401. Default 21600 s.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        lock(&self.st.qwen).token_lifetime = lifetime;
    }

    /// `expires_in` of new device codes; polls after it get 400 `expired_token`. Default 1800 s.
    pub fn set_device_code_lifetime(&self, lifetime: Duration) {
        lock(&self.st.qwen).device_code_lifetime = lifetime;
    }

    /// `interval` (seconds) in the device-code answer; `None` (the default) leaves it out.
    pub fn set_poll_interval(&self, seconds: Option<u64>) {
        lock(&self.st.qwen).interval = seconds;
    }

    /// `resource_url` in token answers (e.g. `"portal.qwen.ai"`-style without a scheme);
    /// `None` (the default) means `http://127.0.0.1:<port>`.
    pub fn set_resource_url(&self, url: Option<String>) {
        lock(&self.st.qwen).resource_url = url;
    }

    /// The `resource_url` token answers carry now.
    pub fn resource_url(&self) -> String {
        resource_url(&self.st, &lock(&self.st.qwen))
    }

    /// The `client_id` every request must carry; `None` accepts any. Default qwen-code's
    /// `f0304373b74a44d2b584a3fb70ca9e56`.
    pub fn set_client_id(&self, client_id: Option<String>) {
        lock(&self.st.qwen).client_id = client_id;
    }

    /// Every access token issued so far expires now (refresh tokens stay usable): the next
    /// chat request with one gets 401 `invalid_api_key`.
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        lock(&self.st.qwen).access_tokens.values_mut().for_each(|e| *e = now);
    }

    /// While set, every refresh fails: `invalid_grant` (400), `invalid_client` (401),
    /// `server_error` (500, HTML), `invalid_json` (200, not JSON), `error_200` (200 with an
    /// `error` body). `None` clears it.
    pub fn fail_refresh(&self, error: Option<&str>) -> Result<(), String> {
        lock(&self.st.qwen).fail_refresh = check_failure(error)?;
        Ok(())
    }

    /// How long the token endpoint waits before answering a refresh (the refresh is counted
    /// on arrival), so that concurrent refreshers overlap.
    pub fn set_refresh_delay(&self, delay: Duration) {
        lock(&self.st.qwen).refresh_delay = delay;
    }

    /// How long an access token keeps working after a refresh replaced it. Default zero:
    /// it stops at once (the refresh token is always single-use).
    pub fn set_old_token_grace(&self, grace: Duration) {
        lock(&self.st.qwen).old_token_grace = grace;
    }

    /// Issues a token pair as a successful device flow would, without running it.
    pub fn issue_tokens(&self) -> TokenPair {
        let mut q = lock(&self.st.qwen);
        let url = resource_url(&self.st, &q);
        crate::qwen_oauth::issue(&mut q, url)
    }

    pub fn stats(&self) -> QwenStats {
        let q = lock(&self.st.qwen);
        QwenStats {
            device_codes: q.device_code_count,
            polls: q.polls,
            poll_times: q.poll_times.clone(),
            refreshes: q.refreshes,
            issued_tokens: q.issued_tokens,
            rejected_tokens: q.rejected_tokens,
            access_token: q.last_access_token.clone(),
            refresh_token: q.last_refresh_token.clone(),
        }
    }

    /// Back to the defaults: tokens, device codes, script, switches and counters forgotten.
    pub fn reset(&self) {
        *lock(&self.st.qwen) = QwenState::default();
    }
}

fn check_failure(error: Option<&str>) -> Result<Option<String>, String> {
    match error {
        None => Ok(None),
        Some(e) if REFRESH_FAILURES.contains(&e) => Ok(Some(e.to_string())),
        Some(e) => Err(format!("unknown refresh failure {e:?}; expected one of {REFRESH_FAILURES:?}")),
    }
}

/// Controls the iFlow OAuth, user-info and chat mocks. Cheap to clone; usable from any task.
#[derive(Clone)]
pub struct IflowControl {
    st: Arc<State>,
}

impl IflowControl {
    pub(crate) fn new(st: Arc<State>) -> IflowControl {
        IflowControl { st }
    }

    /// The API key that user info hands out and chat requires (and that keys the signature).
    /// Default `sk-0123456789abcdef0123456789abcdef`. The old key starts getting 434.
    pub fn set_api_key(&self, key: impl Into<String>) {
        lock(&self.st.iflow).api_key = key.into();
    }

    pub fn api_key(&self) -> String {
        lock(&self.st.iflow).api_key.clone()
    }

    /// Whether chat requires `User-Agent: iFlow-Cli`, `session-id`, `x-iflow-timestamp` and a
    /// good `x-iflow-signature` (406 otherwise). Default on.
    pub fn set_strict_signature(&self, strict: bool) {
        lock(&self.st.iflow).strict_signature = strict;
    }

    /// While on, the authorize page redirects with `error=access_denied` instead of a code.
    pub fn deny_authorization(&self, deny: bool) {
        lock(&self.st.iflow).deny = deny;
    }

    /// The client id the authorize page and the token endpoint require; `None` accepts any.
    /// Default `10009311001`.
    pub fn set_client_id(&self, client_id: Option<String>) {
        lock(&self.st.iflow).client_id = client_id;
    }

    /// The client secret the token endpoint requires; `None` (the default) accepts any, as
    /// long as the Basic header and the form agree.
    pub fn set_client_secret(&self, secret: Option<String>) {
        lock(&self.st.iflow).client_secret = secret;
    }

    /// `expires_in` and real lifetime of access tokens issued from now on. Default 48 h.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        lock(&self.st.iflow).token_lifetime = lifetime;
    }

    /// While set, every refresh fails, with the same kinds as [`QwenControl::fail_refresh`].
    pub fn fail_refresh(&self, error: Option<&str>) -> Result<(), String> {
        lock(&self.st.iflow).fail_refresh = check_failure(error)?;
        Ok(())
    }

    /// Every access token issued so far expires now: user info answers `success:false`.
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        lock(&self.st.iflow).access_tokens.values_mut().for_each(|e| *e = now);
    }

    /// The `email` and `phone` user info returns (null when `None`).
    pub fn set_user_info(&self, email: Option<String>, phone: Option<String>) {
        let mut q = lock(&self.st.iflow);
        q.email = email;
        q.phone = phone;
    }

    /// Replaces the user-info script, one step per call: `ok` (the normal answer), `failure`
    /// (200 `success:false`), `empty_key` (200 `success:true` with `apiKey:""`), or an HTTP
    /// status such as `500` / `429` (plain-text body). Then back to normal answers.
    pub fn script_user_info<S: AsRef<str>>(&self, steps: &[S]) -> Result<(), String> {
        let mut out = std::collections::VecDeque::new();
        for s in steps {
            let s = s.as_ref();
            let ok = matches!(s, "ok" | "failure" | "empty_key") || s.parse::<u16>().is_ok_and(|n| (100..=599).contains(&n));
            if !ok {
                return Err(format!("unknown user-info step {s:?}"));
            }
            out.push_back(s.to_string());
        }
        lock(&self.st.iflow).user_info_script = out;
        Ok(())
    }

    /// Issues a token pair as a successful code exchange would.
    pub fn issue_tokens(&self) -> TokenPair {
        crate::iflow::issue(&mut lock(&self.st.iflow))
    }

    pub fn stats(&self) -> IflowStats {
        let q = lock(&self.st.iflow);
        IflowStats {
            api_key: q.api_key.clone(),
            authorizations: q.authorizations,
            token_calls: q.token_calls,
            code_exchanges: q.code_exchanges,
            refreshes: q.refreshes,
            user_info_calls: q.user_info_calls,
            chat_requests: q.chat_requests,
            signature_failures: q.signature_failures,
            business_errors: q.business_errors,
            access_token: q.last_access_token.clone(),
            refresh_token: q.last_refresh_token.clone(),
        }
    }

    /// Back to the defaults: API key, switches, tokens, codes, scripts and counters.
    pub fn reset(&self) {
        *lock(&self.st.iflow) = IflowState::default();
    }
}

// ---------------------------------------------------------------------------------------------
// The JSON form, shared by HTTP and the napi binding.

fn field<'a>(body: &'a Value, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|v| !v.is_null())
}

fn opt_str(body: &Value, key: &str) -> Result<Option<String>, String> {
    match field(body, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key} must be a string or null")),
    }
}

fn opt_num(body: &Value, key: &str) -> Result<Option<f64>, String> {
    match field(body, key) {
        None => Ok(None),
        Some(v) => v.as_f64().filter(|n| *n >= 0.0).map(Some).ok_or_else(|| format!("{key} must be a non-negative number or null")),
    }
}

fn num(body: &Value, key: &str) -> Result<f64, String> {
    opt_num(body, key)?.ok_or_else(|| format!("{key} is required"))
}

fn boolean(body: &Value, key: &str) -> Result<bool, String> {
    field(body, key).and_then(Value::as_bool).ok_or_else(|| format!("{key} must be a boolean"))
}

fn strings(body: &Value, key: &str) -> Result<Vec<String>, String> {
    let arr = field(body, key).and_then(Value::as_array).ok_or_else(|| format!("{key} must be an array of strings"))?;
    arr.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| format!("{key} must be an array of strings"))).collect()
}

fn ok() -> Result<Value, String> {
    Ok(json!({}))
}

/// Runs one control action, e.g. `("qwen", "script", {"steps":[…]})`.
pub(crate) fn dispatch(st: &Arc<State>, group: &str, action: &str, body: &Value) -> Result<Value, String> {
    match group {
        "qwen" => {
            let c = QwenControl::new(st.clone());
            match action {
                "script" => c.script(&strings(body, "steps")?).and_then(|_| ok()),
                "approve-after" => {
                    c.approve_after(opt_num(body, "polls")?.map(|n| n as u32));
                    ok()
                }
                "approve" => Ok(json!({"approved": c.approve(opt_str(body, "userCode")?.as_deref())})),
                "deny" => Ok(json!({"denied": c.deny(opt_str(body, "userCode")?.as_deref())})),
                "token-lifetime" => {
                    c.set_token_lifetime(Duration::from_secs_f64(num(body, "seconds")?));
                    ok()
                }
                "device-code-lifetime" => {
                    c.set_device_code_lifetime(Duration::from_secs_f64(num(body, "seconds")?));
                    ok()
                }
                "poll-interval" => {
                    c.set_poll_interval(opt_num(body, "seconds")?.map(|n| n as u64));
                    ok()
                }
                "resource-url" => {
                    c.set_resource_url(opt_str(body, "url")?);
                    ok()
                }
                "client-id" => {
                    c.set_client_id(opt_str(body, "clientId")?);
                    ok()
                }
                "expire-access-tokens" => {
                    c.expire_access_tokens();
                    ok()
                }
                "fail-refresh" => c.fail_refresh(opt_str(body, "error")?.as_deref()).and_then(|_| ok()),
                "refresh-delay" => {
                    c.set_refresh_delay(Duration::from_secs_f64(num(body, "ms")? / 1000.0));
                    ok()
                }
                "old-token-grace" => {
                    c.set_old_token_grace(Duration::from_secs_f64(num(body, "ms")? / 1000.0));
                    ok()
                }
                "issue-tokens" => Ok(to_value(&c.issue_tokens())),
                "stats" => Ok(to_value(&c.stats())),
                "reset" => {
                    c.reset();
                    ok()
                }
                other => Err(format!("unknown qwen control action {other:?}")),
            }
        }
        "iflow" => {
            let c = IflowControl::new(st.clone());
            match action {
                "api-key" => {
                    let key = opt_str(body, "apiKey")?.filter(|k| !k.is_empty()).ok_or("apiKey must be a non-empty string")?;
                    c.set_api_key(key);
                    ok()
                }
                "strict-signature" => {
                    c.set_strict_signature(boolean(body, "strict")?);
                    ok()
                }
                "deny-authorization" => {
                    c.deny_authorization(boolean(body, "deny")?);
                    ok()
                }
                "client-id" => {
                    c.set_client_id(opt_str(body, "clientId")?);
                    ok()
                }
                "client-secret" => {
                    c.set_client_secret(opt_str(body, "clientSecret")?);
                    ok()
                }
                "token-lifetime" => {
                    c.set_token_lifetime(Duration::from_secs_f64(num(body, "seconds")?));
                    ok()
                }
                "fail-refresh" => c.fail_refresh(opt_str(body, "error")?.as_deref()).and_then(|_| ok()),
                "expire-access-tokens" => {
                    c.expire_access_tokens();
                    ok()
                }
                "user-info" => {
                    c.set_user_info(opt_str(body, "email")?, opt_str(body, "phone")?);
                    ok()
                }
                "script-user-info" => c.script_user_info(&strings(body, "steps")?).and_then(|_| ok()),
                "issue-tokens" => Ok(to_value(&c.issue_tokens())),
                "stats" => Ok(to_value(&c.stats())),
                "reset" => {
                    c.reset();
                    ok()
                }
                other => Err(format!("unknown iflow control action {other:?}")),
            }
        }
        other => Err(format!("unknown mock control group {other:?}")),
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/__mock/stats", get(stats))
        .route("/__mock/requests", get(requests))
        .route("/__mock/reset", post(reset))
        .route("/__mock/{group}/{action}", get(control_get).post(control_post))
}

async fn stats(AxumState(st): AxumState<Shared>) -> Json<Value> {
    Json(serde_json::to_value(st.stats()).unwrap_or_default())
}

async fn requests(AxumState(st): AxumState<Shared>) -> Json<Value> {
    Json(serde_json::to_value(st.requests()).unwrap_or_default())
}

async fn reset(AxumState(st): AxumState<Shared>) -> StatusCode {
    st.reset();
    StatusCode::NO_CONTENT
}

fn answer(result: Result<Value, String>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => json_response(400, json!({"error": e})),
    }
}

async fn control_get(AxumState(st): AxumState<Shared>, Path((group, action)): Path<(String, String)>) -> Response {
    if action != "stats" {
        return json_response(405, json!({"error": "only stats can be read with GET; use POST"}));
    }
    answer(dispatch(&st, &group, &action, &json!({})))
}

async fn control_post(AxumState(st): AxumState<Shared>, Path((group, action)): Path<(String, String)>, body: Bytes) -> Response {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return answer(Err("the body must be a JSON object".into())),
            Err(e) => return answer(Err(format!("the body is not JSON: {e}"))),
        }
    };
    answer(dispatch(&st, &group, &action, &body))
}
