//! A stored answer: the body of a non-streamed answer (OpenAI's JSON, also for a
//! stream, which is assembled into that form), when it was stored and when it
//! expires. On an OpenDAL backend it is one object: a line of JSON with the times,
//! then the body; the expiry is checked on every read, so TTL holds on backends
//! without expiry of their own. [`sse`] replays a chat completion as a stream.

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use crate::store::UnixMillis;

/// One cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub created_ms: UnixMillis,
    /// `None`: until evicted.
    pub expires_ms: Option<UnixMillis>,
    /// The whole answer, as a non-streamed response body.
    pub body: Bytes,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    v: u32,
    created_ms: UnixMillis,
    expires_ms: Option<UnixMillis>,
}

impl Entry {
    /// Whether the entry may answer at `now`, given the request's `s-maxage`.
    pub fn usable(&self, now: UnixMillis, max_age_ms: Option<i64>) -> bool {
        self.expires_ms.is_none_or(|e| now < e)
            && max_age_ms.is_none_or(|m| now.saturating_sub(self.created_ms) < m)
    }

    /// Whether the entry has expired at `now`.
    pub fn expired(&self, now: UnixMillis) -> bool {
        self.expires_ms.is_some_and(|e| now >= e)
    }

    /// Its weight in the memory tier.
    pub fn weight(&self) -> u64 {
        self.body.len() as u64 + 64
    }

    /// The object written to an OpenDAL backend.
    pub fn encode(&self) -> Bytes {
        let meta = Meta {
            v: 1,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
        };
        let mut out = BytesMut::with_capacity(self.body.len() + 64);
        out.extend_from_slice(&serde_json::to_vec(&meta).unwrap_or_default());
        out.extend_from_slice(b"\n");
        out.extend_from_slice(&self.body);
        out.freeze()
    }

    /// An object read back; `None` when it is not one of ours.
    pub fn decode(object: Bytes) -> Option<Entry> {
        let nl = memchr::memchr(b'\n', &object)?;
        let meta: Meta = serde_json::from_slice(&object[..nl]).ok()?;
        (meta.v == 1).then(|| Entry {
            created_ms: meta.created_ms,
            expires_ms: meta.expires_ms,
            body: object.slice(nl + 1..),
        })
    }
}

/// A stored chat completion replayed as `chat.completion.chunk` events: per choice,
/// one chunk with the whole message and one with its `finish_reason`; then the usage
/// chunk when the client asked for it, and `data: [DONE]`. `None` when the body is not
/// a chat completion.
pub fn sse(body: &[u8], include_usage: bool) -> Option<Bytes> {
    let Value::Object(c) = serde_json::from_slice::<Value>(body).ok()? else {
        return None;
    };
    let choices = c.get("choices")?.as_array()?;
    let mut out = BytesMut::with_capacity(body.len() * 2 + 256);
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut v = json!({
            "id": c.get("id").cloned().unwrap_or(Value::Null),
            "object": "chat.completion.chunk",
            "created": c.get("created").cloned().unwrap_or(Value::Null),
            "model": c.get("model").cloned().unwrap_or(Value::Null),
            "choices": choices,
        });
        if let Some(f) = c.get("system_fingerprint") {
            v["system_fingerprint"] = f.clone();
        }
        if let Some(u) = usage {
            v["usage"] = u.clone();
        }
        v
    };
    let mut push = |v: Value| {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&serde_json::to_vec(&v).unwrap_or_default());
        out.extend_from_slice(b"\n\n");
    };
    for (i, choice) in choices.iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or(json!(i));
        let mut delta = choice.get("message").cloned().unwrap_or(json!({}));
        if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
            for (j, call) in calls.iter_mut().enumerate() {
                call["index"] = json!(j);
            }
        }
        push(chunk(
            json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": null}]),
            None,
        ));
        let finish = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
        push(chunk(
            json!([{"index": index, "delta": {}, "logprobs": null, "finish_reason": finish}]),
            None,
        ));
    }
    if include_usage {
        if let Some(u) = c.get("usage") {
            push(chunk(json!([]), Some(u)));
        }
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn objects_round_trip_and_foreign_ones_are_refused() {
        let e = Entry {
            created_ms: 5,
            expires_ms: Some(9),
            body: Bytes::from_static(b"{\"a\":\n1}"),
        };
        assert_eq!(Entry::decode(e.encode()), Some(e.clone()));
        assert_eq!(Entry::decode(Bytes::from_static(b"hello")), None);
        assert!(e.usable(8, None) && !e.usable(9, None) && e.expired(9));
        assert!(e.usable(6, Some(2)) && !e.usable(7, Some(2)));
    }

    #[test]
    fn a_completion_replays_as_chunks_with_usage_when_asked() {
        let body = br#"{"id":"c1","object":"chat.completion","created":7,"model":"m",
            "choices":[{"index":0,"message":{"role":"assistant","content":"hi",
            "tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},
            "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;
        let text = String::from_utf8(sse(body, true).unwrap().to_vec()).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 4);
        let first: Value = serde_json::from_str(&events[0][6..]).unwrap();
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(first["choices"][0]["delta"]["content"], "hi");
        assert_eq!(first["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
        let second: Value = serde_json::from_str(&events[1][6..]).unwrap();
        assert_eq!(second["choices"][0]["finish_reason"], "tool_calls");
        let usage: Value = serde_json::from_str(&events[2][6..]).unwrap();
        assert_eq!(usage["usage"]["total_tokens"], 3);
        assert_eq!(events[3], "data: [DONE]");
        let without = String::from_utf8(sse(body, false).unwrap().to_vec()).unwrap();
        assert!(!without.contains("total_tokens"));
    }
}
