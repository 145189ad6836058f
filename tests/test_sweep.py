"""A 2 x 2 sweep of tiny runs, offline, killed mid-trial and run again."""

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO, records, run_module, tiny_run_flags, wait_for
import wandb_log
from skinjax.comparison import figures
from skinjax.comparison import runs as runs_lib

# Augmentation is numpy work in the input pipeline: the four trials share
# one compiled train step.
PARAMETERS = {'augment.brightness': [0.0, 0.2], 'augment.contrast': [0.0, 0.2]}
NAMES = ['brightness=0,contrast=0', 'brightness=0,contrast=0.2',
         'brightness=0.2,contrast=0', 'brightness=0.2,contrast=0.2']


def _sweep_command(tmp_path, data_dir):
  sweep_file = tmp_path / 'tiny_sweep.py'
  sweep_file.write_text(
      'def get_sweep():\n  return ' + repr({
          'name': 'tiny_sweep',
          'config': os.path.join(REPO, 'configs', 'synthetic.py'),
          'fixed': {'num_train_steps': 8, 'log_every_steps': 2,
                    'eval_every_steps': 4, 'checkpoint_every_steps': 4},
          'parameters': PARAMETERS, 'tags': ('tiny',)}) + '\n')
  flags = [f for f in tiny_run_flags(data_dir, **{'wandb.mode': 'offline'})
           if not f.startswith(('--config.num_train_steps',
                                '--config.log_every_steps',
                                '--config.eval_every_steps',
                                '--config.checkpoint_every_steps'))]
  return [sys.executable, '-m', 'skinjax.sweep', str(sweep_file), '--root',
          str(tmp_path / 'root'), *flags]


@pytest.mark.slow
def test_a_killed_sweep_resumes_its_trial_and_skips_finished_ones(
    small_data_dir, tmp_path):
  command = _sweep_command(tmp_path, small_data_dir)
  root = tmp_path / 'root'
  third = root / NAMES[2]
  sweep = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
  wait_for(third / 'checkpoints' / '4', sweep, timeout=600)
  os.killpg(sweep.pid, signal.SIGKILL)  # the sweep and its trial
  sweep.wait()
  assert not (third / 'checkpoints' / '8').exists(), 'killed too late'
  assert not (root / NAMES[3]).exists()

  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  out = result.stdout
  for number, name in enumerate(NAMES[:2], 1):
    assert f'[{number}/4] {name}: finished earlier, skipped' in out
  resumed = out[out.index(f'[3/4] {NAMES[2]}: training'):
                out.index(f'[4/4] {NAMES[3]}')]
  assert 'Resuming from checkpoint step 4' in resumed
  assert 'Resuming' not in out[out.index(f'[4/4] {NAMES[3]}'):]
  # The sweep's pace, once a trial has run here.
  assert re.search(rf'\[4/4\] {NAMES[3]}: training in .* '
                   r'\(\d\d:\d\d for 1 so far, about \d\d:\d\d left\)',
                   out), out
  # No ROOT/xla_cache: the tests' own compilation cache (helpers) is set.
  assert sorted(os.listdir(root)) == sorted(NAMES + ['comparison'])
  for name in NAMES:
    steps = [r['step'] for r in records(root / name) if 'train/loss' in r]
    assert steps == [2, 4, 6, 8], (name, steps)

  # The comparison printed at the end: exactly the two swept keys.
  header = next(l for l in out.splitlines() if l.startswith('| run |'))
  assert [c.strip() for c in header.strip('|').split('|')][7:] == list(
      PARAMETERS)
  for name in ('curves_by_step.png', 'curves_by_wall_time.png'):
    assert (root / 'comparison' / name).stat().st_size > 10_000
  runs = runs_lib.load([str(root)])
  groups = runs_lib.groups(runs, runs_lib.differing_keys(runs))
  figure = figures.curves(groups, 'val/balanced_accuracy', 'step')
  panel = next(ax for ax in figure.axes if ax.get_title() == 'train/loss')
  assert [line.get_label() for line in panel.get_lines()] == NAMES
  for line, name in zip(panel.get_lines(), NAMES):
    logged = [(r['step'], r['train/loss']) for r in records(root / name)
              if 'train/loss' in r]
    np.testing.assert_allclose(np.stack([line.get_xdata(),
                                         line.get_ydata()], 1), logged)

  # W&B, offline: each trial one run (the killed trial's starts share its
  # id), named by the trial, in the sweep's group, with its tags; training
  # and evaluation are job types of that run. (A start killed by SIGKILL
  # may have left no W&B records: wandb-core had not written them yet.)
  evaluated = run_module('skinjax.evaluate', ['--workdir', str(root / NAMES[0]),
                                              '--split', 'test'])
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  for name in NAMES:
    starts = wandb_log.runs(str(root / name / 'wandb'))
    run_id = (root / name / 'wandb_run_id').read_text()
    for start in starts:
      assert (start['id'], start['name'], start['group'], start['tags']) == (
          run_id, name, 'tiny_sweep', ['tiny'])
      assert start['config']['augment.brightness'] == float(
          name.split(',')[0].split('=')[1])
    job_types = [s['job_type'] for s in starts]
    if name == NAMES[0]:
      assert job_types == ['train', 'evaluate']
    else:
      assert job_types[-1] == 'train' and set(job_types) == {'train'}
  evaluation = wandb_log.runs(str(root / NAMES[0] / 'wandb'))[-1]['summary']
  assert 0 <= evaluation['test/top1'] <= 1
