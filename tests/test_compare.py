"""Comparing runs offline (skinjax.compare), sweep files (skinjax.sweeps)
and what a run leaves in W&B: group, tags, job type, best metric."""

import json
import os
import shutil

import jax
import numpy as np
from PIL import Image
import pytest

from helpers import REPO, records, run_module
import wandb_log
from skinjax.comparison import figures
from skinjax.comparison import runner as comparison
from skinjax.comparison import runs as runs_lib
from skinjax.config import defaults
from skinjax.run_folder import run_config
from skinjax.run_folder import tracking
from skinjax.sweeps import local
from skinjax.sweeps import runner as sweeps_runner
from skinjax.sweeps import spec

SCHEMA = run_config.flatten(defaults.get_config().to_dict())


def _derived_run(source, folder, scale, **config_changes):
  """A copy of the run folder `source` whose config has `config_changes`
  and whose metric values are scaled by `scale` (steps and wall time kept):
  runs that differ by known amounts."""
  os.makedirs(folder)
  config = json.loads((source / 'config.json').read_text())
  for key, value in config_changes.items():
    node = config
    *parents, leaf = key.split('.')
    for part in parents:
      node = node[part]
    node[leaf] = value
  (folder / 'config.json').write_text(json.dumps(config))
  lines = []
  for record in records(source):
    lines.append(json.dumps({
        k: v * scale if k.startswith(('train/', 'val/')) else v
        for k, v in record.items()}))
  (folder / 'metrics.jsonl').write_text('\n'.join(lines) + '\n')
  return folder


def _table(stdout, first_column):
  """The rows of the first markdown table whose header starts with
  `first_column`, as lists of cells (header first)."""
  lines = stdout.splitlines()
  start = next(i for i, l in enumerate(lines)
               if l.startswith(f'| {first_column} |'))
  rows = []
  for line in lines[start:]:
    if not line.startswith('|'):
      break
    if not line.startswith('|---'):
      rows.append([c.strip() for c in line.strip('|').split('|')])
  return rows


def test_compare_lists_differing_keys_and_summarises_seeds(trained_run,
                                                          tmp_path, capsys):
  """Two learning rates x two seeds, made from one real run: the table has
  exactly those two keys, the seed table the mean and sd of the seeds'
  best, and each figure panel one mean line (and band) per learning rate,
  from the records."""
  source, _ = trained_run
  scales = {(0.1, 0): 1.0, (0.1, 1): 0.9, (0.2, 0): 0.8, (0.2, 1): 0.6}
  root = tmp_path / 'sweep'
  for (rate, seed), scale in scales.items():
    _derived_run(source, root / f'lr{rate}_seed{seed}', scale, seed=seed,
                 **{'optimizer.learning_rate': rate,
                    'wandb.name': f'lr{rate}_seed{seed}'})
  out = tmp_path / 'out'
  comparison.compare([str(root)], 'val/top1', str(out))
  stdout = capsys.readouterr().out
  table = _table(stdout, 'run')
  assert table[0][7:] == ['optimizer.learning_rate', 'seed']
  best = max(r['val/top1'] for r in records(source) if 'val/top1' in r)
  for row in table[1:]:
    rate, seed = float(row[7]), int(row[8])
    assert float(row[1]) == pytest.approx(best * scales[rate, seed], abs=1e-4)
    assert row[4] == '20'
  seeds = {row[0]: row for row in _table(stdout, 'setting')[1:]}
  assert set(seeds) == {'optimizer.learning_rate=0.1',
                        'optimizer.learning_rate=0.2'}
  for rate in (0.1, 0.2):
    values = [best * scales[rate, s] for s in (0, 1)]
    assert seeds[f'optimizer.learning_rate={rate}'][2] == (
        f'{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}')

  for name in ('curves_by_step.png', 'curves_by_wall_time.png'):
    with Image.open(out / name) as image:
      assert image.size[0] > 500
  assert '![curves_by_step.png](curves_by_step.png)' in (
      out / 'report.md').read_text()

  runs = runs_lib.load([str(root)])
  groups = runs_lib.groups(runs, runs_lib.differing_keys(runs))
  figure = figures.curves(groups, 'val/top1', tracking.WALL_TIME)
  panel = next(ax for ax in figure.axes if ax.get_title() == 'val/top1')
  steps = [r['step'] for r in records(source) if 'val/top1' in r]
  wall = [r[tracking.WALL_TIME] for r in records(source) if 'val/top1' in r]
  top1 = np.array([r['val/top1'] for r in records(source) if 'val/top1' in r])
  assert len(panel.get_lines()) == 2 and len(panel.collections) == 2
  for line, rate in zip(panel.get_lines(), (0.1, 0.2)):
    assert line.get_label().startswith(f'optimizer.learning_rate={rate} ')
    np.testing.assert_allclose(line.get_xdata(), wall)
    np.testing.assert_allclose(line.get_ydata(), top1 * np.mean(
        [scales[rate, 0], scales[rate, 1]]))
  assert len(steps) == len(wall) >= 2


def test_a_folder_that_is_no_run_is_one_line(tmp_path):
  (tmp_path / 'empty').mkdir()
  result = run_module('skinjax.compare', [str(tmp_path / 'empty')])
  assert result.returncode == 1
  assert result.stderr.strip() == (
      f"error: {tmp_path / 'empty'}: neither a run folder (no config.json) "
      'nor a folder of them')


def test_the_wandb_run_holds_job_type_and_the_best_validation(trained_run):
  workdir, _ = trained_run
  train_runs = [r for r in wandb_log.runs(str(workdir / 'wandb'))
                if r['job_type'] == 'train']
  assert train_runs, wandb_log.runs(str(workdir / 'wandb'))
  validated = [r for r in records(workdir) if 'val/top1' in r]
  best = max(validated, key=lambda r: r['val/top1'])
  summary = train_runs[-1]['summary']
  assert summary['best/val/top1'] == pytest.approx(best['val/top1'])
  assert summary['best/step'] == min(
      r['step'] for r in validated if r['val/top1'] == best['val/top1'])
  config = train_runs[-1]['config']
  assert config['model.width'] == 8
  assert config['augment.crop_scale'] == '(0.5, 1.0)'
  # The start's environment.json entry, as written there.
  entries = json.loads((workdir / 'environment.json').read_text())
  assert config['environment'] == entries[-1]
  assert config['environment']['versions']['jax'] == jax.__version__


def _sweep_file(tmp_path, **changes):
  sweep = {'name': 'tiny', 'config': os.path.join(REPO, 'configs',
                                                  'synthetic.py'),
           'fixed': {'num_train_steps': 8},
           'parameters': {'augment.brightness': [0.0, 0.2],
                          'augment.contrast': [0.0, 0.2]},
           'tags': ('test',)}
  sweep.update(changes)
  path = tmp_path / f'sweep{len(list(tmp_path.glob("sweep*.py")))}.py'
  path.write_text(f'def get_sweep():\n  return {sweep!r}\n')
  return str(path)


def test_a_sweep_file_expands_to_named_trials(tmp_path):
  grid = spec.load(_sweep_file(tmp_path), SCHEMA)
  assert [t.name for t in grid.trials] == [
      'brightness=0,contrast=0', 'brightness=0,contrast=0.2',
      'brightness=0.2,contrast=0', 'brightness=0.2,contrast=0.2']
  shared = spec.load(_sweep_file(tmp_path, parameters={
      'augment.brightness': [0.1], 'optimizer.b1': [0.9],
      'model.dropout_rate': [0.1, 0.2]}), SCHEMA)
  assert shared.trials[0].name == ('brightness=0.1,b1=0.9,dropout_rate=0.1')
  random_spec = dict(method='random', num_trials=5, random_seed=3, parameters={
      'optimizer.learning_rate': {'log_uniform': (1e-3, 1e-1)},
      'seed': [0, 1, 2]})
  drawn = spec.load(_sweep_file(tmp_path, **random_spec), SCHEMA)
  again = spec.load(_sweep_file(tmp_path, **random_spec), SCHEMA)
  assert drawn.trials == again.trials
  assert len({t.name for t in drawn.trials}) == 5
  for trial in drawn.trials:
    assert 1e-3 <= trial.values['optimizer.learning_rate'] <= 1e-1

  plans = local.plans(grid, str(tmp_path / 'root'), ['--config.seed=4'])
  assert plans[1].workdir == str(tmp_path / 'root' / grid.trials[1].name)
  config = local.trial_config(grid.config, list(plans[1].flags))
  assert (config.augment.brightness, config.augment.contrast, config.seed,
          config.num_train_steps) == (0.0, 0.2, 4, 8)
  assert (config.wandb.group, config.wandb.name, config.wandb.tags) == (
      'tiny', 'brightness=0,contrast=0.2', ('test',))


@pytest.mark.parametrize('changes, message', [
    ({'parameter': {}}, "unknown key 'parameter'"),
    ({'parameters': {'optimizer.lerning_rate': [0.1]}},
     "'parameters': unknown config key 'optimizer.lerning_rate'"),
    ({'fixed': {'seed': 1}, 'parameters': {'seed': [0, 1]}},
     "'seed' is both fixed and swept"),
    ({'parameters': {'seed': {'uniform': (0, 1)}}},
     "'seed': a grid takes a list of values"),
    ({'method': 'random'}, "'num_trials': random search needs"),
    ({'method': 'random', 'num_trials': 5, 'parameters': {'seed': [0, 1]}},
     'random search found only 2 distinct trials of the 5'),
])
def test_a_bad_sweep_file_is_one_line_naming_the_key(tmp_path, changes,
                                                      message):
  path = _sweep_file(tmp_path, **changes)
  with pytest.raises(spec.SweepError) as error:
    spec.load(path, SCHEMA)
  assert str(error.value).startswith(path + ': ')
  assert message in str(error.value) and '\n' not in str(error.value)


def test_a_swept_key_or_a_bad_value_is_refused_before_any_trial(tmp_path):
  with pytest.raises(spec.SweepError) as error:
    sweeps_runner.sweep(_sweep_file(tmp_path), str(tmp_path / 'root'),
                        ['--config.augment.contrast=0.5'])
  assert str(error.value) == (
      '--config.augment.contrast=0.5: augment.contrast is swept by '
      'the sweep file; it cannot be overridden')
  assert not (tmp_path / 'root').exists()
  with pytest.raises(spec.SweepError) as error:
    sweeps_runner.sweep(_sweep_file(tmp_path, parameters={
        'optimizer.learning_rate': [0.1, -1.0]}), str(tmp_path / 'root'))
  assert str(error.value) == (
      'trial learning_rate=-1: config.optimizer.learning_rate=-1.0: '
      'must be > 0')
  assert not (tmp_path / 'root').exists()


def test_a_finished_run_is_recognised_from_its_folder(trained_run, tmp_path):
  """trained_run as a trial: finished with its own config; not with more
  steps, nor once its final checkpoint is gone."""
  workdir, flags = trained_run
  config_file = os.path.join(REPO, 'configs', 'synthetic.py')
  trial = spec.Trial('t', {})
  assert local.is_finished(local.Plan(trial, str(workdir), tuple(flags)),
                           config_file)
  longer = tuple(flags) + ('--config.num_train_steps=30',)
  assert not local.is_finished(local.Plan(trial, str(workdir), longer),
                               config_file)
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns('wandb'))
  shutil.rmtree(copy / 'checkpoints' / '20')
  assert not local.is_finished(local.Plan(trial, str(copy), tuple(flags)),
                               config_file)


def test_runs_made_with_other_library_versions_show_it(trained_run, tmp_path,
                                                       capsys):
  """Each start records its environment; compare shows where runs' last
  entries differ."""
  import jax  # pylint: disable=g-import-not-at-top
  source, _ = trained_run
  [entry] = json.loads((source / 'environment.json').read_text())
  assert entry['start_step'] == 0 and entry['backend'] == 'cpu'
  assert entry['versions']['jax'] == jax.__version__
  assert entry['versions']['flax'] and entry['versions']['orbax-checkpoint']
  assert sum(entry['devices'].values()) == jax.device_count()
  root = tmp_path / 'runs'
  for name, version in (('a', entry['versions']['jax']), ('b', '9.9.9')):
    folder = _derived_run(source, root / name, 1.0)
    changed = dict(entry, versions=dict(entry['versions'], jax=version))
    (folder / 'environment.json').write_text(json.dumps([entry, changed]))
  comparison.compare([str(root)], 'val/top1', str(tmp_path / 'out'))
  table = _table(capsys.readouterr().out, 'run')
  assert table[0][7:] == ['environment.versions.jax']
  assert [row[7] for row in table[1:]] == [entry['versions']['jax'], '9.9.9']
