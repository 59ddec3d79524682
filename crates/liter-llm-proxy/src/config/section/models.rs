//! `[[models]]`: one deployment per entry, with its provider selected and its
//! credentials, base URL and provider settings found.

use std::time::Duration;

use liter_llm::providers::adapter::ProviderSettings;
use liter_llm::providers::ProviderModelError;
use liter_llm::{Provider, ProviderModel};
use secrecy::SecretString;

use super::network::{resolve_network, NetworkCredentials};
use super::settings;
use crate::config::file::{GeneralSection, ModelEntry};
use crate::config::problems::{given, key, positive, Problems, Seg};

/// One `[[models]]` entry, resolved: provider selected, credentials and base URL found.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Stable id (LiteLLM's `model_info.id`): for a file model, derived from its name,
    /// provider model and base URL (and its rank among entries alike), so that a
    /// reload matches it to the same entry; for a stored model, the store's id.
    pub id: String,
    /// Added through the model admin API (kept in the store), not from the file.
    pub stored: bool,
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
    /// Its tags, for tag filtering (`[router] enable_tag_filtering`).
    pub tags: Vec<String>,
    /// What it serves: the call its health probe makes.
    pub mode: Mode,
    /// The `provider/model` whose prices it takes (`base_model`).
    pub base_model: Option<String>,
    /// LiteLLM's `max_tokens`, reported only.
    pub max_tokens: Option<u64>,
    /// Its context window: a longer prompt does not go to it.
    pub max_input_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
    /// Its model's retry count (`max_retries`), reported by `/model/info`.
    pub max_retries: Option<u32>,
    /// Made from the catch-all (`name = "*"`, `provider_model = "*"`) for its provider
    /// (`provider_model` is `<provider>/*`): it serves only the names whose provider,
    /// written or inferred as LiteLLM infers it, is its own.
    pub any_provider: bool,
}

/// What a deployment serves (LiteLLM's `model_info.mode`): the call its health probe
/// makes. Every deployment takes chat and embeddings requests whatever its mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Chat,
    /// Legacy completions: probed with a chat call, as they are served through chat
    /// where the provider has no completions API.
    Completion,
    Embedding,
}

impl Mode {
    /// The modes served, by LiteLLM's names.
    pub const NAMES: &'static [&'static str] = &["chat", "completion", "embedding"];

    pub fn parse(name: &str) -> Option<Mode> {
        match name {
            "chat" => Some(Mode::Chat),
            "completion" => Some(Mode::Completion),
            "embedding" => Some(Mode::Embedding),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Chat => "chat",
            Mode::Completion => "completion",
            Mode::Embedding => "embedding",
        }
    }
}

/// LiteLLM's modes that liter-llm cannot serve, refused by name.
const UNSERVED_MODES: &[&str] = &[
    "image_generation",
    "audio_transcription",
    "audio_speech",
    "rerank",
    "moderation",
    "batch",
    "realtime",
    "responses",
    "video_generation",
    "ocr",
    "search",
];

type At<'a> = &'a dyn Fn(&str) -> Vec<Seg>;

pub(crate) fn check(
    models: &[ModelEntry],
    general: &GeneralSection,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Vec<Deployment> {
    let mut out = Vec::new();
    let mut given: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, m) in models.iter().enumerate() {
        let at = |field: &str| vec![key("models"), Seg::Index(i), key(field)];
        if let Some(id) = &m.id {
            if !valid_id(id) {
                problems.push((
                    at("id"),
                    format!(
                        "{}: an id is 1 to {MAX_ID} letters, digits, '-', '_', '.' or ':'",
                        crate::logtext::Clean(id)
                    ),
                ));
            } else if let Some(first) = given.insert(id, i) {
                problems.push((
                    at("id"),
                    format!("id {id:?} is also the id of models[{first}]"),
                ));
            }
        }
        if m.provider_model == CATCH_ALL {
            out.extend(catch_all(models, i, general, env, &at, problems));
        } else if let Some(d) = deployment(m, general, env, &at, problems) {
            out.push(d);
        }
    }
    assign_ids(&mut out);
    out
}

/// `provider_model` of the catch-all: any provider.
pub const CATCH_ALL: &str = "*";

/// The providers the catch-all may serve: those at a fixed public base URL that need a
/// key (no local server, no Azure resource, no cloud project or region to choose).
pub fn catch_all_providers() -> impl Iterator<Item = Provider> {
    Provider::known_prefixes()
        .into_iter()
        .filter_map(Provider::from_prefix)
        .filter(|p| {
            p.network()
                .is_some_and(|n| n.key_required && n.default_base_url.is_some())
        })
}

/// The catch-all `models[i]` (`name = "*"`, `provider_model = "*"`, LiteLLM's `*` →
/// `*`): one deployment `<provider>/*` per provider of [`catch_all_providers`] whose
/// key variable is set, each with the provider's own key and base URL (from its
/// variables, or its default), never one given here: a key on the entry would go to
/// every provider.
fn catch_all(
    models: &[ModelEntry],
    i: usize,
    general: &GeneralSection,
    env: &dyn Fn(&str) -> Option<String>,
    at: At<'_>,
    problems: &mut Problems,
) -> Vec<Deployment> {
    let m = &models[i];
    if m.name != CATCH_ALL {
        problems.push((
            at("provider_model"),
            "provider_model \"*\" (any provider) is the catch-all: its name must be \"*\"".into(),
        ));
        return Vec::new();
    }
    if models.iter().filter(|o| o.name == CATCH_ALL).count() > 1 {
        problems.push((
            at("name"),
            "the catch-all \"*\" with provider_model \"*\" must be the only entry named \"*\""
                .into(),
        ));
    }
    let given = [
        ("api_key", m.api_key.is_some()),
        ("base_url", m.base_url.is_some()),
        ("api_version", m.api_version.is_some()),
        ("aws_access_key_id", m.aws_access_key_id.is_some()),
        ("aws_secret_access_key", m.aws_secret_access_key.is_some()),
        ("aws_session_token", m.aws_session_token.is_some()),
        ("aws_region_name", m.aws_region_name.is_some()),
        ("vertex_project", m.vertex_project.is_some()),
        ("vertex_location", m.vertex_location.is_some()),
        ("vertex_credentials", m.vertex_credentials.is_some()),
        ("mock_latency_ms", m.mock_latency_ms.is_some()),
        ("reasoning_budgets", m.reasoning_budgets.is_some()),
        ("fan_out_n", m.fan_out_n.is_some()),
    ];
    for (field, _) in given.iter().filter(|(_, set)| *set) {
        problems.push((
            at(field),
            format!("{field} on the catch-all (provider_model \"*\"): it takes each provider's key and base URL from that provider's own variables (a value here would go to every provider)"),
        ));
    }
    let mut out = Vec::new();
    for p in catch_all_providers() {
        let Some(net) = p.network() else { continue };
        if super::network::key_from_env(net, env).is_none() {
            continue;
        }
        let entry = ModelEntry {
            provider_model: format!("{}/*", p.name()),
            ..m.clone()
        };
        // The entry's own problems (a weight of 0, ...) are the same for every
        // provider: each is reported once.
        let mut found = Problems::new();
        if let Some(mut d) = deployment(&entry, general, env, at, &mut found) {
            d.any_provider = true;
            out.push(d);
        }
        for p in found {
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
    }
    if out.is_empty() {
        problems.push((
            at("provider_model"),
            "the catch-all (provider_model \"*\") serves no provider: none of the providers it may serve has its key variable set (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...)".into(),
        ));
    }
    out
}

/// The longest `[[models]] id`.
const MAX_ID: usize = 128;

fn valid_id(id: &str) -> bool {
    (1..=MAX_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Gives each deployment without an id of its own (`id`) its derived id: a digest of
/// its name, provider model and base URL, and its rank among the entries with the same
/// three.
fn assign_ids(deployments: &mut [Deployment]) {
    use sha2::{Digest, Sha256};
    let mut seen: std::collections::HashMap<[u8; 32], usize> = std::collections::HashMap::new();
    for d in deployments.iter_mut().filter(|d| d.id.is_empty()) {
        let mut h = Sha256::new();
        for part in [
            &d.name,
            &d.provider_model,
            d.base_url.as_deref().unwrap_or(""),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let digest: [u8; 32] = h.finalize().into();
        let rank = seen.entry(digest).or_insert(0);
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        d.id = if *rank == 0 {
            hex
        } else {
            format!("{hex}-{rank}")
        };
        *rank += 1;
    }
}

fn deployment(
    m: &ModelEntry,
    g: &GeneralSection,
    env: &dyn Fn(&str) -> Option<String>,
    at: At<'_>,
    problems: &mut Problems,
) -> Option<Deployment> {
    if m.name.trim().is_empty() {
        problems.push((at("name"), "name is empty".into()));
    }
    check_numbers(m, at, problems);
    if !wildcard_fits(m, at, problems) {
        return None;
    }
    let pm = match ProviderModel::parse(&m.provider_model) {
        Ok(pm) => pm,
        Err(e) => {
            problems.push((
                at("provider_model"),
                provider_model_error(&m.provider_model, e),
            ));
            return None;
        }
    };
    let mut settings = settings::provider_settings(m, pm.provider, g.drop_params, at, problems);
    settings::from_env(pm.provider, &mut settings, env);
    // A default base URL that follows the settings (Vertex AI: the location's host).
    let derived_base = pm.provider.derived_base_url(&settings);
    let derived_url = settings::resolve_aws(m, pm.provider, &mut settings, env, at, problems);
    let derived = derived_base.or(derived_url);
    let (base_url, api_key) = credentials(m, pm.provider, &settings, derived, env, at, problems);
    Some(Deployment {
        id: m.id.clone().unwrap_or_default(),
        stored: false,
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
        tags: m.tags.clone(),
        mode: mode(m, at, problems),
        base_model: base_model(m, at, problems),
        max_tokens: m.max_tokens,
        max_input_tokens: m.max_input_tokens,
        max_output_tokens: m.max_output_tokens,
        max_retries: m.max_retries,
        any_provider: false,
    })
}

fn mode(m: &ModelEntry, at: At<'_>, problems: &mut Problems) -> Mode {
    let Some(name) = m.mode.as_deref() else {
        return Mode::Chat;
    };
    if let Some(mode) = Mode::parse(name) {
        return mode;
    }
    let message = if UNSERVED_MODES.contains(&name) {
        format!(
            "not supported yet: mode {name:?} (liter-llm serves {})",
            Mode::NAMES.join(", ")
        )
    } else {
        format!(
            "unknown mode {:?}; one of {}",
            crate::logtext::Clean(name),
            Mode::NAMES.join(", ")
        )
    };
    problems.push((at("mode"), message));
    Mode::Chat
}

/// `base_model`, a `provider/model`; not with both prices given (they would win).
fn base_model(m: &ModelEntry, at: At<'_>, problems: &mut Problems) -> Option<String> {
    let b = m.base_model.as_ref()?;
    if let Err(e) = ProviderModel::parse(b) {
        problems.push((at("base_model"), provider_model_error(b, e)));
        return None;
    }
    if m.input_cost_per_token.is_some() && m.output_cost_per_token.is_some() {
        problems.push((
            at("base_model"),
            "base_model prices the deployment, but input_cost_per_token and output_cost_per_token are both given: leave one out".into(),
        ));
    }
    Some(b.clone())
}

/// A wildcard model (a `*` in `name`): its `provider_model` names its provider and
/// has as many `*` as the name, or none; a `*` in `provider_model` needs one in the
/// name. Prices are refused (they are looked up by each request's model). `false`
/// when the entry cannot be read further.
fn wildcard_fits(m: &ModelEntry, at: At<'_>, problems: &mut Problems) -> bool {
    let stars = m.name.matches('*').count();
    let model_stars = m.provider_model.matches('*').count();
    if model_stars > 0 {
        let provider = m.provider_model.split_once('/').map_or("*", |(p, _)| p);
        if provider.contains('*') {
            problems.push((
                at("provider_model"),
                format!("provider_model {:?}: a wildcard model must name its provider, e.g. \"openai/*\"", m.provider_model),
            ));
            return false;
        }
        if stars == 0 {
            problems.push((
                at("provider_model"),
                "a `*` in provider_model needs a wildcard name (a `*` in name)".into(),
            ));
        } else if model_stars != stars {
            problems.push((
                at("provider_model"),
                format!(
                    "provider_model has {model_stars} `*` and name {stars}: give as many, or none"
                ),
            ));
        }
    }
    if stars > 0 {
        for (field, price) in [
            ("input_cost_per_token", m.input_cost_per_token.is_some()),
            ("output_cost_per_token", m.output_cost_per_token.is_some()),
            ("base_model", m.base_model.is_some()),
        ] {
            if price {
                problems.push((
                    at(field),
                    format!("not supported yet: {field} on a wildcard model (prices are looked up by each request's model)"),
                ));
            }
        }
    }
    true
}

fn provider_model_error(written: &str, e: ProviderModelError) -> String {
    match e {
        ProviderModelError::Malformed => format!(
            "provider_model {written:?} must look like \"provider/model\", e.g. \"openai/gpt-4o\""
        ),
        ProviderModelError::NotSupportedYet(p) => format!(
            "not supported yet: provider {p:?} (planned: native providers); supported now: {}",
            Provider::known_prefixes().join(", ")
        ),
        ProviderModelError::Unknown(p) => format!(
            "unknown provider {p:?}; known providers: {}",
            Provider::known_prefixes().join(", ")
        ),
    }
}

/// The base URL and key: none for the in-process mock, else as [`resolve_network`].
fn credentials(
    m: &ModelEntry,
    provider: Provider,
    settings: &ProviderSettings,
    derived: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
    at: At<'_>,
    problems: &mut Problems,
) -> NetworkCredentials {
    let Some(p) = provider.network() else {
        if given(&m.api_key).is_some() || given(&m.base_url).is_some() {
            problems.push((
                at("provider_model"),
                "the mock/ provider answers in-process: api_key and base_url do not apply".into(),
            ));
        }
        return (None, None);
    };
    if m.mock_latency_ms.is_some() {
        problems.push((
            at("mock_latency_ms"),
            "mock_latency_ms applies only to mock/ models".into(),
        ));
    }
    let base = given(&m.base_url).or(derived.as_deref());
    match resolve_network(p, base, given(&m.api_key), env) {
        Ok(found) => found,
        // A bedrock/ model without a region: already reported by resolve_aws.
        Err(_) if provider == Provider::Bedrock && settings.aws_region_name.is_none() => {
            (None, None)
        }
        Err(e) => {
            problems.push((at(e.field()), e.to_string()));
            (None, None)
        }
    }
}

/// The numeric fields: routing weights and limits, prices, the timeout.
fn check_numbers(m: &ModelEntry, at: At<'_>, problems: &mut Problems) {
    if let Some(w) = m.weight {
        positive(problems, at("weight"), "weight", w.is_finite() && w > 0.0);
    }
    if let Some(r) = m.rpm {
        positive(problems, at("rpm"), "rpm", r > 0);
    }
    if let Some(t) = m.tpm {
        positive(problems, at("tpm"), "tpm", t > 0);
    }
    if let Some(t) = m.stream_timeout_secs {
        let name = "stream_timeout_secs";
        positive(problems, at(name), name, t > 0);
    }
    for (field, price) in [
        ("input_cost_per_token", m.input_cost_per_token),
        ("output_cost_per_token", m.output_cost_per_token),
    ] {
        if price.is_some_and(|p| !p.is_finite() || p < 0.0) {
            problems.push((at(field), format!("{field} must be 0 or more")));
        }
    }
    for (field, n) in [
        ("max_tokens", m.max_tokens),
        ("max_input_tokens", m.max_input_tokens),
        ("max_output_tokens", m.max_output_tokens),
    ] {
        if let Some(n) = n {
            positive(problems, at(field), field, n > 0);
        }
    }
    if m.timeout_secs == Some(0) {
        problems.push((
            at("timeout_secs"),
            "timeout_secs must be greater than 0".into(),
        ));
    }
}
