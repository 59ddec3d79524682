# Shared by run.sh, callgrind.sh, memory.sh and link-order.sh (sourced, not run): the gateway configs every
# bench measures, so that a "plain" or "governed" gateway is the same in each report, and the
# waits for a started process's port and for a client's "ready" line. Needs RUN (the run directory) set by the caller.

wait_port() { # NAME PID: the port from "listening on http://HOST:PORT" in $RUN/NAME.log
  local i port
  for ((i = 0; i < 600; i++)); do
    port="$(sed 's/\x1b\[[0-9;]*m//g' "$RUN/$1.log" 2>/dev/null |
      sed -nE 's#.*listening on http://[^ /]*:([0-9]+).*#\1#p' | head -n1)"
    [ -n "$port" ] && { echo "$port"; return 0; }
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: $1 did not report its port; log $RUN/$1.log:" >&2
  tail -n 20 "$RUN/$1.log" >&2
  return 1
}

wait_line() { # FILE WORD PID: until FILE has a line starting with WORD; fails if PID exits first
  local i
  for ((i = 0; i < 1200; i++)); do
    grep -q "^$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { grep -q "^$2" "$1" 2>/dev/null && return 0; break; }
    sleep 0.1
  done
  echo "bench: no '$2' from the clients; stderr:" >&2
  cat "$1.err" >&2 || true
  return 1
}

plain_config() { # MOCK_PORT OUT: the plain gateway, one model on the mock's OpenAI API
  cat >"$2" <<CONFIG
[server]
host = "127.0.0.1"
port = 0

[general]
master_key = "sk-bench-master"
max_retries = 0

[[models]]
name = "gpt-4o-mini"
provider_model = "openai/gpt-4o-mini"
api_key = "sk-upstream"
base_url = "http://127.0.0.1:$1/v1"
CONFIG
}

governed_config() { # PLAIN OUT DATABASE_URL: the plain gateway with cost tracking, its spend
  # in DATABASE_URL, and the bench's key a virtual key with rpm, tpm and a budget (so every
  # request is limited, estimated and settled).
  sed -e 's/^master_key = .*/master_key = "sk-bench-other-master"/' \
    -e "s#^max_retries = 0#max_retries = 0\nenable_cost_tracking = true\ndatabase_url = \"$3\"#" \
    "$1" >"$2"
  printf '\n[[keys]]\nkey = "sk-bench-master"\nrpm = 100000000\ntpm = 100000000000\nbudget_limit = 1000000.0\n' \
    >>"$2"
}

redis_config() { # GOVERNED OUT REDIS_URL: the governed gateway with its rate limits shared
  # through the Redis at REDIS_URL, in a namespace of its own (so every admission runs the
  # shared-limit script and every settlement the settle script).
  sed -e "s#^max_retries = 0#max_retries = 0\nredis_url = \"$3\"\nredis_namespace = \"bench-$$-$RANDOM\"#" \
    "$1" >"$2"
}
