"""Restores the newest readable checkpoint of WORKDIR as one of several
processes; process 0 prints the step and the seconds it took.

  python -m tests.restore_latest WORKDIR COORDINATOR NUM_PROCESSES PROCESS_ID

Each process may be given its own WORKDIR (a copy), so that damage is seen
by one process only.
"""

import sys
import time

import jax
import jax.numpy as jnp

from skinjax.parallel import distributed
from skinjax.parallel import sharding
from skinjax.run_folder import checkpoint_folder
from skinjax.training import checkpoints
from skinjax.training import state as train_state


def main(workdir, coordinator, num_processes, process_id):
  distributed.initialize(coordinator, int(num_processes), int(process_id))
  replicated = sharding.replicated(sharding.create_mesh())
  like = train_state.TrainState(
      step=jnp.zeros((), jnp.int32), params={'w': jnp.zeros(4)},
      batch_stats={}, opt_state={}, rng=jnp.zeros(2, jnp.uint32), ema=None)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(
      x.shape, x.dtype, sharding=replicated), like)
  started = time.perf_counter()
  manager = checkpoint_folder.create_manager(workdir, keep=3,
                                             best_metric='top1')
  step, state = checkpoints.restore_latest(manager, abstract)
  seconds = time.perf_counter() - started
  print(f'process {jax.process_index()} restored step {step} '
        f'(w = {float(state.params["w"][0])}) in {seconds:.1f} s', flush=True)


if __name__ == '__main__':
  main(*sys.argv[1:])
