"""The train and evaluate commands, run as a user runs them."""

import glob
import json
import os
import re

import numpy as np
import pytest

from helpers import records, run_module
import wandb_log



def test_run_writes_metrics_config_and_checkpoints(trained_run):
  workdir, _ = trained_run
  logged = records(workdir)
  train_records = [r for r in logged if 'train/loss' in r]
  assert [r['step'] for r in train_records] == [5, 10, 15, 20]
  for key in ('train/accuracy', 'train/learning_rate',
              'perf/images_per_second', 'perf/step_time_ms'):
    assert all(np.isfinite(r[key]) for r in train_records), key
  assert [r['step'] for r in logged if 'val/top1' in r] == [10, 20]
  wall = [r['time/wall_seconds'] for r in logged]
  assert wall == sorted(wall) and wall[0] > 0
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
  result = run_module('skinjax.evaluate', [
      '--workdir', str(workdir), '--split', 'test', '--checkpoint', 'best'])
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
  # Calibrated on validation, saved beside the checkpoint, applied here.
  with open(workdir / 'calibration' / f"{metrics['checkpoint_step']}.json") as f:
    calibration = json.load(f)
  assert calibration['fitted_on']['split'] == 'validation'
  assert calibration['fitted_on']['nll_after'] <= (
      calibration['fitted_on']['nll_before'] + 1e-9)
  assert metrics['calibration']['temperature'] == calibration['temperature']
  assert 0 <= metrics['ece'] <= 1 and 0 <= metrics['macro_roc_auc'] <= 1
  assert 0 <= metrics['selective']['coverage'] <= 1
  report = (workdir / 'eval' / 'test' / 'report.md').read_text()
  figures = ('confusion_matrix', 'reliability', 'per_class_recall',
             'risk_coverage')
  for name in figures:
    png = workdir / 'eval' / 'test' / f'{name}.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', name
    assert f'({name}.png)' in report
  logged = {k: v for row in wandb_log.history(workdir / 'wandb')
            for k, v in row.items() if k.startswith('test/')}
  assert logged['test/top1'] == pytest.approx(metrics['top1'])
  # The quality gate's share flagged: its relative checks flag 1% and 2%
  # of validation photos, the exposure checks hardly any synthetic one.
  gate = metrics['quality']
  assert gate['not_measured'] == [] and gate['flagged'] <= 0.1
  assert gate['num_flagged'] == round(gate['flagged'] * 60)
  assert sum(t['photos'] for t in gate['by_skin_tone'].values()) == 60
  assert logged['test/quality_flagged'] == pytest.approx(gate['flagged'])
  assert 'quality gate: flags' in result.stdout
  for name in figures:
    assert logged[f'test/{name}/_type'] == 'image-file', name
    assert glob.glob(str(workdir / 'wandb' / '*' / 'files' /
                         logged[f'test/{name}/path'])), name
  _assert_card_matches(workdir / 'MODEL_CARD.md', metrics,
                       json.loads((workdir / 'environment.json').read_text()))


def _rows(card: str, first: str) -> list:
  """The cells of the card's table rows whose first cell is `first`."""
  return [[c.strip() for c in line.strip('|').split('|')]
          for line in card.splitlines()
          if line.startswith(f'| {first} |')]


def _numbers(cell: str) -> list:
  return [float(x) for x in re.findall(r'-?\d+\.\d+', cell)]


def _assert_card_matches(path, metrics, environment):
  """Every figure of the model card, parsed back, is metrics.json's (to
  the 4 decimals it shows) or environment.json's."""
  card = path.read_text()
  approx = lambda v: pytest.approx(v, abs=5.1e-5)
  for key in ('top1', 'top3', 'balanced_accuracy', 'macro_f1',
              'macro_roc_auc', 'nll', 'ece'):
    [[_, value, interval]] = _rows(card, key)
    assert float(value) == approx(metrics[key]), key
    if key in metrics['interval']:
      low, high = metrics['interval'][key]
      assert _numbers(interval) == [approx(low), approx(high)], key
      assert low <= metrics[key] <= high or key == 'ece', key
  for name, c in metrics['per_class'].items():
    [[_, precision, recall, f1, support]] = _rows(card, name)
    assert [float(precision), float(recall), float(f1), int(support)] == [
        approx(c['precision']), approx(c['recall']), approx(c['f1']),
        c['support']], name
  for group, e in metrics['skin_tone']['groups'].items():
    [[_, support, *cells]] = _rows(card, group)
    assert int(support) == e['support']
    for cell, key in zip(cells, ('top1', 'balanced_accuracy', 'ece')):
      bounds = (e['interval'] or {}).get(key) or []
      assert _numbers(cell) == [approx(x) for x in [e[key], *bounds]], group
  calibration = metrics['calibration']
  [[_, before, after]] = _rows(card, 'ECE')
  assert [float(before), float(after)] == [
      approx(calibration['ece_before']), approx(calibration['ece_after'])]
  assert f"{calibration['temperature']:.4f}" in card
  assert f"{metrics['unfamiliar']['threshold']:.4f}" in card
  assert f"{metrics['num_examples']} photos, checkpoint " \
      f"{metrics['checkpoint_step']}" in card
  assert environment[-1]['git_commit'] in card
  assert f"jax {environment[-1]['versions']['jax']}" in card
  for name in metrics['class_names']:
    assert f'. {name}' in card
  assert 'not a diagnosis' in card and 'Not to be used for' in card
  assert 'Licence: Apache-2.0' in card  # synthetic_lesions
