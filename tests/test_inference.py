"""Inference stands alone: a copied, read-only run folder predicts, serves
and exports on a machine without the run's dataset; the inference package
never imports training or the dataset builders; and every command reports a
user's mistake in one line, a bug with its traceback."""

import ast
import concurrent.futures
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO
from helpers import run_module
from helpers import tiny_run_flags
import image_trees
from skinjax.exporting import exported
from skinjax.service import client as client_lib

# What inference may import of skinjax: the photo preparation, the models,
# devices and the run folder; never training, the dataset builders or the
# input pipeline.
_FORBIDDEN = ('skinjax.training', 'skinjax.data.builders',
              'skinjax.data.pipeline', 'skinjax.data.prepare.collection',
              'skinjax.evaluation', 'skinjax.service', 'skinjax.exporting')


def _skinjax_imports(path: pathlib.Path) -> set:
  imports = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module:
      imports.update(f'{node.module}.{a.name}' for a in node.names)
    elif isinstance(node, ast.Import):
      imports.update(a.name for a in node.names)
  return {name for name in imports if name.startswith('skinjax')}


def test_inference_imports_neither_training_nor_the_dataset_builders():
  """Followed transitively: whatever inference imports of skinjax imports
  none of them either."""
  package = pathlib.Path(REPO) / 'skinjax'
  seen, todo = set(), [f'skinjax.inference.{p.stem}' for p in
                       (package / 'inference').glob('*.py')]
  while todo:
    module = todo.pop()
    if module in seen:
      continue
    seen.add(module)
    parts = module.split('.')
    for candidate in (pathlib.Path(REPO, *parts).with_suffix('.py'),
                      pathlib.Path(REPO, *parts, '__init__.py'),
                      pathlib.Path(REPO, *parts[:-1]).with_suffix('.py'),
                      pathlib.Path(REPO, *parts[:-1], '__init__.py')):
      if candidate.is_file():
        todo.extend(_skinjax_imports(candidate))
        break
  bad = sorted(m for m in seen if m.startswith(_FORBIDDEN))
  assert not bad, bad
  assert 'skinjax.inference.restore' in seen  # the walk did walk


def _tree(folder) -> dict:
  """Every path under `folder` with its size and modification time."""
  return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
          for p in pathlib.Path(folder).rglob('*')}


def _photos(folder) -> list:
  os.makedirs(folder)
  paths = []
  for i, (width, height) in enumerate([(64, 48), (40, 90), (33, 33)]):
    paths.append(os.path.join(folder, f'photo{i}.png'))
    image_trees.write(paths[-1], image_trees.encode(
        image_trees.photo(i, width, height), 'PNG'))
  return paths


def _scores(workdir, photos, tmp_path, name) -> dict:
  """{'predict': rows, 'onnx': probabilities} of the run in `workdir`."""
  output = str(tmp_path / f'{name}.json')
  result = run_module('skinjax.predict', [
      '--workdir', str(workdir), '--top_k', '6', '--output', output, *photos])
  assert result.returncode == 0, result.stderr[-3000:]
  model_file = str(tmp_path / f'{name}.onnx')
  result = run_module('skinjax.export', [
      '--workdir', str(workdir), '--format', 'onnx', '--output', model_file])
  assert result.returncode == 0, result.stderr[-3000:]
  model = exported.load(model_file)
  with open(output) as f:
    return {'predict': json.load(f), 'onnx': model.probabilities(np.stack(
        [exported.prepare(p, model.metadata) for p in photos]))}


def _assert_same_rows(rows, other):
  for row, again in zip(rows, other, strict=True):
    assert [n for n, _ in row['differential']] == [
        n for n, _ in again['differential']]
    np.testing.assert_allclose([p for _, p in row['differential']],
                               [p for _, p in again['differential']],
                               rtol=0, atol=1e-6)
    assert (row['uncertain'], row['unfamiliar']) == (
        again['uncertain'], again['unfamiliar'])


@pytest.mark.slow
def test_a_copied_read_only_run_folder_scores_without_its_dataset(
    trained_run, small_data_dir, tmp_path):
  """predict, serve (one request) and export (ONNX) from a read-only copy of
  the run folder, with the dataset moved away, give the probabilities they
  gave before the move, and write nothing into the copy."""
  workdir, _ = trained_run
  photos = _photos(tmp_path / 'photos')
  before = _scores(workdir, photos, tmp_path, 'before')
  copy = tmp_path / 'copied_run'
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns('lock'))
  for path in [copy, *copy.rglob('*')]:
    path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP |
                                       stat.S_IWOTH))
  files = _tree(copy)
  away = str(small_data_dir) + '.moved-away'
  os.rename(small_data_dir, away)
  try:
    after = _scores(copy, photos, tmp_path, 'after')
    process, url = client_lib.start_service(
        copy, ['--config.serve.top_k=6'], tmp_path / 'serve.log', cwd=REPO)
    try:
      status, body = client_lib.Client(url, None, timeout=60).predict(
          [(os.path.basename(p), open(p, 'rb').read()) for p in photos])
    finally:
      process.terminate()
      assert process.wait(timeout=60) == 0
  finally:
    os.rename(away, small_data_dir)
  assert status == 200, body
  _assert_same_rows(before['predict'], after['predict'])
  _assert_same_rows(before['predict'], body['photos'])
  np.testing.assert_allclose(after['onnx'], before['onnx'], rtol=0, atol=1e-6)
  assert _tree(copy) == files


def _one_line_error(result, *expected):
  """The command failed with exit status 1 and one `error: ` line naming
  `expected`, and no traceback."""
  assert result.returncode == 1, result.stdout[-1000:] + result.stderr[-2000:]
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: '), result.stderr[-2000:]
  for text in expected:
    assert text in last, last


@pytest.mark.slow  # the default tier is at its 10 minutes
def test_scoring_commands_name_a_folder_that_is_no_run(tmp_path):
  not_a_run = str(tmp_path / 'nothing_here')
  commands = (('skinjax.predict', ['photo.jpg']),
              ('skinjax.export', ['--format', 'onnx', '--output',
                                  str(tmp_path / 'm.onnx')]),
              ('skinjax.evaluate', []),
              ('skinjax.serve', ['--port', '0']))
  with concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
    results = list(pool.map(lambda command: run_module(
        command[0], ['--workdir', not_a_run, *command[1]]), commands))
  for result in results:
    _one_line_error(result, not_a_run, 'config.json')


@pytest.mark.slow  # the default tier is at its 10 minutes
def test_scoring_an_uncalibrated_checkpoint_names_the_command(trained_run,
                                                             tmp_path):
  copy = tmp_path / 'run'
  shutil.copytree(trained_run[0], copy, ignore=shutil.ignore_patterns(
      'lock', 'calibration'))
  photos = _photos(tmp_path / 'photos')
  _one_line_error(run_module('skinjax.predict', [
      '--workdir', str(copy), *photos]),
                  f'python -m skinjax.evaluate --workdir {copy} --checkpoint')


@pytest.mark.slow
def test_training_mistakes_end_in_one_line(small_data_dir, tmp_path):
  """A missing dataset, an init_from that points at nothing or at another
  architecture, a training split smaller than one batch."""
  other_architecture = tmp_path / 'efficientnet_run'
  run = lambda name, **flags: run_module('skinjax.train', [
      '--config', 'configs/synthetic.py', '--workdir', str(tmp_path / name),
      *tiny_run_flags(small_data_dir, **flags)])
  _one_line_error(run('missing', **{
      'dataset.name': 'ham10000', 'dataset.manual_dir': str(tmp_path / 'no'),
      'dataset.data_dir': str(tmp_path / 'tfds')}), str(tmp_path / 'no'))
  _one_line_error(run('nothing', **{
      'model.init_from': str(tmp_path / 'nowhere')}),
                  'model.init_from', 'no skinjax checkpoint')
  result = run('other', **{
      'model.name': 'efficientnet_lite0', 'num_train_steps': 1,
      'eval_every_steps': 1, 'checkpoint_every_steps': 1})
  assert result.returncode == 0, result.stderr[-2000:]
  os.rename(tmp_path / 'other', other_architecture)
  _one_line_error(run('mismatch', **{
      'model.init_from': str(other_architecture)}), 'another architecture')
  _one_line_error(run('big_batch', batch_size=4096, eval_batch_size=32),
                  'config.batch_size=4096', 'fewer than one batch')


def test_a_bug_keeps_its_traceback_and_a_user_error_does_not(tmp_path):
  """skinjax.cli.main.run, the wrapper of every command's main."""
  script = tmp_path / 'command.py'
  script.write_text(
      'import sys\n'
      'from skinjax import errors\n'
      'from skinjax.cli import main\n'
      'def fail(argv):\n'
      "  if sys.argv[-1] == 'user':\n"
      "    raise errors.ConfigError('config.x=1: must be 2')\n"
      "  raise KeyError('a bug')\n"
      'main.run(fail)\n')
  run = lambda kind: subprocess.run(
      [sys.executable, str(script), kind], cwd=REPO, capture_output=True,
      text=True, timeout=120, env=dict(os.environ, PYTHONPATH=REPO))
  _one_line_error(run('user'), 'error: config.x=1: must be 2')
  bug = run('bug')
  assert bug.returncode == 1
  assert 'Traceback' in bug.stderr and "KeyError: 'a bug'" in bug.stderr
