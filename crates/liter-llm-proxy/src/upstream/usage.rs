//! The `usage` of a finished (non-streamed) answer, read from its bytes without parsing
//! the rest: the dispatcher needs it for cost, token limits and settlement, and the
//! answer itself goes to the client as it came.
//!
//! [`reported`] looks for the last `"usage":` in the answer (where OpenAI-shaped answers
//! put it), deserializes only that member, and checks that what follows it closes
//! exactly the top-level object: then it is the answer's own usage and not one nested
//! deeper. Otherwise it walks the top-level object from the start to its `usage`
//! member, skipping strings with `memchr` and counting brackets. Both cost a fraction
//! of deserializing the whole answer with serde.

use memchr::memchr2;
use serde::Deserialize;

/// `usage` as chat and embeddings answers report it (embeddings have no completion).
#[derive(Debug, Deserialize, PartialEq)]
pub struct ReportedUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<liter_llm::types::PromptTokensDetails>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl From<ReportedUsage> for liter_llm::types::Usage {
    fn from(u: ReportedUsage) -> Self {
        liter_llm::types::Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
            prompt_tokens_details: u.prompt_tokens_details,
            completion_tokens_details: None,
            cache_creation_input_tokens: u.cache_creation_input_tokens,
            cache_read_input_tokens: u.cache_read_input_tokens,
        }
    }
}

/// The answer's top-level `usage`, if it has one (and it is an object of the usual
/// fields), as deserializing the whole answer would give it; `None` when there is none.
/// Malformed JSON gives `None` or whatever usage could be read, never a panic.
pub fn reported(body: &[u8]) -> Option<ReportedUsage> {
    if let Some(found) = last_top_level(body, plain::usage) {
        return found;
    }
    reported_as(body)
}

/// The answer's top-level `usage` read as `T` (Anthropic's usage, say), as
/// [`reported`] reads OpenAI's.
pub fn reported_as<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    if let Some(found) = last_top_level(body, serde_value::<T>) {
        return found;
    }
    let value = member(body, b"usage")?;
    let mut de = serde_json::Deserializer::from_slice(value);
    Option::<T>::deserialize(&mut de).ok().flatten()
}

/// A `usage` value at the start of `value`, and the bytes it took; `None` when it is
/// not one (or, for a reader that only knows the plain shape, not that shape).
type ReadUsage<T> = fn(&[u8]) -> Option<(Option<T>, usize)>;

fn serde_value<T: serde::de::DeserializeOwned>(value: &[u8]) -> Option<(Option<T>, usize)> {
    let mut values = serde_json::Deserializer::from_slice(value).into_iter::<Option<T>>();
    let usage = values.next()?.ok()?;
    Some((usage, values.byte_offset()))
}

/// The fast path: `Some(usage)` when the last `"usage":` in `body` is a member of the
/// top-level object; `None` when that cannot be told this way, or `read` could not
/// read it (the caller then tries another way).
fn last_top_level<T>(body: &[u8], read: ReadUsage<T>) -> Option<Option<T>> {
    const KEY: &[u8] = b"\"usage\":";
    // The last `"usage":`, found from its colon: the usage is near the end, a few
    // members back, where a substring search would stop at every quote.
    let at = memchr::memrchr_iter(b':', body).find_map(|colon| {
        let at = (colon + 1).checked_sub(KEY.len())?;
        (&body[at..=colon] == KEY).then_some(at)
    })?;
    // An odd run of backslashes before the quote escapes it: text inside a string.
    let slashes = body[..at].iter().rev().take_while(|&&b| b == b'\\').count();
    if slashes % 2 == 1 {
        return None;
    }
    // An unescaped quote followed by `usage":` opens a key (were it a closing quote, a
    // bare `usage` would follow: not JSON). Its value, and where the value ends:
    let start = at + KEY.len();
    let (usage, taken) = read(&body[start..])?;
    let mut i = start + taken;
    // Outside any string now; the member is a top-level one when the rest closes one
    // bracket, the last, followed by nothing but whitespace.
    let mut depth = 1usize;
    while i < body.len() {
        match body[i] {
            b'"' => i = string_end(body, i + 1)?,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    let rest = &body[i + 1..];
                    return rest
                        .iter()
                        .all(|b| b.is_ascii_whitespace())
                        .then_some(usage);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The bytes from the value of `key` in the top-level object of `json` to the end
/// (the first, if the key is repeated), or `None` when `json` is not an object, has no
/// such key, or is malformed before it. What follows the value is not checked: a
/// well-formed answer gives what deserializing all of it gives, and a truncated one
/// may still give its usage.
fn member<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut i = json.iter().position(|b| !b.is_ascii_whitespace())?;
    if json[i] != b'{' {
        return None;
    }
    i += 1;
    let mut depth = 1usize;
    // In the top-level object, whether the next string is a key.
    let mut want_key = true;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let start = i + 1;
                let end = string_end(json, start)?;
                i = end + 1;
                if depth == 1 && want_key {
                    let rest = skip_ws(json, i);
                    if json.get(rest) != Some(&b':') {
                        return None;
                    }
                    if &json[start..end] == key {
                        return Some(&json[rest + 1..]);
                    }
                    i = rest + 1;
                    want_key = false;
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return None;
                }
            }
            b',' if depth == 1 => want_key = true,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the quote that closes the string whose text starts at `from`.
fn string_end(json: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + memchr2(b'"', b'\\', json.get(from..)?)?;
        if json[at] == b'"' {
            return Some(at);
        }
        from = at + 2;
    }
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while json.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

/// OpenAI's usage read by hand when it is plain: an object of the known counters as
/// integers, `prompt_tokens_details` an object of integers (or null), any other member
/// a number, a literal or an object of those. Anything else (an escape, a float, a
/// repeated key, a string) gives `None`, and serde reads it instead, so the result is
/// always what serde gives.
mod plain {
    use super::{skip_ws, ReportedUsage};

    pub(super) fn usage(b: &[u8]) -> Option<(Option<ReportedUsage>, usize)> {
        let mut i = skip_ws(b, 0);
        if b[i..].starts_with(b"null") {
            return Some((None, i + 4));
        }
        let mut u = ReportedUsage {
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
            prompt_tokens_details: None,
            cache_creation_input_tokens: None,
            cache_read_input_tokens: None,
        };
        let mut seen = 0u8;
        // Where the members left to read start, after the leading counters.
        let mut rest = None;
        if let Some(([prompt, completion, total], after)) = lead(b, i) {
            match b.get(after)? {
                b'}' => rest = Some(None),
                b',' => rest = Some(Some(skip_ws(b, after + 1))),
                _ => {}
            }
            if rest.is_some() {
                (u.prompt_tokens, u.completion_tokens, u.total_tokens) =
                    (prompt, completion, total);
                seen = 7;
                i = after;
            }
        }
        let member = |key: &[u8], b: &[u8], i: &mut usize| {
            let bit = match key {
                b"prompt_tokens" => {
                    u.prompt_tokens = number(b, i)?;
                    1
                }
                b"completion_tokens" => {
                    u.completion_tokens = number(b, i)?;
                    2
                }
                b"total_tokens" => {
                    u.total_tokens = number(b, i)?;
                    4
                }
                b"cache_creation_input_tokens" => {
                    u.cache_creation_input_tokens = Some(number(b, i)?);
                    8
                }
                b"cache_read_input_tokens" => {
                    u.cache_read_input_tokens = Some(number(b, i)?);
                    16
                }
                b"prompt_tokens_details" => {
                    u.prompt_tokens_details = details(b, i)?;
                    32
                }
                _ => {
                    skip(b, i, true)?;
                    0
                }
            };
            // serde refuses a repeated field.
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            Some(())
        };
        let end = match rest {
            Some(None) => i + 1,
            Some(Some(at)) => {
                i = at;
                members(b, &mut i, member)?
            }
            None => object(b, &mut i, member)?,
        };
        Some((Some(u), end))
    }

    /// OpenAI's usage opens with its three counters, in this order and without spaces:
    /// matched as one template, where the member loop would read each key and compare
    /// it with every name. Their values and where the third ends, or `None` (the
    /// member loop then reads the object from its start).
    fn lead(b: &[u8], from: usize) -> Option<([u64; 3], usize)> {
        const KEYS: [&[u8]; 3] = [
            b"{\"prompt_tokens\":",
            b",\"completion_tokens\":",
            b",\"total_tokens\":",
        ];
        let mut values = [0; 3];
        let mut i = from;
        for (key, value) in KEYS.iter().zip(&mut values) {
            if !b.get(i..)?.starts_with(key) {
                return None;
            }
            i += key.len();
            *value = number(b, &mut i)?;
        }
        Some((values, i))
    }

    fn details(b: &[u8], i: &mut usize) -> Option<Option<liter_llm::types::PromptTokensDetails>> {
        if b[*i..].starts_with(b"null") {
            *i += 4;
            return Some(None);
        }
        let mut d = liter_llm::types::PromptTokensDetails::default();
        let mut seen = 0u8;
        *i = object(b, i, |key, b, i| {
            let bit = match key {
                b"cached_tokens" => {
                    d.cached_tokens = number(b, i)?;
                    1
                }
                b"audio_tokens" => {
                    d.audio_tokens = if b[*i..].starts_with(b"null") {
                        *i += 4;
                        None
                    } else {
                        Some(number(b, i)?)
                    };
                    2
                }
                _ => {
                    skip(b, i, false)?;
                    0
                }
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            Some(())
        })?;
        Some(Some(d))
    }

    /// An object at `b[*i]` whose keys have no escapes; `member` reads each value (from
    /// `*i`, leaving it after the value). Returns where the object ends.
    fn object(
        b: &[u8],
        i: &mut usize,
        member: impl FnMut(&[u8], &[u8], &mut usize) -> Option<()>,
    ) -> Option<usize> {
        if b.get(*i)? != &b'{' {
            return None;
        }
        *i = skip_ws(b, *i + 1);
        if b.get(*i)? == &b'}' {
            return Some(*i + 1);
        }
        members(b, i, member)
    }

    /// An object's members from the key at `b[*i]` to its closing brace, read as
    /// [`object`] reads them. Returns where the object ends.
    fn members(
        b: &[u8],
        i: &mut usize,
        mut member: impl FnMut(&[u8], &[u8], &mut usize) -> Option<()>,
    ) -> Option<usize> {
        loop {
            if b.get(*i)? != &b'"' {
                return None;
            }
            let start = *i + 1;
            let end = start
                + b.get(start..)?
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\')?;
            if b[end] != b'"' {
                return None;
            }
            *i = skip_ws(b, end + 1);
            if b.get(*i)? != &b':' {
                return None;
            }
            *i = skip_ws(b, *i + 1);
            member(&b[start..end], b, i)?;
            *i = skip_ws(b, *i);
            match b.get(*i)? {
                b',' => *i = skip_ws(b, *i + 1),
                b'}' => return Some(*i + 1),
                _ => return None,
            }
        }
    }

    /// A non-negative integer that fits a u64, ended by what may follow a value.
    fn number(b: &[u8], i: &mut usize) -> Option<u64> {
        let digits = b
            .get(*i..)?
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || (digits > 1 && b[*i] == b'0') {
            return None;
        }
        let mut n: u64 = 0;
        for &c in &b[*i..*i + digits] {
            n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        }
        *i += digits;
        matches!(b.get(*i)?, b',' | b'}' | b' ' | b'\n' | b'\r' | b'\t').then_some(n)
    }

    /// JSON's number grammar: `-? int frac? exp?`.
    fn is_number(w: &[u8]) -> bool {
        let digits = |i: usize| w[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        let mut i = usize::from(w.first() == Some(&b'-'));
        let int = digits(i);
        if int == 0 || (int > 1 && w[i] == b'0') {
            return false;
        }
        i += int;
        if w.get(i) == Some(&b'.') {
            let frac = digits(i + 1);
            if frac == 0 {
                return false;
            }
            i += 1 + frac;
        }
        if matches!(w.get(i), Some(b'e' | b'E')) {
            i += 1 + usize::from(matches!(w.get(i + 1), Some(b'+' | b'-')));
            let exp = digits(i);
            if exp == 0 {
                return false;
            }
            i += exp;
        }
        i == w.len()
    }

    /// Skips a number, a literal or (with `nested`) an object of those.
    fn skip(b: &[u8], i: &mut usize, nested: bool) -> Option<()> {
        match b.get(*i)? {
            b'{' if nested => {
                *i = object(b, i, |_, b, i| skip(b, i, false))?;
                Some(())
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                let n = b[*i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
                    .count();
                let word = &b[*i..*i + n];
                if !matches!(word, b"true" | b"false" | b"null") && !is_number(word) {
                    return None;
                }
                *i += n;
                Some(())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// What deserializing the whole answer gives: the reference.
    fn by_serde(body: &[u8]) -> Option<ReportedUsage> {
        #[derive(Deserialize)]
        struct UsageOnly {
            usage: Option<ReportedUsage>,
        }
        serde_json::from_slice::<UsageOnly>(body).ok()?.usage
    }

    #[test]
    fn openai_usage_is_read_by_its_template_and_what_follows_by_the_loop() {
        for text in [
            r#"{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}"#,
            r#"{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":2,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}"#,
        ] {
            let (got, taken) = plain::usage(text.as_bytes()).unwrap();
            let got = got.unwrap();
            assert_eq!(
                (got.prompt_tokens, got.completion_tokens, got.total_tokens),
                (5, 6, 11)
            );
            assert_eq!(taken, text.len());
        }
        let (got, _) = plain::usage(
            br#"{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":2}}"#,
        )
        .unwrap();
        assert_eq!(got.unwrap().prompt_tokens_details.unwrap().cached_tokens, 2);
        // A counter repeated after the template is refused, as serde refuses it.
        assert!(plain::usage(
            br#"{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11,"total_tokens":1}"#
        )
        .is_none());
    }

    #[test]
    fn finds_the_top_level_usage_only() {
        let cases: &[&str] = &[
            r#"{"id":"x","choices":[{"message":{"content":"echo"}}],"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11},"system_fingerprint":"fp"}"#,
            r#"{"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"prompt_tokens_details":{"cached_tokens":1}}}"#,
            r#" { "usage" : { "prompt_tokens" : 7 } } "#,
            r#"{"data":[{"usage":{"prompt_tokens":99}}],"usage":{"prompt_tokens":4,"total_tokens":4}}"#,
            r#"{"content":"\"usage\":{\"prompt_tokens\":99}","usage":{"prompt_tokens":2}}"#,
            r#"{"a\\":"usage","usage":{"prompt_tokens":3}}"#,
            r#"{"k":"\\\"","usage":{"prompt_tokens":8}}"#,
            r#"{"choices":[],"x":{"usage":{"prompt_tokens":99}}}"#,
            r#"{"usage":null}"#,
            r#"{"usage":"many"}"#,
            r#"{"usage":{"prompt_tokens":-1}}"#,
            r#"{"a":"unterminated"#,
            "",
            "   ",
        ];
        for c in cases {
            assert_eq!(reported(c.as_bytes()), by_serde(c.as_bytes()), "{c}");
        }
        // The common answer takes the fast path; a nested last usage does not.
        assert_eq!(
            last_top_level(cases[0].as_bytes(), plain::usage)
                .flatten()
                .map(|u| u.total_tokens),
            Some(11)
        );
        assert!(last_top_level(
            br#"{"usage":{"prompt_tokens":4},"x":{"usage":{"prompt_tokens":9}}}"#,
            serde_value::<ReportedUsage>
        )
        .is_none());
        assert_eq!(
            reported(br#"{"usage":{"prompt_tokens":4},"x":{"usage":{"prompt_tokens":9}}}"#)
                .map(|u| u.prompt_tokens),
            Some(4)
        );
        // Not an object (serde would read a struct from an array's items): none.
        assert_eq!(reported(br#"[{"usage":{"prompt_tokens":1}}]"#), None);
        // Cut short after its usage: still read (serde gives up on the whole).
        let cut = br#"{"usage":{"prompt_tokens":1},"choices":[{"#;
        assert_eq!(reported(cut).map(|u| u.prompt_tokens), Some(1));
        // Malformed answers: whatever is read, no panic.
        for bad in [
            &br#"{"a" 1, "usage":{"prompt_tokens":1}}"#[..],
            br#"{"a":1}}, "usage":{"prompt_tokens":1}}"#,
            br#"{"usage":{"prompt_tokens":1}}}"#,
            br#"\"usage":{}}"#,
        ] {
            let _ = reported(bad);
        }
        // Every prefix of an answer: no panic.
        let full = cases[0].as_bytes();
        for n in 0..full.len() {
            let _ = reported(&full[..n]);
        }
        assert_eq!(
            reported(cases[3].as_bytes()).map(|u| u.prompt_tokens),
            Some(4)
        );
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            "[a-z\"\\\\{}\\[\\],: \u{e9}]{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![Just("usage".to_owned()), "[a-z\"\\\\]{0,6}"],
                        inner
                    ),
                    0..4
                )
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn usage_member() -> impl Strategy<Value = (String, String)> {
        let name = prop_oneof![
            Just("prompt_tokens"),
            Just("completion_tokens"),
            Just("total_tokens"),
            Just("cache_creation_input_tokens"),
            Just("cache_read_input_tokens"),
            Just("prompt_tokens_details"),
            Just("completion_tokens_details"),
            Just("other"),
        ];
        let scalar = prop_oneof![
            (0u64..100_000).prop_map(|n| n.to_string()),
            Just("18446744073709551616".to_owned()),
            Just("-3".to_owned()),
            Just("2.5".to_owned()),
            Just("1e3".to_owned()),
            Just("007".to_owned()),
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("\"x\"".to_owned()),
        ];
        let inner = prop::collection::vec(
            (
                prop_oneof![
                    Just("cached_tokens"),
                    Just("audio_tokens"),
                    Just("reasoning_tokens")
                ],
                scalar.clone(),
            ),
            0..4,
        )
        .prop_map(|kv| {
            let kv: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            format!("{{{}}}", kv.join(","))
        });
        (name, prop_oneof![scalar, inner]).prop_map(|(k, v)| (k.to_owned(), v))
    }

    proptest! {
        /// Usage objects of every shape: the hand reader reads what serde reads, or
        /// leaves the shape to serde.
        #[test]
        fn the_plain_reader_agrees_with_serde(
            members in prop::collection::vec(usage_member(), 0..7),
            lead in prop::option::of((0u64..100_000, 0u64..100_000, prop_oneof![
                (0u64..100_000).prop_map(|n| n.to_string()),
                Just("007".to_owned()),
                Just("18446744073709551616".to_owned()),
                Just("2.5".to_owned()),
            ])),
            spaced in any::<bool>(),
        ) {
            let sep = if spaced { " , " } else { "," };
            // OpenAI's leading counters (the template the reader matches first), then
            // the rest: repeated keys and odd values included.
            let lead = lead.map(|(p, c, t)| {
                format!("\"prompt_tokens\":{p},\"completion_tokens\":{c},\"total_tokens\":{t}")
            });
            let kv: Vec<String> = lead
                .into_iter()
                .chain(members.iter().map(|(k, v)| format!("\"{k}\":{v}")))
                .collect();
            let text = format!("{{{}}}", kv.join(sep));
            let want = serde_json::from_str::<Option<ReportedUsage>>(&text).ok();
            if let Some((got, taken)) = plain::usage(text.as_bytes()) {
                prop_assert_eq!(Some(got), want, "{}", text);
                prop_assert_eq!(taken, text.len());
            }
        }

        /// Any object, with or without a usage, nested usages and keys or strings that
        /// look like one: the same answer as deserializing the whole document.
        #[test]
        fn agrees_with_serde(
            mut doc in prop::collection::btree_map("[a-z\"\\\\]{0,6}", json_value(), 0..5),
            usage in prop::option::of((0u64..1000, 0u64..1000)),
            pretty in any::<bool>(),
        ) {
            if let Some((p, c)) = usage {
                doc.insert("usage".into(), serde_json::json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}));
            }
            let doc = serde_json::Value::Object(doc.into_iter().collect());
            let text = if pretty { serde_json::to_vec_pretty(&doc) } else { serde_json::to_vec(&doc) }.unwrap();
            prop_assert_eq!(reported(&text), by_serde(&text));
        }
    }
}
