//! LiteLLM's `config.yaml` format: files in the shapes of LiteLLM's example configs
//! load onto the same runtime config as their TOML twins and serve traffic; the
//! unsupported-key report; provider inference; wildcards; `os.environ/` and
//! `environment_variables`; YAML errors and alias bombs; the `convert` round trip.

use liter_llm_proxy::config::litellm::{self, Loaded};
use liter_llm_proxy::config::{load_str, Config, ConfigError, LogFormat, Overrides};
use mock_upstream::{Fault, MockUpstream};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::support::*;

fn yaml(src: &str, env: impl Fn(&str) -> Option<String>) -> Result<Loaded<Config>, ConfigError> {
    litellm::load_str(src, "config.yaml", &Overrides::default(), false, env)
}

fn toml(src: &str, env: impl Fn(&str) -> Option<String>) -> Config {
    load_str(src, "twin.toml", &Overrides::default(), env).unwrap_or_else(|e| panic!("{e}"))
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// Two runtime configs are the same (their Debug output shows every non-secret
/// value; the secrets are compared one by one).
fn assert_same(a: &Config, b: &Config) {
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let secret = |c: &Config| {
        let mut all: Vec<String> = c
            .models
            .iter()
            .map(|m| {
                m.api_key
                    .as_ref()
                    .map(|k| k.expose_secret().to_string())
                    .unwrap_or_default()
            })
            .collect();
        all.push(
            c.master_key
                .as_ref()
                .map(|k| k.expose_secret().to_string())
                .unwrap_or_default(),
        );
        all.extend(c.credential_aliases.iter().map(|a| {
            a.api_key
                .as_ref()
                .map(|k| k.expose_secret().to_string())
                .unwrap_or_default()
        }));
        all
    };
    assert_eq!(secret(a), secret(b));
}

fn err(src: &str) -> String {
    match yaml(src, no_env) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e.to_string(),
    }
}

/// LiteLLM's `simple_config.yaml` shape: one model.
#[tokio::test]
async fn simple_file_serves_like_its_twin() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let src = format!(
        "model_list:\n  - model_name: gpt-3.5-turbo\n    litellm_params:\n      model: gpt-3.5-turbo\n      api_key: os.environ/OPENAI_API_KEY\n      api_base: {base}\ngeneral_settings:\n  master_key: {MASTER}\n"
    );
    let env = |n: &str| (n == "OPENAI_API_KEY").then(|| UPSTREAM_KEY.to_string());
    let loaded = yaml(&src, env).unwrap();
    assert!(loaded.ignored.is_empty());
    let twin = toml(
        &format!("[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"gpt-3.5-turbo\"\nprovider_model = \"openai/gpt-3.5-turbo\"\napi_key = \"${{OPENAI_API_KEY}}\"\nbase_url = \"{base}\"\n"),
        env,
    );
    assert_same(&loaded.value, &twin);
    let gw = Gateway::start_config(loaded.value).await;
    let resp = gw.chat(MASTER, hello("gpt-3.5-turbo")).await;
    assert_eq!(resp.status(), 200);
    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body.as_ref().unwrap()["model"], "gpt-3.5-turbo");
    let auth = seen[0].headers.iter().find(|(n, _)| n == "authorization");
    assert_eq!(
        auth.map(|(_, v)| v.as_str()),
        Some(&*format!("Bearer {UPSTREAM_KEY}"))
    );
}

/// LiteLLM's `load_balancer.yaml` shape: one name, several deployments, rpm/tpm at the
/// entry level, keys through `environment_variables` and `os.environ/`.
#[tokio::test]
async fn load_balancer_with_entry_limits_and_environment_variables() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let azure = format!("http://{}", mock.addr());
    let src = format!(
        r#"
model_list:
  - model_name: gpt-4
    litellm_params:
      model: azure/chatgpt-v-2
      api_base: {azure}
      api_version: "2023-05-15"
      api_key: os.environ/AZURE_API_KEY
    rpm: 6
  - model_name: gpt-4
    litellm_params:
      model: gpt-4
      api_key: os.environ/OPENAI_KEY_2
      api_base: {base}
      timeout: 30
      stream_timeout: 10
      weight: 2
    tpm: 100000
litellm_settings:
  num_retries: 0
  request_timeout: 40
router_settings:
  routing_strategy: simple-shuffle
  allowed_fails: 2
  cooldown_time: 30
general_settings:
  master_key: {MASTER}
environment_variables:
  AZURE_API_KEY: azure-secret-1
  OPENAI_KEY_2: os.environ/FROM_PROCESS
"#
    );
    let env = |n: &str| (n == "FROM_PROCESS").then(|| "openai-secret-2".to_string());
    let loaded = yaml(&src, env).unwrap();
    let twin_env = |n: &str| match n {
        "AZURE_API_KEY" => Some("azure-secret-1".to_string()),
        "OPENAI_KEY_2" => Some("openai-secret-2".to_string()),
        _ => None,
    };
    let twin = toml(
        &format!(
            r#"
[general]
master_key = "{MASTER}"
max_retries = 0
default_timeout_secs = 40
[[models]]
name = "gpt-4"
provider_model = "azure/chatgpt-v-2"
base_url = "{azure}"
api_version = "2023-05-15"
api_key = "${{AZURE_API_KEY}}"
rpm = 6
[[models]]
name = "gpt-4"
provider_model = "openai/gpt-4"
api_key = "${{OPENAI_KEY_2}}"
base_url = "{base}"
timeout_secs = 30
stream_timeout_secs = 10
weight = 2.0
tpm = 100000
[cooldown]
duration_secs = 30
allowed_fails = 2
"#
        ),
        twin_env,
    );
    assert_same(&loaded.value, &twin);
    assert_eq!(loaded.value.models[0].rpm, Some(6));
    assert_eq!(loaded.value.models[1].tpm, Some(100_000));
    let gw = Gateway::start_config(loaded.value).await;
    for _ in 0..4 {
        assert_eq!(gw.chat(MASTER, hello("gpt-4")).await.status(), 200);
    }
    assert_eq!(mock.requests().len(), 4);
}

/// LiteLLM's `multi_instance_simple_config.yaml` shape: a Redis cache found through
/// REDIS_HOST / REDIS_PORT, shared by two gateways.
#[tokio::test]
async fn redis_cache_from_redis_variables_is_shared() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let ns = format!("litellm-yaml-{}", std::process::id());
    let src = format!(
        "model_list:\n  - model_name: gpt-3.5-turbo\n    litellm_params:\n      model: openai/gpt-3.5-turbo\n      api_key: {UPSTREAM_KEY}\n      api_base: {base}\nlitellm_settings:\n  cache: True\n  cache_params:\n    type: redis\n    namespace: {ns}\n    ttl: 600\n    supported_call_types: [acompletion, completion, embedding, aembedding]\ngeneral_settings:\n  master_key: {MASTER}\n"
    );
    let env = |n: &str| match n {
        "REDIS_HOST" => Some("127.0.0.1".to_string()),
        "REDIS_PORT" => Some("6379".to_string()),
        _ => None,
    };
    let loaded = yaml(&src, env).unwrap();
    let twin = toml(
        &format!("[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"gpt-3.5-turbo\"\nprovider_model = \"openai/gpt-3.5-turbo\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"{base}\"\n[cache]\nbackend = \"redis\"\nttl_seconds = 600\n[cache.backend_config]\nendpoint = \"redis://127.0.0.1:6379\"\nroot = \"/{ns}/\"\n"),
        env,
    );
    assert_same(&loaded.value, &twin);
    let one = Gateway::start_config(loaded.value).await;
    let two = Gateway::start_config(yaml(&src, env).unwrap().value).await;
    let body = serde_json::json!({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": format!("shared {ns}")}]});
    assert_eq!(one.chat(MASTER, body.clone()).await.status(), 200);
    // The entry is written to Redis after the answer: wait until it is there.
    let mut stored = false;
    for _ in 0..400 {
        let out = std::process::Command::new("redis-cli")
            .args(["--scan", "--pattern", &format!("{ns}/*")])
            .output()
            .unwrap();
        if !out.stdout.is_empty() {
            stored = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(stored, "the first gateway never wrote the entry to Redis");
    let resp = two.chat(MASTER, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("x-liter-llm-cache")
            .map(|v| v.to_str().unwrap()),
        Some("hit")
    );
    assert_eq!(
        mock.requests().len(),
        1,
        "the second gateway answered from Redis"
    );
}

/// LiteLLM's `enterprise_config.yaml` shape: keys we do not read are reported, all at
/// once with their lines and columns, unless allowed; its tags route as they would in
/// LiteLLM.
#[tokio::test]
async fn enterprise_file_reports_unsupported_keys_unless_allowed() {
    let mock = MockUpstream::start().await.unwrap();
    let src = format!(
        r#"model_list:
  - model_name: gpt-4
    litellm_params:
      model: openai/fake
      api_key: fake-key
      api_base: {base}
      tags: ["teamA"]
    model_info:
      id: "team-a-model"
litellm_settings:
  success_callback: ["langfuse"]
  callbacks: ["prometheus"]
router_settings:
  enable_tag_filtering: True
general_settings:
  master_key: {MASTER}
  alerting: ["slack"]
frobnicate: 1
"#,
        base = mock.base_url()
    );
    let e = err(&src);
    for want in [
        "config.yaml:11:22: litellm_settings.success_callback[0]: not supported yet: the \"langfuse\" callback",
        "config.yaml:17:3: general_settings.alerting: not supported yet",
        "config.yaml:18:1: frobnicate: not supported yet",
    ] {
        assert!(e.contains(want), "{want}\nin\n{e}");
    }
    assert!(e.contains("3 problem(s)"), "{e}");
    assert!(!e.contains("model_info.id"), "{e}");
    let loaded =
        litellm::load_str(&src, "config.yaml", &Overrides::default(), true, no_env).unwrap();
    let ignored: Vec<&str> = loaded.ignored.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        ignored,
        [
            "litellm_settings.success_callback[0]",
            "general_settings.alerting",
            "frobnicate"
        ]
    );
    // model_info.id is the deployment's id.
    assert_eq!(loaded.value.models[0].id, "team-a-model");
    // prometheus became an open /metrics; the only deployment carries teamA, so an
    // untagged request reaches it and another tag does not.
    let gw = Gateway::start_config(loaded.value).await;
    assert_eq!(gw.chat(MASTER, hello("gpt-4")).await.status(), 200);
    let other = gw
        .post("/v1/chat/completions", Some(MASTER), &hello("gpt-4"))
        .header("x-litellm-tags", "teamB")
        .send()
        .await
        .unwrap();
    expect_error(other, 400).await;
    assert_eq!(gw.get("/metrics", None).send().await.unwrap().status(), 200);
}

/// The tag routing part of LiteLLM's enterprise shape: free, paid and default
/// deployments of one model with `enable_tag_filtering`, loaded onto the same runtime
/// config as its TOML twin, and routing as LiteLLM documents.
#[tokio::test]
async fn enterprise_file_with_tags_and_tag_filtering_routes_like_its_twin() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let src = format!(
        r#"model_list:
  - model_name: gpt-4
    litellm_params: {{model: openai/fake, api_key: k, api_base: "{base}", tags: ["free"]}}
  - model_name: gpt-4
    litellm_params: {{model: openai/gpt-4o, api_key: k, api_base: "{base}", tags: ["paid"]}}
  - model_name: gpt-4
    litellm_params: {{model: openai/gpt-4o-mini, api_key: k, api_base: "{base}", tags: ["default"]}}
router_settings:
  enable_tag_filtering: true
general_settings:
  master_key: {MASTER}
"#
    );
    let loaded = yaml(&src, no_env).unwrap();
    assert!(loaded.ignored.is_empty());
    let dep = |id: &str, tag: &str| {
        format!("[[models]]\nname = \"gpt-4\"\nprovider_model = \"openai/{id}\"\napi_key = \"k\"\nbase_url = \"{base}\"\ntags = [\"{tag}\"]\n")
    };
    let twin = toml(
        &format!(
            "[general]\nmaster_key = \"{MASTER}\"\n[router]\nenable_tag_filtering = true\n{}{}{}",
            dep("fake", "free"),
            dep("gpt-4o", "paid"),
            dep("gpt-4o-mini", "default")
        ),
        no_env,
    );
    assert_same(&loaded.value, &twin);
    let gw = Gateway::start_config(loaded.value).await;
    for (tags, want) in [
        (json!(["free"]), "openai/fake"),
        (json!(["paid"]), "openai/gpt-4o"),
        (json!(null), "openai/gpt-4o-mini"),
    ] {
        let mut body = hello("gpt-4");
        body["metadata"] = json!({ "tags": tags });
        let resp = gw.chat(MASTER, body).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-liter-llm-deployment"], want, "{tags}");
    }
}

/// Deployment tags without `enable_tag_filtering` (LiteLLM's spend-report tags) do not
/// route: reported by line, and left out with `--allow-unsupported`.
#[test]
fn tags_without_tag_filtering_are_reported() {
    let src = "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/gpt-4o\n      tags: [\"x\"]\n";
    let e = err(src);
    assert!(
        e.contains("config.yaml:5:7: model_list[0].litellm_params.tags: not supported yet: deployment tags without router_settings.enable_tag_filtering"),
        "{e}"
    );
    let loaded = litellm::load_str(
        src,
        "config.yaml",
        &Overrides::default(),
        true,
        |n: &str| (n == "OPENAI_API_KEY").then(|| "sk".to_string()),
    )
    .unwrap();
    assert!(loaded.value.models[0].tags.is_empty());
}

#[test]
fn provider_inference_and_an_unplaceable_name() {
    let src = "model_list:\n  - model_name: a\n    litellm_params: {model: gpt-4o}\n  - model_name: b\n    litellm_params: {model: claude-3-5-sonnet-20240620}\n  - model_name: c\n    litellm_params: {model: mistral-large-latest}\n  - model_name: d\n    litellm_params: {model: groq/llama3-70b-8192}\n  - model_name: e\n    litellm_params: {model: command-r-plus}\n";
    let c = yaml(src, no_env).unwrap().value;
    let got: Vec<&str> = c.models.iter().map(|m| m.provider_model.as_str()).collect();
    assert_eq!(
        got,
        [
            "openai/gpt-4o",
            "anthropic/claude-3-5-sonnet-20240620",
            "mistral/mistral-large-latest",
            "groq/llama3-70b-8192",
            "cohere/command-r-plus"
        ]
    );
    let e =
        err("model_list:\n  - model_name: mine\n    litellm_params:\n      model: my-fine-tune\n");
    assert!(
        e.contains("config.yaml:4:7: model_list[0].litellm_params.model: model_list entry \"mine\": cannot tell the provider of model \"my-fine-tune\""),
        "{e}"
    );
    let e = err("model_list:\n  - model_name: x\n    litellm_params:\n      model: nosuch/model\n");
    assert!(
        e.contains(
            "config.yaml:4:7: model_list[0].litellm_params.model: unknown provider \"nosuch\""
        ),
        "{e}"
    );
}

#[test]
fn provider_wildcards_become_aliases_and_bare_wildcards_are_reported() {
    let src = "model_list:\n  - model_name: \"anthropic/*\"\n    litellm_params:\n      model: \"anthropic/*\"\n      api_key: os.environ/ANTHROPIC_API_KEY\n  - model_name: \"gpt-3.5-turbo*\"\n    litellm_params:\n      model: \"gpt-3.5-turbo*\"\n  - model_name: \"team-*\"\n    litellm_params:\n      model: \"*\"\n";
    let e = err(src);
    assert!(e.contains("config.yaml:9:5: model_list[2].model_name: not supported yet: the wildcard model_name \"team-*\" with model \"*\": a model with no provider opens every provider"), "{e}");
    assert!(e.contains("1 problem(s)"), "{e}");
    let env = |n: &str| match n {
        "ANTHROPIC_API_KEY" => Some("sk-ant-1".to_string()),
        "OPENAI_API_KEY" => Some("sk-oa-1".to_string()),
        _ => None,
    };
    let c = litellm::load_str(src, "config.yaml", &Overrides::default(), true, env)
        .unwrap()
        .value;
    // A prefix pattern of a known family is a wildcard model of its provider.
    assert_eq!(c.models.len(), 1);
    assert_eq!(
        (
            c.models[0].name.as_str(),
            c.models[0].provider_model.as_str()
        ),
        ("gpt-3.5-turbo*", "openai/gpt-3.5-turbo*")
    );
    assert_eq!(c.credential_aliases.len(), 1);
    assert_eq!(c.credential_aliases[0].pattern, "anthropic/*");
    assert_eq!(
        c.credential_aliases[0]
            .api_key
            .as_ref()
            .unwrap()
            .expose_secret(),
        "sk-ant-1"
    );
}

/// LiteLLM's catch-all and prefix patterns, with a provider written: the names they
/// match go to that provider as the client sent them, configured names first, the
/// most specific pattern before `*`.
#[tokio::test]
async fn wildcard_models_serve_the_names_they_match() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let src = format!(
        r#"model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/pinned-4o, api_key: k, api_base: "{base}"}}
  - model_name: "gpt-3.5-turbo*"
    litellm_params: {{model: "openai/legacy-*", api_key: k, api_base: "{base}"}}
  - model_name: "*"
    litellm_params: {{model: "openai/*", api_key: k, api_base: "{base}"}}
general_settings:
  master_key: {MASTER}
"#
    );
    let loaded = yaml(&src, no_env).unwrap();
    assert!(loaded.ignored.is_empty());
    let gw = Gateway::start_config(loaded.value).await;
    for asked in ["gpt-4o", "gpt-3.5-turbo-0125", "o3-mini", "team/model-x"] {
        let resp = gw.chat(MASTER, hello(asked)).await;
        assert_eq!(resp.status(), 200, "{asked}");
        assert_eq!(resp.headers()["x-liter-llm-model"], asked);
    }
    let sent: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| {
            r.body.as_ref().unwrap()["model"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        sent,
        ["pinned-4o", "legacy--0125", "o3-mini", "team/model-x"]
    );
    // A name no model id can have is no model: nothing reaches an upstream.
    let bad = gw.chat(MASTER, hello("../../etc")).await;
    assert_eq!(bad.status(), 404);
    assert_eq!(mock.requests().len(), 4);
}

#[test]
fn os_environ_and_litellm_variables() {
    let src = "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/gpt-4o\n      api_key: os.environ/MY_KEY\n      rpm: os.environ/MY_RPM\n";
    let env = |n: &str| match n {
        "MY_KEY" => Some("sk-mine".to_string()),
        "MY_RPM" => Some("42".to_string()),
        "LITELLM_MASTER_KEY" => Some("sk-litellm-master".to_string()),
        "DATABASE_URL" => Some("postgres://u:p@127.0.0.1/test".to_string()),
        _ => None,
    };
    let c = yaml(src, env).unwrap().value;
    assert_eq!(
        c.models[0].api_key.as_ref().unwrap().expose_secret(),
        "sk-mine"
    );
    assert_eq!(c.models[0].rpm, Some(42));
    assert_eq!(
        c.master_key.as_ref().unwrap().expose_secret(),
        "sk-litellm-master"
    );
    let converted = litellm::convert_str(src, "config.yaml", env).unwrap();
    assert!(converted.contains("api_key = \"${MY_KEY}\""), "{converted}");
    assert!(
        converted.contains("master_key = \"${LITELLM_MASTER_KEY}\""),
        "{converted}"
    );
    assert!(
        converted.contains("database_url = \"${DATABASE_URL}\""),
        "{converted}"
    );
    assert!(!converted.contains("sk-mine") && !converted.contains("sk-litellm-master"));
    // The file's master_key wins over LITELLM_MASTER_KEY, as in LiteLLM.
    let c = yaml(
        &format!("{src}general_settings:\n  master_key: sk-file\n"),
        env,
    )
    .unwrap()
    .value;
    assert_eq!(c.master_key.as_ref().unwrap().expose_secret(), "sk-file");
}

#[test]
fn validation_problems_name_the_yaml_line() {
    let e = err("model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/gpt-4o\n      weight: 0\n      api_base: not-a-url\nrouter_settings:\n  model_group_alias: {alias: nowhere}\n");
    assert!(
        e.contains(
            "config.yaml:5:7: model_list[0].litellm_params.weight: weight must be greater than 0"
        ),
        "{e}"
    );
    assert!(
        e.contains("config.yaml:6:7: model_list[0].litellm_params.api_base:"),
        "{e}"
    );
    assert!(
        e.contains(
            "config.yaml:8:23: router_settings.model_group_alias.alias: alias target \"nowhere\""
        ),
        "{e}"
    );
}

#[test]
fn yaml_errors_and_bombs_are_refused_with_positions() {
    let e = err("model_list:\n  - model_name: m\n    litellm_params: [unclosed\n");
    assert!(e.starts_with("invalid YAML config config.yaml:"), "{e}");
    let e = err("general_settings:\n  master_key: a\n  master_key: b\n");
    assert_eq!(
        e,
        "invalid YAML config config.yaml:3:3: duplicate key \"master_key\""
    );
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 0..12u8 {
        let (prev, next) = ((b'a' + i) as char, (b'a' + i + 1) as char);
        bomb.push_str(&format!("{next}: &{next} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    let started = std::time::Instant::now();
    let e = err(&bomb);
    assert!(e.contains("more than 200000 values"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let deep = format!("x: {}1{}\n", "[".repeat(500), "]".repeat(500));
    assert!(err(&deep).starts_with("invalid YAML config config.yaml:1:"));
}

/// `convert`: the printed TOML loads onto the same runtime config as the YAML.
#[test]
fn convert_round_trip() {
    let src = r#"
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      input_cost_per_token: 0.000001
      tags: ["paid", "default"]
    model_info:
      output_cost_per_token: 0.000002
  - model_name: claude
    litellm_params:
      model: anthropic/claude-3-5-haiku-20241022
      api_key: os.environ/ANTHROPIC_API_KEY
      order: 2
  - model_name: "groq/*"
    litellm_params:
      model: "groq/*"
litellm_settings:
  drop_params: true
  fallbacks: [{"gpt-4o": ["claude"]}]
  context_window_fallbacks: [{"gpt-4o": ["claude"]}]
  callbacks: ["otel"]
  cache: true
  cache_params: {type: local, ttl: 30}
router_settings:
  routing_strategy: latency-based-routing
  model_group_alias: {"gpt4": "gpt-4o"}
  enable_tag_filtering: true
general_settings:
  master_key: os.environ/MK
  background_health_checks: true
  health_check_interval: 60
  max_request_size_mb: 2
environment_variables:
  ANTHROPIC_API_KEY: sk-ant-in-file
"#;
    let env = |n: &str| match n {
        "OPENAI_API_KEY" => Some("sk-openai".to_string()),
        "MK" => Some("sk-master".to_string()),
        _ => None,
    };
    let from_yaml = yaml(src, env).unwrap().value;
    let converted = litellm::convert_str(src, "config.yaml", env).unwrap();
    assert!(!converted.contains("sk-ant-in-file"), "{converted}");
    assert!(converted.contains("ANTHROPIC_API_KEY"), "{converted}");
    let twin_env = |n: &str| match n {
        "ANTHROPIC_API_KEY" => Some("sk-ant-in-file".to_string()),
        other => env(other),
    };
    let from_toml = toml(&converted, twin_env);
    assert_same(&from_yaml, &from_toml);
    assert_eq!(from_yaml.body_limit, 2 * 1024 * 1024);
    assert!(from_yaml.tracing.is_some() && from_yaml.drop_params);
    assert_eq!(from_yaml.routing.pools[0].fallbacks, ["claude"]);
    assert_eq!(from_yaml.models[0].output_cost_per_token, Some(0.000002));
    assert_eq!(from_yaml.models[0].tags, ["paid", "default"]);
    assert!(from_yaml.routing.tag_filtering);
    assert!(
        converted.contains("enable_tag_filtering = true"),
        "{converted}"
    );
    assert_eq!(from_yaml.cache.as_ref().unwrap().max_entries, Some(200));
}

/// `model_info` (`mode`, `base_model`, `max_tokens`, `max_input_tokens`,
/// `max_output_tokens`), `litellm_params.max_retries`, `router_settings.retry_after` and
/// `enable_pre_call_checks` load onto the same runtime config as their TOML twin; a
/// mode liter-llm cannot serve is reported by name.
#[test]
fn model_info_and_retry_settings_load_like_their_twin() {
    let src = r#"model_list:
  - model_name: prod
    litellm_params:
      model: azure/my-prod
      api_base: https://example-resource.openai.azure.com
      api_key: k
      api_version: "2024-06-01"
      max_retries: 2
    model_info:
      mode: chat
      base_model: azure/gpt-4o
      max_tokens: 4096
      max_input_tokens: 128000
      max_output_tokens: 16384
  - model_name: embed
    litellm_params:
      model: text-embedding-3-small
      api_key: k
    model_info:
      mode: embedding
      base_model: text-embedding-3-small
router_settings:
  retry_after: 2
  enable_pre_call_checks: true
"#;
    let twin = r#"
[router]
retry_after_secs = 2

[[models]]
name = "prod"
provider_model = "azure/my-prod"
base_url = "https://example-resource.openai.azure.com"
api_key = "k"
api_version = "2024-06-01"
max_retries = 2
mode = "chat"
base_model = "azure/gpt-4o"
max_tokens = 4096
max_input_tokens = 128000
max_output_tokens = 16384

[[models]]
name = "embed"
provider_model = "openai/text-embedding-3-small"
api_key = "k"
mode = "embedding"
base_model = "openai/text-embedding-3-small"
"#;
    let loaded = yaml(src, no_env).unwrap();
    assert!(loaded.ignored.is_empty());
    assert_same(&loaded.value, &toml(twin, no_env));
    let e = err(&src.replace("mode: embedding", "mode: image_generation"));
    assert!(
        e.contains("config.yaml:20:7: model_list[1].model_info.mode: not supported yet: mode \"image_generation\""),
        "{e}"
    );
    let e = err(&src.replace("base_model: azure/gpt-4o", "base_model: my-own-thing"));
    assert!(e.contains("cannot tell the provider of base_model"), "{e}");
}

/// LiteLLM's catch-all `*` → `*`: any name whose provider is written or inferred goes
/// to that provider, with the provider's own key and base URL from its variables
/// (here `environment_variables`), only for providers at a fixed public base URL with
/// a key set; configured names first; a name that cannot be placed is a 404 and
/// reaches no upstream. A key on the entry is refused (it would go to every provider).
#[tokio::test]
async fn the_catch_all_serves_names_whose_provider_it_can_tell() {
    let mock = MockUpstream::start().await.unwrap();
    let (base, addr) = (mock.base_url(), mock.addr());
    let src = format!(
        r#"model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/pinned, api_key: k, api_base: "{base}"}}
  - model_name: "*"
    litellm_params: {{model: "*"}}
environment_variables:
  OPENAI_API_KEY: sk-openai-from-env
  OPENAI_BASE_URL: "{base}"
  ANTHROPIC_API_KEY: sk-ant-from-env
  ANTHROPIC_BASE_URL: "http://{addr}"
  OLLAMA_API_BASE: "{base}"
general_settings:
  master_key: {MASTER}
"#
    );
    let loaded = yaml(&src, no_env).unwrap();
    assert!(loaded.ignored.is_empty());
    // The TOML twin: provider_model "*" on the entry named "*".
    let env = |n: &str| {
        let v = match n {
            "OPENAI_API_KEY" => "sk-openai-from-env".to_string(),
            "OPENAI_BASE_URL" | "OLLAMA_API_BASE" => base.clone(),
            "ANTHROPIC_API_KEY" => "sk-ant-from-env".to_string(),
            "ANTHROPIC_BASE_URL" => format!("http://{addr}"),
            _ => return None,
        };
        Some(v)
    };
    let twin = format!(
        "[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"gpt-4o\"\nprovider_model = \"openai/pinned\"\napi_key = \"k\"\nbase_url = \"{base}\"\n[[models]]\nname = \"*\"\nprovider_model = \"*\"\n"
    );
    assert_same(&loaded.value, &toml(&twin, env));
    // One deployment per provider with a key: OpenAI and Anthropic (Ollama, a local
    // server, is never opened by the catch-all).
    let served: Vec<&str> = loaded
        .value
        .models
        .iter()
        .map(|d| d.provider_model.as_str())
        .collect();
    assert_eq!(served, ["openai/pinned", "openai/*", "anthropic/*"]);

    let gw = Gateway::start_config(loaded.value).await;
    for (asked, upstream) in [
        ("gpt-4o", "pinned"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("openai/o3-mini", "o3-mini"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022"),
        (
            "anthropic/claude-sonnet-4-20250514",
            "claude-sonnet-4-20250514",
        ),
    ] {
        mock.clear_requests();
        let resp = gw.chat(MASTER, hello(asked)).await;
        assert_eq!(resp.status(), 200, "{asked}");
        assert_eq!(resp.headers()["x-liter-llm-model"], asked);
        let r = &mock.requests()[0];
        assert_eq!(r.body.as_ref().unwrap()["model"], upstream, "{asked}");
        let key = r
            .header("authorization")
            .or_else(|| r.header("x-api-key"))
            .unwrap()
            .to_string();
        let want = match upstream {
            "pinned" => "Bearer k",
            u if u.starts_with("claude") => "sk-ant-from-env",
            _ => "Bearer sk-openai-from-env",
        };
        assert_eq!(key, want, "{asked}");
    }
    // Names it cannot place, or whose provider it does not open: 404, no upstream call.
    mock.clear_requests();
    for asked in [
        "my-fine-tune",
        "groq/llama-3.3-70b-versatile",
        "ollama/llama3",
        "gemini-1.5-pro",
        "custom/x",
    ] {
        let err = expect_error(gw.chat(MASTER, hello(asked)).await, 404).await;
        assert_eq!(err["error"]["code"], "model_not_found", "{asked}: {err}");
    }
    assert!(mock.requests().is_empty());

    let e = err(&src.replace(
        "litellm_params: {model: \"*\"}",
        "litellm_params: {model: \"*\", api_key: sk-any}",
    ));
    assert!(
        e.contains("model_list[1].litellm_params.api_key: api_key on the catch-all"),
        "{e}"
    );
    let without_keys = "model_list:\n  - model_name: \"*\"\n    litellm_params: {model: \"*\"}\n";
    assert!(err(without_keys).contains("serves no provider"));
}

/// `set_verbose`, `json_logs` and `health_check_details` become `[general] debug`,
/// `log_format` and `health_check_details`, in the YAML and in its converted TOML (the
/// defaults write nothing). With `health_check_details: false`, `/health/readiness`
/// shows each deployment's name and state, not its upstream model, probe error or load.
#[tokio::test]
async fn log_settings_and_health_check_details_load_like_their_twin() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::status(500).for_model("down").forever());
    let src = format!(
        r#"model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/down, api_key: k, api_base: "{base}"}}
litellm_settings:
  set_verbose: true
  json_logs: true
general_settings:
  master_key: {MASTER}
  background_health_checks: true
  health_check_interval: 1
  health_check_details: false
"#,
        base = mock.base_url()
    );
    let loaded = yaml(&src, no_env).unwrap();
    assert!(loaded.ignored.is_empty());
    let c = &loaded.value;
    assert!(c.debug, "set_verbose");
    assert_eq!(c.log_format, LogFormat::Json);
    assert!(!c.health_check_details);
    let converted = litellm::convert_str(&src, "config.yaml", no_env).unwrap();
    for line in [
        "log_format = \"json\"",
        "debug = true",
        "health_check_details = false",
    ] {
        assert!(converted.contains(line), "{line}\n{converted}");
    }
    assert!(!converted.contains("Not converted"), "{converted}");
    assert_same(c, &toml(&converted, no_env));

    let defaults = src
        .replace("set_verbose: true", "set_verbose: false")
        .replace("json_logs: true", "json_logs: false")
        .replace("health_check_details: false", "health_check_details: true");
    let plain = yaml(&defaults, no_env).unwrap().value;
    assert!(!plain.debug && plain.log_format == LogFormat::Text && plain.health_check_details);
    let converted = litellm::convert_str(&defaults, "config.yaml", no_env).unwrap();
    for key in ["log_format", "debug", "health_check_details"] {
        assert!(!converted.contains(key), "{key}\n{converted}");
    }

    // The probe fails on both gateways; only the one with details says how.
    let down = |r: &Value| r["deployments"][0]["healthy"] == false;
    let full = Gateway::start_config(plain).await;
    let ready = crate::routing::readiness_until(&full, down).await;
    let d = &ready["deployments"][0];
    assert_eq!(d["healthy"], false, "{ready}");
    assert!(
        d["health_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{ready}"
    );
    assert_eq!(d["deployment"], "openai/down", "{ready}");
    assert!(ready["tasks"].is_number(), "{ready}");

    let terse = Gateway::start_config(loaded.value).await;
    let ready = crate::routing::readiness_until(&terse, down).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["models"], 1, "{ready}");
    let d = ready["deployments"][0].as_object().unwrap();
    let mut shown: Vec<&str> = d.keys().map(String::as_str).collect();
    shown.sort_unstable();
    assert_eq!(
        shown,
        ["cooling_down", "half_open", "healthy", "model"],
        "{ready}"
    );
    assert_eq!(d["model"], "gpt-4o");
    assert_eq!(d["healthy"], false, "{ready}");
    let mut top: Vec<&str> = ready
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    top.sort_unstable();
    assert_eq!(top, ["deployments", "models", "status"], "{ready}");
}

/// `disable_spend_logs: true`, on PostgreSQL (LiteLLM's only database) and on SQLite: no
/// ledger row is written per request, while the key's spend and budget stay exact; the
/// ledger routes say the logs are off.
#[tokio::test]
async fn disable_spend_logs_keeps_budgets_exact_without_ledger_rows() {
    use crate::governance::Db;
    spend_logs_off(Db::postgres().await).await;
    spend_logs_off(Db::sqlite()).await;
}

async fn spend_logs_off(db: crate::governance::Db) {
    use crate::governance::{ask, spend_store};
    use liter_llm_proxy::store::LedgerFilter;

    let mock = MockUpstream::start().await.unwrap();
    let src = format!(
        r#"model_list:
  - model_name: priced
    litellm_params:
      model: openai/house-model
      api_key: k
      api_base: "{base}"
      input_cost_per_token: 0.0
      output_cost_per_token: 0.001
general_settings:
  master_key: {MASTER}
  database_url: "{url}"
  disable_spend_logs: true
"#,
        base = mock.base_url(),
        url = db.url()
    );
    let loaded = yaml(&src, no_env).unwrap();
    assert!(loaded.ignored.is_empty());
    assert!(loaded.value.governance.disable_spend_logs);
    let converted = litellm::convert_str(&src, "config.yaml", no_env).unwrap();
    assert!(
        converted.contains("disable_spend_logs = true"),
        "{converted}"
    );
    assert_same(&loaded.value, &toml(&converted, no_env));

    let gw = Gateway::start_config(loaded.value).await;
    // A budget that one request (reserved at max_tokens) fits and a second does not.
    let made = gw
        .post("/key/generate", Some(MASTER), &json!({"max_budget": 0.01}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200);
    let made: Value = made.json().await.unwrap();
    let key = made["key"].as_str().unwrap().to_owned();
    assert_eq!(gw.chat(&key, ask(10)).await.status(), 200);
    gw.app.governor.settled().await;
    expect_error(gw.chat(&key, ask(10)).await, 402).await;
    let billed = mock.served().completion_tokens as f64 * 0.001;
    assert!(billed > 0.0);
    let token = made["token"].as_str().unwrap();
    let info = gw.get_json(&format!("/key/info?key={token}"), MASTER).await;
    let spend = info["info"]["spend"]
        .as_f64()
        .or(info["spend"].as_f64())
        .unwrap();
    assert!((spend - billed).abs() < 1e-9, "{info} vs {billed}");
    spend_store(&gw).flush().await.unwrap();
    let rows = spend_store(&gw)
        .ledger(&LedgerFilter::default())
        .await
        .unwrap();
    assert!(rows.is_empty(), "{rows:?}");
    for route in ["/spend/logs", "/global/spend", "/global/spend/keys"] {
        let e = expect_error(gw.get(route, Some(MASTER)).send().await.unwrap(), 404).await;
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains("general.disable_spend_logs"), "{route}: {msg}");
    }
}

/// Writes to `file` a LiteLLM config with one priced model on the mock, the database
/// `db`, and `setting` (one more `general_settings` line), for the reload tests.
fn write_priced(
    file: &std::path::Path,
    mock: &MockUpstream,
    db: &crate::governance::Db,
    setting: &str,
) {
    std::fs::write(
        file,
        format!(
            "model_list:\n  - model_name: priced\n    litellm_params: {{model: openai/house-model, api_key: k, api_base: \"{base}\", input_cost_per_token: 0.0, output_cost_per_token: 0.001}}\ngeneral_settings:\n  master_key: {MASTER}\n  database_url: \"{url}\"\n  {setting}\n",
            base = mock.base_url(),
            url = db.url()
        ),
    )
    .unwrap();
}

/// A reload turns `disable_spend_logs` on and off: from the next request on, its row
/// is written or not, and the ledger routes follow.
#[tokio::test]
async fn disable_spend_logs_follows_a_reload() {
    use crate::governance::{ask, Db};
    use liter_llm_proxy::store::LedgerFilter;

    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    let write = |off: bool| write_priced(&file, &mock, &db, &format!("disable_spend_logs: {off}"));
    write(false);
    let gw = crate::reload::start_file(&file).await;
    let rows = || async {
        let app = gw.live.app();
        app.governor.settled().await;
        let spend = app.governor.stores.clone().unwrap().spend;
        spend.flush().await.unwrap();
        spend.ledger(&LedgerFilter::default()).await.unwrap().len()
    };
    let logs = || {
        client()
            .get(format!("{}/spend/logs", gw.url))
            .bearer_auth(MASTER)
            .send()
    };
    let chat = || {
        client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(MASTER)
            .json(&ask(10))
            .send()
    };
    assert_eq!(chat().await.unwrap().status(), 200);
    assert_eq!(rows().await, 1);
    write(true);
    gw.live.reload().await.unwrap();
    assert_eq!(chat().await.unwrap().status(), 200);
    assert_eq!(rows().await, 1, "no row while the logs are off");
    assert_eq!(logs().await.unwrap().status(), 404);
    write(false);
    gw.live.reload().await.unwrap();
    assert_eq!(chat().await.unwrap().status(), 200);
    assert_eq!(rows().await, 2);
    assert_eq!(logs().await.unwrap().status(), 200);
}

/// `proxy_batch_write_at: 30` with SQLite: the store's write interval, converted to
/// `general.spend_write_interval_secs`. With PostgreSQL (from `database_url` or
/// LiteLLM's `DATABASE_URL`), where each request's spend is committed when it ends, it
/// is refused where it is written, as the TOML key is; so are 0 and more than an hour.
#[tokio::test]
async fn proxy_batch_write_at_sets_the_sqlite_write_interval() {
    let src = |db: &str| {
        format!(
            "model_list:\n  - model_name: m\n    litellm_params: {{model: openai/x, api_key: k}}\ngeneral_settings:\n  master_key: {MASTER}\n{db}  proxy_batch_write_at: 30\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spend.db");
    let sqlite = src(&format!("  database_url: \"{}\"\n", file.display()));
    let loaded = yaml(&sqlite, no_env).unwrap();
    assert!(loaded.ignored.is_empty(), "{:?}", loaded.ignored);
    assert_eq!(
        loaded.value.governance.spend_write_interval,
        Some(std::time::Duration::from_secs(30))
    );
    let converted = litellm::convert_str(&sqlite, "config.yaml", no_env).unwrap();
    assert!(
        converted.contains("spend_write_interval_secs = 30"),
        "{converted}"
    );
    assert_same(&loaded.value, &toml(&converted, no_env));
    // The default SQLite file (no database_url) takes it too.
    assert!(yaml(&src(""), no_env).is_ok());

    let pg = "postgres://app:pg-secret@127.0.0.1:5432/llm";
    let e = err(&src(&format!("  database_url: \"{pg}\"\n")));
    assert!(
        e.contains("config.yaml:7:3: general_settings.proxy_batch_write_at: spend_write_interval_secs (LiteLLM's proxy_batch_write_at) is not supported yet with PostgreSQL"),
        "{e}"
    );
    assert!(!e.contains("pg-secret"), "{e}");
    let env = |n: &str| (n == "DATABASE_URL").then(|| pg.to_owned());
    let Err(e) = yaml(&src(""), env) else {
        panic!("DATABASE_URL's PostgreSQL took proxy_batch_write_at")
    };
    let e = e.to_string();
    assert!(
        e.contains("config.yaml:6:3: general_settings.proxy_batch_write_at: spend_write_interval_secs (LiteLLM's proxy_batch_write_at) is not supported yet with PostgreSQL"),
        "{e}"
    );
    assert!(!e.contains("pg-secret"), "{e}");
    let zero = sqlite.replace("proxy_batch_write_at: 30", "proxy_batch_write_at: 0");
    let e = err(&zero);
    assert!(
        e.contains("config.yaml:7:3: general_settings.proxy_batch_write_at: spend_write_interval_secs must be a whole number of seconds from 1 to 3600; got 0"),
        "{e}"
    );

    // The TOML key, checked the same way, at its own line and column.
    let toml_src = |db: &str, secs: u64| {
        format!("[general]\nmaster_key = \"{MASTER}\"\n{db}spend_write_interval_secs = {secs}\n")
    };
    let load = |s: &str| load_str(s, "gw.toml", &Overrides::default(), no_env);
    let ok = load(&toml_src("", 3600)).unwrap();
    assert_eq!(
        ok.governance.spend_write_interval,
        Some(std::time::Duration::from_secs(3600))
    );
    for (db, secs, want) in [
        ("", 0, "gw.toml:3:29: general.spend_write_interval_secs: spend_write_interval_secs must be a whole number of seconds from 1 to 3600; got 0"),
        ("", 3601, "gw.toml:3:29: general.spend_write_interval_secs: spend_write_interval_secs must be a whole number of seconds from 1 to 3600; got 3601"),
        ("database_url = \"postgresql://db/llm\"\n", 1, "gw.toml:4:29: general.spend_write_interval_secs: spend_write_interval_secs (LiteLLM's proxy_batch_write_at) is not supported yet with PostgreSQL"),
    ] {
        let e = load(&toml_src(db, secs)).unwrap_err().to_string();
        assert!(e.contains(want), "{want}\nin\n{e}");
    }
}

/// A reload applies a changed `proxy_batch_write_at`: with an hour, a settled request's
/// row waits in memory; reloaded with a second, the writer commits it within about
/// that second, without a flush.
#[tokio::test]
async fn proxy_batch_write_at_follows_a_reload() {
    use crate::governance::{ask, Db};

    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    let write =
        |secs: u64| write_priced(&file, &mock, &db, &format!("proxy_batch_write_at: {secs}"));
    let rows = || -> i64 {
        let c = rusqlite::Connection::open(db.url()).unwrap();
        c.query_row("SELECT COUNT(*) FROM spend_ledger", [], |r| r.get(0))
            .unwrap()
    };
    write(3600);
    let gw = crate::reload::start_file(&file).await;
    let chat = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER)
        .json(&ask(10))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    // Settled in memory (`settled()` would flush): the global scope has the cost.
    let spend = gw.live.app().governor.stores.clone().unwrap().spend;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while spend.spent("global").await.unwrap().spent_usd == 0.0 {
        assert!(std::time::Instant::now() < deadline, "never settled");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(rows(), 0, "committed at once with an hour's interval");
    write(1);
    gw.live.reload().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rows() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the reloaded interval was not applied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(rows(), 1);
}
