//! What a provider asks before each request: "a token that is good for a while". The source
//! keeps the current [`TokenSet`] in memory (loaded from the store on first use) and refreshes
//! it ahead of expiry, so that:
//!
//! * **one refresh runs at a time per source**: concurrent callers queue on one async mutex
//!   (FIFO, no polling) and, once the refresh is done, find the new token and return it;
//! * **one refresh runs at a time per credential file**: the refresh holds the store's
//!   cross-process lock, re-reads the file under it, and uses a token another process has just
//!   written instead of calling the network (that process may have rotated the refresh token,
//!   so refreshing again with ours would fail);
//! * **a caller that gives up does not abort a refresh**: the refresh runs in a task of its
//!   own, because a refresh cut off after the server rotated the refresh token but before the
//!   file was written would lose the credentials;
//! * **a 401 causes one refresh**, however many requests see it: `invalidate_and_refresh`
//!   refreshes only while the current token is still the rejected one;
//! * **dead credentials are cleared**: on `invalid_grant` the file and memory are cleared (as
//!   qwen-code does) and [`AuthEvent::AuthenticationRequired`] is emitted.
//!
//! Events go to an optional [`AuthEventSink`], a plain callback invoked synchronously on the
//! refreshing task. It must return quickly and must not call back into the source's async
//! methods synchronously (spawn for that).

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::device_flow::{is_invalid_grant, DeviceAuthorization, OAuthClient, INVALID_GRANT};
use super::store::TokenStore;
use super::TokenSet;
use crate::error::{Error, Result};

/// `provider_code` of the error when there are no stored credentials at all.
pub const NO_CREDENTIALS: &str = "no_credentials";
/// `provider_code` of the error when the token expired and there is no refresh token.
pub const NO_REFRESH_TOKEN: &str = "no_refresh_token";
/// qwen-code's margin: a token counts as valid until 30 s before its expiry.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// Whether only a new sign-in (device flow) can fix this error: the refresh token was
/// rejected, there is none, or there are no credentials.
pub fn requires_reauthentication(e: &Error) -> bool {
    matches!(e, Error::Authentication { provider_code: Some(c), .. }
        if c == INVALID_GRANT || c == NO_CREDENTIALS || c == NO_REFRESH_TOKEN)
}

/// Where a new token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOrigin {
    /// This process called the token endpoint.
    Network,
    /// Another process (or another source on the same file) refreshed; this one adopted the
    /// token from the file.
    OtherProcess,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReauthReason {
    /// The token endpoint answered `invalid_grant`; the credentials were cleared.
    RefreshRejected,
    NoRefreshToken,
    NoCredentials,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AuthEvent {
    /// The current token changed.
    TokenRefreshed { expires_at_ms: Option<u64>, origin: RefreshOrigin },
    /// The user has to sign in again.
    AuthenticationRequired { reason: ReauthReason, message: String },
    /// A refreshed token could not be written to (or dead credentials deleted from) the store.
    /// The source keeps working from memory; other processes will not see the token.
    StoreWriteFailed { message: String },
}

/// Receives [`AuthEvent`]s.
pub type AuthEventSink = Arc<dyn Fn(&AuthEvent) + Send + Sync>;

#[derive(Clone)]
pub struct SourceOptions {
    /// A token is refreshed once less than this is left before its expiry.
    pub refresh_margin: Duration,
    pub events: Option<AuthEventSink>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions { refresh_margin: DEFAULT_REFRESH_MARGIN, events: None }
    }
}

impl std::fmt::Debug for SourceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceOptions").field("refresh_margin", &self.refresh_margin).field("events", &self.events.is_some()).finish()
    }
}

/// A summary without secrets (the original iFlow provider's `getTokenStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthStatus {
    pub has_access_token: bool,
    pub has_refresh_token: bool,
    /// Usable for at least the refresh margin (an `access_token()` call would not refresh).
    pub is_valid: bool,
    pub expires_at_ms: Option<u64>,
    /// Whole seconds left; 0 when expired or unknown.
    pub time_until_expiry_s: u64,
}

/// OAuth credentials for one account (one credential file). Cheap to clone; clones share the
/// token and the single-flight state.
#[derive(Clone)]
pub struct OAuthCredentialSource {
    inner: Arc<Inner>,
}

struct Inner {
    client: OAuthClient,
    store: TokenStore,
    margin: Duration,
    events: Option<AuthEventSink>,
    /// The current token. A std mutex: held for a clone, never across an await.
    current: StdMutex<Option<Arc<TokenSet>>>,
    /// Held by whoever loads, refreshes or replaces the token.
    gate: Arc<Mutex<()>>,
}

impl std::fmt::Debug for OAuthCredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthCredentialSource")
            .field("client", &self.inner.client)
            .field("store", &self.inner.store)
            .field("refresh_margin", &self.inner.margin)
            .field("current", &self.inner.cached())
            .finish()
    }
}

impl OAuthCredentialSource {
    pub fn new(client: OAuthClient, store: TokenStore) -> Self {
        Self::with_options(client, store, SourceOptions::default())
    }

    pub fn with_options(client: OAuthClient, store: TokenStore, options: SourceOptions) -> Self {
        OAuthCredentialSource {
            inner: Arc::new(Inner {
                client,
                store,
                margin: options.refresh_margin,
                events: options.events,
                current: StdMutex::new(None),
                gate: Arc::new(Mutex::new(())),
            }),
        }
    }

    pub fn client(&self) -> &OAuthClient {
        &self.inner.client
    }

    pub fn store(&self) -> &TokenStore {
        &self.inner.store
    }

    pub fn refresh_margin(&self) -> Duration {
        self.inner.margin
    }

    /// A token valid for at least the refresh margin, refreshed first if needed. Errors:
    /// [`requires_reauthentication`] ones when only a sign-in helps; transport and server
    /// errors of the refresh as they are (retryable ones stay retryable); a store error when
    /// the credential file is unreadable.
    pub async fn access_token(&self) -> Result<TokenSet> {
        if let Some(t) = self.inner.usable(None) {
            return Ok(t);
        }
        self.inner.obtain(None).await
    }

    /// For a 401 from the upstream: refreshes unless the current token is already another one
    /// than `rejected_access_token` (then returns that one), so any number of concurrent 401s
    /// for one token cause one refresh. The refresh happens even when the rejected token looks
    /// unexpired.
    pub async fn invalidate_and_refresh(&self, rejected_access_token: &str) -> Result<TokenSet> {
        if let Some(t) = self.inner.usable(Some(rejected_access_token)) {
            return Ok(t);
        }
        self.inner.obtain(Some(rejected_access_token.to_string())).await
    }

    /// Refreshes now, whatever the current token's expiry (`refreshAccessToken()`).
    pub async fn refresh_now(&self) -> Result<TokenSet> {
        let current = self.access_token().await?;
        self.invalidate_and_refresh(&current.access_token).await
    }

    /// The state of the credentials, read from the store when none is in memory yet. No
    /// network.
    pub async fn status(&self) -> Result<AuthStatus> {
        self.status_now()
    }

    /// [`status`](Self::status) without a runtime: it reads memory or the (small) file only.
    pub fn status_now(&self) -> Result<AuthStatus> {
        let tokens = match self.inner.cached() {
            Some(t) => Some(t),
            None => self.inner.store.load()?.map(Arc::new),
        };
        let now = self.inner.now();
        Ok(match tokens {
            None => AuthStatus {
                has_access_token: false,
                has_refresh_token: false,
                is_valid: false,
                expires_at_ms: None,
                time_until_expiry_s: 0,
            },
            Some(t) => AuthStatus {
                has_access_token: !t.access_token.is_empty(),
                has_refresh_token: t.refresh_token.as_deref().is_some_and(|r| !r.is_empty()),
                is_valid: t.is_valid_at(now, self.inner.margin),
                expires_at_ms: t.expires_at_ms,
                time_until_expiry_s: t.remaining_ms(now).unwrap_or(0) / 1000,
            },
        })
    }

    /// Installs new credentials (after a device flow) and writes them to the store, under the
    /// store lock. If the write fails the tokens are still used from memory and the error is
    /// returned; a corrupt file is not overwritten (`clear` first).
    pub async fn set_tokens(&self, tokens: TokenSet) -> Result<()> {
        if tokens.access_token.is_empty() {
            return Err(Error::validation("accessToken", "refusing to install credentials without an access token"));
        }
        let _gate = self.inner.gate.lock().await;
        let _file = self.inner.store.lock().await?;
        self.inner.set_cached(Some(tokens.clone()));
        self.inner.store.save(&tokens)
    }

    /// Waits for the user to approve `auth` (see [`OAuthClient::poll`]), then installs the
    /// tokens as [`Self::set_tokens`] does.
    pub async fn login(&self, auth: &DeviceAuthorization, cancel: &CancellationToken) -> Result<TokenSet> {
        let tokens = self.inner.client.poll(auth, cancel).await?;
        self.set_tokens(tokens.clone()).await?;
        Ok(tokens)
    }

    /// Forgets the credentials: memory, then the file (under the store lock).
    pub async fn clear(&self) -> Result<()> {
        let _gate = self.inner.gate.lock().await;
        self.inner.set_cached(None);
        let _file = self.inner.store.lock().await?;
        self.inner.store.clear()
    }
}

impl Inner {
    fn now(&self) -> u64 {
        self.client.now_ms()
    }

    fn cached(&self) -> Option<Arc<TokenSet>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_cached(&self, tokens: Option<TokenSet>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = tokens.map(Arc::new);
    }

    /// The in-memory token if it is valid for the margin and is not the rejected one.
    fn usable(&self, rejected: Option<&str>) -> Option<TokenSet> {
        let t = self.cached()?;
        (t.is_valid_at(self.now(), self.margin) && rejected != Some(t.access_token.as_str())).then(|| (*t).clone())
    }

    fn emit(&self, event: AuthEvent) {
        if let Some(sink) = &self.events {
            sink(&event);
        }
    }

    /// The slow path: queue on the gate, look again (the caller before us may have refreshed),
    /// then refresh on a task of its own that keeps the gate until it is done.
    async fn obtain(self: &Arc<Self>, rejected: Option<String>) -> Result<TokenSet> {
        let guard = self.gate.clone().lock_owned().await;
        if let Some(t) = self.usable(rejected.as_deref()) {
            return Ok(t);
        }
        let inner = self.clone();
        let task = tokio::spawn(async move {
            let _guard = guard;
            inner.refresh_holding_gate(rejected.as_deref()).await
        });
        task.await.map_err(|e| Error::Internal { message: format!("the credential refresh task failed: {e}") })?
    }

    async fn refresh_holding_gate(&self, rejected: Option<&str>) -> Result<TokenSet> {
        // Nothing in memory: load (first use, or after a clear, since another process may have
        // signed in meanwhile). Reading needs no lock: writes are atomic renames.
        if self.cached().is_none() {
            let Some(loaded) = self.store.load()? else {
                return Err(self.require_reauth(ReauthReason::NoCredentials, None));
            };
            self.set_cached(Some(loaded));
            if let Some(t) = self.usable(rejected) {
                return Ok(t);
            }
        }

        let _file_lock = self.store.lock().await?;
        let previous = self.cached();
        let on_file = self.store.load()?;
        if let Some(f) = &on_file {
            if f.is_valid_at(self.now(), self.margin) && rejected != Some(f.access_token.as_str()) {
                let changed = previous.as_ref().is_none_or(|p| p.access_token != f.access_token);
                self.set_cached(Some(f.clone()));
                if changed {
                    self.emit(AuthEvent::TokenRefreshed { expires_at_ms: f.expires_at_ms, origin: RefreshOrigin::OtherProcess });
                }
                return Ok(f.clone());
            }
        }

        // The file's copy wins when there is one: after another process's refresh it holds the
        // rotated refresh token, and the one in memory may be void already.
        let Some(base) = on_file.or_else(|| previous.map(|p| (*p).clone())) else {
            return Err(self.require_reauth(ReauthReason::NoCredentials, None));
        };
        let Some(refresh_token) = base.refresh_token.clone().filter(|r| !r.is_empty()) else {
            return Err(self.require_reauth(ReauthReason::NoRefreshToken, None));
        };
        match self.client.refresh(&refresh_token).await {
            Ok(mut fresh) => {
                fresh.carry_over_from(&base);
                self.set_cached(Some(fresh.clone()));
                if let Err(e) = self.store.save(&fresh) {
                    self.emit(AuthEvent::StoreWriteFailed { message: e.to_string() });
                }
                self.emit(AuthEvent::TokenRefreshed { expires_at_ms: fresh.expires_at_ms, origin: RefreshOrigin::Network });
                Ok(fresh)
            }
            Err(e) if is_invalid_grant(&e) => {
                self.set_cached(None);
                if let Err(ce) = self.store.clear() {
                    self.emit(AuthEvent::StoreWriteFailed { message: ce.to_string() });
                }
                Err(self.require_reauth(ReauthReason::RefreshRejected, e.status()))
            }
            Err(e) => Err(e),
        }
    }

    /// Emits `AuthenticationRequired` and builds the error that says so.
    fn require_reauth(&self, reason: ReauthReason, status: Option<u16>) -> Error {
        let (message, code) = match reason {
            ReauthReason::RefreshRejected => (
                "the OAuth refresh token was rejected (invalid_grant); the stored credentials were cleared and re-authentication is required (run the device authorization flow again)".to_string(),
                INVALID_GRANT,
            ),
            ReauthReason::NoRefreshToken => (
                "the OAuth access token expired and there is no refresh token; re-authentication is required (run the device authorization flow)".to_string(),
                NO_REFRESH_TOKEN,
            ),
            ReauthReason::NoCredentials => (
                format!("no OAuth credentials in {}; authentication is required (run the device authorization flow)", self.store.path().display()),
                NO_CREDENTIALS,
            ),
        };
        self.emit(AuthEvent::AuthenticationRequired { reason, message: message.clone() });
        Error::Authentication { message, status, body: None, provider_code: Some(code.into()) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::future::BoxFuture;
    use serde_json::json;

    use super::super::device_flow::{FormRequest, OAuthEndpoints, TokenTransport, TransportResponse};
    use super::super::TokioClock;
    use super::*;

    struct Counting(AtomicUsize);

    impl TokenTransport for Counting {
        fn post_form(&self, _: FormRequest) -> BoxFuture<'_, Result<TransportResponse>> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move { Ok(TransportResponse::json(200, &json!({"access_token": format!("at-{n}"), "expires_in": 3600}))) })
        }
    }

    fn source(dir: &tempfile::TempDir) -> (OAuthCredentialSource, Arc<Counting>) {
        let t = Arc::new(Counting(AtomicUsize::new(0)));
        let client = OAuthClient::with_transport(OAuthEndpoints::qwen_with_base("http://127.0.0.1:9"), t.clone())
            .unwrap()
            .with_clock(Arc::new(TokioClock::new()));
        (OAuthCredentialSource::new(client, TokenStore::new(dir.path().join("creds.json"))), t)
    }

    #[tokio::test(start_paused = true)]
    async fn without_credentials_the_caller_is_told_to_sign_in() {
        let dir = tempfile::tempdir().unwrap();
        let (s, t) = source(&dir);
        let e = s.access_token().await.unwrap_err();
        assert!(requires_reauthentication(&e), "{e:?}");
        assert!(e.to_string().contains("creds.json"));
        assert_eq!(t.0.load(Ordering::SeqCst), 0);
        assert!(!s.status().await.unwrap().has_access_token);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_token_without_refresh_token_needs_a_sign_in() {
        let dir = tempfile::tempdir().unwrap();
        let (s, t) = source(&dir);
        s.set_tokens(TokenSet::bearer("at-0", None, Some(s.client().now_ms() + 10_000))).await.unwrap();
        let e = s.access_token().await.unwrap_err();
        assert!(matches!(&e, Error::Authentication { provider_code: Some(c), .. } if c == NO_REFRESH_TOKEN), "{e:?}");
        assert_eq!(t.0.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn set_tokens_status_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = source(&dir);
        let now = s.client().now_ms();
        s.set_tokens(TokenSet::bearer("at-0", Some("rt-0".into()), Some(now + 90_500))).await.unwrap();
        assert_eq!(
            s.status().await.unwrap(),
            AuthStatus {
                has_access_token: true,
                has_refresh_token: true,
                is_valid: true,
                expires_at_ms: Some(now + 90_500),
                time_until_expiry_s: 90
            }
        );
        assert!(s.store().load().unwrap().is_some());
        assert_eq!(s.access_token().await.unwrap().access_token, "at-0");
        s.clear().await.unwrap();
        assert!(s.store().load().unwrap().is_none());
        assert!(!s.status().await.unwrap().has_access_token);
        assert!(s.set_tokens(TokenSet::default()).await.is_err());
        let shown = format!("{s:?}");
        assert!(!shown.contains("at-0"), "{shown}");
    }
}
