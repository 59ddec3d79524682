//! Embeddings requests: `batchEmbedContents` (Gemini API) and `:predict` (Vertex AI).

use serde_json::{json, Map, Value};

use super::invalid;
use crate::types::{EmbeddingRequest, ProviderError};

/// The texts of an embeddings `input` (a string or an array of strings).
pub(crate) fn embedding_texts(req: &EmbeddingRequest) -> Result<Vec<String>, ProviderError> {
    let bad = || {
        invalid(
            "gemini embeds text: input must be a string or an array of strings",
            "input",
        )
    };
    match &req.input {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

/// `batchEmbedContents` body (Gemini API): one request per text.
pub fn build_batch_embed(req: &EmbeddingRequest, model_id: &str) -> Result<Value, ProviderError> {
    let task = req.extra.get("task_type").cloned();
    let requests: Vec<Value> = embedding_texts(req)?
        .into_iter()
        .map(|text| {
            let mut r = Map::new();
            r.insert("model".into(), Value::from(format!("models/{model_id}")));
            r.insert("content".into(), json!({ "parts": [{ "text": text }] }));
            if let Some(d) = req.dimensions {
                r.insert("outputDimensionality".into(), Value::from(d));
            }
            if let Some(t) = &task {
                r.insert("taskType".into(), t.clone());
            }
            Value::Object(r)
        })
        .collect();
    Ok(json!({ "requests": requests }))
}

/// `:predict` body (Vertex AI text embeddings): one instance per text.
pub fn build_predict_embed(req: &EmbeddingRequest) -> Result<Value, ProviderError> {
    let task = req.extra.get("task_type").cloned();
    let instances: Vec<Value> = embedding_texts(req)?
        .into_iter()
        .map(|text| match &task {
            Some(t) => json!({ "content": text, "task_type": t }),
            None => json!({ "content": text }),
        })
        .collect();
    let mut body = json!({ "instances": instances });
    if let Some(d) = req.dimensions {
        body["parameters"] = json!({ "outputDimensionality": d });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_inputs() {
        let req: EmbeddingRequest =
            serde_json::from_value(json!({"model":"m","input":[[1,2]]})).unwrap();
        assert_eq!(build_batch_embed(&req, "e").unwrap_err().status, 400);
        let req: EmbeddingRequest = serde_json::from_value(
            json!({"model":"m","input":"a","dimensions":8,"task_type":"RETRIEVAL_QUERY"}),
        )
        .unwrap();
        assert_eq!(
            build_predict_embed(&req).unwrap(),
            json!({"instances":[{"content":"a","task_type":"RETRIEVAL_QUERY"}],
                   "parameters":{"outputDimensionality":8}})
        );
    }
}
