//! One AFL++ binary for every target: `fuzz TARGET` runs the harness of that name (see
//! `liter_llm_fuzz::TARGETS`). Built with `cargo afl build --features afl`; run by
//! `fuzz/run.sh`.

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = liter_llm_fuzz::target(&name) else {
        eprintln!(
            "unknown target {name:?}; targets: {:?}",
            liter_llm_fuzz::TARGETS
        );
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        target(data);
    });
}
