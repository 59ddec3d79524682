//! Substring searches made on every answer or stream chunk, with their searchers built
//! once. Setting up a `memmem` searcher (choosing its prefilter's rare bytes, its
//! two-way tables) costs about as much as searching a short chunk, and the one-shot
//! `memmem::find` sets one up per call.
//!
//! JSON needles rank bytes by how common they are in JSON ([`JsonRank`]). A leaf: it
//! imports nothing from the crate.

use std::sync::LazyLock;

use memchr::arch::all::packedpair::HeuristicFrequencyRank;
use memchr::memmem::{Finder, FinderBuilder, FinderRev};

/// The end of a server-sent event: a blank line, in LF or CRLF line endings.
pub static EVENT_END: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\n"));
pub static EVENT_END_CRLF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\r\n\r\n"));
/// The same, searched from the end.
pub static EVENT_END_REV: LazyLock<FinderRev<'static>> = LazyLock::new(|| FinderRev::new(b"\n\n"));
pub static EVENT_END_CRLF_REV: LazyLock<FinderRev<'static>> =
    LazyLock::new(|| FinderRev::new(b"\r\n\r\n"));

/// The key of a choice's finish reason, in an answer or a stream chunk.
pub static FINISH_REASON: LazyLock<Finder<'static>> = LazyLock::new(|| json(b"\"finish_reason\":"));

/// A forward searcher for `needle` in JSON text.
pub fn json(needle: &'static [u8]) -> Finder<'static> {
    FinderBuilder::new().build_forward_with_ranker(JsonRank, needle)
}

/// How common bytes are in JSON, for a substring search's prefilter (which looks for
/// the needle's two rarest bytes first): the default ranking, made from prose and code,
/// thinks quotes fairly rare, and an answer is full of them; underscores are rare.
struct JsonRank;

impl HeuristicFrequencyRank for JsonRank {
    fn rank(&self, byte: u8) -> u8 {
        match byte {
            b'"' | b':' | b',' | b'{' | b'}' | b'[' | b']' | b' ' => 255,
            b'_' => 50,
            _ => 200,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_searches_find_what_memmem_finds() {
        let text = br#"{"a":"x\"usage\":","usage":{"n":1},"finish_reason":"stop"}"#;
        for needle in [
            &b"\"usage\":"[..],
            b"\"finish_reason\":",
            b"[DONE]",
            b"\"n\"",
        ] {
            let ours: Vec<usize> = json(needle).find_iter(text).collect();
            let theirs: Vec<usize> = memchr::memmem::find_iter(text, needle).collect();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(needle));
        }
        assert_eq!(EVENT_END.find(b"data: 1\n\ndata: 2\n\n"), Some(7));
        assert_eq!(EVENT_END_REV.rfind(b"data: 1\n\ndata: 2\n\n"), Some(16));
        assert_eq!(EVENT_END_CRLF.find(b"data: 1\r\n\r\n"), Some(7));
        assert_eq!(EVENT_END_CRLF_REV.rfind(b"a\r\n\r\nb\r\n\r\n"), Some(6));
    }
}
