//! Strict mirrors of each front door's documented answer and stream-event shapes, for
//! the protocol matrix: every struct denies fields its protocol does not document, a
//! literal (`object`, `type`, a stop reason) is an enum of the documented values, and a
//! field the protocol always sends, even as `null`, is a [`Nullable`] (present, may be
//! null) rather than an `Option` (may be absent).

// Most fields are here to be checked by deserializing (present, of the right type), not
// to be read afterwards.
#![allow(dead_code)]

use serde::Deserialize;
use serde_json::Value;

/// A field that must be present but may be `null`. (`Option` alone accepts a missing
/// field; a newtype does not.)
#[derive(Debug, Deserialize)]
pub struct Nullable<T>(pub Option<T>);

// ---------------------------------------------------------------- chat completions

#[derive(Debug, Deserialize)]
pub enum ChatObject {
    #[serde(rename = "chat.completion")]
    Completion,
}

#[derive(Debug, Deserialize)]
pub enum ChunkObject {
    #[serde(rename = "chat.completion.chunk")]
    Chunk,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    FunctionCall,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assistant {
    Assistant,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatCompletion {
    pub id: String,
    pub object: ChatObject,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: Option<ChatUsage>,
    pub system_fingerprint: Option<Option<String>>,
    pub service_tier: Option<Option<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatChoice {
    pub index: u32,
    pub message: ChatMessage,
    pub finish_reason: FinishReason,
    pub logprobs: Option<Option<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    pub role: Assistant,
    pub content: Nullable<String>,
    pub refusal: Option<Option<String>>,
    pub tool_calls: Option<Vec<ToolCall>>,
    pub annotations: Option<Vec<Value>>,
    /// Not in OpenAI's reference, but the field reasoning models' answers carry through
    /// OpenAI-compatible gateways; the gateway documents it.
    pub reasoning_content: Option<Option<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FunctionType {
    Function,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: FunctionType,
    pub function: FunctionCall,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

/// A streamed tool call piece: the first names the call, the rest add arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCallDelta {
    pub index: u32,
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<FunctionType>,
    pub function: Option<FunctionDelta>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionDelta {
    pub name: Option<String>,
    pub arguments: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: Option<Value>,
    pub completion_tokens_details: Option<Value>,
    /// The gateway's documented extension (docs/providers.md): an Anthropic-format
    /// upstream's cache counts under Anthropic's names, as LiteLLM reports them.
    pub cache_read_input_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatChunk {
    pub id: String,
    pub object: ChunkObject,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    pub usage: Option<Option<ChatUsage>>,
    pub system_fingerprint: Option<Option<String>>,
    pub service_tier: Option<Option<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: ChunkDelta,
    pub finish_reason: Nullable<FinishReason>,
    pub logprobs: Option<Option<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkDelta {
    pub role: Option<Assistant>,
    pub content: Option<Option<String>>,
    pub refusal: Option<Option<String>>,
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    pub reasoning_content: Option<Option<String>>,
}

// ---------------------------------------------------------------- legacy completions

#[derive(Debug, Deserialize)]
pub enum TextObject {
    #[serde(rename = "text_completion")]
    TextCompletion,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextCompletion {
    pub id: String,
    pub object: TextObject,
    pub created: u64,
    pub model: String,
    pub choices: Vec<TextChoice>,
    pub usage: Option<ChatUsage>,
    pub system_fingerprint: Option<Option<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextChoice {
    pub text: String,
    pub index: u32,
    pub logprobs: Nullable<Value>,
    pub finish_reason: Nullable<FinishReason>,
}

// ---------------------------------------------------------------- Anthropic Messages

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    Message,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    PauseTurn,
    Refusal,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub role: Assistant,
    pub content: Vec<ContentBlock>,
    pub model: String,
    pub stop_reason: Nullable<StopReason>,
    pub stop_sequence: Nullable<String>,
    pub usage: MessageUsage,
    pub container: Option<Option<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ContentBlock {
    Text {
        text: String,
        citations: Option<Option<Vec<Value>>>,
    },
    ToolUse {
        id: String,
        name: String,
        input: serde_json::Map<String, Value>,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: Option<Option<u64>>,
    pub cache_read_input_tokens: Option<Option<u64>>,
    pub cache_creation: Option<Option<Value>>,
    pub server_tool_use: Option<Option<Value>>,
    pub service_tier: Option<Option<String>>,
}

/// One event of a Messages stream (its `data:`; the `event:` name must equal `type`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MessageEvent {
    MessageStart {
        message: Message,
    },
    ContentBlockStart {
        index: u32,
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        usage: DeltaUsage,
    },
    MessageStop {},
    Ping {},
    Error {
        error: Value,
    },
}

/// The variants are named after the protocol's delta types (`text_delta`, ...).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BlockDelta {
    TextDelta { text: String },
    InputJsonDelta { partial_json: String },
    ThinkingDelta { thinking: String },
    SignatureDelta { signature: String },
    CitationsDelta { citation: Value },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageDeltaBody {
    pub stop_reason: Nullable<StopReason>,
    pub stop_sequence: Nullable<String>,
    pub container: Option<Option<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaUsage {
    pub output_tokens: u64,
    pub input_tokens: Option<Option<u64>>,
    pub cache_creation_input_tokens: Option<Option<u64>>,
    pub cache_read_input_tokens: Option<Option<u64>>,
    pub server_tool_use: Option<Option<Value>>,
}

// ---------------------------------------------------------------- OpenAI Responses

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseObject {
    Response,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    Completed,
    Failed,
    InProgress,
    Cancelled,
    Queued,
    Incomplete,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    pub id: String,
    pub object: ResponseObject,
    pub created_at: f64,
    pub status: ResponseStatus,
    pub error: Nullable<Value>,
    pub incomplete_details: Nullable<Value>,
    pub instructions: Nullable<Value>,
    pub max_output_tokens: Option<Option<u64>>,
    pub metadata: Nullable<serde_json::Map<String, Value>>,
    pub model: String,
    pub output: Vec<OutputItem>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<Option<String>>,
    pub reasoning: Option<Option<Value>>,
    pub store: Option<bool>,
    pub temperature: Nullable<f64>,
    pub text: Option<Value>,
    pub tool_choice: Value,
    pub tools: Vec<Value>,
    pub top_p: Nullable<f64>,
    pub truncation: Option<Option<String>>,
    pub usage: Option<Option<ResponseUsage>>,
    pub user: Option<Option<String>>,
    pub background: Option<Option<bool>>,
    pub service_tier: Option<Option<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutputItem {
    Message {
        id: String,
        status: ResponseStatus,
        role: Assistant,
        content: Vec<OutputContent>,
    },
    FunctionCall {
        id: Option<String>,
        call_id: String,
        name: String,
        arguments: String,
        status: Option<ResponseStatus>,
    },
    Reasoning {
        id: String,
        summary: Vec<Value>,
        content: Option<Vec<Value>>,
        encrypted_content: Option<Option<String>>,
        status: Option<ResponseStatus>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutputContent {
    OutputText {
        text: String,
        annotations: Vec<Value>,
        logprobs: Option<Vec<Value>>,
    },
    Refusal {
        refusal: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseUsage {
    pub input_tokens: u64,
    pub input_tokens_details: CachedTokens,
    pub output_tokens: u64,
    pub output_tokens_details: ReasoningTokens,
    pub total_tokens: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachedTokens {
    pub cached_tokens: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasoningTokens {
    pub reasoning_tokens: u64,
}

/// One event of a Responses stream (its `data:`; the `event:` name must equal `type`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ResponseEvent {
    #[serde(rename = "response.created")]
    Created {
        sequence_number: u64,
        response: Response,
    },
    #[serde(rename = "response.in_progress")]
    InProgress {
        sequence_number: u64,
        response: Response,
    },
    #[serde(rename = "response.output_item.added")]
    ItemAdded {
        sequence_number: u64,
        output_index: u32,
        item: OutputItem,
    },
    #[serde(rename = "response.output_item.done")]
    ItemDone {
        sequence_number: u64,
        output_index: u32,
        item: OutputItem,
    },
    #[serde(rename = "response.content_part.added")]
    PartAdded {
        sequence_number: u64,
        item_id: String,
        output_index: u32,
        content_index: u32,
        part: OutputContent,
    },
    #[serde(rename = "response.content_part.done")]
    PartDone {
        sequence_number: u64,
        item_id: String,
        output_index: u32,
        content_index: u32,
        part: OutputContent,
    },
    #[serde(rename = "response.output_text.delta")]
    TextDelta {
        sequence_number: u64,
        item_id: String,
        output_index: u32,
        content_index: u32,
        delta: String,
        logprobs: Option<Vec<Value>>,
    },
    #[serde(rename = "response.output_text.done")]
    TextDone {
        sequence_number: u64,
        item_id: String,
        output_index: u32,
        content_index: u32,
        text: String,
        logprobs: Option<Vec<Value>>,
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    ArgumentsDelta {
        sequence_number: u64,
        item_id: String,
        output_index: u32,
        delta: String,
    },
    #[serde(rename = "response.function_call_arguments.done")]
    ArgumentsDone {
        sequence_number: u64,
        item_id: String,
        output_index: u32,
        arguments: String,
        name: Option<String>,
    },
    #[serde(rename = "response.completed")]
    Completed {
        sequence_number: u64,
        response: Response,
    },
    #[serde(rename = "response.incomplete")]
    Incomplete {
        sequence_number: u64,
        response: Response,
    },
    #[serde(rename = "response.failed")]
    Failed {
        sequence_number: u64,
        response: Response,
    },
    #[serde(rename = "error")]
    Error {
        sequence_number: u64,
        code: Nullable<String>,
        message: String,
        param: Nullable<String>,
    },
}

impl ResponseEvent {
    pub fn sequence_number(&self) -> u64 {
        match self {
            Self::Created {
                sequence_number, ..
            }
            | Self::InProgress {
                sequence_number, ..
            }
            | Self::ItemAdded {
                sequence_number, ..
            }
            | Self::ItemDone {
                sequence_number, ..
            }
            | Self::PartAdded {
                sequence_number, ..
            }
            | Self::PartDone {
                sequence_number, ..
            }
            | Self::TextDelta {
                sequence_number, ..
            }
            | Self::TextDone {
                sequence_number, ..
            }
            | Self::ArgumentsDelta {
                sequence_number, ..
            }
            | Self::ArgumentsDone {
                sequence_number, ..
            }
            | Self::Completed {
                sequence_number, ..
            }
            | Self::Incomplete {
                sequence_number, ..
            }
            | Self::Failed {
                sequence_number, ..
            }
            | Self::Error {
                sequence_number, ..
            } => *sequence_number,
        }
    }
}
