//! `NativeQwenProvider` and `NativeIFlowProvider`: the Rust halves of `QwenProvider` and
//! `IFlowProvider`. Requests go through `transport()` (a `NativeOpenAIProvider` over the same
//! provider, so schedulers run them natively); these classes add the sign-in and token calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::{within_runtime_if_available, Unknown};
use napi::Env;
use napi_derive::napi;
use rcc_core::provider::auth::{AuthEvent, AuthEventSink, AuthStatus, DeviceAuthorization, OAuthCredentialSource, Pkce, ReauthReason, RefreshOrigin, TokenSet};
use rcc_core::provider::iflow::{IFlowConfig, IFlowProvider};
use rcc_core::provider::qwen::{QwenConfig, QwenProvider};
use rcc_core::Error;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::call::NativeCall;
use crate::error::{parse_json, to_napi};
use crate::settle::JsCallback;
use crate::provider::NativeOpenAIProvider;

/// Forwards the credential source's events to JS (`tokenRefreshed`, `authenticationRequired`,
/// `storeWriteFailed`).
fn event_sink(env: &Env, callback: Option<Unknown>) -> napi::Result<Option<AuthEventSink>> {
    let Some(callback) = callback else { return Ok(None) };
    let callback = JsCallback::new(env, callback)?;
    Ok(Some(Arc::new(move |e: &AuthEvent| {
        let (name, payload) = match e {
            AuthEvent::TokenRefreshed { expires_at_ms, origin } => (
                "tokenRefreshed",
                json!({"expiresAt": expires_at_ms, "origin": match origin { RefreshOrigin::Network => "network", RefreshOrigin::OtherProcess => "otherProcess" }}),
            ),
            AuthEvent::AuthenticationRequired { reason, message } => (
                "authenticationRequired",
                json!({"reason": match reason { ReauthReason::RefreshRejected => "refreshRejected", ReauthReason::NoRefreshToken => "noRefreshToken", ReauthReason::NoCredentials => "noCredentials" }, "message": message}),
            ),
            AuthEvent::StoreWriteFailed { message } => ("storeWriteFailed", json!({"message": message})),
        };
        callback.call(name, payload.to_string());
    })))
}

fn status_json(s: AuthStatus, mode: &str, path: &std::path::Path) -> Value {
    json!({
        "authMode": mode,
        "hasAccessToken": s.has_access_token,
        "hasRefreshToken": s.has_refresh_token,
        "isValid": s.is_valid,
        "expiresAt": s.expires_at_ms,
        "timeUntilExpiry": s.time_until_expiry_s,
        "credentialsPath": path.display().to_string(),
    })
}

/// The original's `OAuthTokens` shape (secrets included: the caller asked for them).
fn tokens_json(t: &TokenSet, now_ms: u64) -> Value {
    json!({
        "accessToken": t.access_token,
        "refreshToken": t.refresh_token,
        "expiresIn": t.remaining_ms(now_ms).map(|ms| ms / 1000),
        "tokenType": t.token_type,
        "scope": t.scope,
        "resourceUrl": t.resource_url,
    })
}

fn now_ms() -> u64 {
    rcc_core::time::epoch_ms()
}

/// A native call returning JSON, cancellable from JS.
fn call<F>(name: String, work: F) -> NativeCall
where
    F: std::future::Future<Output = rcc_core::Result<Value>> + Send + 'static,
{
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    NativeCall::new(
        Box::pin(async move {
            tokio::select! {
                biased;
                _ = c.cancelled() => Err(to_napi(Error::cancelled(), Some(&name))),
                r = work => r.map(|v| v.to_string()).map_err(|e| to_napi(e, Some(&name))),
            }
        }),
        cancel,
    )
}

type DeviceFlows = Arc<Mutex<HashMap<String, DeviceAuthorization>>>;

#[napi(js_name = "NativeQwenProvider")]
pub struct NativeQwenProvider {
    inner: Arc<QwenProvider>,
    /// Device flows started here, by device code (so the poll knows the server's interval and
    /// the code's lifetime).
    flows: DeviceFlows,
}

#[napi]
impl NativeQwenProvider {
    #[napi(constructor, ts_args_type = "configJson: string, onEvent?: ((name: string, payloadJson: string) => void) | undefined | null")]
    pub fn new(env: &Env, config_json: String, on_event: Option<Unknown>) -> napi::Result<Self> {
        let v = parse_json(&config_json, "config")?;
        let config = QwenConfig::from_value(&v).map_err(|e| to_napi(e, None))?;
        let events = event_sink(env, on_event)?;
        let inner = within_runtime_if_available(|| QwenProvider::new(config, events)).map_err(|e| to_napi(e, None))?;
        Ok(NativeQwenProvider { inner: Arc::new(inner), flows: Arc::default() })
    }

    fn name(&self) -> String {
        self.inner.transport.config().name.clone()
    }

    /// The request path: a NativeOpenAIProvider over this provider.
    #[napi]
    pub fn transport(&self) -> NativeOpenAIProvider {
        NativeOpenAIProvider { inner: self.inner.transport.clone() }
    }

    /// `'oauth'` or `'apikey'`.
    #[napi]
    pub fn auth_mode(&self) -> String {
        self.inner.mode.as_str().into()
    }

    #[napi]
    pub fn credentials_path(&self) -> Option<String> {
        self.inner.source.as_ref().map(|s| s.store().path().display().to_string())
    }

    fn source(&self) -> napi::Result<OAuthCredentialSource> {
        self.inner.source.clone().ok_or_else(|| {
            to_napi(Error::validation("apiKey", "this QwenProvider uses an API key; OAuth calls need a config without apiKey"), Some(&self.name()))
        })
    }

    /// Requests a device code; resolves with the original's `DeviceFlowData`.
    #[napi]
    pub fn start_device_flow(&self) -> napi::Result<NativeCall> {
        let source = self.source()?;
        let flows = self.flows.clone();
        Ok(call(self.name(), async move {
            let auth = source.client().start().await?;
            let data = json!({
                "deviceCode": auth.device_code,
                "userCode": auth.user_code,
                "verificationUri": auth.verification_uri,
                "verificationUriComplete": auth.verification_uri_complete,
                "expiresIn": auth.expires_in.as_secs(),
                "interval": auth.interval.map(|i| i.as_secs()),
                "pkceVerifier": auth.pkce_verifier(),
            });
            let mut flows = flows.lock().unwrap_or_else(|p| p.into_inner());
            // Flows started but never polled must not accumulate.
            flows.retain(|_, a| !a.is_expired());
            flows.insert(auth.device_code.clone(), auth);
            Ok(data)
        }))
    }

    /// Polls until the user approves (or denies, or the code expires); stores and resolves
    /// with the tokens. A device code not started here is polled with the defaults.
    #[napi]
    pub fn wait_for_device_authorization(&self, device_code: String, pkce_verifier: String) -> napi::Result<NativeCall> {
        let source = self.source()?;
        let known = self.flows.lock().unwrap_or_else(|p| p.into_inner()).remove(&device_code);
        let auth = match known {
            Some(mut a) => {
                a.pkce = Pkce::from_verifier(pkce_verifier);
                a
            }
            None => DeviceAuthorization::resume(device_code, pkce_verifier),
        };
        let name = self.name();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let work = async move {
            let r = source.login(&auth, &c).await.map(|t| tokens_json(&t, now_ms()).to_string());
            r.map_err(|e| to_napi(e, Some(&name)))
        };
        Ok(NativeCall::new(Box::pin(work), cancel))
    }

    /// Refreshes the token now; resolves with the new tokens.
    #[napi]
    pub fn refresh_access_token(&self) -> napi::Result<NativeCall> {
        let source = self.source()?;
        Ok(call(self.name(), async move { source.refresh_now().await.map(|t| tokens_json(&t, now_ms())) }))
    }

    /// `{authMode, hasAccessToken, hasRefreshToken, isValid, expiresAt, timeUntilExpiry, credentialsPath}` as JSON.
    #[napi]
    pub fn token_status(&self) -> napi::Result<String> {
        let mode = self.auth_mode();
        let v = match &self.inner.source {
            None => json!({"authMode": mode, "hasAccessToken": false, "hasRefreshToken": false, "isValid": true, "expiresAt": null, "timeUntilExpiry": 0, "credentialsPath": null}),
            Some(s) => status_json(s.status_now().map_err(|e| to_napi(e, Some(&self.name())))?, &mode, s.store().path()),
        };
        Ok(v.to_string())
    }

    /// Forgets the stored tokens (memory and file).
    #[napi]
    pub fn clear_tokens(&self) -> napi::Result<NativeCall> {
        let source = self.source()?;
        Ok(call(self.name(), async move { source.clear().await.map(|_| Value::Null) }))
    }
}

#[napi(js_name = "NativeIFlowProvider")]
pub struct NativeIFlowProvider {
    inner: Arc<IFlowProvider>,
}

#[napi]
impl NativeIFlowProvider {
    #[napi(constructor, ts_args_type = "configJson: string, onEvent?: ((name: string, payloadJson: string) => void) | undefined | null")]
    pub fn new(env: &Env, config_json: String, on_event: Option<Unknown>) -> napi::Result<Self> {
        let v = parse_json(&config_json, "config")?;
        let config = IFlowConfig::from_value(&v).map_err(|e| to_napi(e, None))?;
        let events = event_sink(env, on_event)?;
        let inner = within_runtime_if_available(|| IFlowProvider::new(config, events)).map_err(|e| to_napi(e, None))?;
        Ok(NativeIFlowProvider { inner: Arc::new(inner) })
    }

    fn name(&self) -> String {
        self.inner.transport.config().name.clone()
    }

    #[napi]
    pub fn transport(&self) -> NativeOpenAIProvider {
        NativeOpenAIProvider { inner: self.inner.transport.clone() }
    }

    #[napi]
    pub fn auth_mode(&self) -> String {
        self.inner.mode.as_str().into()
    }

    #[napi]
    pub fn credentials_path(&self) -> String {
        self.inner.store.path().display().to_string()
    }

    /// Binds the loopback callback; resolves with `{authorizeUrl, redirectUri}`.
    #[napi]
    pub fn start_authorization(&self) -> napi::Result<NativeCall> {
        let me = self.inner.clone();
        Ok(call(self.name(), async move {
            let (authorize_url, redirect_uri) = me.begin_login().await?;
            Ok(json!({"authorizeUrl": authorize_url, "redirectUri": redirect_uri}))
        }))
    }

    /// Waits for the browser's callback, then stores the tokens and the API key; resolves with
    /// the token status.
    #[napi]
    pub fn wait_for_authorization(&self, timeout_ms: u32) -> napi::Result<NativeCall> {
        let me = self.inner.clone();
        let mode = self.auth_mode();
        let name = self.name();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let work = async move {
            let r = async {
                me.finish_login(Duration::from_millis(timeout_ms.into()), &c).await?;
                let (source, _) = me.oauth.as_ref().ok_or_else(|| Error::validation("authMode", "signing in needs authMode 'oauth'"))?;
                source.status_now().map(|st| status_json(st, &mode, me.store.path()))
            };
            r.await.map(|v| v.to_string()).map_err(|e| to_napi(e, Some(&name)))
        };
        Ok(NativeCall::new(Box::pin(work), cancel))
    }

    /// OAuth mode: refreshes the tokens now (and fetches the API key again).
    #[napi]
    pub fn refresh_access_token(&self) -> napi::Result<NativeCall> {
        let me = self.inner.clone();
        Ok(call(self.name(), async move {
            let (source, _) = me.oauth.as_ref().ok_or_else(|| Error::validation("authMode", "refreshing needs authMode 'oauth'"))?;
            source.refresh_now().await.map(|t| tokens_json(&t, now_ms()))
        }))
    }

    #[napi]
    pub fn token_status(&self) -> napi::Result<String> {
        let mode = self.auth_mode();
        let me = &self.inner;
        let v = match &me.oauth {
            Some((source, _)) => status_json(source.status_now().map_err(|e| to_napi(e, Some(&self.name())))?, &mode, me.store.path()),
            None => {
                let has_key = me.has_configured_key || me.store.load().ok().flatten().and_then(|t| t.api_key).is_some();
                json!({"authMode": mode, "hasAccessToken": false, "hasRefreshToken": false, "hasApiKey": has_key, "isValid": has_key, "expiresAt": null, "timeUntilExpiry": 0, "credentialsPath": me.store.path().display().to_string()})
            }
        };
        Ok(v.to_string())
    }
}
