//! rcc-core: the engine behind the `rcc-pipeline` Node package. Pure Rust, no napi; the
//! binding crate at the repository root converts and forwards.

pub mod compat;
pub mod error;
pub mod llmswitch;
pub mod model;
pub mod provider;
pub mod route;
pub mod schedule;
pub mod sse;
pub mod time;
pub mod track;
mod validate;
pub mod workflow;

pub use error::{Error, Result, TimeoutPhase};
