//! Server-sent events (WHATWG `text/event-stream`): an incremental decoder that accepts bytes
//! as they come off the socket, and a small encoder for the mock and for tests.

mod decoder;
mod encoder;

pub use decoder::{SseDecoder, SseError, SseEvent};
pub use encoder::encode_event;

#[cfg(test)]
mod tests;
