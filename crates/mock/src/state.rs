//! What the mock observed and what it was told to do: counters, recorded requests, and the
//! Qwen OAuth and iFlow state (issued tokens, scripts, switches). Behaviour lives in the
//! modules that serve each surface; this module only holds data.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

const MAX_RECORDED: usize = 1000;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub http_version: String,
    /// Lower-case header names.
    pub headers: serde_json::Map<String, Value>,
    /// The JSON body, or the raw text when it was not JSON (form bodies stay raw text).
    pub body: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub requests: u64,
    pub chat_requests: u64,
    pub stream_requests: u64,
    pub streams_completed: u64,
    /// Streams whose client went away before the mock had sent everything.
    pub streams_cancelled: u64,
    pub connections_opened: u64,
    pub connections_closed: u64,
    pub open_connections: u64,
}

/// Locks a mutex, ignoring poisoning: a panicking test must not wedge the mock.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
pub(crate) struct State {
    /// The port the mock listens on (for `resource_url` and verification URIs).
    pub port: u16,
    pub requests: AtomicU64,
    pub chat_requests: AtomicU64,
    pub stream_requests: AtomicU64,
    pub streams_completed: AtomicU64,
    pub streams_cancelled: AtomicU64,
    pub connections_opened: AtomicU64,
    pub connections_closed: AtomicU64,
    pub recorded: Mutex<VecDeque<RecordedRequest>>,
    /// Accepted bearer keys (any when empty); replaceable at run time to revoke a key.
    pub api_keys: std::sync::RwLock<Vec<String>>,
    pub models: Vec<String>,
    pub qwen: Mutex<QwenState>,
    pub iflow: Mutex<IflowState>,
}

impl State {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record(&self, r: RecordedRequest) {
        let mut q = lock(&self.recorded);
        if q.len() == MAX_RECORDED {
            q.pop_front();
        }
        q.push_back(r);
    }

    pub fn stats(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let opened = g(&self.connections_opened);
        let closed = g(&self.connections_closed);
        Stats {
            requests: g(&self.requests),
            chat_requests: g(&self.chat_requests),
            stream_requests: g(&self.stream_requests),
            streams_completed: g(&self.streams_completed),
            streams_cancelled: g(&self.streams_cancelled),
            connections_opened: opened,
            connections_closed: closed,
            open_connections: opened.saturating_sub(closed),
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.recorded).iter().cloned().collect()
    }

    /// Zeroes the request counters, forgets recorded requests, and puts the Qwen and iFlow
    /// state back to its defaults (tokens forgotten, scripts and switches cleared). Connection
    /// counters and the configured API keys are left alone: connections outlive a reset.
    pub fn reset(&self) {
        for c in [&self.requests, &self.chat_requests, &self.stream_requests, &self.streams_completed, &self.streams_cancelled] {
            c.store(0, Ordering::Relaxed);
        }
        lock(&self.recorded).clear();
        *lock(&self.qwen) = QwenState::default();
        *lock(&self.iflow) = IflowState::default();
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

// ---------------------------------------------------------------------------------------------
// Qwen OAuth

/// The public client id of qwen-code (providers-wire §1.1).
pub const QWEN_CLIENT_ID: &str = "f0304373b74a44d2b584a3fb70ca9e56";

/// One scripted answer to a device-grant poll, see [`crate::QwenControl::script`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollStep {
    /// 400 `authorization_pending`.
    Pending,
    /// 200 `{"status":"pending"}`.
    Pending200,
    /// 429 `slow_down` (what qwen-code expects).
    SlowDown,
    /// 400 `slow_down` (what CPA / RFC 8628 expect).
    SlowDown400,
    /// 400 `expired_token`.
    Expired,
    /// 400 `access_denied`.
    Denied,
    /// 200 with tokens.
    Approve,
    /// 500 with a body that is not JSON.
    ServerError,
}

impl PollStep {
    pub fn parse(s: &str) -> Result<PollStep, String> {
        Ok(match s {
            "pending" | "authorization_pending" => PollStep::Pending,
            "pending_200" => PollStep::Pending200,
            "slow_down" => PollStep::SlowDown,
            "slow_down_400" => PollStep::SlowDown400,
            "expired" | "expired_token" => PollStep::Expired,
            "denied" | "access_denied" => PollStep::Denied,
            "approve" | "success" => PollStep::Approve,
            "server_error" => PollStep::ServerError,
            other => return Err(format!("unknown qwen poll step {other:?}")),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceState {
    Pending,
    Approved,
    Denied,
    /// Tokens were issued for it; a device code is good for one success only.
    Used,
}

#[derive(Debug, Clone)]
pub(crate) struct DeviceCode {
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub challenge: String,
    pub expires_at: Instant,
    pub polls: u32,
    pub state: DeviceState,
}

pub(crate) struct QwenState {
    /// The `client_id` required on every request; `None` accepts any.
    pub client_id: Option<String>,
    /// `resource_url` in token answers; `None` means `http://127.0.0.1:<port>`.
    pub resource_url: Option<String>,
    pub token_lifetime: Duration,
    pub device_code_lifetime: Duration,
    /// `interval` in the device-code answer (seconds); omitted when `None`.
    pub interval: Option<u64>,
    /// Without a script, a device code is approved on the poll after this many pending
    /// answers; `None`: only an explicit approval (control or `GET /authorize`) approves.
    pub approve_after: Option<u32>,
    pub script: VecDeque<PollStep>,
    /// The error every refresh answers with while set.
    pub fail_refresh: Option<String>,
    pub refresh_delay: Duration,
    /// How long an access token keeps working after a refresh replaced it.
    pub old_token_grace: Duration,
    pub device_codes: HashMap<String, DeviceCode>,
    /// Every access token ever issued, with its expiry.
    pub access_tokens: HashMap<String, Instant>,
    /// Refresh tokens still usable, each with the access token issued beside it.
    pub refresh_tokens: HashMap<String, String>,
    pub last_access_token: Option<String>,
    pub last_refresh_token: Option<String>,
    pub device_code_count: u64,
    pub polls: u64,
    pub poll_times: Vec<u64>,
    pub refreshes: u64,
    pub issued_tokens: u64,
    pub rejected_tokens: u64,
}

impl Default for QwenState {
    fn default() -> Self {
        QwenState {
            client_id: Some(QWEN_CLIENT_ID.to_string()),
            resource_url: None,
            token_lifetime: Duration::from_secs(21600),
            device_code_lifetime: Duration::from_secs(1800),
            interval: None,
            approve_after: Some(0),
            script: VecDeque::new(),
            fail_refresh: None,
            refresh_delay: Duration::ZERO,
            old_token_grace: Duration::ZERO,
            device_codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            last_access_token: None,
            last_refresh_token: None,
            device_code_count: 0,
            polls: 0,
            poll_times: Vec::new(),
            refreshes: 0,
            issued_tokens: 0,
            rejected_tokens: 0,
        }
    }
}

/// What a bearer token is to the Qwen chat endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenStatus {
    /// An issued access token that has not expired or been rotated away.
    Valid,
    /// An issued access token that expired or was rotated away.
    Expired,
    /// Not a token this mock issued: an API key, for the API-key rules to judge.
    Unknown,
}

impl QwenState {
    pub fn token_status(&self, token: &str) -> TokenStatus {
        match self.access_tokens.get(token) {
            Some(exp) if Instant::now() < *exp => TokenStatus::Valid,
            Some(_) => TokenStatus::Expired,
            None => TokenStatus::Unknown,
        }
    }
}

/// Counters and the latest tokens of the Qwen OAuth mock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QwenStats {
    /// Device codes handed out.
    pub device_codes: u64,
    /// Device-grant polls received (valid or not).
    pub polls: u64,
    /// When each poll arrived, in Unix milliseconds.
    pub poll_times: Vec<u64>,
    /// Refresh-grant requests received (successful or not).
    pub refreshes: u64,
    /// Access tokens issued (device grant, refresh and `issue_tokens`).
    pub issued_tokens: u64,
    /// Chat requests answered 401 because their issued token had expired or was rotated.
    pub rejected_tokens: u64,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// iFlow

/// The iFlow CLI's client id (providers-wire §3.3).
pub const IFLOW_CLIENT_ID: &str = "10009311001";
/// The API key the iFlow mock starts with (`sk-` and 32 hex digits, like the real ones).
pub const IFLOW_DEFAULT_API_KEY: &str = "sk-0123456789abcdef0123456789abcdef";

#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub redirect_uri: String,
    pub client_id: String,
}

pub(crate) struct IflowState {
    pub api_key: String,
    /// Check `User-Agent`, `session-id`, `x-iflow-timestamp` and `x-iflow-signature`.
    pub strict_signature: bool,
    /// The authorize page redirects with `error=access_denied`.
    pub deny: bool,
    pub client_id: Option<String>,
    /// `None` accepts any secret (it must still agree between Basic auth and the form).
    pub client_secret: Option<String>,
    pub token_lifetime: Duration,
    pub fail_refresh: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub user_info_script: VecDeque<String>,
    /// Name shown by the cookie-mode API-key endpoint.
    pub key_name: String,
    pub codes: HashMap<String, AuthCode>,
    pub access_tokens: HashMap<String, Instant>,
    pub refresh_tokens: HashMap<String, String>,
    pub last_access_token: Option<String>,
    pub last_refresh_token: Option<String>,
    pub authorizations: u64,
    pub token_calls: u64,
    pub code_exchanges: u64,
    pub refreshes: u64,
    pub user_info_calls: u64,
    pub chat_requests: u64,
    pub signature_failures: u64,
    pub business_errors: u64,
}

impl Default for IflowState {
    fn default() -> Self {
        IflowState {
            api_key: IFLOW_DEFAULT_API_KEY.to_string(),
            strict_signature: true,
            deny: false,
            client_id: Some(IFLOW_CLIENT_ID.to_string()),
            client_secret: None,
            token_lifetime: Duration::from_secs(48 * 3600),
            fail_refresh: None,
            email: Some("mock-user@iflow.cn".to_string()),
            phone: Some("+8613800000000".to_string()),
            user_info_script: VecDeque::new(),
            key_name: "rcc-mock".to_string(),
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            last_access_token: None,
            last_refresh_token: None,
            authorizations: 0,
            token_calls: 0,
            code_exchanges: 0,
            refreshes: 0,
            user_info_calls: 0,
            chat_requests: 0,
            signature_failures: 0,
            business_errors: 0,
        }
    }
}

impl IflowState {
    pub fn access_token_valid(&self, token: &str) -> bool {
        self.access_tokens.get(token).is_some_and(|exp| Instant::now() < *exp)
    }
}

/// Counters, the current API key and the latest tokens of the iFlow mock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IflowStats {
    pub api_key: String,
    /// `GET /iflow/oauth` requests that redirected (approved or denied).
    pub authorizations: u64,
    /// `POST /iflow/oauth/token` requests, any grant, any outcome.
    pub token_calls: u64,
    /// Successful authorization-code exchanges.
    pub code_exchanges: u64,
    /// Refresh-grant requests (successful or not).
    pub refreshes: u64,
    pub user_info_calls: u64,
    pub chat_requests: u64,
    /// Chat requests answered 406 for a missing or wrong signature.
    pub signature_failures: u64,
    /// Chat requests answered with a 200 business-error envelope.
    pub business_errors: u64,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
}

/// A token pair issued by an OAuth mock, as the token endpoint would return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    /// Qwen only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_url: Option<String>,
}
