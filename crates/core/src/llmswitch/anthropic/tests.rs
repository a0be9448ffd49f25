use serde_json::{json, Value};

use super::*;

const REQUESTS: &str = include_str!("../../../tests/fixtures/anthropic/requests.json");
const RESPONSES: &str = include_str!("../../../tests/fixtures/anthropic/responses.json");
const STREAM: &str = include_str!("../../../tests/fixtures/anthropic/stream_tool_use.json");

fn cases(text: &str) -> Vec<(String, Value, Value)> {
    let v: Value = serde_json::from_str(text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["anthropic"].clone(), c["chat"].clone()))
        .collect()
}

/// `created` is "now" on the chat side: compare it apart.
fn without_created(mut v: Value) -> Value {
    let created = v["created"].as_u64().expect("created is a number");
    assert!(created > 1_700_000_000 || created == 0, "created {created} must be Unix seconds");
    v["created"] = json!(0);
    v
}

fn field_of(e: &Error) -> String {
    match e {
        Error::Validation { field: Some(f), .. } => f.clone(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[track_caller]
fn assert_field(r: Result<Value>, field: &str) {
    let e = r.expect_err("expected an error");
    assert_eq!(field_of(&e), field, "{e}");
}

// ---------------------------------------------------------------------------------------------
// Golden conversions and round trips.

#[test]
fn request_fixtures_convert_to_chat() {
    for (name, anthropic, chat) in cases(REQUESTS) {
        assert_eq!(request_to_chat(&anthropic).unwrap(), chat, "{name}");
    }
}

#[test]
fn request_fixtures_convert_from_chat() {
    for (name, anthropic, chat) in cases(REQUESTS) {
        assert_eq!(request_from_chat(&chat).unwrap(), anthropic, "{name}");
    }
}

#[test]
fn request_fixtures_round_trip_both_ways() {
    for (name, anthropic, chat) in cases(REQUESTS) {
        assert_eq!(request_from_chat(&request_to_chat(&anthropic).unwrap()).unwrap(), anthropic, "{name}: anthropic→chat→anthropic");
        assert_eq!(request_to_chat(&request_from_chat(&chat).unwrap()).unwrap(), chat, "{name}: chat→anthropic→chat");
    }
}

#[test]
fn response_fixtures_convert_both_ways_and_round_trip() {
    for (name, anthropic, chat) in cases(RESPONSES) {
        assert_eq!(without_created(response_to_chat(&anthropic).unwrap()), chat, "{name}: to chat");
        assert_eq!(response_from_chat(&chat).unwrap(), anthropic, "{name}: from chat");
        let back = response_from_chat(&response_to_chat(&anthropic).unwrap()).unwrap();
        assert_eq!(back, anthropic, "{name}: anthropic→chat→anthropic");
        let back = without_created(response_to_chat(&response_from_chat(&chat).unwrap()).unwrap());
        assert_eq!(back, chat, "{name}: chat→anthropic→chat");
    }
}

/// A qwen-code style chat request survives chat→anthropic→chat untouched.
#[test]
fn realistic_chat_request_round_trips_losslessly() {
    let chat = json!({
        "model": "qwen3-coder-plus",
        "messages": [
            {"role": "system", "content": "You are Qwen Code."},
            {"role": "user", "content": [
                {"type": "text", "text": "List the files, then look at this:"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_182fe5237c7046da9bd3a992", "type": "function", "function": {"name": "list_directory", "arguments": "{\"path\":\".\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"README.md\",\"limit\":20}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_182fe5237c7046da9bd3a992", "content": "Cargo.toml\nsrc/"},
            {"role": "tool", "tool_call_id": "call_2", "content": "ENOENT", "is_error": true},
            {"role": "assistant", "content": "The directory has a Cargo.toml and src/."},
            {"role": "user", "content": "Thanks, now stop."}
        ],
        "max_tokens": 32000,
        "temperature": 0.2,
        "stop": ["<END>", "</tool>"],
        "stream": true,
        "stream_options": {"include_usage": true},
        "tools": [{"type": "function", "function": {"name": "list_directory", "description": "List a directory",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}},
            {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "read_file"}},
        "parallel_tool_calls": false,
        "user": "session-7",
        "reasoning_effort": "high"
    });
    let anthropic = request_from_chat(&chat).unwrap();
    assert_eq!(anthropic["thinking"], json!({"type": "enabled", "budget_tokens": 24576}));
    assert_eq!(anthropic["tool_choice"], json!({"type": "tool", "name": "read_file", "disable_parallel_tool_use": true}));
    assert_eq!(anthropic["messages"][2]["content"][1], json!({"type": "tool_result", "tool_use_id": "call_2", "content": "ENOENT", "is_error": true}));
    assert_eq!(request_to_chat(&anthropic).unwrap(), chat);
}

/// What chat→anthropic→chat normalises because Anthropic cannot carry it (see the module doc).
#[test]
fn chat_round_trip_normalises_what_anthropic_cannot_carry() {
    let chat = json!({
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "only one text part"}]},
            {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "", "reasoning_content": "unsigned thoughts", "name": "bot"},
            {"role": "user", "content": "go", "name": "alice"}
        ],
        "stop": "END",
        "stream": true,
        "n": 2,
        "seed": 7,
        "metadata": {"sessionId": "s1"},
        "reasoning_effort": "minimal",
        "tools": [{"type": "function", "function": {"name": "noop", "strict": true}}]
    });
    let anthropic = request_from_chat(&chat).unwrap();
    assert_eq!(
        anthropic,
        json!({
            "system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "messages": [
                {"role": "user", "content": "only one text part"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "go"}
            ],
            "max_tokens": DEFAULT_MAX_TOKENS,
            "stop_sequences": ["END"],
            "stream": true,
            "tools": [{"name": "noop", "input_schema": {"type": "object", "properties": {}}}],
            "thinking": {"type": "enabled", "budget_tokens": 1024}
        })
    );
    assert_eq!(
        request_to_chat(&anthropic).unwrap(),
        json!({
            "messages": [
                {"role": "system", "content": "a"},
                {"role": "system", "content": "b"},
                {"role": "user", "content": "only one text part"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "go"}
            ],
            "max_tokens": DEFAULT_MAX_TOKENS,
            "stop": ["END"],
            "stream": true,
            "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}}}],
            "reasoning_effort": "low"
        })
    );
}

/// What anthropic→chat→anthropic normalises.
#[test]
fn anthropic_round_trip_normalises_what_chat_cannot_carry() {
    let anthropic = json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 100000,
        "thinking": {"type": "enabled", "budget_tokens": 50000},
        "service_tier": "auto",
        "metadata": {"user_id": "u1"},
        "tools": [{"type": "custom", "name": "t", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "no signature"},
                {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}},
                {"type": "text", "text": "text after the call"}
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "ok"}]}]}
        ]
    });
    let back = request_from_chat(&request_to_chat(&anthropic).unwrap()).unwrap();
    assert_eq!(
        back,
        json!({
            "model": "claude-haiku-4-5",
            "max_tokens": 100000,
            "thinking": {"type": "enabled", "budget_tokens": 24576},
            "metadata": {"user_id": "u1"},
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "text after the call"},
                    {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}
                ]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]}
            ]
        })
    );
}

#[test]
fn tool_choice_and_parallel_calls_map_both_ways() {
    let base = |tc: Value| json!({"model": "m", "max_tokens": 10, "messages": [], "tool_choice": tc});
    for (anthropic, chat_choice, parallel) in [
        (json!({"type": "auto"}), json!("auto"), None),
        (json!({"type": "any"}), json!("required"), None),
        (json!({"type": "none"}), json!("none"), None),
        (json!({"type": "tool", "name": "get_weather"}), json!({"type": "function", "function": {"name": "get_weather"}}), None),
        (json!({"type": "any", "disable_parallel_tool_use": true}), json!("required"), Some(false)),
        (json!({"type": "tool", "name": "x", "disable_parallel_tool_use": false}), json!({"type": "function", "function": {"name": "x"}}), Some(true)),
    ] {
        let chat = request_to_chat(&base(anthropic.clone())).unwrap();
        assert_eq!(chat["tool_choice"], chat_choice);
        assert_eq!(chat.get("parallel_tool_calls").cloned(), parallel.map(Value::from));
        assert_eq!(request_from_chat(&chat).unwrap()["tool_choice"], anthropic);
    }
    // parallel_tool_calls: false without a tool_choice still reaches Anthropic.
    let a = request_from_chat(&json!({"messages": [], "parallel_tool_calls": false})).unwrap();
    assert_eq!(a["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));
    // true without a choice is the default and is dropped.
    assert!(request_from_chat(&json!({"messages": [], "parallel_tool_calls": true})).unwrap().get("tool_choice").is_none());
}

#[test]
fn thinking_budgets_and_max_tokens_line_up() {
    let effort = |b: u64| request_to_chat(&json!({"messages": [], "thinking": {"type": "enabled", "budget_tokens": b}})).unwrap()["reasoning_effort"].clone();
    assert_eq!(effort(1024), "low");
    assert_eq!(effort(4095), "low");
    assert_eq!(effort(4096), "medium");
    assert_eq!(effort(16384), "high");
    let no_effort = request_to_chat(&json!({"messages": [], "thinking": {"type": "disabled"}})).unwrap();
    assert!(no_effort.get("reasoning_effort").is_none());

    let from = |extra: Value| {
        let mut c = json!({"messages": [{"role": "user", "content": "x"}]});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        request_from_chat(&c).unwrap()
    };
    // Defaulted max_tokens grows past the budget.
    let a = from(json!({"reasoning_effort": "high"}));
    assert_eq!(a["max_tokens"], 24576 + DEFAULT_MAX_TOKENS);
    assert_eq!(a["thinking"]["budget_tokens"], 24576);
    // An explicit max_tokens caps the budget.
    let a = from(json!({"reasoning_effort": "high", "max_completion_tokens": 5000}));
    assert_eq!(a["max_tokens"], 5000);
    assert_eq!(a["thinking"]["budget_tokens"], 4999);
    // Too small for Anthropic's 1024 minimum: no thinking.
    let a = from(json!({"reasoning_effort": "low", "max_tokens": 800}));
    assert_eq!(a["thinking"], json!({"type": "disabled"}));
    assert_eq!(from(json!({"reasoning_effort": "none"}))["thinking"], json!({"type": "disabled"}));
    assert_eq!(from(json!({}))["max_tokens"], DEFAULT_MAX_TOKENS);
}

#[test]
fn tool_ids_are_sanitised_consistently_for_anthropic() {
    let chat = json!({"messages": [
        {"role": "assistant", "tool_calls": [{"id": "functions.get_weather:0", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "sunny"}
    ]});
    let a = request_from_chat(&chat).unwrap();
    assert_eq!(a["messages"][0]["content"][0], json!({"type": "tool_use", "id": "functions_get_weather_0", "name": "get_weather", "input": {}}));
    assert_eq!(a["messages"][1]["content"][0]["tool_use_id"], "functions_get_weather_0");
}

#[test]
fn mid_conversation_system_and_tool_turn_grouping() {
    let chat = json!({"messages": [
        {"role": "user", "content": "a"},
        {"role": "developer", "content": "late instruction"},
        {"role": "assistant", "content": "calling", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]},
        {"role": "user", "content": "separate turn"}
    ]});
    let a = request_from_chat(&chat).unwrap();
    assert_eq!(a["system"], "late instruction");
    assert_eq!(
        a["messages"],
        json!([
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": [{"type": "text", "text": "calling"}, {"type": "tool_use", "id": "c1", "name": "f", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "c1"},
                {"type": "text", "text": "first"},
                {"type": "text", "text": "second"}
            ]},
            {"role": "user", "content": "separate turn"}
        ])
    );
    // And back: results first, then the text as a user message, the next turn apart.
    let back = request_to_chat(&a).unwrap();
    assert_eq!(back["messages"][3], json!({"role": "tool", "tool_call_id": "c1", "content": ""}));
    assert_eq!(back["messages"][4], json!({"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]}));
    assert_eq!(back["messages"][5], json!({"role": "user", "content": "separate turn"}));
}

#[test]
fn stop_reasons_map_both_ways() {
    for (stop_reason, finish, back) in [
        ("end_turn", "stop", "end_turn"),
        ("max_tokens", "length", "max_tokens"),
        ("tool_use", "tool_calls", "tool_use"),
        ("refusal", "content_filter", "refusal"),
        ("pause_turn", "stop", "end_turn"),
        ("model_context_window_exceeded", "length", "max_tokens"),
    ] {
        let r = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [{"type": "text", "text": "x"}],
            "stop_reason": stop_reason, "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 1}});
        let chat = response_to_chat(&r).unwrap();
        assert_eq!(chat["choices"][0]["finish_reason"], finish, "{stop_reason}");
        assert_eq!(response_from_chat(&chat).unwrap()["stop_reason"], back, "{stop_reason}");
    }
    // Upstreams that say "stop" while calling tools still get tool_use; no finish reason at all
    // is end_turn; unknown chat reasons are end_turn.
    let chat = |finish: Value, calls: bool| {
        let mut m = json!({"role": "assistant", "content": "x"});
        if calls {
            m["tool_calls"] = json!([{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]);
        }
        json!({"id": "c", "model": "m", "choices": [{"index": 0, "message": m, "finish_reason": finish}]})
    };
    assert_eq!(response_from_chat(&chat(json!("stop"), true)).unwrap()["stop_reason"], "tool_use");
    assert_eq!(response_from_chat(&chat(json!(null), false)).unwrap()["stop_reason"], "end_turn");
    assert_eq!(response_from_chat(&chat(json!("network_error"), false)).unwrap()["stop_reason"], "end_turn");
    let refused = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"}]});
    let a = response_from_chat(&refused).unwrap();
    assert_eq!((a["content"].clone(), a["stop_reason"].clone()), (json!([{"type": "text", "text": "I can't help with that."}]), json!("refusal")));
    let a = response_from_chat(&chat(json!("stop"), false)).unwrap();
    assert_eq!(a["usage"], json!({"input_tokens": 0, "output_tokens": 0}), "a missing usage is zero");
    assert!(a["id"] == "c");
}

#[test]
fn response_ids_and_reasoning_fallbacks() {
    let chat = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        "reasoning": "openrouter style", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]}, "finish_reason": "tool_calls"}]});
    let a = response_from_chat(&chat).unwrap();
    assert!(a["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(a["content"][0], json!({"type": "thinking", "thinking": "openrouter style", "signature": ""}));
    assert_eq!(a["content"][1], json!({"type": "text", "text": "a"}));
    assert_eq!(a["content"][2], json!({"type": "text", "text": "b"}));
    assert!(a["content"][3]["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(a["content"][3]["input"], json!({"x": 1}));
    let c = response_to_chat(&json!({"type": "message", "content": [{"type": "text", "text": "The grass is "}, {"type": "text", "text": "green", "citations": []}]})).unwrap();
    assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(c["choices"][0]["message"]["content"], "The grass is green", "text blocks of a response join");
    assert_eq!(c["choices"][0]["finish_reason"], Value::Null);
}

#[test]
fn error_bodies_carry_the_anthropic_class() {
    let provider = |status: Option<u16>, code: Option<&str>| Error::Provider {
        message: "upstream said no".into(),
        status,
        body: None,
        provider_code: code.map(String::from),
        retry_after_ms: None,
    };
    let cases: Vec<(Error, &str)> = vec![
        (Error::validation("messages", "Messages are required"), "invalid_request_error"),
        (Error::Authentication { message: "bad key".into(), status: Some(401), body: None, provider_code: None }, "authentication_error"),
        (Error::Authentication { message: "forbidden".into(), status: Some(403), body: None, provider_code: None }, "permission_error"),
        (Error::RateLimit { message: "slow".into(), status: Some(429), retry_after_ms: Some(10), body: None, provider_code: None }, "rate_limit_error"),
        (provider(Some(500), None), "api_error"),
        (provider(Some(503), None), "api_error"),
        (provider(Some(529), None), "overloaded_error"),
        (provider(None, Some("overloaded_error")), "overloaded_error"),
        (provider(Some(404), None), "not_found_error"),
        (provider(Some(400), None), "invalid_request_error"),
        (Error::Connection { message: "reset".into() }, "api_error"),
        (Error::timeout(crate::error::TimeoutPhase::FirstToken, 100), "api_error"),
        (Error::QueueFull { message: "full".into(), max_size: 1 }, "overloaded_error"),
        (Error::Internal { message: "bug".into() }, "api_error"),
    ];
    for (e, kind) in cases {
        let body = error_body(&e);
        assert_eq!(body, json!({"type": "error", "error": {"type": kind, "message": e.to_string()}}), "{e:?}");
    }
    // And back from Anthropic bodies (HTTP or a stream `error` event).
    let back = |kind: &str| error_from_body(&json!({"type": "error", "error": {"type": kind, "message": "m"}}), None);
    assert!(matches!(back("rate_limit_error"), Error::RateLimit { status: Some(429), .. }));
    assert!(matches!(back("permission_error"), Error::Authentication { status: Some(403), .. }));
    let overloaded = back("overloaded_error");
    assert!(matches!(overloaded, Error::Provider { status: Some(529), .. }) && overloaded.retryable());
    assert!(!back("invalid_request_error").retryable());
    assert!(matches!(response_to_chat(&json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})),
        Err(Error::Authentication { status: Some(401), .. })));
}

// ---------------------------------------------------------------------------------------------
// Streams.

/// Rebuilds the message a chunk stream describes (the way chat clients accumulate it).
fn rebuild(chunks: &[Value]) -> Value {
    let mut content = String::new();
    let mut reasoning = String::new();
    let mut signature = String::new();
    let mut calls: Vec<(u64, String, String, String)> = Vec::new();
    let mut finish = Value::Null;
    let mut usage = Value::Null;
    for c in chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        if !c["usage"].is_null() {
            usage = c["usage"].clone();
        }
        for ch in c["choices"].as_array().unwrap() {
            let d = &ch["delta"];
            content.push_str(d["content"].as_str().unwrap_or(""));
            reasoning.push_str(d["reasoning_content"].as_str().unwrap_or(""));
            signature.push_str(d["reasoning_signature"].as_str().unwrap_or(""));
            for tc in d["tool_calls"].as_array().into_iter().flatten() {
                let i = tc["index"].as_u64().unwrap();
                let args = tc["function"]["arguments"].as_str().unwrap_or("");
                match calls.iter_mut().find(|c| c.0 == i) {
                    Some(c) => c.3.push_str(args),
                    None => calls.push((
                        i,
                        tc["id"].as_str().unwrap().to_string(),
                        tc["function"]["name"].as_str().unwrap().to_string(),
                        args.to_string(),
                    )),
                }
            }
            if !ch["finish_reason"].is_null() {
                finish = ch["finish_reason"].clone();
            }
        }
    }
    calls.sort_by_key(|c| c.0);
    json!({
        "content": content,
        "reasoning": reasoning,
        "signature": signature,
        "tool_calls": calls.iter().map(|(_, id, name, args)| json!([id, name, args])).collect::<Vec<_>>(),
        "finish_reason": finish,
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
    })
}

fn decode_all(events: &[Value]) -> Vec<Value> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for e in events {
        out.extend(d.push(e).unwrap());
    }
    out.extend(d.finish().unwrap());
    out
}

fn encode_all(chunks: &[Value]) -> Vec<Value> {
    let mut enc = Encoder::new();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(enc.push(c).unwrap());
    }
    out.extend(enc.finish().unwrap());
    out
}

/// The event grammar of the real API: message_start, blocks opened one at a time with
/// consecutive indices, deltas that fit their block, message_delta and message_stop last.
#[track_caller]
fn assert_well_formed(events: &[Value]) {
    assert_eq!(events.first().map(|e| e["type"].clone()), Some(json!("message_start")), "{events:#?}");
    let n = events.len();
    assert_eq!(events[n - 2]["type"], "message_delta");
    assert_eq!(events[n - 1]["type"], "message_stop");
    let mut open: Option<(u64, String)> = None;
    let mut next = 0;
    for e in &events[1..n - 2] {
        match e["type"].as_str().unwrap() {
            "content_block_start" => {
                assert!(open.is_none(), "block opened while another is open: {e}");
                assert_eq!(e["index"], next, "indices are consecutive: {e}");
                open = Some((next, e["content_block"]["type"].as_str().unwrap().to_string()));
                next += 1;
            }
            "content_block_delta" => {
                let (i, kind) = open.clone().expect("delta outside a block");
                assert_eq!(e["index"], i);
                let ok = matches!(
                    (kind.as_str(), e["delta"]["type"].as_str().unwrap()),
                    ("text", "text_delta") | ("tool_use", "input_json_delta") | ("thinking", "thinking_delta" | "signature_delta")
                );
                assert!(ok, "{kind} block got {e}");
            }
            "content_block_stop" => {
                let (i, _) = open.take().expect("stop without a block");
                assert_eq!(e["index"], i);
            }
            other => panic!("unexpected {other} in the middle of a stream"),
        }
    }
    assert!(open.is_none(), "a block is still open at message_delta");
}

#[test]
fn stream_fixture_decodes_to_chunks_and_reencodes_to_the_same_events() {
    let events: Vec<Value> = serde_json::from_str(STREAM).unwrap();
    let chunks = decode_all(&events);
    // Shapes of a few chunks.
    assert_eq!(chunks[0]["id"], "msg_014p7gG3wDgGV9EUtLvnow3U");
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    assert_eq!(chunks[0]["usage"], json!({"prompt_tokens": 2272, "completion_tokens": 2, "total_tokens": 2274,
        "prompt_tokens_details": {"cached_tokens": 1800, "cache_creation_tokens": 0}}));
    let first_call = chunks.iter().find(|c| !c["choices"][0]["delta"]["tool_calls"].is_null()).unwrap();
    assert_eq!(first_call["choices"][0]["delta"]["tool_calls"], json!([{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "type": "function", "function": {"name": "get_weather", "arguments": ""}}]));
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 89);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"], json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]));

    let msg = rebuild(&chunks);
    assert_eq!(msg["reasoning"], "The user asks about SF weather — 天气, and the time.");
    assert_eq!(msg["signature"], "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds");
    assert_eq!(msg["content"], "Let me check both. 😀");
    assert_eq!(msg["finish_reason"], "tool_calls");
    assert_eq!(msg["prompt_tokens"], 2272);
    let calls = msg["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    let args: Value = serde_json::from_str(calls[1][2].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"tz": "America/Los_Angeles", "note": "café \"quoted\""}));

    // Re-encoding gives the original events back, pings aside.
    let reencoded = encode_all(&chunks);
    let expected: Vec<Value> = events.into_iter().filter(|e| e["type"] != "ping").collect();
    assert_eq!(reencoded, expected);
    assert_well_formed(&reencoded);
}

#[test]
fn redacted_thinking_and_stop_sequences_survive_a_stream_round_trip() {
    let events = vec![
        json!({"type": "message_start", "message": {"id": "msg_r", "type": "message", "role": "assistant", "model": "claude-opus-4-1",
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "redacted_thinking", "data": "EmwKAhgB"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "thinking_delta", "thinking": "a"}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "signature_delta", "signature": "s1"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "thinking_delta", "thinking": "b"}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "signature_delta", "signature": "s2"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "content_block_start", "index": 3, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "1, 2, 3"}}),
        json!({"type": "content_block_stop", "index": 3}),
        json!({"type": "message_delta", "delta": {"stop_reason": "stop_sequence", "stop_sequence": ", 4"}, "usage": {"output_tokens": 7}}),
        json!({"type": "message_stop"}),
    ];
    let chunks = decode_all(&events);
    assert_eq!(chunks[1]["choices"][0]["delta"], json!({"redacted_thinking": "EmwKAhgB"}));
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["stop_sequence"], ", 4");
    assert_eq!(encode_all(&chunks), events);
}

/// A chat stream as OpenAI-compatible upstreams send it: interleaved tool-call indices, `id: ""`
/// continuations, the finish reason and the usage in chunks of their own.
#[test]
fn encoder_handles_interleaved_tool_calls_continuations_and_late_usage() {
    let chunk = |choices: Value, usage: Value| {
        json!({"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1758691199, "model": "qwen3-coder-plus", "choices": choices, "usage": usage})
    };
    let delta = |d: Value| chunk(json!([{"index": 0, "delta": d, "finish_reason": null}]), Value::Null);
    let chunks = vec![
        delta(json!({"role": "assistant", "content": ""})),
        delta(json!({"content": null, "reasoning_content": "Need two lookups."})),
        delta(json!({"content": "Looking up."})),
        delta(json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":"}}]})),
        delta(json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}]})),
        delta(json!({"tool_calls": [{"index": 0, "id": "", "type": "function", "function": {"arguments": " \"Paris\"}"}}]})),
        delta(json!({"tool_calls": [{"index": 1, "id": "", "function": {"arguments": "{\"tz\":\"CET\"}"}}]})),
        chunk(json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]), Value::Null),
        chunk(json!([]), json!({"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160, "prompt_tokens_details": {"cached_tokens": 100}})),
    ];
    let events = encode_all(&chunks);
    let expected = vec![
        json!({"type": "message_start", "message": {"id": "chatcmpl-abc", "type": "message", "role": "assistant", "model": "qwen3-coder-plus",
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Need two lookups."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Looking up."}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": " \"Paris\"}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}}}),
        json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{\"tz\":\"CET\"}"}}),
        json!({"type": "content_block_stop", "index": 3}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"input_tokens": 20, "cache_read_input_tokens": 100, "output_tokens": 40}}),
        json!({"type": "message_stop"}),
    ];
    assert_eq!(events, expected);

    // Usage known from the start, a stop sequence, content and finish in one chunk, no [DONE]
    // usage chunk: message_delta reports what it has.
    let chunks = vec![
        chunk(json!([{"index": 0, "delta": {"role": "assistant", "content": "1, 2"}, "finish_reason": null}]),
            json!({"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13})),
        chunk(json!([{"index": 0, "delta": {"content": ", 3"}, "finish_reason": "stop", "stop_sequence": ", 4"}]),
            json!({"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21})),
    ];
    let events = encode_all(&chunks);
    assert_eq!(events[0]["message"]["usage"], json!({"input_tokens": 12, "output_tokens": 1}));
    assert_eq!(events[events.len() - 2], json!({"type": "message_delta", "delta": {"stop_reason": "stop_sequence", "stop_sequence": ", 4"}, "usage": {"output_tokens": 9}}));
    assert_well_formed(&events);
}

#[test]
fn encoder_edge_cases() {
    // Nothing pushed: nothing to close.
    assert!(Encoder::new().finish().unwrap().is_empty());
    // No finish reason: tool_use when a tool was called, else end_turn.
    let c = |d: Value| json!({"id": "x", "model": "m", "choices": [{"index": 0, "delta": d}]});
    let events = encode_all(&[c(json!({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}]}))]);
    assert_eq!(events[events.len() - 2]["delta"]["stop_reason"], "tool_use");
    assert_well_formed(&events);
    // "stop" with tool calls is tool_use too; tool calls without an index use ids.
    let events = encode_all(&[
        c(json!({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{\"x\""}}]})),
        c(json!({"tool_calls": [{"function": {"arguments": ":1}"}}]})),
        c(json!({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "{}"}}]})),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ]);
    assert_well_formed(&events);
    let parts: Vec<&str> = events.iter().filter_map(|e| e["delta"]["partial_json"].as_str()).collect();
    assert_eq!(parts, ["{\"x\"", ":1}", "{}"]);
    assert_eq!(events[events.len() - 2]["delta"]["stop_reason"], "tool_use");
    // An OpenAI refusal streams as text and ends as a refusal.
    let events = encode_all(&[c(json!({"content": null, "refusal": "I can't help with that."})), json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})]);
    assert_eq!(events[2]["delta"], json!({"type": "text_delta", "text": "I can't help with that."}));
    assert_eq!(events[events.len() - 2]["delta"]["stop_reason"], "refusal");
    // Choices other than 0 are ignored.
    let events = encode_all(&[json!({"choices": [{"index": 1, "delta": {"content": "other"}}, {"index": 0, "delta": {"content": "mine"}}]})]);
    let texts: Vec<&str> = events.iter().filter_map(|e| e["delta"]["text"].as_str()).collect();
    assert_eq!(texts, ["mine"]);
    // An error chunk becomes an error event.
    let mut enc = Encoder::new();
    let ev = enc.push(&json!({"error": {"message": "quota exceeded", "type": "insufficient_quota"}})).unwrap();
    assert_eq!(ev, vec![json!({"type": "error", "error": {"type": "api_error", "message": "quota exceeded"}})]);
    // A tool call that goes on after its block had to close is refused, not corrupted.
    let mut enc = Encoder::new();
    enc.push(&c(json!({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{"}}]}))).unwrap();
    enc.push(&c(json!({"content": "interruption"}))).unwrap();
    let e = enc.push(&c(json!({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}))).unwrap_err();
    assert_eq!(field_of(&e), "choices[0].delta.tool_calls[0].index");
}

/// A chat stream for `msg`, with every string cut at `cuts` (char offsets) and, when `rng` is
/// given, the fragments of the two tool calls shuffled into each other and some continuations
/// carrying `id: ""`.
fn chat_stream(parts: &[&str; 4], cuts: &[Vec<usize>; 4], rng: Option<&mut fastrand::Rng>) -> Vec<Value> {
    fn split(s: &str, cuts: &[usize]) -> Vec<String> {
        let chars: Vec<char> = s.chars().collect();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| (*c).min(chars.len())).collect();
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut from = 0;
        for c in cuts {
            out.push(chars[from..c].iter().collect());
            from = c;
        }
        out.push(chars[from..].iter().collect());
        out
    }
    let chunk = |delta: Value| json!({"id": "chatcmpl-prop", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
    let mut out = vec![chunk(json!({"role": "assistant", "content": ""}))];
    for r in split(parts[0], &cuts[0]) {
        out.push(chunk(json!({"reasoning_content": r})));
    }
    for t in split(parts[1], &cuts[1]) {
        out.push(chunk(json!({"content": t})));
    }
    let mut tool_chunks: Vec<Vec<Value>> = Vec::new();
    for (k, (id, name)) in [("call_1", "get_weather"), ("call_2", "search")].into_iter().enumerate() {
        let frags = split(parts[2 + k], &cuts[2 + k]);
        let mut list = Vec::new();
        for (j, f) in frags.into_iter().enumerate() {
            let tc = if j == 0 {
                json!({"index": k, "id": id, "type": "function", "function": {"name": name, "arguments": f}})
            } else if j % 2 == 0 {
                json!({"index": k, "id": "", "type": "function", "function": {"arguments": f}})
            } else {
                json!({"index": k, "function": {"arguments": f}})
            };
            list.push(chunk(json!({"tool_calls": [tc]})));
        }
        tool_chunks.push(list);
    }
    match rng {
        None => out.extend(tool_chunks.into_iter().flatten()),
        Some(rng) => {
            // The first call starts first; after that, fragments of both interleave.
            let mut a = std::collections::VecDeque::from(std::mem::take(&mut tool_chunks[0]));
            let mut b = std::collections::VecDeque::from(std::mem::take(&mut tool_chunks[1]));
            out.push(a.pop_front().unwrap());
            while !a.is_empty() || !b.is_empty() {
                let take_a = !a.is_empty() && (b.is_empty() || rng.bool());
                out.push(if take_a { a.pop_front() } else { b.pop_front() }.unwrap());
            }
        }
    }
    out.push(json!({"id": "chatcmpl-prop", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}));
    out.push(json!({"id": "chatcmpl-prop", "model": "m", "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 30, "total_tokens": 80}}));
    out
}

const PROPERTY_PARTS: [&str; 4] = [
    "Think: 東京 vs \"quotes\" \\ done",
    "Here you go — 😀 two calls.",
    "{\"city\": \"Tōkyō\", \"days\": [1, 2, 3]}",
    "{\"q\": \"a\\\"b\\\\c\\u00e9\", \"n\": 5}",
];

fn expected_message() -> Value {
    json!({
        "content": PROPERTY_PARTS[1],
        "reasoning": PROPERTY_PARTS[0],
        "signature": "",
        "tool_calls": [["call_1", "get_weather", PROPERTY_PARTS[2]], ["call_2", "search", PROPERTY_PARTS[3]]],
        "finish_reason": "tool_calls",
        "prompt_tokens": 50,
        "completion_tokens": 30,
    })
}

#[test]
fn rechunking_at_every_split_point_rebuilds_the_same_message() {
    let expected = expected_message();
    for which in 0..4 {
        for cut in 0..=PROPERTY_PARTS[which].chars().count() {
            let mut cuts: [Vec<usize>; 4] = Default::default();
            cuts[which] = vec![cut];
            let chunks = chat_stream(&PROPERTY_PARTS, &cuts, None);
            let events = encode_all(&chunks);
            assert_well_formed(&events);
            assert_eq!(rebuild(&decode_all(&events)), expected, "string {which} cut at {cut}");
        }
    }
}

#[test]
fn rechunking_at_random_points_with_interleaving_rebuilds_the_same_message() {
    let expected = expected_message();
    let mut rng = fastrand::Rng::with_seed(0x5eed_a17c);
    for run in 0..200 {
        let cuts: [Vec<usize>; 4] = std::array::from_fn(|k| {
            let len = PROPERTY_PARTS[k].chars().count();
            (0..rng.usize(0..8)).map(|_| rng.usize(0..=len)).collect()
        });
        let chunks = chat_stream(&PROPERTY_PARTS, &cuts, Some(&mut rng));
        let events = encode_all(&chunks);
        assert_well_formed(&events);
        let decoded = decode_all(&events);
        assert_eq!(rebuild(&decoded), expected, "run {run}, cuts {cuts:?}");
        // The decoded stream re-encodes to exactly the same events.
        assert_eq!(encode_all(&decoded), events, "run {run}");
    }
}

#[test]
fn decoder_errors_and_unknown_events() {
    let mut d = Decoder::new();
    assert!(d.push(&json!({"type": "ping"})).unwrap().is_empty());
    assert!(d.push(&json!({"type": "some_future_event", "x": 1})).unwrap().is_empty());
    d.push(&json!({"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 3, "output_tokens": 1}}})).unwrap();
    d.push(&json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})).unwrap();
    let e = d.push(&json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{"}})).unwrap_err();
    assert_eq!(field_of(&e), "index");
    let e = d.push(&json!({"type": "content_block_delta", "index": 0, "delta": {"type": "mystery_delta"}})).unwrap_err();
    assert_eq!(field_of(&e), "delta.type");
    let e = d.push(&json!({"type": "content_block_start", "index": 1, "content_block": {"type": "server_tool_use"}})).unwrap_err();
    assert_eq!(field_of(&e), "content_block.type");
    assert_eq!(field_of(&d.push(&json!("message_stop")).unwrap_err()), "event");
    assert_eq!(field_of(&d.push(&json!({"index": 0})).unwrap_err()), "event.type");
    // An error event is the upstream's error; a stream cut before message_delta is a stream error.
    let e = d.push(&json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})).unwrap_err();
    assert!(matches!(&e, Error::Provider { status: Some(529), provider_code: Some(c), .. } if c == "overloaded_error"), "{e:?}");
    assert!(matches!(d.finish(), Err(Error::Stream { .. })));
    assert!(Decoder::new().finish().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Bad input: validation errors that name the path, never a panic.

#[test]
fn bad_anthropic_requests_name_the_field() {
    let user = |content: Value| json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": content}]});
    assert_field(request_to_chat(&json!([1])), "request");
    assert_field(request_to_chat(&json!({"model": "m"})), "messages");
    assert_field(request_to_chat(&json!({"messages": "hi"})), "messages");
    assert_field(request_to_chat(&json!({"model": 5, "messages": []})), "model");
    assert_field(request_to_chat(&user(json!(5))), "messages[0].content");
    assert_field(request_to_chat(&user(json!([{"text": "no type"}]))), "messages[0].content[0].type");
    assert_field(request_to_chat(&user(json!(["bare string"]))), "messages[0].content[0]");
    assert_field(
        request_to_chat(&json!({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "video", "url": "x"}]}]})),
        "messages[2].content[1].type",
    );
    assert_field(request_to_chat(&json!({"messages": [{"role": "system", "content": "x"}]})), "messages[0].role");
    assert_field(request_to_chat(&json!({"messages": [{"content": "x"}]})), "messages[0].role");
    assert_field(request_to_chat(&user(json!([{"type": "image", "source": {"type": "file", "file_id": "f"}}]))), "messages[0].content[0].source.type");
    assert_field(request_to_chat(&user(json!([{"type": "image", "source": {"type": "base64", "data": "AA"}}]))), "messages[0].content[0].source.media_type");
    assert_field(request_to_chat(&user(json!([{"type": "text", "text": 3}]))), "messages[0].content[0].text");
    assert_field(request_to_chat(&user(json!([{"type": "tool_use", "id": "t", "name": "n", "input": {}}]))), "messages[0].content[0].type");
    assert_field(request_to_chat(&user(json!([{"type": "tool_result", "content": "x"}]))), "messages[0].content[0].tool_use_id");
    assert_field(
        request_to_chat(&user(json!([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "tool_use"}]}]))),
        "messages[0].content[0].content[0].type",
    );
    assert_field(
        request_to_chat(&json!({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": "{}"}]}]})),
        "messages[0].content[0].input",
    );
    assert_field(
        request_to_chat(&json!({"messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]})),
        "messages[0].content[0].type",
    );
    assert_field(request_to_chat(&json!({"messages": [], "system": 5})), "system");
    assert_field(request_to_chat(&json!({"messages": [], "system": [{"type": "image"}]})), "system[0].type");
    assert_field(request_to_chat(&json!({"messages": [], "max_tokens": -1})), "max_tokens");
    assert_field(request_to_chat(&json!({"messages": [], "temperature": "hot"})), "temperature");
    assert_field(request_to_chat(&json!({"messages": [], "stop_sequences": ["a", 1]})), "stop_sequences[1]");
    assert_field(request_to_chat(&json!({"messages": [], "tools": [{"name": "t"}]})), "tools[0].input_schema");
    assert_field(request_to_chat(&json!({"messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]})), "tools[0].type");
    assert_field(request_to_chat(&json!({"messages": [], "tool_choice": {"type": "maybe"}})), "tool_choice.type");
    assert_field(request_to_chat(&json!({"messages": [], "tool_choice": {"type": "tool"}})), "tool_choice.name");
    assert_field(request_to_chat(&json!({"messages": [], "thinking": {"type": "enabled"}})), "thinking.budget_tokens");
    assert_field(request_to_chat(&json!({"messages": [], "thinking": {"type": "sometimes"}})), "thinking.type");
    assert_field(request_to_chat(&json!({"messages": [], "metadata": {"user_id": 7}})), "metadata.user_id");
}

#[test]
fn bad_chat_requests_name_the_field() {
    let one = |m: Value| json!({"model": "m", "messages": [m]});
    assert_field(request_from_chat(&json!("x")), "request");
    assert_field(request_from_chat(&json!({"model": "m"})), "messages");
    assert_field(request_from_chat(&one(json!({"role": "function", "name": "f", "content": "x"}))), "messages[0].role");
    assert_field(request_from_chat(&one(json!({"role": "user", "content": 5}))), "messages[0].content");
    assert_field(
        request_from_chat(&one(json!({"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}))),
        "messages[0].content[0].type",
    );
    assert_field(
        request_from_chat(&one(json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}))),
        "messages[0].content[0].image_url.url",
    );
    assert_field(request_from_chat(&one(json!({"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}))), "messages[0].content[0].file.file_data");
    assert_field(request_from_chat(&one(json!({"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}))), "messages[0].content[0].type");
    let call = |args: &str| {
        json!({"messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": args}}]}
        ]})
    };
    let e = request_from_chat(&call("{\"city\": \"Par")).unwrap_err();
    assert_eq!(field_of(&e), "messages[1].tool_calls[0].function.arguments");
    assert!(e.to_string().contains("JSON"), "{e}");
    assert_field(request_from_chat(&call("[1, 2]")), "messages[1].tool_calls[0].function.arguments");
    assert_field(
        request_from_chat(&one(json!({"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}))),
        "messages[0].tool_calls[0].id",
    );
    assert_field(request_from_chat(&one(json!({"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}))), "messages[0].tool_calls[0].function");
    assert_field(request_from_chat(&one(json!({"role": "assistant", "tool_calls": "x"}))), "messages[0].tool_calls");
    assert_field(request_from_chat(&one(json!({"role": "assistant", "thinking_blocks": [{"type": "text", "text": "x"}]}))), "messages[0].thinking_blocks[0].type");
    assert_field(request_from_chat(&one(json!({"role": "tool", "content": "x"}))), "messages[0].tool_call_id");
    assert_field(request_from_chat(&json!({"messages": [], "tools": [{"type": "code_interpreter"}]})), "tools[0].type");
    assert_field(request_from_chat(&json!({"messages": [], "tools": [{"type": "function", "function": {"description": "no name"}}]})), "tools[0].function.name");
    assert_field(request_from_chat(&json!({"messages": [], "tool_choice": "sometimes"})), "tool_choice");
    assert_field(request_from_chat(&json!({"messages": [], "tool_choice": {"type": "function", "function": {}}})), "tool_choice.function.name");
    assert_field(request_from_chat(&json!({"messages": [], "reasoning_effort": "extreme"})), "reasoning_effort");
    assert_field(request_from_chat(&json!({"messages": [], "stop": 5})), "stop");
    assert_field(request_from_chat(&json!({"messages": [], "max_tokens": 0})), "max_tokens");
}

#[test]
fn bad_responses_name_the_field() {
    assert_field(response_from_chat(&json!({"id": "x"})), "choices");
    assert_field(response_from_chat(&json!({"choices": []})), "choices");
    assert_field(response_from_chat(&json!({"choices": [{"index": 0}]})), "choices[0].message");
    assert_field(
        response_from_chat(&json!({"choices": [{"message": {"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}}]})),
        "choices[0].message.tool_calls[0].function.arguments",
    );
    assert_field(response_from_chat(&json!({"choices": [{"message": {"content": [{"type": "image_url"}]}}]})), "choices[0].message.content[0].type");
    assert_field(response_to_chat(&json!("x")), "response");
    assert_field(response_to_chat(&json!({"content": {"type": "text"}})), "content");
    assert_field(response_to_chat(&json!({"content": [{"type": "text", "text": "a"}, {"type": "server_tool_use", "id": "s"}]})), "content[1].type");
    assert_field(response_to_chat(&json!({"content": [{"type": "image", "source": {}}]})), "content[0].type");
    assert_field(response_to_chat(&json!({"content": [], "usage": {"input_tokens": "many"}})), "usage.input_tokens");
}

/// Random damage to every fixture: each converter answers `Ok` or `Err`, never panics.
#[test]
fn damaged_inputs_never_panic() {
    fn nodes(v: &Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(path.clone());
        match v {
            Value::Object(m) => m.iter().for_each(|(k, x)| nodes(x, [path.clone(), vec![k.clone()]].concat(), out)),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| nodes(x, [path.clone(), vec![i.to_string()]].concat(), out)),
            _ => {}
        }
    }
    fn slot<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
        path.iter().fold(v, |v, k| match v {
            Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
            other => &mut other[k.as_str()],
        })
    }
    let replacements = [
        json!(null), json!(0), json!(-1), json!(1.5), json!(""), json!("x"), json!([]), json!({}), json!(true),
        json!({"type": "x"}), json!([{"type": "text"}]), json!(u64::MAX), json!("data:"),
    ];
    let mut inputs: Vec<Value> = Vec::new();
    for (_, a, c) in cases(REQUESTS).into_iter().chain(cases(RESPONSES)) {
        inputs.push(a);
        inputs.push(c);
    }
    let events: Value = serde_json::from_str(STREAM).unwrap();
    inputs.push(events.clone());
    inputs.push(Value::Array(decode_all(events.as_array().unwrap())));
    let mut rng = fastrand::Rng::with_seed(42);
    for _ in 0..1500 {
        let mut v = inputs[rng.usize(..inputs.len())].clone();
        for _ in 0..rng.usize(1..4) {
            let mut all = Vec::new();
            nodes(&v, vec![], &mut all);
            let p = &all[rng.usize(..all.len())];
            *slot(&mut v, p) = replacements[rng.usize(..replacements.len())].clone();
        }
        let _ = request_to_chat(&v);
        let _ = request_from_chat(&v);
        let _ = response_to_chat(&v);
        let _ = response_from_chat(&v);
        if let Value::Array(items) = &v {
            let (mut d, mut e) = (Decoder::new(), Encoder::new());
            for item in items {
                let _ = d.push(item);
                let _ = e.push(item);
            }
            let _ = d.finish();
            let _ = e.finish();
        }
    }
}
