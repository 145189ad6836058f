"""How unlike the training data a photo is: fitting the statistics and
thresholds of the scores for "none of the classes I know" (an unknown
condition, another modality, not skin at all; the scores themselves are
skinjax.inference.unfamiliar), and how well each tells two sets of photos
apart.

The Mahalanobis score's class means and shared covariance are fitted on
training photos. The flag threshold is the quantile of the validation
scores that leaves `tpr` of validation photos unflagged.
"""

import numpy as np

from skinjax.evaluation import metrics
from skinjax.inference import unfamiliar as unfamiliar_scores

SCORES = unfamiliar_scores.SCORES
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


def compare(familiar: dict, unfamiliar: dict, tpr: float) -> dict:
  """separation() of every score both sets have."""
  return {name: separation(familiar[name], unfamiliar[name], tpr)
          for name in SCORES if name in familiar and name in unfamiliar}
