//! `model_list`: each entry becomes a `[[models]]` deployment (provider inferred as
//! LiteLLM does, `tags` kept for tag routing), or, for a provider wildcard
//! (`anthropic/*` → `anthropic/*`), an `[[aliases]]` entry. Other patterns (`*`,
//! `gpt-3.5-turbo*`) become wildcard `[[models]]` entries when their model names a
//! provider (`openai/*`), and so does the catch-all `*` → `*` (`provider_model = "*"`:
//! any provider, inferred from each name); any other pattern whose model names no
//! provider is reported, by name.

use super::infer;
use super::twin::Twin;
use super::yaml::{Entry, Node};
use crate::config::file::{AliasEntry, ModelEntry};
use crate::config::CATCH_ALL;

/// What `[[models]]` takes from an entry, with the twin field for each key of
/// `litellm_params` that maps one to one.
const STRING_FIELDS: &[(&str, &str)] = &[
    ("api_key", "api_key"),
    ("api_base", "base_url"),
    ("api_version", "api_version"),
    ("aws_access_key_id", "aws_access_key_id"),
    ("aws_secret_access_key", "aws_secret_access_key"),
    ("aws_session_token", "aws_session_token"),
    ("aws_region_name", "aws_region_name"),
    ("vertex_project", "vertex_project"),
    ("vertex_location", "vertex_location"),
    ("vertex_credentials", "vertex_credentials"),
];

fn empty_model(name: String, provider_model: String) -> ModelEntry {
    ModelEntry {
        name,
        provider_model,
        ..ModelEntry::default()
    }
}

/// The parts of one `model_list` entry.
struct Parts<'n> {
    name: Option<&'n Entry>,
    params: &'n [Entry],
    params_at: Option<&'n Entry>,
    info: &'n [Entry],
    rpm: Option<&'n Entry>,
    tpm: Option<&'n Entry>,
}

pub(crate) fn map(t: &mut Twin<'_>, node: &Node) {
    let items = match &node.value {
        super::yaml::Value::Seq(items) => items,
        super::yaml::Value::Null => return,
        _ => {
            t.problem(
                "model_list",
                node.line,
                node.col,
                format!("expected a list, found {}", node.kind()),
            );
            return;
        }
    };
    for (i, item) in items.iter().enumerate() {
        let yp = format!("model_list[{i}]");
        let Some(entries) = t.mapping(item, &yp) else {
            continue;
        };
        let mut parts = Parts {
            name: None,
            params: &[],
            params_at: None,
            info: &[],
            rpm: None,
            tpm: None,
        };
        for e in entries {
            let path = format!("{yp}.{}", e.key);
            match e.key.as_str() {
                "model_name" => parts.name = Some(e),
                "litellm_params" => {
                    parts.params = t.mapping(&e.value, &path).unwrap_or(&[]);
                    parts.params_at = Some(e);
                }
                "model_info" => parts.info = t.mapping(&e.value, &path).unwrap_or(&[]),
                "rpm" => parts.rpm = Some(e),
                "tpm" => parts.tpm = Some(e),
                _ => t.unknown(&path, e),
            }
        }
        let Some(name_entry) = parts.name else {
            t.problem(&yp, item.line, item.col, "model_name is missing".into());
            continue;
        };
        let Some(name) = t.string(&name_entry.value, &format!("{yp}.model_name")) else {
            continue;
        };
        if name.contains('*') && !wildcard_model(&name, &parts) {
            wildcard(t, &yp, &name, name_entry, &parts);
        } else {
            deployment(t, &yp, name, name_entry, item, &parts);
        }
    }
}

/// The `litellm_params.model` of an entry, as written.
fn model_of(t: &mut Twin<'_>, yp: &str, parts: &Parts<'_>) -> Option<(String, Option<String>)> {
    let model = parts.params.iter().find(|e| e.key == "model");
    let custom = parts.params.iter().find(|e| e.key == "custom_llm_provider");
    let custom = custom.and_then(|e| {
        t.string(
            &e.value,
            &format!("{yp}.litellm_params.custom_llm_provider"),
        )
    });
    let model = model.and_then(|e| t.string(&e.value, &format!("{yp}.litellm_params.model")));
    model.map(|m| (m, custom))
}

fn deployment(
    t: &mut Twin<'_>,
    yp: &str,
    name: String,
    name_entry: &Entry,
    item: &Node,
    parts: &Parts<'_>,
) {
    let k = t.file.models.len();
    let tw = |f: &str| format!("models[{k}].{f}");
    let Some((model, custom)) = model_of(t, yp, parts) else {
        let (line, col) = parts
            .params_at
            .map_or((item.line, item.col), |e| (e.line, e.col));
        t.problem(
            &format!("{yp}.litellm_params.model"),
            line,
            col,
            format!("model_list entry {name:?}: litellm_params.model is missing"),
        );
        return;
    };
    if model.contains('*') && !name.contains('*') {
        t.problem(
            &format!("{yp}.litellm_params.model"),
            name_entry.line,
            name_entry.col,
            format!("model_list entry {name:?}: a `*` in model needs a wildcard model_name"),
        );
        return;
    }
    let provider_model = if is_catch_all(&name, &model, custom.as_deref()) {
        Some(CATCH_ALL.to_string())
    } else {
        infer::provider_model(&model, custom.as_deref())
    };
    let Some(provider_model) = provider_model else {
        let at = parts.params.iter().find(|e| e.key == "model");
        let (line, col) = at.map_or((item.line, item.col), |e| (e.line, e.col));
        t.problem(
            &format!("{yp}.litellm_params.model"),
            line,
            col,
            format!(
                "model_list entry {name:?}: cannot tell the provider of model {model:?}; write it with its provider, e.g. \"openai/{model}\""
            ),
        );
        return;
    };
    let mut m = empty_model(name, provider_model);
    t.loc(format!("models[{k}]"), yp, item.line, item.col);
    t.loc_entry(tw("name"), &format!("{yp}.model_name"), name_entry);
    let pp = |key: &str| format!("{yp}.litellm_params.{key}");
    for e in parts.params {
        let path = pp(&e.key);
        let v = &e.value;
        let twin_field = match e.key.as_str() {
            "model" | "custom_llm_provider" => "provider_model",
            "rpm" => {
                m.rpm = t.uint32(v, &path);
                "rpm"
            }
            "tpm" => {
                m.tpm = t.uint(v, &path);
                "tpm"
            }
            "timeout" => {
                m.timeout_secs = t.seconds(v, &path);
                "timeout_secs"
            }
            "stream_timeout" => {
                m.stream_timeout_secs = t.seconds(v, &path);
                "stream_timeout_secs"
            }
            "weight" => {
                m.weight = t.float(v, &path);
                "weight"
            }
            "order" => {
                m.order = t.uint32(v, &path);
                "order"
            }
            "input_cost_per_token" => {
                m.input_cost_per_token = t.float(v, &path);
                "input_cost_per_token"
            }
            "output_cost_per_token" => {
                m.output_cost_per_token = t.float(v, &path);
                "output_cost_per_token"
            }
            "drop_params" => {
                m.drop_params = t.boolean(v, &path);
                "drop_params"
            }
            "max_retries" => {
                m.max_retries = t.uint32(v, &path);
                "max_retries"
            }
            "tags" => {
                m.tags = t.strings(v, &path);
                "tags"
            }
            key => match STRING_FIELDS.iter().find(|(theirs, _)| *theirs == key) {
                Some((_, ours)) => {
                    let s = t.string(v, &path);
                    set_string(&mut m, ours, s);
                    ours
                }
                None => {
                    t.unknown(&path, e);
                    continue;
                }
            },
        };
        t.loc_entry(tw(twin_field), &path, e);
    }
    entry_limits(t, yp, k, parts, &mut m);
    model_info(t, yp, k, parts, &mut m);
    t.file.models.push(m);
}

fn set_string(m: &mut ModelEntry, field: &str, value: Option<String>) {
    let slot = match field {
        "api_key" => &mut m.api_key,
        "base_url" => &mut m.base_url,
        "api_version" => &mut m.api_version,
        "aws_access_key_id" => &mut m.aws_access_key_id,
        "aws_secret_access_key" => &mut m.aws_secret_access_key,
        "aws_session_token" => &mut m.aws_session_token,
        "aws_region_name" => &mut m.aws_region_name,
        "vertex_project" => &mut m.vertex_project,
        "vertex_location" => &mut m.vertex_location,
        _ => &mut m.vertex_credentials,
    };
    *slot = value;
}

/// `rpm`/`tpm` beside `litellm_params` (LiteLLM's `load_balancer.yaml` puts them there).
fn entry_limits(t: &mut Twin<'_>, yp: &str, k: usize, parts: &Parts<'_>, m: &mut ModelEntry) {
    if let Some(e) = parts.rpm {
        let path = format!("{yp}.rpm");
        let v = t.uint32(&e.value, &path);
        if m.rpm.is_some() && v.is_some() && m.rpm != v {
            t.problem(
                &path,
                e.line,
                e.col,
                "rpm is given here and in litellm_params with different values".into(),
            );
        } else if m.rpm.is_none() {
            m.rpm = v;
            t.loc_entry(format!("models[{k}].rpm"), &path, e);
        }
    }
    if let Some(e) = parts.tpm {
        let path = format!("{yp}.tpm");
        let v = t.uint(&e.value, &path);
        if m.tpm.is_some() && v.is_some() && m.tpm != v {
            t.problem(
                &path,
                e.line,
                e.col,
                "tpm is given here and in litellm_params with different values".into(),
            );
        } else if m.tpm.is_none() {
            m.tpm = v;
            t.loc_entry(format!("models[{k}].tpm"), &path, e);
        }
    }
}

/// `model_info`: prices, `id`, `mode`, `base_model` and the token limits (see
/// `[[models]]`'s fields of the same names).
fn model_info(t: &mut Twin<'_>, yp: &str, k: usize, parts: &Parts<'_>, m: &mut ModelEntry) {
    for e in parts.info {
        // A null is not given, as LiteLLM reads it (its `/model/info` answers carry
        // nulls, which its clients send back).
        if matches!(e.value.value, super::yaml::Value::Null) {
            continue;
        }
        let path = format!("{yp}.model_info.{}", e.key);
        let (slot, field) = match e.key.as_str() {
            "input_cost_per_token" => (&mut m.input_cost_per_token, "input_cost_per_token"),
            "output_cost_per_token" => (&mut m.output_cost_per_token, "output_cost_per_token"),
            "id" => {
                m.id = t.string(&e.value, &path);
                t.loc_entry(format!("models[{k}].id"), &path, e);
                continue;
            }
            "mode" => {
                m.mode = t.string(&e.value, &path);
                t.loc_entry(format!("models[{k}].mode"), &path, e);
                continue;
            }
            "base_model" => {
                m.base_model = base_model(t, &path, e);
                t.loc_entry(format!("models[{k}].base_model"), &path, e);
                continue;
            }
            "max_tokens" | "max_input_tokens" | "max_output_tokens" => {
                let v = t.uint(&e.value, &path);
                match e.key.as_str() {
                    "max_tokens" => m.max_tokens = v,
                    "max_input_tokens" => m.max_input_tokens = v,
                    _ => m.max_output_tokens = v,
                }
                t.loc_entry(format!("models[{k}].{}", e.key), &path, e);
                continue;
            }
            _ => {
                t.unknown(&path, e);
                continue;
            }
        };
        let v = t.float(&e.value, &path);
        if slot.is_none() {
            *slot = v;
            t.loc_entry(format!("models[{k}].{field}"), &path, e);
        } else if v.is_some() && *slot != v {
            t.problem(
                &path,
                e.line,
                e.col,
                format!("{field} is given here and in litellm_params with different values"),
            );
        }
    }
}

/// `model_info.base_model`, its provider inferred as `model`'s is (`gpt-4o` is
/// `openai/gpt-4o`; Azure's are written `azure/...`).
fn base_model(t: &mut Twin<'_>, path: &str, e: &Entry) -> Option<String> {
    let written = t.string(&e.value, path)?;
    let found = infer::provider_model(&written, None);
    if found.is_none() {
        t.problem(
            path,
            e.line,
            e.col,
            format!("cannot tell the provider of base_model {written:?}; write it with its provider, e.g. \"azure/{written}\""),
        );
    }
    found
}

/// Whether a wildcard entry becomes a wildcard `[[models]]` entry: any pattern whose
/// model names its provider (written, or inferred from a known family such as
/// `gpt-3.5-turbo*`), except a provider wildcard (`anthropic/*` → `anthropic/*`), which
/// stays an `[[aliases]]` entry.
fn wildcard_model(name: &str, parts: &Parts<'_>) -> bool {
    // Read as written, reporting nothing: the path taken reads them again.
    let text = |key: &str| {
        parts
            .params
            .iter()
            .find(|e| e.key == key)
            .and_then(|e| match &e.value.value {
                super::yaml::Value::Str(s) => Some(s.as_str()),
                _ => None,
            })
    };
    let Some(model) = text("model") else {
        return false;
    };
    if is_catch_all(name, model, text("custom_llm_provider")) {
        return true;
    }
    if provider_wildcard(name) && model == name {
        return false;
    }
    infer::provider_model(model, text("custom_llm_provider"))
        .and_then(|pm| pm.split_once('/').map(|(p, _)| !p.contains('*')))
        .unwrap_or(false)
}

/// LiteLLM's catch-all: `model_name: "*"` with `model: "*"` (any provider).
fn is_catch_all(name: &str, model: &str, custom: Option<&str>) -> bool {
    name == CATCH_ALL && model == CATCH_ALL && custom.is_none()
}

/// `anthropic/*`: a known provider's prefix, then a pattern.
fn provider_wildcard(name: &str) -> bool {
    name.split_once('/')
        .map(|(p, _)| p)
        .filter(|p| !p.contains('*'))
        .and_then(liter_llm::Provider::from_prefix)
        .is_some()
}

/// A wildcard entry that is not a wildcard model: an `[[aliases]]` entry when the
/// pattern names a provider and the model is the same pattern; anything else (a model
/// with no provider, such as `*`) is reported by name.
fn wildcard(t: &mut Twin<'_>, yp: &str, name: &str, name_entry: &Entry, parts: &Parts<'_>) {
    let name_path = format!("{yp}.model_name");
    let model = model_of(t, yp, parts).map(|(m, _)| m);
    let provider = name
        .split_once('/')
        .map(|(p, _)| p)
        .filter(|p| !p.contains('*'))
        .and_then(liter_llm::Provider::from_prefix);
    if provider.is_none() || model.as_deref() != Some(name) {
        let why = format!(
            "the wildcard model_name {name:?} with model {:?}: a model with no provider opens every provider, which only the catch-all (model_name \"*\" with model \"*\") may do; write the provider (model: \"openai/*\")",
            model.as_deref().unwrap_or("")
        );
        t.unsupported(&name_path, name_entry.line, name_entry.col, &why);
        return;
    }
    let k = t.file.aliases.len();
    let mut alias = AliasEntry {
        pattern: name.to_string(),
        api_key: None,
        base_url: None,
    };
    t.loc_entry(format!("aliases[{k}].pattern"), &name_path, name_entry);
    t.loc_entry(format!("aliases[{k}]"), &name_path, name_entry);
    for e in parts.params {
        let path = format!("{yp}.litellm_params.{}", e.key);
        match e.key.as_str() {
            "model" => {}
            "api_key" => {
                alias.api_key = t.string(&e.value, &path);
                t.loc_entry(format!("aliases[{k}].api_key"), &path, e);
            }
            "api_base" => {
                alias.base_url = t.string(&e.value, &path);
                t.loc_entry(format!("aliases[{k}].base_url"), &path, e);
            }
            _ => t.unsupported(
                &path,
                e.line,
                e.col,
                "this setting on a wildcard entry ([[aliases]] carry only api_key and api_base)",
            ),
        }
    }
    for (key, e) in [("rpm", parts.rpm), ("tpm", parts.tpm)] {
        if let Some(e) = e {
            t.unsupported(
                &format!("{yp}.{key}"),
                e.line,
                e.col,
                "limits on a wildcard entry",
            );
        }
    }
    for e in parts.info {
        t.unsupported(
            &format!("{yp}.model_info.{}", e.key),
            e.line,
            e.col,
            "model_info on a wildcard entry",
        );
    }
    t.file.aliases.push(alias);
}

/// Deployment tags route only with `router_settings.enable_tag_filtering: true`;
/// without it LiteLLM uses them for spend reports, which are not built here: each
/// deployment's tags are then reported and left out.
pub(crate) fn tags_without_filtering(t: &mut Twin<'_>) {
    if t.file.router.enable_tag_filtering {
        return;
    }
    for k in 0..t.file.models.len() {
        if t.file.models[k].tags.is_empty() {
            continue;
        }
        t.file.models[k].tags.clear();
        if let Some(at) = t.locs.remove(&format!("models[{k}].tags")) {
            t.unsupported(
                &at.path,
                at.line,
                at.col,
                "deployment tags without router_settings.enable_tag_filtering: true (tag-based spend reports)",
            );
        }
    }
}
