"""Metrics against values computed by hand."""

import numpy as np
import pytest

from skinjax.evaluation import metrics
from skinjax.evaluation import report

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
  # ROC-AUC of 'a': its three examples have the three highest P(a).
  # Of 'c': its one example outranks 4 of the 5 others on P(c).
  assert m['per_class']['a'] == pytest.approx(
      {'precision': 1.0, 'recall': 2 / 3, 'f1': 0.8, 'support': 3,
       'roc_auc': 1.0})
  assert m['per_class']['c'] == pytest.approx(
      {'precision': 0.5, 'recall': 1.0, 'f1': 2 / 3, 'support': 1,
       'roc_auc': 0.8})
  assert m['per_class']['d'] == {'precision': 0.0, 'recall': 0.0, 'f1': 0.0,
                                 'support': 0, 'roc_auc': None}
  assert m['macro_roc_auc'] == pytest.approx(np.mean(
      [m['per_class'][n]['roc_auc'] for n in 'abc']))
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


def test_top_k_is_none_where_it_cannot_miss():
  """Over k classes or fewer, top-k would be 1 by construction: None."""
  logits = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 2.0]])
  assert metrics.top_k_accuracy(logits, np.array([0, 0]), 3) is None
  assert metrics.top_k_accuracy(logits, np.array([0, 0]), 2) == 0.5
  scored = metrics.classification_metrics(logits, np.array([0, 1]),
                                          ['a', 'b', 'c'])
  assert scored['top3'] is None and scored['top1'] == 0.0


def test_roc_auc_counts_ties_as_half():
  # Positives 0.9, 0.3, 0.8 against negatives 0.8, 0.2: of the 6 pairs,
  # 4 ordered right, 1 tie, 1 wrong.
  scores = np.array([0.9, 0.8, 0.3, 0.2, 0.8])
  positive = np.array([1, 0, 1, 0, 1], bool)
  assert metrics.roc_auc(scores, positive) == pytest.approx(4.5 / 6)
  assert metrics.roc_auc(-scores, positive) == pytest.approx(1.5 / 6)
  assert np.isnan(metrics.roc_auc(scores, np.ones(5, bool)))


def _two_class(confidence, correct):
  """Probabilities whose top class has `confidence`; label right or wrong."""
  confidence = np.asarray(confidence, np.float64)
  probabilities = np.stack([confidence, 1 - confidence], axis=-1)
  return probabilities, np.where(correct, 0, 1)


def test_ece_is_zero_when_confidence_matches_accuracy():
  probabilities, labels = _two_class([0.8] * 10, [1] * 8 + [0] * 2)
  assert metrics.expected_calibration_error(probabilities, labels) == (
      pytest.approx(0.0, abs=1e-12))


def test_ece_of_an_over_confident_model():
  probabilities, labels = _two_class([0.99] * 10, [1, 0] * 5)
  assert metrics.expected_calibration_error(probabilities, labels) == (
      pytest.approx(0.49))


def test_ece_weighs_each_bin_by_its_share():
  # Confidence 0.9 right 2 of 4 times (gap 0.4), 0.6 right 3 of 4 (0.15).
  probabilities, labels = _two_class([0.9] * 4 + [0.6] * 4,
                                     [1, 1, 0, 0, 1, 1, 1, 0])
  assert metrics.expected_calibration_error(probabilities, labels) == (
      pytest.approx(0.5 * 0.4 + 0.5 * 0.15))
  bins = metrics.calibration_bins(probabilities, labels, 15)
  assert sum(bins['count']) == 8 and bins['count'][13] == 4  # (.867, .933]


def test_risk_coverage_keeps_ties_together():
  curve = metrics.risk_coverage(np.array([0.9, 0.8, 0.8, 0.6, 0.3]),
                                np.array([1, 1, 0, 1, 0], bool))
  assert curve['threshold'] == [0.9, 0.8, 0.6, 0.3]
  assert curve['coverage'] == pytest.approx([0.2, 0.6, 0.8, 1.0])
  assert curve['risk'] == pytest.approx([0, 1 / 3, 1 / 4, 2 / 5])
  assert metrics.area_under_risk_coverage(curve) == pytest.approx(
      0.2 * 0 + 0.4 / 3 + 0.2 / 4 + 0.2 * 2 / 5)


def test_printed_chance_counts_only_the_classes_present():
  """Balanced accuracy averages over the classes present: chance is one over
  their number, not over every class the model knows."""
  logits = np.eye(4)[[0, 1, 1, 2]] * 5.0
  labels = np.array([0, 1, 1, 2])  # class 'd' absent
  scored = metrics.classification_metrics(logits, labels, ['a', 'b', 'c', 'd'])
  text = report.text(scored, ['a', 'b', 'c', 'd'])
  assert 'balanced_accuracy 0.3333 (1/3 classes present)' in text
  assert 'top1 0.5000 (majority class)' in text
  three = metrics.classification_metrics(logits[:, :3], labels, ['a', 'b', 'c'])
  assert 'top3 n/a' in report.text(three, ['a', 'b', 'c'])
