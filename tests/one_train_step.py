"""Two train steps of a small ResNet on a fixed global batch; saves the result.

  python -m tests.one_train_step OUT.npz [COORDINATOR NUM_PROCESSES PROCESS_ID]

Run with XLA_FLAGS=--xla_force_host_platform_device_count=N to compare
N-device data parallelism against a single device (flips, turns and jitter
are drawn in the step, config.augment.on_device, so the comparison covers
their independence of the device count too); with the last three
arguments, as one of several processes, each feeding its own slice of the
same global batch (process 0 writes OUT.npz).
"""

import sys

import jax
import numpy as np
from orbax.checkpoint import multihost

from skinjax import models
from skinjax.config import defaults
from skinjax.parallel import distributed
from skinjax.parallel import sharding
from skinjax.training import optimizer
from skinjax.training import state as state_lib
from skinjax.training import step as step_lib


def main(out_path, coordinator='', num_processes='1', process_id='0'):
  distributed.initialize(coordinator, int(num_processes), int(process_id))
  config = defaults.get_config()
  config.model.name, config.model.width = 'resnet18', 8
  config.optimizer.warmup_steps = 0
  config.num_train_steps, config.image_size = 10, 32
  config.augment.on_device = True
  mesh = sharding.create_mesh()
  model = models.create_model(config.model, num_classes=5)
  tx, schedule = optimizer.from_config(config)
  state = state_lib.initial_state(config, model, tx, mesh)
  rng = np.random.default_rng(0)
  batch = {'image': rng.integers(0, 255, (16, 32, 32, 3)).astype(np.uint8),
           'label': rng.integers(0, 5, 16).astype(np.int32)}
  local = 16 // jax.process_count()
  batch = sharding.shard_batch(jax.tree.map(
      lambda x: x[jax.process_index() * local:][:local], batch), mesh)
  train_step = step_lib.jit_train_step(
      mesh, model, tx, step_lib.StepOptions.from_config(config, schedule)
  ).lower(state, batch).compile()
  # gloo gives a peer 30 s to reach the first collective, and on a loaded
  # machine one process can compile longer than that: all wait for all here,
  # through the coordination service, before any step runs.
  multihost.get_barrier_sync_fn()(key='compiled', timeout_ms=600_000)
  for _ in range(2):
    state, metrics = train_step(state, batch)
  flat = {jax.tree_util.keystr(k): np.asarray(v) for k, v in
          jax.tree_util.tree_leaves_with_path(
              {'params': state.params, 'batch_stats': state.batch_stats})}
  if jax.process_index() == 0:
    np.savez(out_path, loss=np.asarray(metrics['loss']),
             num_devices=len(batch['image'].sharding.device_set),
             num_processes=jax.process_count(), **flat)


if __name__ == '__main__':
  main(*sys.argv[1:])
