//! Transport and authentication towards upstreams. `OpenAICompatibleProvider` speaks the
//! OpenAI chat-completions protocol to any compatible endpoint over a shared reqwest pool.

mod client;
mod config;
mod http_error;
mod openai;
mod stream;

pub use config::{CallOptions, HttpVersion, ProviderConfig, Timeouts, TimeoutsOverride};
pub use http_error::{error_from_response, parse_retry_after};
pub use openai::{HealthReport, HealthStatus, OpenAICompatibleProvider};
pub use stream::{ChunkSender, ChunkStream, Route};
