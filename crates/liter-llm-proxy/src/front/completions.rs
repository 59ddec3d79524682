//! OpenAI's legacy completions at the front door: `POST /v1/completions`.
//!
//! An OpenAI-compatible deployment (Azure included) gets the client's request as it
//! came (a [`Native`] request of the OpenAI wire, sent to the upstream's
//! `/completions`; its answers and streams are passed on as they are). Every other
//! deployment gets the canonical chat request: the prompt as one user message; its
//! answer is written back as a `text_completion` (`choices[].text`), its stream as
//! `text_completion` chunks. Fields with no chat counterpart (`suffix`, `echo`,
//! `best_of`, `logprobs`) are kept as they are, so the deployment's adapter applies
//! the `drop_params` rule (400 naming the field, or dropped with the warning header).
//! A `max_tokens` left out is OpenAI's default for this endpoint, 16.

use axum::http::HeaderMap;
use bytes::{Bytes, BytesMut};
use liter_llm::types::ChatCompletionChunk;
use serde_json::{json, Map, Value};

use super::{Decoded, FrontDoor, StreamEncode};
use crate::error::{GatewayError, Wire};
use crate::request::{parse_head, parse_json, Head};
use crate::upstream::Native;

/// OpenAI's default `max_tokens` for a completion.
pub const DEFAULT_MAX_TOKENS: u64 = 16;

/// The completions front door.
#[derive(Debug, Clone, Copy, Default)]
pub struct Completions;

/// Whether `prompt` is one text (a string, or a list of one string): what a
/// translating deployment can answer.
pub fn single_prompt(body: &[u8]) -> bool {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match v.get("prompt") {
        Some(Value::String(_)) => true,
        Some(Value::Array(a)) => a.len() == 1 && a[0].is_string(),
        _ => false,
    }
}

/// The canonical chat body for a completions request body.
pub fn canonical(body: &[u8]) -> Result<Value, GatewayError> {
    let mut req: Map<String, Value> = parse_json(body)?;
    let prompt = match req.remove("prompt") {
        Some(Value::String(s)) => s,
        Some(Value::Array(a)) => match a.first() {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        },
        None | Some(Value::Null) => {
            return Err(GatewayError::BadRequest {
                message: "missing required parameter: 'prompt'".into(),
                param: Some("prompt"),
                code: Some("missing_required_parameter"),
            })
        }
        Some(_) => {
            return Err(GatewayError::BadRequest {
                message: "'prompt' must be a string or a list of strings".into(),
                param: Some("prompt"),
                code: Some("invalid_type"),
            })
        }
    };
    let mut out = req;
    out.insert(
        "messages".into(),
        json!([{"role": "user", "content": prompt}]),
    );
    out.entry("max_tokens").or_insert(DEFAULT_MAX_TOKENS.into());
    Ok(Value::Object(out))
}

impl FrontDoor for Completions {
    fn wire(&self) -> Wire {
        Wire::OpenAi
    }

    fn decode(
        &self,
        body: &Bytes,
        _headers: &HeaderMap,
        _all_native: &dyn Fn(&Head) -> bool,
    ) -> Result<Decoded, GatewayError> {
        let head = parse_head(body)?;
        let canonical = canonical(body)?;
        Ok(Decoded {
            canonical: Bytes::from(canonical.to_string()),
            native: Some(Native {
                wire: Wire::OpenAi,
                body: body.clone(),
                head,
                headers: Vec::new(),
            }),
            dropped: Vec::new(),
        })
    }

    fn answer(&self, answer: &[u8]) -> Result<Bytes, GatewayError> {
        let answer = super::read_answer(answer)?;
        let choices: Vec<Value> = answer
            .choices
            .into_iter()
            .map(|c| {
                json!({"text": c.message.content.unwrap_or_default(), "index": c.index,
                    "logprobs": null, "finish_reason": c.finish_reason})
            })
            .collect();
        let mut out = json!({"id": completion_id(&answer.id), "object": "text_completion",
            "created": answer.created, "model": answer.model, "choices": choices});
        if let Some(u) = answer.usage {
            out["usage"] = serde_json::to_value(u).unwrap_or(Value::Null);
        }
        serde_json::to_vec(&out)
            .map(Bytes::from)
            .map_err(|e| GatewayError::Internal(format!("cannot encode the answer: {e}")))
    }

    fn stream(&self) -> Box<dyn StreamEncode> {
        Box::new(CompletionsStream)
    }
}

/// OpenAI's completion id (`cmpl-...`) for a canonical answer's id.
fn completion_id(id: &str) -> String {
    format!("cmpl-{}", id.strip_prefix("chatcmpl-").unwrap_or(id))
}

/// Canonical chunks as `text_completion` chunks (the usage chunk, which the pipeline
/// passes on only to a client that asked for it, too).
struct CompletionsStream;

fn data(out: &mut BytesMut, v: &Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&serde_json::to_vec(v).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
}

impl StreamEncode for CompletionsStream {
    fn chunk(&mut self, chunk: ChatCompletionChunk, out: &mut BytesMut) {
        let choices: Vec<Value> = chunk
            .choices
            .into_iter()
            .filter(|c| {
                c.delta.content.as_ref().is_some_and(|t| !t.is_empty()) || c.finish_reason.is_some()
            })
            .map(|c| {
                json!({"text": c.delta.content.unwrap_or_default(), "index": c.index,
                    "logprobs": null, "finish_reason": c.finish_reason})
            })
            .collect();
        let usage = chunk.usage.flatten();
        if choices.is_empty() && usage.is_none() {
            return;
        }
        let mut v = json!({"id": completion_id(&chunk.id), "object": "text_completion",
            "created": chunk.created, "model": chunk.model, "choices": choices});
        if let Some(u) = usage {
            v["usage"] = serde_json::to_value(u).unwrap_or(Value::Null);
        }
        data(out, &v);
    }

    fn done(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    fn error(&mut self, openai_error: &[u8], out: &mut BytesMut) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(openai_error);
        out.extend_from_slice(b"\n\n");
    }
}
