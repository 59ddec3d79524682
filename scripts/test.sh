#!/usr/bin/env bash
# The whole test suite, on a fresh machine too:
#   1. Rust unit and integration tests (the gateway in-process and as a binary,
#      against the in-repo mock upstream over loopback);
#   (PostgreSQL and Redis are started first, installed if missing: scripts/services.sh;
#   moto's S3 server and Azurite are installed for the object-store tests:
#   scripts/objstores.sh);
#   2. the compatibility suite: the official OpenAI Python SDK against the gateway,
#      and against three gateways behind nginx (installed by scripts/compat.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
bash scripts/objstores.sh
cargo test --workspace --locked
LITER_LLM_SKIP_BUILD=0 bash scripts/compat.sh
