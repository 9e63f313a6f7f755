# Shared helpers for the top-level deploy scripts (sourced, not run).
HITL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export HITL_STATE_DIR="${HITL_STATE_DIR:-$HOME/.local/state/hitl}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# uv comes from PyPI like every other Python dependency; nothing is downloaded elsewhere.
ensure_uv() {
  if command -v uv >/dev/null 2>&1; then UV=(uv); return; fi
  if python3 -m uv --version >/dev/null 2>&1; then UV=(python3 -m uv); return; fi
  say "installing uv from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check uv
  if command -v uv >/dev/null 2>&1; then UV=(uv); else UV=(python3 -m uv); fi
}

sync_env() {
  ensure_uv
  say "syncing the Python workspace (uv sync --locked)"
  (cd "$HITL_ROOT" && "${UV[@]}" sync --locked --quiet)
}

# Start local Kafka + FerretDB unless the caller already points at servers.
# Returns 0 only when this call started them (so the caller may stop them again);
# servers someone else started are left running.
ensure_infra() {
  if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" && -n "${MONGODB_URL:-}" ]]; then
    say "using KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS MONGODB_URL=$MONGODB_URL"
    return 1
  fi
  local was_running=0
  if "$HITL_ROOT/deploy/local/infra.sh" status >/dev/null 2>&1; then was_running=1; fi
  "$HITL_ROOT/deploy/local/infra.sh" start
  eval "$("$HITL_ROOT/deploy/local/infra.sh" env)"
  export KAFKA_BOOTSTRAP_SERVERS MONGODB_URL
  [[ $was_running == 0 ]]
}

# The browser tests drive Debian's Chromium through Playwright; a browser build is
# never downloaded from elsewhere (no `playwright install`).
ensure_chromium() {
  if [[ -x "${HITL_CHROMIUM:-/usr/bin/chromium}" ]]; then return; fi
  if ! command -v apt-get >/dev/null 2>&1; then
    say "no Chromium and no apt-get: the browser tests will fail; set HITL_CHROMIUM to a Chromium binary"
    return
  fi
  local sudo=()
  if [[ $(id -u) != 0 ]]; then sudo=(sudo); fi
  say "installing Debian's chromium for the browser tests (apt-get)"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}

# Start infrastructure for the rest of this script and stop it again on exit, but
# only if this script started it (and HITL_KEEP_INFRA is not 1).
HITL_STARTED_INFRA=0
use_infra() {
  if ensure_infra; then HITL_STARTED_INFRA=1; fi
}
stop_infra_if_started() {
  if [[ $HITL_STARTED_INFRA == 1 && "${HITL_KEEP_INFRA:-0}" != 1 ]]; then
    "$HITL_ROOT/deploy/local/infra.sh" stop || true
  fi
}
