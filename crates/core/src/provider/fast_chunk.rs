//! A direct parse of one stream event's JSON into a [`ChatChunk`], without the intermediate
//! `serde_json::Value` and without serde's buffering of `#[serde(flatten)]` structs (together
//! most of the per-chunk CPU of a stream). It builds exactly what
//! `serde_json::from_value::<ChatChunk>(serde_json::from_str(text)?)` builds — unknown fields
//! go to `extra` in their order, `null` and "absent" stay apart — and gives up (`None`) on
//! anything it is not sure about (invalid JSON, a wrong type, a repeated field, no `choices`),
//! so that the caller takes the general path and reports the same errors as before.
//!
//! It also says whether the text is *canonical*: whether handing the upstream's text to the
//! caller unchanged is the same, once parsed, as normalising the chunk and serialising it. That
//! is the case when normalisation changes nothing (an id, `object` `chat.completion.chunk`,
//! `created` in seconds, a model, a `delta` per choice) and every field serialisation writes is
//! already there (`index`, `delta` and `finish_reason` in every choice), with nothing whose
//! serialised form can differ (`usage` other than `null`, `tool_calls`, a `null` role).

use std::fmt;
use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::model::de::{Member, MemberSeed};
use crate::model::{normalize_created, ChatChunk, ChunkChoice, Delta, ToolCall, Usage};

/// The chunk, and whether `text` may be forwarded as it is (see the module comment).
pub(crate) struct FastChunk {
    pub chunk: ChatChunk,
    pub canonical: bool,
    /// Where the `content` string of the (last) delta that has one is in the text, quotes
    /// included: what a following chunk may differ in (see `chunk_template`).
    pub content_span: Option<Range<usize>>,
}

/// `None`: not handled here (or not valid) — use the general path.
pub(crate) fn parse(text: &str) -> Option<FastChunk> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut canonical = true;
    let mut content = None;
    let chunk = de.deserialize_map(ChunkVisitor { canonical: &mut canonical, content: &mut content }).ok()?;
    de.end().ok()?;
    let canonical = canonical
        && !chunk.id.is_empty()
        && chunk.object == "chat.completion.chunk"
        && chunk.created == normalize_created(chunk.created)
        && !chunk.model.is_empty();
    // The literal borrows from `text` (a `RawValue` read from a `&str`).
    let content_span = content.map(|literal: &str| {
        let start = literal.as_ptr() as usize - text.as_ptr() as usize;
        start..start + literal.len()
    });
    Some(FastChunk { chunk, canonical, content_span })
}

/// Marks field `i` as seen; a repeated field is an error (the general path decides).
fn first_time<E: serde::de::Error>(seen: &mut u32, i: usize) -> Result<(), E> {
    if *seen & (1 << i) != 0 {
        return Err(E::custom("repeated field"));
    }
    *seen |= 1 << i;
    Ok(())
}

const CHUNK_FIELDS: &[&str] = &["id", "object", "created", "model", "choices", "usage"];

/// What the visitors below note besides the chunk: whether it is canonical, and the text of
/// the last string `content` literal.
struct ChunkVisitor<'a, 'de> {
    canonical: &'a mut bool,
    content: &'a mut Option<&'de str>,
}

impl<'de> Visitor<'de> for ChunkVisitor<'_, 'de> {
    type Value = ChatChunk;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a chat.completion.chunk object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ChatChunk, A::Error> {
        let mut c = ChatChunk::default();
        let mut seen = 0u32;
        while let Some(key) = map.next_key_seed(MemberSeed(CHUNK_FIELDS))? {
            match key {
                Member::Known(i) => {
                    first_time(&mut seen, i)?;
                    match i {
                        0 => c.id = map.next_value()?,
                        1 => c.object = map.next_value()?,
                        2 => c.created = map.next_value()?,
                        3 => c.model = map.next_value()?,
                        4 => c.choices = map.next_value_seed(ChoicesSeed { canonical: &mut *self.canonical, content: &mut *self.content })?,
                        _ => {
                            let usage: Option<Usage> = map.next_value()?;
                            if usage.is_some() {
                                *self.canonical = false;
                            }
                            c.usage = Some(usage);
                        }
                    }
                }
                Member::Other(k) => {
                    let v: Value = map.next_value()?;
                    c.extra.insert(k, v);
                }
            }
        }
        // Without `choices` the object may be an error envelope: the general path decides.
        if seen & (1 << 4) == 0 {
            return Err(serde::de::Error::custom("no choices"));
        }
        if seen & 0b1111 != 0b1111 {
            *self.canonical = false;
        }
        Ok(c)
    }
}

struct ChoicesSeed<'a, 'de> {
    canonical: &'a mut bool,
    content: &'a mut Option<&'de str>,
}

impl<'de> DeserializeSeed<'de> for ChoicesSeed<'_, 'de> {
    type Value = Vec<ChunkChoice>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ChoicesSeed<'_, 'de> {
    type Value = Vec<ChunkChoice>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of choices")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(1));
        while let Some(c) = seq.next_element_seed(ChoiceSeed { canonical: &mut *self.canonical, content: &mut *self.content })? {
            out.push(c);
        }
        Ok(out)
    }
}

const CHOICE_FIELDS: &[&str] = &["index", "delta", "finish_reason"];

struct ChoiceSeed<'a, 'de> {
    canonical: &'a mut bool,
    content: &'a mut Option<&'de str>,
}

impl<'de> DeserializeSeed<'de> for ChoiceSeed<'_, 'de> {
    type Value = ChunkChoice;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ChoiceSeed<'_, 'de> {
    type Value = ChunkChoice;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a choice object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ChunkChoice, A::Error> {
        let mut c = ChunkChoice::default();
        let mut seen = 0u32;
        while let Some(key) = map.next_key_seed(MemberSeed(CHOICE_FIELDS))? {
            match key {
                Member::Known(i) => {
                    first_time(&mut seen, i)?;
                    match i {
                        0 => c.index = map.next_value()?,
                        1 => c.delta = map.next_value_seed(DeltaSeed { canonical: &mut *self.canonical, content: &mut *self.content })?,
                        _ => c.finish_reason = map.next_value()?,
                    }
                }
                Member::Other(k) => {
                    // Normalisation turns a `message` into the delta: not forwarded as it is.
                    if k == "message" {
                        *self.canonical = false;
                    }
                    let v: Value = map.next_value()?;
                    c.extra.insert(k, v);
                }
            }
        }
        if seen != 0b111 {
            *self.canonical = false;
        }
        Ok(c)
    }
}

const DELTA_FIELDS: &[&str] = &["role", "content", "reasoning_content", "tool_calls"];

struct DeltaSeed<'a, 'de> {
    canonical: &'a mut bool,
    content: &'a mut Option<&'de str>,
}

impl<'de> DeserializeSeed<'de> for DeltaSeed<'_, 'de> {
    type Value = Delta;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DeltaSeed<'_, 'de> {
    type Value = Delta;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a delta object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Delta, A::Error> {
        let mut d = Delta::default();
        let mut seen = 0u32;
        while let Some(key) = map.next_key_seed(MemberSeed(DELTA_FIELDS))? {
            match key {
                Member::Known(i) => {
                    first_time(&mut seen, i)?;
                    match i {
                        0 => {
                            d.role = map.next_value()?;
                            // `"role": null` would not be serialised back.
                            if d.role.is_none() {
                                *self.canonical = false;
                            }
                        }
                        1 => {
                            let literal: &'de RawValue = map.next_value()?;
                            let literal = literal.get();
                            d.content = Some(serde_json::from_str(literal).map_err(serde::de::Error::custom)?);
                            if literal.starts_with('"') {
                                *self.content = Some(literal);
                            }
                        }
                        2 => d.reasoning_content = Some(map.next_value()?),
                        _ => {
                            // Tool-call fragments are serialised in their own shape.
                            *self.canonical = false;
                            d.tool_calls = map.next_value::<Option<Vec<ToolCall>>>()?;
                        }
                    }
                }
                Member::Other(k) => {
                    let v: Value = map.next_value()?;
                    d.extra.insert(k, v);
                }
            }
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the general path builds (the stream's `interpret` before this module).
    fn general(text: &str) -> Option<ChatChunk> {
        let v: Value = serde_json::from_str(text).ok()?;
        serde_json::from_value(v).ok()
    }

    /// The caller's view of a canonical text equals the serialised normalised chunk.
    fn assert_same(text: &str, canonical: bool) {
        let fast = parse(text).unwrap_or_else(|| panic!("not parsed: {text}"));
        assert_eq!(Some(&fast.chunk), general(text).as_ref(), "{text}");
        assert_eq!(fast.canonical, canonical, "{text}");
        if canonical {
            let mut c = fast.chunk.clone();
            c.normalize("other-model", &mut None);
            assert_eq!(c, fast.chunk, "normalisation changes nothing");
            let serialised: Value = serde_json::to_value(&c).unwrap();
            let raw: Value = serde_json::from_str(text).unwrap();
            assert_eq!(serialised, raw, "{text}");
        }
    }

    const ROLE: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#;
    const CONTENT: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"content":" w\u00e9 \"q\""},"finish_reason":null,"logprobs":null}],"system_fingerprint":"fp_1"}"#;
    const FINISH: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;

    #[test]
    fn common_chunks_are_canonical_and_equal_to_the_general_parse() {
        for t in [ROLE, CONTENT, FINISH] {
            assert_same(t, true);
        }
        // Whitespace and key order do not matter; reasoning and unknown delta fields are kept.
        assert_same(
            "{ \"model\":\"m\", \"choices\":[{\"delta\":{\"reasoning_content\":\"hm\",\"content\":null,\"refusal\":null},\"finish_reason\":null,\"index\":1}],\n\"created\":5,\"id\":\"x\",\"object\":\"chat.completion.chunk\" }",
            true,
        );
    }

    #[test]
    fn the_content_span_is_the_content_literal() {
        let fast = parse(CONTENT).unwrap();
        assert_eq!(&CONTENT[fast.content_span.unwrap()], r#"" w\u00e9 \"q\"""#);
        assert_eq!(&ROLE[parse(ROLE).unwrap().content_span.unwrap()], r#""""#);
        // No string content: no span.
        assert!(parse(FINISH).unwrap().content_span.is_none());
        let null = r#"{"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":null},"finish_reason":null}]}"#;
        assert!(parse(null).unwrap().content_span.is_none());
    }

    #[test]
    fn chunks_that_serialise_differently_are_not_canonical() {
        let cases = [
            // usage with numbers: serialised with its own field set.
            r#"{"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            // no finish_reason / no index / no delta: serialisation adds them.
            r#"{"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"a"}}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"delta":{"content":"a"},"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"finish_reason":"stop"}]}"#,
            // normalisation would change it: no id, other object, ms timestamp, no model, a message.
            r#"{"object":"chat.completion.chunk","created":5,"model":"m","choices":[]}"#,
            r#"{"id":"","object":"chat.completion.chunk","created":5,"model":"m","choices":[]}"#,
            r#"{"id":"c","object":"chat.completion","created":5,"model":"m","choices":[]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1700000000000,"model":"m","choices":[]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":[]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":5,"choices":[]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{},"message":{"content":"a"},"finish_reason":null}]}"#,
            // a null role is dropped on serialisation; tool calls have their own shape.
            r#"{"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":null},"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]},"finish_reason":null}]}"#,
        ];
        for t in cases {
            assert_same(t, false);
        }
    }

    #[test]
    fn anything_unsure_goes_to_the_general_path() {
        let cases = [
            "",
            "[1]",
            "\"text\"",
            "{\"id\":\"chatcmpl-x\",\"choices\":[{\"delta\":{\"content\":\"bro",
            r#"{"error":{"message":"boom"}}"#,
            r#"{"status":"434","msg":"bad key","body":null}"#,
            r#"{"id":"c","choices":[],"id":"d"}"#,
            r#"{"id":null,"choices":[]}"#,
            r#"{"id":"c","created":1.5,"choices":[]}"#,
            r#"{"id":"c","choices":[]} trailing"#,
            r#"{"id":"c","choices":[{"index":-1}]}"#,
        ];
        for t in cases {
            assert!(parse(t).is_none(), "{t}");
        }
    }
}

