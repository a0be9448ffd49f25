//! Scheduling: queue, admission, balancing, breakers, retry/backoff, deadlines, metrics.
//! (The scheduler itself arrives with its own issue; backoff is shared with providers.)

pub mod backoff;
