#!/usr/bin/env bash
# SDK compatibility suite: drives a real liter-llm gateway (in front of the mock-upstream
# binary) with the official `openai` Python SDK, and checks the mock upstream itself against
# each provider's official SDK (anthropic, cohere, google-genai, boto3, openai's AzureOpenAI;
# tests/compat/test_provider_sdks.py), and runs Claude Code and OpenAI's Codex CLI through
# the gateway, and LiteLLM's own admin CLI (litellm-proxy models ...) against it. See
# tests/compat/.
#
#   bash scripts/compat.sh                  # set up .venv, build, run
#   LITER_LLM_SKIP_BUILD=1 bash scripts/compat.sh   # reuse target/debug binaries
#   bash scripts/compat.sh -k streaming     # extra arguments go to pytest
#
# Needs only python3 (with venv and pip) and cargo; everything else is installed into
# .venv at the repository root (nginx, for test_nginx.py, with apt-get when missing;
# that test also needs the Redis of scripts/services.sh). Exits with pytest's exit code.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
REQUIREMENTS="$ROOT/tests/compat/requirements.txt"

log() { printf 'compat: %s\n' "$*" >&2; }

make_venv() {
    # A half-made venv (e.g. ensurepip failed) has no working python: start over.
    rm -rf "$VENV"
    "${1:-python3}" -m venv "$VENV"
}

if [ ! -x "$PY" ] || ! "$PY" -m pip --version >/dev/null 2>&1; then
    log "creating $VENV"
    if ! make_venv python3; then
        # Debian ships venv's ensurepip in a separate package.
        log "python3 -m venv failed; installing python3-venv with apt-get"
        SUDO=""
        if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
        $SUDO apt-get update -qq
        PY_VER="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv "python${PY_VER}-venv" \
            || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
        # If python3 on PATH is not Debian's own, the package fixed /usr/bin/python3 only.
        make_venv python3 || make_venv /usr/bin/python3
    fi
fi

# Reinstall only when requirements.txt changed since the last install, or a package is gone.
STAMP="$VENV/.compat-requirements"
if ! cmp -s "$REQUIREMENTS" "$STAMP" || ! "$PY" -c 'import openai, pytest, anthropic, cohere, boto3, openapi_spec_validator, langchain_openai, agents, litellm, InquirerPy; from google import genai' >/dev/null 2>&1; then
    log "installing the Python test dependencies into $VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    cp "$REQUIREMENTS" "$STAMP"
fi

# nginx (tests/compat/test_nginx.py, three gateways behind it): Debian's package. The
# test runs it itself, unprivileged, on a free port; the system service is not used.
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    log "nginx is missing; installing it with apt-get"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx
fi

# Claude Code (tests/compat/test_claude_code.py) and Codex (tests/compat/test_codex.py):
# pinned versions from the npm registry into .npm-tools/ (Node.js and npm from apt-get
# when missing).
CLAUDE_CODE_VERSION="2.1.197"
CODEX_VERSION="0.171.0"
TOOLS="$ROOT/.npm-tools"

# npm_tool <package> <version> <bin>: install the package unless that version is there.
npm_tool() {
    if [ -x "$TOOLS/node_modules/.bin/$3" ] && grep -q "\"version\": \"$2\"" "$TOOLS/node_modules/$1/package.json" 2>/dev/null; then
        return
    fi
    if ! command -v npm >/dev/null; then
        log "npm is missing; installing nodejs and npm with apt-get"
        SUDO=""
        if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
    fi
    log "installing $1 $2 into $TOOLS"
    mkdir -p "$TOOLS"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS" "$1@$2" >&2
}
npm_tool "@anthropic-ai/claude-code" "$CLAUDE_CODE_VERSION" claude
npm_tool "@openai/codex" "$CODEX_VERSION" codex

if [ "${LITER_LLM_SKIP_BUILD:-0}" != "1" ]; then
    log "building liter-llm and mock-upstream"
    (cd "$ROOT" && cargo build --quiet -p liter-llm-cli -p mock-upstream)
fi

cd "$ROOT"
set +e
"$PY" -m pytest tests/compat -q "$@"
status=$?
set -e
exit "$status"
