//! OpenAI's Responses API at the front door: `POST /v1/responses`, with the
//! conversation state the gateway keeps (`store`, `previous_response_id`).
//!
//! A request is read ([`decode`]), its conversation assembled (the stored items of
//! `previous_response_id`, which must be the same key's, then this turn's input),
//! bounded by `server.body_limit_bytes`, and sent as the canonical chat request to
//! whatever deployment answers: there is no pass-through, because the gateway owns
//! the state. The answer or stream is written in Responses' format ([`encode`]); with
//! `store` the response and the conversation that led to it are kept in the
//! [`ResponseStore`] before the client gets the end of it. Errors are OpenAI's JSON.
//! Uses `store`'s response trait, `request` and `error`.

pub mod decode;
pub mod encode;

use std::sync::Arc;

use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::{Decoded, FrontDoor, Settle, StreamEncode};
use crate::error::{GatewayError, Wire};
use crate::request::{parse_head, parse_json};
use crate::store::{ResponseStore, StoredResponse};

/// A fresh unguessable id: `prefix` and 128 random bits in hex.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{:032x}", rand::random::<u128>())
}

/// Where a turn's response is kept (`store: true`).
pub struct Keep {
    pub store: Arc<dyn ResponseStore>,
    /// The key's owner name (see [`ResponseStore`]).
    pub owner: String,
}

/// One request's response, as it is being made.
pub struct Turn {
    /// `resp_...`.
    pub id: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The model asked for (the answer's own name replaces it once known).
    pub model: String,
    pub previous: Option<String>,
    pub store: bool,
    /// Request fields the response object repeats.
    pub echo: Map<String, Value>,
    /// The conversation's input items up to this response.
    pub conversation: Vec<Value>,
    pub keep: Option<Keep>,
}

impl Turn {
    /// Storing `response` (a finished one), when the turn is kept.
    pub fn keep(&self, response: &Value) -> Option<Settle> {
        let keep = self.keep.as_ref()?;
        let row = StoredResponse {
            id: self.id.clone(),
            owner: keep.owner.clone(),
            created_at: i64::try_from(self.created_at)
                .unwrap_or(0)
                .saturating_mul(1000),
            response: response.to_string(),
            input_items: Value::Array(self.conversation.clone()).to_string(),
        };
        let store = keep.store.clone();
        Some(Box::pin(async move {
            if let Err(e) = store.put(&row).await {
                tracing::warn!(error = %e, response = %row.id, "could not store the response");
            }
        }))
    }
}

/// The Responses front door for one request (its conversation already assembled).
pub struct Responses {
    turn: Arc<Turn>,
    canonical: Bytes,
}

/// The id items of `kind` get when the client gave none.
fn item_prefix(kind: &str) -> &'static str {
    match kind {
        "function_call" => "fc_",
        "function_call_output" => "fco_",
        "reasoning" => "rs_",
        _ => "msg_",
    }
}

/// The stored conversation up to and including `id`'s response: its input items, then
/// its output. 404 when `owner` has no such response.
async fn history(
    store: &dyn ResponseStore,
    id: &str,
    owner: &str,
) -> Result<Vec<Value>, GatewayError> {
    let found = store
        .get(id, owner)
        .await
        .map_err(|e| GatewayError::StoreUnavailable(format!("the response store failed: {e}")))?;
    let Some(stored) = found else {
        return Err(GatewayError::Missing {
            message: format!("Previous response with id '{id}' not found."),
            param: "previous_response_id",
            code: "previous_response_not_found",
        });
    };
    let corrupt = |e: serde_json::Error| {
        GatewayError::Internal(format!("a stored response is unreadable: {e}"))
    };
    let mut items: Vec<Value> = serde_json::from_str(&stored.input_items).map_err(corrupt)?;
    let response: Value = serde_json::from_str(&stored.response).map_err(corrupt)?;
    if let Some(Value::Array(output)) = response.get("output") {
        items.extend(output.iter().cloned());
    }
    Ok(items)
}

impl Responses {
    /// Reads `body`, assembles its conversation (for `owner`, from `store`) and makes
    /// the door. 400 for a bad request or a conversation over `limit` bytes, 404 for
    /// an unknown `previous_response_id`.
    pub async fn prepare(
        body: &Bytes,
        store: &Arc<dyn ResponseStore>,
        owner: &str,
        limit: usize,
    ) -> Result<Responses, GatewayError> {
        parse_head(body)?;
        let map: Map<String, Value> = parse_json(body)?;
        let req = decode::read(map)?;
        let mut conversation = match &req.previous_response_id {
            Some(id) => history(store.as_ref(), id, owner).await?,
            None => Vec::new(),
        };
        for mut item in req.input {
            if item.get("id").is_none() {
                let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
                item["id"] = new_id(item_prefix(kind)).into();
            }
            conversation.push(item);
        }
        let size = serde_json::to_vec(&conversation).map_or(0, |v| v.len());
        if size > limit {
            return Err(GatewayError::BadRequest {
                message: format!(
                    "the conversation is {size} bytes, more than this gateway keeps or sends ({limit} bytes, server.body_limit_bytes); start a new conversation"
                ),
                param: Some("previous_response_id"),
                code: Some("conversation_too_large"),
            });
        }
        let canonical = decode::canonical(
            &req.model,
            req.instructions.as_deref(),
            &conversation,
            &req.chat,
            req.stream,
        )?;
        let turn = Turn {
            id: new_id("resp_"),
            created_at: crate::upstream::protocol::unix_now(),
            model: req.model,
            previous: req.previous_response_id,
            store: req.store,
            echo: req.echo,
            conversation,
            keep: req.store.then(|| Keep {
                store: store.clone(),
                owner: owner.to_string(),
            }),
        };
        Ok(Responses {
            turn: Arc::new(turn),
            canonical: Bytes::from(canonical.to_string()),
        })
    }
}

impl FrontDoor for Responses {
    fn wire(&self) -> Wire {
        Wire::OpenAi
    }

    /// The request was decoded by [`Responses::prepare`] (it needs the store).
    fn decode(
        &self,
        _body: &Bytes,
        _headers: &HeaderMap,
        _all_native: &dyn Fn(&crate::request::Head) -> bool,
    ) -> Result<Decoded, GatewayError> {
        Ok(Decoded {
            canonical: self.canonical.clone(),
            native: None,
            dropped: Vec::new(),
        })
    }

    /// The answer without storing it (the gateway calls [`FrontDoor::answer_then`]).
    fn answer(&self, answer: &[u8]) -> Result<Bytes, GatewayError> {
        serde_json::to_vec(&encode::whole(&self.turn, super::read_answer(answer)?))
            .map(Bytes::from)
            .map_err(|e| GatewayError::Internal(format!("cannot encode the answer: {e}")))
    }

    fn answer_then(&self, answer: &[u8]) -> Result<(Bytes, Option<Settle>), GatewayError> {
        let response = encode::whole(&self.turn, super::read_answer(answer)?);
        let settle = self.turn.keep(&response);
        let bytes = serde_json::to_vec(&response)
            .map_err(|e| GatewayError::Internal(format!("cannot encode the answer: {e}")))?;
        Ok((Bytes::from(bytes), settle))
    }

    fn stream(&self) -> Box<dyn StreamEncode> {
        Box::new(encode::ResponsesStream::new(self.turn.clone()))
    }
}
