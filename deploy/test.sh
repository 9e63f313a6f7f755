#!/usr/bin/env bash
# One command that sets up and passes the tests: installs uv and the workspace,
# starts local Kafka + FerretDB (unless KAFKA_BOOTSTRAP_SERVERS and MONGODB_URL
# point elsewhere), runs ruff, mypy and pytest (unit + end to end).
# Extra arguments go to pytest, e.g. `deploy/test.sh tests/unit -x`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HITL_ROOT"

trap stop_infra_if_started EXIT

sync_env
ensure_chromium
use_infra

say "ruff"
"${UV[@]}" run --locked ruff check .
"${UV[@]}" run --locked ruff format --check .
say "mypy (strict)"
"${UV[@]}" run --locked mypy
say "pytest"
"${UV[@]}" run --locked pytest "$@"
