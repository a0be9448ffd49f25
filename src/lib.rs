//! The napi binding: thin `#[napi]` classes that convert between JS and `rcc_core` types.
//! No logic lives here that a core test could cover.

mod call;
mod error;
mod js_bridge;
mod mock;
mod provider;
mod scheduler;
mod stream;
