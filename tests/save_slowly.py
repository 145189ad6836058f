"""Saves a small checkpoint at step 1, then a large one at step 2.

The test kills this process while step 2 is being written.
"""

import sys

import jax.numpy as jnp

from skinjax.run_folder import checkpoint_folder
from skinjax.training import checkpoints
from skinjax.training import state as train_state


def _state(step, size):
  return train_state.TrainState(
      step=jnp.asarray(step, jnp.int32),
      params={'w': jnp.full((size,), float(step), jnp.float32)},
      batch_stats={}, opt_state={}, rng=jnp.zeros(2, jnp.uint32))


def main(workdir):
  manager = checkpoint_folder.create_manager(workdir, keep=3,
                                             best_metric='top1')
  checkpoints.save(manager, _state(1, 1000), {'top1': 0.5})
  manager.wait_until_finished()
  print('saved 1', flush=True)
  checkpoints.save(manager, _state(2, 400_000_000), {'top1': 0.9})
  manager.wait_until_finished()
  print('saved 2', flush=True)


if __name__ == '__main__':
  main(sys.argv[1])
