//! The native Bedrock provider through the gateway: OpenAI in, Converse (SigV4-signed,
//! binary event stream) out. The mock verifies every signature with the secret below.

use futures_util::StreamExt;
use mock_upstream::{Fault, MockOptions, MockUpstream};
use serde_json::{json, Value};

use crate::support::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYTESTSECRET";
const MODEL_ID: &str = "us.amazon.nova-lite-v1:0";
const PATH: &str = "/model/us.amazon.nova-lite-v1%3A0";

async fn signed_mock() -> MockUpstream {
    MockUpstream::start_with(MockOptions {
        require_api_key: Some(SECRET.into()),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn model_toml(mock: &MockUpstream, name: &str, model_id: &str, extra: &str) -> String {
    format!(
        "[[models]]\nname = \"{name}\"\nprovider_model = \"bedrock/{model_id}\"\naws_access_key_id = \"AKIDTEST\"\naws_secret_access_key = \"{SECRET}\"\naws_region_name = \"us-west-2\"\nbase_url = \"http://{}\"\n{extra}",
        mock.addr()
    )
}

async fn nova_gateway(mock: &MockUpstream, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n{}",
        model_toml(mock, "nova", MODEL_ID, extra)
    ))
    .await
}

async fn sse_chunks(resp: reqwest::Response) -> Vec<Value> {
    let mut text = String::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

#[tokio::test]
async fn chat_is_translated_and_signed() {
    let mock = signed_mock().await;
    let gw = nova_gateway(&mock, "").await;
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "nova", "max_tokens": 100, "temperature": 0.5, "top_p": 0.9,
                "stop": ["END"], "user": "u-1",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "first"},
                    {"role": "assistant", "content": "ok"},
                    {"role": "user", "content": [{"type": "text", "text": "hello nova"}]}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "nova");
    assert_eq!(out["choices"][0]["message"]["content"], "echo: hello nova");
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert_eq!(out["usage"]["completion_tokens"], 3);
    assert_eq!(out["usage"]["prompt_tokens"], 6);
    assert_eq!(out["usage"]["total_tokens"], 9);

    let req = &mock.requests()[0];
    assert_eq!(req.path, format!("{PATH}/converse"));
    let auth = req.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
            && auth.contains("/us-west-2/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="),
        "{auth}"
    );
    assert!(req.header("x-amz-date").unwrap().ends_with('Z'));
    assert_eq!(req.header("accept"), Some("application/json"));
    let sent = req.body.as_ref().unwrap();
    assert_eq!(sent["system"], json!([{"text": "be brief"}]));
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [{"text": "first"}]},
            {"role": "assistant", "content": [{"text": "ok"}]},
            {"role": "user", "content": [{"text": "hello nova"}]}])
    );
    assert_eq!(
        sent["inferenceConfig"],
        json!({"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]})
    );
    assert_eq!(sent["requestMetadata"], json!({"user": "u-1"}));
    assert!(sent.get("model").is_none() && sent.get("stream").is_none());
}

#[tokio::test]
async fn stream_is_decoded_from_event_stream_frames_with_usage() {
    let mock = signed_mock().await;
    let gw = nova_gateway(&mock, "").await;
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "nova", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "one two three"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let chunks = sse_chunks(resp).await;
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "echo: one two three");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0].get("finish_reason"))
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, vec![&json!("stop")]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], 3);
    assert_eq!(usage["completion_tokens"], 4);
    let req = &mock.requests()[0];
    assert_eq!(req.path, format!("{PATH}/converse-stream"));
    assert_eq!(
        req.header("accept"),
        Some("application/vnd.amazon.eventstream")
    );
}

#[tokio::test]
async fn a_cut_stream_ends_in_an_error_event() {
    let mock = signed_mock().await;
    let gw = nova_gateway(&mock, "").await;
    mock.push_fault(Fault::cut_stream(2));
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "nova", "stream": true, "messages": [{"role": "user", "content": "a b c d"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap_or_default();
    assert!(text.contains("echo"), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    assert!(text.contains("error"), "{text}");
}

#[tokio::test]
async fn tool_calls_both_ways_and_in_stream_deltas() {
    let mock = signed_mock().await;
    let gw = nova_gateway(&mock, "").await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let out: Value = gw
        .chat(
            MASTER,
            json!({"model": "nova", "tools": tools, "tool_choice": "required",
                "messages": [{"role": "user", "content": "please call tool"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    let call = &out["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{}");
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(
        sent["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "get_weather", "description": "weather",
            "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}],
            "toolChoice": {"any": {}}})
    );

    // The result goes back as toolUse + toolResult blocks.
    let id = call["id"].as_str().unwrap();
    let out: Value = gw
        .chat(
            MASTER,
            json!({"model": "nova", "tools": tools, "messages": [
                {"role": "user", "content": "please call tool"},
                {"role": "assistant", "content": null, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": id, "content": "sunny"},
                {"role": "user", "content": "thanks"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "echo: thanks");
    let sent = mock.requests()[1].body.clone().unwrap();
    assert_eq!(
        sent["messages"][1],
        json!({"role": "assistant", "content": [{"toolUse": {"toolUseId": id, "name": "get_weather", "input": {}}}]})
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "user", "content": [
            {"toolResult": {"toolUseId": id, "content": [{"text": "sunny"}]}},
            {"text": "thanks"}]})
    );

    let resp = gw
        .chat(
            MASTER,
            json!({"model": "nova", "stream": true, "tools": tools,
                "messages": [{"role": "user", "content": "call tool now"}]}),
        )
        .await;
    let chunks = sse_chunks(resp).await;
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .collect();
    assert_eq!(calls[0][0]["function"]["name"], "get_weather");
    assert_eq!(calls[0][0]["index"], 0);
    let args: String = calls
        .iter()
        .filter_map(|c| c[0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{}");
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
}

#[tokio::test]
async fn images_base64_are_sent_as_bytes_and_urls_are_refused() {
    let mock = signed_mock().await;
    let gw = nova_gateway(&mock, "").await;
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "nova", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(
        sent["messages"][0]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
    );
    let err = expect_error(
        gw.chat(
            MASTER,
            json!({"model": "nova", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["param"], "messages[0].content[0]");
    assert_eq!(
        mock.requests().len(),
        1,
        "a refused request never reaches bedrock"
    );
}

#[tokio::test]
async fn json_schema_goes_to_output_config_and_json_object_to_a_forced_tool() {
    let mock = signed_mock().await;
    let gw = nova_gateway(&mock, "").await;
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "nova", "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let sent = mock.requests()[0].body.clone().unwrap();
    let format = &sent["outputConfig"]["textFormat"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["structure"]["jsonSchema"]["name"], "r");
    let sent_schema: Value = serde_json::from_str(
        format["structure"]["jsonSchema"]["schema"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(sent_schema, schema);
    // json_object: a forced tool whose input is the answer.
    let out: Value = gw
        .chat(
            MASTER,
            json!({"model": "nova", "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_object"}}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "{}");
    assert!(out["choices"][0]["message"]["tool_calls"].is_null());
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    let sent = mock.requests()[1].body.clone().unwrap();
    assert_eq!(
        sent["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "json_object_answer"}})
    );
    let err = expect_error(
        gw.chat(
            MASTER,
            json!({"model": "nova", "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "response_format": {"type": "json_object"}}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["param"], "response_format");
}

#[tokio::test]
async fn bedrock_errors_map_to_openai_errors() {
    let mock = signed_mock().await;
    let gw = nova_gateway(&mock, "").await;

    mock.push_fault(Fault::status(429).retry_after(9));
    let resp = gw.chat(MASTER, hello("nova")).await;
    assert_eq!(resp.headers()["retry-after"], "9");
    let err = expect_error(resp, 429).await;
    assert_eq!(err["error"]["code"], "rate_limit_exceeded");

    mock.push_fault(
        Fault::status(400).with_body(json!({"message": "Input is too long for requested model."})),
    );
    let err = expect_error(gw.chat(MASTER, hello("nova")).await, 400).await;
    assert_eq!(err["error"]["code"], "context_length_exceeded");

    mock.push_fault(Fault::status(503));
    let err = expect_error(gw.chat(MASTER, hello("nova")).await, 503).await;
    assert_eq!(err["error"]["code"], "overloaded");

    mock.push_fault(Fault::status(403));
    let err = expect_error(gw.chat(MASTER, hello("nova")).await, 403).await;
    assert_eq!(err["error"]["code"], "permission_denied");

    mock.push_fault(Fault::status(408));
    expect_error(gw.chat(MASTER, hello("nova")).await, 504).await;

    // A guardrail stop is a 200 answer: OpenAI's content_filter finish reason.
    mock.push_fault(Fault::status(200).with_body(json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "Sorry, I can't help."}]}},
        "stopReason": "guardrail_intervened",
        "usage": {"inputTokens": 5, "outputTokens": 4, "totalTokens": 9, "cacheReadInputTokens": 2}})));
    let out: Value = gw.chat(MASTER, hello("nova")).await.json().await.unwrap();
    assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(out["usage"]["prompt_tokens"], 7);
    assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 2);

    let err = expect_error(
        gw.chat(
            MASTER,
            json!({"model": "nova", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["param"], "n");
}

#[tokio::test]
async fn a_wrong_secret_is_401_and_never_echoed() {
    let mock = MockUpstream::start_with(MockOptions {
        require_api_key: Some("a-different-secret".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let gw = nova_gateway(&mock, "").await;
    let err = expect_error(gw.chat(MASTER, hello("nova")).await, 401).await;
    assert_eq!(err["error"]["type"], "authentication_error");
    assert!(!err.to_string().contains(SECRET));
}

#[tokio::test]
async fn an_overloaded_bedrock_deployment_falls_back() {
    let mock = signed_mock().await;
    let gw = nova_gateway(
        &mock,
        &format!(
            "fallbacks = [\"gpt\"]\n[[models]]\nname = \"gpt\"\nprovider_model = \"openai/gpt-4o-mini\"\napi_key = \"{SECRET}\"\nbase_url = \"{}\"\n",
            mock.base_url()
        ),
    )
    .await;
    mock.push_fault(Fault::status(503).for_model(MODEL_ID).forever());
    let resp = gw.chat(MASTER, hello("nova")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-model"], "gpt");
}

#[tokio::test]
async fn embeddings_titan_and_cohere() {
    let mock = signed_mock().await;
    let gw = Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n{}{}",
        model_toml(&mock, "titan", "amazon.titan-embed-text-v2:0", ""),
        model_toml(&mock, "cohere", "cohere.embed-english-v3", "")
    ))
    .await;
    let out: Value = gw
        .post(
            "/v1/embeddings",
            Some(MASTER),
            &json!({"model": "titan", "input": "hello there", "dimensions": 4}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(out["object"], "list");
    assert_eq!(out["data"][0]["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(out["usage"]["prompt_tokens"], 2);
    let req = &mock.requests()[0];
    assert_eq!(req.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
    assert_eq!(
        req.body.clone().unwrap(),
        json!({"inputText": "hello there", "dimensions": 4})
    );

    let resp = gw
        .post(
            "/v1/embeddings",
            Some(MASTER),
            &json!({"model": "titan", "input": ["a", "b"]}),
        )
        .send()
        .await
        .unwrap();
    let err = expect_error(resp, 400).await;
    assert_eq!(err["error"]["param"], "input");

    let out: Value = gw
        .post(
            "/v1/embeddings",
            Some(MASTER),
            &json!({"model": "cohere", "input": ["a", "b c"]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(out["data"].as_array().unwrap().len(), 2);
    assert_eq!(out["data"][1]["index"], 1);
    assert_eq!(
        mock.requests().last().unwrap().body.clone().unwrap(),
        json!({"texts": ["a", "b c"], "input_type": "search_document"})
    );
}

#[tokio::test]
async fn unsupported_parameters_are_400_or_dropped_with_a_warning_header() {
    let mock = signed_mock().await;
    let body = json!({"model": "nova", "seed": 7, "logprobs": null,
        "messages": [{"role": "user", "content": "hi"}]});
    let gw = nova_gateway(&mock, "").await;
    let err = expect_error(gw.chat(MASTER, body.clone()).await, 400).await;
    assert_eq!(err["error"]["param"], "seed");
    assert!(mock.requests().is_empty(), "nothing may reach the provider");

    let gw = nova_gateway(&mock, "drop_params = true\n").await;
    let resp = gw.chat(MASTER, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-dropped-params"], "seed");
    let sent = mock.requests()[0].body.clone().unwrap();
    assert!(sent.get("seed").is_none() && sent.get("logprobs").is_none());
}

#[tokio::test]
async fn credentials_and_region_from_the_environment_with_a_session_token() {
    let mock = signed_mock().await;
    let env = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" => Some("AKIDENV".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some(SECRET.to_string()),
        "AWS_SESSION_TOKEN" => Some("session-token-xyz".to_string()),
        "AWS_DEFAULT_REGION" => Some("eu-central-1".to_string()),
        _ => None,
    };
    let gw = Gateway::start_with_env(
        &format!(
            "[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"nova\"\nprovider_model = \"bedrock/{MODEL_ID}\"\nbase_url = \"http://{}\"\n",
            mock.addr()
        ),
        env,
    )
    .await;
    let resp = gw.chat(MASTER, hello("nova")).await;
    assert_eq!(resp.status(), 200);
    let req = &mock.requests()[0];
    assert_eq!(
        req.header("x-amz-security-token"),
        Some("session-token-xyz")
    );
    let auth = req.header("authorization").unwrap();
    assert!(auth.contains("Credential=AKIDENV/"), "{auth}");
    assert!(
        auth.contains("/eu-central-1/bedrock/aws4_request"),
        "{auth}"
    );
    assert!(auth.contains("x-amz-security-token"), "{auth}");
}

#[test]
fn missing_credentials_are_config_errors_naming_field_and_variable() {
    let toml = format!(
        "[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"nova\"\nprovider_model = \"bedrock/{MODEL_ID}\"\naws_access_key_id = \"AKID\"\n"
    );
    let err = liter_llm_proxy::config::load_str(
        &toml,
        "t.toml",
        &liter_llm_proxy::config::Overrides::default(),
        |_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("aws_secret_access_key") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert!(
        err.contains("aws_region_name") && err.contains("AWS_REGION"),
        "{err}"
    );
    // The region alone gives the default endpoint; a wrong field is still refused.
    let toml = format!(
        "[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"nova\"\nprovider_model = \"bedrock/{MODEL_ID}\"\napi_version = \"x\"\n"
    );
    let env = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => Some("k".to_string()),
        "AWS_REGION" => Some("us-east-1".to_string()),
        _ => None,
    };
    let err = liter_llm_proxy::config::load_str(
        &toml,
        "t.toml",
        &liter_llm_proxy::config::Overrides::default(),
        env,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("1 problem") && err.contains("models[0].api_version"),
        "{err}"
    );
}

#[test]
fn aliases_cannot_name_bedrock() {
    let toml = format!(
        "[general]\nmaster_key = \"{MASTER}\"\n[[aliases]]\npattern = \"bedrock/*\"\nbase_url = \"http://127.0.0.1:9\"\n"
    );
    let err = liter_llm_proxy::config::load_str(
        &toml,
        "t.toml",
        &liter_llm_proxy::config::Overrides::default(),
        |_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("aliases[0].pattern") && err.contains("[[models]]"),
        "{err}"
    );
}
