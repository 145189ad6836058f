"""Classification metrics over a whole split, computed on the host in numpy."""

import re

import numpy as np

from skinjax.inference import forward

# Validation metrics that can rank checkpoints (config.best_metric); higher
# is better. Top-k is None when the scored classes are k or fewer (it would
# be 1 by construction).
CHECKPOINT_METRICS = ('top1', 'top3', 'balanced_accuracy', 'macro_f1')


def top_k_of(metric: str):
  """3 for 'top3'; None for a metric that is not a top-k accuracy."""
  match = re.fullmatch(r'top(\d+)', metric)
  return int(match.group(1)) if match else None


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
  """counts[true, predicted]."""
  counts = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(counts, (labels, predictions), 1)
  return counts


def top_k_accuracy(logits, labels, k: int):
  """Fraction whose label is among the k highest logits; None when there
  are k classes or fewer (every label would be)."""
  if k >= logits.shape[-1]:
    return None
  top_k = np.argsort(-logits, axis=-1, kind='stable')[:, :k]
  return float(np.mean(np.any(top_k == labels[:, None], axis=-1)))


def _safe_divide(numerator, denominator):
  return np.divide(numerator, denominator,
                   out=np.zeros(np.shape(numerator), np.float64),
                   where=denominator > 0)


def log_softmax(logits: np.ndarray) -> np.ndarray:
  logits = np.asarray(logits, np.float64)
  return logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)


def softmax(logits: np.ndarray) -> np.ndarray:
  return np.exp(log_softmax(logits))


def negative_log_likelihood(logits, labels) -> float:
  return float(-np.mean(log_softmax(logits)[np.arange(len(labels)), labels]))


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
  """Area under the ROC curve: the probability that a random positive scores
  above a random negative, ties counting half (Mann-Whitney U). NaN when
  either group is empty."""
  positive = np.asarray(positive, bool)
  num_positive, num_negative = positive.sum(), (~positive).sum()
  if num_positive == 0 or num_negative == 0:
    return float('nan')
  order = np.argsort(scores, kind='stable')
  sorted_scores = np.asarray(scores)[order]
  ranks = np.empty(len(scores), np.float64)
  # Average rank over each group of tied scores.
  _, first, counts = np.unique(sorted_scores, return_index=True,
                               return_counts=True)
  ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
  u = ranks[positive].sum() - num_positive * (num_positive + 1) / 2
  return float(u / (num_positive * num_negative))


def calibration_bins(probabilities: np.ndarray, labels: np.ndarray,
                     num_bins: int = 15) -> dict:
  """Top-label reliability: per equal-width confidence bin, the number of
  examples, their mean confidence and their accuracy (NaN where empty)."""
  confidence = probabilities.max(axis=-1)
  correct = probabilities.argmax(axis=-1) == labels
  # Bins (lo, hi], the first one closed: confidence 1/num_bins is in bin 0.
  index = np.clip(np.ceil(confidence * num_bins).astype(int) - 1, 0,
                  num_bins - 1)
  count = np.bincount(index, minlength=num_bins)
  with np.errstate(invalid='ignore', divide='ignore'):
    mean_confidence = np.bincount(index, confidence, num_bins) / count
    accuracy = np.bincount(index, correct, num_bins) / count
  return {'edges': np.linspace(0, 1, num_bins + 1).tolist(),
          'count': count.tolist(),
          'confidence': mean_confidence.tolist(),
          'accuracy': accuracy.tolist()}


def expected_calibration_error(probabilities, labels, num_bins: int = 15
                               ) -> float:
  """Sum over bins of |accuracy - confidence| weighted by the bin's share."""
  bins = calibration_bins(probabilities, labels, num_bins)
  count = np.asarray(bins['count'])
  gap = np.abs(np.asarray(bins['accuracy']) - np.asarray(bins['confidence']))
  return float(np.sum(np.where(count > 0, gap * count, 0.0)) / count.sum())


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> dict:
  """Selective prediction: keeping the examples whose confidence is at least
  each distinct threshold (highest first), the fraction kept and its error."""
  order = np.argsort(-confidence, kind='stable')
  confidence, correct = confidence[order], np.asarray(correct, bool)[order]
  # Examples with equal confidence are kept or dropped together.
  last_of_tie = np.append(confidence[1:] != confidence[:-1], True)
  kept = np.arange(1, len(confidence) + 1)[last_of_tie]
  errors = np.cumsum(~correct)[last_of_tie]
  return {'threshold': confidence[last_of_tie].tolist(),
          'coverage': (kept / len(confidence)).tolist(),
          'risk': (errors / kept).tolist()}


def area_under_risk_coverage(curve: dict) -> float:
  """Mean risk over coverage (lower is better), stepwise in the kept count."""
  coverage = np.concatenate([[0.0], curve['coverage']])
  return float(np.sum(np.diff(coverage) * np.asarray(curve['risk'])))


def classification_metrics(logits: np.ndarray, labels: np.ndarray,
                           class_names, num_bins: int = 15) -> dict:
  """Accuracy, F1, ranking, calibration and per-class scores of one split.

  Balanced accuracy averages recall over the classes present in `labels`;
  macro F1 averages F1 over classes present in labels or predictions (the
  convention of scikit-learn), so absent classes do not count as zeros.
  ROC-AUC is one-vs-rest on the softmax probability; its macro average
  covers the classes with both positives and negatives. ECE is top-label,
  over `num_bins` equal-width bins.
  """
  num_classes = len(class_names)
  predictions = np.argmax(logits, axis=-1)
  counts = confusion_matrix(labels, predictions, num_classes)
  true_positives = np.diag(counts).astype(np.float64)
  support = counts.sum(axis=1)
  predicted = counts.sum(axis=0)
  precision = _safe_divide(true_positives, predicted)
  recall = _safe_divide(true_positives, support)
  f1 = _safe_divide(2 * precision * recall, precision + recall)
  present = support > 0
  seen = present | (predicted > 0)
  probabilities = softmax(logits)
  auc = np.array([roc_auc(probabilities[:, i], labels == i)
                  for i in range(num_classes)])
  scored = ~np.isnan(auc)
  return {
      'num_examples': int(len(labels)),
      'top1': float(np.mean(predictions == labels)),
      'top3': top_k_accuracy(logits, labels, 3),
      'balanced_accuracy': float(np.mean(recall[present])),
      'macro_f1': float(np.mean(f1[seen])),
      'macro_roc_auc': float(np.mean(auc[scored])) if scored.any() else None,
      'nll': negative_log_likelihood(logits, labels),
      'ece': expected_calibration_error(probabilities, labels, num_bins),
      'per_class': {
          name: {'precision': float(precision[i]), 'recall': float(recall[i]),
                 'f1': float(f1[i]), 'support': int(support[i]),
                 'roc_auc': float(auc[i]) if scored[i] else None}
          for i, name in enumerate(class_names)},
      'confusion_matrix': counts.tolist(),
  }


def evaluate_split(eval_step_fn, state, dataset, mesh, class_names) -> dict:
  """classification_metrics of the model over `dataset` (training's
  validation)."""
  result = forward.predict(eval_step_fn, state, dataset, mesh)
  return classification_metrics(result['logits'], result['label'],
                                class_names)
