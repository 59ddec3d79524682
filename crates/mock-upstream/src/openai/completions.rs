//! `POST /v1/completions` (legacy): the same deterministic echo model as chat, whole or
//! streamed as SSE.
//!
//! Each prompt (a string, or each string of a list) gets one choice: `"echo: "` and the
//! prompt. Tokens are words, as in [`super::chat`]; `max_tokens` (default 16, OpenAI's)
//! below the reply's count truncates it with `finish_reason: "length"`. A stream sends one
//! chunk per word, a chunk with the `finish_reason` per choice, a usage chunk when
//! `stream_options.include_usage` is true, and `data: [DONE]`.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use super::chat::{first_words, word_count, word_pieces};
use super::unix_now;
use crate::body::{self, MockBody, Reply};
use crate::state::{Shared, Tokens};

/// OpenAI's default `max_tokens` for a completion.
const DEFAULT_MAX_TOKENS: u64 = 16;

/// Answers a completions request whose body is `json` and whose model is `model`.
pub(super) fn respond(shared: &Shared, json: &Value, model: &str) -> Reply {
    let prompts: Vec<&str> = match json.get("prompt") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) && !a.is_empty() => {
            a.iter().filter_map(Value::as_str).collect()
        }
        _ => {
            return super::bad_request(
                "'prompt' must be a string or a list of strings",
                Some("prompt"),
            )
        }
    };
    let limit = json
        .get("max_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let mut prompt_tokens = 0;
    let mut completion_tokens = 0;
    let mut choices = Vec::with_capacity(prompts.len());
    for (i, prompt) in prompts.iter().enumerate() {
        prompt_tokens += word_count(prompt).max(1);
        let full = format!("echo: {prompt}");
        let words = word_count(&full);
        let (text, n, finish) = if limit < words {
            (first_words(&full, limit).to_owned(), limit, "length")
        } else {
            (full, words, "stop")
        };
        completion_tokens += n;
        choices.push((i, text, finish));
    }
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens});
    let id = format!("cmpl-mock-{}", shared.next_id());
    let created = unix_now();
    let head = |choices: Value| {
        json!({"id": id, "object": "text_completion", "created": created, "model": model,
            "choices": choices})
    };
    let streaming = json.get("stream").and_then(Value::as_bool) == Some(true);
    let response = if streaming {
        let include_usage = json
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        let mut frames = Vec::new();
        let mut push = |v: Value| frames.push(Bytes::from(format!("data: {v}\n\n")));
        for (i, text, finish) in &choices {
            for piece in word_pieces(text) {
                push(head(
                    json!([{"text": piece, "index": i, "logprobs": null, "finish_reason": null}]),
                ));
            }
            push(head(
                json!([{"text": "", "index": i, "logprobs": null, "finish_reason": finish}]),
            ));
        }
        if include_usage {
            let mut last = head(json!([]));
            last["usage"] = usage.clone();
            push(last);
        }
        frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
        body::response(
            StatusCode::OK,
            "text/event-stream",
            MockBody::stream(frames),
        )
    } else {
        let choices: Vec<Value> = choices
            .iter()
            .map(|(i, text, finish)| {
                json!({"text": text, "index": i, "logprobs": null, "finish_reason": finish})
            })
            .collect();
        let mut whole = head(Value::Array(choices));
        whole["usage"] = usage;
        body::json(StatusCode::OK, &whole)
    };
    Reply {
        response,
        usage: Some(Tokens {
            prompt: prompt_tokens,
            completion: completion_tokens,
        }),
    }
}
