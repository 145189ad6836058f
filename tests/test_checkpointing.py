"""Which checkpoints are kept, that a half-written one is never restored, and
that a damaged one is skipped for the one before."""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import REPO
from skinjax.run_folder import checkpoint_folder
from skinjax.training import checkpoints
from skinjax.training import state as train_state


def _state(step, value=0.0, ema=False):
  return train_state.TrainState(
      step=jnp.asarray(step, jnp.int32), params={'w': jnp.full((4,), value)},
      batch_stats={}, opt_state={}, rng=jnp.zeros(2, jnp.uint32),
      ema={'params': {'w': jnp.full((4,), -value)}, 'batch_stats': {}}
      if ema else None)


def _abstract(state):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      state)


def test_keeps_the_latest_k_and_the_best(tmp_path):
  manager = checkpoint_folder.create_manager(str(tmp_path), keep=2,
                                         best_metric='top1')
  for step, top1 in enumerate([0.1, 0.9, 0.3, 0.4, 0.2, 0.5], start=1):
    checkpoints.save(manager, _state(step, step), {'top1': top1})
    manager.wait_until_finished()
  assert list(manager.all_steps()) == [2, 5, 6]
  assert manager.best_step() == 2 and manager.latest_step() == 6


def test_restore_brings_back_the_state(tmp_path):
  manager = checkpoint_folder.create_manager(str(tmp_path), keep=2,
                                         best_metric='top1')
  checkpoints.save(manager, _state(3, 1.5), {'top1': 0.5})
  manager.wait_until_finished()
  restored = checkpoints.restore(manager, 3, _abstract(_state(0)))
  assert int(restored.step) == 3
  np.testing.assert_array_equal(restored.params['w'], [1.5] * 4)


def test_checkpoint_killed_while_saving_is_never_restored(tmp_path):
  workdir = str(tmp_path)
  ckpt_dir = checkpoint_folder.checkpoint_dir(workdir)
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

  manager = checkpoint_folder.create_manager(workdir, keep=3,
                                             best_metric='top1')
  assert list(manager.all_steps()) == [1]
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                          _state(0))
  abstract.params['w'] = jax.ShapeDtypeStruct((1000,), jnp.float32)
  restored = checkpoints.restore(manager, manager.latest_step(), abstract)
  np.testing.assert_array_equal(restored.params['w'], np.ones(1000))
  # Orbax sweeps the leftover in a background thread (awaited at the next
  # save), so wait for it rather than race it.
  deadline = time.time() + 60
  while [d for d in os.listdir(ckpt_dir) if 'tmp' in d]:
    assert time.time() < deadline, 'the half-written step 2 was never swept'
    time.sleep(0.05)
  # The resumed run writes step 2 again.
  checkpoints.save(manager, _state(2, 2.0), {'top1': 0.9})
  checkpoints.wait_until_finished(manager)
  assert list(manager.all_steps()) == [1, 2]
  restored = checkpoints.restore(manager, 2, _abstract(_state(0)))
  np.testing.assert_array_equal(restored.params['w'], [2.0] * 4)


def _two_checkpoints(workdir):
  """Steps 1 and 2, with EMA."""
  manager = checkpoint_folder.create_manager(workdir, keep=3,
                                             best_metric='top1')
  for step in (1, 2):
    checkpoints.save(manager, _state(step, float(step), ema=True),
                     {'top1': 0.5})
    checkpoints.wait_until_finished(manager)
  return os.path.join(checkpoint_folder.checkpoint_dir(workdir), '2')


def _truncate(path):
  os.truncate(path, os.path.getsize(path) // 2)


def _largest_file(folder):
  files = [f for f in glob.glob(os.path.join(folder, '**'), recursive=True)
           if os.path.isfile(f)]
  return max(files, key=os.path.getsize)


_DAMAGE = {
    'array data truncated': lambda d: _truncate(
        _largest_file(os.path.join(d, 'state'))),
    'EMA array data truncated': lambda d: _truncate(
        _largest_file(os.path.join(d, 'ema'))),
    'tree metadata deleted': lambda d: os.remove(
        os.path.join(d, 'state', '_METADATA')),
    'metrics truncated': lambda d: _truncate(
        os.path.join(d, 'metrics', 'metrics')),
    'checkpoint metadata truncated': lambda d: _truncate(
        os.path.join(d, '_CHECKPOINT_METADATA')),
    'EMA folder deleted': lambda d: shutil.rmtree(os.path.join(d, 'ema')),
}


@pytest.mark.parametrize('damage', _DAMAGE)
def test_a_damaged_latest_checkpoint_is_set_aside_for_the_previous_one(
    tmp_path, damage):
  workdir = str(tmp_path)
  _DAMAGE[damage](_two_checkpoints(workdir))
  manager = checkpoint_folder.create_manager(workdir, keep=3,
                                             best_metric='top1')
  step, state = checkpoints.restore_latest(
      manager, _abstract(_state(0, ema=True)))
  assert step == 1 and int(state.step) == 1
  np.testing.assert_array_equal(state.params['w'], [1.0] * 4)
  np.testing.assert_array_equal(state.ema['params']['w'], [-1.0] * 4)
  assert list(manager.all_steps()) == [1]
  assert glob.glob(os.path.join(manager.directory, '2.unreadable-*'))


def test_a_checkpoint_that_does_not_fit_the_config_is_an_error_not_damage(
    tmp_path):
  """Every checkpoint failing (here: the config asks for EMA weights that
  were never saved) raises and moves nothing."""
  workdir = str(tmp_path)
  manager = checkpoint_folder.create_manager(workdir, keep=3,
                                             best_metric='top1')
  for step in (1, 2):
    checkpoints.save(manager, _state(step), {'top1': 0.5})
  checkpoints.wait_until_finished(manager)
  with pytest.raises(Exception, match='ema'):
    checkpoints.restore_latest(manager, _abstract(_state(0, ema=True)))
  assert sorted(os.listdir(checkpoint_folder.checkpoint_dir(workdir))) == [
      '1', '2']


def test_raw_weights_restore_without_asking_for_the_ema(tmp_path):
  """skinjax.evaluate builds its target state without EMA."""
  _two_checkpoints(str(tmp_path))
  manager = checkpoint_folder.create_manager(str(tmp_path), keep=3,
                                         best_metric='top1', read_only=True)
  state = checkpoints.restore(manager, 2, _abstract(_state(0)))
  assert state.ema is None
  np.testing.assert_array_equal(state.params['w'], [2.0] * 4)


@pytest.mark.slow
def test_a_checkpoint_damaged_for_one_process_only_is_skipped_by_both(
    tmp_path):
  """Two processes, process 1 reading its own copy of the run folder in
  which step 2's metadata is cut short: both restore step 1 and set step 2
  aside, and neither waits for the other."""
  views = [tmp_path / 'process_0', tmp_path / 'process_1']
  _two_checkpoints(str(views[0]))
  shutil.copytree(views[0], views[1])
  _truncate(os.path.join(checkpoint_folder.checkpoint_dir(str(views[1])), '2',
                         'state', '_METADATA'))
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  procs = [subprocess.Popen(
      [sys.executable, '-m', 'tests.restore_latest', str(view),
       f'127.0.0.1:{port}', '2', str(i)], cwd=REPO, text=True,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      env=dict(os.environ, JAX_PLATFORMS='cpu')) for i, view in enumerate(views)]
  for i, proc in enumerate(procs):
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, output[-3000:]
    assert f'process {i} restored step 1 (w = 1.0) in ' in output
    print(output.splitlines()[-1])
  for view in views:
    assert glob.glob(os.path.join(checkpoint_folder.checkpoint_dir(str(view)),
                                  '2.unreadable-*'))
