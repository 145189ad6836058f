#!/usr/bin/env bash
# skinjax launcher. Creates .venv (pip install -e .[dev]) on first use.
#
#   ./launch.sh train CONFIG [--workdir DIR] [--config.KEY=VALUE ...]
#       Trains (resuming if DIR has checkpoints), then evaluates the test
#       split. DIR defaults to runs/<config name>. The --config.* overrides
#       are passed to both steps.
#   ./launch.sh evaluate CONFIG [--workdir DIR] [--split S] [--checkpoint C]
#   ./launch.sh test [--slow] [PYTEST ARGS ...]
#       The test suite; --slow runs only the tests marked slow (minutes).
set -euo pipefail
cd "$(dirname "$0")"

VENV="${SKINJAX_VENV:-.venv}"
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "Creating $VENV and installing skinjax into it (first run only)..."
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -e '.[dev]'
fi
PYTHON="$VENV/bin/python"

usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" | sed '$d'; exit 2; }

# Splits "$@" into WORKDIR (from --workdir) and REST (everything else).
parse_workdir() {
  WORKDIR="runs/$(basename "$CONFIG" .py)"
  REST=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --workdir=*) WORKDIR="${1#--workdir=}" ;;
      --workdir) WORKDIR="$2"; shift ;;
      *) REST+=("$1") ;;
    esac
    shift
  done
}

command="${1:-}"
[[ -n "$command" ]] || usage
shift
case "$command" in
  train)
    [[ $# -ge 1 ]] || usage
    CONFIG="$1"; shift
    parse_workdir "$@"
    "$PYTHON" -m skinjax.train --config "$CONFIG" --workdir "$WORKDIR" \
      ${REST[@]+"${REST[@]}"}
    "$PYTHON" -m skinjax.evaluate --config "$CONFIG" --workdir "$WORKDIR" \
      --split test ${REST[@]+"${REST[@]}"}
    ;;
  evaluate)
    [[ $# -ge 1 ]] || usage
    CONFIG="$1"; shift
    parse_workdir "$@"
    "$PYTHON" -m skinjax.evaluate --config "$CONFIG" --workdir "$WORKDIR" \
      ${REST[@]+"${REST[@]}"}
    ;;
  test)
    if [[ "${1:-}" == "--slow" ]]; then
      shift
      exec "$PYTHON" -m pytest -m slow "$@"
    fi
    exec "$PYTHON" -m pytest "$@"
    ;;
  *) usage ;;
esac
