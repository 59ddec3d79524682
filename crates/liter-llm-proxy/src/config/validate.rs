//! Validation: file structs in, runtime [`Config`] out, or every problem at once.
//!
//! This is also where "not supported yet" is decided: a section or field whose
//! behaviour is not built is rejected here, never accepted and ignored.

use liter_llm::providers::adapter::ProviderSettings;
use std::collections::HashSet;
use std::time::Duration;

use liter_llm::providers::ProviderModelError;
use liter_llm::{Provider, ProviderModel};
use secrecy::SecretString;

use super::file::FileConfig;
use super::load::Seg;

/// CLI flags that override the file (only when given), and the master key from
/// `LITER_LLM_MASTER_KEY`, used when neither the flag nor the file sets one.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub master_key: Option<String>,
    pub master_key_env: Option<String>,
}

/// Where browsers may call from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    List(Vec<String>),
}

/// One `[[models]]` entry, resolved: provider selected, credentials and base URL found.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The name clients send.
    pub name: String,
    /// As written, e.g. `groq/llama3-70b-8192`.
    pub provider_model: String,
    pub provider: Provider,
    /// What the upstream receives in `model`.
    pub model_id: String,
    /// Base URL without trailing slash (None only for the in-process mock).
    pub base_url: Option<String>,
    pub api_key: Option<SecretString>,
    pub timeout: Duration,
    pub mock_latency: Option<Duration>,
    /// Share of traffic under `simple-shuffle`.
    pub weight: f64,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    /// Priority tier, lower first.
    pub order: u32,
    /// For streams: the time allowed until the first chunk.
    pub stream_timeout: Option<Duration>,
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    /// Provider-specific settings (`api_version`, `aws_*`, `vertex_*`, `drop_params`).
    pub settings: ProviderSettings,
}

/// A `[[keys]]` entry.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub key: SecretString,
    pub description: Option<String>,
    /// Allowed model names; empty means all.
    pub models: Vec<String>,
    /// rpm, tpm, budget, expiry.
    pub limits: super::governance::KeyLimits,
}

/// The validated configuration the gateway runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[[aliases]]`: credentials for `provider/model` names sent directly.
    pub credential_aliases: Vec<super::routing::CredentialAlias>,
    /// Pools, fallbacks, strategies, cooldown and health probes.
    pub routing: super::routing::Routing,
    pub host: String,
    pub port: u16,
    pub request_timeout: Duration,
    pub body_limit: usize,
    pub cors: CorsOrigins,
    pub master_key: Option<SecretString>,
    pub default_timeout: Duration,
    /// `general.drop_params`, for models made on first use from `[[aliases]]`.
    pub drop_params: bool,
    pub max_retries: u32,
    pub models: Vec<Deployment>,
    pub keys: Vec<KeySpec>,
    /// Limits, budgets, the store and prices.
    pub governance: super::governance::Governance,
    /// `general.enable_cost_tracking`: price answers (cost header, request log).
    pub enable_cost_tracking: bool,
    /// The config file, when the config came from one (relative paths resolve beside it).
    pub source: Option<std::path::PathBuf>,
    /// The file as parsed, with overrides applied (for `check-config`; holds secrets).
    pub file: FileConfig,
}

pub(crate) type Problems = Vec<(Vec<Seg>, String)>;

pub(crate) fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

fn not_supported(problems: &mut Problems, path: Vec<Seg>, what: &str, issue: &str) {
    problems.push((
        path,
        format!("not supported yet: {what} (planned: {issue}); remove it to start the gateway"),
    ));
}

/// `Some` only for a non-empty string: an unset `${VAR}` means "not given".
pub(crate) fn given(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Messages about values that may have come from `${VAR}` never quote the value.
fn check_base_url(url: &str, from: &str) -> Result<String, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("{from} is not a valid URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.authority().is_some() => {
            Ok(url.trim_end_matches('/').to_string())
        }
        _ => Err(format!(
            "{from} must be an absolute http:// or https:// URL"
        )),
    }
}

/// A resolved base URL and API key.
pub type NetworkCredentials = (Option<String>, Option<SecretString>);

/// Base URL and API key of a network deployment: the given values, else the
/// provider's variables, else its defaults. Errors name the field and never the value.
pub fn resolve_network(
    p: liter_llm::providers::Network,
    base_url: Option<&str>,
    api_key: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<NetworkCredentials, (&'static str, String)> {
    let env_url = p
        .base_url_env
        .iter()
        .find_map(|v| env(v).filter(|x| !x.is_empty()).map(|u| (u, *v)));
    let (url, from) = match (base_url, env_url) {
        (Some(u), _) => (u.to_string(), "base_url".to_string()),
        (None, Some((u, var))) => (u, format!("base_url (from ${var})")),
        (None, None) => match p.default_base_url {
            Some(u) => (u.to_string(), "base_url".to_string()),
            None => return Err(("base_url", format!("provider {:?} needs base_url", p.name))),
        },
    };
    let url = check_base_url(&url, &from).map_err(|msg| ("base_url", msg))?;
    let api_key = api_key.map(str::to_string).or_else(|| {
        p.key_env
            .iter()
            .find_map(|v| env(v).filter(|x| !x.is_empty()))
    });
    if api_key
        .as_deref()
        .is_some_and(|k| http::HeaderValue::from_str(&format!("Bearer {k}")).is_err())
    {
        return Err((
            "api_key",
            "the API key contains characters not allowed in an HTTP header (a newline or control character?)".into(),
        ));
    }
    Ok((Some(url), api_key.map(SecretString::from)))
}

pub(crate) fn validate(
    mut file: FileConfig,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Problems> {
    let mut problems: Problems = Vec::new();

    // CLI flags win over the file, only when given.
    if let Some(host) = &overrides.host {
        file.server.host = host.clone();
    }
    if let Some(port) = overrides.port {
        file.server.port = port;
    }
    if let Some(mk) = overrides.master_key.as_ref().filter(|k| !k.is_empty()) {
        file.general.master_key = Some(mk.clone());
    } else if given(&file.general.master_key).is_none() {
        if let Some(mk) = overrides.master_key_env.as_ref().filter(|k| !k.is_empty()) {
            file.general.master_key = Some(mk.clone());
        }
    }

    let s = &file.server;
    if s.host.trim().is_empty() {
        problems.push((vec![key("server"), key("host")], "host is empty".into()));
    }
    for (field, value) in [
        ("request_timeout_secs", s.request_timeout_secs),
        ("body_limit_bytes", s.body_limit_bytes as u64),
    ] {
        if value == 0 {
            problems.push((
                vec![key("server"), key(field)],
                format!("{field} must be greater than 0"),
            ));
        }
    }
    let cors = if s.cors_origins.iter().any(|o| o == "*") {
        if s.cors_origins.len() > 1 {
            problems.push((
                vec![key("server"), key("cors_origins")],
                "\"*\" allows every origin and cannot be combined with explicit origins".into(),
            ));
        }
        CorsOrigins::Any
    } else {
        for (i, origin) in s.cors_origins.iter().enumerate() {
            let ok = origin.parse::<http::Uri>().ok().is_some_and(|u| {
                matches!(u.scheme_str(), Some("http") | Some("https"))
                    && u.authority().is_some()
                    && u.path() == "/"
                    && !origin.ends_with('/')
            });
            if !ok || http::HeaderValue::from_str(origin).is_err() {
                problems.push((
                    vec![key("server"), key("cors_origins"), Seg::Index(i)],
                    "not an origin like \"https://app.example.com\" (scheme and host, no path)"
                        .into(),
                ));
            }
        }
        CorsOrigins::List(s.cors_origins.clone())
    };

    let g = &file.general;
    if g.default_timeout_secs == 0 {
        problems.push((
            vec![key("general"), key("default_timeout_secs")],
            "default_timeout_secs must be greater than 0".into(),
        ));
    }
    if g.enable_tracing {
        not_supported(
            &mut problems,
            vec![key("general"), key("enable_tracing")],
            "enable_tracing = true",
            "OpenTelemetry export",
        );
    }
    let master_key = given(&g.master_key).map(|k| SecretString::from(k.to_string()));

    let mut names = HashSet::new();
    let mut models = Vec::new();
    for (i, m) in file.models.iter().enumerate() {
        let at = |field: &str| vec![key("models"), Seg::Index(i), key(field)];
        if m.name.trim().is_empty() {
            problems.push((at("name"), "name is empty".into()));
        } else {
            names.insert(m.name.as_str());
        }
        super::routing::check_deployment(m, &at, &mut problems);
        if m.timeout_secs == Some(0) {
            problems.push((
                at("timeout_secs"),
                "timeout_secs must be greater than 0".into(),
            ));
        }
        let pm = match ProviderModel::parse(&m.provider_model) {
            Ok(pm) => pm,
            Err(e) => {
                let msg = match e {
                    ProviderModelError::Malformed => format!(
                        "provider_model {:?} must look like \"provider/model\", e.g. \"openai/gpt-4o\"",
                        m.provider_model
                    ),
                    ProviderModelError::NotSupportedYet(p) => format!(
                        "not supported yet: provider {p:?} (planned: native providers); supported now: {}",
                        Provider::known_prefixes().join(", ")
                    ),
                    ProviderModelError::Unknown(p) => format!(
                        "unknown provider {p:?}; known providers: {}",
                        Provider::known_prefixes().join(", ")
                    ),
                };
                problems.push((at("provider_model"), msg));
                continue;
            }
        };
        let mut settings =
            super::settings::provider_settings(m, pm.provider, g.drop_params, &at, &mut problems);
        if pm.provider == Provider::Azure && settings.api_version.is_none() {
            settings.api_version = liter_llm::providers::azure::VERSION_ENV
                .iter()
                .find_map(|v| env(v).filter(|x| !x.is_empty()));
        }
        if pm.provider == Provider::VertexAi {
            liter_llm::providers::gemini::vertex_settings_from_env(&mut settings, env);
        }
        // A default base URL that follows the settings (Vertex AI: the location's host).
        let derived_base = pm.provider.derived_base_url(&settings);
        let derived_url =
            super::settings::resolve_aws(m, pm.provider, &mut settings, env, &at, &mut problems);
        let (base_url, api_key) = match pm.provider.network() {
            None => {
                if given(&m.api_key).is_some() || given(&m.base_url).is_some() {
                    problems.push((
                        at("provider_model"),
                        "the mock/ provider answers in-process: api_key and base_url do not apply"
                            .into(),
                    ));
                }
                (None, None)
            }
            Some(p) => {
                if m.mock_latency_ms.is_some() {
                    problems.push((
                        at("mock_latency_ms"),
                        "mock_latency_ms applies only to mock/ models".into(),
                    ));
                }
                let base = given(&m.base_url)
                    .or(derived_base.as_deref())
                    .or(derived_url.as_deref());
                match resolve_network(p, base, given(&m.api_key), env) {
                    Ok(found) => found,
                    // A bedrock/ model without a region: already reported by resolve_aws.
                    Err(_)
                        if pm.provider == Provider::Bedrock
                            && settings.aws_region_name.is_none() =>
                    {
                        (None, None)
                    }
                    Err((field, msg)) => {
                        problems.push((at(field), msg));
                        (None, None)
                    }
                }
            }
        };
        models.push(Deployment {
            name: m.name.clone(),
            provider_model: m.provider_model.clone(),
            provider: pm.provider,
            model_id: pm.model_id,
            base_url,
            api_key,
            timeout: Duration::from_secs(m.timeout_secs.unwrap_or(g.default_timeout_secs)),
            mock_latency: m.mock_latency_ms.map(Duration::from_millis),
            weight: m.weight.unwrap_or(1.0),
            rpm: m.rpm,
            tpm: m.tpm,
            order: m.order.unwrap_or(1),
            stream_timeout: m.stream_timeout_secs.map(Duration::from_secs),
            input_cost_per_token: m.input_cost_per_token,
            output_cost_per_token: m.output_cost_per_token,
            settings,
        });
    }

    let credential_aliases = super::routing::check_aliases(&file, env, &mut problems);

    let mut seen_keys = std::collections::HashMap::new();
    let mut keys = Vec::new();
    for (i, k) in file.keys.iter().enumerate() {
        let at = |field: &str| vec![key("keys"), Seg::Index(i), key(field)];
        if k.key.is_empty() {
            problems.push((at("key"), "key is empty (is its ${VAR} set?)".into()));
        } else if let Some(first) = seen_keys.insert(k.key.as_str(), i) {
            seen_keys.insert(k.key.as_str(), first);
            problems.push((at("key"), format!("the same key as keys[{first}]")));
        } else if given(&file.general.master_key) == Some(k.key.as_str()) {
            problems.push((
                at("key"),
                "a virtual key must differ from the master key".into(),
            ));
        }
        for (j, model) in k.models.iter().enumerate() {
            // A `provider/model` name may be reached through [[aliases]] or the
            // provider's key variable, so it is allowed here too.
            let direct =
                ProviderModel::parse(model).is_ok_and(|pm| pm.provider.network().is_some());
            if !names.contains(model.as_str())
                && !file.router.model_group_alias.contains_key(model)
                && !direct
            {
                problems.push((
                    vec![key("keys"), Seg::Index(i), key("models"), Seg::Index(j)],
                    format!("model {model:?} is not defined in [[models]]"),
                ));
            }
        }
        let limits = super::governance::key_limits(k, &at, &mut problems);
        keys.push(KeySpec {
            key: SecretString::from(k.key.clone()),
            description: k.description.clone(),
            models: k.models.clone(),
            limits,
        });
    }

    let governance = super::governance::governance(&file, &mut problems);
    for (present, section, issue) in [
        (file.cache.is_some(), "cache", "response caching"),
        (file.files.is_some(), "files", "the files API"),
    ] {
        if present {
            not_supported(
                &mut problems,
                vec![key(section)],
                &format!("[{section}]"),
                issue,
            );
        }
    }

    let routing = super::routing::check_routing(&file, &names, &mut problems);

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Config {
        routing,
        credential_aliases,
        host: file.server.host.clone(),
        port: file.server.port,
        request_timeout: Duration::from_secs(file.server.request_timeout_secs),
        body_limit: file.server.body_limit_bytes,
        cors,
        master_key,
        default_timeout: Duration::from_secs(file.general.default_timeout_secs),
        drop_params: file.general.drop_params,
        max_retries: file.general.max_retries,
        models,
        keys,
        governance,
        enable_cost_tracking: file.general.enable_cost_tracking,
        source: None,
        file,
    })
}
