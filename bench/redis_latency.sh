#!/usr/bin/env bash
# Added latency and CPU of rate limits shared through Redis, at a fixed rate: the governed
# gateway (lib.sh: rpm, tpm and a budget on the bench key, SQLite spend store) against the
# same gateway with `redis_url` set (every admission one Redis script, every settlement
# another), taking turns in blocks, open loop at BENCH_RPS. Prints each one's p50, p99 and
# CPU per request, and the two goals of issue 17: added p50 under 300 µs at 1,000 req/s,
# and CPU per request within 1.5x of the governed gateway's. See bench/README.md.
#
#   bash bench/redis_latency.sh                      # builds the release binaries first
#   BENCH_SKIP_BUILD=1 bash bench/redis_latency.sh   # reuse target/release
#
# Environment (all optional): BENCH_DURATION (10), BENCH_WARMUP (2), BENCH_RPS (1000),
# BENCH_ROUND (1), BENCH_REDIS_URL (redis://127.0.0.1:6379), BENCH_SKIP_BUILD,
# BENCH_KEEP_RUN, CARGO_TARGET_DIR. Like run.sh: the gateways on core 0, the load
# generator and the mock on core 1; Redis's own CPU is not counted. Exits 1 when a goal
# is missed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source bench/lib.sh

DURATION="${BENCH_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-2}"
RATE="${BENCH_RPS:-1000}"
ROUND="${BENCH_ROUND:-1}"
REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"
RUN="$(mktemp -d "${TMPDIR:-/tmp}/liter-llm-redis-bench.XXXXXX")"
log() { echo "bench: $*" >&2; }

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${BENCH_KEEP_RUN:-0}" = 1 ]; then log "raw results and logs kept in $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PROXY_PIN=()
LOAD_PIN=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PROXY_PIN=(taskset -c 0)
  LOAD_PIN=(taskset -c 1)
fi

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building release binaries (fat LTO, this takes a while)"
  cargo build --release -p bench-loadgen -p mock-upstream -p liter-llm-cli >"$RUN/build.log" 2>&1 ||
    { cat "$RUN/build.log" >&2; exit 1; }
fi
for b in "$BIN/bench-loadgen" "$BIN/mock-upstream" "$BIN/liter-llm"; do
  [ -x "$b" ] || { echo "bench: missing binary $b" >&2; exit 1; }
done
redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 || { echo "bench: no Redis at $REDIS_URL" >&2; exit 1; }

STARTED_PID=""
start() { # NAME CMD...
  local name="$1"
  shift
  : >"$RUN/$name.log"
  "$@" >"$RUN/$name.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}
loadgen() { "${LOAD_PIN[@]}" "$BIN/bench-loadgen" "$@"; }

BODY="$RUN/body.json"
printf '%s' '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark"}]}' >"$BODY"
AUTH="Authorization: Bearer sk-bench-master"

start mock "${LOAD_PIN[@]}" "$BIN/mock-upstream" --port 0 --no-record
MOCK_PORT="$(wait_port mock "$STARTED_PID")"

declare -A URL WATCH
mkdir -p "$RUN/gateway" "$RUN/governed" "$RUN/redis"
plain_config "$MOCK_PORT" "$RUN/gateway/config.toml"
governed_config "$RUN/gateway/config.toml" "$RUN/governed/config.toml" "$RUN/governed/spend.db"
redis_config "$RUN/governed/config.toml" "$RUN/redis/config.toml" "$REDIS_URL"
sed -i "s#$RUN/governed/spend.db#$RUN/redis/spend.db#" "$RUN/redis/config.toml"
for name in governed redis; do
  start "$name" env -u RUST_LOG NO_COLOR=1 "${PROXY_PIN[@]}" "$BIN/liter-llm" api --config "$RUN/$name/config.toml"
  WATCH[$name]=$STARTED_PID
  URL[$name]="http://127.0.0.1:$(wait_port "$name" "$STARTED_PID")/v1/chat/completions"
  out="$(loadgen saturate --url "${URL[$name]}" -H "$AUTH" --body-file "$BODY" --connections 1 --duration-secs 0.3)"
  grep -q '"errors":0,' <<<"$out" || { echo "bench: requests through $name failed: $out" >&2; exit 1; }
done

log "governed and redis taking turns at $RATE req/s, ${DURATION} s each"
loadgen rate --rps "$RATE" --body-file "$BODY" -H "$AUTH" --round-secs "$ROUND" \
  --duration-secs "$DURATION" --warmup-secs "$WARMUP" --clk-tck "$CLK_TCK" \
  --url "${URL[governed]}" --watch-pid "${WATCH[governed]}" --out "$RUN/governed.json" \
  --url "${URL[redis]}" --watch-pid "${WATCH[redis]}" --out "$RUN/redis.json" >/dev/null

python3 - "$RUN" "$RATE" <<'PY'
import json, sys
run, rate = sys.argv[1], sys.argv[2]
g = json.load(open(f"{run}/governed.json"))
r = json.load(open(f"{run}/redis.json"))
print(f"| path | req/s | errors | p50 µs | p99 µs | CPU µs/req |")
print(f"|---|---|---|---|---|---|")
for name, x in (("governed (in-process limits)", g), ("redis (limits shared through Redis)", r)):
    print(f"| {name} | {x['rps']:.0f} | {x['errors']} | {x['p50_us']:.1f} | {x['p99_us']:.1f} | {x.get('cpu_us_per_req') or float('nan'):.1f} |")
added = r["p50_us"] - g["p50_us"]
ok_lat = added < 300
print(f"\nadded p50 at {rate} req/s: {added:+.1f} µs ({'PASS' if ok_lat else 'MISS'}, goal < 300 µs)")
ok_cpu = True
if g.get("cpu_us_per_req") and r.get("cpu_us_per_req"):
    ratio = r["cpu_us_per_req"] / g["cpu_us_per_req"]
    ok_cpu = ratio <= 1.5
    print(f"CPU per request, redis vs governed: {ratio:.2f}x ({'PASS' if ok_cpu else 'MISS'}, goal <= 1.5x; Redis's own CPU not counted)")
sys.exit(0 if ok_lat and ok_cpu else 1)
PY
