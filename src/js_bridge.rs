//! Providers and strategies written in JS, called from the scheduler's tokio tasks through a
//! weak ThreadsafeFunction (it never keeps Node alive) with `call_async_catch` (a synchronous
//! throw becomes an error, never a crash). The JS side (`lib/bridge.js`) answers every call
//! with JSON text: `{ok}`, `{chunks}`, `{done}`, `{id}` or `{error: payload}`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{FnArgs, Promise};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use rcc_core::model::{ChatChunk, ChatRequest, ChatResponse};
use rcc_core::provider::{CallOptions, ChunkStream, HealthReport, HealthStatus};
use rcc_core::schedule::{Backend, BoxFuture, CustomStrategy, Served};
use rcc_core::{Error, Result};
use serde_json::Value;

type BridgeArgs = FnArgs<(String, u32, Option<String>)>;
/// `(kind, callId, payloadJson?) => Promise<string>`.
pub type Bridge = ThreadsafeFunction<BridgeArgs, Promise<String>, BridgeArgs, Status, false, true>;

static NEXT_CALL: AtomicU32 = AtomicU32::new(1);

fn next_call_id() -> u32 {
    NEXT_CALL.fetch_add(1, Ordering::Relaxed)
}

/// One round trip to JS; the answer parsed, `{error}` turned into the core error.
async fn ask(bridge: &Bridge, kind: &str, id: u32, payload: Option<String>) -> Result<Value> {
    let broken = |e: napi::Error| Error::Internal { message: format!("the JS bridge failed ({kind}): {}", e.reason) };
    let promise = bridge.call_async_catch(FnArgs::from((kind.to_string(), id, payload))).await.map_err(broken)?;
    let text = promise.await.map_err(broken)?;
    let v: Value = serde_json::from_str(&text).map_err(|e| Error::Internal { message: format!("the JS bridge answered invalid JSON ({kind}): {e}") })?;
    match v.get("error") {
        Some(p) => Err(Error::from_payload(p)),
        None => Ok(v),
    }
}

/// Tells JS to abort a call; nobody waits for the answer.
fn tell_cancel(bridge: &Bridge, id: u32) {
    bridge.call(FnArgs::from(("cancel".to_string(), id, None)), ThreadsafeFunctionCallMode::NonBlocking);
}

/// A `BaseProvider` subclass (or any provider object) as a scheduler backend.
pub struct JsProvider {
    bridge: Arc<Bridge>,
}

impl JsProvider {
    pub fn new(bridge: Bridge) -> Self {
        JsProvider { bridge: Arc::new(bridge) }
    }
}

fn request_json(req: &ChatRequest) -> Result<String> {
    serde_json::to_string(req).map_err(|e| Error::Internal { message: e.to_string() })
}

impl Backend for JsProvider {
    fn chat(&self, req: ChatRequest, opts: CallOptions) -> BoxFuture<Result<Served<ChatResponse>>> {
        let bridge = self.bridge.clone();
        Box::pin(async move {
            let id = next_call_id();
            let body = request_json(&req)?;
            let answer = tokio::select! {
                biased;
                _ = opts.cancel.cancelled() => {
                    tell_cancel(&bridge, id);
                    return Err(Error::cancelled());
                }
                a = ask(&bridge, "chat", id, Some(body)) => a?,
            };
            let response: ChatResponse = serde_json::from_value(answer.get("ok").cloned().unwrap_or(Value::Null))
                .map_err(|e| Error::Provider { message: format!("the JS provider returned an invalid chat completion: {e}"), status: None, body: None, provider_code: None, retry_after_ms: None })?;
            Ok(Served::direct(response))
        })
    }

    fn stream_chat(&self, req: ChatRequest, opts: CallOptions) -> BoxFuture<Result<Served<ChunkStream>>> {
        let bridge = self.bridge.clone();
        Box::pin(async move {
            let id = next_call_id();
            let body = request_json(&req)?;
            tokio::select! {
                biased;
                _ = opts.cancel.cancelled() => {
                    tell_cancel(&bridge, id);
                    return Err(Error::cancelled());
                }
                a = ask(&bridge, "open", id, Some(body)) => { a?; }
            }
            let token = opts.cancel.child_token();
            let (tx, stream) = ChunkStream::channel(token.clone());
            tokio::spawn(async move {
                loop {
                    let answer = tokio::select! {
                        biased;
                        _ = token.cancelled() => {
                            tell_cancel(&bridge, id);
                            return;
                        }
                        a = ask(&bridge, "next", id, None) => a,
                    };
                    let answer = match answer {
                        Ok(a) => a,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    };
                    if answer.get("done").and_then(Value::as_bool) == Some(true) {
                        return;
                    }
                    let chunks = answer.get("chunks").and_then(Value::as_array).cloned().unwrap_or_default();
                    for c in chunks {
                        let item = serde_json::from_value::<ChatChunk>(c).map_err(|e| Error::Stream {
                            message: format!("the JS provider yielded an invalid chunk: {e}"),
                            partial: None,
                        });
                        let failed = item.is_err();
                        if tx.send(item).await.is_err() || failed {
                            tell_cancel(&bridge, id);
                            return;
                        }
                    }
                }
            });
            Ok(Served::direct(stream))
        })
    }

    fn health_check(&self) -> BoxFuture<HealthReport> {
        let bridge = self.bridge.clone();
        Box::pin(async move {
            match ask(&bridge, "health", 0, None).await {
                Ok(v) => HealthReport {
                    status: match v.get("status").and_then(Value::as_str) {
                        Some("healthy") => HealthStatus::Healthy,
                        Some("degraded") | Some("warning") => HealthStatus::Degraded,
                        _ => HealthStatus::Unhealthy,
                    },
                    latency_ms: v.get("latencyMs").and_then(Value::as_f64).unwrap_or(0.0),
                    error: v.get("error").and_then(Value::as_str).map(String::from),
                },
                Err(e) => HealthReport { status: HealthStatus::Unhealthy, latency_ms: 0.0, error: Some(e.to_string()) },
            }
        })
    }
}

/// A strategy registered with `registerLoadBalancingStrategy`.
pub struct JsStrategy {
    bridge: Arc<Bridge>,
}

impl JsStrategy {
    pub fn new(bridge: Bridge) -> Self {
        JsStrategy { bridge: Arc::new(bridge) }
    }
}

impl CustomStrategy for JsStrategy {
    fn select(&self, candidates: Value) -> BoxFuture<Result<Option<String>>> {
        let bridge = self.bridge.clone();
        Box::pin(async move {
            let v = ask(&bridge, "select", 0, Some(candidates.to_string())).await?;
            Ok(v.get("id").and_then(Value::as_str).map(String::from))
        })
    }
}
