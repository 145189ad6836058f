#!/usr/bin/env bash
# Run on a machine WITH network access, from anywhere:
#
#   experiments/accelerator/prepare_wheels.sh WHEELS_DIR [PYTHON_VERSION]
#
# Fills WHEELS_DIR with skinjax's wheel and the wheels of what it needs,
# except JAX itself and what JAX brings (jax, jaxlib, the CUDA plugin,
# NVIDIA's libraries, numpy, scipy, ml_dtypes, opt_einsum), which the GPU
# machine already has, and except the ImageNet weight packages, which the
# benchmark does not load. PYTHON_VERSION is the GPU machine's (default
# 3.12); the wheels are for x86_64 Linux. Copy WHEELS_DIR to the GPU machine
# and run experiments/accelerator/run.sh there: it installs only what that
# machine lacks. About 190 MB; pyarrow (55 MB, which tensorflow-datasets
# asks for and the benchmark never imports) and others the GPU machine
# already has at a suitable version may be deleted to carry less.
set -euo pipefail
WHEELS="${1:?usage: prepare_wheels.sh WHEELS_DIR [PYTHON_VERSION]}"
PY="${2:-3.12}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$WHEELS"
python3 -m pip wheel --quiet --no-deps --wheel-dir "$WHEELS" "$ROOT"
REQUIREMENTS="$WHEELS/requirements.txt"
python3 "$(dirname "$0")/requirements.py" "$WHEELS"/skinjax-*.whl >"$REQUIREMENTS"
PLATFORMS=()
for n in 17 24 27 28 31 34 35; do
  PLATFORMS+=(--platform "manylinux_2_${n}_x86_64")
done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64
            --platform linux_x86_64 --platform any)
# pip resolves the whole tree for the target (JAX included, as flax and
# optax ask for it); JAX's wheels are then removed. A dependency published
# only as source (promise, say: pure Python) is built into a wheel here
# first, and the resolution tried again.
for attempt in $(seq 10); do
  if python3 -m pip download --quiet --only-binary=:all: \
      --python-version "$PY" --implementation cp "${PLATFORMS[@]}" \
      --find-links "$WHEELS" -d "$WHEELS" -r "$REQUIREMENTS" \
      2>"$WHEELS/.pip.log"; then
    break
  fi
  missing=$(sed -n 's/.*No matching distribution found for \([A-Za-z0-9_.-]*\).*/\1/p' \
    "$WHEELS/.pip.log" | head -1)
  if [[ -z "$missing" || $attempt == 10 ]]; then
    grep -v '^WARNING' "$WHEELS/.pip.log" >&2
    exit 1
  fi
  echo "building a wheel of $missing (published as source only)"
  python3 -m pip wheel --quiet --no-deps --wheel-dir "$WHEELS" "$missing"
done
rm -f "$WHEELS/.pip.log" "$WHEELS"/jax-[0-9]*.whl "$WHEELS"/jaxlib-*.whl \
  "$WHEELS"/jax_cuda*.whl "$WHEELS"/nvidia_*.whl "$WHEELS"/numpy-*.whl \
  "$WHEELS"/scipy-*.whl "$WHEELS"/ml_dtypes-*.whl "$WHEELS"/opt_einsum-*.whl
du -sh "$WHEELS"
