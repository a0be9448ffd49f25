//! What a scheduled request records into the tracker it was given: one context per request
//! and the stages `request-init`, `queue`, `pipeline-selection`, `authentication`,
//! `api-execution` and `response-processing` (the middle ones once per attempt), plus one I/O
//! entry at the end. Without a tracker every method is a branch on `None`; stage data is built
//! by closures so that nothing is allocated then.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::Error;
use crate::provider::Route;
use crate::track::Tracker;

/// The tracker a scheduler records into, and the name it records under.
#[derive(Clone)]
pub struct TrackerHook {
    pub tracker: Arc<Tracker>,
    pub label: Arc<str>,
}

/// One request's trace; `None` (one word, no allocation) when no tracker is set, which is
/// what every queued request carries in the common case.
pub(crate) struct Trace(Option<Box<Active>>);

struct Active {
    hook: TrackerHook,
    request_id: Arc<str>,
    /// False when the caller created the context (a `requestContext` passed in): the caller
    /// completes it, not the scheduler.
    owned: bool,
}

impl Trace {
    pub fn none() -> Self {
        Trace(None)
    }

    /// Attaches to the caller's context with this id, or opens one.
    pub fn begin(hook: Option<TrackerHook>, request_id: &Arc<str>, operation: &str, model: Option<&str>, priority: f64) -> Self {
        let Some(hook) = hook else { return Trace::none() };
        let t = &hook.tracker;
        let owned = if t.is_active(request_id) {
            false
        } else {
            let metadata = json!({"scheduler": &*hook.label, "priority": priority});
            if t.create_context(Some(request_id), &hook.label, "", operation, &metadata).is_err() {
                return Trace::none();
            }
            true
        };
        if let Some(m) = model {
            t.update_context(request_id, &json!({"model": m}));
        }
        t.complete_stage(request_id, "request-init", Some(&json!({"operation": operation, "priority": priority})));
        Trace(Some(Box::new(Active { hook, request_id: request_id.clone(), owned })))
    }

    pub fn start(&self, stage: &str, data: impl FnOnce() -> Value) {
        if let Some(a) = &self.0 {
            a.hook.tracker.add_stage(&a.request_id, stage, Some(&data()));
        }
    }

    pub fn done(&self, stage: &str, data: impl FnOnce() -> Value) {
        if let Some(a) = &self.0 {
            a.hook.tracker.complete_stage(&a.request_id, stage, Some(&data()));
        }
    }

    pub fn fail(&self, stage: &str, error: &Error) {
        if let Some(a) = &self.0 {
            a.hook.tracker.fail_stage(&a.request_id, stage, &error.to_string(), Some(&json!({"code": error.code()})));
        }
    }

    /// Names the pipeline (and target) that served the request.
    pub fn route(&self, route: &Route) {
        if let Some(a) = &self.0 {
            let provider = route.target_id.as_deref().unwrap_or(&route.pipeline_id);
            a.hook.tracker.update_context(&a.request_id, &json!({"pipelineId": &*route.pipeline_id, "provider": provider}));
        }
    }

    /// Completes the context (when the scheduler opened it) and records the I/O entry, whose
    /// fields `io` builds only when I/O tracking is on (`success` in it is the outcome).
    pub fn finish(&self, io: impl FnOnce() -> Value, succeeded: bool) {
        let Some(a) = &self.0 else { return };
        let h = &a.hook;
        if h.tracker.io().is_some() {
            let mut entry = io();
            if let Value::Object(o) = &mut entry {
                o.insert("operationType".into(), "pipeline_end".into());
                o.insert("operationId".into(), (&*a.request_id).into());
                o.insert("requestId".into(), (&*a.request_id).into());
                o.insert("moduleId".into(), (&*h.label).into());
            }
            h.tracker.record_io(entry);
        }
        if a.owned {
            h.tracker.complete_request_with(&a.request_id, Some(succeeded));
        }
    }
}
