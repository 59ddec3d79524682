#!/usr/bin/env bash
# Instructions per request under callgrind: a noise-free companion to run.sh's CPU µs/req.
# See bench/README.md ("Instruction counts").
#
# Starts the mock upstream, then the floor and the gateway one after the other under
# `valgrind --tool=callgrind`, sends them the same non-streaming load (bench-loadgen, closed
# loop), and divides the instructions executed during the measured window by the requests
# completed in it. Counters are zeroed after a warm-up, so start-up is not counted.
#
# Environment (all optional):
#   CG_WARMUP       warm-up seconds before the counters are zeroed     (default 5)
#   CG_DURATION     measured seconds                                   (default 20)
#   CG_CONNECTIONS  keep-alive connections                             (default 8)
#   CG_PATHS        which proxies, in order: floor, gateway, governed, redis, bare, observed
#                   (default "floor gateway"); redis: the governed gateway with its rate
#                   limits shared through BENCH_REDIS_URL (default redis://127.0.0.1:6379;
#                   Redis's own CPU is not counted), with governed it also prints "redis vs
#                   governed", the multi-instance goal of issue 17; bare: the gateway with metrics off;
#                   observed: metrics on and tracing on, exporting every span to the mock's
#                   OTLP collector endpoint (/__mock/otlp); the two together also print
#                   "observed vs bare", the observability goal of bench/README.md;
#                   msg-pass, msg-translated: POST /v1/messages (Anthropic's Messages API)
#                   to a model on the mock's Anthropic API (passed through) and to the
#                   OpenAI model (translated both ways); with gateway they also print their
#                   ratio to the chat pass-through (the front-door goals of bench/README.md)
#   CG_STREAM=1     measure streaming requests instead
#   CG_FRESH=1      fresh prompts: six words no other request carries in every prompt
#                   (bench-loadgen --vary), so the governed gateway tokenizes every one
#   CG_KEEP=1       keep the run directory (callgrind files: callgrind_annotate FILE)
#   BENCH_SKIP_BUILD=1, CARGO_TARGET_DIR: as for run.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source bench/lib.sh
WARMUP="${CG_WARMUP:-5}"
DURATION="${CG_DURATION:-20}"
CONNS="${CG_CONNECTIONS:-8}"
read -r -a CG_PATHS <<<"${CG_PATHS:-floor gateway}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
command -v valgrind >/dev/null || { echo "callgrind: valgrind is not installed" >&2; exit 1; }

RUN="$(mktemp -d "${TMPDIR:-/tmp}/liter-llm-callgrind.XXXXXX")"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${CG_KEEP:-0}" = 1 ]; then echo "callgrind: files kept in $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  # Line tables let callgrind_annotate name inlined functions; they do not change the code.
  CARGO_PROFILE_RELEASE_DEBUG="${CARGO_PROFILE_RELEASE_DEBUG:-line-tables-only}" \
    CARGO_PROFILE_RELEASE_STRIP="${CARGO_PROFILE_RELEASE_STRIP:-none}" \
    cargo build --release --locked -p bench-floor -p bench-loadgen -p mock-upstream -p liter-llm-cli \
    >"$RUN/build.log" 2>&1 || { tail -n 30 "$RUN/build.log" >&2; exit 1; }
fi


PIN_LOAD=()
PIN_PROXY=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_LOAD=(taskset -c 1)
  PIN_PROXY=(taskset -c 0)
fi

"${PIN_LOAD[@]}" "$BIN/mock-upstream" --port 0 --no-record >"$RUN/mock.log" 2>&1 &
PIDS+=($!)
MOCK_PORT="$(wait_port mock $!)"

BODY="$RUN/body.json"
PROMPT="Say hello to the benchmark"
VARY=()
if [ "${CG_FRESH:-0}" = 1 ]; then
  PROMPT="Say hello to the benchmark: {{fresh}}"
  VARY=(--vary '{{fresh}}')
fi
if [ "${CG_STREAM:-0}" = 1 ]; then
  printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"%s"}],"stream":true}' "$PROMPT" >"$BODY"
else
  printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"%s"}]}' "$PROMPT" >"$BODY"
fi
plain_config "$MOCK_PORT" "$RUN/gateway.toml"
# The governed gateway of run.sh: the bench key has rpm, tpm and a budget, cost tracking is on,
# spend goes to an SQLite file in the run directory.
governed_config "$RUN/gateway.toml" "$RUN/governed.toml" "$RUN/spend.db"
redis_config "$RUN/governed.toml" "$RUN/redis.toml" "${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"

# Observability off, and on: metrics (on by default) plus tracing to the mock's collector.
sed -e 's/^max_retries = 0/max_retries = 0\nmetrics = "off"/' "$RUN/gateway.toml" >"$RUN/bare.toml"
sed -e 's/^max_retries = 0/max_retries = 0\nenable_tracing = true/' "$RUN/gateway.toml" >"$RUN/observed.toml"
export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$MOCK_PORT/__mock/otlp"
# The Messages front door: the plain gateway plus a model on the mock's Anthropic API.
cp "$RUN/gateway.toml" "$RUN/messages.toml"
printf '\n[[models]]\nname = "claude-bench"\nprovider_model = "anthropic/claude-sonnet-4-20250514"\napi_key = "sk-upstream"\nbase_url = "http://127.0.0.1:%s"\n' "$MOCK_PORT" >>"$RUN/messages.toml"
for m in claude-bench gpt-4o-mini; do
  printf '{"model":"%s","max_tokens":64,"messages":[{"role":"user","content":"%s"}]}' "$m" "$PROMPT" >"$RUN/messages-$m.json"
done

load() { # URL SECONDS BODY [OUT]
  local out=()
  [ -n "${4:-}" ] && out=(--out "$4")
  "${PIN_LOAD[@]}" "$BIN/bench-loadgen" saturate --url "$1" -H "Authorization: Bearer sk-bench-master" \
    --body-file "$3" "${VARY[@]}" --connections "$CONNS" --duration-secs "$2" "${out[@]}" >/dev/null
}

echo "| Path | Requests | Instructions | Instructions/request | vs floor |"
echo "|---|---:|---:|---:|---:|"
FLOOR_IPR=""
declare -A IPR
for p in "${CG_PATHS[@]}"; do
  route=/v1/chat/completions
  body="$BODY"
  case "$p" in
    floor) cmd=("$BIN/bench-floor" --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$MOCK_PORT") ;;
    gateway) cmd=("$BIN/liter-llm" api --config "$RUN/gateway.toml") ;;
    governed) cmd=("$BIN/liter-llm" api --config "$RUN/governed.toml") ;;
    redis) cmd=("$BIN/liter-llm" api --config "$RUN/redis.toml") ;;
    bare) cmd=("$BIN/liter-llm" api --config "$RUN/bare.toml") ;;
    observed) cmd=("$BIN/liter-llm" api --config "$RUN/observed.toml") ;;
    msg-pass|msg-translated)
      cmd=("$BIN/liter-llm" api --config "$RUN/messages.toml")
      route=/v1/messages
      body="$RUN/messages-claude-bench.json"
      [ "$p" = msg-translated ] && body="$RUN/messages-gpt-4o-mini.json"
      ;;
    *) echo "callgrind: unknown path $p" >&2; exit 1 ;;
  esac
  # The gateway at its default log level (what users get), as in run.sh; env before valgrind,
  # which does not follow an exec.
  env -u RUST_LOG NO_COLOR=1 "${PIN_PROXY[@]}" valgrind --tool=callgrind --callgrind-out-file="$RUN/$p.cg.%p" "${cmd[@]}" >"$RUN/$p.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  port="$(wait_port "$p" "$pid")"
  url="http://127.0.0.1:$port$route"
  load "$url" "$WARMUP" "$body"
  callgrind_control -z "$pid" >/dev/null 2>&1
  load "$url" "$DURATION" "$body" "$RUN/$p.json"
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  requests="$(sed -nE 's/.*"requests":([0-9]+).*/\1/p' "$RUN/$p.json")"
  errors="$(sed -nE 's/.*"errors":([0-9]+).*/\1/p' "$RUN/$p.json")"
  [ "$errors" = 0 ] || echo "callgrind: $p had $errors errors" >&2
  # The dump taken right after the measured window (the ".1" file, not the final one at exit).
  file="$(ls "$RUN/$p".cg.*.1 2>/dev/null | head -n1)"
  ir="$(sed -nE 's/^(summary|totals): ([0-9]+).*/\2/p' "$file" | head -n1)"
  ipr=$((ir / requests))
  [ "$p" = floor ] && FLOOR_IPR=$ipr
  IPR[$p]=$ipr
  ratio="–"
  [ -n "$FLOOR_IPR" ] && ratio="$(awk -v a="$ipr" -v b="$FLOOR_IPR" 'BEGIN { printf "%.2f×", a / b }')"
  echo "| $p | $requests | $ir | $ipr | $ratio |"
done
if [ -n "${IPR[bare]:-}" ] && [ -n "${IPR[observed]:-}" ]; then
  exports="$(curl -s "http://127.0.0.1:$MOCK_PORT/__mock/otlp" || true)"
  echo
  awk -v a="${IPR[observed]}" -v b="${IPR[bare]}" \
    'BEGIN { r = a / b; printf "observed vs bare (metrics and tracing on vs both off): %.2f× (%s)\n", r, r <= 1.15 ? "PASS, goal ≤ 1.15×" : "MISS, goal ≤ 1.15×" }'
  echo "OTLP exports the mock's collector took: $exports"
fi
if [ -n "${IPR[governed]:-}" ] && [ -n "${IPR[redis]:-}" ]; then
  awk -v a="${IPR[redis]}" -v b="${IPR[governed]}" \
    'BEGIN { r = a / b; printf "redis vs governed (limits shared through Redis vs in-process): %.2f× (%s)\n", r, r <= 1.5 ? "PASS, goal ≤ 1.5×" : "MISS, goal ≤ 1.5×" }'
fi
for p in msg-pass msg-translated; do
  [ -n "${IPR[gateway]:-}" ] && [ -n "${IPR[$p]:-}" ] || continue
  goal=1.10
  [ "$p" = msg-translated ] && goal=1.50
  awk -v a="${IPR[$p]}" -v b="${IPR[gateway]}" -v g="$goal" -v p="$p" \
    'BEGIN { r = a / b; printf "%s vs the chat pass-through: %.2f× (%s, goal ≤ %.2f×)\n", p, r, r <= g ? "PASS" : "MISS", g }'
done
