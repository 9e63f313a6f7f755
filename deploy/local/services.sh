#!/usr/bin/env bash
# Run the three hitl services in the background for local use (no Docker).
#
# Usage: deploy/local/services.sh start|stop|status
# Logs and pid files: $HITL_STATE_DIR/services/<name>.{log,pid}
# Ports: APPROVAL_PORT [8081], AGENT_PORT [8082], NOTIFIER_PORT [8083].
# Every other setting is read from the environment (see README "Configuration").
# HITL_KAFKA_SECURITY=sasl_ssl (the broker of `infra.sh` with that setting): each
# service connects as its own Kafka user (hitl-<name>), so the ACLs apply.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DIR="$HITL_STATE_DIR/services"
SERVICES=(approval agent notifier)
declare -A PORTS=([approval]="${APPROVAL_PORT:-8081}" [agent]="${AGENT_PORT:-8082}" [notifier]="${NOTIFIER_PORT:-8083}")

running() { [[ -f "$DIR/$1.pid" ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

healthy() { python3 - "$1" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=1)
except Exception:
    sys.exit(1)
PY
}

start_one() {
  local name=$1 port=${PORTS[$1]}
  if running "$name"; then say "$name already running (pid $(cat "$DIR/$name.pid"))"; return; fi
  mkdir -p "$DIR"
  local kafka_env=()
  if [[ ${HITL_KAFKA_SECURITY:-plaintext} == sasl_ssl ]]; then
    mapfile -t kafka_env < <(HITL_KAFKA_USER="hitl-$name" "$HITL_ROOT/deploy/local/infra.sh" env \
      | sed -n 's/^export \(KAFKA_.*\)$/\1/p')
  fi
  # exec: the recorded pid must be the service's own session and process group (setsid
  # does not fork here), so `stop` can signal the group; without it the pid was a bash
  # wrapper and `stop` left the service running.
  (cd "$HITL_ROOT" && exec env "${kafka_env[@]}" setsid nohup "${UV[@]}" run --locked --quiet "hitl-$name" \
     >>"$DIR/$name.log" 2>&1) & echo $! >"$DIR/$name.pid"
  for _ in $(seq 1 300); do
    if healthy "$port"; then say "$name up on http://127.0.0.1:$port"; return; fi
    if ! running "$name"; then echo "$name exited; last log lines:" >&2; tail -n 30 "$DIR/$name.log" >&2; exit 1; fi
    sleep 0.2
  done
  echo "$name not healthy after 60s; see $DIR/$name.log" >&2; exit 1
}

stop_one() {
  local name=$1
  if ! running "$name"; then rm -f "$DIR/$name.pid"; return; fi
  local pid; pid=$(cat "$DIR/$name.pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$DIR/$name.pid"; say "$name stopped"
}

case "${1:-}" in
  start) ensure_uv; for s in "${SERVICES[@]}"; do start_one "$s"; done ;;
  stop) for s in notifier agent approval; do stop_one "$s"; done ;;
  status)
    rc=0
    for s in "${SERVICES[@]}"; do
      if running "$s"; then echo "$s: running (pid $(cat "$DIR/$s.pid"), http://127.0.0.1:${PORTS[$s]})"
      else echo "$s: stopped"; rc=1; fi
    done; exit $rc ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
