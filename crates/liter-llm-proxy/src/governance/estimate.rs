//! What a request may consume, estimated before it is sent: prompt tokens counted with
//! a real tokenizer (OpenAI's `o200k_base`, used for every provider: other vendors'
//! tokenizers differ by some percent, and the estimate is settled against the tokens
//! the provider reports anyway), plus the output the request allows.
//!
//! Counts are remembered per text ([`Memo`]): a conversation sends its whole history
//! again on every turn, and system prompts and tool definitions repeat across requests,
//! so most of a request's text has been counted before. Tokenizing a five-word sentence
//! takes about 8,000 instructions (mostly the pre-tokenizer's regex) and grows with the
//! text; a remembered count costs one keyed hash of the text.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, OnceLock};

use super::bpe::Bpe;
use serde::Deserialize;
use serde_json::value::RawValue;

/// `max_tokens` assumed when neither the request nor the price table gives a limit.
pub const DEFAULT_MAX_OUTPUT: u64 = 4096;
/// Tokens per message for role and separators (OpenAI's published rule of thumb).
const PER_MESSAGE: u64 = 4;
/// Tokens counted for an image part (OpenAI's high-detail 1024×1024 tile count).
const PER_IMAGE: u64 = 765;

/// The tokenizer, loaded once on first use (its split pattern is compiled then; the
/// vocabulary is read-only data in the binary, see `bpe`), and the
/// counts it gave recently.
#[derive(Clone, Default)]
pub struct Tokenizer(Arc<Loaded>);

#[derive(Default)]
struct Loaded {
    bpe: OnceLock<Option<Bpe>>,
    /// Made with the first count (a gateway that counts no tokens does not pay for it).
    memo: OnceLock<Memo>,
}

/// Slots of the [`Memo`] (32 bytes each: 128 KB).
const MEMO_SLOTS: usize = 4096;

/// Token counts of recently seen texts: a direct-mapped table indexed by a keyed hash
/// of the text (std's SipHash with a random key, so a client cannot aim texts at one
/// slot). A slot holds the hash, the length and the count; a text matches when both the
/// hash and the length do. A newer text takes the slot of an older one.
struct Memo {
    hasher: std::hash::RandomState,
    slots: Box<[Mutex<Slot>]>,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    hash: u64,
    /// The text's length in bytes; 0: empty slot (empty texts are not remembered).
    len: usize,
    count: u64,
}

impl Default for Memo {
    fn default() -> Self {
        Memo {
            hasher: std::hash::RandomState::new(),
            slots: (0..MEMO_SLOTS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Memo {
    fn slot(&self, hash: u64) -> std::sync::MutexGuard<'_, Slot> {
        self.slots[(hash % MEMO_SLOTS as u64) as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The count of `text`, from the table or from `count` (then remembered).
    fn get_or(&self, text: &str, count: impl FnOnce(&str) -> u64) -> u64 {
        if text.is_empty() {
            return count(text);
        }
        let hash = self.hasher.hash_one(text);
        let seen = *self.slot(hash);
        if seen.hash == hash && seen.len == text.len() {
            return seen.count;
        }
        let n = count(text);
        *self.slot(hash) = Slot {
            hash,
            len: text.len(),
            count: n,
        };
        n
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokenizer(o200k_base)")
    }
}

impl Tokenizer {
    fn bpe(&self) -> Option<&Bpe> {
        self.0
            .bpe
            .get_or_init(|| match Bpe::new() {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::error!(error = %e, "the tokenizer did not load: prompts are estimated at 4 bytes a token");
                    None
                }
            })
            .as_ref()
    }

    /// Load now (call from a blocking task at start-up so no request waits for it).
    pub fn warm(&self) {
        let _ = self.bpe();
    }

    pub fn count(&self, text: &str) -> u64 {
        match self.bpe() {
            Some(b) => self
                .0
                .memo
                .get_or_init(Memo::default)
                .get_or(text, |t| b.count(t)),
            None => (text.len() as u64).div_ceil(4),
        }
    }
}

#[derive(Deserialize)]
struct ChatBody<'a> {
    #[serde(default, borrow)]
    messages: Vec<MessageIn<'a>>,
    /// Anthropic's top-level system prompt (a Messages request passed through as it
    /// came is estimated as it is).
    #[serde(default, borrow)]
    system: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tools: Option<&'a RawValue>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    n: Option<u64>,
}

#[derive(Deserialize)]
struct MessageIn<'a> {
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_calls: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct EmbeddingsBody {
    #[serde(default)]
    input: serde_json::Value,
}

/// Estimated tokens of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub prompt: u64,
    /// The most output the request allows.
    pub max_output: u64,
}

impl Estimate {
    pub fn total(&self) -> u64 {
        self.prompt + self.max_output
    }
}

fn content_tokens(tok: &Tokenizer, content: &RawValue) -> u64 {
    // The common case, plain text, without building a JSON value.
    if let Ok(text) = serde_json::from_str::<std::borrow::Cow<'_, str>>(content.get()) {
        return tok.count(&text);
    }
    match serde_json::from_str::<serde_json::Value>(content.get()) {
        Ok(serde_json::Value::String(s)) => tok.count(&s),
        Ok(serde_json::Value::Array(parts)) => parts
            .iter()
            .map(|p| match p.get("type").and_then(|t| t.as_str()) {
                Some("text") => p
                    .get("text")
                    .and_then(|t| t.as_str())
                    .map_or(0, |t| tok.count(t)),
                Some("image_url" | "image" | "input_image") => PER_IMAGE,
                _ => tok.count(&p.to_string()),
            })
            .sum(),
        Ok(serde_json::Value::Null) | Err(_) => 0,
        Ok(other) => tok.count(&other.to_string()),
    }
}

/// A chat request's estimate; `model_max_output` is the model's output limit, if known.
pub fn chat(tok: &Tokenizer, body: &[u8], model_max_output: Option<u64>) -> Estimate {
    let Ok(b) = serde_json::from_slice::<ChatBody<'_>>(body) else {
        return Estimate {
            prompt: (body.len() as u64).div_ceil(4),
            max_output: model_max_output.unwrap_or(DEFAULT_MAX_OUTPUT),
        };
    };
    let mut prompt = 3; // every reply is primed with a few tokens
    if let Some(s) = b.system {
        prompt += PER_MESSAGE + content_tokens(tok, s);
    }
    for m in &b.messages {
        prompt += PER_MESSAGE;
        if let Some(c) = m.content {
            prompt += content_tokens(tok, c);
        }
        if let Some(t) = m.tool_calls {
            prompt += tok.count(t.get());
        }
    }
    if let Some(t) = b.tools {
        prompt += tok.count(t.get());
    }
    let per_choice = b
        .max_completion_tokens
        .or(b.max_tokens)
        .or(model_max_output)
        .unwrap_or(DEFAULT_MAX_OUTPUT);
    Estimate {
        prompt,
        max_output: per_choice.saturating_mul(b.n.unwrap_or(1).max(1)),
    }
}

/// An embeddings request's estimate (no output tokens).
pub fn embeddings(tok: &Tokenizer, body: &[u8]) -> Estimate {
    let prompt = match serde_json::from_slice::<EmbeddingsBody>(body).map(|b| b.input) {
        Ok(serde_json::Value::String(s)) => tok.count(&s),
        Ok(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                serde_json::Value::String(s) => tok.count(s),
                // Token-id arrays: one token per number.
                serde_json::Value::Array(ids) => ids.len() as u64,
                serde_json::Value::Number(_) => 1,
                _ => 0,
            })
            .sum(),
        _ => (body.len() as u64).div_ceil(4),
    };
    Estimate {
        prompt,
        max_output: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_the_real_tokenizer() {
        let tok = Tokenizer::default();
        // "hello world" is two tokens in o200k_base.
        assert_eq!(tok.count("hello world"), 2);
        let e = chat(
            &tok,
            br#"{"model":"m","max_tokens":50,"n":2,"messages":[{"role":"user","content":"hello world"},{"role":"user","content":[{"type":"text","text":"hello world"},{"type":"image_url","image_url":{"url":"x"}}]}]}"#,
            Some(1000),
        );
        assert_eq!(e.prompt, 3 + 4 + 2 + 4 + 2 + PER_IMAGE);
        assert_eq!(e.max_output, 100);
        let e = chat(&tok, br#"{"model":"m","messages":[]}"#, Some(1000));
        assert_eq!(e.max_output, 1000);
        let e = embeddings(&tok, br#"{"model":"m","input":["hello world",[1,2,3]]}"#);
        assert_eq!(
            e,
            Estimate {
                prompt: 5,
                max_output: 0
            }
        );
    }

    #[test]
    fn an_anthropic_system_prompt_is_counted() {
        let tok = Tokenizer::default();
        let without = chat(
            &tok,
            br#"{"messages":[{"role":"user","content":"hello world"}]}"#,
            Some(1),
        );
        let with = chat(
            &tok,
            br#"{"system":[{"type":"text","text":"hello world"}],"messages":[{"role":"user","content":"hello world"}]}"#,
            Some(1),
        );
        assert_eq!(with.prompt, without.prompt + PER_MESSAGE + 2);
    }

    #[test]
    fn remembered_counts_match_fresh_ones() {
        let tok = Tokenizer::default();
        let fresh = Tokenizer::default();
        // More texts than slots, each counted twice: every answer, from the table or
        // not, is the tokenizer's own, and slots taken over by other texts are not
        // mistaken for them.
        let texts: Vec<String> = (0..2 * MEMO_SLOTS)
            .map(|i| format!("message {i}: {}", "lorem ipsum ".repeat(i % 7)))
            .collect();
        for _ in 0..2 {
            for t in &texts {
                let want = fresh.bpe().map(|b| b.count(t));
                assert_eq!(Some(tok.count(t)), want, "{t}");
            }
        }
        assert_eq!(tok.count(""), 0);
        // A count is remembered: a text seen before is answered from its slot.
        let memo = Memo::default();
        assert_eq!(memo.get_or("hello world", |_| 2), 2);
        assert_eq!(memo.get_or("hello world", |_| unreachable!()), 2);
        assert_eq!(memo.get_or("hello world!", |_| 3), 3, "another text");
    }
}
