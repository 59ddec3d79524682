//! Everything one mock instance remembers: its options, the fault queue, the recorded requests
//! and the usage totals.
//!
//! [`Shared`] is created once per [`crate::MockUpstream`] and shared (behind an `Arc`) by the
//! accept loop, every connection and the handle the test holds. Locks are plain `std` mutexes held
//! for a few instructions and never across an `.await`; the happy path of the benchmark (no faults
//! queued, recording off) takes no lock at all.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Semaphore;

use serde::{Deserialize, Serialize};

use crate::faults::{Fault, FaultKind};
use crate::MockOptions;

/// One request the mock received, as recorded before any fault was applied.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `"POST"`.
    pub method: String,
    /// Request path including the query string, e.g. `"/v1/chat/completions"`.
    pub path: String,
    /// Headers, names lowercased, one entry per value (values of a repeated header are adjacent);
    /// non-UTF-8 values are converted lossily.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON; `None` when it was empty or not JSON.
    pub body: Option<serde_json::Value>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Usage totals the mock reported in successful chat and embedding responses.
///
/// `requests` counts those responses; a response cut by [`FaultKind::CutStream`] or replaced by
/// another fault is not counted. A streamed response counts its usage even when the client did not
/// ask for the usage chunk.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Served {
    /// Number of successful responses that carried usage.
    pub requests: u64,
    /// Sum of `prompt_tokens`.
    pub prompt_tokens: u64,
    /// Sum of `completion_tokens`.
    pub completion_tokens: u64,
}

/// Token usage of one response, as reported to the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tokens {
    pub(crate) prompt: u64,
    pub(crate) completion: u64,
}

/// State shared by the accept loop, all connections and the [`crate::MockUpstream`] handle.
pub(crate) struct Shared {
    /// When set, provider requests must carry this key (see [`crate::openai::authorized`]).
    pub(crate) require_api_key: Option<String>,
    /// Whether requests are recorded at all (`MockOptions::record_bodies`).
    pub(crate) record: bool,
    /// Queued faults in FIFO order. Invariant: no entry has `times == Some(0)`.
    faults: Mutex<VecDeque<Fault>>,
    /// Mirror of `faults.len()`, so requests skip the lock while the queue is empty.
    fault_count: AtomicUsize,
    requests: Mutex<Vec<RecordedRequest>>,
    served_requests: AtomicU64,
    served_prompt: AtomicU64,
    served_completion: AtomicU64,
    /// Source of the `N` in response ids such as `chatcmpl-mock-N`.
    next_id: AtomicU64,
    /// Releases for [`FaultKind::Hold`] and [`FaultKind::HoldStream`]: one permit lets one
    /// held request go on. Starts empty; permits given before a hold is reached wait for it.
    releases: Arc<Semaphore>,
    /// `expires_in` of the access tokens `POST /token` issues, in seconds.
    token_lifetime: AtomicU64,
    /// Trace exports taken at `POST /__mock/otlp/v1/traces`, and their bytes.
    otlp_exports: AtomicU64,
    otlp_bytes: AtomicU64,
}

/// Google's access tokens live an hour.
pub(crate) const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 3600;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data half-updated in a way that
    // matters to a mock, so poisoning is ignored.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(opts: &MockOptions) -> Self {
        Self {
            require_api_key: opts.require_api_key.clone(),
            record: opts.record_bodies,
            faults: Mutex::new(VecDeque::new()),
            fault_count: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            served_requests: AtomicU64::new(0),
            otlp_exports: AtomicU64::new(0),
            otlp_bytes: AtomicU64::new(0),
            served_prompt: AtomicU64::new(0),
            served_completion: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            releases: Arc::new(Semaphore::new(0)),
            token_lifetime: AtomicU64::new(DEFAULT_TOKEN_LIFETIME_SECS),
        }
    }

    /// Sets the `expires_in` of the access tokens issued from now on.
    pub(crate) fn set_token_lifetime(&self, secs: u64) {
        self.token_lifetime.store(secs, Ordering::Relaxed);
    }

    /// The `expires_in` of the access tokens issued now.
    pub(crate) fn token_lifetime(&self) -> u64 {
        self.token_lifetime.load(Ordering::Relaxed)
    }

    /// Lets `n` held requests go on (now, or when they reach their hold).
    pub(crate) fn release(&self, n: usize) {
        self.releases.add_permits(n);
    }

    /// Resolves once a release is available, and uses it up.
    pub(crate) fn released(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let releases = Arc::clone(&self.releases);
        async move {
            if let Ok(permit) = releases.acquire_owned().await {
                permit.forget();
            }
        }
    }

    /// Appends faults to the queue; faults with `times == Some(0)` are dropped.
    pub(crate) fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) -> usize {
        let mut queue = lock(&self.faults);
        queue.extend(faults.into_iter().filter(Fault::is_live));
        self.fault_count.store(queue.len(), Ordering::Release);
        queue.len()
    }

    /// Clears the fault queue, and forgets releases no held request has used yet (so a
    /// release given for a request that never got held cannot free a later test's hold).
    pub(crate) fn clear_faults(&self) {
        let mut queue = lock(&self.faults);
        queue.clear();
        self.fault_count.store(0, Ordering::Release);
        self.releases.forget_permits(usize::MAX);
    }

    pub(crate) fn faults(&self) -> Vec<Fault> {
        lock(&self.faults).iter().cloned().collect()
    }

    /// Takes one use of the first queued fault matching the request, if any.
    pub(crate) fn take_fault(&self, model: Option<&str>, streaming: bool) -> Option<FaultKind> {
        if self.fault_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut queue = lock(&self.faults);
        let index = queue.iter().position(|f| f.matches(model, streaming))?;
        let fault = queue.get_mut(index)?;
        let kind = fault.kind.clone();
        if let Some(left) = fault.times.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                queue.remove(index);
            }
        }
        self.fault_count.store(queue.len(), Ordering::Release);
        Some(kind)
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        lock(&self.requests).push(request);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub(crate) fn clear_requests(&self) {
        lock(&self.requests).clear();
    }

    pub(crate) fn add_served(&self, tokens: Tokens) {
        self.served_requests.fetch_add(1, Ordering::Relaxed);
        self.served_prompt
            .fetch_add(tokens.prompt, Ordering::Relaxed);
        self.served_completion
            .fetch_add(tokens.completion, Ordering::Relaxed);
    }

    pub(crate) fn served(&self) -> Served {
        Served {
            requests: self.served_requests.load(Ordering::Relaxed),
            prompt_tokens: self.served_prompt.load(Ordering::Relaxed),
            completion_tokens: self.served_completion.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn add_otlp_export(&self, bytes: usize) {
        self.otlp_exports.fetch_add(1, Ordering::Relaxed);
        self.otlp_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// (exports, bytes) taken by the OTLP collector endpoint.
    pub(crate) fn otlp_exports(&self) -> (u64, u64) {
        (
            self.otlp_exports.load(Ordering::Relaxed),
            self.otlp_bytes.load(Ordering::Relaxed),
        )
    }

    /// A fresh id number for a response.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared::new(&MockOptions::default())
    }

    #[test]
    fn fifo_and_times() {
        let s = shared();
        s.push_faults([
            Fault::status(500).times(2),
            Fault::status(503),
            Fault::hang().times(0),
        ]);
        assert_eq!(s.faults().len(), 2);
        let status = |k: Option<FaultKind>| match k {
            Some(FaultKind::Status { status, .. }) => status,
            _ => 0,
        };
        assert_eq!(status(s.take_fault(None, false)), 500);
        assert_eq!(status(s.take_fault(None, false)), 500);
        assert_eq!(status(s.take_fault(None, false)), 503);
        assert_eq!(s.take_fault(None, false), None);
    }

    #[test]
    fn model_scoped_faults_are_skipped_not_consumed() {
        let s = shared();
        s.push_faults([Fault::status(500).for_model("a"), Fault::status(429)]);
        assert!(matches!(
            s.take_fault(Some("b"), false),
            Some(FaultKind::Status { status: 429, .. })
        ));
        assert!(matches!(
            s.take_fault(Some("a"), false),
            Some(FaultKind::Status { status: 500, .. })
        ));
        assert_eq!(s.take_fault(Some("a"), false), None);
    }

    #[tokio::test]
    async fn a_release_given_before_the_hold_is_kept_for_it() {
        let s = shared();
        s.release(1);
        s.released().await;
        let waiting = s.released();
        tokio::pin!(waiting);
        assert!(futures_poll_once(&mut waiting).is_none(), "no release left");
        s.release(1);
        waiting.await;
        s.release(2);
        s.clear_faults();
        let after_clear = s.released();
        tokio::pin!(after_clear);
        assert!(futures_poll_once(&mut after_clear).is_none(), "cleared");
    }

    /// Polls a future once with a no-op waker.
    fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn forever_stays_until_cleared() {
        let s = shared();
        s.push_faults([Fault::delay_ms(1).forever()]);
        for _ in 0..5 {
            assert_eq!(s.take_fault(None, false), Some(FaultKind::Delay { ms: 1 }));
        }
        s.clear_faults();
        assert_eq!(s.take_fault(None, false), None);
    }
}
