"""Resume you can trust: one owner per run folder, config drift refused
before any compute, and a resume on another worker count, after Ctrl-C to
the whole process group, that continues the exact trajectory."""

import glob
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from helpers import (REPO, assert_same_leaves, records, saved_state,
                     start_training, tiny_run_flags, train, wait_for)
from skinjax.run_folder import lock


_LONG = 5000  # steps: far more than run before SIGTERM stops it


def _stopped_at(stdout):
  return int(stdout.split('Stopped at step ')[1].split()[0])


def _folder_snapshot(workdir):
  """Every file of a run folder with its bytes, but the lock."""
  snapshot = {}
  for path in glob.glob(os.path.join(workdir, '**'), recursive=True):
    if os.path.isfile(path) and os.path.basename(path) != lock.LOCK_FILE:
      with open(path, 'rb') as f:
        snapshot[os.path.relpath(path, workdir)] = f.read()
  return snapshot


@pytest.fixture(scope='module')
def stopped_run(small_data_dir, tmp_path_factory):
  """A run stopped by SIGTERM after its step-10 checkpoint; while it ran, a
  second `train` in its folder was refused. Returns (workdir, flags, the
  refused run's (returncode, stderr, seconds), the first run's stdout)."""
  workdir = tmp_path_factory.mktemp('stopped')
  flags = tiny_run_flags(small_data_dir, num_train_steps=_LONG)
  first = start_training(workdir, flags)
  wait_for(workdir / 'checkpoints' / '10', first)
  started = time.perf_counter()
  second = start_training(workdir, flags)
  _, stderr = second.communicate(timeout=120)
  refused = (second.returncode, stderr, time.perf_counter() - started)
  assert first.poll() is None, 'the first run ended before it was stopped'
  first.send_signal(signal.SIGTERM)
  stdout, stderr = first.communicate(timeout=300)
  assert first.returncode == 0, stderr[-3000:]
  return workdir, flags, refused, stdout


def test_a_second_run_in_a_live_folder_is_refused_naming_the_holder(
    stopped_run):
  workdir, _, (returncode, stderr, seconds), stdout = stopped_run
  assert returncode == 1
  [line] = [l for l in stderr.splitlines() if l.startswith('error: ')]
  assert f'{workdir} is in use by another run (pid ' in line
  assert f'on {socket.gethostname()}, started ' in line
  print(f'second train refused after {seconds:.1f} s')
  # The first run went on untouched: every step logged once, in order, up
  # to where SIGTERM stopped it, and its last checkpoint restores.
  stopped_at = _stopped_at(stdout)
  logged = [r['step'] for r in records(workdir) if 'train/loss' in r]
  assert logged == list(range(5, stopped_at + 1, 5))
  saved_state(workdir, stopped_at)


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, '-c', 'import sys, time; from skinjax.run_folder '
       'import lock\nwith lock.hold(sys.argv[1]):\n  print("held", '
       'flush=True); time.sleep(600)', str(tmp_path)],
      cwd=REPO, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == 'held'
  with pytest.raises(lock.RunFolderLocked, match=f'pid {holder.pid} on '):
    with lock.hold(str(tmp_path)):
      pass
  holder.kill()
  holder.wait()
  with lock.hold(str(tmp_path)):
    with open(tmp_path / lock.LOCK_FILE) as f:
      assert json.load(f)['pid'] == os.getpid()


def test_without_flock_a_dead_holder_on_this_host_is_taken_over(tmp_path):
  """The fallback for filesystems without flock: the file names its holder,
  which is taken over only when it is known to be gone."""
  path = str(tmp_path / lock.LOCK_FILE)
  dead = subprocess.Popen([sys.executable, '-c', 'pass'])
  dead.wait()
  for pid, host, taken in ((dead.pid, socket.gethostname(), True),
                           (os.getppid(), socket.gethostname(), False),
                           (dead.pid, 'another-host', False)):
    with open(path, 'w') as f:
      json.dump({'host': host, 'pid': pid, 'started': 'then'}, f)
    fd = os.open(path, os.O_RDWR)
    try:
      if taken:
        lock._take_without_flock(fd, path)  # pylint: disable=protected-access
        with open(path) as f:
          assert json.load(f)['pid'] == os.getpid()
      else:
        with pytest.raises(lock.RunFolderLocked, match=f'pid {pid} on {host}'):
          lock._take_without_flock(fd, path)  # pylint: disable=protected-access
    finally:
      os.close(fd)


def test_config_drift_on_resume_is_refused_per_key_and_changes_nothing(
    stopped_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(stopped_run[0], workdir)
  before = _folder_snapshot(workdir)
  flags = stopped_run[1] + ['--config.batch_size=32', '--config.seed=1',
                            '--config.optimizer.learning_rate=0.5']
  _, stderr = train(workdir, flags, expect_returncode=1)
  message = stderr[stderr.index('error: '):]
  for line in ('  config.batch_size: 16 -> 32', '  config.seed: 0 -> 1',
               '  config.optimizer.learning_rate: 0.1 -> 0.5',
               '--allow_change=batch_size,optimizer.learning_rate,seed'):
    assert line in message
  assert 'Resuming from' not in stderr
  assert _folder_snapshot(workdir) == before


def test_harmless_and_allowed_changes_resume_and_are_recorded(
    stopped_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(stopped_run[0], workdir)
  stopped_at = _stopped_at(stopped_run[3])
  end = stopped_at + 4
  flags = stopped_run[1] + ['--config.log_every_steps=2',
                            f'--config.num_train_steps={end}',
                            '--allow_change=num_train_steps']
  stdout, _ = train(workdir, flags)
  assert f'Resuming with config.num_train_steps: {_LONG} -> {end}.' in stdout
  with open(workdir / 'config_changes.jsonl') as f:
    [record] = [json.loads(line) for line in f]
  assert record['step'] == stopped_at
  assert record['changes'] == {
      'log_every_steps': {'from': 5, 'to': 2},
      'num_train_steps': {'from': _LONG, 'to': end}}
  with open(workdir / 'config.json') as f:
    saved = json.load(f)
  assert (saved['num_train_steps'], saved['log_every_steps']) == (end, 2)
  assert os.path.isdir(workdir / 'checkpoints' / str(end))


def test_killed_then_resumed_on_workers_then_ctrl_c_then_resumed_is_exact(
    reference_run, tmp_path):
  """SIGKILL after step 10 (no data workers); resumed on 2 workers; Ctrl-C
  to the whole process group (the workers too) after step 20: checkpoint,
  exit 0; resumed again. Weights and metrics are the uninterrupted run's."""
  reference, flags, env = reference_run
  workdir = tmp_path / 'run'
  proc = start_training(workdir, flags, env)
  wait_for(workdir / 'checkpoints' / '10', proc)
  proc.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL, 'finished before it was killed'

  flags = flags + ['--config.input.num_workers=2']
  # As a terminal's foreground job: SIGINT not ignored, even when pytest
  # itself runs in the background.
  proc = start_training(workdir, flags, env, start_new_session=True,
                        preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                         signal.SIG_DFL))
  wait_for(workdir / 'checkpoints' / '20', proc)
  os.killpg(proc.pid, signal.SIGINT)
  stdout, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 0, stderr[-3000:]
  assert 'Resuming from checkpoint step' in stdout
  assert 'Received SIGINT' in stdout
  stopped_at = _stopped_at(stdout)
  assert 20 <= stopped_at < 60

  resumed, _ = train(workdir, flags, env)
  assert f'Resuming from checkpoint step {stopped_at}' in resumed
  assert_same_leaves(saved_state(workdir, 60), saved_state(reference, 60))
  assert_same_leaves(saved_state(workdir, 60, 'ema'),
                     saved_state(reference, 60, 'ema'))
  whole, again = records(reference), records(workdir)
  logged_steps = [r['step'] for r in again if 'train/loss' in r]
  assert len(logged_steps) == len(set(logged_steps)) == 12  # no step twice
  # The train/ record after the stop averages only the steps since the
  # resume; every other record is the uninterrupted run's.
  window = {stopped_at + 5 - stopped_at % 5}
  for key in ('train/loss', 'val/top1', 'val/macro_f1', 'val_ema/nll'):
    expected = {r['step']: r[key] for r in whole if key in r}
    got = {r['step']: r[key] for r in again if key in r}
    assert got.keys() == expected.keys()
    assert ({s: v for s, v in got.items() if s not in window} == pytest.approx(
        {s: v for s, v in expected.items() if s not in window}))


def _newest_record_step(workdir):
  try:
    return max([r['step'] for r in records(workdir) if 'train/loss' in r],
               default=0)
  except (OSError, ValueError):
    return 0  # not written yet, or a line being written


def _kill_when(proc, moment, timeout=300):
  """SIGKILLs `proc` once `moment()` is true; False if it ended first."""
  deadline = time.time() + timeout
  while not moment():
    if proc.poll() is not None:
      return False
    assert time.time() < deadline, 'the moment never came'
    time.sleep(0.005)
  proc.kill()
  proc.wait()
  return True


@pytest.mark.slow
def test_three_sigkills_at_random_moments_then_the_same_weights(
    reference_run, tmp_path):
  """One run killed three times: while a checkpoint is being written, while
  validating (just after a validation step's train record), and at a random
  moment after the restart (compiling, reading data or training); each time
  the same command resumes. The weights at the end are the uninterrupted
  run's."""
  reference, flags, env = reference_run
  workdir = tmp_path / 'run'
  rng = random.Random(0)
  checkpoint_dir = workdir / 'checkpoints'

  def saving():
    return os.path.isdir(checkpoint_dir) and any(
        'tmp' in name for name in os.listdir(checkpoint_dir))

  def validating():
    step = _newest_record_step(workdir)
    return step > validating.after and step % 10 == 0

  validating.after = 0
  killed_at = time.time()
  delay = rng.uniform(3, 12)
  moments = [saving, validating, lambda: time.time() > killed_at + delay]
  for moment in moments:
    validating.after = _newest_record_step(workdir)
    proc = start_training(workdir, flags, env)
    assert _kill_when(proc, moment), 'the run ended before it was killed'
    killed_at = time.time()
  stdout, _ = train(workdir, flags, env)
  assert 'Resuming from checkpoint step' in stdout
  assert_same_leaves(saved_state(workdir, 60), saved_state(reference, 60))
  assert_same_leaves(saved_state(workdir, 60, 'ema'),
                     saved_state(reference, 60, 'ema'))
