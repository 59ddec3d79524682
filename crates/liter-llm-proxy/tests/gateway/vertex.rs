//! Vertex AI (`vertex_ai/`) through the gateway: the service-account token exchange
//! (against the mock's token endpoint), Gemini models in Gemini's format and Claude
//! models in Anthropic's.

use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};

use crate::gemini::stream_chunks;
use crate::support::*;

const PREFIX: &str = "/v1/projects/proj/locations/europe-west4/publishers";

/// The test-only service-account file with `token_uri` pointed at the mock.
pub(crate) fn credentials(mock: &MockUpstream) -> tempfile::NamedTempFile {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../liter-llm/tests/fixtures/gemini/TEST-ONLY-service-account.json"
    );
    let mut sa: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    sa["token_uri"] = json!(format!("http://{}/token", mock.addr()));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), sa.to_string()).unwrap();
    file
}

async fn vertex_gateway(
    mock: &MockUpstream,
    creds: &tempfile::NamedTempFile,
    extra: &str,
) -> Gateway {
    let model = |name: &str, id: &str| {
        format!(
            "[[models]]\nname = \"{name}\"\nprovider_model = \"vertex_ai/{id}\"\nvertex_project = \"proj\"\nvertex_location = \"europe-west4\"\nvertex_credentials = \"{}\"\nbase_url = \"http://{}\"\n",
            creds.path().display(),
            mock.addr()
        )
    };
    Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n{}{}{extra}",
        model("vtx", "gemini-2.0-flash"),
        model("vclaude", "claude-sonnet-4@20250514"),
    ))
    .await
}

#[tokio::test]
async fn requests_share_one_token_exchange() {
    let mock = MockUpstream::start().await.unwrap();
    let creds = credentials(&mock);
    let gw = vertex_gateway(&mock, &creds, "").await;
    for _ in 0..2 {
        let out: Value = gw.chat(MASTER, hello("vtx")).await.json().await.unwrap();
        assert_eq!(
            out["choices"][0]["message"]["content"],
            "echo: hello gateway",
            "{out} {:?}",
            mock.requests()
        );
    }
    let reqs = mock.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    let chat = format!("{PREFIX}/google/models/gemini-2.0-flash:generateContent");
    assert_eq!(paths, vec!["/token", chat.as_str(), chat.as_str()]);
    assert_eq!(
        reqs[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let bearer = reqs[1].header("authorization").unwrap();
    assert!(bearer.starts_with("Bearer ya29.mock-token-"), "{bearer}");
    assert_eq!(reqs[2].header("authorization"), Some(bearer));
    assert!(reqs[1].header("x-goog-api-key").is_none());
    assert_eq!(
        reqs[1].body.as_ref().unwrap()["contents"],
        json!([{"role": "user", "parts": [{"text": "hello gateway"}]}])
    );
}

#[tokio::test]
async fn streams_and_embeddings() {
    let mock = MockUpstream::start().await.unwrap();
    let creds = credentials(&mock);
    let gw = vertex_gateway(&mock, &creds, "").await;
    let chunks = stream_chunks(
        gw.chat(
            MASTER,
            json!({"model": "vtx", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "a b"}]}),
        )
        .await,
    )
    .await;
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "echo: a b");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 3);
    assert_eq!(
        mock.requests()[1].path,
        format!("{PREFIX}/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse")
    );

    let resp = gw
        .post(
            "/v1/embeddings",
            Some(MASTER),
            &json!({"model": "vtx", "input": ["one two", "three"], "dimensions": 3}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["data"].as_array().unwrap().len(), 2);
    assert_eq!(out["data"][0]["embedding"].as_array().unwrap().len(), 3);
    assert_eq!(out["usage"]["prompt_tokens"], 3);
    let req = mock.requests().pop().unwrap();
    assert_eq!(
        req.path,
        format!("{PREFIX}/google/models/gemini-2.0-flash:predict")
    );
    assert_eq!(
        req.body.unwrap(),
        json!({"instances": [{"content": "one two"}, {"content": "three"}],
            "parameters": {"outputDimensionality": 3}})
    );
}

#[tokio::test]
async fn claude_on_vertex_speaks_anthropic() {
    let mock = MockUpstream::start().await.unwrap();
    let creds = credentials(&mock);
    let gw = vertex_gateway(&mock, &creds, "").await;
    let out: Value = gw
        .chat(
            MASTER,
            json!({"model": "vclaude", "max_tokens": 50,
                "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi claude"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "echo: hi claude");
    let req = &mock.requests()[1];
    assert_eq!(
        req.path,
        format!("{PREFIX}/anthropic/models/claude-sonnet-4@20250514:rawPredict")
    );
    assert!(req
        .header("authorization")
        .unwrap()
        .starts_with("Bearer ya29.mock-token-"));
    assert!(req.header("anthropic-version").is_none());
    let sent = req.body.as_ref().unwrap();
    assert_eq!(sent["anthropic_version"], "vertex-2023-10-16");
    assert!(sent.get("model").is_none());
    assert_eq!(sent["system"], "s");
    assert_eq!(sent["max_tokens"], 50);

    let chunks = stream_chunks(
        gw.chat(
            MASTER,
            json!({"model": "vclaude", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "x y"}]}),
        )
        .await,
    )
    .await;
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "echo: x y");
    assert_eq!(
        mock.requests()[2].path,
        format!("{PREFIX}/anthropic/models/claude-sonnet-4@20250514:streamRawPredict")
    );
    // Both Claude requests used the one token.
    assert_eq!(
        mock.requests()
            .iter()
            .filter(|r| r.path == "/token")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_refused_token_exchange_is_401_and_an_unreachable_one_502() {
    let mock = MockUpstream::start().await.unwrap();
    let creds = credentials(&mock);
    let gw = vertex_gateway(&mock, &creds, "").await;
    mock.push_fault(Fault::status(400).with_body(
        json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
    ));
    let err = expect_error(gw.chat(MASTER, hello("vtx")).await, 401).await;
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("invalid_grant"), "{message}");
    assert!(
        !message.contains("assertion") && !message.contains("eyJ"),
        "{message}"
    );
    // Only the token endpoint was asked.
    assert_eq!(mock.requests().len(), 1);

    mock.push_fault(Fault::status(503));
    let err = expect_error(gw.chat(MASTER, hello("vtx")).await, 502).await;
    assert_eq!(err["error"]["code"], "token_exchange_failed");

    // The failures were not cached: the next request exchanges and succeeds.
    let resp = gw.chat(MASTER, hello("vtx")).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn vertex_errors_map_to_openai_errors() {
    let mock = MockUpstream::start().await.unwrap();
    let creds = credentials(&mock);
    let gw = vertex_gateway(&mock, &creds, "").await;
    mock.push_fault(
        Fault::status(429)
            .for_model("gemini-2.0-flash")
            .retry_after(4),
    );
    let resp = gw.chat(MASTER, hello("vtx")).await;
    assert_eq!(resp.headers()["retry-after"], "4");
    let err = expect_error(resp, 429).await;
    assert_eq!(err["error"]["code"], "rate_limit_exceeded");
    // Claude's own errors keep Anthropic's mapping.
    mock.push_fault(Fault::status(529).for_model("claude-sonnet-4@20250514"));
    let err = expect_error(gw.chat(MASTER, hello("vclaude")).await, 503).await;
    assert_eq!(err["error"]["type"], "overloaded_error");
}
