"""`evaluate` as a function of values: a run's checkpoint scored on a dataset
split or a class-per-folder tree, its calibration fitted if it has none,
and the report written into WORKDIR/eval/<name>/ and logged to W&B.

The dataset is read only where it is needed: for a split, for a calibration
not yet fitted, for class_names.json of a run folder from before training
wrote it, and for held-out classes. So `--image_dir` works from a copied run
folder without the dataset once the run is calibrated.
"""

import functools
import os
import sys

import jax
import numpy as np

from skinjax import data
from skinjax.data import pipeline
from skinjax.evaluation import calibrate
from skinjax.evaluation import clinical
from skinjax.evaluation import image_dir as image_dir_lib
from skinjax.evaluation import publish
from skinjax.evaluation import report
from skinjax.evaluation import quality_gate
from skinjax.evaluation import subgroups
from skinjax.evaluation import unfamiliar_report
from skinjax.inference import forward
from skinjax.inference import preparation
from skinjax.inference import restore
from skinjax.inference import skin_tone
from skinjax.run_folder import class_names as class_names_lib
from skinjax.run_folder import model_card


def evaluate(config, workdir: str, *, split: str = 'test',
             checkpoint: str = 'best', weights: str = 'raw',
             image_dir: str | None = None, label_map: str | None = None,
             restrict_to_present_classes: bool = False,
             ood_image_dir: str | None = None,
             recalibrate: bool = False) -> dict | None:
  """Scores checkpoint `checkpoint` ('best', 'latest', a step) of the run in
  `workdir` on `split`, or on the photos in `image_dir`/<class>/...; returns
  the metrics (None on processes other than 0)."""
  load_builder = functools.cache(lambda: data.load_builder(config.dataset))
  _write_class_names_if_missing(config, workdir, load_builder)
  scorer = calibrate.calibrated(
      config, workdir, restore.restore(config, workdir, checkpoint, weights),
      load_builder, refit=recalibrate)
  found = None
  if image_dir:
    source, found = _image_dir_source(config, image_dir, label_map,
                                      scorer.class_names)
    name = 'dir_' + os.path.basename(os.path.normpath(image_dir))
  else:
    source = pipeline.data_source(load_builder(), split,
                                  config.dataset.held_out_classes)
    name = split
  if weights == 'ema':
    name += '_ema'
  result = _outputs(config, scorer, source, f'scoring {name}')
  others = unfamiliar_report.other_sources(
      config, ood_image_dir,
      None if image_dir or not config.dataset.held_out_classes
      else (load_builder(), split))
  unfamiliar_metrics = unfamiliar_report.summary(
      scorer, result, {key: (about, len(source),
                             _outputs(config, scorer, source,
                                      f'scoring {key}'))
                       for key, (source, about) in others.items()
                       if len(source)})
  if jax.process_index() != 0:
    return None
  return _report(config, workdir, scorer, name, source, result, found,
                 unfamiliar_metrics, restrict_to_present_classes)


def _report(config, workdir, scorer, name, source, result, found,
            unfamiliar_metrics, restrict: bool) -> dict:
  """The metrics of `result`, written, printed and logged."""
  logits, labels = result['logits'], result['label']
  single_view = result.get('single_view_logits')
  scored_names = list(scorer.class_names)
  if restrict:
    present = np.unique(labels)
    if single_view is not None:
      single_view = single_view[:, present]
    logits, labels, scored_names = clinical.restrict_to_classes(
        logits, labels, scorer.class_names, present)
  metrics = clinical.clinical_metrics(
      logits, labels, scored_names, scorer.calibration,
      config.evaluation.calibration_bins, single_view)
  metrics.update(split=name, checkpoint_step=scorer.step,
                 class_names=scored_names)
  if found is not None:
    metrics['image_dir'] = found
  metrics.update(unfamiliar_metrics)
  tones, verdicts = quality_gate.judgements(
      scorer.quality_gate(config), source,
      skin_tone.region_for(config.dataset.name))
  metrics['skin_tone'] = subgroups.skin_tone_metrics(
      config, source, tones, logits, labels, scored_names,
      scorer.calibration)
  metrics['quality'] = quality_gate.summary(
      verdicts, [tone['group'] for tone in tones], logits, labels)
  metrics['interval'] = subgroups.overall_interval(
      logits / scorer.calibration.temperature, labels, scored_names,
      num_bins=config.evaluation.calibration_bins,
      resamples=config.evaluation.bootstrap_resamples)
  out_dir, figures = publish.write(metrics, scored_names, workdir, {
      'name': name, 'workdir': workdir, 'checkpoint step': scorer.step,
      'model': config.model.name, 'weights': scorer.weights,
      'tta': config.evaluation.tta})
  warning = metrics['unfamiliar']['shift']['warning']
  if warning:
    print(f'warning: {name}: {warning}', file=sys.stderr)
  print(f'\n{name!r}, checkpoint step {scorer.step}')
  print(report.text(metrics, scored_names))
  print(f'\nwritten to {out_dir}/ (metrics.json, report.md, figures)')
  if name in ('test', 'test_ema'):  # the card reports the test split
    card = model_card.write(
        os.path.join(workdir, model_card.FILE), workdir, config.to_dict(),
        checkpoint_step=scorer.step, weights=scorer.weights)
    print(f'model card: {card}')
  publish.log_to_wandb(config, workdir, metrics, scored_names, figures)
  return metrics


def _outputs(config, scorer, source, desc: str) -> dict:
  return forward.predict(
      scorer.eval_step, scorer.state, pipeline.eval_dataset(
          source, config, jax.process_index(), jax.process_count()),
      scorer.mesh, desc=desc, total=len(source))


def _write_class_names_if_missing(config, workdir: str, load_builder) -> None:
  """Run folders from before training wrote class_names.json get it here,
  from the run's dataset, once."""
  if class_names_lib.exists(workdir):
    return
  names = pipeline.class_names(load_builder(),
                               config.dataset.held_out_classes)
  if jax.process_index() == 0:
    print(f'Wrote {class_names_lib.write(workdir, names)} (this run folder '
          'predates it; predict, serve and export read it).')


def _image_dir_source(config, root: str, label_map: str | None,
                      class_names) -> tuple:
  """The photos of `root`/<class>/... as examples, and what was found
  there; skipped folders and files reported on stderr."""
  examples, found = image_dir_lib.load_tree(
      root, class_names, preparation.Recipe.from_config(config),
      image_dir_lib.read_label_map(label_map) if label_map else None)
  for folder, count in found['unmatched_folders'].items():
    print(f'skipped folder {folder!r} ({count} files): no class of the model '
          'has this name; map it with --label_map', file=sys.stderr)
  for skipped in found['skipped']:
    print(f"skipped {skipped['file']}: {skipped['reason']}", file=sys.stderr)
  return examples, found
