//! Scheduling: the wait queue, admission and deadlines, load balancing, circuit breakers,
//! retries with backoff, metrics and health.

pub mod backend;
pub mod backoff;
pub mod balancer;
pub mod breaker;
pub mod config;
pub mod events;
pub mod member;
pub mod metrics;
mod parked;
pub mod priority;
pub mod queue;
pub mod scheduler;
pub mod trace;

pub use backend::{Backend, BoxFuture, Served};
pub use balancer::Strategy;
pub use breaker::CircuitState;
pub use config::{BreakerConfig, RetryConfig, SchedulerConfig};
pub use events::{EventKind, EventSink, NoEvents};
pub use member::MemberOptions;
pub use parked::ChatOutcome;
pub use priority::Priority;
pub use scheduler::{Completed, CustomStrategy, Failure, RequestOptions, Scheduler};
pub use trace::TrackerHook;

#[cfg(test)]
mod tests;
