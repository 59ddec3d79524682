#!/usr/bin/env bash
# Coverage-guided fuzzing of every target in fuzz/src/lib.rs with AFL++ (cargo-afl, which
# works with the stable toolchain). Not part of CI: CI replays the stored corpora
# (fuzz/tests/replay.rs).
#
#   bash fuzz/run.sh                  # every target, 60 s each
#   FUZZ_SECONDS=600 bash fuzz/run.sh config head
#   FUZZ_KEEP=1 bash fuzz/run.sh      # copy what the fuzzer found new into fuzz/corpus/
#
# Prints, per target: CPU seconds fuzzed, executions, new corpus entries, crashes and
# hangs. Crashes and hangs stay in target/afl-out/TARGET/default/{crashes,hangs}: fix
# each, then add the input to fuzz/corpus/TARGET so the replay keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${FUZZ_SECONDS:-60}"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(config head usage sse eventstream streams answers errors)

command -v cargo-afl >/dev/null || cargo install cargo-afl
# Without fat LTO: the fuzz build is rebuilt often and LTO buys the fuzzer little.
CARGO_TARGET_DIR=target/afl CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  cargo afl build --release --features afl -p liter-llm-fuzz
BIN=target/afl/release/fuzz
OUT=target/afl-out

printf '| target | CPU s | executions | new inputs | crashes | hangs |\n|---|---:|---:|---:|---:|---:|\n'
for t in "${TARGETS[@]}"; do
  rm -rf "$OUT/$t"
  mkdir -p "$OUT/$t"
  AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_QUIET=1 \
    cargo afl fuzz -V "$SECS" -i "fuzz/corpus/$t" -o "$OUT/$t" -- "$BIN" "$t" >"$OUT/$t.log" 2>&1 || true
  stats="$OUT/$t/default/fuzzer_stats"
  if [ ! -f "$stats" ]; then
    printf '| %s | – | – | – | – | – |\n' "$t"
    echo "fuzz: $t did not start; see $OUT/$t.log" >&2
    continue
  fi
  get() { awk -F': *' -v k="$1" '$1 ~ "^"k" *$" {print $2}' "$stats"; }
  queue=$(find "$OUT/$t/default/queue" -maxdepth 1 -type f -name 'id:*' | wc -l)
  seeds=$(find "fuzz/corpus/$t" -maxdepth 1 -type f | wc -l)
  printf '| %s | %s | %s | %s | %s | %s |\n' "$t" "$(get run_time)" "$(get execs_done)" \
    "$((queue > seeds ? queue - seeds : 0))" "$(get saved_crashes)" "$(get saved_hangs)"
  if [ "${FUZZ_KEEP:-0}" = 1 ]; then
    for f in "$OUT/$t"/default/queue/id:*; do
      [[ "$f" == *orig:* ]] && continue
      cp "$f" "fuzz/corpus/$t/afl-$(sha256sum "$f" | cut -c1-16)"
    done
  fi
done
