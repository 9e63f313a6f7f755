#!/usr/bin/env bash
# One command for the main job: install what is missing, start Kafka + FerretDB and
# the three services, and run the demo ("Transfer 500 to Alice" through approval,
# "Transfer 50 to Bob" straight through), printing balances.
#
#   deploy/demo.sh              run the demo, then stop everything
#   deploy/demo.sh --keep       run the demo and leave the stack running
#   deploy/demo.sh --up         only start the stack and leave it running
#   deploy/demo.sh --down       stop the services and the infrastructure
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HITL_ROOT"

mode=run
case "${1:-}" in
  "") ;;
  --keep) mode=keep ;;
  --up) mode=up ;;
  --down) deploy/local/services.sh stop; deploy/local/infra.sh stop; exit 0 ;;
  *) echo "usage: $0 [--keep|--up|--down]" >&2; exit 2 ;;
esac

sync_env
if [[ $mode != up && -z "${MONGODB_DATABASE:-}" ]]; then
  # Every demo starts from the opening balances, in a database of its own.
  export MONGODB_DATABASE="hitl_demo_$(date +%Y%m%d_%H%M%S)"
  say "demo database: $MONGODB_DATABASE"
fi
use_infra
deploy/local/services.sh start

if [[ $mode == up ]]; then
  say "stack running; try: deploy/demo.sh --keep, or POST http://127.0.0.1:${AGENT_PORT:-8082}/v1/runs with 'Authorization: Bearer dev-agent-token'"
  say "stop it with: deploy/demo.sh --down"
  exit 0
fi
if [[ $mode == run ]]; then
  # Stop what this run started; infrastructure that was already up stays up.
  cleanup() {
    deploy/local/services.sh stop
    if [[ "${MONGODB_DATABASE:-}" == hitl_demo_* ]]; then
      "${UV[@]}" run --locked python deploy/demo.py --drop-database || true
    fi
    stop_infra_if_started
  }
  trap cleanup EXIT
fi
"${UV[@]}" run --locked python deploy/demo.py
if [[ $mode == keep ]]; then say "stack left running; stop it with: deploy/demo.sh --down"; fi
