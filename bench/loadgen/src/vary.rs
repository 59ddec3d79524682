//! Fresh prompts: a request body in which every occurrence of a marker is replaced, request by
//! request, with a phrase that no other request carries, so that nothing the target remembers
//! about earlier texts (the gateway's memo of token counts) can answer for a new one.
//!
//! Phrase number `n` is `n` written in base 64 with six digits, each digit a word from [`WORDS`]:
//! 64^6 (about 6.9 × 10^10) phrases, each a different text. The numbers come from one counter per
//! load-generator process, shared by all its targets, that starts from the clock in microseconds
//! (or `--vary-start`). A process sends fewer than one request per microsecond, so a later run
//! starts past every number an earlier one used: no phrase repeats within 64^6 µs (19 hours).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::bail;
use bytes::Bytes;

/// Short common English words.
const WORDS: [&str; 64] = [
    "apple", "river", "stone", "cloud", "paper", "green", "light", "music", "table", "water",
    "house", "train", "bread", "chair", "night", "plant", "smile", "heart", "ocean", "field",
    "glass", "money", "story", "voice", "world", "dream", "earth", "fruit", "horse", "metal",
    "north", "south", "east", "west", "quick", "slow", "bright", "dark", "small", "large", "happy",
    "quiet", "sharp", "sweet", "warm", "cold", "early", "late", "city", "road", "book", "door",
    "fire", "snow", "rain", "wind", "bird", "fish", "tree", "star", "moon", "sun", "hill", "lake",
];

/// Words per phrase.
const LEN: u32 = 6;
/// How many different phrases there are.
pub const PHRASES: u64 = 64u64.pow(LEN);

/// Phrase number `n` (taken modulo [`PHRASES`]).
pub fn phrase(n: u64) -> String {
    let mut n = n % PHRASES;
    let mut words = Vec::with_capacity(LEN as usize);
    for _ in 0..LEN {
        words.push(WORDS[(n % 64) as usize]);
        n /= 64;
    }
    words.join(" ")
}

/// The counter every fresh body of a process draws from.
#[derive(Clone)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Starts at `start`, or at the clock in microseconds (see the module docs).
    pub fn new(start: Option<u64>) -> Self {
        let start = start.unwrap_or_else(|| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            u64::try_from(now.as_micros()).unwrap_or(u64::MAX)
        });
        Self(Arc::new(AtomicU64::new(start)))
    }

    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// A body cut at each occurrence of the marker.
pub struct Fresh {
    parts: Vec<Bytes>,
    counter: Counter,
}

impl Fresh {
    pub fn new(body: &[u8], marker: &str, counter: Counter) -> anyhow::Result<Self> {
        if marker.is_empty() {
            bail!("--vary needs a non-empty marker");
        }
        let marker = marker.as_bytes();
        let mut parts = Vec::new();
        let mut rest = body;
        while let Some(at) = rest.windows(marker.len()).position(|w| w == marker) {
            parts.push(Bytes::copy_from_slice(&rest[..at]));
            rest = &rest[at + marker.len()..];
        }
        if parts.is_empty() {
            bail!(
                "--vary: the marker {:?} is not in the body",
                String::from_utf8_lossy(marker)
            );
        }
        parts.push(Bytes::copy_from_slice(rest));
        Ok(Self { parts, counter })
    }

    /// The next body: the marker replaced by the next phrase.
    pub fn body(&self) -> Bytes {
        let words = phrase(self.counter.next());
        let mut out = Vec::with_capacity(
            self.parts.iter().map(Bytes::len).sum::<usize>() + words.len() * self.parts.len(),
        );
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(words.as_bytes());
            }
            out.extend_from_slice(part);
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn phrases_are_six_words_and_differ() {
        assert_eq!(phrase(0), "apple apple apple apple apple apple");
        assert_eq!(phrase(1), "river apple apple apple apple apple");
        assert_eq!(phrase(64), "apple river apple apple apple apple");
        assert_eq!(phrase(PHRASES), phrase(0));
        let seen: HashSet<String> = (0..100_000).map(|n| phrase(n * 7919)).collect();
        assert_eq!(seen.len(), 100_000);
        assert_eq!(
            WORDS.iter().collect::<HashSet<_>>().len(),
            64,
            "words repeat"
        );
    }

    #[test]
    fn every_body_is_new_and_every_marker_replaced() {
        let body = br#"{"a":"say %V","b":"%V!"}"#;
        let fresh = Fresh::new(body, "%V", Counter::new(Some(5))).unwrap();
        let one = fresh.body();
        let two = fresh.body();
        assert_ne!(one, two);
        let words = phrase(5);
        assert_eq!(
            std::str::from_utf8(&one).unwrap(),
            format!(r#"{{"a":"say {words}","b":"{words}!"}}"#)
        );
        serde_json::from_slice::<serde_json::Value>(&two).unwrap();
        let many: HashSet<Bytes> = (0..10_000).map(|_| fresh.body()).collect();
        assert_eq!(many.len(), 10_000);
    }

    #[test]
    fn targets_share_the_counter() {
        let counter = Counter::new(Some(0));
        let a = Fresh::new(b"x%V", "%V", counter.clone()).unwrap();
        let b = Fresh::new(b"x%V", "%V", counter).unwrap();
        assert_ne!(a.body(), b.body());
    }

    #[test]
    fn a_marker_missing_from_the_body_is_an_error() {
        let err = Fresh::new(b"{}", "%V", Counter::new(None)).err().unwrap();
        assert!(err.to_string().contains("not in the body"), "{err}");
        assert!(Fresh::new(b"{}", "", Counter::new(None)).is_err());
    }

    #[test]
    fn the_clock_start_is_past_earlier_runs() {
        let a = Counter::new(None).next();
        let b = Counter::new(None).next();
        assert!(a > 1_700_000_000_000_000 && b >= a);
    }
}
