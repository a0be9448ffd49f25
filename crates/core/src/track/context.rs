//! One tracked request and its stages. Stages belong to their request: two concurrent
//! requests never share a stage object (the original kept one tracker-wide stage per name).

use std::time::Instant;

use serde_json::{json, Map, Value};

pub(crate) use crate::time::epoch_ms;

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageStatus {
    Pending,
    Running,
    Completed,
    Failed,
}

impl StageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Pending => "pending",
            StageStatus::Running => "running",
            StageStatus::Completed => "completed",
            StageStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<StageStatus> {
        match s {
            "pending" => Some(StageStatus::Pending),
            "running" | "started" => Some(StageStatus::Running),
            "completed" => Some(StageStatus::Completed),
            "failed" => Some(StageStatus::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    /// Epoch milliseconds, like `Date.now()`.
    pub start_time: u64,
    pub end_time: Option<u64>,
    /// Measured on a monotonic clock, in milliseconds with microsecond resolution.
    pub duration_ms: Option<f64>,
    pub status: StageStatus,
    pub error: Option<String>,
    pub data: Option<Value>,
    started: Instant,
}

impl Stage {
    pub fn running(name: &str, data: Option<Value>) -> Self {
        Stage {
            name: name.to_string(),
            start_time: epoch_ms(),
            end_time: None,
            duration_ms: None,
            status: StageStatus::Running,
            error: None,
            data,
            started: Instant::now(),
        }
    }

    /// Ends the stage; `error` set means failed. `data` replaces the stage's data when given.
    pub fn finish(&mut self, error: Option<String>, data: Option<Value>) {
        self.end_time = Some(epoch_ms());
        self.duration_ms = Some(round3(self.started.elapsed().as_secs_f64() * 1000.0));
        self.status = if error.is_some() { StageStatus::Failed } else { StageStatus::Completed };
        self.error = error;
        if data.is_some() {
            self.data = data;
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.status, StageStatus::Running | StageStatus::Pending)
    }

    /// The original's `PipelineStage` shape.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("stage".into(), self.name.clone().into());
        o.insert("startTime".into(), self.start_time.into());
        if let Some(e) = self.end_time {
            o.insert("endTime".into(), e.into());
        }
        if let Some(d) = self.duration_ms {
            o.insert("duration".into(), d.into());
        }
        o.insert("status".into(), self.status.as_str().into());
        if let Some(e) = &self.error {
            o.insert("error".into(), e.clone().into());
        }
        if let Some(d) = &self.data {
            o.insert("data".into(), d.clone());
        }
        Value::Object(o)
    }
}

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub pipeline_id: String,
    pub session_id: Option<String>,
    pub start_time: u64,
    pub end_time: Option<u64>,
    pub provider: String,
    pub model: Option<String>,
    pub operation: String,
    pub stages: Vec<Stage>,
    pub metadata: Value,
    started: Instant,
    pub(crate) duration_ms: Option<f64>,
    /// Set by an owner that knows whether the request succeeded.
    pub(crate) outcome: Option<bool>,
}

impl RequestContext {
    pub fn new(request_id: String, pipeline_id: String, provider: String, operation: String, metadata: Value) -> Self {
        RequestContext {
            request_id,
            pipeline_id,
            session_id: None,
            start_time: epoch_ms(),
            end_time: None,
            provider,
            model: None,
            operation,
            stages: Vec::new(),
            metadata,
            started: Instant::now(),
            duration_ms: None,
            outcome: None,
        }
    }

    /// The most recent stage of that name that has not ended.
    pub fn open_stage_mut(&mut self, name: &str) -> Option<&mut Stage> {
        self.stages.iter_mut().rev().find(|s| s.name == name && s.is_open())
    }

    pub fn end(&mut self) {
        if self.end_time.is_none() {
            self.end_time = Some(epoch_ms());
            self.duration_ms = Some(round3(self.started.elapsed().as_secs_f64() * 1000.0));
        }
    }

    pub fn is_failed(&self) -> bool {
        match self.outcome {
            Some(ok) => !ok,
            None => self.stages.iter().any(|s| s.status == StageStatus::Failed),
        }
    }

    /// `pending` with no stages, `running` until ended, then `completed` or `failed`.
    pub fn status(&self) -> &'static str {
        if self.end_time.is_none() {
            if self.stages.is_empty() {
                "pending"
            } else {
                "running"
            }
        } else if self.is_failed() {
            "failed"
        } else {
            "completed"
        }
    }

    /// The original's `PipelineRequestContext` shape, plus `duration` and `status`.
    pub fn to_json(&self) -> Value {
        json!({
            "requestId": self.request_id,
            "pipelineId": self.pipeline_id,
            "sessionId": self.session_id,
            "startTime": self.start_time,
            "endTime": self.end_time,
            "duration": self.duration_ms,
            "provider": self.provider,
            "model": self.model,
            "operation": self.operation,
            "stages": self.stages.iter().map(Stage::to_json).collect::<Vec<_>>(),
            "metadata": self.metadata,
            "status": self.status(),
        })
    }
}
