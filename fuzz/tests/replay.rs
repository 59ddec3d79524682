//! Replays every stored input of every fuzz target (`fuzz/corpus/TARGET/*`: the seeds
//! and what the fuzzer kept, crashes it found included once fixed) through its harness.
//! A panic fails the test and names the file.

use std::path::Path;

#[test]
fn every_corpus_input_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut ran = 0;
    for name in liter_llm_fuzz::TARGETS {
        let Some(harness) = liter_llm_fuzz::target(name) else {
            panic!("target {name} has no harness");
        };
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.map(|e| e.path()).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} has no inputs", dir.display());
        for file in files {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let outcome = std::panic::catch_unwind(|| harness(&data));
            assert!(outcome.is_ok(), "{} panics on {}", name, file.display());
            ran += 1;
        }
    }
    assert!(ran >= liter_llm_fuzz::TARGETS.len());
}
