//! Wildcard models (LiteLLM's `model_name` patterns): a `[[models]]` entry whose `name`
//! has a `*` (`gpt-3.5-turbo*`, or `*` alone) serves the names clients send that match
//! it and are not configured otherwise. Each `*` of its `provider_model` takes what the
//! name's `*` of the same rank matched (`openai/gpt-3.5-turbo*` with the client's
//! `gpt-3.5-turbo-0125` is `openai/gpt-3.5-turbo-0125`); a `provider_model` without a
//! `*` serves every matching name with that one model. The provider is written in the
//! file (the config refuses a `*` in it), so a pattern opens one provider, never more;
//! except the catch-all `*` → `*` (LiteLLM's), which the operator writes to open every
//! provider of [`crate::config::catch_all_providers`] with a key variable set: a name
//! goes to the provider written in it or inferred from it (`gpt-4o` → `openai/`), if
//! that is one of them, with that provider's own key and base URL.
//!
//! Entries sharing a pattern form one pool; the most specific pattern (the most
//! characters besides `*`) wins, then the first in the file.

use liter_llm::ProviderModel;

use crate::config::{Config, Deployment, PoolSpec};

/// What each `*` of `pattern` matched in `name`, in order; `None` if it does not
/// match. `*` matches any run of characters, the empty one included.
pub fn captures<'a>(pattern: &str, name: &'a str) -> Option<Vec<&'a str>> {
    let mut out = Vec::new();
    matches(pattern, name, &mut out).then_some(out)
}

fn matches<'a>(pattern: &str, name: &'a str, out: &mut Vec<&'a str>) -> bool {
    let Some(star) = pattern.find('*') else {
        return pattern == name;
    };
    let (head, rest) = (&pattern[..star], &pattern[star + 1..]);
    let Some(tail) = name.strip_prefix(head) else {
        return false;
    };
    // Shortest capture first: with several `*`, each takes as little as it can.
    for end in (0..=tail.len()).filter(|&i| tail.is_char_boundary(i)) {
        out.push(&tail[..end]);
        if matches(rest, &tail[end..], out) {
            return true;
        }
        out.pop();
    }
    false
}

/// `template` with its `*`, in order, replaced by `caps` (a `*` with no capture left
/// stays, which the config's rule of as many `*` or none rules out).
pub fn fill(template: &str, caps: &[&str]) -> String {
    let mut out =
        String::with_capacity(template.len() + caps.iter().map(|c| c.len()).sum::<usize>());
    let mut caps = caps.iter();
    for part in template.split_inclusive('*') {
        match part.strip_suffix('*') {
            Some(literal) => {
                out.push_str(literal);
                out.push_str(caps.next().copied().unwrap_or("*"));
            }
            None => out.push_str(part),
        }
    }
    out
}

/// One pattern and its deployments, as written.
#[derive(Debug)]
struct Pattern {
    spec: PoolSpec,
    deployments: Vec<Deployment>,
    /// Characters besides `*`: the most specific pattern wins.
    literal: usize,
}

/// Every wildcard model of the config, most specific first.
#[derive(Debug, Default)]
pub struct Wildcards(Vec<Pattern>);

impl Wildcards {
    pub fn from_config(config: &Config) -> Self {
        let mut patterns: Vec<Pattern> = config
            .routing
            .pools
            .iter()
            .filter(|spec| is_pattern(&spec.name))
            .map(|spec| Pattern {
                spec: spec.clone(),
                deployments: config
                    .models
                    .iter()
                    .filter(|d| d.name == spec.name)
                    .cloned()
                    .collect(),
                literal: spec.name.chars().filter(|c| *c != '*').count(),
            })
            .collect();
        // Stable: equally specific patterns keep their order in the file.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.literal));
        Wildcards(patterns)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pool spec (named `name`) and the concrete deployments of the most specific
    /// pattern `name` matches, if any. A deployment whose model id would not be a
    /// valid one is left out.
    pub fn resolve(&self, name: &str) -> Option<(PoolSpec, Vec<Deployment>)> {
        self.0.iter().find_map(|p| {
            let caps = captures(&p.spec.name, name)?;
            let deployments: Vec<Deployment> = p
                .deployments
                .iter()
                .filter_map(|d| concrete(d, name, &caps))
                .collect();
            let spec = PoolSpec {
                name: name.to_string(),
                ..p.spec.clone()
            };
            (!deployments.is_empty()).then_some((spec, deployments))
        })
    }
}

/// Whether a `[[models]]` name is a pattern.
pub fn is_pattern(name: &str) -> bool {
    name.contains('*')
}

/// `d` for the client's `name`: its `*` filled in; for a deployment of the catch-all,
/// the name with its provider written or inferred, when that is `d`'s provider.
fn concrete(d: &Deployment, name: &str, caps: &[&str]) -> Option<Deployment> {
    let provider_model = if d.any_provider {
        crate::config::litellm::infer::provider_model(name, None)?
    } else {
        fill(&d.provider_model, caps)
    };
    let pm = ProviderModel::parse(&provider_model).ok()?;
    if d.any_provider && pm.provider != d.provider {
        return None;
    }
    liter_llm::providers::url::check_model_id(&pm.model_id).ok()?;
    Some(Deployment {
        name: name.to_string(),
        provider_model,
        model_id: pm.model_id,
        ..d.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_and_fill() {
        assert_eq!(captures("*", "gpt-4o"), Some(vec!["gpt-4o"]));
        assert_eq!(
            captures("gpt-3.5-turbo*", "gpt-3.5-turbo-0125"),
            Some(vec!["-0125"])
        );
        assert_eq!(captures("gpt-3.5-turbo*", "gpt-3.5-turbo"), Some(vec![""]));
        assert_eq!(captures("gpt-3.5-turbo*", "gpt-4"), None);
        assert_eq!(
            captures("fo::*:static::*", "fo::hi:static::there"),
            Some(vec!["hi", "there"])
        );
        assert_eq!(captures("a*b", "ab-b"), Some(vec!["b-"]));
        assert_eq!(captures("é*", "éè"), Some(vec!["è"]));
        assert_eq!(
            fill("openai/fo::*:static::*", &["hi", "there"]),
            "openai/fo::hi:static::there"
        );
        assert_eq!(fill("openai/*", &["gpt-4o"]), "openai/gpt-4o");
        assert_eq!(fill("openai/gpt-4o", &["x"]), "openai/gpt-4o");
    }
}
