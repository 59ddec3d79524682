//! Safe reload: the file read again and swapped in under traffic (new model served,
//! removed model 404, no failed request, a key's rpm carried over), a bad file or a
//! restart-only change refused with the old config still served, and `GET /config`
//! with every secret masked.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use liter_llm_proxy::config::{Overrides, Source};
use liter_llm_proxy::reload::{Live, ReloadError};
use liter_llm_proxy::App;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::support::{client, MASTER, VKEY};

/// A gateway serving `file` as the binary does: read through its `Source`, reloadable.
pub struct Running {
    pub url: String,
    pub live: Arc<Live>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn start_file(file: &Path) -> Running {
    let source = Source {
        path: file.to_path_buf(),
        overrides: Overrides::default(),
        allow_unsupported: false,
    };
    let reading = source.read(&[]).unwrap_or_else(|e| panic!("{e}"));
    let view = serde_json::to_value(&reading.inspection.masked).unwrap();
    let app = App::build(reading.inspection.config)
        .await
        .unwrap()
        .with_view(view);
    let live = liter_llm_proxy::server::live(app, Some(source));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(liter_llm_proxy::server::serve_live(
        live.clone(),
        listener,
        async move {
            let _ = rx.await;
        },
    ));
    Running {
        url,
        live,
        _stop: tx,
    }
}

pub async fn chat(url: &str, key: &str, model: &str) -> reqwest::Response {
    client()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

/// The master key, a key with rpm 3, and `models` on the in-process mock (a name
/// starting with `slow` answers after 400 ms).
fn config(models: &[&str]) -> String {
    let mut out =
        format!("[general]\nmaster_key = \"{MASTER}\"\n\n[[keys]]\nkey = \"{VKEY}\"\nrpm = 3\n");
    for m in models {
        out.push_str(&format!(
            "\n[[models]]\nname = \"{m}\"\nprovider_model = \"mock/echo\"\n"
        ));
        if m.starts_with("slow") {
            out.push_str("mock_latency_ms = 400\n");
        }
    }
    out
}

/// Waits (bounded) until a request to `model` is in flight on the current App.
async fn wait_in_flight(live: &Live, model: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let app = live.app();
        let pool = app.routes.pool(model).unwrap();
        if pool.deployments[0].in_flight.load(Ordering::Relaxed) > 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no request in flight");
        tokio::task::yield_now().await;
    }
}

/// Requests to `model` with the master key, one after another, until `stop`;
/// counts those that were not 200.
fn traffic(
    url: String,
    model: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, usize)> {
    tokio::spawn(async move {
        let (mut ok, mut failed) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            if chat(&url, MASTER, model).await.status() == 200 {
                ok += 1;
            } else {
                failed += 1;
            }
        }
        (ok, failed)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_file_is_swapped_in_under_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    std::fs::write(&file, config(&["alpha", "beta", "slow-old"])).unwrap();
    let gw = start_file(&file).await;

    // The key uses two of its three requests per minute before the reload.
    for _ in 0..2 {
        assert_eq!(chat(&gw.url, VKEY, "alpha").await.status(), 200);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let load = [
        traffic(gw.url.clone(), "alpha", stop.clone()),
        traffic(gw.url.clone(), "alpha", stop.clone()),
    ];
    // A request in flight across the reload, on a model the new file removes: it
    // finishes on the App it started with.
    let slow_url = gw.url.clone();
    let in_flight = tokio::spawn(async move { chat(&slow_url, MASTER, "slow-old").await });
    wait_in_flight(&gw.live, "slow-old").await;

    std::fs::write(&file, config(&["alpha", "gamma"])).unwrap();
    let changes = gw.live.reload().await.unwrap();
    assert!(
        changes.models_added.iter().any(|m| m.starts_with("gamma")),
        "{changes:?}"
    );
    assert!(
        changes.models_removed.iter().any(|m| m.starts_with("beta")),
        "{changes:?}"
    );
    assert!(changes.models_changed.is_empty(), "{changes:?}");

    assert_eq!(chat(&gw.url, MASTER, "gamma").await.status(), 200);
    let gone = chat(&gw.url, MASTER, "beta").await;
    assert_eq!(gone.status(), 404);
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let (ok, failed) = t.await.unwrap();
        assert!(ok > 0);
        assert_eq!(failed, 0, "requests failed during the reload");
    }
    assert_eq!(in_flight.await.unwrap().status(), 200);
    assert_eq!(chat(&gw.url, MASTER, "slow-old").await.status(), 404);

    // The key's window carried over: one more request fits, the next does not.
    assert_eq!(chat(&gw.url, VKEY, "alpha").await.status(), 200);
    assert_eq!(chat(&gw.url, VKEY, "gamma").await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_or_a_restart_only_change_leaves_the_running_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    let good = config(&["alpha"]);
    std::fs::write(&file, &good).unwrap();
    let gw = start_file(&file).await;
    let before: Value = get_config(&gw.url, MASTER).await.json().await.unwrap();

    // Invalid: the error is the one start-up gives for the same file.
    let bad = format!("{good}\n[[models]]\nname = \"delta\"\nprovider_model = \"nosuch/x\"\n");
    std::fs::write(&file, &bad).unwrap();
    let err = gw.live.reload().await.unwrap_err();
    let startup = Source {
        path: file.clone(),
        overrides: Overrides::default(),
        allow_unsupported: false,
    }
    .read(&[])
    .unwrap_err();
    assert!(matches!(err, ReloadError::Config(_)), "{err}");
    assert_eq!(err.to_string(), startup.to_string());
    assert!(
        err.to_string().contains("models[1].provider_model"),
        "{err}"
    );

    // Restart-only: named, and refused.
    std::fs::write(&file, format!("[server]\nport = 4999\n{good}")).unwrap();
    let err = gw.live.reload().await.unwrap_err();
    assert!(matches!(err, ReloadError::RestartNeeded(_)), "{err}");
    assert!(err.to_string().contains("server.port"), "{err}");

    // Unreadable: the file is gone.
    std::fs::remove_file(&file).unwrap();
    let err = gw.live.reload().await.unwrap_err();
    assert!(err.to_string().contains("cannot read config"), "{err}");

    // Still the first config.
    assert_eq!(chat(&gw.url, MASTER, "alpha").await.status(), 200);
    assert_eq!(chat(&gw.url, MASTER, "delta").await.status(), 404);
    let after: Value = get_config(&gw.url, MASTER).await.json().await.unwrap();
    assert_eq!(before, after);
}

async fn get_config(url: &str, key: &str) -> reqwest::Response {
    client()
        .get(format!("{url}/config"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_config_masks_every_secret_and_needs_the_master_key() {
    let secrets = [
        "sk-model-secret-111",
        "sk-alias-secret-222",
        "AKIASECRETACCESS333",
        "aws-secret-key-444",
        "aws-session-token-555",
        "dbpass-secret-666",
        "Bearer webhook-secret-777",
        "files-secret-888",
        MASTER,
        VKEY,
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    let toml = format!(
        r#"[general]
master_key = "{MASTER}"
database_url = "postgres://postgres:{db}@127.0.0.1:5432/test"

[[keys]]
key = "{VKEY}"
description = "team-a"

[[models]]
name = "alpha"
provider_model = "openai/gpt-4o-mini"
api_key = "{model}"
base_url = "http://127.0.0.1:9/v1"

[[models]]
name = "claude"
provider_model = "bedrock/anthropic.claude-3-haiku-20240307-v1:0"
aws_access_key_id = "{akid}"
aws_secret_access_key = "{aws}"
aws_session_token = "{session}"
aws_region_name = "us-east-1"

[[aliases]]
pattern = "groq/*"
api_key = "{alias}"

[files]
backend = "memory"

[[logging]]
type = "webhook"
url = "http://127.0.0.1:9/hook"
headers = {{ Authorization = "{hook}" }}
"#,
        db = secrets[5],
        model = secrets[0],
        akid = secrets[2],
        aws = secrets[3],
        session = secrets[4],
        alias = secrets[1],
        hook = secrets[6],
    );
    std::fs::write(&file, toml).unwrap();
    let gw = start_file(&file).await;

    let resp = get_config(&gw.url, MASTER).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    for s in secrets {
        assert!(!text.contains(s), "{s} leaked in {text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["general"]["master_key"], "********");
    assert_eq!(
        body["general"]["database_url"],
        "postgres://postgres:********@127.0.0.1:5432/test"
    );
    assert_eq!(body["models"][0]["api_key"], "********");
    assert_eq!(body["models"][0]["base_url"], "http://127.0.0.1:9/v1");
    assert_eq!(body["models"][1]["aws_secret_access_key"], "********");
    assert_eq!(body["keys"][0]["key"], "********");
    assert_eq!(body["keys"][0]["description"], "team-a");
    assert_eq!(body["logging"][0]["headers"]["Authorization"], "********");

    // A virtual key is refused (403, the admin routes' answer), no key or a wrong one 401.
    assert_eq!(get_config(&gw.url, VKEY).await.status(), 403);
    assert_eq!(get_config(&gw.url, "sk-wrong").await.status(), 401);
    let anonymous = client()
        .get(format!("{}/config", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let err: Value = anonymous.json().await.unwrap();
    assert!(err["error"]["message"].is_string(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooling_deployment_stays_cooling_across_a_reload() {
    use crate::routing::{dep, header, served_ids};
    use mock_upstream::{Fault, MockUpstream};

    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    let body = |extra: &str| {
        format!(
            "{}{}{}[cooldown]\nduration_secs = 60\nallowed_fails = 1\n{extra}",
            header(MASTER, ""),
            dep(&mock, "pool", "dep-a", "order = 1"),
            dep(&mock, "pool", "dep-b", "order = 2"),
        )
    };
    std::fs::write(&file, body("")).unwrap();
    let gw = start_file(&file).await;
    mock.push_fault(Fault::status(503).for_model("dep-a"));
    assert_eq!(chat(&gw.url, MASTER, "pool").await.status(), 200);
    assert_eq!(served_ids(&mock), ["dep-a", "dep-b"]);

    // An unrelated change: both deployments keep their ids and their state.
    let extra = format!("\n{}", dep(&mock, "other", "dep-c", ""));
    std::fs::write(&file, body(&extra)).unwrap();
    let changes = gw.live.reload().await.unwrap();
    assert_eq!(changes.models_added.len(), 1, "{changes:?}");
    assert!(changes.models_changed.is_empty(), "{changes:?}");

    mock.clear_requests();
    assert_eq!(chat(&gw.url, MASTER, "pool").await.status(), 200);
    assert_eq!(served_ids(&mock), ["dep-b"], "dep-a is still cooling down");
    let ready: Value = client()
        .get(format!("{}/health/readiness", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["deployments"][0]["cooling_down"], true, "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_litellm_file_reloads_like_a_toml_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    let yaml = |models: &[&str]| {
        let mut out = format!(
            "general_settings:\n  master_key: {MASTER}\nmodel_list:\n  - model_name: keyed\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_key: sk-yaml-secret-1\n      api_base: http://127.0.0.1:9/v1\n"
        );
        for m in models {
            out.push_str(&format!(
                "  - model_name: {m}\n    litellm_params:\n      model: mock/echo\n"
            ));
        }
        out
    };
    std::fs::write(&file, yaml(&["alpha"])).unwrap();
    let gw = start_file(&file).await;
    assert_eq!(chat(&gw.url, MASTER, "beta").await.status(), 404);

    std::fs::write(&file, yaml(&["alpha", "beta"])).unwrap();
    let changes = gw.live.reload().await.unwrap();
    assert_eq!(changes.models_added.len(), 1, "{changes:?}");
    assert_eq!(chat(&gw.url, MASTER, "beta").await.status(), 200);

    // GET /config shows the TOML twin, masked.
    let text = get_config(&gw.url, MASTER).await.text().await.unwrap();
    assert!(!text.contains("sk-yaml-secret"), "{text}");
    let twin: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(twin["models"][0]["api_key"], "********");
    assert_eq!(twin["models"][2]["name"], "beta");

    // An unsupported key is refused as at start-up, naming its YAML path.
    std::fs::write(
        &file,
        format!("{}litellm_settings:\n  no_such_key: 1\n", yaml(&["alpha"])),
    )
    .unwrap();
    let err = gw.live.reload().await.unwrap_err();
    assert!(
        err.to_string().contains("litellm_settings.no_such_key"),
        "{err}"
    );
    assert_eq!(chat(&gw.url, MASTER, "beta").await.status(), 200);
}
