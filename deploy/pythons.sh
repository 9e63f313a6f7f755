#!/usr/bin/env bash
# The unit and integration tiers on every other supported Python (3.12, 3.13), each in
# its own environment from the same uv.lock (.venv-py3.12, .venv-py3.13).
# An interpreter is taken from uv's list, pyenv or PATH; with none for a version, uv may
# fetch one (UV_PYTHON_DOWNLOADS), and if that fails too the version is reported missing
# and the script fails. Extra arguments go to pytest instead of the two tiers.
#   deploy/pythons.sh                 # both versions, unit + integration
#   deploy/pythons.sh tests/unit -x   # both versions, just the unit tier
#   HITL_PYTHONS="3.13" deploy/pythons.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HITL_ROOT"
ensure_uv

find_python() {
  local version=$1 found
  if found=$("${UV[@]}" python find --system "$version" 2>/dev/null); then
    echo "$found"
    return
  fi
  for found in "$HOME"/.pyenv/versions/"$version".*/bin/python"$version" \
    "$(command -v "python$version" 2>/dev/null || true)"; do
    if [[ -x $found ]]; then
      echo "$found"
      return
    fi
  done
  "${UV[@]}" python install "$version" >/dev/null 2>&1 && "${UV[@]}" python find "$version"
}

tests=("$@")
((${#tests[@]})) || tests=(tests/unit tests/integration)
failed=()
for version in ${HITL_PYTHONS:-3.12 3.13}; do
  if ! python=$(find_python "$version"); then
    say "Python $version: no interpreter found (pyenv, PATH, or uv python install)"
    failed+=("$version (missing)")
    continue
  fi
  say "Python $version ($python): ${tests[*]}"
  export UV_PROJECT_ENVIRONMENT="$HITL_ROOT/.venv-py$version"
  if ! "${UV[@]}" sync --locked --quiet --python "$python" ||
    ! "${UV[@]}" run --locked --python "$python" pytest -q "${tests[@]}"; then
    failed+=("$version")
  fi
  unset UV_PROJECT_ENVIRONMENT
done
if ((${#failed[@]})); then
  say "failed on Python: ${failed[*]}"
  exit 1
fi
