//! Most chunks of a stream repeat the one before but for their content: the same id, object,
//! created, model, fingerprint and choice fields, a delta with nothing but `content`. Once such a
//! chunk has been parsed (the template), a chunk whose text is the template's with another
//! string in place of the content is recognised by comparing bytes, and is not parsed: it *is*
//! the template with that content (its text differs in one string literal and nowhere else, so
//! it parses to the same object but for that string). Its text is forwarded as the template's
//! would be (the JS binding sends the template once, then only each chunk's content),
//! accumulators add only its content
//! ([`ChunkAccumulator::push_continued`](crate::workflow::ChunkAccumulator::push_continued)),
//! and the typed chunk is built only for whoever asks for it. A text that differs anywhere
//! else takes the full parse, which may give the next template.

use std::ops::Range;
use std::sync::Arc;

use crate::model::ChatChunk;
use crate::workflow::only_content_accumulates;

/// A template: a parsed chunk and its text, shared by the chunks that continue it.
#[derive(Debug)]
pub struct ContentTemplate {
    /// The template's text.
    text: String,
    /// The template's text up to and including the content's opening quote.
    prefix: usize,
    /// The template's text from the content's closing quote on.
    suffix: usize,
    pub(crate) chunk: Arc<ChatChunk>,
}

/// The content of a chunk that continues a template.
#[derive(Debug, Clone)]
pub(crate) enum ContinuedContent {
    /// Where it is in the chunk's text (it has no escapes).
    Span(Range<usize>),
    /// Decoded from escapes.
    Decoded(String),
}

impl ContinuedContent {
    /// The content, given the text of the chunk it belongs to.
    pub fn get<'a>(&'a self, text: &'a str) -> &'a str {
        match self {
            ContinuedContent::Span(span) => &text[span.clone()],
            ContinuedContent::Decoded(s) => s,
        }
    }
}

impl ContentTemplate {
    /// A template from a canonical chunk parsed from `text`, whose content string literal is
    /// at `content` (quotes included); `None` when later chunks repeating it would not add only
    /// their content.
    pub(crate) fn new(text: &str, content: Range<usize>, chunk: Arc<ChatChunk>) -> Option<Self> {
        if !only_content_accumulates(&chunk) || content.len() < 2 {
            return None;
        }
        Some(ContentTemplate { text: text.to_string(), prefix: content.start + 1, suffix: text.len() - (content.end - 1), chunk })
    }

    /// The template's text; the content that continuing chunks replace is the string at
    /// `choices[0].delta.content`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The content string literal (quotes included) of `text`, a chunk that continues this
    /// template.
    pub fn literal<'a>(&self, text: &'a str) -> &'a str {
        &text[self.prefix - 1..text.len() - self.suffix + 1]
    }

    /// The content of `text` when `text` is this template with another content.
    pub(crate) fn continued(&self, text: &str) -> Option<ContinuedContent> {
        let (bytes, template) = (text.as_bytes(), self.text.as_bytes());
        if bytes.len() < self.prefix + self.suffix
            || bytes[..self.prefix] != template[..self.prefix]
            || bytes[bytes.len() - self.suffix..] != template[template.len() - self.suffix..]
        {
            return None;
        }
        // Both ends are next to a quote (ASCII), hence on character boundaries.
        let body = self.prefix..text.len() - self.suffix;
        if text[body.clone()].bytes().all(|b| b != b'"' && b != b'\\' && b >= 0x20) {
            return Some(ContinuedContent::Span(body));
        }
        // Escapes, or something that is not one string literal (a quote that ends it early, a
        // control character, an escape cut in two): the literal must parse as exactly one string.
        serde_json::from_str(self.literal(text)).ok().map(ContinuedContent::Decoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::fast_chunk;

    const TEMPLATE: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}"#;

    fn template(text: &str) -> Option<ContentTemplate> {
        let fast = fast_chunk::parse(text).unwrap();
        assert!(fast.canonical);
        ContentTemplate::new(text, fast.content_span?, Arc::new(fast.chunk))
    }

    fn with_content(literal: &str) -> String {
        TEMPLATE.replace(r#""Hello""#, literal)
    }

    /// Whenever a text is taken as continuing the template, it parses to the template with
    /// that content; whenever it is not, it differs elsewhere or is not valid.
    #[test]
    fn a_continued_chunk_is_what_parsing_it_gives() {
        let t = template(TEMPLATE).expect("a template");
        let literals = [
            r#"" world""#,
            r#""""#,
            r#""wé 😀 \"q\" \\ \n \u00e9 \ud83d\ude00""#,
            r#""tab\there""#,
            r#""a\u0000b""#,
            r#""}]}""#,
        ];
        for literal in literals {
            let text = with_content(literal);
            let content = t.continued(&text).unwrap_or_else(|| panic!("continues: {text}"));
            assert_eq!(t.literal(&text), literal);
            let parsed = fast_chunk::parse(&text).unwrap();
            assert!(parsed.canonical);
            assert_eq!(t.chunk.with_content(content.get(&text)), parsed.chunk, "{text}");
        }
        // Not one string literal: a quote that ends it early, a control character, an escape
        // cut in two, an unfinished escape.
        for body in ["a\",\"x\":\"b", "a\nb", "ab\\", "\\u00", "x\"y"] {
            let text = with_content(&format!("\"{body}\""));
            assert!(t.continued(&text).is_none(), "{text}");
        }
        // Different anywhere else: id, finish reason, another field, shorter than the ends.
        for text in [
            TEMPLATE.replace("chatcmpl-1", "chatcmpl-2"),
            TEMPLATE.replace(r#""finish_reason":null"#, r#""finish_reason":"stop""#),
            TEMPLATE.replace(r#""content":"Hello""#, r#""content":"Hello","refusal":"no""#),
            TEMPLATE[..40].to_string(),
        ] {
            assert!(t.continued(&text).is_none(), "{text}");
        }
    }

    #[test]
    fn only_chunks_that_add_nothing_but_content_are_templates() {
        assert!(template(TEMPLATE).is_some());
        for text in [
            // a role, a finish reason, reasoning, a non-null choice field, a non-null delta field
            TEMPLATE.replace(r#"{"content":"Hello"}"#, r#"{"role":"assistant","content":"Hello"}"#),
            TEMPLATE.replace(r#""finish_reason":null"#, r#""finish_reason":"stop""#),
            TEMPLATE.replace(r#"{"content":"Hello"}"#, r#"{"content":"Hello","reasoning_content":"x"}"#),
            TEMPLATE.replace(r#""logprobs":null"#, r#""logprobs":{"content":[]}"#),
            TEMPLATE.replace(r#"{"content":"Hello"}"#, r#"{"content":"Hello","refusal":"no"}"#),
            // null content, two choices
            TEMPLATE.replace(r#""content":"Hello""#, r#""content":null"#),
            TEMPLATE.replace(r#"}]}"#, r#"},{"index":1,"delta":{"content":"x"},"finish_reason":null}]}"#),
        ] {
            assert!(template(&text).is_none(), "{text}");
        }
        // A null delta field and a non-null top-level one (the first value wins) are fine.
        let ok = TEMPLATE.replace(r#"{"content":"Hello"}"#, r#"{"content":"Hello","refusal":null}"#).replace(r#""system_fingerprint":null"#, r#""system_fingerprint":"fp_1""#);
        assert!(template(&ok).is_some());
    }
}
