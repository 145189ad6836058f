r"""Evaluates a checkpoint on a dataset split or on any class-per-folder tree.

  python -m skinjax.evaluate --config configs/synthetic.py \
      --workdir runs/synthetic --split test [--checkpoint latest|best|STEP] \
      [--weights raw|ema]
  python -m skinjax.evaluate --config ... --workdir ... --image_dir DIR \
      [--label_map map.json] [--restrict_to_present_classes]

Fits (once per checkpoint, on the validation split) the temperature and the
selective-prediction threshold, then writes into WORKDIR/eval/<name>/:
metrics.json, the figures (PNG) and report.md, and logs the same to the run's
W&B run. With --weights ema, <name> ends in _ema. Pass the same --config (and --config.* overrides) that trained the
checkpoint.
"""

import json
import os
import sys

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np
import wandb

from skinjax import config_lib
from skinjax import evaluation
from skinjax import inference
from skinjax import plots
from skinjax import report
from skinjax import tracking
from skinjax.data import image_dir
from skinjax.data import pipeline

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file the checkpoint was trained with.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Training run folder holding checkpoints/.')
_SPLIT = flags.DEFINE_string('split', 'test', 'Dataset split to evaluate.')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', 'latest',
    "'latest', 'best' (by validation config.best_metric) or a step number.")
_WEIGHTS = flags.DEFINE_enum(
    'weights', 'raw', ['raw', 'ema'],
    "'ema': the moving average of the weights (runs with config.ema_decay).")
_IMAGE_DIR = flags.DEFINE_string(
    'image_dir', None,
    'Evaluate the photos in DIR/<class>/... instead of a split; folder names '
    'are matched to class names ignoring case.')
_LABEL_MAP = flags.DEFINE_string(
    'label_map', None,
    'JSON file {"folder name": "class name"} for --image_dir folders spelled '
    'differently from the class names.')
_RESTRICT = flags.DEFINE_bool(
    'restrict_to_present_classes', False,
    'With --image_dir: score over the classes that have a folder only.')
_RECALIBRATE = flags.DEFINE_bool(
    'recalibrate', False,
    'Refit the temperature and threshold even if saved for this checkpoint.')


def _image_dir_dataset(config, class_names):
  label_map = (image_dir.read_label_map(_LABEL_MAP.value)
               if _LABEL_MAP.value else None)
  examples, found = image_dir.load_tree(
      _IMAGE_DIR.value, class_names, config.dataset.max_short_side, label_map)
  for folder, count in found['unmatched_folders'].items():
    print(f'skipped folder {folder!r} ({count} files): no class of the model '
          'has this name; map it with --label_map', file=sys.stderr)
  for skipped in found['skipped']:
    print(f"skipped {skipped['file']}: {skipped['reason']}", file=sys.stderr)
  return examples, found


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _RESTRICT.value and not _IMAGE_DIR.value:
    raise app.UsageError('--restrict_to_present_classes needs --image_dir')
  config = _CONFIG.value
  config_lib.exit_if_invalid(config)
  workdir = _WORKDIR.value
  checkpoint = inference.load(config, workdir, _CHECKPOINT.value,
                              _WEIGHTS.value, refit=_RECALIBRATE.value)
  class_names, step = checkpoint.class_names, checkpoint.step

  found = None
  if _IMAGE_DIR.value:
    try:
      source, found = _image_dir_dataset(config, class_names)
    except (FileNotFoundError, ValueError) as e:
      sys.exit(f'error: {e}')
    name = 'dir_' + os.path.basename(os.path.normpath(_IMAGE_DIR.value))
  else:
    source = pipeline.data_source(checkpoint.builder, _SPLIT.value)
    name = _SPLIT.value
  if _WEIGHTS.value == 'ema':
    name += '_ema'
  outputs = evaluation.predict(
      checkpoint.eval_step, checkpoint.state, pipeline.eval_dataset(
          source, config, jax.process_index(), jax.process_count()),
      checkpoint.mesh)
  if jax.process_index() != 0:
    return

  logits, labels = outputs['logits'], outputs['label']
  single_view = outputs.get('single_view_logits')
  scored_names = list(class_names)
  if _RESTRICT.value:
    present = np.unique(labels)
    if single_view is not None:
      single_view = single_view[:, present]
    logits, labels, scored_names = evaluation.restrict_to_classes(
        logits, labels, class_names, present)
  metrics = evaluation.clinical_metrics(
      logits, labels, scored_names, checkpoint.calibration,
      config.evaluation.calibration_bins, single_view)
  metrics.update(split=name, checkpoint_step=step, class_names=scored_names)
  if found is not None:
    metrics['image_dir'] = found

  out_dir = os.path.join(workdir, 'eval', name)
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, 'metrics.json'), 'w') as f:
    json.dump(metrics, f, indent=2)
  figures = plots.write_all(metrics, scored_names, out_dir)
  with open(os.path.join(out_dir, 'report.md'), 'w') as f:
    f.write(report.markdown(metrics, scored_names, figures, {
        'name': name, 'workdir': workdir, 'checkpoint step': step,
        'model': config.model.name, 'weights': _WEIGHTS.value,
        'tta': config.evaluation.tta}))
  print(f'\n{name!r}, checkpoint step {step}')
  print(evaluation.format_report(metrics, scored_names))
  print(f'\nwritten to {out_dir}/ (metrics.json, report.md, figures)')
  _log_to_wandb(config, workdir, metrics, scored_names, figures)


def _log_to_wandb(config, workdir, metrics, class_names, figures):
  run = tracking.init_wandb(config.wandb, workdir, config.to_dict())
  if run is None:
    return
  split = metrics['split']
  calibration, selective = metrics['calibration'], metrics['selective']
  scalars = {f'{split}/{k}': metrics[k] for k in config_lib.BEST_METRICS +
             ('nll', 'ece', 'macro_roc_auc', 'num_examples')}
  scalars.update({
      f'{split}/temperature': calibration['temperature'],
      f'{split}/ece_uncalibrated': calibration['ece_before'],
      f'{split}/nll_uncalibrated': calibration['nll_before'],
      f'{split}/selective_coverage': selective['coverage'],
      f'{split}/aurc': selective['area_under_risk_coverage']})
  run.log({'step': metrics['checkpoint_step'], **scalars})
  run.summary.update(scalars)
  per_class = wandb.Table(
      columns=['class', 'precision', 'recall', 'f1', 'roc_auc', 'support'],
      data=[[n] + [metrics['per_class'][n][k] for k in
                   ('precision', 'recall', 'f1', 'roc_auc', 'support')]
            for n in class_names])
  confusion = wandb.Table(columns=['true'] + list(class_names),
                          data=[[n] + row for n, row in
                                zip(class_names, metrics['confusion_matrix'])])
  run.log({f'{split}/per_class': per_class, f'{split}/confusion_matrix':
           confusion, **{f'{split}/{k}': wandb.Image(path)
                         for k, path in figures.items()},
           'step': metrics['checkpoint_step']})
  run.finish()


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main, flags_parser=config_lib.parse_flags)
