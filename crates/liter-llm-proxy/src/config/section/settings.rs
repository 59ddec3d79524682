//! Provider-specific model fields (`api_version`, `aws_*`, `vertex_*`, `drop_params`,
//! `reasoning_budgets`, `fan_out_n`):
//! checked against what the model's provider reads, so none is accepted and ignored.

use liter_llm::providers::adapter::{ProviderSettings, Secret};
use liter_llm::providers::reasoning::{ReasoningBudgets, MAX_BUDGET, MIN_BUDGET};
use liter_llm::Provider;

use crate::config::file::ModelEntry;
use crate::config::problems::{given, Problems, Seg};

/// The settings of `m` for `provider`, reporting every field the provider does not use.
pub(crate) fn provider_settings(
    m: &ModelEntry,
    provider: Provider,
    general_drop_params: bool,
    at: &dyn Fn(&str) -> Vec<Seg>,
    problems: &mut Problems,
) -> ProviderSettings {
    let accepted = provider.setting_fields();
    let mut field = |name: &str, value: &Option<String>| -> Option<String> {
        let v = given(value)?;
        if accepted.contains(&name) {
            Some(v.to_string())
        } else {
            problems.push((
                at(name),
                format!(
                    "{name} does not apply to {}/ models{}",
                    provider.name(),
                    if accepted.is_empty() {
                        String::new()
                    } else {
                        format!(" (they read: {})", accepted.join(", "))
                    }
                ),
            ));
            None
        }
    };
    let settings = ProviderSettings {
        api_version: field("api_version", &m.api_version),
        aws_access_key_id: field("aws_access_key_id", &m.aws_access_key_id).map(Secret),
        aws_secret_access_key: field("aws_secret_access_key", &m.aws_secret_access_key).map(Secret),
        aws_session_token: field("aws_session_token", &m.aws_session_token).map(Secret),
        aws_region_name: field("aws_region_name", &m.aws_region_name),
        vertex_project: field("vertex_project", &m.vertex_project),
        vertex_location: field("vertex_location", &m.vertex_location),
        vertex_credentials: field("vertex_credentials", &m.vertex_credentials),
        drop_params: m.drop_params.unwrap_or(general_drop_params),
        reasoning_budgets: reasoning_budgets(m, provider, at, problems),
        fan_out_n: fan_out_n(m, provider, at, problems),
    };
    if m.drop_params.is_some() && !provider.translated() {
        problems.push((
            at("drop_params"),
            format!(
                "drop_params applies to translated providers only; {}/ models receive the request unchanged",
                provider.name()
            ),
        ));
    }
    settings
}

/// The model's `reasoning_budgets` over the defaults, each from
/// [`MIN_BUDGET`] to [`MAX_BUDGET`] tokens; only for providers that think by budget or
/// level (Anthropic, Gemini, Vertex AI, Bedrock's Claude).
fn reasoning_budgets(
    m: &ModelEntry,
    provider: Provider,
    at: &dyn Fn(&str) -> Vec<Seg>,
    problems: &mut Problems,
) -> ReasoningBudgets {
    let mut out = ReasoningBudgets::default();
    let Some(entry) = &m.reasoning_budgets else {
        return out;
    };
    if !matches!(
        provider,
        Provider::Anthropic | Provider::Gemini | Provider::VertexAi | Provider::Bedrock
    ) {
        problems.push((
            at("reasoning_budgets"),
            format!(
                "reasoning_budgets applies to anthropic/, gemini/, vertex_ai/ and bedrock/ models; {}/ models receive reasoning_effort {}",
                provider.name(),
                if provider.translated() { "as the provider's own parameter or not at all" } else { "unchanged" }
            ),
        ));
        return out;
    }
    for (level, value, slot) in [
        ("minimal", entry.minimal, &mut out.minimal),
        ("low", entry.low, &mut out.low),
        ("medium", entry.medium, &mut out.medium),
        ("high", entry.high, &mut out.high),
    ] {
        let Some(v) = value else { continue };
        if (MIN_BUDGET..=MAX_BUDGET).contains(&v) {
            *slot = v;
        } else {
            problems.push((
                at(&format!("reasoning_budgets.{level}")),
                format!("a thinking budget is {MIN_BUDGET} to {MAX_BUDGET} tokens, not {v}"),
            ));
        }
    }
    out
}

/// The model's `fan_out_n`, for providers that answer one choice per request.
fn fan_out_n(
    m: &ModelEntry,
    provider: Provider,
    at: &dyn Fn(&str) -> Vec<Seg>,
    problems: &mut Problems,
) -> bool {
    let Some(on) = m.fan_out_n else { return false };
    if !matches!(
        provider,
        Provider::Anthropic | Provider::Bedrock | Provider::Cohere
    ) {
        problems.push((
            at("fan_out_n"),
            format!(
                "fan_out_n applies to anthropic/, bedrock/ and cohere/ models; {}/ models take n as it is",
                provider.name()
            ),
        ));
        return false;
    }
    on
}

/// Settings the provider reads from its variables when the file leaves them unset:
/// Azure's `api_version`, Vertex AI's project, location and credentials file.
pub(crate) fn from_env(
    provider: Provider,
    settings: &mut ProviderSettings,
    env: &dyn Fn(&str) -> Option<String>,
) {
    if provider == Provider::Azure && settings.api_version.is_none() {
        settings.api_version = liter_llm::providers::azure::VERSION_ENV
            .iter()
            .find_map(|v| env(v).filter(|x| !x.is_empty()));
    }
    if provider == Provider::VertexAi {
        liter_llm::providers::gemini::vertex_settings_from_env(settings, env);
    }
}

/// Bedrock's credentials and region: the model's `aws_*` fields, else the standard AWS
/// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (only
/// with a key id from the environment too), `AWS_REGION`, `AWS_DEFAULT_REGION`). A
/// missing one is reported naming the field and the variables. Returns the base URL
/// derived from the region when neither `base_url` nor a base-URL variable is set.
pub(crate) fn resolve_aws(
    m: &ModelEntry,
    provider: Provider,
    settings: &mut ProviderSettings,
    env: &dyn Fn(&str) -> Option<String>,
    at: &dyn Fn(&str) -> Vec<Seg>,
    problems: &mut Problems,
) -> Option<String> {
    if provider != Provider::Bedrock {
        return None;
    }
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    if given(&m.api_key).is_some() {
        problems.push((
            at("api_key"),
            "api_key does not apply to bedrock/ models: they sign requests with aws_access_key_id and aws_secret_access_key".into(),
        ));
    }
    let key_from_env = settings.aws_access_key_id.is_none();
    if key_from_env {
        settings.aws_access_key_id = var("AWS_ACCESS_KEY_ID").map(Secret);
        if settings.aws_session_token.is_none() {
            settings.aws_session_token = var("AWS_SESSION_TOKEN").map(Secret);
        }
    }
    if settings.aws_secret_access_key.is_none() {
        settings.aws_secret_access_key = var("AWS_SECRET_ACCESS_KEY").map(Secret);
    }
    if settings.aws_region_name.is_none() {
        settings.aws_region_name = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"));
    }
    for (field, missing, vars) in [
        (
            "aws_access_key_id",
            settings.aws_access_key_id.is_none(),
            "$AWS_ACCESS_KEY_ID",
        ),
        (
            "aws_secret_access_key",
            settings.aws_secret_access_key.is_none(),
            "$AWS_SECRET_ACCESS_KEY",
        ),
        (
            "aws_region_name",
            settings.aws_region_name.is_none(),
            "$AWS_REGION or $AWS_DEFAULT_REGION",
        ),
    ] {
        if missing {
            problems.push((
                at(field),
                format!("bedrock/ models need {field} (or {vars} in the environment)"),
            ));
        }
    }
    let region = settings.aws_region_name.as_deref()?;
    if !region
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        problems.push((
            at("aws_region_name"),
            "aws_region_name is not a region name (e.g. us-east-1)".into(),
        ));
        return None;
    }
    let overridden = given(&m.base_url).is_some()
        || liter_llm::providers::bedrock::BASE_URL_ENV
            .iter()
            .any(|v| var(v).is_some());
    (!overridden).then(|| liter_llm::providers::bedrock::default_base_url(region))
}
