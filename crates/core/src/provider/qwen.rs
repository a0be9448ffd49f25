//! `QwenProvider`: Qwen through DashScope's OpenAI-compatible mode with an API key, or through
//! portal.qwen.ai with qwen-code's OAuth device flow. Both modes run on the shared
//! OpenAI-compatible transport; this module supplies the credentials (OAuth tokens from the
//! credential source, the chat base from the token's `resource_url`) and the quirks
//! (`compat::qwen`: headers, body fixups, quota errors).

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::{Map, Value};

use super::auth::{AuthEventSink, OAuthClient, OAuthCredentialSource, OAuthEndpoints, SourceOptions, TokenStore};
use super::config::ProviderConfig;
use super::openai::OpenAICompatibleProvider;
use super::vendor::{Authorization, Credentials, Quirks};
use crate::compat::qwen::{self, QwenClientInfo, QwenMode, QwenRequestOptions, DEFAULT_DASHSCOPE_BASE_URL};
use crate::error::{Error, Result};
use crate::model::{ChatChunk, ChatRequest};
use crate::schedule::BoxFuture;
use crate::validate::{invalid, Fields};

/// Where OAuth-mode chat goes when the token names no `resource_url` (qwen-code's default).
pub const DEFAULT_PORTAL_BASE_URL: &str = "https://portal.qwen.ai/v1";
/// qwen-code's default model.
pub const DEFAULT_QWEN_MODEL: &str = "qwen3-coder-plus";

/// A parsed `QwenProvider` config.
pub struct QwenConfig {
    pub provider: ProviderConfig,
    pub mode: QwenMode,
    /// The OAuth client (OAuth mode only).
    pub oauth: Option<OAuthEndpoints>,
    pub store: TokenStore,
    /// Set when the user gave `endpoint`: it then wins over the token's `resource_url`.
    pub endpoint_override: Option<String>,
    pub refresh_margin: Option<Duration>,
}

impl QwenConfig {
    /// The JS config: the OpenAI provider keys plus `{oauth?: {clientId, clientSecret, scopes,
    /// baseUrl, deviceCodeUrl, tokenUrl}, tokenStoragePath?, refreshMarginMs?}`. `apiKey`
    /// selects DashScope API-key mode.
    pub fn from_value(v: &Value) -> Result<Self> {
        let obj = v.as_object().ok_or_else(|| invalid("config", "an object", Some(v)))?;
        let mode = if obj.get("apiKey").is_some_and(|k| !k.is_null()) || obj.get("apiKeys").is_some_and(|k| !k.is_null()) {
            QwenMode::ApiKey
        } else {
            QwenMode::OAuth
        };
        let user_endpoint = obj.get("endpoint").filter(|e| !e.is_null()).cloned();
        let mut with_defaults = obj.clone();
        let default_base = match mode {
            QwenMode::ApiKey => DEFAULT_DASHSCOPE_BASE_URL,
            QwenMode::OAuth => DEFAULT_PORTAL_BASE_URL,
        };
        with_defaults.entry("endpoint").or_insert_with(|| default_base.into());
        if with_defaults.get("endpoint").is_some_and(Value::is_null) {
            with_defaults.insert("endpoint".into(), default_base.into());
        }
        with_defaults.entry("defaultModel").or_insert_with(|| DEFAULT_QWEN_MODEL.into());
        let mut provider = ProviderConfig::from_object(&with_defaults)?;
        for (name, value) in qwen::headers(mode, &QwenClientInfo::default())? {
            if let Ok(v) = value.to_str() {
                // The user's own headers win.
                provider.headers.entry(name.as_str().to_string()).or_insert_with(|| v.to_string());
            }
        }
        let f = Fields::new(obj, "");
        let store = match f.string("tokenStoragePath")? {
            Some(p) => TokenStore::new(p),
            None => TokenStore::qwen_default(),
        };
        let oauth = match mode {
            QwenMode::ApiKey => None,
            QwenMode::OAuth => Some(oauth_endpoints(obj.get("oauth"))?),
        };
        Ok(QwenConfig {
            endpoint_override: user_endpoint.map(|_| provider.endpoint.clone()),
            provider,
            mode,
            oauth,
            store,
            refresh_margin: f.millis("refreshMarginMs")?,
        })
    }
}

/// qwen-code's client, with every field the config names replaced.
fn oauth_endpoints(v: Option<&Value>) -> Result<OAuthEndpoints> {
    let empty = Map::new();
    let obj = match v {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(other) => return Err(invalid("oauth", "an object", Some(other))),
    };
    let f = Fields::new(obj, "oauth");
    let mut e = match f.string("baseUrl")? {
        Some(base) => OAuthEndpoints::qwen_with_base(base),
        None => OAuthEndpoints::qwen_defaults(),
    };
    if let Some(u) = f.string("deviceCodeUrl")? {
        e.device_code_url = u.to_string();
    }
    if let Some(u) = f.string("tokenUrl")? {
        e.token_url = u.to_string();
    }
    if let Some(id) = f.string("clientId")? {
        e.client_id = id.to_string();
    }
    if let Some(secret) = f.string("clientSecret")? {
        e.client_secret = Some(secret.to_string());
    }
    match obj.get("scopes") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => e.scope = s.clone(),
        Some(Value::Array(items)) => {
            let scopes: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            e.scope = scopes.ok_or_else(|| invalid("oauth.scopes", "an array of strings", obj.get("scopes")))?.join(" ");
        }
        other => return Err(invalid("oauth.scopes", "a string or an array of strings", other)),
    }
    e.validate()?;
    Ok(e)
}

/// OAuth-mode credentials: the source's current token, and the chat base its `resource_url` names.
struct QwenOAuth {
    source: OAuthCredentialSource,
    endpoint_override: Option<String>,
}

fn bearer(token: &str) -> Result<HeaderMap> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::Authentication {
        message: "the stored access token is not usable in an HTTP header".into(),
        status: None,
        body: None,
        provider_code: None,
    })?;
    v.set_sensitive(true);
    let mut h = HeaderMap::new();
    h.insert(AUTHORIZATION, v);
    Ok(h)
}

impl Credentials for QwenOAuth {
    fn authorize(&self) -> BoxFuture<Result<Authorization>> {
        let source = self.source.clone();
        let fixed = self.endpoint_override.clone();
        Box::pin(async move {
            let t = source.access_token().await?;
            let base = fixed.unwrap_or_else(|| qwen::chat_base_from_resource_url(t.resource_url.as_deref(), DEFAULT_PORTAL_BASE_URL));
            Ok(Authorization { headers: bearer(&t.access_token)?, base_url: Some(base), credential: Some(t.access_token.as_str().into()) })
        })
    }

    fn rejected(&self, credential: Option<Arc<str>>) -> BoxFuture<Result<bool>> {
        let source = self.source.clone();
        Box::pin(async move {
            let Some(rejected) = credential else { return Ok(false) };
            source.invalidate_and_refresh(&rejected).await.map(|_| true)
        })
    }
}

struct QwenQuirks {
    request: QwenRequestOptions,
}

impl Quirks for QwenQuirks {
    fn fix_request(&self, req: &mut ChatRequest) {
        qwen::fix_request(req, &self.request);
    }
    fn classify_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Option<Error> {
        qwen::classify_error(status, headers, body)
    }
    fn is_credential_rejection(&self, status: u16, body: &[u8]) -> bool {
        qwen::is_token_rejection(status, body)
    }
    fn stream_failure(&self, chunk: &ChatChunk) -> Option<Error> {
        qwen::stream_finish_error(chunk)
    }
}

/// A built provider: the transport, and the OAuth source in OAuth mode.
pub struct QwenProvider {
    pub transport: OpenAICompatibleProvider,
    pub source: Option<OAuthCredentialSource>,
    pub mode: QwenMode,
}

impl QwenProvider {
    pub fn new(config: QwenConfig, events: Option<AuthEventSink>) -> Result<Self> {
        let quirks: Arc<dyn Quirks> = Arc::new(QwenQuirks { request: QwenRequestOptions::default() });
        let (credentials, source): (Option<Arc<dyn Credentials>>, _) = match config.oauth {
            None => (None, None),
            Some(endpoints) => {
                let mut options = SourceOptions { events, ..SourceOptions::default() };
                if let Some(m) = config.refresh_margin {
                    options.refresh_margin = m;
                }
                let source = OAuthCredentialSource::with_options(OAuthClient::new(endpoints)?, config.store, options);
                let creds = Arc::new(QwenOAuth { source: source.clone(), endpoint_override: config.endpoint_override });
                (Some(creds as Arc<dyn Credentials>), Some(source))
            }
        };
        let transport = OpenAICompatibleProvider::for_vendor(config.provider, credentials, Some(quirks))?;
        Ok(QwenProvider { transport, source, mode: config.mode })
    }
}
