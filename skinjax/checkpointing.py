"""Where checkpoints are written: an Orbax CheckpointManager in WORKDIR/checkpoints.

A checkpoint holds the TrainState (params, optimiser state, BatchNorm
statistics, step, RNG) and the grain data-iterator state. Orbax writes each
one into a temporary folder and renames it only once complete, so a save cut
short by a crash is never listed or restored (and is swept at the next
start). The latest `keep` checkpoints are kept, plus the best by validation
metric.
"""

import os

import grain
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

STATE = 'state'
DATA_ITERATOR = 'data_iterator'


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


def create_manager(workdir: str, keep: int, best_metric: str,
                   read_only: bool = False) -> ocp.CheckpointManager:
  """The run's manager; `read_only` for evaluation: creates and sweeps nothing.

  (Orbax's own read_only option only adds warnings: nothing is written unless
  `save` is called.)
  """
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
  return ocp.CheckpointManager(
      checkpoint_dir(workdir), options=options,
      item_handlers={STATE: ocp.StandardCheckpointHandler(),
                     DATA_ITERATOR: grain.checkpoint.CheckpointHandler()})


def save(manager, state, data_iterator, metrics=None) -> None:
  """Starts an asynchronous save of `state` at its step; returns at once."""
  manager.save(
      int(jax.device_get(state.step)),
      args=ocp.args.Composite(**{
          STATE: ocp.args.StandardSave(state),
          DATA_ITERATOR: grain.checkpoint.CheckpointSave(data_iterator)}),
      metrics=metrics, force=True)


def restore(manager, step: int, abstract_state, data_iterator=None):
  """Restores the state saved at `step` (and the iterator, if given, in place).

  `abstract_state` is a pytree of jax.ShapeDtypeStruct with shardings: arrays
  come back placed as it says, whatever devices wrote them.
  """
  items = {STATE: ocp.args.StandardRestore(abstract_state)}
  if data_iterator is not None:
    items[DATA_ITERATOR] = grain.checkpoint.CheckpointRestore(data_iterator)
  return manager.restore(step, args=ocp.args.Composite(**items))[STATE]
