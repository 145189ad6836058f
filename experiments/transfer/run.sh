#!/usr/bin/env bash
# ImageNet fine-tuning against training from scratch on one real dataset,
# same image size, steps and seed: EfficientNet-Lite0 from ImageNet,
# EfficientNet-Lite0 from random weights, and a ResNet-18 from scratch.
# Each run trains, then evaluates its test split (launch.sh train).
#
#   experiments/transfer/run.sh ham10000|dermnet MANUAL_DIR [ROOT] [--config.KEY=VALUE ...]
#
# Runs land in ROOT/<dataset>_<run> (ROOT defaults to runs/transfer).
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 2; }
cd "$(dirname "$0")/../.."
DATASET="$1"; MANUAL_DIR="$2"; shift 2
ROOT=runs/transfer
if [[ $# -ge 1 && "$1" != --* ]]; then ROOT="$1"; shift; fi
# Sized to finish in under an hour per run on a 2-core CPU.
COMMON=(--config.dataset.manual_dir="$MANUAL_DIR" --config.image_size=112
        --config.batch_size=32 --config.eval_batch_size=128
        --config.num_train_steps=800 --config.optimizer.warmup_steps=80
        --config.eval_every_steps=200 --config.checkpoint_every_steps=200 "$@")

run() {  # name, config, flags...
  local name="$1" config="$2" start
  shift 2
  start=$(date +%s)
  ./launch.sh train "$config" --workdir "$ROOT/${DATASET}_$name" \
    "${COMMON[@]}" "$@"
  echo "${DATASET}_$name: $(( $(date +%s) - start )) s (train + test evaluation)"
}

run imagenet "configs/$DATASET.py"
run scratch "configs/$DATASET.py" --config.model.init_from=
run resnet18 "configs/$DATASET.py:resnet50" --config.model.name=resnet18 \
  --config.model.width=32 --config.optimizer.learning_rate=0.05
