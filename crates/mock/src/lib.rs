//! rcc-mock: a faithful stand-in for OpenAI-compatible LLM upstreams, with faults scripted per
//! request. Used by the cargo tests (as a library), and by jest, the demo and the benchmarks
//! (embedded in the addon, or as the `rcc-mock` binary).
//!
//! A request picks its behaviour with the `x-mock-scenario` header (or a model named
//! `mock:<scenario>`): comma-separated `key=value` items, see [`Scenario`].

mod blackhole;
mod openai;
mod scenario;
mod server;
mod state;

pub use scenario::Scenario;
pub use server::{MockConfig, MockServer};
pub use state::{RecordedRequest, Stats};
