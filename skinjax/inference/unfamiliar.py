"""How unlike the training data a photo is, at scoring time: the
unfamiliarity scores of a batch's logits and features, and the training
feature statistics they read, saved beside a checkpoint's calibration. (Fitted
by skinjax.evaluation.unfamiliar.)

Every score is an unfamiliarity: higher means less like the training data.
  msp: minus the maximum softmax probability (Hendrycks & Gimpel, 2017).
  energy: minus logsumexp of the logits (Liu et al., 2020).
  mahalanobis: the smallest squared Mahalanobis distance of the penultimate
    features to a class mean, with one covariance shared by the classes,
    all fitted on training photos (Lee et al., 2018).
"""

import os

import numpy as np

from skinjax.inference import differential

SCORES = ('msp', 'energy', 'mahalanobis')


def mahalanobis(features, statistics: dict) -> np.ndarray:
  """Smallest squared distance to a class mean (classes without training
  photos left out)."""
  means = statistics['means'][~np.isnan(statistics['means']).any(axis=1)]
  # With precision = L L^T the distance is a Euclidean one after mapping by
  # L: one (photos x features) @ (features x features) product, where the
  # distance of every photo to every mean costs a product per pair.
  whiten = np.linalg.cholesky(statistics['precision'])
  mapped = np.asarray(features, np.float64) @ whiten
  mapped_means = means @ whiten
  return np.min([((mapped - m)**2).sum(axis=1) for m in mapped_means],
                axis=0)


def scores(logits, features, statistics: dict | None,
           temperature: float = 1.0) -> dict:
  """{score name: unfamiliarity per photo}; mahalanobis only with
  `statistics` and `features`."""
  logits = np.asarray(logits, np.float64)
  result = {
      'msp': -differential.probabilities(logits, temperature).max(axis=-1),
      'energy': -(logits.max(axis=-1) + np.log(np.exp(
          logits - logits.max(axis=-1, keepdims=True)).sum(axis=-1))),
  }
  if statistics is not None and features is not None:
    result['mahalanobis'] = mahalanobis(features, statistics)
  return result


def statistics_path(calibration_file: str) -> str:
  """The feature statistics beside a calibration file (<step>.json ->
  <step>.features.npz)."""
  return os.path.splitext(calibration_file)[0] + '.features.npz'


def save_statistics(statistics: dict, path: str) -> None:
  """Written beside `path` and renamed over it: never half a file."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f'{path}.tmp.npz'
  np.savez(tmp, **statistics)
  with open(tmp, 'rb') as f:
    os.fsync(f.fileno())
  os.replace(tmp, path)


def load_statistics(path: str) -> dict | None:
  """The saved statistics, or None if missing or unreadable."""
  try:
    with np.load(path) as saved:
      return {k: saved[k] for k in saved.files}
  except (OSError, ValueError, EOFError):
    return None
