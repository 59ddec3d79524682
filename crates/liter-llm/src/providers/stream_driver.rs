//! The one driver of every translated stream (Anthropic, Cohere, Gemini, Bedrock).
//!
//! A translated stream is two concerns: how the body's bytes are cut into frames (SSE
//! events, AWS event-stream messages: [`Framing`]), and what each provider's frames
//! mean in OpenAI's chunks ([`EventMapping`]). [`StreamDriver`] owns everything else,
//! once for all providers:
//!
//! - buffering the bytes, which may be split anywhere (inside a CRLF, inside a
//!   multi-byte character, inside a binary frame), and handing the mapping whole
//!   frames in order;
//! - the role chunk (`{"role":"assistant","content":""}`), sent at most once
//!   ([`Emit::start`]);
//! - the end of an answer: once the mapping says it is complete, the usage chunk
//!   (when the client asked for it, `stream_options.include_usage`) and `Done`;
//! - errors: a frame the provider sent as an error, a frame that cannot be read, or a
//!   framing error, becomes one [`StreamOut::Error`], and after it (as after `Done`)
//!   every input is ignored;
//! - the end of the body: an answer still open (or a frame left half-received) is a
//!   502 `stream_truncated` error naming what never came;
//! - usage for accounting ([`StreamDriver::usage`]), whatever `include_usage` says.
//!
//! The driver implements the gateway's [`StreamTranslate`]; each provider's
//! `StreamTranslator` is a `StreamDriver` of its mapping.

use std::fmt;

use serde::de::DeserializeOwned;

use crate::providers::adapter::{StreamMeta, StreamOut, StreamTranslate};
use crate::providers::chunks::ChunkWriter;
use crate::providers::sse::{SseDecoder, SseEvent};
use crate::types::{Delta, ProviderError, ToolCallDelta, Usage};

/// Cuts a body's bytes, fed at arbitrary boundaries, into whole frames.
pub trait Framing: fmt::Debug + Send {
    type Frame;

    /// Consumes `bytes`, pushing every frame they complete to `out`. `Err`: the bytes
    /// are not of this framing (frames completed before the fault are still pushed).
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Self::Frame>) -> Result<(), String>;

    /// Whether the body stopped inside a frame that may not be dropped.
    fn has_partial(&self) -> bool;

    /// The most bytes one frame may have ([`StreamMeta::max_event_bytes`]); a longer
    /// one is an error from `feed`, before more than that is buffered.
    fn set_limit(&mut self, max_event_bytes: usize);
}

/// SSE: fails only on an event over the limit, and an unterminated event at the end of
/// the body is dropped, as the format specifies (so it is never "partial").
impl Framing for SseDecoder {
    type Frame = SseEvent;

    fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        SseDecoder::feed(self, bytes, out).map_err(|e| e.to_string())
    }

    fn has_partial(&self) -> bool {
        false
    }

    fn set_limit(&mut self, max_event_bytes: usize) {
        SseDecoder::set_limit(self, max_event_bytes);
    }
}

/// Whether an answer is complete after a frame (or at the end of the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// More is to come. At the end of the body, the answer is truncated.
    Open,
    /// The answer is complete (its finish chunks are out): the driver adds the usage
    /// chunk when asked, then `Done`.
    Complete,
}

impl Flow {
    /// [`Flow::Complete`] when `done`, else [`Flow::Open`].
    pub fn complete_if(done: bool) -> Flow {
        if done {
            Flow::Complete
        } else {
            Flow::Open
        }
    }
}

/// One provider's meaning of its stream's frames: all a translator has to supply.
pub trait EventMapping: fmt::Debug + Send {
    type Framing: Framing + Default;

    /// The provider's name in error messages (`anthropic`).
    const PROVIDER: &'static str;
    /// What a complete answer ends with, for the truncation error (`message_stop`).
    const END: &'static str;

    /// One whole frame: chunks go to `emit`. `Err`: the stream failed (the provider sent
    /// an error, or a frame that cannot be read); nothing more is read.
    fn frame(
        &mut self,
        frame: &<Self::Framing as Framing>::Frame,
        emit: &mut Emit<'_>,
    ) -> Result<Flow, ProviderError>;

    /// The body ended with every frame whole and the answer not yet complete: send
    /// what is still owed and say [`Flow::Complete`], or [`Flow::Open`] if the answer
    /// was cut short. Most providers end with an event of their own and say `Open`.
    fn end(&mut self, emit: &mut Emit<'_>) -> Flow {
        let _ = emit;
        Flow::Open
    }

    /// The usage reported so far (final once the answer is complete).
    fn usage(&self) -> Option<Usage>;
}

/// Where a mapping sends its chunks: the stream's [`ChunkWriter`] and its output.
#[derive(Debug)]
pub struct Emit<'a> {
    writer: &'a ChunkWriter,
    started: &'a mut bool,
    out: &'a mut Vec<StreamOut>,
}

impl Emit<'_> {
    /// The `chatcmpl-…` id every chunk carries.
    pub fn id(&self) -> &str {
        &self.writer.id
    }

    /// The role chunk of choice 0, unless it was sent already.
    pub fn start(&mut self) {
        if !*self.started {
            *self.started = true;
            self.out.push(self.writer.role());
        }
    }

    pub fn content(&mut self, text: &str) {
        self.out.push(self.writer.content(text));
    }

    pub fn reasoning(&mut self, text: &str) {
        self.out.push(self.writer.reasoning(text));
    }

    pub fn tool_call(&mut self, call: ToolCallDelta) {
        self.out.push(self.writer.tool_call(call));
    }

    /// A chunk of choice 0 with `delta`.
    pub fn delta(&mut self, delta: Delta) {
        self.out.push(self.writer.delta(delta));
    }

    /// The finish chunk of choice 0.
    pub fn finish(&mut self, reason: &str) {
        self.out.push(self.writer.finish(reason));
    }

    /// A chunk of choice `index` (providers that stream several candidates).
    pub fn choice(&mut self, index: u32, delta: Delta, finish: Option<&str>) {
        self.out.push(self.writer.choice_at(index, delta, finish));
    }
}

/// A 502 for a frame whose payload cannot be read (`event`: its name, if it has one).
pub fn unreadable(provider: &str, event: &str, error: impl fmt::Display) -> ProviderError {
    let message = if event.is_empty() {
        format!("unreadable {provider} stream event: {error}")
    } else {
        format!("unreadable {provider} stream event {event:?}: {error}")
    };
    ProviderError::new(502, "api_error", message).with_code("bad_upstream_response")
}

/// An SSE event's data as JSON (an [`unreadable`] error if it is not).
pub fn sse_json<T: DeserializeOwned>(provider: &str, event: &SseEvent) -> Result<T, ProviderError> {
    serde_json::from_str(&event.data).map_err(|e| unreadable(provider, &event.event, e))
}

/// Translates one streamed answer with the mapping `M`. Feed it the body's bytes as
/// they arrive, then call [`StreamDriver::finish`] at the end of the body.
#[derive(Debug)]
pub struct StreamDriver<M: EventMapping> {
    framing: M::Framing,
    mapping: M,
    writer: ChunkWriter,
    /// The role chunk has been sent.
    started: bool,
    /// `Done` or an error has been emitted.
    ended: bool,
}

impl<M: EventMapping> StreamDriver<M> {
    /// A driver whose chunks are for `meta`.
    pub fn with_mapping(meta: StreamMeta, mapping: M) -> Self {
        let mut framing = M::Framing::default();
        framing.set_limit(meta.max_event_bytes);
        Self {
            framing,
            mapping,
            writer: ChunkWriter::new(meta),
            started: false,
            ended: false,
        }
    }

    /// Consumes the next bytes of the body (any split, even inside a character).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<StreamOut> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let mut frames = Vec::new();
        let framed = self.framing.feed(bytes, &mut frames);
        for frame in &frames {
            let mut emit = Emit {
                writer: &self.writer,
                started: &mut self.started,
                out: &mut out,
            };
            let flow = self.mapping.frame(frame, &mut emit);
            self.settle(flow, &mut out);
            if self.ended {
                return out;
            }
        }
        if let Err(e) = framed {
            let e = ProviderError::new(502, "api_error", format!("{} stream: {e}", M::PROVIDER))
                .with_code("bad_upstream_response");
            self.settle(Err(e), &mut out);
        }
        out
    }

    /// The body ended: whatever is still owed, or a 502 if the answer is incomplete.
    pub fn finish(&mut self) -> Vec<StreamOut> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let flow = if self.framing.has_partial() {
            Flow::Open
        } else {
            let mut emit = Emit {
                writer: &self.writer,
                started: &mut self.started,
                out: &mut out,
            };
            self.mapping.end(&mut emit)
        };
        let flow = match flow {
            Flow::Complete => Ok(Flow::Complete),
            Flow::Open => Err(ProviderError::new(
                502,
                "api_error",
                format!("the {} stream ended before {}", M::PROVIDER, M::END),
            )
            .with_code("stream_truncated")),
        };
        self.settle(flow, &mut out);
        out
    }

    /// The usage reported so far (final once `Done` is out), for accounting whether or
    /// not the client asked for it.
    pub fn usage(&self) -> Option<Usage> {
        self.mapping.usage()
    }

    /// Whether `Done` or an error has been emitted.
    pub fn is_finished(&self) -> bool {
        self.ended
    }

    /// Ends the stream after a complete answer (usage chunk when asked, `Done`) or an
    /// error.
    fn settle(&mut self, flow: Result<Flow, ProviderError>, out: &mut Vec<StreamOut>) {
        match flow {
            Ok(Flow::Open) => {}
            Ok(Flow::Complete) => {
                if self.writer.include_usage {
                    out.push(self.writer.usage(self.usage().unwrap_or_default()));
                }
                out.push(StreamOut::Done);
                self.ended = true;
            }
            Err(e) => {
                out.push(StreamOut::Error(e));
                self.ended = true;
            }
        }
    }
}

impl<M: EventMapping> StreamTranslate for StreamDriver<M> {
    fn feed(&mut self, bytes: &[u8]) -> Vec<StreamOut> {
        StreamDriver::feed(self, bytes)
    }

    fn finish(&mut self) -> Vec<StreamOut> {
        StreamDriver::finish(self)
    }

    fn usage(&self) -> Option<Usage> {
        StreamDriver::usage(self)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::providers::sse::DEFAULT_MAX_EVENT_BYTES;

    /// A toy provider: `{"text": ..}` is content, `{"end": reason}` completes the
    /// answer, `{"fail": status}` is an error event; `{"tokens": n}` reports usage.
    #[derive(Debug, Default)]
    struct Toy {
        tokens: Option<u64>,
    }

    impl EventMapping for Toy {
        type Framing = SseDecoder;
        const PROVIDER: &'static str = "toy";
        const END: &'static str = "end";

        fn frame(&mut self, event: &SseEvent, emit: &mut Emit<'_>) -> Result<Flow, ProviderError> {
            let v: Value = sse_json(Self::PROVIDER, event)?;
            emit.start();
            if let Some(t) = v["text"].as_str() {
                emit.content(t);
            }
            if let Some(n) = v["tokens"].as_u64() {
                self.tokens = Some(n);
            }
            if let Some(status) = v["fail"].as_u64() {
                return Err(ProviderError::new(status as u16, "api_error", "failed"));
            }
            match v["end"].as_str() {
                Some(reason) => {
                    emit.finish(reason);
                    Ok(Flow::Complete)
                }
                None => Ok(Flow::Open),
            }
        }

        fn usage(&self) -> Option<Usage> {
            self.tokens.map(|n| Usage {
                prompt_tokens: 1,
                completion_tokens: n,
                total_tokens: n + 1,
                ..Usage::default()
            })
        }
    }

    fn driver(include_usage: bool) -> StreamDriver<Toy> {
        let meta = StreamMeta {
            id: "c".into(),
            model: "m".into(),
            created: 0,
            include_usage,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        };
        StreamDriver::with_mapping(meta, Toy::default())
    }

    fn outputs(out: &[StreamOut]) -> Vec<Value> {
        out.iter()
            .map(|o| match o {
                StreamOut::Chunk(c) => serde_json::to_value(c).unwrap(),
                StreamOut::Error(e) => json!({"error": e.status, "code": e.error.code}),
                StreamOut::Done => json!("[DONE]"),
            })
            .collect()
    }

    fn run(pieces: &[&[u8]], include_usage: bool) -> Vec<Value> {
        let mut d = driver(include_usage);
        let mut out = Vec::new();
        for p in pieces {
            out.extend(d.feed(p));
        }
        out.extend(d.finish());
        outputs(&out)
    }

    const BODY: &str = "data: {\"text\":\"h\u{e9}llo \u{1f30d}\"}\n\n: comment\n\n\
        event: x\ndata: {\"text\":\"\u{6771}\u{4eac}\",\"tokens\":7}\n\n\
        data: {\"end\":\"stop\"}\n\ndata: {\"text\":\"after the end\"}\n\n";

    #[test]
    fn a_complete_answer_ends_with_usage_and_done() {
        let got = run(&[BODY.as_bytes()], true);
        assert_eq!(got.len(), 6, "{got:#?}");
        assert_eq!(
            got[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(
            got[1]["choices"][0]["delta"]["content"],
            "h\u{e9}llo \u{1f30d}"
        );
        assert_eq!(got[2]["choices"][0]["delta"]["content"], "\u{6771}\u{4eac}");
        assert_eq!(got[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(got[4]["usage"]["completion_tokens"], 7);
        assert_eq!(got[4]["choices"], json!([]));
        assert_eq!(got[5], json!("[DONE]"));
        // Without include_usage: no usage chunk, and no "usage" field.
        let got = run(&[BODY.as_bytes()], false);
        assert_eq!(got.len(), 5);
        assert!(got[..4].iter().all(|c| c.get("usage").is_none()));
    }

    #[test]
    fn errors_end_the_stream_and_later_input_is_ignored() {
        let mut d = driver(false);
        let out = outputs(&d.feed(b"data: {\"fail\":429}\n\ndata: {\"text\":\"x\"}\n\n"));
        assert_eq!(out[1], json!({"error": 429, "code": null}));
        assert_eq!(out.len(), 2);
        assert!(d.is_finished());
        assert!(d.feed(b"data: {\"end\":\"stop\"}\n\n").is_empty());
        assert!(d.finish().is_empty());

        let got = run(&[b"data: {nope\n\n"], false);
        assert_eq!(
            got,
            vec![json!({"error": 502, "code": "bad_upstream_response"})]
        );
    }

    #[test]
    fn an_open_answer_at_the_end_of_the_body_is_truncated() {
        let mut d = driver(true);
        assert_eq!(d.feed(b"data: {\"text\":\"a\",\"tokens\":2}\n\n").len(), 2);
        match &d.finish()[..] {
            [StreamOut::Error(e)] => {
                assert_eq!(e.status, 502);
                assert_eq!(e.error.code.as_deref(), Some("stream_truncated"));
                assert_eq!(e.error.message, "the toy stream ended before end");
            }
            other => panic!("{other:?}"),
        }
        // Usage stays readable for accounting.
        assert_eq!(d.usage().map(|u| u.completion_tokens), Some(2));
    }

    /// A framing that fails on a `!` byte, and holds a partial frame until a `;`.
    #[derive(Debug, Default)]
    struct Semis {
        buf: Vec<u8>,
    }

    impl Framing for Semis {
        type Frame = String;

        fn feed(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), String> {
            for &b in bytes {
                match b {
                    b'!' => return Err("bang".into()),
                    b';' => {
                        out.push(String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into())
                    }
                    _ => self.buf.push(b),
                }
            }
            Ok(())
        }

        fn has_partial(&self) -> bool {
            !self.buf.is_empty()
        }

        fn set_limit(&mut self, _: usize) {}
    }

    /// Each frame is content; `stop` finishes (the answer completes at the body's end).
    #[derive(Debug, Default)]
    struct Words {
        stopped: bool,
    }

    impl EventMapping for Words {
        type Framing = Semis;
        const PROVIDER: &'static str = "words";
        const END: &'static str = "stop";

        fn frame(&mut self, word: &String, emit: &mut Emit<'_>) -> Result<Flow, ProviderError> {
            if word == "stop" {
                self.stopped = true;
                emit.finish("stop");
            } else {
                emit.content(word);
            }
            Ok(Flow::Open)
        }

        fn end(&mut self, _: &mut Emit<'_>) -> Flow {
            Flow::complete_if(self.stopped)
        }

        fn usage(&self) -> Option<Usage> {
            None
        }
    }

    fn words() -> StreamDriver<Words> {
        let meta = StreamMeta {
            id: "c".into(),
            model: "m".into(),
            created: 0,
            include_usage: false,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        };
        StreamDriver::with_mapping(meta, Words::default())
    }

    #[test]
    fn framing_errors_come_after_the_frames_before_them() {
        let mut d = words();
        let out = d.feed(b"a;b;!c;");
        assert_eq!(out.len(), 3);
        match &out[2] {
            StreamOut::Error(e) => {
                assert_eq!(e.error.message, "words stream: bang");
                assert_eq!(e.error.code.as_deref(), Some("bad_upstream_response"));
            }
            other => panic!("{other:?}"),
        }
        assert!(d.finish().is_empty());
    }

    #[test]
    fn the_mapping_decides_the_end_unless_a_frame_is_partial() {
        let mut d = words();
        d.feed(b"a;stop;");
        assert!(matches!(&d.finish()[..], [StreamOut::Done]));

        let mut d = words();
        d.feed(b"a;stop;half");
        assert!(matches!(&d.finish()[..], [StreamOut::Error(e)] if e.status == 502));
    }

    /// `bytes` in consecutive pieces of the given sizes (0: an empty read), the rest in
    /// one last piece.
    fn pieces<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
        let mut rest = bytes;
        let mut out = Vec::new();
        for &size in sizes {
            let (piece, after) = rest.split_at(size.min(rest.len()));
            out.push(piece);
            rest = after;
        }
        out.push(rest);
        out
    }

    proptest! {
        /// The output does not depend on how the body is split into reads, nor on its
        /// line ends (LF, CRLF, lone CR): cuts may fall inside a CRLF or a multi-byte
        /// character, or make empty reads.
        #[test]
        fn same_output_however_the_bytes_are_split(
            line_end in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
            include_usage in any::<bool>(),
            sizes in proptest::collection::vec(0usize..9, 0..80),
        ) {
            let whole = run(&[BODY.as_bytes()], include_usage);
            let bytes = BODY.replace('\n', line_end).into_bytes();
            prop_assert_eq!(run(&pieces(&bytes, &sizes), include_usage), whole);
        }
    }
}
