#!/usr/bin/env bash
# The bf16/EMA experiment: the synthetic recipe trained in float32 and in
# bfloat16, both keeping an EMA of the weights; raw and EMA weights evaluated
# on the test split (ROOT/<dtype>/eval/test/ and .../eval/test_ema/).
#
#   experiments/bf16_ema/run.sh [ROOT] [--config.KEY=VALUE ...]
#
# ROOT defaults to runs/bf16_ema; each dtype trains in ROOT/<dtype>.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="${1:-runs/bf16_ema}"
shift || true
for dtype in float32 bfloat16; do
  flags=(--config.model.dtype="$dtype" --config.ema_decay=0.99 "$@")
  ./launch.sh train configs/synthetic.py --workdir "$ROOT/$dtype" "${flags[@]}"
  ./launch.sh evaluate "$ROOT/$dtype" --split test --weights ema
done
