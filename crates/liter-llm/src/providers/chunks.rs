//! Building `chat.completion.chunk`s for one streamed answer, shared by the stream
//! translators: every chunk carries the stream's id, model and creation time, and
//! `"usage": null` when the client asked for usage (`stream_options.include_usage`), as
//! OpenAI does; the last chunk then carries the usage and no choices.

use crate::providers::adapter::{StreamMeta, StreamOut};
use crate::types::{ChatCompletionChunk, ChunkChoice, Delta, ToolCallDelta, Usage};

/// Makes the chunks of one stream.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    pub id: String,
    pub model: String,
    pub created: u64,
    pub include_usage: bool,
}

impl ChunkWriter {
    pub fn new(meta: StreamMeta) -> Self {
        Self {
            id: meta.id,
            model: meta.model,
            created: meta.created,
            include_usage: meta.include_usage,
        }
    }

    /// The first chunk: `{"role":"assistant","content":""}`.
    pub fn role(&self) -> StreamOut {
        self.delta(Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            ..Delta::default()
        })
    }

    pub fn content(&self, text: &str) -> StreamOut {
        self.delta(Delta {
            content: Some(text.to_string()),
            ..Delta::default()
        })
    }

    pub fn reasoning(&self, text: &str) -> StreamOut {
        self.delta(Delta {
            reasoning_content: Some(text.to_string()),
            ..Delta::default()
        })
    }

    pub fn tool_call(&self, call: ToolCallDelta) -> StreamOut {
        self.delta(Delta {
            tool_calls: Some(vec![call]),
            ..Delta::default()
        })
    }

    /// A chunk with `delta` and no finish reason.
    pub fn delta(&self, delta: Delta) -> StreamOut {
        self.choice_at(0, delta, None)
    }

    /// The chunk with the finish reason (and an empty delta).
    pub fn finish(&self, reason: &str) -> StreamOut {
        self.choice_at(0, Delta::default(), Some(reason))
    }

    /// The usage chunk (no choices); send it only when [`Self::include_usage`].
    pub fn usage(&self, usage: Usage) -> StreamOut {
        let mut last = self.chunk(Vec::new());
        last.usage = Some(Some(usage));
        StreamOut::Chunk(last)
    }

    /// A chunk of choice `index` with `delta` and `finish`.
    pub fn choice_at(&self, index: u32, delta: Delta, finish: Option<&str>) -> StreamOut {
        StreamOut::Chunk(self.chunk(vec![ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason: finish.map(str::to_string),
        }]))
    }

    /// A chunk with `choices`.
    pub fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: self.include_usage.then_some(None),
        }
    }
}
