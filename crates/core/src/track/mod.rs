//! Request tracking: per-request contexts and their stages, statistics, bounded retention of
//! finished requests, and I/O entries (a ring buffer, optionally mirrored to JSON-lines files),
//! with secrets redacted before anything is stored.

pub mod context;
pub mod io;
pub mod redact;
pub mod tracker;

pub use context::{RequestContext, Stage, StageStatus};
pub use io::{IoConfig, IoFilter, IoLog};
pub use redact::{is_secret_key, Redactor, REDACTED};
pub use tracker::{Tracker, TrackerConfig};

#[cfg(test)]
mod tests;
