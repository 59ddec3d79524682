#!/usr/bin/env bash
# The local object stores the cache and files tests talk to, installed into .objstores/
# at the repository root (not committed): moto's S3-compatible server (PyPI, with boto3
# to make buckets) and Azurite's Blob service (npm, with azure-storage-blob from PyPI to
# make containers). The tests start their own server on a free port (see
# crates/liter-llm-proxy/tests/gateway/objstores.rs); this only installs. Safe to run
# again: does nothing when both are there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/.objstores"
MOTO_VERSION=5.2.5
AZURE_BLOB_VERSION=12.31.1
AZURITE_VERSION=3.37.0
log() { printf 'objstores: %s\n' "$*" >&2; }

mkdir -p "$DIR"
PY="$DIR/venv/bin/python"
if [ ! -x "$DIR/venv/bin/moto_server" ] || ! "$PY" -c 'import boto3, azure.storage.blob' >/dev/null 2>&1; then
  log "installing moto[server]==$MOTO_VERSION and azure-storage-blob into $DIR/venv"
  rm -rf "$DIR/venv"
  python3 -m venv "$DIR/venv" || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$DIR/venv"
  }
  "$PY" -m pip install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" "azure-storage-blob==$AZURE_BLOB_VERSION"
fi
if [ ! -x "$DIR/node_modules/.bin/azurite-blob" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    log "installing Node.js and npm with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  log "installing azurite@$AZURITE_VERSION into $DIR"
  (cd "$DIR" && npm install --silent --no-audit --no-fund --prefix "$DIR" "azurite@$AZURITE_VERSION" >/dev/null)
fi
log "moto and Azurite are installed in $DIR"
