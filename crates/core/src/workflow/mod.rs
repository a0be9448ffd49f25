//! Stream/non-stream control and response assembly.

mod accumulate;
mod to_chunks;

pub use accumulate::ChunkAccumulator;
pub use to_chunks::response_to_chunks;
