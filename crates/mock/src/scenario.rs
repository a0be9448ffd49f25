//! The fault script of one request.

use std::time::Duration;

/// What the mock should do with one request. Items (all optional):
///
/// | item | effect |
/// |---|---|
/// | `latency=MS` | wait before the response head |
/// | `status=CODE` | answer with that HTTP status and an OpenAI error envelope |
/// | `retry-after=S` / `retry-after-ms=MS` | add those headers (with `status`) |
/// | `error-code=TEXT` | the envelope's `error.code` |
/// | `reset` | reset the TCP connection instead of answering |
/// | `malformed` | non-stream: a body that is not JSON |
/// | `first-token-delay=MS` | stream: wait after the head, before the first chunk |
/// | `chunk-delay=MS` | stream: wait between chunks |
/// | `chunks=N` | stream: number of content chunks (default: one per word of the reply) |
/// | `stall-after=N` | stream: stop sending after N chunks, keep the connection open |
/// | `truncate-after=N` | stream: break the connection after N chunks |
/// | `malformed-after=N` | stream: send a chunk of broken JSON after N chunks |
/// | `error-after=N` | stream: send an `{"error":...}` event after N chunks |
/// | `no-done` | stream: finish without `data: [DONE]` |
/// | `tools` | answer with a tool call (fragmented when streaming) |
/// | `reasoning` | stream `reasoning_content` before the content |
/// | `json-for-stream` | answer a stream request with a whole JSON completion |
/// | `html` | answer 200 with an HTML page |
/// | `reply=WORDS` | the reply text (`_` stands for a space) |
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scenario {
    pub latency: Option<Duration>,
    pub status: Option<u16>,
    pub retry_after_secs: Option<String>,
    pub retry_after_ms: Option<String>,
    pub error_code: Option<String>,
    pub reset: bool,
    pub malformed: bool,
    pub first_token_delay: Option<Duration>,
    pub chunk_delay: Option<Duration>,
    pub chunks: Option<usize>,
    pub stall_after: Option<usize>,
    pub truncate_after: Option<usize>,
    pub malformed_after: Option<usize>,
    pub error_after: Option<usize>,
    pub no_done: bool,
    pub tools: bool,
    pub reasoning: bool,
    pub json_for_stream: bool,
    pub html: bool,
    pub reply: Option<String>,
}

impl Scenario {
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let mut s = Scenario::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            let num = |v: Option<&str>| -> Result<u64, String> {
                v.ok_or_else(|| format!("mock scenario item {key} needs a value"))?
                    .parse::<u64>()
                    .map_err(|_| format!("mock scenario item {key} needs a number, got {v:?}"))
            };
            let ms = |v| num(v).map(Duration::from_millis);
            match key {
                "latency" => s.latency = Some(ms(value)?),
                "status" => s.status = Some(u16::try_from(num(value)?).map_err(|_| "status out of range".to_string())?),
                "retry-after" => s.retry_after_secs = value.map(str::to_string),
                "retry-after-ms" => s.retry_after_ms = value.map(str::to_string),
                "error-code" => s.error_code = value.map(str::to_string),
                "reset" => s.reset = true,
                "malformed" => s.malformed = true,
                "first-token-delay" => s.first_token_delay = Some(ms(value)?),
                "chunk-delay" => s.chunk_delay = Some(ms(value)?),
                "chunks" => s.chunks = Some(num(value)? as usize),
                "stall-after" => s.stall_after = Some(num(value)? as usize),
                "truncate-after" => s.truncate_after = Some(num(value)? as usize),
                "malformed-after" => s.malformed_after = Some(num(value)? as usize),
                "error-after" => s.error_after = Some(num(value)? as usize),
                "no-done" => s.no_done = true,
                "tools" => s.tools = true,
                "reasoning" => s.reasoning = true,
                "json-for-stream" => s.json_for_stream = true,
                "html" => s.html = true,
                "reply" => s.reply = value.map(|v| v.replace('_', " ")),
                other => return Err(format!("unknown mock scenario item {other:?}")),
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_items_and_rejects_unknown_ones() {
        let s = Scenario::parse("status=429, retry-after=2,chunks=5,no-done,reply=hi_there").unwrap();
        assert_eq!(s.status, Some(429));
        assert_eq!(s.retry_after_secs.as_deref(), Some("2"));
        assert_eq!(s.chunks, Some(5));
        assert!(s.no_done);
        assert_eq!(s.reply.as_deref(), Some("hi there"));
        assert!(Scenario::parse("bogus").unwrap_err().contains("bogus"));
        assert!(Scenario::parse("latency=x").is_err());
        assert_eq!(Scenario::parse("").unwrap(), Scenario::default());
    }
}
