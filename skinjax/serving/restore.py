"""A trained checkpoint, ready to score photos: the restored state, its class
names, its eval step, and its calibration (fitted on validation on first
use). evaluate and predict both start here."""

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
  eval_step: Callable  # jitted, with config.evaluation.tta
  calibration: calibration_lib.Calibration


def load(config, workdir: str, which: str, weights: str = 'raw',
         refit: bool = False) -> Checkpoint:
  """Checkpoint `which` (see select_step) of the run in `workdir`, its raw or
  moving-average (`weights='ema'`) weights, and their calibration: the saved
  one, else (or with `refit`) one fitted now."""
  builder, class_names, mesh, model, state, step = _restore(
      config, workdir, which, weights)
  eval_step = outputs.jit_eval_step(mesh, model=model,
                                    tta=config.evaluation.tta)
  calibration = _calibration(config, workdir, step, weights, builder,
                             eval_step, state, mesh, refit)
  return Checkpoint(builder, class_names, mesh, model, state, step, eval_step,
                    calibration)


def _restore(config, workdir: str, which: str, weights: str):
  """(builder, class names, mesh, model, state, step) of a run's checkpoint;
  with weights='ema', the state holds the moving average of the weights."""
  if weights == 'ema' and not config.ema_decay:
    raise CheckpointNotFound('weights=ema: the run kept no moving average of '
                             'the weights (its config.ema_decay is 0)')
  mesh = sharding.create_mesh()
  builder = data.load_builder(config.dataset)
  class_names = builder.info.features['label'].names
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


def _calibration(config, workdir, step, weights, builder, eval_step_fn,
                 state, mesh, refit: bool):
  """The saved calibration of these weights of checkpoint `step` if it was
  fitted for exactly them and these settings (split, TTA, max_risk), else
  one fitted now on the validation split and saved."""
  split = config.dataset.eval_split
  wanted = {'checkpoint_step': step, 'weights': weights,
            'tta': config.evaluation.tta,
            'max_risk': config.evaluation.max_risk, 'split': split,
            'params_digest': params_digest(state.params)}
  saved = calibration_lib.load(workdir, step, weights)
  if saved is not None and not refit:
    differs = {k: (v, wanted[k])
               for k, v in calibration_lib.fitted_for(saved).items()
               if v != wanted[k]}
    if not differs:
      return saved
    if jax.process_index() == 0:
      print('The saved calibration was fitted for other settings ('
            + ', '.join(f'{k} {old!r} -> {new!r}'
                        for k, (old, new) in differs.items())
            + '): refitting.')
  result = outputs.predict(
      eval_step_fn, state,
      pipeline.eval_dataset(pipeline.data_source(builder, split), config,
                            jax.process_index(), jax.process_count()), mesh)
  calibration = calibration_lib.fit(
      result['logits'], result['label'],
      max_risk=config.evaluation.max_risk,
      num_bins=config.evaluation.calibration_bins, checkpoint_step=step,
      weights=weights, tta=config.evaluation.tta, split=split,
      params_digest=wanted['params_digest'])
  if jax.process_index() == 0:
    print(f'Calibrated on {split}: temperature '
          f'{calibration.temperature:.3f} (saved to '
          f'{calibration_lib.save(calibration, workdir)}).')
  return calibration
