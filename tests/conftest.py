"""Shared fixtures."""

from absl import flags
import pytest

from helpers import cpu_devices, dataset_config, tiny_run_flags, train

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
  flags = tiny_run_flags(small_data_dir, **{
      'wandb.mode': 'offline', 'evaluation.calibrate_after_training': True})
  train(workdir, flags)
  return workdir, flags


@pytest.fixture(scope='session')
def reference_run(small_data_dir, tmp_path_factory):
  """60 uninterrupted steps on 4 CPU devices, with EMA, checkpoints every 10:
  what an interrupted or damaged run of the same flags must reproduce.
  Returns (workdir, flags, env)."""
  workdir = tmp_path_factory.mktemp('reference')
  flags = tiny_run_flags(small_data_dir, num_train_steps=60, ema_decay=0.9)
  env = cpu_devices(4)
  train(workdir, flags, env)
  return workdir, flags, env
