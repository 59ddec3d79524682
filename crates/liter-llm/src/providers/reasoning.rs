//! OpenAI's `reasoning_effort` (`none`, `minimal`, `low`, `medium`, `high`) read once
//! for every translating adapter, and the thinking budget (tokens) each level stands for.
//! Each adapter writes the level in its provider's terms: Anthropic's `thinking`, Gemini
//! 2.5's `thinkingBudget` or Gemini 3's `thinkingLevel`, Bedrock Claude's
//! `reasoning_config`. Pure data; touches nothing but the request types.

use serde_json::Value;

use crate::providers::convert::invalid;
use crate::types::ProviderError;

/// The smallest budget Anthropic accepts (and so the smallest a deployment may set).
pub const MIN_BUDGET: u64 = 1024;
/// The largest budget a deployment may set.
pub const MAX_BUDGET: u64 = 1_000_000;

/// Thinking budgets in tokens per level: the defaults, or a model entry's
/// `reasoning_budgets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasoningBudgets {
    pub minimal: u64,
    pub low: u64,
    pub medium: u64,
    pub high: u64,
}

impl Default for ReasoningBudgets {
    fn default() -> Self {
        Self {
            minimal: MIN_BUDGET,
            low: 2048,
            medium: 8192,
            high: 24576,
        }
    }
}

impl ReasoningBudgets {
    /// The budget for `effort`; `None` for [`Effort::None`] (no thinking).
    pub fn budget(&self, effort: Effort) -> Option<u64> {
        match effort {
            Effort::None => None,
            Effort::Minimal => Some(self.minimal),
            Effort::Low => Some(self.low),
            Effort::Medium => Some(self.medium),
            Effort::High => Some(self.high),
        }
    }
}

/// One `reasoning_effort` level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    None,
    Minimal,
    Low,
    Medium,
    High,
}

impl Effort {
    /// The level as OpenAI (and Gemini 3's `thinkingLevel`) spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::None => "none",
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
    }
}

/// The request's `reasoning_effort` (`null` or absent: `None`); any other value is a
/// 400 naming the parameter.
pub fn effort(value: Option<&Value>) -> Result<Option<Effort>, ProviderError> {
    let level = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v.as_str().unwrap_or(""),
    };
    let effort = match level {
        "none" => Effort::None,
        "minimal" => Effort::Minimal,
        "low" => Effort::Low,
        "medium" => Effort::Medium,
        "high" => Effort::High,
        _ => {
            return Err(invalid(
                "reasoning_effort must be one of none, minimal, low, medium, high",
                "reasoning_effort",
            ))
        }
    };
    Ok(Some(effort))
}

/// `max_tokens` for a request that thinks with `budget`: the client's limit when it
/// leaves room above the budget (Anthropic requires `budget_tokens < max_tokens`), else
/// the budget plus the client's limit (or plus `default` when it set none), so the
/// answer after the thinking keeps what the client asked for.
pub fn max_tokens_with_budget(asked: Option<u64>, budget: u64, default: u64) -> u64 {
    match asked {
        Some(n) if n > budget => n,
        Some(n) => budget + n.max(1),
        None => budget + default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn levels_and_budgets() {
        let b = ReasoningBudgets::default();
        for (v, e, budget) in [
            ("none", Effort::None, None),
            ("minimal", Effort::Minimal, Some(1024)),
            ("low", Effort::Low, Some(2048)),
            ("medium", Effort::Medium, Some(8192)),
            ("high", Effort::High, Some(24576)),
        ] {
            let got = effort(Some(&json!(v))).unwrap().unwrap();
            assert_eq!(got, e);
            assert_eq!(got.as_str(), v);
            assert_eq!(b.budget(got), budget);
        }
        assert_eq!(effort(None).unwrap(), None);
        assert_eq!(effort(Some(&Value::Null)).unwrap(), None);
        for bad in [json!("max"), json!(3)] {
            let e = effort(Some(&bad)).unwrap_err();
            assert_eq!(e.error.param.as_deref(), Some("reasoning_effort"));
        }
    }

    #[test]
    fn max_tokens_leave_room_above_the_budget() {
        assert_eq!(max_tokens_with_budget(Some(30000), 2048, 4096), 30000);
        assert_eq!(max_tokens_with_budget(Some(100), 2048, 4096), 2148);
        assert_eq!(max_tokens_with_budget(Some(2048), 2048, 4096), 4096);
        assert_eq!(max_tokens_with_budget(None, 2048, 4096), 6144);
    }
}
