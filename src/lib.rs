//! The napi binding: thin `#[napi]` classes that convert between JS and `rcc_core` types.
//! No logic lives here that a core test could cover.

// The #[napi] exports are called from JS only, so a `cargo test` build sees them as unused.
#![cfg_attr(test, allow(dead_code))]

mod call;
mod error;
mod js_bridge;
mod mock;
mod provider;
mod routing;
mod scheduler;
mod stream;
mod switch;
mod tracker;
mod vendors;
