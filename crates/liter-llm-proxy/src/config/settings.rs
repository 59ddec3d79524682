//! Provider-specific model fields (`api_version`, `aws_*`, `vertex_*`, `drop_params`):
//! checked against what the model's provider reads, so none is accepted and ignored.

use liter_llm::providers::adapter::{ProviderSettings, Secret};
use liter_llm::Provider;

use super::file::ModelEntry;
use super::load::Seg;
use super::validate::{given, Problems};

/// The settings of `m` for `provider`, reporting every field the provider does not use.
pub(super) fn provider_settings(
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
