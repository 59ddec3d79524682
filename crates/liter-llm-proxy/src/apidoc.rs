//! The route table: each route the gateway serves is one [`Route`], made from a handler
//! and its `#[utoipa::path]` description, so the router (`server::routes`) and the
//! OpenAPI document (`GET /openapi.json`, [`document`]) are built from the same list
//! and cannot drift: the path and the method a route is served at are the ones its
//! description names.
//!
//! A leaf: it knows nothing of the gateway (the router's state is a type parameter).
//! Paths are written as axum writes them (`/v1/models/{*id}`); the document shows the
//! OpenAPI form (`/v1/models/{id}`).

use axum::handler::Handler;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi, RefOr};

/// Named schemas an operation refers to.
type Schemas = Vec<(String, RefOr<Schema>)>;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key.
    Public,
    /// Any key (master or virtual), checked by the auth layer.
    Key,
    /// The master key (the admin API's route layer), after the auth layer.
    Master,
    /// Any key, on a front door of another client protocol: every error, the auth
    /// layer's included, is written in that protocol's shape.
    Door(crate::error::Wire),
}

/// One route: what the document lists of it, and its handler.
pub struct Route<S> {
    pub entry: Entry,
    handler: MethodRouter<S>,
}

/// How the document describes a route. The description is made when the document is
/// (on its first request), not with the route: building every operation and schema at
/// start-up would run, and keep resident, code that no other request needs.
#[derive(Clone, Copy)]
struct Describe {
    operation: fn() -> Operation,
    /// Adds the schemas the operation refers to (and those they refer to).
    schemas: fn(&mut Schemas),
    /// The route is the copy, without `/v1`, of the route at `/v1` + its path.
    unprefixed: bool,
}

/// A route as the document lists it: where, how, who, and what the document says of it.
#[derive(Clone)]
pub struct Entry {
    /// As axum routes it (`{*id}` for a wildcard).
    pub path: String,
    pub method: HttpMethod,
    pub access: Access,
    describe: Describe,
}

/// The route `P` (a `#[utoipa::path]` description) describes, served by `handler`.
/// A description names exactly one method.
pub fn route<P, H, T, S>(access: Access, handler: H) -> Route<S>
where
    // The derive's own trait for the schemas a path refers to (as `utoipa-axum` uses).
    P: utoipa::Path + utoipa::__dev::SchemaReferences,
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    let method = P::methods().into_iter().next().unwrap_or(HttpMethod::Get);
    Route {
        handler: on(filter(&method), handler),
        entry: Entry {
            path: P::path(),
            method,
            access,
            describe: Describe {
                operation: P::operation,
                schemas: P::schemas,
                unprefixed: false,
            },
        },
    }
}

fn filter(method: &HttpMethod) -> MethodFilter {
    match method {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Delete => MethodFilter::DELETE,
        HttpMethod::Options => MethodFilter::OPTIONS,
        HttpMethod::Head => MethodFilter::HEAD,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Trace => MethodFilter::TRACE,
    }
}

/// The `/v1` prefix every OpenAI route has, and is also served without.
pub const V1: &str = "/v1";

impl<S: Clone + Send + Sync + 'static> Route<S> {
    /// The same route with a layer (or another change) on its handler.
    pub fn map(mut self, f: impl FnOnce(MethodRouter<S>) -> MethodRouter<S>) -> Self {
        self.handler = f(self.handler);
        self
    }

    /// The same route without its `/v1` prefix (`None` for a route without one): LiteLLM
    /// serves both, and its users call both. Its operation id ends in `_unprefixed`.
    pub fn unprefixed(&self) -> Option<Route<S>> {
        let rest = self.entry.path.strip_prefix(V1)?;
        Some(Route {
            entry: Entry {
                path: rest.to_owned(),
                method: self.entry.method.clone(),
                access: self.entry.access,
                describe: Describe {
                    unprefixed: true,
                    ..self.entry.describe
                },
            },
            handler: self.handler.clone(),
        })
    }

    /// Add the route to `router`.
    pub fn add_to(self, router: Router<S>) -> Router<S> {
        router.route(&self.entry.path, self.handler)
    }
}

/// The OpenAPI form of an axum path: `{*id}` becomes `{id}`.
pub fn openapi_path(axum_path: &str) -> String {
    axum_path.replace("{*", "{")
}

/// The name of the bearer security scheme in the document.
pub const BEARER: &str = "bearer";

/// `base` (info, components, the default security requirement) with one operation per
/// route and the schemas they refer to; a public route's operation has an empty
/// security requirement list.
pub fn document(mut base: OpenApi, routes: &[Entry]) -> OpenApi {
    let components = base.components.get_or_insert_with(Default::default);
    let mut schemas = Schemas::new();
    for r in routes.iter().filter(|r| !r.describe.unprefixed) {
        (r.describe.schemas)(&mut schemas);
    }
    for (name, schema) in schemas {
        components.schemas.entry(name).or_insert(schema);
    }
    for r in routes {
        let mut operation = (r.describe.operation)();
        if r.describe.unprefixed {
            operation.operation_id = operation.operation_id.map(|id| format!("{id}_unprefixed"));
            operation.description = Some(format!(
                "The same as `{}` (served without `/v1` too, as LiteLLM serves it).",
                openapi_path(&format!("{V1}{}", r.path))
            ));
        }
        match r.access {
            Access::Public => operation.security = Some(Vec::new()),
            Access::Key | Access::Door(_) => {}
            Access::Master => {
                let note = "Master key only.";
                operation.description = Some(match operation.description.take() {
                    Some(d) => format!("{d}\n\n{note}"),
                    None => note.to_owned(),
                });
            }
        }
        base.paths
            .add_path_operation(openapi_path(&r.path), vec![r.method.clone()], operation);
    }
    base
}
