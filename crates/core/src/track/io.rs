//! I/O entries: what went into and came out of an operation, kept in a bounded ring buffer and,
//! when a directory is configured, appended to JSON-lines files (rotated by entry count, the
//! oldest files deleted beyond a bound). Entries are redacted before they are stored or written.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};

use super::context::epoch_ms;
use super::redact::Redactor;

#[derive(Debug, Clone, PartialEq)]
pub struct IoConfig {
    /// Entries kept in memory; the oldest are dropped first.
    pub capacity: usize,
    /// Where JSON-lines files go; memory only when `None`.
    pub directory: Option<PathBuf>,
    pub max_entries_per_file: usize,
    /// Files kept in `directory` by this log; older ones are deleted.
    pub max_files: usize,
    /// Names the files (`<module>-<epoch ms>-<n>.jsonl`).
    pub module_id: String,
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig { capacity: 1000, directory: None, max_entries_per_file: 1000, max_files: 5, module_id: "pipeline".into() }
    }
}

/// Which entries `entries()` returns; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct IoFilter {
    pub operation_id: Option<String>,
    pub operation_type: Option<String>,
    pub request_id: Option<String>,
    pub success: Option<bool>,
    pub since: Option<u64>,
    /// The newest `limit` matches.
    pub limit: Option<usize>,
}

impl IoFilter {
    /// `{operationId?, operationType?, requestId?, success?, since?, limit?}` as JS passes it.
    pub fn from_value(v: &Value) -> crate::error::Result<Self> {
        let empty = Map::new();
        let obj = match v {
            Value::Object(o) => o,
            Value::Null => &empty,
            other => return Err(crate::validate::invalid("filter", "an object", Some(other))),
        };
        let f = crate::validate::Fields::new(obj, "filter");
        Ok(IoFilter {
            operation_id: f.string("operationId")?.map(str::to_string),
            operation_type: f.string("operationType")?.map(str::to_string),
            request_id: f.string("requestId")?.map(str::to_string),
            success: f.bool("success")?,
            since: f.non_negative_int("since")?,
            limit: f.non_negative_int("limit")?.map(|n| n.min(usize::MAX as u64) as usize),
        })
    }

    fn matches(&self, e: &Value) -> bool {
        let field_is = |k: &str, want: &Option<String>| want.as_ref().is_none_or(|w| e.get(k).and_then(Value::as_str) == Some(w.as_str()));
        field_is("operationId", &self.operation_id)
            && field_is("operationType", &self.operation_type)
            && field_is("requestId", &self.request_id)
            && self.success.is_none_or(|s| e.get("success").and_then(Value::as_bool) == Some(s))
            && self.since.is_none_or(|t| e.get("timestamp").and_then(Value::as_u64).is_some_and(|ts| ts >= t))
    }
}

struct FileSink {
    directory: PathBuf,
    current: Option<(File, PathBuf)>,
    in_current: usize,
    written: VecDeque<PathBuf>,
    /// The last write error; file output stops after one (memory keeps working).
    error: Option<String>,
}

pub struct IoLog {
    config: IoConfig,
    ring: Mutex<VecDeque<Value>>,
    file: Option<Mutex<FileSink>>,
    seq: AtomicU64,
    redactor: Arc<Redactor>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn safe_file_stem(s: &str) -> String {
    let stem: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if stem.is_empty() {
        "pipeline".into()
    } else {
        stem
    }
}

fn open_private(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

impl IoLog {
    pub fn new(config: IoConfig, redactor: Arc<Redactor>) -> Self {
        let file = config.directory.clone().map(|directory| {
            Mutex::new(FileSink { directory, current: None, in_current: 0, written: VecDeque::new(), error: None })
        });
        IoLog { ring: Mutex::new(VecDeque::with_capacity(config.capacity.min(1024))), file, seq: AtomicU64::new(0), redactor, config }
    }

    pub fn config(&self) -> &IoConfig {
        &self.config
    }

    /// Stores an entry (an object): redacted, stamped with `seq` and `timestamp` when missing.
    pub fn record(&self, entry: Value) {
        let mut entry = match entry {
            Value::Object(o) => o,
            other => {
                let mut o = Map::new();
                o.insert("data".into(), other);
                o
            }
        };
        entry.insert("seq".into(), self.seq.fetch_add(1, Ordering::Relaxed).into());
        entry.entry("timestamp").or_insert_with(|| epoch_ms().into());
        let mut entry = Value::Object(entry);
        self.redactor.redact_in_place(&mut entry);
        if let Some(sink) = &self.file {
            self.append_to_file(&mut lock(sink), &entry);
        }
        if self.config.capacity == 0 {
            return;
        }
        let mut ring = lock(&self.ring);
        if ring.len() >= self.config.capacity {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    fn append_to_file(&self, sink: &mut FileSink, entry: &Value) {
        if sink.error.is_some() {
            return;
        }
        if let Err(e) = self.try_append(sink, entry) {
            sink.error = Some(format!("I/O log file output stopped: {e}"));
            sink.current = None;
        }
    }

    fn try_append(&self, sink: &mut FileSink, entry: &Value) -> std::io::Result<()> {
        if sink.current.is_none() || sink.in_current >= self.config.max_entries_per_file.max(1) {
            std::fs::create_dir_all(&sink.directory)?;
            let n = sink.written.len();
            let name = format!("{}-{}-{}.jsonl", safe_file_stem(&self.config.module_id), epoch_ms(), n);
            let path = sink.directory.join(name);
            let file = open_private(&path)?;
            sink.current = Some((file, path.clone()));
            sink.in_current = 0;
            sink.written.push_back(path);
            while sink.written.len() > self.config.max_files.max(1) {
                if let Some(old) = sink.written.pop_front() {
                    let _ = std::fs::remove_file(old);
                }
            }
        }
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if let Some((f, _)) = sink.current.as_mut() {
            // One write per line so that concurrent readers never see half a line.
            f.write_all(&line)?;
        }
        sink.in_current += 1;
        Ok(())
    }

    /// Matching entries, oldest first.
    pub fn entries(&self, filter: &IoFilter) -> Vec<Value> {
        let ring = lock(&self.ring);
        let mut out: Vec<Value> = ring.iter().filter(|e| filter.matches(e)).cloned().collect();
        if let Some(limit) = filter.limit {
            let skip = out.len().saturating_sub(limit);
            out.drain(..skip);
        }
        out
    }

    pub fn len(&self) -> usize {
        lock(&self.ring).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        lock(&self.ring).clear();
    }

    /// The files written so far that still exist (newest last).
    pub fn files(&self) -> Vec<PathBuf> {
        self.file.as_ref().map(|s| lock(s).written.iter().cloned().collect()).unwrap_or_default()
    }

    pub fn file_error(&self) -> Option<String> {
        self.file.as_ref().and_then(|s| lock(s).error.clone())
    }
}
