//! Embeddings through InvokeModel (`POST /model/{modelId}/invoke`) for the two model
//! families Bedrock serves: Amazon Titan text embeddings and Cohere Embed.
//!
//! - **Titan** (`amazon.titan-embed-*`): `{"inputText", "dimensions"?, "normalize"?}`
//!   → `{"embedding": [...], "inputTextTokenCount"}`. One text per call: a list of more
//!   than one input is answered 400 (the gateway sends one upstream call per request).
//! - **Cohere** (`cohere.embed-*`): `{"texts": [...], "input_type"}` →
//!   `{"embeddings": [[...]]}` (or `{"embeddings": {"float": [[...]]}}` when
//!   `embedding_types` was sent). `input_type` defaults to `search_document`;
//!   `truncate` and `embedding_types` are forwarded. Cohere on Bedrock reports no
//!   token count in the body, so usage is 0.
//!
//! Vectors come back as float arrays whatever `encoding_format` says: the answer
//! cannot tell what the request asked, and OpenAI's SDKs (which ask for `base64` by
//! default) take float arrays as they are. Token-id inputs are refused.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::types::{Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, ProviderError};

/// Which embeddings body a model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Titan,
    Cohere,
}

impl Family {
    /// The family of a model id (with or without a region prefix such as `us.`).
    pub fn of(model_id: &str) -> Option<Family> {
        if model_id.contains("amazon.titan-embed") {
            Some(Family::Titan)
        } else if model_id.contains("cohere.embed") {
            Some(Family::Cohere)
        } else {
            None
        }
    }
}

use crate::providers::convert::invalid;

/// The texts of `input` (a string or an array of strings).
fn texts(input: &Value) -> Result<Vec<String>, ProviderError> {
    match input {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_string).ok_or_else(|| {
                    invalid(
                        "bedrock embeddings take text inputs, not token ids",
                        "input",
                    )
                })
            })
            .collect(),
        _ => Err(invalid(
            "input must be a string or a non-empty array of strings",
            "input",
        )),
    }
}

/// The InvokeModel body, and the parameters dropped under `drop_params`.
pub fn build_body(
    family: Family,
    body: &[u8],
    drop_params: bool,
) -> Result<(Value, Vec<String>), ProviderError> {
    let req: EmbeddingRequest = serde_json::from_slice(body).map_err(|e| {
        ProviderError::new(
            400,
            "invalid_request_error",
            format!("invalid request: {e}"),
        )
    })?;
    let texts = texts(&req.input)?;
    match req.encoding_format.as_deref() {
        None | Some("float") | Some("base64") => {}
        Some(_) => {
            return Err(invalid(
                "encoding_format must be float or base64",
                "encoding_format",
            ))
        }
    }
    let mut dropped = Vec::new();
    let mut refuse = |key: &str| -> Result<(), ProviderError> {
        if drop_params {
            dropped.push(key.to_string());
            Ok(())
        } else {
            Err(invalid(
                format!("bedrock {family:?} embeddings do not support the parameter {key:?}; remove it, or set drop_params = true to drop it"),
                key,
            ))
        }
    };
    let mut out = Map::new();
    let forward: &[&str] = match family {
        Family::Titan => {
            if texts.len() > 1 {
                return Err(invalid(
                    "Titan embeddings take one text per request: send a single string (or use a Cohere embed model for lists)",
                    "input",
                ));
            }
            out.insert("inputText".into(), Value::from(texts[0].clone()));
            if let Some(d) = req.dimensions {
                out.insert("dimensions".into(), Value::from(d));
            }
            &["normalize", "embeddingTypes"]
        }
        Family::Cohere => {
            if req.dimensions.is_some() {
                refuse("dimensions")?;
            }
            out.insert("texts".into(), json!(texts));
            out.insert("input_type".into(), Value::from("search_document"));
            &["input_type", "truncate", "embedding_types"]
        }
    };
    for (key, value) in &req.extra {
        if value.is_null() || key == "user" {
            continue;
        }
        if forward.contains(&key.as_str()) {
            out.insert(key.clone(), value.clone());
        } else {
            refuse(key)?;
        }
    }
    Ok((Value::Object(out), dropped))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanAnswer {
    embedding: Vec<f64>,
    #[serde(default)]
    input_text_token_count: u64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CohereEmbeddings {
    Floats(Vec<Vec<f64>>),
    ByType { float: Vec<Vec<f64>> },
}

#[derive(Deserialize)]
struct CohereAnswer {
    embeddings: CohereEmbeddings,
}

fn bad(message: String) -> ProviderError {
    ProviderError::new(
        502,
        "api_error",
        format!("unreadable answer from bedrock: {message}"),
    )
    .with_code("bad_upstream_response")
}

/// An InvokeModel embeddings answer in OpenAI's list shape.
pub fn parse_answer(
    family: Family,
    body: &[u8],
    model: &str,
) -> Result<EmbeddingResponse, ProviderError> {
    let (vectors, tokens) = match family {
        Family::Titan => {
            let a: TitanAnswer = serde_json::from_slice(body)
                .map_err(|e| bad(format!("not a Titan embedding: {e}")))?;
            (vec![a.embedding], a.input_text_token_count)
        }
        Family::Cohere => {
            let a: CohereAnswer = serde_json::from_slice(body)
                .map_err(|e| bad(format!("not a Cohere embedding: {e}")))?;
            let vectors = match a.embeddings {
                CohereEmbeddings::Floats(v) | CohereEmbeddings::ByType { float: v } => v,
            };
            (vectors, 0)
        }
    };
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| Embedding {
            object: "embedding".into(),
            index: i as u32,
            embedding: json!(v),
        })
        .collect();
    Ok(EmbeddingResponse {
        object: "list".into(),
        data,
        model: model.to_string(),
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    })
}
