//! The one response body type every mock endpoint returns, and small response builders.
//!
//! A [`MockBody`] is a queue of ready-made frames: one frame for a JSON answer (sent with a
//! `Content-Length`), one frame per event for a stream (sent chunked). Because the whole answer is
//! known up front, the body never allocates or waits while being written.
//!
//! [`MockBody::cut_after`] turns a body into one that ends in an error after `n` frames. hyper
//! reacts to a body error by closing an HTTP/1 connection without the chunked terminator (or by
//! resetting an HTTP/2 stream), which is what a client of a provider sees when a stream is cut
//! mid-way. Before the error the body waits [`CUT_GRACE`], so hyper has flushed the frames already
//! queued to the socket rather than discarding them with the connection or stream. (HTTP/1 flushes
//! on the first `Pending`; HTTP/2 flushes from the connection task, which needs a moment to run.)

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use serde::Serialize;
use tokio::time::Sleep;

use crate::state::Tokens;

/// The error a cut body ends with; hyper aborts the connection when it sees it.
#[derive(Debug)]
pub struct StreamCut;

impl fmt::Display for StreamCut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mock-upstream: stream cut by fault injection")
    }
}

impl std::error::Error for StreamCut {}

/// How long a cut body waits after its last frame before failing, so the frames reach the client.
pub(crate) const CUT_GRACE: Duration = Duration::from_millis(20);

/// How a body ends once its frames are sent.
#[derive(Debug)]
enum End {
    /// Normally.
    Clean,
    /// With [`StreamCut`], after the grace timer (started on the first poll past the frames).
    Cut(Option<Pin<Box<Sleep>>>),
    /// Never: the body stays pending until the connection is dropped.
    Stall,
    /// Never: this chunk again and again, as fast as the client reads.
    Repeat(Bytes),
}

/// Frames held back until a release (see [`crate::FaultKind::HoldStream`]).
struct Held {
    frames: VecDeque<Bytes>,
    release: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Held")
            .field("frames", &self.frames.len())
            .finish_non_exhaustive()
    }
}

/// A response body made of frames prepared in advance.
#[derive(Debug)]
pub struct MockBody {
    frames: VecDeque<Bytes>,
    /// Whether the length is announced (`Content-Length`) rather than sent chunked.
    exact_len: bool,
    /// Frames sent only once `release` resolves, after `frames`.
    held: Option<Held>,
    end: End,
}

impl MockBody {
    /// A body of one buffer, sent with `Content-Length`.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        let mut frames = VecDeque::with_capacity(1);
        if !bytes.is_empty() {
            frames.push_back(bytes);
        }
        Self {
            frames,
            exact_len: true,
            held: None,
            end: End::Clean,
        }
    }

    /// An empty body.
    pub(crate) fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// A body sent chunked, one frame (chunk) per buffer.
    pub(crate) fn stream(frames: Vec<Bytes>) -> Self {
        Self {
            frames: frames.into(),
            exact_len: false,
            held: None,
            end: End::Clean,
        }
    }

    /// Sends the first `n` frames, then the rest only once `release` resolves.
    pub(crate) fn hold_after(
        &mut self,
        n: usize,
        release: impl Future<Output = ()> + Send + 'static,
    ) {
        let rest = self.frames.split_off(n.min(self.frames.len()));
        self.exact_len = false;
        self.held = Some(Held {
            frames: rest,
            release: Box::pin(release),
        });
    }

    /// Keeps the first `n` frames and then never ends (nor sends anything more).
    pub(crate) fn stall_after(&mut self, n: usize) {
        self.frames.truncate(n);
        self.exact_len = false;
        self.end = End::Stall;
    }

    /// Keeps the first `n` frames, then `last`, and ends.
    pub(crate) fn end_after(&mut self, n: usize, last: Bytes) {
        self.frames.truncate(n);
        self.frames.push_back(last);
        self.exact_len = false;
        self.end = End::Clean;
    }

    /// `first`, then `chunk` forever.
    pub(crate) fn endless(first: Bytes, chunk: Bytes) -> Self {
        Self {
            frames: VecDeque::from([first]),
            exact_len: false,
            end: End::Repeat(chunk),
            held: None,
        }
    }

    /// Keeps the first `n` frames and makes the body end with an error after them.
    pub(crate) fn cut_after(&mut self, n: usize) {
        self.frames.truncate(n);
        self.exact_len = false;
        self.end = End::Cut(None);
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = StreamCut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamCut>>> {
        let this = self.get_mut();
        if let Some(frame) = this.frames.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        if let Some(held) = &mut this.held {
            ready!(held.release.as_mut().poll(cx));
            this.frames = std::mem::take(&mut held.frames);
            this.held = None;
            if let Some(frame) = this.frames.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(frame))));
            }
        }
        match &mut this.end {
            End::Clean => Poll::Ready(None),
            End::Stall => Poll::Pending,
            End::Repeat(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk.clone())))),
            End::Cut(grace) => {
                let timer = grace.get_or_insert_with(|| Box::pin(tokio::time::sleep(CUT_GRACE)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(StreamCut)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.held.is_none() && matches!(self.end, End::Clean)
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact_len {
            let len: usize = self.frames.iter().map(Bytes::len).sum();
            SizeHint::with_exact(len as u64)
        } else {
            SizeHint::default()
        }
    }
}

/// What a provider module hands back for one request: the response, and the usage it reports
/// (counted into [`crate::Served`] unless a fault cuts the response).
pub(crate) struct Reply {
    pub(crate) response: Response<MockBody>,
    pub(crate) usage: Option<Tokens>,
}

impl From<Response<MockBody>> for Reply {
    fn from(response: Response<MockBody>) -> Self {
        Self {
            response,
            usage: None,
        }
    }
}

/// A response with `status`, a `content-type` and `body`.
pub(crate) fn response(
    status: StatusCode,
    content_type: &'static str,
    body: MockBody,
) -> Response<MockBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `value` serialized as a JSON response. A serialization failure (which the mock's own types
/// cannot produce) becomes a plain-text 500.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<MockBody> {
    match serde_json::to_vec(value) {
        Ok(bytes) => response(status, "application/json", MockBody::full(bytes)),
        Err(err) => response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            MockBody::full(format!("mock-upstream: cannot serialize response: {err}")),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn full_body_has_exact_length() {
        let body = MockBody::full("hello");
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        assert!(MockBody::empty().is_end_stream());
    }

    #[tokio::test]
    async fn held_body_waits_for_its_release() {
        let mut body = MockBody::stream(vec!["a".into(), "b".into(), "c".into()]);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        body.hold_after(1, async move {
            let _ = rx.await;
        });
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, Bytes::from("a"));
        let next = tokio::time::timeout(Duration::from_millis(50), body.frame()).await;
        assert!(next.is_err(), "the rest came before the release");
        tx.send(()).unwrap();
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest, Bytes::from("bc"));
    }

    #[tokio::test]
    async fn cut_body_yields_frames_then_error() {
        let mut body = MockBody::stream(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(body.size_hint().exact(), None);
        body.cut_after(2);
        let mut seen = Vec::new();
        let err = loop {
            match body.frame().await {
                Some(Ok(frame)) => seen.push(frame.into_data().unwrap()),
                Some(Err(err)) => break err,
                None => panic!("cut body ended cleanly"),
            }
        };
        assert_eq!(seen, vec![Bytes::from("a"), Bytes::from("b")]);
        assert!(err.to_string().contains("cut"));
    }
}
