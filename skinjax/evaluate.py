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
finds photos the model was not trained on.
"""

import os
import sys

from absl import app
from absl import flags
import jax
import numpy as np

from skinjax.cli import checks
from skinjax.cli import flags as cli_flags
from skinjax.cli import photos
from skinjax.data import pipeline
from skinjax.data import preprocess
from skinjax.data.prepare import files
from skinjax.data.prepare import scoring_photos
from skinjax.evaluation import clinical
from skinjax.evaluation import outputs
from skinjax.evaluation import publish
from skinjax.evaluation import report
from skinjax.evaluation import shift
from skinjax.evaluation import skin_tone
from skinjax.evaluation import subgroups
from skinjax.evaluation import unfamiliar
from skinjax.run_folder import run_config
from skinjax.serving import restore

_RUN = cli_flags.define_run_flags()
_SPLIT = flags.DEFINE_string('split', 'test', 'Dataset split to evaluate.')
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
_OOD_IMAGE_DIR = flags.DEFINE_string(
    'ood_image_dir', None,
    'Photos (any folder layout) of what the model was not trained on: '
    'other conditions, another modality, not skin. Reports how well each '
    'unfamiliarity score tells them from the evaluated photos.')
_RECALIBRATE = flags.DEFINE_bool(
    'recalibrate', False,
    'Refit the temperature and threshold even if saved for this checkpoint.')


def _image_dir_source(config, class_names):
  """The photos of --image_dir as examples, and what was found there."""
  label_map = (scoring_photos.read_label_map(_LABEL_MAP.value)
               if _LABEL_MAP.value else None)
  examples, found = scoring_photos.load_tree(
      _IMAGE_DIR.value, class_names, config.dataset.max_short_side, label_map,
      max_pixels=config.dataset.max_image_pixels)
  for folder, count in found['unmatched_folders'].items():
    print(f'skipped folder {folder!r} ({count} files): no class of the model '
          'has this name; map it with --label_map', file=sys.stderr)
  for skipped in found['skipped']:
    print(f"skipped {skipped['file']}: {skipped['reason']}", file=sys.stderr)
  return examples, found


def _ood_photos(config):
  """The photos under --ood_image_dir as examples, and those skipped."""
  paths, loaded, failed = photos.load([_OOD_IMAGE_DIR.value], config.dataset)
  if not loaded:
    raise scoring_photos.PhotoFolderError(
        f'--ood_image_dir={_OOD_IMAGE_DIR.value}: no usable image '
        f'({len(paths)} files)')
  return [{'image': image, 'label': 0} for _, image in loaded], failed


def _unfamiliar_metrics(config, checkpoint, result) -> dict:
  """The unfamiliar flag on the evaluated photos and how well each score
  tells them from photos the model was not trained on: those under
  --ood_image_dir ('ood') and, evaluating a split of a run trained with
  config.dataset.held_out_classes, that split's photos of them
  ('held_out')."""
  calibration = checkpoint.calibration
  scores = checkpoint.unfamiliarity(result)
  flagged = checkpoint.flag_unfamiliar(scores)
  summary = {'unfamiliar': {
      'score': calibration.unfamiliar_score,
      'threshold': calibration.unfamiliar_threshold,
      'validation_tpr': calibration.unfamiliar_tpr,
      'flagged': float(flagged.mean()),
      'shift': shift.summary(scores, checkpoint.feature_statistics, flagged,
                             calibration.unfamiliar_tpr)}}
  others = {}
  if _OOD_IMAGE_DIR.value:
    source, failed = _ood_photos(config)
    others['ood'] = (source, {
        'image_dir': _OOD_IMAGE_DIR.value,
        'skipped': [{'file': f, 'reason': r} for f, r in failed]})
  held_out = config.dataset.held_out_classes
  if held_out and not _IMAGE_DIR.value:
    others['held_out'] = (pipeline.held_out_source(
        checkpoint.builder, _SPLIT.value, held_out), {
            'classes': list(held_out), 'split': _SPLIT.value})
  for key, (source, about) in others.items():
    if not len(source):
      continue
    ood = checkpoint.unfamiliarity(outputs.predict(
        checkpoint.eval_step, checkpoint.state,
        pipeline.eval_dataset(source, config, jax.process_index(),
                              jax.process_count()), checkpoint.mesh))
    summary[key] = {
        **about, 'num_examples': len(source),
        'flagged': float(checkpoint.flag_unfamiliar(ood).mean()),
        'scores': unfamiliar.compare(scores, ood, calibration.unfamiliar_tpr)}
  return summary


def _by_skin_tone(config, source, logits, labels, class_names,
                  calibration) -> dict:
  """The metrics per ITA group of the photos (estimated on each) and, where
  the dataset records the skin tone it drew, the estimate against it."""
  region = skin_tone.region_for(config.dataset.name)
  tones = [skin_tone.estimate(np.asarray(preprocess.open_image(
      source[i]['image'])), region) for i in range(len(source))]
  result = subgroups.by_skin_tone(
      logits / calibration.temperature, labels, [t['group'] for t in tones],
      class_names, num_bins=config.evaluation.calibration_bins,
      resamples=config.evaluation.bootstrap_resamples)
  if len(source) and 'skin_rgb' in source[0]:
    estimated = np.array([np.nan if t['ita'] is None else t['ita']
                          for t in tones])
    drawn = np.array([skin_tone.ita_of_rgb(source[i]['skin_rgb'])
                      for i in range(len(source))])
    measured = np.isfinite(estimated)
    result['estimate_vs_drawn'] = {
        'pearson_r': float(np.corrcoef(estimated[measured],
                                       drawn[measured])[0, 1]),
        'mean_difference': float(np.mean(estimated[measured]
                                         - drawn[measured])),
        'group_agreement': float(np.mean(
            [skin_tone.group(e) == skin_tone.group(d)
             for e, d in zip(estimated, drawn)]))}
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _RESTRICT.value and not _IMAGE_DIR.value:
    raise app.UsageError('--restrict_to_present_classes needs --image_dir')
  try:
    evaluate(_RUN.evaluation_config())
  except (checks.ConfigError, run_config.RunFolderError, files.CollectionError,
          restore.CheckpointNotFound, scoring_photos.PhotoFolderError) as e:
    sys.exit(f'error: {e}')


def evaluate(config) -> None:
  checks.validate_here(config, batch_keys=('eval_batch_size',))
  workdir, weights = _RUN.workdir.value, _RUN.weights.value
  checkpoint = restore.load(config, workdir, _RUN.checkpoint.value, weights,
                            refit=_RECALIBRATE.value)
  class_names, step = checkpoint.class_names, checkpoint.step
  found = None
  if _IMAGE_DIR.value:
    source, found = _image_dir_source(config, class_names)
    name = 'dir_' + os.path.basename(os.path.normpath(_IMAGE_DIR.value))
  else:
    source = pipeline.data_source(checkpoint.builder, _SPLIT.value,
                                  config.dataset.held_out_classes)
    name = _SPLIT.value
  if weights == 'ema':
    name += '_ema'
  result = outputs.predict(
      checkpoint.eval_step, checkpoint.state, pipeline.eval_dataset(
          source, config, jax.process_index(), jax.process_count()),
      checkpoint.mesh)
  unfamiliar_metrics = _unfamiliar_metrics(config, checkpoint, result)
  if jax.process_index() != 0:
    return

  logits, labels = result['logits'], result['label']
  single_view = result.get('single_view_logits')
  scored_names = list(class_names)
  if _RESTRICT.value:
    present = np.unique(labels)
    if single_view is not None:
      single_view = single_view[:, present]
    logits, labels, scored_names = clinical.restrict_to_classes(
        logits, labels, class_names, present)
  metrics = clinical.clinical_metrics(
      logits, labels, scored_names, checkpoint.calibration,
      config.evaluation.calibration_bins, single_view)
  metrics.update(split=name, checkpoint_step=step, class_names=scored_names)
  if found is not None:
    metrics['image_dir'] = found
  metrics.update(unfamiliar_metrics)
  metrics['skin_tone'] = _by_skin_tone(config, source, logits, labels,
                                       scored_names, checkpoint.calibration)
  out_dir, figures = publish.write(metrics, scored_names, workdir, {
      'name': name, 'workdir': workdir, 'checkpoint step': step,
      'model': config.model.name, 'weights': weights,
      'tta': config.evaluation.tta})
  warning = metrics['unfamiliar']['shift']['warning']
  if warning:
    print(f'warning: {name}: {warning}', file=sys.stderr)
  print(f'\n{name!r}, checkpoint step {step}')
  print(report.text(metrics, scored_names))
  print(f'\nwritten to {out_dir}/ (metrics.json, report.md, figures)')
  publish.log_to_wandb(config, workdir, metrics, scored_names, figures)


if __name__ == '__main__':
  app.run(main, flags_parser=cli_flags.parse_flags)
