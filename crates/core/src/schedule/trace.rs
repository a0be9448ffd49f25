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

pub(crate) struct Trace {
    hook: Option<TrackerHook>,
    request_id: Arc<str>,
    /// False when the caller created the context (a `requestContext` passed in): the caller
    /// completes it, not the scheduler.
    owned: bool,
}

impl Trace {
    pub fn none() -> Self {
        Trace { hook: None, request_id: "".into(), owned: false }
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
        Trace { hook: Some(hook), request_id: request_id.clone(), owned }
    }

    pub fn start(&self, stage: &str, data: impl FnOnce() -> Value) {
        if let Some(h) = &self.hook {
            h.tracker.add_stage(&self.request_id, stage, Some(&data()));
        }
    }

    pub fn done(&self, stage: &str, data: impl FnOnce() -> Value) {
        if let Some(h) = &self.hook {
            h.tracker.complete_stage(&self.request_id, stage, Some(&data()));
        }
    }

    pub fn fail(&self, stage: &str, error: &Error) {
        if let Some(h) = &self.hook {
            h.tracker.fail_stage(&self.request_id, stage, &error.to_string(), Some(&json!({"code": error.code()})));
        }
    }

    /// Names the pipeline (and target) that served the request.
    pub fn route(&self, route: &Route) {
        if let Some(h) = &self.hook {
            let provider = route.target_id.as_deref().unwrap_or(&route.pipeline_id);
            h.tracker.update_context(&self.request_id, &json!({"pipelineId": &*route.pipeline_id, "provider": provider}));
        }
    }

    /// Completes the context (when the scheduler opened it) and records the I/O entry, whose
    /// fields `io` builds only when I/O tracking is on (`success` in it is the outcome).
    pub fn finish(&self, io: impl FnOnce() -> Value, succeeded: bool) {
        let Some(h) = &self.hook else { return };
        if h.tracker.io().is_some() {
            let mut entry = io();
            if let Value::Object(o) = &mut entry {
                o.insert("operationType".into(), "pipeline_end".into());
                o.insert("operationId".into(), (&*self.request_id).into());
                o.insert("requestId".into(), (&*self.request_id).into());
                o.insert("moduleId".into(), (&*h.label).into());
            }
            h.tracker.record_io(entry);
        }
        if self.owned {
            h.tracker.complete_request_with(&self.request_id, Some(succeeded));
        }
    }
}
