"""Post-hoc calibration of a checkpoint, fitted on validation: a softmax
temperature, the confidence threshold of selective prediction and the
threshold of the 'unfamiliar' flag (the record, its file and how scoring
reads it: skinjax.inference.calibration)."""

import math

import numpy as np
from scipy import optimize

from skinjax.evaluation import metrics
from skinjax.evaluation import unfamiliar
from skinjax.inference.calibration import Calibration


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
  """The temperature that minimises the NLL of `labels` (Guo et al., 2017).

  NLL is convex in 1/T, so a bounded scalar search over log T finds it.
  """
  logits = np.asarray(logits, np.float64)
  result = optimize.minimize_scalar(
      lambda log_t: metrics.negative_log_likelihood(
          logits / math.exp(log_t), labels),
      bounds=(math.log(1e-2), math.log(1e2)), method='bounded',
      options={'xatol': 1e-6})
  return float(math.exp(result.x))


def selective_threshold(probabilities: np.ndarray, labels: np.ndarray,
                        max_risk: float) -> dict:
  """The threshold on the top probability that accepts the most examples
  while their error stays <= max_risk; its coverage and risk."""
  curve = metrics.risk_coverage(probabilities.max(axis=-1),
                                probabilities.argmax(axis=-1) == labels)
  meets = np.flatnonzero(np.asarray(curve['risk']) <= max_risk)
  if not meets.size:
    return {'threshold': None, 'coverage': 0.0, 'risk': None}
  best = meets[-1]
  return {'threshold': curve['threshold'][best],
          'coverage': curve['coverage'][best], 'risk': curve['risk'][best]}


def fit(logits, labels, *, max_risk: float, num_bins: int,
        checkpoint_step: int, weights: str, tta: str, split: str,
        image_size: int, crop_fraction: float, params_digest: str,
        unfamiliarity, unfamiliar_score: str,
        unfamiliar_tpr: float) -> Calibration:
  """`unfamiliarity(temperature)` gives the validation photos'
  unfamiliar.scores under the fitted temperature. `image_size` and
  `crop_fraction`: the centre crop the logits were computed on (another
  size gives other logits, so it needs its own temperature)."""
  temperature = fit_temperature(logits, labels)
  before, after = metrics.softmax(logits), metrics.softmax(logits / temperature)
  selective = selective_threshold(after, labels, max_risk)
  return Calibration(
      temperature=temperature, threshold=selective['threshold'],
      max_risk=max_risk, checkpoint_step=checkpoint_step, weights=weights,
      tta=tta, params_digest=params_digest,
      unfamiliar_score=unfamiliar_score, unfamiliar_tpr=unfamiliar_tpr,
      unfamiliar_threshold=unfamiliar.threshold(
          unfamiliarity(temperature)[unfamiliar_score], unfamiliar_tpr),
      fitted_on={
          'split': split, 'image_size': image_size,
          'crop_fraction': crop_fraction, 'num_examples': int(len(labels)),
          'nll_before': metrics.negative_log_likelihood(logits, labels),
          'nll_after': metrics.negative_log_likelihood(logits / temperature,
                                                       labels),
          'ece_before': metrics.expected_calibration_error(before, labels,
                                                           num_bins),
          'ece_after': metrics.expected_calibration_error(after, labels,
                                                          num_bins),
          'coverage': selective['coverage'], 'risk': selective['risk']})


