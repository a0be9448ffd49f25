//! Wall-clock time as the wire formats want it (epoch milliseconds / seconds). Durations and
//! deadlines use monotonic clocks elsewhere; this is only for timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Seconds since the Unix epoch (`created` of OpenAI objects).
pub fn epoch_secs() -> u64 {
    epoch_ms() / 1000
}
