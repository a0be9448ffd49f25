//! A provider for any OpenAI-compatible endpoint (OpenAI, DashScope compatible-mode, vLLM,
//! LM Studio, ...): `POST {endpoint}/chat/completions` and `GET {endpoint}/models`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use serde_json::Value;
use tokio::time::timeout_at;

use super::client::{shared_client, ClientKey};
use super::config::{CallOptions, ProviderConfig, Timeouts};
use super::http_error::{bad_answer, error_from_envelope, error_from_response};
use super::stream::{self, ChunkStream};
use super::vendor::{Credentials, Quirks};
use crate::error::{Error, Result, TimeoutPhase};
use crate::model::{ChatRequest, ChatResponse};
use crate::schedule::backoff::Backoff;

/// Largest response body accepted from an upstream.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 << 20;

#[derive(Clone)]
pub struct OpenAICompatibleProvider {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: ProviderConfig,
    pub client: reqwest::Client,
    /// The configured base URL (without `/chat/completions`) + each endpoint's path, parsed
    /// once rather than per request (reqwest parses every request's URL twice more itself;
    /// ours was the third parse).
    chat_url: reqwest::Url,
    models_url: reqwest::Url,
    /// Content-Type, User-Agent and the configured headers; Authorization is added per call.
    pub base_headers: HeaderMap,
    /// `Bearer <key>` for each configured key, built once (cloning one is a reference count).
    authorizations: Vec<HeaderValue>,
    key_cursor: AtomicUsize,
    /// `scheme://host:port` of the endpoint, for error messages (never a path or query).
    pub origin: String,
    /// Set for vendors whose credentials change or sign each request (then `api_keys` are unused).
    pub credentials: Option<Arc<dyn Credentials>>,
    pub quirks: Option<Arc<dyn Quirks>>,
}

/// What a request is for; the URL is the base URL plus its path.
#[derive(Clone, Copy)]
pub(crate) enum Endpoint {
    Chat,
    Models,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Models => "/models",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

#[derive(Debug, Clone)]
pub struct HealthReport {
    pub status: HealthStatus,
    pub latency_ms: f64,
    pub error: Option<String>,
}

impl OpenAICompatibleProvider {
    pub fn new(config: ProviderConfig) -> Result<Self> {
        Self::for_vendor(config, None, None)
    }

    /// A provider whose vendor adds credentials and quirks to the OpenAI protocol.
    pub fn for_vendor(config: ProviderConfig, credentials: Option<Arc<dyn Credentials>>, quirks: Option<Arc<dyn Quirks>>) -> Result<Self> {
        let client = shared_client(ClientKey { connect_timeout: config.timeouts.connect, http_version: config.http_version })?;
        let base = config.endpoint.strip_suffix("/chat/completions").unwrap_or(&config.endpoint);
        let parsed = url::Url::parse(base).map_err(|e| Error::validation("endpoint", format!("endpoint is not a valid URL: {e}")))?;
        let origin = parsed.origin().ascii_serialization();
        let endpoint_url = |to: Endpoint| reqwest::Url::parse(&format!("{base}{}", to.path())).map_err(|e| Error::validation("endpoint", format!("endpoint is not a valid URL: {e}")));
        let (chat_url, models_url) = (endpoint_url(Endpoint::Chat)?, endpoint_url(Endpoint::Models)?);
        let mut base_headers = HeaderMap::new();
        base_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        base_headers.insert(USER_AGENT, HeaderValue::from_static(concat!("rcc-pipeline/", env!("CARGO_PKG_VERSION"))));
        for (k, v) in &config.headers {
            // Both were validated by ProviderConfig; a failure here is a broken invariant.
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| Error::Internal { message: e.to_string() })?;
            let value = HeaderValue::from_str(v).map_err(|e| Error::Internal { message: e.to_string() })?;
            base_headers.insert(name, value);
        }
        let authorizations = config
            .api_keys
            .iter()
            .map(|k| {
                // ProviderConfig refused keys that cannot be sent; a failure is a broken invariant.
                let mut v = HeaderValue::from_str(&format!("Bearer {k}")).map_err(|_| Error::Internal { message: "an API key cannot be sent in a header".into() })?;
                v.set_sensitive(true);
                Ok(v)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(OpenAICompatibleProvider {
            inner: Arc::new(Inner {
                chat_url,
                models_url,
                client,
                base_headers,
                authorizations,
                key_cursor: AtomicUsize::new(0),
                origin,
                config,
                credentials,
                quirks,
            }),
        })
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.inner.config
    }

    /// A non-streaming chat completion. The request is sent with `stream:false`.
    pub async fn chat(&self, mut req: ChatRequest, opts: CallOptions) -> Result<ChatResponse> {
        req.validate(self.inner.config.default_model.as_deref())?;
        req.stream = Some(false);
        req.stream_options = None;
        if let Some(q) = &self.inner.quirks {
            q.fix_request(&mut req);
        }
        let model = req.model.clone().unwrap_or_default();
        let body = Bytes::from(serde_json::to_vec(&req).map_err(|e| Error::Internal { message: e.to_string() })?);
        let timeouts = self.inner.config.timeouts.with(&opts.timeouts);
        let deadline = tokio::time::Instant::now() + timeouts.total;
        let inner = &self.inner;
        let attempts = async {
            let mut rng = fastrand::Rng::new();
            let mut attempt = 0;
            loop {
                match inner.chat_once(body.clone(), &model, &timeouts).await {
                    Err(e) if e.retryable() && attempt < inner.config.max_retries => {
                        let wait = Backoff::default().delay(attempt, e.retry_after_ms().map(Duration::from_millis), &mut rng);
                        if tokio::time::Instant::now() + wait >= deadline {
                            return Err(e);
                        }
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        };
        tokio::select! {
            biased;
            _ = opts.cancel.cancelled() => Err(Error::cancelled()),
            r = timeout_at(deadline, attempts) => r.unwrap_or_else(|_| Err(Error::timeout(TimeoutPhase::Total, ms(timeouts.total)))),
        }
        .map_err(|e| inner.redact(e))
    }

    /// A streaming chat completion. The request is validated now; the HTTP call runs on a
    /// spawned task (on the current tokio runtime) that feeds the returned stream.
    pub fn stream_chat(&self, mut req: ChatRequest, opts: CallOptions) -> Result<ChunkStream> {
        req.validate(self.inner.config.default_model.as_deref())?;
        req.stream = Some(true);
        if let Some(q) = &self.inner.quirks {
            q.fix_request(&mut req);
        }
        let timeouts = self.inner.config.timeouts.with(&opts.timeouts);
        Ok(stream::spawn(self.inner.clone(), req, timeouts, opts.cancel))
    }

    /// `GET {endpoint}/models` → model ids.
    pub async fn list_models(&self, opts: CallOptions) -> Result<Vec<String>> {
        let timeouts = self.inner.config.timeouts.with(&opts.timeouts);
        let body = tokio::select! {
            biased;
            _ = opts.cancel.cancelled() => Err(Error::cancelled()),
            r = self.inner.get_json(Endpoint::Models, &timeouts) => r,
        }
        .map_err(|e| self.inner.redact(e))?;
        let data = body
            .get("data")
            .and_then(|d| d.as_array())
            .or_else(|| body.as_array())
            .ok_or_else(|| bad_answer("the models list has no data array".into(), 200, body.to_string().as_bytes()))?;
        Ok(data.iter().filter_map(|m| m.get("id").and_then(|id| id.as_str()).map(str::to_string)).collect())
    }

    /// Probes `GET {endpoint}/models` with a short budget: healthy on 2xx, degraded when the
    /// host answers but not with a model list (404/405 or other 4xx apart from auth),
    /// unhealthy on auth failure, 5xx, timeouts and connection errors.
    pub async fn health_check(&self) -> HealthReport {
        let t = self.inner.config.timeouts;
        let budget = Timeouts { first_token: t.first_token.min(Duration::from_secs(10)), total: t.total.min(Duration::from_secs(15)), ..t };
        let started = Instant::now();
        let r = self.inner.get_json(Endpoint::Models, &budget).await.map_err(|e| self.inner.redact(e));
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (status, error) = match r {
            Ok(_) => (HealthStatus::Healthy, None),
            Err(e) => {
                let s = match (&e, e.status()) {
                    (Error::Authentication { .. }, _) => HealthStatus::Unhealthy,
                    (_, Some(s)) if (400..500).contains(&s) && s != 429 => HealthStatus::Degraded,
                    (Error::Provider { status: Some(200), .. }, _) => HealthStatus::Degraded,
                    _ => HealthStatus::Unhealthy,
                };
                (s, Some(e.to_string()))
            }
        };
        HealthReport { status, latency_ms, error }
    }
}

pub(crate) fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Inner {
    /// The configured URL of an endpoint.
    fn url(&self, to: Endpoint) -> &reqwest::Url {
        match to {
            Endpoint::Chat => &self.chat_url,
            Endpoint::Models => &self.models_url,
        }
    }

    /// The next API key, round-robin over the configured ones.
    fn authorization(&self) -> Option<HeaderValue> {
        let all = &self.authorizations;
        if all.is_empty() {
            return None;
        }
        Some(all[self.key_cursor.fetch_add(1, Ordering::Relaxed) % all.len()].clone())
    }

    /// Sends a request and waits for the response head within the first-token budget. The
    /// connect timeout is the client's; a per-call override picks the pooled client for it.
    /// With vendor credentials, a refused credential is refreshed and the request sent once
    /// more (a refresh followed by one replay is not a retry); a second refusal is the answer.
    pub(crate) async fn send(&self, method: reqwest::Method, to: Endpoint, body: Option<Bytes>, t: &Timeouts, accept: &'static str) -> Result<reqwest::Response> {
        let client = if t.connect == self.config.timeouts.connect {
            self.client.clone()
        } else {
            shared_client(ClientKey { connect_timeout: t.connect, http_version: self.config.http_version })?
        };
        let mut replayed = false;
        loop {
            let auth = match &self.credentials {
                Some(c) => Some(c.authorize().await?),
                None => None,
            };
            let req = match auth.as_ref().and_then(|a| a.base_url.as_deref()) {
                Some(base) => client.request(method.clone(), format!("{base}{}", to.path())),
                None => client.request(method.clone(), self.url(to).clone()),
            };
            let mut req = req.headers(self.base_headers.clone()).header(ACCEPT, accept);
            if let Some(body) = &body {
                req = req.body(body.clone());
            }
            match &auth {
                Some(a) => req = req.headers(a.headers.clone()),
                None => {
                    if let Some(key) = self.authorization() {
                        req = req.header(AUTHORIZATION, key);
                    }
                }
            }
            let resp = match tokio::time::timeout(t.first_token, req.send()).await {
                Err(_) => return Err(Error::timeout(TimeoutPhase::FirstToken, ms(t.first_token))),
                Ok(Err(e)) => return Err(self.transport_error(e, t)),
                Ok(Ok(resp)) => resp,
            };
            let status = resp.status().as_u16();
            let (Some(creds), Some(auth)) = (&self.credentials, auth) else { return Ok(resp) };
            if replayed || !matches!(status, 401 | 403) {
                return Ok(resp);
            }
            let mut resp = resp;
            let bytes = self.read_body(&mut resp, t).await?;
            if !self.quirks.as_ref().map_or(status == 401, |q| q.is_credential_rejection(status, &bytes)) || !creds.rejected(auth.credential.clone()).await? {
                return Err(self.error_from(status, resp.headers(), &bytes));
            }
            replayed = true;
        }
    }

    /// The typed error of an HTTP error answer: the vendor's reading first, then the generic one.
    pub(crate) fn error_from(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        self.quirks.as_ref().and_then(|q| q.classify_error(status, headers, body)).unwrap_or_else(|| error_from_response(status, headers, body))
    }

    /// An error in a successful body: an OpenAI error envelope or the vendor's business error.
    pub(crate) fn error_in_body(&self, value: &Value) -> Option<Error> {
        if let Some(e) = self.quirks.as_ref().and_then(|q| q.business_error(value)) {
            return Some(e);
        }
        (value.get("error").is_some_and(|e| !e.is_null()) && value.get("choices").is_none()).then(|| error_from_envelope(value))
    }

    /// Reads a whole body, each read bounded by the idle timeout.
    pub(crate) async fn read_body(&self, resp: &mut reqwest::Response, t: &Timeouts) -> Result<Vec<u8>> {
        let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0).min(1 << 20) as usize);
        loop {
            match tokio::time::timeout(t.idle, resp.chunk()).await {
                Err(_) => return Err(Error::timeout(TimeoutPhase::Idle, ms(t.idle))),
                Ok(Err(e)) => {
                    return Err(Error::Connection { message: format!("the connection to {} broke while reading the response: {}", self.origin, root_cause(e)) })
                }
                Ok(Ok(None)) => return Ok(body),
                Ok(Ok(Some(b))) => {
                    if body.len() + b.len() > MAX_RESPONSE_BYTES {
                        return Err(Error::Provider {
                            message: format!("the response from {} is larger than {} bytes", self.origin, MAX_RESPONSE_BYTES),
                            status: Some(resp.status().as_u16()),
                            body: None,
                            provider_code: None,
                            retry_after_ms: None,
                        });
                    }
                    body.extend_from_slice(&b);
                }
            }
        }
    }

    async fn chat_once(&self, body: Bytes, model: &str, t: &Timeouts) -> Result<ChatResponse> {
        let mut resp = self.send(reqwest::Method::POST, Endpoint::Chat, Some(body), t, "application/json").await?;
        let status = resp.status().as_u16();
        let bytes = self.read_body(&mut resp, t).await?;
        if !(200..300).contains(&status) {
            return Err(self.error_from(status, resp.headers(), &bytes));
        }
        let mut response = self.chat_response(status, &bytes)?;
        response.normalize(model);
        Ok(response)
    }

    /// The completion in a successful answer's body, or the error the body reports.
    ///
    /// Without vendor quirks (which read the body as a tree), a body that parses as a
    /// completion and has no `error` member is taken as is: parsing it straight into the typed
    /// response costs about half of building a `Value` first. Anything else goes the general
    /// way, which tells an error envelope from a completion and names what is wrong.
    fn chat_response(&self, status: u16, bytes: &[u8]) -> Result<ChatResponse> {
        if self.quirks.is_none() {
            if let Ok(response) = serde_json::from_slice::<ChatResponse>(bytes) {
                if response.extra.get("error").is_none_or(Value::is_null) {
                    return Ok(response);
                }
            }
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| bad_answer(format!("the upstream answered {status} with a body that is not JSON: {e}"), status, bytes))?;
        if let Some(e) = self.error_in_body(&value) {
            return Err(e);
        }
        serde_json::from_value(value).map_err(|e| bad_answer(format!("the upstream's chat.completion does not have the expected shape: {e}"), status, bytes))
    }

    async fn get_json(&self, to: Endpoint, t: &Timeouts) -> Result<Value> {
        let work = async {
            let mut resp = self.send(reqwest::Method::GET, to, None, t, "application/json").await?;
            let status = resp.status().as_u16();
            let bytes = self.read_body(&mut resp, t).await?;
            if !(200..300).contains(&status) {
                return Err(self.error_from(status, resp.headers(), &bytes));
            }
            let value: Value = serde_json::from_slice(&bytes).map_err(|e| bad_answer(format!("{} answered with a body that is not JSON: {e}", to.path()), status, &bytes))?;
            match self.quirks.as_ref().and_then(|q| q.business_error(&value)) {
                Some(e) => Err(e),
                None => Ok(value),
            }
        };
        tokio::time::timeout(t.total, work).await.unwrap_or_else(|_| Err(Error::timeout(TimeoutPhase::Total, ms(t.total))))
    }

    pub(crate) fn transport_error(&self, e: reqwest::Error, t: &Timeouts) -> Error {
        if e.is_connect() && is_timeout_chain(&e) {
            return Error::timeout(TimeoutPhase::Connect, ms(t.connect));
        }
        if e.is_timeout() {
            return Error::timeout(TimeoutPhase::FirstToken, ms(t.first_token));
        }
        let what = if e.is_connect() { "could not connect to" } else { "the request failed on" };
        Error::Connection { message: format!("{what} {}: {}", self.origin, root_cause(e)) }
    }

    /// Removes every configured API key from an error's text fields (upstreams sometimes
    /// echo the key back in their error bodies).
    pub(crate) fn redact(&self, e: Error) -> Error {
        if self.config.api_keys.is_empty() {
            return e;
        }
        let scrub = |s: &mut String| {
            for k in &self.config.api_keys {
                if s.contains(k.as_str()) {
                    *s = s.replace(k.as_str(), "[REDACTED]");
                }
            }
        };
        let mut e = e;
        match &mut e {
            Error::Authentication { message, body, .. }
            | Error::RateLimit { message, body, .. }
            | Error::Provider { message, body, .. } => {
                scrub(message);
                if let Some(b) = body {
                    scrub(b);
                }
            }
            Error::Connection { message } | Error::Stream { message, .. } | Error::Internal { message } => scrub(message),
            _ => {}
        }
        e
    }
}

fn is_timeout_chain(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(re) = err.downcast_ref::<reqwest::Error>() {
            if re.is_timeout() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        if err.to_string().contains("timed out") {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The innermost cause of a transport error ("Connection refused (os error 111)"), never the
/// URL (its query could carry credentials).
pub(crate) fn root_cause(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut cur: &dyn std::error::Error = &e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
