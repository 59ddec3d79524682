//! The edge under hostile clients: bodies that are not UTF-8.

use crate::support::*;

#[tokio::test]
async fn a_body_that_is_not_utf8_is_400_and_never_forwarded() {
    let (mock, gw) = setup("").await;
    let cases: [(&str, &[u8]); 3] = [
        (
            "/v1/chat/completions",
            b"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9\"}]}",
        ),
        (
            "/v1/embeddings",
            b"{\"model\":\"gpt-4o\",\"input\":\"\xff\xfe\"}",
        ),
        ("/key/generate", b"{\"key_alias\":\"team \xc3\x28\"}"),
    ];
    for (path, body) in cases {
        let resp = client()
            .post(format!("{}{path}", gw.url))
            .bearer_auth(MASTER)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let err = expect_error(resp, 400).await;
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains("not valid UTF-8"), "{path}: {message}");
    }
    assert!(mock.requests().is_empty(), "{:?}", mock.requests());
}
