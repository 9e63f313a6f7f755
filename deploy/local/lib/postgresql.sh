# shellcheck shell=bash
# PostgreSQL from Debian's packages as FerretDB's backend (HITL_STORE_BACKEND=postgresql).
# Sourced by infra.sh after ferretdb.sh; one cluster per HITL_STATE_DIR, on loopback only
# (no Unix socket), durable commits: fsync, synchronous_commit and full_page_writes on.
#
# Why Debian's packages and not the `pgserver` wheel: the packages are on this kind of
# machine already (and apt-get installs them where not), and root, which runs these
# scripts here and in CI, is what `apt-get` needs; PostgreSQL itself refuses to run as
# root, so as root the server runs as Debian's `postgres` user (setpriv, no PAM).

postgres_bin_dir() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [[ -x $dir/postgres && -x $dir/initdb ]] && { echo "$dir"; return 0; }
  done
  return 1
}

postgres_install() {
  postgres_bin_dir >/dev/null && return 0
  command -v apt-get >/dev/null 2>&1 \
    || die "PostgreSQL is not installed and there is no apt-get: install PostgreSQL >= 13 (server) or use HITL_STORE_BACKEND=sqlite"
  local sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  log "installing PostgreSQL from Debian's packages (apt-get install postgresql)"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
    || die "apt-get install postgresql failed"
  postgres_bin_dir >/dev/null || die "PostgreSQL installed but no /usr/lib/postgresql/*/bin/postgres"
}

# As root, run PostgreSQL's programs as `postgres` (setpriv execs in place, so the pid
# start_detached records is the server's own); otherwise as ourselves.
POSTGRES_AS=()
if [[ $(id -u) == 0 ]]; then
  POSTGRES_AS=(setpriv --reuid=postgres --regid=postgres --init-groups --reset-env --)
fi

postgres_pid() { find_pid "$POSTGRES_PIDFILE" postgres "$POSTGRES_DATA"; }

postgres_probe() {
  "$(postgres_bin_dir)/pg_isready" -q -h "$HITL_HOST" -p "$HITL_POSTGRES_PORT" -t 2 >/dev/null 2>&1
}

# initdb once: superuser `hitl` with a generated password (scram over TCP; no local
# socket at all), and the database FerretDB keeps its schemas in.
postgres_init() {
  [[ -f $POSTGRES_DATA/PG_VERSION ]] && return 0
  local bin pwfile
  bin=$(postgres_bin_dir)
  mkdir -p "$POSTGRES_DATA" "$FERRETDB_STATE"
  chmod 700 "$POSTGRES_DATA"
  if [[ ! -s $POSTGRES_PASSWORD_FILE ]]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$POSTGRES_PASSWORD_FILE")
  fi
  # initdb reads the password from a file the server's user can read: a copy inside
  # the (still empty, mode 700) data dir's parent, removed right after.
  pwfile="$POSTGRES_DATA.pw"
  (umask 077 && cp "$POSTGRES_PASSWORD_FILE" "$pwfile")
  if [[ $(id -u) == 0 ]]; then
    chown postgres:postgres "$POSTGRES_DATA" "$pwfile"
  fi
  log "initialising a PostgreSQL cluster in $POSTGRES_DATA"
  if ! "${POSTGRES_AS[@]}" "$bin/initdb" -D "$POSTGRES_DATA" -U hitl --pwfile="$pwfile" \
      --auth-host=scram-sha-256 --auth-local=reject -E UTF8 --locale=C.UTF-8 \
      >"$POSTGRES_LOG.initdb" 2>&1; then
    rm -f "$pwfile"
    show_logs "$POSTGRES_LOG.initdb"
    die "initdb failed (log above)"
  fi
  rm -f "$pwfile"
}

postgres_launch() {
  postgres_pid >/dev/null && return 0
  require_port_free postgresql "$HITL_POSTGRES_PORT"
  postgres_install
  postgres_init
  local bin
  bin=$(postgres_bin_dir)
  mkdir -p "$FERRETDB_STATE"
  log "starting PostgreSQL ($("$bin/postgres" --version | awk '{print $3}')) on $HITL_HOST:$HITL_POSTGRES_PORT"
  # Durable commits stated explicitly, whatever a packaged default says: each commit
  # is flushed to disk before it is acknowledged.
  start_detached "$POSTGRES_LOG" "$POSTGRES_PIDFILE" \
    "${POSTGRES_AS[@]}" "$bin/postgres" -D "$POSTGRES_DATA" \
      -c listen_addresses="$HITL_HOST" -p "$HITL_POSTGRES_PORT" \
      -c unix_socket_directories= \
      -c fsync=on -c synchronous_commit=on -c full_page_writes=on \
      -c max_connections=100 -c shared_buffers=128MB
}

postgres_wait() {
  local pid
  pid=$(postgres_pid) || { show_logs "$POSTGRES_LOG"; die "postgresql is not running (log above)"; }
  if ! (port_open "$HITL_POSTGRES_PORT" && postgres_probe); then
    wait_ready postgresql "$pid" "$HITL_POSTGRES_PORT" postgres_probe "$POSTGRES_LOG"
  fi
  # FerretDB needs its database to exist; create it once.
  if [[ ! -f $POSTGRES_DATA.db-created ]]; then
    PGPASSWORD=$(<"$POSTGRES_PASSWORD_FILE") "$(postgres_bin_dir)/psql" -q -X \
      -h "$HITL_HOST" -p "$HITL_POSTGRES_PORT" -U hitl -d postgres \
      -c "CREATE DATABASE ferretdb" >/dev/null 2>&1 || true
    PGPASSWORD=$(<"$POSTGRES_PASSWORD_FILE") "$(postgres_bin_dir)/psql" -q -X -At \
      -h "$HITL_HOST" -p "$HITL_POSTGRES_PORT" -U hitl -d ferretdb -c "SELECT 1" >/dev/null \
      || die "PostgreSQL: database ferretdb is not reachable"
    touch "$POSTGRES_DATA.db-created"
  fi
}

postgres_start() {
  postgres_launch
  postgres_wait
}

postgres_stop() {
  local pid
  if pid=$(postgres_pid); then
    stop_pid postgresql "$pid" "$POSTGRES_PIDFILE"
  else
    rm -f "$POSTGRES_PIDFILE"
  fi
}

postgres_status() {
  local pid
  if pid=$(postgres_pid); then
    echo "postgres  running   pid $pid  $HITL_HOST:$HITL_POSTGRES_PORT  data $POSTGRES_DATA  log $POSTGRES_LOG"
    return 0
  fi
  echo "postgres  stopped   $HITL_HOST:$HITL_POSTGRES_PORT"
  return 1
}

postgres_wipe() {
  rm -rf "$POSTGRES_DATA" "$POSTGRES_DATA.db-created" "$POSTGRES_PASSWORD_FILE"
}
