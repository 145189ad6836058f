"""A trained checkpoint, ready for evaluate and predict: the restored state,
its class names, its eval step, and its calibration (fitted on validation on
first use)."""

import dataclasses
import sys
from typing import Any, Callable

import jax

from skinjax import calibration as calibration_lib
from skinjax import checkpointing
from skinjax import data
from skinjax import evaluation
from skinjax import models
from skinjax import optim
from skinjax import sharding
from skinjax import steps
from skinjax import train_state
from skinjax.data import pipeline


def _select_step(manager, which: str) -> int:
  if which == 'latest':
    step = manager.latest_step()
  elif which == 'best':
    step = manager.best_step()
  elif which.isdigit():
    step = int(which) if int(which) in manager.all_steps() else None
  else:
    sys.exit(f"error: --checkpoint={which}: use 'latest', 'best' or a step")
  if step is None:
    sys.exit(f'error: no checkpoint {which!r} in {manager.directory} '
             f'(saved steps: {list(manager.all_steps())})')
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
  """Checkpoint `which` ('latest', 'best' or a step) of the run in `workdir`,
  its raw or moving-average (`weights='ema'`) weights, and their
  calibration: the saved one, else (or with `refit`) one fitted now."""
  builder, class_names, mesh, model, state, step = _restore(
      config, workdir, which, weights)
  eval_step = steps.jit_eval_step(mesh, model=model,
                                  tta=config.evaluation.tta)
  calibration = _calibration(config, workdir, step, weights, builder,
                             eval_step, state, mesh, refit)
  return Checkpoint(builder, class_names, mesh, model, state, step, eval_step,
                    calibration)


def _restore(config, workdir: str, which: str, weights: str):
  """(builder, class names, mesh, model, state, step) of a run's checkpoint;
  with weights='ema', the state holds the moving average of the weights."""
  if weights == 'ema' and not config.ema_decay:
    sys.exit('error: --weights=ema: the run kept no moving average of the '
             'weights (config.ema_decay = 0); pass the config it trained with')
  mesh = sharding.create_mesh()
  builder = data.load_builder(config.dataset)
  class_names = builder.info.features['label'].names
  model = models.create_model(config.model, len(class_names))
  tx = optim.create_optimizer(config.optimizer, config.num_train_steps)
  abstract_state = train_state.abstract_train_state(
      model, tx, config.image_size, sharding.replicated(mesh),
      ema=weights == 'ema')
  manager = checkpointing.create_manager(
      workdir, config.keep_checkpoints, config.best_metric, read_only=True)
  step = _select_step(manager, which)
  state = checkpointing.restore(manager, step, abstract_state)
  if weights == 'ema':
    state = train_state.ema_weights(state)
  return builder, class_names, mesh, model, state, step


def _calibration(config, workdir, step, weights, builder, eval_step_fn,
                 state, mesh, refit: bool):
  """The saved calibration of these weights of checkpoint `step`, or one
  fitted now on the validation split (and saved) if there is none for this
  TTA setting."""
  saved = calibration_lib.load(workdir, step, weights)
  if saved is not None and saved.tta == config.evaluation.tta and not refit:
    return saved
  split = config.dataset.eval_split
  outputs = evaluation.predict(
      eval_step_fn, state,
      pipeline.eval_dataset(pipeline.data_source(builder, split), config,
                            jax.process_index(), jax.process_count()), mesh)
  calibration = calibration_lib.fit(
      outputs['logits'], outputs['label'],
      max_risk=config.evaluation.max_risk,
      num_bins=config.evaluation.calibration_bins, checkpoint_step=step,
      weights=weights, tta=config.evaluation.tta, split=split)
  if jax.process_index() == 0:
    print(f'Calibrated on {split}: temperature '
          f'{calibration.temperature:.3f} (saved to '
          f'{calibration_lib.save(calibration, workdir)}).')
  return calibration
