//! `[[aliases]]`: credentials for `provider/model` names that clients send directly.
//!
//! Only these entries expose such names: a provider key variable in the gateway's
//! environment (`OPENAI_API_KEY`, ...) supplies credentials to an entry that has no
//! `api_key`, but never exposes a provider by itself. The providers whose key variable
//! is set while no entry names them are listed, so the gateway can say so.

use liter_llm::providers::Network;
use liter_llm::Provider;

use super::network::{key_from_env, resolve_network};
use crate::config::file::AliasEntry;
use crate::config::problems::{given, key, Problems, Seg};

/// One `[[aliases]]` entry: credentials for every `provider/model` name matching
/// `pattern` that is not a `[[models]]` name.
#[derive(Debug, Clone)]
pub struct CredentialAlias {
    pub pattern: String,
    pub provider: Provider,
    pub base_url: Option<String>,
    pub api_key: Option<secrecy::SecretString>,
}

/// Glob match with `*` (any run) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `[[aliases]]`: the provider prefix must be literal and known; credentials resolve as
/// for `[[models]]` (given values, else the provider's variables and defaults).
pub(crate) fn check(
    aliases: &[AliasEntry],
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Vec<CredentialAlias> {
    let mut out = Vec::new();
    for (i, a) in aliases.iter().enumerate() {
        let at = |f: &str| vec![key("aliases"), Seg::Index(i), key(f)];
        let (provider, net) = match provider_of(a) {
            Ok(found) => found,
            Err(msg) => {
                problems.push((at("pattern"), msg));
                continue;
            }
        };
        match resolve_network(net, given(&a.base_url), given(&a.api_key), env) {
            Ok((base_url, api_key)) => out.push(CredentialAlias {
                pattern: a.pattern.clone(),
                provider,
                base_url,
                api_key,
            }),
            Err(e) => problems.push((at(e.field()), e.to_string())),
        }
    }
    out
}

/// The network provider an entry's pattern names, or why it names none usable.
fn provider_of(a: &AliasEntry) -> Result<(Provider, Network), String> {
    let prefix = a.pattern.split_once('/').map(|(p, _)| p);
    let provider = prefix.and_then(Provider::from_prefix);
    let Some((provider, net)) = provider.and_then(|p| p.network().map(|n| (p, n))) else {
        return Err(format!(
            "pattern {:?} must start with a provider prefix such as \"anthropic/\" (known: {})",
            a.pattern,
            Provider::known_prefixes().join(", ")
        ));
    };
    if !provider.setting_fields().is_empty() {
        return Err(format!(
            "pattern {:?}: {}/ models need provider settings an alias cannot carry; declare them under [[models]]",
            a.pattern,
            provider.name()
        ));
    }
    Ok((provider, net))
}

/// Network providers whose own key variable is set (and not empty) but which no
/// `[[aliases]]` entry names: their `provider/model` names are not exposed.
pub(crate) fn unexposed(
    aliases: &[CredentialAlias],
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<&'static str> {
    Provider::all_network()
        .into_iter()
        .filter(|p| !aliases.iter().any(|a| a.provider == *p))
        .filter_map(|p| p.network())
        .filter(|net| key_from_env(*net, env).is_some())
        .map(|net| net.name)
        .collect()
}
