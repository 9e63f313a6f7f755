# shellcheck shell=bash
# FerretDB 1.x with its SQLite backend: a MongoDB wire-protocol server that
# needs no other database. Built from its Go module; sourced by infra.sh.

FERRETDB_MODULE="github.com/FerretDB/FerretDB"
# The cache key names our patch level too, so a changed patch rebuilds (see below).
FERRETDB_PATCH_LEVEL="idpath1"
FERRETDB_HOME_DIR="$HITL_CACHE_DIR/ferretdb-$HITL_FERRETDB_VERSION-$FERRETDB_PATCH_LEVEL"
FERRETDB_BIN="$FERRETDB_HOME_DIR/ferretdb"
FERRETDB_STATE="$HITL_STATE_DIR/ferretdb"
FERRETDB_DATA="$FERRETDB_STATE/data"
FERRETDB_SQLITE_ARG="--sqlite-url=file:$FERRETDB_DATA/"   # also our process marker
FERRETDB_PIDFILE="$FERRETDB_STATE/ferretdb.pid"
FERRETDB_LOG="$FERRETDB_STATE/ferretdb.log"

# --- install -----------------------------------------------------------------

# Why not `go install .../cmd/ferretdb@version`: the module as published lacks
# the generated build/version/version.txt, and a binary whose main module is
# FerretDB panics at start-up without it. So: download the module source,
# copy it somewhere writable, write version.txt, build there. The binary lands
# in the cache keyed by version, so later starts never rebuild.
ferretdb_install() {
  [[ -x $FERRETDB_BIN ]] && return 0
  require_cmd go "install Go >= 1.21 (it fetches the Go 1.24 toolchain FerretDB asks for by itself)"
  local t0 tmp module_dir
  t0=$(now_ms)
  tmp="$HITL_CACHE_DIR/.ferretdb-$HITL_FERRETDB_VERSION.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "building FerretDB $HITL_FERRETDB_VERSION from its Go module (takes a minute or two)"
  # Run from an empty dir so no surrounding go.mod/go.work interferes.
  module_dir=$(cd "$tmp" && GOFLAGS= GOWORK=off GO111MODULE=on \
    go mod download -json "$FERRETDB_MODULE@$HITL_FERRETDB_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p') \
    || die "go mod download $FERRETDB_MODULE@$HITL_FERRETDB_VERSION failed"
  [[ -n $module_dir && -f $module_dir/go.mod ]] \
    || die "go mod download gave no source dir for $FERRETDB_MODULE@$HITL_FERRETDB_VERSION"
  cp -R "$module_dir" "$tmp/src"
  chmod -R u+w "$tmp/src"   # the module cache is read-only
  echo "$HITL_FERRETDB_VERSION" >"$tmp/src/build/version/version.txt"
  ferretdb_patch_id_lookup "$tmp/src"
  # CGO off: the SQLite driver is pure Go, and a static binary needs no gcc.
  # -buildvcs=false: the copy is not a git checkout (and must not pick up ours).
  if ! (cd "$tmp/src" && GOFLAGS= GOWORK=off CGO_ENABLED=0 \
      go build -buildvcs=false -trimpath -o "$tmp/ferretdb" ./cmd/ferretdb) >"$tmp/build.log" 2>&1; then
    show_logs "$tmp/build.log"
    die "building FerretDB failed (log above, kept in $tmp)"
  fi
  "$tmp/ferretdb" --version >/dev/null 2>&1 || die "built FerretDB binary does not run: $tmp/ferretdb"
  mkdir -p "$FERRETDB_HOME_DIR"
  mv "$tmp/ferretdb" "$FERRETDB_BIN"
  rm -rf "$tmp"
  log "FerretDB $HITL_FERRETDB_VERSION built in $(elapsed_s "$t0")s"
}

# FerretDB 1.24's SQLite backend filters `{_id: x}` with the path `sjson->'$._id'`,
# while the unique index on _id is built on `sjson->"_id"`; SQLite matches index
# expressions syntactically, so no _id lookup or update ever uses the index and each
# one scans the whole collection (76 ms find / 224 ms update at 50k documents here).
# Both expressions mean the same JSON member, so we build with the index's spelling:
# the planner then uses the index and the cost is flat (about 1 ms at 50k).
# tests/integration/test_mongo_indexes.py measures it.
ferretdb_patch_id_lookup() {
  local file="$1/internal/backends/sqlite/metadata/metadata.go"
  grep -q "IDColumn = DefaultColumn + \"->'\$._id'\"" "$file" \
    || die "FerretDB $HITL_FERRETDB_VERSION: the _id path to patch is not in $file (new version? re-check the patch)"
  sed -i "s|IDColumn = DefaultColumn + \"->'\$._id'\"|IDColumn = DefaultColumn + \"->'_id'\"|" "$file"
  grep -q "IDColumn = DefaultColumn + \"->'_id'\"" "$file" || die "patching FerretDB's _id path failed"
}

# --- lifecycle -----------------------------------------------------------------

ferretdb_pid() { find_pid "$FERRETDB_PIDFILE" ferretdb "$FERRETDB_SQLITE_ARG"; }

# Readiness = a real MongoDB `ping` over the wire protocol (stdlib python),
# falling back to FerretDB's own `ping` subcommand where python3 is missing.
ferretdb_probe() {
  if command -v python3 >/dev/null 2>&1; then
    python3 "$HITL_DEPLOY_DIR/mongo_ping.py" --quiet --timeout 2 "$HITL_HOST:$HITL_MONGO_PORT"
  else
    "$FERRETDB_BIN" ping --listen-addr="$HITL_HOST:$HITL_MONGO_PORT" >/dev/null 2>&1
  fi
}

ferretdb_launch() {
  local pid
  if pid=$(ferretdb_pid); then
    return 0
  fi
  require_port_free ferretdb "$HITL_MONGO_PORT"
  ferretdb_install
  mkdir -p "$FERRETDB_DATA" "$FERRETDB_STATE/state"
  log "starting FerretDB $HITL_FERRETDB_VERSION (SQLite) on $HITL_HOST:$HITL_MONGO_PORT"
  # --debug-addr=- : no metrics/pprof listener (it would take port 8088).
  # --telemetry=disable : no beacon calls (and no network here anyway).
  start_detached "$FERRETDB_LOG" "$FERRETDB_PIDFILE" \
    "$FERRETDB_BIN" \
      --handler=sqlite "$FERRETDB_SQLITE_ARG" \
      --listen-addr="$HITL_HOST:$HITL_MONGO_PORT" \
      --debug-addr=- \
      --telemetry=disable \
      --state-dir="$FERRETDB_STATE/state" \
      --log-level="$HITL_FERRETDB_LOG_LEVEL"
}

ferretdb_wait() {
  local pid
  pid=$(ferretdb_pid) || { show_logs "$FERRETDB_LOG"; die "ferretdb is not running (log above)"; }
  # A ping is cheap, so even the "already running" case is proven with one.
  if port_open "$HITL_MONGO_PORT" && ferretdb_probe 2; then
    log "ferretdb running and answering ping on $HITL_HOST:$HITL_MONGO_PORT (pid $pid)"
    return 0
  fi
  wait_ready ferretdb "$pid" "$HITL_MONGO_PORT" ferretdb_probe "$FERRETDB_LOG"
}

ferretdb_start() {
  ferretdb_launch
  ferretdb_wait
}

ferretdb_stop() {
  local pid
  if pid=$(ferretdb_pid); then
    stop_pid ferretdb "$pid" "$FERRETDB_PIDFILE"
  else
    rm -f "$FERRETDB_PIDFILE"
    log "ferretdb not running"
  fi
}

ferretdb_status() {
  local pid
  if pid=$(ferretdb_pid); then
    if port_open "$HITL_MONGO_PORT"; then
      echo "ferretdb  running   pid $pid  $HITL_HOST:$HITL_MONGO_PORT  version $HITL_FERRETDB_VERSION (sqlite $FERRETDB_DATA)  log $FERRETDB_LOG"
      return 0
    fi
    echo "ferretdb  starting  pid $pid  $HITL_HOST:$HITL_MONGO_PORT not accepting connections yet  log $FERRETDB_LOG"
    return 1
  fi
  echo "ferretdb  stopped   $HITL_HOST:$HITL_MONGO_PORT"
  return 1
}

ferretdb_wipe() {
  rm -rf "$FERRETDB_DATA" "$FERRETDB_STATE/state"
}
