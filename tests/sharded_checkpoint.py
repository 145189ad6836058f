"""A checkpoint written on one device count, read by `model.init_from` on
another.

  python tests/sharded_checkpoint.py save DIR   # a run's checkpoint + DIR/saved.npz
  python tests/sharded_checkpoint.py check DIR  # transfer's read equals saved.npz

Run each under its own XLA_FLAGS=--xla_force_host_platform_device_count=N.
"""

import os
import sys

import jax
import numpy as np

from skinjax import models
from skinjax.config import defaults
from skinjax.models import transfer
from skinjax.parallel import sharding
from skinjax.run_folder import checkpoint_folder
from skinjax.training import checkpoints
from skinjax.training import optimizer
from skinjax.training import state as state_lib


def _flat(variables) -> dict:
  return {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_leaves_with_path(variables)}


def save(workdir: str) -> None:
  config = defaults.get_config()
  config.model.name, config.model.width, config.image_size = 'resnet18', 8, 32
  mesh = sharding.create_mesh()
  model = models.create_model(config.model, num_classes=5)
  tx, _ = optimizer.from_config(config)
  state = state_lib.initial_state(config, model, tx, mesh)
  manager = checkpoint_folder.create_manager(workdir, 1, 'accuracy')
  checkpoints.save(manager, state, {'accuracy': 0.0})
  manager.wait_until_finished()
  manager.close()
  np.savez(os.path.join(workdir, 'saved.npz'), **_flat(
      {'params': state.params, 'batch_stats': state.batch_stats}))


def check(workdir: str) -> None:
  restored = _flat(transfer.checkpoint_variables(workdir))
  with np.load(os.path.join(workdir, 'saved.npz')) as saved:
    assert sorted(saved.files) == sorted(restored), 'other leaves'
    for key in saved.files:
      np.testing.assert_array_equal(restored[key], saved[key], err_msg=key)
  print(f'restored on {jax.device_count()} devices')


if __name__ == '__main__':
  {'save': save, 'check': check}[sys.argv[1]](sys.argv[2])
