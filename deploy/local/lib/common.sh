# shellcheck shell=bash
# Helpers shared by kafka.sh and ferretdb.sh: logging, process tracking,
# port probes and bounded waits. Sourced by infra.sh; not meant to run alone.

# Progress goes to stderr so that `infra.sh env` keeps a clean stdout for eval.
log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

now_ms() { date +%s%3N; }
elapsed_s() { # START_MS -> "1.234"
  local ms=$(( $(now_ms) - $1 ))
  printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

# Print the last lines of each log that exists, to explain a failed start.
show_logs() {
  local f
  for f in "$@"; do
    [[ -s $f ]] || continue
    printf '\n----- last 40 lines of %s -----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

# True if something accepts TCP connections on 127.0.0.1:PORT. Uses bash's
# /dev/tcp so no netcat is needed; loopback refuses at once when closed, and the
# timeout guards against anything odd.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$HITL_HOST/$1" 2>/dev/null
}

# --- process tracking --------------------------------------------------------
# A server is identified by a MARKER string that only its command line holds
# (a path inside our state dir), plus the expected executable name. Checking
# both guards against a recycled pid in a stale pid file, and lets us find our
# own server again if its pid file was lost.

# pid_matches PID EXE MARKER: PID is alive, runs EXE, and has MARKER in argv.
pid_matches() {
  local pid=$1 exe=$2 marker=$3 cmdline argv0
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmdline=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  argv0=$(head -n 1 <<<"$cmdline")
  [[ ${argv0##*/} == "$exe" ]] || return 1
  grep -qxF -- "$marker" <<<"$cmdline"
}

# find_pid PIDFILE EXE MARKER: print the pid of our running server, or fail.
find_pid() {
  local pidfile=$1 exe=$2 marker=$3 pid f
  if [[ -f $pidfile ]]; then
    pid=$(<"$pidfile")
    if pid_matches "$pid" "$exe" "$marker"; then
      echo "$pid"
      return 0
    fi
  fi
  # Pid file missing or stale: look for a process carrying our marker.
  for f in $(grep -lsaF -- "$marker" /proc/[0-9]*/cmdline 2>/dev/null); do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    if pid_matches "$pid" "$exe" "$marker"; then
      echo "$pid" >"$pidfile"
      echo "$pid"
      return 0
    fi
  done
  return 1
}

# start_detached LOGFILE PIDFILE CMD...: run CMD in its own session (so a
# Ctrl-C in the calling terminal or the end of a CI step's process group does
# not hit it), with stdio detached, and record its pid. Fd 9 holds infra.sh's
# lock and must not leak into the server, or the lock would live as long as it.
start_detached() {
  local logfile=$1 pidfile=$2
  shift 2
  [[ -f $logfile ]] && mv -f "$logfile" "$logfile.prev"
  # In a non-interactive script background jobs are not process-group leaders,
  # so setsid execs in place and $! is the server's own pid.
  setsid "$@" >"$logfile" 2>&1 </dev/null 9>&- &
  echo $! >"$pidfile"
}

# stop_pid NAME PID PIDFILE: SIGTERM, wait for a clean exit, then SIGKILL.
stop_pid() {
  local name=$1 pid=$2 pidfile=$3 t0 deadline
  t0=$(now_ms)
  deadline=$(( t0 + HITL_STOP_TIMEOUT * 1000 ))
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if (( $(now_ms) > deadline )); then
      log "$name (pid $pid) still running after ${HITL_STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
  done
  rm -f "$pidfile"
  log "$name stopped (pid $pid) in $(elapsed_s "$t0")s"
}

# wait_ready NAME PID PORT PROBE_FN LOGS...: wait (bounded by HITL_READY_TIMEOUT)
# until PORT accepts connections and PROBE_FN REMAINING_S succeeds. Fails early
# with the log tails if the process dies meanwhile.
wait_ready() {
  local name=$1 pid=$2 port=$3 probe=$4 t0 deadline remaining
  shift 4
  t0=$(now_ms)
  deadline=$(( t0 + HITL_READY_TIMEOUT * 1000 ))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_logs "$@"
      die "$name (pid $pid) exited before becoming ready; logs above"
    fi
    remaining=$(( (deadline - $(now_ms)) / 1000 ))
    if (( remaining <= 0 )); then
      show_logs "$@"
      die "$name not ready on $HITL_HOST:$port after ${HITL_READY_TIMEOUT}s (pid $pid still running; logs above)"
    fi
    if port_open "$port" && "$probe" "$remaining"; then
      log "$name ready on $HITL_HOST:$port (pid $pid) after $(elapsed_s "$t0")s"
      return 0
    fi
    sleep 0.25
  done
}

# Fail clearly if PORT is taken by something that is not our server.
require_port_free() {
  local name=$1 port=$2
  if port_open "$port"; then
    die "$name: port $HITL_HOST:$port is already in use by another process; set a different port (see infra.sh header) or stop it"
  fi
}

require_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH: $2"
}
