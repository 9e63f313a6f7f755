#!/usr/bin/env bash
# One command that sets up and passes the tests: installs uv and the workspace,
# starts local Kafka + FerretDB (unless KAFKA_BOOTSTRAP_SERVERS and MONGODB_URL
# point elsewhere), runs ruff, mypy and pytest (unit + end to end).
# Extra arguments go to pytest, e.g. `deploy/test.sh tests/unit -x`.
# With no arguments it then runs the Docker path too (`deploy/docker.sh ci`: registryless
# images, compose up + demo, the testcontainers tests, down). HITL_DOCKER_TESTS=0 skips
# it, HITL_DOCKER_TESTS=1 runs it even with arguments.
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

docker_tests="${HITL_DOCKER_TESTS:-auto}"
if [[ $docker_tests == 1 || ($docker_tests == auto && $# == 0) ]]; then
  # Its own Kafka and FerretDB in containers: the local ones are not needed any more.
  stop_infra_if_started
  HITL_STARTED_INFRA=0
  say "Docker path (deploy/docker.sh ci; HITL_DOCKER_TESTS=0 skips it)"
  deploy/docker.sh ci
fi
