#!/usr/bin/env bash
# The accelerator benchmark, in one command, on a GPU (or TPU) machine that
# may have no network and already has JAX with its accelerator plugin:
#
#   experiments/accelerator/run.sh [WHEELS_DIR] [OUT_DIR]
#
# With WHEELS_DIR (made by prepare_wheels.sh on a networked machine), it
# installs skinjax and its other dependencies from there, offline, into
# /tmp/skinjax-site, beside the machine's own JAX. Without it, skinjax must
# already be importable. Then, for ResNet-50 and EfficientNet-Lite0 at 224 px
# in bfloat16: the train step's images/s per device, model FLOPs utilisation
# and peak memory on a synthetic batch, and end-to-end images/s fed by the
# real grain pipeline with one worker per core (augmentation on the device),
# written to OUT_DIR/accelerator.json (default: .). About 5 minutes on one
# H100/H200 (most of it compiling and generating photos).
#
# The settings are environment variables, for a smaller trial: MODELS,
# IMAGE_SIZE, DTYPE, BATCH (global), STEPS, NUM_WORKERS, NUM_IMAGES, WIDTH.
set -euo pipefail
WHEELS="${1:-}"
OUT="${2:-.}"
cd "$(dirname "$0")/../.."
if [[ -n "$WHEELS" ]]; then
  # Only what this Python lacks, or has at an unsuitable version, goes into
  # /tmp/skinjax-site: pip resolves against the installed packages (its
  # JAX stays), offline, then installs the chosen wheels there.
  python3 -m pip install --quiet --no-index --find-links "$WHEELS" \
    --dry-run --report /tmp/skinjax-install.json -r "$WHEELS/requirements.txt"
  mapfile -t NEEDED < <(python3 -c '
import json, sys, urllib.parse, urllib.request
for item in json.load(open(sys.argv[1]))["install"]:
  print(urllib.request.url2pathname(urllib.parse.urlparse(
      item["download_info"]["url"]).path))' /tmp/skinjax-install.json)
  python3 -m pip install --quiet --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target /tmp/skinjax-site \
    "$WHEELS"/skinjax-*.whl "${NEEDED[@]}"
  export PYTHONPATH=/tmp/skinjax-site${PYTHONPATH:+:$PYTHONPATH}
  cd /tmp  # import the installed skinjax, not this checkout
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
python3 -c 'import jax; print("JAX", jax.__version__, "on", jax.devices())'
python3 -m skinjax.bench \
  --sections=train_step,end_to_end \
  --models="${MODELS:-resnet50,efficientnet_lite0}" \
  --image_sizes="${IMAGE_SIZE:-224}" --dtypes="${DTYPE:-bfloat16}" \
  --steps="${STEPS:-20}" --warmup_steps=3 \
  --num_images="${NUM_IMAGES:-4096}" \
  --config.batch_size="${BATCH:-256}" \
  --config.model.width="${WIDTH:-64}" \
  --config.input.num_workers="${NUM_WORKERS:-$(nproc)}" \
  --config.augment.on_device=True \
  --output="$OUT/accelerator.json"
