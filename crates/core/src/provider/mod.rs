//! Transport and authentication towards upstreams. `OpenAICompatibleProvider` speaks the
//! OpenAI chat-completions protocol to any compatible endpoint over a shared reqwest pool.

pub mod auth;
mod chunk_template;
mod client;
mod config;
mod fast_chunk;
mod http_error;
pub mod iflow;
mod openai;
pub mod qwen;
mod stream;
pub mod vendor;

pub use chunk_template::ContentTemplate;
pub use config::{CallOptions, HttpVersion, ProviderConfig, Timeouts, TimeoutsOverride};
pub use http_error::{error_from_response, parse_retry_after};
pub use openai::{HealthReport, HealthStatus, OpenAICompatibleProvider};
pub use stream::{ChunkSender, ChunkStream, ReaderGone, Route, SharedTap, StreamChunk, StreamTap};
