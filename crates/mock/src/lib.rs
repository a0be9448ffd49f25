//! rcc-mock: a faithful stand-in for OpenAI-compatible LLM upstreams, with faults scripted per
//! request. Used by the cargo tests (as a library), and by jest, the demo and the benchmarks
//! (embedded in the addon, or as the `rcc-mock` binary).
//!
//! On one port it serves:
//! * the OpenAI-compatible / Qwen chat surface (`/v1`, `/compatible-mode/v1`): [`openai`];
//! * the Qwen OAuth device flow (`/api/v1/oauth2/...`): [`qwen_oauth`];
//! * iFlow's OAuth, user info and chat (`/iflow/...`): [`iflow`], [`iflow_chat`];
//! * the control endpoints (`/__mock/...`): [`control`].
//!
//! A chat request picks its behaviour with the `x-mock-scenario` header (or a model named
//! `mock:<scenario>`): comma-separated `key=value` items, see [`Scenario`]. Server-side
//! behaviour (OAuth scripts, token lifetimes, keys) is set through [`MockServer::qwen`],
//! [`MockServer::iflow`] or the `/__mock/...` endpoints.

mod blackhole;
pub mod control;
pub mod iflow;
pub mod iflow_chat;
pub mod openai;
mod plan;
pub mod qwen_oauth;
mod request;
mod scenario;
mod server;
mod state;
mod stream;

pub use control::{IflowControl, QwenControl};
pub use scenario::Scenario;
pub use server::{MockConfig, MockServer};
pub use state::{IflowStats, QwenStats, RecordedRequest, Stats, TokenPair, IFLOW_CLIENT_ID, IFLOW_DEFAULT_API_KEY, QWEN_CLIENT_ID};
