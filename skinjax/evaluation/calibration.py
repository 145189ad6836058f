"""Post-hoc calibration of a checkpoint: a softmax temperature, the
confidence threshold of selective prediction and the threshold of the
'unfamiliar' flag, all fitted on validation.

They are stored as WORKDIR/calibration/<step>.json (<step>.ema.json for the
moving-average weights) beside the checkpoint they belong to, so evaluate and
predict apply the same values; the training-feature statistics of the
Mahalanobis score lie beside it (unfamiliar.statistics_path).
"""

import dataclasses
import json
import math
import os

import numpy as np
from scipy import optimize

from skinjax.evaluation import metrics
from skinjax.evaluation import unfamiliar
from skinjax.run_folder import atomic

CALIBRATION_DIR = 'calibration'


@dataclasses.dataclass(frozen=True)
class Calibration:
  """What evaluate and predict apply to a checkpoint's logits."""
  temperature: float  # logits are divided by it
  # Calibrated top probability below which a prediction is flagged
  # 'uncertain'; None when no threshold reaches max_risk on validation.
  threshold: float | None
  max_risk: float
  checkpoint_step: int
  weights: str  # 'raw' or 'ema' (the moving average of the weights)
  tta: str  # the test-time augmentation the logits were fitted with
  fitted_on: dict  # split, examples, and what the fit did there
  # Of the weights it was fitted for; '' in files written before it was kept.
  params_digest: str = ''
  # The unfamiliarity score (unfamiliar.SCORES) above whose threshold a photo
  # is flagged 'unfamiliar', chosen so that unfamiliar_tpr of validation
  # photos are not; '' and None in files written before the flag existed.
  unfamiliar_score: str = ''
  unfamiliar_tpr: float | None = None
  unfamiliar_threshold: float | None = None


def fitted_for(calibration: Calibration) -> dict:
  """What a calibration belongs to: it is reused only where all of it
  matches (a rewritten checkpoint of the same step has other weights)."""
  return {'checkpoint_step': calibration.checkpoint_step,
          'weights': calibration.weights, 'tta': calibration.tta,
          'max_risk': calibration.max_risk,
          'split': calibration.fitted_on.get('split'),
          'image_size': calibration.fitted_on.get('image_size'),
          'crop_fraction': calibration.fitted_on.get('crop_fraction'),
          'params_digest': calibration.params_digest,
          'unfamiliar_score': calibration.unfamiliar_score,
          'unfamiliar_tpr': calibration.unfamiliar_tpr}


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


def path(workdir: str, step: int, weights: str) -> str:
  name = f'{step}.json' if weights == 'raw' else f'{step}.{weights}.json'
  return os.path.join(workdir, CALIBRATION_DIR, name)


def save(calibration: Calibration, workdir: str) -> str:
  """Writes atomically, so a crash never leaves a file that reads as valid."""
  target = path(workdir, calibration.checkpoint_step, calibration.weights)
  os.makedirs(os.path.dirname(target), exist_ok=True)
  atomic.write_text(target, json.dumps(dataclasses.asdict(calibration),
                                       indent=2))
  return target


def load(workdir: str, step: int, weights: str) -> Calibration | None:
  """The calibration saved for these weights of checkpoint `step`, or None."""
  try:
    with open(path(workdir, step, weights)) as f:
      return Calibration(**json.load(f))
  except FileNotFoundError:
    return None
