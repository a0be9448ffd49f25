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

    /// One `chat.completion.chunk` as text: `delta` is its JSON, `usage` replaces the
    /// `"usage":null` (DashScope) or is appended (iFlow). Assembled as text, byte for byte what
    /// `serde_json` writes for the same tree (tested): building a `json!` tree per event cost
    /// the mock more CPU per chunk than the clients it serves in the benchmarks.
    fn chunk(&self, delta: &str, finish: Option<&str>, usage: Option<&Value>) -> String {
        let finish = finish.map_or_else(|| "null".to_string(), json_str);
        let usage = usage.map(Value::to_string);
        let mut out = String::with_capacity(160 + self.id.len() + self.model.len() + delta.len());
        out.push_str("{\"id\":");
        out.push_str(&json_str(&self.id));
        out.push_str(",\"object\":\"chat.completion.chunk\",\"created\":");
        out.push_str(&self.created.to_string());
        out.push_str(",\"model\":");
        out.push_str(&json_str(&self.model));
        match self.flavor {
            Flavor::DashScope => {
                out.push_str(",\"system_fingerprint\":null,\"usage\":");
                out.push_str(usage.as_deref().unwrap_or("null"));
                out.push_str(",\"choices\":[{\"index\":0,\"delta\":");
                out.push_str(delta);
                out.push_str(",\"logprobs\":null,\"finish_reason\":");
                out.push_str(&finish);
                out.push_str("}]}");
            }
            Flavor::IFlow => {
                out.push_str(",\"choices\":[{\"index\":0,\"delta\":");
                out.push_str(delta);
                out.push_str(",\"finish_reason\":");
                out.push_str(&finish);
                out.push_str("}]");
                if let Some(u) = &usage {
                    out.push_str(",\"usage\":");
                    out.push_str(u);
                }
                out.push('}');
            }
        }
        out
    }

    /// The `data:` payloads of a stream, `[DONE]` excluded.
    pub fn stream_events(&self, include_usage: bool) -> Vec<String> {
        let mut out = vec![self.chunk(r#"{"role":"assistant","content":""}"#, None, None)];
        if self.reasoning {
            let mut so_far = String::new();
            for part in REASONING {
                so_far.push_str(part);
                let text = if self.cumulative { so_far.as_str() } else { part };
                out.push(self.chunk(&format!(r#"{{"content":null,"reasoning_content":{}}}"#, json_str(text)), None, None));
            }
        }
        let finish = if self.tools {
            let id = self.tool_call_id();
            let first = json!({"content": null, "tool_calls": [{"index": 0, "id": id, "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\":"}}]});
            out.push(self.chunk(&first.to_string(), None, None));
            // DashScope continuation fragments repeat an empty id.
            let next = json!({"tool_calls": [{"index": 0, "id": "", "type": "function", "function": {"arguments": " \"Hangzhou\"}"}}]});
            out.push(self.chunk(&next.to_string(), None, None));
            "tool_calls"
        } else {
            let mut so_far = String::new();
            for w in &self.words {
                so_far.push_str(w);
                let text = if self.cumulative { so_far.as_str() } else { w.as_str() };
                out.push(self.chunk(&format!(r#"{{"content":{}}}"#, json_str(text)), None, None));
            }
            "stop"
        };
        // A stream that ends in an error finish stops there: no normal finish, no usage.
        let error_end = match (self.error_finish, self.network_error) {
            (Some(n), _) => Some((n, self.chunk(&format!(r#"{{"content":{}}}"#, json_str(THROTTLED)), Some("error_finish"), None))),
            (None, Some(n)) => Some((n, self.chunk(r#"{"content":""}"#, Some("network_error"), None))),
            (None, None) => None,
        };
        if let Some((n, chunk)) = error_end {
            if n != AT_FINISH {
                out.truncate(n);
            }
            out.push(chunk);
            return out;
        }
        let usage = self.usage_on_finish.then(|| self.usage());
        let fin = self.chunk("{}", Some(finish), usage.as_ref());
        if self.duplicate_finish {
            out.push(fin.clone());
        }
        out.push(fin);
        if include_usage && !self.usage_on_finish {
            let mut u = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                               "choices": [], "usage": self.usage()});
            if self.flavor == Flavor::DashScope {
                u["system_fingerprint"] = Value::Null;
            }
            out.push(u.to_string());
        }
        out
    }
}

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a str always serialises")
}

fn message_text(m: &Value) -> String {
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(|t| t.as_str())).collect::<Vec<_>>().join(""),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(flavor: Flavor, scenario: &str) -> Plan {
        let sc = Scenario::parse(scenario).unwrap();
        Plan::new(&sc, &[json!({"role": "user", "content": "a \"quoted\" ünïcode\nline"})], "qwen-\"plus\"".into(), flavor)
    }

    /// What `serde_json` writes for the chunk as a tree (the shape the events had as `json!`
    /// trees): the text assembly must give the same bytes.
    fn tree(p: &Plan, delta: Value, finish: Option<&str>, usage: Option<Value>) -> String {
        let mut v = match p.flavor {
            Flavor::DashScope => json!({"id": p.id, "object": "chat.completion.chunk", "created": p.created, "model": p.model,
                "system_fingerprint": null, "usage": null,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}),
            Flavor::IFlow => json!({"id": p.id, "object": "chat.completion.chunk", "created": p.created, "model": p.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        };
        if let Some(u) = usage {
            v["usage"] = u;
        }
        v.to_string()
    }

    #[test]
    fn chunk_text_is_what_serde_writes_for_the_tree() {
        for flavor in [Flavor::DashScope, Flavor::IFlow] {
            let p = plan(flavor, "");
            for (delta, finish, usage) in [
                (json!({"role": "assistant", "content": ""}), None, None),
                (json!({"content": "tab\t \"q\" \\ 你好 \u{1}"}), None, None),
                (json!({}), Some("stop"), Some(p.usage())),
                (json!({"content": null, "reasoning_content": "x"}), Some("error_finish"), None),
            ] {
                let text = p.chunk(&delta.to_string(), finish, usage.as_ref());
                assert_eq!(text, tree(&p, delta, finish, usage), "{flavor:?}");
            }
        }
    }

    #[test]
    fn stream_events_are_chunks_with_the_words_in_order() {
        for (flavor, scenario) in [(Flavor::DashScope, "chunks=7"), (Flavor::IFlow, "cumulative,reasoning"), (Flavor::DashScope, "tools,usage-on-finish")] {
            let p = plan(flavor, scenario);
            let parsed: Vec<Value> = p.stream_events(true).iter().map(|e| serde_json::from_str(e).unwrap()).collect();
            assert_eq!(parsed[0]["choices"][0]["delta"]["role"], "assistant");
            assert!(parsed.iter().all(|c| c["id"] == p.id.as_str() && c["model"] == p.model.as_str()));
            let last_choice = parsed.iter().rev().find(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty())).unwrap();
            assert!(last_choice["choices"][0]["finish_reason"].is_string(), "{scenario}");
            assert!(parsed.iter().any(|c| c["usage"].is_object()), "{scenario}");
        }
        let p = plan(Flavor::DashScope, "chunks=7");
        let events = p.stream_events(false);
        let text: String = events
            .iter()
            .map(|e| serde_json::from_str::<Value>(e).unwrap())
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(String::from))
            .collect();
        assert_eq!(text, p.words.concat());
    }
}
