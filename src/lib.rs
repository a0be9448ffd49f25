//! The napi binding: thin `#[napi]` classes that convert between JS and `rcc_core` types.
//! No logic lives here that a core test could cover.

// The #[napi] exports are called from JS only, so a `cargo test` build sees them as unused.
#![cfg_attr(test, allow(dead_code))]

/// mimalloc instead of glibc malloc for everything Rust allocates: queued requests are many
/// small records, which glibc pads (16-byte headers, per-thread arenas) and fragments when
/// they are freed on another thread than the one that allocated them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod call;
mod error;
mod js_bridge;
mod mock;
mod provider;
mod routing;
mod scheduler;
mod settle;
mod stream;
mod switch;
mod tracker;
mod vendors;
