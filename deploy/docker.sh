#!/usr/bin/env bash
# The Docker path without an image registry: every image built from the package
# registries alone, then compose.yaml run with deploy/docker/compose.registryless.yaml.
#
# Usage: deploy/docker.sh COMMAND
#   engine     install Debian's docker.io when missing and start dockerd if none answers
#   base       engine + only the base image (debootstrap; remove the tarball to remake it)
#   build      engine + docker compose (built from its Go module, cached) + every image:
#              base (debootstrap bookworm minbase, tarball cached), Kafka (Maven jars),
#              FerretDB (built from its Go module), SMTP sink, the three services
#   up         build, then `compose up -d --wait` (services healthy) on 127.0.0.1 ports
#   demo       run deploy/demo.py against the stack that `up` started
#   test       the testcontainers slice of pytest (KAFKA_BOOTSTRAP_SERVERS/MONGODB_URL
#              unset, so tests/support/infra.py starts Kafka and FerretDB containers)
#              and examples/testcontainers (the hitl-testcontainers plugin)
#   down       `compose down -v`: containers, network and volumes of the project
#   ci         build + up + demo + down + test, timed, down again on any failure
#   compose ARGS...   the same compose invocation by hand (e.g. `compose logs -f agent`)
#
# Environment (defaults in brackets):
#   HITL_CACHE_DIR  [$HOME/.cache/hitl]  base tarball, compose binary, jars, FerretDB,
#                                         staged build contexts (shared with deploy/local)
#   HITL_STATE_DIR  [$HOME/.local/state/hitl]  dockerd.log when this script starts dockerd
#   HITL_COMPOSE_VERSION [v2.28.1]  github.com/docker/compose/v2 on the Go module proxy
#   HITL_DEBIAN_MIRROR [http://deb.debian.org/debian]  for debootstrap
#   HITL_CA_BUNDLE  [/etc/ssl/certs/ca-certificates.crt]  CA bundle the builds trust for PyPI
#   HITL_COMPOSE_PROJECT [hitl]   APPROVAL_PORT [8081] AGENT_PORT [8082] NOTIFIER_PORT [8083]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HITL_ROOT"

export HITL_CACHE_DIR="${HITL_CACHE_DIR:-$HOME/.cache/hitl}"
export HITL_KAFKA_VERSION="${HITL_KAFKA_VERSION:-3.9.2}"
export HITL_FERRETDB_VERSION="${HITL_FERRETDB_VERSION:-v1.24.2}"
export HITL_DOCKER_CONTEXTS="$HITL_CACHE_DIR/docker-context"
COMPOSE_VERSION="${HITL_COMPOSE_VERSION:-v2.28.1}"
COMPOSE_MODULE=github.com/docker/compose/v2
COMPOSE_BIN="$HITL_CACHE_DIR/compose-$COMPOSE_VERSION/docker-compose"
DEBIAN_MIRROR="${HITL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_IMAGE=hitl-local/debian:bookworm
BASE_TAR="$HITL_CACHE_DIR/debian-bookworm-minbase.tar"
export HITL_KAFKA_IMAGE_LOCAL="hitl-local/kafka:$HITL_KAFKA_VERSION"
export HITL_MONGO_IMAGE_LOCAL="hitl-local/ferretdb:$HITL_FERRETDB_VERSION"
PROJECT="${HITL_COMPOSE_PROJECT:-hitl}"
DOCKER_STATE="$HITL_STATE_DIR/docker"
export APPROVAL_PORT="${APPROVAL_PORT:-8081}" AGENT_PORT="${AGENT_PORT:-8082}"
export NOTIFIER_PORT="${NOTIFIER_PORT:-8083}"
# The builds reach PyPI through whatever the host trusts; /dev/null when there is no
# bundle (the image's own ca-certificates are used then).
HITL_CA_BUNDLE="${HITL_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
[[ -r $HITL_CA_BUNDLE ]] || HITL_CA_BUNDLE=/dev/null
export HITL_CA_BUNDLE
# BuildKit everywhere (secrets and cache mounts); compose talks to the daemon's own.
export DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=0

SUDO=()
if [[ $(id -u) != 0 ]]; then SUDO=(sudo); fi

now() { date +%s; }
TIMINGS=()
timed() { # NAME CMD...: run CMD and remember how long it took
  local name=$1 t0 rc
  shift
  t0=$(now)
  # In a subshell outside any `||`, so that `set -e` still stops CMD at its first failure
  # (bash ignores -e inside a function called as `f || ...`).
  set +e
  (set -e; "$@")
  rc=$?
  set -e
  TIMINGS+=("$(printf '%-28s %4ss%s' "$name" $(( $(now) - t0 )) "$([[ $rc == 0 ]] || echo '  FAILED')")")
  return "$rc"
}
report_timings() {
  ((${#TIMINGS[@]})) || return 0
  say "docker timings"
  printf '  %s\n' "${TIMINGS[@]}" >&2
}

apt_install() {
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- engine ------------------------------------------------------------------------

engine() {
  if docker info >/dev/null 2>&1; then return 0; fi
  if ! command -v dockerd >/dev/null 2>&1; then
    say "installing Debian's docker.io (apt-get)"
    apt_install docker.io
  fi
  if docker info >/dev/null 2>&1; then return 0; fi
  if [[ -d /run/systemd/system ]]; then
    "${SUDO[@]}" systemctl start docker
  else
    # No init system (a container, CI): run dockerd in a session of its own, so it
    # outlives this script and the next command finds it.
    mkdir -p "$DOCKER_STATE"
    say "starting dockerd (log: $DOCKER_STATE/dockerd.log)"
    "${SUDO[@]}" setsid dockerd >>"$DOCKER_STATE/dockerd.log" 2>&1 </dev/null &
  fi
  local i
  for i in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      say "docker engine answers ($(docker version --format '{{.Server.Version}}'))"
      return 0
    fi
    sleep 1
  done
  tail -n 30 "$DOCKER_STATE/dockerd.log" >&2 || true
  echo "docker.sh: the Docker engine did not answer within 60 s" >&2
  return 1
}

# --- docker compose from its Go module -------------------------------------------------

# Not in Debian bookworm; the module as published builds with a plain `go build` of
# ./cmd from a writable copy (`go install mod@v` refuses its replace directives).
compose_install() {
  if [[ -x $COMPOSE_BIN ]]; then return 0; fi
  command -v go >/dev/null 2>&1 || { echo "docker.sh: Go is needed to build docker compose" >&2; return 1; }
  local tmp dir
  tmp="$HITL_CACHE_DIR/.compose-$COMPOSE_VERSION.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  say "building docker compose $COMPOSE_VERSION from its Go module (a few minutes, once)"
  dir=$(cd "$tmp" && GOFLAGS= GOWORK=off go mod download -json "$COMPOSE_MODULE@$COMPOSE_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [[ -n $dir && -f $dir/go.mod ]] || { echo "docker.sh: no source for $COMPOSE_MODULE@$COMPOSE_VERSION" >&2; return 1; }
  cp -R "$dir" "$tmp/src"
  chmod -R u+w "$tmp/src"
  if ! (cd "$tmp/src" && GOFLAGS= GOWORK=off CGO_ENABLED=0 go build -buildvcs=false -trimpath \
      -ldflags "-s -w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" \
      -o "$tmp/docker-compose" ./cmd) >"$tmp/build.log" 2>&1; then
    tail -n 40 "$tmp/build.log" >&2
    echo "docker.sh: building docker compose failed (log kept in $tmp)" >&2
    return 1
  fi
  "$tmp/docker-compose" version >/dev/null
  mkdir -p "$(dirname "$COMPOSE_BIN")"
  mv "$tmp/docker-compose" "$COMPOSE_BIN"
  rm -rf "$tmp"
  # Also as the CLI plugin, so `docker compose` works by hand; one already there wins.
  if ! docker compose version >/dev/null 2>&1; then
    mkdir -p "$HOME/.docker/cli-plugins"
    ln -sf "$COMPOSE_BIN" "$HOME/.docker/cli-plugins/docker-compose"
  fi
}

compose() {
  "$COMPOSE_BIN" -p "$PROJECT" -f compose.yaml -f deploy/docker/compose.registryless.yaml "$@"
}

# --- images ------------------------------------------------------------------------------

# Debian bookworm (minbase) from Debian's own mirror, imported as an image; the
# tarball is cached, so a machine whose engine lost its images imports in seconds.
base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return 0; fi
  if [[ ! -s $BASE_TAR ]]; then
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    local root="$HITL_CACHE_DIR/.debootstrap.$$"
    "${SUDO[@]}" rm -rf "$root"
    say "debootstrap bookworm (minbase) from $DEBIAN_MIRROR"
    if ! "${SUDO[@]}" debootstrap --variant=minbase bookworm "$root" "$DEBIAN_MIRROR" \
        >"$HITL_CACHE_DIR/debootstrap.log" 2>&1; then
      tail -n 30 "$HITL_CACHE_DIR/debootstrap.log" >&2
      return 1
    fi
    # Configured like debian:bookworm-slim (deploy/docker/base/): security updates in
    # the sources, no docs, man pages or .deb files left in later layers. No package
    # archives or lists in the image: every build runs apt-get update.
    "${SUDO[@]}" rm -f "$root/etc/apt/sources.list"
    sed "s#http://deb.debian.org/debian\$#$DEBIAN_MIRROR#" deploy/docker/base/debian.sources \
      | "${SUDO[@]}" tee "$root/etc/apt/sources.list.d/debian.sources" >/dev/null
    "${SUDO[@]}" cp deploy/docker/base/dpkg-docker-slim "$root/etc/dpkg/dpkg.cfg.d/docker-slim"
    "${SUDO[@]}" cp deploy/docker/base/apt-docker-slim "$root/etc/apt/apt.conf.d/docker-slim"
    "${SUDO[@]}" rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
      "$root"/var/log/*.log
    # What the dpkg excludes would have left out (about 40 MB): translations, man pages,
    # docs but their copyright files.
    "${SUDO[@]}" find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    "${SUDO[@]}" rm -rf "$root"/usr/share/locale/* "$root"/usr/share/man/* \
      "$root"/usr/share/info/* "$root"/usr/share/lintian/*
    "${SUDO[@]}" tar -C "$root" -c . >"$BASE_TAR.tmp"
    mv "$BASE_TAR.tmp" "$BASE_TAR"
    "${SUDO[@]}" rm -rf "$root"
  fi
  say "importing $BASE_IMAGE"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' "$BASE_TAR" "$BASE_IMAGE" >/dev/null
}

# The build contexts of the infrastructure images: the Dockerfiles of deploy/docker/
# plus the jars and the binary that deploy/local/infra.sh installs into the cache.
stage_contexts() {
  "$HITL_ROOT/deploy/local/infra.sh" install
  local ctx=$HITL_DOCKER_CONTEXTS
  rm -rf "$ctx.tmp"
  mkdir -p "$ctx.tmp"
  cp -R deploy/docker/kafka deploy/docker/ferretdb deploy/docker/smtp-sink "$ctx.tmp/"
  mkdir -p "$ctx.tmp/kafka/libs"
  cp -l "$HITL_CACHE_DIR/kafka-$HITL_KAFKA_VERSION"/lib/*.jar "$ctx.tmp/kafka/libs/"
  # The binary infra.sh built, with our `_id` index patches (its cache dir names the
  # patch level: read it from the script that builds it, so the two never disagree).
  local patch
  patch=$(sed -n 's/^FERRETDB_PATCH_LEVEL="\(.*\)"$/\1/p' "$HITL_ROOT/deploy/local/lib/ferretdb.sh")
  cp -l "$HITL_CACHE_DIR/ferretdb-$HITL_FERRETDB_VERSION-$patch/ferretdb" "$ctx.tmp/ferretdb/"
  rm -rf "$ctx"
  mv "$ctx.tmp" "$ctx"
}

images() {
  say "building the images (compose build; layers cached by the engine)"
  compose build --progress=plain >"$DOCKER_STATE/build.log" 2>&1 || {
    tail -n 60 "$DOCKER_STATE/build.log" >&2
    echo "docker.sh: image build failed (full log: $DOCKER_STATE/build.log)" >&2
    return 1
  }
  docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' \
    | grep -E '^(hitl-(approval|agent|notifier)|hitl-local/)' | sort >&2
}

cmd_build() {
  mkdir -p "$HITL_CACHE_DIR" "$DOCKER_STATE"
  timed "engine" engine
  # debootstrap mostly waits on the network and dpkg: it overlaps the Go builds.
  local base_pid t0
  t0=$(now)
  base_image >"$DOCKER_STATE/base-image.log" 2>&1 &
  base_pid=$!
  timed "docker compose (Go)" compose_install
  timed "jars, FerretDB, contexts" stage_contexts
  if ! wait "$base_pid"; then
    cat "$DOCKER_STATE/base-image.log" >&2
    return 1
  fi
  TIMINGS+=("$(printf '%-28s %4ss' "base image (alongside)" $(( $(now) - t0 )))")
  timed "images" images
}

cmd_up() {
  cmd_build
  say "compose up (project $PROJECT; approval :$APPROVAL_PORT, agent :$AGENT_PORT)"
  timed "compose up --wait" compose up -d --wait --wait-timeout 180 || {
    compose ps -a >&2
    compose logs --tail 40 >&2
    return 1
  }
}

cmd_demo() {
  sync_env
  timed "demo" "${UV[@]}" run --locked python deploy/demo.py
}

cmd_down() {
  timed "compose down" compose down -v --remove-orphans --timeout 20
}

# The testcontainers path: no infrastructure variables, so the fixtures start their
# own containers (from the images built here) and stop them at the end.
cmd_test() {
  sync_env
  # By default the walking skeleton and the example of a user's own suite: what proves
  # the path (images, fixtures, network); the rest of the suite runs on local infra.
  local targets=("$@")
  if [[ ${#targets[@]} == 0 ]]; then
    targets=(tests/e2e/test_walking_skeleton.py examples/testcontainers)
  fi
  # No registry, so no reaper image either: the fixtures remove their containers.
  timed "testcontainers tests" env -u KAFKA_BOOTSTRAP_SERVERS -u MONGODB_URL \
    HITL_KAFKA_IMAGE="$HITL_KAFKA_IMAGE_LOCAL" HITL_MONGO_IMAGE="$HITL_MONGO_IMAGE_LOCAL" \
    TESTCONTAINERS_RYUK_DISABLED="${TESTCONTAINERS_RYUK_DISABLED:-true}" \
    "${UV[@]}" run --locked pytest -q -p no:cacheprovider \
      "${targets[@]}"
}

cmd_ci() {
  local t0
  t0=$(now)
  trap 'compose down -v --remove-orphans --timeout 20 >/dev/null 2>&1 || true; report_timings' EXIT
  cmd_up
  cmd_demo
  cmd_down
  cmd_test
  TIMINGS+=("$(printf '%-28s %4ss' "docker ci in all" $(( $(now) - t0 )))")
}

main() {
  local cmd=${1:-}
  shift || true
  case "$cmd" in
    engine) engine ;;
    base) engine; base_image ;;
    build) trap report_timings EXIT; cmd_build ;;
    up) trap report_timings EXIT; cmd_up ;;
    demo) cmd_demo ;;
    down) cmd_down ;;
    test) engine; cmd_test "$@" ;;
    ci) cmd_ci ;;
    compose) compose "$@" ;;
    *) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
  esac
}

main "$@"
