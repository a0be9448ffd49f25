use serde_json::{json, Value};

use super::*;

/// Parse then serialise must give back the same JSON value (field order aside).
fn assert_lossless<T: serde::de::DeserializeOwned + serde::Serialize>(v: Value) {
    let typed: T = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), v);
}

#[test]
fn request_with_vendor_fields_tools_and_images_round_trips() {
    assert_lossless::<ChatRequest>(json!({
        "model": "qwen3-coder-plus",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}}
            ]},
            {"role": "assistant", "content": null, "reasoning_content": "think",
             "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}
        ],
        "temperature": 0.7,
        "top_p": 0.9,
        "stream": true,
        "stream_options": {"include_usage": true},
        "tools": [{"type": "function", "function": {"name": "look", "description": "d", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "metadata": {"sessionId": "s1"},
        "vl_high_resolution_images": true,
        "extend_fields": {"x": [1, 2, 3]}
    }));
}

#[test]
fn response_and_chunks_keep_reasoning_and_odd_fields() {
    assert_lossless::<ChatResponse>(json!({
        "id": "chatcmpl-a746f12b", "object": "chat.completion", "created": 1758691199, "model": "qwen3-coder-plus",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null,
            "message": {"role": "assistant", "content": "", "reasoning_content": "hmm",
                "tool_calls": [{"index": 0, "id": "call_182fe5237c7046da9bd3a992", "type": "function",
                    "function": {"name": "list_directory", "arguments": "{\"path\": \".\"}"}}]}}],
        "usage": {"prompt_tokens": 347, "completion_tokens": 19, "total_tokens": 366, "prompt_tokens_details": {"cached_tokens": 0}},
        "system_fingerprint": null
    }));
    assert_lossless::<ChatChunk>(json!({
        "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "usage": null,
        "choices": [{"index": 0, "finish_reason": null, "logprobs": null,
            "delta": {"content": null, "reasoning_content": "嗯",
                "tool_calls": [{"index": 0, "id": "", "type": "function", "function": {"arguments": " \"杭州市\"}"}}]}}]
    }));
    assert_lossless::<ChatChunk>(json!({
        "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
        "usage": {"prompt_tokens": 22, "completion_tokens": 17, "total_tokens": 39, "prompt_tokens_details": {"cached_tokens": 0}}
    }));
}

#[test]
fn validation_uses_the_original_messages_and_names_the_field() {
    let mut r = ChatRequest::from_json(r#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
    let e = r.validate(None).unwrap_err();
    assert_eq!(e.to_string(), "Model is required");
    assert_eq!(e.to_payload()["field"], "model");
    r.validate(Some("fallback")).unwrap();
    assert_eq!(r.model.as_deref(), Some("fallback"));

    let mut r = ChatRequest::from_json(r#"{"model":"m","messages":[]}"#).unwrap();
    assert_eq!(r.validate(None).unwrap_err().to_string(), "Messages are required");

    let mut r = ChatRequest::from_json(r#"{"model":"m","messages":[{"content":"x"}]}"#).unwrap();
    assert_eq!(r.validate(None).unwrap_err().to_payload()["field"], "messages[0].role");
}

#[test]
fn a_wrongly_typed_field_is_reported_with_its_path() {
    let e = ChatRequest::from_json(r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":5}]}"#)
        .unwrap_err();
    assert_eq!(e.code(), "VALIDATION_ERROR");
    assert_eq!(e.to_payload()["field"], "messages[1].content", "{e}");
    let e = ChatRequest::from_json("[1,2]").unwrap_err();
    assert!(e.to_string().contains("Invalid request"), "{e}");
}

#[test]
fn camel_case_max_tokens_from_the_readme_becomes_max_tokens() {
    let r = ChatRequest::from_json(r#"{"model":"m","messages":[],"maxTokens":1000}"#).unwrap();
    assert_eq!(r.max_tokens, Some(1000));
    assert!(!serde_json::to_string(&r).unwrap().contains("maxTokens"));
}

#[test]
fn normalize_fills_the_standard_fields_and_converts_milliseconds() {
    let mut r: ChatResponse = serde_json::from_value(json!({"choices": [{"message": {"content": "x"}}], "created": 1758691199123u64})).unwrap();
    r.normalize("asked-model");
    assert_eq!(r.object, "chat.completion");
    assert_eq!(r.model, "asked-model");
    assert_eq!(r.created, 1758691199);
    assert!(r.id.starts_with("chatcmpl-"));
    assert_eq!(r.choices[0].message.role, "assistant");

    let mut id = None;
    let mut c: ChatChunk = serde_json::from_value(json!({"choices": [{"index": 0, "message": {"content": "legacy"}}]})).unwrap();
    c.normalize("m", &mut id);
    assert_eq!(c.content(), Some("legacy"));
    assert_eq!(c.object, "chat.completion.chunk");
    let mut c2 = ChatChunk::default();
    c2.normalize("m", &mut id);
    assert_eq!(c.id, c2.id, "chunks of one stream share the generated id");
}
