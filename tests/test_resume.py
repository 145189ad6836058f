"""Resume you can trust: one owner per run folder, config drift refused
before any compute, and resumes after Ctrl-C to the whole process group or
SIGKILL, on another number of data workers, that continue the exact
trajectory."""

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

from helpers import (REPO, assert_same_weights, records, run_module,
                     saved_state, start_training, tiny_run_flags, train,
                     wait_for)
from skinjax.run_folder import lock
from skinjax.inference import restore


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


def _copy(run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(run, workdir)
  return workdir


def _hold_lock(workdir):
  """A live process holding WORKDIR/lock, as a running train does."""
  holder = subprocess.Popen(
      [sys.executable, '-c', 'import sys, time; from skinjax.run_folder '
       'import lock\nwith lock.hold(sys.argv[1]):\n  print("held", '
       'flush=True); time.sleep(600)', str(workdir)],
      cwd=REPO, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == 'held'
  return holder


def test_a_second_run_in_a_live_folder_is_refused_naming_the_holder(
    trained_run, tmp_path):
  """Refused at once, before it reads or writes anything of the run."""
  workdir = _copy(trained_run[0], tmp_path)
  before = _folder_snapshot(workdir)
  holder = _hold_lock(workdir)
  try:
    started = time.perf_counter()
    _, stderr = train(workdir, trained_run[1], expect_returncode=1)
    print(f'second train refused after {time.perf_counter() - started:.1f} s')
  finally:
    holder.kill()
  [line] = [l for l in stderr.splitlines() if l.startswith('error: ')]
  assert f'{workdir} is in use by another run (pid {holder.pid} on ' in line
  assert f'on {socket.gethostname()}, started ' in line
  assert _folder_snapshot(workdir) == before


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path):
  holder = _hold_lock(tmp_path)
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


def test_a_link_at_the_lock_path_is_refused_and_its_target_untouched(
    tmp_path):
  """Taking the lock writes into its file: through a symlink or hard link
  planted there, that would truncate another file (a config, a token)."""
  target = tmp_path / 'precious'
  target.write_text('keep me')
  for kind in ('symlink', 'hard link'):
    workdir = tmp_path / kind.replace(' ', '_')
    workdir.mkdir()
    path = workdir / lock.LOCK_FILE
    if kind == 'symlink':
      path.symlink_to(target)
    else:
      os.link(target, path)
    with pytest.raises(lock.UnsafeLockFile, match=str(path)) as refusal:
      with lock.hold(str(workdir)):
        pass
    assert '\n' not in str(refusal.value)
    assert target.read_text() == 'keep me'


def test_config_drift_on_resume_is_refused_per_key_and_changes_nothing(
    trained_run, tmp_path):
  workdir = _copy(trained_run[0], tmp_path)
  before = _folder_snapshot(workdir)
  flags = trained_run[1] + ['--config.batch_size=32', '--config.seed=1',
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
    trained_run, tmp_path):
  """Training 2 steps longer than the run's 20, on purpose, with another
  logging cadence."""
  workdir = _copy(trained_run[0], tmp_path)
  flags = trained_run[1] + ['--config.log_every_steps=2',
                            '--config.num_train_steps=22',
                            '--allow_change=num_train_steps']
  stdout, _ = train(workdir, flags)
  assert 'Resuming with config.num_train_steps: 20 -> 22.' in stdout
  with open(workdir / 'config_changes.jsonl') as f:
    [record] = [json.loads(line) for line in f]
  assert record['step'] == 20
  assert record['changes'] == {
      'log_every_steps': {'from': 5, 'to': 2},
      'num_train_steps': {'from': 20, 'to': 22}}
  with open(workdir / 'config.json') as f:
    saved = json.load(f)
  assert (saved['num_train_steps'], saved['log_every_steps']) == (22, 2)
  assert os.path.isdir(workdir / 'checkpoints' / '22')
  # Each start appends what it ran on.
  with open(workdir / 'environment.json') as f:
    starts = json.load(f)
  assert [e['start_step'] for e in starts] == [0, 20]
  assert starts[1]['versions'] == starts[0]['versions']
  # The wall time goes on from the run's, summed across the resume.
  wall = {r['step']: r['time/wall_seconds'] for r in records(workdir)}
  assert wall[22] > wall[20] == max(
      r['time/wall_seconds'] for r in records(trained_run[0]))


@pytest.mark.slow  # an uninterrupted, a stopped, a resumed run, an evaluate
def test_a_resume_is_exact_with_device_augmentation_across_size_changes(
    small_data_dir, tmp_path):
  """Ctrl-C to the process group of a run with data workers, then a resume
  on none, with flips, turns and jitter drawn in the train step, the
  batches copied to the device ahead, progressive resizing (24 px to step
  12, then 32) and the first two stages frozen to step 15: the keys are the
  step's and the batches are (seed, step)'s at any size, so the resumed run,
  on another worker count and across both changes, reaches the same
  weights. Evaluated at another size, the same weights are restored and
  calibrated for that size."""
  flags = tiny_run_flags(small_data_dir, **{
      'augment.on_device': True, 'progressive_resizing': '((24, 12),)',
      'model.frozen_stages': 2, 'model.frozen_until_step': 15})
  reference = tmp_path / 'reference'
  train(reference, flags)
  compiled_at = [r['step'] for r in records(reference)
                 if 'perf/first_step_seconds' in r]
  assert compiled_at == [1, 13, 16]  # a program per size and freezing
  _ctrl_c_with_workers_then_resume(reference, flags, tmp_path / 'run')

  result = run_module('skinjax.evaluate', ['--workdir', str(reference),
                                           '--config.eval_image_size=40'])
  assert result.returncode == 0, result.stderr[-3000:]
  [path] = glob.glob(str(reference / 'calibration' / '*[0-9].json'))
  with open(path) as f:
    calibration = json.load(f)
  assert calibration['fitted_on']['image_size'] == 40
  step = calibration['checkpoint_step']
  assert calibration['params_digest'] == restore.params_digest(
      saved_state(reference, step)['params'])


def _ctrl_c_with_workers_then_resume(reference, flags, workdir):
  """2 data workers, Ctrl-C to the whole process group (the workers too)
  after the step-5 checkpoint: checkpoint, exit 0. Resumed on no workers:
  the weights at step 20 are those of the uninterrupted run."""
  # Checkpoints every 5 steps, so that the stop comes well before the end;
  # checkpointing changes nothing of the weights.
  flags = flags + ['--config.checkpoint_every_steps=5',
                   '--config.wandb.mode=disabled']
  # As a terminal's foreground job: SIGINT not ignored, even when pytest
  # itself runs in the background.
  proc = start_training(workdir, flags + ['--config.input.num_workers=2'],
                        start_new_session=True,
                        preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                         signal.SIG_DFL))
  wait_for(workdir / 'checkpoints' / '5', proc)
  os.killpg(proc.pid, signal.SIGINT)
  stdout, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 0, stderr[-3000:]
  assert 'Received SIGINT' in stdout
  stopped_at = _stopped_at(stdout)
  assert 5 <= stopped_at < 20

  resumed, _ = train(workdir, flags)
  assert f'Resuming from checkpoint step {stopped_at}' in resumed
  assert_same_weights(workdir, reference, 20, items=('state',))


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
  the same command resumes, with or without data workers. The weights at
  the end are the uninterrupted run's."""
  reference, flags, env = reference_run
  workdir = tmp_path / 'run'
  rng = random.Random(0)
  checkpoint_dir = workdir / 'checkpoints'

  def saving():
    return os.path.isdir(checkpoint_dir) and any(
        'tmp' in name for name in os.listdir(checkpoint_dir))

  def validating():
    """At a validation after the newest committed checkpoint: on a slow
    machine the first kill can come before any, and a resume then needs
    one."""
    committed = [int(name) for name in os.listdir(checkpoint_dir)
                 if name.isdigit()] if os.path.isdir(checkpoint_dir) else []
    step = _newest_record_step(workdir)
    return bool(committed) and step > max(committed) and step % 10 == 0

  killed_at = time.time()
  delay = rng.uniform(3, 12)
  moments = [saving, validating, lambda: time.time() > killed_at + delay]
  # Data workers: none, then 2, then none, then 2 to the end.
  workers = [f'--config.input.num_workers={n}' for n in (0, 2, 0, 2)]
  for moment, with_workers in zip(moments, workers):
    proc = start_training(workdir, flags + [with_workers], env)
    assert _kill_when(proc, moment), 'the run ended before it was killed'
    killed_at = time.time()
  stdout, _ = train(workdir, flags + [workers[-1]], env)
  assert 'Resuming from checkpoint step' in stdout
  assert_same_weights(workdir, reference, 60)


@pytest.mark.slow
def test_a_second_ctrl_c_exits_at_once_and_the_run_still_resumes(
    small_data_dir, tmp_path):
  """Ctrl-C twice: the process ends by SIGINT without finishing its
  checkpoint; the same command resumes from the last complete one."""
  flags = tiny_run_flags(small_data_dir, num_train_steps=2000)
  proc = start_training(tmp_path, flags, preexec_fn=lambda: signal.signal(
      signal.SIGINT, signal.SIG_DFL))
  wait_for(tmp_path / 'checkpoints' / '10', proc)
  proc.send_signal(signal.SIGINT)
  time.sleep(0.2)
  proc.send_signal(signal.SIGINT)
  stdout, _ = proc.communicate(timeout=120)
  assert proc.returncode == -signal.SIGINT
  assert 'Received SIGINT again: exiting now, without a checkpoint.' in stdout
  assert 'Stopped at step' not in stdout
  stdout, _ = train(tmp_path, tiny_run_flags(small_data_dir,
                                              num_train_steps=2000) + [
      '--config.num_train_steps=12', '--allow_change=num_train_steps'])
  assert 'Resuming from checkpoint step' in stdout


def test_signal_handlers_and_mask_are_restored_after_training():
  """Inside, SIGTERM asks for a stop and the main thread blocks both
  signals (for the workers it starts); after, all is as it was, so a
  notebook's Ctrl-C and later subprocesses are untouched."""
  from skinjax.training import preemption  # pylint: disable=g-import-not-at-top
  before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM),
            signal.pthread_sigmask(signal.SIG_BLOCK, []))
  with preemption.handlers() as stop_requested:
    assert {signal.SIGINT, signal.SIGTERM} <= signal.pthread_sigmask(
        signal.SIG_BLOCK, [])
    assert not stop_requested(1)
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.time() + 10
    while not stop_requested(1):
      assert time.time() < deadline, 'SIGTERM never reached the handler'
      time.sleep(0.01)
  assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM),
          signal.pthread_sigmask(signal.SIG_BLOCK, [])) == before


@pytest.mark.slow
def test_a_second_start_reads_its_compiled_steps_from_the_cache(
    small_data_dir, tmp_path):
  """config.compilation_cache_dir (the default when JAX_COMPILATION_CACHE_DIR
  is unset): a second run of the same program compiles nothing new."""
  cache = tmp_path / 'xla'
  env = {'JAX_COMPILATION_CACHE_DIR': ''}
  flags = tiny_run_flags(small_data_dir, num_train_steps=2,
                         eval_every_steps=2, checkpoint_every_steps=2,
                         log_every_steps=1,
                         compilation_cache_dir=str(cache))
  train(tmp_path / 'first', flags, env)
  written = set(os.listdir(cache))
  assert written
  train(tmp_path / 'second', flags, env)
  assert set(os.listdir(cache)) == written
