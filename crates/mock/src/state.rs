//! What the mock observed, for tests to assert on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

const MAX_RECORDED: usize = 1000;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub http_version: String,
    /// Lower-case header names.
    pub headers: serde_json::Map<String, Value>,
    /// The JSON body, or the raw text when it was not JSON.
    pub body: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub requests: u64,
    pub chat_requests: u64,
    pub stream_requests: u64,
    pub streams_completed: u64,
    /// Streams whose client went away before the mock had sent everything.
    pub streams_cancelled: u64,
    pub connections_opened: u64,
    pub connections_closed: u64,
    pub open_connections: u64,
}

#[derive(Default)]
pub(crate) struct State {
    pub requests: AtomicU64,
    pub chat_requests: AtomicU64,
    pub stream_requests: AtomicU64,
    pub streams_completed: AtomicU64,
    pub streams_cancelled: AtomicU64,
    pub connections_opened: AtomicU64,
    pub connections_closed: AtomicU64,
    pub recorded: Mutex<VecDeque<RecordedRequest>>,
    /// Accepted bearer keys (any when empty); replaceable at run time to revoke a key.
    pub api_keys: std::sync::RwLock<Vec<String>>,
    pub models: Vec<String>,
}

impl State {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record(&self, r: RecordedRequest) {
        let mut q = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == MAX_RECORDED {
            q.pop_front();
        }
        q.push_back(r);
    }

    pub fn stats(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let opened = g(&self.connections_opened);
        let closed = g(&self.connections_closed);
        Stats {
            requests: g(&self.requests),
            chat_requests: g(&self.chat_requests),
            stream_requests: g(&self.stream_requests),
            streams_completed: g(&self.streams_completed),
            streams_cancelled: g(&self.streams_cancelled),
            connections_opened: opened,
            connections_closed: closed,
            open_connections: opened.saturating_sub(closed),
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorded.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// Zeroes the request counters and forgets recorded requests. Connection counters are
    /// left alone: connections outlive a reset.
    pub fn reset(&self) {
        for c in [&self.requests, &self.chat_requests, &self.stream_requests, &self.streams_completed, &self.streams_cancelled] {
            c.store(0, Ordering::Relaxed);
        }
        self.recorded.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
