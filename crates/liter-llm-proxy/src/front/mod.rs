//! Front doors: the client protocols other than OpenAI's chat completions, each turned
//! into the canonical request (OpenAI's chat body) that the pipeline runs, and the
//! canonical answer, stream and errors turned back into the client's protocol.
//!
//! A front door is a [`FrontDoor`]: it decodes the client's body into a [`Decoded`]
//! (the canonical body, plus the client's own request for deployments that speak its
//! wire, which the dispatcher forwards as it came) and encodes a whole answer
//! ([`FrontDoor::answer`]) and a stream ([`StreamEncode`]). [`encode`] applies it to
//! the pipeline's response: an answer already in the client's wire
//! (`upstream::NativeAnswer`) and errors are left alone; errors are rewritten by
//! [`errors_in`], the route layer of the front door's routes, so that the
//! gateway's own refusals before the handler (auth's 401, say) are in the client's
//! shape too.
//!
//! A door may have work to finish before its answer reaches the client ([`Settle`]: the
//! Responses door stores the response, so that a `previous_response_id` sent as soon
//! as the answer arrives finds it).
//!
//! Doors: [`messages`] (Anthropic's Messages API), [`responses`] (OpenAI's Responses
//! API, which also uses `store`) and [`completions`] (OpenAI's legacy completions). Sits between `server` (which runs
//! the pipeline) and the stages; uses `upstream`'s request types, `request`, `error`
//! and `governance`'s token estimate.

pub mod completions;
pub mod messages;
pub mod responses;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use liter_llm::providers::sse::{SseDecoder, SseEvent};
use liter_llm::types::{ChatCompletion, ChatCompletionChunk};

use crate::error::{GatewayError, Wire};
use crate::request::Head;
use crate::upstream::dispatch::DROPPED_PARAMS;
use crate::upstream::{Native, NativeAnswer};

type Resp = Response<Body>;

/// A client's request, decoded.
pub struct Decoded {
    /// The canonical request: an OpenAI chat body.
    pub canonical: Bytes,
    /// The client's own request, for deployments that speak its wire (`None`: every
    /// deployment gets the canonical one).
    pub native: Option<Native>,
    /// The client's fields the door left out of the canonical request, named in
    /// `x-liter-llm-dropped-params` of an answer built from it.
    pub dropped: Vec<&'static str>,
}

/// Work a door finishes before the bytes written so far go to the client.
pub type Settle = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One client protocol at the front door.
pub trait FrontDoor: Send + Sync {
    /// The wire its clients speak (errors are written in it).
    fn wire(&self) -> Wire;
    /// The canonical request for the client's `body` (and headers); 400 when it is
    /// not a valid request of the protocol. A door that can pass its clients' bytes
    /// through asks `all_native` of the request's head whether every deployment that
    /// could serve it speaks the door's wire (`routing::Pool::passes_through`); if so,
    /// the canonical request, which no deployment would get, is not built, and the
    /// client's body (whose `model` and `stream` the pipeline reads alike) stands in
    /// for it. Other doors ignore `all_native`.
    fn decode(
        &self,
        body: &Bytes,
        headers: &HeaderMap,
        all_native: &dyn Fn(&Head) -> bool,
    ) -> Result<Decoded, GatewayError>;
    /// A whole canonical answer (the pipeline's `chat.completion` bytes) in the
    /// client's protocol ([`read_answer`] reads it whole; a door may read less).
    fn answer(&self, answer: &[u8]) -> Result<Bytes, GatewayError>;
    /// [`FrontDoor::answer`], and the work to finish before it is sent.
    fn answer_then(&self, answer: &[u8]) -> Result<(Bytes, Option<Settle>), GatewayError> {
        self.answer(answer).map(|b| (b, None))
    }
    /// A fresh encoder for one streamed answer.
    fn stream(&self) -> Box<dyn StreamEncode>;
}

/// Canonical stream chunks in, the client's SSE bytes out.
pub trait StreamEncode: Send {
    /// One `chat.completion.chunk`.
    fn chunk(&mut self, chunk: ChatCompletionChunk, out: &mut BytesMut);
    /// The answer is complete (`data: [DONE]`).
    fn done(&mut self, out: &mut BytesMut);
    /// The stream failed with this OpenAI-shaped error body; nothing follows.
    fn error(&mut self, openai_error: &[u8], out: &mut BytesMut);
    /// Work to finish before the bytes written so far are sent (asked after each
    /// batch of events).
    fn settle(&mut self) -> Option<Settle> {
        None
    }
}

/// The pipeline's response in the client's protocol: a whole answer or a stream
/// encoded by `door`; answers already in the client's wire and errors as they are.
/// `dropped` (the fields the door left out of the canonical request) joins the
/// adapter's in `x-liter-llm-dropped-params`.
pub async fn encode(
    door: &dyn FrontDoor,
    mut resp: Resp,
    dropped: &[&str],
    max_event_bytes: usize,
) -> Resp {
    if resp.extensions().get::<NativeAnswer>().is_some() || !resp.status().is_success() {
        return resp;
    }
    if !dropped.is_empty() {
        report_dropped(resp.headers_mut(), dropped);
    }
    let streamed = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if streamed {
        let body = encode_stream(body, door.stream(), max_event_bytes);
        return Response::from_parts(parts, body);
    }
    let encoded = match body.collect().await {
        Ok(b) => door.answer_then(&b.to_bytes()),
        Err(e) => Err(GatewayError::Internal(format!(
            "could not read the answer: {e}"
        ))),
    };
    match encoded {
        Ok((bytes, settle)) => {
            if let Some(work) = settle {
                work.await;
            }
            Response::from_parts(parts, Body::from(bytes))
        }
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}

/// Adds `dropped` to the `x-liter-llm-dropped-params` of `headers` (after the names
/// the adapter put there).
fn report_dropped(headers: &mut HeaderMap, dropped: &[&str]) {
    let mut names: Vec<&str> = headers
        .get(DROPPED_PARAMS)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(", ").filter(|n| !n.is_empty()).collect())
        .unwrap_or_default();
    for name in dropped {
        if !names.contains(name) {
            names.push(name);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&names.join(", ")) {
        headers.insert(DROPPED_PARAMS, v);
    }
}

/// A whole canonical answer's bytes as a [`ChatCompletion`].
pub fn read_answer(answer: &[u8]) -> Result<ChatCompletion, GatewayError> {
    serde_json::from_slice(answer)
        .map_err(|e| GatewayError::Internal(format!("unreadable canonical answer: {e}")))
}

/// One named server-sent event (`event: kind`, `data: <json>`), as the Messages and
/// Responses streams write them.
pub fn sse_event<T: serde::Serialize + ?Sized>(out: &mut BytesMut, kind: &str, data: &T) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Our own event types, which always serialize.
    let _ = serde_json::to_writer(bytes::BufMut::writer(&mut *out), data);
    out.extend_from_slice(b"\n\n");
}

/// What the stream transcoder holds between chunks.
struct Transcode {
    inner: axum::body::BodyDataStream,
    decoder: SseDecoder,
    encoder: Box<dyn StreamEncode>,
    finished: bool,
}

/// A canonical (OpenAI SSE) stream body re-encoded by `encoder` as it arrives.
fn encode_stream(body: Body, encoder: Box<dyn StreamEncode>, max_event_bytes: usize) -> Body {
    let state = Transcode {
        inner: body.into_data_stream(),
        decoder: SseDecoder::with_limit(max_event_bytes),
        encoder,
        finished: false,
    };
    Body::from_stream(futures_util::stream::unfold(state, transcode_step))
}

async fn transcode_step(mut s: Transcode) -> Option<(Result<Bytes, Infallible>, Transcode)> {
    if s.finished {
        return None;
    }
    let mut out = BytesMut::new();
    let mut events: Vec<SseEvent> = Vec::new();
    loop {
        match s.inner.next().await {
            Some(Ok(data)) => {
                if let Err(e) = s.decoder.feed(&data, &mut events) {
                    let err = GatewayError::BadGateway(e.to_string());
                    s.encoder.error(&err.body_bytes(), &mut out);
                    s.finished = true;
                    return Some((Ok(out.freeze()), s));
                }
                for event in events.drain(..) {
                    s.finished = transcode_event(&event, s.encoder.as_mut(), &mut out);
                    if s.finished {
                        break;
                    }
                }
                if s.finished || !out.is_empty() {
                    if let Some(work) = s.encoder.settle() {
                        work.await;
                    }
                    return Some((Ok(out.freeze()), s));
                }
            }
            other => {
                // The body ended (or broke) without `[DONE]` or an error event.
                let reason = match other {
                    Some(Err(e)) => format!("the answer stream broke off: {e}"),
                    _ => "the answer stream ended before it was complete".to_string(),
                };
                s.encoder
                    .error(&GatewayError::BadGateway(reason).body_bytes(), &mut out);
                s.finished = true;
                if let Some(work) = s.encoder.settle() {
                    work.await;
                }
                return Some((Ok(out.freeze()), s));
            }
        }
    }
}

/// One canonical SSE event through the encoder; `true` once the stream is over.
fn transcode_event(event: &SseEvent, encoder: &mut dyn StreamEncode, out: &mut BytesMut) -> bool {
    let data = event.data.trim();
    if data == "[DONE]" {
        encoder.done(out);
        return true;
    }
    match serde_json::from_str::<ChatCompletionChunk>(data) {
        Ok(chunk) => {
            encoder.chunk(chunk, out);
            false
        }
        Err(_) => {
            // An error event (`{"error":...}`), or something unreadable: either ends it.
            encoder.error(data.as_bytes(), out);
            true
        }
    }
}

/// A response of the gateway's (an OpenAI-shaped error) rewritten in `wire`'s error
/// shape; any other response as it is. The route layer of a front door's routes.
pub async fn errors_in(wire: Wire, resp: Resp) -> Resp {
    if resp.status().is_success() || wire == Wire::OpenAi {
        return resp;
    }
    let status = resp.status();
    let (mut parts, body) = resp.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let rewritten = match wire {
        Wire::Anthropic => crate::error::anthropic_body(status, &bytes),
        Wire::OpenAi => bytes,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(rewritten))
}
