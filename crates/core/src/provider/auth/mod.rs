//! Credentials for providers that do not use a static API key: OAuth 2.0 (RFC 8628 device
//! authorization with PKCE, authorization code with a loopback callback), the token store
//! shared with the vendors' CLIs, and a credential source that refreshes ahead of expiry with
//! one refresh in flight at a time (across processes too, through a file lock).
//!
//! The pieces, each with one job:
//! * [`pkce`]: the RFC 7636 verifier/challenge pair.
//! * [`device_flow`]: the HTTP side: device-code request, the polling state machine, the
//!   refresh grant, all behind the [`TokenTransport`] trait so they can be tested without a
//!   network.
//! * [`store`]: the credential file (qwen-code / iFlow CLI format, legacy formats read), atomic
//!   writes and the cross-process lock.
//! * [`source`]: what a provider calls per request: a valid token, refreshed once for all
//!   concurrent callers and all processes sharing the file.
//!
//! Nothing here is tied to one vendor: Qwen is [`OAuthEndpoints::qwen_defaults`], and every URL,
//! client id and path can be pointed elsewhere (tests use local URLs and temp dirs).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

pub mod auth_code;
pub mod device_flow;
pub mod pkce;
pub mod source;
pub mod store;

pub use device_flow::{
    is_invalid_grant, ClientSecretPlacement, DeviceAuthorization, FormRequest, OAuthClient, OAuthEndpoints, PollPolicy, ReqwestTransport,
    SlowDown, TokenTransport, TransportResponse, INVALID_GRANT,
};
pub use pkce::Pkce;
pub use source::{
    requires_reauthentication, AuthEvent, AuthEventSink, AuthStatus, OAuthCredentialSource, ReauthReason, RefreshOrigin, SourceOptions,
    NO_CREDENTIALS, NO_REFRESH_TOKEN,
};
pub use store::{expand_home, StoreFormat, StoreLock, TokenStore};

/// One set of OAuth credentials, as the token endpoint issued it and the credential file keeps
/// it. Vendor extras stay on it so a provider can read them (`resource_url` picks Qwen's chat
/// base; iFlow's chat wants `api_key`, not the access token) and so a rewrite of the file keeps
/// what the vendor's CLI put there (`extra` holds every field this module does not know).
#[derive(Clone, PartialEq, Default)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// `Bearer` unless the server said otherwise.
    pub token_type: String,
    /// Absolute expiry, epoch milliseconds (`expiry_date` in the file). `None`: unknown, the
    /// token counts as valid until the upstream rejects it.
    pub expires_at_ms: Option<u64>,
    pub scope: Option<String>,
    /// Qwen: the chat host (`portal.qwen.ai`), a bare host or a URL.
    pub resource_url: Option<String>,
    pub id_token: Option<String>,
    /// iFlow: the API key the chat endpoint wants (`apiKey` in the iFlow CLI's file).
    pub api_key: Option<String>,
    /// Fields this module does not interpret (`userId`, `email`, ...), written back unchanged.
    pub extra: Map<String, Value>,
}

impl TokenSet {
    /// A bearer token with an absolute expiry; the other fields empty.
    pub fn bearer(access_token: impl Into<String>, refresh_token: Option<String>, expires_at_ms: Option<u64>) -> Self {
        TokenSet { access_token: access_token.into(), refresh_token, token_type: "Bearer".into(), expires_at_ms, ..Default::default() }
    }

    /// Whether the token is usable for at least `margin` more (so a request started now does not
    /// reach the upstream with a token that expires on the way). A token without a known expiry
    /// counts as valid; an empty one never does.
    pub fn is_valid_at(&self, now_ms: u64, margin: Duration) -> bool {
        if self.access_token.is_empty() {
            return false;
        }
        match self.expires_at_ms {
            None => true,
            Some(exp) => now_ms.saturating_add(margin.as_millis() as u64) < exp,
        }
    }

    /// Milliseconds left before expiry (0 once expired); `None` when the expiry is unknown.
    pub fn remaining_ms(&self, now_ms: u64) -> Option<u64> {
        self.expires_at_ms.map(|exp| exp.saturating_sub(now_ms))
    }

    /// Fills what a refresh response left out from the credentials it replaces: the refresh
    /// token (servers that do not rotate it omit it), the vendor extras (iFlow's `apiKey` is not
    /// part of a token response), `resource_url` and `scope`. qwen-code drops `resource_url` when
    /// a refresh omits it, which silently moves the chat to another host; keeping it is safer.
    pub fn carry_over_from(&mut self, previous: &TokenSet) {
        fn keep(slot: &mut Option<String>, old: &Option<String>) {
            if slot.as_deref().is_none_or(str::is_empty) {
                if let Some(o) = old.as_deref().filter(|s| !s.is_empty()) {
                    *slot = Some(o.to_string());
                }
            }
        }
        keep(&mut self.refresh_token, &previous.refresh_token);
        keep(&mut self.resource_url, &previous.resource_url);
        keep(&mut self.scope, &previous.scope);
        keep(&mut self.api_key, &previous.api_key);
        keep(&mut self.id_token, &previous.id_token);
        for (k, v) in &previous.extra {
            if !self.extra.contains_key(k) {
                self.extra.insert(k.clone(), v.clone());
            }
        }
    }
}

// Tokens and keys are secrets: Debug shows only whether they are there, and the names of the
// extra fields (their values may be secrets too, e.g. a cookie).
impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let present = |o: &Option<String>| if o.is_some() { "[redacted]" } else { "none" };
        f.debug_struct("TokenSet")
            .field("access_token", &if self.access_token.is_empty() { "empty" } else { "[redacted]" })
            .field("refresh_token", &present(&self.refresh_token))
            .field("token_type", &self.token_type)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("scope", &self.scope)
            .field("resource_url", &self.resource_url)
            .field("id_token", &present(&self.id_token))
            .field("api_key", &present(&self.api_key))
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Wall-clock time in epoch milliseconds. Expiries are absolute epoch times (that is what the
/// credential file stores), so the engine needs wall time, not `Instant`. Behind a trait so that
/// tests can run on tokio's paused clock ([`TokioClock`]).
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// The system clock. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::time::epoch_ms()
    }
}

/// Wall time that advances with tokio's clock: the system time when created plus the tokio
/// time elapsed since. Under `tokio::time::pause` it moves only when tokio's clock does, so
/// expiry tests are exact. Not for production: tokio's clock stops while a machine sleeps.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    epoch_ms: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        TokioClock { epoch_ms: SystemClock.now_ms(), start: tokio::time::Instant::now() }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.epoch_ms + self.start.elapsed().as_millis() as u64
    }
}

pub(crate) fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_respects_the_margin() {
        let t = TokenSet::bearer("a", None, Some(100_000));
        assert!(t.is_valid_at(69_999, Duration::from_secs(30)));
        assert!(!t.is_valid_at(70_000, Duration::from_secs(30)));
        assert!(TokenSet::bearer("a", None, None).is_valid_at(u64::MAX, Duration::from_secs(30)));
        assert!(!TokenSet::bearer("", None, None).is_valid_at(0, Duration::ZERO));
        assert_eq!(t.remaining_ms(150_000), Some(0));
    }

    #[test]
    fn carry_over_keeps_what_a_refresh_leaves_out() {
        let mut old = TokenSet::bearer("a1", Some("r1".into()), Some(1));
        old.api_key = Some("sk-1".into());
        old.resource_url = Some("portal.qwen.ai".into());
        old.extra.insert("userId".into(), "u".into());
        let mut new = TokenSet::bearer("a2", None, Some(2));
        new.extra.insert("userId".into(), "u2".into());
        new.carry_over_from(&old);
        assert_eq!(new.refresh_token.as_deref(), Some("r1"));
        assert_eq!(new.api_key.as_deref(), Some("sk-1"));
        assert_eq!(new.resource_url.as_deref(), Some("portal.qwen.ai"));
        assert_eq!(new.extra["userId"], "u2");
        let mut rotated = TokenSet::bearer("a3", Some("r3".into()), None);
        rotated.carry_over_from(&old);
        assert_eq!(rotated.refresh_token.as_deref(), Some("r3"));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut t = TokenSet::bearer("sekret-access", Some("sekret-refresh".into()), Some(5));
        t.api_key = Some("sk-sekret".into());
        t.extra.insert("cookie".into(), "sekret-cookie".into());
        let d = format!("{t:?}");
        assert!(!d.contains("sekret"), "{d}");
        assert!(d.contains("cookie"));
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_the_paused_clock() {
        let c = TokioClock::new();
        let t0 = c.now_ms();
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(c.now_ms() - t0, 31_000);
    }
}
