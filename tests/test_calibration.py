"""Temperature scaling and the selective-prediction threshold."""

import numpy as np
import pytest

from skinjax.evaluation import calibration
from skinjax.evaluation import metrics
from skinjax.inference import calibration as saved_calibration
from skinjax.inference import unfamiliar


def _sampled(temperature, n=20_000, classes=5, seed=0):
  """Labels drawn from softmax(z); the model reports z * temperature, i.e.
  it is over-confident by `temperature`."""
  rng = np.random.default_rng(seed)
  z = rng.normal(0, 1.5, (n, classes))
  p = metrics.softmax(z)
  labels = (p.cumsum(-1) > rng.uniform(size=(n, 1))).argmax(-1)
  return z * temperature, labels


def test_temperature_scaling_undoes_over_confidence():
  logits, labels = _sampled(3.0)
  t = calibration.fit_temperature(logits, labels)
  assert t == pytest.approx(3.0, rel=0.05)
  before = metrics.negative_log_likelihood(logits, labels)
  after = metrics.negative_log_likelihood(logits / t, labels)
  assert after < before - 0.1
  ece = lambda x: metrics.expected_calibration_error(metrics.softmax(x), labels)
  assert ece(logits / t) < 0.02 < 0.1 < ece(logits)


def test_a_calibrated_model_keeps_temperature_one():
  logits, labels = _sampled(1.0, seed=1)
  assert calibration.fit_temperature(logits, labels) == pytest.approx(
      1.0, rel=0.05)


def test_threshold_takes_the_largest_coverage_within_the_risk():
  # Confidences 0.9 0.8 0.7 0.6 0.5; right, right, wrong, right, wrong.
  confidence = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
  probabilities = np.stack([confidence, 1 - confidence], -1)
  labels = np.array([0, 0, 1, 0, 1])
  # Risk at coverage 1/5..5/5: 0, 0, 1/3, 1/4, 2/5.
  assert calibration.selective_threshold(probabilities, labels, 0.3) == (
      {'threshold': 0.6, 'coverage': 0.8, 'risk': 0.25})
  assert calibration.selective_threshold(probabilities, labels, 0.1) == (
      {'threshold': 0.8, 'coverage': 0.4, 'risk': 0.0})
  everything_wrong = calibration.selective_threshold(
      probabilities, 1 - np.array([0, 0, 0, 0, 0]), 0.1)
  assert everything_wrong == {'threshold': None, 'coverage': 0.0,
                              'risk': None}


def test_saved_calibration_reads_back(tmp_path):
  logits, labels = _sampled(2.0, n=2000)
  fitted = calibration.fit(logits, labels, max_risk=0.2, num_bins=15,
                           checkpoint_step=7, weights='ema', tta='flips',
                           split='validation', image_size=96,
                           crop_fraction=0.875, params_digest='ab12',
                           unfamiliarity=lambda t: unfamiliar.scores(
                               logits, None, None, t),
                           unfamiliar_score='msp', unfamiliar_tpr=0.95)
  # 95% of validation photos are at or below the flag's threshold.
  msp = unfamiliar.scores(logits, None, None, fitted.temperature)['msp']
  assert np.mean(msp <= fitted.unfamiliar_threshold) == pytest.approx(
      0.95, abs=0.01)
  assert fitted.fitted_on['nll_after'] < fitted.fitted_on['nll_before']
  saved_calibration.save(fitted, str(tmp_path))
  assert saved_calibration.load(str(tmp_path), 7, 'ema') == fitted
  assert saved_calibration.fitted_for(fitted) == {
      'checkpoint_step': 7, 'weights': 'ema', 'tta': 'flips', 'max_risk': 0.2,
      'split': 'validation', 'image_size': 96, 'crop_fraction': 0.875,
      'params_digest': 'ab12',
      'unfamiliar_score': 'msp', 'unfamiliar_tpr': 0.95}
  assert saved_calibration.load(str(tmp_path), 7, 'raw') is None
  assert saved_calibration.load(str(tmp_path), 8, 'ema') is None
  assert list((tmp_path / 'calibration').iterdir()) == [
      tmp_path / 'calibration' / '7.ema.json']
