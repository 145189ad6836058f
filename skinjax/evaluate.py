r"""Evaluates a run's checkpoint on a dataset split or on any class-per-folder tree.

  python -m skinjax.evaluate --workdir runs/synthetic [--split test] \
      [--checkpoint best|latest|STEP] [--weights raw|ema] \
      [--config.evaluation.tta=flips ...]
  python -m skinjax.evaluate --workdir ... --image_dir DIR \
      [--label_map map.json] [--restrict_to_present_classes]
  python -m skinjax.evaluate --workdir ... --ood_image_dir NOT_TRAINED_ON/

The run folder is the truth: the config is the run's own config.json, so a
checkpoint is scored with the settings that trained it. Only evaluation-time
keys may be changed (see --config). Fits (once per checkpoint, on the
validation split) the temperature, the selective-prediction threshold and
the unfamiliar flag's threshold (its Mahalanobis statistics on training
photos), then writes into WORKDIR/eval/<name>/: metrics.json, the figures
(PNG) and report.md, and logs the same to the run's W&B run. With --weights
ema, <name> ends in _ema. Besides the metrics: the same by skin tone (ITA
group measured on each photo), the share flagged unfamiliar, how far the
photos lie from the validation photos (a warning when the validation
thresholds are unlikely to hold), and with --ood_image_dir or a run trained
with config.dataset.held_out_classes, how well each unfamiliarity score
finds photos the model was not trained on. Scoring the test split also
writes WORKDIR/MODEL_CARD.md from those metrics. Run folders from before training
wrote class_names.json get it here. The dataset is read only where needed:
`--image_dir` on a calibrated run needs the run folder alone.
"""

from absl import app
from absl import flags

from skinjax.cli import checks
from skinjax.cli import compilation_cache
from skinjax.cli import flags as cli_flags
from skinjax.cli import main as cli_main
from skinjax.evaluation import runner

_RUN = cli_flags.define_run_flags(__name__)
_SPLIT = flags.DEFINE_string('split', 'test', 'Dataset split to evaluate.')
_IMAGE_DIR = flags.DEFINE_string(
    'image_dir', None,
    'Evaluate the photos in DIR/<class>/... instead of a split; folder names '
    'are matched to class names ignoring case. DICOM files (.dcm, or no '
    'suffix and the DICM preamble) count, one example per frame.')
_LABEL_MAP = flags.DEFINE_string(
    'label_map', None,
    'JSON file {"folder name": "class name"} for --image_dir folders spelled '
    'differently from the class names.')
_RESTRICT = flags.DEFINE_bool(
    'restrict_to_present_classes', False,
    'With --image_dir: score over the classes that have a folder only.')
_OOD_IMAGE_DIR = flags.DEFINE_string(
    'ood_image_dir', None,
    'Photos (any folder layout) of what the model was not trained on: '
    'other conditions, another modality, not skin. Reports how well each '
    'unfamiliarity score tells them from the evaluated photos.')
_RECALIBRATE = flags.DEFINE_bool(
    'recalibrate', False,
    'Refit the temperature and threshold even if saved for this checkpoint.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _RESTRICT.value and not _IMAGE_DIR.value:
    raise app.UsageError('--restrict_to_present_classes needs --image_dir')
  config = _RUN.evaluation_config()
  checks.validate_here(config, batch_keys=('eval_batch_size',))
  compilation_cache.enable(config)
  runner.evaluate(
      config, _RUN.workdir.value, split=_SPLIT.value,
      checkpoint=_RUN.checkpoint.value, weights=_RUN.weights.value,
      image_dir=_IMAGE_DIR.value, label_map=_LABEL_MAP.value,
      restrict_to_present_classes=_RESTRICT.value,
      ood_image_dir=_OOD_IMAGE_DIR.value, recalibrate=_RECALIBRATE.value)


if __name__ == '__main__':
  cli_main.run(main)
