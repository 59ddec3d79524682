//! One HTTP/1.1 keep-alive connection per in-flight request, and the timing of one exchange.
//!
//! We drive `hyper::client::conn::http1` directly instead of a pooled client so that the number of
//! connections is exactly what the mode asks for: one per worker when saturating, and a small
//! idle stack (`Pool`) that only grows when the open-loop schedule needs more concurrency.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http::{
    header::{HeaderName, CONTENT_TYPE, HOST},
    HeaderMap, HeaderValue, Method, Request, StatusCode, Uri,
};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{handshake, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::vary::{Counter, Fresh};

pub type Sender = SendRequest<Full<Bytes>>;

/// Everything needed to build the same request again and again.
pub struct Target {
    /// `host:port` to connect to.
    addr: String,
    method: Method,
    /// Origin-form request target (`/path?query`).
    path: Uri,
    /// Host header plus the user's `--header`s.
    headers: HeaderMap,
    body: Bytes,
    /// With `--vary`: a new body for every request, built from `body`.
    fresh: Option<Fresh>,
    timeout: Duration,
}

impl Target {
    pub fn new(
        url: &str,
        headers: &[String],
        body: Option<Bytes>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("bad --url {url}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("only http:// URLs are supported, got {url}");
        }
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("--url needs a host"))?;
        let addr = match authority.port_u16() {
            Some(_) => authority.as_str().to_owned(),
            None => format!("{}:80", authority.host()),
        };
        let path: Uri = uri.path_and_query().map_or("/", |p| p.as_str()).parse()?;
        let mut map = HeaderMap::new();
        map.insert(HOST, HeaderValue::from_str(authority.as_str())?);
        if body.is_some() {
            map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        for h in headers {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| anyhow!("--header must be K:V, got {h}"))?;
            map.insert(
                HeaderName::from_bytes(k.trim().as_bytes())?,
                HeaderValue::from_str(v.trim())?,
            );
        }
        let method = if body.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        Ok(Self {
            addr,
            method,
            path,
            headers: map,
            body: body.unwrap_or_default(),
            fresh: None,
            timeout,
        })
    }

    /// Every request's body gets a phrase no other request carries in place of `marker`.
    pub fn vary(mut self, marker: &str, counter: Counter) -> anyhow::Result<Self> {
        self.fresh = Some(Fresh::new(&self.body, marker, counter)?);
        Ok(self)
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let body = match &self.fresh {
            Some(fresh) => fresh.body(),
            None => self.body.clone(),
        };
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.path.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }

    /// Opens a new keep-alive connection; its driver runs as a task until the sender is dropped.
    pub async fn connect(&self) -> anyhow::Result<Sender> {
        let stream = TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("connect {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends one request on `sender` and reads the whole response body.
    ///
    /// Returns the status and the instants the request was sent, the first body byte arrived (the
    /// end, for an empty body) and the body ended. An error means the connection must be dropped.
    pub async fn exchange(&self, sender: &mut Sender) -> anyhow::Result<Exchange> {
        let fut = async {
            sender.ready().await?;
            let sent = Instant::now();
            let resp = sender.send_request(self.request()).await?;
            let status = resp.status();
            let mut body = resp.into_body();
            let mut first_byte = None;
            while let Some(frame) = body.frame().await {
                let frame = frame?;
                if first_byte.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
                    first_byte = Some(Instant::now());
                }
            }
            let done = Instant::now();
            Ok::<_, anyhow::Error>(Exchange {
                status,
                sent,
                first_byte: first_byte.unwrap_or(done),
                done,
            })
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| anyhow!("request timed out after {:?}", self.timeout))?
    }
}

pub struct Exchange {
    pub status: StatusCode,
    /// When the request was handed to the connection.
    pub sent: Instant,
    pub first_byte: Instant,
    pub done: Instant,
}

/// Idle connections for the open-loop modes: take one (or open one), use it, put it back.
pub struct Pool {
    target: Arc<Target>,
    idle: Mutex<Vec<Sender>>,
}

impl Pool {
    pub fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn pop(&self) -> Option<Sender> {
        self.idle.lock().ok().and_then(|mut v| v.pop())
    }

    /// One request on a pooled connection; a connection that failed is not returned.
    pub async fn exchange(&self) -> anyhow::Result<Exchange> {
        let mut sender = loop {
            match self.pop() {
                Some(s) if s.is_closed() => continue,
                Some(s) => break s,
                None => break self.target.connect().await?,
            }
        };
        let out = self.target.exchange(&mut sender).await?;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(sender);
        }
        Ok(out)
    }
}
