//! Gemini ⇄ chat: golden fixtures (`crates/core/tests/fixtures/gemini/`), round trips, streams,
//! bad inputs and errors.
//!
//! Fixture cases have a `direction`:
//! * `both`: `gemini → chat` gives `chat` and `chat → gemini` gives `gemini`, so both round
//!   trips are lossless;
//! * `to_chat`: `gemini → chat` gives `chat`; `chat → gemini` gives `gemini_back`, which shows
//!   what the Gemini side loses;
//! * `from_chat`: `chat → gemini` gives `gemini`; `gemini → chat` gives `chat_back`, which shows
//!   what the chat side loses.

use serde_json::{json, Value};

use super::*;
use crate::error::{Error, TimeoutPhase};
use crate::llmswitch::{StreamDecoder, StreamEncoder};

const REQUESTS: &str = include_str!("../../../tests/fixtures/gemini/requests.json");
const RESPONSES: &str = include_str!("../../../tests/fixtures/gemini/responses.json");
const STREAM: &str = include_str!("../../../tests/fixtures/gemini/stream_thoughts_text_tool.json");

fn cases(text: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(text).expect("fixture JSON").as_array().expect("an array of cases").clone()
}

#[track_caller]
fn assert_json_eq(actual: &Value, expected: &Value, what: &str) {
    assert!(
        actual == expected,
        "{what}\n--- actual ---\n{}\n--- expected ---\n{}",
        serde_json::to_string_pretty(actual).unwrap(),
        serde_json::to_string_pretty(expected).unwrap()
    );
}

#[track_caller]
fn ok<T>(r: Result<T>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

/// Removes `created`: it must equal the expected one, or be "now" when none is expected.
#[track_caller]
fn take_created(v: &mut Value, expected: Option<&Value>, what: &str) {
    let created = v.as_object_mut().and_then(|o| o.remove("created")).unwrap_or_else(|| panic!("{what}: no created"));
    match expected {
        Some(e) => assert_eq!(&created, e, "{what}: created"),
        None => {
            let c = created.as_u64().unwrap_or_else(|| panic!("{what}: created {created}"));
            assert!(c.abs_diff(now_secs()) < 300, "{what}: created {c} is not now");
        }
    }
}

fn without_created(v: &Value) -> (Value, Option<Value>) {
    let mut v = v.clone();
    let created = v.as_object_mut().and_then(|o| o.remove("created"));
    (v, created)
}

// =============================================================================================
// Golden fixtures and round trips
// =============================================================================================

#[test]
fn request_fixtures_convert_both_ways() {
    let all = cases(REQUESTS);
    assert!(all.len() >= 15);
    for case in all {
        let name = case["name"].as_str().unwrap();
        let (g, c) = (&case["gemini"], &case["chat"]);
        match case["direction"].as_str().unwrap_or("both") {
            "both" => {
                assert_json_eq(&ok(request_to_chat(g), name), c, &format!("{name}: gemini → chat"));
                assert_json_eq(&ok(request_from_chat(c), name), g, &format!("{name}: chat → gemini"));
                let g2 = ok(request_from_chat(&ok(request_to_chat(g), name)), name);
                assert_json_eq(&g2, g, &format!("{name}: gemini → chat → gemini"));
                let c2 = ok(request_to_chat(&ok(request_from_chat(c), name)), name);
                assert_json_eq(&c2, c, &format!("{name}: chat → gemini → chat"));
            }
            "to_chat" => {
                assert_json_eq(&ok(request_to_chat(g), name), c, &format!("{name}: gemini → chat"));
                assert_json_eq(&ok(request_from_chat(c), name), &case["gemini_back"], &format!("{name}: chat → gemini (lossy)"));
            }
            "from_chat" => {
                assert_json_eq(&ok(request_from_chat(c), name), g, &format!("{name}: chat → gemini"));
                assert_json_eq(&ok(request_to_chat(g), name), &case["chat_back"], &format!("{name}: gemini → chat (lossy)"));
            }
            other => panic!("{name}: unknown direction {other}"),
        }
    }
}

#[test]
fn response_fixtures_convert_both_ways() {
    let all = cases(RESPONSES);
    assert!(all.len() >= 10);
    for case in all {
        let name = case["name"].as_str().unwrap();
        let g = &case["gemini"];
        let (c, c_created) = without_created(&case["chat"]);
        let to_chat = |g: &Value, expected_created: Option<&Value>| {
            let mut out = ok(response_to_chat(g), name);
            take_created(&mut out, expected_created, name);
            out
        };
        match case["direction"].as_str().unwrap_or("both") {
            "both" => {
                assert_json_eq(&to_chat(g, c_created.as_ref()), &c, &format!("{name}: gemini → chat"));
                assert_json_eq(&ok(response_from_chat(&case["chat"]), name), g, &format!("{name}: chat → gemini"));
                let back = ok(response_from_chat(&ok(response_to_chat(g), name)), name);
                assert_json_eq(&back, g, &format!("{name}: gemini → chat → gemini"));
                let again = to_chat(&ok(response_from_chat(&case["chat"]), name), None);
                assert_json_eq(&again, &c, &format!("{name}: chat → gemini → chat"));
            }
            "to_chat" => {
                assert_json_eq(&to_chat(g, c_created.as_ref()), &c, &format!("{name}: gemini → chat"));
                let back = ok(response_from_chat(&case["chat"]), name);
                assert_json_eq(&back, &case["gemini_back"], &format!("{name}: chat → gemini (lossy)"));
            }
            "from_chat" => {
                assert_json_eq(&ok(response_from_chat(&case["chat"]), name), g, &format!("{name}: chat → gemini"));
                assert_json_eq(&to_chat(g, None), &case["chat_back"], &format!("{name}: gemini → chat (lossy)"));
            }
            other => panic!("{name}: unknown direction {other}"),
        }
    }
}

#[test]
fn response_without_id_gets_a_chatcmpl_id_and_now() {
    let g = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}]});
    let mut c = ok(response_to_chat(&g), "no id");
    assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-"), "{c}");
    take_created(&mut c, None, "no id");
    assert_eq!(c["choices"][0]["index"], 0);
    assert_eq!(c["model"], "");
    assert!(c.get("usage").is_none());
}

#[test]
fn function_response_content_wraps_and_unwraps() {
    // chat text → Gemini response → chat text: exact for everything but JSON whitespace.
    for text in ["plain text", "42", "[1,2]", "\"quoted\"", "", "{\"content\":\"x\"}", "{\"a\":1}", "{\"content\":{\"a\":1}}", "not {json"]
    {
        let r = response_from_tool_content(text);
        assert!(r.is_object(), "{text}: {r}");
        assert_eq!(tool_content_from_response(&r), text, "{text}");
    }
    assert_eq!(response_from_tool_content("[1,2]"), json!({"content": "[1,2]"}));
    assert_eq!(response_from_tool_content("{\"a\": 1}"), json!({"a": 1}));
    assert_eq!(tool_content_from_response(&json!({"a": 1})), "{\"a\":1}");
    // Gemini response → chat → Gemini response.
    for r in [json!({"content": "Rain"}), json!({"result": {"ok": true}}), json!({"content": {"a": 1}}), json!({"content": "x", "more": 1})]
    {
        assert_eq!(response_from_tool_content(&tool_content_from_response(&r)), r, "{r}");
    }
    // The documented edge: {"content": "<JSON object text>"} comes back as the object.
    let edge = json!({"content": "{\"a\":1}"});
    assert_eq!(response_from_tool_content(&tool_content_from_response(&edge)), json!({"a": 1}));
}

#[test]
fn data_urls_mime_guesses_and_rfc3339() {
    assert_eq!(parse_data_url("data:image/png;base64,AAAA"), Some(("image/png", "AAAA")));
    assert_eq!(parse_data_url("data:image/jpeg;name=x.jpg;base64,QQ=="), Some(("image/jpeg", "QQ==")));
    assert_eq!(parse_data_url("data:;base64,QQ=="), Some(("application/octet-stream", "QQ==")));
    assert_eq!(parse_data_url("data:text/plain,hello"), None);
    assert_eq!(guess_mime("https://x.test/a/b.JPG?sig=1#f"), Some("image/jpeg"));
    assert_eq!(guess_mime("gs://bucket/file.pdf"), Some("application/pdf"));
    assert_eq!(guess_mime("https://generativelanguage.googleapis.com/v1beta/files/abc"), None);
    assert_eq!(guess_mime("https://example.com/v1.2/files"), None);
    assert_eq!(parse_rfc3339("2025-06-01T12:00:00Z"), Some(1_748_779_200));
    assert_eq!(parse_rfc3339("2025-06-01T12:00:00.123456789Z"), Some(1_748_779_200));
    assert_eq!(parse_rfc3339("2024-02-29T23:59:59Z"), Some(1_709_251_199));
    assert_eq!(parse_rfc3339("2000-01-01T00:00:00+02:00"), Some(946_677_600));
    for bad in ["", "2025-06-01", "2025-13-01T00:00:00Z", "2025-06-01T12:00:00", "2025-06-01T12:00:00+0200", "２０２５-06-01T12:00:00Z"]
    {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}

#[test]
fn schemas_are_reduced_to_geminis_subset_and_named_in_lower_case_for_chat() {
    let js = json!({
        "$schema": "x", "type": "object", "additionalProperties": false, "title": "T",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "email": {"type": "string", "format": "email"},
            "n": {"type": ["integer", "null"], "minimum": 0, "format": "int32"},
            "kind": {"const": "a"},
            "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "number", "examples": [1]}}}},
            "u": {"oneOf": [{"type": "string"}, {"$ref": "#/$defs/x"}]}
        },
        "required": ["when"], "$defs": {"x": {"type": "string"}}
    });
    assert_eq!(
        schema_to_gemini(&js),
        json!({
            "type": "object", "title": "T",
            "properties": {
                "when": {"type": "string", "format": "date-time"},
                "email": {"type": "string"},
                "n": {"nullable": true, "type": "integer", "minimum": 0, "format": "int32"},
                "kind": {"enum": ["a"]},
                "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "number"}}}},
                "u": {"anyOf": [{"type": "string"}, {}]}
            },
            "required": ["when"]
        })
    );
    let g = json!({"type": "OBJECT", "properties": {"type": {"type": "STRING", "enum": ["OBJECT"]}, "xs": {"type": "ARRAY", "items": {"type": "NUMBER"}}}});
    assert_eq!(
        schema_to_chat(&g),
        json!({"type": "object", "properties": {"type": {"type": "string", "enum": ["OBJECT"]}, "xs": {"type": "array", "items": {"type": "number"}}}})
    );
}

#[test]
fn orphan_function_response_keeps_its_name_and_round_trips() {
    let g = json!({"contents": [{"role": "user", "parts": [{"functionResponse": {"id": "fc-9", "name": "late", "response": {"ok": 1}}}]}]});
    let c = ok(request_to_chat(&g), "orphan");
    assert_eq!(c["messages"][0], json!({"role": "tool", "tool_call_id": "fc-9", "content": "{\"ok\":1}", "name": "late"}));
    assert_json_eq(&ok(request_from_chat(&c), "orphan back"), &g, "orphan round trip");
}

#[test]
fn same_named_calls_answered_out_of_order_keep_their_ids() {
    // Generated ids answered in reverse order: the second answer carries its id explicitly,
    // so pairing by name cannot swap them on the way back.
    let chat = json!({"messages": [
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_0_f", "type": "function", "function": {"name": "f", "arguments": "{\"i\":0}"}},
            {"id": "call_1_f", "type": "function", "function": {"name": "f", "arguments": "{\"i\":1}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1_f", "content": "one"},
        {"role": "tool", "tool_call_id": "call_0_f", "content": "zero"}
    ]});
    let g = ok(request_from_chat(&chat), "reverse");
    let parts = &g["contents"][1]["parts"];
    assert_eq!(parts[0]["functionResponse"]["id"], "call_1_f", "{g}");
    assert!(parts[1]["functionResponse"].get("id").is_none(), "{g}");
    assert_json_eq(&ok(request_to_chat(&g), "reverse back"), &chat, "reverse round trip");
}

// =============================================================================================
// Streams
// =============================================================================================

fn decode_all(events: &[Value]) -> Vec<Value> {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    for e in events {
        out.extend(ok(dec.push(e), "decoder push"));
    }
    out.extend(ok(dec.finish(), "decoder finish"));
    out
}

fn encode_all(chunks: &[Value]) -> Result<Vec<Value>> {
    let mut enc = Encoder::new();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(enc.push(c)?);
    }
    out.extend(enc.finish()?);
    Ok(out)
}

fn strip_created(chunks: &[Value]) -> Vec<Value> {
    chunks
        .iter()
        .map(|c| {
            let (c, created) = without_created(c);
            assert!(created.and_then(|v| v.as_u64()).is_some_and(|t| t > 1_600_000_000), "{c}");
            c
        })
        .collect()
}

#[test]
fn stream_fixture_decodes_to_golden_chunks_and_re_encodes() {
    let f: Value = serde_json::from_str(STREAM).unwrap();
    let fragments = f["fragments"].as_array().unwrap();
    let chunks = decode_all(fragments);
    assert_json_eq(&Value::Array(strip_created(&chunks)), &f["chunks"], "decoded chunks");
    // Every chunk of one stream has the same id and created.
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"] && c["created"] == chunks[0]["created"]));

    let re = ok(encode_all(&chunks), "re-encode");
    // Lossless but for the running usageMetadata of the intermediate fragments.
    let mut expected = fragments.clone();
    let last = expected.len() - 1;
    for frag in &mut expected[..last] {
        frag.as_object_mut().unwrap().remove("usageMetadata");
    }
    assert_json_eq(&Value::Array(re), &Value::Array(expected), "re-encoded fragments");
}

#[test]
fn stream_decoder_two_candidates_and_late_usage() {
    let frags = [
        json!({"candidates": [
            {"content": {"role": "model", "parts": [{"text": "A"}]}, "index": 0},
            {"content": {"role": "model", "parts": [{"text": "B"}]}, "index": 1}
        ], "modelVersion": "gemini-2.0-flash", "responseId": "r2"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "A2"}]}, "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS", "index": 1}],
               "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}}),
        json!({"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8}}),
    ];
    let chunks = strip_created(&decode_all(&frags));
    let ch = |choices: Value| json!({"id": "r2", "object": "chat.completion.chunk", "model": "gemini-2.0-flash", "choices": choices});
    let mut last_finish = ch(json!([{"index": 1, "delta": {}, "finish_reason": "length"}]));
    last_finish["usage"] = json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7});
    let mut late = ch(json!([]));
    late["usage"] = json!({"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8});
    let expected = vec![
        ch(json!([{"index": 0, "delta": {"role": "assistant", "content": "A"}, "finish_reason": null}])),
        ch(json!([{"index": 1, "delta": {"role": "assistant", "content": "B"}, "finish_reason": null}])),
        ch(json!([{"index": 0, "delta": {"content": "A2"}, "finish_reason": "stop"}])),
        last_finish,
        late,
    ];
    assert_json_eq(&Value::Array(chunks.clone()), &Value::Array(expected), "two candidates");

    // Re-encoded: the finish of candidate 0 is written when candidate 1 goes on; the last
    // finish fragment takes the usage that follows it; the later usage is a fragment of its own.
    let mut with_created = decode_all(&frags);
    let re = ok(encode_all(&with_created), "re-encode two candidates");
    assert_eq!(re.len(), 5, "{re:?}");
    assert_eq!(re[2]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(re[3]["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(re[3]["candidates"][0]["index"], 1);
    assert_eq!(re[3]["usageMetadata"], json!({"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}));
    assert_eq!(
        re[4],
        json!({"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8}, "modelVersion": "gemini-2.0-flash", "responseId": "r2"})
    );
    with_created.clear();
}

#[test]
fn stream_decoder_calls_across_fragments_prompt_block_errors_and_array_events() {
    // Function calls in separate fragments get consecutive indices and ids; usage that never
    // meets a finish is sent by finish().
    let frags = [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {}}}]}, "index": 0}], "responseId": "r"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"id": "x9", "name": "b", "args": {"k": [1]}}}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 1, "totalTokenCount": 1}}),
    ];
    let chunks = decode_all(&frags);
    assert_eq!(chunks.len(), 3, "{chunks:?}");
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["tool_calls"][0],
        json!({"index": 0, "id": "call_0_a", "type": "function", "function": {"name": "a", "arguments": "{}"}})
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[1]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
    assert_eq!(chunks[1]["choices"][0]["delta"]["tool_calls"][0]["id"], "x9");
    assert_eq!(chunks[2]["choices"], json!([]));
    assert_eq!(chunks[2]["usage"]["prompt_tokens"], 1);

    // The same fragments as one JSON array event (the non-SSE stream form).
    let mut dec = Decoder::new();
    assert_eq!(ok(dec.push(&Value::Array(frags.to_vec())), "array").len(), 2);

    // A blocked prompt.
    let blocked = decode_all(&[json!({"promptFeedback": {"blockReason": "SAFETY"}, "responseId": "rb", "modelVersion": "m"})]);
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0]["choices"], json!([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": "content_filter"}]));

    // An error event mid-stream is the error.
    let mut dec = Decoder::new();
    ok(dec.push(&frags[0]), "first");
    let err = dec
        .push(&json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}}))
        .unwrap_err();
    assert!(
        matches!(&err, Error::RateLimit { status: Some(429), retry_after_ms: Some(7000), provider_code: Some(p), .. } if p == "RESOURCE_EXHAUSTED"),
        "{err:?}"
    );
    let err = dec.push(&json!([{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}])).unwrap_err();
    assert!(matches!(&err, Error::Provider { status: Some(503), .. }) && err.retryable(), "{err:?}");
}

fn chunk(choices: Value) -> Value {
    json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "qwen3-coder-plus", "choices": choices})
}

fn delta(d: Value) -> Value {
    chunk(json!([{"index": 0, "delta": d, "finish_reason": null}]))
}

fn finish_chunk(reason: &str) -> Value {
    chunk(json!([{"index": 0, "delta": {}, "finish_reason": reason}]))
}

fn usage_chunk(p: u64, c: u64) -> Value {
    let mut u = chunk(json!([]));
    u["usage"] = json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
    u
}

fn tool_delta(index: u64, id: Option<&str>, name: Option<&str>, args: &str) -> Value {
    let mut tc = json!({"index": index, "function": {"arguments": args}});
    if let Some(id) = id {
        tc["id"] = id.into();
        tc["type"] = "function".into();
    }
    if let Some(n) = name {
        tc["function"]["name"] = n.into();
    }
    tc
}

fn function_calls(frags: &[Value]) -> Vec<Value> {
    frags
        .iter()
        .flat_map(|f| f["candidates"].as_array().cloned().unwrap_or_default())
        .flat_map(|c| c["content"]["parts"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p.get("functionCall").cloned())
        .collect()
}

#[test]
fn encoder_writes_text_and_thoughts_and_holds_the_finish_for_usage() {
    let chunks = [
        delta(json!({"role": "assistant", "content": ""})),
        delta(json!({"reasoning_content": "Thinking…"})),
        delta(json!({"content": "Hello"})),
        delta(json!({"content": ", world", "reasoning_content": null})),
        finish_chunk("stop"),
        usage_chunk(10, 3),
    ];
    let mut enc = Encoder::new();
    let per_chunk: Vec<Vec<Value>> = chunks.iter().map(|c| ok(enc.push(c), "push")).collect();
    assert!(per_chunk[0].is_empty(), "a role-only delta writes nothing");
    assert!(per_chunk[4].is_empty(), "the finish fragment waits for usage");
    assert!(ok(enc.finish(), "finish").is_empty());
    let meta = |mut v: Value| {
        v["modelVersion"] = "qwen3-coder-plus".into();
        v["responseId"] = "chatcmpl-9".into();
        v
    };
    let text = |p: Value| meta(json!({"candidates": [{"content": {"role": "model", "parts": [p]}, "index": 0}]}));
    let all: Vec<Value> = per_chunk.into_iter().flatten().collect();
    let mut last = meta(json!({"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "STOP", "index": 0}]}));
    last["usageMetadata"] = json!({"promptTokenCount": 10, "candidatesTokenCount": 3, "totalTokenCount": 13});
    let expected =
        vec![text(json!({"text": "Thinking…", "thought": true})), text(json!({"text": "Hello"})), text(json!({"text": ", world"})), last];
    assert_json_eq(&Value::Array(all), &Value::Array(expected), "text stream");
}

#[test]
fn encoder_usage_on_the_finish_chunk_mid_stream_or_missing() {
    // Usage on the finish chunk: written at once.
    let mut fin = finish_chunk("length");
    fin["usage"] = json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3});
    let mut enc = Encoder::new();
    ok(enc.push(&delta(json!({"content": "x"}))), "x");
    let out = ok(enc.push(&fin), "finish with usage");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(out[0]["usageMetadata"]["totalTokenCount"], 3);
    // The same usage again in a `choices: []` chunk is not written twice.
    assert!(ok(enc.push(&usage_chunk(1, 2)), "dup usage").is_empty());
    assert!(ok(enc.finish(), "end").is_empty());

    // Usage on every chunk (some providers): the last one rides on the final fragment at the end.
    let mut enc = Encoder::new();
    let mut a = delta(json!({"content": "a"}));
    a["usage"] = json!({"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6});
    assert!(ok(enc.push(&a), "a")[0].get("usageMetadata").is_none());
    assert!(ok(enc.push(&finish_chunk("stop")), "fin").is_empty());
    let end = ok(enc.finish(), "end");
    assert_eq!(end.len(), 1);
    assert_eq!(end[0]["usageMetadata"]["candidatesTokenCount"], 1);

    // No usage at all: the held fragment comes out at the end.
    let out = ok(encode_all(&[delta(json!({"content": "a"})), finish_chunk("content_filter")]), "no usage");
    assert_eq!(out.len(), 2);
    assert_eq!(out[1]["candidates"][0]["finishReason"], "SAFETY");
    assert!(out[1].get("usageMetadata").is_none());

    // Usage arriving after the final fragment was written goes out on its own.
    let out = ok(encode_all(&[fin.clone(), usage_chunk(7, 7)]), "late usage");
    assert_eq!(out.len(), 2);
    assert_eq!(out[1]["usageMetadata"]["totalTokenCount"], 14);
    assert!(out[1].get("candidates").is_none());
}

const ARGS0: &str = r#"{"city":"Paris","days":[1,2],"note":"a \"quoted\" word, {braces} and \\ backslash"}"#;
const ARGS1: &str = r#"{"q":"süß ✓","n":3}"#;

fn boundaries(s: &str) -> Vec<usize> {
    s.char_indices().map(|(i, _)| i).chain([s.len()]).collect()
}

#[track_caller]
fn assert_two_calls(frags: &[Value], what: &str) {
    let calls: Vec<Value> = function_calls(frags).into_iter().filter(|c| c["name"] != "noop").collect();
    assert_eq!(calls.len(), 2, "{what}: {frags:?}");
    let by_name = |n: &str| calls.iter().find(|c| c["name"] == n).unwrap_or_else(|| panic!("{what}: no {n} in {calls:?}")).clone();
    assert_eq!(
        by_name("get_weather"),
        json!({"name": "get_weather", "args": serde_json::from_str::<Value>(ARGS0).unwrap(), "id": "call_a"}),
        "{what}"
    );
    assert_eq!(
        by_name("search"),
        json!({"name": "search", "args": serde_json::from_str::<Value>(ARGS1).unwrap(), "id": "call_b"}),
        "{what}"
    );
    let last = frags.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP", "{what}");
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 30, "{what}");
}

#[test]
fn encoder_interleaved_tool_calls_split_at_every_point() {
    let mut runs = 0;
    for s0 in boundaries(ARGS0) {
        for s1 in boundaries(ARGS1) {
            let chunks = [
                delta(
                    json!({"role": "assistant", "content": null, "tool_calls": [tool_delta(0, Some("call_a"), Some("get_weather"), "")]}),
                ),
                delta(json!({"tool_calls": [tool_delta(1, Some("call_b"), Some("search"), &ARGS1[..s1])]})),
                delta(json!({"tool_calls": [tool_delta(0, Some(""), None, &ARGS0[..s0])]})),
                delta(json!({"tool_calls": [tool_delta(1, Some(""), None, &ARGS1[s1..])]})),
                delta(json!({"tool_calls": [tool_delta(0, None, None, &ARGS0[s0..])]})),
                finish_chunk("tool_calls"),
                usage_chunk(20, 10),
            ];
            let frags = ok(encode_all(&chunks), &format!("split {s0}/{s1}"));
            assert_two_calls(&frags, &format!("split {s0}/{s1}"));
            runs += 1;
        }
    }
    assert!(runs > 1000);
}

#[test]
fn encoder_tool_calls_survive_200_random_splits_and_interleavings() {
    let mut rng = fastrand::Rng::with_seed(0x6e6d_1e51);
    for round in 0..200 {
        // Each call: pieces in order; the first carries id and name.
        let mut pending: Vec<Vec<Value>> = Vec::new();
        for (index, id, name, args) in
            [(0u64, "call_a", "get_weather", ARGS0), (1, "call_b", "search", ARGS1), (2, "call_2_noop", "noop", "")]
        {
            let b = boundaries(args);
            let mut cuts: Vec<usize> = (0..rng.usize(0..5)).map(|_| b[rng.usize(..b.len())]).collect();
            cuts.extend([0, args.len()]);
            cuts.sort_unstable();
            let mut pieces: Vec<Value> = Vec::new();
            for w in cuts.windows(2) {
                let text = &args[w[0]..w[1]];
                pieces.push(if pieces.is_empty() {
                    tool_delta(index, Some(id), Some(name), text)
                } else {
                    match rng.u8(0..3) {
                        0 => tool_delta(index, Some(""), None, text),
                        1 => tool_delta(index, None, None, text),
                        _ => tool_delta(index, Some(id), None, text), // some providers repeat the id
                    }
                });
            }
            pieces.reverse();
            pending.push(pieces);
        }
        let mut chunks = vec![delta(json!({"role": "assistant"}))];
        while pending.iter().any(|p| !p.is_empty()) {
            let mut tcs = Vec::new();
            for _ in 0..rng.usize(1..3) {
                let live: Vec<usize> = (0..pending.len()).filter(|&i| !pending[i].is_empty()).collect();
                if live.is_empty() {
                    break;
                }
                tcs.push(pending[live[rng.usize(..live.len())]].pop().unwrap());
            }
            chunks.push(delta(json!({ "tool_calls": tcs })));
        }
        chunks.push(finish_chunk("tool_calls"));
        chunks.push(usage_chunk(20, 10));
        let what = format!("round {round}");
        let frags = ok(encode_all(&chunks), &what);
        let calls = function_calls(&frags);
        assert_eq!(calls.len(), 3, "{what}: {chunks:?}");
        let noop = calls.iter().find(|c| c["name"] == "noop").unwrap();
        assert_eq!(noop, &json!({"name": "noop", "args": {}}), "{what}: the generated-form id is left out");
        assert_two_calls(&frags, &what);
    }
}

#[test]
fn encoder_repairs_cut_arguments_and_reports_invalid_ones() {
    let out = ok(
        encode_all(&[
            delta(json!({"tool_calls": [tool_delta(0, Some("c1"), Some("get_weather"), "{\"city\":\"Par")]})),
            finish_chunk("length"),
        ]),
        "cut",
    );
    assert_eq!(function_calls(&out), vec![json!({"name": "get_weather", "args": {"city": "Par"}, "id": "c1"})]);
    assert_eq!(out.last().unwrap()["candidates"][0]["finishReason"], "MAX_TOKENS");

    let err = encode_all(&[
        delta(json!({"tool_calls": [tool_delta(0, Some("c1"), Some("ok"), "{}")]})),
        delta(json!({"tool_calls": [tool_delta(1, Some("c2"), Some("broken"), "{\"a\": tru")]})),
        finish_chunk("tool_calls"),
    ])
    .unwrap_err();
    match &err {
        Error::Validation { field: Some(f), message } => {
            assert_eq!(f, "choices[0].delta.tool_calls[1].function.arguments");
            assert!(message.contains("tool call 1 (broken)"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let err =
        encode_all(&[delta(json!({"tool_calls": [tool_delta(3, Some("c"), Some("arr"), "[1,2]")]})), finish_chunk("stop")]).unwrap_err();
    assert!(
        matches!(&err, Error::Validation { field: Some(f), .. } if f == "choices[0].delta.tool_calls[3].function.arguments"),
        "{err:?}"
    );
}

#[test]
fn encoder_new_id_on_a_used_index_and_a_stream_cut_before_its_finish() {
    // Two calls on index 0 told apart by their ids (qwen's index collision).
    let out = ok(
        encode_all(&[
            delta(json!({"tool_calls": [tool_delta(0, Some("c1"), Some("a"), "{\"x\":1}")]})),
            delta(json!({"tool_calls": [tool_delta(0, Some("c2"), Some("b"), "{\"y\":")]})),
            delta(json!({"tool_calls": [tool_delta(0, Some(""), None, "2}")]})),
            finish_chunk("tool_calls"),
        ]),
        "collision",
    );
    assert_eq!(
        function_calls(&out),
        vec![json!({"name": "a", "args": {"x": 1}, "id": "c1"}), json!({"name": "b", "args": {"y": 2}, "id": "c2"})]
    );

    // A stream that ends without a finish chunk still writes its buffered call.
    let out = ok(
        encode_all(&[delta(json!({"content": "Calling"})), delta(json!({"tool_calls": [tool_delta(0, None, Some("f"), "{\"k\":")]}))]),
        "cut",
    );
    assert_eq!(out.len(), 2);
    assert_eq!(function_calls(&out), vec![json!({"name": "f", "args": {"k": null}})]);
    assert!(out[1]["candidates"][0].get("finishReason").is_none());

    // Argument text for a call that was already complete is an error (not silently lost).
    let err = encode_all(&[
        delta(json!({"tool_calls": [tool_delta(0, Some("c1"), Some("a"), "{}")]})),
        delta(json!({"tool_calls": [tool_delta(1, Some("c2"), Some("b"), "{}")]})),
        delta(json!({"tool_calls": [tool_delta(0, None, None, "{\"late\":1}")]})),
    ])
    .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { field: Some(f), .. } if f == "choices[0].delta.tool_calls[0].function.arguments"),
        "{err:?}"
    );
}

#[test]
fn encoder_two_choices_put_usage_on_the_last_finish() {
    let two = |a: Value, b: Value| chunk(json!([a, b]));
    let out = ok(
        encode_all(&[
            two(json!({"index": 0, "delta": {"content": "Heads"}}), json!({"index": 1, "delta": {"content": "Tails"}})),
            chunk(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}])),
            chunk(json!([{"index": 1, "delta": {"content": "!"}, "finish_reason": "length"}])),
            usage_chunk(4, 6),
        ]),
        "two choices",
    );
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[0]["candidates"].as_array().unwrap().len(), 2);
    assert_eq!(out[1]["candidates"][0]["finishReason"], "STOP");
    assert!(out[1].get("usageMetadata").is_none());
    assert_eq!(
        out[2]["candidates"][0],
        json!({"content": {"role": "model", "parts": [{"text": "!"}]}, "finishReason": "MAX_TOKENS", "index": 1})
    );
    assert_eq!(out[2]["usageMetadata"]["totalTokenCount"], 10);
}

#[test]
fn stream_round_trip_matches_the_non_stream_conversion() {
    // Decoding a stream and rebuilding it gives the same message as converting the whole
    // response: text joined, reasoning joined, one tool call, the finish and usage.
    let f: Value = serde_json::from_str(STREAM).unwrap();
    let chunks = decode_all(f["fragments"].as_array().unwrap());
    let (mut content, mut reasoning, mut calls, mut finish, mut usage) = (String::new(), String::new(), Vec::new(), None, None);
    for c in &chunks {
        for ch in c["choices"].as_array().unwrap() {
            content.push_str(ch["delta"]["content"].as_str().unwrap_or_default());
            reasoning.push_str(ch["delta"]["reasoning_content"].as_str().unwrap_or_default());
            calls.extend(ch["delta"]["tool_calls"].as_array().cloned().unwrap_or_default());
            if !ch["finish_reason"].is_null() {
                finish = Some(ch["finish_reason"].clone());
            }
        }
        if c.get("usage").is_some() {
            usage = c.get("usage").cloned();
        }
    }
    let mut whole = f["fragments"][3].clone();
    whole["candidates"][0]["content"]["parts"] = json!([
        {"text": f["fragments"][0]["candidates"][0]["content"]["parts"][0]["text"], "thought": true},
        {"text": "Let me check the weather in Paris."},
        f["fragments"][3]["candidates"][0]["content"]["parts"][0]
    ]);
    let r = ok(response_to_chat(&whole), "whole");
    let m = &r["choices"][0]["message"];
    assert_eq!(m["content"], content.as_str());
    assert_eq!(m["reasoning_content"], reasoning.as_str());
    let mut call = calls[0].clone();
    call.as_object_mut().unwrap().remove("index");
    assert_eq!(m["tool_calls"], json!([call]));
    assert_eq!(Some(r["choices"][0]["finish_reason"].clone()), finish);
    assert_eq!(Some(r["usage"].clone()), usage);
}

// =============================================================================================
// Bad inputs
// =============================================================================================

#[test]
fn bad_inputs_are_validation_errors_naming_the_path() {
    let req = |v: Value| request_to_chat(&v);
    let chat = |v: Value| request_from_chat(&v);
    let user = |parts: Value| json!({"contents": [{"role": "user", "parts": parts}]});
    let model = |parts: Value| json!({"contents": [{"role": "model", "parts": parts}]});
    let msgs = |m: Value| json!({ "messages": m });
    let decode = |events: Vec<Value>| -> Result<Vec<Value>> {
        let mut d = Decoder::new();
        for e in &events {
            d.push(e)?;
        }
        d.finish()
    };
    let cases: Vec<(&str, Result<Value>, &str)> = vec![
        ("request not an object", req(json!([])), "request"),
        ("contents missing", req(json!({})), "contents"),
        ("contents not an array", req(json!({"contents": {}})), "contents"),
        ("content not an object", req(json!({"contents": [1]})), "contents[0]"),
        ("bad role", req(json!({"contents": [{"role": "assistant", "parts": []}]})), "contents[0].role"),
        ("parts missing", req(json!({"contents": [{"role": "user"}]})), "contents[0].parts"),
        ("model not a string", req(json!({"model": 3, "contents": []})), "model"),
        ("part not an object", req(user(json!(["hi"]))), "contents[0].parts[0]"),
        ("unknown part kind", req(user(json!([{"text": "a"}, {"executableCode": {"code": "1"}}]))), "contents[0].parts[1]"),
        ("text not a string", req(user(json!([{"text": 5}]))), "contents[0].parts[0].text"),
        ("inlineData without mime", req(user(json!([{"inlineData": {"data": "AA=="}}]))), "contents[0].parts[0].inlineData.mimeType"),
        ("inlineData not an object", req(user(json!([{"inlineData": "AA=="}]))), "contents[0].parts[0].inlineData"),
        ("fileData without uri", req(user(json!([{"fileData": {"mimeType": "image/png"}}]))), "contents[0].parts[0].fileData.fileUri"),
        ("functionCall in a user turn", req(user(json!([{"functionCall": {"name": "f"}}]))), "contents[0].parts[0].functionCall"),
        ("thought in a user turn", req(user(json!([{"text": "t", "thought": true}]))), "contents[0].parts[0].thought"),
        ("thought not a boolean", req(model(json!([{"text": "t", "thought": "yes"}]))), "contents[0].parts[0].thought"),
        ("functionCall without name", req(model(json!([{"functionCall": {"args": {}}}]))), "contents[0].parts[0].functionCall.name"),
        (
            "functionCall args not an object",
            req(model(json!([{"functionCall": {"name": "f", "args": [1]}}]))),
            "contents[0].parts[0].functionCall.args",
        ),
        (
            "functionResponse in a model turn",
            req(model(json!([{"functionResponse": {"name": "f", "response": {}}}]))),
            "contents[0].parts[0].functionResponse",
        ),
        (
            "orphan functionResponse",
            req(user(json!([{"functionResponse": {"name": "f", "response": {}}}]))),
            "contents[0].parts[0].functionResponse",
        ),
        (
            "functionResponse without name",
            req(
                json!({"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f"}}]}, {"role": "user", "parts": [{"text": "x"}, {"functionResponse": {"response": {}}}]}]}),
            ),
            "contents[1].parts[1].functionResponse.name",
        ),
        (
            "system with an image",
            req(json!({"systemInstruction": {"parts": [{"inlineData": {}}]}, "contents": []})),
            "systemInstruction.parts[0].text",
        ),
        ("system a number", req(json!({"systemInstruction": 1, "contents": []})), "systemInstruction"),
        ("googleSearch tool", req(json!({"contents": [], "tools": [{"googleSearch": {}}]})), "tools[0].googleSearch"),
        (
            "declaration without name",
            req(json!({"contents": [], "tools": [{"functionDeclarations": [{"description": "d"}]}]})),
            "tools[0].functionDeclarations[0].name",
        ),
        (
            "bad mode",
            req(json!({"contents": [], "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}})),
            "toolConfig.functionCallingConfig.mode",
        ),
        (
            "allowed names not strings",
            req(json!({"contents": [], "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [1]}}})),
            "toolConfig.functionCallingConfig.allowedFunctionNames[0]",
        ),
        ("temperature a string", req(json!({"contents": [], "generationConfig": {"temperature": "hot"}})), "generationConfig.temperature"),
        (
            "maxOutputTokens negative",
            req(json!({"contents": [], "generationConfig": {"maxOutputTokens": -1}})),
            "generationConfig.maxOutputTokens",
        ),
        (
            "enum mime type",
            req(json!({"contents": [], "generationConfig": {"responseMimeType": "text/x.enum"}})),
            "generationConfig.responseMimeType",
        ),
        (
            "thinking budget a string",
            req(json!({"contents": [], "generationConfig": {"thinkingConfig": {"thinkingBudget": "lots"}}})),
            "generationConfig.thinkingConfig.thinkingBudget",
        ),
        // chat → Gemini
        ("chat request not an object", chat(json!("hi")), "request"),
        ("messages missing", chat(json!({})), "messages"),
        ("message not an object", chat(msgs(json!([null]))), "messages[0]"),
        ("role missing", chat(msgs(json!([{"content": "x"}]))), "messages[0].role"),
        ("unknown role", chat(msgs(json!([{"role": "function", "content": "x"}]))), "messages[0].role"),
        ("content a number", chat(msgs(json!([{"role": "user", "content": 3}]))), "messages[0].content"),
        ("part without type", chat(msgs(json!([{"role": "user", "content": [{"text": "x"}]}]))), "messages[0].content[0].type"),
        (
            "unknown part type",
            chat(msgs(json!([{"role": "user", "content": [{"type": "video", "video": {}}]}]))),
            "messages[0].content[0].type",
        ),
        (
            "data URL not base64",
            chat(msgs(json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]))),
            "messages[0].content[0].image_url.url",
        ),
        (
            "image without url",
            chat(msgs(json!([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]))),
            "messages[0].content[0].image_url.url",
        ),
        (
            "file by id",
            chat(msgs(json!([{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]))),
            "messages[0].content[0].file.file_data",
        ),
        (
            "audio without format",
            chat(msgs(json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA"}}]}]))),
            "messages[0].content[0].input_audio.format",
        ),
        (
            "system with an image",
            chat(msgs(json!([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]))),
            "messages[0].content[0].type",
        ),
        (
            "tool call without function",
            chat(msgs(json!([{"role": "assistant", "tool_calls": [{"id": "c"}]}]))),
            "messages[0].tool_calls[0].function",
        ),
        (
            "arguments not JSON",
            chat(msgs(json!([{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{\"a\": tru"}}]}]))),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            "arguments not an object",
            chat(msgs(json!([{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1,2]"}}]}]))),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            "tool message with unknown id",
            chat(msgs(json!([{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "r"}]))),
            "messages[1].tool_call_id",
        ),
        ("tool message without id", chat(msgs(json!([{"role": "tool", "content": "r"}]))), "messages[0].tool_call_id"),
        ("tool of another type", chat(json!({"messages": [], "tools": [{"type": "web_search"}]})), "tools[0].type"),
        (
            "tool without function name",
            chat(json!({"messages": [], "tools": [{"type": "function", "function": {}}]})),
            "tools[0].function.name",
        ),
        ("tool_choice unknown string", chat(json!({"messages": [], "tool_choice": "always"})), "tool_choice"),
        ("tool_choice unknown type", chat(json!({"messages": [], "tool_choice": {"type": "custom"}})), "tool_choice.type"),
        (
            "tool_choice function without name",
            chat(json!({"messages": [], "tool_choice": {"type": "function", "function": {}}})),
            "tool_choice.function.name",
        ),
        ("response_format unknown", chat(json!({"messages": [], "response_format": {"type": "yaml"}})), "response_format.type"),
        ("json_schema missing", chat(json!({"messages": [], "response_format": {"type": "json_schema"}})), "response_format.json_schema"),
        ("reasoning_effort unknown", chat(json!({"messages": [], "reasoning_effort": "max"})), "reasoning_effort"),
        ("stop a number", chat(json!({"messages": [], "stop": 5})), "stop"),
        ("stop list with a number", chat(json!({"messages": [], "stop": ["a", 5]})), "stop[1]"),
        ("max_tokens a float", chat(json!({"messages": [], "max_tokens": 1.5})), "max_tokens"),
        ("top_p a string", chat(json!({"messages": [], "top_p": "0.9"})), "top_p"),
        // responses
        ("response not an object", response_to_chat(&json!("x")), "response"),
        ("candidates not an array", response_to_chat(&json!({"candidates": {}})), "candidates"),
        ("parts not an array", response_to_chat(&json!({"candidates": [{"content": {"parts": {}}}]})), "candidates[0].content.parts"),
        ("finishReason a number", response_to_chat(&json!({"candidates": [{"finishReason": 1}]})), "candidates[0].finishReason"),
        (
            "usage count a string",
            response_to_chat(&json!({"candidates": [], "usageMetadata": {"promptTokenCount": "9"}})),
            "usageMetadata.promptTokenCount",
        ),
        ("responseId a number", response_to_chat(&json!({"responseId": 5})), "responseId"),
        ("chat choices missing", response_from_chat(&json!({})), "choices"),
        ("chat message missing", response_from_chat(&json!({"choices": [{"index": 0}]})), "choices[0].message"),
        (
            "chat arguments invalid",
            response_from_chat(
                &json!({"choices": [{"message": {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{]"}}]}}]}),
            ),
            "choices[0].message.tool_calls[0].function.arguments",
        ),
        ("chat usage a string", response_from_chat(&json!({"choices": [], "usage": {"prompt_tokens": "1"}})), "usage.prompt_tokens"),
        (
            "chat usage details",
            response_from_chat(&json!({"choices": [], "usage": {"completion_tokens_details": {"reasoning_tokens": -1}}})),
            "usage.completion_tokens_details.reasoning_tokens",
        ),
        // streams
        ("event not an object", decode(vec![json!("x")]).map(Value::from), "event"),
        (
            "event with a bad part",
            decode(vec![json!({"candidates": [{"content": {"parts": [{"nope": 1}]}}]})]).map(Value::from),
            "candidates[0].content.parts[0]",
        ),
        (
            "event usage bad",
            decode(vec![json!({"usageMetadata": {"totalTokenCount": -3}})]).map(Value::from),
            "usageMetadata.totalTokenCount",
        ),
        ("chunk not an object", encode_all(&[json!(1)]).map(Value::from), "chunk"),
        ("chunk content a number", encode_all(&[delta(json!({"content": 5}))]).map(Value::from), "choices[0].delta.content"),
        ("chunk choices not an array", encode_all(&[json!({"choices": {}})]).map(Value::from), "choices"),
        ("chunk usage bad", encode_all(&[json!({"choices": [], "usage": {"total_tokens": "x"}})]).map(Value::from), "usage.total_tokens"),
        (
            "tool call never named",
            encode_all(&[delta(json!({"tool_calls": [tool_delta(0, Some("c"), None, "{}")]})), finish_chunk("tool_calls")])
                .map(Value::from),
            "choices[0].delta.tool_calls[0].function.name",
        ),
        (
            "tool call arguments a number",
            encode_all(&[delta(json!({"tool_calls": [{"index": 2, "function": {"arguments": 5}}]}))]).map(Value::from),
            "choices[0].delta.tool_calls[2].function.arguments",
        ),
    ];
    for (what, result, field) in cases {
        match result {
            Err(Error::Validation { field: Some(f), message }) => {
                assert_eq!(f, field, "{what}: {message}");
                assert!(!message.is_empty());
            }
            other => panic!("{what}: expected a Validation error at {field}, got {other:?}"),
        }
    }
}

/// A random JSON value built from the keys and values both protocols use, so that the
/// converters meet every shape at every depth.
fn random_value(rng: &mut fastrand::Rng, depth: u32) -> Value {
    const KEYS: &[&str] = &[
        "contents",
        "role",
        "parts",
        "text",
        "thought",
        "thoughtSignature",
        "inlineData",
        "mimeType",
        "data",
        "fileData",
        "fileUri",
        "functionCall",
        "functionResponse",
        "name",
        "args",
        "id",
        "response",
        "systemInstruction",
        "tools",
        "functionDeclarations",
        "parameters",
        "parametersJsonSchema",
        "type",
        "properties",
        "items",
        "toolConfig",
        "functionCallingConfig",
        "mode",
        "allowedFunctionNames",
        "generationConfig",
        "temperature",
        "maxOutputTokens",
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "thinkingConfig",
        "thinkingBudget",
        "thinkingLevel",
        "candidates",
        "content",
        "finishReason",
        "index",
        "usageMetadata",
        "promptTokenCount",
        "thoughtsTokenCount",
        "cachedContentTokenCount",
        "responseId",
        "createTime",
        "promptFeedback",
        "blockReason",
        "error",
        "code",
        "status",
        "details",
        "messages",
        "tool_calls",
        "tool_call_id",
        "function",
        "arguments",
        "image_url",
        "url",
        "input_audio",
        "format",
        "file",
        "file_data",
        "tool_choice",
        "allowed_tools",
        "tools",
        "response_format",
        "json_schema",
        "schema",
        "choices",
        "delta",
        "message",
        "finish_reason",
        "native_finish_reason",
        "usage",
        "prompt_tokens",
        "completion_tokens",
        "completion_tokens_details",
        "reasoning_tokens",
        "reasoning_content",
        "images",
        "stop",
        "n",
        "reasoning_effort",
        "extra_content",
        "google",
        "thought_signature",
        "model",
        "refusal",
        "const",
        "anyOf",
        "enum",
    ];
    const STRS: &[&str] = &[
        "user",
        "model",
        "assistant",
        "tool",
        "system",
        "developer",
        "function",
        "STOP",
        "SAFETY",
        "MAX_TOKENS",
        "OTHER",
        "AUTO",
        "ANY",
        "NONE",
        "auto",
        "required",
        "none",
        "text",
        "image_url",
        "input_audio",
        "file",
        "json_schema",
        "json_object",
        "allowed_tools",
        "application/json",
        "text/plain",
        "image/png",
        "audio/wav",
        "data:image/png;base64,AA==",
        "data:x",
        "gs://b/x.png",
        "{\"a\":",
        "{}",
        "[1]",
        "{\"content\":\"x\"}",
        "call_0_f",
        "call_1_f",
        "f",
        "g",
        "",
        "high",
        "low",
        "2025-01-01T00:00:00Z",
        "RESOURCE_EXHAUSTED",
        "object",
        "OBJECT",
        "string",
        "null",
        "wav",
        "ü✓",
    ];
    let kind = if depth == 0 { rng.u32(0..4) } else { rng.u32(0..8) };
    match kind {
        0 => Value::Null,
        1 => Value::Bool(rng.bool()),
        2 => match rng.u8(0..3) {
            0 => json!(rng.i64(-2..3)),
            1 => json!(rng.u64(0..100_000)),
            _ => json!(rng.f64() * 2.0 - 0.5),
        },
        3 => json!(STRS[rng.usize(..STRS.len())]),
        4..=6 => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.usize(0..6) {
                m.insert(KEYS[rng.usize(..KEYS.len())].to_string(), random_value(rng, depth - 1));
            }
            Value::Object(m)
        }
        _ => Value::Array((0..rng.usize(0..4)).map(|_| random_value(rng, depth - 1)).collect()),
    }
}

#[test]
fn random_inputs_never_panic_and_own_output_converts_back() {
    let mut rng = fastrand::Rng::with_seed(0x9e3779b9);
    let mut converted = 0;
    for _ in 0..4000 {
        let v = random_value(&mut rng, 5);
        if let Ok(c) = request_to_chat(&v) {
            converted += 1;
            ok(request_from_chat(&c), &format!("request_from_chat of request_to_chat({v})"));
        }
        if let Ok(g) = request_from_chat(&v) {
            converted += 1;
            ok(request_to_chat(&g), &format!("request_to_chat of request_from_chat({v})"));
        }
        if let Ok(c) = response_to_chat(&v) {
            converted += 1;
            ok(response_from_chat(&c), &format!("response_from_chat of response_to_chat({v})"));
        }
        if let Ok(g) = response_from_chat(&v) {
            converted += 1;
            ok(response_to_chat(&g), &format!("response_to_chat of response_from_chat({v})"));
        }
        let mut dec = Decoder::new();
        let mut enc = Encoder::new();
        let _ = dec.push(&v);
        let _ = dec.finish();
        let _ = enc.push(&v);
        let _ = enc.push(&v);
        let _ = enc.finish();
        let _ = error_from_body(&v);
    }
    assert!(converted > 100, "the generator should reach valid inputs too ({converted})");
}

// =============================================================================================
// Errors
// =============================================================================================

#[test]
fn error_bodies_per_error_class() {
    let provider =
        |s: Option<u16>| Error::Provider { message: "upstream".into(), status: s, body: None, provider_code: None, retry_after_ms: None };
    let auth = |s: Option<u16>| Error::Authentication { message: "no".into(), status: s, body: None, provider_code: None };
    let cases: Vec<(Error, u16, &str)> = vec![
        (Error::validation("contents[2].parts[0]", "contents[2].parts[0] must be an object"), 400, "INVALID_ARGUMENT"),
        (auth(Some(401)), 401, "UNAUTHENTICATED"),
        (auth(None), 401, "UNAUTHENTICATED"),
        (auth(Some(403)), 403, "PERMISSION_DENIED"),
        (
            Error::RateLimit { message: "slow".into(), status: Some(429), retry_after_ms: Some(1500), body: None, provider_code: None },
            429,
            "RESOURCE_EXHAUSTED",
        ),
        (Error::QueueFull { message: "full".into(), max_size: 1 }, 429, "RESOURCE_EXHAUSTED"),
        (Error::timeout(TimeoutPhase::FirstToken, 100), 504, "DEADLINE_EXCEEDED"),
        (provider(Some(500)), 500, "INTERNAL"),
        (provider(Some(502)), 502, "INTERNAL"),
        (provider(Some(503)), 503, "UNAVAILABLE"),
        (provider(Some(504)), 504, "DEADLINE_EXCEEDED"),
        (provider(Some(400)), 400, "INVALID_ARGUMENT"),
        (provider(Some(404)), 404, "NOT_FOUND"),
        (provider(Some(200)), 500, "INTERNAL"),
        (provider(None), 500, "INTERNAL"),
        (Error::Connection { message: "refused".into() }, 503, "UNAVAILABLE"),
        (Error::CircuitOpen { message: "open".into(), retry_after_ms: 10 }, 503, "UNAVAILABLE"),
        (Error::NoAvailablePipeline { message: "none".into() }, 503, "UNAVAILABLE"),
        (Error::cancelled(), 499, "CANCELLED"),
        (Error::Stream { message: "cut".into(), partial: None }, 500, "INTERNAL"),
        (Error::Internal { message: "bug".into() }, 500, "INTERNAL"),
    ];
    for (e, code, status) in cases {
        let b = error_body(&e);
        assert_eq!(b["error"]["code"], code, "{e:?}");
        assert_eq!(b["error"]["status"], status, "{e:?}");
        assert_eq!(b["error"]["message"], e.to_string());
    }
    let v = error_body(&Error::validation("contents[2].parts[0]", "bad part"));
    assert_eq!(v["error"]["details"][0]["fieldViolations"][0], json!({"field": "contents[2].parts[0]", "description": "bad part"}));
    let r = error_body(&Error::RateLimit {
        message: "slow".into(),
        status: Some(429),
        retry_after_ms: Some(1500),
        body: None,
        provider_code: None,
    });
    assert_eq!(r["error"]["details"], json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.500s"}]));
    assert!(error_body(&provider(Some(500)))["error"].get("details").is_none());
}

#[test]
fn error_bodies_read_back_into_errors() {
    for e in [
        Error::Authentication { message: "bad key".into(), status: Some(401), body: None, provider_code: None },
        Error::Authentication { message: "denied".into(), status: Some(403), body: None, provider_code: None },
        Error::RateLimit { message: "slow".into(), status: Some(429), retry_after_ms: Some(2000), body: None, provider_code: None },
        Error::Provider { message: "overloaded".into(), status: Some(503), body: None, provider_code: None, retry_after_ms: None },
        Error::Provider { message: "bad".into(), status: Some(400), body: None, provider_code: None, retry_after_ms: None },
    ] {
        let back = error_from_body(&error_body(&e)).expect("an error");
        assert_eq!(back.code(), e.code(), "{e:?} → {back:?}");
        assert_eq!(back.status(), e.status());
        assert_eq!(back.retry_after_ms(), e.retry_after_ms());
        assert_eq!(back.to_string(), e.to_string());
        assert_eq!(back.retryable(), e.retryable());
    }
    // Gemini's answer to a bad API key is a 400 with an ErrorInfo reason.
    let key = json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}});
    let e = error_from_body(&key).unwrap();
    assert!(matches!(&e, Error::Authentication { provider_code: Some(r), status: Some(400), .. } if r == "API_KEY_INVALID"), "{e:?}");
    assert!(matches!(response_to_chat(&key), Err(Error::Authentication { .. })));
    // Status name only.
    let e = error_from_body(&json!({"error": {"message": "slow down", "status": "RESOURCE_EXHAUSTED"}})).unwrap();
    assert!(matches!(e, Error::RateLimit { status: Some(429), .. }));
    let e = error_from_body(&json!({"error": {}})).unwrap();
    assert!(matches!(&e, Error::Provider { status: None, .. }) && e.retryable(), "{e:?}");
    assert!(error_from_body(&json!({"candidates": []})).is_none());
}
