//! Mistral speaks OpenAI's protocol: `/embeddings` end to end (Bearer key, model id
//! rewritten, both encodings).

use mock_upstream::{MockOptions, MockUpstream};
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn mistral_embeddings_end_to_end() {
    let mock = MockUpstream::start_with(MockOptions {
        require_api_key: Some(UPSTREAM_KEY.into()),
        ..MockOptions::default()
    })
    .await
    .unwrap();
    let gw = Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"embed\"\nprovider_model = \"mistral/mistral-embed\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"{}\"\n",
        mock.base_url()
    ))
    .await;
    for format in ["float", "base64"] {
        let resp = gw
            .post(
                "/v1/embeddings",
                Some(MASTER),
                &json!({"model": "embed", "input": ["first text", "second"], "encoding_format": format}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let out: Value = resp.json().await.unwrap();
        assert_eq!(out["object"], "list");
        let data = out["data"].as_array().unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data[1]["index"], 1);
        if format == "base64" {
            assert!(data[0]["embedding"].is_string());
        } else {
            assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 8);
        }
        assert_eq!(out["usage"]["prompt_tokens"], 3);
    }
    let req = &mock.requests()[0];
    assert_eq!(req.path, "/v1/embeddings");
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    assert_eq!(req.body.as_ref().unwrap()["model"], "mistral-embed");
}
