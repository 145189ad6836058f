"""The frozen-feature path: a head fitted on cached backbone features,
saved as an ordinary run; the cache survives kills and damage and is
recomputed when anything it depends on changes."""

import glob
import json
import os
import signal
import time

import jax
import numpy as np
import pytest

from helpers import (records, run_module, saved_state, start_training,
                     tiny_run_flags, train, wait_for)
from skinjax.training import head_fit


def _flags(data_dir, backbone, **overrides):
  """A tiny frozen-feature run whose backbone is `backbone`'s (a run)."""
  return tiny_run_flags(data_dir, **{
      'model.init_from': str(backbone), 'num_train_steps': 0, 'frozen_features.enabled': True,
      'frozen_features.views': 2, 'frozen_features.epochs': 20,
      'frozen_features.chunk_size': 64,
      'evaluation.calibrate_after_training': True, **overrides})


def _chunks(workdir):
  return sorted(glob.glob(str(workdir / 'feature_cache' / '*' / '*.npz')))


def _settings(**overrides):
  values = dict(epochs=30, batch_size=64, learning_rate=0.05,
                weight_decay=0.0, label_smoothing=0.0, seed=0,
                metric='balanced_accuracy')
  return head_fit.Settings(**{**values, **overrides})


def test_head_fit_separates_and_folds_the_standardisation_into_the_head():
  """Classes apart along one badly scaled dimension: the fitted head, on the
  raw features, classifies validation photos, and the kept epoch is the
  best one's."""
  rng = np.random.default_rng(0)
  centres = rng.normal(0, 1, (3, 16)) * 3
  def draw(n):
    labels = rng.integers(0, 3, n)
    features = centres[labels] + rng.normal(0, 1, (n, 16))
    features[:, 0] = features[:, 0] * 1000 + 5000  # another scale, offset
    return features.astype(np.float32), labels
  features, labels = draw(300)
  val_features, val_labels = draw(100)
  fitted = head_fit.fit(np.stack([features, features]), labels, val_features,
                        val_labels, ['a', 'b', 'c'], _settings())
  predictions = np.argmax(val_features @ fitted.kernel + fitted.bias, -1)
  assert np.mean(predictions == val_labels) > 0.9
  assert fitted.validation['balanced_accuracy'] == max(fitted.history)
  assert fitted.history[fitted.epoch - 1] == max(fitted.history)
  assert fitted.kernel.shape == (16, 3) and fitted.kernel.dtype == np.float32


# A run and an evaluate, a quarter-minute each: the slow tier (for the
# default tier's 10 minutes); the head fit above runs in the default tier.
@pytest.mark.slow
def test_run_is_a_whole_model_at_checkpoint_0_and_scores_from_its_folder(
    small_data_dir, trained_run, tmp_path):
  workdir = tmp_path / 'run'
  stdout, _ = train(workdir, _flags(small_data_dir, trained_run[0]))
  assert 'Head fitted on 240 photos x 2 views' in stdout
  # 240 training photos x 2 views in chunks of 64, 60 validation photos.
  assert len(_chunks(workdir)) == 2 * 4 + 1
  [record] = records(workdir)
  assert record['step'] == 0 and record['val/balanced_accuracy'] > 1 / 6
  assert os.path.isfile(workdir / 'calibration' / '0.json')
  saved = saved_state(workdir, 0)
  backbone = saved_state(trained_run[0], 20)
  assert saved['step'] == 0
  # The backbone is the source run's, untouched; the head is new.
  np.testing.assert_array_equal(saved['params']['conv_init']['kernel'],
                                backbone['params']['conv_init']['kernel'])
  assert not np.allclose(saved['params']['head']['kernel'],
                         backbone['params']['head']['kernel'])
  # Scored from the run folder as any run is; the calibration the
  # training saved from its cache serves evaluate unchanged.
  out = run_module('skinjax.evaluate', ['--workdir', str(workdir),
                                        '--split', 'validation'])
  assert out.returncode == 0, out.stderr[-2000:]
  assert 'refitting' not in out.stdout + out.stderr
  with open(workdir / 'eval' / 'validation' / 'metrics.json') as f:
    metrics = json.load(f)
  np.testing.assert_allclose(metrics['balanced_accuracy'],
                             record['val/balanced_accuracy'], atol=1e-6)


@pytest.mark.slow
def test_a_killed_extraction_resumes_from_its_chunks_and_damage_is_redone(
    small_data_dir, trained_run, tmp_path):
  reference = tmp_path / 'reference'
  train(reference, _flags(small_data_dir, trained_run[0]))
  name = lambda path: os.path.relpath(path, os.path.dirname(
      os.path.dirname(path)))  # KEY/viewV_chunkC.npz
  expected = {name(p): np.load(p)['features'] for p in _chunks(reference)}
  workdir = tmp_path / 'killed'
  flags = _flags(small_data_dir, trained_run[0])
  proc = start_training(workdir, flags)
  wait_for(workdir / 'feature_cache', proc)
  while not _chunks(workdir):
    assert proc.poll() is None
    time.sleep(0.002)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  written = _chunks(workdir)
  assert len(written) < 9 and not os.path.isdir(workdir / 'checkpoints' / '0')
  # A chunk cut short, as a full disk would leave it under another name:
  # never trusted, computed again.
  with open(written[0], 'r+b') as f:
    f.truncate(100)
  stamps = {p: os.stat(p).st_mtime_ns for p in written[1:]}
  _, stderr = train(workdir, flags)
  assert 'is damaged; computing it again' in stderr
  assert all(os.stat(p).st_mtime_ns == t for p, t in stamps.items())
  for path in _chunks(workdir):
    np.testing.assert_allclose(np.load(path)['features'],
                               expected[name(path)], atol=1e-5)
  assert records(workdir)[-1]['val/top1'] == records(reference)[-1]['val/top1']
  # Another scoring size is another key: a new folder, computed afresh.
  other = _flags(small_data_dir, trained_run[0], eval_image_size=40,
                 **{'frozen_features.cache_dir': str(workdir / 'feature_cache')})
  train(tmp_path / 'other', other)
  # (A folder per split: training's and validation's.)
  assert len(glob.glob(str(workdir / 'feature_cache' / '*'))) == 4
  assert jax.tree.leaves(saved_state(tmp_path / 'other', 0))
