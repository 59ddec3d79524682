//! The protocol matrix: every front door (chat completions, Anthropic Messages, OpenAI
//! Responses, legacy completions) against a model on every upstream protocol the
//! gateway speaks (OpenAI, Azure, Anthropic, Gemini, Vertex AI, Bedrock, Cohere and the
//! in-process `mock`), one whole answer and one stream each. Each answer is read into
//! the strict shapes of [`schema`] and each stream's event order is checked against its
//! protocol's (see [`doors`]); the text must be the mock's echo of the prompt and the
//! usage the upstream reported must come through non-zero.

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

/// A whole answer and a stream through `door` to `upstream`, both checked.
async fn run(door: Door, upstream: Upstream) {
    let mock = MockUpstream::start().await.unwrap();
    let creds = crate::vertex::credentials(&mock);
    let gw = Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n{}",
        upstream.toml(&mock, creds.path())
    ))
    .await;
    let model = upstream.model();
    let expected = upstream.answer();
    for stream in [false, true] {
        let got = match door {
            Door::Chat => doors::chat(&gw, model, stream).await,
            Door::Messages => doors::messages(&gw, model, stream).await,
            Door::Responses => doors::responses(&gw, model, stream).await,
            Door::Completions => doors::completions(&gw, model, stream).await,
        };
        let what = format!("{door:?} -> {upstream:?} (stream: {stream})");
        assert_eq!(got.text, expected, "{what}: text");
        // Every upstream here reports usage; it must reach the client non-zero.
        assert!(got.input_tokens > 0, "{what}: input tokens {got:?}");
        assert!(got.output_tokens > 0, "{what}: output tokens {got:?}");
        if let Some(total) = got.total_tokens {
            assert_eq!(
                total,
                got.input_tokens + got.output_tokens,
                "{what}: total tokens"
            );
        }
    }
    if !matches!(upstream, Upstream::Mock) {
        // Both requests reached the mock upstream (Vertex fetches a token first).
        let served = mock
            .requests()
            .iter()
            .filter(|r| r.path != "/token")
            .count();
        assert_eq!(served, 2, "{door:?} -> {upstream:?}: upstream requests");
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
