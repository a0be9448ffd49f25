//! The fault script of one request.

use std::time::Duration;

/// What the mock should do with one request. Items (all optional). Unless the table says
/// otherwise an item applies to every chat surface: `/v1`, `/compatible-mode/v1` (Qwen /
/// DashScope, [`crate::openai`]) and `/iflow/v1` ([`crate::iflow_chat`]).
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
/// | `cumulative` | stream: every content / reasoning delta repeats the whole text so far (§2.4 quirk 5) |
/// | `error-finish[=N]` | stream: a chunk with `finish_reason:"error_finish"` and throttling text in `delta.content`, after N chunks (default: in place of the normal finish chunk), then `[DONE]` (§2.4 quirk 6) |
/// | `duplicate-finish` | stream: the finish chunk is sent twice |
/// | `usage-on-finish` | stream: usage rides on the finish chunk instead of a separate `choices:[]` chunk (sent even without `include_usage`) |
/// | `quota` | Qwen: 429 `insufficient_quota` "Free allocated quota exceeded." (§2.6) |
/// | `quota-403` | Qwen: the same body with 403 |
/// | `rate-limit` | Qwen: 429 `rate_limit_exceeded` with `Retry-After` (`retry-after=S`, default 1) |
/// | `throttling` | Qwen: 429 `rate_limit_exceeded` "Requests throttling triggered." |
/// | `tpm-quota` | Qwen: DashScope's transient TPM throttle, 429 `insufficient_quota` "You exceeded your current quota…" |
/// | `thinking-required` | Qwen: 400 `invalid_parameter_error`, `enable_thinking` "restricted to true" |
/// | `biz=CODE` | iFlow: HTTP 200 business envelope `{"status":"CODE","msg":…,"body":null}` (434, 438, 439, 449, 40308 have real messages) even for streams (§3.5) |
/// | `network-error[=N]` | iFlow stream: a chunk with empty content and `finish_reason:"network_error"` after N chunks (default: in place of the normal finish chunk), then `[DONE]` |
/// | `odd-id` | iFlow: the degenerate completion id `chat-` |
/// | `bad-request` | iFlow: 400 `{"error":{"message":"Bad request!: {\"routify_response\":…}"}}` |
///
/// Server errors (5xx) are `status=500` / `status=503` etc. on any surface. The Qwen chat
/// endpoints also answer 400 `invalid_parameter_error` on their own, without a scenario, when
/// an assistant `tool_calls[].function.arguments` in the history is a string that is not JSON.
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
    pub cumulative: bool,
    /// `Some(usize::MAX)`: in place of the normal finish chunk.
    pub error_finish: Option<usize>,
    pub duplicate_finish: bool,
    pub usage_on_finish: bool,
    /// 429 or 403.
    pub quota: Option<u16>,
    pub rate_limit: bool,
    pub throttling: bool,
    pub tpm_quota: bool,
    pub thinking_required: bool,
    pub biz: Option<String>,
    /// `Some(usize::MAX)`: in place of the normal finish chunk.
    pub network_error: Option<usize>,
    pub odd_id: bool,
    pub bad_request: bool,
}

/// Where an optional-count item (`error-finish`, `network-error`) goes when it has no value.
pub(crate) const AT_FINISH: usize = usize::MAX;

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
                "cumulative" => s.cumulative = true,
                "error-finish" => s.error_finish = Some(if value.is_some() { num(value)? as usize } else { AT_FINISH }),
                "duplicate-finish" => s.duplicate_finish = true,
                "usage-on-finish" => s.usage_on_finish = true,
                "quota" => s.quota = Some(429),
                "quota-403" => s.quota = Some(403),
                "rate-limit" => s.rate_limit = true,
                "throttling" => s.throttling = true,
                "tpm-quota" => s.tpm_quota = true,
                "thinking-required" => s.thinking_required = true,
                "biz" => s.biz = Some(value.filter(|v| !v.is_empty()).ok_or("mock scenario item biz needs a code")?.to_string()),
                "network-error" => s.network_error = Some(if value.is_some() { num(value)? as usize } else { AT_FINISH }),
                "odd-id" => s.odd_id = true,
                "bad-request" => s.bad_request = true,
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

    #[test]
    fn parses_provider_items() {
        let s = Scenario::parse("quota-403,error-finish,network-error=2,biz=449,cumulative,odd-id").unwrap();
        assert_eq!(s.quota, Some(403));
        assert_eq!(s.error_finish, Some(AT_FINISH));
        assert_eq!(s.network_error, Some(2));
        assert_eq!(s.biz.as_deref(), Some("449"));
        assert!(s.cumulative && s.odd_id);
        assert!(Scenario::parse("biz").is_err());
        assert!(Scenario::parse("error-finish=x").is_err());
    }
}
