//! The real `liter-llm` binary: discovery, flags, check-config, logs and signals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{cmd, Proc};

use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};

const MASTER: &str = "sk-cli-master-7f3a9c";
const UPSTREAM_KEY: &str = "sk-upstream-very-secret-42";
const VKEY: &str = "vk-cli-virtual-99";
const S3_SECRET: &str = "s3-secret-wJalrXUtnFEMI";

fn config(mock: &MockUpstream) -> String {
    format!(
        r#"
[server]
host = "127.0.0.1"
port = 0

[general]
master_key = "${{TEST_MASTER}}"
max_retries = 0

[[models]]
name = "gpt-4o"
provider_model = "openai/gpt-4o-mini"
api_key = "${{TEST_UPSTREAM_KEY}}"
base_url = "{}"

[[keys]]
key = "{VKEY}"
models = ["gpt-4o"]
"#,
        mock.base_url()
    )
}

fn hello() -> Value {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
}

#[test]
fn check_config_masks_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        format!(
            "[general]\nmaster_key = \"${{M}}\"\n[[models]]\nname = \"g\"\nprovider_model = \"openai/gpt-4o\"\napi_key = \"{UPSTREAM_KEY}\"\n[[keys]]\nkey = \"{VKEY}\"\n\
             [files]\nbackend = \"s3\"\n[files.backend_config]\nbucket = \"b\"\nregion = \"us-east-1\"\naccess_key_id = \"AKIDEXAMPLE\"\nsecret_access_key = \"{S3_SECRET}\"\n"
        ),
    )
    .unwrap();
    let out = cmd(dir.path())
        .args(["check-config", "--config"])
        .arg(&file)
        .env("M", MASTER)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for secret in [MASTER, UPSTREAM_KEY, VKEY, S3_SECRET] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    assert!(text.contains("secret_access_key = \"********\""), "{text}");
    assert!(text.contains("access_key_id = \"AKIDEXAMPLE\""), "{text}");
    assert!(text.contains("master_key = \"********\""), "{text}");
    assert!(text.contains("api_key = \"********\""), "{text}");
    assert!(
        text.contains("provider openai, upstream model \"gpt-4o\""),
        "{text}"
    );
    assert!(text.contains("port = 4000"), "defaults are shown: {text}");
}

#[test]
fn check_config_warns_for_models_without_a_price() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[[models]]\nname = \"priced\"\nprovider_model = \"gemini/gemini-2.0-flash\"\napi_key = \"k\"\n\
         [[models]]\nname = \"own\"\nprovider_model = \"openai/house-model\"\napi_key = \"k\"\ninput_cost_per_token = 0.000001\noutput_cost_per_token = 0.000002\n\
         [[models]]\nname = \"nope\"\nprovider_model = \"openai/house-model-2\"\napi_key = \"k\"\n\
         [[models]]\nname = \"echo\"\nprovider_model = \"mock/echo\"\n",
    )
    .unwrap();
    let out = cmd(dir.path())
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("has no price")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("openai/house-model-2"), "{err}");
}

#[test]
fn check_config_fails_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[server]\nport = 1\nhots = \"x\"\n").unwrap();
    let out = cmd(dir.path())
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("invalid TOML config {}:3:1", file.display())),
        "{err}"
    );

    std::fs::write(&file, "[cache]\nbackend = \"nosuchstore\"\n").unwrap();
    let out = cmd(dir.path())
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("unknown cache backend \"nosuchstore\""),
        "{err}"
    );
    assert!(err.contains(&format!("{}:2:", file.display())), "{err}");
}

#[test]
fn check_config_masks_cache_backend_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.toml");
    std::fs::write(
        &file,
        "[cache]\nbackend = \"s3\"\n[cache.backend_config]\nbucket = \"b\"\nregion = \"us-east-1\"\nsecret_access_key = \"cache-secret-xyz\"\n",
    )
    .unwrap();
    let out = cmd(dir.path())
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("bucket = \"b\""), "{shown}");
    assert!(!shown.contains("cache-secret-xyz"), "{shown}");
}

#[test]
fn discovery_walks_up_and_config_flag_disables_it() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("a/b/c");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(
        dir.path().join("liter-llm-proxy.toml"),
        "[server]\nport = 4111\n",
    )
    .unwrap();
    let out = cmd(&deep).arg("check-config").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(
        &dir.path()
            .join("liter-llm-proxy.toml")
            .display()
            .to_string()
    ));
    assert!(text.contains("port = 4111"));

    // --config names a file: discovery is off, even though one would be found
    let missing = deep.join("nope.toml");
    let out = cmd(&deep)
        .args(["check-config", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("nope.toml"));

    // the nearest file wins
    std::fs::write(deep.join("liter-llm-proxy.toml"), "[server]\nport = 4222\n").unwrap();
    let out = cmd(&deep).arg("check-config").output().unwrap();
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("port = 4222"));
}

#[test]
fn no_config_anywhere_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = cmd(dir.path()).arg("check-config").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(
            "no liter-llm-proxy.toml (nor LiteLLM's config.yaml or proxy_config.yaml) found"
        ),
        "{err}"
    );
}

#[test]
fn flags_and_env_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[server]\nhost = \"0.0.0.0\"\nport = 4000\n[general]\nmaster_key = \"from-file\"\n",
    )
    .unwrap();
    let run = |extra: &[&str], env: Option<&str>| {
        let mut c = cmd(dir.path());
        c.args(["check-config", "--config"]).arg(&file).args(extra);
        if let Some(v) = env {
            c.env("LITER_LLM_MASTER_KEY", v);
        }
        let out = c.output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "{extra:?} {env:?}: {:?}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let plain = run(&[], None);
    assert!(plain.contains("host = \"0.0.0.0\"") && plain.contains("port = 4000"));
    assert!(plain.contains("# master_key: from the file\n"), "{plain}");
    let over = run(&["--host", "127.0.0.1", "--port", "5123"], None);
    assert!(
        over.contains("host = \"127.0.0.1\"") && over.contains("port = 5123"),
        "{over}"
    );
    assert!(!over.contains("port = 4000"), "{over}");
    // The variable overrides the file's master key...
    let env = run(&[], Some("sk-env-master-31"));
    assert!(
        env.contains("# master_key: from LITER_LLM_MASTER_KEY (overrides the file)\n"),
        "{env}"
    );
    // ... an empty one counts as not set ...
    let empty = run(&[], Some(""));
    assert!(empty.contains("# master_key: from the file\n"), "{empty}");
    // ... and the flag overrides both.
    let flag = run(
        &["--master-key", "sk-flag-master-32"],
        Some("sk-env-master-31"),
    );
    assert!(
        flag.contains("# master_key: from --master-key (overrides the file)\n"),
        "{flag}"
    );
    for (out, secret) in [(&env, "sk-env-master-31"), (&flag, "sk-flag-master-32")] {
        assert!(out.contains("master_key = \"********\""), "{out}");
        assert!(
            !out.contains(secret) && !out.contains("from-file\""),
            "{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_logs_without_secrets_and_drains_on_sigterm() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("liter-llm-proxy.toml");
    std::fs::write(&file, config(&mock)).unwrap();
    let mut c = cmd(dir.path());
    c.arg("api")
        .env("TEST_MASTER", MASTER)
        .env("TEST_UPSTREAM_KEY", UPSTREAM_KEY);
    let gw = Proc::spawn(c); // discovered in the working directory
    let client = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", gw.url);

    let ok = client
        .post(&url)
        .bearer_auth(MASTER)
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let request_id = ok.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some(&*format!("Bearer {UPSTREAM_KEY}"))
    );
    let denied = client
        .post(&url)
        .bearer_auth("sk-wrong-guess-123")
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(
        client
            .post(&url)
            .bearer_auth(VKEY)
            .json(&hello())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let streamed = client
        .post(&url)
        .bearer_auth(MASTER)
        .json(&json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "a b"}]}))
        .send()
        .await
        .unwrap();
    let stream_id = streamed.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(streamed.text().await.unwrap().ends_with("data: [DONE]\n\n"));

    // a slow request is in flight when SIGTERM arrives: it still completes
    mock.push_fault(Fault::delay_ms(400));
    let slow = tokio::spawn(client.post(&url).bearer_auth(MASTER).json(&hello()).send());
    for _ in 0..2000 {
        if mock.requests().len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        mock.requests().len(),
        4,
        "the slow request reached the upstream"
    );
    gw.signal("-TERM");
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status(), 200, "in-flight request was cut by shutdown");
    let (status, logs) = tokio::task::spawn_blocking(move || gw.wait())
        .await
        .unwrap();
    assert!(status.success(), "exit {status:?}\n{logs}");
    // The output was read to its end: the checks for absent secrets below see it all.
    assert!(
        logs.lines().last().is_some_and(|l| l.contains("stopped")),
        "{logs}"
    );

    // one line per request, with id, model, deployment, status and latency
    let line = logs
        .lines()
        .find(|l| l.contains(&request_id))
        .unwrap_or_else(|| panic!("{logs}"));
    for field in [
        "model=\"gpt-4o\"",
        "deployment=\"openai/gpt-4o-mini\"",
        "status=200",
        "latency_ms=",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    assert!(logs.contains("status=401"));
    assert!(
        logs.contains("key=\"key#0\""),
        "a virtual key is logged by its label"
    );
    // a stream is logged when it ends, with its time to first byte
    let line = logs
        .lines()
        .find(|l| l.contains(&stream_id))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(
        line.contains("stream_completed=true") && line.contains("ttfb_ms="),
        "{line}"
    );
    for secret in [MASTER, UPSTREAM_KEY, VKEY, "sk-wrong-guess-123"] {
        assert!(!logs.contains(secret), "{secret} in logs:\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_key_flag_and_env_var() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, config(&mock)).unwrap();
    let client = reqwest::Client::new();
    for (flag, env, file_key) in [
        (Some("sk-from-flag"), None, true),
        (None, Some("sk-from-env"), false),
        (None, Some("sk-from-env"), true),
    ] {
        let mut c = cmd(dir.path());
        c.args(["api", "--config"]).arg(&file);
        if file_key {
            c.env("TEST_MASTER", MASTER);
        }
        if let Some(f) = flag {
            // the flag wins over the file's master_key
            c.args(["--master-key", f]);
        }
        if let Some(e) = env {
            // the variable is the flag's default: used when the file sets no master
            // key ("${TEST_MASTER}" is empty), and winning over the file's when it does
            c.env("LITER_LLM_MASTER_KEY", e);
        }
        let gw = Proc::spawn(c);
        let key = flag.or(env).unwrap();
        let url = format!("{}/v1/models", gw.url);
        assert_eq!(
            client
                .get(&url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            client
                .get(&url)
                .bearer_auth(MASTER)
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
        gw.signal("-INT");
        let (status, _) = tokio::task::spawn_blocking(move || gw.wait())
            .await
            .unwrap();
        assert!(status.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_without_waiting_for_the_drain() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, config(&mock)).unwrap();
    let mut c = cmd(dir.path());
    c.args(["api", "--config"])
        .arg(&file)
        .env("TEST_MASTER", MASTER);
    let gw = Proc::spawn(c);
    mock.push_fault(Fault::hang());
    let client = reqwest::Client::new();
    let stuck = tokio::spawn(
        client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(MASTER)
            .json(&hello())
            .send(),
    );
    for _ in 0..2000 {
        if !mock.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        mock.requests().len(),
        1,
        "the stuck request reached the upstream"
    );
    gw.signal("-TERM");
    let gw = tokio::task::spawn_blocking(move || {
        gw.wait_for_output("draining in-flight requests");
        gw
    })
    .await
    .unwrap();
    gw.signal("-TERM");
    let (status, logs) = tokio::task::spawn_blocking(move || gw.wait())
        .await
        .unwrap();
    assert!(!status.success(), "{logs}");
    assert!(logs.contains("stopped by a second signal"), "{logs}");
    assert!(stuck.await.unwrap().is_err(), "the stuck request was cut");
}

#[test]
fn check_config_shows_bedrock_credentials_from_the_environment_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[[models]]\nname = \"nova\"\nprovider_model = \"bedrock/amazon.nova-lite-v1:0\"\naws_secret_access_key = \"${S}\"\n",
    )
    .unwrap();
    let out = cmd(dir.path())
        .args(["check-config", "--config"])
        .arg(&file)
        .env("S", "bedrock-secret-value")
        .env("AWS_ACCESS_KEY_ID", "AKIDCLI")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_BEDROCK_RUNTIME_ENDPOINT")
        .env("AWS_REGION", "ap-south-1")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("bedrock-secret-value"), "{text}");
    assert!(
        text.contains("base_url https://bedrock-runtime.ap-south-1.amazonaws.com, aws credentials set, region ap-south-1"),
        "{text}"
    );
}

#[test]
fn invalid_config_stops_api_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[[models]]\nname = \"x\"\nprovider_model = \"bedrock/claude\"\napi_key = \"k\"\n",
    )
    .unwrap();
    let out = cmd(dir.path())
        .args(["api", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("c.toml:4:11"), "{err}");
    assert!(
        err.contains("api_key does not apply to bedrock/ models"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_log_level_still_announces_the_address() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, config(&mock)).unwrap();
    let mut c = cmd(dir.path());
    c.args(["api", "--config"])
        .arg(&file)
        .env("TEST_MASTER", MASTER)
        .env("RUST_LOG", "warn");
    let gw = Proc::spawn(c); // waits for "listening on http://"
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER)
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    gw.signal("-TERM");
    let (status, logs) = tokio::task::spawn_blocking(move || gw.wait())
        .await
        .unwrap();
    assert!(status.success());
    assert!(
        !logs.contains("request_id="),
        "no request lines at warn: {logs}"
    );
}

#[test]
fn short_flags_c_and_p() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[server]\nport = 4000\n").unwrap();
    let out = cmd(dir.path())
        .args(["check-config", "-c"])
        .arg(&file)
        .args(["-p", "5124"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("# {} is valid", file.display())),
        "{text}"
    );
    assert!(text.contains("port = 5124"), "{text}");
}

#[test]
fn usage_errors_exit_with_code_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["check-config", "--bogus"][..],
        &["api", "-p", "not-a-port"],
        &["api", "--port", "70000"],
        &["api", "--log-format", "xml"],
        &["check-config", "--debug"],
        &["serve"],
        &[],
    ] {
        let out = cmd(dir.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: the error is explained");
    }
    let out = cmd(dir.path()).args(["api", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "-c, --config",
        "-p, --port",
        "--debug",
        "LITER_LLM_MASTER_KEY",
    ] {
        assert!(help.contains(needle), "{needle} in:\n{help}");
    }
}

#[test]
fn debug_logs_unless_rust_log_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        format!("[server]\nhost = \"127.0.0.1\"\n[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"echo\"\nprovider_model = \"mock/echo\"\n"),
    )
    .unwrap();
    for (debug, rust_log, expect) in [
        (true, None, true),
        (false, None, false),
        (true, Some("info"), false),
    ] {
        let mut c = cmd(dir.path());
        c.args(["api", "-c"]).arg(&file).args(["-p", "0"]);
        if debug {
            c.arg("--debug");
        }
        if let Some(filter) = rust_log {
            c.env("RUST_LOG", filter);
        }
        let gw = Proc::spawn(c); // waits for "listening on http://"
        gw.signal("-TERM");
        let (status, logs) = gw.wait();
        assert!(status.success(), "{logs}");
        assert_eq!(
            logs.contains("config loaded"),
            expect,
            "--debug {debug}, RUST_LOG {rust_log:?}:\n{logs}"
        );
        assert!(!logs.contains(MASTER), "{logs}");
    }
}

/// A LiteLLM file in the shape of its `simple_config.yaml`, plus a tag (not supported).
fn litellm_yaml(mock: &MockUpstream, tags: bool) -> String {
    format!(
        "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: gpt-4o\n      api_key: os.environ/TEST_UPSTREAM_KEY\n      api_base: {}\n{}general_settings:\n  master_key: os.environ/TEST_MASTER\n",
        mock.base_url(),
        if tags { "      tags: [\"paid\"]\n" } else { "" }
    )
}

#[tokio::test]
async fn check_config_and_convert_read_litellm_yaml() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), litellm_yaml(&mock, true)).unwrap();
    // found by discovery (no liter-llm-proxy.toml); the tag is reported with its line
    let out = cmd(dir.path())
        .arg("check-config")
        .env("TEST_MASTER", MASTER)
        .env("TEST_UPSTREAM_KEY", UPSTREAM_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("config.yaml:7:7: model_list[0].litellm_params.tags: not supported yet"),
        "{err}"
    );
    let out = cmd(dir.path())
        .args(["check-config", "--allow-unsupported"])
        .env("TEST_MASTER", MASTER)
        .env("TEST_UPSTREAM_KEY", UPSTREAM_KEY)
        .output()
        .unwrap();
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("config.yaml is valid"), "{shown}");
    assert!(
        shown.contains("# ignored (--allow-unsupported):"),
        "{shown}"
    );
    assert!(
        shown.contains("provider_model = \"openai/gpt-4o\""),
        "{shown}"
    );
    assert!(
        !shown.contains(UPSTREAM_KEY) && !shown.contains(MASTER),
        "{shown}"
    );

    // convert: ${VAR} kept, the tag named in a comment, and the output loads
    let out = cmd(dir.path())
        .args(["convert", "config.yaml"])
        .env("TEST_MASTER", MASTER)
        .output()
        .unwrap();
    let toml = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{toml}");
    assert!(
        toml.contains("api_key = \"${TEST_UPSTREAM_KEY}\""),
        "{toml}"
    );
    assert!(toml.contains("master_key = \"${TEST_MASTER}\""), "{toml}");
    assert!(
        toml.contains("#   model_list[0].litellm_params.tags (line 7, column 7)"),
        "{toml}"
    );
    std::fs::write(dir.path().join("converted.toml"), &toml).unwrap();
    let out = cmd(dir.path())
        .args(["check-config", "--config", "converted.toml"])
        .env("TEST_MASTER", MASTER)
        .env("TEST_UPSTREAM_KEY", UPSTREAM_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // a YAML syntax error names the file, line and column
    std::fs::write(dir.path().join("bad.yml"), "model_list:\n  - [unclosed\n").unwrap();
    let out = cmd(dir.path())
        .args(["convert", "bad.yml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("invalid YAML config bad.yml:"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_serves_a_litellm_yaml_config() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy_config.yaml");
    std::fs::write(&file, litellm_yaml(&mock, false)).unwrap();
    let mut c = cmd(dir.path());
    c.args(["api", "--port", "0", "--host", "127.0.0.1", "--config"])
        .arg(&file)
        .env("TEST_MASTER", MASTER)
        .env("TEST_UPSTREAM_KEY", UPSTREAM_KEY);
    let gw = Proc::spawn(c);
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER)
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some(&*format!("Bearer {UPSTREAM_KEY}"))
    );
    gw.signal("-TERM");
    let (status, logs) = tokio::task::spawn_blocking(move || gw.wait())
        .await
        .unwrap();
    assert!(status.success(), "{logs}");
    assert!(
        logs.contains("config file loaded (LiteLLM format)"),
        "{logs}"
    );
    assert!(logs.contains("proxy_config.yaml"), "{logs}");
}
