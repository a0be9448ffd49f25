//! The Qwen OAuth mock (replaces `chat.qwen.ai`, providers-wire §1 and §6.1), served at the
//! root so that `oauth.baseUrl = mock.url`:
//!
//! * `POST /api/v1/oauth2/device/code`: form-encoded `client_id`, `scope`, `code_challenge`,
//!   `code_challenge_method=S256` → 200 `{device_code, user_code, verification_uri,
//!   verification_uri_complete: "<mock>/authorize?user_code=X&client=qwen-code", expires_in[,
//!   interval]}`.
//! * `POST /api/v1/oauth2/token`, form-encoded:
//!   * device grant (`grant_type=urn:ietf:params:oauth:grant-type:device_code`, `client_id`,
//!     `device_code`, `code_verifier`): checks `base64url(sha256(code_verifier))` against the
//!     stored challenge, then answers the next scripted step (see
//!     [`crate::QwenControl::script`]) or, without a script, `authorization_pending` until the
//!     code is approved (after `approve_after` polls, or explicitly). Success: `{access_token,
//!     refresh_token, token_type:"Bearer", expires_in, scope, resource_url}`.
//!   * refresh grant (`grant_type=refresh_token`, `refresh_token`, `client_id`): rotates both
//!     tokens (the old refresh token is single-use; the old access token stops working, after
//!     an optional grace period), repeats `resource_url`; `fail_refresh` scripts a failure.
//! * `GET /authorize?user_code=X`: the page the user would open; visiting it approves that
//!   device code (so a test can "click approve" by fetching `verification_uri_complete`).
//!
//! Errors are RFC 6749 bodies `{"error","error_description"}`: a body that is not
//! `application/x-www-form-urlencoded` or lacks a required field gets 400 `invalid_request`;
//! a wrong `client_id` 400 `invalid_client`; an unknown or used device code, a PKCE mismatch
//! and an unknown or used refresh token 400 `invalid_grant`; an unknown grant type 400
//! `unsupported_grant_type`.

use std::time::Instant;

use axum::extract::{Request, State as AxumState};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::request::{json_response, now_ms, oauth_error, random_hex, take, Shared};
use crate::state::{lock, DeviceCode, DeviceState, PollStep, QwenState, State, TokenPair};

pub(crate) const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const DEFAULT_SCOPE: &str = "openid profile email model.completion";

/// The refresh failures `fail_refresh` accepts, see [`crate::QwenControl::fail_refresh`].
pub(crate) const REFRESH_FAILURES: [&str; 5] = ["invalid_grant", "invalid_client", "server_error", "invalid_json", "error_200"];

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/oauth2/device/code", post(device_code))
        .route("/api/v1/oauth2/token", post(token))
        .route("/authorize", get(authorize))
}

fn form_required() -> Response {
    oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
}

fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn user_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..8).map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char).collect()
}

async fn device_code(AxumState(st): AxumState<Shared>, req: Request) -> Response {
    let inc = match take(&st, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    if !inc.is_form() {
        return form_required();
    }
    let f = inc.form();
    for key in ["client_id", "scope", "code_challenge", "code_challenge_method"] {
        if f.get(key).is_none_or(|v| v.is_empty()) {
            return oauth_error(400, "invalid_request", &format!("Missing required parameter: {key}"));
        }
    }
    if f["code_challenge_method"] != "S256" {
        return oauth_error(400, "invalid_request", "code_challenge_method must be S256");
    }
    let challenge_ok = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&f["code_challenge"]).is_ok_and(|d| d.len() == 32);
    if !challenge_ok {
        return oauth_error(400, "invalid_request", "code_challenge must be base64url(SHA-256(code_verifier)) without padding");
    }
    let base = st.base_url();
    let mut q = lock(&st.qwen);
    if q.client_id.as_ref().is_some_and(|c| *c != f["client_id"]) {
        return oauth_error(400, "invalid_client", "Unknown client_id");
    }
    let code = random_hex(24);
    let user = user_code();
    let expires_at = Instant::now() + q.device_code_lifetime;
    q.device_codes.insert(
        code.clone(),
        DeviceCode {
            user_code: user.clone(),
            client_id: f["client_id"].clone(),
            scope: f["scope"].clone(),
            challenge: f["code_challenge"].clone(),
            expires_at,
            polls: 0,
            state: DeviceState::Pending,
        },
    );
    q.device_code_count += 1;
    let mut body = json!({
        "device_code": code,
        "user_code": user,
        "verification_uri": format!("{base}/authorize"),
        "verification_uri_complete": format!("{base}/authorize?user_code={user}&client=qwen-code"),
        "expires_in": q.device_code_lifetime.as_secs(),
    });
    if let Some(i) = q.interval {
        body["interval"] = json!(i);
    }
    json_response(200, body)
}

async fn token(AxumState(st): AxumState<Shared>, req: Request) -> Response {
    let inc = match take(&st, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    if !inc.is_form() {
        return form_required();
    }
    let f = inc.form();
    match f.get("grant_type").map(String::as_str) {
        Some(DEVICE_GRANT) => poll(&st, &f),
        Some("refresh_token") => refresh(&st, &f).await,
        None | Some("") => oauth_error(400, "invalid_request", "Missing required parameter: grant_type"),
        Some(other) => oauth_error(400, "unsupported_grant_type", &format!("Unsupported grant_type: {other}")),
    }
}

fn poll(st: &State, f: &std::collections::HashMap<String, String>) -> Response {
    let mut q = lock(&st.qwen);
    q.polls += 1;
    q.poll_times.push(now_ms());
    for key in ["client_id", "device_code", "code_verifier"] {
        if f.get(key).is_none_or(|v| v.is_empty()) {
            return oauth_error(400, "invalid_request", &format!("Missing required parameter: {key}"));
        }
    }
    let Some(dc) = q.device_codes.get(&f["device_code"]).cloned() else {
        return oauth_error(400, "invalid_grant", "Invalid device code");
    };
    if dc.client_id != f["client_id"] {
        return oauth_error(400, "invalid_client", "client_id does not match the device code");
    }
    if pkce_challenge(&f["code_verifier"]) != dc.challenge {
        return oauth_error(400, "invalid_grant", "PKCE verification failed: code_verifier does not match code_challenge");
    }
    if dc.state == DeviceState::Used {
        return oauth_error(400, "invalid_grant", "The device code has already been used");
    }
    if Instant::now() >= dc.expires_at {
        return oauth_error(400, "expired_token", "The device code has expired");
    }
    let polls = dc.polls + 1;
    let approve_after = q.approve_after;
    let step = q.script.pop_front().unwrap_or(match dc.state {
        DeviceState::Denied => PollStep::Denied,
        DeviceState::Approved => PollStep::Approve,
        _ if approve_after.is_some_and(|n| polls > n) => PollStep::Approve,
        _ => PollStep::Pending,
    });
    let resource_url = resource_url(st, &q);
    let entry = q.device_codes.get_mut(&f["device_code"]).expect("looked up above");
    entry.polls = polls;
    match step {
        PollStep::Pending => oauth_error(
            400,
            "authorization_pending",
            "The authorization request is still pending as the end user hasn't yet completed the user-interaction steps.",
        ),
        PollStep::Pending200 => json_response(200, json!({"status": "pending"})),
        PollStep::SlowDown => oauth_error(429, "slow_down", "The client is polling too quickly and should back off."),
        PollStep::SlowDown400 => oauth_error(400, "slow_down", "The client is polling too quickly and should back off."),
        PollStep::Expired => oauth_error(400, "expired_token", "The device code has expired"),
        PollStep::Denied => oauth_error(400, "access_denied", "The end user denied the authorization request."),
        PollStep::ServerError => server_error(),
        PollStep::Approve => {
            entry.state = DeviceState::Used;
            let pair = issue(&mut q, resource_url);
            token_body(&pair, &dc.scope)
        }
    }
}

async fn refresh(st: &State, f: &std::collections::HashMap<String, String>) -> Response {
    let delay = {
        let mut q = lock(&st.qwen);
        q.refreshes += 1;
        q.refresh_delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut q = lock(&st.qwen);
    for key in ["client_id", "refresh_token"] {
        if f.get(key).is_none_or(|v| v.is_empty()) {
            return oauth_error(400, "invalid_request", &format!("Missing required parameter: {key}"));
        }
    }
    if q.client_id.as_ref().is_some_and(|c| *c != f["client_id"]) {
        return oauth_error(400, "invalid_client", "Unknown client_id");
    }
    if let Some(kind) = q.fail_refresh.clone() {
        return refresh_failure(&kind);
    }
    let Some(old_access) = q.refresh_tokens.remove(&f["refresh_token"]) else {
        return oauth_error(400, "invalid_grant", "Invalid refresh token or expired");
    };
    let grace_end = Instant::now() + q.old_token_grace;
    if let Some(exp) = q.access_tokens.get_mut(&old_access) {
        *exp = (*exp).min(grace_end);
    }
    let resource_url = resource_url(st, &q);
    let pair = issue(&mut q, resource_url);
    token_body(&pair, DEFAULT_SCOPE)
}

pub(crate) fn refresh_failure(kind: &str) -> Response {
    match kind {
        "invalid_client" => oauth_error(401, "invalid_client", "Client authentication failed"),
        "server_error" => server_error(),
        "invalid_json" => ([("content-type", "text/plain")], "Bad Gateway").into_response(),
        "error_200" => json_response(200, json!({"error": "invalid_grant", "error_description": "Invalid refresh token or expired"})),
        _ => oauth_error(400, "invalid_grant", "Invalid refresh token or expired"),
    }
}

/// A 500 whose body is not JSON, as a gateway in front of the real server would send.
fn server_error() -> Response {
    let mut r = Html("<html><body><h1>500 Internal Server Error</h1></body></html>").into_response();
    *r.status_mut() = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    r
}

pub(crate) fn resource_url(st: &State, q: &QwenState) -> String {
    q.resource_url.clone().unwrap_or_else(|| st.base_url())
}

/// Issues a fresh access/refresh pair and remembers it.
pub(crate) fn issue(q: &mut QwenState, resource_url: String) -> TokenPair {
    let access = format!("qwen-at-{}", random_hex(20));
    let refresh = format!("qwen-rt-{}", random_hex(20));
    q.access_tokens.insert(access.clone(), Instant::now() + q.token_lifetime);
    q.refresh_tokens.insert(refresh.clone(), access.clone());
    q.issued_tokens += 1;
    q.last_access_token = Some(access.clone());
    q.last_refresh_token = Some(refresh.clone());
    TokenPair { access_token: access, refresh_token: refresh, expires_in: q.token_lifetime.as_secs(), resource_url: Some(resource_url) }
}

fn token_body(pair: &TokenPair, scope: &str) -> Response {
    json_response(
        200,
        json!({"access_token": pair.access_token, "refresh_token": pair.refresh_token, "token_type": "Bearer",
               "expires_in": pair.expires_in, "scope": scope, "resource_url": pair.resource_url}),
    )
}

/// Sets every pending device code (or only the one with `user_code`) to `to`; returns how many.
pub(crate) fn decide(q: &mut QwenState, user_code: Option<&str>, to: DeviceState) -> usize {
    let mut n = 0;
    for dc in q.device_codes.values_mut() {
        if dc.state != DeviceState::Used && user_code.is_none_or(|u| u == dc.user_code) {
            dc.state = to;
            n += 1;
        }
    }
    n
}

async fn authorize(AxumState(st): AxumState<Shared>, req: Request) -> Response {
    let inc = match take(&st, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let Some(code) = inc.query.get("user_code").filter(|c| !c.is_empty()) else {
        return (axum::http::StatusCode::BAD_REQUEST, Html("<html><body>Missing user_code</body></html>")).into_response();
    };
    if decide(&mut lock(&st.qwen), Some(code), DeviceState::Approved) == 0 {
        return (axum::http::StatusCode::NOT_FOUND, Html("<html><body>Unknown or used user code</body></html>")).into_response();
    }
    Html(format!("<html><body>Device {code} authorized. You can close this page.</body></html>")).into_response()
}

