"""The run folder is the truth: evaluate and predict read its config.json,
and skinjax's own deprecations fail (config files from anywhere:
test_install)."""

import json
import os
import subprocess
import sys
import warnings

import pytest

from helpers import REPO, records, run_module, tiny_run_flags
from skinjax.config import defaults
from skinjax.run_folder import run_config
from skinjax.run_folder import tracking


def _evaluate(workdir, *args):
  result = run_module('skinjax.evaluate', ['--workdir', str(workdir), *args])
  return result, [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.slow  # the default tier's 10-minute budget
def test_evaluate_scores_with_the_run_config_and_refuses_other_changes(
    trained_run):
  """The run was trained with overrides (32 px among them, which no
  parameter shape would betray): evaluate without them scores exactly as
  with all of them repeated, and a change to a trained key is refused."""
  workdir, flags = trained_run
  scored = {}
  for name, extra in (('from the run', []),
                      ('repeated', ['--config', 'configs/synthetic.py',
                                    *flags])):
    result, _ = _evaluate(workdir, '--split', 'validation',
                          '--checkpoint', 'latest', *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(workdir / 'eval' / 'validation' / 'metrics.json') as f:
      scored[name] = json.load(f)
  for key in ('top1', 'balanced_accuracy', 'nll', 'confusion_matrix'):
    assert scored['from the run'][key] == scored['repeated'][key], key

  result, lines = _evaluate(workdir, '--config.model.width=16')
  assert result.returncode != 0 and len(lines) == 1, lines
  assert lines[0].startswith('error: config.model.width=16: the run in ')
  assert 'trained with 8' in lines[0]
  result, lines = _evaluate(workdir, '--config', 'configs/synthetic.py')
  assert result.returncode != 0 and len(lines) == 1, lines
  assert 'trained with' in lines[0] and 'config.json' in lines[0]


def test_config_json_reads_back_into_the_schema(tmp_path):
  config = defaults.get_config()
  config.augment.crop_scale = (0.4, 0.9)
  config.wandb.tags = ('a', 'b')
  config.image_size = 96
  run_config.write(config, str(tmp_path))
  restored = run_config.read(str(tmp_path))
  assert restored == config
  assert isinstance(restored.augment.crop_scale, tuple)
  assert not os.path.exists(tmp_path / 'config.json.tmp')

  saved = json.loads((tmp_path / 'config.json').read_text())
  saved['dataset']['test_split'] = 'test'  # retired: written by older runs
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  assert run_config.read(str(tmp_path)) == config
  saved['model']['widht'] = 3
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  with pytest.raises(run_config.RunFolderError, match="config.json: unknown "
                     "config key 'model.widht'"):
    run_config.read(str(tmp_path))


def test_evaluation_changes_only_evaluation_keys(tmp_path):
  run_config.write(defaults.get_config(), str(tmp_path))
  changed = run_config.for_evaluation(str(tmp_path), {
      'evaluation.tta': 'flips', 'image_size': 256,
      'dataset.data_dir': '/elsewhere'})
  assert (changed.evaluation.tta, changed.image_size,
          changed.dataset.data_dir) == ('flips', 256, '/elsewhere')
  with pytest.raises(run_config.RunFolderError,
                     match=r'config.seed=3: the run .* trained with 0'):
    run_config.for_evaluation(str(tmp_path), {'seed': 3})


def test_a_missing_run_folder_is_one_line(tmp_path):
  result, lines = _evaluate(tmp_path / 'nothing')
  assert result.returncode != 0
  assert lines == [f"error: {tmp_path / 'nothing' / 'config.json'} not found: "
                   f"is {tmp_path / 'nothing'} a run folder written by "
                   'skinjax.train?']


def test_a_deprecation_from_skinjax_fails():
  with pytest.raises(DeprecationWarning):
    warnings.warn_explicit('old API', DeprecationWarning, 'step.py', 1,
                           module='skinjax.training.step')
  result = subprocess.run(
      [sys.executable, '-c', 'import warnings; warnings.warn("old", '
       'DeprecationWarning)'], capture_output=True, text=True, check=False)
  assert result.returncode != 0 and 'DeprecationWarning: old' in result.stderr


@pytest.mark.slow
def test_launch_sh_train_prints_what_evaluate_of_the_run_folder_scores(
    small_data_dir, tmp_path):
  workdir = tmp_path / 'run'
  trained = subprocess.run(
      ['./launch.sh', 'train', 'configs/synthetic.py', '--workdir',
       str(workdir), *tiny_run_flags(small_data_dir)],
      cwd=REPO, env=dict(os.environ, SKINJAX_VENV=sys.prefix),
      capture_output=True, text=True, timeout=900)
  assert trained.returncode == 0, trained.stderr[-3000:]
  result, _ = _evaluate(workdir, '--split', 'test')
  assert result.returncode == 0, result.stderr[-3000:]
  summary = lambda out: next(l for l in out.splitlines() if ' examples ' in l)
  assert summary(result.stdout) == summary(trained.stdout)


def _writer(workdir, start_step):
  wandb_config = defaults.get_config().wandb
  wandb_config.mode = 'disabled'
  return tracking.MetricWriter(str(workdir), wandb_config, {}, start_step)


def test_a_torn_last_record_is_dropped_and_nothing_else(tmp_path):
  """A crash mid-write leaves half a line: the resumed run drops it (with a
  warning) instead of failing on every later start."""
  path = tmp_path / tracking.METRICS_FILE
  whole = [json.dumps({'step': s, 'train/loss': 1.0 / s}) for s in (1, 2, 3)]
  path.write_text('\n'.join(whole) + '\n{"step": 4, "train/lo')
  writer = _writer(tmp_path, start_step=2)
  writer.write(3, {'train/loss': 0.25})
  writer.close()
  lines = path.read_text().splitlines()
  assert lines[:2] == whole[:2]
  assert [json.loads(l)['step'] for l in lines] == [1, 2, 3]
  assert json.loads(lines[2])['train/loss'] == 0.25


def test_wall_time_continues_from_the_kept_records_on_resume(tmp_path):
  """Resumed at step 2: the clock goes on from step 2's wall time, not from
  zero, nor from a dropped record's."""
  path = tmp_path / tracking.METRICS_FILE
  path.write_text(''.join(json.dumps(
      {'step': s, tracking.WALL_TIME: t}) + '\n' for s, t in
      ((1, 40.0), (2, 100.0), (3, 150.0))))
  writer = _writer(tmp_path, start_step=2)
  writer.write(3, {'train/loss': 0.25})
  writer.close()
  resumed = json.loads(path.read_text().splitlines()[-1])
  assert 100.0 <= resumed[tracking.WALL_TIME] < 110.0


def _time_to_quality(*args):
  return subprocess.run(
      [sys.executable, 'experiments/time_to_quality/report.py', *args],
      cwd=REPO, capture_output=True, text=True, timeout=60)


def test_time_to_quality_report_reads_the_run_folder(trained_run):
  workdir, _ = trained_run
  top1 = [r['val/top1'] for r in records(workdir) if 'val/top1' in r]
  result = _time_to_quality(str(workdir), '--metric', 'val/top1', '--target',
                            str(min(top1)))
  assert result.returncode == 0, result.stderr
  row = result.stdout.splitlines()[-1].split(' | ')
  assert row[1] == '10' and float(row[2]) > 0
  assert float(row[3]) == pytest.approx(max(top1), abs=1e-4)
  unreached = _time_to_quality(str(workdir), '--metric', 'val/top1',
                               '--target', '1.01')
  assert 'not reached' in unreached.stdout


def test_an_empty_wandb_run_id_file_gets_a_new_id(tmp_path):
  (tmp_path / tracking.RUN_ID_FILE).write_text('  \n')
  run_id = tracking._run_id(str(tmp_path))  # pylint: disable=protected-access
  assert len(run_id) == 8 and run_id.isalnum()
  assert (tmp_path / tracking.RUN_ID_FILE).read_text() == run_id
  assert tracking._run_id(str(tmp_path)) == run_id  # pylint: disable=protected-access


@pytest.mark.slow
def test_a_calibration_is_refit_when_what_it_was_fitted_for_changes(
    trained_run):
  """Fitted at max_risk 0.1, asked for 0.3: refit and saved; asked again:
  reused. A file from another run's weights at this step: refit."""
  workdir, _ = trained_run
  args = ('--split', 'validation', '--checkpoint', 'latest')
  result, _ = _evaluate(workdir, *args, '--config.evaluation.max_risk=0.3')
  assert result.returncode == 0, result.stderr[-3000:]
  step = json.loads((workdir / 'eval' / 'validation' / 'metrics.json')
                    .read_text())['checkpoint_step']
  path = workdir / 'calibration' / f'{step}.json'
  saved = json.loads(path.read_text())
  assert saved['max_risk'] == 0.3 and len(saved['params_digest']) == 16
  result, _ = _evaluate(workdir, *args, '--config.evaluation.max_risk=0.3')
  assert 'Calibrated on' not in result.stdout
  path.write_text(json.dumps(dict(saved, params_digest='0' * 16,
                                  temperature=9.0)))
  result, _ = _evaluate(workdir, *args, '--config.evaluation.max_risk=0.3')
  assert 'params_digest' in result.stdout and 'refitting' in result.stdout
  assert json.loads(path.read_text())['temperature'] == saved['temperature']
