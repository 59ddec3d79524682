//! `general.enable_cost_tracking`: the response cost from the pricing table.
//!
//! Expected costs are computed from prices typed in here from the providers' public
//! price pages (per million tokens), never from the gateway's own table.

use liter_llm::types::Usage;
use mock_upstream::MockUpstream;
use serde_json::Value;

use crate::support::*;

fn config(mock: &MockUpstream, tracking: bool) -> String {
    format!(
        r#"
[general]
master_key = "{MASTER}"
max_retries = 0
enable_cost_tracking = {tracking}

[[models]]
name = "gpt-4o"
provider_model = "openai/gpt-4o"
base_url = "{base}"

[[models]]
name = "unpriced"
provider_model = "openai/not-in-any-table"
base_url = "{base}"

[[models]]
name = "custom-priced"
provider_model = "openai/house-model"
base_url = "{base}"
input_cost_per_token = 0.001
output_cost_per_token = 0.002

[[models]]
name = "claude"
provider_model = "anthropic/claude-sonnet-4-20250514"
api_key = "k"
base_url = "http://{addr}"

[[models]]
name = "llama"
provider_model = "groq/llama-3.3-70b-versatile"
api_key = "k"
base_url = "{base}"

[[models]]
name = "command"
provider_model = "cohere/command-a-03-2025"
api_key = "k"
base_url = "http://{addr}"

[[models]]
name = "flash"
provider_model = "gemini/gemini-2.5-flash"
api_key = "k"
base_url = "http://{addr}"
"#,
        base = mock.base_url(),
        addr = mock.addr()
    )
}

/// The cost headers' value (both the same) and the usage of a 200 answer.
pub(crate) async fn cost_of(resp: reqwest::Response) -> (f64, Usage) {
    assert_eq!(resp.status(), 200);
    let ours: f64 = resp.headers()["x-liter-llm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let litellm: f64 = resp.headers()["x-litellm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ours, litellm);
    let body: Value = resp.json().await.unwrap();
    (ours, serde_json::from_value(body["usage"].clone()).unwrap())
}

/// Public list prices in USD per million tokens (input, output), as the providers
/// publish them: platform.openai.com/docs/pricing (gpt-4o $2.50 / $10.00),
/// docs.anthropic.com pricing (Claude Sonnet 4 $3 / $15), groq.com/pricing
/// (Llama 3.3 70B Versatile $0.59 / $0.79), cohere.com/pricing (Command A $2.50 /
/// $10.00), ai.google.dev/gemini-api/docs/pricing (Gemini 2.5 Flash $0.30 / $2.50).
const LIST_PRICES: [(&str, f64, f64); 5] = [
    ("gpt-4o", 2.50, 10.00),
    ("claude", 3.00, 15.00),
    ("llama", 0.59, 0.79),
    ("command", 2.50, 10.00),
    ("flash", 0.30, 2.50),
];

#[tokio::test]
async fn priced_models_carry_their_cost() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&config(&mock, true)).await;
    for (model, input_per_m, output_per_m) in LIST_PRICES {
        let (cost, usage) = cost_of(gw.chat(MASTER, hello(model)).await).await;
        assert!(
            usage.prompt_tokens > 0 && usage.completion_tokens > 0,
            "{model}"
        );
        let expected = (usage.prompt_tokens as f64 * input_per_m
            + usage.completion_tokens as f64 * output_per_m)
            / 1e6;
        assert!(
            (cost - expected).abs() < 1e-12,
            "{model}: {cost} vs {expected} for {usage:?}"
        );
    }
}

#[tokio::test]
async fn per_model_prices_override_the_table() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&config(&mock, true)).await;
    let (cost, usage) = cost_of(gw.chat(MASTER, hello("custom-priced")).await).await;
    let expected = usage.prompt_tokens as f64 * 0.001 + usage.completion_tokens as f64 * 0.002;
    assert!((cost - expected).abs() < 1e-9, "{cost} vs {expected}");
}

#[tokio::test]
async fn an_unknown_model_costs_zero_and_still_answers() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&config(&mock, true)).await;
    for _ in 0..2 {
        let (cost, _) = cost_of(gw.chat(MASTER, hello("unpriced")).await).await;
        assert_eq!(cost, 0.0);
    }
}

#[tokio::test]
async fn no_cost_header_without_tracking() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&config(&mock, false)).await;
    let resp = gw.chat(MASTER, hello("gpt-4o")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-liter-llm-response-cost").is_none());
}
