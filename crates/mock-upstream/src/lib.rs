//! A fake of LLM provider HTTP APIs, for the gateway's integration tests and its benchmark.
//!
//! [`MockUpstream::start`] binds `127.0.0.1:0` and serves in a spawned tokio task; point a
//! provider's base URL at [`MockUpstream::base_url`]. It speaks the OpenAI wire format (chat
//! completions whole and streamed, embeddings, models), Anthropic's Messages API
//! (`POST /v1/messages`, whole and streamed; base URL `http://ADDR`, see [`MockUpstream::addr`])
//! and Amazon Bedrock's runtime (`POST /model/{id}/converse`, `/converse-stream` in the binary
//! event-stream framing, `/invoke` for Titan and Cohere embeddings; base URL `http://ADDR`);
//! other wire formats are meant to be added as sibling modules of `openai` and routed in `server`.
//!
//! Answers are deterministic (an echo model; tokens are words) so tests can assert exact content
//! and usage. [`Fault`]s queued with [`MockUpstream::push_fault`] make requests fail on purpose:
//! error statuses with `Retry-After`, delays, hangs, cut streams, dropped connections, hostile
//! answers (a credential echoed in an error or mid-stream, an event that never ends, a huge
//! body), and requests or streams held until the test releases them
//! ([`MockUpstream::release`]). Every request is recorded (see [`MockUpstream::requests`]) and
//! the usage reported is totalled (see [`MockUpstream::served`]). The same controls are exposed over HTTP under `/__mock/` for tests
//! written in other languages, and the `mock-upstream` binary serves the mock standalone.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use mock_upstream::{Fault, MockUpstream};
//! let mock = MockUpstream::start().await?;
//! mock.push_fault(Fault::status(429).retry_after(2).for_model("gpt-4o"));
//! let base_url = mock.base_url(); // "http://127.0.0.1:PORT/v1"
//! # let _ = base_url; Ok(()) }
//! ```
//!
//! Modules: `server` (accept loop and request pipeline), `state` (what an instance remembers),
//! `faults` (fault descriptions and matching), `body` (the response body), `control` (the
//! `/__mock/` API: `POST`/`GET`/`DELETE /__mock/faults`, `GET`/`DELETE /__mock/requests`,
//! `GET /__mock/served`, `POST /__mock/release`), `openai` (the OpenAI wire format), `anthropic` (the Anthropic Messages
//! API), `azure` (Azure OpenAI's deployment URLs, `api-key` and `api-version`), `cohere` (Chat v2
//! and Embed v2), `bedrock` (Bedrock's Converse and InvokeModel, SigV4, event-stream frames).

mod anthropic;
mod azure;
mod bedrock;
mod body;
mod cohere;
mod control;
mod faults;
mod google;
mod openai;
mod sample;
mod server;
mod state;
mod wire;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use crate::faults::{Fault, FaultKind};
use crate::state::Shared;
pub use crate::state::{RecordedRequest, Served};

/// Options for [`MockUpstream::start_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockOptions {
    /// When set, provider requests must send `Authorization: Bearer <key>` (`x-api-key: <key>` or
    /// `Authorization: Bearer <key>` on `/v1/messages`, `api-key: <key>` on Azure paths; on Bedrock paths a SigV4 signature made
    /// with `<key>` as the secret access key); others get the wire format's 401 (Bedrock's 403).
    pub require_api_key: Option<String>,
    /// Whether requests are recorded (method, path, headers and JSON body). Defaults to `true`.
    ///
    /// When `false` nothing is recorded at all, so a long benchmark does not grow memory without
    /// bound; [`MockUpstream::requests`] then stays empty.
    pub record_bodies: bool,
    /// Port to bind on 127.0.0.1; `0` (the default) picks a free one.
    pub port: u16,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl MockOptions {
    /// No API key required, recording on, any free port.
    pub fn new() -> Self {
        Self {
            require_api_key: None,
            record_bodies: true,
            port: 0,
        }
    }
}

/// A running mock. Dropping it (or calling [`MockUpstream::shutdown`]) stops it.
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockUpstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockUpstream {
    /// Binds 127.0.0.1:0 and serves in a spawned tokio task.
    pub async fn start() -> std::io::Result<MockUpstream> {
        Self::start_with(MockOptions::new()).await
    }

    /// Binds 127.0.0.1:`opts.port` and serves in a spawned tokio task.
    pub async fn start_with(opts: MockOptions) -> std::io::Result<MockUpstream> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, opts.port)).await?;
        Self::from_listener(listener, opts)
    }

    /// Serves on an already bound listener (any address) in a spawned tokio task; `opts.port` is
    /// ignored. Must be called from within a tokio runtime.
    pub fn from_listener(
        listener: TcpListener,
        opts: MockOptions,
    ) -> std::io::Result<MockUpstream> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&opts));
        let server = tokio::spawn(server::accept_loop(listener, Arc::clone(&shared)));
        Ok(MockUpstream {
            addr,
            shared,
            server,
        })
    }

    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `"http://127.0.0.1:PORT/v1"`: the OpenAI base URL to give a client.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues a fault. Faults are matched in FIFO order against each incoming request.
    pub fn push_fault(&self, fault: Fault) {
        self.shared.push_faults([fault]);
    }

    /// Lets `n` requests held by [`Fault::hold`] or [`Fault::hold_stream`] go on. A release
    /// given before a held request reaches its hold is kept for it (like a semaphore's
    /// permit), so a test may release as soon as it has seen what it waited for.
    pub fn release(&self, n: usize) {
        self.shared.release(n);
    }

    /// Sets the `expires_in` (seconds) of the access tokens `POST /token` issues from now on
    /// (3600 by default, as Google's).
    pub fn set_token_lifetime(&self, secs: u64) {
        self.shared.set_token_lifetime(secs);
    }

    /// Removes every queued fault, and forgets releases no held request has used yet.
    pub fn clear_faults(&self) {
        self.shared.clear_faults();
    }

    /// The faults still queued, with their remaining `times`.
    pub fn faults(&self) -> Vec<Fault> {
        self.shared.faults()
    }

    /// Every request received (in order), including ones answered with a fault.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.clear_requests();
    }

    /// Totals of usage the mock reported in successful responses.
    pub fn served(&self) -> Served {
        self.shared.served()
    }

    /// Stops accepting and aborts the server task and every open connection.
    pub fn shutdown(self) {
        // The work is done in `Drop`.
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        // Aborting the accept loop drops its `JoinSet`, which aborts every connection task.
        self.server.abort();
    }
}
