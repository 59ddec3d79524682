//! Fault injection: what a test can ask the mock to do instead of answering normally.
//!
//! A [`Fault`] is queued on the mock (from Rust with [`crate::MockUpstream::push_fault`], or over
//! HTTP with `POST /__mock/faults`). Each incoming provider request takes the *first* queued fault
//! that matches it (FIFO order); a fault with a `times` budget is removed once that budget is spent.
//! This module only describes faults and decides whether one matches a request; carrying a fault out
//! (sleeping, hanging, cutting a stream, dropping the socket) is the job of [`crate::server`].
//!
//! The serde form is the one the control API accepts, for example
//! `{"model": "gpt-4o", "times": 2, "kind": {"type": "status", "status": 429, "retry_after_secs": 1}}`.
//! A missing `times` means once; `"times": null` means until cleared.

use serde::{Deserialize, Serialize};

/// One queued fault: which requests it applies to, how often, and what happens to them.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Fault {
    /// Only requests whose JSON body `model` equals this are matched (`None`: any request).
    #[serde(default)]
    pub model: Option<String>,
    /// How many matching requests this fault applies to; `None` = forever (until cleared).
    ///
    /// Defaults to `Some(1)` both in the constructors and when the field is missing from JSON.
    /// `Some(0)` is a fault that never applies; it is dropped when queued.
    #[serde(default = "default_times")]
    pub times: Option<u32>,
    /// What the mock does to a matched request.
    pub kind: FaultKind,
}

/// What the mock does to a request that matched a [`Fault`].
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status and body.
    ///
    /// The default body is an OpenAI-shaped error JSON `{"error":{"message","type","param","code"}}`
    /// whose message names the status. With `retry_after_secs` a `Retry-After` header (seconds) is
    /// added. A status outside 100..=999 is answered as 500.
    Status {
        /// HTTP status code.
        status: u16,
        /// Response body to send instead of the default error JSON.
        #[serde(default)]
        body: Option<serde_json::Value>,
        /// Value of the `Retry-After` header, in seconds.
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
    /// Sleep this long (with `tokio::time::sleep`, so paused test time works), then answer normally.
    Delay {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// Never answer: hold the connection open until the client gives up or the mock stops.
    Hang,
    /// Streaming requests only: send the first `after_chunks` SSE events, then abort the connection
    /// (no `[DONE]`, no chunked terminator), so the client sees a body error.
    ///
    /// Non-streaming requests do not match this fault and leave it queued.
    CutStream {
        /// Number of complete SSE `data:` events sent before the cut.
        after_chunks: u32,
    },
    /// Streaming requests only: send the first `after_chunks` SSE events, then go silent with the
    /// connection open (a stalled stream). Non-streaming requests leave it queued.
    StallStream {
        /// Number of complete SSE `data:` events sent before the stall.
        after_chunks: u32,
    },
    /// Close the TCP connection without writing any response.
    DropConnection,
    /// Answer `status` with an error, in the wire format's shape, whose message quotes the
    /// credential the request presented (`Authorization: Bearer`, `x-api-key`, `api-key`,
    /// `x-goog-api-key`; the whole `Authorization` value otherwise), as providers that echo a
    /// wrong key do: `Incorrect API key provided: <key>`.
    EchoKey {
        /// HTTP status code.
        status: u16,
    },
    /// Streaming requests only: send the first `after_chunks` SSE events, then an error event
    /// (in the wire format's shape) quoting the presented credential as [`FaultKind::EchoKey`]
    /// does, and end the body. Non-streaming requests leave it queued.
    EchoKeyInStream {
        /// Number of complete SSE events sent before the error event.
        after_chunks: u32,
    },
    /// Streaming requests only: answer 200 `text/event-stream` with `data: ` and then
    /// `chunk_bytes`-byte chunks of `a`, without ever ending the event or the body (until the
    /// client goes away). Non-streaming requests leave it queued.
    EndlessEvent {
        /// Size of each chunk after the first.
        chunk_bytes: u32,
    },
    /// Answer `status` with a JSON body of exactly `bytes` bytes (`{"pad":"aaa…"}`), sent
    /// chunked (no `Content-Length`) in 64 KiB chunks.
    HugeAnswer {
        /// HTTP status code.
        status: u16,
        /// Length of the body.
        bytes: u64,
    },
    /// Wait until the test lets one held request go on ([`crate::MockUpstream::release`],
    /// `POST /__mock/release`), then answer normally. A release given before the request
    /// reaches its hold is kept for it, so releasing never races with the request.
    Hold,
    /// Streaming requests only: send the first `after_chunks` SSE events, wait for a
    /// release as [`FaultKind::Hold`] does, then send the rest of the stream normally.
    /// Non-streaming requests leave it queued.
    HoldStream {
        /// Number of complete SSE `data:` events sent before the hold.
        after_chunks: u32,
    },
}

fn default_times() -> Option<u32> {
    Some(1)
}

impl Fault {
    /// A fault of this kind that applies once, to any model.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            model: None,
            times: Some(1),
            kind,
        }
    }

    /// Answer with `status` and the default OpenAI-shaped error body.
    pub fn status(status: u16) -> Self {
        Self::new(FaultKind::Status {
            status,
            body: None,
            retry_after_secs: None,
        })
    }

    /// Sleep `ms` milliseconds, then answer normally.
    pub fn delay_ms(ms: u64) -> Self {
        Self::new(FaultKind::Delay { ms })
    }

    /// Never answer.
    pub fn hang() -> Self {
        Self::new(FaultKind::Hang)
    }

    /// Send `after_chunks` SSE events of a streaming response, then abort the connection.
    pub fn cut_stream(after_chunks: u32) -> Self {
        Self::new(FaultKind::CutStream { after_chunks })
    }

    /// Send `after_chunks` SSE events of a streaming response, then stall with the connection open.
    pub fn stall_stream(after_chunks: u32) -> Self {
        Self::new(FaultKind::StallStream { after_chunks })
    }

    /// Close the connection without any response.
    pub fn drop_connection() -> Self {
        Self::new(FaultKind::DropConnection)
    }

    /// Answer `status` with an error quoting the credential the request presented.
    pub fn echo_key(status: u16) -> Self {
        Self::new(FaultKind::EchoKey { status })
    }

    /// Send `after_chunks` SSE events of a streaming response, then an error event quoting the
    /// credential the request presented.
    pub fn echo_key_in_stream(after_chunks: u32) -> Self {
        Self::new(FaultKind::EchoKeyInStream { after_chunks })
    }

    /// Answer a streaming request with one event that never ends, in `chunk_bytes` chunks.
    pub fn endless_event(chunk_bytes: u32) -> Self {
        Self::new(FaultKind::EndlessEvent { chunk_bytes })
    }

    /// Answer `status` with a JSON body of `bytes` bytes.
    pub fn huge_answer(status: u16, bytes: u64) -> Self {
        Self::new(FaultKind::HugeAnswer { status, bytes })
    }

    /// Answer only once the test releases the request ([`crate::MockUpstream::release`]).
    pub fn hold() -> Self {
        Self::new(FaultKind::Hold)
    }

    /// Send `after_chunks` SSE events of a streaming response, then wait for a release
    /// before sending the rest.
    pub fn hold_stream(after_chunks: u32) -> Self {
        Self::new(FaultKind::HoldStream { after_chunks })
    }

    /// Add a `Retry-After: secs` header. Only meaningful for [`FaultKind::Status`]; ignored otherwise.
    pub fn retry_after(mut self, secs: u64) -> Self {
        if let FaultKind::Status {
            retry_after_secs, ..
        } = &mut self.kind
        {
            *retry_after_secs = Some(secs);
        }
        self
    }

    /// Replace the default error body. Only meaningful for [`FaultKind::Status`]; ignored otherwise.
    pub fn with_body(mut self, json: serde_json::Value) -> Self {
        if let FaultKind::Status { body, .. } = &mut self.kind {
            *body = Some(json);
        }
        self
    }

    /// Only match requests whose body `model` is `model`.
    pub fn for_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Apply to the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Apply to every matching request until the faults are cleared.
    pub fn forever(mut self) -> Self {
        self.times = None;
        self
    }

    /// Whether this fault applies to a request for `model` (`None`: the body names no model).
    ///
    /// `streaming` tells whether the request asked for a streamed response; only streaming requests
    /// match [`FaultKind::CutStream`], [`FaultKind::StallStream`] and [`FaultKind::HoldStream`].
    pub(crate) fn matches(&self, model: Option<&str>, streaming: bool) -> bool {
        let model_ok = match &self.model {
            None => true,
            Some(wanted) => model == Some(wanted.as_str()),
        };
        let stream_only = matches!(
            self.kind,
            FaultKind::CutStream { .. }
                | FaultKind::StallStream { .. }
                | FaultKind::EchoKeyInStream { .. }
                | FaultKind::EndlessEvent { .. }
                | FaultKind::HoldStream { .. }
        );
        let kind_ok = streaming || !stream_only;
        model_ok && kind_ok
    }

    /// Whether the fault has uses left.
    pub(crate) fn is_live(&self) -> bool {
        self.times != Some(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builders_compose() {
        let f = Fault::status(429).retry_after(2).for_model("m").times(3);
        assert_eq!(f.model.as_deref(), Some("m"));
        assert_eq!(f.times, Some(3));
        assert_eq!(
            f.kind,
            FaultKind::Status {
                status: 429,
                body: None,
                retry_after_secs: Some(2)
            }
        );
        assert_eq!(Fault::hang().forever().times, None);
    }

    #[test]
    fn json_defaults_and_null_times() {
        let once: Fault = serde_json::from_value(json!({"kind": {"type": "hang"}})).unwrap();
        assert_eq!(once, Fault::hang());
        let forever: Fault =
            serde_json::from_value(json!({"times": null, "kind": {"type": "drop_connection"}}))
                .unwrap();
        assert_eq!(forever, Fault::drop_connection().forever());
        let cut: Fault = serde_json::from_value(
            json!({"model": "x", "kind": {"type": "cut_stream", "after_chunks": 2}}),
        )
        .unwrap();
        assert_eq!(cut, Fault::cut_stream(2).for_model("x"));
        let held: Fault =
            serde_json::from_value(json!({"kind": {"type": "hold_stream", "after_chunks": 1}}))
                .unwrap();
        assert_eq!(held, Fault::hold_stream(1));
        let hold: Fault = serde_json::from_value(json!({"kind": {"type": "hold"}})).unwrap();
        assert_eq!(hold, Fault::hold());
        let back: Fault = serde_json::from_value(serde_json::to_value(&forever).unwrap()).unwrap();
        assert_eq!(back, forever);
    }

    #[test]
    fn matching_rules() {
        assert!(Fault::status(500).matches(None, false));
        assert!(!Fault::status(500).for_model("a").matches(Some("b"), false));
        assert!(!Fault::status(500).for_model("a").matches(None, false));
        assert!(Fault::status(500).for_model("a").matches(Some("a"), false));
        assert!(!Fault::cut_stream(1).matches(Some("a"), false));
        assert!(Fault::cut_stream(1).matches(Some("a"), true));
        assert!(!Fault::stall_stream(1).matches(Some("a"), false));
        assert!(Fault::stall_stream(1).matches(Some("a"), true));
        assert!(!Fault::echo_key_in_stream(1).matches(None, false));
        assert!(!Fault::endless_event(16).matches(None, false));
        assert!(Fault::endless_event(16).matches(None, true));
        assert!(Fault::echo_key(401).matches(None, false));
        assert!(Fault::huge_answer(200, 10).matches(None, false));
    }

    #[test]
    fn hostile_faults_in_json() {
        let f: Fault = serde_json::from_value(
            json!({"kind": {"type": "endless_event", "chunk_bytes": 16384}}),
        )
        .unwrap();
        assert_eq!(f, Fault::endless_event(16384));
        let f: Fault = serde_json::from_value(
            json!({"kind": {"type": "huge_answer", "status": 200, "bytes": 1000}}),
        )
        .unwrap();
        assert_eq!(f, Fault::huge_answer(200, 1000));
        let f: Fault =
            serde_json::from_value(json!({"kind": {"type": "echo_key", "status": 401}})).unwrap();
        assert_eq!(f, Fault::echo_key(401));
        assert!(!Fault::hold_stream(1).matches(Some("a"), false));
        assert!(Fault::hold_stream(1).matches(Some("a"), true));
        assert!(Fault::hold().matches(Some("a"), false));
    }
}
