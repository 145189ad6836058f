"""Fits a checkpoint's calibration on its run's dataset and saves it beside
the checkpoint, where scoring reads it (skinjax.inference.calibration): the
temperature, the selective-prediction threshold and the unfamiliar flag's
threshold on the validation split, the Mahalanobis statistics on training
photos, and the quality gate's statistics on the run's own photos
(skinjax.inference.quality.fit). `evaluate` does this once per checkpoint
and scoring setting."""

import dataclasses

import jax
import numpy as np

from skinjax import errors
from skinjax.data import pipeline
from skinjax.data import preprocess
from skinjax.evaluation import calibration as calibration_lib
from skinjax.evaluation import unfamiliar
from skinjax.inference import calibration as saved_calibration
from skinjax.inference import forward
from skinjax.inference import quality
from skinjax.inference import restore
from skinjax.inference import unfamiliar as unfamiliar_scores


class NotCalibratable(errors.UserError):
  """The checkpoint's outputs are not finite (a diverged run): no
  temperature, threshold or statistics can be fitted to them."""


def calibrated(config, workdir: str, checkpoint: restore.Checkpoint,
               load_builder, refit: bool = False,
               outputs=None) -> restore.Checkpoint:
  """`checkpoint` with its calibration: the saved one if fitted for exactly
  these weights and settings (split, image size and crop, TTA, max_risk,
  unfamiliar score and rate), else (or with `refit`) one fitted now on the
  splits of the dataset `load_builder()` gives (called only then) and
  saved. `outputs(split, limit)`, when given, supplies a split's outputs
  known already (the frozen-feature path's cache; None where not known)
  instead of computing them."""
  step, weights = checkpoint.step, checkpoint.weights
  digest = restore.params_digest(checkpoint.state.params)
  want = saved_calibration.wanted(config, step, weights, digest)
  saved = saved_calibration.load(workdir, step, weights)
  statistics_file = unfamiliar_scores.statistics_path(
      saved_calibration.path(workdir, step, weights))
  if saved is not None and not refit:
    differs = saved_calibration.mismatches(saved, want)
    statistics = unfamiliar_scores.load_statistics(statistics_file)
    if not differs and quality.current(statistics):
      return dataclasses.replace(checkpoint, calibration=saved,
                                 feature_statistics=statistics)
    if jax.process_index() == 0:
      reason = (', '.join(f'{k} {old!r} -> {new!r}'
                          for k, (old, new) in differs.items())
                if differs else f'{statistics_file} missing, unreadable or '
                'without the quality gate\'s statistics')
      print(f'The saved calibration was fitted for other settings ({reason})'
            ': refitting.')
  calibration, statistics = _fit(config, checkpoint, load_builder(), want,
                                 outputs)
  return save(workdir, checkpoint, calibration, statistics)


def save(workdir: str, checkpoint: restore.Checkpoint, calibration,
         statistics: dict) -> restore.Checkpoint:
  """Saves a fitted calibration and its feature statistics beside the
  checkpoint (by process 0); returns `checkpoint` with them."""
  if jax.process_index() == 0:
    target = saved_calibration.path(workdir, checkpoint.step,
                                    checkpoint.weights)
    # The statistics first: a calibration file never stands without them.
    unfamiliar_scores.save_statistics(
        statistics, unfamiliar_scores.statistics_path(target))
    print(f'Calibrated on {calibration.fitted_on["split"]}: temperature '
          f'{calibration.temperature:.3f}, unfamiliar above '
          f'{calibration.unfamiliar_score} '
          f'{calibration.unfamiliar_threshold:.4g} (saved to '
          f'{saved_calibration.save(calibration, workdir)}).')
  return dataclasses.replace(checkpoint, calibration=calibration,
                             feature_statistics=statistics)


def _fit(config, checkpoint, builder, want: dict, known=None) -> tuple:
  """(calibration, feature statistics) fitted now: statistics on training
  photos, the rest on the validation split."""
  def outputs_of(split, limit=None):
    found = None
    if known and config.evaluation.tta == 'none':
      found = known(split, limit)
    if found is None:
      found = _outputs(config, builder, split, checkpoint, limit)
    return found

  training = outputs_of(config.dataset.train_split,
                        config.evaluation.unfamiliar_fit_examples)
  _check_finite(checkpoint, 'training', training)
  statistics = unfamiliar.fit_feature_statistics(
      training['features'], training['label'], len(checkpoint.class_names))
  statistics.update(_fit_quality_gate(config, builder, want))
  return fit_outputs(config, checkpoint, statistics,
                     outputs_of(want['split']), want)


def fit_outputs(config, checkpoint, statistics: dict, result: dict,
                want: dict) -> tuple:
  """(calibration, feature statistics with the validation photos'
  unfamiliarity added) fitted on validation outputs already computed
  (`result`: 'logits', 'features', 'label'), for weights whose training
  feature `statistics` are known; extending a run fits its own this way."""
  _check_finite(checkpoint, want['split'], result)
  calibration = calibration_lib.fit(
      result['logits'], result['label'],
      max_risk=config.evaluation.max_risk,
      num_bins=config.evaluation.calibration_bins,
      checkpoint_step=checkpoint.step, weights=checkpoint.weights,
      tta=config.evaluation.tta, split=want['split'],
      image_size=want['image_size'], crop_fraction=want['crop_fraction'],
      params_digest=want['params_digest'],
      unfamiliarity=lambda t: unfamiliar_scores.scores(
          result['logits'], result['features'], statistics, t),
      unfamiliar_score=config.evaluation.unfamiliar_score,
      unfamiliar_tpr=config.evaluation.unfamiliar_tpr)
  statistics = {**statistics, **{
      f'validation_{k}': v for k, v in unfamiliar_scores.scores(
          result['logits'], result['features'], statistics,
          calibration.temperature).items()}}
  return calibration, statistics


def _fit_quality_gate(config, builder, want: dict) -> dict:
  """The quality gate's statistics relative to the run's photos, from
  evenly spaced training and validation photos (no model involved)."""
  limit = config.evaluation.quality.fit_examples

  def photos(split):
    source = _evenly_spaced(pipeline.data_source(
        builder, split, config.dataset.held_out_classes), limit)
    return [np.asarray(preprocess.open_image(example['image']).convert('RGB'))
            for example in source]

  return quality.fit(config, want['image_size'],
                     photos(config.dataset.train_split),
                     photos(want['split']))


def _evenly_spaced(source, limit):
  if limit is None or len(source) <= limit:
    return source
  return [source[int(i)] for i in
          np.linspace(0, len(source) - 1, limit).round()]


def _check_finite(checkpoint, name: str, outputs: dict) -> None:
  if not all(np.isfinite(outputs[key]).all()
             for key in ('logits', 'features')):
    raise NotCalibratable(
        f'checkpoint {checkpoint.step} ({checkpoint.weights} weights) gives '
        f'non-finite logits or features on {name} photos: it cannot be '
        'calibrated (did the run diverge?)')


def _outputs(config, builder, split, checkpoint, limit=None) -> dict:
  source = pipeline.data_source(builder, split,
                                config.dataset.held_out_classes)
  source = _evenly_spaced(source, limit)
  return forward.predict(
      checkpoint.eval_step, checkpoint.state, pipeline.eval_dataset(
          source, config, jax.process_index(), jax.process_count()),
      checkpoint.mesh, desc=f'calibration: outputs on {split}',
      total=len(source))
