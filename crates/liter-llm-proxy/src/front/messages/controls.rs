//! Anthropic's thinking and output controls of a Messages request (`thinking`,
//! `output_config`, `context_management`) in the canonical request's terms, so that no
//! Anthropic-only field reaches a deployment that does not speak Anthropic's wire
//! (Anthropic-format deployments get the client's bytes, these fields included):
//!
//! - `thinking: {"type": "enabled", "budget_tokens": n}` becomes `reasoning_effort`, the
//!   smallest level whose default budget (`liter_llm::providers::reasoning`) is at least
//!   `n`, `high` above that. Only the level travels: the canonical request is forwarded
//!   as it is to OpenAI-compatible upstreams, which refuse fields they do not know, so the
//!   budget itself cannot ride along; each adapter turns the level back into its own
//!   terms (a budget, for Gemini 2.5 and Bedrock Claude).
//! - `thinking: {"type": "disabled"}`: no `reasoning_effort`, so the upstream's default
//!   (OpenAI's `none` is refused by most models, Gemini 2.5 Pro cannot think with a budget
//!   of 0).
//! - `thinking: {"type": "adaptive"}` (the model decides) or no `thinking`: the
//!   `reasoning_effort` of `output_config.effort` (`low`, `medium`, `high`; `max` as
//!   `high`), if any.
//! - `output_config.format` (`{"type": "json_schema", "schema": ...}`) becomes
//!   `response_format` `json_schema`; other `output_config` members stay in an
//!   `output_config` of the canonical request, for the adapter to refuse or drop
//!   (`drop_params`).
//! - `context_management` (server-side context editing) is left out and reported
//!   (`x-liter-llm-dropped-params`): the conversation the client sent is complete, and
//!   not clearing it only costs tokens.
//!
//! A control of the wrong shape is a 400 naming the field. Reads borrowed fields
//! ([`super::raw`]); writes into the canonical request ([`super::canonical`]).

use std::collections::BTreeMap;

use liter_llm::providers::reasoning::{Effort, ReasoningBudgets, MIN_BUDGET};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use super::raw::{fields, text, Raw};
use crate::error::GatewayError;

/// The controls of one request, translated.
#[derive(Default)]
pub struct Controls<'a> {
    /// The canonical `reasoning_effort`.
    pub effort: Option<Effort>,
    /// The JSON schema of `output_config.format`, written as `response_format`.
    pub schema: Option<Raw<'a>>,
    /// `output_config` members with no canonical counterpart, written as `output_config`.
    pub output_config: BTreeMap<String, Raw<'a>>,
    /// The request fields left out, for `x-liter-llm-dropped-params`.
    pub dropped: Vec<&'static str>,
}

/// What `thinking` asks for.
#[derive(Debug, PartialEq, Eq)]
enum Thinking {
    Enabled(u64),
    Disabled,
    Adaptive,
}

/// The fields of `thinking`.
#[derive(Deserialize, Default)]
struct ThinkingFields<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Raw<'a>>,
    #[serde(borrow, default)]
    budget_tokens: Option<Raw<'a>>,
}

/// The fields of `output_config.format`.
#[derive(Deserialize, Default)]
struct FormatFields<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Raw<'a>>,
    #[serde(borrow, default)]
    schema: Option<Raw<'a>>,
}

/// A 400 naming `param`.
fn invalid(param: &'static str, message: String) -> GatewayError {
    GatewayError::BadRequest {
        message,
        param: Some(param),
        code: None,
    }
}

/// Whether a field holds a JSON object.
fn is_object(raw: Raw<'_>) -> bool {
    raw.get().starts_with('{')
}

impl<'a> Controls<'a> {
    /// Reads the controls of a request (each `None` when absent or `null`).
    pub fn read(
        thinking: Option<Raw<'a>>,
        output_config: Option<Raw<'a>>,
        context_management: Option<Raw<'a>>,
    ) -> Result<Self, GatewayError> {
        let mut out = Controls::default();
        let asked = thinking.map(read_thinking).transpose()?;
        let effort = match output_config {
            Some(raw) => out.read_output_config(raw)?,
            None => None,
        };
        out.effort = match asked {
            Some(Thinking::Enabled(budget)) => Some(level_for(budget)),
            Some(Thinking::Disabled) => None,
            Some(Thinking::Adaptive) | None => effort,
        };
        if context_management.is_some() {
            out.dropped.push("context_management");
        }
        Ok(out)
    }

    /// Reads `output_config`: keeps its format and the rest, returns its effort.
    fn read_output_config(&mut self, raw: Raw<'a>) -> Result<Option<Effort>, GatewayError> {
        let not_object = || {
            invalid(
                "output_config",
                "output_config: must be an object".to_string(),
            )
        };
        if !is_object(raw) {
            return Err(not_object());
        }
        let members: BTreeMap<String, Raw<'a>> =
            serde_json::from_str(raw.get()).map_err(|_| not_object())?;
        let mut effort = None;
        for (key, value) in members {
            if value.get() == "null" {
                continue;
            }
            match key.as_str() {
                "effort" => effort = Some(read_effort(value)?),
                "format" => self.schema = Some(read_format(value)?),
                _ => {
                    self.output_config.insert(key, value);
                }
            }
        }
        Ok(effort)
    }

    /// Whether the controls write the canonical field `key` (a client's field of that
    /// name is then left out).
    pub fn writes(&self, key: &str) -> bool {
        match key {
            "reasoning_effort" => self.effort.is_some(),
            "response_format" => self.schema.is_some(),
            "output_config" => !self.output_config.is_empty(),
            _ => false,
        }
    }

    /// Writes the canonical fields of the controls into `map`.
    pub fn write<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        if let Some(effort) = self.effort {
            map.serialize_entry("reasoning_effort", effort.as_str())?;
        }
        if let Some(schema) = self.schema {
            map.serialize_entry(
                "response_format",
                &ResponseFormat {
                    kind: "json_schema",
                    json_schema: JsonSchema {
                        name: SCHEMA_NAME,
                        schema,
                    },
                },
            )?;
        }
        if !self.output_config.is_empty() {
            map.serialize_entry("output_config", &self.output_config)?;
        }
        Ok(())
    }
}

/// The `json_schema.name` of a translated `output_config.format` (Anthropic's format
/// has no name; OpenAI requires one).
const SCHEMA_NAME: &str = "output";

#[derive(Serialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: JsonSchema<'a>,
}

#[derive(Serialize)]
struct JsonSchema<'a> {
    name: &'static str,
    schema: Raw<'a>,
}

/// Reads `thinking`.
fn read_thinking(raw: Raw<'_>) -> Result<Thinking, GatewayError> {
    if !is_object(raw) {
        return Err(invalid(
            "thinking",
            "thinking: must be an object with a type".to_string(),
        ));
    }
    let f: ThinkingFields = fields(Some(raw))?;
    let kind = f
        .kind
        .ok_or_else(|| invalid("thinking", "thinking.type: Field required".to_string()))?;
    match text(Some(kind)).as_deref() {
        Some("enabled") => {
            let budget = f.budget_tokens.ok_or_else(|| {
                invalid(
                    "thinking",
                    "thinking.budget_tokens: Field required".to_string(),
                )
            })?;
            let budget: u64 = budget.get().parse().map_err(|_| {
                invalid(
                    "thinking",
                    "thinking.budget_tokens: must be an integer".to_string(),
                )
            })?;
            if budget < MIN_BUDGET {
                return Err(invalid(
                    "thinking",
                    format!("thinking.budget_tokens: must be at least {MIN_BUDGET}"),
                ));
            }
            Ok(Thinking::Enabled(budget))
        }
        Some("disabled") => Ok(Thinking::Disabled),
        Some("adaptive") => Ok(Thinking::Adaptive),
        _ => Err(invalid(
            "thinking",
            format!(
                "thinking.type: must be \"enabled\", \"disabled\" or \"adaptive\", not {}",
                kind.get()
            ),
        )),
    }
}

/// The smallest level whose default budget holds `budget` tokens (`high` above all).
fn level_for(budget: u64) -> Effort {
    let budgets = ReasoningBudgets::default();
    [Effort::Minimal, Effort::Low, Effort::Medium]
        .into_iter()
        .find(|e| budgets.budget(*e).is_some_and(|b| b >= budget))
        .unwrap_or(Effort::High)
}

/// Reads `output_config.effort` (`max` is `high`, the most there is elsewhere).
fn read_effort(raw: Raw<'_>) -> Result<Effort, GatewayError> {
    match text(Some(raw)).as_deref() {
        Some("low") => Ok(Effort::Low),
        Some("medium") => Ok(Effort::Medium),
        Some("high" | "max") => Ok(Effort::High),
        _ => Err(invalid(
            "output_config",
            format!(
                "output_config.effort: must be \"low\", \"medium\", \"high\" or \"max\", not {}",
                raw.get()
            ),
        )),
    }
}

/// Reads `output_config.format`: its JSON schema.
fn read_format(raw: Raw<'_>) -> Result<Raw<'_>, GatewayError> {
    let f: FormatFields = fields(Some(raw))?;
    if !is_object(raw) || text(f.kind).as_deref() != Some("json_schema") {
        return Err(invalid(
            "output_config",
            "output_config.format.type: must be \"json_schema\"".to_string(),
        ));
    }
    f.schema.filter(|s| is_object(s)).ok_or_else(|| {
        invalid(
            "output_config",
            "output_config.format.schema: must be a JSON schema object".to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::decode::canonical;
    use super::*;
    use serde_json::{json, Value};

    /// The canonical request (as JSON) and the dropped fields of a request with `extra`.
    fn decode(extra: Value) -> (Value, Vec<&'static str>) {
        let mut body = json!({"model": "m", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let out = canonical(body.to_string().as_bytes(), None).unwrap();
        (serde_json::from_slice(&out.body).unwrap(), out.dropped)
    }

    fn effort(extra: Value) -> Value {
        let (out, _) = decode(extra);
        for gone in ["thinking", "output_config", "context_management"] {
            assert!(out.get(gone).is_none(), "{gone} in {out}");
        }
        out.get("reasoning_effort").cloned().unwrap_or(Value::Null)
    }

    #[test]
    fn an_enabled_budget_is_the_smallest_level_that_holds_it() {
        for (budget, level) in [
            (1024, "minimal"),
            (1025, "low"),
            (2048, "low"),
            (5000, "medium"),
            (8192, "medium"),
            (8193, "high"),
            (24576, "high"),
            (100_000, "high"),
        ] {
            let got = effort(json!({"thinking": {"type": "enabled", "budget_tokens": budget}}));
            assert_eq!(got, level, "{budget}");
        }
        assert_eq!(level_for(MIN_BUDGET), Effort::Minimal);
    }

    #[test]
    fn disabled_and_adaptive_thinking() {
        assert_eq!(
            effort(json!({"thinking": {"type": "disabled"}})),
            Value::Null
        );
        assert_eq!(
            effort(json!({"thinking": {"type": "adaptive"}})),
            Value::Null
        );
        assert_eq!(effort(json!({"thinking": null})), Value::Null);
        for (asked, level) in [
            ("low", "low"),
            ("medium", "medium"),
            ("high", "high"),
            ("max", "high"),
        ] {
            let adaptive =
                json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": asked}});
            assert_eq!(effort(adaptive), level);
            assert_eq!(effort(json!({"output_config": {"effort": asked}})), level);
        }
        // An explicit budget, or no thinking at all, wins over the effort.
        let both = json!({"thinking": {"type": "enabled", "budget_tokens": 2000},
            "output_config": {"effort": "max"}});
        assert_eq!(effort(both), "low");
        let off = json!({"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}});
        assert_eq!(effort(off), Value::Null);
    }

    #[test]
    fn the_translation_wins_over_a_clients_own_field() {
        let (out, _) = decode(json!({"reasoning_effort": "low",
            "response_format": {"type": "text"},
            "output_config": {"effort": "high", "format": {"type": "json_schema", "schema": {"type": "object"}}}}));
        assert_eq!(out["reasoning_effort"], "high");
        assert_eq!(out["response_format"]["type"], "json_schema");
        // Without the translation's value, the client's own stays.
        let (out, _) = decode(json!({"reasoning_effort": "low"}));
        assert_eq!(out["reasoning_effort"], "low");
    }

    #[test]
    fn an_output_format_is_a_json_schema_response_format() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}},
            "required": ["a"], "additionalProperties": false});
        let (out, dropped) =
            decode(json!({"output_config": {"format": {"type": "json_schema", "schema": schema}}}));
        assert_eq!(
            out["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}})
        );
        assert!(out.get("output_config").is_none() && out.get("reasoning_effort").is_none());
        assert!(dropped.is_empty());
    }

    #[test]
    fn other_output_config_members_stay_for_the_adapter() {
        let (out, _) =
            decode(json!({"output_config": {"effort": "low", "zeta": 1, "alpha": {"x": true}}}));
        assert_eq!(
            out["output_config"],
            json!({"alpha": {"x": true}, "zeta": 1})
        );
        assert_eq!(out["reasoning_effort"], "low");
    }

    #[test]
    fn context_management_is_left_out_and_reported() {
        let (out, dropped) = decode(
            json!({"context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}}),
        );
        assert!(out.get("context_management").is_none());
        assert_eq!(dropped, ["context_management"]);
        let (_, dropped) = decode(json!({"context_management": null}));
        assert!(dropped.is_empty());
    }

    #[test]
    fn claude_codes_controls() {
        let (out, dropped) = decode(json!({"thinking": {"type": "adaptive"},
            "output_config": {"effort": "high"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}}));
        assert_eq!(out["reasoning_effort"], "high");
        for gone in ["thinking", "output_config", "context_management"] {
            assert!(out.get(gone).is_none(), "{gone} in {out}");
        }
        assert_eq!(dropped, ["context_management"]);
    }

    #[test]
    fn bad_shapes_are_400s_naming_the_field() {
        for (extra, param, needle) in [
            (
                json!({"thinking": "on"}),
                "thinking",
                "thinking: must be an object",
            ),
            (
                json!({"thinking": {}}),
                "thinking",
                "thinking.type: Field required",
            ),
            (
                json!({"thinking": {"budget_tokens": 2000}}),
                "thinking",
                "thinking.type: Field required",
            ),
            (
                json!({"thinking": {"type": "sometimes"}}),
                "thinking",
                "thinking.type: must be",
            ),
            (
                json!({"thinking": {"type": 3}}),
                "thinking",
                "thinking.type: must be",
            ),
            (
                json!({"thinking": {"type": "enabled"}}),
                "thinking",
                "thinking.budget_tokens: Field required",
            ),
            (
                json!({"thinking": {"type": "enabled", "budget_tokens": "2000"}}),
                "thinking",
                "thinking.budget_tokens: must be an integer",
            ),
            (
                json!({"thinking": {"type": "enabled", "budget_tokens": 2000.5}}),
                "thinking",
                "thinking.budget_tokens: must be an integer",
            ),
            (
                json!({"thinking": {"type": "enabled", "budget_tokens": -1}}),
                "thinking",
                "thinking.budget_tokens: must be an integer",
            ),
            (
                json!({"thinking": {"type": "enabled", "budget_tokens": 100}}),
                "thinking",
                "thinking.budget_tokens: must be at least 1024",
            ),
            (
                json!({"output_config": "high"}),
                "output_config",
                "output_config: must be an object",
            ),
            (
                json!({"output_config": {"effort": "extreme"}}),
                "output_config",
                "output_config.effort: must be",
            ),
            (
                json!({"output_config": {"effort": 2}}),
                "output_config",
                "output_config.effort: must be",
            ),
            (
                json!({"output_config": {"format": {"type": "json_object"}}}),
                "output_config",
                "output_config.format.type",
            ),
            (
                json!({"output_config": {"format": "json"}}),
                "output_config",
                "output_config.format.type",
            ),
            (
                json!({"output_config": {"format": {"type": "json_schema"}}}),
                "output_config",
                "output_config.format.schema",
            ),
        ] {
            let mut body = json!({"model": "m", "max_tokens": 64,
                "messages": [{"role": "user", "content": "hi"}]});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            let Err(GatewayError::BadRequest {
                message, param: p, ..
            }) = canonical(body.to_string().as_bytes(), None)
            else {
                panic!("{extra} was not refused");
            };
            assert!(message.contains(needle), "{message} / {needle}");
            assert_eq!(p, Some(param), "{extra}");
        }
    }
}
