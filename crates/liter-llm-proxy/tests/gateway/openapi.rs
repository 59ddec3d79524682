//! `GET /openapi.json`: the document lists exactly the routes the router serves (both
//! the `/v1` and the unprefixed forms), every listed route is served, and the document
//! is a structurally sound OpenAPI 3.1 document.

use std::collections::BTreeSet;

use liter_llm_proxy::apidoc::{openapi_path, Access};
use liter_llm_proxy::server::routes;
use serde_json::{json, Value};

use super::support::*;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(gw: &Gateway) -> Value {
    let resp = gw.get("/openapi.json", None).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.unwrap()
}

/// `(METHOD, path)` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                ops.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// `(METHOD, path)` of every route in the router's table.
fn table(gw: &Gateway) -> BTreeSet<(String, String)> {
    routes::table(&gw.app)
        .iter()
        .map(|r| {
            let method = serde_json::to_value(&r.entry.method).unwrap();
            (
                method.as_str().unwrap().to_uppercase(),
                openapi_path(&r.entry.path),
            )
        })
        .collect()
}

const FILES: &str = "[files]\nbackend = \"memory\"\n";

#[tokio::test]
async fn the_document_lists_exactly_the_routes_served() {
    let (_mock, gw) = setup(FILES).await;
    let doc = document(&gw).await;
    let documented = operations(&doc);
    assert_eq!(documented, table(&gw));
    for (method, path) in [
        ("POST", "/v1/chat/completions"),
        ("POST", "/chat/completions"),
        ("POST", "/v1/embeddings"),
        ("GET", "/models/{id}"),
        ("DELETE", "/v1/files/{id}"),
        ("GET", "/files/{id}/content"),
        ("POST", "/key/generate"),
        ("GET", "/health/liveliness"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ] {
        assert!(
            documented.contains(&(method.into(), path.into())),
            "{method} {path} missing"
        );
    }
    // Each documented operation is served: it reaches a handler, not the router's
    // fallbacks (a handler may answer 404 for a missing model or file, in its words).
    let fallback = |status: u16, body: &Value| {
        let message = body["error"]["message"].as_str().unwrap_or("");
        status == 405 || (status == 404 && message.starts_with("no route"))
    };
    let probe = |method: &str, path: &str| {
        let url = format!("{}{}", gw.url, path.replace("{id}", "x"));
        client()
            .request(method.parse().unwrap(), url)
            .bearer_auth(MASTER)
            .json(&json!({}))
    };
    for (method, path) in &documented {
        let resp = probe(method, path).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(!fallback(status, &body), "{method} {path}: {status} {body}");
    }
    // ... and the probe does tell the fallback apart.
    let resp = probe("GET", "/v1/not-a-route").send().await.unwrap();
    assert!(fallback(404, &resp.json().await.unwrap()));
    let resp = probe("PUT", "/v1/chat/completions").send().await.unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn the_document_follows_the_metrics_setting() {
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let config = |metrics: &str| {
        base_config(&mock, "").replace(
            "max_retries = 0",
            &format!("max_retries = 0\nmetrics = \"{metrics}\""),
        )
    };
    let off = Gateway::start(&config("off")).await;
    let doc = document(&off).await;
    assert!(doc["paths"].get("/metrics").is_none());
    assert_eq!(operations(&doc), table(&off));
    let public = Gateway::start(&config("public")).await;
    let doc = document(&public).await;
    assert_eq!(doc["paths"]["/metrics"]["get"]["security"], json!([]));
    let master = Gateway::start(&config("master")).await;
    let doc = document(&master).await;
    assert!(doc["paths"]["/metrics"]["get"].get("security").is_none());
}

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_sound_openapi_3_1() {
    let (_mock, gw) = setup(FILES).await;
    let doc = document(&gw).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    assert_eq!(doc["info"]["title"], "liter-llm");
    assert!(doc["info"]["version"].is_string());
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(doc["components"]["schemas"].get(name).is_some(), "{r}");
    }
    // Unique operation ids; responses everywhere; path parameters declared; the
    // security of each route as the router applies it.
    let access: std::collections::HashMap<(String, String), Access> = routes::table(&gw.app)
        .iter()
        .map(|r| {
            let m = serde_json::to_value(&r.entry.method).unwrap();
            (
                (m.as_str().unwrap().to_owned(), openapi_path(&r.entry.path)),
                r.entry.access,
            )
        })
        .collect();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "{id} twice");
            assert!(!op["responses"].as_object().unwrap().is_empty());
            if path.contains("{id}") {
                let params = op["parameters"].as_array().unwrap();
                assert!(params
                    .iter()
                    .any(|p| p["name"] == "id" && p["in"] == "path"));
            }
            let public = op.get("security") == Some(&json!([]));
            let a = access[&(m.to_owned(), path.clone())];
            assert_eq!(public, a == Access::Public, "{m} {path}");
        }
    }
    // The OpenAI shapes are there, with the error.
    let schemas = &doc["components"]["schemas"];
    for name in [
        "ChatCompletionRequest",
        "ChatCompletion",
        "ChatCompletionChunk",
        "EmbeddingRequest",
        "EmbeddingResponse",
        "ModelObject",
        "FileObject",
        "FileList",
        "GenerateBody",
        "ErrorBody",
    ] {
        assert!(schemas.get(name).is_some(), "{name}");
    }
    assert_eq!(
        schemas["ErrorDetail"]["required"],
        json!(["message", "type"])
    );
    let chat = &doc["paths"]["/v1/chat/completions"]["post"];
    assert_eq!(
        chat["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert!(chat["responses"]["200"]["content"]
        .get("text/event-stream")
        .is_some());
}
