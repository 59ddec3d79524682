//! The route table: every route this gateway serves, with who may call it. The router
//! (`stack.rs`) and `/openapi.json` are both built from [`table`], so a route is in the
//! document exactly when it is served.

use std::sync::Arc;

use crate::apidoc::Access::{Key, Public};
use crate::apidoc::{route, Access, Route};
use crate::app::App;
use crate::config::MetricsAccess;

use super::handlers::{self as h, *};
use super::openapi::{self, __path_openapi};

/// Every route of `app`; the `/openapi.json` route is given the table's entries once it
/// is complete, and describes them when first asked.
pub fn table(app: &App) -> Vec<Route<Arc<App>>> {
    let doc = openapi::Served::default();
    let served = doc.clone();
    let mut routes = vec![
        route::<__path_health, _, _, _>(Public, h::health),
        route::<__path_liveness, _, _, _>(Public, h::liveness),
        route::<__path_liveliness, _, _, _>(Public, h::liveliness),
        route::<__path_readiness, _, _, _>(Public, h::readiness),
        route::<__path_openapi, _, _, _>(Public, move || openapi::openapi(served.clone())),
    ];
    let openai = [
        route::<__path_chat_completions, _, _, _>(Key, h::chat_completions),
        route::<__path_embeddings, _, _, _>(Key, h::embeddings),
        route::<__path_list_models, _, _, _>(Key, h::list_models),
        route::<__path_get_model, _, _, _>(Key, h::get_model),
    ]
    .into_iter()
    .chain(super::files::routes(app));
    for r in openai {
        routes.extend(r.unprefixed());
        routes.push(r);
    }
    // `/metrics`: public, the master key's, or not served.
    let metrics = match app.config.metrics {
        MetricsAccess::Public => Some(Public),
        MetricsAccess::Master => Some(Access::Master),
        MetricsAccess::Off => None,
    };
    routes.extend(metrics.map(|a| route::<__path_metrics, _, _, _>(a, h::metrics)));
    routes.extend(crate::admin::routes());
    routes.extend(super::front::routes());
    routes.extend(super::responses::routes());
    doc.set(routes.iter().map(|r| r.entry.clone()).collect());
    routes
}
