//! `NativeOpenAIProvider`: the Rust half of `OpenAICompatibleProvider` in index.js.

use napi::bindgen_prelude::{spawn, within_runtime_if_available, PromiseRaw};
use napi::Env;
use napi_derive::napi;
use rcc_core::model::ChatRequest;
use rcc_core::provider::{CallOptions, OpenAICompatibleProvider, ProviderConfig, TimeoutsOverride};
use rcc_core::Error;

use crate::error::{parse_json, to_napi};
use crate::call::NativeCall;
use crate::settle::Settler;
use crate::stream::NativeChunkStream;

#[napi(js_name = "NativeOpenAIProvider")]
pub struct NativeOpenAIProvider {
    pub(crate) inner: OpenAICompatibleProvider,
}

fn call_options(options_json: Option<String>) -> napi::Result<CallOptions> {
    let mut opts = CallOptions::default();
    if let Some(text) = options_json {
        let v = parse_json(&text, "options")?;
        if let Some(t) = v.get("timeouts").and_then(|t| t.as_object()) {
            opts.timeouts = TimeoutsOverride::from_object(t, "options.timeouts").map_err(|e| to_napi(e, None))?;
        }
    }
    Ok(opts)
}

#[napi]
impl NativeOpenAIProvider {
    #[napi(constructor)]
    pub fn new(config_json: String) -> napi::Result<Self> {
        let config = ProviderConfig::from_json(&config_json).map_err(|e| to_napi(e, None))?;
        let inner = within_runtime_if_available(|| OpenAICompatibleProvider::new(config)).map_err(|e| to_napi(e, None))?;
        Ok(NativeOpenAIProvider { inner })
    }

    fn name(&self) -> &str {
        &self.inner.config().name
    }

    #[napi]
    pub fn chat(&self, request_json: String, options_json: Option<String>) -> napi::Result<NativeCall> {
        let req = ChatRequest::from_json(&request_json).map_err(|e| to_napi(e, Some(self.name())))?;
        let opts = call_options(options_json)?;
        let cancel = opts.cancel.clone();
        let (provider, name) = (self.inner.clone(), self.name().to_string());
        let work = async move {
            let r = provider.chat(req, opts).await;
            r.and_then(|r| serde_json::to_string(&r).map_err(|e| Error::Internal { message: e.to_string() })).map_err(|e| to_napi(e, Some(&name)))
        };
        Ok(NativeCall::new(Box::pin(work), cancel))
    }

    /// The same chat as a promise of the parsed response, settled through the shared settle
    /// queue (no threadsafe function per call). Not cancellable: JS uses `chat` when the caller
    /// passes a signal.
    #[napi(ts_return_type = "Promise<any>")]
    pub fn submit<'env>(&self, env: &'env Env, request_json: String, options_json: Option<String>) -> napi::Result<PromiseRaw<'env, String>> {
        let req = ChatRequest::from_json(&request_json).map_err(|e| to_napi(e, Some(self.name())))?;
        let opts = call_options(options_json)?;
        let settler = Settler::get(env)?;
        let (deferred, promise) = settler.promise(env)?;
        let (provider, name) = (self.inner.clone(), self.name().to_string());
        spawn(async move {
            let r = provider.chat(req, opts).await;
            let outcome = r
                .and_then(|r| serde_json::to_string(&r).map_err(|e| Error::Internal { message: e.to_string() }))
                .map_err(|e| to_napi(e, Some(&name)).reason);
            settler.settle(deferred, outcome);
        });
        Ok(promise)
    }

    #[napi]
    pub fn list_models(&self, options_json: Option<String>) -> napi::Result<NativeCall> {
        let opts = call_options(options_json)?;
        let cancel = opts.cancel.clone();
        let (provider, name) = (self.inner.clone(), self.name().to_string());
        let work = async move {
            let r = provider.list_models(opts).await;
            r.and_then(|m| serde_json::to_string(&m).map_err(|e| Error::Internal { message: e.to_string() })).map_err(|e| to_napi(e, Some(&name)))
        };
        Ok(NativeCall::new(Box::pin(work), cancel))
    }

    /// Starts a streaming call; the HTTP request runs on the addon's tokio runtime.
    #[napi]
    pub fn stream_chat(&self, request_json: String, options_json: Option<String>) -> napi::Result<NativeChunkStream> {
        let name = self.name().to_string();
        let req = ChatRequest::from_json(&request_json).map_err(|e| to_napi(e, Some(&name)))?;
        let opts = call_options(options_json)?;
        let stream = within_runtime_if_available(|| self.inner.stream_chat(req, opts)).map_err(|e| to_napi(e, Some(&name)))?;
        Ok(NativeChunkStream::for_provider(stream, name))
    }

    /// `{status, latencyMs, error?}` as JSON.
    #[napi]
    pub async fn health_check(&self) -> napi::Result<String> {
        let r = self.inner.health_check().await;
        let mut out = serde_json::json!({"status": r.status.as_str(), "latencyMs": (r.latency_ms * 1000.0).round() / 1000.0});
        if let Some(e) = r.error {
            out["error"] = e.into();
        }
        Ok(out.to_string())
    }
}
