"""The train and evaluate commands, run as a user runs them."""

import json
import os
import signal

import numpy as np
import pytest

from helpers import (assert_same_leaves, records, run_module, saved_state,
                     start_training, tiny_run_flags, train, wait_for)
import wandb_log

_CONFIG = ['--config', 'configs/synthetic.py']


@pytest.fixture(scope='module')
def trained_run(small_data_dir, tmp_path_factory):
  """A 20-step run logged to W&B offline."""
  workdir = tmp_path_factory.mktemp('run')
  flags = tiny_run_flags(small_data_dir, **{'wandb.mode': 'offline'})
  train(workdir, flags)
  return workdir, flags


def test_run_writes_metrics_config_and_checkpoints(trained_run):
  workdir, _ = trained_run
  logged = records(workdir)
  train_records = [r for r in logged if 'train/loss' in r]
  assert [r['step'] for r in train_records] == [5, 10, 15, 20]
  for key in ('train/accuracy', 'train/learning_rate',
              'perf/images_per_second', 'perf/step_time_ms'):
    assert all(np.isfinite(r[key]) for r in train_records), key
  assert [r['step'] for r in logged if 'val/top1' in r] == [10, 20]
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['model']['width'] == 8
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['10', '20']


def test_wandb_offline_run_holds_the_loss_history(trained_run):
  workdir, _ = trained_run
  rows = wandb_log.history(os.path.join(workdir, 'wandb'))
  logged = {r['step']: r['train/loss'] for r in rows if 'train/loss' in r}
  written = {r['step']: r['train/loss'] for r in records(workdir)
             if 'train/loss' in r}
  assert logged == pytest.approx(written) and len(logged) == 4
  run_id = (workdir / 'wandb_run_id').read_text()
  assert any(d.endswith(run_id) for d in os.listdir(workdir / 'wandb'))


def test_evaluate_writes_the_report(trained_run):
  workdir, flags = trained_run
  result = run_module('skinjax.evaluate', _CONFIG + [
      '--workdir', str(workdir), '--split', 'test', '--checkpoint', 'best']
                      + flags)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'chance: top1' in result.stdout
  with open(workdir / 'eval' / 'test' / 'metrics.json') as f:
    metrics = json.load(f)
  assert metrics['num_examples'] == 60
  for key in ('top1', 'top3', 'balanced_accuracy', 'macro_f1'):
    assert 0 <= metrics[key] <= 1
  assert np.sum(metrics['confusion_matrix']) == 60
  assert len(metrics['per_class']) == 6
  val = {r['step']: r['val/top1'] for r in records(workdir) if 'val/top1' in r}
  assert metrics['checkpoint_step'] == max(val, key=lambda s: (val[s], -s))


def test_killed_run_resumes_to_the_same_result(reference_run, tmp_path):
  """SIGKILL midway, then the same command: identical params and metrics."""
  reference, flags, env = reference_run
  workdir = tmp_path / 'killed'
  proc = start_training(workdir, flags, env)
  wait_for(workdir / 'checkpoints' / '10', proc)
  proc.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL, 'finished before it was killed'
  resumed, _ = train(workdir, flags, env)
  assert 'Resuming from checkpoint step' in resumed

  assert_same_leaves(saved_state(workdir, 60), saved_state(reference, 60))
  assert_same_leaves(saved_state(workdir, 60, 'ema'),
                     saved_state(reference, 60, 'ema'))
  whole, again = records(reference), records(workdir)
  logged_steps = [r['step'] for r in again if 'train/loss' in r]
  assert len(logged_steps) == len(set(logged_steps)) == 12  # no step twice
  for key in ('train/loss', 'val/top1', 'val/macro_f1', 'val_ema/nll'):
    assert ({r['step']: r[key] for r in whole if key in r}
            == pytest.approx({r['step']: r[key] for r in again if key in r}))
