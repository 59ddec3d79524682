//! The Gemini API (`gemini/`) through the gateway: OpenAI in, generateContent out.

use futures_util::StreamExt;
use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};

use crate::support::*;

const MODEL_ID: &str = "gemini-2.0-flash";
const PATH: &str = "/v1beta/models/gemini-2.0-flash:generateContent";

async fn gemini_gateway(mock: &MockUpstream, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n[[models]]\nname = \"gem\"\nprovider_model = \"gemini/{MODEL_ID}\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"http://{}\"\n{extra}",
        mock.addr()
    ))
    .await
}

/// The `data:` chunks of a streamed answer (`[DONE]` checked and left out).
pub async fn stream_chunks(resp: reqwest::Response) -> Vec<Value> {
    assert_eq!(resp.status(), 200);
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
async fn chat_is_translated_both_ways() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = gemini_gateway(&mock, "").await;
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "gem", "max_tokens": 100, "temperature": 0.5, "top_p": 0.9,
                "stop": ["END"], "user": "u-1",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "hello gemini"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "gem");
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "echo: hello gemini"
    );
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    let usage = &out["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["completion_tokens"], 3);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + 3
    );

    let req = &mock.requests()[0];
    assert_eq!(req.path, PATH);
    assert_eq!(req.header("x-goog-api-key"), Some(UPSTREAM_KEY));
    assert!(req.header("authorization").is_none());
    let sent = req.body.as_ref().unwrap();
    assert_eq!(
        sent["systemInstruction"],
        json!({"parts": [{"text": "be brief"}]})
    );
    assert_eq!(
        sent["contents"],
        json!([{"role": "user", "parts": [{"text": "hi"}]},
               {"role": "model", "parts": [{"text": "hello"}]},
               {"role": "user", "parts": [{"text": "hello gemini"}]}])
    );
    assert_eq!(
        sent["generationConfig"],
        json!({"temperature": 0.5, "topP": 0.9, "maxOutputTokens": 100, "stopSequences": ["END"]})
    );
    assert!(sent.get("model").is_none() && sent.get("user").is_none());
}

#[tokio::test]
async fn stream_is_translated_with_usage() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = gemini_gateway(&mock, "").await;
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "gem", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "one two three"}]}),
        )
        .await;
    let chunks = stream_chunks(resp).await;
    assert_eq!(
        mock.requests()[0].path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "echo: one two three");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let finish: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .map(|c| &c["choices"][0]["finish_reason"])
        .collect();
    assert_eq!(finish, vec!["stop"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 4);
}

#[tokio::test]
async fn tool_calls_whole_and_streamed() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = gemini_gateway(&mock, "").await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "additionalProperties": false}}}]);
    let body = json!({"model": "gem", "tools": tools, "tool_choice": "required",
        "messages": [{"role": "user", "content": "please call tool"}]});
    let out: Value = gw.chat(MASTER, body.clone()).await.json().await.unwrap();
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{}");
    let id = call["id"].as_str().unwrap().to_string();
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(
        sent["tools"],
        json!([{"functionDeclarations": [{"name": "get_weather", "description": "weather",
            "parametersJsonSchema": tools[0]["function"]["parameters"]}]}])
    );
    assert_eq!(
        sent["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );

    // The result goes back as a functionResponse named after the call.
    let follow = json!({"model": "gem", "tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "messages": [{"role": "user", "content": "please call tool"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": id, "content": "{\"temp\": 21}"},
            {"role": "user", "content": "thanks"}]});
    let out: Value = gw.chat(MASTER, follow).await.json().await.unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "echo: thanks");
    let sent = mock.requests()[1].body.clone().unwrap();
    assert_eq!(
        sent["contents"][1],
        json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]})
    );
    assert_eq!(
        sent["contents"][2]["parts"][0],
        json!({"functionResponse": {"name": "get_weather", "response": {"temp": 21}}})
    );
    assert_eq!(
        sent["toolConfig"]["functionCallingConfig"],
        json!({"mode": "ANY", "allowedFunctionNames": ["get_weather"]})
    );

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let chunks = stream_chunks(gw.chat(MASTER, streamed).await).await;
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .collect();
    assert_eq!(calls.len(), 1, "{chunks:?}");
    assert_eq!(calls[0][0]["index"], 0);
    assert_eq!(calls[0][0]["function"]["name"], "get_weather");
    assert_eq!(calls[0][0]["function"]["arguments"], "{}");
    assert!(calls[0][0]["id"].is_string());
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("tool_calls"));
}

#[tokio::test]
async fn images_json_mode_and_candidates() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = gemini_gateway(&mock, "").await;
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "gem", "n": 2, "response_format": {"type": "json_schema",
                "json_schema": {"name": "e", "schema": {"type": "object"}}},
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["choices"].as_array().unwrap().len(), 2);
    let content: Value =
        serde_json::from_str(out["choices"][1]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"echo": "look"}));
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(
        sent["contents"][0]["parts"],
        json!([{"text": "look"},
            {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.png"}},
            {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}])
    );
    assert_eq!(
        sent["generationConfig"],
        json!({"candidateCount": 2, "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object"}})
    );
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "gem", "response_format": {"type": "json_object"},
                "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        mock.requests()[1].body.as_ref().unwrap()["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
}

#[tokio::test]
async fn provider_errors_map_to_openai_errors() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = gemini_gateway(&mock, "").await;
    mock.push_fault(Fault::status(503));
    let err = expect_error(gw.chat(MASTER, hello("gem")).await, 503).await;
    assert_eq!(err["error"]["code"], "overloaded");
    mock.push_fault(Fault::status(429).retry_after(9));
    let resp = gw.chat(MASTER, hello("gem")).await;
    assert_eq!(resp.headers()["retry-after"], "9");
    let err = expect_error(resp, 429).await;
    assert_eq!(err["error"]["code"], "rate_limit_exceeded");
    mock.push_fault(Fault::status(400).with_body(json!({"error": {"code": 400,
        "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
        "status": "INVALID_ARGUMENT"}})));
    let err = expect_error(gw.chat(MASTER, hello("gem")).await, 400).await;
    assert_eq!(err["error"]["code"], "context_length_exceeded");
    // A prompt Gemini blocks outright is a content-filter 400.
    let err = expect_error(
        gw.chat(
            MASTER,
            json!({"model": "gem", "messages": [{"role": "user", "content": "block me"}]}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["code"], "content_filter");
    // An answer stopped for safety is a 200 with finish_reason content_filter.
    let out: Value = gw
        .chat(
            MASTER,
            json!({"model": "gem", "messages": [{"role": "user", "content": "unsafe answer"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
}

#[tokio::test]
async fn a_wrong_gemini_key_is_401() {
    let mock = MockUpstream::start_with(mock_upstream::MockOptions {
        require_api_key: Some("the-real-key".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let gw = gemini_gateway(&mock, "").await;
    let err = expect_error(gw.chat(MASTER, hello("gem")).await, 401).await;
    assert_eq!(err["error"]["code"], "invalid_api_key");
    assert!(!err.to_string().contains(UPSTREAM_KEY));
}

#[tokio::test]
async fn a_rate_limited_gemini_deployment_falls_back() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = gemini_gateway(
        &mock,
        &format!(
            "fallbacks = [\"gpt\"]\n[[models]]\nname = \"gpt\"\nprovider_model = \"openai/gpt-4o-mini\"\nbase_url = \"{}\"\n",
            mock.base_url()
        ),
    )
    .await;
    mock.push_fault(Fault::status(429).for_model(MODEL_ID).forever());
    let resp = gw.chat(MASTER, hello("gem")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-model"], "gpt");
    mock.clear_faults();
    mock.push_fault(Fault::status(500).for_model(MODEL_ID).forever());
    let resp = gw.chat(MASTER, hello("gem")).await;
    assert_eq!(resp.headers()["x-liter-llm-model"], "gpt");
}

#[tokio::test]
async fn embeddings_use_batch_embed_contents() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = gemini_gateway(&mock, "").await;
    let resp = gw
        .post(
            "/v1/embeddings",
            Some(MASTER),
            &json!({"model": "gem", "input": ["one two", "three"], "dimensions": 4}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["object"], "list");
    assert_eq!(out["data"].as_array().unwrap().len(), 2);
    assert_eq!(out["data"][1]["index"], 1);
    assert_eq!(out["data"][0]["embedding"].as_array().unwrap().len(), 4);
    let req = &mock.requests()[0];
    assert_eq!(
        req.path,
        "/v1beta/models/gemini-2.0-flash:batchEmbedContents"
    );
    assert_eq!(
        req.body.as_ref().unwrap()["requests"][1],
        json!({"model": "models/gemini-2.0-flash", "content": {"parts": [{"text": "three"}]},
            "outputDimensionality": 4})
    );
}

#[tokio::test]
async fn unsupported_parameters_are_400_or_dropped_with_a_warning_header() {
    let mock = MockUpstream::start().await.unwrap();
    let body = json!({"model": "gem", "logit_bias": {"1": 2}, "seed": 7, "logprobs": null,
        "messages": [{"role": "user", "content": "x"}]});
    let gw = gemini_gateway(&mock, "").await;
    let err = expect_error(gw.chat(MASTER, body.clone()).await, 400).await;
    assert_eq!(err["error"]["param"], "logit_bias");
    assert!(mock.requests().is_empty());
    let gw = gemini_gateway(&mock, "drop_params = true\n").await;
    let resp = gw.chat(MASTER, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-dropped-params"], "logit_bias");
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(sent["generationConfig"]["seed"], 7);
    assert!(sent.get("logit_bias").is_none());
}
