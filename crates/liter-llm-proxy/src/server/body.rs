//! The bodies the accept loop puts around each request and response: the request body
//! with its idle timeout (`server.body_timeout_secs`), and the response body that tells
//! the connection when the request is over (`conn::Activity`).
//!
//! Neither allocates: the timer sits inline in the request body (which axum boxes once,
//! as it boxes hyper's body anyway) and is armed only when the body makes the handler
//! wait; a body that is already there never touches the timer wheel.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::conn::Busy;
use crate::request::BodyTimedOut;

pin_project! {
    /// A request body that fails with [`BodyTimedOut`] when it goes `timeout` without a
    /// frame while the handler waits for it.
    pub(super) struct TimedBody {
        inner: Incoming,
        timeout: Duration,
        // Armed at the first wait, re-armed at the first wait after each frame.
        #[pin]
        timer: Option<Sleep>,
        // A frame came since the timer was last armed.
        moved: bool,
    }
}

impl TimedBody {
    pub(super) fn new(inner: Incoming, timeout: Duration) -> Self {
        TimedBody {
            inner,
            timeout,
            timer: None,
            moved: false,
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = Pin::new(&mut *this.inner).poll_frame(cx) {
            *this.moved = true;
            return Poll::Ready(frame.map(|f| f.map_err(BoxError::from)));
        }
        match this.timer.as_mut().as_pin_mut() {
            None => this.timer.set(Some(tokio::time::sleep(*this.timeout))),
            Some(timer) if *this.moved => timer.reset(Instant::now() + *this.timeout),
            Some(_) => {}
        }
        *this.moved = false;
        match this.timer.as_pin_mut().map(|t| t.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Some(Err(Box::new(BodyTimedOut(*this.timeout))))),
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that holds its request's [`Busy`] mark until hyper drops it (the
/// last byte was written, or the client went away).
pub(super) struct Tracked {
    pub(super) body: axum::body::Body,
    pub(super) _busy: Option<Busy>,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
