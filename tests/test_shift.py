"""A collection far from the training distribution is told from one that is
not, and warned about."""

import numpy as np

from skinjax.evaluation import shift
from skinjax.evaluation import unfamiliar


def _statistics(rng):
  return {f'validation_{name}': rng.normal(0, 1, 400)
          for name in unfamiliar.SCORES}


def test_a_shifted_collection_is_warned_about_and_a_like_one_is_not():
  rng = np.random.default_rng(0)
  statistics = _statistics(rng)
  cut = unfamiliar.threshold(statistics['validation_mahalanobis'], 0.95)
  for offset, warned in ((0.0, False), (1.5, True)):
    scores = {name: rng.normal(offset, 1, 300) for name in unfamiliar.SCORES}
    result = shift.summary(scores, statistics,
                           scores['mahalanobis'] > cut, 0.95)
    assert (result['warning'] is not None) == warned, (offset, result)
    auroc = result['scores']['mahalanobis']['auroc']
    assert (auroc > 0.8) if warned else (abs(auroc - 0.5) < 0.1), auroc
    assert abs(result['expected_flagged'] - 0.05) < 1e-12
