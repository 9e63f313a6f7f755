#!/usr/bin/env bash
# Benchmark hitl on this machine and write bench-results.json (see README "Benchmark").
#
#   deploy/bench.sh                 default mode (a few minutes)
#   deploy/bench.sh --quick         smaller counts (about a minute)
#   deploy/bench.sh --only resume --rate 20 --verb reject --env KAFKA_FETCH_MAX_WAIT_MS=500
#   HITL_STORE_BACKEND=postgresql deploy/bench.sh ...   FerretDB on PostgreSQL instead
#
# Runs against its OWN Kafka + FerretDB (state in ~/.local/state/hitl-bench, ports
# 29092/29093/27019; PostgreSQL, when chosen, on 29432), so other users of the shared instance neither disturb the figures
# nor get disturbed; it is stopped afterwards unless it was already running or
# HITL_KEEP_INFRA=1. Set KAFKA_BOOTSTRAP_SERVERS and MONGODB_URL (loopback only) to
# measure other servers instead, e.g. a real MongoDB.
set -euo pipefail
export HITL_STATE_DIR="${HITL_BENCH_STATE_DIR:-$HOME/.local/state/hitl-bench}"
export HITL_KAFKA_PORT="${HITL_BENCH_KAFKA_PORT:-29092}"
export HITL_KAFKA_CONTROLLER_PORT="${HITL_BENCH_KAFKA_CONTROLLER_PORT:-29093}"
export HITL_MONGO_PORT="${HITL_BENCH_MONGO_PORT:-27019}"
export HITL_POSTGRES_PORT="${HITL_BENCH_POSTGRES_PORT:-29432}"
export HITL_STORE_BACKEND="${HITL_STORE_BACKEND:-sqlite}"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HITL_ROOT"

trap stop_infra_if_started EXIT

sync_env
use_infra
say "benchmark (python -m bench.run $*)"
"${UV[@]}" run --locked python -m bench.run "$@"
