//! The napi binding: thin `#[napi]` classes that convert between JS and `rcc_core` types.
//! No logic lives here that a core test could cover.

mod error;
mod mock;
mod provider;
mod stream;
