#!/usr/bin/env bash
# One command that sets up and passes the tests: installs uv and the workspace,
# starts local Kafka + FerretDB (unless KAFKA_BOOTSTRAP_SERVERS and MONGODB_URL
# point elsewhere), runs ruff, mypy and pytest (unit + integration under coverage, whose
# total it prints, then end to end).
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
if [[ $# == 0 ]]; then
  # Unit + integration under coverage (the figure the README states), then the rest.
  say "pytest: unit + integration, with coverage"
  "${UV[@]}" run --locked coverage run -m pytest tests/unit tests/integration
  "${UV[@]}" run --locked coverage report --format=total \
    | sed 's/^/coverage of unit + integration (lines, %): /'
  if [[ ${HITL_OTHER_PYTHONS:-1} == 1 ]]; then
    # The same two tiers on Python 3.12 and 3.13 (HITL_OTHER_PYTHONS=0 skips it).
    deploy/pythons.sh
  fi
  say "pytest: end to end and the rest"
  "${UV[@]}" run --locked pytest --ignore=tests/unit --ignore=tests/integration
else
  say "pytest"
  "${UV[@]}" run --locked pytest "$@"
fi

docker_tests="${HITL_DOCKER_TESTS:-auto}"
if [[ $docker_tests == 1 || ($docker_tests == auto && $# == 0) ]]; then
  # Its own Kafka and FerretDB in containers: the local ones are not needed any more.
  stop_infra_if_started
  HITL_STARTED_INFRA=0
  say "Docker path (deploy/docker.sh ci; HITL_DOCKER_TESTS=0 skips it)"
  deploy/docker.sh ci
fi
