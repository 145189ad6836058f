"""How unlike the training data a photo is: scores for "none of the classes I
know" (an unknown condition, another modality, not skin at all), how well
each tells two sets of photos apart, and the statistics they need.

Every score is an unfamiliarity: higher means less like the training data.
  msp: minus the maximum softmax probability (Hendrycks & Gimpel, 2017).
  energy: minus logsumexp of the logits (Liu et al., 2020).
  mahalanobis: the smallest squared Mahalanobis distance of the penultimate
    features to a class mean, with one covariance shared by the classes,
    all fitted on training photos (Lee et al., 2018).
The flag threshold is the quantile of the validation scores that leaves
`tpr` of validation photos unflagged.
"""

import os

import numpy as np

from skinjax.evaluation import metrics

SCORES = ('msp', 'energy', 'mahalanobis')
# Added to the covariance's diagonal, relative to its mean variance: a few
# hundred photos do not pin down a covariance of hundreds of features.
_SHRINKAGE = 1e-2


def fit_feature_statistics(features, labels, num_classes: int) -> dict:
  """Class means and the shared precision of training features (float64)."""
  features = np.asarray(features, np.float64)
  means = np.stack([features[labels == c].mean(axis=0)
                    if np.any(labels == c) else np.full(features.shape[1],
                                                        np.nan)
                    for c in range(num_classes)])
  centred = features - means[labels]
  covariance = centred.T @ centred / len(features)
  ridge = _SHRINKAGE * max(np.trace(covariance) / len(covariance), 1e-12)
  precision = np.linalg.inv(covariance + ridge * np.eye(len(covariance)))
  return {'means': means, 'precision': precision}


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
      'msp': -metrics.softmax(logits / temperature).max(axis=-1),
      'energy': -(logits.max(axis=-1) + np.log(np.exp(
          logits - logits.max(axis=-1, keepdims=True)).sum(axis=-1))),
  }
  if statistics is not None and features is not None:
    result['mahalanobis'] = mahalanobis(features, statistics)
  return result


def threshold(validation_scores, tpr: float) -> float:
  """The unfamiliarity above which a photo is flagged: `tpr` of the
  validation photos score at or below it."""
  return float(np.quantile(np.asarray(validation_scores, np.float64), tpr))


def separation(familiar, unfamiliar, tpr: float = 0.95) -> dict:
  """How well a score tells `unfamiliar` photos from `familiar` ones: ROC-AUC
  (0.5: not at all) and the false-positive rate at `tpr` true-positive
  rate, i.e. the share of unfamiliar photos passing as familiar when `tpr`
  of the familiar ones pass."""
  familiar, unfamiliar = (np.asarray(familiar, np.float64),
                          np.asarray(unfamiliar, np.float64))
  both = np.concatenate([familiar, unfamiliar])
  positive = np.r_[np.zeros(len(familiar), bool), np.ones(len(unfamiliar), bool)]
  cut = threshold(familiar, tpr)
  return {'auroc': metrics.roc_auc(both, positive),
          'fpr_at_tpr': float(np.mean(unfamiliar <= cut)), 'tpr': tpr}


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


def compare(familiar: dict, unfamiliar: dict, tpr: float) -> dict:
  """separation() of every score both sets have."""
  return {name: separation(familiar[name], unfamiliar[name], tpr)
          for name in SCORES if name in familiar and name in unfamiliar}
