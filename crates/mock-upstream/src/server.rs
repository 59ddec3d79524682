//! The accept loop, one task per connection, and the fixed row of steps every request goes through.
//!
//! Connections are served with hyper directly (HTTP/1.1 and HTTP/2 prior knowledge) rather than
//! through a router framework, because two faults need control below the request level:
//! [`FaultKind::DropConnection`] has to close the socket without a response, and
//! [`FaultKind::CutStream`] has to abort a response body mid-way.
//!
//! Each request passes, in order:
//! 1. **control** — paths under `/__mock/` go to [`crate::control`]: never recorded, never faulted;
//! 2. **read** — the whole body is read and parsed as JSON (once);
//! 3. **record** — the request is recorded (when recording is on), before anything can fail it;
//! 4. **auth** — with `require_api_key`, a wrong or missing key is answered 401;
//! 5. **fault** — the first matching queued fault is taken and carried out (a held request
//!    or stream waits here, or mid-body, for [`crate::MockUpstream::release`]);
//! 6. **respond** — the wire-format module builds the answer, as [`crate::wire::Wire`] tells
//!    from the method and path ([`crate::anthropic`] for `POST /v1/messages`, [`crate::bedrock`]
//!    for `POST /model/{id}/…`, [`crate::openai`] for everything else); auth and default fault
//!    bodies follow the same split;
//! 7. **account** — usage of a successful, uncut answer is added to [`crate::Served`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::body::{self, MockBody, Reply};
use crate::faults::FaultKind;
use crate::openai;
use crate::state::{RecordedRequest, Shared};
use crate::wire::Wire;

/// A request body as the pipeline sees it.
pub(crate) enum Payload {
    /// No body bytes.
    Empty,
    /// Bytes that are not JSON (kept for formats that are not JSON, e.g. an OAuth form).
    Invalid(Bytes),
    /// A JSON document.
    Json(Value),
}

impl Payload {
    fn parse(bytes: &Bytes) -> Self {
        if bytes.is_empty() {
            return Self::Empty;
        }
        match serde_json::from_slice(bytes) {
            Ok(value) => Self::Json(value),
            Err(_) => Self::Invalid(bytes.clone()),
        }
    }

    /// The raw bytes of a body that is not JSON.
    pub(crate) fn raw(&self) -> Option<&Bytes> {
        match self {
            Self::Invalid(bytes) => Some(bytes),
            Self::Empty | Self::Json(_) => None,
        }
    }

    /// The JSON document, if the body was one.
    pub(crate) fn json(&self) -> Option<&Value> {
        match self {
            Self::Json(value) => Some(value),
            Self::Empty | Self::Invalid(_) => None,
        }
    }
}

/// Accepts connections until the task running it is aborted; aborting it also aborts every
/// connection task, because they live in the loop's `JoinSet`.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(err) => {
                // Typically EMFILE under load: back off briefly instead of spinning.
                tracing::warn!(error = %err, "mock-upstream: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(serve_connection(stream, Arc::clone(&shared)));
    }
}

/// What a request handler may do to the connection it arrived on.
struct Connection {
    /// Notified by a request that met a `DropConnection` fault.
    drop_now: Notify,
    /// Its sender lives in the connection task, so `changed()` fails once the connection is gone
    /// (closed, dropped or aborted at shutdown).
    alive: watch::Receiver<()>,
}

impl Connection {
    /// Resolves once the connection is gone.
    async fn closed(&self) {
        let mut alive = self.alive.clone();
        while alive.changed().await.is_ok() {}
    }
}

/// Serves one connection until it ends or a handler asks for it to be dropped.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (_alive, alive_rx) = watch::channel(());
    let control = Arc::new(Connection {
        drop_now: Notify::new(),
        alive: alive_rx,
    });
    let service = {
        let control = Arc::clone(&control);
        service_fn(move |request| {
            let shared = Arc::clone(&shared);
            let control = Arc::clone(&control);
            async move { Ok::<_, Infallible>(handle(&shared, &control, request).await) }
        })
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        // A connection error (client went away, cut body) needs no report.
        _ = connection => {}
        // Dropping `connection` closes the socket without writing anything.
        () = control.drop_now.notified() => {}
    }
}

/// Runs one request through the steps listed in the module docs.
async fn handle(
    shared: &Shared,
    connection: &Connection,
    request: Request<Incoming>,
) -> Response<MockBody> {
    let (parts, incoming) = request.into_parts();
    if let Some(route) = parts.uri.path().strip_prefix("/__mock/") {
        return crate::control::handle(shared, &parts.method, route, incoming).await;
    }

    let bytes = match incoming.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            return openai::error(
                StatusCode::BAD_REQUEST,
                &format!("could not read the request body: {err}"),
                "invalid_request_error",
                None,
                None,
            )
        }
    };
    let payload = Payload::parse(&bytes);
    let path = parts.uri.path();
    let wire = Wire::classify(&parts.method, path, parts.uri.query());

    if shared.record {
        shared.record(RecordedRequest {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| path.to_owned(), ToString::to_string),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), value)
                })
                .collect(),
            body: payload.json().cloned(),
        });
    }

    if let Some(key) = &shared.require_api_key {
        if !wire.authorized(&parts, &bytes, key) {
            return wire.unauthorized().response;
        }
    }

    let model = wire.model(path, &payload);
    let streaming = wire.is_streaming(path, &payload);
    let mut tail = None;
    match shared.take_fault(model.as_deref(), streaming) {
        None => {}
        Some(FaultKind::Status {
            status,
            body,
            retry_after_secs,
        }) => return status_fault(status, body.as_ref(), retry_after_secs, wire),
        Some(FaultKind::Delay { ms }) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Some(FaultKind::Hang) => return hang(connection).await,
        Some(FaultKind::DropConnection) => {
            connection.drop_now.notify_one();
            return hang(connection).await;
        }
        Some(FaultKind::CutStream { after_chunks }) => tail = Some(Tail::Cut(after_chunks)),
        Some(FaultKind::StallStream { after_chunks }) => tail = Some(Tail::Stall(after_chunks)),
        Some(FaultKind::EchoKey { status }) => {
            return wire.error_saying(status_code(status), &echo(&parts.headers))
        }
        Some(FaultKind::EchoKeyInStream { after_chunks }) => {
            tail = Some(Tail::Echo(after_chunks));
        }
        Some(FaultKind::EndlessEvent { chunk_bytes }) => return endless_event(chunk_bytes),
        Some(FaultKind::HugeAnswer { status, bytes }) => return huge_answer(status, bytes),
        Some(FaultKind::Hold) => shared.released().await,
        Some(FaultKind::HoldStream { after_chunks }) => tail = Some(Tail::Hold(after_chunks)),
    }

    let Reply {
        mut response,
        usage,
    } = wire.respond(shared, &parts.method, path, &parts.headers, &payload);
    let n = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    match tail {
        Some(Tail::Cut(k)) => response.body_mut().cut_after(n(k)),
        Some(Tail::Stall(k)) => response.body_mut().stall_after(n(k)),
        Some(Tail::Echo(k)) => {
            let event = wire.stream_error_event(&echo(&parts.headers));
            response.body_mut().end_after(n(k), event);
        }
        Some(Tail::Hold(k)) => {
            response.body_mut().hold_after(n(k), shared.released());
            if let (true, Some(tokens)) = (response.status().is_success(), usage) {
                shared.add_served(tokens);
            }
        }
        None => {
            if let (true, Some(tokens)) = (response.status().is_success(), usage) {
                shared.add_served(tokens);
            }
        }
    }
    response
}

/// How a stream fault changes the end of a normal streamed answer.
enum Tail {
    Cut(u32),
    Stall(u32),
    Echo(u32),
    Hold(u32),
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The message of an [`FaultKind::EchoKey`] answer: the credential the request presented.
fn echo(headers: &http::HeaderMap) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let key = header("authorization")
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v))
        .or_else(|| header("x-api-key"))
        .or_else(|| header("api-key"))
        .or_else(|| header("x-goog-api-key"))
        .unwrap_or("");
    format!("Incorrect API key provided: {key}. You can find your API key in your account.")
}

/// One SSE event that never ends: `data: ` and then `chunk_bytes` of `a`, forever.
fn endless_event(chunk_bytes: u32) -> Response<MockBody> {
    let chunk = Bytes::from(vec![b'a'; usize::try_from(chunk_bytes).unwrap_or(1).max(1)]);
    body::response(
        StatusCode::OK,
        "text/event-stream",
        MockBody::endless(Bytes::from_static(b"data: "), chunk),
    )
}

/// A JSON body of exactly `bytes` bytes, in 64 KiB chunks.
fn huge_answer(status: u16, bytes: u64) -> Response<MockBody> {
    const CHUNK: usize = 64 * 1024;
    let len = usize::try_from(bytes).unwrap_or(usize::MAX).max(12);
    let pad = Bytes::from(vec![b'a'; CHUNK]);
    let mut frames = vec![Bytes::from_static(b"{\"pad\":\"")];
    let mut left = len - 10;
    while left > 0 {
        let n = left.min(CHUNK);
        frames.push(pad.slice(..n));
        left -= n;
    }
    frames.push(Bytes::from_static(b"\"}"));
    body::response(
        status_code(status),
        "application/json",
        MockBody::stream(frames),
    )
}

/// Never answers while the connection lives. Over HTTP/1 this future is dropped with the connection
/// task; over HTTP/2 it runs in a stream task of its own, so it ends once the connection is gone,
/// with a 503 that nobody can read.
async fn hang(connection: &Connection) -> Response<MockBody> {
    connection.closed().await;
    body::response(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/plain; charset=utf-8",
        MockBody::empty(),
    )
}

/// The answer to a [`FaultKind::Status`] fault; the default body is in the wire format of the
/// request.
fn status_fault(
    status: u16,
    body: Option<&Value>,
    retry_after_secs: Option<u64>,
    wire: Wire,
) -> Response<MockBody> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match body {
        Some(json) => body::json(status, json),
        None => wire.fault_error(status),
    };
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
