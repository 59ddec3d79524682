//! The `usage` of a finished (non-streamed) answer, read from its bytes without parsing
//! the rest: the dispatcher needs it for cost, token limits and settlement, and the
//! answer itself goes to the client as it came.
//!
//! [`reported`] walks the answer's top-level object to its `usage` member, skipping
//! strings with `memchr` and counting brackets (about a tenth of what deserializing the
//! whole answer with serde costs), and deserializes only that member.

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
/// fields); `None` for anything else, malformed JSON included.
pub fn reported(body: &[u8]) -> Option<ReportedUsage> {
    let value = member(body, b"usage")?;
    let mut de = serde_json::Deserializer::from_slice(value);
    Option::<ReportedUsage>::deserialize(&mut de).ok().flatten()
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
            r#"{"a" 1, "usage":{"prompt_tokens":1}}"#,
            r#"{"a":1}}, "usage":{"prompt_tokens":1}}"#,
            "",
            "   ",
        ];
        for c in cases {
            assert_eq!(reported(c.as_bytes()), by_serde(c.as_bytes()), "{c}");
        }
        // Not an object (serde would read a struct from an array's items): none.
        assert_eq!(reported(br#"[{"usage":{"prompt_tokens":1}}]"#), None);
        // Cut short after its usage: still read (serde gives up on the whole).
        let cut = br#"{"usage":{"prompt_tokens":1},"choices":[{"#;
        assert_eq!(reported(cut).map(|u| u.prompt_tokens), Some(1));
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

    proptest! {
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
