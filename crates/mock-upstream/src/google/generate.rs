//! `:generateContent` and `:streamGenerateContent` (Gemini API and Vertex AI alike): the
//! deterministic echo model in Gemini's format, and the embeddings methods.
//!
//! The reply is one text part, `"echo: "` followed by the text of the last `user` turn's
//! text parts. With `generationConfig.responseMimeType: application/json` it is the JSON
//! `{"echo": "<that text>"}` instead. Tokens are words: prompt tokens are the words of
//! `systemInstruction` and every turn's text and function responses (at least 1),
//! candidate tokens the words of the reply; `maxOutputTokens` below that count cuts the
//! reply (`finishReason: MAX_TOKENS`). `candidateCount` candidates are returned, all the
//! same.
//!
//! When the request declares functions and the last user text contains `call tool`, the
//! reply is a `functionCall` of the first function with `args: {}` (1 token); with `call
//! tools`, one call of every declared function. `functionCallingConfig.mode: ANY` forces
//! a call of the first allowed function whatever the text, its `args` a value fitting
//! its `parametersJsonSchema` ([`crate::sample`]) (unless the text says `call tool`, or a
//! function has already answered in the conversation); a
//! `responseJsonSchema` with `properties` makes the text reply such a value as JSON. When it
//! contains `block me`, the prompt is blocked: no candidates and
//! `promptFeedback.blockReason: SAFETY`; with `unsafe answer`, the candidate stops with
//! `finishReason: SAFETY` and no content.
//!
//! A stream (`alt=sse`) sends one `data:` event per word, each a whole
//! `GenerateContentResponse`, the last carrying `finishReason` and `usageMetadata`.
//!
//! Embeddings: `:batchEmbedContents` (`requests[].content.parts[].text`) and Vertex's
//! `:predict` (`instances[].content`) answer with the same deterministic unit vectors as
//! the OpenAI format (`outputDimensionality`, default 8).

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use super::{error, is_streaming, Api, Route};
use crate::anthropic::{first_words, word_count, word_pieces};
use crate::body::{self, MockBody, Reply};
use crate::openai::{fnv1a, vector};
use crate::sample::sample;
use crate::server::Payload;
use crate::state::{Shared, Tokens};

fn bad_request(message: &str) -> Reply {
    error(StatusCode::BAD_REQUEST, message).into()
}

/// The text parts of a content's `parts`; with `responses`, function responses too.
fn text_of(parts: Option<&Value>, responses: bool) -> String {
    let mut text = String::new();
    for part in parts.and_then(Value::as_array).into_iter().flatten() {
        if let Some(t) = part.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let (true, Some(r)) = (responses, part.get("functionResponse")) {
            text.push(' ');
            text.push_str(&r.get("response").map(Value::to_string).unwrap_or_default());
            text.push(' ');
        }
    }
    text
}

enum Answer {
    Text {
        text: String,
        finish: &'static str,
    },
    /// Function calls: (name, args).
    Call {
        calls: Vec<(String, Value)>,
    },
    Blocked,
    Unsafe,
}

pub(super) fn respond(shared: &Shared, route: &Route<'_>, payload: &Payload) -> Reply {
    let Some(json) = payload.json().filter(|v| v.is_object()) else {
        return bad_request("Invalid JSON payload received.");
    };
    let Some(contents) = json
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    else {
        return bad_request("* GenerateContentRequest.contents: contents is not specified");
    };
    if json.get("model").is_some() {
        return bad_request(
            "Invalid JSON payload received. Unknown name \"model\": Cannot find field.",
        );
    }
    let mut prompt = word_count(&text_of(json.pointer("/systemInstruction/parts"), false));
    let mut last_user = String::new();
    for content in contents {
        prompt += word_count(&text_of(content.get("parts"), true));
        let role = content
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user");
        if role == "user" {
            last_user = text_of(content.get("parts"), false);
        } else if role != "model" {
            return bad_request(&format!(
                "Please use a valid role: user, model. Got {role:?}."
            ));
        }
    }
    let config = json.get("generationConfig").cloned().unwrap_or(Value::Null);
    let functions: Vec<&Value> = json
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .collect();
    let name_of = |f: &Value| {
        f.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    // "call tool" in the text keeps the plain `{}` call even when a call is forced.
    // Once a function has answered, the echo model answers in text.
    let answered = contents.iter().any(|c| {
        c.get("parts")
            .and_then(Value::as_array)
            .is_some_and(|p| p.iter().any(|p| p.get("functionResponse").is_some()))
    });
    let forced =
        forced_function(json, &functions).filter(|_| !last_user.contains("call tool") && !answered);
    let answer = if last_user.contains("block me") {
        Answer::Blocked
    } else if last_user.contains("unsafe answer") {
        Answer::Unsafe
    } else if let Some(f) = forced {
        let schema = f.get("parametersJsonSchema").unwrap_or(&Value::Null);
        Answer::Call {
            calls: vec![(name_of(f), sample(schema))],
        }
    } else if !functions.is_empty() && last_user.contains("call tools") {
        Answer::Call {
            calls: functions.iter().map(|f| (name_of(f), json!({}))).collect(),
        }
    } else if let (Some(f), true) = (functions.first(), last_user.contains("call tool")) {
        Answer::Call {
            calls: vec![(name_of(f), json!({}))],
        }
    } else {
        let schema = config
            .get("responseJsonSchema")
            .filter(|s| s.get("properties").is_some());
        let full = if let Some(schema) = schema {
            sample(schema).to_string()
        } else if config["responseMimeType"] == "application/json" {
            json!({ "echo": last_user }).to_string()
        } else {
            format!("echo: {last_user}")
        };
        match config["maxOutputTokens"].as_u64() {
            Some(max) if max < word_count(&full) => Answer::Text {
                text: first_words(&full, max).to_string(),
                finish: "MAX_TOKENS",
            },
            _ => Answer::Text {
                text: full,
                finish: "STOP",
            },
        }
    };
    let output = match &answer {
        Answer::Text { text, .. } => word_count(text),
        Answer::Call { .. } => 1,
        Answer::Blocked | Answer::Unsafe => 0,
    };
    let candidates = config["candidateCount"].as_u64().unwrap_or(1).clamp(1, 8);
    let prompt = prompt.max(1);
    let reply = Reply {
        response: Generated {
            id: format!("mock-{}", shared.next_id()),
            model: route.model,
            vertex: route.api == Api::Vertex,
            answer,
            candidates,
            prompt,
            output,
        }
        .render(is_streaming(route)),
        usage: Some(Tokens {
            prompt,
            completion: output * candidates,
        }),
    };
    reply
}

/// The function `functionCallingConfig` forces: mode `ANY` calls the first allowed
/// function (or the first declared).
fn forced_function<'a>(json: &Value, functions: &[&'a Value]) -> Option<&'a Value> {
    let config = json.pointer("/toolConfig/functionCallingConfig")?;
    if config.get("mode").and_then(Value::as_str) != Some("ANY") {
        return None;
    }
    let allowed = config
        .get("allowedFunctionNames")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str);
    match allowed {
        Some(name) => functions
            .iter()
            .find(|f| f.get("name").and_then(Value::as_str) == Some(name))
            .copied(),
        None => functions.first().copied(),
    }
}

struct Generated<'a> {
    id: String,
    model: &'a str,
    vertex: bool,
    answer: Answer,
    candidates: u64,
    prompt: u64,
    output: u64,
}

impl Generated<'_> {
    fn usage(&self) -> Value {
        let completion = self.output * self.candidates;
        json!({
            "promptTokenCount": self.prompt,
            "candidatesTokenCount": completion,
            "totalTokenCount": self.prompt + completion,
        })
    }

    /// One `GenerateContentResponse` with `parts` in every candidate (`finish` and usage
    /// on the last event only).
    fn object(&self, parts: Value, finish: Option<&str>, usage: bool) -> Value {
        let mut out = json!({ "modelVersion": self.model, "responseId": self.id });
        if let Answer::Blocked = self.answer {
            out["promptFeedback"] = json!({ "blockReason": "SAFETY" });
        } else {
            let candidates: Vec<Value> = (0..self.candidates)
                .map(|index| {
                    let mut c = json!({ "index": index });
                    if !parts.as_array().is_some_and(Vec::is_empty) {
                        c["content"] = json!({ "role": "model", "parts": parts });
                    }
                    if let Some(f) = finish {
                        c["finishReason"] = json!(f);
                    }
                    c
                })
                .collect();
            out["candidates"] = Value::from(candidates);
        }
        if usage {
            out["usageMetadata"] = self.usage();
        }
        if self.vertex {
            out["createTime"] = json!("2025-01-01T00:00:00.000000Z");
        }
        out
    }

    fn finish(&self) -> &'static str {
        match &self.answer {
            Answer::Text { finish, .. } => finish,
            Answer::Call { .. } | Answer::Blocked => "STOP",
            Answer::Unsafe => "SAFETY",
        }
    }

    fn render(&self, stream: bool) -> http::Response<MockBody> {
        let pieces: Vec<Value> = match &self.answer {
            Answer::Text { text, .. } => word_pieces(text)
                .into_iter()
                .map(|p| json!([{ "text": p }]))
                .collect(),
            Answer::Call { calls } => {
                let parts: Vec<Value> = calls
                    .iter()
                    .map(|(name, args)| json!({ "functionCall": { "name": name, "args": args } }))
                    .collect();
                vec![Value::from(parts)]
            }
            Answer::Blocked | Answer::Unsafe => vec![json!([])],
        };
        let finish = (!matches!(self.answer, Answer::Blocked)).then(|| self.finish());
        if !stream {
            let parts: Vec<Value> = match &self.answer {
                Answer::Text { text, .. } => vec![json!({ "text": text })],
                _ => pieces
                    .into_iter()
                    .flat_map(|p| p.as_array().cloned().unwrap_or_default())
                    .collect(),
            };
            return body::json(
                StatusCode::OK,
                &self.object(Value::from(parts), finish, true),
            );
        }
        let last = pieces.len().saturating_sub(1);
        let frames: Vec<Bytes> = pieces
            .into_iter()
            .enumerate()
            .map(|(i, parts)| {
                let done = i == last;
                let event = self.object(parts, finish.filter(|_| done), done);
                Bytes::from(format!("data: {event}\r\n\r\n"))
            })
            .collect();
        body::response(
            StatusCode::OK,
            "text/event-stream",
            MockBody::stream(frames),
        )
    }
}

/// `:batchEmbedContents` (Gemini API) or `:predict` (Vertex AI).
pub(super) fn embed(route: &Route<'_>, payload: &Payload) -> Reply {
    let Some(json) = payload.json() else {
        return bad_request("Invalid JSON payload received.");
    };
    let vertex = route.api == Api::Vertex;
    let items: Vec<(String, Option<u64>)> = if vertex {
        let dims = json
            .pointer("/parameters/outputDimensionality")
            .and_then(Value::as_u64);
        json.get("instances")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|i| (i["content"].as_str().unwrap_or("").to_string(), dims))
            .collect()
    } else {
        json.get("requests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    text_of(r.pointer("/content/parts"), false),
                    r["outputDimensionality"].as_u64(),
                )
            })
            .collect()
    };
    if items.is_empty() {
        return bad_request(if vertex {
            "instances is required"
        } else {
            "requests is required"
        });
    }
    let mut tokens = 0;
    let mut out = Vec::new();
    for (text, dims) in &items {
        let dims = usize::try_from(dims.unwrap_or(8).clamp(1, 4096)).unwrap_or(8);
        let values = vector(fnv1a(text.as_bytes()), dims);
        let count = word_count(text);
        tokens += count;
        out.push(if vertex {
            json!({ "embeddings": { "values": values,
                "statistics": { "token_count": count, "truncated": false } } })
        } else {
            json!({ "values": values })
        });
    }
    let body = if vertex {
        json!({ "predictions": out })
    } else {
        json!({ "embeddings": out })
    };
    Reply {
        response: body::json(StatusCode::OK, &body),
        usage: Some(Tokens {
            prompt: tokens,
            completion: 0,
        }),
    }
}
