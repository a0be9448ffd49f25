//! `NativeTracker`: the Rust half of `PipelineTracker` and of every `PipelineBaseModule`'s
//! I/O log. JSON text in and out; the tracker redacts whatever it is given.

use std::sync::Arc;

use napi_derive::napi;
use rcc_core::track::{IoFilter, StageStatus, Tracker, TrackerConfig};
use serde_json::Value;

use crate::error::{parse_json, to_napi};

#[napi(js_name = "NativeTracker")]
pub struct NativeTracker {
    pub(crate) inner: Arc<Tracker>,
}

fn optional_json(text: Option<String>, what: &str) -> napi::Result<Option<Value>> {
    text.map(|t| parse_json(&t, what)).transpose()
}

fn to_text(v: Vec<Value>) -> String {
    Value::Array(v).to_string()
}

#[napi]
impl NativeTracker {
    /// `optionsJson`: see `TrackerConfig::from_value`.
    #[napi(constructor)]
    pub fn new(options_json: Option<String>) -> napi::Result<Self> {
        let options = optional_json(options_json, "options")?.unwrap_or(Value::Null);
        let config = TrackerConfig::from_value(&options).map_err(|e| to_napi(e, None))?;
        Ok(NativeTracker { inner: Arc::new(Tracker::new(config)) })
    }

    #[napi]
    pub fn generate_request_id(&self) -> String {
        self.inner.generate_request_id()
    }

    /// Opens a context; returns its request id.
    #[napi]
    pub fn create_context(&self, request_id: Option<String>, pipeline_id: String, provider: String, operation: String, metadata_json: Option<String>) -> napi::Result<String> {
        let metadata = optional_json(metadata_json, "metadata")?.unwrap_or(Value::Null);
        self.inner.create_context(request_id.as_deref(), &pipeline_id, &provider, &operation, &metadata).map_err(|e| to_napi(e, None))
    }

    #[napi]
    pub fn add_stage(&self, request_id: String, stage: String, data_json: Option<String>) -> napi::Result<bool> {
        let data = optional_json(data_json, "data")?;
        Ok(self.inner.add_stage(&request_id, &stage, data.as_ref()))
    }

    #[napi]
    pub fn complete_stage(&self, request_id: String, stage: String, data_json: Option<String>) -> napi::Result<bool> {
        let data = optional_json(data_json, "data")?;
        Ok(self.inner.complete_stage(&request_id, &stage, data.as_ref()))
    }

    #[napi]
    pub fn fail_stage(&self, request_id: String, stage: String, error: String, data_json: Option<String>) -> napi::Result<bool> {
        let data = optional_json(data_json, "data")?;
        Ok(self.inner.fail_stage(&request_id, &stage, &error, data.as_ref()))
    }

    /// `status`: `pending`/`started`/`running`, `completed` or `failed`.
    #[napi]
    pub fn record_stage(&self, request_id: String, stage: String, status: String, data_json: Option<String>, error: Option<String>) -> napi::Result<bool> {
        let status = StageStatus::parse(&status)
            .ok_or_else(|| to_napi(rcc_core::Error::validation("status", format!("status must be 'started', 'completed' or 'failed', got '{status}'")), None))?;
        let data = optional_json(data_json, "data")?;
        Ok(self.inner.record_stage(&request_id, &stage, status, data.as_ref(), error.as_deref()))
    }

    #[napi]
    pub fn update_context(&self, request_id: String, patch_json: String) -> napi::Result<bool> {
        let patch = parse_json(&patch_json, "patch")?;
        Ok(self.inner.update_context(&request_id, &patch))
    }

    #[napi]
    pub fn complete_request(&self, request_id: String) -> Option<String> {
        self.inner.complete_request(&request_id).map(|v| v.to_string())
    }

    #[napi]
    pub fn get_context(&self, request_id: String) -> Option<String> {
        self.inner.get(&request_id).map(|v| v.to_string())
    }

    #[napi]
    pub fn is_active(&self, request_id: String) -> bool {
        self.inner.is_active(&request_id)
    }

    #[napi]
    pub fn active_contexts(&self) -> String {
        to_text(self.inner.active())
    }

    #[napi]
    pub fn finished_contexts(&self) -> String {
        to_text(self.inner.finished())
    }

    #[napi]
    pub fn statistics(&self) -> String {
        self.inner.statistics().to_string()
    }

    #[napi]
    pub fn clear(&self) {
        self.inner.clear();
    }

    /// Whether I/O entries are recorded (`enableIOTracking`).
    #[napi]
    pub fn io_enabled(&self) -> bool {
        self.inner.io().is_some()
    }

    /// Re-reads the I/O settings (`enableIOTracking`, `debugBaseDirectory`, `ioTrackingConfig`,
    /// `maxIOEntries`) from module options; a change starts a new log, contexts stay.
    #[napi]
    pub fn configure_io(&self, options_json: String) -> napi::Result<()> {
        let options = parse_json(&options_json, "options")?;
        let config = TrackerConfig::from_value(&options).map_err(|e| to_napi(e, None))?;
        if self.inner.io().map(|io| io.config().clone()) != config.io {
            self.inner.set_io(config.io);
        }
        Ok(())
    }

    #[napi]
    pub fn record_io(&self, entry_json: String) -> napi::Result<()> {
        let entry = parse_json(&entry_json, "entry")?;
        self.inner.record_io(entry);
        Ok(())
    }

    #[napi]
    pub fn io_entries(&self, filter_json: Option<String>) -> napi::Result<String> {
        let filter = optional_json(filter_json, "filter")?.unwrap_or(Value::Null);
        let filter = IoFilter::from_value(&filter).map_err(|e| to_napi(e, None))?;
        Ok(to_text(self.inner.io().map(|io| io.entries(&filter)).unwrap_or_default()))
    }

    #[napi]
    pub fn io_files(&self) -> Vec<String> {
        self.inner.io().map(|io| io.files().iter().map(|p| p.to_string_lossy().into_owned()).collect()).unwrap_or_default()
    }

    #[napi]
    pub fn io_error(&self) -> Option<String> {
        self.inner.io().and_then(|io| io.file_error())
    }

    #[napi]
    pub fn clear_io(&self) {
        if let Some(io) = self.inner.io() {
            io.clear();
        }
    }

    /// Registers a secret value (an API key) to scrub wherever it appears.
    #[napi]
    pub fn add_secret(&self, secret: String) {
        self.inner.redactor().add_secret(&secret);
    }

    /// A redacted copy of a JSON value.
    #[napi]
    pub fn redact(&self, json: String) -> napi::Result<String> {
        let v = parse_json(&json, "value")?;
        Ok(self.inner.redactor().redact(&v).to_string())
    }
}
