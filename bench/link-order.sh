#!/usr/bin/env bash
# Writes crates/liter-llm-cli/link-order.txt: the functions the gateway runs from start-up
# through its usual requests, which the release build has the linker lay out together
# (crates/liter-llm-cli/build.rs says why). Run it again when the memory bench's idle
# figures creep up: code that changed since the file was written is simply not ordered.
#
# 1. Builds the release binary as shipped (`cargo build --release -p liter-llm-cli`: the
#    package selection decides dependency features, and with them the symbol names the
#    file must match), with the linker's map of every function's address.
# 2. Runs it under callgrind, which records the address of every instruction executed,
#    four times: the memory bench's two idle gateways (start-up and one chat completion,
#    with the bench's plain config, then with its governed one: cost tracking, a key with
#    rpm, tpm and a budget); then start-up, whole and streamed chat completions,
#    embeddings, /v1/models, /metrics and the health routes, then 50 streams open at once,
#    with each config. Each run
#    is recorded in three parts (callgrind_control dumps): start-up, the requests, and
#    shutting down.
# 3. bench/link_order.py credits each executed address to its function by the map and
#    writes the functions in tiers: those the plain idle run's request executed first,
#    then those only the governed idle run's request executed, then the other runs'
#    requests; then the functions only start-up ran, then those only shutting down ran.
#    The most executed first within each. Start-up's code thus lies apart from the
#    requests', and once the gateway hands back its read-only pages after start-up
#    (liter-llm-cli's image.rs), only the requests' stretch is faulted back in.
#
# Afterwards `cargo build --release -p liter-llm-cli` links with the new order.
# Environment: CARGO_TARGET_DIR as for cargo; LINK_ORDER_KEEP=1 keeps the run directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source bench/lib.sh
command -v valgrind >/dev/null || { echo "link-order: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
OUT="$ROOT/crates/liter-llm-cli/link-order.txt"

RUN="$(mktemp -d "${TMPDIR:-/tmp}/liter-llm-link-order.XXXXXX")"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${LINK_ORDER_KEEP:-0}" = 1 ]; then echo "link-order: files kept in $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MAP="$BIN/liter-llm.map"
LITER_LLM_LINK_MAP="$MAP" cargo build --release --locked -p liter-llm-cli >"$RUN/build.log" 2>&1 ||
  { tail -n 30 "$RUN/build.log" >&2; exit 1; }
cargo build --release --locked -p mock-upstream >>"$RUN/build.log" 2>&1 ||
  { tail -n 30 "$RUN/build.log" >&2; exit 1; }
[ -s "$MAP" ] || { echo "link-order: the build wrote no linker map (is the linker LLD?)" >&2; exit 1; }

"$BIN/mock-upstream" --port 0 --no-record >"$RUN/mock.log" 2>&1 &
PIDS+=($!)
MOCK_PORT="$(wait_port mock $!)"
plain_config "$MOCK_PORT" "$RUN/plain.toml"
governed_config "$RUN/plain.toml" "$RUN/governed.toml" "$RUN/spend.db"

request() { # PORT PATH [BODY]: a request as the bench's key; its answer is not checked
  local args=(-s -o /dev/null -H "Authorization: Bearer sk-bench-master")
  [ $# -ge 3 ] && args+=(-H "Content-Type: application/json" -d "$3")
  curl "${args[@]}" "http://127.0.0.1:$1$2" || true
}

# The runs, in tier order: NAME:CONFIG:ROUNDS (0 rounds: start-up and one chat
# completion, as the memory bench's idle scenarios).
for run in idle:plain:0 governed-idle:governed:0 plain:plain:3 governed:governed:3; do
  IFS=: read -r name config rounds <<<"$run"
  mkdir -p "$RUN/$name"
  cp "$RUN/$config.toml" "$RUN/$name/config.toml"
  env -u RUST_LOG NO_COLOR=1 valgrind --tool=callgrind --dump-instr=yes --compress-pos=no \
    --callgrind-out-file="$RUN/$name.cg" "$BIN/liter-llm" api --config "$RUN/$name/config.toml" \
    >"$RUN/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  port="$(wait_port "$name" "$pid")"
  # Part 1 ($name.cg.1): start-up, up to the "listening" line.
  callgrind_control -d "$pid" >/dev/null
  [ "$rounds" != 0 ] ||
    request "$port" /v1/chat/completions '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}'
  for ((round = 0; round < rounds; round++)); do
    request "$port" /v1/chat/completions '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}'
    request "$port" /v1/chat/completions '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello"}]}'
    request "$port" /v1/embeddings '{"model":"gpt-4o-mini","input":"Say hello"}'
    request "$port" /v1/models
    request "$port" /metrics
    request "$port" /health/liveliness
    request "$port" /health/readiness
  done
  if [ "$rounds" != 0 ]; then
    # The memory bench's streams, fewer: held open together by the mock, then released
    # (what only many streams at once run: the upstream pool growing, more threads).
    curl -sf -o /dev/null -H "Content-Type: application/json" \
      -d '{"faults":[{"times":50,"kind":{"type":"hold_stream","after_chunks":1}}]}' \
      "http://127.0.0.1:$MOCK_PORT/__mock/faults"
    python3 bench/memory_clients.py streams 127.0.0.1 "$port" 50 \
      >"$RUN/$name.streams" 2>"$RUN/$name.streams.err" &
    clients=$!
    wait_line "$RUN/$name.streams" ready "$clients"
    curl -sf -o /dev/null -d '{"count":50}' "http://127.0.0.1:$MOCK_PORT/__mock/release"
    wait "$clients"
  fi
  # Part 2 ($name.cg.2): the requests; what is left ($name.cg) is shutting down.
  callgrind_control -d "$pid" >/dev/null
  kill -INT "$pid"
  wait "$pid" 2>/dev/null || true
done

# Tiers: every run's requests, then every run's start-up, then shutting down.
tiers=()
for part in .2 .1 ""; do
  for name in idle governed-idle plain governed; do tiers+=("$RUN/$name.cg$part"); done
done
python3 bench/link_order.py "$MAP" "$OUT" "${tiers[@]}"
echo "link-order: wrote $OUT; rebuild (cargo build --release -p liter-llm-cli) to link with it" >&2
