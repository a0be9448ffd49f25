//! `NativeScheduler`: the Rust half of `EnhancedPipelineScheduler`, `PipelineScheduler` and
//! `Pipeline` (a pipeline is a scheduler over its targets, with no queue and no retries).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{within_runtime_if_available, PromiseRaw, Unknown};
use napi::Env;
use napi_derive::napi;
use rcc_core::llmswitch::{self, Protocol};
use rcc_core::schedule::{ChatOutcome, EventKind, EventSink, MemberOptions, RequestOptions, Scheduler, SchedulerConfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::call::NativeCall;
use crate::error::{parse_json, payload_error, to_napi};
use crate::js_bridge::{Bridge, JsProvider, JsStrategy};
use crate::provider::NativeOpenAIProvider;
use crate::settle::{JsCallback, Settler};
use crate::stream::NativeChunkStream;
use crate::tracker::NativeTracker;

/// Forwards events JS listens to (the mask is kept up to date by index.js).
struct JsEvents {
    callback: JsCallback,
    mask: AtomicU32,
}

impl EventSink for JsEvents {
    fn wants(&self, kind: EventKind) -> bool {
        self.mask.load(Ordering::Relaxed) & kind.bit() != 0
    }
    fn emit(&self, kind: EventKind, payload: Value) {
        self.callback.call(kind.name(), payload.to_string());
    }
}

#[napi(js_name = "NativeScheduler")]
pub struct NativeScheduler {
    inner: Scheduler,
    events: Arc<JsEvents>,
    /// What `submit` hands the engine as the request's token: `submit_chat` drops it and creates
    /// the real one when the request starts, so no token is allocated per submission.
    unused_token: CancellationToken,
}

/// `is_custom` says which non-built-in strategy names to accept.
fn parse_config(text: &str, is_custom: &dyn Fn(&str) -> bool) -> napi::Result<SchedulerConfig> {
    SchedulerConfig::from_json(text, is_custom).map_err(|e| to_napi(e, None))
}

fn member_options(text: Option<String>) -> napi::Result<MemberOptions> {
    match text {
        None => Ok(MemberOptions::default()),
        Some(t) => MemberOptions::from_value(&parse_json(&t, "options")?).map_err(|e| to_napi(e, None)),
    }
}

#[napi]
impl NativeScheduler {
    #[napi(constructor, ts_args_type = "configJson: string, onEvent: (name: string, payloadJson: string) => void")]
    pub fn new(env: &Env, config_json: String, on_event: Unknown) -> napi::Result<Self> {
        // A custom strategy is registered after construction: any name is accepted here, and a
        // request made before it is registered fails naming it.
        let config = parse_config(&config_json, &|_| true)?;
        let events = Arc::new(JsEvents { callback: JsCallback::new(env, on_event)?, mask: AtomicU32::new(0) });
        let sink: Arc<dyn EventSink> = events.clone();
        let inner = within_runtime_if_available(|| Scheduler::with_events(config, sink));
        Ok(NativeScheduler { inner, events, unused_token: CancellationToken::new() })
    }

    /// Bit `1 << k` for each event kind with listeners, in `EventKind` order.
    #[napi]
    pub fn set_event_mask(&self, mask: u32) {
        self.events.mask.store(mask, Ordering::Relaxed);
    }

    /// Validates a whole config (the merged object) and applies it to new work.
    #[napi]
    pub fn update_config(&self, config_json: String) -> napi::Result<()> {
        let config = parse_config(&config_json, &|n| self.inner.is_custom_strategy(n))?;
        within_runtime_if_available(|| self.inner.update_config(config));
        Ok(())
    }

    /// Checks a config without applying it (constructor-time validation with custom names).
    #[napi]
    pub fn validate_config(&self, config_json: String) -> napi::Result<()> {
        parse_config(&config_json, &|n| self.inner.is_custom_strategy(n)).map(|_| ())
    }

    #[napi]
    pub fn add_native_provider(&self, id: String, provider: &NativeOpenAIProvider, options_json: Option<String>) -> napi::Result<()> {
        let opts = member_options(options_json)?;
        self.inner.add_member(&id, Arc::new(provider.inner.clone()), opts).map_err(|e| to_napi(e, None))
    }

    #[napi(ts_args_type = "id: string, bridge: (kind: string, callId: number, payload?: string | null) => Promise<string>, optionsJson?: string | undefined | null")]
    pub fn add_js_provider(&self, id: String, bridge: Bridge, options_json: Option<String>) -> napi::Result<()> {
        let opts = member_options(options_json)?;
        self.inner.add_member(&id, Arc::new(JsProvider::new(bridge)), opts).map_err(|e| to_napi(e, None))
    }

    /// Schedules over another scheduler (a Pipeline inside a PipelineScheduler).
    #[napi]
    pub fn add_scheduler(&self, id: String, other: &NativeScheduler, options_json: Option<String>) -> napi::Result<()> {
        let opts = member_options(options_json)?;
        self.inner.add_member(&id, Arc::new(other.inner.clone()), opts).map_err(|e| to_napi(e, None))
    }

    #[napi]
    pub fn remove_member(&self, id: String) -> bool {
        self.inner.remove_member(&id)
    }

    /// Changes weight / per-member limit / enabled; false when no such member.
    #[napi]
    pub fn update_member(&self, id: String, options_json: String) -> napi::Result<bool> {
        let patch = parse_json(&options_json, "options")?;
        self.inner.patch_member(&id, &patch).map_err(|e| to_napi(e, None))
    }

    #[napi(ts_args_type = "name: string, bridge: (kind: string, callId: number, payload?: string | null) => Promise<string>")]
    pub fn register_strategy(&self, name: String, bridge: Bridge) -> napi::Result<()> {
        self.inner.register_strategy(&name, Arc::new(JsStrategy::new(bridge))).map_err(|e| to_napi(e, None))
    }

    /// Schedules a chat request; resolves with `{requestId, pipelineId, targetId, attempts,
    /// queueTime, duration, response}`.
    #[napi]
    pub fn chat(&self, request_json: String, options_json: Option<String>) -> napi::Result<NativeCall> {
        let token = self.inner.request_token();
        let (opts, protocol) = request_options(options_json, token.clone())?;
        let req = llmswitch::chat_request(&request_json, protocol).map_err(|e| to_napi(e, None))?;
        let id = opts.request_id.clone();
        // Admitted here, on the JS thread, so that FIFO follows the order of the JS calls.
        let scheduled = self.inner.chat(req, opts);
        let work = async move {
            match scheduled.await {
                Ok(done) => done.to_json_as(&id, protocol).map_err(|e| to_napi(e, None)),
                Err(f) => Err(payload_error(f.to_payload(&id))),
            }
        };
        Ok(NativeCall::new(Box::pin(work), token))
    }

    /// The same chat as a promise of the envelope (parsed). The request is parked
    /// while it waits for a slot (see `rcc_core::schedule::Scheduler::submit_chat`), so a queued
    /// request costs little memory; it cannot be aborted (JS uses `chat` when there is a signal).
    /// `responseOnly`: resolve with the response alone instead of the whole envelope.
    #[napi(ts_return_type = "Promise<any>")]
    pub fn submit<'env>(&self, env: &'env Env, request_json: String, options_json: Option<String>, response_only: Option<bool>) -> napi::Result<PromiseRaw<'env, String>> {
        let response_only = response_only == Some(true);
        let (opts, protocol) = request_options(options_json, self.unused_token.clone())?;
        let req = llmswitch::chat_request(&request_json, protocol).map_err(|e| to_napi(e, None))?;
        let settler = Settler::get(env)?;
        let (deferred, promise) = settler.promise(env)?;
        let id = opts.request_id.clone();
        let done = move |outcome: ChatOutcome| {
            let settled = match outcome {
                Ok(done) if response_only => done.response_json_as(protocol).map_err(|e| to_napi(e, None).reason),
                Ok(done) => done.to_json_as(&id, protocol).map_err(|e| to_napi(e, None).reason),
                Err(f) => Err(payload_error(f.to_payload(&id)).reason),
            };
            settler.settle(deferred, settled);
        };
        within_runtime_if_available(|| self.inner.submit_chat(req, opts, done));
        Ok(promise)
    }

    #[napi]
    pub fn stream_chat(&self, request_json: String, options_json: Option<String>) -> napi::Result<NativeChunkStream> {
        let token = self.inner.request_token();
        let (opts, protocol) = request_options(options_json, token)?;
        let req = llmswitch::chat_request(&request_json, protocol).map_err(|e| to_napi(e, None))?;
        let id = opts.request_id.clone();
        let stream = within_runtime_if_available(|| self.inner.stream(req, opts));
        let route = stream.route_slot();
        Ok(NativeChunkStream::encoded(
            stream,
            Arc::new(move |e| {
                let mut p = e.to_payload();
                p.insert("requestId".into(), (&*id).into());
                if let Some(r) = route.get() {
                    p.insert("pipelineId".into(), (&*r.pipeline_id).into());
                }
                payload_error(p)
            }),
            llmswitch::encoder(protocol),
        ))
    }

    /// Records later requests' stages into `tracker` under `label` (none when null).
    #[napi]
    pub fn set_tracker(&self, tracker: Option<&NativeTracker>, label: String) {
        self.inner.set_tracker(tracker.map(|t| t.inner.clone()), &label);
    }

    #[napi]
    pub fn metrics(&self) -> String {
        self.inner.metrics().to_string()
    }

    #[napi]
    pub fn health(&self) -> String {
        self.inner.health().to_string()
    }

    /// Runs one round of provider health checks now.
    #[napi]
    pub async fn check_health(&self) -> napi::Result<()> {
        self.inner.check_health().await;
        Ok(())
    }

    #[napi]
    pub fn destroy(&self) {
        self.inner.destroy();
    }
}

/// The engine's options, and the protocol the caller speaks (`options.protocol`, OpenAI Chat by default).
fn request_options(options_json: Option<String>, token: CancellationToken) -> napi::Result<(RequestOptions, Protocol)> {
    let v = match options_json {
        Some(t) => parse_json(&t, "options")?,
        None => Value::Null,
    };
    let protocol = match v.get("protocol").and_then(Value::as_str) {
        Some(p) => Protocol::parse(p).map_err(|e| to_napi(e, None))?,
        None => Protocol::OpenAIChat,
    };
    Ok((RequestOptions::from_json(&v, token).map_err(|e| to_napi(e, None))?, protocol))
}
