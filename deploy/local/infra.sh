#!/usr/bin/env bash
# Local infrastructure for hitl without Docker: a real Apache Kafka (KRaft,
# single node) and a real FerretDB 1.24 (on SQLite, or on PostgreSQL), all on loopback.
#
# Usage: deploy/local/infra.sh COMMAND
#   start            install what is missing, start both if not running, wait until ready
#   stop             stop both (SIGTERM, wait, then SIGKILL) and remove pid files
#   status           print state, pid and address of each; exit 0 only if both run
#   env              print `export KAFKA_BOOTSTRAP_SERVERS=...` and `export MONGODB_URL=...`
#                    for  eval "$(deploy/local/infra.sh env)"; with sasl_ssl also
#                    KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_CAFILE for the
#                    user HITL_KAFKA_USER [admin]
#   reset            stop both and wipe their data (caches are kept)
#   install          only fetch/build into the cache (no servers started)
#   start-kafka | stop-kafka | start-ferretdb | stop-ferretdb
#                    act on one server only (e.g. to restart it in a chaos test)
#
# Ready means: Kafka answered a real metadata request (list topics through the
# admin client), FerretDB answered a real MongoDB `ping` (deploy/local/mongo_ping.py).
# Every wait is bounded (HITL_READY_TIMEOUT); on failure the log tails are printed.
#
# Environment (defaults in brackets):
#   HITL_KAFKA_SECURITY        [plaintext]  or sasl_ssl: TLS (a generated local CA),
#                      SCRAM-SHA-512 users admin, hitl-agent, hitl-approval,
#                      hitl-notifier, hitl-client (passwords generated into
#                      <state>/secrets, mode 600), StandardAuthorizer with the ACLs of
#                      deploy/local/kafka/acls.txt. Its own state dir (kafka-sasl_ssl)
#                      and ports, so it runs beside a plaintext broker. Give every
#                      command (start, env, stop...) the same value.
#   HITL_KAFKA_ACL_PREFIX      []  put before topic/group names in acls.txt
#                      (the services' HITL_TOPIC_PREFIX)
#   HITL_KAFKA_PORT            [19092; sasl_ssl 19094]  Kafka client listener
#   HITL_KAFKA_CONTROLLER_PORT [19093; sasl_ssl 19095]  KRaft controller listener
#   HITL_MONGO_PORT            [27018]  FerretDB (MongoDB wire protocol)
#   HITL_STORE_BACKEND         [sqlite]  FerretDB's backend: sqlite (a file, nothing else
#                      to run) or postgresql (Debian's PostgreSQL, apt-get installed if
#                      missing, run as user postgres when root; fsync and
#                      synchronous_commit on). Give every command the same value.
#   HITL_SQLITE_SYNCHRONOUS    [full]  SQLite's synchronous pragma: full flushes every
#                      commit to disk; normal (FerretDB's own default) only at checkpoints
#   HITL_SQLITE_CACHE_MB       [SQLite's 2]  SQLite's page cache per connection, in MiB
#   HITL_SQLITE_WAL_AUTOCHECKPOINT [SQLite's 1000]  WAL pages before a commit copies them
#                      back into the database file (SQLite's wal_autocheckpoint)
#   HITL_FERRETDB_GOGC         [400]  Go's GOGC for FerretDB: 400 lets its heap grow to 5x
#                      the live data between collections (Go's default, 100: 2x); about
#                      20% less CPU per command here (README, "FerretDB's garbage collector")
#   HITL_FERRETDB_GOMEMLIMIT   [512MiB]  Go's soft memory limit for FerretDB: near it the
#                      collector runs more often, whatever GOGC says
#   HITL_FERRETDB_GOMAXPROCS   [1 on 2 cores or fewer, else every core]  Go's GOMAXPROCS
#                      for FerretDB: on 2 cores, 1 took 11% less of FerretDB's CPU and 27%
#                      fewer context switches at 50 decisions/s, same ingestion (README,
#                      "FerretDB on one Go processor")
#   HITL_POSTGRES_PORT         [15432]  PostgreSQL, loopback TCP only (no Unix socket)
#   HITL_POSTGRES_DATA [<state>/ferretdb/postgresql; as root
#                      /var/lib/hitl/postgresql-<hash of HITL_STATE_DIR>]  its cluster
#     Non-default ports, so a Kafka or MongoDB of the user's own does not collide.
#   HITL_CACHE_DIR   [$HOME/.cache/hitl]        jars and binaries, keyed by version:
#                      kafka-<ver>/lib/*.jar, ferretdb-<ver>-<patch>/ferretdb
#   HITL_STATE_DIR   [$HOME/.local/state/hitl]  data, logs, pid files:
#                      kafka/{data,logs/server.log,kafka.out,kafka.pid,server.properties}
#                      ferretdb/{data,ferretdb.log,ferretdb.pid}
#     Outside the repo on purpose: nothing here can end up in git, and a fresh
#     clone (CI) reuses the same cache. Run a second, independent instance by
#     giving it its own HITL_STATE_DIR and ports.
#   HITL_KAFKA_VERSION     [3.9.2]    org.apache.kafka:kafka_2.13 on Maven Central
#   HITL_FERRETDB_VERSION  [v1.24.2]  github.com/FerretDB/FerretDB on the Go proxy
#   HITL_KAFKA_HEAP_OPTS   [-Xms256m -Xmx512m]
#   HITL_READY_TIMEOUT     [60]  seconds to wait for each server to become ready
#   HITL_STOP_TIMEOUT      [30]  seconds between SIGTERM and SIGKILL
#   HITL_FERRETDB_LOG_LEVEL [INFO]
#   HITL_FERRETDB_DEBUG_ADDR [-]  e.g. 127.0.0.1:8088: FerretDB's pprof and metrics
#                             (goroutine dumps: /debug/pprof/goroutine?debug=1); - is off
#
# Needs: bash, coreutils, util-linux (setsid, flock), java 17, mvn, go >= 1.21,
# python3 (optional, for the ping). Progress goes to stderr; stdout carries
# only what a command is asked to print (status lines, env exports).
set -euo pipefail

HITL_DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HITL_HOST=127.0.0.1
HITL_KAFKA_SECURITY="${HITL_KAFKA_SECURITY:-plaintext}"
case "$HITL_KAFKA_SECURITY" in
  plaintext)
    HITL_KAFKA_PORT="${HITL_KAFKA_PORT:-19092}"
    HITL_KAFKA_CONTROLLER_PORT="${HITL_KAFKA_CONTROLLER_PORT:-19093}"
    HITL_KAFKA_STATE_NAME=kafka
    ;;
  sasl_ssl)
    HITL_KAFKA_PORT="${HITL_KAFKA_PORT:-19094}"
    HITL_KAFKA_CONTROLLER_PORT="${HITL_KAFKA_CONTROLLER_PORT:-19095}"
    HITL_KAFKA_STATE_NAME=kafka-sasl_ssl
    ;;
  *) printf '[infra] ERROR: HITL_KAFKA_SECURITY=%s: use plaintext or sasl_ssl\n' "$HITL_KAFKA_SECURITY" >&2; exit 2 ;;
esac
HITL_MONGO_PORT="${HITL_MONGO_PORT:-27018}"
HITL_STORE_BACKEND="${HITL_STORE_BACKEND:-sqlite}"
HITL_POSTGRES_PORT="${HITL_POSTGRES_PORT:-15432}"
HITL_SQLITE_SYNCHRONOUS="${HITL_SQLITE_SYNCHRONOUS:-full}"
case "$HITL_SQLITE_SYNCHRONOUS" in
  full | normal | extra) ;;
  *) printf '[infra] ERROR: HITL_SQLITE_SYNCHRONOUS=%s: use full, normal or extra\n' "$HITL_SQLITE_SYNCHRONOUS" >&2; exit 2 ;;
esac
HITL_SQLITE_CACHE_MB="${HITL_SQLITE_CACHE_MB:-}"
if [[ -n $HITL_SQLITE_CACHE_MB && ! $HITL_SQLITE_CACHE_MB =~ ^[1-9][0-9]{0,5}$ ]]; then
  printf '[infra] ERROR: HITL_SQLITE_CACHE_MB=%s: a whole number of MiB (1-999999)\n' "$HITL_SQLITE_CACHE_MB" >&2
  exit 2
fi
HITL_SQLITE_WAL_AUTOCHECKPOINT="${HITL_SQLITE_WAL_AUTOCHECKPOINT:-}"
if [[ -n $HITL_SQLITE_WAL_AUTOCHECKPOINT && ! $HITL_SQLITE_WAL_AUTOCHECKPOINT =~ ^[1-9][0-9]{0,6}$ ]]; then
  printf '[infra] ERROR: HITL_SQLITE_WAL_AUTOCHECKPOINT=%s: a whole number of pages (1-9999999)\n' "$HITL_SQLITE_WAL_AUTOCHECKPOINT" >&2
  exit 2
fi
HITL_FERRETDB_GOGC="${HITL_FERRETDB_GOGC:-400}"
if [[ ! $HITL_FERRETDB_GOGC =~ ^[1-9][0-9]{1,4}$ ]]; then
  printf '[infra] ERROR: HITL_FERRETDB_GOGC=%s: a whole number, 10-99999 (percent)\n' "$HITL_FERRETDB_GOGC" >&2
  exit 2
fi
HITL_FERRETDB_GOMEMLIMIT="${HITL_FERRETDB_GOMEMLIMIT:-512MiB}"
if [[ ! $HITL_FERRETDB_GOMEMLIMIT =~ ^[1-9][0-9]{0,9}(B|KiB|MiB|GiB)$ ]]; then
  printf '[infra] ERROR: HITL_FERRETDB_GOMEMLIMIT=%s: a size such as 512MiB or 2GiB\n' "$HITL_FERRETDB_GOMEMLIMIT" >&2
  exit 2
fi
if [[ -z ${HITL_FERRETDB_GOMAXPROCS:-} ]]; then
  HITL_FERRETDB_GOMAXPROCS=$(nproc)
  if (( HITL_FERRETDB_GOMAXPROCS <= 2 )); then HITL_FERRETDB_GOMAXPROCS=1; fi
fi
if [[ ! $HITL_FERRETDB_GOMAXPROCS =~ ^[1-9][0-9]{0,3}$ ]]; then
  printf '[infra] ERROR: HITL_FERRETDB_GOMAXPROCS=%s: a whole number of processors, 1-9999\n' "$HITL_FERRETDB_GOMAXPROCS" >&2
  exit 2
fi
HITL_CACHE_DIR="${HITL_CACHE_DIR:-$HOME/.cache/hitl}"
HITL_STATE_DIR="${HITL_STATE_DIR:-$HOME/.local/state/hitl}"
HITL_KAFKA_VERSION="${HITL_KAFKA_VERSION:-3.9.2}"
HITL_FERRETDB_VERSION="${HITL_FERRETDB_VERSION:-v1.24.2}"
HITL_KAFKA_HEAP_OPTS="${HITL_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
HITL_READY_TIMEOUT="${HITL_READY_TIMEOUT:-60}"
HITL_STOP_TIMEOUT="${HITL_STOP_TIMEOUT:-30}"
HITL_FERRETDB_LOG_LEVEL="${HITL_FERRETDB_LOG_LEVEL:-INFO}"
HITL_FERRETDB_DEBUG_ADDR="${HITL_FERRETDB_DEBUG_ADDR:--}"

# shellcheck source=lib/common.sh
source "$HITL_DEPLOY_DIR/lib/common.sh"
# shellcheck source=lib/kafka.sh
source "$HITL_DEPLOY_DIR/lib/kafka.sh"
# shellcheck source=lib/kafka_security.sh
source "$HITL_DEPLOY_DIR/lib/kafka_security.sh"
# shellcheck source=lib/ferretdb.sh
source "$HITL_DEPLOY_DIR/lib/ferretdb.sh"
# shellcheck source=lib/postgresql.sh
source "$HITL_DEPLOY_DIR/lib/postgresql.sh"

usage() {
  sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
  exit 2
}

# Serialise commands that change state: two `start`s at once (parallel test
# jobs, say) must not both launch a server. Read-only commands skip the lock.
# Waits long enough for a cold install in another process to finish.
take_lock() {
  mkdir -p "$HITL_STATE_DIR" "$KAFKA_STATE" "$FERRETDB_STATE" "$HITL_CACHE_DIR"
  exec 9>"$HITL_STATE_DIR/.infra.lock"
  if ! flock -w 900 9; then
    die "another infra.sh holds $HITL_STATE_DIR/.infra.lock for over 15 minutes"
  fi
}

cmd_start() {
  local t0
  t0=$(now_ms)
  take_lock
  # Install both first (clear errors before anything runs), then launch both
  # and wait for both, so FerretDB starts while the Kafka JVM warms up.
  kafka_install
  ferretdb_install
  [[ $HITL_STORE_BACKEND == postgresql ]] && postgres_install
  kafka_launch
  ferretdb_launch   # with postgresql: starts it first and waits for it (a second or two)
  kafka_wait
  ferretdb_wait
  log "all up in $(elapsed_s "$t0")s; use: eval \"\$(${BASH_SOURCE[0]} env)\""
}

cmd_stop() {
  take_lock
  kafka_stop
  ferretdb_stop
}

cmd_status() {
  local rc=0
  kafka_status || rc=1
  ferretdb_status || rc=1
  if [[ $HITL_STORE_BACKEND == postgresql ]]; then postgres_status || rc=1; fi
  return "$rc"
}

cmd_env() {
  kafka_env
  echo "export MONGODB_URL=mongodb://$HITL_HOST:$HITL_MONGO_PORT/"
}

cmd_reset() {
  take_lock
  kafka_stop
  ferretdb_stop
  kafka_wipe
  ferretdb_wipe
  log "data wiped under $HITL_STATE_DIR (caches in $HITL_CACHE_DIR kept)"
}

main() {
  [[ $# -eq 1 ]] || usage
  case "$1" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    reset) cmd_reset ;;
    install) take_lock; kafka_install; ferretdb_install
      if [[ $HITL_STORE_BACKEND == postgresql ]]; then postgres_install; fi ;;
    start-kafka) take_lock; kafka_start ;;
    stop-kafka) take_lock; kafka_stop ;;
    start-ferretdb) take_lock; ferretdb_start ;;
    stop-ferretdb) take_lock; ferretdb_stop ;;
    -h | --help | help) usage ;;
    *) log "unknown command: $1"; usage ;;
  esac
}

main "$@"
