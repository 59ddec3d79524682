//! CORS stage: the headers browsers need, for the gateway's one fixed policy.
//!
//! Methods `GET, POST, OPTIONS`, any request header, `x-request-id` exposed, preflights
//! cached for 600 s, and the origins of `server.cors_origins` (any, or a list). It writes
//! exactly what `tower_http::cors::CorsLayer` configured that way writes (a test checks
//! it against that layer), but with every header value built once at start-up instead of
//! a header map, a `Vary` value and a copy of the whole policy per request.
//!
//! Every `OPTIONS` request is answered here as a preflight (200, empty body), so browser
//! preflights, which carry no key, never reach auth.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, Request};
use axum::response::Response;
use tower::{Layer, Service};

use crate::config::CorsOrigins;

/// The policy, with its header values ready to copy.
#[derive(Debug)]
pub struct Policy {
    /// `None`: any origin (`*`); else the allowed origins, compared byte for byte.
    origins: Option<Vec<HeaderValue>>,
    vary: HeaderValue,
    any_origin: HeaderValue,
    methods: HeaderValue,
    any_header: HeaderValue,
    max_age: HeaderValue,
    expose: HeaderValue,
}

impl Policy {
    /// The `access-control-allow-origin` value for a request, if any.
    fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match &self.origins {
            None => Some(self.any_origin.clone()),
            Some(list) => origin.filter(|o| list.contains(o)).cloned(),
        }
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct CorsLayer {
    policy: Arc<Policy>,
}

impl CorsLayer {
    pub fn new(origins: &CorsOrigins) -> Self {
        let origins = match origins {
            CorsOrigins::Any => None,
            CorsOrigins::List(list) => Some(
                list.iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok())
                    .collect(),
            ),
        };
        let policy = Policy {
            origins,
            vary: HeaderValue::from_static(
                "origin, access-control-request-method, access-control-request-headers",
            ),
            any_origin: HeaderValue::from_static("*"),
            methods: HeaderValue::from_static("GET,POST,OPTIONS"),
            any_header: HeaderValue::from_static("*"),
            max_age: HeaderValue::from_static("600"),
            expose: HeaderValue::from_static("x-request-id"),
        };
        Self {
            policy: Arc::new(policy),
        }
    }
}

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Cors<S> {
        Cors {
            policy: self.policy.clone(),
            inner,
        }
    }
}

/// See [`CorsLayer`].
#[derive(Debug, Clone)]
pub struct Cors<S> {
    policy: Arc<Policy>,
    inner: S,
}

impl<S, B> Service<Request<B>> for Cors<S>
where
    S: Service<Request<B>, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = CorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> CorsFuture<S::Future> {
        let p = &*self.policy;
        let allow_origin = p.allow_origin(req.headers().get(header::ORIGIN));
        if req.method() == Method::OPTIONS {
            let mut resp = Response::new(Body::empty());
            let h = resp.headers_mut();
            h.insert(header::VARY, p.vary.clone());
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, p.methods.clone());
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, p.any_header.clone());
            h.insert(header::ACCESS_CONTROL_MAX_AGE, p.max_age.clone());
            if let Some(o) = allow_origin {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            }
            return CorsFuture::Preflight(Some(resp));
        }
        CorsFuture::Call {
            inner: self.inner.call(req),
            policy: self.policy.clone(),
            allow_origin,
        }
    }
}

/// [`Cors`]'s future: the preflight answer, or the inner stack's with the CORS headers.
pub enum CorsFuture<F> {
    Preflight(Option<Response>),
    Call {
        inner: F,
        policy: Arc<Policy>,
        allow_origin: Option<HeaderValue>,
    },
}

impl<F, E> Future for CorsFuture<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            // polled again after completion: never ready again
            CorsFuture::Preflight(resp) => {
                resp.take().map_or(Poll::Pending, |r| Poll::Ready(Ok(r)))
            }
            CorsFuture::Call {
                inner,
                policy,
                allow_origin,
            } => {
                let mut resp = ready!(Pin::new(inner).poll(cx))?;
                let h = resp.headers_mut();
                // `Vary` is added to what the response already varies on; the others replace
                h.append(header::VARY, policy.vary.clone());
                if let Some(o) = allow_origin.take() {
                    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
                }
                h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, policy.expose.clone());
                Poll::Ready(Ok(resp))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, StatusCode};
    use tower::ServiceExt;

    /// The gateway's policy built with tower-http, as it was before this module.
    fn reference(origins: &CorsOrigins) -> tower_http::cors::CorsLayer {
        use tower_http::cors::{AllowOrigin, Any};
        let layer = tower_http::cors::CorsLayer::new()
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers(Any)
            .expose_headers([header::HeaderName::from_static("x-request-id")])
            .max_age(std::time::Duration::from_secs(600));
        match origins {
            CorsOrigins::Any => layer.allow_origin(Any),
            CorsOrigins::List(list) => layer.allow_origin(AllowOrigin::list(
                list.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
            )),
        }
    }

    /// An inner service whose response already carries a `Vary` and a stale CORS header.
    async fn inner(_: Request<Body>) -> Result<Response, std::convert::Infallible> {
        let mut resp = Response::new(Body::from("hi"));
        *resp.status_mut() = StatusCode::CREATED;
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("stale"),
        );
        Ok(resp)
    }

    fn request(method: &Method, origin: Option<&str>, preflight: bool) -> Request<Body> {
        let mut req = Request::builder().method(method.clone()).uri("/v1/models");
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        if preflight {
            req = req
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization");
        }
        req.body(Body::empty()).unwrap()
    }

    /// Headers as sorted (name, values in order) pairs.
    fn headers(h: &HeaderMap) -> Vec<(String, Vec<Vec<u8>>)> {
        let mut out: Vec<_> = h
            .keys()
            .map(|k| {
                let values = h.get_all(k).iter().map(|v| v.as_bytes().to_vec()).collect();
                (k.to_string(), values)
            })
            .collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn writes_what_tower_http_writes() {
        let configs = [
            CorsOrigins::Any,
            CorsOrigins::List(vec!["https://a.example".into(), "https://b.example".into()]),
        ];
        let methods = [Method::GET, Method::POST, Method::OPTIONS, Method::DELETE];
        let origins = [
            None,
            Some("https://a.example"),
            Some("https://evil.example"),
        ];
        let mut checked = 0;
        for config in &configs {
            for method in &methods {
                for origin in origins {
                    for preflight in [false, true] {
                        // (boxed: the layer wants an `Unpin` inner future, as the router's are)
                        let ours = CorsLayer::new(config)
                            .layer(tower::service_fn(|r| Box::pin(inner(r))))
                            .oneshot(request(method, origin, preflight))
                            .await
                            .unwrap();
                        let theirs = reference(config)
                            .layer(tower::service_fn(inner))
                            .oneshot(request(method, origin, preflight))
                            .await
                            .unwrap();
                        let what = format!("{method} {origin:?} preflight={preflight}");
                        assert_eq!(ours.status(), theirs.status(), "{what}");
                        assert_eq!(headers(ours.headers()), headers(theirs.headers()), "{what}");
                        let ours = axum::body::to_bytes(ours.into_body(), 100).await.unwrap();
                        let theirs = axum::body::to_bytes(theirs.into_body(), 100).await.unwrap();
                        assert_eq!(ours, theirs, "{what}");
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 48);
    }
}
