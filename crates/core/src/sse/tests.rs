use super::*;

fn decode_all(pieces: &[&[u8]]) -> Vec<SseEvent> {
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    for p in pieces {
        d.feed(p, &mut out).unwrap();
    }
    d.finish(&mut out).unwrap();
    out
}

fn ev(event: Option<&str>, data: &str, id: Option<&str>) -> SseEvent {
    SseEvent { event: event.map(Into::into), data: data.into(), id: id.map(Into::into), retry: None }
}

/// A stream exercising every rule: comments, BOM, both `data:` spellings, multi-line data,
/// event names, ids that persist, an id with NUL (ignored), retry, unknown fields, a field
/// without colon, multi-byte UTF-8, an event without data (not dispatched), and `[DONE]`.
const STREAM: &str = "\u{FEFF}: keep-alive comment\n\
data: {\"a\":\"你好\"}\n\
\n\
data:{\"b\":1}\n\
\n\
event: response.created\n\
id: 7\n\
data: line one\n\
data:line two\n\
data\n\
\n\
event: only-type\n\
\n\
id: bad\0id\n\
retry: 1500\n\
unknown: x\n\
data: 😀 ok\n\
\n\
retry: soon\n\
data: [DONE]\n\
\n";

fn expected() -> Vec<SseEvent> {
    let mut with_retry = ev(None, "😀 ok", Some("7"));
    with_retry.retry = Some(1500);
    vec![
        ev(None, "{\"a\":\"你好\"}", None),
        ev(None, "{\"b\":1}", None),
        ev(Some("response.created"), "line one\nline two\n", Some("7")),
        with_retry,
        ev(None, "[DONE]", Some("7")),
    ]
}

fn with_line_endings(s: &str, eol: &str) -> Vec<u8> {
    s.replace('\n', eol).into_bytes()
}

#[test]
fn decodes_every_rule_with_each_line_ending() {
    for eol in ["\n", "\r\n", "\r"] {
        let bytes = with_line_endings(STREAM, eol);
        assert_eq!(decode_all(&[&bytes]), expected(), "eol {eol:?}");
    }
}

#[test]
fn same_events_when_split_at_every_byte_boundary() {
    for eol in ["\n", "\r\n", "\r"] {
        let bytes = with_line_endings(STREAM, eol);
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(decode_all(&[a, b]), expected(), "eol {eol:?} cut {cut}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode_all(&singles), expected(), "eol {eol:?} byte by byte");
    }
}

#[test]
fn same_events_under_random_multi_splits() {
    let mut rng = fastrand::Rng::with_seed(0x5EED);
    for round in 0..2000 {
        let eol = ["\n", "\r\n", "\r"][round % 3];
        let bytes = with_line_endings(STREAM, eol);
        let mut pieces = Vec::new();
        let mut rest: &[u8] = &bytes;
        while !rest.is_empty() {
            let n = rng.usize(0..=rest.len().min(9));
            let (a, b) = rest.split_at(n);
            pieces.push(a);
            rest = b;
        }
        assert_eq!(decode_all(&pieces), expected(), "round {round}");
    }
}

#[test]
fn mixed_line_endings_in_one_stream() {
    let bytes = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r";
    assert_eq!(decode_all(&[bytes]), vec![ev(None, "a\nb\nc", None), ev(None, "d", None)]);
}

#[test]
fn cr_at_the_end_of_a_read_followed_by_lf() {
    assert_eq!(decode_all(&[b"data: x\r", b"\n\r", b"\n"]), vec![ev(None, "x", None)]);
    // A lone CR followed by a new line's content must not swallow the first byte.
    assert_eq!(decode_all(&[b"data: x\r", b"\r", b"data: y\r\r"]), vec![ev(None, "x", None), ev(None, "y", None)]);
}

#[test]
fn finish_flushes_an_event_without_trailing_blank_line() {
    assert_eq!(decode_all(&[b"data: tail"]), vec![ev(None, "tail", None)]);
    assert_eq!(decode_all(&[b"data: tail\n"]), vec![ev(None, "tail", None)]);
    assert!(decode_all(&[b": only a comment"]).is_empty());
}

#[test]
fn events_without_data_are_not_dispatched_but_reset_the_type() {
    let out = decode_all(&[b"event: a\n\ndata: x\n\n"]);
    assert_eq!(out, vec![ev(None, "x", None)]);
}

#[test]
fn invalid_utf8_is_a_typed_error_naming_the_line() {
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    let err = d.feed(b"data: ok\n\ndata: \xff\xfe\n\n", &mut out).unwrap_err();
    assert_eq!(err, SseError::InvalidUtf8 { line: 3 });
    assert_eq!(out.len(), 1, "events before the bad line are delivered");
}

#[test]
fn a_utf8_character_split_across_reads_is_reassembled() {
    let text = "data: 你好😀\n\n".as_bytes();
    for cut in 7..text.len() {
        let (a, b) = text.split_at(cut);
        assert_eq!(decode_all(&[a, b]), vec![ev(None, "你好😀", None)]);
    }
}

#[test]
fn limits_stop_runaway_lines_and_events() {
    let mut out = Vec::new();
    let mut d = SseDecoder::with_limits(8, 1024);
    assert_eq!(d.feed(b"data: 0123456789", &mut out).unwrap_err(), SseError::LineTooLong { line: 1, limit: 8 });
    let mut d = SseDecoder::with_limits(64, 10);
    assert_eq!(
        d.feed(b"data: 12345\ndata: 67890\n", &mut out).unwrap_err(),
        SseError::EventTooLarge { line: 2, limit: 10 }
    );
}

#[test]
fn encoder_output_decodes_back() {
    let mut wire = String::new();
    wire.push_str(&encode_event(Some("response.output_text.delta"), "{\"delta\":\"a\"}", true));
    wire.push_str(&encode_event(None, "multi\nline", false));
    wire.push_str(&encode_event(None, "[DONE]", false));
    assert_eq!(
        decode_all(&[wire.as_bytes()]),
        vec![
            ev(Some("response.output_text.delta"), "{\"delta\":\"a\"}", None),
            ev(None, "multi\nline", None),
            ev(None, "[DONE]", None)
        ]
    );
}
