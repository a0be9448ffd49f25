//! Vendor quirks: what Qwen (DashScope / portal.qwen.ai) and iFlow need beyond the OpenAI
//! protocol — headers, request fixups, response and error envelopes.

pub mod iflow;
pub mod qwen;
