//! `POST /v1/chat/completions`: a deterministic echo model, whole or streamed as SSE.
//!
//! The reply is `"echo: "` followed by the text of the last `user` message. Tokens are words:
//! prompt tokens are the whitespace-separated words of every message's text (at least 1),
//! completion tokens the words of the reply. `max_tokens` / `max_completion_tokens` below that
//! count truncate the reply to that many words with `finish_reason: "length"`.
//!
//! A stream sends a role chunk, one chunk per word (the word and the whitespace after it, so the
//! pieces concatenate to the full content), a chunk with the `finish_reason`, a usage chunk when
//! `stream_options.include_usage` is true, and `data: [DONE]`.
//!
//! Tools: when the request has `tools` and its last message (system messages after it aside)
//! is a `user` message whose text
//! contains `call tool`, the reply is one call of the first tool with arguments `{}`
//! (`finish_reason: "tool_calls"`, 1 completion token; streamed as a chunk naming the call and
//! one carrying its arguments). When the last message is a `tool` message, the reply echoes
//! its text: `"echo: " + result`.
//!
//! Anthropic's request controls (`thinking`, `output_config`, `context_management`) are
//! refused as OpenAI's API refuses any argument it does not know: a 400
//! `invalid_request_error` "Unrecognized request argument supplied: <name>" with `param`
//! the field.
//!
//! Structured output: with `response_format` `json_schema` the reply is a value fitting
//! `json_schema.schema` ([`crate::sample`]) as JSON; with `json_object` it is
//! `{"echo": <last user text>}`.

use std::borrow::Cow;

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::unix_now;
use crate::body::{self, MockBody, Reply};
use crate::state::{Shared, Tokens};

/// The fixed `system_fingerprint` of every response.
const FINGERPRINT: &str = "fp_mock";

/// Anthropic's Messages fields that OpenAI's chat completions do not know, refused as
/// OpenAI refuses an unknown argument.
const ANTHROPIC_ONLY: [&str; 3] = ["thinking", "output_config", "context_management"];

/// Answers a chat completion request whose body is `json` and whose model is `model`.
pub(super) fn respond(shared: &Shared, json: &Value, model: &str) -> Reply {
    if let Some(field) = ANTHROPIC_ONLY.iter().find(|f| json.get(**f).is_some()) {
        return super::bad_request(
            &format!("Unrecognized request argument supplied: {field}"),
            Some(field),
        );
    }
    let Some(messages) = json.get("messages").and_then(Value::as_array) else {
        return super::bad_request("'messages' is a required property", Some("messages"));
    };

    let mut prompt_words = 0u64;
    let mut last_user = None;
    for message in messages {
        let text = content_text(message.get("content"));
        prompt_words += word_count(&text);
        if message.get("role").and_then(Value::as_str) == Some("user") {
            last_user = Some(text);
        }
    }
    let last = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) != Some("system"));
    let last_role = last.and_then(|m| m.get("role")).and_then(Value::as_str);
    let tool = json
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .filter(|_| {
            last_role == Some("user")
                && last_user
                    .as_deref()
                    .is_some_and(|t| t.contains("call tool"))
        })
        .map(|t| {
            t.pointer("/function/name")
                .and_then(Value::as_str)
                .unwrap_or("tool")
        });
    let echoed = match last_role {
        Some("tool") => last.map(|m| content_text(m.get("content"))),
        _ => last_user,
    };
    let echoed = echoed.as_deref().unwrap_or("");
    let format = json.get("response_format");
    let full = match format.and_then(|f| f.get("type")).and_then(Value::as_str) {
        Some("json_schema") => {
            let schema = format.and_then(|f| f.pointer("/json_schema/schema"));
            crate::sample::sample(schema.unwrap_or(&Value::Null)).to_string()
        }
        Some("json_object") => serde_json::json!({ "echo": echoed }).to_string(),
        _ => format!("echo: {echoed}"),
    };
    let full_words = word_count(&full);

    let limit = ["max_tokens", "max_completion_tokens"]
        .iter()
        .filter_map(|key| json.get(*key).and_then(Value::as_u64))
        .min();
    let (content, completion, finish_reason) = match limit {
        _ if tool.is_some() => ("", 1, "tool_calls"),
        Some(limit) if limit < full_words => (first_words(&full, limit), limit, "length"),
        _ => (full.as_str(), full_words, "stop"),
    };
    let usage = Usage::new(prompt_words.max(1), completion);
    let id = shared.next_id();
    let completion = Completion {
        id: format!("chatcmpl-mock-{id}"),
        created: unix_now(),
        model,
        content,
        finish_reason,
        usage,
        tool: tool.map(|name| (format!("call_mock_{id}"), name)),
    };

    let streaming = json.get("stream").and_then(Value::as_bool) == Some(true);
    let response = if streaming {
        let include_usage = json
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true);
        completion.stream(include_usage)
    } else {
        completion.whole()
    };
    Reply {
        response,
        usage: Some(Tokens {
            prompt: usage.prompt_tokens,
            completion: usage.completion_tokens,
        }),
    }
}

/// The text of a message `content`: a string, or the concatenated `text` of its text parts.
fn content_text(content: Option<&Value>) -> Cow<'_, str> {
    match content {
        Some(Value::String(s)) => Cow::Borrowed(s),
        Some(Value::Array(parts)) => {
            let texts = parts.iter().filter_map(|part| {
                let is_text = part.get("type").and_then(Value::as_str) == Some("text");
                part.get("text").and_then(Value::as_str).filter(|_| is_text)
            });
            Cow::Owned(texts.collect())
        }
        _ => Cow::Borrowed(""),
    }
}

pub(super) fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// `text` cut into one piece per word, each piece running up to the start of the next word, so the
/// pieces concatenate to `text` (leading whitespace goes with the first word).
pub(crate) fn word_pieces(text: &str) -> Vec<&str> {
    let mut starts = Vec::new();
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        let is_word = !c.is_whitespace();
        if is_word && !in_word {
            starts.push(i);
        }
        in_word = is_word;
    }
    if starts.is_empty() {
        return if text.is_empty() {
            Vec::new()
        } else {
            vec![text]
        };
    }
    if let Some(first) = starts.first_mut() {
        *first = 0;
    }
    let ends = starts.iter().skip(1).copied().chain([text.len()]);
    starts
        .iter()
        .zip(ends)
        .filter_map(|(&start, end)| text.get(start..end))
        .collect()
}

/// The prefix of `text` holding its first `n` words, without trailing whitespace.
pub(super) fn first_words(text: &str, n: u64) -> &str {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let len: usize = word_pieces(text).iter().take(n).map(|p| p.len()).sum();
    text.get(..len).unwrap_or(text).trim_end()
}

/// Everything one answer needs, whichever way it is sent.
struct Completion<'a> {
    id: String,
    created: u64,
    model: &'a str,
    content: &'a str,
    finish_reason: &'static str,
    usage: Usage,
    /// A call of this tool (its id and name) instead of text.
    tool: Option<(String, &'a str)>,
}

impl Completion<'_> {
    /// The tool call, with `arguments` as given (streamed: empty, then `{}`).
    fn tool_calls(&self, arguments: &str, whole: bool) -> Option<Value> {
        let (id, name) = self.tool.as_ref()?;
        let mut call = serde_json::json!({
            "id": id, "type": "function", "function": {"name": name, "arguments": arguments}
        });
        if !whole {
            call["index"] = 0.into();
        }
        Some(Value::Array(vec![call]))
    }

    /// The `chat.completion` JSON response.
    fn whole(&self) -> http::Response<MockBody> {
        body::json(
            StatusCode::OK,
            &ChatCompletion {
                id: &self.id,
                object: "chat.completion",
                created: self.created,
                model: self.model,
                choices: [Choice {
                    index: 0,
                    message: Message {
                        role: "assistant",
                        content: self.tool.is_none().then_some(self.content),
                        refusal: None,
                        tool_calls: self.tool_calls("{}", true),
                    },
                    logprobs: None,
                    finish_reason: self.finish_reason,
                }],
                usage: self.usage,
                system_fingerprint: FINGERPRINT,
            },
        )
    }

    /// The `text/event-stream` response.
    fn stream(&self, include_usage: bool) -> http::Response<MockBody> {
        let pieces = word_pieces(self.content);
        // `"usage": null` on every chunk when usage is requested, as OpenAI does; absent otherwise.
        let no_usage = include_usage.then_some(None);
        let chunk = |delta: Delta<'_>, finish_reason: Option<&str>| -> Vec<u8> {
            let choice = ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            };
            self.event(&[choice], no_usage)
        };

        let mut frames = Vec::with_capacity(pieces.len() + 4);
        let role = Delta {
            role: Some("assistant"),
            content: Some(""),
            tool_calls: None,
        };
        frames.push(chunk(role, None));
        for piece in pieces {
            let delta = Delta {
                role: None,
                content: Some(piece),
                tool_calls: None,
            };
            frames.push(chunk(delta, None));
        }
        if let (Some(start), Some(mut args)) =
            (self.tool_calls("", false), self.tool_calls("{}", false))
        {
            frames.push(chunk(
                Delta {
                    tool_calls: Some(start),
                    ..Delta::default()
                },
                None,
            ));
            // The arguments piece carries only the index and the text, as OpenAI's do.
            args[0] = serde_json::json!({"index": 0, "function": {"arguments": "{}"}});
            frames.push(chunk(
                Delta {
                    tool_calls: Some(args),
                    ..Delta::default()
                },
                None,
            ));
        }
        frames.push(chunk(Delta::default(), Some(self.finish_reason)));
        if include_usage {
            frames.push(self.event(&[], Some(Some(self.usage))));
        }
        let mut frames: Vec<Bytes> = frames.into_iter().map(Bytes::from).collect();
        frames.push(Bytes::from_static(b"data: [DONE]\n\n"));

        let mut response = body::response(
            StatusCode::OK,
            "text/event-stream",
            MockBody::stream(frames),
        );
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-cache"),
        );
        response
    }

    /// One `data: {chunk}\n\n` event.
    fn event(&self, choices: &[ChunkChoice<'_>], usage: Option<Option<Usage>>) -> Vec<u8> {
        let chunk = ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model,
            system_fingerprint: FINGERPRINT,
            choices,
            usage,
        };
        let mut event = Vec::with_capacity(192 + self.model.len());
        event.extend_from_slice(b"data: ");
        // Writing plain structs with string keys into a Vec cannot fail.
        if serde_json::to_writer(&mut event, &chunk).is_err() {
            event.truncate(b"data: ".len());
            event.extend_from_slice(b"{}");
        }
        event.extend_from_slice(b"\n\n");
        event
    }
}

#[derive(Serialize, Clone, Copy)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl Usage {
    fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: Usage,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Value>,
}

#[derive(Serialize)]
struct ChatChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent (`None`), `null` (`Some(None)`) or the usage object.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pieces_concatenate_to_the_text() {
        for text in ["echo: hi there", "  a  b\nc ", "one", "", "é ü  ß", "   "] {
            let pieces = word_pieces(text);
            assert_eq!(pieces.concat(), text, "{text:?}");
            if word_count(text) > 0 {
                assert_eq!(pieces.len() as u64, word_count(text), "{text:?}");
            }
        }
        assert_eq!(word_pieces("a  b"), vec!["a  ", "b"]);
    }

    #[test]
    fn first_words_keeps_original_spacing() {
        assert_eq!(first_words("echo: a  b c", 3), "echo: a  b");
        assert_eq!(first_words("echo: a", 0), "");
        assert_eq!(first_words("echo: a", 9), "echo: a");
    }

    #[test]
    fn content_parts_are_concatenated() {
        let parts = json!([
            {"type": "text", "text": "hello "},
            {"type": "image_url", "image_url": {"url": "x"}},
            {"type": "text", "text": "world"}
        ]);
        assert_eq!(content_text(Some(&parts)), "hello world");
        assert_eq!(content_text(Some(&json!("plain"))), "plain");
        assert_eq!(content_text(Some(&Value::Null)), "");
        assert_eq!(content_text(None), "");
    }
}
