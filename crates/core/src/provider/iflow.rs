//! `IFlowProvider`: iFlow's OpenAI-compatible API. Every request is signed with the API key
//! (`compat::iflow::headers`); the key is configured (API-key mode), read from the iFlow CLI's
//! credentials file, or obtained through OAuth (authorization code with a loopback callback,
//! then `getUserInfo`) and kept in that file without dropping its other fields.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::auth::auth_code::{AuthCodeEndpoints, AuthCodeFlow, PendingAuthorization};
use super::auth::{AuthEventSink, ClientSecretPlacement, OAuthClient, OAuthCredentialSource, OAuthEndpoints, SourceOptions, TokenSet, TokenStore};
use super::config::ProviderConfig;
use super::openai::OpenAICompatibleProvider;
use super::vendor::{Authorization, Credentials, Quirks};
use crate::compat::iflow::{self, IFlowSession, IFLOW_API_BASE};
use crate::error::{Error, Result};
use crate::model::{ChatChunk, ChatRequest};
use crate::schedule::BoxFuture;
use crate::validate::{invalid, Fields};

pub const DEFAULT_IFLOW_MODEL: &str = "qwen3-coder-plus";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IFlowAuthMode {
    ApiKey,
    OAuth,
}

impl IFlowAuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IFlowAuthMode::ApiKey => "apikey",
            IFlowAuthMode::OAuth => "oauth",
        }
    }
}

pub struct IFlowConfig {
    pub provider: ProviderConfig,
    pub mode: IFlowAuthMode,
    /// The configured key (API-key mode); otherwise the credentials file's `apiKey`.
    pub api_key: Option<String>,
    pub store: TokenStore,
    pub oauth: AuthCodeEndpoints,
}

impl IFlowConfig {
    /// The JS config: `{name?, authMode?, apiKey?, endpoint?, credentialsPath?, oauth?:
    /// {clientId, clientSecret, authorizeUrl, tokenUrl, userInfoUrl, callbackPort, callbackHost},
    /// defaultModel?, supportedModels?, headers?, timeouts?}`.
    pub fn from_value(v: &Value) -> Result<Self> {
        let obj = v.as_object().ok_or_else(|| invalid("config", "an object", Some(v)))?;
        let f = Fields::new(obj, "");
        let api_key = match obj.get("apiKey") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) if !k.is_empty() => Some(k.clone()),
            Some(_) => return Err(Error::validation("apiKey", "apiKey must be a non-empty string")),
        };
        let mode = match f.string("authMode")? {
            None if api_key.is_some() => IFlowAuthMode::ApiKey,
            None => IFlowAuthMode::OAuth,
            Some("apikey") => IFlowAuthMode::ApiKey,
            Some("oauth") => IFlowAuthMode::OAuth,
            Some(other) => return Err(Error::validation("authMode", format!("authMode must be 'apikey' or 'oauth', got '{other}'"))),
        };
        let mut with_defaults = obj.clone();
        // The key signs each request (below); the transport must not send it on its own.
        with_defaults.remove("apiKey");
        with_defaults.remove("apiKeys");
        with_defaults.entry("name").or_insert_with(|| "iflow".into());
        if with_defaults.get("endpoint").is_none_or(Value::is_null) {
            with_defaults.insert("endpoint".into(), IFLOW_API_BASE.into());
        }
        with_defaults.entry("defaultModel").or_insert_with(|| DEFAULT_IFLOW_MODEL.into());
        let provider = ProviderConfig::from_object(&with_defaults)?;
        let store = match f.string("credentialsPath")? {
            Some(p) => TokenStore::new(p).with_format(super::auth::StoreFormat::IFlow),
            None => TokenStore::iflow_default(),
        };
        Ok(IFlowConfig { provider, mode, api_key, store, oauth: oauth_endpoints(obj.get("oauth"))? })
    }
}

fn oauth_endpoints(v: Option<&Value>) -> Result<AuthCodeEndpoints> {
    let empty = Map::new();
    let obj = match v {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(other) => return Err(invalid("oauth", "an object", Some(other))),
    };
    let f = Fields::new(obj, "oauth");
    let mut e = AuthCodeEndpoints::iflow_defaults();
    if let Some(u) = f.string("authorizeUrl")? {
        e.authorize_url = u.to_string();
    }
    if let Some(u) = f.string("tokenUrl")? {
        e.token_url = u.to_string();
    }
    if let Some(u) = f.string("userInfoUrl")? {
        e.user_info_url = u.to_string();
    }
    if let Some(id) = f.string("clientId")? {
        e.client_id = id.to_string();
    }
    if let Some(s) = f.string("clientSecret")? {
        e.client_secret = s.to_string();
    }
    if let Some(h) = f.string("callbackHost")? {
        e.redirect_host = h.to_string();
    }
    if let Some(p) = f.non_negative_int("callbackPort")? {
        e.callback_port = u16::try_from(p).map_err(|_| Error::validation("oauth.callbackPort", format!("oauth.callbackPort must be a port number, got {p}")))?;
    }
    Ok(e)
}

/// The refresh side of iFlow's OAuth, as the generic source needs it (no device flow).
fn refresh_client(e: &AuthCodeEndpoints) -> Result<OAuthClient> {
    let mut endpoints = OAuthEndpoints::qwen_defaults();
    endpoints.device_code_url = String::new();
    endpoints.token_url = e.token_url.clone();
    endpoints.client_id = e.client_id.clone();
    endpoints.client_secret = Some(e.client_secret.clone());
    endpoints.scope = String::new();
    endpoints.client_secret_placement = ClientSecretPlacement::BasicAndForm;
    OAuthClient::new(endpoints)
}

fn string_field(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

/// The iFlow CLI credential JSON (`access_token, refresh_token, expiry_date, token_type, scope,
/// apiKey`) that the authorization-code flow returns, as a token set.
pub fn tokens_from_cli_json(v: &Value) -> Result<TokenSet> {
    let access_token = string_field(v, "access_token").ok_or_else(|| Error::Authentication {
        message: "the iFlow token answer has no access_token".into(),
        status: None,
        body: None,
        provider_code: None,
    })?;
    let mut t = TokenSet::bearer(access_token, string_field(v, "refresh_token"), v.get("expiry_date").and_then(Value::as_u64));
    t.token_type = string_field(v, "token_type").unwrap_or_else(|| "Bearer".into());
    t.scope = string_field(v, "scope");
    t.api_key = string_field(v, "apiKey");
    Ok(t)
}

/// Where the signing key comes from.
enum KeySource {
    Configured(String),
    /// API-key mode without a configured key: the CLI credentials file's `apiKey`.
    File(TokenStore),
    OAuth { source: OAuthCredentialSource, flow: Arc<AuthCodeFlow> },
}

fn no_key(detail: &str) -> Error {
    Error::Authentication { message: format!("no iFlow API key: {detail}"), status: None, body: None, provider_code: Some("no_api_key".into()) }
}

struct IFlowSigner {
    session: IFlowSession,
    key: Arc<KeySource>,
}

impl KeySource {
    async fn current(&self) -> Result<String> {
        match self {
            KeySource::Configured(k) => Ok(k.clone()),
            KeySource::File(store) => store
                .load()?
                .and_then(|t| t.api_key)
                .ok_or_else(|| no_key(&format!("set apiKey, or sign in with the iFlow CLI so that {} holds one", store.path().display()))),
            KeySource::OAuth { source, flow } => {
                let t = source.access_token().await?;
                match t.api_key.clone() {
                    Some(k) => Ok(k),
                    None => fetch_key(source, flow, t).await,
                }
            }
        }
    }
}

/// Asks `getUserInfo` for the account's API key and keeps it with the tokens.
async fn fetch_key(source: &OAuthCredentialSource, flow: &AuthCodeFlow, mut tokens: TokenSet) -> Result<String> {
    let info = flow.user_info(&tokens.access_token).await?;
    tokens.api_key = Some(info.api_key.clone());
    source.set_tokens(tokens).await?;
    Ok(info.api_key)
}

impl Credentials for IFlowSigner {
    fn authorize(&self) -> BoxFuture<Result<Authorization>> {
        let key = self.key.clone();
        let session = self.session.clone();
        Box::pin(async move {
            let k = key.current().await?;
            let mut headers = HeaderMap::new();
            for (name, value) in iflow::headers(&k, &session, crate::time::epoch_ms())? {
                headers.insert(name, value);
            }
            Ok(Authorization { headers, base_url: None, credential: Some(k.as_str().into()) })
        })
    }

    /// Resolves the key (refreshing OAuth tokens when due) without signing anything: the
    /// signature is per request, made by `authorize`.
    fn prepare(&self) -> BoxFuture<Result<()>> {
        let key = self.key.clone();
        Box::pin(async move { key.current().await.map(|_| ()) })
    }

    /// OAuth mode: refresh the tokens and ask for the key again (it may have been rotated).
    fn rejected(&self, credential: Option<Arc<str>>) -> BoxFuture<Result<bool>> {
        let key = self.key.clone();
        Box::pin(async move {
            let KeySource::OAuth { source, flow } = &*key else { return Ok(false) };
            let t = source.access_token().await?;
            if t.api_key.as_deref() != credential.as_deref() {
                return Ok(true); // already replaced by a concurrent request
            }
            let fresh = source.invalidate_and_refresh(&t.access_token).await?;
            let k = fetch_key(source, flow, fresh).await?;
            Ok(Some(k.as_str()) != credential.as_deref())
        })
    }
}

struct IFlowQuirks;

impl Quirks for IFlowQuirks {
    fn fix_request(&self, req: &mut ChatRequest) {
        iflow::fix_request(req);
    }
    fn business_error(&self, body: &Value) -> Option<Error> {
        iflow::business_error(body)
    }
    fn stream_failure(&self, chunk: &ChatChunk) -> Option<Error> {
        iflow::stream_finish_error(chunk)
    }
}

pub struct IFlowProvider {
    pub transport: OpenAICompatibleProvider,
    pub mode: IFlowAuthMode,
    pub store: TokenStore,
    /// Whether the config gave the API key (else it comes from the credentials file or OAuth).
    pub has_configured_key: bool,
    /// OAuth mode: the tokens, and the flow that signs in.
    pub oauth: Option<(OAuthCredentialSource, Arc<AuthCodeFlow>)>,
    /// A sign-in started by `begin_login` and not yet finished.
    pending: Mutex<Option<PendingAuthorization>>,
}

impl IFlowProvider {
    pub fn new(config: IFlowConfig, events: Option<AuthEventSink>) -> Result<Self> {
        let has_configured_key = config.api_key.is_some();
        let (key, oauth) = match (config.mode, config.api_key) {
            (IFlowAuthMode::ApiKey, Some(k)) => (KeySource::Configured(k), None),
            (IFlowAuthMode::ApiKey, None) => (KeySource::File(config.store.clone()), None),
            (IFlowAuthMode::OAuth, _) => {
                let source = OAuthCredentialSource::with_options(refresh_client(&config.oauth)?, config.store.clone(), SourceOptions { events, ..SourceOptions::default() });
                let flow = Arc::new(AuthCodeFlow::new(config.oauth)?);
                (KeySource::OAuth { source: source.clone(), flow: flow.clone() }, Some((source, flow)))
            }
        };
        let signer: Arc<dyn Credentials> = Arc::new(IFlowSigner { session: IFlowSession::new(), key: Arc::new(key) });
        let transport = OpenAICompatibleProvider::for_vendor(config.provider, Some(signer), Some(Arc::new(IFlowQuirks)))?;
        Ok(IFlowProvider { transport, mode: config.mode, store: config.store, has_configured_key, oauth, pending: Mutex::new(None) })
    }

    fn flow(&self) -> Result<&(OAuthCredentialSource, Arc<AuthCodeFlow>)> {
        self.oauth.as_ref().ok_or_else(|| Error::validation("authMode", "signing in needs authMode 'oauth'"))
    }

    /// Starts a sign-in: binds the loopback callback and returns the URL the user must open.
    pub async fn begin_login(&self) -> Result<(String, String)> {
        let (_, flow) = self.flow()?;
        let pending = flow.start().await?;
        let urls = (pending.authorize_url().to_string(), pending.redirect_uri().to_string());
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(pending);
        Ok(urls)
    }

    /// Waits for the browser's callback, exchanges the code, fetches the API key and stores it
    /// all in the credentials file.
    pub async fn finish_login(&self, timeout: Duration, cancel: &CancellationToken) -> Result<TokenSet> {
        let (source, flow) = self.flow()?;
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| Error::validation("authorization", "no sign-in in progress: call startAuthorization() first"))?;
        let redirect = pending.redirect_uri().to_string();
        let code = pending.wait(timeout, cancel).await?;
        let mut tokens = tokens_from_cli_json(&flow.login(&code, &redirect).await?)?;
        // The file is shared with the iFlow CLI: keep the fields it wrote that we do not know.
        if let Ok(Some(previous)) = self.store.load() {
            tokens.carry_over_from(&previous);
        }
        source.set_tokens(tokens.clone()).await?;
        Ok(tokens)
    }
}
