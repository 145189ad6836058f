"""Shared fixtures."""

from absl import flags
import pytest

from helpers import dataset_config
from helpers import run_module
from helpers import tiny_run_flags

# grain reads absl flags in its worker processes; tests have no app.run.
flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope='session')
def small_data_dir(tmp_path_factory):
  """synthetic_lesions/small prepared once per session (240/60/60 images)."""
  from skinjax import data  # pylint: disable=g-import-not-at-top
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  data.prepare(data.get_builder(dataset_config('synthetic_lesions/small', data_dir)))
  return data_dir


@pytest.fixture(scope='session')
def trained_run(small_data_dir, tmp_path_factory):
  """A 20-step run on synthetic_lesions/small, logged to W&B offline:
  (workdir, the --config.* flags it was trained with)."""
  workdir = tmp_path_factory.mktemp('run')
  flags = tiny_run_flags(small_data_dir, **{'wandb.mode': 'offline'})
  result = run_module('skinjax.train', ['--config', 'configs/synthetic.py',
                                        '--workdir', str(workdir)] + flags)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir, flags
