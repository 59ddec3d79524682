#!/usr/bin/env bash
# Benchmark harness: the mock upstream direct, the floor (bench-floor, a bare forwarding proxy)
# and the gateway (liter-llm, pass-through path), measured in one run; then the gateway against
# itself with a pool of 10 deployments and with governance (SQLite and PostgreSQL, same and
# fresh prompts). See bench/README.md.
#
# Environment (all optional):
#   BENCH_DURATION     measured seconds per scenario          (default 10)
#   BENCH_WARMUP       warm-up seconds before each scenario   (default 2)
#   BENCH_RPS          fixed rate for latency and TTFB        (default 1000)
#   BENCH_CONNECTIONS  connections for the saturation runs    (default 32)
#   BENCH_ROUND        seconds per block; in every scenario the paths take turns (default 1)
#   BENCH_REPEAT       rounds of each non-streaming saturation comparison (gateway vs floor, pool,
#                      governance); the median ratio is reported (default 3)
#   BENCH_LABEL        suffix of the results file name        (default foundation)
#   BENCH_SKIP_BUILD=1 use the release binaries already built
#   BENCH_REQUIRE_GATEWAY=1  exit non-zero when the gateway cannot be measured
#   BENCH_GATEWAY_RUST_LOG  RUST_LOG for the gateway (default: unset, its default level)
#   BENCH_MOCK_BIN     use this mock binary instead of target/release/mock-upstream
#   BENCH_KEEP_RUN=1   keep the run directory (raw JSON, logs) and the PostgreSQL schema
#   BENCH_STRICT=1     exit non-zero when a goal is missed or could not be measured (says which)
#   BENCH_POSTGRES_URL database of the governed gateway on PostgreSQL; the run creates a schema
#                      of its own there and drops it on exit (default
#                      postgres://postgres@127.0.0.1:5432/test; none: skip that gateway)
#   CARGO_TARGET_DIR   where the release binaries are built and looked for
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source bench/lib.sh

DURATION="${BENCH_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-2}"
RATE="${BENCH_RPS:-1000}"
CONNS="${BENCH_CONNECTIONS:-32}"
ROUND="${BENCH_ROUND:-1}"
REPEAT="${BENCH_REPEAT:-3}"
LABEL="${BENCH_LABEL:-foundation}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
MOCK_BIN="${BENCH_MOCK_BIN:-$BIN/mock-upstream}"
CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"
PG_URL="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
# The schema the run created in PG_URL (dropped on exit).
PG_SCHEMA=""

RUN="$(mktemp -d "${TMPDIR:-/tmp}/liter-llm-bench.XXXXXX")"
NOTES="$RUN/notes.txt"
: >"$NOTES"
note() { echo "$*" >>"$NOTES"; echo "bench: $*" >&2; }
log() { echo "bench: $*" >&2; }

# --- processes we start, stopped on exit ------------------------------------------------------
PIDS=()
DONE=0
GATEWAY=1
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$PG_SCHEMA" ]; then
    if [ "${BENCH_KEEP_RUN:-0}" = 1 ]; then
      echo "bench: PostgreSQL schema $PG_SCHEMA kept" >&2
    elif ! psql "$PG_URL" -qXc "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1; then
      echo "bench: could not drop the PostgreSQL schema $PG_SCHEMA" >&2
    fi
  fi
  # Kept after a failure, or when the gateway was skipped (its logs tell why).
  if [ "$DONE" = 1 ] && [ "$GATEWAY" = 1 ] && [ "${BENCH_KEEP_RUN:-0}" != 1 ]; then
    rm -rf "$RUN"
  else
    echo "bench: raw results and logs kept in $RUN" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- pinning: proxy under test on core 0, load generator and mock on core 1 ------------------
PROXY_PIN=()
LOAD_PIN=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PROXY_PIN=(taskset -c 0)
  LOAD_PIN=(taskset -c 1)
else
  note "No pinning: taskset is missing or fewer than 2 cores are available; numbers are not comparable with pinned runs."
fi

# --- build ---------------------------------------------------------------------------------
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  pkgs=(-p bench-floor -p bench-loadgen)
  [ -n "${BENCH_MOCK_BIN:-}" ] || pkgs+=(-p mock-upstream)
  log "building release binaries (fat LTO, this takes a while)"
  if ! cargo build --release "${pkgs[@]}" -p liter-llm-cli >"$RUN/build.log" 2>&1; then
    log "full build failed; building the harness without the gateway (log: $RUN/build.log)"
    cargo build --release "${pkgs[@]}" >"$RUN/build-harness.log" 2>&1 || {
      cat "$RUN/build-harness.log" >&2
      exit 1
    }
    GATEWAY=0
    note "Gateway rows skipped: \`cargo build --release -p liter-llm-cli\` failed."
  fi
fi
for b in "$BIN/bench-floor" "$BIN/bench-loadgen" "$MOCK_BIN"; do
  [ -x "$b" ] || { echo "bench: missing binary $b" >&2; exit 1; }
done
if [ "$GATEWAY" = 1 ] && [ ! -x "$BIN/liter-llm" ]; then
  GATEWAY=0
  note "Gateway rows skipped: $BIN/liter-llm does not exist."
fi

# How busy the machine is without us (1 s sample of /proc/stat): other work skews every number.
cpu_sample() { awk '/^cpu /{t=0; for (i = 2; i <= 9; i++) t += $i; print t, $5 + $6}' /proc/stat; }
read -r T0 I0 < <(cpu_sample)
sleep 1
read -r T1 I1 < <(cpu_sample)
BACKGROUND="$(awk -v t="$((T1 - T0))" -v i="$((I1 - I0))" 'BEGIN { printf "%.0f", (t > 0 ? 100 * (t - i) / t : 0) }')"
if [ "$BACKGROUND" -gt 5 ]; then
  note "The machine was ${BACKGROUND}% busy with other work just before the run: numbers are less reliable."
fi

# start NAME CMD...: runs CMD in the background with output to $RUN/NAME.log and sets
# STARTED_PID. The pinning command execs, so the PID is the program's own.
STARTED_PID=""
declare -A NAMED_PID
start() {
  local name="$1"
  shift
  : >"$RUN/$name.log" # before wait_port looks at it
  "$@" >"$RUN/$name.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  NAMED_PID[$name]=$STARTED_PID
}

loadgen() { "${LOAD_PIN[@]}" "$BIN/bench-loadgen" "$@"; }

# --- request bodies --------------------------------------------------------------------------
BODY="$RUN/body.json"
BODY_STREAM="$RUN/body-stream.json"
BODY_FRESH="$RUN/body-fresh.json"
printf '%s' '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark"}]}' >"$BODY"
printf '%s' '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark"}],"stream":true}' >"$BODY_STREAM"
# Fresh prompts: the load generator puts six words that no other request carries in place of
# the marker (--vary), so no request's text has been counted before.
FRESH=(--vary '{{fresh}}')
printf '%s' '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark: {{fresh}}"}]}' >"$BODY_FRESH"
# One Authorization header everywhere: the gateway checks it, the floor forwards it as it is and
# the mock accepts any key.
AUTH="Authorization: Bearer sk-bench-master"

# smoke URL BODY: a short burst of requests; prints the first error and fails unless every
# request succeeded.
smoke() {
  local out
  out="$(loadgen saturate --url "$1" -H "$AUTH" --body-file "$2" \
    --connections 1 --duration-secs 0.3 --timeout-secs 5 || true)"
  if ! grep -q '"errors":0,' <<<"$out" || grep -q '"requests":0,' <<<"$out"; then
    sed -nE 's/.*"first_error":"([^"]*)".*/\1/p' <<<"$out"
    [ -n "$out" ] || echo "the load generator failed"
    return 1
  fi
}

# --- start the mock, the floor and the gateways ------------------------------------------------
start mock "${LOAD_PIN[@]}" "$MOCK_BIN" --port 0 --no-record
MOCK_PID=$STARTED_PID
MOCK_PORT="$(wait_port mock "$MOCK_PID")"
log "mock upstream on port $MOCK_PORT (pid $MOCK_PID)"

start floor "${PROXY_PIN[@]}" "$BIN/bench-floor" --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$MOCK_PORT"
FLOOR_PID=$STARTED_PID
FLOOR_PORT="$(wait_port floor "$FLOOR_PID")"
log "floor on port $FLOOR_PORT (pid $FLOOR_PID)"

# Each gateway has a directory of its own: a gateway with a master key and no database_url
# opens liter-llm.db beside its config (the admin API's store), and an SQLite file belongs to
# one gateway.
GATEWAY_PID=""
if [ "$GATEWAY" = 1 ]; then
  mkdir -p "$RUN/gateway"
  plain_config "$MOCK_PORT" "$RUN/gateway/config.toml"
  # Default log level (what users get) unless BENCH_GATEWAY_RUST_LOG says otherwise; colours off.
  if [ -n "${BENCH_GATEWAY_RUST_LOG:-}" ]; then
    GATEWAY_ENV=(env NO_COLOR=1 "RUST_LOG=$BENCH_GATEWAY_RUST_LOG")
  else
    GATEWAY_ENV=(env -u RUST_LOG NO_COLOR=1)
  fi
  start gateway "${GATEWAY_ENV[@]}" "${PROXY_PIN[@]}" "$BIN/liter-llm" api --config "$RUN/gateway/config.toml"
  GATEWAY_PID=$STARTED_PID
  if GATEWAY_PORT="$(wait_port gateway "$GATEWAY_PID")"; then
    log "gateway on port $GATEWAY_PORT (pid $GATEWAY_PID)"
  else
    GATEWAY=0
    note "Gateway rows skipped: \`liter-llm api\` did not start (no \"listening on http://\" line)."
  fi
fi

declare -A URL WATCH
URL[direct]="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"
URL[floor]="http://127.0.0.1:$FLOOR_PORT/v1/chat/completions"
WATCH[direct]=0
WATCH[floor]="$FLOOR_PID"
PATHS=(direct floor)
if [ "$GATEWAY" = 1 ]; then
  URL[gateway]="http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions"
  WATCH[gateway]="$GATEWAY_PID"
  PATHS+=(gateway)
fi

# Smoke check: a streaming and a non-streaming request through every path must succeed.
for p in "${PATHS[@]}"; do
  for body in "$BODY" "$BODY_STREAM"; do
    if ! why="$(smoke "${URL[$p]}" "$body")"; then
      if [ "$p" = gateway ]; then
        GATEWAY=0
        PATHS=(direct floor)
        note "Gateway rows skipped: requests through the gateway failed: $why (log: $RUN/gateway.log)."
        break 2
      fi
      echo "bench: smoke request through $p failed: $why" >&2
      exit 1
    fi
  done
done

# extra_gateway NAME: starts the gateway configured in $RUN/NAME/config.toml and, when it
# listens and a request through it succeeds, sets URL[NAME] and WATCH[NAME] for run_paths.
# Otherwise notes why its rows are missing (their goals then read n/a).
extra_gateway() {
  local name="$1" port why
  start "$name" "${GATEWAY_ENV[@]}" "${PROXY_PIN[@]}" "$BIN/liter-llm" api --config "$RUN/$name/config.toml"
  if ! port="$(wait_port "$name" "$STARTED_PID")"; then
    note "Rows of $name skipped: it did not start (log: $RUN/$name.log)."
    return 0
  fi
  if ! why="$(smoke "http://127.0.0.1:$port/v1/chat/completions" "$BODY")"; then
    note "Rows of $name skipped: requests through it failed: $why (log: $RUN/$name.log)."
    return 0
  fi
  URL[$name]="http://127.0.0.1:$port/v1/chat/completions"
  WATCH[$name]="$STARTED_PID"
  log "$name on port $port (pid $STARTED_PID)"
}

governed_of() { # NAME DATABASE_URL: the governed gateway (lib.sh) in a directory of its own
  mkdir -p "$RUN/$1"
  governed_config "$RUN/gateway/config.toml" "$RUN/$1/config.toml" "$2"
}

# postgres_schema: creates a schema of its own for this run in BENCH_POSTGRES_URL (dropped on
# exit) and prints the database_url whose search_path is that schema.
postgres_schema() {
  local schema sep='?'
  if [ "$PG_URL" = none ]; then
    note "Rows of governed-pg skipped: BENCH_POSTGRES_URL=none."
    return 1
  fi
  if ! command -v psql >/dev/null; then
    note "Rows of governed-pg skipped: psql (which creates the run's schema) is not installed."
    return 1
  fi
  schema="bench_$(date +%s)_$$"
  if ! psql "$PG_URL" -qXc "CREATE SCHEMA $schema" >"$RUN/psql.log" 2>&1; then
    note "Rows of governed-pg skipped: CREATE SCHEMA in BENCH_POSTGRES_URL failed: $(tr '\n\t' '  ' <"$RUN/psql.log")"
    return 1
  fi
  PG_SCHEMA=$schema
  [[ "$PG_URL" == *\?* ]] && sep='&'
  echo "$PG_URL${sep}options=-c%20search_path%3D$schema"
}

if [ "$GATEWAY" = 1 ]; then
  # The routing check: a pool of 10 deployments (default strategy) under the one model name, so
  # the router has real choices to make on every request.
  mkdir -p "$RUN/pool10"
  sed -n '1,/^\[\[models\]\]/p' "$RUN/gateway/config.toml" | sed '$d' >"$RUN/pool10/config.toml"
  for i in $(seq 1 10); do
    printf '[[models]]\nname = "gpt-4o-mini"\nprovider_model = "openai/gpt-4o-mini"\napi_key = "sk-upstream-%s"\nbase_url = "http://127.0.0.1:%s/v1"\n\n' \
      "$i" "$MOCK_PORT" >>"$RUN/pool10/config.toml"
  done
  extra_gateway pool10
  # The governance checks: spend in SQLite (a file in the gateway's directory) and in
  # PostgreSQL (a schema of its own, created for this run).
  governed_of governed "$RUN/governed/spend.db"
  extra_gateway governed
  # Not in a command substitution: postgres_schema sets PG_SCHEMA for the cleanup.
  if postgres_schema >"$RUN/pg-url.txt"; then
    governed_of governed-pg "$(cat "$RUN/pg-url.txt")"
    extra_gateway governed-pg
  fi
  # The response cache: the plain gateway with a memory cache, so every request after the
  # first is answered from it.
  mkdir -p "$RUN/cached"
  cp "$RUN/gateway/config.toml" "$RUN/cached/config.toml"
  printf '\n[cache]\nmax_entries = 4096\nttl_seconds = 3600\n' >>"$RUN/cached/config.toml"
  extra_gateway cached
fi

# --- idle RSS, before any traffic -------------------------------------------------------------
sleep 1
loadgen rss --pid "$FLOOR_PID" >"$RUN/floor-idle.json"
[ "$GATEWAY" = 1 ] && loadgen rss --pid "$GATEWAY_PID" >"$RUN/gateway-idle.json"

COMMON=(-H "$AUTH" --duration-secs "$DURATION" --warmup-secs "$WARMUP" --clk-tck "$CLK_TCK")
# The proxies are pinned to core 0: also measure how much else ran there.
[ "${#PROXY_PIN[@]}" -gt 0 ] && COMMON+=(--watch-core 0)

# run_paths NAME MODE BODY ARGS...: one load-generator run over all paths, JSON to
# $RUN/PATH-NAME.json. After one warm-up block per path, the paths take turns in blocks of
# BENCH_ROUND seconds, so that noise on the machine falls on all of them alike.
run_paths() {
  local name="$1" mode="$2" body="$3" p args=()
  shift 3
  for p in "${PATHS[@]}"; do
    args+=(--url "${URL[$p]}" --watch-pid "${WATCH[$p]}" --out "$RUN/$p-$name.json")
  done
  log "$name: ${PATHS[*]} taking turns"
  if ! loadgen "$mode" "${args[@]}" --body-file "$body" --round-secs "$ROUND" "${COMMON[@]}" "$@" >/dev/null; then
    report_dead
    exit 1
  fi
}

# report_dead: after a failed run, say which of our processes are gone and show their logs.
report_dead() {
  local name pid
  for name in mock floor gateway pool10 governed governed-pg cached; do
    pid="${NAMED_PID[$name]:-}"
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "bench: $name (pid $pid) is not running any more; the end of $RUN/$name.log:" >&2
      tail -n 5 "$RUN/$name.log" >&2
    fi
  done
}

# compare PREFIX PATH BODY [LOADGEN ARGS...]: the plain gateway against gateway PATH (when it
# started), taking turns: BENCH_REPEAT saturation rounds (compare.py reports the median ratio)
# and one fixed-rate run. One compared gateway per run: a gateway that falls behind the fixed
# rate works off its queue during the next blocks, on core 0, and would disturb a third path.
compare() {
  local prefix="$1" path="$2" body="$3" r
  shift 3
  [ -n "${URL[$path]:-}" ] || return 0
  PATHS=(gateway "$path")
  for ((r = 1; r <= REPEAT; r++)); do
    run_paths "$prefix-sat.r$r" saturate "$body" --connections "$CONNS" "$@"
  done
  run_paths "$prefix-rate" rate "$body" --rps "$RATE" "$@"
}

# The headline number (non-streaming CPU per request vs the floor) is measured in BENCH_REPEAT
# rounds; the round with the median gateway/floor ratio is the one the tables show, and every
# round is listed under "Rounds" (sat_rounds.py).
for ((r = 1; r <= REPEAT; r++)); do
  run_paths "sat.r$r" saturate "$BODY" --connections "$CONNS"
done
python3 "$ROOT/bench/sat_rounds.py" "$RUN" "$REPEAT" "${PATHS[@]}" >"$RUN/rounds.md"
run_paths rate rate "$BODY" --rps "$RATE"
run_paths sat-stream saturate "$BODY_STREAM" --connections "$CONNS"
run_paths ttfb ttfb "$BODY_STREAM" --rps "$RATE"

if [ "$GATEWAY" = 1 ]; then
  # Routing cost: a pool of 10 deployments against the single deployment.
  compare pool pool10 "$BODY"
  # Governance cost, with the same prompt on every request (its count comes from the
  # tokenizer's memo) and with fresh prompts (every prompt tokenized; on both paths alike).
  # SQLite first: PostgreSQL's own background work after its runs stays out of them.
  compare gov governed "$BODY"
  compare govf governed "$BODY_FRESH" "${FRESH[@]}"
  compare gov-pg governed-pg "$BODY"
  compare govf-pg governed-pg "$BODY_FRESH" "${FRESH[@]}"
  # The cache: a hit from memory against the pass-through it saves.
  compare cache cached "$BODY"
fi

# --- report ------------------------------------------------------------------------------------
GATEWAY_LOG="default log level"
[ -n "${BENCH_GATEWAY_RUST_LOG:-}" ] && GATEWAY_LOG="RUST_LOG=$BENCH_GATEWAY_RUST_LOG"
DATE="$(date -u +%Y-%m-%d)"
COMMIT="$(git rev-parse --short=12 HEAD 2>/dev/null || echo "none (no commit yet)")"
if [ -n "$(git status --porcelain 2>/dev/null || true)" ]; then
  COMMIT="$COMMIT, with uncommitted changes"
fi
CPU_MODEL="$(sed -nE 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)"
[ -n "$CPU_MODEL" ] || CPU_MODEL="$(uname -m)"
mkdir -p "$ROOT/bench/results"
OUT="$ROOT/bench/results/$DATE-$LABEL.md"
GOALS="$RUN/goals.tsv"
: >"$GOALS"
"$BIN/bench-loadgen" report --dir "$RUN" --rps "$RATE" --out "$OUT" --goals "$GOALS" \
  --title "liter-llm benchmark: $LABEL, $DATE" \
  --meta "Commit: $COMMIT" \
  --meta "Machine: $(nproc) cores ($CPU_MODEL), Linux $(uname -r); ${BACKGROUND}% busy with other work just before the run" \
  --meta "Settings: ${DURATION} s measured after ${WARMUP} s warm-up per scenario; saturation with $CONNS keep-alive connections, $REPEAT rounds of each non-streaming comparison; fixed rate $RATE req/s, open loop; paths taking turns in ${ROUND} s blocks" \
  --meta "Gateway: \`liter-llm api\`, master key, one OpenAI model on the mock, \`max_retries = 0\`, $GATEWAY_LOG (logs written to a file)" \
  --meta "Binary: \`liter-llm\` (release, stripped) $(stat -c %s "$BIN/liter-llm" 2>/dev/null | awk '{ printf "%.1f MB", $1 / 1e6 }')" >/dev/null
{
  cat "$RUN/rounds.md"
  for kind in pool gov govf cache; do
    python3 "$ROOT/bench/compare.py" "$RUN" "$REPEAT" "$kind"
  done
  python3 "$ROOT/bench/summary.py" "$GOALS"
} >>"$OUT"
cat "$OUT"
log "report written to $OUT"
DONE=1

if [ "$GATEWAY" != 1 ] && [ "${BENCH_REQUIRE_GATEWAY:-0}" = 1 ]; then
  exit 1
fi
if [ "${BENCH_STRICT:-0}" = 1 ] && grep -qv '^PASS' "$GOALS"; then
  echo "bench: BENCH_STRICT=1 and these goals were missed or not measured:" >&2
  grep -v '^PASS' "$GOALS" | awk -F '\t' '{ printf "bench:   %s: %s (measured: %s)\n", $1, $2, $3 }' >&2
  exit 1
fi
