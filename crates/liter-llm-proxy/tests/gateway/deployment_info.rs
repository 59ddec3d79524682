//! What a deployment says of itself (LiteLLM's `model_info` and `max_retries`), end
//! to end: `mode` picks the health probe's call, `base_model` prices the deployment,
//! `max_input_tokens` keeps a longer prompt away from it (LiteLLM's pre-call check,
//! then `context_window_fallbacks`), a model's `max_retries` replaces the gateway's,
//! `[router] retry_after_secs` is the shortest wait before a retry that waits, and
//! `/model/info`, `/v1/model/info` and `/model_group/info` report them.

use std::time::{Duration, Instant};

use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};

use crate::support::*;

fn model(name: &str, upstream: &str, base: &str, extra: &str) -> String {
    format!(
        "\n[[models]]\nname = \"{name}\"\nprovider_model = \"openai/{upstream}\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"{base}\"\n{extra}"
    )
}

fn header(extra: &str) -> String {
    format!("[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n{extra}\n")
}

/// A chat request whose prompt is about `words` tokens.
fn prompt(model: &str, words: usize) -> Value {
    let text = vec!["word"; words].join(" ");
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// The upstream model ids the mock was asked for, in order.
fn upstream_models(mock: &MockUpstream) -> Vec<String> {
    mock.requests()
        .iter()
        .filter_map(|r| r.body.as_ref()?["model"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn an_embedding_deployment_is_probed_with_an_embeddings_request() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let cfg = format!(
        "{}{}{}\n[health]\ninterval_secs = 1\n",
        header(""),
        model("chat", "chat-model", &base, ""),
        model("embed", "embed-model", &base, "mode = \"embedding\""),
    );
    let gw = Gateway::start(&cfg).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while mock.requests().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let probes = mock.requests();
    let of = |m: &str| {
        probes
            .iter()
            .find(|r| r.body.as_ref().is_some_and(|b| b["model"] == m))
            .unwrap_or_else(|| panic!("no probe of {m}"))
            .clone()
    };
    let embed = of("embed-model");
    assert!(embed.path.ends_with("/embeddings"), "{}", embed.path);
    assert_eq!(embed.body.as_ref().unwrap()["input"], "ping");
    let chat = of("chat-model");
    assert!(chat.path.ends_with("/chat/completions"), "{}", chat.path);
    // Both pass: neither is marked unhealthy.
    let ready = gw.get_json("/health/readiness", MASTER).await;
    for d in ready["deployments"].as_array().unwrap() {
        assert_eq!(d["healthy"], true, "{ready}");
    }
}

#[tokio::test]
async fn base_model_prices_the_deployment() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let cfg = format!(
        "{}{}{}",
        header("enable_cost_tracking = true"),
        // An Azure-style deployment name that says nothing of its model.
        model(
            "prod",
            "my-prod-deployment",
            &base,
            "base_model = \"openai/gpt-4o\""
        ),
        model(
            "own-price",
            "my-other-deployment",
            &base,
            "base_model = \"openai/gpt-4o\"\ninput_cost_per_token = 0.001"
        ),
    );
    let gw = Gateway::start(&cfg).await;
    for (name, input_per_token) in [("prod", 2.50 / 1e6), ("own-price", 0.001)] {
        let (cost, usage) = crate::cost::cost_of(gw.chat(MASTER, hello(name)).await).await;
        let (input, output) = (usage.prompt_tokens as f64, usage.completion_tokens as f64);
        // gpt-4o's list price: $2.50 / $10.00 per million tokens.
        let expected = input * input_per_token + output * 10.00 / 1e6;
        assert!(
            (cost - expected).abs() < 1e-12,
            "{name}: {cost} vs {expected}"
        );
    }
}

#[tokio::test]
async fn a_prompt_longer_than_a_context_window_skips_that_deployment() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let cfg = format!(
        "{}{}{}{}{}{}",
        header(""),
        model("pool", "small", &base, "max_input_tokens = 50"),
        model("pool", "large", &base, "max_input_tokens = 5000"),
        model(
            "short",
            "short",
            &base,
            "max_input_tokens = 50\ncontext_window_fallbacks = [\"long\"]"
        ),
        model("long", "long", &base, ""),
        model("tiny", "tiny", &base, "max_input_tokens = 50"),
    );
    let gw = Gateway::start(&cfg).await;

    // A long prompt never goes to the small window; short ones go to both.
    for _ in 0..6 {
        assert_eq!(gw.chat(MASTER, prompt("pool", 200)).await.status(), 200);
    }
    assert_eq!(upstream_models(&mock), vec!["large"; 6]);
    mock.clear_requests();
    for _ in 0..30 {
        assert_eq!(gw.chat(MASTER, prompt("pool", 5)).await.status(), 200);
    }
    assert!(upstream_models(&mock).iter().any(|m| m == "small"));

    // No deployment takes it: the context-window fallbacks do.
    mock.clear_requests();
    let resp = gw.chat(MASTER, prompt("short", 200)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(upstream_models(&mock), ["long"]);

    // And without any: OpenAI's context-length error, with no upstream call.
    mock.clear_requests();
    let err = expect_error(gw.chat(MASTER, prompt("tiny", 200)).await, 400).await;
    assert_eq!(err["error"]["code"], "context_length_exceeded", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length is 50 tokens"),
        "{err}"
    );
    assert!(mock.requests().is_empty());
    assert_eq!(gw.chat(MASTER, prompt("tiny", 5)).await.status(), 200);
}

#[tokio::test]
async fn a_models_max_retries_replaces_the_gateways() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let cfg = format!(
        "{}{}{}",
        header(""),
        model("patient", "patient", &base, "max_retries = 2"),
        model("plain", "plain", &base, ""),
    );
    let gw = Gateway::start(&cfg).await;
    mock.push_fault(Fault::status(503).for_model("patient").times(2));
    assert_eq!(gw.chat(MASTER, hello("patient")).await.status(), 200);
    assert_eq!(upstream_models(&mock), ["patient"; 3]);

    // The gateway's max_retries = 0 still holds for the other model.
    mock.clear_requests();
    mock.push_fault(Fault::status(503).for_model("plain"));
    assert_eq!(gw.chat(MASTER, hello("plain")).await.status(), 502);
    assert_eq!(upstream_models(&mock), ["plain"]);

    // Entries of one model give it one retry count.
    let e = liter_llm_proxy::config::load_str(
        &format!(
            "{}{}{}",
            header(""),
            model("m", "a", &base, "max_retries = 2"),
            model("m", "b", &base, "max_retries = 1")
        ),
        "t.toml",
        &Default::default(),
        |_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("models[1].max_retries"), "{e}");
}

#[tokio::test]
async fn retry_after_is_the_shortest_wait_before_a_retry() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let cfg = format!(
        "{}{}\n[router]\nretry_after_secs = 1\n",
        header("").replace("max_retries = 0", "max_retries = 1"),
        model("one", "one", &base, ""),
    );
    let gw = Gateway::start(&cfg).await;
    // The only deployment fails once with no Retry-After: the retry waits a second,
    // not the backoff's fraction of one.
    mock.push_fault(Fault::status(503).for_model("one"));
    let started = Instant::now();
    assert_eq!(gw.chat(MASTER, hello("one")).await.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(upstream_models(&mock), ["one"; 2]);
}

#[tokio::test]
async fn model_info_reports_mode_base_model_and_token_limits() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let cfg = format!(
        "{}{}{}{}",
        header(""),
        model(
            "gpt",
            "a",
            &base,
            "base_model = \"openai/gpt-4o\"\nmax_tokens = 4096\nmax_input_tokens = 1000\nmax_output_tokens = 300\nmax_retries = 4"
        ),
        model("gpt", "b", &base, "max_input_tokens = 8000\nmax_output_tokens = 200\nmax_retries = 4"),
        model("embed", "e", &base, "mode = \"embedding\""),
    );
    let gw = Gateway::start(&cfg).await;
    for path in ["/model/info", "/v1/model/info"] {
        let info = gw.get_json(path, MASTER).await;
        let data = info["data"].as_array().unwrap();
        let a = &data[0];
        assert_eq!(a["model_info"]["mode"], "chat", "{info}");
        assert_eq!(a["model_info"]["base_model"], "openai/gpt-4o");
        assert_eq!(a["model_info"]["max_tokens"], 4096);
        assert_eq!(a["model_info"]["max_input_tokens"], 1000);
        assert_eq!(a["model_info"]["max_output_tokens"], 300);
        assert_eq!(a["litellm_params"]["max_retries"], 4);
        assert_eq!(data[2]["model_info"]["mode"], "embedding");
        assert_eq!(data[2]["model_info"]["max_input_tokens"], Value::Null);
    }
    let groups = gw.get_json("/model_group/info", MASTER).await;
    let gpt = &groups["data"][0];
    assert_eq!(gpt["model_group"], "gpt");
    assert_eq!(gpt["max_input_tokens"], 8000, "{groups}");
    assert_eq!(gpt["max_output_tokens"], 300);
    assert_eq!(groups["data"][1]["mode"], "embedding");
}

#[test]
fn modes_that_cannot_be_served_are_refused_by_name() {
    let load = |extra: &str| {
        liter_llm_proxy::config::load_str(
            &format!(
                "{}{}",
                header(""),
                model("m", "x", "http://127.0.0.1:9/v1", extra)
            ),
            "t.toml",
            &Default::default(),
            |_| None,
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    let e = load("mode = \"image_generation\"");
    assert!(
        e.contains("models[0].mode: not supported yet: mode \"image_generation\""),
        "{e}"
    );
    let e = load("mode = \"chatty\"");
    assert!(e.contains("unknown mode"), "{e}");
    let e = load("base_model = \"gpt-4o\"");
    assert!(e.contains("models[0].base_model"), "{e}");
    let e = load("max_input_tokens = 0");
    assert!(e.contains("max_input_tokens must be greater than 0"), "{e}");
}

#[tokio::test]
async fn max_output_tokens_is_the_output_a_request_is_assumed_to_ask_for() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let cfg = format!(
        "{}[[keys]]\nkey = \"{VKEY}\"\ntpm = 1000\n{}{}",
        header(""),
        model("capped", "capped", &base, "max_output_tokens = 100"),
        model("uncapped", "uncapped", &base, ""),
    );
    let gw = Gateway::start(&cfg).await;
    // Without max_tokens, a request to the uncapped model is assumed to ask for the
    // default 4096 tokens, over the key's tpm; the capped one for 100.
    assert_eq!(gw.chat(VKEY, hello("uncapped")).await.status(), 429);
    assert_eq!(gw.chat(VKEY, hello("capped")).await.status(), 200);
}
