"""WORKDIR/checkpoints: how checkpoints lie in a run folder and which one a
name ('best', 'latest', a step) means. Training writes them
(skinjax.training.checkpoints); inference reads their weights
(skinjax.inference.restore).

Each checkpoint is an Orbax step folder with the item STATE (the TrainState:
params, BatchNorm statistics, optimiser state, step, RNG) and, when
config.ema_decay > 0, the item EMA (the moving average of the weights). The
latest `keep` checkpoints are kept, plus the best by validation metric.
"""

import json
import os
import time

from absl import logging
import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from skinjax import errors

STATE = 'state'
EMA = 'ema'


class CheckpointNotFound(errors.UserError):
  """No checkpoint answers to the name asked for; the message lists those
  there are."""


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


def create_manager(workdir: str, keep: int, best_metric: str,
                   read_only: bool = False) -> ocp.CheckpointManager:
  """The run's manager; `read_only` for scoring: creates, moves and sweeps
  nothing (a copied run folder may be read-only).

  (Orbax's own read_only option only adds warnings: nothing is written unless
  `save` is called.)
  """
  if not read_only:
    _set_aside_unreadable_metrics(checkpoint_dir(workdir))
  best_fn = lambda metrics: metrics[best_metric]
  options = ocp.CheckpointManagerOptions(
      best_fn=best_fn,
      best_mode='max',
      preservation_policy=checkpoint_managers.AnyPreservationPolicy([
          checkpoint_managers.LatestN(n=keep),
          checkpoint_managers.BestN(get_metric_fn=best_fn, n=1,
                                    keep_checkpoints_without_metrics=False),
      ]),
      cleanup_tmp_directories=not read_only,
      create=not read_only)
  # Each item's handler comes with its args (StandardSave, PyTreeRestore,
  # ...).
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


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


def _set_aside_unreadable_metrics(directory: str) -> None:
  """Orbax reads every checkpoint's metrics when it opens the folder, and one
  truncated file would stop it: such checkpoints are moved aside first."""
  if jax.process_index() == 0 and os.path.isdir(directory):
    for name in os.listdir(directory):
      _set_aside_if_metrics_unreadable(directory, name)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('skinjax checkpoint metrics checked')


def _set_aside_if_metrics_unreadable(directory: str, name: str) -> None:
  path = os.path.join(directory, name, 'metrics', 'metrics')
  if not name.isdigit() or not os.path.exists(path):
    return
  try:
    with open(path) as f:
      json.load(f)
  except ValueError:
    target = os.path.join(directory, f'{name}.unreadable-{int(time.time())}')
    logging.warning('Checkpoint step %s has unreadable metrics and was '
                    'skipped; moved to %s', name, target)
    os.rename(os.path.join(directory, name), target)
