"""A trained checkpoint, ready to score photos: the restored state, its class
names, its eval step (logits and penultimate features), and its calibration
with the statistics of the 'unfamiliar' flag (fitted on first use).
evaluate and predict both start here."""

import dataclasses
import hashlib
from typing import Any, Callable

import jax
import numpy as np

from skinjax import data
from skinjax import models
from skinjax.data import pipeline
from skinjax.evaluation import calibration as calibration_lib
from skinjax.evaluation import outputs
from skinjax.evaluation import unfamiliar
from skinjax.parallel import sharding
from skinjax.training import checkpoints
from skinjax.training import optimizer
from skinjax.training import state as state_lib


class CheckpointNotFound(ValueError):
  """No checkpoint answers to the name asked for; the message lists those
  there are."""


def select_step(manager, which: str) -> int:
  """The step of 'best' (by validation config.best_metric; the latest when
  no checkpoint was ranked), 'latest' or a step number."""
  saved = list(manager.all_steps())
  if which == 'best':
    step = manager.best_step()
    step = manager.latest_step() if step is None else step
  elif which == 'latest':
    step = manager.latest_step()
  elif which.isdigit():
    step = int(which) if int(which) in saved else None
  else:
    raise CheckpointNotFound(f"checkpoint {which!r}: use 'best', 'latest' or "
                             'a step number')
  if step is None:
    raise CheckpointNotFound(f'no checkpoint {which!r} in {manager.directory} '
                             f'(saved steps: {saved})')
  return step


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  """What evaluate and predict need to score photos with a checkpoint."""
  builder: Any  # the dataset it was trained on
  class_names: list
  mesh: Any
  model: Any
  state: Any  # holds the moving average in place of the weights if asked
  step: int
  eval_step: Callable  # jitted, with config.evaluation.tta; gives features
  calibration: calibration_lib.Calibration
  # Training-feature class means and precision (unfamiliar.mahalanobis), and
  # the validation photos' unfamiliarity ('validation_<score>').
  feature_statistics: dict

  def unfamiliarity(self, result: dict) -> dict:
    """unfamiliar.scores of the eval step's outputs."""
    return unfamiliar.scores(result['logits'], result['features'],
                             self.feature_statistics,
                             self.calibration.temperature)

  def flag_unfamiliar(self, scores: dict) -> np.ndarray:
    """Which photos the calibration's unfamiliar threshold flags."""
    return (scores[self.calibration.unfamiliar_score]
            > self.calibration.unfamiliar_threshold)


def load(config, workdir: str, which: str, weights: str = 'raw',
         refit: bool = False) -> Checkpoint:
  """Checkpoint `which` (see select_step) of the run in `workdir`, its raw or
  moving-average (`weights='ema'`) weights, and their calibration: the saved
  one, else (or with `refit`) one fitted now."""
  builder, class_names, mesh, model, state, step = _restore(
      config, workdir, which, weights)
  eval_step = outputs.jit_eval_step(mesh, model=model,
                                    tta=config.evaluation.tta, features=True)
  calibration, statistics = _calibration(config, workdir, step, weights,
                                         builder, eval_step, state, mesh,
                                         refit)
  return Checkpoint(builder, class_names, mesh, model, state, step, eval_step,
                    calibration, statistics)


def _restore(config, workdir: str, which: str, weights: str):
  """(builder, class names, mesh, model, state, step) of a run's checkpoint;
  with weights='ema', the state holds the moving average of the weights."""
  if weights == 'ema' and not config.ema_decay:
    raise CheckpointNotFound('weights=ema: the run kept no moving average of '
                             'the weights (its config.ema_decay is 0)')
  mesh = sharding.create_mesh()
  builder = data.load_builder(config.dataset)
  class_names = pipeline.class_names(builder,
                                    config.dataset.held_out_classes)
  model = models.create_model(config.model, len(class_names))
  tx = optimizer.create_optimizer(config.optimizer, config.num_train_steps)
  abstract_state = state_lib.abstract_train_state(
      model, tx, config.image_size, sharding.replicated(mesh),
      ema=weights == 'ema')
  manager = checkpoints.create_manager(
      workdir, config.keep_checkpoints, config.best_metric, read_only=True)
  step = select_step(manager, which)
  state = checkpoints.restore(manager, step, abstract_state)
  manager.close()
  if weights == 'ema':
    state = state_lib.ema_weights(state)
  return builder, class_names, mesh, model, state, step


def params_digest(params) -> str:
  """A short fingerprint of a model's classifier head: it changes with any
  training, so it tells one checkpoint's weights from another's."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(params[models.HEAD])):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()[:16]


def _outputs(config, builder, split, eval_step_fn, state, mesh,
             limit=None) -> dict:
  source = pipeline.data_source(builder, split,
                                config.dataset.held_out_classes)
  if limit is not None and len(source) > limit:
    source = [source[int(i)] for i in
              np.linspace(0, len(source) - 1, limit).round()]
  return outputs.predict(
      eval_step_fn, state, pipeline.eval_dataset(
          source, config, jax.process_index(), jax.process_count()), mesh)


def _calibration(config, workdir, step, weights, builder, eval_step_fn,
                 state, mesh, refit: bool):
  """(calibration, feature statistics): the saved ones of these weights of
  checkpoint `step` if fitted for exactly them and these settings (split,
  image size and crop, TTA, max_risk, unfamiliar score and rate), else fitted now (statistics on
  training photos, the rest on the validation split) and saved."""
  split = config.dataset.eval_split
  wanted = {'checkpoint_step': step, 'weights': weights,
            'tta': config.evaluation.tta,
            'max_risk': config.evaluation.max_risk, 'split': split,
            'image_size': pipeline.eval_image_size(config),
            'crop_fraction': config.augment.eval_crop_fraction,
            'params_digest': params_digest(state.params),
            'unfamiliar_score': config.evaluation.unfamiliar_score,
            'unfamiliar_tpr': config.evaluation.unfamiliar_tpr}
  saved = calibration_lib.load(workdir, step, weights)
  statistics_file = unfamiliar.statistics_path(
      calibration_lib.path(workdir, step, weights))
  if saved is not None and not refit:
    differs = {k: (v, wanted[k])
               for k, v in calibration_lib.fitted_for(saved).items()
               if v != wanted[k]}
    statistics = unfamiliar.load_statistics(statistics_file)
    if not differs and statistics is not None:
      return saved, statistics
    if jax.process_index() == 0:
      reason = (', '.join(f'{k} {old!r} -> {new!r}'
                          for k, (old, new) in differs.items())
                if differs else f'{statistics_file} missing or unreadable')
      print(f'The saved calibration was fitted for other settings ({reason})'
            ': refitting.')
  training = _outputs(config, builder, config.dataset.train_split,
                      eval_step_fn, state, mesh,
                      config.evaluation.unfamiliar_fit_examples)
  statistics = unfamiliar.fit_feature_statistics(
      training['features'], training['label'],
      len(pipeline.class_names(builder, config.dataset.held_out_classes)))
  result = _outputs(config, builder, split, eval_step_fn, state, mesh)
  calibration = calibration_lib.fit(
      result['logits'], result['label'],
      max_risk=config.evaluation.max_risk,
      num_bins=config.evaluation.calibration_bins, checkpoint_step=step,
      weights=weights, tta=config.evaluation.tta, split=split,
      image_size=wanted['image_size'], crop_fraction=wanted['crop_fraction'],
      params_digest=wanted['params_digest'],
      unfamiliarity=lambda t: unfamiliar.scores(
          result['logits'], result['features'], statistics, t),
      unfamiliar_score=config.evaluation.unfamiliar_score,
      unfamiliar_tpr=config.evaluation.unfamiliar_tpr)
  statistics.update({f'validation_{k}': v for k, v in unfamiliar.scores(
      result['logits'], result['features'], statistics,
      calibration.temperature).items()})
  if jax.process_index() == 0:
    # The statistics first: a calibration file never stands without them.
    unfamiliar.save_statistics(statistics, statistics_file)
    print(f'Calibrated on {split}: temperature '
          f'{calibration.temperature:.3f}, unfamiliar above '
          f'{calibration.unfamiliar_score} {calibration.unfamiliar_threshold:.4g}'
          f' (saved to {calibration_lib.save(calibration, workdir)}).')
  return calibration, statistics
