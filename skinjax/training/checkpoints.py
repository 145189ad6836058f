"""Checkpoints written and restored whole, for training: an Orbax
CheckpointManager in WORKDIR/checkpoints (skinjax.run_folder.checkpoint_folder
says how they lie there; inference reads only their weights).

A checkpoint holds the TrainState (params, optimiser state, BatchNorm
statistics, step, RNG) and the moving average of the weights beside it (when
config.ema_decay > 0). The input pipeline needs nothing saved: its batches
are a function of the seed and the step (skinjax.data.pipeline). Orbax writes each
one into a temporary folder and renames it only once complete, so a save cut
short by a crash or a full disk is never listed or restored (and is swept at
the next start). The latest `keep` checkpoints are kept, plus the best by
validation metric.

Every process calls `save` and `restore`, as Orbax requires, and they agree
on the step to restore before any of them reads it.
"""

import json
import os
import time

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from skinjax import errors
from skinjax.run_folder import checkpoint_folder

STATE = checkpoint_folder.STATE
EMA = checkpoint_folder.EMA


class SaveError(errors.UserError):
  """A checkpoint could not be written (a full disk, say); the earlier ones
  are intact."""


def save(manager, state, metrics=None) -> None:
  """Starts an asynchronous save of `state` at its step; returns at once.

  Raises SaveError if this save or the one still in flight fails (a full
  disk, say).
  """
  items = {STATE: ocp.args.StandardSave(state.replace(ema=None))}
  if state.ema is not None:
    items[EMA] = ocp.args.StandardSave(state.ema)
  step = int(jax.device_get(state.step))
  try:
    manager.save(step, args=ocp.args.Composite(**items), metrics=metrics,
                 force=True)
  except Exception as e:  # Orbax and tensorstore raise many types.
    raise _save_error(manager, e) from e


def wait_until_finished(manager) -> None:
  """Blocks until the save in flight is written; SaveError if it failed."""
  try:
    manager.wait_until_finished()
  except Exception as e:  # Orbax and tensorstore raise many types.
    raise _save_error(manager, e) from e


def _save_error(manager, error) -> SaveError:
  manager.reload()
  kept = manager.latest_step()
  text = ' '.join(str(error).split())
  reason = ('the disk is full' if 'No space left on device' in text
            or getattr(error, 'errno', None) == 28 else text[:500])
  return SaveError(
      f'could not write a checkpoint to {manager.directory}: {reason}. '
      + (f'The last complete checkpoint (step {kept}) is intact: make room '
         'and re-run the same command to resume from it.' if kept is not None
         else 'No complete checkpoint exists yet.'))


def restore(manager, step: int, abstract_state):
  """Restores the state saved at `step`.

  `abstract_state` is a pytree of jax.ShapeDtypeStruct with shardings: arrays
  come back placed as it says, whatever devices or processes wrote them. The
  moving average is restored when `abstract_state.ema` asks for it.
  """
  items = {STATE: ocp.args.StandardRestore(abstract_state.replace(ema=None))}
  if abstract_state.ema is not None:
    items[EMA] = ocp.args.StandardRestore(abstract_state.ema)
  restored = manager.restore(step, args=ocp.args.Composite(**items))
  return restored[STATE].replace(ema=restored.get(EMA))


def restore_latest(manager, abstract_state):
  """The newest checkpoint that can be read: (step, state), or (None, None)
  when there is none.

  A checkpoint that fails to restore while an older one succeeds is damaged
  (files truncated or deleted): it is moved aside with a warning. If none
  restores, the newest one's error is raised and nothing is moved: the
  config, not the files, is then the likely cause. With several processes,
  a step whose files look damaged to any of them is skipped by all of them
  before anyone restores it, so no process waits in a restore another one
  left.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  first_error = None
  for step in steps:
    problem = _agreed_problem(manager, step)
    state = None
    if problem is None:
      try:
        state = restore(manager, step, abstract_state)
      except Exception as e:  # Orbax, tensorstore and json raise many types.
        problem = e
    if problem is not None:
      first_error = first_error or problem
      logging.warning('Checkpoint step %d could not be restored: %s', step,
                      problem)
    if _on_every_process(state is not None):
      _set_aside(manager, [s for s in steps if s > step])
      return step, state
  if first_error is not None:
    raise first_error
  return None, None


def _agreed_problem(manager, step: int):
  """A reason not to restore `step`, the same on every process: the first
  process (by index) whose copy of the step's metadata is unreadable."""
  problem = _metadata_problem(os.path.join(manager.directory, str(step)))
  if jax.process_count() == 1:
    return problem
  flags = multihost_utils.process_allgather(np.asarray(problem is not None))
  if not np.any(flags):
    return None
  first = int(np.argmax(flags))
  return problem if first == jax.process_index() else RuntimeError(
      f'process {first} cannot read checkpoint step {step} (see its log)')


def _metadata_problem(folder: str):
  """The first metadata file in `folder` that is missing or not JSON, as an
  error naming it; None when all are readable. Cheap: no array is read."""
  names = ['_CHECKPOINT_METADATA'] + [
      os.path.join(item, '_METADATA') for item in (STATE, EMA)
      if os.path.isdir(os.path.join(folder, item))]
  for name in names:
    path = os.path.join(folder, name)
    try:
      with open(path) as f:
        json.load(f)
    except (OSError, ValueError) as e:
      return RuntimeError(f'{path}: {e}')
  return None


def _on_every_process(ok: bool) -> bool:
  if jax.process_count() == 1:
    return ok
  return bool(np.all(multihost_utils.process_allgather(np.asarray(ok))))


def _set_aside(manager, steps) -> None:
  """Renames damaged checkpoints to STEP.unreadable-TIME, out of Orbax's view."""
  if not steps:
    return
  for step in steps:
    path = os.path.join(manager.directory, str(step))
    target = f'{path}.unreadable-{int(time.time())}'
    logging.warning('Checkpoint step %d is damaged and was skipped; moved to '
                    '%s', step, target)
    try:  # by every process: each may see its own copy of the folder
      os.rename(path, target)
    except FileNotFoundError:
      pass  # another process, sharing the folder, moved it
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('skinjax checkpoints set aside')
  manager.reload()
