//! The answer to one chat request, whole or as stream events, in the shape DashScope
//! (providers-wire §2.4, §2.5) or iFlow (§3.5) sends it.

use serde_json::{json, Value};

use crate::request::{random_hex, uuid_like};
use crate::scenario::{Scenario, AT_FINISH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// DashScope / portal.qwen.ai (also the generic OpenAI-compatible mock).
    DashScope,
    /// apis.iflow.cn: no `system_fingerprint` or `logprobs`, `extend_fields`, odd tool ids.
    IFlow,
}

pub(crate) struct Plan {
    flavor: Flavor,
    id: String,
    model: String,
    created: u64,
    words: Vec<String>,
    tools: bool,
    reasoning: bool,
    cumulative: bool,
    duplicate_finish: bool,
    usage_on_finish: bool,
    error_finish: Option<usize>,
    network_error: Option<usize>,
    prompt_tokens: u64,
}

const REASONING: [&str; 3] = ["Let me", " think", " about that."];
/// DashScope's throttling text, as sent inside an `error_finish` chunk.
const THROTTLED: &str = "Requests throttling triggered.";

impl Plan {
    pub fn new(sc: &Scenario, messages: &[Value], model: String, flavor: Flavor) -> Plan {
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))
            .map(message_text)
            .unwrap_or_default();
        let reply = sc.reply.clone().unwrap_or_else(|| format!("Hello from the mock upstream! You said: {last_user}"));
        let mut words: Vec<String> = Vec::new();
        for (i, w) in reply.split(' ').enumerate() {
            words.push(if i == 0 { w.to_string() } else { format!(" {w}") });
        }
        if let Some(n) = sc.chunks {
            let base = words.clone();
            words = (0..n).map(|i| base[i % base.len()].clone()).collect();
        }
        let prompt_chars: usize = messages.iter().map(|m| message_text(m).chars().count()).sum();
        let id = match flavor {
            Flavor::DashScope => format!("chatcmpl-{}", uuid_like()),
            Flavor::IFlow if sc.odd_id => "chat-".to_string(),
            Flavor::IFlow => format!("chatcmpl-{}", random_hex(12)),
        };
        Plan {
            flavor,
            id,
            model,
            created: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            words,
            tools: sc.tools,
            reasoning: sc.reasoning,
            cumulative: sc.cumulative,
            duplicate_finish: sc.duplicate_finish,
            usage_on_finish: sc.usage_on_finish,
            error_finish: sc.error_finish,
            network_error: sc.network_error,
            prompt_tokens: (prompt_chars as u64 / 4).max(1),
        }
    }

    fn usage(&self) -> Value {
        let completion = self.words.len() as u64;
        let total = self.prompt_tokens + completion;
        match self.flavor {
            Flavor::DashScope => json!({"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": total, "prompt_tokens_details": {"cached_tokens": 0}}),
            Flavor::IFlow => json!({"prompt_tokens": self.prompt_tokens, "completion_tokens": completion, "total_tokens": total}),
        }
    }

    fn tool_call_id(&self) -> String {
        match self.flavor {
            // `call_` and 24 hex digits (§2.5).
            Flavor::DashScope => format!("call_{}", random_hex(12)),
            // iFlow's ids are not always `call_…`; the real capture shows `shell_command:170`.
            Flavor::IFlow => format!("get_weather:{}", fastrand::u32(1..1000)),
        }
    }

    pub fn completion(&self) -> Value {
        let mut message = json!({"role": "assistant", "content": self.words.concat()});
        let mut finish = "stop";
        if self.tools {
            message["content"] = json!("");
            message["tool_calls"] = json!([{"index": 0, "id": self.tool_call_id(), "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\": \"Hangzhou\"}"}}]);
            finish = "tool_calls";
        }
        if self.reasoning {
            message["reasoning_content"] = json!("Let me think about that.");
        }
        match self.flavor {
            Flavor::DashScope => json!({"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
                "usage": self.usage(), "system_fingerprint": null}),
            Flavor::IFlow => json!({"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "usage": self.usage(),
                "extend_fields": {"traceId": random_hex(15), "requestId": random_hex(16)},
                "choices": [{"index": 0, "finish_reason": finish, "message": message}]}),
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        match self.flavor {
            Flavor::DashScope => json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "system_fingerprint": null, "usage": null,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}),
            Flavor::IFlow => json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        }
    }

    /// The `data:` payloads of a stream, `[DONE]` excluded.
    pub fn stream_events(&self, include_usage: bool) -> Vec<String> {
        let mut out = vec![self.chunk(json!({"role": "assistant", "content": ""}), None)];
        if self.reasoning {
            let mut so_far = String::new();
            for part in REASONING {
                so_far.push_str(part);
                let text = if self.cumulative { so_far.as_str() } else { part };
                out.push(self.chunk(json!({"content": null, "reasoning_content": text}), None));
            }
        }
        let finish = if self.tools {
            let id = self.tool_call_id();
            out.push(self.chunk(
                json!({"content": null, "tool_calls": [{"index": 0, "id": id, "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"location\":"}}]}),
                None,
            ));
            // DashScope continuation fragments repeat an empty id.
            out.push(self.chunk(json!({"tool_calls": [{"index": 0, "id": "", "type": "function", "function": {"arguments": " \"Hangzhou\"}"}}]}), None));
            "tool_calls"
        } else {
            let mut so_far = String::new();
            for w in &self.words {
                so_far.push_str(w);
                let text = if self.cumulative { so_far.as_str() } else { w.as_str() };
                out.push(self.chunk(json!({"content": text}), None));
            }
            "stop"
        };
        // A stream that ends in an error finish stops there: no normal finish, no usage.
        let error_end = match (self.error_finish, self.network_error) {
            (Some(n), _) => Some((n, self.chunk(json!({"content": THROTTLED}), Some("error_finish")))),
            (None, Some(n)) => Some((n, self.chunk(json!({"content": ""}), Some("network_error")))),
            (None, None) => None,
        };
        if let Some((n, chunk)) = error_end {
            if n != AT_FINISH {
                out.truncate(n);
            }
            out.push(chunk);
            return out.into_iter().map(|c| c.to_string()).collect();
        }
        let mut fin = self.chunk(json!({}), Some(finish));
        if self.usage_on_finish {
            fin["usage"] = self.usage();
        }
        out.push(fin.clone());
        if self.duplicate_finish {
            out.push(fin);
        }
        if include_usage && !self.usage_on_finish {
            let mut u = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                               "choices": [], "usage": self.usage()});
            if self.flavor == Flavor::DashScope {
                u["system_fingerprint"] = Value::Null;
            }
            out.push(u);
        }
        out.into_iter().map(|c| c.to_string()).collect()
    }
}

fn message_text(m: &Value) -> String {
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(|t| t.as_str())).collect::<Vec<_>>().join(""),
        _ => String::new(),
    }
}
