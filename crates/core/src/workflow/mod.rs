//! Stream/non-stream control and response assembly.

mod accumulate;
pub mod responses;
mod to_chunks;

pub use accumulate::{only_content_accumulates, ChunkAccumulator};
pub use responses::{ResponsesRebuilder, ResponsesRebuilderConfig};
pub use to_chunks::response_to_chunks;

// Tool-call assembly, stream ⇄ non-stream control (`StreamingControlWorkflow`).
mod streaming_control;
mod tool_calls;
#[cfg(test)]
mod tests;

pub use accumulate::{stream_to_response, AccumulatorWarning, WarningKind};
pub use streaming_control::{
    strip_markers, Conversion, Original, Outgoing, StreamCollector, StreamingControl, StreamingControlConfig, WorkflowMetrics,
    WorkflowStatus, ORIGINAL_STREAM, ORIGINAL_STREAM_OPTIONS,
};
pub use to_chunks::{response_to_stream, response_to_stream_with, ChunkingOptions};
pub use tool_calls::{repair_json, CompletedToolCall, StreamingToolCallParser, ToolCallMeta, ToolCallParseResult, ToolCallParserState};
