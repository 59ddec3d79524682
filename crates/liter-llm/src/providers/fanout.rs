//! `n` > 1 served by fan-out for providers that answer one choice per request (a model
//! with `fan_out_n`): the request's `n` read and taken out, and the n answers merged
//! into one `chat.completion` (choices indexed 0..n-1 in order, usage summed). Pure;
//! the gateway's dispatcher sends the requests.

use bytes::Bytes;
use serde_json::Value;

use crate::types::{ChatCompletion, PromptTokensDetails, Usage};

/// The most choices one fanned-out request may ask for.
pub const MAX_N: u64 = 16;

/// For a chat body with `n` > 1 that is not a stream: `n` and the body without it.
/// `None` when there is nothing to fan out (n absent, 1, or a stream: refused by the
/// adapter as before).
pub fn split(body: &[u8]) -> Option<(u64, Bytes)> {
    /// `n` alone: the common request (no `n`) is not built into a JSON value.
    #[derive(serde::Deserialize)]
    struct OnlyN {
        #[serde(default)]
        n: Option<u64>,
    }
    let n = serde_json::from_slice::<OnlyN>(body).ok()?.n?;
    if !(2..=MAX_N).contains(&n) {
        return None;
    }
    let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let n = obj
        .get("n")
        .and_then(Value::as_u64)
        .filter(|n| (2..=MAX_N).contains(n))?;
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    obj.remove("n");
    let bytes = serde_json::to_vec(&Value::Object(obj)).ok()?;
    Some((n, Bytes::from(bytes)))
}

/// One answer from `answers` (in order): the first's id and metadata, every answer's
/// choices indexed in turn, usage summed.
pub fn merge(answers: Vec<ChatCompletion>) -> Option<ChatCompletion> {
    let mut answers = answers.into_iter();
    let mut out = answers.next()?;
    let mut usage = out.usage.take();
    for a in answers {
        out.choices.extend(a.choices);
        usage = match (usage, a.usage) {
            (Some(u), Some(v)) => Some(add(u, &v)),
            (u, v) => u.or(v),
        };
    }
    for (i, c) in out.choices.iter_mut().enumerate() {
        c.index = u32::try_from(i).unwrap_or(u32::MAX);
    }
    out.usage = usage;
    Some(out)
}

fn add(mut u: Usage, v: &Usage) -> Usage {
    let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    u.prompt_tokens += v.prompt_tokens;
    u.completion_tokens += v.completion_tokens;
    u.total_tokens += v.total_tokens;
    u.cache_creation_input_tokens =
        sum(u.cache_creation_input_tokens, v.cache_creation_input_tokens);
    u.cache_read_input_tokens = sum(u.cache_read_input_tokens, v.cache_read_input_tokens);
    u.prompt_tokens_details = match (u.prompt_tokens_details, v.prompt_tokens_details) {
        (None, None) => None,
        (a, b) => {
            let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
            Some(PromptTokensDetails {
                cached_tokens: a.cached_tokens + b.cached_tokens,
                audio_tokens: sum(a.audio_tokens, b.audio_tokens),
            })
        }
    };
    if let (Some(a), Some(b)) = (
        u.completion_tokens_details.as_mut(),
        v.completion_tokens_details.as_ref(),
    ) {
        a.reasoning_tokens = sum(a.reasoning_tokens, b.reasoning_tokens);
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(id: &str, text: &str, prompt: u64, completion: u64) -> ChatCompletion {
        serde_json::from_value(json!({
            "id": id, "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": 1}}
        }))
        .unwrap()
    }

    #[test]
    fn split_takes_n_out() {
        let (n, body) = split(br#"{"model":"m","n":3,"messages":[]}"#).unwrap();
        assert_eq!(n, 3);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, json!({"model":"m","messages":[]}));
        for body in [
            &br#"{"model":"m","n":1}"#[..],
            br#"{"model":"m"}"#,
            br#"{"model":"m","n":2,"stream":true}"#,
            br#"{"model":"m","n":99}"#,
            b"not json",
        ] {
            assert!(split(body).is_none(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn merge_indexes_choices_and_sums_usage() {
        let merged = merge(vec![answer("a", "x", 5, 2), answer("b", "y", 5, 3)]).unwrap();
        assert_eq!(merged.id, "a");
        let texts: Vec<_> = merged
            .choices
            .iter()
            .map(|c| (c.index, c.message.content.clone()))
            .collect();
        assert_eq!(texts, vec![(0, Some("x".into())), (1, Some("y".into()))]);
        let u = merged.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (10, 5, 15)
        );
        assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, 2);
        assert!(merge(Vec::new()).is_none());
    }
}
