"""Classification metrics over a whole split, computed on the host in numpy."""

import numpy as np


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
  """counts[true, predicted]."""
  counts = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(counts, (labels, predictions), 1)
  return counts


def top_k_accuracy(logits, labels, k: int) -> float:
  k = min(k, logits.shape[-1])
  top_k = np.argsort(-logits, axis=-1, kind='stable')[:, :k]
  return float(np.mean(np.any(top_k == labels[:, None], axis=-1)))


def _safe_divide(numerator, denominator):
  return np.divide(numerator, denominator,
                   out=np.zeros(np.shape(numerator), np.float64),
                   where=denominator > 0)


def classification_metrics(logits: np.ndarray, labels: np.ndarray,
                           class_names) -> dict:
  """top1, top3, balanced accuracy, macro F1, NLL and per-class scores.

  Balanced accuracy averages recall over the classes present in `labels`;
  macro F1 averages F1 over classes present in labels or predictions (the
  convention of scikit-learn), so absent classes do not count as zeros.
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
  log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
  return {
      'num_examples': int(len(labels)),
      'top1': float(np.mean(predictions == labels)),
      'top3': top_k_accuracy(logits, labels, 3),
      'balanced_accuracy': float(np.mean(recall[present])),
      'macro_f1': float(np.mean(f1[seen])),
      'nll': float(-np.mean(log_probs[np.arange(len(labels)), labels])),
      'per_class': {
          name: {'precision': float(precision[i]), 'recall': float(recall[i]),
                 'f1': float(f1[i]), 'support': int(support[i])}
          for i, name in enumerate(class_names)},
      'confusion_matrix': counts.tolist(),
  }
