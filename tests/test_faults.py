"""Faults injected for real into training runs: preemption signals, damaged
checkpoints, another device count, a diverging loss, W&B going away and a
full disk. Each must cost nothing that was saved. The slow ones (minutes on
2 cores) run with `./launch.sh test --slow`."""

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from helpers import (REPO, TRAIN, assert_same_leaves, assert_same_weights,
                     cpu_devices, records, saved_state, start_training,
                     tiny_run_flags, train, wait_for)
import wandb_log


def _copy_run(reference, workdir, keep_steps):
  """A copy of a finished run as if it had stopped after `keep_steps`."""
  shutil.copytree(reference, workdir)
  for path in glob.glob(str(workdir / 'checkpoints' / '*')):
    if int(os.path.basename(path)) not in keep_steps:
      shutil.rmtree(path)


@pytest.mark.slow
def test_sigterm_checkpoints_exits_0_and_the_run_resumes_exactly(
    reference_run, tmp_path):
  reference, flags, env = reference_run
  workdir = tmp_path / 'preempted'
  proc = start_training(workdir, flags, env)
  wait_for(workdir / 'checkpoints' / '10', proc)
  proc.send_signal(signal.SIGTERM)
  stdout, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 0, stderr[-3000:]
  assert 'Received SIGTERM' in stdout
  stopped_at = int(stdout.split('Stopped at step ')[1].split()[0])
  assert 10 <= stopped_at < 60
  assert os.path.isdir(workdir / 'checkpoints' / str(stopped_at) / 'state')

  resumed, _ = train(workdir, flags, env)
  assert f'Resuming from checkpoint step {stopped_at}' in resumed
  assert_same_weights(workdir, reference, 60)


@pytest.mark.slow
def test_a_damaged_checkpoint_is_skipped_and_the_run_resumes_on_two_devices(
    reference_run, tmp_path):
  """The largest file of checkpoint 60's arrays cut in half: a warning, and
  the run resumes from 50 (saved by 4 devices) on 2 devices. Its last 10
  steps agree with the reference up to the reordering of float sums."""
  reference, flags, _ = reference_run
  workdir = tmp_path / 'damaged'
  _copy_run(reference, workdir, keep_steps=(40, 50, 60))
  files = glob.glob(str(workdir / 'checkpoints' / '60' / 'state' / '**'),
                    recursive=True)
  largest = max((f for f in files if os.path.isfile(f)), key=os.path.getsize)
  os.truncate(largest, os.path.getsize(largest) // 2)

  stdout, stderr = train(workdir, flags, cpu_devices(2))
  assert 'Checkpoint step 60 is damaged and was skipped' in stderr
  assert 'Resuming from checkpoint step 50' in stdout
  assert glob.glob(str(workdir / 'checkpoints' / '60.unreadable-*'))
  assert_same_leaves(saved_state(workdir, 60), saved_state(reference, 60),
                     rtol=1e-3, atol=1e-4)
  loss = {r['step']: r['train/loss'] for r in records(reference)
          if 'train/loss' in r}
  assert {r['step']: r['train/loss'] for r in records(workdir)
          if 'train/loss' in r} == pytest.approx(loss, rel=1e-4)


def _diverging_flags(data_dir, **overrides):
  """A learning rate of 1e38 from step 1: the loss is NaN at step 2."""
  return tiny_run_flags(data_dir, **{
      'optimizer.learning_rate': 1e38, 'optimizer.warmup_steps': 0,
      'num_train_steps': 6, 'checkpoint_every_steps': 1,
      'eval_every_steps': 1, 'log_every_steps': 1, **overrides})


def test_a_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(
    small_data_dir, tmp_path):
  _, stderr = train(tmp_path, _diverging_flags(small_data_dir),
                    expect_returncode=1)
  message = _error_line(stderr)
  assert message.startswith('error: the loss is nan at step 2')
  for advice in ('The last checkpoint (step 1) is untouched',
                 'config.optimizer.learning_rate (now 1e+38)',
                 'config.skip_nonfinite_steps=True'):
    assert advice in message
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['1']
  assert all(np.isfinite(x).all() for x in
             jax.tree.leaves(saved_state(tmp_path, 1)['params']))


def _error_line(stderr):
  """The message the run exits with (tqdm's bar may surround it)."""
  [line] = re.findall(r'error: [^\r\n]*', stderr)
  return line


@pytest.mark.slow
def test_skip_nonfinite_steps_goes_on_without_applying_them(small_data_dir,
                                                            tmp_path):
  """Every step after the first diverges: each is skipped, so the weights
  at the end are those after step 1, and the run finishes."""
  flags = _diverging_flags(small_data_dir, skip_nonfinite_steps=True,
                           keep_checkpoints=6, **{
                               'evaluation.calibrate_after_training': True})
  stdout, stderr = train(tmp_path, flags)
  assert 'Non-finite loss at steps [2]' in stdout + stderr
  # Step 1's weights already give non-finite features: no calibration.
  assert 'it cannot be calibrated' in stderr
  assert not (tmp_path / 'calibration').exists()
  skipped = [r.get('train/skipped_steps', 0) for r in records(tmp_path)
             if 'train/loss' in r]
  assert skipped == [0, 1, 1, 1, 1, 1]
  for step in (2, 6):
    assert_same_leaves(saved_state(tmp_path, step)['params'],
                       saved_state(tmp_path, 1)['params'], rtol=0, atol=0)


def _closed_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _wandb_core_pids(parent_pid):
  """wandb-core processes started by `parent_pid`."""
  pids = subprocess.run(['pgrep', '-P', str(parent_pid), '-f', 'wandb-core'],
                        capture_output=True, text=True).stdout.split()
  return [int(p) for p in pids]


@pytest.mark.slow
def test_wandb_unreachable_then_dying_mid_run_leaves_training_and_logs_whole(
    small_data_dir, tmp_path):
  """Online mode, an API key, and W&B's URL on a closed 127.0.0.1 port: the
  run falls back to offline. Then its wandb-core process is killed mid-run:
  it goes on offline again. metrics.jsonl holds every step throughout."""
  flags = tiny_run_flags(small_data_dir, num_train_steps=30,
                         **{'wandb.mode': 'online'})
  env = {'WANDB_BASE_URL': f'http://127.0.0.1:{_closed_port()}',
         'WANDB_API_KEY': 'x' * 40, 'WANDB_INIT_TIMEOUT': '1'}
  proc = start_training(tmp_path, flags, env)
  wait_for(tmp_path / 'checkpoints' / '10', proc)
  cores = _wandb_core_pids(proc.pid)
  assert cores, 'no wandb-core process to kill'
  for pid in cores:
    os.kill(pid, signal.SIGKILL)
  stdout, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 0, stderr[-3000:]
  assert 'W&B failed online' in stderr
  assert 'W&B failed at step' in stderr
  written = {r['step']: r['train/loss'] for r in records(tmp_path)
             if 'train/loss' in r}
  assert sorted(written) == list(range(5, 31, 5))
  logged = {r['step']: r['train/loss'] for r in
            wandb_log.history(tmp_path / 'wandb') if 'train/loss' in r}
  assert 30 in logged and logged == pytest.approx(
      {s: written[s] for s in logged})


def _can_mount_tmpfs():
  probe = subprocess.run(['unshare', '--user', '--map-root-user', '--mount',
                          'mount', '-t', 'tmpfs', 'tmpfs', '/mnt'],
                         capture_output=True)
  return probe.returncode == 0


@pytest.mark.skipif(not shutil.which('unshare') or not _can_mount_tmpfs(),
                    reason='needs a user namespace that may mount a tmpfs')
def test_disk_full_while_saving_is_a_clear_error_and_keeps_the_last_checkpoint(
    small_data_dir, tmp_path):
  """The run lives on a 2.5 MB tmpfs (in a user and mount namespace): its
  first checkpoint (1.6 MB) fits, the second does not."""
  disk, saved = tmp_path / 'disk', tmp_path / 'saved'
  disk.mkdir()
  flags = tiny_run_flags(small_data_dir)
  script = ' '.join([
      f'mount -t tmpfs -o size=2500k tmpfs {disk} &&',
      sys.executable, *TRAIN, '--workdir', f'{disk}/run',
      *flags, '; status=$?;', f'cp -a {disk}/run {saved}; exit $status'])
  result = subprocess.run(['unshare', '--user', '--map-root-user', '--mount',
                           'sh', '-c', script], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
  assert result.returncode == 1, result.stderr[-3000:]
  message = _error_line(result.stderr)
  assert message.startswith('error: could not write a checkpoint to ')
  assert 'the disk is full' in message
  assert 'The last complete checkpoint (step 10) is intact' in message
  kept = os.listdir(saved / 'checkpoints')
  assert '10' in kept and '20' not in kept
  assert int(saved_state(saved, 10)['step']) == 10


@pytest.mark.slow
def test_launch_multiprocess_stops_at_one_step_and_resumes_exactly_on_one(
    reference_run, tmp_path):
  """`launch.sh multiprocess 2` (2 devices each), then Ctrl-C (SIGINT to
  the process group): both processes checkpoint the same step and exit 0,
  evaluation is skipped. `launch.sh train` then resumes it in one process
  of 4 devices, finishes and evaluates. The global batches do not depend on
  the process count, so the run follows the uninterrupted one-process run;
  but the gradients are summed across processes in another order, and
  training at learning rate 0.1 grows those float differences (1e-7 at step
  10), so the comparison is of the losses: within 1e-3 for 10 steps after
  the stop, within 1e-2 after that, where they have grown chaotically
  (measured on a 2-core CPU, stopped at step 13: 4e-5 at step 25, 5e-5 at
  30, then 4e-3 at step 35 and 5e-3 at 40, in the code before and after
  the inference refactor alike)."""
  reference, flags, env = reference_run
  workdir = tmp_path / 'run'
  command = ['configs/synthetic.py', '--workdir', str(workdir), *flags]
  env = dict(os.environ, SKINJAX_VENV=sys.prefix, JAX_PLATFORMS='cpu')
  # As a terminal's foreground job: SIGINT not ignored, even when pytest
  # itself was started in the background.
  proc = subprocess.Popen(
      ['./launch.sh', 'multiprocess', '2', *command], cwd=REPO,
      env={**env, **cpu_devices(2)}, text=True, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, start_new_session=True,
      preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  wait_for(workdir / 'checkpoints' / '10', proc)
  os.killpg(proc.pid, signal.SIGINT)
  stdout, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 0, stderr[-3000:]
  assert 'not evaluating' in stdout
  stopped_at = int(stdout.split('Stopped at step ')[1].split()[0])
  assert stopped_at < 60, 'finished before it was stopped'
  with open(workdir / 'process_1.log') as f:
    assert f'Stopped at step {stopped_at} ' in f.read()

  resumed = subprocess.run(['./launch.sh', 'train', *command], cwd=REPO,
                           env={**env, **cpu_devices(4)}, capture_output=True,
                           text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f'Resuming from checkpoint step {stopped_at}' in resumed.stdout
  assert os.path.exists(workdir / 'eval' / 'test' / 'metrics.json')
  loss = {r['step']: r['train/loss'] for r in records(workdir)
          if 'train/loss' in r}
  assert list(loss) == list(range(5, 61, 5))  # written by process 0 alone
  expected = {r['step']: r['train/loss'] for r in records(reference)
              if 'train/loss' in r}
  after_stop = stopped_at + 5 - stopped_at % 5  # averages fewer steps
  for step in loss:
    if step != after_stop:
      tolerance = (1e-5 if step <= stopped_at else
                   1e-3 if step <= stopped_at + 10 else 1e-2)
      assert loss[step] == pytest.approx(expected[step], rel=tolerance), step
