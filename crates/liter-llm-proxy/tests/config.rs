//! The config contract: schema, defaults, interpolation, and every error naming the
//! file, line and column.

use std::time::Duration;

use liter_llm_proxy::config::{
    inspect_str, load_str, CacheBackend, CacheScope, Config, ConfigError, CorsOrigins, Overrides,
    ProbeTarget, MASK,
};
use secrecy::ExposeSecret;

fn env(name: &str) -> Option<String> {
    match name {
        "OPENAI_API_KEY" => Some("sk-from-env".into()),
        "MASTER" => Some("sk-master-secret".into()),
        "GROQ_KEY" => Some("gsk-secret".into()),
        _ => None,
    }
}

fn load(src: &str) -> Result<Config, ConfigError> {
    load_str(src, "test.toml", &Overrides::default(), env)
}

fn err(src: &str) -> String {
    match load(src) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_match_the_spec() {
    let c = load("").unwrap();
    assert_eq!(c.host, "0.0.0.0");
    assert_eq!(c.port, 4000);
    assert_eq!(c.request_timeout, Duration::from_secs(600));
    assert_eq!(c.body_limit, 10_485_760);
    assert_eq!(c.cors, CorsOrigins::Any);
    assert!(c.master_key.is_none());
    assert_eq!(c.default_timeout, Duration::from_secs(120));
    assert_eq!(c.max_retries, 3);
    assert!(!c.enable_cost_tracking);
    let shown = inspect_str("", "test.toml", &Overrides::default(), env)
        .unwrap()
        .masked;
    assert!(!shown.general.enable_cost_tracking && !shown.general.enable_tracing);
    assert!(c.models.is_empty() && c.keys.is_empty());
}

#[test]
fn the_spec_minimal_file_loads() {
    let c = load(
        r#"
[general]
master_key = "${MASTER}"

[[models]]
name = "gpt-4o"
provider_model = "openai/gpt-4o"
api_key = "${OPENAI_API_KEY}"
"#,
    )
    .unwrap();
    assert_eq!(c.master_key.unwrap().expose_secret(), "sk-master-secret");
    let m = &c.models[0];
    assert_eq!(m.model_id, "gpt-4o");
    assert_eq!(m.base_url.as_deref(), Some("https://api.openai.com/v1"));
    assert_eq!(m.timeout, Duration::from_secs(120));
}

#[test]
fn provider_prefix_key_env_base_url_and_timeouts() {
    let c = load(
        r#"
[general]
default_timeout_secs = 30
[[models]]
name = "llama3-groq"
provider_model = "groq/llama3-70b-8192"
api_key = "${GROQ_KEY}"
timeout_secs = 7
[[models]]
name = "gpt"
provider_model = "openai/gpt-4o-mini"
[[models]]
name = "local"
provider_model = "custom/my-model"
base_url = "http://127.0.0.1:9999/v1/"
[[models]]
name = "unset-key"
provider_model = "mistral/mistral-large-latest"
api_key = "${NOT_SET}"
"#,
    )
    .unwrap();
    let groq = &c.models[0];
    assert_eq!(groq.provider.name(), "groq");
    assert_eq!(groq.model_id, "llama3-70b-8192");
    assert_eq!(
        groq.base_url.as_deref(),
        Some("https://api.groq.com/openai/v1")
    );
    assert_eq!(groq.api_key.as_ref().unwrap().expose_secret(), "gsk-secret");
    assert_eq!(groq.timeout, Duration::from_secs(7));
    // api_key absent: falls back to the provider's variable
    assert_eq!(
        c.models[1].api_key.as_ref().unwrap().expose_secret(),
        "sk-from-env"
    );
    assert_eq!(c.models[1].timeout, Duration::from_secs(30));
    // trailing slash trimmed
    assert_eq!(
        c.models[2].base_url.as_deref(),
        Some("http://127.0.0.1:9999/v1")
    );
    // ${NOT_SET} expands to empty, which means "not given"
    assert!(c.models[3].api_key.is_none());
}

#[test]
fn overrides_win_only_when_given() {
    let src = "[server]\nhost = \"127.0.0.1\"\nport = 8080\n[general]\nmaster_key = \"file-key\"\n";
    let c = load_str(src, "t.toml", &Overrides::default(), env).unwrap();
    assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8080));
    assert_eq!(c.master_key.unwrap().expose_secret(), "file-key");
    let o = Overrides {
        host: Some("0.0.0.0".into()),
        port: Some(9),
        master_key: Some("flag-key".into()),
        ..Overrides::default()
    };
    let c = load_str(src, "t.toml", &o, env).unwrap();
    assert_eq!((c.host.as_str(), c.port), ("0.0.0.0", 9));
    assert_eq!(c.master_key.unwrap().expose_secret(), "flag-key");
}

#[test]
fn unknown_field_names_file_line_and_column() {
    let e = err("[server]\nport = 4000\nprot = 1\n");
    assert!(e.starts_with("invalid TOML config test.toml:3:1:"), "{e}");
    assert!(e.contains("prot"), "{e}");
}

#[test]
fn unknown_field_in_models_and_keys() {
    let e = err("[[models]]\nname = \"a\"\nprovider_model = \"openai/x\"\n  apikey = \"k\"\n");
    assert!(e.starts_with("invalid TOML config test.toml:4:3:"), "{e}");
    let e = err("[[keys]]\nkey = \"k\"\nmodel = []\n");
    assert!(e.starts_with("invalid TOML config test.toml:3:1:"), "{e}");
}

#[test]
fn syntax_and_type_errors_are_located() {
    let e = err("[server]\nport = \"eighty\"\n");
    assert!(e.starts_with("invalid TOML config test.toml:2:8:"), "{e}");
    let e = err("[server\n");
    assert!(e.starts_with("invalid TOML config test.toml:1:"), "{e}");
    let e = err("[server]\nport = 70000\n");
    assert!(e.starts_with("invalid TOML config test.toml:2:"), "{e}");
}

#[test]
fn positions_refer_to_the_file_as_written_not_the_expansion() {
    // ${MASTER} expands to 16 characters; the error column must still be the one in the file.
    let e = err("[general]\nmaster_key = \"${MASTER}\" oops = 1\n");
    assert!(e.starts_with("invalid TOML config test.toml:2:26:"), "{e}");
    assert!(!e.contains("sk-master-secret"), "secret leaked: {e}");
}

#[test]
fn parse_errors_never_echo_an_expanded_secret() {
    let e = err("[general]\nmaster_key = ${MASTER}\n");
    assert!(!e.contains("sk-master-secret"), "secret leaked: {e}");
    assert!(e.contains("test.toml:2:"), "{e}");
}

#[test]
fn type_errors_never_echo_an_expanded_secret() {
    let e = err("[server]\nport = \"${MASTER}\"\n");
    assert!(e.contains("test.toml:2:8"), "{e}");
    assert!(!e.contains("sk-master-secret"), "secret leaked: {e}");
    let e = err("[budget]\nenforcement = \"${MASTER}\"\n");
    assert!(!e.contains("sk-master-secret"), "secret leaked: {e}");
}

#[test]
fn unclosed_interpolation_stays_literal() {
    let c = load("[general]\nmaster_key = \"${MASTER\"\n").unwrap();
    assert_eq!(c.master_key.unwrap().expose_secret(), "${MASTER");
}

#[test]
fn interpolation_runs_on_the_raw_source() {
    // Expanding inside a table header and a number works because it runs before parsing.
    let c = load_str(
        "[server]\nport = ${PORT}\n",
        "t.toml",
        &Overrides::default(),
        |v| (v == "PORT").then(|| "4321".to_string()),
    )
    .unwrap();
    assert_eq!(c.port, 4321);
}

#[test]
fn tracing_takes_the_standard_otel_variables() {
    use secrecy::ExposeSecret;
    let src = "[general]\nenable_tracing = true\n";
    let c = load(src).unwrap();
    let t = c.tracing.unwrap();
    assert_eq!(t.endpoint, "http://localhost:4318/v1/traces");
    assert_eq!(t.service_name, "liter-llm");
    assert!(t.headers.is_empty() && !t.content);
    let with = |vars: &'static [(&'static str, &'static str)]| {
        load_str(src, "test.toml", &Overrides::default(), move |v| {
            vars.iter()
                .find(|(k, _)| *k == v)
                .map(|(_, x)| x.to_string())
        })
    };
    let t = with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-honeycomb-team=abc%3D1, x-b=2",
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "X-B=3"),
        ("OTEL_SERVICE_NAME", "gw-east"),
    ])
    .unwrap()
    .tracing
    .unwrap();
    assert_eq!(t.endpoint, "http://collector:4318/v1/traces");
    assert_eq!(t.service_name, "gw-east");
    let headers: Vec<(&str, &str)> = t
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose_secret()))
        .collect();
    assert_eq!(headers, [("x-honeycomb-team", "abc=1"), ("X-B", "3")]);
    let t = with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:1"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://tempo:4318/v1/traces",
        ),
    ])
    .unwrap()
    .tracing
    .unwrap();
    assert_eq!(t.endpoint, "http://tempo:4318/v1/traces");
    let t = with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://api.honeycomb.io")])
        .unwrap()
        .tracing
        .unwrap();
    assert_eq!(t.endpoint, "https://api.honeycomb.io/v1/traces");
    let e = with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://collector:4317")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("must be an http:// or https:// URL") && e.contains("test.toml:2:"),
        "{e}"
    );
    let e = with(&[("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign-secret")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{e}");
    assert!(!e.contains("no-equals-sign-secret"), "{e}");
    let e = err("[general]\ntrace_content = true\n");
    assert!(e.contains("needs enable_tracing = true"), "{e}");
    let e = err("[general]\nmetrics = \"everyone\"\n");
    assert!(
        e.contains("`master`, `public`, `off`") && e.contains("test.toml:2:"),
        "{e}"
    );
}

#[test]
fn key_limits_rate_limit_and_budget_are_validated() {
    let models = "[[models]]\nname = \"m\"\nprovider_model = \"openai/x\"\n";
    let cfg = load(&format!(
        "{models}[[keys]]\nkey = \"k\"\nrpm = 5\ntpm = 100\nbudget_limit = 2.5\nbudget_duration = \"30d\"\nexpires_at = \"2027-01-31T00:00:00Z\"\n\
         [rate_limit]\nrpm = 600\n[budget]\nglobal_limit = 10.0\nenforcement = \"soft\"\n[budget.model_limits]\n\"openai/x\" = 1.0\n"
    ))
    .unwrap();
    let k = &cfg.keys[0].limits;
    assert_eq!(
        (k.rate.rpm, k.rate.tpm, k.budget_limit),
        (Some(5), Some(100), Some(2.5))
    );
    assert_eq!(k.budget_period.unwrap().to_string(), "30d");
    assert_eq!(k.expires_at, Some(1_801_353_600_000));
    let g = &cfg.governance;
    assert_eq!((g.global_rate.rpm, g.global_rate.tpm), (Some(600), None));
    assert_eq!(g.global_budget, Some(10.0));
    assert_eq!(g.model_budgets["openai/x"], 1.0);

    for (extra, needle) in [
        (
            "[[keys]]\nkey = \"k\"\nrpm = 0\n",
            "keys[0].rpm: rpm must be greater than 0",
        ),
        (
            "[[keys]]\nkey = \"k\"\nbudget_limit = -1.0\n",
            "keys[0].budget_limit",
        ),
        (
            "[[keys]]\nkey = \"k\"\nbudget_limit = 1.0\nbudget_duration = \"monthly\"\n",
            "keys[0].budget_duration: invalid period",
        ),
        (
            "[[keys]]\nkey = \"k\"\nbudget_duration = \"1d\"\n",
            "budget_duration needs budget_limit",
        ),
        (
            "[[keys]]\nkey = \"k\"\nexpires_at = \"next week\"\n",
            "keys[0].expires_at",
        ),
        (
            "[rate_limit]\ntpm = 0\n",
            "rate_limit.tpm: tpm must be greater than 0",
        ),
        (
            "[budget.model_limits]\ngpt-4o = 1.0\n",
            "keyed by provider/model",
        ),
    ] {
        let e = err(&format!("{models}{extra}"));
        assert!(e.contains(needle), "{needle}: {e}");
        assert!(e.contains("test.toml:"), "{e}");
    }
}

#[test]
fn pools_fallbacks_router_cooldown_and_health() {
    let c = load(
        r#"
[[models]]
name = "gpt"
provider_model = "openai/a"
weight = 3
order = 1
rpm = 10
fallbacks = ["claude"]
[[models]]
name = "gpt"
provider_model = "openai/b"
order = 2
context_window_fallbacks = ["big"]
stream_timeout_secs = 5
[[models]]
name = "claude"
provider_model = "openai/c"
input_cost_per_token = 0.000001
[[models]]
name = "big"
provider_model = "openai/d"
[router]
strategy = "least-busy"
model_strategy = { claude = "cost-based" }
model_group_alias = { "gpt-4" = "gpt" }
seed = 7
[cooldown]
duration_secs = 30
allowed_fails = 3
[health]
interval_secs = 15
probe_model = "gpt"
"#,
    )
    .unwrap();
    let r = &c.routing;
    assert_eq!(r.pools.len(), 3);
    assert_eq!(r.pools[0].name, "gpt");
    assert_eq!(r.pools[0].fallbacks, ["claude"]);
    assert_eq!(r.pools[0].context_window_fallbacks, ["big"]);
    assert_eq!(format!("{:?}", r.pools[0].strategy), "LeastBusy");
    assert_eq!(format!("{:?}", r.pools[1].strategy), "CostBased");
    assert_eq!(r.aliases.get("gpt-4").map(String::as_str), Some("gpt"));
    let cd = r.cooldown.unwrap();
    assert_eq!(
        (cd.duration, cd.allowed_fails, cd.window),
        (Duration::from_secs(30), 3, Duration::from_secs(60))
    );
    assert_eq!(r.health.as_ref().unwrap().interval, Duration::from_secs(15));
    assert_eq!(
        r.health.as_ref().unwrap().probe,
        ProbeTarget::Pool("gpt".into())
    );
    assert_eq!(c.models[0].weight, 3.0);
    assert_eq!(c.models[1].order, 2);
    assert_eq!(c.models[1].stream_timeout, Some(Duration::from_secs(5)));
    assert_eq!(c.models[2].order, 1, "default tier");
}

#[test]
fn routing_errors_are_reported() {
    let e = err(r#"
[[models]]
name = "a"
provider_model = "openai/a"
fallbacks = ["a", "nope"]
weight = 0
[router]
strategy = "fastest"
"#);
    assert!(
        e.contains("test.toml:8:12"),
        "unknown strategy located: {e}"
    );
    let e = err(r#"
[[models]]
name = "a"
provider_model = "openai/a"
fallbacks = ["a", "nope"]
weight = 0
rpm = 0
[router]
model_group_alias = { a = "a", b = "zzz" }
latency_exploration = 2.0
[cooldown]
duration_secs = 0
[health]
probe_model = "a"
"#);
    for needle in [
        "models[0].fallbacks[0]: \"a\" cannot fall back to itself",
        "models[0].fallbacks[1]: model \"nope\" is not defined",
        "models[0].weight: weight must be greater than 0",
        "models[0].rpm: rpm must be greater than 0",
        "router.model_group_alias.a: \"a\" is already a model name",
        "router.model_group_alias.b: alias target \"zzz\"",
        "router.latency_exploration",
        "cooldown.duration_secs",
        "health.probe_model: probe_model has no effect without interval_secs",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn semantic_errors_are_all_reported_with_paths() {
    let e = err(r#"
[server]
request_timeout_secs = 0
cors_origins = ["not an origin"]

[[models]]
name = "a"
provider_model = "gpt-4o"

[[models]]
name = "b"
provider_model = "nope/x"

[[models]]
name = "c"
provider_model = "custom/x"

[[models]]
name = "d"
provider_model = "bedrock/anthropic.claude-3-haiku"

[[keys]]
key = ""

[[keys]]
key = "vk"
models = ["zzz"]
"#);
    for needle in [
        "test.toml:3:24: server.request_timeout_secs",
        "test.toml:4:17: server.cors_origins[0]",
        "test.toml:8:18: models[0].provider_model: provider_model \"gpt-4o\" must look like",
        "models[1].provider_model: unknown provider \"nope\"",
        "test.toml:14:1: models[2].base_url: provider \"custom\" needs base_url",
        "test.toml:18:1: models[3].aws_region_name: bedrock/ models need aws_region_name",
        "keys[0].key: key is empty",
        "test.toml:27:11: keys[1].models[0]: model \"zzz\" is not defined",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn messages_never_quote_values_that_may_be_secrets() {
    let secret_env = |v: &str| match v {
        "S" => Some("sk-very-secret".to_string()),
        "N" => Some("sk-very-secret\n".to_string()),
        _ => None,
    };
    let e = load_str(
        "[server]\ncors_origins = [\"${S}\"]\n[[models]]\nname = \"m\"\nprovider_model = \"openai/x\"\nbase_url = \"${S}\"\napi_key = \"\"\"${N}\"\"\"\n",
        "t.toml",
        &Overrides::default(),
        secret_env,
    )
    .unwrap_err()
    .to_string();
    assert!(!e.contains("very-secret"), "{e}");
    assert!(e.contains("models[0].base_url"), "{e}");
    assert!(e.contains("server.cors_origins[0]"), "{e}");
    let e = load_str(
        "[[models]]\nname = \"m\"\nprovider_model = \"openai/x\"\napi_key = \"\"\"${N}\"\"\"\n",
        "t.toml",
        &Overrides::default(),
        secret_env,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("models[0].api_key: the API key contains characters"),
        "{e}"
    );
    assert!(!e.contains("very-secret"), "{e}");
    // a bad base URL from the provider's variable is named by the variable
    let e = load_str(
        "[[models]]\nname = \"m\"\nprovider_model = \"openai/x\"\n",
        "t.toml",
        &Overrides::default(),
        |v| (v == "OPENAI_BASE_URL").then(|| "ftp://sk-secret-host".to_string()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("base_url (from $OPENAI_BASE_URL)") && !e.contains("sk-secret-host"),
        "{e}"
    );
}

#[test]
fn master_key_precedence_is_flag_then_env_then_file() {
    let source = |src: &str, o: &Overrides| {
        let i = inspect_str(src, "t.toml", o, env).unwrap();
        let key = i.config.master_key.map(|k| k.expose_secret().to_string());
        (key, i.master_key_source.map(|s| s.to_string()))
    };
    let file = "[general]\nmaster_key = \"from-file\"\n";
    let env_only = Overrides {
        master_key_env: Some("from-env".into()),
        ..Overrides::default()
    };
    // The variable is the flag's default: it is used without a file key...
    assert_eq!(
        source("", &env_only),
        (
            Some("from-env".into()),
            Some("from LITER_LLM_MASTER_KEY".into())
        )
    );
    // ...and wins over the file's.
    assert_eq!(
        source(file, &env_only),
        (
            Some("from-env".into()),
            Some("from LITER_LLM_MASTER_KEY (overrides the file)".into())
        )
    );
    // The usual `master_key = "${LITER_LLM_MASTER_KEY}"`: the same value, nothing overridden.
    let same = Overrides {
        master_key_env: Some("sk-master-secret".into()),
        ..Overrides::default()
    };
    assert_eq!(
        source("[general]\nmaster_key = \"${MASTER}\"\n", &same),
        (
            Some("sk-master-secret".into()),
            Some("from LITER_LLM_MASTER_KEY".into())
        )
    );
    let both = Overrides {
        master_key: Some("from-flag".into()),
        master_key_env: Some("from-env".into()),
        ..Overrides::default()
    };
    assert_eq!(
        source(file, &both),
        (
            Some("from-flag".into()),
            Some("from --master-key (overrides the file)".into())
        )
    );
    // Empty means not given, for the flag and the variable alike.
    let empty = Overrides {
        master_key: Some("".into()),
        master_key_env: Some("".into()),
        ..Overrides::default()
    };
    assert_eq!(
        source(file, &empty),
        (Some("from-file".into()), Some("from the file".into()))
    );
    assert_eq!(source("", &empty), (None, None));
    // A virtual key equal to the master key from the variable is rejected.
    let e = load_str("[[keys]]\nkey = \"from-env\"\n", "t.toml", &env_only, env)
        .unwrap_err()
        .to_string();
    assert!(e.contains("must differ from the master key"), "{e}");
}

#[test]
fn cors_star_cannot_mix() {
    let e = err("[server]\ncors_origins = [\"*\", \"https://a.example\"]\n");
    assert!(e.contains("server.cors_origins"), "{e}");
    let c = load("[server]\ncors_origins = [\"https://a.example\", \"http://localhost:3000\"]\n")
        .unwrap();
    assert_eq!(
        c.cors,
        CorsOrigins::List(vec![
            "https://a.example".into(),
            "http://localhost:3000".into()
        ])
    );
}

#[test]
fn master_key_must_differ_from_virtual_keys_and_keys_unique() {
    let e = err("[general]\nmaster_key = \"a\"\n[[keys]]\nkey = \"a\"\n");
    assert!(e.contains("must differ from the master key"), "{e}");
    let e = err("[[keys]]\nkey = \"a\"\n[[keys]]\nkey = \"a\"\n");
    assert!(e.contains("keys[1].key: the same key as keys[0]"), "{e}");
    assert!(!e.contains("\"a\""), "a key was echoed: {e}");
}

#[test]
fn mock_provider_fields() {
    let c =
        load("[[models]]\nname = \"echo\"\nprovider_model = \"mock/echo\"\nmock_latency_ms = 20\n")
            .unwrap();
    assert_eq!(c.models[0].mock_latency, Some(Duration::from_millis(20)));
    let e = err("[[models]]\nname = \"x\"\nprovider_model = \"openai/x\"\nmock_latency_ms = 20\n");
    assert!(
        e.contains("mock_latency_ms applies only to mock/ models"),
        "{e}"
    );
}

#[test]
fn the_example_config_is_valid() {
    let src = include_str!("../../../examples/liter-llm-proxy.toml");
    let c = load_str(
        src,
        "examples/liter-llm-proxy.toml",
        &Overrides::default(),
        |_| None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.models.iter().any(|m| m.provider.name() == "mock"));
}

#[test]
fn provider_specific_fields_are_checked_against_the_provider() {
    let e = err(r#"
[[models]]
name = "c"
provider_model = "anthropic/claude-sonnet-4-20250514"
api_key = "k"
api_version = "2024-10-21"
aws_region_name = "us-east-1"
"#);
    assert!(e.contains("test.toml:6:"), "{e}");
    assert!(
        e.contains("api_version does not apply to anthropic/ models"),
        "{e}"
    );
    assert!(
        e.contains("aws_region_name does not apply to anthropic/ models"),
        "{e}"
    );

    let e = err(r#"
[[models]]
name = "g"
provider_model = "openai/gpt-4o"
api_key = "k"
drop_params = true
"#);
    assert!(
        e.contains("drop_params applies to translated providers only"),
        "{e}"
    );

    // Per model on a translated provider, and globally, it is accepted.
    let cfg = load(
        r#"
[general]
drop_params = true
[[models]]
name = "c"
provider_model = "anthropic/claude-sonnet-4-20250514"
api_key = "k"
[[models]]
name = "d"
provider_model = "anthropic/claude-sonnet-4-20250514"
api_key = "k"
drop_params = false
"#,
    )
    .unwrap();
    assert!(cfg.models[0].settings.drop_params);
    assert!(!cfg.models[1].settings.drop_params);
}

#[test]
fn vertex_settings_come_from_the_file_or_the_environment() {
    let env = |v: &str| match v {
        "VERTEXAI_PROJECT" => Some("env-project".to_string()),
        "VERTEXAI_LOCATION" => Some("asia-northeast1".to_string()),
        _ => None,
    };
    let cfg = load_str(
        "[[models]]\nname = \"v\"\nprovider_model = \"vertex_ai/gemini-2.5-pro\"\napi_key = \"ya29.token\"\n[[models]]\nname = \"w\"\nprovider_model = \"vertex_ai/gemini-2.5-pro\"\napi_key = \"ya29.token\"\nvertex_project = \"mine\"\nvertex_location = \"global\"\n",
        "t.toml",
        &Overrides::default(),
        env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (v, w) = (&cfg.models[0], &cfg.models[1]);
    assert_eq!(v.settings.vertex_project.as_deref(), Some("env-project"));
    assert_eq!(
        v.base_url.as_deref(),
        Some("https://asia-northeast1-aiplatform.googleapis.com")
    );
    assert_eq!(w.settings.vertex_project.as_deref(), Some("mine"));
    assert_eq!(
        w.base_url.as_deref(),
        Some("https://aiplatform.googleapis.com")
    );

    // vertex_* fields belong to vertex_ai/ models only.
    let e = err("[[models]]\nname = \"g\"\nprovider_model = \"gemini/gemini-2.5-pro\"\napi_key = \"k\"\nvertex_project = \"p\"\n");
    assert!(
        e.contains("vertex_project does not apply to gemini/ models"),
        "{e}"
    );
}

const SECRETS_TOML: &str = r#"
[general]
master_key = "sk-master-in-file"
enable_cost_tracking = true
database_url = "postgres://app:db-password-1@db.internal/llm"

[[models]]
name = "g"
provider_model = "openai/gpt-4o"
api_key = "sk-provider-in-file"

[[models]]
name = "nova"
provider_model = "bedrock/amazon.nova-lite-v1:0"
aws_access_key_id = "AKID-in-file"
aws_secret_access_key = "aws-secret-in-file"
aws_region_name = "us-east-1"

[[aliases]]
pattern = "anthropic/*"
api_key = "sk-alias-in-file"

[[keys]]
key = "vk-virtual-in-file"
"#;

const SECRETS: [&str; 7] = [
    "sk-master-in-file",
    "db-password-1",
    "sk-provider-in-file",
    "AKID-in-file",
    "aws-secret-in-file",
    "sk-alias-in-file",
    "vk-virtual-in-file",
];

#[test]
fn the_runtime_config_holds_runtime_values_and_debug_shows_no_secret() {
    let c = load(SECRETS_TOML).unwrap();
    assert!(c.enable_cost_tracking);
    assert_eq!(
        c.governance.database_url.as_ref().unwrap().expose_secret(),
        "postgres://app:db-password-1@db.internal/llm"
    );
    let debug = format!("{c:?}");
    for secret in SECRETS {
        assert!(
            !debug.contains(secret),
            "{secret} in Debug output:\n{debug}"
        );
    }
}

#[test]
fn the_check_config_view_masks_every_secret_and_applies_overrides() {
    let o = Overrides {
        host: Some("127.0.0.1".into()),
        port: Some(5123),
        ..Overrides::default()
    };
    let i = inspect_str(SECRETS_TOML, "t.toml", &o, env).unwrap();
    let shown = toml::to_string(&i.masked).unwrap();
    for secret in SECRETS {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
    }
    assert_eq!(i.masked.general.master_key.as_deref(), Some(MASK));
    assert_eq!(i.masked.models[0].api_key.as_deref(), Some(MASK));
    assert_eq!(i.masked.aliases[0].api_key.as_deref(), Some(MASK));
    assert_eq!(i.masked.keys[0].key, MASK);
    assert_eq!(
        i.masked.general.database_url.as_deref(),
        Some("postgres://app:********@db.internal/llm")
    );
    assert_eq!(
        (i.masked.server.host.as_str(), i.masked.server.port),
        ("127.0.0.1", 5123)
    );
    assert_eq!((i.config.host.as_str(), i.config.port), ("127.0.0.1", 5123));
    assert!(format!("{i:?}").find("sk-master-in-file").is_none());
}

#[test]
fn a_provider_key_variable_exposes_no_provider_without_an_alias() {
    let only_openai = |v: &str| (v == "OPENAI_API_KEY").then(|| "sk-env-openai".to_string());
    let c = load_str("", "t.toml", &Overrides::default(), only_openai).unwrap();
    assert!(
        !c.credential_aliases.iter().any(|a| a.pattern == "openai/*"),
        "{:?}",
        c.credential_aliases
    );
    assert!(c.credential_aliases.is_empty());
    assert_eq!(c.unexposed_providers, ["openai"]);

    // A [[models]] entry still takes its key from the variable, and exposes only itself.
    let c = load_str(
        "[[models]]\nname = \"g\"\nprovider_model = \"openai/gpt-4o\"\n",
        "t.toml",
        &Overrides::default(),
        only_openai,
    )
    .unwrap();
    assert_eq!(
        c.models[0].api_key.as_ref().unwrap().expose_secret(),
        "sk-env-openai"
    );
    assert!(c.credential_aliases.is_empty());
    assert_eq!(c.unexposed_providers, ["openai"]);

    // An explicit entry without api_key exposes the provider, on the variable's key.
    let c = load_str(
        "[[aliases]]\npattern = \"openai/*\"\n",
        "t.toml",
        &Overrides::default(),
        only_openai,
    )
    .unwrap();
    let a = &c.credential_aliases[0];
    assert_eq!(a.pattern, "openai/*");
    assert_eq!(a.api_key.as_ref().unwrap().expose_secret(), "sk-env-openai");
    assert_eq!(a.base_url.as_deref(), Some("https://api.openai.com/v1"));
    assert!(c.unexposed_providers.is_empty());
}

#[test]
fn strategies_accept_litellm_spellings() {
    for (written, expected) in [
        ("simple-shuffle", "SimpleShuffle"),
        ("least-busy", "LeastBusy"),
        ("latency-based", "LatencyBased"),
        ("latency-based-routing", "LatencyBased"),
        ("usage-based", "UsageBased"),
        ("usage-based-routing", "UsageBased"),
        ("usage-based-routing-v2", "UsageBased"),
        ("cost-based", "CostBased"),
        ("cost-based-routing", "CostBased"),
    ] {
        let c = load(&format!(
            "[[models]]\nname = \"a\"\nprovider_model = \"mock/echo\"\n[[models]]\nname = \"b\"\nprovider_model = \"mock/echo\"\n[router]\nstrategy = \"{written}\"\nmodel_strategy = {{ b = \"{written}\" }}\n"
        ))
        .unwrap_or_else(|e| panic!("{written}: {e}"));
        assert_eq!(format!("{:?}", c.routing.pools[0].strategy), expected);
        assert_eq!(format!("{:?}", c.routing.pools[1].strategy), expected);
    }
    let e = err("[router]\nstrategy = \"lowest-cost\"\n");
    assert!(e.contains("test.toml:2:12"), "{e}");
    // check-config shows the short name.
    let i = inspect_str(
        "[router]\nstrategy = \"latency-based-routing\"\n",
        "t.toml",
        &Overrides::default(),
        env,
    )
    .unwrap();
    let shown = toml::to_string(&i.masked).unwrap();
    assert!(shown.contains("strategy = \"latency-based\""), "{shown}");
}

#[test]
fn probe_model_is_a_pool_or_a_provider_model() {
    let models = "[[models]]\nname = \"gpt\"\nprovider_model = \"openai/a\"\n[[models]]\nname = \"openai/gpt-4o-mini\"\nprovider_model = \"openai/b\"\n[router]\nmodel_group_alias = { fast = \"gpt\" }\n";
    let probe = |target: &str| {
        load(&format!(
            "{models}[health]\ninterval_secs = 30\nprobe_model = \"{target}\"\n"
        ))
        .map(|c| c.routing.health.unwrap().probe)
    };
    assert_eq!(probe("gpt").unwrap(), ProbeTarget::Pool("gpt".into()));
    // A group alias probes its pool.
    assert_eq!(probe("fast").unwrap(), ProbeTarget::Pool("gpt".into()));
    // A configured name wins, even when it looks like provider/model.
    assert_eq!(
        probe("openai/gpt-4o-mini").unwrap(),
        ProbeTarget::Pool("openai/gpt-4o-mini".into())
    );
    match probe("anthropic/claude-3-5-haiku-20241022").unwrap() {
        ProbeTarget::Model { provider, model_id } => {
            assert_eq!(provider.name(), "anthropic");
            assert_eq!(model_id, "claude-3-5-haiku-20241022");
        }
        other => panic!("{other:?}"),
    }
    for bad in ["nope", "mock/echo", "zzz/x", "openai/"] {
        let e = probe(bad).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "health.probe_model: probe_model {bad:?} is neither a [[models]] name or [router] alias nor a provider/model name"
            )),
            "{e}"
        );
        assert!(e.contains("test.toml:11:15"), "{e}");
    }
    let c = load(models).unwrap();
    assert!(c.routing.health.is_none());
    let c = load(&format!("{models}[health]\ninterval_secs = 5\n")).unwrap();
    assert_eq!(c.routing.health.unwrap().probe, ProbeTarget::All);
}

/// The examples of the spec (docs/ is ours; the spec is shared/spec/): the ones
/// whose features are built load together (the `[files]` examples are in
/// `the_spec_files_examples_load`, the `[cache]` ones in `the_spec_cache_examples_load`).
#[test]
fn the_spec_examples_load() {
    let src = r#"
[server]
host = "0.0.0.0"
port = 4000
request_timeout_secs = 600
body_limit_bytes = 10_485_760
cors_origins = ["https://app.example.com", "https://admin.example.com"]

[general]
master_key = "${LITER_LLM_MASTER_KEY}"
default_timeout_secs = 120
max_retries = 3
enable_cost_tracking = true
enable_tracing = true

[[models]]
name = "gpt-4o"
provider_model = "openai/gpt-4o"
api_key = "${OPENAI_API_KEY}"
timeout_secs = 60
fallbacks = ["claude-sonnet", "llama3-groq"]

[[models]]
name = "claude-sonnet"
provider_model = "anthropic/claude-sonnet-4-20250514"
api_key = "${ANTHROPIC_API_KEY}"

[[models]]
name = "llama3-groq"
provider_model = "groq/llama3-70b-8192"
api_key = "${GROQ_API_KEY}"

# Any model matching "anthropic/*" uses the shared Anthropic key.
[[aliases]]
pattern = "anthropic/*"
api_key = "${ANTHROPIC_API_KEY}"

# Route all OpenAI models through an Azure deployment.
[[aliases]]
pattern = "openai/*"
api_key = "${AZURE_OPENAI_KEY}"
base_url = "https://my-azure.openai.azure.com"

[[keys]]
key = "vk-team-frontend"
description = "Frontend team, chat-only, capped spend"
models = ["gpt-4o", "claude-sonnet"]
rpm = 60
tpm = 200_000
budget_limit = 100.0

[[keys]]
key = "vk-batch-worker"
description = "Overnight batch jobs, unrestricted model access"
rpm = 10
budget_limit = 500.0

[rate_limit]
rpm = 600
tpm = 1_000_000

[budget]
global_limit = 1000.0
enforcement = "hard"  # or "soft" to log but allow through

[budget.model_limits]
"openai/gpt-4o" = 500.0
"anthropic/claude-opus-4-20250514" = 200.0

[health]
interval_secs = 30
probe_model = "openai/gpt-4o-mini"

[cooldown]
duration_secs = 60
"#;
    let env = |v: &str| match v {
        "LITER_LLM_MASTER_KEY" => Some("sk-master".to_string()),
        "OPENAI_API_KEY" | "ANTHROPIC_API_KEY" | "GROQ_API_KEY" | "AZURE_OPENAI_KEY" => {
            Some(format!("key-{v}"))
        }
        _ => None,
    };
    let c =
        load_str(src, "spec.toml", &Overrides::default(), env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.models.len(), 3);
    assert_eq!(c.credential_aliases.len(), 2);
    // GROQ_API_KEY is set and only [[models]] uses it: groq/ names are not exposed.
    assert_eq!(c.unexposed_providers, ["groq"]);
    let health = c.routing.health.unwrap();
    assert_eq!(health.interval, Duration::from_secs(30));
    match health.probe {
        ProbeTarget::Model { provider, model_id } => {
            assert_eq!(
                (provider.name(), model_id.as_str()),
                ("openai", "gpt-4o-mini")
            );
        }
        other => panic!("{other:?}"),
    }

    // The [health] example alone, with no [[models]] at all.
    let c = load("[health]\ninterval_secs = 30\nprobe_model = \"openai/gpt-4o-mini\"\n").unwrap();
    assert!(matches!(
        c.routing.health.unwrap().probe,
        ProbeTarget::Model { .. }
    ));
}

/// Both `[files]` examples of the spec load as written: the in-memory one and the S3
/// one (no credentials: building the backend touches no network).
#[test]
fn the_spec_files_examples_load() {
    let c =
        load("# In-memory (default). Files are lost on restart.\n[files]\nbackend = \"memory\"\n")
            .unwrap();
    let f = c.files.unwrap();
    assert!(f.is_volatile());
    assert_eq!(f.prefix, "liter-llm-files/");
    assert_eq!(f.max_file_bytes, 512 * 1024 * 1024);
    assert_eq!(f.timeout, Duration::from_secs(30));
    let c = load(
        "# S3-backed file store.\n[files]\nbackend = \"s3\"\nprefix = \"liter-llm-files/\"\n\n[files.backend_config]\nbucket = \"my-llm-files\"\nregion = \"us-west-2\"\n",
    )
    .unwrap();
    let f = c.files.unwrap();
    assert_eq!((f.backend.as_str(), f.is_volatile()), ("s3", false));
    assert_eq!(f.backend_config["bucket"], "my-llm-files");
    assert_eq!(f.backend_config["region"], "us-west-2");
}

#[test]
fn files_backend_config_values_and_problems() {
    let c = load(
        "[files]\nbackend = \"s3\"\nprefix = \"up\"\nmax_file_bytes = 1024\ntimeout_secs = 5\n[files.backend_config]\nbucket = \"b\"\nregion = \"us-east-1\"\nenable_virtual_host_style = true\nbatch_max_operations = 100\nsecret_access_key = \"sk-very-secret\"\n",
    )
    .unwrap();
    let f = c.files.unwrap();
    assert_eq!(f.backend_config["enable_virtual_host_style"], "true");
    assert_eq!(f.backend_config["batch_max_operations"], "100");
    assert_eq!((f.prefix.as_str(), f.max_file_bytes), ("up/", 1024));
    // The runtime config's Debug output shows no backend secret.
    let debug = format!("{f:?}");
    assert!(
        !debug.contains("sk-very-secret") && debug.contains(MASK),
        "{debug}"
    );
    // check-config's view masks it too, and keeps the other values' types.
    let shown = inspect_str(
        "[files]\nbackend = \"azblob\"\n[files.backend_config]\ncontainer = \"c\"\nendpoint = \"http://127.0.0.1:1/dev\"\naccount_name = \"dev\"\naccount_key = \"AAAA\"\nbatch_max_operations = 10000\n",
        "t.toml",
        &Overrides::default(),
        env,
    )
    .unwrap()
    .masked;
    let rendered = toml::to_string(&shown).unwrap();
    assert!(!rendered.contains("AAAA"), "{rendered}");
    assert!(
        rendered.contains("account_key = \"********\""),
        "{rendered}"
    );
    assert!(
        rendered.contains("batch_max_operations = 10000")
            && rendered.contains("account_name = \"dev\""),
        "{rendered}"
    );

    for (src, needle, at) in [
        (
            "[files]\nbackend = \"nosuchstore\"\n",
            "unknown backend \"nosuchstore\"",
            "test.toml:2:",
        ),
        (
            "[files]\nbackend = \"fs\"\n",
            "fs needs root",
            "test.toml:2:",
        ),
        (
            "[files]\nmax_file_bytes = 0\n",
            "max_file_bytes must be greater than 0",
            "test.toml:2:",
        ),
        (
            "[files]\ntimeout_secs = 0\n",
            "timeout_secs must be greater than 0",
            "test.toml:2:",
        ),
        (
            "[files]\n[files.backend_config]\nratio = 1.5\n",
            "a string, an integer or a boolean",
            "test.toml:3:",
        ),
        ("[files]\nmax_bytes = 1\n", "unknown field", "test.toml:2:"),
    ] {
        let e = err(src);
        assert!(e.contains(needle) && e.contains(at), "{e}");
    }
}

/// The spec's two `[cache]` examples, as written. The Redis host does not resolve
/// here: building the backend touches no network, so it loads (and the gateway test
/// `cache::the_spec_redis_example_serves_with_its_host_unreachable` serves with it).
#[test]
fn the_spec_cache_examples_load() {
    let memory = load("# In-memory cache (default).\n[cache]\nmax_entries = 4096\nttl_seconds = 900\nbackend = \"memory\"\n").unwrap();
    let c = memory.cache.unwrap();
    assert_eq!(c.backend, CacheBackend::Memory);
    assert_eq!(
        (c.max_entries, c.ttl),
        (Some(4096), Some(Duration::from_secs(900)))
    );
    assert_eq!(c.scope, CacheScope::Global);
    assert_eq!(c.timeout, Duration::from_millis(250));
    let redis = load(
        r#"# Redis cache via OpenDAL.
[cache]
max_entries = 10_000
ttl_seconds = 3600
backend = "redis"

[cache.backend_config]
endpoint = "redis://cache.internal:6379"
"#,
    )
    .unwrap();
    let c = redis.cache.unwrap();
    match &c.backend {
        CacheBackend::OpenDal { scheme, config } => {
            assert_eq!(scheme, "redis");
            assert_eq!(config["endpoint"], "redis://cache.internal:6379");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.max_entries, Some(10_000));
}

#[test]
fn cache_settings_are_validated_with_their_location() {
    let e = err("[cache]\nbackend = \"nosuchstore\"\n");
    assert!(e.contains("unknown cache backend \"nosuchstore\""), "{e}");
    assert!(e.contains("test.toml:2:"), "{e}");
    let e = err("[cache]\nttl_seconds = 5\n");
    assert!(
        e.contains("max_entries is required for the memory backend"),
        "{e}"
    );
    let e = err("[cache]\nmax_entries = 0\nmax_bytes = 0\n");
    assert!(e.contains("max_entries must be greater than 0"), "{e}");
    assert!(e.contains("max_bytes must be greater than 0"), "{e}");
    let e = err("[cache]\nmax_entries = 1\nscope = \"team\"\n");
    assert!(e.contains("test.toml:3:"), "{e}");
    let e = err("[cache]\nmax_entries = 1\nmax_bytes = 10\nmax_entry_bytes = 11\n");
    assert!(
        e.contains("max_entry_bytes must be at most max_bytes"),
        "{e}"
    );
    let e = err("[cache]\nmax_entries = 1\n[cache.backend_config]\nroot = \"/x\"\n");
    assert!(e.contains("no effect with backend = \"memory\""), "{e}");
    // Strings, integers and booleans are handed to OpenDAL as text.
    let c = load("[cache]\nbackend = \"redis\"\n[cache.backend_config]\nendpoint = \"redis://127.0.0.1:6379\"\ndb = 2\n")
        .unwrap()
        .cache
        .unwrap();
    match c.backend {
        CacheBackend::OpenDal { config, .. } => assert_eq!(config["db"], "2"),
        other => panic!("{other:?}"),
    }
    let c = load("[cache]\nbackend = \"s3\"\n[cache.backend_config]\nbucket = \"b\"\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:1\"\nenable_virtual_host_style = false\n").unwrap();
    assert!(c.cache.is_some());
}

#[test]
fn cache_backend_secrets_are_masked_and_never_in_debug() {
    let src = r#"
[cache]
backend = "s3"
timeout_ms = 400
scope = "key"

[cache.backend_config]
bucket = "answers"
region = "us-east-1"
access_key_id = "AKID-cache"
secret_access_key = "cache-secret-in-file"
"#;
    let i = inspect_str(src, "t.toml", &Overrides::default(), env).unwrap();
    let shown = toml::to_string(&i.masked).unwrap();
    assert!(!shown.contains("cache-secret-in-file"), "{shown}");
    assert!(shown.contains("AKID-cache"), "ids are not secrets: {shown}");
    assert!(shown.contains(MASK), "{shown}");
    assert!(!format!("{:?}", i.config).contains("cache-secret-in-file"));
    let c = i.config.cache.unwrap();
    assert_eq!(c.timeout, Duration::from_millis(400));
}

#[test]
fn logging_sinks_load_with_defaults_and_mask_webhook_headers() {
    let src = r#"
[[logging]]
type = "file"
path = "requests.jsonl"

[[logging]]
type = "webhook"
url = "https://logs.example.com/in"
on = "failure"
content = true
headers = { Authorization = "Bearer sk-log-secret-123" }
"#;
    let i = inspect_str(src, "t.toml", &Overrides::default(), env).unwrap();
    let sinks = &i.config.logging;
    assert_eq!(sinks.len(), 2);
    assert_eq!(sinks[0].max_queue, 10_000);
    assert!(!sinks[0].content);
    assert!(matches!(
        sinks[0].kind,
        liter_llm_proxy::config::SinkKind::File {
            max_bytes: 104_857_600,
            keep: 5,
            ..
        }
    ));
    assert!(sinks[1].content);
    let shown = toml::to_string(&i.masked).unwrap();
    assert!(!shown.contains("sk-log-secret-123"), "{shown}");
    assert!(shown.contains(MASK), "{shown}");
    assert!(!format!("{:?}", i.config).contains("sk-log-secret-123"));
}

#[test]
fn an_otlp_sink_takes_its_url_and_headers_from_the_standard_variables_unless_given() {
    use liter_llm_proxy::config::{SinkFormat, SinkKind};
    use secrecy::ExposeSecret;
    let otel = |name: &str| match name {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318/".into()),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("x-a=1,x-b=2".into()),
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS" => Some("x-b=logs".into()),
        "OTEL_SERVICE_NAME" => Some("edge".into()),
        _ => None,
    };
    let src = "[[logging]]\ntype = \"otlp\"\n\n[[logging]]\ntype = \"otlp\"\nurl = \"https://otlp.example.com/v1/logs\"\nheaders = { x-a = \"mine\" }\n";
    let c = load_str(src, "t.toml", &Overrides::default(), otel).unwrap();
    let shown = |i: usize| match &c.logging[i].kind {
        SinkKind::Webhook {
            format,
            url,
            headers,
            ..
        } => {
            let mut h: Vec<(String, String)> = headers
                .iter()
                .map(|(n, v)| (n.clone(), v.expose_secret().to_owned()))
                .collect();
            h.sort();
            (format.clone(), url.clone(), h)
        }
        other => panic!("{other:?}"),
    };
    let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    let service = SinkFormat::Otlp {
        service: "edge".into(),
    };
    assert_eq!(
        shown(0),
        (
            service.clone(),
            "http://collector:4318/v1/logs".into(),
            vec![pair("x-a", "1"), pair("x-b", "logs")]
        )
    );
    assert_eq!(
        shown(1),
        (
            service,
            "https://otlp.example.com/v1/logs".into(),
            vec![pair("x-a", "mine"), pair("x-b", "logs")]
        )
    );
    assert_eq!(c.logging[0].name(0), "otlp#0");
}

#[test]
fn logging_sink_mistakes_are_load_errors() {
    let e = err("[[logging]]\ntype = \"otlp\"\nurl = \"collector:4318\"\npath = \"x\"\n");
    assert!(
        e.contains("an otlp sink needs an http:// or https:// url")
            && e.contains("path is not a setting of an otlp sink"),
        "{e}"
    );
    let e = err("[[logging]]\ntype = \"file\"\nurl = \"http://x\"\n");
    assert!(e.contains("a file sink needs a path"), "{e}");
    assert!(e.contains("url is not a setting of a file sink"), "{e}");
    let e = err("[[logging]]\ntype = \"webhook\"\nurl = \"ftp://x\"\nbatch_size = 0\n");
    assert!(
        e.contains("http:// or https://") && e.contains("batch_size must be greater than 0"),
        "{e}"
    );
    let e = err("[[logging]]\ntype = \"kafka\"\n");
    assert!(e.contains("unknown sink type"), "{e}");
    let e = err("[[logging]]\ntype = \"file\"\npath = \"x\"\nrotate = 1\n");
    assert!(e.contains("rotate"), "{e}");
}

#[test]
fn a_models_id_is_its_own_unique_and_plain() {
    let two = |a: &str, b: &str| {
        format!(
            "[[models]]\nname = \"m\"\nprovider_model = \"mock/echo\"\n{a}\n[[models]]\nname = \"n\"\nprovider_model = \"mock/echo\"\n{b}\n"
        )
    };
    let c = load(&two("id = \"prod-east:1\"", "")).unwrap();
    assert_eq!(c.models[0].id, "prod-east:1");
    // The other is derived (16 hex digits).
    assert_eq!(c.models[1].id.len(), 16);
    let e = err(&two("id = \"same\"", "id = \"same\""));
    assert!(
        e.contains("models[1].id") && e.contains("also the id of models[0]"),
        "{e}"
    );
    let e = err(&two("id = \"has space\"", ""));
    assert!(e.contains("models[0].id"), "{e}");
    let e = err(&two("id = \"\"", ""));
    assert!(e.contains("models[0].id"), "{e}");
}
