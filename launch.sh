#!/usr/bin/env bash
# skinjax launcher. Creates .venv (pip install -e .[dev]) on first use.
#
#   ./launch.sh setup [cpu|cuda12|tpu]
#       Creates or updates the venv (.venv, or $SKINJAX_VENV) with skinjax,
#       its test tools and the ONNX converter, and with cuda12 JAX's CUDA 12
#       build (NVIDIA's pip wheels of CUDA, cuDNN and NCCL; the machine needs
#       only the driver) or with tpu JAX's Cloud TPU build, at skinjax's jax
#       pin; then prints the devices JAX sees. cpu (the default) is what the
#       other commands create on first use; it does not remove an
#       accelerator build installed before (use a fresh SKINJAX_VENV).
#   ./launch.sh train CONFIG [--workdir DIR] [--config.KEY=VALUE ...]
#       Trains (resuming if DIR has checkpoints), then evaluates the test
#       split with the run's own config. DIR defaults to runs/<config name>.
#       Ctrl-C or SIGTERM stops training at the end of its step with a
#       checkpoint (the same command resumes) and skips the evaluation.
#   ./launch.sh multiprocess N CONFIG [--workdir DIR] [--config.KEY=VALUE ...]
#       As train, with training spread over N processes on this machine
#       (jax.distributed on 127.0.0.1, CPU collectives unless JAX_PLATFORMS
#       says otherwise): multi-host code, tried on one box. For K devices per
#       process, set XLA_FLAGS=--xla_force_host_platform_device_count=K.
#       Process 0 prints; the others write DIR/process_<i>.log.
#   ./launch.sh evaluate DIR [--split S] [--checkpoint C] [--weights ema]
#       [--config.evaluation.KEY=VALUE ...]
#       Evaluates the run in DIR with its own config (DIR/config.json).
#   ./launch.sh sweep SWEEP_FILE [--root DIR] [--config.KEY=VALUE ...]
#       Trains every trial of the sweep file, one run folder each in DIR
#       (default runs/sweeps/<sweep name>), as a W&B sweep when online with
#       an API key, else here; finished trials are skipped, an interrupted
#       one resumes. Ends with the comparison of the trials.
#   ./launch.sh compare RUN_DIR [RUN_DIR ...] [--metric M] [--output DIR]
#       Compares run folders offline: table, curves (PNG), report.md.
#   ./launch.sh test [--slow | --experiments] [PYTEST ARGS ...]
#       The test suite; --slow runs only the tests marked slow (minutes),
#       --experiments those that reproduce an experiment's figures (an hour).
set -euo pipefail
cd "$(dirname "$0")"

VENV="${SKINJAX_VENV:-.venv}"

# Creates $VENV if missing and installs skinjax into it with the extras of
# $1: cpu, cuda12 or tpu (pyproject.toml's extras of those names).
install() {
  local extras=dev
  [[ "$1" == cpu ]] || extras="dev,$1"
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -e ".[$extras]"
  # The ONNX converter, without its declared dependencies: see the 'export'
  # extra in pyproject.toml.
  "$VENV/bin/pip" install --quiet --no-deps 'jax2onnx==0.17.1'
}

if [[ "${1:-}" == setup ]]; then
  TARGET="${2:-cpu}"
  case "$TARGET" in
    cpu|cuda12|tpu) ;;
    *) echo "error: ./launch.sh setup takes cpu, cuda12 or tpu, not '$TARGET'" >&2
       exit 2 ;;
  esac
  echo "Installing skinjax ($TARGET) into $VENV..."
  install "$TARGET"
  "$VENV/bin/python" -c 'import jax; print(f"jax {jax.__version__}:", jax.devices())'
  exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "Creating $VENV and installing skinjax into it (first run only)..."
  install cpu
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

# Runs "$@" in the background as one more training process (PIDS); the
# output goes to $LOG if set.
start() {
  if [[ -n "${LOG:-}" ]]; then "$@" >"$LOG" 2>&1 & else "$@" & fi
  PIDS+=($!)
}

# Waits for every process in PIDS; returns the first failure's status. A
# SIGINT or SIGTERM to this script is passed on to them as SIGTERM (training
# then checkpoints and exits 0) and sets STOPPED.
PIDS=()
STOPPED=0
trap 'STOPPED=1; kill -TERM "${PIDS[@]}" 2>/dev/null || true' INT TERM
wait_all() {
  local status=0 pid s
  for pid in "${PIDS[@]}"; do
    while :; do
      s=0; wait "$pid" || s=$?
      kill -0 "$pid" 2>/dev/null || break  # else a signal interrupted wait
    done
    if (( s != 0 && status == 0 )); then status=$s; fi
  done
  PIDS=()
  return "$status"
}

evaluate_unless_stopped() {
  if (( STOPPED )); then
    echo "Training was stopped: not evaluating. Run the same command to resume."
    exit 0
  fi
  "$PYTHON" -m skinjax.evaluate --workdir "$WORKDIR" --split test
}

command="${1:-}"
[[ -n "$command" ]] || usage
shift
case "$command" in
  train)
    [[ $# -ge 1 ]] || usage
    CONFIG="$1"; shift
    parse_workdir "$@"
    start "$PYTHON" -m skinjax.train --config "$CONFIG" --workdir "$WORKDIR" \
      ${REST[@]+"${REST[@]}"}
    wait_all
    evaluate_unless_stopped
    ;;
  multiprocess)
    [[ $# -ge 2 && "$1" =~ ^[1-9][0-9]*$ ]] || usage
    NUM_PROCESSES="$1"; CONFIG="$2"; shift 2
    parse_workdir "$@"
    mkdir -p "$WORKDIR"
    PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
    for ((i = 0; i < NUM_PROCESSES; i++)); do
      LOG=""; (( i == 0 )) || LOG="$WORKDIR/process_$i.log"
      start "$PYTHON" -m skinjax.train --config "$CONFIG" --workdir "$WORKDIR" \
        --coordinator_address "127.0.0.1:$PORT" \
        --num_processes "$NUM_PROCESSES" --process_id "$i" \
        ${REST[@]+"${REST[@]}"}
    done
    wait_all || { echo "A training process failed; see $WORKDIR/process_*.log." >&2; exit 1; }
    evaluate_unless_stopped
    ;;
  evaluate)
    [[ $# -ge 1 ]] || usage
    WORKDIR="$1"; shift
    "$PYTHON" -m skinjax.evaluate --workdir "$WORKDIR" "$@"
    ;;
  sweep)
    [[ $# -ge 1 ]] || usage
    exec "$PYTHON" -m skinjax.sweep "$@"
    ;;
  compare)
    [[ $# -ge 1 ]] || usage
    exec "$PYTHON" -m skinjax.compare "$@"
    ;;
  test)
    if [[ "${1:-}" == "--slow" ]]; then
      shift
      exec "$PYTHON" -m pytest -m slow "$@"
    fi
    if [[ "${1:-}" == "--experiments" ]]; then
      shift
      exec "$PYTHON" -m pytest -m experiment "$@"
    fi
    exec "$PYTHON" -m pytest "$@"
    ;;
  *) usage ;;
esac
