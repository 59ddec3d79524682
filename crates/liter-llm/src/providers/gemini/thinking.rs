//! `reasoning_effort` in Gemini's terms, which depend on the model generation: Gemini
//! 2.5 takes a token budget (`thinkingConfig.thinkingBudget`), Gemini 3 and later a
//! level (`thinkingConfig.thinkingLevel`); older models do not think, and the parameter
//! is refused (or dropped under `drop_params`) as before. Pure; used by [`super::request`].

use serde_json::{json, Value};

use crate::providers::reasoning::{Effort, ReasoningBudgets};

/// How a model is told how much to think.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkingControl {
    /// Gemini 2.5: `thinkingBudget` in tokens (`none`: 0).
    Budget,
    /// Gemini 3 and later: `thinkingLevel` (`none`: `minimal`, the least there is).
    Level,
    /// Older models, and ids the gateway cannot place.
    Unsupported,
}

impl ThinkingControl {
    /// The control for a model id (`gemini-2.5-flash`, `models/gemini-3-pro-preview`).
    pub fn of(model_id: &str) -> Self {
        let id = model_id.rsplit('/').next().unwrap_or(model_id);
        let Some(version) = id.strip_prefix("gemini-") else {
            return Self::Unsupported;
        };
        let mut numbers = version
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse::<u32>().ok());
        match (numbers.next().flatten(), numbers.next().flatten()) {
            (Some(major), _) if major >= 3 => Self::Level,
            (Some(2), Some(minor)) if minor >= 5 && version.starts_with("2.") => Self::Budget,
            _ => Self::Unsupported,
        }
    }

    /// The `thinkingConfig` for `effort`; `None` when the model has no control.
    pub fn config(self, effort: Effort, budgets: &ReasoningBudgets) -> Option<Value> {
        match self {
            Self::Unsupported => None,
            Self::Budget => Some(json!({ "thinkingBudget": budgets.budget(effort).unwrap_or(0) })),
            Self::Level => {
                let level = match effort {
                    Effort::None => "minimal",
                    other => other.as_str(),
                };
                Some(json!({ "thinkingLevel": level }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_per_generation() {
        for (id, control) in [
            ("gemini-2.5-flash", ThinkingControl::Budget),
            ("gemini-2.5-pro", ThinkingControl::Budget),
            ("models/gemini-2.5-flash-lite", ThinkingControl::Budget),
            ("gemini-3-pro-preview", ThinkingControl::Level),
            ("gemini-3.1-pro", ThinkingControl::Level),
            ("gemini-2.0-flash", ThinkingControl::Unsupported),
            ("gemini-1.5-pro", ThinkingControl::Unsupported),
            ("gemma-3-27b-it", ThinkingControl::Unsupported),
        ] {
            assert_eq!(ThinkingControl::of(id), control, "{id}");
        }
    }

    #[test]
    fn configs() {
        let b = ReasoningBudgets::default();
        let budget = ThinkingControl::Budget;
        assert_eq!(
            budget.config(Effort::Low, &b),
            Some(json!({"thinkingBudget": 2048}))
        );
        assert_eq!(
            budget.config(Effort::None, &b),
            Some(json!({"thinkingBudget": 0}))
        );
        let level = ThinkingControl::Level;
        assert_eq!(
            level.config(Effort::High, &b),
            Some(json!({"thinkingLevel": "high"}))
        );
        assert_eq!(
            level.config(Effort::None, &b),
            Some(json!({"thinkingLevel": "minimal"}))
        );
        assert_eq!(ThinkingControl::Unsupported.config(Effort::High, &b), None);
    }
}
