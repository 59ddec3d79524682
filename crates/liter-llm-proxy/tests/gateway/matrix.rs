//! The protocol matrix: every front door (chat completions, Anthropic Messages, OpenAI
//! Responses, legacy completions) against a model on every upstream protocol the
//! gateway speaks (OpenAI, Azure, Anthropic, Gemini, Vertex AI, Bedrock, Cohere and the
//! in-process `mock`), one whole answer and one stream each. Each answer is read into
//! the strict shapes of [`schema`] and each stream's event order is checked against its
//! protocol's (see [`doors`]); the text must be the mock's echo of the prompt and the
//! usage the upstream reported must come through non-zero. Each door that has tools
//! (all but legacy completions) then asks again, whole and streamed, with a tool the
//! upstream calls: the call must come back in the door's own shape.

mod doors;
mod schema;

use mock_upstream::MockUpstream;

use crate::support::*;

/// What every request asks; each mock echoes the last user text.
pub const PROMPT: &str = "hello matrix door";

/// The upstream protocols, one model each.
#[derive(Debug, Clone, Copy)]
pub enum Upstream {
    OpenAi,
    Azure,
    Anthropic,
    Gemini,
    Vertex,
    Bedrock,
    Cohere,
    Mock,
}

impl Upstream {
    /// The gateway model name of this upstream's deployment.
    pub fn model(self) -> &'static str {
        match self {
            Self::OpenAi => "m-openai",
            Self::Azure => "m-azure",
            Self::Anthropic => "m-anthropic",
            Self::Gemini => "m-gemini",
            Self::Vertex => "m-vertex",
            Self::Bedrock => "m-bedrock",
            Self::Cohere => "m-cohere",
            Self::Mock => "m-mock",
        }
    }

    /// The `[[models]]` entry of this upstream's deployment.
    fn toml(self, mock: &MockUpstream, creds: &std::path::Path) -> String {
        let root = format!("http://{}", mock.addr());
        let key = format!("api_key = \"{UPSTREAM_KEY}\"\nbase_url = \"{root}\"");
        let (provider_model, rest) = match self {
            Self::OpenAi => (
                "openai/gpt-4o-2024-08-06",
                format!("api_key = \"{UPSTREAM_KEY}\"\nbase_url = \"{}\"", mock.base_url()),
            ),
            Self::Azure => ("azure/gpt4o-prod", key),
            Self::Anthropic => ("anthropic/claude-sonnet-4-20250514", key),
            Self::Gemini => ("gemini/gemini-2.0-flash", key),
            Self::Vertex => (
                "vertex_ai/gemini-2.5-pro",
                format!(
                    "vertex_project = \"proj\"\nvertex_location = \"us-central1\"\nvertex_credentials = \"{}\"\nbase_url = \"{root}\"",
                    creds.display()
                ),
            ),
            Self::Bedrock => (
                "bedrock/amazon.nova-lite-v1:0",
                format!("aws_access_key_id = \"AKIDMATRIX\"\naws_secret_access_key = \"matrix-secret\"\naws_region_name = \"us-east-1\"\nbase_url = \"{root}\""),
            ),
            Self::Cohere => ("cohere/command-a-03-2025", key),
            Self::Mock => ("mock/echo", String::new()),
        };
        format!(
            "[[models]]\nname = \"{}\"\nprovider_model = \"{provider_model}\"\n{rest}\n",
            self.model()
        )
    }

    /// The text the upstream answers [`PROMPT`] with.
    pub fn answer(self) -> String {
        match self {
            // The in-process mock repeats the user's text; the mock upstream echoes it.
            Self::Mock => PROMPT.to_string(),
            _ => format!("echo: {PROMPT}"),
        }
    }
}

/// The front doors.
#[derive(Debug, Clone, Copy)]
pub enum Door {
    Chat,
    Messages,
    Responses,
    Completions,
}

/// A whole answer and a stream through `door` to `upstream`, both checked; then the
/// same with a tool the upstream calls.
async fn run(door: Door, upstream: Upstream) {
    let mock = MockUpstream::start().await.unwrap();
    let creds = crate::vertex::credentials(&mock);
    let gw = Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n{}",
        upstream.toml(&mock, creds.path())
    ))
    .await;
    // Legacy completions have no tools.
    let legs: &[bool] = match door {
        Door::Completions => &[false],
        _ => &[false, true],
    };
    for &tools in legs {
        for stream in [false, true] {
            let what = format!("{door:?} -> {upstream:?} (stream: {stream}, tools: {tools})");
            let got = ask(&gw, door, upstream, stream, tools).await;
            // Every upstream here reports usage; it must reach the client non-zero.
            assert!(got.input_tokens > 0, "{what}: input tokens {got:?}");
            assert!(got.output_tokens > 0, "{what}: output tokens {got:?}");
            if let Some(total) = got.total_tokens {
                let sum = got.input_tokens + got.output_tokens;
                assert_eq!(total, sum, "{what}: total tokens");
            }
            if !tools {
                assert_eq!(got.text, upstream.answer(), "{what}: text");
                assert_eq!((got.finish, got.calls.len()), ("stop", 0), "{what}");
            } else if let Upstream::Mock = upstream {
                // The in-process echo model never calls tools: it answers with the text.
                assert_eq!(got.text, "please call tool", "{what}: text");
                assert_eq!((got.finish, got.calls.len()), ("stop", 0), "{what}");
            } else {
                // Each mock upstream calls the first tool, with `{}` or `{"city":"Paris"}`.
                assert_eq!(got.finish, "tool", "{what}: {got:?}");
                assert_eq!(got.calls.len(), 1, "{what}: {got:?}");
                assert_eq!(got.calls[0].0, doors::TOOL, "{what}");
                let args: serde_json::Value = serde_json::from_str(&got.calls[0].1)
                    .unwrap_or_else(|e| panic!("{what}: arguments {got:?}: {e}"));
                assert!(args.is_object(), "{what}: arguments {args}");
            }
        }
    }
    if !matches!(upstream, Upstream::Mock) {
        // Each request reached the mock upstream once (Vertex fetches a token first).
        let served = mock
            .requests()
            .iter()
            .filter(|r| r.path != "/token")
            .count();
        assert_eq!(
            served,
            2 * legs.len(),
            "{door:?} -> {upstream:?}: upstream requests"
        );
    }
}

async fn ask(
    gw: &Gateway,
    door: Door,
    upstream: Upstream,
    stream: bool,
    tools: bool,
) -> doors::Got {
    let model = upstream.model();
    match door {
        Door::Chat => doors::chat(gw, model, stream, tools).await,
        Door::Messages => doors::messages(gw, model, stream, tools).await,
        Door::Responses => doors::responses(gw, model, stream, tools).await,
        Door::Completions => doors::completions(gw, model, stream).await,
    }
}

/// One test per door and upstream: `matrix::<door>::<upstream>`.
macro_rules! matrix {
    ($($door:ident: $variant:ident),* $(,)?) => {$(
        mod $door {
            use super::{run, Door, Upstream};
            #[tokio::test]
            async fn openai() { run(Door::$variant, Upstream::OpenAi).await }
            #[tokio::test]
            async fn azure() { run(Door::$variant, Upstream::Azure).await }
            #[tokio::test]
            async fn anthropic() { run(Door::$variant, Upstream::Anthropic).await }
            #[tokio::test]
            async fn gemini() { run(Door::$variant, Upstream::Gemini).await }
            #[tokio::test]
            async fn vertex() { run(Door::$variant, Upstream::Vertex).await }
            #[tokio::test]
            async fn bedrock() { run(Door::$variant, Upstream::Bedrock).await }
            #[tokio::test]
            async fn cohere() { run(Door::$variant, Upstream::Cohere).await }
            #[tokio::test]
            async fn mock() { run(Door::$variant, Upstream::Mock).await }
        }
    )*};
}

matrix! {
    chat: Chat,
    messages: Messages,
    responses: Responses,
    completions: Completions,
}
