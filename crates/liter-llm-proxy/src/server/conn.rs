//! One client connection: HTTP/1.1 or HTTP/2 (told apart by HTTP/2's preface, peeked
//! from the socket) over the TCP stream, with the time limits hyper does not keep by
//! itself, and the shutdown rule.
//!
//! - Until its first request's head is complete, a connection has
//!   `server.header_timeout_secs` from the accept (a connection that sends nothing, or
//!   half a head, is closed).
//! - Between requests (HTTP/1.1 keep-alive, or HTTP/2 with no stream open) it has
//!   `server.keepalive_timeout_secs` from the end of the last response; on HTTP/1.1,
//!   once the next head's first bytes arrive, `header_timeout_secs` from them.
//! - While a request is in flight, the connection has no limit of its own: the body has
//!   `body_timeout_secs` between frames (`body::TimedBody`), the request has
//!   `request_timeout_secs`.
//! - On shutdown, a connection with no request in flight is closed at once (whatever it
//!   has sent of a head); one with requests in flight stops taking new ones (HTTP/1.1:
//!   no keep-alive; HTTP/2: GOAWAY) and closes when they end.
//!
//! hyper's own HTTP/1 header timer is not used: it also runs while a kept-alive
//! connection waits for its next request, so it would cut keep-alive at
//! `header_timeout_secs`. Instead [`Activity`] records, with a few relaxed atomics per
//! request, when the connection went idle and when a head began; the connection's one
//! timer checks it lazily when it fires.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tower::Service as _;

use super::body::{TimedBody, Tracked};
use crate::config::Limits;
use crate::reload::Live;

/// What every connection shares: the protocol settings, the running gateway (whose
/// router each request takes once), the limits.
pub(super) struct Shared {
    /// Tells HTTP/1 from HTTP/2 by reading the first bytes (for a connection whose first
    /// bytes, peeked, could still be the start of HTTP/2's preface).
    sniff: auto::Builder<TokioExecutor>,
    /// The same settings, one protocol each (the peeked bytes told which). HTTP/1 is
    /// served by hyper's own HTTP/1 connection rather than the auto builder's, whose
    /// connection is sized for HTTP/2's: every open connection's task is the smaller.
    h1: http1::Builder,
    h2: auto::Builder<TokioExecutor>,
    live: Arc<Live>,
    limits: Limits,
}

/// HTTP/2's connection preface (RFC 9113, section 3.4): a client with prior knowledge
/// starts with it.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl Shared {
    pub(super) fn new(live: Arc<Live>, limits: Limits) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // Not hyper's HTTP/1 header timer (see the module doc): the timer below keeps it.
        builder.http1().header_read_timeout(None);
        let mut h1 = http1::Builder::new();
        h1.header_read_timeout(None);
        // HTTP/2: ping a peer every keepalive_timeout while the connection is open;
        // one that does not answer within hyper's 20 s is disconnected. (Idle
        // connections are closed by the connection's own timer, below.)
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(limits.keepalive_timeout);
        Shared {
            h1,
            h2: builder.clone().http2_only(),
            sniff: builder,
            live,
            limits,
        }
    }

    /// The builder for a connection, chosen by its first bytes, peeked (left in the
    /// socket for hyper to read); `None` if the client closed or the socket failed.
    ///
    /// The auto builder's own sniffing reads the first bytes itself and hands them back
    /// to hyper's HTTP/1 reader in front of the socket; that first short read makes
    /// hyper double its 8 KiB read buffer, which every kept-alive connection then holds.
    /// Peeking leaves hyper one read of the whole head. Bytes that may still become the
    /// preface (a lone `P`, say) are left to the auto builder.
    async fn builder_for(&self, tcp: &TcpStream) -> Option<Proto<'_>> {
        let mut first = [0u8; PREFACE.len()];
        let n = tcp.peek(&mut first).await.ok()?;
        let first = first.get(..n).filter(|b| !b.is_empty())?;
        Some(if first == PREFACE.as_slice() {
            Proto::Auto(&self.h2)
        } else if PREFACE.starts_with(first) {
            Proto::Auto(&self.sniff)
        } else {
            Proto::H1
        })
    }
}

/// How a connection is served, as its first bytes told.
enum Proto<'a> {
    H1,
    /// HTTP/2, or not known yet.
    Auto(&'a auto::Builder<TokioExecutor>),
}

type Io = TokioIo<Socket>;

pin_project_lite::pin_project! {
    /// The connection being served. The auto builder's connection (HTTP/2's state
    /// inline) is boxed, so an HTTP/1 connection's task does not carry its size.
    #[project = ConnProj]
    enum Conn<'a> {
        H1 { #[pin] conn: http1::Connection<Io, Service> },
        Auto { conn: Pin<Box<auto::Connection<'a, Io, Service, TokioExecutor>>> },
    }
}

impl Conn<'_> {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        match self.project() {
            ConnProj::H1 { conn } => conn.graceful_shutdown(),
            ConnProj::Auto { conn } => conn.as_mut().graceful_shutdown(),
        }
    }
}

impl Future for Conn<'_> {
    /// How it ended does not matter here: hyper has answered what it could.
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project() {
            ConnProj::H1 { conn } => conn.poll(cx).map(drop),
            ConnProj::Auto { conn } => conn.as_mut().poll(cx).map(drop),
        }
    }
}

/// Serve one accepted connection until it ends or times out; `stop` (sent, or dropped)
/// says the gateway is shutting down (see the module doc).
pub(super) async fn serve(tcp: TcpStream, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let activity = Arc::new(Activity::new());
    let limits = &shared.limits;
    let timer = tokio::time::sleep_until(activity.epoch + limits.header_timeout);
    tokio::pin!(timer);
    // Until the first bytes come, the header timeout runs and shutdown closes at once.
    let proto = tokio::select! {
        biased;
        proto = shared.builder_for(&tcp) => match proto {
            Some(proto) => proto,
            None => return,
        },
        () = timer.as_mut() => {
            tracing::debug!("closing a connection: idle or a request head too slow");
            return;
        }
        _ = &mut stop => return,
    };
    let io = TokioIo::new(Socket::new(tcp, activity.clone()));
    let service = Service {
        live: shared.live.clone(),
        activity: activity.clone(),
        body_timeout: shared.limits.body_timeout,
    };
    let conn = match proto {
        Proto::H1 => Conn::H1 {
            conn: shared.h1.serve_connection(io, service),
        },
        Proto::Auto(builder) => Conn::Auto {
            conn: Box::pin(builder.serve_connection(io, service)),
        },
    };
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            () = conn.as_mut() => return,
            () = timer.as_mut() => match activity.next_check(limits) {
                Some(at) => timer.as_mut().reset(at),
                None => {
                    tracing::debug!("closing a connection: idle or a request head too slow");
                    return;
                }
            },
            _ = &mut stop, if !stopping => {
                stopping = true;
                if activity.idle() {
                    return;
                }
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// No value: "no head is being read".
const NONE: u64 = u64::MAX;

/// When the connection went idle and when a request head began, in milliseconds since
/// it was accepted; how many requests are in flight. Written by the socket (reads),
/// the service (a request starts) and [`Busy`] (a response ends), read by the timer.
pub(super) struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    idle_since: AtomicU64,
    head_at: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            // Until the first head is complete, the header timeout runs from the accept.
            head_at: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Bytes came in: if no request is in flight, they begin a head.
    fn read(&self) {
        if self.idle() && self.head_at.load(Ordering::Relaxed) == NONE {
            self.head_at.store(self.now(), Ordering::Relaxed);
        }
    }

    /// A request's head is complete and the service has it.
    fn start(self: &Arc<Self>) -> Busy {
        self.head_at.store(NONE, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// When the timer should look again, or `None` if the connection is past its limit.
    fn next_check(&self, limits: &Limits) -> Option<Instant> {
        let now = Instant::now();
        if !self.idle() {
            // The earliest any limit can end is that far from now.
            return Some(now + limits.keepalive_timeout.min(limits.header_timeout));
        }
        let since = std::time::Duration::from_millis;
        let head = self.head_at.load(Ordering::Relaxed);
        let deadline = if head != NONE {
            self.epoch + since(head) + limits.header_timeout
        } else {
            self.epoch + since(self.idle_since.load(Ordering::Relaxed)) + limits.keepalive_timeout
        };
        (deadline > now).then_some(deadline)
    }
}

/// A request in flight on its connection, until its response body is dropped.
pub(super) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since.store(self.0.now(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The TCP stream, telling [`Activity`] when bytes arrive. It stops looking once the
/// stream turns out to be HTTP/2, where bytes between streams (pings, settings) do not
/// begin a request.
struct Socket {
    tcp: TcpStream,
    activity: Arc<Activity>,
    /// How many bytes of the HTTP/2 preface's `PRI` have been seen; `H1` or `H2` once
    /// known.
    sniff: u8,
}

const H1: u8 = 4;
const H2: u8 = 3;

impl Socket {
    fn new(tcp: TcpStream, activity: Arc<Activity>) -> Self {
        Socket {
            tcp,
            activity,
            sniff: 0,
        }
    }

    fn saw(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.sniff >= H2 {
                break;
            }
            self.sniff = if b == b"PRI"[usize::from(self.sniff)] {
                self.sniff + 1
            } else {
                H1
            };
        }
        if self.sniff != H2 {
            self.activity.read();
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.saw(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// The router as hyper's service: each request is routed by the router current when
/// it arrives (its App serves it to the end, whatever reloads happen meanwhile), its
/// body gets its idle timeout, the response body carries the request's [`Busy`] mark.
#[derive(Clone)]
struct Service {
    live: Arc<Live>,
    activity: Arc<Activity>,
    body_timeout: std::time::Duration,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Service {
    type Response = hyper::Response<Tracked>;
    type Error = Infallible;
    type Future = Call;

    fn call(&self, req: hyper::Request<Incoming>) -> Call {
        let busy = self.activity.start();
        // The router boxes the body once, as it would hyper's own.
        let req = req.map(|b| TimedBody::new(b, self.body_timeout));
        let mut router: Router = self.live.router();
        Call {
            inner: router.call(req),
            busy: Some(busy),
        }
    }
}

/// The router's future; the response it makes carries the [`Busy`] mark (dropped with
/// this future if the client goes away first).
struct Call {
    inner: axum::routing::future::RouteFuture<Infallible>,
    busy: Option<Busy>,
}

impl Future for Call {
    type Output = Result<hyper::Response<Tracked>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll(cx) {
            Poll::Ready(Ok(resp)) => Poll::Ready(Ok(tracked(resp, this.busy.take()))),
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => Poll::Pending,
        }
    }
}

fn tracked(resp: Response, busy: Option<Busy>) -> hyper::Response<Tracked> {
    resp.map(|body| Tracked { body, _busy: busy })
}
