//! The canonical (OpenAI chat) request a Messages request becomes, as typed values
//! that borrow from the client's body and serialize straight to the output bytes.

use std::borrow::Cow;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::controls::Controls;
use super::raw::Raw;

/// The canonical request.
pub struct Canonical<'a> {
    /// The fields with no Messages meaning, in the client's order (kept for the
    /// deployment's adapter to judge).
    pub extra: Vec<(Cow<'a, str>, Raw<'a>)>,
    pub model: Raw<'a>,
    pub messages: Vec<Turn<'a>>,
    pub max_tokens: u64,
    pub stop: Option<Vec<Cow<'a, str>>>,
    /// `stream: true`, with `stream_options.include_usage` (the encoder needs the usage
    /// for `message_delta`).
    pub stream: bool,
    pub user: Option<Cow<'a, str>>,
    pub tools: Vec<Tool<'a>>,
    pub tool_choice: Option<Choice<'a>>,
    pub parallel_tool_calls: Option<bool>,
    /// `reasoning_effort`, `response_format` and what is left of `output_config`.
    pub controls: Controls<'a>,
}

impl Canonical<'_> {
    /// Whether the translation writes `key` itself (a client's field of that name is
    /// then left out).
    fn writes(&self, key: &str) -> bool {
        match key {
            "model" | "messages" | "max_tokens" => true,
            "stop" => self.stop.is_some(),
            "stream" | "stream_options" => self.stream,
            "user" => self.user.is_some(),
            "tools" => !self.tools.is_empty(),
            "tool_choice" => self.tool_choice.is_some(),
            "parallel_tool_calls" => self.parallel_tool_calls.is_some(),
            _ => self.controls.writes(key),
        }
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

impl Serialize for Canonical<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in &self.extra {
            if !self.writes(key) {
                map.serialize_entry(key, value)?;
            }
        }
        map.serialize_entry("model", self.model)?;
        map.serialize_entry("messages", &self.messages)?;
        map.serialize_entry("max_tokens", &self.max_tokens)?;
        if let Some(stop) = &self.stop {
            map.serialize_entry("stop", stop)?;
        }
        if self.stream {
            map.serialize_entry("stream", &true)?;
            map.serialize_entry(
                "stream_options",
                &StreamOptions {
                    include_usage: true,
                },
            )?;
        }
        if let Some(user) = &self.user {
            map.serialize_entry("user", user)?;
        }
        if !self.tools.is_empty() {
            map.serialize_entry("tools", &self.tools)?;
        }
        if let Some(choice) = &self.tool_choice {
            map.serialize_entry("tool_choice", choice)?;
        }
        if let Some(parallel) = &self.parallel_tool_calls {
            map.serialize_entry("parallel_tool_calls", parallel)?;
        }
        self.controls.write(&mut map)?;
        map.end()
    }
}

/// One canonical message.
#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Turn<'a> {
    System {
        content: Cow<'a, str>,
    },
    User {
        content: UserContent<'a>,
    },
    Assistant {
        content: Option<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<Call<'a>>,
    },
    Tool {
        tool_call_id: Cow<'a, str>,
        content: Cow<'a, str>,
    },
}

/// A user message's content: one text, or parts.
#[derive(Serialize)]
#[serde(untagged)]
pub enum UserContent<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<Part<'a>>),
}

/// A user content part.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Part<'a> {
    Known(Known<'a>),
    /// A block with no OpenAI counterpart, as the client wrote it.
    Raw(Raw<'a>),
}

/// The content parts the translation writes.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Known<'a> {
    Text { text: Cow<'a, str> },
    ImageUrl { image_url: Url<'a> },
    File { file: File<'a> },
}

#[derive(Serialize)]
pub struct Url<'a> {
    pub url: Cow<'a, str>,
}

#[derive(Serialize)]
pub struct File<'a> {
    pub file_data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<Cow<'a, str>>,
}

/// An assistant's tool call.
#[derive(Serialize)]
pub struct Call<'a> {
    pub id: Cow<'a, str>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: CallFunction<'a>,
}

#[derive(Serialize)]
pub struct CallFunction<'a> {
    pub name: Cow<'a, str>,
    /// The `input` object's JSON text.
    pub arguments: &'a str,
}

/// A tool: a function, or a server tool as the client wrote it.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Tool<'a> {
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: Function<'a>,
    },
    Raw(Raw<'a>),
}

#[derive(Serialize)]
pub struct Function<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Raw<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Raw<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Raw<'a>>,
}

/// OpenAI's `tool_choice`.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Choice<'a> {
    /// `auto`, `required` or `none`.
    Mode(&'static str),
    Named {
        #[serde(rename = "type")]
        kind: &'static str,
        function: Named<'a>,
    },
}

#[derive(Serialize)]
pub struct Named<'a> {
    pub name: Cow<'a, str>,
}
