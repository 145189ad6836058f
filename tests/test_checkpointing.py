"""Which checkpoints are kept, and that a half-written one is never restored."""

import os
import signal
import subprocess
import sys
import time

import grain
import jax
import jax.numpy as jnp
import numpy as np

from helpers import REPO
from skinjax import checkpointing
from skinjax import train_state


def _state(step, value=0.0):
  return train_state.TrainState(
      step=jnp.asarray(step, jnp.int32), params={'w': jnp.full((4,), value)},
      batch_stats={}, opt_state={}, rng=jnp.zeros(2, jnp.uint32))


def test_keeps_the_latest_k_and_the_best(tmp_path):
  manager = checkpointing.create_manager(str(tmp_path), keep=2,
                                         best_metric='top1')
  iterator = iter(grain.MapDataset.range(10).to_iter_dataset())
  for step, top1 in enumerate([0.1, 0.9, 0.3, 0.4, 0.2, 0.5], start=1):
    checkpointing.save(manager, _state(step, step), iterator, {'top1': top1})
    manager.wait_until_finished()
  assert list(manager.all_steps()) == [2, 5, 6]
  assert manager.best_step() == 2 and manager.latest_step() == 6


def test_restore_brings_back_state_and_iterator_position(tmp_path):
  manager = checkpointing.create_manager(str(tmp_path), keep=2,
                                         best_metric='top1')
  dataset = grain.MapDataset.range(100).to_iter_dataset()
  iterator = iter(dataset)
  [next(iterator) for _ in range(7)]
  checkpointing.save(manager, _state(3, 1.5), iterator, {'top1': 0.5})
  manager.wait_until_finished()
  expected = next(iterator)
  fresh = iter(dataset)
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                     sharding=x.sharding), _state(0))
  restored = checkpointing.restore(manager, 3, abstract, fresh)
  assert int(restored.step) == 3
  np.testing.assert_array_equal(restored.params['w'], [1.5] * 4)
  assert next(fresh) == expected


def test_checkpoint_killed_while_saving_is_never_restored(tmp_path):
  workdir = str(tmp_path)
  ckpt_dir = checkpointing.checkpoint_dir(workdir)
  proc = subprocess.Popen([sys.executable, '-m', 'tests.save_slowly', workdir],
                          cwd=REPO, stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == 'saved 1'
  deadline, partial = time.time() + 120, []
  while not partial and time.time() < deadline and proc.poll() is None:
    partial = [d for d in os.listdir(ckpt_dir) if 'tmp' in d]
    time.sleep(0.002)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert partial, 'the save finished before it could be interrupted'
  assert not os.path.exists(os.path.join(ckpt_dir, '2'))

  manager = checkpointing.create_manager(workdir, keep=3, best_metric='top1')
  assert list(manager.all_steps()) == [1]
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                          _state(0))
  abstract.params['w'] = jax.ShapeDtypeStruct((1000,), jnp.float32)
  restored = checkpointing.restore(manager, manager.latest_step(), abstract)
  np.testing.assert_array_equal(restored.params['w'], np.ones(1000))
  manager.wait_until_finished()
  assert not [d for d in os.listdir(ckpt_dir) if 'tmp' in d]  # swept
