"""Shared fixtures."""

from absl import flags
import pytest

from helpers import REPO, SERVICE_TOKEN, cpu_devices, dataset_config
from helpers import tiny_run_flags, train

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


# Small batches (two shapes to compile) and a long wait, so that concurrent
# requests surely share batches; every class listed, so rows sum to one.
# One decode thread and a large pixel budget, so a request of big photos
# holds the decoding for seconds; short connection deadlines and a low
# connection cap, so the attacks in test_serve_attacks take seconds.
SERVICE_FLAGS = ['--config.serve.max_batch_size=2',
                 '--config.serve.max_wait_ms=100', '--config.serve.top_k=6',
                 '--config.serve.decode_threads=1',
                 '--config.serve.max_request_pixels=400000000',
                 '--config.serve.header_timeout_s=2',
                 '--config.serve.body_rate_window_s=1',
                 '--config.serve.body_min_bytes_per_s=2000',
                 '--config.serve.max_connections=64']


@pytest.fixture(scope='session')
def service(trained_run, tmp_path_factory):
  """(url, the run folder) of a service on the 20-step run, for
  test_serve and test_serve_attacks; it must stop cleanly (exit 0) on
  SIGTERM at the end, with no traceback in its log."""
  from skinjax.service import client  # pylint: disable=g-import-not-at-top
  workdir, _ = trained_run
  log = tmp_path_factory.mktemp('service') / 'service.log'
  process, url = client.start_service(
      workdir, SERVICE_FLAGS, log, env={'SKINJAX_SERVE_TOKEN': SERVICE_TOKEN},
      cwd=REPO)
  yield url, workdir
  process.terminate()
  assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
  assert 'Traceback' not in log.read_text(), log.read_text()[-3000:]
