"""Metrics against values computed by hand."""

import numpy as np
import pytest

from skinjax import metrics

# Four classes; class 'd' never occurs and is never predicted.
#   labels       0  0  0  1  1  2
#   predictions  0  0  1  1  2  2
_LOGITS = np.array([
    [3, 2, 1, 0],    # 0 -> 0
    [3, 0, 1, 2],    # 0 -> 0
    [1, 3, 2, 0],    # 0 -> 1, true class ranked 3rd
    [0, 3, 1, 2],    # 1 -> 1
    [0, -1, 3, 2],   # 1 -> 2, true class ranked 4th
    [0, 1, 3, 2],    # 2 -> 2
], np.float64)
_LABELS = np.array([0, 0, 0, 1, 1, 2])
_NAMES = ['a', 'b', 'c', 'd']


def test_hand_computed_example():
  m = metrics.classification_metrics(_LOGITS, _LABELS, _NAMES)
  assert m['num_examples'] == 6
  assert m['top1'] == pytest.approx(4 / 6)
  assert m['top3'] == pytest.approx(5 / 6)
  # recall: a 2/3, b 1/2, c 1  -> mean over present classes
  assert m['balanced_accuracy'] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
  # precision: a 1, b 1/2, c 1/2; F1: a 0.8, b 0.5, c 2/3
  assert m['macro_f1'] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
  assert m['per_class']['a'] == pytest.approx(
      {'precision': 1.0, 'recall': 2 / 3, 'f1': 0.8, 'support': 3})
  assert m['per_class']['c'] == pytest.approx(
      {'precision': 0.5, 'recall': 1.0, 'f1': 2 / 3, 'support': 1})
  assert m['per_class']['d'] == {'precision': 0.0, 'recall': 0.0, 'f1': 0.0,
                                 'support': 0}
  assert m['confusion_matrix'] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0],
                                   [0, 0, 0, 0]]


def test_nll_of_uniform_and_of_confident_predictions():
  labels = np.array([0, 1, 2])
  uniform = metrics.classification_metrics(np.zeros((3, 4)), labels, _NAMES)
  assert uniform['nll'] == pytest.approx(np.log(4))
  confident = metrics.classification_metrics(np.eye(4)[labels] * 50, labels,
                                             _NAMES)
  assert confident['nll'] == pytest.approx(0, abs=1e-12)
  assert confident['top1'] == 1.0 and confident['macro_f1'] == 1.0


def test_top_k_is_capped_at_the_number_of_classes():
  logits = np.array([[0.0, 1.0], [1.0, 0.0]])
  assert metrics.top_k_accuracy(logits, np.array([0, 0]), 3) == 1.0
  assert metrics.top_k_accuracy(logits, np.array([0, 0]), 1) == 0.5
