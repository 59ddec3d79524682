//! Routing stage: from the model name a client sent to the deployment that serves it.
//!
//! One `[[models]]` entry is one deployment; pools of several deployments under one
//! name, fallbacks and cooldowns come with the routing issue. Touches only the
//! registry built at start-up.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue, Uri};
use liter_llm::providers::AuthStyle;
use liter_llm::Provider;
use secrecy::ExposeSecret;

use crate::auth::Principal;
use crate::config::{Config, Deployment};
use crate::error::GatewayError;
use crate::upstream::Target;

/// A deployment and, for network providers, where to send its requests.
#[derive(Debug)]
pub struct Route {
    pub deployment: Deployment,
    /// `None` for the in-process mock provider.
    pub target: Option<Target>,
}

/// All routes by client-facing model name, in config order for listing.
#[derive(Debug, Default)]
pub struct Registry {
    by_name: HashMap<String, Arc<Route>>,
    order: Vec<Arc<Route>>,
}

fn target_for(d: &Deployment) -> Result<Option<Target>, String> {
    let Provider::OpenAiCompat(p) = d.provider else {
        return Ok(None);
    };
    let Some(base) = &d.base_url else {
        return Err(format!("model {:?} has no base_url", d.name));
    };
    let uri = |path: &str| -> Result<Uri, String> {
        format!("{base}{path}")
            .parse()
            .map_err(|_| format!("model {:?}: base_url does not form a valid URL", d.name))
    };
    let auth = match &d.api_key {
        None => {
            if p.key_required {
                tracing::warn!(
                    model = %d.name,
                    provider = p.name,
                    env = ?p.key_env,
                    "no API key for this model: set api_key or one of the variables; requests will go upstream unauthenticated"
                );
            }
            None
        }
        Some(key) => {
            let (name, value) = match p.auth {
                AuthStyle::Bearer => (
                    axum::http::header::AUTHORIZATION,
                    format!("Bearer {}", key.expose_secret()),
                ),
                AuthStyle::Header(h) => {
                    (HeaderName::from_static(h), key.expose_secret().to_string())
                }
            };
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                format!(
                    "model {:?}: the API key contains characters not allowed in an HTTP header",
                    d.name
                )
            })?;
            value.set_sensitive(true);
            Some((name, value))
        }
    };
    Ok(Some(Target {
        name: d.name.clone(),
        chat_uri: uri("/chat/completions")?,
        embeddings_uri: uri("/embeddings")?,
        auth,
        timeout: d.timeout,
    }))
}

impl Registry {
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let mut reg = Registry::default();
        for d in &config.models {
            let route = Arc::new(Route {
                target: target_for(d)?,
                deployment: d.clone(),
            });
            reg.by_name.insert(d.name.clone(), route.clone());
            reg.order.push(route);
        }
        Ok(reg)
    }

    /// The route for `model`, if it exists and `principal` may use it.
    pub fn resolve(&self, principal: &Principal, model: &str) -> Result<&Arc<Route>, GatewayError> {
        let route = self
            .by_name
            .get(model)
            .ok_or_else(|| GatewayError::ModelNotFound {
                model: model.to_string(),
            })?;
        if !principal.may_use(model) {
            return Err(GatewayError::ModelNotAllowed {
                model: model.to_string(),
            });
        }
        Ok(route)
    }

    /// Routes the principal may use, in config order.
    pub fn visible<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> impl Iterator<Item = &'a Arc<Route>> + 'a {
        self.order
            .iter()
            .filter(move |r| principal.may_use(&r.deployment.name))
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
