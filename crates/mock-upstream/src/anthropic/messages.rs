//! `POST /v1/messages`: the deterministic echo model in Anthropic's format, whole or streamed.
//!
//! The reply is one text block, `"echo: "` followed by the text of the last `user` message
//! (its string content, or its text blocks concatenated). Tokens are words: input tokens are
//! the whitespace-separated words of `system` and of every message's text and tool results
//! (at least 1), output tokens the words of the reply. `max_tokens` below that count cuts the
//! reply to that many words with `stop_reason: "max_tokens"`.
//!
//! When the request has `tools` and the last user text contains `call tool`, the reply is a
//! single `tool_use` block calling the first tool with input `{}` (`stop_reason: "tool_use"`,
//! 1 output token). A `tool_choice` that forces a tool (`{type: tool, name}`, or `{type:
//! any}`: the first) is answered with that call whatever the text, its input a value that
//! fits the tool's `input_schema` ([`crate::sample`]). With
//! `output_config.format.schema` the text reply is such a value as JSON.
//!
//! A stream sends Anthropic's event sequence, one event per frame: `message_start`,
//! `content_block_start`, `ping`, one `content_block_delta` per word (`text_delta`; a tool call
//! sends `input_json_delta`s instead), `content_block_stop`, `message_delta` (stop reason and
//! output tokens) and `message_stop`.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use crate::body::{self, MockBody, Reply};
use crate::sample::sample;
use crate::state::{Shared, Tokens};

/// Answers a Messages request whose required fields the caller has checked.
pub(super) fn respond(
    shared: &Shared,
    json: &Value,
    model: &str,
    max_tokens: u64,
    turns: &[Value],
) -> Reply {
    let mut input = word_count(&text_of(json.get("system"), false));
    let mut last_user = None;
    for turn in turns {
        input += word_count(&text_of(turn.get("content"), true));
        if turn.get("role").and_then(Value::as_str) == Some("user") {
            last_user = Some(text_of(turn.get("content"), false));
        }
    }
    let last_user = last_user.unwrap_or_default();
    let tools = json.get("tools").and_then(Value::as_array);
    let forced = forced_tool(json.get("tool_choice"), tools);
    let tool = match forced {
        Some(t) => Some((t, sample(t.get("input_schema").unwrap_or(&Value::Null)))),
        None => tools
            .and_then(|tools| tools.first())
            .filter(|_| last_user.contains("call tool"))
            .map(|t| (t, json!({}))),
    };

    let id = shared.next_id();
    let answer = match tool {
        Some((t, input)) => Answer::Tool {
            id: format!("toolu_mock_{id}"),
            name: t.get("name").and_then(Value::as_str).unwrap_or("tool"),
            input,
        },
        None => {
            let full = match json.pointer("/output_config/format/schema") {
                Some(schema) => sample(schema).to_string(),
                None => format!("echo: {last_user}"),
            };
            let words = word_count(&full);
            if max_tokens < words {
                let cut = first_words(&full, max_tokens).to_string();
                Answer::Text {
                    text: cut,
                    stop_reason: "max_tokens",
                }
            } else {
                Answer::Text {
                    text: full,
                    stop_reason: "end_turn",
                }
            }
        }
    };
    let output = match &answer {
        Answer::Text { text, .. } => word_count(text),
        Answer::Tool { .. } => 1,
    };
    let message = Message {
        id: format!("msg_mock_{id}"),
        model,
        answer,
        input: input.max(1),
        output,
    };
    let streaming = json.get("stream").and_then(Value::as_bool) == Some(true);
    Reply {
        response: if streaming {
            message.stream()
        } else {
            message.whole()
        },
        usage: Some(Tokens {
            prompt: message.input,
            completion: message.output,
        }),
    }
}

/// What the model says.
enum Answer<'a> {
    Text {
        text: String,
        stop_reason: &'static str,
    },
    Tool {
        id: String,
        name: &'a str,
        input: Value,
    },
}

/// The tool `tool_choice` forces: the named one (`{type: tool}`), or the first
/// (`{type: any}`).
fn forced_tool<'a>(choice: Option<&Value>, tools: Option<&'a Vec<Value>>) -> Option<&'a Value> {
    let tools = tools?;
    match choice?.get("type").and_then(Value::as_str)? {
        "any" => tools.first(),
        "tool" => {
            let name = choice?.get("name").and_then(Value::as_str)?;
            tools
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
        }
        _ => None,
    }
}

/// Everything one answer needs, whichever way it is sent.
struct Message<'a> {
    id: String,
    model: &'a str,
    answer: Answer<'a>,
    input: u64,
    output: u64,
}

impl Message<'_> {
    fn stop_reason(&self) -> &'static str {
        match &self.answer {
            Answer::Text { stop_reason, .. } => stop_reason,
            Answer::Tool { .. } => "tool_use",
        }
    }

    fn usage(&self, output: u64) -> Value {
        json!({
            "input_tokens": self.input,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output,
        })
    }

    /// The `Message` object with `content`, `stop_reason` and `usage` as given.
    fn object(&self, content: Value, stop_reason: Option<&str>, usage: Value) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": usage,
        })
    }

    /// The whole answer as one JSON response.
    fn whole(&self) -> http::Response<MockBody> {
        let block = match &self.answer {
            Answer::Text { text, .. } => json!({"type": "text", "text": text}),
            Answer::Tool { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
        };
        let message = self.object(
            json!([block]),
            Some(self.stop_reason()),
            self.usage(self.output),
        );
        body::json(StatusCode::OK, &message)
    }

    /// The answer as Anthropic's SSE event sequence.
    fn stream(&self) -> http::Response<MockBody> {
        let mut frames = vec![
            event(&json!({
                "type": "message_start",
                "message": self.object(json!([]), None, self.usage(0)),
            })),
            event(&json!({
                "type": "content_block_start",
                "index": 0,
                "content_block": match &self.answer {
                    Answer::Text { .. } => json!({"type": "text", "text": ""}),
                    Answer::Tool { id, name, .. } => {
                        json!({"type": "tool_use", "id": id, "name": name, "input": {}})
                    }
                },
            })),
            event(&json!({"type": "ping"})),
        ];
        let deltas: Vec<Value> = match &self.answer {
            Answer::Text { text, .. } => word_pieces(text)
                .into_iter()
                .map(|piece| json!({"type": "text_delta", "text": piece}))
                .collect(),
            Answer::Tool { input, .. } => {
                let text = input.to_string();
                let mid = (0..=text.len() / 2)
                    .rev()
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                let (head, tail) = text.split_at(mid);
                vec![
                    json!({"type": "input_json_delta", "partial_json": ""}),
                    json!({"type": "input_json_delta", "partial_json": head}),
                    json!({"type": "input_json_delta", "partial_json": tail}),
                ]
            }
        };
        for delta in deltas {
            frames.push(event(
                &json!({"type": "content_block_delta", "index": 0, "delta": delta}),
            ));
        }
        frames.push(event(&json!({"type": "content_block_stop", "index": 0})));
        frames.push(event(&json!({
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason(), "stop_sequence": null},
            "usage": {"output_tokens": self.output},
        })));
        frames.push(event(&json!({"type": "message_stop"})));

        let mut response = body::response(
            StatusCode::OK,
            "text/event-stream; charset=utf-8",
            MockBody::stream(frames),
        );
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-cache"),
        );
        response
    }
}

/// One `event: TYPE\ndata: JSON\n\n` frame.
fn event(data: &Value) -> Bytes {
    let kind = data.get("type").and_then(Value::as_str).unwrap_or("");
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

/// The text of a `content` (or `system`): a string, or its text blocks concatenated; with
/// `tool_results`, the text of `tool_result` blocks too.
fn text_of(content: Option<&Value>, tool_results: bool) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            let mut text = String::new();
            for block in blocks {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push_str(block.get("text").and_then(Value::as_str).unwrap_or(""));
                    }
                    Some("tool_result") if tool_results => {
                        text.push(' ');
                        text.push_str(&text_of(block.get("content"), false));
                        text.push(' ');
                    }
                    _ => {}
                }
            }
            text
        }
        _ => String::new(),
    }
}

pub(crate) fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// `text` cut into one piece per word, each running up to the start of the next word, so the
/// pieces concatenate to `text` (leading whitespace goes with the first word).
pub(crate) fn word_pieces(text: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = text
        .char_indices()
        .zip(std::iter::once(true).chain(text.chars().map(char::is_whitespace)))
        .filter(|((_, c), prev_ws)| !c.is_whitespace() && *prev_ws)
        .map(|((i, _), _)| i)
        .collect();
    match starts.first_mut() {
        Some(first) => *first = 0,
        None if text.is_empty() => return Vec::new(),
        None => return vec![text],
    }
    let ends = starts.iter().skip(1).copied().chain([text.len()]);
    starts
        .iter()
        .zip(ends)
        .filter_map(|(&start, end)| text.get(start..end))
        .collect()
}

/// The prefix of `text` holding its first `n` words, without trailing whitespace.
pub(crate) fn first_words(text: &str, n: u64) -> &str {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let len: usize = word_pieces(text).iter().take(n).map(|p| p.len()).sum();
    text.get(..len).unwrap_or(text).trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(first_words("echo: a  b c", 3), "echo: a  b");
        assert_eq!(first_words("echo: a", 0), "");
    }

    #[test]
    fn text_of_blocks_and_tool_results() {
        let content = json!([
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "r1 r2"}]},
            {"type": "text", "text": "hello"},
            {"type": "image", "source": {"type": "url", "url": "https://x"}},
        ]);
        assert_eq!(text_of(Some(&content), false), "hello");
        assert_eq!(word_count(&text_of(Some(&content), true)), 3);
        assert_eq!(text_of(Some(&json!("plain")), false), "plain");
        assert_eq!(text_of(None, true), "");
    }
}
