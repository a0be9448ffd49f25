//! The HTTP side of OAuth for CLI-style clients: the RFC 8628 device authorization grant with
//! PKCE (request a device code, let the user approve it in a browser, poll the token endpoint)
//! and the refresh grant.
//!
//! The wire format follows qwen-code (`providers-wire.md` §1.3–§1.6); the polling state machine
//! follows RFC 8628 where qwen-code is weaker (`expired_token` and `access_denied` end the flow
//! instead of being retried until the attempt budget runs out).
//!
//! HTTP goes through [`TokenTransport`], one method that posts a form and returns the status and
//! the body, so the state machine is tested with a scripted fake on tokio's paused clock.
//! [`ReqwestTransport`] is the real one.
//!
//! Secrets (device code, verifier, refresh token, client secret) never appear in an error or in
//! `Debug` output; error bodies from the token endpoint are scrubbed of them in case a server
//! echoes a parameter back.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::future::BoxFuture;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Map, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pkce::Pkce;
use super::source::NO_REFRESH_TOKEN;
use super::{system_clock, Clock, TokenSet};
use crate::error::{Error, Result, TimeoutPhase};
use crate::provider::client::{shared_client, ClientKey};
use crate::provider::config::HttpVersion;
use crate::provider::http_error::truncate_body;
use crate::provider::openai::root_cause;

/// `grant_type` of the device-code token request (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The OAuth error code for a refresh token (or code) the server no longer accepts; carried as
/// `provider_code` on the `Error::Authentication` that [`OAuthClient::refresh`] returns.
pub const INVALID_GRANT: &str = "invalid_grant";

pub const QWEN_DEVICE_CODE_URL: &str = "https://chat.qwen.ai/api/v1/oauth2/device/code";
pub const QWEN_TOKEN_URL: &str = "https://chat.qwen.ai/api/v1/oauth2/token";
/// A public client: no secret.
pub const QWEN_CLIENT_ID: &str = "f0304373b74a44d2b584a3fb70ca9e56";
pub const QWEN_SCOPE: &str = "openid profile email model.completion";

/// Lifetime assumed when a device-code response has no usable `expires_in` (RFC 8628 makes it
/// required; 1800 s is what Qwen sends).
pub const DEFAULT_DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(1800);

/// The shortest wait between two polls, whatever the server or the policy says: a zero
/// interval must not turn the loop into a busy loop against the token endpoint.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Largest token-endpoint body read; token responses are a few hundred bytes.
const MAX_BODY: usize = 1 << 20;

/// Whether an error is the token endpoint's refusal of the refresh token (or grant): the stored
/// credentials are dead and only a new sign-in helps.
pub fn is_invalid_grant(e: &Error) -> bool {
    matches!(e, Error::Authentication { provider_code: Some(c), .. } if c == INVALID_GRANT)
}

/// How the poll interval grows when the server answers `slow_down`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SlowDown {
    /// qwen-code and CLIProxyAPI: interval × `factor`, at most `max`. Never lowers an interval
    /// that is already above `max` (a server-sent interval may be).
    Multiply { factor: f64, max: Duration },
    /// RFC 8628 §3.5: interval + the given step (5 s in the RFC).
    Add(Duration),
}

impl SlowDown {
    pub fn next(self, current: Duration) -> Duration {
        match self {
            SlowDown::Add(step) => current.saturating_add(step),
            SlowDown::Multiply { factor, max } => {
                let grown = Duration::try_from_secs_f64(current.as_secs_f64() * factor).unwrap_or(max);
                grown.min(max).max(current)
            }
        }
    }
}

/// Timing of the device-flow polling loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollPolicy {
    /// Used when the device-code response has no `interval` (qwen-code: 2 s; RFC 8628: 5 s).
    /// A server-sent interval wins.
    pub default_interval: Duration,
    pub slow_down: SlowDown,
    /// Transient failures (connection errors, timeouts, 408, 5xx) in a row that the loop
    /// tolerates, waiting one interval after each, before it gives up with the last one. The
    /// device flow waits on a human for minutes; a network blip should not end it, a dead
    /// network should not keep it spinning until the code expires.
    pub max_transient_failures: u32,
}

impl PollPolicy {
    /// qwen-code's timing: 2 s, slow_down × 1.5 up to 10 s.
    pub fn qwen() -> Self {
        PollPolicy {
            default_interval: Duration::from_secs(2),
            slow_down: SlowDown::Multiply { factor: 1.5, max: Duration::from_secs(10) },
            max_transient_failures: 5,
        }
    }

    /// RFC 8628's defaults: 5 s, slow_down + 5 s.
    pub fn rfc8628() -> Self {
        PollPolicy { default_interval: Duration::from_secs(5), slow_down: SlowDown::Add(Duration::from_secs(5)), max_transient_failures: 5 }
    }
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self::rfc8628()
    }
}

/// Where a confidential client's secret goes. Only used when `client_secret` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientSecretPlacement {
    /// `Authorization: Basic` *and* `client_id`/`client_secret` in the form: what the iFlow CLI
    /// sends and its server requires (`providers-wire.md` §3.3).
    #[default]
    BasicAndForm,
    /// HTTP Basic only (RFC 6749 §2.3.1's preferred method).
    Basic,
    /// Form fields only.
    Form,
}

/// Where and as whom to ask for tokens. Every field is public so any vendor (or a mock) can be
/// described; [`OAuthEndpoints::qwen_defaults`] fills Qwen's constants.
#[derive(Clone, PartialEq)]
pub struct OAuthEndpoints {
    /// RFC 8628 device authorization endpoint. May be empty for a client that only refreshes
    /// (its tokens came from another grant); [`OAuthClient::start`] then fails.
    pub device_code_url: String,
    /// Token endpoint, for both polling and refresh.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// Space-separated scopes for the device-code request.
    pub scope: String,
    pub client_secret_placement: ClientSecretPlacement,
    pub poll: PollPolicy,
}

impl OAuthEndpoints {
    /// `chat.qwen.ai`'s endpoints, client id and scope, with qwen-code's poll timing.
    pub fn qwen_defaults() -> Self {
        OAuthEndpoints {
            device_code_url: QWEN_DEVICE_CODE_URL.into(),
            token_url: QWEN_TOKEN_URL.into(),
            client_id: QWEN_CLIENT_ID.into(),
            client_secret: None,
            scope: QWEN_SCOPE.into(),
            client_secret_placement: ClientSecretPlacement::default(),
            poll: PollPolicy::qwen(),
        }
    }

    /// Qwen's paths under another OAuth base (a mock: `http://127.0.0.1:PORT`).
    pub fn qwen_with_base(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        OAuthEndpoints {
            device_code_url: format!("{base}/api/v1/oauth2/device/code"),
            token_url: format!("{base}/api/v1/oauth2/token"),
            ..Self::qwen_defaults()
        }
    }

    /// URLs must be http(s), the client id non-empty, the poll interval positive.
    pub fn validate(&self) -> Result<()> {
        check_url("tokenUrl", &self.token_url)?;
        if !self.device_code_url.is_empty() {
            check_url("deviceCodeUrl", &self.device_code_url)?;
        }
        if self.client_id.trim().is_empty() {
            return Err(Error::validation("clientId", "clientId must be a non-empty string"));
        }
        if self.poll.default_interval.is_zero() {
            return Err(Error::validation("pollInterval", "pollInterval must be a positive duration"));
        }
        if let SlowDown::Multiply { factor, .. } = self.poll.slow_down {
            if !factor.is_finite() || factor < 1.0 {
                return Err(Error::validation("slowDown.factor", format!("slowDown.factor must be a number ≥ 1, got {factor}")));
            }
        }
        Ok(())
    }
}

fn check_url(field: &str, s: &str) -> Result<()> {
    let parsed = url::Url::parse(s).map_err(|e| Error::validation(field, format!("{field} must be an http(s) URL, got {s:?} ({e})")))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(Error::validation(field, format!("{field} must be an http(s) URL, got scheme {:?}", parsed.scheme())));
    }
    Ok(())
}

impl std::fmt::Debug for OAuthEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthEndpoints")
            .field("device_code_url", &self.device_code_url)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("scope", &self.scope)
            .field("client_secret_placement", &self.client_secret_placement)
            .field("poll", &self.poll)
            .finish()
    }
}

/// One `application/x-www-form-urlencoded` POST.
#[derive(Clone, PartialEq)]
pub struct FormRequest {
    pub url: String,
    /// In sending order.
    pub params: Vec<(String, String)>,
    /// `(user, password)` for `Authorization: Basic`.
    pub basic_auth: Option<(String, String)>,
    /// Extra headers (`x-request-id`); Content-Type and Accept are the transport's.
    pub headers: Vec<(String, String)>,
}

impl FormRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body as qwen-code builds it: each key and value percent-encoded like JavaScript's
    /// `encodeURIComponent` (so a space is `%20`, not `+`), pairs joined with `&`. Any
    /// form decoder reads both spellings.
    pub fn encoded_body(&self) -> String {
        self.params.iter().map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v))).collect::<Vec<_>>().join("&")
    }
}

/// JavaScript's `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` as UTF-8
/// percent escapes.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// Parameter values include the device code, the verifier, refresh tokens and the secret.
impl std::fmt::Debug for FormRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormRequest")
            .field("url", &self.url)
            .field("params", &self.params.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .field("basic_auth", &self.basic_auth.as_ref().map(|(u, _)| format!("{u}:[redacted]")))
            .field("headers", &self.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

/// What came back: the status and the raw body (the state machine decides how to read it; a
/// body that is not JSON is an answer too).
#[derive(Clone, PartialEq)]
pub struct TransportResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl TransportResponse {
    pub fn json(status: u16, body: &Value) -> Self {
        TransportResponse { status, body: body.to_string().into_bytes() }
    }
}

// A success body holds tokens.
impl std::fmt::Debug for TransportResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportResponse").field("status", &self.status).field("body_bytes", &self.body.len()).finish()
    }
}

/// Posts a form to a token or device-code endpoint. An `Err` is a transport failure (no HTTP
/// answer: `Error::Connection` or `Error::Timeout`); every HTTP answer, error statuses included,
/// is an `Ok`.
pub trait TokenTransport: Send + Sync {
    fn post_form(&self, request: FormRequest) -> BoxFuture<'_, Result<TransportResponse>>;
}

/// [`TokenTransport`] over the engine's shared reqwest pool. Each call is bounded by one total
/// timeout (connect, send and the whole body).
#[derive(Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    timeout: Duration,
}

impl ReqwestTransport {
    /// Less than the store's default lock wait (30 s), so a process waiting for another one's
    /// refresh does not give up while that refresh can still succeed.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

    pub fn new() -> Result<Self> {
        let client = shared_client(ClientKey { connect_timeout: Self::CONNECT_TIMEOUT, http_version: HttpVersion::Auto })?;
        Ok(ReqwestTransport { client, timeout: Self::DEFAULT_TIMEOUT })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl std::fmt::Debug for ReqwestTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestTransport").field("timeout", &self.timeout).finish()
    }
}

impl TokenTransport for ReqwestTransport {
    fn post_form(&self, request: FormRequest) -> BoxFuture<'_, Result<TransportResponse>> {
        Box::pin(async move {
            let origin = origin_of(&request.url);
            let mut rb =
                self.client.post(&request.url).header(CONTENT_TYPE, "application/x-www-form-urlencoded").header(ACCEPT, "application/json");
            for (k, v) in &request.headers {
                rb = rb.header(k.as_str(), v.as_str());
            }
            if let Some((user, password)) = &request.basic_auth {
                let mut v = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))))
                    .map_err(|_| Error::validation("clientSecret", "the client id or secret cannot be sent in an HTTP header"))?;
                v.set_sensitive(true);
                rb = rb.header(AUTHORIZATION, v);
            }
            let rb = rb.body(request.encoded_body());
            let work = async {
                let mut resp = rb.send().await.map_err(|e| transport_error(&origin, e))?;
                let status = resp.status().as_u16();
                let mut body = Vec::new();
                while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(&origin, e))? {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Err(Error::Provider {
                            message: format!("the answer from {origin} is larger than {MAX_BODY} bytes"),
                            status: Some(status),
                            body: None,
                            provider_code: None,
                            retry_after_ms: None,
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(TransportResponse { status, body })
            };
            tokio::time::timeout(self.timeout, work)
                .await
                .unwrap_or_else(|_| Err(Error::timeout(TimeoutPhase::Total, self.timeout.as_millis() as u64)))
        })
    }
}

/// `scheme://host:port` for messages: never a path or query.
fn origin_of(url: &str) -> String {
    url::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| "the OAuth server".into())
}

fn transport_error(origin: &str, e: reqwest::Error) -> Error {
    if e.is_timeout() {
        return Error::Connection { message: format!("the request to {origin} timed out: {}", root_cause(e)) };
    }
    let what = if e.is_connect() { "could not connect to" } else { "the request failed on" };
    Error::Connection { message: format!("{what} {origin}: {}", root_cause(e)) }
}

/// A device code waiting for the user. Show `user_code` and [`Self::browser_url`] to the user,
/// then call [`OAuthClient::poll`].
#[derive(Clone)]
pub struct DeviceAuthorization {
    /// Secret: whoever has it (and the verifier) gets the tokens.
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: Duration,
    /// The server's minimum poll interval, if it sent one.
    pub interval: Option<Duration>,
    pub pkce: Pkce,
    /// When the code was issued (tokio time); polling stops at `issued_at + expires_in`.
    pub issued_at: Instant,
}

impl DeviceAuthorization {
    /// A device code the caller kept from an earlier `start()` (only the code and the PKCE
    /// verifier): polled with the default interval until the default lifetime, from now.
    pub fn resume(device_code: String, pkce_verifier: String) -> Self {
        DeviceAuthorization {
            device_code,
            user_code: String::new(),
            verification_uri: String::new(),
            verification_uri_complete: None,
            expires_in: DEFAULT_DEVICE_CODE_LIFETIME,
            interval: None,
            pkce: Pkce::from_verifier(pkce_verifier),
            issued_at: Instant::now(),
        }
    }

    /// Whether the code's lifetime is over (the server will answer `expired_token`).
    pub fn is_expired(&self) -> bool {
        self.issued_at.elapsed() >= self.expires_in
    }

    /// The page to open: the complete URI (user code included) when the server gave one.
    pub fn browser_url(&self) -> &str {
        self.verification_uri_complete.as_deref().filter(|s| !s.is_empty()).unwrap_or(&self.verification_uri)
    }

    pub fn pkce_verifier(&self) -> &str {
        self.pkce.verifier()
    }
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &"[redacted]")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("verification_uri_complete", &self.verification_uri_complete)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .field("pkce", &self.pkce)
            .finish()
    }
}

/// The OAuth client: endpoints, a transport and a clock. Cheap to clone.
#[derive(Clone)]
pub struct OAuthClient {
    endpoints: Arc<OAuthEndpoints>,
    transport: Arc<dyn TokenTransport>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient").field("endpoints", &self.endpoints).finish_non_exhaustive()
    }
}

/// What one poll answer means for the loop.
enum PollOutcome {
    Granted(TokenSet),
    Pending,
    SlowDown,
    /// Worth another try after an interval.
    Transient(Error),
    Failed(Error),
}

impl OAuthClient {
    /// With the reqwest transport and the system clock.
    pub fn new(endpoints: OAuthEndpoints) -> Result<Self> {
        Self::with_transport(endpoints, Arc::new(ReqwestTransport::new()?))
    }

    pub fn with_transport(endpoints: OAuthEndpoints, transport: Arc<dyn TokenTransport>) -> Result<Self> {
        endpoints.validate()?;
        Ok(OAuthClient { endpoints: Arc::new(endpoints), transport, clock: system_clock() })
    }

    /// The wall clock used for expiries (`expiry_date = now + expires_in`). The credential
    /// source uses the same one.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn endpoints(&self) -> &OAuthEndpoints {
        &self.endpoints
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Adds the client credentials to a request, as configured.
    fn authenticate(&self, req: &mut FormRequest) {
        let Some(secret) = &self.endpoints.client_secret else { return };
        let placement = self.endpoints.client_secret_placement;
        if matches!(placement, ClientSecretPlacement::Basic | ClientSecretPlacement::BasicAndForm) {
            req.basic_auth = Some((self.endpoints.client_id.clone(), secret.clone()));
        }
        if matches!(placement, ClientSecretPlacement::Form | ClientSecretPlacement::BasicAndForm) {
            req.params.push(("client_secret".into(), secret.clone()));
        }
    }

    fn form(&self, url: &str, params: &[(&str, &str)]) -> FormRequest {
        let mut req = FormRequest {
            url: url.to_string(),
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            basic_auth: None,
            headers: Vec::new(),
        };
        self.authenticate(&mut req);
        req
    }

    /// Requests a device code (`providers-wire.md` §1.3): form `client_id`, `scope`,
    /// `code_challenge`, `code_challenge_method=S256`, plus an `x-request-id` header. A fresh
    /// PKCE pair is made for each call and returned with the code.
    pub async fn start(&self) -> Result<DeviceAuthorization> {
        let ep = &self.endpoints;
        if ep.device_code_url.is_empty() {
            return Err(Error::validation("deviceCodeUrl", "deviceCodeUrl is not configured, so the device flow cannot start"));
        }
        let pkce = Pkce::new()?;
        let mut req = self.form(
            &ep.device_code_url,
            &[
                ("client_id", &ep.client_id),
                ("scope", &ep.scope),
                ("code_challenge", pkce.challenge()),
                ("code_challenge_method", Pkce::METHOD),
            ],
        );
        req.headers.push(("x-request-id".into(), uuid_v4()));
        let secrets = self.secrets(&[]);
        let resp = self.transport.post_form(req).await.map_err(|e| scrub(e, &secrets))?;
        let issued_at = Instant::now();
        let obj = json_object(&resp.body);
        if !is_success(resp.status) {
            return Err(scrub(endpoint_error("the device authorization request", &resp, obj.as_ref()), &secrets));
        }
        let Some(obj) = obj else {
            return Err(Error::Provider {
                message: format!("the device authorization endpoint answered {} with a body that is not a JSON object", resp.status),
                status: Some(resp.status),
                body: Some(truncate_body(&resp.body)),
                provider_code: None,
                retry_after_ms: None,
            });
        };
        let device_code = non_empty_str(&obj, "device_code");
        let Some(device_code) = device_code else {
            return Err(match oauth_error(&obj) {
                Some(_) => scrub(endpoint_error("the device authorization request", &resp, Some(&obj)), &secrets),
                None => Error::Provider {
                    message: "the device authorization endpoint answered without a device_code".into(),
                    status: Some(resp.status),
                    body: Some(truncate_body(&resp.body)),
                    provider_code: None,
                    retry_after_ms: None,
                },
            });
        };
        let verification_uri = non_empty_str(&obj, "verification_uri").or_else(|| non_empty_str(&obj, "verification_url"));
        let verification_uri_complete = non_empty_str(&obj, "verification_uri_complete");
        let Some(verification_uri) = verification_uri.or_else(|| verification_uri_complete.clone()) else {
            return Err(Error::Provider {
                message: "the device authorization endpoint answered without a verification_uri".into(),
                status: Some(resp.status),
                body: None,
                provider_code: None,
                retry_after_ms: None,
            });
        };
        let expires_in =
            seconds(obj.get("expires_in")).filter(|s| *s > 0.0).map(Duration::from_secs_f64).unwrap_or(DEFAULT_DEVICE_CODE_LIFETIME);
        let interval = seconds(obj.get("interval")).filter(|s| *s > 0.0).map(Duration::from_secs_f64);
        Ok(DeviceAuthorization {
            device_code,
            user_code: non_empty_str(&obj, "user_code").unwrap_or_default(),
            verification_uri,
            verification_uri_complete,
            expires_in,
            interval,
            pkce,
            issued_at,
        })
    }

    /// Polls the token endpoint until the user approves (tokens), denies, the code expires,
    /// or `cancel` fires. RFC 8628 §3.4–3.5:
    /// * waits one interval before every poll (the server's `interval`, else the policy's);
    /// * `authorization_pending` (or qwen's 200 `{"status":"pending"}`): poll again;
    /// * `slow_down` on any status, and a 429 without a code: grow the interval per the policy,
    ///   for all later polls;
    /// * `expired_token`, `access_denied`, other 4xx: `Error::Authentication`, no more polls;
    /// * connection errors, timeouts, 408, 5xx: retried after an interval, up to
    ///   `max_transient_failures` in a row, then that error is returned;
    /// * at `issued_at + expires_in` without an answer: `Error::Authentication` (`expired_token`);
    /// * cancellation: `Error::Cancelled`, at once, also while a request is in flight.
    pub async fn poll(&self, auth: &DeviceAuthorization, cancel: &CancellationToken) -> Result<TokenSet> {
        let policy = self.endpoints.poll;
        let mut interval = auth.interval.unwrap_or(policy.default_interval).max(MIN_POLL_INTERVAL);
        let deadline = auth.issued_at + auth.expires_in;
        let mut transient_failures = 0u32;
        loop {
            let next = Instant::now() + interval;
            if next >= deadline {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(poll_cancelled()),
                    _ = tokio::time::sleep_until(deadline) => {}
                }
                return Err(Error::Authentication {
                    message: format!(
                        "the device code expired after {}s before the user completed authorization; start the device flow again",
                        auth.expires_in.as_secs()
                    ),
                    status: None,
                    body: None,
                    provider_code: Some("expired_token".into()),
                });
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(poll_cancelled()),
                _ = tokio::time::sleep_until(next) => {}
            }
            let outcome = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(poll_cancelled()),
                o = self.poll_once(auth) => o,
            };
            match outcome {
                PollOutcome::Granted(tokens) => return Ok(tokens),
                PollOutcome::Pending => transient_failures = 0,
                PollOutcome::SlowDown => {
                    transient_failures = 0;
                    interval = policy.slow_down.next(interval).max(MIN_POLL_INTERVAL);
                }
                PollOutcome::Transient(e) => {
                    transient_failures += 1;
                    if transient_failures > policy.max_transient_failures {
                        return Err(e);
                    }
                }
                PollOutcome::Failed(e) => return Err(e),
            }
        }
    }

    async fn poll_once(&self, auth: &DeviceAuthorization) -> PollOutcome {
        let ep = &self.endpoints;
        let req = self.form(
            &ep.token_url,
            &[
                ("grant_type", DEVICE_CODE_GRANT_TYPE),
                ("client_id", &ep.client_id),
                ("device_code", &auth.device_code),
                ("code_verifier", auth.pkce.verifier()),
            ],
        );
        let secrets = self.secrets(&[&auth.device_code, auth.pkce.verifier()]);
        let resp = match self.transport.post_form(req).await {
            Ok(r) => r,
            Err(e) if e.retryable() || matches!(e, Error::Timeout { .. }) => return PollOutcome::Transient(scrub(e, &secrets)),
            Err(e) => return PollOutcome::Failed(scrub(e, &secrets)),
        };
        let now_ms = self.now_ms();
        let obj = json_object(&resp.body);
        if is_success(resp.status) {
            if let Some(tokens) = obj.as_ref().and_then(|o| token_set_from(o, now_ms)) {
                return PollOutcome::Granted(tokens);
            }
            if obj.as_ref().and_then(|o| o.get("status")).and_then(Value::as_str) == Some("pending") {
                return PollOutcome::Pending;
            }
        }
        let err = obj.as_ref().and_then(oauth_error);
        match err.as_ref().map(|e| e.code.as_str()) {
            Some("authorization_pending") => return PollOutcome::Pending,
            Some("slow_down") => return PollOutcome::SlowDown,
            Some("expired_token") => {
                return PollOutcome::Failed(Error::Authentication {
                    message: "the device code expired before the user completed authorization; start the device flow again".into(),
                    status: Some(resp.status),
                    body: None,
                    provider_code: Some("expired_token".into()),
                })
            }
            Some("access_denied") => {
                return PollOutcome::Failed(Error::Authentication {
                    message: "the user denied the authorization request".into(),
                    status: Some(resp.status),
                    body: None,
                    provider_code: Some("access_denied".into()),
                })
            }
            _ => {}
        }
        if is_success(resp.status) && err.is_none() {
            // A 2xx with neither tokens nor an error: nothing to wait for. No body on the error:
            // a malformed success may still carry tokens.
            let what = if obj.is_some() { "without an access_token" } else { "with a body that is not JSON" };
            return PollOutcome::Failed(Error::Provider {
                message: format!("the token endpoint answered {} {what}", resp.status),
                status: Some(resp.status),
                body: None,
                provider_code: None,
                retry_after_ms: None,
            });
        }
        if resp.status == 429 {
            return PollOutcome::SlowDown;
        }
        let e = scrub(endpoint_error("device authorization", &resp, obj.as_ref()), &secrets);
        if resp.status == 408 || resp.status >= 500 {
            PollOutcome::Transient(e)
        } else {
            PollOutcome::Failed(e)
        }
    }

    /// The refresh grant (`providers-wire.md` §1.6): form `grant_type=refresh_token`,
    /// `refresh_token`, `client_id`. A response without `refresh_token` keeps the one sent.
    ///
    /// Errors: `invalid_grant` (in any status or a 2xx body), and a 400/401 without an OAuth
    /// error code (qwen-code treats every 400/401 as dead credentials), give
    /// `Error::Authentication` with `provider_code = "invalid_grant"` ([`is_invalid_grant`]).
    /// Another explicit code (`invalid_client`, ...) is an `Error::Authentication` with that code:
    /// a client misconfiguration, which new user credentials would not fix. 429 →
    /// `RateLimit`, 5xx → `Provider` (retryable), no answer → `Connection`/`Timeout`.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet> {
        if refresh_token.is_empty() {
            return Err(Error::Authentication {
                message: "there is no refresh token; sign in again".into(),
                status: None,
                body: None,
                provider_code: Some(NO_REFRESH_TOKEN.into()),
            });
        }
        let ep = &self.endpoints;
        let req =
            self.form(&ep.token_url, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", &ep.client_id)]);
        let secrets = self.secrets(&[refresh_token]);
        let resp = self.transport.post_form(req).await.map_err(|e| scrub(e, &secrets))?;
        let now_ms = self.now_ms();
        let obj = json_object(&resp.body);
        let err = obj.as_ref().and_then(oauth_error);
        if is_success(resp.status) {
            if let Some(mut tokens) = obj.as_ref().and_then(|o| token_set_from(o, now_ms)) {
                if tokens.refresh_token.as_deref().is_none_or(str::is_empty) {
                    tokens.refresh_token = Some(refresh_token.to_string());
                }
                return Ok(tokens);
            }
            if err.is_none() {
                let what = if obj.is_some() { "without an access_token" } else { "with a body that is not JSON" };
                return Err(Error::Provider {
                    message: format!("the token endpoint answered the refresh with {} {what}", resp.status),
                    status: Some(resp.status),
                    body: None,
                    provider_code: None,
                    retry_after_ms: None,
                });
            }
        }
        let code = err.as_ref().map(|e| e.code.as_str());
        let rejected = code == Some(INVALID_GRANT) || (code.is_none() && matches!(resp.status, 400 | 401));
        if rejected {
            let detail = err.as_ref().and_then(|e| e.description.clone()).filter(|d| !d.is_empty());
            let message = match detail {
                Some(d) => format!("the refresh token was rejected (invalid_grant: {d}); sign in again"),
                None => format!("the refresh token was rejected (HTTP {}); sign in again", resp.status),
            };
            let e = Error::Authentication {
                message,
                status: Some(resp.status),
                body: error_body(&resp),
                provider_code: Some(INVALID_GRANT.into()),
            };
            return Err(scrub(e, &secrets));
        }
        Err(scrub(endpoint_error("the token refresh", &resp, obj.as_ref()), &secrets))
    }

    /// The strings no error may contain: the client secret plus the call's own secrets.
    fn secrets(&self, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if let Some(s) = &self.endpoints.client_secret {
            v.push(s.clone());
        }
        v
    }
}

fn poll_cancelled() -> Error {
    Error::Cancelled { message: "the device authorization was cancelled".into() }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

fn json_object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn non_empty_str(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

/// A number of seconds given as a JSON number or a numeric string.
fn seconds(v: Option<&Value>) -> Option<f64> {
    let n = match v? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (n.is_finite() && n >= 0.0).then_some(n)
}

struct OAuthErrorBody {
    code: String,
    description: Option<String>,
}

/// RFC 6749 §5.2 `{"error": "...", "error_description": "..."}`, or the OpenAI-style
/// `{"error": {"code"|"type": "...", "message": "..."}}` some gateways send.
fn oauth_error(obj: &Map<String, Value>) -> Option<OAuthErrorBody> {
    match obj.get("error")? {
        Value::String(code) if !code.is_empty() => Some(OAuthErrorBody {
            code: code.clone(),
            description: obj.get("error_description").and_then(Value::as_str).map(str::to_string),
        }),
        Value::Object(e) => {
            let code = e.get("code").or_else(|| e.get("type")).and_then(|c| match c {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })?;
            Some(OAuthErrorBody { code, description: e.get("message").and_then(Value::as_str).map(str::to_string) })
        }
        _ => None,
    }
}

/// Tokens from a token-endpoint answer (`providers-wire.md` §1.5); `None` without a non-empty
/// `access_token`. Fields this module does not know are kept on `extra`.
fn token_set_from(obj: &Map<String, Value>, now_ms: u64) -> Option<TokenSet> {
    let access_token = non_empty_str(obj, "access_token")?;
    let expires_at_ms = seconds(obj.get("expires_in")).map(|s| now_ms.saturating_add((s * 1000.0) as u64));
    const KNOWN: [&str; 7] = ["access_token", "refresh_token", "token_type", "expires_in", "scope", "resource_url", "id_token"];
    Some(TokenSet {
        access_token,
        refresh_token: non_empty_str(obj, "refresh_token"),
        token_type: non_empty_str(obj, "token_type").unwrap_or_else(|| "Bearer".into()),
        expires_at_ms,
        scope: non_empty_str(obj, "scope"),
        resource_url: non_empty_str(obj, "resource_url"),
        id_token: non_empty_str(obj, "id_token"),
        api_key: None,
        extra: obj.iter().filter(|(k, _)| !KNOWN.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect(),
    })
}

/// The body kept on an error: only for non-2xx answers (a 2xx one may carry tokens).
fn error_body(resp: &TransportResponse) -> Option<String> {
    (!is_success(resp.status) && !resp.body.is_empty()).then(|| truncate_body(&resp.body))
}

/// A refused or failed call: 401/403, and a 400 with an OAuth error code, are
/// `Authentication`; 429 `RateLimit`; the rest `Provider` (5xx retryable by status).
fn endpoint_error(what: &str, resp: &TransportResponse, obj: Option<&Map<String, Value>>) -> Error {
    let err = obj.and_then(oauth_error);
    let detail = match &err {
        Some(e) => match e.description.as_deref().filter(|d| !d.is_empty()) {
            Some(d) => format!("{} - {d}", e.code),
            None => e.code.clone(),
        },
        None => reqwest::StatusCode::from_u16(resp.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("error").to_string(),
    };
    let message = format!("{what} failed: HTTP {} {detail}", resp.status);
    let status = Some(resp.status);
    let body = error_body(resp);
    let provider_code = err.map(|e| e.code);
    match resp.status {
        401 | 403 => Error::Authentication { message, status, body, provider_code },
        s if is_success(s) || (s == 400 && provider_code.is_some()) => Error::Authentication { message, status, body, provider_code },
        429 => Error::RateLimit { message, status, retry_after_ms: None, body, provider_code },
        _ => Error::Provider { message, status, body, provider_code, retry_after_ms: None },
    }
}

/// Replaces every secret in an error's text with `[REDACTED]` (a server may echo a parameter).
fn scrub(mut e: Error, secrets: &[String]) -> Error {
    let clean = |s: &mut String| {
        for secret in secrets.iter().filter(|s| s.len() >= 4) {
            if s.contains(secret.as_str()) {
                *s = s.replace(secret.as_str(), "[REDACTED]");
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
        Error::Connection { message } | Error::Internal { message } | Error::Validation { message, .. } => clean(message),
        _ => {}
    }
    e
}

/// A random (v4) UUID for `x-request-id`; not a secret, so `fastrand` is enough.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = fastrand::u128(..).to_le_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;

    /// Answers from a script, recording each request and when (tokio time) it came.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<VecDeque<Result<TransportResponse>>>,
        seen: Mutex<Vec<(Instant, FormRequest)>>,
    }

    impl Scripted {
        fn new(answers: Vec<Result<TransportResponse>>) -> Arc<Self> {
            Arc::new(Scripted { answers: Mutex::new(answers.into()), seen: Mutex::default() })
        }
        fn times(&self, origin: Instant) -> Vec<u64> {
            self.seen.lock().unwrap().iter().map(|(t, _)| (*t - origin).as_millis() as u64).collect()
        }
        fn requests(&self) -> Vec<FormRequest> {
            self.seen.lock().unwrap().iter().map(|(_, r)| r.clone()).collect()
        }
    }

    impl TokenTransport for Scripted {
        fn post_form(&self, request: FormRequest) -> BoxFuture<'_, Result<TransportResponse>> {
            self.seen.lock().unwrap().push((Instant::now(), request));
            let next = self.answers.lock().unwrap().pop_front().expect("the script ran out of answers");
            Box::pin(async move { next })
        }
    }

    fn ok(body: Value) -> Result<TransportResponse> {
        Ok(TransportResponse::json(200, &body))
    }
    fn status(s: u16, body: Value) -> Result<TransportResponse> {
        Ok(TransportResponse::json(s, &body))
    }
    fn pending() -> Result<TransportResponse> {
        status(400, json!({"error": "authorization_pending"}))
    }
    fn granted() -> Result<TransportResponse> {
        ok(json!({"access_token": "at-1", "refresh_token": "rt-1", "token_type": "Bearer", "expires_in": 21600,
                  "scope": "openid", "resource_url": "portal.qwen.ai", "email": "u@example.com"}))
    }

    fn client(t: Arc<Scripted>, policy: PollPolicy) -> OAuthClient {
        let mut ep = OAuthEndpoints::qwen_with_base("http://127.0.0.1:9");
        ep.poll = policy;
        OAuthClient::with_transport(ep, t).unwrap().with_clock(Arc::new(super::super::TokioClock::new()))
    }

    fn authorization(interval: Option<u64>, expires_in: u64) -> DeviceAuthorization {
        DeviceAuthorization {
            device_code: "dev-code-secret".into(),
            user_code: "BF0Q6UX9".into(),
            verification_uri: "https://x/authorize".into(),
            verification_uri_complete: None,
            expires_in: Duration::from_secs(expires_in),
            interval: interval.map(Duration::from_secs),
            pkce: Pkce::from_verifier("dBjftJeZ4CVP-mJ92K9QJsAqP1Wa6e8rFKXkUbm48Tc"),
            issued_at: Instant::now(),
        }
    }

    #[test]
    fn qwen_defaults_are_the_documented_constants() {
        let ep = OAuthEndpoints::qwen_defaults();
        assert_eq!(ep.device_code_url, "https://chat.qwen.ai/api/v1/oauth2/device/code");
        assert_eq!(ep.token_url, "https://chat.qwen.ai/api/v1/oauth2/token");
        assert_eq!(ep.client_id, "f0304373b74a44d2b584a3fb70ca9e56");
        assert_eq!(ep.scope, "openid profile email model.completion");
        assert_eq!(ep.client_secret, None);
        assert_eq!(ep.poll.default_interval, Duration::from_secs(2));
        ep.validate().unwrap();
        let mut bad = ep.clone();
        bad.token_url = "ftp://x".into();
        assert_eq!(bad.validate().unwrap_err().to_payload()["field"], "tokenUrl");
        let mut bad = ep;
        bad.poll.default_interval = Duration::ZERO;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn form_bodies_are_encoded_like_encode_uri_component() {
        let req = FormRequest {
            url: "http://x".into(),
            params: vec![("scope".into(), QWEN_SCOPE.into()), ("x y".into(), "a+b/c=d&é~*'()!".into())],
            basic_auth: None,
            headers: vec![],
        };
        assert_eq!(req.encoded_body(), "scope=openid%20profile%20email%20model.completion&x%20y=a%2Bb%2Fc%3Dd%26%C3%A9~*'()!");
    }

    #[test]
    fn slow_down_policies() {
        let q = PollPolicy::qwen().slow_down;
        assert_eq!(q.next(Duration::from_secs(2)), Duration::from_secs(3));
        assert_eq!(q.next(Duration::from_secs(8)), Duration::from_secs(10));
        assert_eq!(q.next(Duration::from_secs(30)), Duration::from_secs(30), "never lowers a server interval");
        assert_eq!(PollPolicy::rfc8628().slow_down.next(Duration::from_secs(5)), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn start_posts_the_documented_form() {
        let t = Scripted::new(vec![ok(json!({
            "device_code": "dc", "user_code": "BF0Q6UX9", "verification_uri": "https://chat.qwen.ai/authorize",
            "verification_uri_complete": "https://chat.qwen.ai/authorize?user_code=BF0Q6UX9&client=qwen-code", "expires_in": 1800
        }))]);
        let c = client(t.clone(), PollPolicy::qwen());
        let auth = c.start().await.unwrap();
        let req = &t.requests()[0];
        assert_eq!(req.url, "http://127.0.0.1:9/api/v1/oauth2/device/code");
        let names: Vec<_> = req.params.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["client_id", "scope", "code_challenge", "code_challenge_method"]);
        assert_eq!(req.param("client_id"), Some(QWEN_CLIENT_ID));
        assert_eq!(req.param("code_challenge_method"), Some("S256"));
        assert_eq!(req.param("code_challenge"), Some(auth.pkce.challenge()));
        assert!(req.basic_auth.is_none());
        let (k, id) = &req.headers[0];
        assert_eq!(k, "x-request-id");
        assert_eq!((id.len(), &id[14..15], id.matches('-').count()), (36, "4", 4));
        assert_eq!(auth.device_code, "dc");
        assert_eq!(auth.browser_url(), "https://chat.qwen.ai/authorize?user_code=BF0Q6UX9&client=qwen-code");
        assert_eq!(auth.expires_in, Duration::from_secs(1800));
        assert_eq!(auth.interval, None);
        let d = format!("{auth:?}");
        assert!(!d.contains("\"dc\"") && !d.contains(auth.pkce_verifier()), "{d}");
    }

    #[tokio::test(start_paused = true)]
    async fn start_failures() {
        let t = Scripted::new(vec![
            ok(json!({"error": "invalid_client", "error_description": "unknown client"})),
            status(500, json!({"message": "down"})),
            ok(json!({"user_code": "X"})),
        ]);
        let c = client(t, PollPolicy::qwen());
        let e = c.start().await.unwrap_err();
        assert!(matches!(&e, Error::Authentication { provider_code: Some(c), .. } if c == "invalid_client"), "{e:?}");
        assert!(e.to_string().contains("unknown client"));
        let e = c.start().await.unwrap_err();
        assert_eq!((e.code(), e.status(), e.retryable()), ("PROVIDER_ERROR", Some(500), true));
        assert!(c.start().await.unwrap_err().to_string().contains("device_code"));
    }

    #[tokio::test(start_paused = true)]
    async fn poll_waits_the_interval_before_each_poll() {
        let t = Scripted::new(vec![pending(), pending(), ok(json!({"status": "pending"})), granted()]);
        let c = client(t.clone(), PollPolicy::qwen());
        let t0 = Instant::now();
        let tokens = c.poll(&authorization(None, 1800), &CancellationToken::new()).await.unwrap();
        assert_eq!(t.times(t0), [2000, 4000, 6000, 8000]);
        assert_eq!(tokens.access_token, "at-1");
        assert_eq!(tokens.resource_url.as_deref(), Some("portal.qwen.ai"));
        assert_eq!(tokens.extra["email"], "u@example.com");
        assert_eq!(tokens.expires_at_ms, Some(c.now_ms() + 21_600_000));
        let req = &t.requests()[0];
        let names: Vec<_> = req.params.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["grant_type", "client_id", "device_code", "code_verifier"]);
        assert_eq!(req.param("grant_type"), Some(DEVICE_CODE_GRANT_TYPE));
        assert_eq!(req.param("code_verifier"), Some("dBjftJeZ4CVP-mJ92K9QJsAqP1Wa6e8rFKXkUbm48Tc"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_interval_wins_and_slow_down_grows_it() {
        // qwen policy: ×1.5 capped at 10 s; slow_down on 429 (qwen-code) and on 400 (CPA).
        let slow = |s| status(s, json!({"error": "slow_down"}));
        let t = Scripted::new(vec![slow(429), slow(400), pending(), status(429, json!({})), pending(), granted()]);
        let c = client(t.clone(), PollPolicy::qwen());
        let t0 = Instant::now();
        c.poll(&authorization(Some(4), 1800), &CancellationToken::new()).await.unwrap();
        // 4 → 6 → 9 → (pending keeps 9) → bare 429 → 10 (cap).
        assert_eq!(t.times(t0), [4000, 10_000, 19_000, 28_000, 38_000, 48_000]);
        // RFC policy: +5 s.
        let t = Scripted::new(vec![slow(400), granted()]);
        let c = client(t.clone(), PollPolicy::rfc8628());
        let t0 = Instant::now();
        c.poll(&authorization(None, 1800), &CancellationToken::new()).await.unwrap();
        assert_eq!(t.times(t0), [5000, 15_000]);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_and_denied_end_the_flow() {
        for (code, words) in [("expired_token", "expired"), ("access_denied", "denied")] {
            let t = Scripted::new(vec![pending(), status(400, json!({"error": code}))]);
            let c = client(t.clone(), PollPolicy::qwen());
            let e = c.poll(&authorization(None, 1800), &CancellationToken::new()).await.unwrap_err();
            assert!(matches!(&e, Error::Authentication { provider_code: Some(c), .. } if c == code), "{e:?}");
            assert!(e.to_string().contains(words), "{e}");
            assert_eq!(t.requests().len(), 2);
        }
        let t = Scripted::new(vec![status(401, json!({"error": "invalid_client"}))]);
        let e = client(t, PollPolicy::qwen()).poll(&authorization(None, 1800), &CancellationToken::new()).await.unwrap_err();
        assert_eq!(e.code(), "AUTHENTICATION_ERROR");
    }

    #[tokio::test(start_paused = true)]
    async fn polling_stops_when_the_code_expires() {
        let t = Scripted::new(vec![pending(), pending(), pending()]);
        let c = client(t.clone(), PollPolicy::qwen());
        let t0 = Instant::now();
        let e = c.poll(&authorization(None, 7), &CancellationToken::new()).await.unwrap_err();
        assert_eq!(t.times(t0), [2000, 4000, 6000]);
        assert_eq!(t0.elapsed(), Duration::from_secs(7));
        assert!(matches!(&e, Error::Authentication { provider_code: Some(c), .. } if c == "expired_token"), "{e:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_stops_polling() {
        let t = Scripted::new(vec![pending(), pending()]);
        let c = client(t.clone(), PollPolicy::qwen());
        let cancel = CancellationToken::new();
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(3000)).await;
            canceller.cancel();
        });
        let t0 = Instant::now();
        let e = c.poll(&authorization(None, 1800), &cancel).await.unwrap_err();
        assert_eq!(e.code(), "CANCELLED");
        assert_eq!(t0.elapsed(), Duration::from_millis(3000));
        assert_eq!(t.requests().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_then_surfaced() {
        let conn = || Err(Error::Connection { message: "could not connect to http://127.0.0.1:9: refused".into() });
        let t = Scripted::new(vec![conn(), status(503, json!({})), pending(), granted()]);
        let c = client(t.clone(), PollPolicy::qwen());
        c.poll(&authorization(None, 1800), &CancellationToken::new()).await.unwrap();
        assert_eq!(t.requests().len(), 4);

        let mut policy = PollPolicy::qwen();
        policy.max_transient_failures = 2;
        let t = Scripted::new(vec![conn(), status(502, json!({})), conn()]);
        let e = client(t.clone(), policy).poll(&authorization(None, 1800), &CancellationToken::new()).await.unwrap_err();
        assert_eq!(e.code(), "CONNECTION_ERROR");
        assert_eq!(t.requests().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_without_tokens_is_an_error_without_its_body() {
        let t = Scripted::new(vec![ok(json!({"token": "secret-ish"}))]);
        let e = client(t, PollPolicy::qwen()).poll(&authorization(None, 1800), &CancellationToken::new()).await.unwrap_err();
        assert_eq!(e.code(), "PROVIDER_ERROR");
        assert!(!format!("{e:?}").contains("secret-ish"));
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_sends_the_grant_and_keeps_the_old_refresh_token() {
        let t = Scripted::new(vec![
            ok(json!({"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600, "resource_url": "portal.qwen.ai"})),
            ok(json!({"access_token": "at-3", "refresh_token": "rt-3", "expires_in": "60"})),
        ]);
        let c = client(t.clone(), PollPolicy::qwen());
        let tokens = c.refresh("rt-old").await.unwrap();
        assert_eq!((tokens.access_token.as_str(), tokens.refresh_token.as_deref()), ("at-2", Some("rt-old")));
        assert_eq!(tokens.expires_at_ms, Some(c.now_ms() + 3_600_000));
        let req = &t.requests()[0];
        let names: Vec<_> = req.params.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["grant_type", "refresh_token", "client_id"]);
        assert_eq!((req.param("grant_type"), req.param("refresh_token")), (Some("refresh_token"), Some("rt-old")));
        let tokens = c.refresh("rt-old").await.unwrap();
        assert_eq!((tokens.refresh_token.as_deref(), tokens.expires_at_ms), (Some("rt-3"), Some(c.now_ms() + 60_000)));
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_errors_are_classified_and_scrubbed() {
        let t = Scripted::new(vec![
            status(400, json!({"error": "invalid_grant", "error_description": "refresh token rt-secret-1 expired"})),
            Ok(TransportResponse { status: 401, body: b"Unauthorized".to_vec() }),
            status(401, json!({"error": "invalid_client"})),
            ok(json!({"error": "invalid_grant"})),
            status(503, json!({"error": {"message": "busy"}})),
            status(429, json!({"error": "rate_limited"})),
            Ok(TransportResponse { status: 200, body: b"<html>".to_vec() }),
        ]);
        let c = client(t, PollPolicy::qwen());
        let e = c.refresh("rt-secret-1").await.unwrap_err();
        assert!(is_invalid_grant(&e), "{e:?}");
        assert_eq!(e.status(), Some(400));
        let shown = format!("{e:?} {e}");
        assert!(!shown.contains("rt-secret-1") && shown.contains("[REDACTED]"), "{shown}");
        assert!(is_invalid_grant(&c.refresh("r").await.unwrap_err()), "401 without a code counts as rejected");
        let e = c.refresh("r").await.unwrap_err();
        assert!(!is_invalid_grant(&e) && e.code() == "AUTHENTICATION_ERROR", "{e:?}");
        assert!(is_invalid_grant(&c.refresh("r").await.unwrap_err()), "invalid_grant in a 200 body");
        let e = c.refresh("r").await.unwrap_err();
        assert_eq!((e.code(), e.retryable()), ("PROVIDER_ERROR", true));
        assert_eq!(c.refresh("r").await.unwrap_err().code(), "RATE_LIMIT_ERROR");
        let e = c.refresh("r").await.unwrap_err();
        assert_eq!(e.code(), "PROVIDER_ERROR");
        assert!(e.to_string().contains("not JSON"));
        let e = c.refresh("").await.unwrap_err();
        assert!(matches!(e, Error::Authentication { provider_code: Some(c), .. } if c == NO_REFRESH_TOKEN));
    }

    #[tokio::test(start_paused = true)]
    async fn a_confidential_client_sends_its_secret_as_configured() {
        let t = Scripted::new(vec![granted(), granted()]);
        let mut ep = OAuthEndpoints::qwen_with_base("http://127.0.0.1:9");
        ep.client_secret = Some("client-secret-1".into());
        let c = OAuthClient::with_transport(ep.clone(), t.clone()).unwrap();
        c.refresh("r").await.unwrap();
        ep.client_secret_placement = ClientSecretPlacement::Basic;
        let c = OAuthClient::with_transport(ep.clone(), t.clone()).unwrap();
        c.refresh("r").await.unwrap();
        let reqs = t.requests();
        assert_eq!(reqs[0].param("client_secret"), Some("client-secret-1"));
        assert_eq!(reqs[0].basic_auth, Some((ep.client_id.clone(), "client-secret-1".into())));
        assert_eq!(reqs[1].param("client_secret"), None);
        assert!(reqs[1].basic_auth.is_some());
        for shown in [format!("{:?}", reqs[0]), format!("{ep:?}"), format!("{c:?}")] {
            assert!(!shown.contains("client-secret-1"), "{shown}");
        }
    }

    /// The reqwest transport against a raw loopback HTTP server: what goes on the wire.
    #[tokio::test]
    async fn reqwest_transport_sends_a_form_post() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let len = text[..head_end]
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                        .unwrap_or(0);
                    if buf.len() >= head_end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let body = r#"{"error":"authorization_pending"}"#;
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8(buf).unwrap()
        });
        let transport = ReqwestTransport::new().unwrap();
        let req = FormRequest {
            url: format!("http://{addr}/api/v1/oauth2/token"),
            params: vec![("grant_type".into(), "refresh_token".into()), ("scope".into(), "a b".into())],
            basic_auth: Some(("id".into(), "pw".into())),
            headers: vec![("x-request-id".into(), "rid-1".into())],
        };
        let resp = transport.post_form(req).await.unwrap();
        assert_eq!(resp.status, 400);
        assert_eq!(resp.body, br#"{"error":"authorization_pending"}"#);
        let wire = server.await.unwrap();
        let lower = wire.to_ascii_lowercase();
        assert!(wire.starts_with("POST /api/v1/oauth2/token HTTP/1.1\r\n"), "{wire}");
        assert!(lower.contains("content-type: application/x-www-form-urlencoded\r\n"), "{wire}");
        assert!(lower.contains("accept: application/json\r\n"), "{wire}");
        assert!(lower.contains("x-request-id: rid-1\r\n"), "{wire}");
        assert!(lower.contains(&format!("authorization: basic {}\r\n", STANDARD.encode("id:pw").to_ascii_lowercase())), "{wire}");
        assert!(wire.ends_with("\r\n\r\ngrant_type=refresh_token&scope=a%20b"), "{wire}");

        // Nothing listening: a Connection error naming the origin, not the path.
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let req = FormRequest { url: format!("http://{dead_addr}/secret/path?x=1"), params: vec![], basic_auth: None, headers: vec![] };
        let e = transport.post_form(req).await.unwrap_err();
        assert_eq!(e.code(), "CONNECTION_ERROR");
        assert!(!e.to_string().contains("secret/path"), "{e}");
    }
}
