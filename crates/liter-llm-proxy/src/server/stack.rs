//! The whole request stack, built in one place, outermost stage first. Adding a stage
//! means adding its module and one line here (a layer below, or a step of the handler
//! pipeline in `handlers::proxy`, listed here in order).
//!
//! Before the stack, the accept loop (`server::serve`, `conn.rs`) holds each connection
//! to its header, keep-alive and body idle timeouts and to `max_connections`, and hands
//! each request to the router current when it arrives (`reload::Live`: a reload builds
//! a new App and router and swaps them in; a request in flight keeps its own).
//!
//! Layers (tower), on every request:
//! 1. catch-panic: a bug anywhere below becomes a 500 in OpenAI's shape, and the
//!    connection survives. Outermost so that it also covers the log and CORS layers.
//! 2. request log (`telemetry`): assigns (or keeps) `x-request-id`, writes one line
//!    per request, counts it in `/metrics`, queues a chat or embeddings request's
//!    record for the `[[logging]]` sinks (`logsink`) and sets the overhead headers
//!    (`x-liter-llm-overhead-duration-ms`, `x-litellm-overhead-duration-ms`). Reads
//!    from the response's extensions: `RouteInfo` (model, deployment, its series and
//!    the time upstream, from the handler), `Arc<Record>` (the usage, from the
//!    handler's tap), `Arc<Principal>` (from auth), `ResponseCost` (from the
//!    dispatcher), `ErrorKind` (from the error renderer); from the request, axum's
//!    `MatchedPath` (the route label).
//! 3. CORS (`cors.rs`): before auth, so that browser preflights (which carry no key)
//!    are answered.
//! 4. body limit: caps what any handler may buffer; adds the `BodyLimit` extension so
//!    the `RawBody` extractor can name it in its 413 (and refuse an announced
//!    `Content-Length` over it before reading). The one exception is the file upload
//!    route (`files.rs`), which streams its body to the files backend under its own
//!    limit, `[files] max_file_bytes`.
//! 5. auth (`auth`, a route layer on the API and admin routes; deny by default: the
//!    public routes are those the route table (`routes.rs`) marks `Access::Public`,
//!    nothing else): adds `Arc<Principal>` to the request's extensions (and the
//!    response's, for the log).
//! 6. admin only (`admin`, a route layer on the admin routes): the master key, except
//!    the routes in `admin::VIRTUAL_KEY_ROUTES`. Reads `Arc<Principal>`.
//!
//! Then, inside the chat and embeddings handlers (`handlers::proxy`), in order:
//! 7. front door parse (`request::parse_head`): the head of the OpenAI JSON body
//!    (`model`, `stream`, `stream_options.include_usage`); 400 on a bad body. Then the
//!    request's tags (`routing::tags`): those of the body are taken out of it (and of
//!    the client's own request), always; with `[router] enable_tag_filtering` they
//!    join the `x-litellm-tags` header's and the key's into the request's tag filter
//!    (400 past the bounds).
//! 8. route resolution (`routing::Registry::resolve`): the pool behind the model name,
//!    404 for an unknown model, 403 for one the key may not use.
//! 9. cache lookup (`cache::Cache::plan`, `lookup`; with `[cache]` only): the key and
//!    the per-request controls (`Cache-Control`, the body's `cache` field, taken out
//!    of the body here; 400 when malformed). On a hit, governance admits it as a cache
//!    hit (expiry, rpm, a zero-cost ledger row) and the stored answer is the response,
//!    replayed as SSE for a stream; nothing below runs.
//! 10. governance (`governance::admit`): key expiry, rpm/tpm, token estimate, budget
//!     reservation; returns the `Meter` that settles when the request ends.
//! 11. routing and fallback (`routing::execute`): picks a deployment (tags, health,
//!     breaker, per-deployment rpm/tpm, strategy), retries, falls back; 400 when the
//!     tags admit no deployment of the model or its fallbacks.
//! 12. dispatcher (`upstream::dispatch`): one attempt on one deployment, in its wire
//!     protocol (`upstream::Protocol`); tells the meter the usage, prices the answer.
//!
//! The front doors of other client protocols (`front.rs`: Anthropic's `/v1/messages`)
//! run the same steps 7-11: before them the door decodes the client's body into the
//! canonical chat request (`crate::front`), after them it encodes the answer or
//! stream back, unless a deployment of the client's own wire answered (the
//! dispatcher forwarded the client's bytes). A layer around their auth writes every
//! error in the door's shape.
//!
//! The files API's handlers (`files.rs`) call the `files` module directly after auth:
//! uploads stream to the object store, metadata goes to the store, and a virtual key
//! sees only its own files.
//!
//! On the way out: the handler tags the response with `RouteInfo` and the
//! `x-liter-llm-model` / `x-liter-llm-deployment` headers, the meter adds
//! `x-ratelimit-*` and settles when its last handle (the stream body's, for a stream)
//! is dropped, the cache (`cache::Cache::keep`) stores a complete 2xx answer (a stream
//! through a tee, once it has ended cleanly) and adds `x-liter-llm-cache` and
//! `x-litellm-cache-key`, and the request log writes its line.
//!
//! Every route is one entry of the route table (`routes.rs`), from which both the router
//! and `GET /openapi.json` are built. Every OpenAI route is also served without the
//! `/v1` prefix, as LiteLLM users expect.
//!
//! The request-log and auth stages are hand-written tower layers rather than
//! `axum::middleware::from_fn`, which boxes a service and a future per request: they run
//! on every request, so their cost shows in the gateway's CPU per request (bench/).

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

use super::cors::CorsLayer;
use super::handlers as h;
use super::routes;
use crate::apidoc::Access;
use crate::app::App;
use crate::auth;
use crate::error::GatewayError;
use crate::request::BodyLimit;
use crate::telemetry;

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked; answered 500");
    GatewayError::Internal("internal error".into()).into_response()
}

/// The router of [`routes::table`]: its public routes as they are, the others behind
/// the auth layer, and the master key's also behind `admin::master_only`.
fn served(app: &Arc<App>) -> Router<Arc<App>> {
    let (mut public, mut api, mut master) = (Router::new(), Router::new(), Router::new());
    let mut doors = Router::new();
    for r in routes::table(app) {
        match r.entry.access {
            Access::Public => public = r.add_to(public),
            Access::Key => api = r.add_to(api),
            Access::Master => master = r.add_to(master),
            // Auth inside the door's error layer, so its 401 is in the door's shape.
            Access::Door(wire) => {
                doors = doors.merge(
                    r.add_to(Router::new())
                        .route_layer(auth::AuthLayer::new(app.keys.clone()))
                        .layer(axum::middleware::map_response(move |resp| {
                            crate::front::errors_in(wire, resp)
                        })),
                )
            }
        }
    }
    let master = master.route_layer(axum::middleware::from_fn(crate::admin::master_only));
    let api = api
        .merge(master)
        .route_layer(auth::AuthLayer::new(app.keys.clone()));
    public.merge(api).merge(doors)
}

pub fn router(app: Arc<App>) -> Router {
    let public_and_api = served(&app);
    let limit = app.config.body_limit;
    public_and_api
        .fallback(h::not_found)
        .method_not_allowed_fallback(h::method_not_allowed)
        .with_state(app.clone())
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(telemetry::RequestLogLayer::new(
                    app.metrics.clone(),
                    app.sinks.clone(),
                ))
                .layer(CorsLayer::new(&app.config.cors))
                .layer(DefaultBodyLimit::max(limit))
                .layer(Extension(BodyLimit(limit))),
        )
}
