//! Token counting with OpenAI's `o200k_base` byte-pair encoding, made for counting only:
//! the vocabulary is a flat table in the binary's read-only data (built at compile time,
//! see `bpe_layout.rs`), so loading the tokenizer builds nothing but the pre-split
//! pattern, and memory holds only the table pages that lookups touch. (tiktoken's own
//! encoder keeps the vocabulary in a hash map, plus a decoder and a sorted copy that
//! counting never reads: tens of megabytes.)
//!
//! The algorithm is tiktoken's: split the text with the encoding's pattern, then merge
//! each piece's bytes pairwise, lowest rank first, until no adjacent pair is a token.

use super::bpe_layout as layout;

/// The table (see `bpe_layout.rs`).
static TABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_table.bin"));
/// The encoding's pre-split pattern (tiktoken's `O200K_BASE_PAT_STR`).
pub const PATTERN: &str = include_str!(concat!(env!("OUT_DIR"), "/o200k_pattern.txt"));

/// Pieces up to this long are merged in a fixed array, rescanned after each merge (as
/// tiktoken does: fastest for short pieces); longer ones with a heap, so the work stays
/// O(n log n) whatever the client sends.
const SHORT: usize = 128;

/// No rank: the pair is not a token.
const NONE: u32 = u32::MAX;

pub struct Bpe {
    split: fancy_regex::Regex,
    ranks: usize,
}

fn word(i: usize) -> u32 {
    let b = &TABLE[i * 4..i * 4 + 4];
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl Bpe {
    pub fn new() -> Result<Self, fancy_regex::Error> {
        Ok(Bpe {
            split: fancy_regex::Regex::new(PATTERN)?,
            ranks: word(0) as usize,
        })
    }

    /// Where rank `r`'s bytes are in the table.
    fn token(&self, r: usize) -> &'static [u8] {
        let starts = 1 + layout::SLOTS;
        let bytes = (starts + self.ranks + 1) * 4;
        let (from, to) = (word(starts + r) as usize, word(starts + r + 1) as usize);
        &TABLE[bytes + from..bytes + to]
    }

    /// The rank of the token `bytes`, if it is one.
    fn rank(&self, bytes: &[u8]) -> u32 {
        let h = layout::hash(bytes);
        let fp = layout::fingerprint(h);
        let mut i = layout::slot(h);
        loop {
            let e = word(1 + i);
            if e == 0 {
                return NONE;
            }
            if e >> layout::RANK_BITS == fp {
                let r = (e & layout::RANK_MASK) - 1;
                if self.token(r as usize) == bytes {
                    return r;
                }
            }
            i = (i + 1) & (layout::SLOTS - 1);
        }
    }

    /// Tokens in `text`.
    pub fn count(&self, text: &str) -> u64 {
        let (mut n, mut end) = (0, 0);
        for m in self.split.find_iter(text) {
            match m {
                Ok(m) => {
                    n += self.count_piece(m.as_str().as_bytes());
                    end = m.end();
                }
                // The matcher gave up (its backtracking limit): the rest is estimated at
                // four bytes a token.
                Err(_) => return n + ((text.len() - end) as u64).div_ceil(4),
            }
        }
        n
    }

    fn count_piece(&self, piece: &[u8]) -> u64 {
        if piece.len() <= 1 || self.rank(piece) != NONE {
            return piece.len().min(1) as u64;
        }
        if piece.len() > SHORT {
            return self.merge_long(piece);
        }
        self.merge(piece)
    }

    /// tiktoken's merge loop: `parts[i]` is (where part i starts, the rank of part i
    /// joined with part i + 1); the lowest-ranked pair is joined until none is a token.
    /// The number of parts left is the number of tokens.
    fn merge(&self, piece: &[u8]) -> u64 {
        let n = piece.len();
        let mut parts = [(0usize, NONE); SHORT + 1];
        for (i, p) in parts.iter_mut().enumerate().take(n - 1) {
            *p = (i, self.rank(&piece[i..i + 2]));
        }
        parts[n - 1] = (n - 1, NONE);
        parts[n] = (n, NONE);
        let mut len = n + 1;
        loop {
            let (mut min, mut at) = (NONE, 0);
            for (i, p) in parts[..len - 1].iter().enumerate() {
                if p.1 < min {
                    (min, at) = (p.1, i);
                }
            }
            if min == NONE {
                return (len - 1) as u64;
            }
            // The rank of part i joined with the part after the one being removed.
            let joined = |parts: &[(usize, u32)], i: usize| {
                if i + 3 < len {
                    self.rank(&piece[parts[i].0..parts[i + 3].0])
                } else {
                    NONE
                }
            };
            if at > 0 {
                parts[at - 1].1 = joined(&parts, at - 1);
            }
            parts[at].1 = joined(&parts, at);
            parts.copy_within(at + 2..len, at + 1);
            len -= 1;
        }
    }

    /// The same merges for a long piece: a heap of candidate pairs, lowest rank first
    /// and leftmost among equals (the order the rescan above takes), over a linked list
    /// of parts. A pair whose parts changed since it was pushed is skipped when popped.
    fn merge_long(&self, piece: &[u8]) -> u64 {
        use std::cmp::Reverse;
        let n = piece.len();
        // Part i starts at byte i until merged away; `next[i]` is the next part's start.
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        // The rank each part's pair was last computed with (NONE: no pair).
        let mut rank: Vec<u32> = vec![NONE; n];
        let mut heap = std::collections::BinaryHeap::with_capacity(n);
        let pair = |next: &[usize], i: usize| {
            let j = next[i];
            if j >= n {
                return NONE;
            }
            self.rank(&piece[i..next[j].min(n)])
        };
        for i in 0..n - 1 {
            rank[i] = self.rank(&piece[i..i + 2]);
            if rank[i] != NONE {
                heap.push(Reverse((rank[i], i)));
            }
        }
        let mut parts = n as u64;
        while let Some(Reverse((r, i))) = heap.pop() {
            if rank[i] != r || next[i] >= n {
                continue;
            }
            // Join part i with the next one.
            let gone = next[i];
            next[i] = next[gone];
            if next[i] < n {
                prev[next[i]] = i;
            }
            rank[gone] = NONE;
            next[gone] = n;
            parts -= 1;
            rank[i] = pair(&next, i);
            if rank[i] != NONE {
                heap.push(Reverse((rank[i], i)));
            }
            let p = prev[i];
            if p < n {
                rank[p] = pair(&next, p);
                if rank[p] != NONE {
                    heap.push(Reverse((rank[p], p)));
                }
            }
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn reference() -> &'static tiktoken_rs::CoreBPE {
        static TK: std::sync::OnceLock<tiktoken_rs::CoreBPE> = std::sync::OnceLock::new();
        TK.get_or_init(|| tiktoken_rs::o200k_base().unwrap())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        #[test]
        fn any_text_counts_as_tiktoken_does(text in "(?s)[ a-zA-Z0-9'\n\t.,;:!?()\\{}\\[\\]\"äéøßЖж中文😀-]{0,300}") {
            let bpe = Bpe::new().unwrap();
            proptest::prop_assert_eq!(bpe.count(&text), reference().encode_ordinary(&text).len() as u64);
        }
    }

    #[test]
    fn the_pattern_is_tiktokens() {
        assert_eq!(PATTERN, tiktoken_rs::O200K_BASE_PAT_STR);
    }

    #[test]
    fn counts_as_tiktoken_does() {
        let bpe = Bpe::new().unwrap();
        let tk = reference();
        let texts = [
            "",
            "hello world",
            "Hello, World! How's it going? I'd've thought THAT'S fine.",
            "  leading and trailing spaces   \n\n\tand tabs\r\n",
            "numbers 1234567 3.14159 1,000,000 and 0x1F",
            "Ünïcödé: naïve café, Größe, ſ, ǅ, Σίσυφος, Привет мир, 你好，世界。こんにちは 안녕하세요",
            "emoji 👩‍👩‍👧‍👦 🎉🎉 and symbols ∑∫√ ← → ★",
            "code: fn main() { println!(\"{}\", x.iter().map(|y| y * 2).sum::<u64>()); }",
            "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}",
            "supercalifragilisticexpialidocious antidisestablishmentarianism",
            "https://example.com/path/to/resource?query=1&x=y#frag",
            "ﷺ ﷽ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕿𝖊𝖘𝖙",
        ];
        for t in texts {
            let want = tk.encode_ordinary(t).len() as u64;
            assert_eq!(bpe.count(t), want, "{t:?}");
        }
        // A long prose text, every word and separator of it.
        let prose = "The quick brown fox jumps over the lazy dog. ".repeat(50)
            + &"Lorem ipsum dolor sit amet, consectetur adipiscing elit; sed do eiusmod tempor. "
                .repeat(30);
        assert_eq!(bpe.count(&prose), tk.encode_ordinary(&prose).len() as u64);
    }

    #[test]
    fn every_token_is_one_token() {
        let bpe = Bpe::new().unwrap();
        for r in (0..bpe.ranks).step_by(97) {
            let t = bpe.token(r);
            assert_eq!(bpe.rank(t), r as u32, "rank {r}");
        }
        assert_eq!(bpe.rank(b"\xff\xfe\xfd definitely not a token"), NONE);
    }

    #[test]
    fn long_pieces_count_as_tiktoken_does() {
        let bpe = Bpe::new().unwrap();
        let tk = reference();
        for text in [
            "a".repeat(5000),
            "!?".repeat(3000),
            " ".repeat(4000),
            "9".repeat(999),
            "x".repeat(129),
            "ab".repeat(65),
            format!(
                "{} tail",
                "Pneumonoultramicroscopicsilicovolcanoconiosis".repeat(20)
            ),
            "=-".repeat(200) + "\n" + &"_*".repeat(150),
            "ÄÖÜßéèêàçñ".repeat(40),
        ] {
            let want = tk.encode_ordinary(&text).len() as u64;
            assert_eq!(bpe.count(&text), want, "{}...", &text[..20]);
        }
    }
}
