//! The iFlow account mock (replaces `iflow.cn` and `platform.iflow.cn`, providers-wire §3.3 and
//! §6.3), under the prefix `/iflow`. The chat API (`apis.iflow.cn`) is in [`crate::iflow_chat`].
//!
//! * `GET /iflow/oauth?loginMethod=phone&type=phone&redirect=<callback>&state=<s>&client_id=…`:
//!   the authorize page, auto-approving: 302 to `<callback>?code=<code>&state=<s>`, or
//!   `?error=access_denied&state=<s>` while `deny_authorization` is on. `redirect_uri` is
//!   accepted for `redirect`, and a `state` carried inside the `redirect` value
//!   (`…/oauth2callback&state=s` or `…?state=s`) is honoured too (§3.3 step 1).
//! * `POST /iflow/oauth/token`, form-encoded, with `Authorization: Basic
//!   base64(client_id:client_secret)` **and** `client_id` / `client_secret` in the form (they
//!   must agree): `grant_type=authorization_code` (`code`, `redirect_uri` = the callback the
//!   code was issued for; codes are single-use) or `grant_type=refresh_token`
//!   (`refresh_token`; rotates both tokens) → 200 `{access_token, refresh_token, expires_in,
//!   token_type:"Bearer", scope}`. Errors are RFC 6749 bodies: 401 `invalid_client` for
//!   missing / disagreeing / wrong client credentials, 400 `invalid_request`, `invalid_grant`,
//!   `unsupported_grant_type`; `fail_refresh` scripts a refresh failure.
//! * `GET /iflow/api/oauth/getUserInfo?accessToken=<token>` → 200
//!   `{"success":true,"data":{"apiKey","email","phone"}}`; an unknown or expired token gets
//!   200 `{"success":false,"code":"401","message":…,"data":null,"extra":null}`. Scriptable per
//!   call with `script_user_info`.
//! * `GET` / `POST /iflow/api/openapi/apikey` (cookie mode, §3.3 step 6): with any non-empty
//!   `Cookie`, returns `{"success":true,"code":"200","message":"success","data":{hasExpired,
//!   expireTime, name, apiKey, apiKeyMask},"extra":null}`; `POST {"name"}` rotates the key.
//! * Any other path under `/iflow` answers 404 with Spring Boot's error body.

use std::time::Instant;

use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

use crate::qwen_oauth::refresh_failure;
use crate::request::{json_response, now_ms, oauth_error, random_hex, take, Incoming, Shared};
use crate::state::{lock, AuthCode, IflowState, TokenPair};

pub(crate) fn routes() -> Router<Shared> {
    let inner = Router::new()
        .route("/oauth", get(authorize))
        .route("/oauth/token", post(token))
        .route("/api/oauth/getUserInfo", get(user_info))
        .route("/api/openapi/apikey", get(cookie_api_key).post(cookie_api_key))
        .merge(crate::iflow_chat::routes())
        .fallback(not_found);
    Router::new().nest("/iflow", inner)
}

/// Spring Boot's 404 body, with the path as the real host would see it (no `/iflow`).
pub(crate) async fn not_found(req: Request) -> Response {
    let path = req.uri().path().to_string();
    json_response(404, json!({"timestamp": iso_timestamp(now_ms()), "status": 404, "error": "Not Found", "path": path}))
}

/// Splits a `state` carried inside the redirect value off it: `(callback, state)`.
fn split_state(redirect: &str) -> (String, Option<String>) {
    for sep in ["?state=", "&state="] {
        if let Some(i) = redirect.find(sep) {
            let rest = &redirect[i + sep.len()..];
            let value = rest.split('&').next().unwrap_or("");
            return (redirect[..i].to_string(), Some(value.to_string()));
        }
    }
    (redirect.to_string(), None)
}

async fn authorize(AxumState(st): AxumState<Shared>, req: Request) -> Response {
    let inc = match take(&st, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let Some(redirect) = inc.query.get("redirect").or_else(|| inc.query.get("redirect_uri")).filter(|r| !r.is_empty()) else {
        return (StatusCode::BAD_REQUEST, Html("<html><body>Missing redirect</body></html>")).into_response();
    };
    let (callback, embedded_state) = split_state(redirect);
    let state = inc.query.get("state").cloned().or(embedded_state);
    let mut q = lock(&st.iflow);
    let client_id = inc.query.get("client_id").cloned().unwrap_or_default();
    if q.client_id.as_ref().is_some_and(|c| *c != client_id) {
        return (StatusCode::BAD_REQUEST, Html("<html><body>Unknown client_id</body></html>")).into_response();
    }
    q.authorizations += 1;
    let mut params = form_urlencoded::Serializer::new(String::new());
    if q.deny {
        params.append_pair("error", "access_denied");
    } else {
        let code = random_hex(16);
        q.codes.insert(code.clone(), AuthCode { redirect_uri: callback.clone(), client_id });
        params.append_pair("code", &code);
    }
    if let Some(s) = &state {
        params.append_pair("state", s);
    }
    let sep = if callback.contains('?') { '&' } else { '?' };
    let location = format!("{callback}{sep}{}", params.finish());
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert("location", v);
    }
    resp
}

/// `Authorization: Basic base64(id:secret)` → `(id, secret)`.
fn basic_credentials(inc: &Incoming) -> Option<(String, String)> {
    let encoded = inc.header("authorization")?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

async fn token(AxumState(st): AxumState<Shared>, req: Request) -> Response {
    let inc = match take(&st, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut q = lock(&st.iflow);
    q.token_calls += 1;
    if !inc.is_form() {
        return oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded");
    }
    let f = inc.form();
    let Some((basic_id, basic_secret)) = basic_credentials(&inc) else {
        return oauth_error(401, "invalid_client", "Basic client authentication is required");
    };
    let (Some(form_id), Some(form_secret)) = (f.get("client_id"), f.get("client_secret")) else {
        return oauth_error(401, "invalid_client", "client_id and client_secret are required in the form");
    };
    if basic_id != *form_id || basic_secret != *form_secret {
        return oauth_error(401, "invalid_client", "The client credentials in the Authorization header and the form differ");
    }
    if q.client_id.as_ref().is_some_and(|c| c != form_id) || q.client_secret.as_ref().is_some_and(|s| s != form_secret) {
        return oauth_error(401, "invalid_client", "Bad client credentials");
    }
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let (Some(code), Some(redirect_uri)) = (f.get("code"), f.get("redirect_uri")) else {
                return oauth_error(400, "invalid_request", "code and redirect_uri are required");
            };
            let Some(grant) = q.codes.remove(code) else {
                return oauth_error(400, "invalid_grant", "Invalid authorization code");
            };
            if grant.redirect_uri != *redirect_uri || grant.client_id != *form_id {
                return oauth_error(400, "invalid_grant", "Redirect URI mismatch");
            }
            q.code_exchanges += 1;
            token_body(&issue(&mut q))
        }
        Some("refresh_token") => {
            q.refreshes += 1;
            if let Some(kind) = q.fail_refresh.clone() {
                return refresh_failure(&kind);
            }
            let Some(old_access) = f.get("refresh_token").and_then(|r| q.refresh_tokens.remove(r)) else {
                return oauth_error(400, "invalid_grant", "Invalid refresh token");
            };
            q.access_tokens.insert(old_access, Instant::now());
            token_body(&issue(&mut q))
        }
        None | Some("") => oauth_error(400, "invalid_request", "Missing required parameter: grant_type"),
        Some(other) => oauth_error(400, "unsupported_grant_type", &format!("Unsupported grant_type: {other}")),
    }
}

pub(crate) fn issue(q: &mut IflowState) -> TokenPair {
    let access = format!("iflow-at-{}", random_hex(20));
    let refresh = format!("iflow-rt-{}", random_hex(20));
    q.access_tokens.insert(access.clone(), Instant::now() + q.token_lifetime);
    q.refresh_tokens.insert(refresh.clone(), access.clone());
    q.last_access_token = Some(access.clone());
    q.last_refresh_token = Some(refresh.clone());
    TokenPair { access_token: access, refresh_token: refresh, expires_in: q.token_lifetime.as_secs(), resource_url: None }
}

fn token_body(pair: &TokenPair) -> Response {
    json_response(
        200,
        json!({"access_token": pair.access_token, "refresh_token": pair.refresh_token, "expires_in": pair.expires_in,
               "token_type": "Bearer", "scope": "read"}),
    )
}

fn user_info_failure() -> Response {
    json_response(200, json!({"success": false, "code": "401", "message": "Invalid accessToken", "data": null, "extra": null}))
}

async fn user_info(AxumState(st): AxumState<Shared>, req: Request) -> Response {
    let inc = match take(&st, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut q = lock(&st.iflow);
    q.user_info_calls += 1;
    let step = q.user_info_script.pop_front();
    let valid = inc.query.get("accessToken").is_some_and(|t| q.access_token_valid(t));
    let data = |key: &str| json!({"success": true, "data": {"apiKey": key, "email": q.email, "phone": q.phone}});
    match step.as_deref() {
        Some("failure") => user_info_failure(),
        Some("empty_key") => json_response(200, data("")),
        Some(s) if s.parse::<u16>().is_ok() => {
            let status = StatusCode::from_u16(s.parse().unwrap_or(500)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, [("content-type", "text/plain")], format!("mock status {s}")).into_response()
        }
        _ if valid => json_response(200, data(&q.api_key)),
        _ => user_info_failure(),
    }
}

async fn cookie_api_key(AxumState(st): AxumState<Shared>, req: Request) -> Response {
    let post = req.method() == axum::http::Method::POST;
    let inc = match take(&st, req).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    if inc.header("cookie").is_none_or(|c| c.trim().is_empty()) {
        return json_response(200, json!({"success": false, "code": "401", "message": "Not logged in", "data": null, "extra": null}));
    }
    let mut q = lock(&st.iflow);
    if post {
        q.api_key = format!("sk-{}", random_hex(16));
        if let Some(name) = inc.body.get("name").and_then(Value::as_str) {
            q.key_name = name.to_string();
        }
    }
    let mask = format!("sk-****{}", &q.api_key[q.api_key.len().saturating_sub(4)..]);
    let expire = iso_timestamp(now_ms() + 7 * 24 * 3600 * 1000);
    json_response(
        200,
        json!({"success": true, "code": "200", "message": "success",
               "data": {"hasExpired": false, "expireTime": expire, "name": q.key_name, "apiKey": q.api_key, "apiKeyMask": mask},
               "extra": null}),
    )
}

/// Unix milliseconds as Spring Boot prints them: `2025-09-23T08:12:43.123+00:00`.
pub(crate) fn iso_timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}+00:00", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_spring_timestamps() {
        assert_eq!(iso_timestamp(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(iso_timestamp(1_758_615_163_123), "2025-09-23T08:12:43.123+00:00");
        assert_eq!(iso_timestamp(951_782_400_000), "2000-02-29T00:00:00.000+00:00");
    }

    #[test]
    fn splits_a_state_carried_in_the_redirect() {
        assert_eq!(split_state("http://localhost:1/cb&state=ab"), ("http://localhost:1/cb".into(), Some("ab".into())));
        assert_eq!(split_state("http://localhost:1/cb?state=ab&x=1"), ("http://localhost:1/cb".into(), Some("ab".into())));
        assert_eq!(split_state("http://localhost:1/cb"), ("http://localhost:1/cb".into(), None));
    }
}
