#!/usr/bin/env bash
# Resident memory of the gateway (VmRSS from /proc/PID/status) in the scenarios of
# bench/README.md ("Memory"), each against a fresh gateway process, with the mock upstream:
#
#   idle         one model, after start-up and one request;
#   governed     cost tracking on, the bench key a virtual key with rpm, tpm and a budget
#                (so the tokenizer is loaded), after start-up and one request;
#   streams      N streaming requests held open: the mock sends each stream's first event and
#                then holds it (its hold_stream fault) until the script releases them;
#                per stream = (RSS with the streams open - RSS before them) / N;
#   conns        N idle keep-alive connections, each after one answered request;
#                per connection = (RSS with them open - RSS before them) / N;
#   after-peak   the streams gateway, once its N streams have ended: RSS every second for
#                MEM_SETTLE seconds, the last value against the RSS before the streams.
#
# Prints a markdown table and the release binary's size. The clients are
# bench/memory_clients.py (python3, no dependencies).
#
# Environment (all optional):
#   MEM_STREAMS     open streams                                  (default 1000)
#   MEM_CONNS       keep-alive connections                        (default 1000)
#   MEM_SETTLE      seconds sampled after the streams end         (default 10)
#   MEM_BIN         directory of liter-llm and mock-upstream      (default target/release)
#   MEM_KEEP=1      keep the run directory (configs, logs, the after-peak curve)
#   BENCH_SKIP_BUILD=1, CARGO_TARGET_DIR: as for run.sh (no build with MEM_BIN)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source bench/lib.sh
STREAMS="${MEM_STREAMS:-1000}"
CONNS="${MEM_CONNS:-1000}"
SETTLE="${MEM_SETTLE:-10}"
BIN="${MEM_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}"
CLIENTS="$ROOT/bench/memory_clients.py"
# Each stream takes a client socket, a gateway socket on each side and a mock socket.
want=$((2 * (STREAMS > CONNS ? STREAMS : CONNS) + 256))
[ "$(ulimit -n)" -ge "$want" ] || ulimit -n "$want" || {
  echo "memory: cannot raise the open file limit to $want" >&2
  exit 1
}

RUN="$(mktemp -d "${TMPDIR:-/tmp}/liter-llm-memory.XXXXXX")"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${MEM_KEEP:-0}" = 1 ]; then echo "memory: files kept in $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${MEM_BIN:-}" ] && [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  # Apart: built alone, the gateway is the shipped binary (the package selection decides
  # dependency features, and with them the symbol names its link order names).
  { cargo build --release --locked -p liter-llm-cli && cargo build --release --locked -p mock-upstream; } \
    >"$RUN/build.log" 2>&1 || { tail -n 30 "$RUN/build.log" >&2; exit 1; }
fi



rss_kb() { sed -nE 's/^VmRSS:[[:space:]]+([0-9]+) kB/\1/p' "/proc/$1/status"; }
# Of it: anonymous (heap, stacks), file-backed (the binary's pages read so far), and of the
# anonymous part transparent huge pages (the allocator's, when it asks for them).
thp() {
  local anon file huge
  anon="$(sed -nE 's/^RssAnon:[[:space:]]+([0-9]+) kB/\1/p' "/proc/$1/status")"
  file="$(sed -nE 's/^RssFile:[[:space:]]+([0-9]+) kB/\1/p' "/proc/$1/status")"
  huge="$(sed -nE 's/^AnonHugePages:[[:space:]]+([0-9]+) kB/\1/p' "/proc/$1/smaps_rollup" 2>/dev/null || true)"
  echo "$(mb "$anon") / $(mb "$file") / $(mb "${huge:-0}")"
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1000 }'; }

"$BIN/mock-upstream" --port 0 --no-record >"$RUN/mock.log" 2>&1 &
PIDS+=($!)
MOCK_PORT="$(wait_port mock $!)"
MOCK="http://127.0.0.1:$MOCK_PORT"

plain_config "$MOCK_PORT" "$RUN/gateway.toml"
governed_config "$RUN/gateway.toml" "$RUN/governed.toml" "$RUN/spend.db"

GW_PID=""
GW_PORT=""
start_gateway() { # NAME CONFIG: a fresh gateway, answered one request; sets GW_PID, GW_PORT
  # A directory of its own: a gateway with a master key keeps its store beside its config.
  mkdir -p "$RUN/$1"
  cp "$2" "$RUN/$1/config.toml"
  env -u RUST_LOG NO_COLOR=1 "$BIN/liter-llm" api --config "$RUN/$1/config.toml" >"$RUN/$1.log" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  GW_PORT="$(wait_port "$1" "$GW_PID")"
  curl -sf -o /dev/null -H "Authorization: Bearer sk-bench-master" -H "Content-Type: application/json" \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark"}]}' \
    "http://127.0.0.1:$GW_PORT/v1/chat/completions" || { echo "memory: $1: the first request failed" >&2; exit 1; }
}
stop_gateway() { kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; }

echo "| Scenario | VmRSS | Anon / file / huge pages (MB) | Baseline | Per connection |"
echo "|---|---:|---:|---:|---:|"

start_gateway idle "$RUN/gateway.toml"
IDLE="$(rss_kb "$GW_PID")"
T="$(thp "$GW_PID")"
stop_gateway
echo "| idle, one model | $(mb "$IDLE") MB | $T | – | – |"

start_gateway governed "$RUN/governed.toml"
GOVERNED="$(rss_kb "$GW_PID")"
T="$(thp "$GW_PID")"
stop_gateway
echo "| governed idle | $(mb "$GOVERNED") MB | $T | – | – |"

# N streams held open by the mock, then released: the peak, and the after-peak curve.
start_gateway streams "$RUN/gateway.toml"
BASE_S="$(rss_kb "$GW_PID")"
curl -sf -o /dev/null -H "Content-Type: application/json" \
  -d "{\"faults\":[{\"times\":$STREAMS,\"kind\":{\"type\":\"hold_stream\",\"after_chunks\":1}}]}" "$MOCK/__mock/faults"
python3 "$CLIENTS" streams 127.0.0.1 "$GW_PORT" "$STREAMS" >"$RUN/streams.out" 2>"$RUN/streams.out.err" &
CLIENT=$!
PIDS+=("$CLIENT")
wait_line "$RUN/streams.out" ready "$CLIENT"
PEAK="$(rss_kb "$GW_PID")"
T="$(thp "$GW_PID")"
PER_STREAM=$(((PEAK - BASE_S) * 1000 / STREAMS)) # bytes (kB = 1,000 bytes here)
echo "| $STREAMS open streams | $(mb "$PEAK") MB | $T | $(mb "$BASE_S") MB | $(awk -v b="$PER_STREAM" 'BEGIN { printf "%.1f KB", b / 1000 }') |"
curl -sf -o /dev/null -d "{\"count\":$STREAMS}" "$MOCK/__mock/release"
wait "$CLIENT" || { echo "memory: the streams failed:" >&2; cat "$RUN/streams.out.err" >&2; exit 1; }
CURVE=()
for ((s = 1; s <= SETTLE; s++)); do
  sleep 1 # the curve's sampling interval: what is measured is RSS over time
  CURVE+=("$(rss_kb "$GW_PID")")
done
AFTER="${CURVE[-1]}"
T="$(thp "$GW_PID")"
printf '%s\n' "${CURVE[@]}" >"$RUN/after-peak.kb"
stop_gateway
echo "| ${SETTLE} s after the streams ended | $(mb "$AFTER") MB | $T | $(mb "$BASE_S") MB | – |"

# N keep-alive connections, one request each, then idle.
start_gateway conns "$RUN/gateway.toml"
BASE_C="$(rss_kb "$GW_PID")"
python3 "$CLIENTS" conns 127.0.0.1 "$GW_PORT" "$CONNS" >"$RUN/conns.out" 2>"$RUN/conns.out.err" &
CLIENT=$!
PIDS+=("$CLIENT")
wait_line "$RUN/conns.out" ready "$CLIENT"
HELD="$(rss_kb "$GW_PID")"
T="$(thp "$GW_PID")"
PER_CONN=$(((HELD - BASE_C) * 1000 / CONNS))
kill "$CLIENT" 2>/dev/null || true
wait "$CLIENT" 2>/dev/null || true
stop_gateway
echo "| $CONNS idle keep-alive connections | $(mb "$HELD") MB | $T | $(mb "$BASE_C") MB | $(awk -v b="$PER_CONN" 'BEGIN { printf "%.1f KB", b / 1000 }') |"

SIZE="$(stat -c %s "$BIN/liter-llm")"
if file "$BIN/liter-llm" 2>/dev/null | grep -q 'not stripped'; then STRIPPED="not stripped"; else STRIPPED="stripped"; fi
echo
echo "After-peak curve (MB, one sample a second): $(for k in "${CURVE[@]}"; do printf '%s ' "$(mb "$k")"; done)"
echo "Release binary: $(mb $((SIZE / 1000))) MB ($SIZE bytes, $STRIPPED)"
echo
verdict() { [ "$1" = 1 ] && echo PASS || echo "**MISS**"; }
echo "| Goal | Target | Measured | |"
echo "|---|---:|---:|---|"
echo "| Idle, one model | ≤ 8 MB | $(mb "$IDLE") MB | $(verdict $((IDLE <= 8000))) |"
echo "| Governed idle | ≤ 20 MB | $(mb "$GOVERNED") MB | $(verdict $((GOVERNED <= 20000))) |"
echo "| Per open stream ($STREAMS) | ≤ 24 KB | $(awk -v b="$PER_STREAM" 'BEGIN { printf "%.1f", b / 1000 }') KB | $(verdict $((PER_STREAM <= 24000))) |"
echo "| Per idle keep-alive connection ($CONNS) | ≤ 12 KB | $(awk -v b="$PER_CONN" 'BEGIN { printf "%.1f", b / 1000 }') KB | $(verdict $((PER_CONN <= 12000))) |"
echo "| ${SETTLE} s after the $STREAMS-stream peak, vs before it | within 5 MB | +$(mb $((AFTER - BASE_S))) MB | $(verdict $((AFTER - BASE_S <= 5000))) |"
