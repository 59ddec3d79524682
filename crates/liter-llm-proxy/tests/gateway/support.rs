//! Starting a gateway and a mock upstream, and a few request helpers.

use liter_llm_proxy::config::{load_str, Overrides};
use liter_llm_proxy::App;
use mock_upstream::MockUpstream;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const MASTER: &str = "sk-test-master-0123456789";
pub const UPSTREAM_KEY: &str = "sk-upstream-secret-abcdef";
pub const VKEY: &str = "vk-limited-key-0001";

pub struct Gateway {
    pub url: String,
    pub app: std::sync::Arc<App>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Gateway {
    /// Start a gateway on 127.0.0.1:0 from TOML text (env lookups come from `env`).
    pub async fn start_with_env(toml: &str, env: impl Fn(&str) -> Option<String>) -> Gateway {
        let cfg = load_str(toml, "test.toml", &Overrides::default(), env)
            .unwrap_or_else(|e| panic!("{e}"));
        Self::start_config(cfg).await
    }

    /// Start a gateway on 127.0.0.1:0 from a loaded config.
    pub async fn start_config(cfg: liter_llm_proxy::config::Config) -> Gateway {
        Self::start_app(App::build(cfg).await.unwrap()).await
    }

    /// Serve a built gateway on 127.0.0.1:0.
    pub async fn start_app(app: std::sync::Arc<App>) -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(liter_llm_proxy::serve(app.clone(), listener, async move {
            let _ = rx.await;
        }));
        Gateway {
            url: format!("http://{addr}"),
            app,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub async fn start(toml: &str) -> Gateway {
        Self::start_with_env(toml, |_| None).await
    }

    /// Begin graceful shutdown; the returned handle resolves when the server stopped.
    pub fn begin_shutdown(&mut self) -> JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().unwrap()
    }

    pub fn post(&self, path: &str, key: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
        let mut req = client().post(format!("{}{path}", self.url)).json(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req
    }

    pub fn get(&self, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let mut req = client().get(format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req
    }

    /// GET a path and parse the JSON answer.
    pub async fn get_json(&self, path: &str, key: &str) -> Value {
        self.get(path, Some(key))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The ids of `GET /v1/models` as this key sees it.
    pub async fn model_ids(&self, key: &str) -> Vec<String> {
        let list = self.get_json("/v1/models", key).await;
        assert_eq!(list["object"], "list");
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// `/metrics` as the master key reads it.
    pub async fn scrape(&self) -> String {
        let resp = self.get("/metrics", Some(MASTER)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    pub async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        self.post("/v1/chat/completions", Some(key), &body)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Move the tokio clock forward by `by` at once, for cooldowns measured in tens of
/// seconds. Call it only at a quiet moment (no request in flight, every response read):
/// the clock is paused just for the jump and runs normally again at once, so it never
/// races with socket I/O the way a test-long paused clock does (a paused runtime skips
/// to its next timer whenever no socket event has arrived yet). Each request helper
/// here uses a fresh client, so no pooled client connection lives across the jump.
pub async fn skip_time(by: std::time::Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// Waits (bounded) until the mock has recorded `n` requests, then asserts it.
pub async fn wait_for_requests(mock: &MockUpstream, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while mock.requests().len() < n && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(mock.requests().len(), n);
}

/// A loopback port where connections are refused, reserved while the returned socket
/// lives: the socket is bound (no other test or process can take the port) but never
/// listens, so a connection to it is refused at once. Keep the socket for the whole
/// test; never drop it and reuse the number.
pub fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A config with the master key, one virtual key limited to "gpt-4o", and two models
/// on the mock: "gpt-4o" (upstream id "gpt-4o-2024-08-06") and "other".
pub fn base_config(mock: &MockUpstream, extra: &str) -> String {
    format!(
        r#"
[general]
master_key = "{MASTER}"
max_retries = 0

[[models]]
name = "gpt-4o"
provider_model = "openai/gpt-4o-2024-08-06"
api_key = "{UPSTREAM_KEY}"
base_url = "{base}"

[[models]]
name = "other"
provider_model = "openai/other-model"
api_key = "{UPSTREAM_KEY}"
base_url = "{base}"

[[keys]]
key = "{VKEY}"
description = "limited"
models = ["gpt-4o"]
{extra}
"#,
        base = mock.base_url()
    )
}

pub async fn setup(extra: &str) -> (MockUpstream, Gateway) {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&base_config(&mock, extra)).await;
    (mock, gw)
}

/// A gateway whose only model is the built-in `mock/echo` under `name`, plus `extra` TOML for it.
pub async fn echo_gateway(name: &str, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"{name}\"\nprovider_model = \"mock/echo\"\n{extra}"
    ))
    .await
}

pub fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello gateway"}]})
}

/// Assert an OpenAI-shaped error body and return it.
pub async fn expect_error(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("application/json")
    );
    let body: Value = resp.json().await.unwrap();
    let err = &body["error"];
    assert!(err["message"].is_string(), "no message in {body}");
    for field in ["type", "param", "code"] {
        assert!(err.get(field).is_some(), "no {field} in {body}");
    }
    body
}

/// Parse an SSE body into its `data:` payloads.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_string)
        .collect()
}

/// Every file under `dir`, its subfolders included (the SQLite store keeps its
/// reservation journal in a folder beside the database).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The `service.name` of an OTLP export's resource (`""` when it has none).
pub fn otlp_service(
    resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>,
) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    resource
        .iter()
        .flat_map(|r| &r.attributes)
        .find(|a| a.key == "service.name")
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}
