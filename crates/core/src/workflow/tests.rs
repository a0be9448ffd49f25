//! Workflow tests: the streaming tool-call parser against adversarial chunkings, the chunk
//! accumulator, response → chunks → response round trips, random re-chunking, and the
//! streaming-control workflow.

use serde_json::{json, Value};

use super::*;
use crate::model::{ChatChunk, ChatResponse, ChunkChoice, Content, Delta, FunctionCall, ToolCall, Usage};
use crate::Error;

// ---------------------------------------------------------------------------------------------
// Helpers

fn chunk(v: Value) -> ChatChunk {
    serde_json::from_value(v).unwrap()
}

fn response(v: Value) -> ChatResponse {
    serde_json::from_value(v).unwrap()
}

fn rebuild(chunks: &[ChatChunk]) -> ChatResponse {
    stream_to_response(chunks)
}

/// Byte offsets of every character boundary strictly inside `s`.
fn inner_boundaries(s: &str) -> Vec<usize> {
    s.char_indices().map(|(i, _)| i).filter(|&i| i > 0).collect()
}

/// Cuts `s` at the given (sorted) byte offsets.
fn cut_at<'a>(s: &'a str, cuts: &[usize]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut start = 0;
    for &c in cuts {
        out.push(&s[start..c]);
        start = c;
    }
    out.push(&s[start..]);
    out
}

/// Cuts `s` into random pieces of 1..=max characters.
fn random_pieces(s: &str, rng: &mut fastrand::Rng, max: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let n = rng.usize(1..=max).min(chars.len() - i);
        out.push(chars[i..i + n].iter().collect());
        i += n;
    }
    out
}

/// Tricky argument texts: escaped quotes and backslashes, `\uXXXX` escapes (with a surrogate
/// pair), brackets inside strings, nested arrays/objects, raw unicode, literals, numbers.
const TRICKY_ARGS: &[&str] = &[
    r#"{"path":"C:\\dir\\\"quoted\"","s":"caf\u00e9 \ud83c\udf89","n":[1,[2,{"x":"}]"}],[]],"u":"日本語 🎉","e":"\\","t":true,"z":null,"f":-1.5e3,"o":{}}"#,
    r#"{"a":"\"}\"","b":"\\\\","c":"{[\"]}"}"#,
    r#"{"cmd":"echo \"{[\" && ls -la","list":[{"k":[{"v":"]"}]}],"empty":"","nested":{"deeper":{"deepest":[false,0.5,-0]}}}"#,
    r#"{"location": "杭州市", "unit": "celsius"}"#,
];

// ---------------------------------------------------------------------------------------------
// StreamingToolCallParser

fn feed_one_call(pieces: &[&str], first_with_id: bool, continuation_id: Option<&str>) -> (StreamingToolCallParser, Vec<ToolCallParseResult>) {
    let mut p = StreamingToolCallParser::new();
    let mut results = Vec::new();
    if !first_with_id {
        results.push(p.add_chunk(0, "", Some("call_x"), Some("tool")));
    }
    for (i, piece) in pieces.iter().enumerate() {
        let r = if i == 0 && first_with_id {
            p.add_chunk(0, piece, Some("call_x"), Some("tool"))
        } else {
            p.add_chunk(0, piece, continuation_id, None)
        };
        results.push(r);
    }
    (p, results)
}

fn assert_exact_call(p: &StreamingToolCallParser, results: &[ToolCallParseResult], text: &str, ctx: &str) {
    let want: Value = serde_json::from_str(text).unwrap();
    let (last, before) = results.split_last().unwrap();
    assert!(before.iter().all(|r| !r.complete), "{ctx}: complete too early");
    assert!(last.complete, "{ctx}: not complete at the end: {last:?}");
    assert_eq!(last.value.as_ref(), Some(&want), "{ctx}");
    assert!(!last.repaired, "{ctx}");
    assert_eq!(p.get_buffer(0), text, "{ctx}");
    assert_eq!(p.get_state(0), ToolCallParserState::default(), "{ctx}");
    let done = p.get_completed_tool_calls();
    assert_eq!(done.len(), 1, "{ctx}");
    assert_eq!(done[0].arguments, text, "{ctx}");
    assert_eq!(done[0].args, want, "{ctx}");
    assert_eq!((done[0].id.as_deref(), done[0].name.as_deref(), done[0].repaired, &done[0].error), (Some("call_x"), Some("tool"), false, &None), "{ctx}");
}

#[test]
fn parser_every_split_point_gives_the_exact_arguments() {
    for text in TRICKY_ARGS {
        let cuts = inner_boundaries(text);
        // Two pieces, at every character boundary (inside `\"`, `\\`, `\u00e9`, the surrogate
        // pair, nested brackets and multi-byte characters), with each continuation style.
        for &c in &cuts {
            let pieces = cut_at(text, &[c]);
            for (first_with_id, cont) in [(true, None), (false, Some("")), (true, Some("call_x"))] {
                let (p, results) = feed_one_call(&pieces, first_with_id, cont);
                assert_exact_call(&p, &results, text, &format!("{text} cut at {c} ({first_with_id}, {cont:?})"));
            }
        }
        // Three pieces, at every pair of boundaries.
        for (i, &a) in cuts.iter().enumerate() {
            for &b in &cuts[i + 1..] {
                let pieces = cut_at(text, &[a, b]);
                let (p, results) = feed_one_call(&pieces, false, None);
                assert_exact_call(&p, &results, text, &format!("{text} cut at {a},{b}"));
            }
        }
        // One character per chunk.
        let pieces: Vec<&str> = cut_at(text, &cuts);
        let (p, results) = feed_one_call(&pieces, true, Some(""));
        assert_exact_call(&p, &results, text, "char by char");
    }
}

#[test]
fn parser_tracks_string_and_escape_state_across_chunks() {
    let mut p = StreamingToolCallParser::new();
    p.add_chunk(0, "{\"a\":\"x\\", Some("c1"), Some("f"));
    assert_eq!(p.get_state(0), ToolCallParserState { depth: 1, in_string: true, escape: true });
    // The escaped quote does not end the string; the brace inside the string does not count.
    p.add_chunk(0, "\"}", None, None);
    assert_eq!(p.get_state(0), ToolCallParserState { depth: 1, in_string: true, escape: false });
    p.add_chunk(0, "\\\\", None, None);
    assert_eq!(p.get_state(0), ToolCallParserState { depth: 1, in_string: true, escape: false });
    let r = p.add_chunk(0, "\"}", None, None);
    assert!(r.complete);
    assert_eq!(r.value, Some(json!({"a": "x\"}\\"})));
}

#[test]
fn parser_every_prefix_is_repaired_to_an_object() {
    for text in TRICKY_ARGS {
        for end in text.char_indices().map(|(i, _)| i).chain([text.len()]).filter(|&i| i > 0) {
            let prefix = &text[..end];
            let mut p = StreamingToolCallParser::new();
            p.add_chunk(0, prefix, Some("call_1"), Some("f"));
            let done = p.get_completed_tool_calls();
            assert_eq!(done.len(), 1);
            let c = &done[0];
            assert!(c.error.is_none(), "{prefix}: {:?}", c.error);
            assert!(c.args.is_object(), "{prefix}");
            assert_eq!(serde_json::from_str::<Value>(&c.arguments).unwrap(), c.args, "{prefix}");
            assert_eq!(c.repaired, end != text.len(), "{prefix}");
            if end == text.len() {
                assert_eq!(c.arguments, *text);
            }
            assert_eq!(p.has_incomplete_tool_calls(), end != text.len() && (p.get_state(0).depth > 0 || p.get_state(0).in_string));
        }
    }
}

#[test]
fn parser_keeps_interleaved_indices_apart() {
    let texts = [TRICKY_ARGS[0], TRICKY_ARGS[1], TRICKY_ARGS[2]];
    for seed in 0..100 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut queues: Vec<Vec<String>> = texts.iter().map(|t| random_pieces(t, &mut rng, 9)).collect();
        queues.iter_mut().for_each(|q| q.reverse());
        let mut p = StreamingToolCallParser::new();
        // Every call starts (id + name) before arguments flow, as OpenAI streams parallel calls.
        for i in 0..texts.len() {
            p.add_chunk(i, "", Some(&format!("call_{i}")), Some(&format!("tool_{i}")));
        }
        while queues.iter().any(|q| !q.is_empty()) {
            let i = rng.usize(..texts.len());
            if let Some(piece) = queues[i].pop() {
                let id = match rng.u8(..3) {
                    0 => None,
                    1 => Some(String::new()),
                    _ => Some(format!("call_{i}")),
                };
                p.add_chunk(i, &piece, id.as_deref(), None);
            }
        }
        let done = p.get_completed_tool_calls();
        assert_eq!(done.len(), 3, "seed {seed}");
        for (i, c) in done.iter().enumerate() {
            assert_eq!((c.index, c.id.clone(), c.name.clone()), (i, Some(format!("call_{i}")), Some(format!("tool_{i}"))));
            assert_eq!(c.arguments, texts[i], "seed {seed}");
            assert!(!c.repaired);
        }
        assert!(!p.has_conflicting_tool_call_identity() && !p.has_nameless_tool_call() && !p.has_incomplete_tool_calls());
    }
}

#[test]
fn parser_moves_a_new_id_on_an_occupied_index_to_a_free_slot() {
    // Three calls, all at provider index 0, one after another. The later ones repeat their id
    // on the first fragment only; continuations have no id or an empty one.
    for cont_id in [None, Some("")] {
        let mut p = StreamingToolCallParser::new();
        p.add_chunk(0, "", Some("call_a"), Some("read"));
        p.add_chunk(0, "{\"path\":", cont_id, None);
        assert!(p.add_chunk(0, "\"a.txt\"}", cont_id, None).complete);
        let r = p.add_chunk(0, "", Some("call_b"), Some("write"));
        assert_eq!(r.actual_index, Some(1));
        p.add_chunk(0, "{\"path\":\"b", cont_id, None);
        let r = p.add_chunk(0, ".txt\"}", cont_id, None);
        assert_eq!((r.actual_index, r.complete), (Some(1), true));
        // A replay of the first call's last fragment, with its id: ignored.
        let r = p.add_chunk(0, "\"a.txt\"}", Some("call_a"), None);
        assert!(!r.complete);
        assert_eq!(p.get_buffer(0), "{\"path\":\"a.txt\"}");
        let r = p.add_chunk(0, "{\"x\":1}", Some("call_c"), Some("list"));
        assert_eq!((r.actual_index, r.complete), (Some(2), true));
        let done = p.get_completed_tool_calls();
        let got: Vec<_> = done.iter().map(|c| (c.index, c.id.clone().unwrap(), c.name.clone().unwrap(), c.arguments.clone())).collect();
        assert_eq!(
            got,
            vec![
                (0, "call_a".into(), "read".into(), "{\"path\":\"a.txt\"}".into()),
                (1, "call_b".into(), "write".into(), "{\"path\":\"b.txt\"}".into()),
                (2, "call_c".into(), "list".into(), "{\"x\":1}".into()),
            ]
        );
        assert!(!p.has_conflicting_tool_call_identity());
    }
}

#[test]
fn parser_collision_with_ids_on_every_fragment() {
    let mut p = StreamingToolCallParser::new();
    p.add_chunk(0, "{\"q\":1}", Some("call_a"), Some("f"));
    p.add_chunk(0, "{\"q\":", Some("call_b"), Some("g"));
    p.add_chunk(0, "2}", Some("call_b"), None);
    // A repeated complete fragment of a known call is a replay.
    p.add_chunk(0, "2}", Some("call_b"), None);
    let done = p.get_completed_tool_calls();
    assert_eq!(done.iter().map(|c| (c.index, c.arguments.as_str())).collect::<Vec<_>>(), vec![(0, "{\"q\":1}"), (1, "{\"q\":2}")]);
}

#[test]
fn parser_continuation_after_a_complete_call_goes_to_the_most_recent_incomplete_one() {
    // qwen-code's routing: an id-less fragment at an index whose call is complete belongs to
    // the highest incomplete slot.
    let mut p = StreamingToolCallParser::new();
    p.add_chunk(0, "{\"a\":1}", Some("c0"), Some("f"));
    p.add_chunk(1, "{\"b\":", Some("c1"), Some("g"));
    p.add_chunk(0, "2}", None, None);
    let done = p.get_completed_tool_calls();
    assert_eq!(done.iter().map(|c| c.arguments.as_str()).collect::<Vec<_>>(), vec!["{\"a\":1}", "{\"b\":2}"]);
}

#[test]
fn parser_empty_id_blank_name_and_blank_chunks() {
    let mut p = StreamingToolCallParser::new();
    // Blank chunk with nothing else before any call: ignored.
    assert_eq!(p.add_chunk(0, "  ", None, None), ToolCallParseResult::default());
    assert!(p.indices().is_empty());
    p.add_chunk(0, "", Some("call_1"), Some("search"));
    p.add_chunk(0, "{\"q\":\"a", Some(""), Some("  "));
    // Whitespace inside a string is text.
    p.add_chunk(0, "  ", Some(""), None);
    p.add_chunk(0, "b\"}", Some(""), None);
    // Whitespace after the call is complete is ignored.
    p.add_chunk(0, "\n", None, None);
    let done = p.get_completed_tool_calls();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].arguments, "{\"q\":\"a  b\"}");
    assert_eq!(done[0].name.as_deref(), Some("search"));
}

#[test]
fn parser_name_and_arguments_before_the_id() {
    let mut p = StreamingToolCallParser::new();
    p.add_chunk(0, "", None, Some("f"));
    p.add_chunk(0, "{\"a\":", None, None);
    p.add_chunk(0, "", Some("late_id"), None);
    p.add_chunk(0, "1}", None, None);
    let done = p.get_completed_tool_calls();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].id.as_deref(), done[0].arguments.as_str()), (Some("late_id"), "{\"a\":1}"));
}

#[test]
fn parser_conflicting_name_keeps_the_first_and_flags() {
    let mut p = StreamingToolCallParser::new();
    p.add_chunk(0, "{", Some("c"), Some("first"));
    p.add_chunk(0, "}", Some("c"), Some("second"));
    assert!(p.has_conflicting_tool_call_identity());
    assert_eq!(p.get_tool_call_meta(0).name.as_deref(), Some("first"));
}

#[test]
fn parser_no_argument_tools_and_invalid_arguments() {
    let mut p = StreamingToolCallParser::new();
    p.add_chunk(0, "", Some("c0"), Some("now"));
    p.add_chunk(1, "{\"a\":1}}", Some("c1"), Some("extra_brace"));
    p.add_chunk(2, "[1,2]", Some("c2"), Some("array_args"));
    p.add_chunk(3, "{]", Some("c3"), Some("garbage"));
    p.add_chunk(4, "{\"a\":\"unterminated", Some("c4"), Some("cut"));
    assert!(p.has_invalid_tool_call_arguments());
    let done = p.get_completed_tool_calls();
    let by_name = |n: &str| done.iter().find(|c| c.name.as_deref() == Some(n)).unwrap().clone();
    let now = by_name("now");
    assert_eq!((now.args.clone(), now.arguments.as_str(), now.repaired, now.error.is_none()), (json!({}), "{}", false, true));
    for n in ["extra_brace", "garbage"] {
        let c = by_name(n);
        assert_eq!((c.args.clone(), c.arguments.as_str(), c.repaired), (json!({}), "{}", false), "{n}");
        assert!(c.error.as_deref().unwrap().contains("could not be repaired"), "{n}: {:?}", c.error);
    }
    let arr = by_name("array_args");
    assert_eq!((arr.args.clone(), arr.arguments.as_str()), (json!({}), "[1,2]"));
    assert!(arr.error.as_deref().unwrap().contains("not a JSON object"));
    let cut = by_name("cut");
    assert_eq!((cut.args.clone(), cut.arguments.as_str(), cut.repaired), (json!({"a": "unterminated"}), "{\"a\":\"unterminated\"}", true));
    assert!(p.has_incomplete_tool_calls());
}

#[test]
fn parser_nameless_calls_are_not_emitted_and_duplicate_ids_collapse() {
    let mut p = StreamingToolCallParser::new();
    p.add_chunk(0, "{\"a\":1}", Some("c0"), None);
    assert!(p.has_nameless_tool_call());
    assert!(p.get_completed_tool_calls().is_empty());
    p.add_chunk(0, "", None, Some("named_later"));
    assert!(!p.has_nameless_tool_call());
    assert_eq!(p.get_completed_tool_calls().len(), 1);
    p.reset_index(0);
    assert_eq!(p.get_buffer(0), "");
    assert!(p.get_completed_tool_calls().is_empty());
}

#[test]
fn parser_and_repair_never_panic_on_random_input() {
    const ALPHABET: &[&str] = &["{", "}", "[", "]", "\"", ",", ":", "\\", "u", "d", "8", "3", "0", "e", "E", ".", "-", "+", "1", "t", "r", "n", "l", "f", "a", " ", "é", "🎉", "\\\"", "\\u00"];
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..5000 {
        let len = rng.usize(0..40);
        let s: String = (0..len).map(|_| ALPHABET[rng.usize(..ALPHABET.len())]).collect();
        if let Some(fixed) = repair_json(&s) {
            serde_json::from_str::<Value>(&fixed).unwrap();
        }
        let mut p = StreamingToolCallParser::new();
        for (i, piece) in random_pieces(&s, &mut rng, 5).iter().enumerate() {
            let id = (rng.u8(..4) == 0).then(|| format!("id{}", rng.u8(..3)));
            let name = (rng.u8(..4) == 0).then_some("f");
            p.add_chunk(rng.usize(..3), piece, id.as_deref(), if i == 0 { Some("f") } else { name });
        }
        for c in p.get_completed_tool_calls() {
            assert!(c.args.is_object());
            serde_json::from_str::<Value>(&c.arguments).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ChunkAccumulator

/// The DashScope tool-call capture of providers-wire.md §2.4 (reasoning added), usage after
/// the finish chunk.
fn dashscope_tool_stream() -> Vec<ChatChunk> {
    let head = |choices: Value, usage: Value| {
        chunk(json!({"choices": choices, "object": "chat.completion.chunk", "usage": usage, "created": 1770343445,
            "system_fingerprint": null, "model": "qwen-plus", "id": "chatcmpl-f37af769"}))
    };
    vec![
        head(json!([{"delta":{"content":null,"role":"assistant","reasoning_content":""},"index":0,"logprobs":null,"finish_reason":null}]), Value::Null),
        head(json!([{"delta":{"content":null,"reasoning_content":"用户要"},"index":0,"finish_reason":null}]), Value::Null),
        head(json!([{"delta":{"content":null,"reasoning_content":"天气。"},"index":0,"finish_reason":null}]), Value::Null),
        head(json!([{"delta":{"content":"我来查","tool_calls":[{"index":0,"id":"call_0bdcc155f2534f65a05cb1","type":"function","function":{"name":"get_current_weather","arguments":"{\"location\":"}}]},"index":0,"logprobs":null,"finish_reason":null}]), Value::Null),
        head(json!([{"delta":{"tool_calls":[{"function":{"arguments":" \"杭州市\"}"},"index":0,"id":"","type":"function"}]},"index":0}]), Value::Null),
        head(json!([{"delta":{"tool_calls":[{"function":{},"index":1,"id":"call_2","type":"function"}]},"index":0}]), Value::Null),
        head(json!([{"delta":{"tool_calls":[{"function":{"name":"get_time","arguments":""},"index":1,"id":"","type":"function"}]},"index":0}]), Value::Null),
        head(json!([{"delta":{"tool_calls":[{"function":{"arguments":"{\"tz\":\"Asia/Shanghai\"}"},"index":1,"id":"","type":"function"}]},"index":0}]), Value::Null),
        head(json!([{"finish_reason":"tool_calls","delta":{},"index":0,"logprobs":null}]), Value::Null),
        head(json!([]), json!({"prompt_tokens":22,"completion_tokens":17,"total_tokens":39,"prompt_tokens_details":{"cached_tokens":0}})),
    ]
}

#[test]
fn accumulator_rebuilds_the_dashscope_tool_stream() {
    let r = rebuild(&dashscope_tool_stream());
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({
            "id": "chatcmpl-f37af769", "object": "chat.completion", "created": 1770343445, "model": "qwen-plus",
            "system_fingerprint": null,
            "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null, "message": {
                "role": "assistant", "content": "我来查", "reasoning_content": "用户要天气。",
                "tool_calls": [
                    {"index": 0, "id": "call_0bdcc155f2534f65a05cb1", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\": \"杭州市\"}"}},
                    {"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{\"tz\":\"Asia/Shanghai\"}"}}
                ]}}],
            "usage": {"prompt_tokens": 22, "completion_tokens": 17, "total_tokens": 39, "prompt_tokens_details": {"cached_tokens": 0}}
        })
    );
}

#[test]
fn accumulator_merges_finish_and_usage_in_any_order() {
    let usage = json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7});
    let content = chunk(json!({"id": "x", "model": "m", "created": 1, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]}));
    let finish = chunk(json!({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
    let finish_with_usage = chunk(json!({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}));
    let usage_only = chunk(json!({"id": "x", "choices": [], "usage": usage}));
    let last_with_everything = chunk(json!({"id": "x", "model": "m", "created": 1, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}], "usage": usage}));
    let want_usage: Usage = serde_json::from_value(usage.clone()).unwrap();
    let orderings: Vec<Vec<ChatChunk>> = vec![
        vec![content.clone(), finish.clone(), usage_only.clone()],
        vec![content.clone(), finish_with_usage.clone()],
        vec![content.clone(), usage_only.clone(), finish.clone()],
        vec![last_with_everything],
    ];
    for (i, chunks) in orderings.iter().enumerate() {
        let r = rebuild(chunks);
        assert_eq!(r.choices[0].message.text(), "Hi", "{i}");
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("stop"), "{i}");
        assert_eq!(r.usage.as_ref(), Some(&want_usage), "{i}");
    }
    let r = rebuild(&[content, finish]);
    assert_eq!((r.usage, r.choices[0].finish_reason.as_deref()), (None, Some("stop")));
}

#[test]
fn accumulator_keeps_the_first_finish_reason_and_the_last_usage() {
    // OpenRouter sends two finish chunks for tool calls; some hosts send cumulative usage.
    let r = rebuild(&[
        chunk(json!({"id": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "a"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})),
        chunk(json!({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], "usage": null})),
        chunk(json!({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}})),
    ]);
    assert_eq!(r.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.usage.unwrap().total_tokens, 4);
}

#[test]
fn accumulator_rebuilds_multiple_interleaved_choices() {
    let c = |v: Value| chunk(json!({"id": "n2", "model": "m", "created": 3, "choices": v}));
    let chunks = [
        c(json!([{"index": 0, "delta": {"role": "assistant", "content": ""}}, {"index": 1, "delta": {"role": "assistant", "content": ""}}])),
        c(json!([{"index": 1, "delta": {"content": "B1 "}}])),
        c(json!([{"index": 0, "delta": {"content": "A1 "}}, {"index": 1, "delta": {"content": "B2"}}])),
        c(json!([{"index": 1, "delta": {}, "finish_reason": "length"}])),
        c(json!([{"index": 0, "delta": {"content": "A2", "tool_calls": [{"index": 0, "id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}])),
    ];
    let mut acc = ChunkAccumulator::default();
    for (i, ch) in chunks.iter().enumerate() {
        acc.push(ch);
        assert_eq!(acc.all_finished(), i == chunks.len() - 1);
    }
    let r = acc.to_response();
    assert_eq!(r.choices.len(), 2);
    assert_eq!((r.choices[0].index, r.choices[0].message.text(), r.choices[0].finish_reason.as_deref()), (0, "A1 A2".into(), Some("tool_calls")));
    assert_eq!((r.choices[1].index, r.choices[1].message.text(), r.choices[1].finish_reason.as_deref()), (1, "B1 B2".into(), Some("length")));
    assert_eq!(r.choices[0].message.tool_calls.as_ref().unwrap().len(), 1);
    assert!(r.choices[1].message.tool_calls.is_none());
}

#[test]
fn accumulator_joins_reasoning_content_and_parallel_tools_together() {
    let c = |delta: Value| chunk(json!({"id": "r", "choices": [{"index": 0, "delta": delta}]}));
    let chunks = vec![
        c(json!({"role": "assistant", "reasoning_content": "Think", "content": null})),
        c(json!({"reasoning_content": "ing…", "content": "Ans", "tool_calls": [
            {"index": 0, "id": "a", "type": "function", "function": {"name": "one", "arguments": "{\"x\":\"[\\\""}},
            {"index": 1, "id": "b", "type": "function", "function": {"name": "two", "arguments": ""}}]})),
        c(json!({"content": "wer", "tool_calls": [{"index": 1, "function": {"arguments": "{\"y\":"}}, {"index": 0, "function": {"arguments": "]\"}"}}]})),
        c(json!({"tool_calls": [{"index": 1, "function": {"arguments": "[1,{\"z\":null}]}"}}]})),
        chunk(json!({"id": "r", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})),
    ];
    let r = rebuild(&chunks);
    let m = &r.choices[0].message;
    assert_eq!(m.reasoning_content, Some(Some("Thinking…".into())));
    assert_eq!(m.content, Some(Some(Content::Text("Answer".into()))));
    let calls = m.tool_calls.as_ref().unwrap();
    let args: Vec<_> = calls.iter().map(|t| t.function.as_ref().unwrap().arguments.clone().unwrap()).collect();
    assert_eq!(args, vec!["{\"x\":\"[\\\"]\"}".to_string(), "{\"y\":[1,{\"z\":null}]}".to_string()]);
    assert_eq!(calls.iter().map(|t| t.id.clone().unwrap()).collect::<Vec<_>>(), vec!["a", "b"]);
}

#[test]
fn accumulator_repairs_truncated_arguments_and_warns() {
    let mut acc = ChunkAccumulator::default();
    acc.push(&chunk(json!({"id": "t", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
        {"index": 0, "id": "c", "type": "function", "function": {"name": "write", "arguments": "{\"path\":\"a.txt\",\"body\":\"hel"}}]}}]})));
    acc.push(&chunk(json!({"id": "t", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})));
    let r = acc.to_response();
    let f = r.choices[0].message.tool_calls.as_ref().unwrap()[0].function.clone().unwrap();
    assert_eq!(f.arguments.as_deref(), Some("{\"path\":\"a.txt\",\"body\":\"hel\"}"));
    assert!(acc.has_repaired_tool_calls());
    let kinds: Vec<_> = acc.warnings().iter().map(|w| (w.kind, w.tool_call)).collect();
    assert!(kinds.contains(&(WarningKind::RepairedArguments, Some(0))), "{kinds:?}");
    assert!(kinds.contains(&(WarningKind::TruncatedToolCall, Some(0))), "{kinds:?}");
    // Unrecoverable text becomes {} with a warning, never a panic.
    let r = rebuild(&[chunk(json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{\"a\" 1}"}}]}, "finish_reason": "tool_calls"}]}))]);
    assert_eq!(r.choices[0].message.tool_calls.as_ref().unwrap()[0].function.as_ref().unwrap().arguments.as_deref(), Some("{}"));
}

#[test]
fn accumulator_keeps_unknown_fields_where_they_make_sense() {
    let r = rebuild(&[
        chunk(json!({"id": "u", "object": "chat.completion.chunk", "model": "m", "created": 9, "system_fingerprint": "fp_1", "service_tier": "default", "obfuscation": "xyz",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null}, "logprobs": {"content": [{"token": "a", "logprob": -0.1}]}}]})),
        chunk(json!({"id": "u", "system_fingerprint": "fp_other", "obfuscation": "abc",
            "choices": [{"index": 0, "delta": {"content": "ab", "reasoning": "r1", "function_call": {"name": "legacy", "arguments": "{\"a\""}}, "logprobs": {"content": [{"token": "b", "logprob": -0.2}]}}]})),
        chunk(json!({"id": "u", "choices": [{"index": 0, "delta": {"reasoning": "r2", "function_call": {"arguments": ":1}"}}, "finish_reason": "function_call", "native_finish_reason": "STOP",
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}]})),
    ]);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["system_fingerprint"], "fp_1");
    assert_eq!(v["service_tier"], "default");
    assert!(v.get("obfuscation").is_none());
    let choice = &v["choices"][0];
    assert_eq!(choice["logprobs"]["content"].as_array().unwrap().len(), 2);
    assert_eq!(choice["native_finish_reason"], "STOP");
    assert!(choice.get("usage").is_none());
    assert_eq!(choice["message"]["refusal"], Value::Null);
    assert_eq!(choice["message"]["reasoning"], "r1r2");
    assert_eq!(choice["message"]["function_call"], json!({"name": "legacy", "arguments": "{\"a\":1}"}));
    assert_eq!(v["usage"]["total_tokens"], 3);
}

#[test]
fn accumulator_keeps_deltas_after_finish_and_warns() {
    let mut acc = ChunkAccumulator::default();
    acc.push(&chunk(json!({"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"}]})));
    acc.push(&chunk(json!({"choices": [{"index": 0, "delta": {"content": "b"}}]})));
    assert_eq!(acc.to_response().choices[0].message.text(), "ab");
    assert_eq!(acc.warnings()[0].kind, WarningKind::DeltaAfterFinish);
}

// ---------------------------------------------------------------------------------------------
// Random re-chunking

/// A realistic two-choice stream: reasoning, content with escapes and emoji, two parallel tool
/// calls with tricky arguments, `logprobs: null`, `system_fingerprint`, usage last.
fn realistic_stream() -> Vec<ChatChunk> {
    let c = |choices: Value| chunk(json!({"id": "chatcmpl-real", "object": "chat.completion.chunk", "created": 1758691199, "model": "qwen3-coder-plus", "system_fingerprint": null, "usage": null, "choices": choices}));
    vec![
        c(json!([{"index": 0, "delta": {"role": "assistant", "content": null, "reasoning_content": ""}, "logprobs": null, "finish_reason": null}])),
        c(json!([{"index": 0, "delta": {"content": null, "reasoning_content": "嗯，用户想知道"}, "finish_reason": null}, {"index": 1, "delta": {"role": "assistant", "content": ""}, "logprobs": null}])),
        c(json!([{"index": 0, "delta": {"reasoning_content": " two cities' weather."}}, {"index": 1, "delta": {"content": "Hello 🎉 \"world\"\n"}}])),
        c(json!([{"index": 0, "delta": {"content": "Let me check {both} cities…"}}])),
        c(json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_182fe5237c7046da9bd3a992", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}}])),
        c(json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "", "type": "function", "function": {"arguments": TRICKY_ARGS[3]}}]}}])),
        c(json!([{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "shell", "arguments": &TRICKY_ARGS[2][..40]}}]}}])),
        c(json!([{"index": 0, "delta": {"tool_calls": [{"index": 1, "function": {"arguments": &TRICKY_ARGS[2][40..]}}]}}, {"index": 1, "delta": {"content": "Bye."}, "finish_reason": "stop"}])),
        c(json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])),
        chunk(json!({"id": "chatcmpl-real", "object": "chat.completion.chunk", "created": 1758691199, "model": "qwen3-coder-plus", "system_fingerprint": null, "choices": [],
            "usage": {"prompt_tokens": 347, "completion_tokens": 19, "total_tokens": 366, "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 8}}})),
    ]
}

enum Ev {
    Role,
    Reasoning(String),
    Content(String),
    ToolHead(usize),
    ToolArgs(usize, String),
}

/// The response as a random but valid chunk stream: random piece sizes, tool calls and
/// choices interleaved, several events per chunk, continuation ids absent/empty/repeated,
/// finish on the last delta or separate, usage on the last chunk or in a `choices: []` chunk,
/// ids/model/created only sometimes repeated, empty deltas sprinkled in.
fn random_rechunk(r: &ChatResponse, rng: &mut fastrand::Rng) -> Vec<ChatChunk> {
    // Per choice, the event sequence (per-field order kept, fields interleaved).
    let mut per_choice: Vec<(u32, Vec<Ev>)> = Vec::new();
    for c in &r.choices {
        let m = &c.message;
        let mut streams: Vec<Vec<Ev>> = Vec::new();
        if let Some(Some(s)) = &m.reasoning_content {
            streams.push(random_pieces(s, rng, 6).into_iter().map(Ev::Reasoning).collect());
        }
        if let Some(Some(Content::Text(s))) = &m.content {
            streams.push(random_pieces(s, rng, 6).into_iter().map(Ev::Content).collect());
        }
        for (i, tc) in m.tool_calls.iter().flatten().enumerate() {
            let args = tc.function.as_ref().and_then(|f| f.arguments.clone()).unwrap_or_default();
            let mut s = vec![Ev::ToolHead(i)];
            s.extend(random_pieces(&args, rng, 7).into_iter().map(|p| Ev::ToolArgs(i, p)));
            streams.push(s);
        }
        streams.iter_mut().for_each(|s| s.reverse());
        let mut evs = vec![Ev::Role];
        while streams.iter().any(|s| !s.is_empty()) {
            let live: Vec<usize> = (0..streams.len()).filter(|&i| !streams[i].is_empty()).collect();
            let k = live[rng.usize(..live.len())];
            evs.push(streams[k].pop().unwrap());
        }
        per_choice.push((c.index, evs));
    }
    per_choice.iter_mut().for_each(|(_, e)| e.reverse());

    let usage_null = rng.bool();
    let new_chunk = |rng: &mut fastrand::Rng, first: bool| {
        let keep = first || rng.bool();
        ChatChunk {
            id: if keep { r.id.clone() } else { String::new() },
            object: "chat.completion.chunk".into(),
            created: if keep { r.created } else { 0 },
            model: if keep { r.model.clone() } else { String::new() },
            choices: Vec::new(),
            usage: usage_null.then_some(None),
            extra: if keep { r.extra.clone() } else { Default::default() },
        }
    };
    let mut out: Vec<ChatChunk> = Vec::new();
    let mut cur = new_chunk(rng, true);
    let mut finish_pending: Vec<u32> = Vec::new();
    let message_of = |idx: u32| r.choices.iter().find(|c| c.index == idx).unwrap();
    while per_choice.iter().any(|(_, e)| !e.is_empty()) || !finish_pending.is_empty() {
        // Either emit a pending finish as its own entry, or the next event of a random choice.
        if !finish_pending.is_empty() && (rng.bool() || per_choice.iter().all(|(_, e)| e.is_empty())) {
            let idx = finish_pending.remove(rng.usize(..finish_pending.len()));
            if cur.choices.iter().any(|c| c.index == idx) || rng.bool() {
                out.push(std::mem::replace(&mut cur, new_chunk(rng, false)));
            }
            let fr = message_of(idx).finish_reason.clone();
            cur.choices.push(ChunkChoice { index: idx, delta: Delta::default(), finish_reason: fr, extra: Default::default() });
            continue;
        }
        let live: Vec<usize> = (0..per_choice.len()).filter(|&i| !per_choice[i].1.is_empty()).collect();
        let k = live[rng.usize(..live.len())];
        let idx = per_choice[k].0;
        let ev = per_choice[k].1.pop().unwrap();
        let c = message_of(idx);
        let m = &c.message;
        // Find or open this choice's entry in the current chunk; open a new chunk when the
        // field is taken or at random.
        let pos = cur.choices.iter().position(|ch| ch.index == idx);
        let conflicts = pos.is_some_and(|p| {
            let d = &cur.choices[p].delta;
            cur.choices[p].finish_reason.is_some()
                || match &ev {
                    Ev::Role => true,
                    Ev::Reasoning(_) => d.reasoning_content.is_some(),
                    Ev::Content(_) => d.content.is_some(),
                    Ev::ToolHead(_) | Ev::ToolArgs(..) => false,
                }
        });
        if conflicts || (!cur.choices.is_empty() && rng.u8(..3) == 0) {
            out.push(std::mem::replace(&mut cur, new_chunk(rng, false)));
        }
        let p = match cur.choices.iter().position(|ch| ch.index == idx) {
            Some(p) => p,
            None => {
                cur.choices.push(ChunkChoice { index: idx, ..Default::default() });
                cur.choices.len() - 1
            }
        };
        let entry = &mut cur.choices[p];
        let d = &mut entry.delta;
        match ev {
            Ev::Role => {
                d.role = Some(m.role.clone());
                d.content = m.content.as_ref().map(|c| c.as_ref().map(|_| String::new()));
                d.reasoning_content = m.reasoning_content.as_ref().map(|r| r.as_ref().map(|_| String::new()));
                d.extra = m.extra.clone();
                entry.extra = c.extra.clone();
            }
            Ev::Reasoning(s) => d.reasoning_content = Some(Some(s)),
            Ev::Content(s) => d.content = Some(Some(s)),
            Ev::ToolHead(i) => {
                let tc = &m.tool_calls.as_ref().unwrap()[i];
                let f = tc.function.clone().unwrap();
                d.tool_calls.get_or_insert_with(Vec::new).push(ToolCall {
                    index: Some(i as u32),
                    id: tc.id.clone(),
                    kind: tc.kind.clone(),
                    function: Some(FunctionCall { name: f.name, arguments: Some(String::new()), extra: f.extra }),
                    extra: tc.extra.clone(),
                });
            }
            Ev::ToolArgs(i, s) => {
                let tc = &m.tool_calls.as_ref().unwrap()[i];
                let id = match rng.u8(..3) {
                    0 => None,
                    1 => Some(String::new()),
                    _ => tc.id.clone(),
                };
                d.tool_calls.get_or_insert_with(Vec::new).push(ToolCall {
                    index: Some(i as u32),
                    id,
                    kind: rng.bool().then(|| "function".to_string()),
                    function: Some(FunctionCall { arguments: Some(s), ..Default::default() }),
                    ..Default::default()
                });
            }
        }
        if per_choice[k].1.is_empty() {
            if rng.bool() {
                cur.choices[p].finish_reason = c.finish_reason.clone();
            } else {
                finish_pending.push(idx);
            }
        }
        if rng.u8(..8) == 0 {
            // An empty delta for some choice: a no-op.
            out.push(std::mem::replace(&mut cur, new_chunk(rng, false)));
            cur.choices.push(ChunkChoice { index: idx, ..Default::default() });
        }
    }
    if !cur.choices.is_empty() {
        out.push(cur);
    }
    if let Some(u) = &r.usage {
        if rng.bool() {
            out.last_mut().unwrap().usage = Some(Some(u.clone()));
        } else {
            let mut last = new_chunk(rng, false);
            last.usage = Some(Some(u.clone()));
            out.push(last);
        }
    }
    out
}

#[test]
fn random_rechunking_rebuilds_the_same_response_200_times() {
    let original = rebuild(&realistic_stream());
    // The rebuilt response is what the stream said.
    let m0 = &original.choices[0].message;
    assert_eq!(m0.reasoning_content, Some(Some("嗯，用户想知道 two cities' weather.".into())));
    assert_eq!(m0.text(), "Let me check {both} cities…");
    let args: Vec<_> = m0.tool_calls.as_ref().unwrap().iter().map(|t| t.function.as_ref().unwrap().arguments.clone().unwrap()).collect();
    assert_eq!(args, vec![TRICKY_ARGS[3].to_string(), TRICKY_ARGS[2].to_string()]);
    assert_eq!(original.choices[1].message.text(), "Hello 🎉 \"world\"\nBye.");
    assert_eq!(original.usage.as_ref().unwrap().total_tokens, 366);

    let mut rng = fastrand::Rng::with_seed(0x5eed);
    for round in 0..200 {
        let chunks = random_rechunk(&original, &mut rng);
        let mut acc = ChunkAccumulator::default();
        chunks.iter().for_each(|c| acc.push(c));
        assert!(acc.all_finished(), "round {round}");
        assert!(acc.warnings().is_empty(), "round {round}: {:?}", acc.warnings());
        assert_eq!(acc.to_response(), original, "round {round}: {}", serde_json::to_string(&chunks).unwrap());
    }
}

// ---------------------------------------------------------------------------------------------
// response_to_chunks / response_to_stream round trips

fn sample_responses() -> Vec<ChatResponse> {
    vec![
        response(json!({"id": "chatcmpl-text", "object": "chat.completion", "created": 1700000000, "model": "gpt-4", "system_fingerprint": "fp_44709d6fcb",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there, how may I assist you today? 日本語 🎉", "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21, "completion_tokens_details": {"reasoning_tokens": 0}}})),
        response(json!({"id": "chatcmpl-a746f12b", "object": "chat.completion", "created": 1758691199, "model": "qwen3-coder-plus", "system_fingerprint": null,
            "choices": [{"finish_reason": "tool_calls", "index": 0, "logprobs": null, "message": {"role": "assistant", "content": "",
                "tool_calls": [
                    {"function": {"name": "list_directory", "arguments": "{\"path\": \".\"}"}, "index": 0, "id": "call_182fe5237c7046da9bd3a992", "type": "function"},
                    {"function": {"name": "tricky", "arguments": TRICKY_ARGS[0]}, "index": 1, "id": "call_2", "type": "function"},
                    {"function": {"name": "no_args", "arguments": "{}"}, "index": 2, "id": "call_3", "type": "function"}]}}],
            "usage": {"completion_tokens": 19, "prompt_tokens": 347, "prompt_tokens_details": {"cached_tokens": 0}, "total_tokens": 366}})),
        response(json!({"id": "r-null", "object": "chat.completion", "created": 5, "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [{"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\":[1,2]}"}}]}}]})),
        response(json!({"id": "r-reason", "object": "chat.completion", "created": 6, "model": "qwq",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "42", "reasoning_content": "Let me think… 6×7 = 42."}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 30, "total_tokens": 33, "completion_tokens_details": {"reasoning_tokens": 25}}})),
        response(json!({"id": "r-n3", "object": "chat.completion", "created": 7, "model": "m",
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "first answer"}},
                {"index": 1, "finish_reason": "length", "message": {"role": "assistant", "content": "second, cut"}},
                {"index": 2, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "",
                    "tool_calls": [{"index": 0, "id": "c9", "type": "function", "function": {"name": "g", "arguments": "{\"k\":\"v\"}"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}})),
    ]
}

#[test]
fn response_to_chunks_round_trips_for_every_chunk_size_and_usage_mode() {
    for r in sample_responses() {
        for size in [None, Some(1), Some(2), Some(3), Some(7), Some(64), Some(0)] {
            for include_usage in [None, Some(true), Some(false)] {
                let chunks = response_to_stream_with(&r, &ChunkingOptions { chunk_size: size, include_usage });
                let ctx = format!("{} size {size:?} usage {include_usage:?}", r.id);
                assert!(chunks.iter().all(|c| c.id == r.id && c.created == r.created && c.model == r.model), "{ctx}");
                for c in &chunks {
                    for ch in &c.choices {
                        let d = &ch.delta;
                        if let (Some(n), Some(Some(s))) = (size.filter(|&n| n > 0), &d.content) {
                            assert!(s.chars().count() <= n, "{ctx}");
                        }
                    }
                }
                let mut want = r.clone();
                if include_usage == Some(false) {
                    want.usage = None;
                }
                let back = rebuild(&chunks);
                assert_eq!(back, want, "{ctx}");
            }
        }
        assert_eq!(response_to_stream(&r), response_to_chunks(&r));
        assert_eq!(rebuild(&response_to_chunks(&r)), r);
    }
}

#[test]
fn response_to_stream_has_the_openai_shape() {
    let r = &sample_responses()[1];
    let chunks = response_to_stream_with(r, &ChunkingOptions { chunk_size: Some(4), include_usage: Some(true) });
    let v: Vec<Value> = chunks.iter().map(|c| serde_json::to_value(c).unwrap()).collect();
    // First: the role chunk.
    assert_eq!(v[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    assert_eq!(v[0]["choices"][0]["logprobs"], Value::Null);
    // Tool call heads carry id/type/name and empty arguments; the rest only arguments.
    let heads: Vec<&Value> = v.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0].as_object().map(|_| &c["choices"][0]["delta"]["tool_calls"][0])).filter(|t| t.get("id").is_some()).collect();
    assert_eq!(heads.len(), 3);
    assert_eq!(heads[0], &json!({"index": 0, "id": "call_182fe5237c7046da9bd3a992", "type": "function", "function": {"name": "list_directory", "arguments": ""}}));
    // Every chunk but the last has "usage": null; the last has choices: [] and the usage.
    let (last, rest) = v.split_last().unwrap();
    assert!(rest.iter().all(|c| c["usage"].is_null() && c.as_object().unwrap().contains_key("usage")));
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["total_tokens"], 366);
    let finish = &rest[rest.len() - 1];
    assert_eq!(finish["choices"][0], json!({"index": 0, "delta": {}, "finish_reason": "tool_calls"}));
    assert!(rest.iter().all(|c| c["object"] == "chat.completion.chunk" && c.as_object().unwrap().contains_key("system_fingerprint")));
}

// ---------------------------------------------------------------------------------------------
// StreamingControl

fn seed_workflow() -> StreamingControl {
    StreamingControl::from_value(&json!({
        "type": "streaming-control",
        "config": {"streamingToNonStreaming": true, "nonStreamingToStreaming": false}
    }))
    .unwrap()
}

#[test]
fn seed_usage_example_gives_the_documented_result() {
    let w = seed_workflow();
    w.initialize();
    let request = json!({
        "model": "gpt-4",
        "messages": [{"role": "user", "content": "Hello"}],
        "stream": true,
        "stream_options": {"include_usage": true}
    });
    let (converted, original) = w.process_incoming(&request).unwrap();
    // 结果: { model: 'gpt-4', messages: [...], stream: false, _originalStream: true }
    assert_eq!(converted, json!({"model": "gpt-4", "messages": [{"role": "user", "content": "Hello"}], "stream": false, "_originalStream": true}));
    assert_eq!(original, Original { stream: Some(true), stream_options: Some(json!({"include_usage": true})), conversion: Conversion::StreamToNonStream });
    assert_eq!(serde_json::to_value(&original).unwrap(), json!({"_originalStream": true, "_originalStreamOptions": {"include_usage": true}, "conversion": "streamToNonStream"}));
    let mut upstream = converted.clone();
    strip_markers(&mut upstream);
    assert_eq!(upstream, json!({"model": "gpt-4", "messages": [{"role": "user", "content": "Hello"}], "stream": false}));
    // The body alone tells what the caller wanted.
    let from_body = Original::from_request(&converted);
    assert!(from_body.wants_stream());
    assert_eq!(from_body.conversion, Conversion::StreamToNonStream);
    // Processing twice changes nothing.
    assert_eq!(w.process_incoming(&converted).unwrap().0, converted);
}

#[test]
fn stream_caller_gets_a_correct_chunk_stream_from_a_whole_response() {
    let w = StreamingControl::from_value(&json!({"chunkSize": 5})).unwrap();
    let (_, original) = w.process_incoming(&json!({"model": "m", "messages": [], "stream": true, "stream_options": {"include_usage": true}})).unwrap();
    for r in sample_responses() {
        let value = serde_json::to_value(&r).unwrap();
        let Outgoing::Chunks(chunks) = w.process_outgoing_response(&value, &original).unwrap() else { panic!("not chunks") };
        let last = chunks.last().unwrap();
        if r.usage.is_some() {
            assert_eq!(last["choices"], json!([]));
            assert_eq!(last["usage"], serde_json::to_value(&r.usage).unwrap());
        }
        for c in &chunks {
            if let Some(s) = c["choices"][0]["delta"]["content"].as_str() {
                assert!(s.chars().count() <= 5);
            }
        }
        // Collected back, it is the same response.
        let mut collector = w.collector();
        chunks.iter().for_each(|c| collector.push(c).unwrap());
        assert_eq!(collector.finish().unwrap(), value);
    }
    // Without include_usage there is no usage chunk.
    let (_, plain) = w.process_incoming(&json!({"model": "m", "messages": [], "stream": true})).unwrap();
    let r = serde_json::to_value(&sample_responses()[0]).unwrap();
    let chunks = w.process_outgoing_response(&r, &plain).unwrap().into_value();
    assert!(chunks.as_array().unwrap().iter().all(|c| c.get("usage").is_none() && !c["choices"].as_array().unwrap().is_empty()));
}

#[test]
fn preserve_stream_options_off_forgets_include_usage() {
    let w = StreamingControl::from_value(&json!({"preserveStreamOptions": false})).unwrap();
    let (body, original) = w.process_incoming(&json!({"model": "m", "messages": [], "stream": true, "stream_options": {"include_usage": true}})).unwrap();
    assert!(body.get("stream_options").is_none());
    assert_eq!(original.stream_options, None);
    let r = serde_json::to_value(&sample_responses()[0]).unwrap();
    let chunks = w.process_outgoing_response(&r, &original).unwrap().into_value();
    assert!(chunks.as_array().unwrap().iter().all(|c| !c["choices"].as_array().unwrap().is_empty()));
}

#[test]
fn non_stream_caller_gets_one_response_from_a_streamed_upstream() {
    let w = StreamingControl::from_value(&json!({"nonStreamingToStreaming": true})).unwrap();
    let (body, original) = w.process_incoming(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})).unwrap();
    assert_eq!(body, json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true, "stream_options": {"include_usage": true}, "_originalStream": false}));
    assert_eq!(original.conversion, Conversion::NonStreamToStream);
    assert!(!original.wants_stream());
    // The upstream's chunks, as JSON, with the [DONE] terminator.
    let mut chunks: Vec<Value> = dashscope_tool_stream().iter().map(|c| serde_json::to_value(c).unwrap()).collect();
    chunks.push(json!("[DONE]"));
    let Outgoing::Response(r) = w.process_outgoing_response(&Value::Array(chunks.clone()), &original).unwrap() else { panic!("not a response") };
    assert_eq!(r, serde_json::to_value(rebuild(&dashscope_tool_stream())).unwrap());
    assert_eq!(r["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"location\": \"杭州市\"}");
    assert_eq!(r["usage"]["total_tokens"], 39);
    // Incrementally.
    let mut c = w.collector();
    for v in &chunks {
        c.push(v).unwrap();
    }
    assert_eq!(c.chunk_count(), chunks.len() - 1);
    assert!(c.warnings().is_empty());
    assert_eq!(c.finish().unwrap(), r);
    // A stream caller gets the chunks as they are.
    let (_, wants_stream) = w.process_incoming(&json!({"model": "m", "messages": [], "stream": true})).unwrap();
    assert_eq!(w.process_outgoing_response(&Value::Array(chunks.clone()), &wants_stream).unwrap(), Outgoing::Chunks(chunks[..chunks.len() - 1].to_vec()));
}

#[test]
fn pass_through_when_nothing_is_converted() {
    let w = StreamingControl::from_value(&json!({"streamingToNonStreaming": false})).unwrap();
    let req = json!({"model": "m", "messages": [], "stream": true, "stream_options": {"include_usage": true}});
    let (body, original) = w.process_incoming(&req).unwrap();
    assert_eq!(body, req);
    assert_eq!(original.conversion, Conversion::None);
    assert!(original.include_usage());
    // An upstream that ignored stream:true and sent a whole response still streams to the caller.
    let r = serde_json::to_value(&sample_responses()[3]).unwrap();
    let out = w.process_outgoing_response(&r, &original).unwrap();
    assert!(out.is_stream());
    let non_stream = Original::default();
    assert_eq!(w.process_outgoing_response(&r, &non_stream).unwrap(), Outgoing::Response(r.clone()));
    let (body, original) = w.process_incoming(&json!({"model": "m", "messages": []})).unwrap();
    assert_eq!(body, json!({"model": "m", "messages": []}));
    assert_eq!(original, Original::default());
}

#[test]
fn upstream_errors_in_responses_and_streams() {
    let w = seed_workflow();
    let envelope = json!({"error": {"message": "Throttling", "type": "rate_limit", "code": "Throttling.RateQuota"}});
    let e = w.process_outgoing_response(&envelope, &Original::default()).unwrap_err();
    assert!(matches!(&e, Error::Provider { provider_code: Some(c), .. } if c == "Throttling.RateQuota"), "{e:?}");
    let mut c = w.collector();
    assert!(matches!(c.push(&envelope), Err(Error::Provider { .. })));
    c.push(&serde_json::to_value(&dashscope_tool_stream()[3]).unwrap()).unwrap();
    match c.push(&envelope) {
        Err(Error::Stream { partial: Some(p), .. }) => assert_eq!(p["choices"][0]["message"]["content"], "我来查"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(w.collector().finish(), Err(Error::Stream { partial: None, .. })));
    let bad = w.process_outgoing_response(&json!([{"choices": "nope"}]), &Original::default()).unwrap_err();
    assert!(matches!(&bad, Error::Validation { field: Some(f), .. } if f == "chunks[0]"), "{bad:?}");
    let bad = w.process_outgoing_response(&json!("text"), &Original::default()).unwrap_err();
    assert!(matches!(&bad, Error::Validation { field: Some(f), .. } if f == "response"), "{bad:?}");
    let chunk = w.error_chunk(&Error::Connection { message: "reset".into() });
    assert_eq!(chunk["choices"][0]["finish_reason"], "error");
    assert_eq!(chunk["choices"][0]["delta"]["content"], "Error: reset");
    assert_eq!(chunk["_errorContext"]["workflowType"], "streaming-control");
    assert_eq!(w.status().metrics.error_count, 3);
}

#[test]
fn bad_configs_and_requests_are_validation_errors_naming_the_field() {
    let field = |v: Value| match StreamingControl::from_value(&v) {
        Err(Error::Validation { field: Some(f), message }) => (f, message),
        other => panic!("{v}: {other:?}"),
    };
    assert_eq!(field(json!({"chunkSize": 0})).0, "chunkSize");
    assert_eq!(field(json!({"chunkSize": -3})).0, "chunkSize");
    assert_eq!(field(json!({"bufferSize": 1.5})).0, "bufferSize");
    assert_eq!(field(json!({"timeout": 0})).0, "timeout");
    assert_eq!(field(json!({"streamingToNonStreaming": "yes"})).0, "streamingToNonStreaming");
    assert_eq!(field(json!({"nonStreamingToStreaming": 1})).0, "nonStreamingToStreaming");
    assert_eq!(field(json!({"preserveStreamOptions": "no"})).0, "preserveStreamOptions");
    assert_eq!(field(json!({"type": "streaming-control", "config": {"chunkSize": "big"}})).0, "config.chunkSize");
    assert_eq!(field(json!({"type": "other", "config": {}})).0, "type");
    assert_eq!(field(json!({"config": 5})).0, "config");
    assert_eq!(field(json!("streaming")).0, "config");
    assert_eq!(field(json!({"id": 7})).0, "id");
    let (f, message) = field(json!({"streamingToNonStreaming": true, "enableStreamingToNonStreaming": false}));
    assert_eq!(f, "streamingToNonStreaming");
    assert!(message.contains("disagree"), "{message}");
    assert_eq!(field(json!({"chunkSize": 0})).1, "chunkSize must be a positive integer, got 0");

    // Defaults and aliases.
    assert_eq!(StreamingControlConfig::from_value(&Value::Null).unwrap(), StreamingControlConfig::default());
    let c = StreamingControlConfig::from_value(&json!({"enableNonStreamingToStreaming": true, "preserveStreamingOptions": false, "timeout": 1500})).unwrap();
    assert!(c.non_streaming_to_streaming && !c.preserve_stream_options && c.streaming_to_non_streaming);
    assert_eq!(c.timeout_ms, 1500);

    let w = seed_workflow();
    let req_field = |v: Value| match w.process_incoming(&v) {
        Err(Error::Validation { field: Some(f), .. }) => f,
        other => panic!("{v}: {other:?}"),
    };
    assert_eq!(req_field(json!({"model": "m", "stream": "true"})), "stream");
    assert_eq!(req_field(json!({"model": "m", "stream": true, "stream_options": 5})), "stream_options");
    assert_eq!(req_field(json!([1])), "request");
}

#[test]
fn status_has_the_seed_shape() {
    let w = StreamingControl::from_value(&json!({"id": "wf-1", "type": "streaming-control", "config": {"chunkSize": 64}})).unwrap();
    assert!(!w.status().is_initialized);
    w.initialize();
    let (_, o) = w.process_incoming(&json!({"model": "m", "messages": [], "stream": true})).unwrap();
    w.process_incoming(&json!({"model": "m", "messages": []})).unwrap();
    w.process_outgoing_response(&serde_json::to_value(&sample_responses()[0]).unwrap(), &o).unwrap();
    let s = serde_json::to_value(w.status()).unwrap();
    assert_eq!(s["id"], "wf-1");
    assert_eq!(s["type"], "streaming-control");
    assert_eq!(s["workflowType"], "streaming-converter");
    assert_eq!(s["isInitialized"], true);
    assert_eq!(
        s["config"],
        json!({"streamingToNonStreaming": true, "nonStreamingToStreaming": false, "bufferSize": 1024, "chunkSize": 64, "timeout": 30000, "preserveStreamOptions": true})
    );
    let m = &s["metrics"];
    assert_eq!((m["processedRequests"].as_u64(), m["streamingRequestsProcessed"].as_u64(), m["errorCount"].as_u64()), (Some(2), Some(1), Some(0)));
    assert_eq!(m["responsesEventsProcessed"], 0);
    assert_eq!(m["streamToNonStreamConversions"], 1);
    assert_eq!(m["chunksEmitted"], 3); // role, content, finish (no usage chunk: include_usage not asked)
    assert!(m["averageProcessingTime"].as_f64().unwrap() >= 0.0);
}

#[test]
fn usage_type_is_unchanged_for_existing_callers() {
    // provider/stream.rs and the scheduler use these as before.
    let r = &sample_responses()[0];
    let chunks = response_to_chunks(r);
    let mut acc = ChunkAccumulator::default();
    chunks.iter().for_each(|c| acc.push(c));
    assert!(acc.all_finished());
    assert_eq!(acc.chunk_count(), chunks.len());
    assert_eq!(acc.to_response().usage, r.usage);
    let _: Option<Usage> = acc.to_response().usage;
}
