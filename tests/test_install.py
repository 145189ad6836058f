"""Installing skinjax as a user who has no repository does: the built
wheel, its console scripts, and what the accelerator extras pull in."""

import json
import os
import shutil
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement
import pytest

from helpers import REPO, tiny_run_flags

# pip's words for an index it cannot reach (no network, no DNS, a proxy).
_OFFLINE = ('NewConnectionError', 'Failed to establish a new connection',
            'Temporary failure in name resolution', 'Network is unreachable',
            'Max retries exceeded', 'ConnectTimeoutError', 'ProxyError',
            'No route to host', 'Name or service not known')


def _pip(*args, **kwargs):
  return subprocess.run([sys.executable, '-m', 'pip', *args],
                        capture_output=True, text=True, timeout=600,
                        **kwargs)


def _pyproject() -> dict:
  with open(os.path.join(REPO, 'pyproject.toml'), 'rb') as f:
    return tomllib.load(f)


@pytest.mark.slow
def test_the_wheel_installs_and_trains_without_the_repository(
    small_data_dir, tmp_path):
  """The wheel built from a copy of what it packages, installed into a
  bare folder (dependencies from this venv): its console script prints
  its help and, run from a third folder, trains two steps from a config
  file copied to a fourth; the run says no commit (no checkout)."""
  source = tmp_path / 'source'
  source.mkdir()
  for name in ('pyproject.toml', 'README.md', 'LICENSE'):
    shutil.copy(os.path.join(REPO, name), source)
  shutil.copytree(os.path.join(REPO, 'skinjax'), source / 'skinjax',
                  ignore=shutil.ignore_patterns('__pycache__'))
  built = _pip('wheel', '--no-deps', '--no-build-isolation', '--quiet', '-w',
               str(tmp_path / 'dist'), str(source), cwd=tmp_path)
  assert built.returncode == 0, built.stderr[-3000:]
  [wheel] = (tmp_path / 'dist').glob('skinjax-*.whl')
  target = tmp_path / 'installed'
  installed = _pip('install', '--no-deps', '--quiet', '--target',
                   str(target), str(wheel), cwd=tmp_path)
  assert installed.returncode == 0, installed.stderr[-3000:]
  scripts = {p.name for p in (target / 'bin').iterdir()}
  assert scripts == {f'skinjax-{c}' for c in (
      'train', 'evaluate', 'predict', 'serve', 'export', 'compare', 'sweep',
      'extend')}
  away = tmp_path / 'elsewhere'
  away.mkdir()
  env = dict(os.environ, PYTHONPATH=str(target))
  where = subprocess.run([sys.executable, '-c',
                          'import skinjax; print(skinjax.__file__)'],
                         cwd=away, env=env, capture_output=True, text=True)
  assert where.stdout.startswith(str(target)), where
  train = str(target / 'bin' / 'skinjax-train')
  result = subprocess.run([train, '--help'], cwd=away, env=env,
                          capture_output=True, text=True, timeout=300)
  # absl's --help exits with status 1, as `python -m skinjax.train --help`.
  assert 'Trains a classifier' in result.stdout, result.stderr[-3000:]
  assert '--workdir' in result.stdout and 'Traceback' not in result.stderr
  (tmp_path / 'mine').mkdir()
  recipe = shutil.copy(os.path.join(REPO, 'configs', 'synthetic.py'),
                       tmp_path / 'mine' / 'recipe.py')
  result = subprocess.run(
      [train, '--config', str(recipe), '--workdir', 'run',
       *tiny_run_flags(small_data_dir, num_train_steps=2, log_every_steps=1,
                       eval_every_steps=2, checkpoint_every_steps=2)],
      cwd=away, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
  assert (away / 'run' / 'checkpoints' / '2').is_dir()
  [entry] = json.loads((away / 'run' / 'environment.json').read_text())
  assert entry['git_commit'] is None and entry['versions']['skinjax']


@pytest.mark.slow
@pytest.mark.parametrize('extra, builds', [
    ('cuda12', {'jax-cuda12-plugin', 'jax-cuda12-pjrt'}),
    ('tpu', {'libtpu'})])
def test_an_accelerator_extra_pulls_jax_s_own_build(extra, builds, tmp_path):
  """pip resolves the extra's requirements (a dry run: metadata only, no
  CUDA downloaded) to JAX's accelerator build at skinjax's jax pin. Needs
  the package index; skipped where pip cannot reach it."""
  project = _pyproject()['project']
  requirements = project['optional-dependencies'][extra]
  [pin] = [Requirement(r) for r in project['dependencies']
           if Requirement(r).name == 'jax']
  [wanted] = [Requirement(r) for r in requirements
              if Requirement(r).name == 'jax']
  assert wanted.specifier == pin.specifier and extra in wanted.extras
  report = tmp_path / 'report.json'
  result = _pip('install', '--dry-run', '--ignore-installed', '--quiet',
                '--retries', '1', '--timeout', '30', '--report', str(report),
                *requirements, cwd=tmp_path)
  if result.returncode != 0 and any(m in result.stderr for m in _OFFLINE):
    pytest.skip('the package index cannot be reached: '
                + result.stderr.strip().splitlines()[-1][:200])
  assert result.returncode == 0, result.stderr[-3000:]
  resolved = {item['metadata']['name'].lower().replace('_', '-'):
              item['metadata']['version']
              for item in json.loads(report.read_text())['install']}
  assert builds <= set(resolved), sorted(resolved)
  assert pin.specifier.contains(resolved['jax'])
  assert resolved['jaxlib'] == resolved['jax']
