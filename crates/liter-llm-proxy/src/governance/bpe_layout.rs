//! The layout of the token table that `build.rs` writes and [`super::bpe`] reads (this
//! file is part of both): OpenAI's `o200k_base` vocabulary as one flat, read-only blob,
//! so the gateway counts tokens straight from the binary's read-only data, with
//! nothing built at start-up and only the table's touched pages resident.
//!
//! All words are little-endian `u32`:
//!
//! | words | what |
//! |---|---|
//! | 1 | `n`, the number of ranks |
//! | [`SLOTS`] | the hash table: 0 for an empty slot, else `fingerprint << RANK_BITS \| (rank + 1)` |
//! | `n + 1` | where each rank's bytes start in the byte area (rank `r` is `start[r]..start[r + 1]`) |
//!
//! then the byte area: every token's bytes, in rank order. The table is probed
//! linearly from the slot given by the top bits of [`hash`]; the fingerprint (other
//! bits of the hash) rules out most non-matching slots without reading their bytes.

/// log2 of the number of slots: twice the 200,000 tokens rounded up, so probes are short.
pub const SLOTS_LOG2: u32 = 19;
pub const SLOTS: usize = 1 << SLOTS_LOG2;
/// Bits of a slot holding `rank + 1` (ranks are below 2^18).
pub const RANK_BITS: u32 = 18;
pub const RANK_MASK: u32 = (1 << RANK_BITS) - 1;

/// A fixed (unkeyed) hash: the table is built at compile time and never grows, so no
/// input can lengthen its probe sequences beyond those of the vocabulary itself.
pub fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    // Mix the high bits down: the slot comes from the top bits, the fingerprint from
    // the low ones.
    h ^ (h >> 29)
}

/// The first slot probed for `h`.
pub fn slot(h: u64) -> usize {
    (h >> (64 - SLOTS_LOG2)) as usize
}

/// The fingerprint stored with a token of hash `h` (never all the slot: `rank + 1` is
/// not 0, so a filled slot is never 0).
pub fn fingerprint(h: u64) -> u32 {
    (h as u32) >> RANK_BITS
}
