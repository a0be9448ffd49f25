//! The tracker: request contexts keyed by id, stages per request, statistics, bounded
//! retention of finished requests (by count and age) and an optional I/O log. One mutex guards
//! the contexts and is never held while redacting or writing files.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::context::{epoch_ms, RequestContext, Stage, StageStatus};
use super::io::{IoConfig, IoLog};
use super::redact::Redactor;
use crate::error::{Error, Result};
use crate::validate::Fields;

#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// Finished requests kept for `getRequestContext` after completion.
    pub max_retained: usize,
    /// Finished requests older than this are dropped.
    pub retention: Duration,
    /// Requests never completed by their owner are dropped (oldest first) beyond this.
    pub max_active: usize,
    /// I/O entries are recorded only when set.
    pub io: Option<IoConfig>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig { max_retained: 1000, retention: Duration::from_secs(300), max_active: 100_000, io: None }
    }
}

/// `~` and `~/…` mean the home directory.
fn expand_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~") {
        if rest.is_empty() || rest.starts_with('/') {
            if let Some(home) = std::env::var_os("HOME") {
                return PathBuf::from(home).join(rest.trim_start_matches('/'));
            }
        }
    }
    PathBuf::from(p)
}

impl TrackerConfig {
    /// The JS options: `{id?, maxRetainedRequests?, retentionMs?, maxActiveRequests?,
    /// enableIOTracking?, maxIOEntries?, debugBaseDirectory?, ioTrackingConfig?: {enabled?,
    /// ioDirectory?, maxEntriesPerFile?, maxFiles?}}`. Files are written only when a directory
    /// is given (`ioTrackingConfig.ioDirectory`, or `<debugBaseDirectory>/io`).
    pub fn from_value(v: &Value) -> Result<Self> {
        let mut c = TrackerConfig::default();
        let empty = Map::new();
        let obj = match v {
            Value::Object(o) => o,
            Value::Null => &empty,
            other => return Err(crate::validate::invalid("options", "an object", Some(other))),
        };
        let f = Fields::new(obj, "");
        if let Some(n) = f.non_negative_int("maxRetainedRequests")? {
            c.max_retained = n.min(10_000_000) as usize;
        }
        if let Some(d) = f.millis("retentionMs")? {
            c.retention = d;
        }
        if let Some(n) = f.positive_int("maxActiveRequests")? {
            c.max_active = n.min(10_000_000) as usize;
        }
        let io_cfg = match obj.get("ioTrackingConfig") {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(other) => return Err(crate::validate::invalid("ioTrackingConfig", "an object", Some(other))),
        };
        let io_fields = io_cfg.map(|o| Fields::new(o, "ioTrackingConfig"));
        let enabled = match &io_fields {
            Some(f) => f.bool("enabled")?,
            None => None,
        };
        if enabled.or(f.bool("enableIOTracking")?).unwrap_or(false) {
            let mut io = IoConfig::default();
            if let Some(id) = f.string("id")? {
                io.module_id = id.to_string();
            }
            if let Some(n) = f.non_negative_int("maxIOEntries")? {
                io.capacity = n.min(10_000_000) as usize;
            }
            let base = f.string("debugBaseDirectory")?;
            if let Some(iof) = &io_fields {
                if let Some(n) = iof.positive_int("maxEntriesPerFile")? {
                    io.max_entries_per_file = n.min(100_000_000) as usize;
                }
                if let Some(n) = iof.positive_int("maxFiles")? {
                    io.max_files = n.min(100_000) as usize;
                }
                io.directory = iof.string("ioDirectory")?.map(expand_home);
            }
            if io.directory.is_none() {
                io.directory = base.map(|b| expand_home(b).join("io"));
            }
            c.io = Some(io);
        }
        Ok(c)
    }
}

#[derive(Default)]
struct Totals {
    created: u64,
    completed: u64,
    failed: u64,
    abandoned: u64,
}

struct State {
    active: HashMap<Arc<str>, RequestContext>,
    /// Creation order of active ids, to drop the oldest when over `max_active`.
    active_order: VecDeque<Arc<str>>,
    finished: HashMap<Arc<str>, RequestContext>,
    /// `(id, end time)` in completion order.
    finished_order: VecDeque<(Arc<str>, u64)>,
    totals: Totals,
}

pub struct Tracker {
    config: TrackerConfig,
    state: Mutex<State>,
    /// Replaceable at run time (I/O tracking switched on or off); contexts are unaffected.
    io: RwLock<Option<Arc<IoLog>>>,
    redactor: Arc<Redactor>,
    next_id: AtomicU64,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        let redactor = Arc::new(Redactor::default());
        let io = RwLock::new(config.io.clone().map(|c| Arc::new(IoLog::new(c, redactor.clone()))));
        Tracker {
            state: Mutex::new(State {
                active: HashMap::new(),
                active_order: VecDeque::new(),
                finished: HashMap::new(),
                finished_order: VecDeque::new(),
                totals: Totals::default(),
            }),
            io,
            redactor,
            next_id: AtomicU64::new(1),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    pub fn redactor(&self) -> &Arc<Redactor> {
        &self.redactor
    }

    pub fn io(&self) -> Option<Arc<IoLog>> {
        self.io.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Switches I/O tracking on (a new log with this config) or off; request contexts stay.
    pub fn set_io(&self, config: Option<IoConfig>) {
        let log = config.map(|c| Arc::new(IoLog::new(c, self.redactor.clone())));
        *self.io.write().unwrap_or_else(|p| p.into_inner()) = log;
    }

    /// `req_<epoch ms>_<counter>_<random>`: unique within the process, sortable by time.
    pub fn generate_request_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("req_{}_{n:x}_{:06x}", epoch_ms(), fastrand::u32(..0x100_0000))
    }

    /// Starts tracking a request; `request_id` is generated when `None`. Fails when that id is
    /// already being tracked.
    pub fn create_context(&self, request_id: Option<&str>, pipeline_id: &str, provider: &str, operation: &str, metadata: &Value) -> Result<String> {
        let id: Arc<str> = match request_id {
            Some(id) if !id.is_empty() => id.into(),
            Some(_) => return Err(Error::validation("requestId", "requestId must be a non-empty string")),
            None => self.generate_request_id().into(),
        };
        let metadata = match metadata {
            Value::Null => Value::Object(Map::new()),
            m => self.redactor.redact(m),
        };
        let pipeline_id = if pipeline_id.is_empty() { format!("pipeline_{}", epoch_ms()) } else { pipeline_id.to_string() };
        let ctx = RequestContext::new(id.to_string(), pipeline_id, provider.to_string(), operation.to_string(), metadata);
        let mut st = self.lock();
        if st.active.contains_key(&id) {
            return Err(Error::validation("requestId", format!("request '{id}' is already being tracked")));
        }
        st.totals.created += 1;
        st.active.insert(id.clone(), ctx);
        st.active_order.push_back(id.clone());
        self.enforce_active_bound(&mut st);
        Ok(id.to_string())
    }

    /// Whether `request_id` is being tracked (not yet completed).
    pub fn is_active(&self, request_id: &str) -> bool {
        self.lock().active.contains_key(request_id)
    }

    fn enforce_active_bound(&self, st: &mut State) {
        while st.active.len() > self.config.max_active {
            let Some(oldest) = st.active_order.pop_front() else { break };
            if st.active.remove(&oldest).is_some() {
                st.totals.abandoned += 1;
            }
        }
        // Completed ids linger in the order queue; compact when they dominate it.
        if st.active_order.len() > 2 * st.active.len() + 64 {
            let State { active, active_order, .. } = st;
            active_order.retain(|id| active.contains_key(id));
        }
    }

    /// Runs `f` on an active context; false when there is none with that id.
    fn with_active(&self, request_id: &str, f: impl FnOnce(&mut RequestContext)) -> bool {
        match self.lock().active.get_mut(request_id) {
            Some(ctx) => {
                f(ctx);
                true
            }
            None => false,
        }
    }

    fn redact_opt(&self, v: Option<&Value>) -> Option<Value> {
        v.filter(|v| !v.is_null()).map(|v| self.redactor.redact(v))
    }

    /// Opens a running stage on the request.
    pub fn add_stage(&self, request_id: &str, stage: &str, data: Option<&Value>) -> bool {
        let data = self.redact_opt(data);
        self.with_active(request_id, |ctx| ctx.stages.push(Stage::running(stage, data)))
    }

    /// Completes the request's open stage of that name (opening and completing one at once when
    /// none is open).
    pub fn complete_stage(&self, request_id: &str, stage: &str, data: Option<&Value>) -> bool {
        let data = self.redact_opt(data);
        self.end_stage(request_id, stage, None, data)
    }

    pub fn fail_stage(&self, request_id: &str, stage: &str, error: &str, data: Option<&Value>) -> bool {
        let error = self.redactor.redact_str(error);
        let data = self.redact_opt(data);
        self.end_stage(request_id, stage, Some(error), data)
    }

    fn end_stage(&self, request_id: &str, stage: &str, error: Option<String>, data: Option<Value>) -> bool {
        self.with_active(request_id, |ctx| match ctx.open_stage_mut(stage) {
            Some(s) => s.finish(error, data),
            None => {
                let mut s = Stage::running(stage, None);
                s.finish(error, data);
                ctx.stages.push(s);
            }
        })
    }

    /// Records a stage in one step with a status (`started` opens it).
    pub fn record_stage(&self, request_id: &str, stage: &str, status: StageStatus, data: Option<&Value>, error: Option<&str>) -> bool {
        match status {
            StageStatus::Running | StageStatus::Pending => self.add_stage(request_id, stage, data),
            StageStatus::Completed => self.complete_stage(request_id, stage, data),
            StageStatus::Failed => self.fail_stage(request_id, stage, error.unwrap_or("failed"), data),
        }
    }

    /// Sets `pipelineId`, `provider`, `model`, `sessionId` or merges `metadata` (the fields given).
    pub fn update_context(&self, request_id: &str, patch: &Value) -> bool {
        let patch = self.redactor.redact(patch);
        self.with_active(request_id, |ctx| {
            let s = |k: &str| patch.get(k).and_then(Value::as_str).map(str::to_string);
            if let Some(v) = s("pipelineId") {
                ctx.pipeline_id = v;
            }
            if let Some(v) = s("provider") {
                ctx.provider = v;
            }
            if let Some(v) = s("model") {
                ctx.model = Some(v);
            }
            if let Some(v) = s("sessionId") {
                ctx.session_id = Some(v);
            }
            if let (Some(Value::Object(add)), Value::Object(meta)) = (patch.get("metadata"), &mut ctx.metadata) {
                for (k, v) in add {
                    meta.insert(k.clone(), v.clone());
                }
            }
        })
    }

    /// Ends the request and moves it to the retained set; its final shape. Its status is
    /// `failed` when any stage failed.
    pub fn complete_request(&self, request_id: &str) -> Option<Value> {
        self.complete_request_with(request_id, None)
    }

    /// Ends the request with a known outcome: a request that failed over and then succeeded
    /// is `completed` although one of its attempts failed.
    pub fn complete_request_with(&self, request_id: &str, succeeded: Option<bool>) -> Option<Value> {
        let mut st = self.lock();
        let mut ctx = st.active.remove(request_id)?;
        ctx.outcome = succeeded;
        ctx.end();
        let json = ctx.to_json();
        if ctx.is_failed() {
            st.totals.failed += 1;
        } else {
            st.totals.completed += 1;
        }
        if self.config.max_retained > 0 {
            let id: Arc<str> = request_id.into();
            st.finished_order.push_back((id.clone(), ctx.end_time.unwrap_or(0)));
            st.finished.insert(id, ctx);
        }
        self.enforce_retention(&mut st);
        if st.active_order.len() > 2 * st.active.len() + 64 {
            let State { active, active_order, .. } = &mut *st;
            active_order.retain(|id| active.contains_key(id));
        }
        Some(json)
    }

    fn enforce_retention(&self, st: &mut State) {
        let oldest_kept = epoch_ms().saturating_sub(self.config.retention.as_millis() as u64);
        while let Some((id, ended)) = st.finished_order.front().cloned() {
            if st.finished_order.len() > self.config.max_retained || ended < oldest_kept {
                st.finished_order.pop_front();
                st.finished.remove(&id);
            } else {
                break;
            }
        }
    }

    /// An active or retained request.
    pub fn get(&self, request_id: &str) -> Option<Value> {
        let mut st = self.lock();
        self.enforce_retention(&mut st);
        st.active.get(request_id).or_else(|| st.finished.get(request_id)).map(RequestContext::to_json)
    }

    /// Active requests, oldest first.
    pub fn active(&self) -> Vec<Value> {
        let st = self.lock();
        let mut v: Vec<&RequestContext> = st.active.values().collect();
        v.sort_by_key(|c| c.start_time);
        v.into_iter().map(RequestContext::to_json).collect()
    }

    /// Retained finished requests, oldest first.
    pub fn finished(&self) -> Vec<Value> {
        let mut st = self.lock();
        self.enforce_retention(&mut st);
        st.finished_order.iter().filter_map(|(id, _)| st.finished.get(id)).map(RequestContext::to_json).collect()
    }

    /// Stage counts over active requests (as the original), plus lifetime totals.
    pub fn statistics(&self) -> Value {
        let mut st = self.lock();
        self.enforce_retention(&mut st);
        let (mut total, mut completed, mut failed, mut running) = (0u64, 0u64, 0u64, 0u64);
        for ctx in st.active.values() {
            for s in &ctx.stages {
                total += 1;
                match s.status {
                    StageStatus::Completed => completed += 1,
                    StageStatus::Failed => failed += 1,
                    StageStatus::Running => running += 1,
                    StageStatus::Pending => {}
                }
            }
        }
        json!({
            "activeRequests": st.active.len(),
            "totalStages": total,
            "completedStages": completed,
            "failedStages": failed,
            "runningStages": running,
            "totalRequests": st.totals.created,
            "completedRequests": st.totals.completed,
            "failedRequests": st.totals.failed,
            "abandonedRequests": st.totals.abandoned,
            "retainedRequests": st.finished.len(),
        })
    }

    /// Forgets every active and retained request (totals stay).
    pub fn clear(&self) {
        let mut st = self.lock();
        st.active.clear();
        st.active_order.clear();
        st.finished.clear();
        st.finished_order.clear();
    }

    /// Adds an I/O entry when I/O tracking is on.
    pub fn record_io(&self, entry: Value) {
        if let Some(io) = self.io() {
            io.record(entry);
        }
    }
}
