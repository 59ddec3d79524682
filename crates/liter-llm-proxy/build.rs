//! Writes OpenAI's `o200k_base` vocabulary (taken from the tiktoken-rs crate) as the flat
//! token table described in `src/governance/bpe_layout.rs`, and the tokenizer's
//! pre-split pattern, into OUT_DIR for `include_bytes!`/`include_str!`.

#[path = "src/governance/bpe_layout.rs"]
#[allow(dead_code)]
mod layout;

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/governance/bpe_layout.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo sets OUT_DIR")?);

    let bpe = tiktoken_rs::o200k_base()?;
    // Ordinary tokens are ranks 0..n with no gaps (special tokens come after and are
    // not counted: clients' text is encoded as ordinary text).
    let mut tokens: Vec<Vec<u8>> = Vec::new();
    while let Ok(bytes) = bpe.decode_bytes(&[tokens.len() as u32]) {
        if bytes.is_empty() {
            break;
        }
        tokens.push(bytes);
    }
    let n = tokens.len();
    assert!(
        n > 100_000 && n < (1 << layout::RANK_BITS) as usize - 1,
        "{n} tokens"
    );

    let mut table = vec![0u32; layout::SLOTS];
    for (rank, t) in tokens.iter().enumerate() {
        let h = layout::hash(t);
        let mut i = layout::slot(h);
        while table[i] != 0 {
            i = (i + 1) & (layout::SLOTS - 1);
        }
        table[i] = (layout::fingerprint(h) << layout::RANK_BITS) | (rank as u32 + 1);
    }

    let mut blob: Vec<u8> = Vec::new();
    let word = |blob: &mut Vec<u8>, w: u32| blob.extend_from_slice(&w.to_le_bytes());
    word(&mut blob, n as u32);
    for w in &table {
        word(&mut blob, *w);
    }
    let mut at = 0u32;
    for t in &tokens {
        word(&mut blob, at);
        at += t.len() as u32;
    }
    word(&mut blob, at);
    for t in &tokens {
        blob.extend_from_slice(t);
    }
    std::fs::write(out.join("o200k_table.bin"), blob)?;
    std::fs::write(
        out.join("o200k_pattern.txt"),
        tiktoken_rs::O200K_BASE_PAT_STR,
    )?;
    Ok(())
}
