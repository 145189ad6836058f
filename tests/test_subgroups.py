"""Results by skin tone: metrics per ITA group, intervals, and the gap."""

import numpy as np

from skinjax.evaluation import subgroups


def _logits_for(predictions, num_classes=3):
  return np.eye(num_classes)[predictions] * 5.0


def test_a_group_the_model_fails_shows_in_the_gap():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, 600)
  groups = np.array(['light'] * 300 + ['dark'] * 280 + ['tan'] * 5
                    + ['unknown'] * 15)
  predictions = labels.copy()
  dark = np.flatnonzero(groups == 'dark')
  wrong = dark[rng.random(len(dark)) < 0.5]
  predictions[wrong] = (labels[wrong] + 1) % 3
  result = subgroups.by_skin_tone(_logits_for(predictions), labels, groups,
                                  ['a', 'b', 'c'], num_bins=10,
                                  resamples=100)
  light, dark_entry = result['groups']['light'], result['groups']['dark']
  assert light['support'] == 300 and dark_entry['support'] == 280
  assert light['top1'] == 1.0
  assert abs(dark_entry['top1'] - 0.5) < 0.08
  low, high = dark_entry['interval']['top1']
  assert low < dark_entry['top1'] < high and high - low < 0.2
  assert result['groups']['tan']['interval'] is None  # 5 photos: too few
  assert result['unknown'] == 15
  gap = result['gap']['top1']
  assert (gap['best'], gap['worst']) == ('light', 'dark')
  assert abs(gap['difference'] - (1 - dark_entry['top1'])) < 1e-9
  assert result['gap']['ece']['worst'] == 'dark'  # lower ECE is better
  assert list(result['groups']) == ['light', 'tan', 'dark']  # light to dark
