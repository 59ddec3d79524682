//! What spans read of requests and answers: the GenAI attributes of a request (its
//! model and sampling parameters, read with its head by the caller), of a whole answer
//! in OpenAI's shape (id, model, finish reasons) and of a streamed one, and, with
//! `trace_content`, the messages. An answer is not parsed whole: its `id` and `model`
//! lead OpenAI's answers and are read from its start, its finish reasons are found by
//! their key.

use std::borrow::Cow;

use smallvec::SmallVec;

use super::{capped_content, Attrs};

/// JSON whitespace skipped.
fn skip_space(b: &[u8]) -> &[u8] {
    let n = b
        .iter()
        .take_while(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
        .count();
    &b[n..]
}

/// A JSON string at the start of `b` when it has no escapes: its bytes and what follows
/// it. `None` for anything else (an escape, no string). The strings read here are
/// short: a plain loop finds their end sooner than a vectorised search is set up.
fn plain_bytes(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = b.strip_prefix(b"\"")?;
    let end = rest.iter().position(|&c| c == b'"' || c == b'\\')?;
    if rest[end] != b'"' {
        return None;
    }
    Some((&rest[..end], &rest[end + 1..]))
}

/// [`plain_bytes`], as text (`None` when not UTF-8).
fn plain_string(b: &[u8]) -> Option<(&str, &[u8])> {
    let (text, rest) = plain_bytes(b)?;
    Some((std::str::from_utf8(text).ok()?, rest))
}

/// The answer's top-level `id` and `model`, read by hand when the members before them
/// are plain (strings without escapes, numbers, literals), as in OpenAI's answers.
/// `None` when the answer is not that simple: the caller then reads it with serde.
fn quick_head(bytes: &[u8]) -> Option<(Option<&str>, Option<&str>)> {
    let mut rest = skip_space(bytes).strip_prefix(b"{")?;
    let (mut id, mut model) = (None, None);
    loop {
        let (key, after) = plain_bytes(skip_space(rest))?;
        rest = skip_space(skip_space(after).strip_prefix(b":")?);
        if rest.first()? == &b'"' {
            // Only the values kept are checked to be UTF-8.
            rest = match key {
                b"id" => {
                    let (value, after) = plain_string(rest)?;
                    id = Some(value);
                    after
                }
                b"model" => {
                    let (value, after) = plain_string(rest)?;
                    model = Some(value);
                    after
                }
                _ => plain_bytes(rest)?.1,
            };
        } else {
            // A number or a literal; an object or an array is not read here.
            let n = rest
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
                .count();
            if n == 0 {
                return None;
            }
            rest = &rest[n..];
        }
        if id.is_some() && model.is_some() {
            return Some((id, model));
        }
        rest = skip_space(rest);
        match rest.first()? {
            b',' => rest = &rest[1..],
            b'}' => return Some((id, model)),
            _ => return None,
        }
    }
}

/// The top-level members of an answer the spans read.
#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum AnswerKey {
    Id,
    Model,
    #[serde(other)]
    Other,
}

/// An answer's `id` and `model`.
#[derive(Default)]
struct AnswerHead<'a> {
    id: Option<Text<'a>>,
    model: Option<Text<'a>>,
}

/// Reads the answer's `id` and `model` into its target and stops once it has both:
/// they lead OpenAI's answers, so the choices and the usage after them are not
/// scanned. The early stop makes the parser report an unclosed object, which the
/// caller ignores.
struct AnswerVisitor<'f, 'a>(&'f mut AnswerHead<'a>);

impl<'de> serde::de::Visitor<'de> for AnswerVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let head = self.0;
        while let Some(key) = map.next_key::<AnswerKey>()? {
            match key {
                AnswerKey::Id => head.id = map.next_value()?,
                AnswerKey::Model => head.model = map.next_value()?,
                AnswerKey::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            if head.id.is_some() && head.model.is_some() {
                break;
            }
        }
        Ok(())
    }
}

/// An answer's finish reasons: one per choice, so usually one, kept inline.
type Reasons<'a> = SmallVec<[Cow<'a, str>; 2]>;

/// Each choice's `finish_reason`, found by its key: a `"finish_reason":` whose quote
/// is not escaped cannot be inside a string, and OpenAI's answers use the name for
/// nothing else. A reason without escapes (all of them, in practice) is taken as it
/// stands; others are read by serde.
fn finish_reasons(bytes: &[u8]) -> Reasons<'_> {
    let key = &*crate::search::FINISH_REASON;
    let mut out = Reasons::new();
    for at in key.find_iter(bytes) {
        let slashes = bytes[..at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if slashes % 2 == 1 {
            continue;
        }
        let rest = skip_space(&bytes[at + key.needle().len()..]);
        if let Some((reason, _)) = plain_bytes(rest) {
            if let Some(reason) = known_reason(reason).or_else(|| std::str::from_utf8(reason).ok())
            {
                out.push(Cow::Borrowed(reason));
                continue;
            }
        }
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Option<Text<'_>>>();
        if let Some(Ok(Some(Text(reason)))) = values.next() {
            out.push(reason);
        }
    }
    out
}

/// The finish reasons OpenAI's API documents, as static text: known by their bytes,
/// they need no UTF-8 check.
fn known_reason(reason: &[u8]) -> Option<&'static str> {
    Some(match reason {
        b"stop" => "stop",
        b"length" => "length",
        b"tool_calls" => "tool_calls",
        b"content_filter" => "content_filter",
        b"function_call" => "function_call",
        _ => return None,
    })
}

/// A JSON string, borrowed from the input unless it has escapes.
#[derive(serde::Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// `gen_ai.response.finish_reasons`, each capped.
fn put_finish_reasons<S: AsRef<str>>(out: &mut Attrs, reasons: &[S]) {
    if !reasons.is_empty() {
        let capped: SmallVec<[&str; 2]> = reasons
            .iter()
            .map(|r| crate::logtext::capped(r.as_ref()))
            .collect();
        out.strs("gen_ai.response.finish_reasons", &capped);
    }
}

/// The GenAI attributes of a whole answer in OpenAI's shape: its id, model, finish
/// reasons and (with `content`) the completion.
pub fn answer_attributes(out: &mut Attrs, bytes: &[u8], content: bool) {
    let (id, model) = match quick_head(bytes) {
        Some((id, model)) => (id.map(Cow::Borrowed), model.map(Cow::Borrowed)),
        None => {
            let mut head = AnswerHead::default();
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let _ = serde::Deserializer::deserialize_map(&mut de, AnswerVisitor(&mut head));
            (head.id.map(|t| t.0), head.model.map(|t| t.0))
        }
    };
    if let Some(id) = &id {
        out.str("gen_ai.response.id", crate::logtext::capped(id));
    }
    if let Some(model) = &model {
        out.str("gen_ai.response.model", crate::logtext::capped(model));
    }
    put_finish_reasons(out, &finish_reasons(bytes));
    if content {
        if let Some(json) = output_messages(bytes) {
            out.str("gen_ai.output.messages", capped_content(&json));
        }
    }
}

/// What a span with content reads of an answer.
#[derive(serde::Deserialize)]
struct AnswerChoices<'a> {
    #[serde(default, borrow)]
    choices: Vec<ChoiceMessage<'a>>,
}

#[derive(serde::Deserialize)]
struct ChoiceMessage<'a> {
    #[serde(default, borrow)]
    message: Option<&'a serde_json::value::RawValue>,
}

/// The answer's messages as a JSON array (with `trace_content`).
fn output_messages(bytes: &[u8]) -> Option<String> {
    let a = serde_json::from_slice::<AnswerChoices<'_>>(bytes).ok()?;
    let messages: Vec<&serde_json::value::RawValue> =
        a.choices.iter().filter_map(|c| c.message).collect();
    serde_json::to_string(&messages).ok()
}

/// The GenAI attributes of what a streamed answer said of itself (nothing for a
/// whole answer, whose attributes [`answer_attributes`] gave).
pub fn stream_attributes(
    out: &mut Attrs,
    id: Option<&str>,
    model: Option<&str>,
    finish_reasons: &[String],
) {
    if let Some(id) = id {
        out.str("gen_ai.response.id", crate::logtext::capped(id));
    }
    if let Some(model) = model {
        out.str("gen_ai.response.model", crate::logtext::capped(model));
    }
    put_finish_reasons(out, finish_reasons);
}

/// The GenAI request attributes: the model asked for, the sampling parameters (which
/// the caller read with the request's head), and (with `content`) the messages, from
/// `body`.
pub fn request_attributes(
    out: &mut Attrs,
    body: &[u8],
    model: &str,
    (max_tokens, temperature, top_p): (Option<i64>, Option<f64>, Option<f64>),
    content: bool,
) {
    out.str("gen_ai.request.model", crate::logtext::capped(model));
    if let Some(n) = max_tokens {
        out.int("gen_ai.request.max_tokens", n);
    }
    if let Some(x) = temperature {
        out.f64("gen_ai.request.temperature", x);
    }
    if let Some(x) = top_p {
        out.f64("gen_ai.request.top_p", x);
    }
    if content {
        if let Some(m) = request_messages(body) {
            out.str("gen_ai.input.messages", capped_content(m.get()));
        }
    }
}

/// What a span with content reads of a request body (the rest is skipped, not built).
#[derive(serde::Deserialize)]
struct RequestMessages<'a> {
    #[serde(default, borrow)]
    messages: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    input: Option<&'a serde_json::value::RawValue>,
}

fn request_messages(body: &[u8]) -> Option<&serde_json::value::RawValue> {
    let r = serde_json::from_slice::<RequestMessages<'_>>(body).ok()?;
    r.messages.or(r.input)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_answers_facts_are_read_without_its_usage() {
        use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
        let answer = br#"{"id":"c-1","object":"chat.completion","model":"m","choices":[
            {"index":0,"message":{"role":"assistant","content":"say \"finish_reason\":\"no\""},"finish_reason":"stop"},
            {"index":1,"message":{"content":null,"tool_calls":[]},"finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":1}}"#;
        let read = |content: bool| {
            let mut attrs = Attrs::default();
            answer_attributes(&mut attrs, answer, content);
            super::super::wire::decoded(&attrs)
        };
        let attrs = read(false);
        let find = |attrs: &[(String, Any)], k: &str| {
            attrs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            find(&attrs, "gen_ai.response.id"),
            Some(Any::StringValue("c-1".into()))
        );
        assert_eq!(
            find(&attrs, "gen_ai.response.model"),
            Some(Any::StringValue("m".into()))
        );
        let Some(Any::ArrayValue(reasons)) = find(&attrs, "gen_ai.response.finish_reasons") else {
            panic!("no finish reasons: {attrs:?}");
        };
        let reasons: Vec<_> = reasons.values.into_iter().filter_map(|v| v.value).collect();
        assert_eq!(
            reasons,
            [
                Any::StringValue("stop".into()),
                Any::StringValue("tool_calls".into())
            ]
        );
        assert_eq!(attrs.len(), 3);
        let attrs = read(true);
        let Some(Any::StringValue(messages)) = find(&attrs, "gen_ai.output.messages") else {
            panic!("no output messages");
        };
        assert!(messages.contains("tool_calls"));
        // Not JSON, or not an object: nothing, and no panic.
        for bad in [&b"[1,2"[..], b""] {
            let mut attrs = Attrs::default();
            answer_attributes(&mut attrs, bad, true);
            assert!(attrs.is_empty());
        }
    }

    #[test]
    fn finish_reasons_known_unknown_and_escaped_are_all_read() {
        let answer = br#"{"choices":[{"finish_reason":"length"},{"finish_reason":"eos"},
            {"finish_reason":"st\u006fp"},{"finish_reason":null},{"finish_reason": "content_filter"}]}"#;
        let reasons: Vec<String> = finish_reasons(answer)
            .into_iter()
            .map(Cow::into_owned)
            .collect();
        assert_eq!(reasons, ["length", "eos", "stop", "content_filter"]);
        assert!(finish_reasons(br#"{"choices":[]}"#).is_empty());
    }

    #[test]
    fn an_answer_read_by_hand_and_by_serde_gives_the_same_facts() {
        for answer in [
            // Read by hand.
            &br#" { "id" : "c-1", "object":"chat.completion","created":17,"model":"m","choices":[]}"#[..],
            // An escape in the id, an object before the model, a non-string id: serde.
            br#"{"id":"c-\u0031","model":"m","choices":[]}"#,
            br#"{"choices":[{"finish_reason":"stop"}],"id":"c-1","model":"m"}"#,
        ] {
            let mut attrs = Attrs::default();
            answer_attributes(&mut attrs, answer, false);
            let got = super::super::wire::decoded(&attrs);
            let value = |k: &str| {
                got.iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| format!("{v:?}"))
            };
            assert_eq!(
                value("gen_ai.response.id").as_deref(),
                Some(r#"StringValue("c-1")"#),
                "{}",
                String::from_utf8_lossy(answer)
            );
            assert_eq!(
                value("gen_ai.response.model").as_deref(),
                Some(r#"StringValue("m")"#)
            );
        }
        assert_eq!(
            quick_head(br#"{"id":1,"model":"m"}"#),
            Some((None, Some("m")))
        );
        assert_eq!(quick_head(br#"{"id":"a\"b","model":"m"}"#), None);
        assert_eq!(quick_head(br#"[]"#), None);
        assert_eq!(quick_head(br#"{"id":"a""#), None);
    }
}
