//! OAuth 2.0 authorization-code grant with a loopback callback (RFC 8252), as the iFlow CLI
//! logs in (§3.3 of the wire notes): a confidential client, no PKCE, the code delivered to
//! `http://<host>:<port>/oauth2callback`, exchanged with the client credentials sent both as
//! HTTP Basic auth and in the form, and a `getUserInfo` call that turns the access token into
//! the API key the chat endpoint wants.
//!
//! The flow is three steps, each callable on its own so the caller decides how to show the URL
//! and where to keep the result:
//! 1. [`AuthCodeFlow::start`] binds the loopback listener and builds the authorize URL;
//! 2. [`PendingAuthorization::wait`] serves the browser's callback and returns the code;
//! 3. [`AuthCodeFlow::login`] (or `exchange_code` + `user_info`) returns the credentials in the
//!    iFlow CLI's `oauth_creds.json` shape, for the token store to persist.
//!
//! Secrets (client secret, code, tokens, API key, `state`) never appear in an error or in
//! Debug output; upstream error bodies are scrubbed of them before they are kept.

use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pkce::secure_random;
use crate::error::{Error, Result, TimeoutPhase};
use crate::provider::client::{shared_client, ClientKey};
use crate::provider::http_error::error_from_response;
use crate::provider::openai::root_cause;
use crate::provider::HttpVersion;

/// iFlow's OAuth client id (public).
pub const IFLOW_CLIENT_ID: &str = "10009311001";

/// The client secret shipped inside the iFlow CLI (and in the original rcc-pipeline package);
/// a secret in a distributed binary is public (RFC 8252 §8.5), it only identifies the client.
const IFLOW_CLIENT_SECRET: &str = "4Z3YjXycVsQvyGF1etiNlIBB4RsqSDtW";

/// Longest request head the callback server reads from a browser.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// How long one browser connection may take to send its request head; an idle connection (a
/// browser's speculative preconnect) must not hold up the real callback.
const HEAD_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest token / user-info response read.
const MAX_RESPONSE: usize = 1 << 20;

/// Where the authorization server and the loopback callback are. Every value is configurable
/// so tests and mocks can point the flow at local servers.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthCodeEndpoints {
    /// The page the user opens (`https://iflow.cn/oauth`).
    pub authorize_url: String,
    /// `POST` target of the code exchange and of the refresh grant.
    pub token_url: String,
    /// `GET {user_info_url}?accessToken=…` answers with the API key.
    pub user_info_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// Host named in the redirect URI. The listener always binds the IPv4 loopback (and also
    /// `[::1]` when this is `localhost`, since a browser may resolve that to IPv6 first).
    pub redirect_host: String,
    /// 0 picks any free port.
    pub callback_port: u16,
    /// Path of the callback (`/oauth2callback`).
    pub callback_path: String,
    /// Query parameters of the authorize URL that come before `redirect`, `state` and
    /// `client_id` (iFlow: `loginMethod=phone`, `type=phone`).
    pub authorize_params: Vec<(String, String)>,
    /// Where the browser is sent after a successful callback; `None` shows a small page.
    pub success_page: Option<String>,
    /// Where the browser is sent after a failed callback; `None` shows a small page.
    pub error_page: Option<String>,
    /// Budget of each token / user-info HTTP call.
    pub request_timeout: Duration,
}

impl AuthCodeEndpoints {
    /// The iFlow CLI's constants (§3.3). The redirect host is `localhost`, as the CLI registers
    /// it; the port is any free one, as the CLI picks it.
    pub fn iflow_defaults() -> Self {
        AuthCodeEndpoints {
            authorize_url: "https://iflow.cn/oauth".into(),
            token_url: "https://iflow.cn/oauth/token".into(),
            user_info_url: "https://iflow.cn/api/oauth/getUserInfo".into(),
            client_id: IFLOW_CLIENT_ID.into(),
            client_secret: IFLOW_CLIENT_SECRET.into(),
            redirect_host: "localhost".into(),
            callback_port: 0,
            callback_path: "/oauth2callback".into(),
            authorize_params: vec![("loginMethod".into(), "phone".into()), ("type".into(), "phone".into())],
            success_page: Some("https://iflow.cn/oauth/success".into()),
            error_page: Some("https://iflow.cn/oauth/error".into()),
            request_timeout: Duration::from_secs(30),
        }
    }

    fn redirect_uri(&self, port: u16) -> String {
        let host = if self.redirect_host.contains(':') && !self.redirect_host.starts_with('[') {
            format!("[{}]", self.redirect_host) // a bare IPv6 literal
        } else {
            self.redirect_host.clone()
        };
        format!("http://{host}:{port}{}", self.callback_path)
    }
}

// The client secret is a credential: Debug says only whether it is set.
impl std::fmt::Debug for AuthCodeEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCodeEndpoints")
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .field("user_info_url", &self.user_info_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &if self.client_secret.is_empty() { "empty" } else { "[redacted]" })
            .field("redirect_host", &self.redirect_host)
            .field("callback_port", &self.callback_port)
            .field("callback_path", &self.callback_path)
            .field("authorize_params", &self.authorize_params)
            .field("success_page", &self.success_page)
            .field("error_page", &self.error_page)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// What `getUserInfo` says about the account.
#[derive(Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The key the chat endpoint accepts (`Bearer <api_key>`).
    pub api_key: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl UserInfo {
    /// CPA's account name: the email, else the phone number.
    pub fn account_name(&self) -> Option<&str> {
        self.email.as_deref().or(self.phone.as_deref())
    }
}

impl std::fmt::Debug for UserInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserInfo").field("api_key", &"[redacted]").field("email", &self.email).field("phone", &self.phone).finish()
    }
}

/// The authorization-code client: starts logins, exchanges codes, refreshes, fetches the key.
#[derive(Clone)]
pub struct AuthCodeFlow {
    endpoints: AuthCodeEndpoints,
    http: reqwest::Client,
}

impl std::fmt::Debug for AuthCodeFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCodeFlow").field("endpoints", &self.endpoints).finish()
    }
}

impl AuthCodeFlow {
    /// Checks that the three URLs parse; the HTTP client is the engine's shared pool.
    pub fn new(endpoints: AuthCodeEndpoints) -> Result<Self> {
        for (field, u) in
            [("authorizeUrl", &endpoints.authorize_url), ("tokenUrl", &endpoints.token_url), ("userInfoUrl", &endpoints.user_info_url)]
        {
            url::Url::parse(u).map_err(|e| Error::validation(field, format!("{field} is not a valid URL: {e}")))?;
        }
        if !endpoints.callback_path.starts_with('/') {
            return Err(Error::validation("callbackPath", "callbackPath must start with '/'"));
        }
        let http = shared_client(ClientKey { connect_timeout: Duration::from_secs(10), http_version: HttpVersion::Auto })?;
        Ok(AuthCodeFlow { endpoints, http })
    }

    pub fn endpoints(&self) -> &AuthCodeEndpoints {
        &self.endpoints
    }

    /// Binds the loopback callback listener and builds the authorize URL with a fresh `state`.
    /// The caller shows or opens [`PendingAuthorization::authorize_url`], then calls `wait`.
    pub async fn start(&self) -> Result<PendingAuthorization> {
        let listeners = bind_loopback(self.endpoints.callback_port, &self.endpoints.redirect_host).await?;
        let port = listeners[0]
            .local_addr()
            .map_err(|e| Error::Internal { message: format!("the callback listener has no address: {e}") })?
            .port();
        let state = random_state()?;
        let redirect_uri = self.endpoints.redirect_uri(port);
        let authorize_url = authorize_url(&self.endpoints, &redirect_uri, &state)?;
        Ok(PendingAuthorization {
            listeners,
            authorize_url,
            redirect_uri,
            state,
            callback_path: self.endpoints.callback_path.clone(),
            success_page: self.endpoints.success_page.clone(),
            error_page: self.endpoints.error_page.clone(),
        })
    }

    /// Trades the callback's code for tokens (`grant_type=authorization_code`). Returns the
    /// iFlow CLI credential shape without `apiKey` (see [`AuthCodeFlow::login`]).
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<Value> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", &self.endpoints.client_id),
            ("client_secret", &self.endpoints.client_secret),
        ];
        let tokens = self.token_request(&form, &[code]).await?;
        Ok(cli_credentials(&tokens, now_ms(), None))
    }

    /// The refresh grant. A response without a new refresh token keeps `refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Value> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &self.endpoints.client_id),
            ("client_secret", &self.endpoints.client_secret),
        ];
        let tokens = self.token_request(&form, &[refresh_token]).await?;
        Ok(cli_credentials(&tokens, now_ms(), Some(refresh_token)))
    }

    /// `GET {user_info_url}?accessToken=<token>`: the account's API key (and email / phone).
    /// The token goes in the query, as iFlow wants it, so the URL is never put in an error.
    pub async fn user_info(&self, access_token: &str) -> Result<UserInfo> {
        let mut url = url::Url::parse(&self.endpoints.user_info_url)
            .map_err(|e| Error::validation("userInfoUrl", format!("userInfoUrl is not a valid URL: {e}")))?;
        url.query_pairs_mut().append_pair("accessToken", access_token);
        let req = self.http.get(url).header(ACCEPT, "application/json");
        let secrets = [access_token];
        let (status, headers, body) = self.call(req, "the user-info endpoint", &secrets).await?;
        if !(200..300).contains(&status) {
            return Err(scrub(auth_kind(error_from_response(status, &headers, &body), None), &secrets));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| Error::Provider {
            message: format!("the user-info endpoint answered {status} with a body that is not JSON: {e}"),
            status: Some(status),
            body: None,
            provider_code: None,
            retry_after_ms: None,
        })?;
        parse_user_info(&v).map_err(|e| scrub(e, &secrets))
    }

    /// Code exchange, then `getUserInfo`: the full iFlow CLI credential object, `apiKey`
    /// included, ready for the token store.
    pub async fn login(&self, code: &str, redirect_uri: &str) -> Result<Value> {
        let mut creds = self.exchange_code(code, redirect_uri).await?;
        self.attach_api_key(&mut creds).await?;
        Ok(creds)
    }

    /// Refresh, then `getUserInfo` again: the key may have changed with the token (§3.3 step 5).
    pub async fn refresh_credentials(&self, refresh_token: &str) -> Result<Value> {
        let mut creds = self.refresh(refresh_token).await?;
        self.attach_api_key(&mut creds).await?;
        Ok(creds)
    }

    async fn attach_api_key(&self, creds: &mut Value) -> Result<()> {
        let access = creds.get("access_token").and_then(Value::as_str).unwrap_or_default().to_string();
        let info = self.user_info(&access).await?;
        if let Some(obj) = creds.as_object_mut() {
            obj.insert("apiKey".into(), Value::String(info.api_key));
        }
        Ok(())
    }

    /// POSTs a token-endpoint form with the client credentials in HTTP Basic auth too (iFlow
    /// wants both) and returns the token response. `secrets` are scrubbed from any error.
    async fn token_request(&self, form: &[(&str, &str)], secrets: &[&str]) -> Result<Map<String, Value>> {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let req = self
            .http
            .post(&self.endpoints.token_url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .basic_auth(&self.endpoints.client_id, Some(&self.endpoints.client_secret))
            .body(body);
        let mut all: Vec<&str> = secrets.to_vec();
        all.push(&self.endpoints.client_secret);
        let (status, headers, raw) = self.call(req, "the token endpoint", &all).await?;
        if !(200..300).contains(&status) {
            let oauth_code = oauth_error_code(&raw);
            let e = error_from_response(status, &headers, &raw);
            let e = if matches!(status, 400 | 401 | 403) { auth_kind(e, oauth_code) } else { e };
            return Err(scrub(e, &all));
        }
        let parsed: Option<Map<String, Value>> = serde_json::from_slice::<Value>(&raw).ok().and_then(|v| v.as_object().cloned());
        match parsed {
            Some(obj) if obj.get("access_token").and_then(Value::as_str).is_some_and(|t| !t.is_empty()) => Ok(obj),
            other => Err(scrub(token_response_error(status, other.as_ref()), &all)),
        }
    }

    /// Sends within the configured budget and reads a bounded body. Transport errors name the
    /// endpoint's role, never its URL (a query may carry a token).
    async fn call(&self, req: reqwest::RequestBuilder, what: &str, secrets: &[&str]) -> Result<(u16, HeaderMap, Vec<u8>)> {
        let budget = self.endpoints.request_timeout;
        let work = async {
            let mut resp =
                req.send().await.map_err(|e| Error::Connection { message: format!("{what} could not be reached: {}", root_cause(e)) })?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let mut body = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| Error::Connection { message: format!("the answer of {what} broke off: {}", root_cause(e)) })?
            {
                if body.len() + chunk.len() > MAX_RESPONSE {
                    return Err(Error::Provider {
                        message: format!("the answer of {what} is larger than {MAX_RESPONSE} bytes"),
                        status: Some(status),
                        body: None,
                        provider_code: None,
                        retry_after_ms: None,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, headers, body))
        };
        match tokio::time::timeout(budget, work).await {
            Ok(r) => r.map_err(|e| scrub(e, secrets)),
            Err(_) => {
                let ms = budget.as_millis() as u64;
                Err(Error::Timeout { message: format!("{what} did not answer within {ms}ms"), phase: TimeoutPhase::Total, timeout_ms: ms })
            }
        }
    }
}

/// A login waiting for the browser: the bound listener, the URL to open and the expected
/// `state`.
pub struct PendingAuthorization {
    listeners: Vec<TcpListener>,
    authorize_url: String,
    redirect_uri: String,
    state: String,
    callback_path: String,
    success_page: Option<String>,
    error_page: Option<String>,
}

// `state` guards against a forged callback: keep it out of logs.
impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization").field("redirect_uri", &self.redirect_uri).field("state", &"[redacted]").finish()
    }
}

/// What one callback request means.
enum Verdict {
    /// Not the callback (a favicon, a probe): answer 404 and keep waiting.
    Ignore,
    Code(String),
    Refused(Error),
}

impl PendingAuthorization {
    /// The URL the user must open.
    pub fn authorize_url(&self) -> &str {
        &self.authorize_url
    }

    /// The callback URL; the code exchange must send the same value.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    pub fn port(&self) -> u16 {
        self.listeners.first().and_then(|l| l.local_addr().ok()).map(|a| a.port()).unwrap_or(0)
    }

    /// Serves browser requests until the callback arrives, then answers it and returns the
    /// code. A wrong `state` or an `error=…` callback (e.g. `access_denied`) is an
    /// `Authentication` error; no callback within `timeout` is a `Timeout`; `cancel` gives
    /// `Cancelled`. Other paths get a 404 and do not end the wait.
    pub async fn wait(self, timeout: Duration, cancel: &CancellationToken) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut heads: JoinSet<Option<(String, TcpStream)>> = JoinSet::new();
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(Error::cancelled()),
                _ = tokio::time::sleep_until(deadline) => {
                    let ms = timeout.as_millis() as u64;
                    return Err(Error::Timeout { message: format!("no OAuth callback arrived within {ms}ms"), phase: TimeoutPhase::Total, timeout_ms: ms });
                }
                Some(joined) = heads.join_next(), if !heads.is_empty() => {
                    let Ok(Some((target, mut stream))) = joined else { continue };
                    match self.judge(&target) {
                        Verdict::Ignore => respond(&mut stream, &page(404, "Not found")).await,
                        Verdict::Code(code) => {
                            respond(&mut stream, &self.outcome_page(true)).await;
                            return Ok(code);
                        }
                        Verdict::Refused(e) => {
                            respond(&mut stream, &self.outcome_page(false)).await;
                            return Err(e);
                        }
                    }
                }
                accepted = accept_any(&self.listeners) => match accepted {
                    Ok(stream) => { heads.spawn(read_request_target(stream)); }
                    // Out of descriptors or a reset before accept: try again shortly.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
            }
        }
    }

    /// Reads the callback's query: `code` + matching `state` → the code; `error` → refused;
    /// a `state` that does not match → refused (a forged or stale callback).
    fn judge(&self, target: &str) -> Verdict {
        let Ok(url) = url::Url::parse("http://callback.invalid").and_then(|base| base.join(target)) else { return Verdict::Ignore };
        if url.path() != self.callback_path {
            return Verdict::Ignore;
        }
        let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        let state = param("state");
        if state.as_deref().is_some_and(|s| !constant_time_eq(s.as_bytes(), self.state.as_bytes())) {
            return Verdict::Refused(auth_error(
                "the OAuth callback's state does not match this login (a stale or forged callback)",
                Some("state_mismatch"),
            ));
        }
        if let Some(err) = param("error") {
            let detail = param("error_description").map(|d| format!(": {}", clip(&d, 200))).unwrap_or_default();
            return Verdict::Refused(auth_error(
                &format!("the authorization was refused ({}){detail}", clip(&err, 64)),
                Some(&clip(&err, 64)),
            ));
        }
        match (param("code").filter(|c| !c.is_empty()), state) {
            (Some(code), Some(_)) => Verdict::Code(code),
            (Some(_), None) => Verdict::Refused(auth_error("the OAuth callback carries no state", Some("state_mismatch"))),
            (None, _) => Verdict::Ignore,
        }
    }

    fn outcome_page(&self, ok: bool) -> String {
        let target = if ok { &self.success_page } else { &self.error_page };
        match target {
            Some(url) => redirect(url),
            None if ok => page(200, "Login complete. You can close this window."),
            None => page(400, "Login failed. You can close this window and try again."),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: listener, tiny HTTP/1.1 server side, authorize URL
// ---------------------------------------------------------------------------------------------

/// Binds `127.0.0.1:<port>`, plus `[::1]` on the same port when the redirect names
/// `localhost` (best effort: a host without IPv6 simply gets the IPv4 listener).
async fn bind_loopback(port: u16, redirect_host: &str) -> Result<Vec<TcpListener>> {
    let v4 = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| Error::Connection { message: format!("could not listen on 127.0.0.1:{port} for the OAuth callback: {e}") })?;
    let mut listeners = vec![v4];
    if redirect_host.eq_ignore_ascii_case("localhost") {
        if let Ok(bound) = listeners[0].local_addr() {
            if let Ok(v6) = TcpListener::bind(("::1", bound.port())).await {
                listeners.push(v6);
            }
        }
    }
    Ok(listeners)
}

async fn accept_any(listeners: &[TcpListener]) -> std::io::Result<TcpStream> {
    async fn one(l: Option<&TcpListener>) -> std::io::Result<TcpStream> {
        match l {
            Some(l) => l.accept().await.map(|(s, _)| s),
            None => std::future::pending().await,
        }
    }
    tokio::select! {
        r = one(listeners.first()) => r,
        r = one(listeners.get(1)) => r,
    }
}

/// Reads one request head and returns the target of a `GET`, with the stream to answer on.
async fn read_request_target(mut stream: TcpStream) -> Option<(String, TcpStream)> {
    let mut head = Vec::with_capacity(1024);
    let read = async {
        let mut buf = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 || head.len() + n > MAX_REQUEST_HEAD {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Some(())
    };
    tokio::time::timeout(HEAD_READ_TIMEOUT, read).await.ok()??;
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next()?.split_whitespace();
    let (method, target) = (parts.next()?, parts.next()?.to_string());
    if method != "GET" {
        respond(&mut stream, &page(405, "Method not allowed")).await;
        return None;
    }
    Some((target, stream))
}

async fn respond(stream: &mut TcpStream, response: &str) {
    // The browser may be gone already; nothing useful can be done about a failed write.
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn page(status: u16, text: &str) -> String {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let body = format!("<!doctype html><html><head><meta charset=\"utf-8\"><title>{text}</title></head><body><p>{text}</p></body></html>");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn redirect(location: &str) -> String {
    format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
}

/// `authorize_url?<authorize_params>&redirect=<callback>&state=<state>&client_id=<id>`, the
/// order and names the real client (as CPA reproduces it) uses. `state` is its own parameter;
/// the bundle analysis says the CLI tucks it inside `redirect`, which the server then echoes
/// back either way.
fn authorize_url(e: &AuthCodeEndpoints, redirect_uri: &str, state: &str) -> Result<String> {
    let mut url = url::Url::parse(&e.authorize_url)
        .map_err(|err| Error::validation("authorizeUrl", format!("authorizeUrl is not a valid URL: {err}")))?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in &e.authorize_params {
            q.append_pair(k, v);
        }
        q.append_pair("redirect", redirect_uri).append_pair("state", state).append_pair("client_id", &e.client_id);
    }
    Ok(url.into())
}

/// 32 hex digits (128 bits) of `state` from the OS CSPRNG: a guessable state would let another
/// page on the machine complete the login with its own code.
fn random_state() -> Result<String> {
    Ok(hex::encode(secure_random::<16>()?))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn clip(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

// ---------------------------------------------------------------------------------------------
// Helpers: responses and errors
// ---------------------------------------------------------------------------------------------

fn now_ms() -> u64 {
    crate::time::epoch_ms()
}

/// A token response in the iFlow CLI's `oauth_creds.json` shape (§3.4): `access_token`,
/// `refresh_token`, `expiry_date` (epoch ms, left out when the server gave no `expires_in`),
/// `token_type`, `scope`. `apiKey` is added by `login` / `refresh_credentials`.
fn cli_credentials(tokens: &Map<String, Value>, now_ms: u64, previous_refresh: Option<&str>) -> Value {
    let text = |k: &str| tokens.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let expires_in = tokens.get("expires_in").and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())));
    let mut out = Map::new();
    out.insert("access_token".into(), text("access_token").unwrap_or_default().into());
    out.insert("refresh_token".into(), text("refresh_token").or_else(|| previous_refresh.map(str::to_string)).unwrap_or_default().into());
    if let Some(secs) = expires_in {
        out.insert("expiry_date".into(), json!(now_ms.saturating_add(secs.saturating_mul(1000))));
    }
    out.insert("token_type".into(), text("token_type").unwrap_or_else(|| "Bearer".into()).into());
    out.insert("scope".into(), text("scope").unwrap_or_default().into());
    Value::Object(out)
}

/// `{"success":true,"data":{"apiKey","email","phone"}}`; `success:false` or no key is a refusal.
fn parse_user_info(v: &Value) -> Result<UserInfo> {
    let data = v.get("data").filter(|d| d.is_object());
    let key = data.and_then(|d| d.get("apiKey")).and_then(Value::as_str).filter(|k| !k.trim().is_empty());
    let success = v.get("success").and_then(Value::as_bool);
    match (success, key) {
        (Some(false), _) | (_, None) => {
            let why = v
                .get("message")
                .or_else(|| v.get("msg"))
                .and_then(Value::as_str)
                .map(|m| format!(": {}", clip(m, 200)))
                .unwrap_or_default();
            let code = v.get("code").and_then(|c| c.as_str().map(str::to_string).or_else(|| c.as_i64().map(|n| n.to_string())));
            Err(auth_error(&format!("getUserInfo returned no API key{why}"), code.as_deref()))
        }
        (_, Some(k)) => {
            let text = |f: &str| data.and_then(|d| d.get(f)).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
            Ok(UserInfo { api_key: k.to_string(), email: text("email"), phone: text("phone") })
        }
    }
}

/// The OAuth `error` code of an error body (`invalid_grant`, `invalid_client`, …).
fn oauth_error_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body).ok()?.get("error")?.as_str().map(str::to_string)
}

/// A 2xx token answer without an access token: an OAuth error in a 200 body, or garbage.
fn token_response_error(status: u16, obj: Option<&Map<String, Value>>) -> Error {
    let field = |k: &str| obj.and_then(|o| o.get(k)).and_then(Value::as_str).map(|s| clip(s, 200));
    let detail = field("error_description").or_else(|| field("message")).or_else(|| field("msg"));
    let message =
        format!("the token endpoint answered {status} without an access_token{}", detail.map(|d| format!(": {d}")).unwrap_or_default());
    match field("error") {
        Some(code) => auth_error(&message, Some(&code)),
        None => Error::Provider { message, status: Some(status), body: None, provider_code: None, retry_after_ms: None },
    }
}

fn auth_error(message: &str, provider_code: Option<&str>) -> Error {
    Error::Authentication { message: message.to_string(), status: None, body: None, provider_code: provider_code.map(str::to_string) }
}

/// The same answer as an `Authentication` error (OAuth endpoints say "no" with 400/401/403):
/// message, status and body kept, the OAuth error code preferred as provider code.
fn auth_kind(e: Error, oauth_code: Option<String>) -> Error {
    match e {
        Error::Provider { message, status, body, provider_code, .. } | Error::RateLimit { message, status, body, provider_code, .. }
            if status.is_some_and(|s| matches!(s, 400 | 401 | 403)) =>
        {
            Error::Authentication { message, status, body, provider_code: oauth_code.or(provider_code) }
        }
        Error::Authentication { message, status, body, provider_code } => {
            Error::Authentication { message, status, body, provider_code: oauth_code.or(provider_code) }
        }
        other => other,
    }
}

/// Replaces every secret in an error's texts with `[REDACTED]` (servers echo codes and tokens
/// back in error descriptions).
fn scrub(mut e: Error, secrets: &[&str]) -> Error {
    let clean = |s: &mut String| {
        for secret in secrets.iter().filter(|x| x.len() >= 4) {
            if s.contains(secret) {
                *s = s.replace(secret, "[REDACTED]");
            }
        }
    };
    match &mut e {
        Error::Authentication { message, body, .. } | Error::RateLimit { message, body, .. } | Error::Provider { message, body, .. } => {
            clean(message);
            if let Some(b) = body {
                clean(b);
            }
        }
        Error::Connection { message }
        | Error::Timeout { message, .. }
        | Error::Internal { message }
        | Error::Validation { message, .. } => clean(message),
        _ => {}
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    // -- A tiny scripted HTTP server standing in for iflow.cn ----------------------------------

    #[derive(Debug, Clone)]
    struct Recorded {
        method: String,
        target: String,
        headers: HashMap<String, String>,
        body: String,
    }

    /// Serves the scripted `(status, body)` answers in order, one per connection, and records
    /// what it received.
    async fn stub(answers: Vec<(u16, String)>) -> (String, Arc<Mutex<Vec<Recorded>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = log.clone();
        tokio::spawn(async move {
            for (status, body) in answers {
                let Ok((mut s, _)) = listener.accept().await else { return };
                let rec = read_whole_request(&mut s).await;
                seen.lock().unwrap().push(rec);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        (base, log)
    }

    async fn read_whole_request(s: &mut TcpStream) -> Recorded {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            let n = s.read(&mut buf).await.unwrap();
            data.extend_from_slice(&buf[..n]);
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&data[..head_end]).to_string();
        let mut lines = head.lines();
        let mut first = lines.next().unwrap().split_whitespace();
        let (method, target) = (first.next().unwrap().to_string(), first.next().unwrap().to_string());
        let headers: HashMap<String, String> =
            lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
        let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while data.len() < head_end + len {
            let n = s.read(&mut buf).await.unwrap();
            data.extend_from_slice(&buf[..n]);
        }
        Recorded { method, target, headers, body: String::from_utf8_lossy(&data[head_end..]).to_string() }
    }

    fn endpoints(base: &str) -> AuthCodeEndpoints {
        AuthCodeEndpoints {
            authorize_url: format!("{base}/oauth"),
            token_url: format!("{base}/oauth/token"),
            user_info_url: format!("{base}/api/oauth/getUserInfo"),
            client_id: "client-1".into(),
            client_secret: "s3cret-value".into(),
            redirect_host: "127.0.0.1".into(),
            callback_port: 0,
            callback_path: "/oauth2callback".into(),
            authorize_params: vec![("loginMethod".into(), "phone".into()), ("type".into(), "phone".into())],
            success_page: None,
            error_page: None,
            request_timeout: Duration::from_secs(5),
        }
    }

    fn form(body: &str) -> HashMap<String, String> {
        url::form_urlencoded::parse(body.as_bytes()).into_owned().collect()
    }

    fn query(url: &str) -> Vec<(String, String)> {
        url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
    }

    fn browser() -> reqwest::Client {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
    }

    /// Starts a login and runs `wait` on a task.
    async fn started(e: AuthCodeEndpoints) -> (String, String, tokio::task::JoinHandle<Result<String>>) {
        let flow = AuthCodeFlow::new(e).unwrap();
        let pending = flow.start().await.unwrap();
        let state = query(pending.authorize_url()).into_iter().find(|(k, _)| k == "state").unwrap().1;
        let redirect = pending.redirect_uri().to_string();
        let waiter = tokio::spawn(async move { pending.wait(Duration::from_secs(10), &CancellationToken::new()).await });
        (redirect, state, waiter)
    }

    // -- Authorize URL and callback -----------------------------------------------------------

    #[tokio::test]
    async fn authorize_url_has_the_real_clients_parameters() {
        let flow = AuthCodeFlow::new(endpoints("http://auth.test")).unwrap();
        let pending = flow.start().await.unwrap();
        let q = query(pending.authorize_url());
        let names: Vec<&str> = q.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["loginMethod", "type", "redirect", "state", "client_id"]);
        assert!(pending.authorize_url().starts_with("http://auth.test/oauth?"));
        assert_eq!(q[2].1, format!("http://127.0.0.1:{}/oauth2callback", pending.port()));
        assert_eq!(q[2].1, pending.redirect_uri());
        assert!(q[3].1.len() == 32 && q[3].1.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(q[4].1, "client-1");
        assert!(!format!("{pending:?}").contains(&q[3].1), "state stays out of Debug");
        let other = flow.start().await.unwrap();
        assert_ne!(query(other.authorize_url())[3], q[3], "a fresh state per login");
        assert_ne!(other.port(), pending.port());
    }

    #[tokio::test]
    async fn the_browser_callback_delivers_the_code() {
        let (redirect, state, waiter) = started(endpoints("http://auth.test")).await;
        let b = browser();
        // A stray request (favicon) does not end the wait.
        let stray = b.get(redirect.replace("/oauth2callback", "/favicon.ico")).send().await.unwrap();
        assert_eq!(stray.status(), 404);
        let resp = b.get(format!("{redirect}?code=the-code&state={state}")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.text().await.unwrap().contains("Login complete"));
        assert_eq!(waiter.await.unwrap().unwrap(), "the-code");
    }

    #[tokio::test]
    async fn an_idle_connection_does_not_block_the_callback() {
        let (redirect, state, waiter) = started(endpoints("http://auth.test")).await;
        let port = url::Url::parse(&redirect).unwrap().port().unwrap();
        let _preconnect = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let resp = browser().get(format!("{redirect}?state={state}&code=c2")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(waiter.await.unwrap().unwrap(), "c2");
    }

    #[tokio::test]
    async fn success_and_error_pages_are_redirects_when_configured() {
        let e = AuthCodeEndpoints { success_page: Some("https://iflow.test/oauth/success".into()), ..endpoints("http://auth.test") };
        let (redirect, state, waiter) = started(e).await;
        let resp = browser().get(format!("{redirect}?code=c&state={state}")).send().await.unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers()["location"], "https://iflow.test/oauth/success");
        assert_eq!(waiter.await.unwrap().unwrap(), "c");
    }

    #[tokio::test]
    async fn a_wrong_state_is_refused() {
        let (redirect, _state, waiter) = started(endpoints("http://auth.test")).await;
        let resp = browser().get(format!("{redirect}?code=c&state=forged")).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let e = waiter.await.unwrap().unwrap_err();
        assert!(matches!(&e, Error::Authentication { provider_code: Some(c), .. } if c == "state_mismatch"), "{e:?}");

        let (redirect, _state, waiter) = started(endpoints("http://auth.test")).await;
        browser().get(format!("{redirect}?code=c")).send().await.unwrap();
        assert_eq!(waiter.await.unwrap().unwrap_err().code(), "AUTHENTICATION_ERROR");
    }

    #[tokio::test]
    async fn a_denied_authorization_is_an_authentication_error() {
        let (redirect, state, waiter) = started(endpoints("http://auth.test")).await;
        let resp =
            browser().get(format!("{redirect}?error=access_denied&error_description=User+said+no&state={state}")).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let e = waiter.await.unwrap().unwrap_err();
        assert!(matches!(&e, Error::Authentication { provider_code: Some(c), .. } if c == "access_denied"), "{e:?}");
        assert!(e.to_string().contains("User said no"));
    }

    #[tokio::test(start_paused = true)]
    async fn no_callback_times_out() {
        let flow = AuthCodeFlow::new(endpoints("http://auth.test")).unwrap();
        let pending = flow.start().await.unwrap();
        let e = pending.wait(Duration::from_secs(300), &CancellationToken::new()).await.unwrap_err();
        assert!(matches!(e, Error::Timeout { phase: TimeoutPhase::Total, timeout_ms: 300_000, .. }), "{e:?}");
    }

    #[tokio::test]
    async fn cancel_ends_the_wait() {
        let flow = AuthCodeFlow::new(endpoints("http://auth.test")).unwrap();
        let pending = flow.start().await.unwrap();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.cancel();
        });
        assert_eq!(pending.wait(Duration::from_secs(30), &cancel).await.unwrap_err().code(), "CANCELLED");
    }

    #[test]
    fn iflow_defaults_and_debug() {
        let d = AuthCodeEndpoints::iflow_defaults();
        assert_eq!((d.authorize_url.as_str(), d.token_url.as_str()), ("https://iflow.cn/oauth", "https://iflow.cn/oauth/token"));
        assert_eq!(d.user_info_url, "https://iflow.cn/api/oauth/getUserInfo");
        assert_eq!(d.client_id, "10009311001");
        assert_eq!(d.redirect_uri(11451), "http://localhost:11451/oauth2callback");
        assert!(!format!("{d:?}").contains(&d.client_secret));
        let ipv6 = AuthCodeEndpoints { redirect_host: "::1".into(), ..d };
        assert_eq!(ipv6.redirect_uri(5), "http://[::1]:5/oauth2callback");
        let info = UserInfo { api_key: "sk-hidden".into(), email: None, phone: Some("+86".into()) };
        assert!(!format!("{info:?}").contains("sk-hidden"));
        assert_eq!(info.account_name(), Some("+86"));
        assert!(AuthCodeFlow::new(AuthCodeEndpoints { token_url: "not a url".into(), ..AuthCodeEndpoints::iflow_defaults() }).is_err());
    }

    // -- Token endpoint and user info against the stub ----------------------------------------

    #[tokio::test]
    async fn exchange_sends_basic_auth_and_form_credentials() {
        let (base, log) = stub(vec![(
            200,
            r#"{"access_token":"at-1","refresh_token":"rt-1","expires_in":3600,"token_type":"bearer","scope":"read"}"#.into(),
        )])
        .await;
        let flow = AuthCodeFlow::new(endpoints(&base)).unwrap();
        let before = now_ms();
        let creds = flow.exchange_code("code-1", "http://127.0.0.1:9/oauth2callback").await.unwrap();
        let after = now_ms();
        assert_eq!(creds["access_token"], "at-1");
        assert_eq!(creds["refresh_token"], "rt-1");
        assert_eq!((creds["token_type"].as_str(), creds["scope"].as_str()), (Some("bearer"), Some("read")));
        let exp = creds["expiry_date"].as_u64().unwrap();
        assert!(exp >= before + 3_600_000 && exp <= after + 3_600_000);

        let r = log.lock().unwrap()[0].clone();
        assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/oauth/token"));
        assert_eq!(r.headers["content-type"], "application/x-www-form-urlencoded");
        assert_eq!(r.headers["accept"], "application/json");
        use base64::Engine;
        assert_eq!(
            r.headers["authorization"],
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("client-1:s3cret-value"))
        );
        let f = form(&r.body);
        assert_eq!(f["grant_type"], "authorization_code");
        assert_eq!(f["code"], "code-1");
        assert_eq!(f["redirect_uri"], "http://127.0.0.1:9/oauth2callback");
        assert_eq!((f["client_id"].as_str(), f["client_secret"].as_str()), ("client-1", "s3cret-value"));
    }

    #[tokio::test]
    async fn a_refused_exchange_is_typed_and_scrubbed() {
        let (base, _) =
            stub(vec![(400, r#"{"error":"invalid_grant","error_description":"code code-XYZ-1 unknown for s3cret-value"}"#.into())]).await;
        let flow = AuthCodeFlow::new(endpoints(&base)).unwrap();
        let e = flow.exchange_code("code-XYZ-1", "http://x/cb").await.unwrap_err();
        assert!(matches!(&e, Error::Authentication { status: Some(400), provider_code: Some(c), .. } if c == "invalid_grant"), "{e:?}");
        let all = format!("{e:?} {}", serde_json::Value::Object(e.to_payload()));
        assert!(!all.contains("code-XYZ-1") && !all.contains("s3cret-value"), "{all}");

        let (base, _) = stub(vec![(503, "busy".into()), (200, r#"{"error":"invalid_request","error_description":"nope"}"#.into())]).await;
        let flow = AuthCodeFlow::new(endpoints(&base)).unwrap();
        let e = flow.exchange_code("c0de", "http://x/cb").await.unwrap_err();
        assert!(matches!(e, Error::Provider { status: Some(503), .. }) && e.retryable());
        let e = flow.exchange_code("c0de", "http://x/cb").await.unwrap_err();
        assert!(matches!(&e, Error::Authentication { provider_code: Some(c), .. } if c == "invalid_request"), "{e:?}");
    }

    #[tokio::test]
    async fn refresh_keeps_the_refresh_token_when_none_comes_back() {
        let (base, log) = stub(vec![(200, r#"{"access_token":"at-2","expires_in":"60"}"#.into())]).await;
        let flow = AuthCodeFlow::new(endpoints(&base)).unwrap();
        let creds = flow.refresh("rt-old").await.unwrap();
        assert_eq!(
            (creds["access_token"].as_str(), creds["refresh_token"].as_str(), creds["token_type"].as_str()),
            (Some("at-2"), Some("rt-old"), Some("Bearer"))
        );
        assert!(creds["expiry_date"].as_u64().is_some());
        let r = log.lock().unwrap()[0].clone();
        assert!(r.headers["authorization"].starts_with("Basic "));
        let f = form(&r.body);
        assert_eq!((f["grant_type"].as_str(), f["refresh_token"].as_str()), ("refresh_token", "rt-old"));
        assert_eq!((f["client_id"].as_str(), f["client_secret"].as_str()), ("client-1", "s3cret-value"));
        assert!(!f.contains_key("redirect_uri"));
    }

    #[tokio::test]
    async fn user_info_returns_the_api_key() {
        let (base, log) = stub(vec![
            (200, r#"{"success":true,"data":{"apiKey":"sk-abc","email":"a@b.c","phone":"+86 1"}}"#.into()),
            (200, r#"{"success":false,"message":"token at+/1= expired"}"#.into()),
            (200, r#"{"success":true,"data":{"apiKey":""}}"#.into()),
            (401, r#"{"message":"bad token at+/1="}"#.into()),
        ])
        .await;
        let flow = AuthCodeFlow::new(endpoints(&base)).unwrap();
        let info = flow.user_info("at+/1=").await.unwrap();
        assert_eq!((info.api_key.as_str(), info.email.as_deref(), info.account_name()), ("sk-abc", Some("a@b.c"), Some("a@b.c")));
        let r = log.lock().unwrap()[0].clone();
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/api/oauth/getUserInfo?accessToken=at%2B%2F1%3D");
        assert_eq!(r.headers["accept"], "application/json");
        assert!(!r.headers.contains_key("authorization"), "the token goes in the query only");

        for _ in 0..3 {
            let e = flow.user_info("at+/1=").await.unwrap_err();
            assert_eq!(e.code(), "AUTHENTICATION_ERROR", "{e:?}");
            assert!(!format!("{e:?}").contains("at+/1="), "{e:?}");
        }
    }

    #[tokio::test]
    async fn login_returns_cli_credentials_with_the_api_key() {
        let (base, log) = stub(vec![
            (200, r#"{"access_token":"at-9","refresh_token":"rt-9","expires_in":7200,"token_type":"bearer","scope":"all"}"#.into()),
            (200, r#"{"success":true,"data":{"apiKey":"sk-999"}}"#.into()),
        ])
        .await;
        let flow = AuthCodeFlow::new(endpoints(&base)).unwrap();
        let creds = flow.login("c", "http://127.0.0.1:1/oauth2callback").await.unwrap();
        let keys: Vec<&str> = creds.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["access_token", "refresh_token", "expiry_date", "token_type", "scope", "apiKey"]);
        assert_eq!(creds["apiKey"], "sk-999");
        assert_eq!(log.lock().unwrap()[1].target, "/api/oauth/getUserInfo?accessToken=at-9");
    }

    #[tokio::test]
    async fn refresh_credentials_fetches_the_key_again() {
        let (base, _) = stub(vec![
            (200, r#"{"access_token":"at-3","refresh_token":"rt-3","expires_in":10}"#.into()),
            (200, r#"{"success":true,"data":{"apiKey":"sk-new"}}"#.into()),
        ])
        .await;
        let flow = AuthCodeFlow::new(endpoints(&base)).unwrap();
        let creds = flow.refresh_credentials("rt-2").await.unwrap();
        assert_eq!((creds["refresh_token"].as_str(), creds["apiKey"].as_str()), (Some("rt-3"), Some("sk-new")));
    }

    #[tokio::test]
    async fn unreachable_endpoints_are_connection_errors_without_the_token() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let flow = AuthCodeFlow::new(endpoints(&format!("http://127.0.0.1:{port}"))).unwrap();
        let e = flow.user_info("tok-secret-1").await.unwrap_err();
        assert_eq!(e.code(), "CONNECTION_ERROR");
        assert!(!e.to_string().contains("tok-secret-1") && !e.to_string().contains("127.0.0.1"), "{e}");
    }
}
