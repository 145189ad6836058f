"""How far a collection of photos lies from the training distribution, and
whether the values fitted on validation (temperature, confidence and
unfamiliar thresholds) can be expected to hold on it.

The same unfamiliarity scores, summarised over the collection: how well
each tells its photos from the validation photos (ROC-AUC 0.5: the same
distribution), and the share the 'unfamiliar' flag raises against the
share it raises on validation by construction (1 - tpr).
"""

from scipy import stats

from skinjax.evaluation import unfamiliar

# A warning needs the flagged share at least this many times the expected
# one, and a binomial tail probability below P_VALUE.
RATIO = 2.0
P_VALUE = 1e-3


def summary(scores: dict, feature_statistics: dict, flagged,
            tpr: float) -> dict:
  """{'scores': {name: separation from validation}, 'flagged',
  'expected_flagged', 'p_value', 'warning'}; `flagged` says which of the
  collection's photos the flag raised."""
  validation = {name: feature_statistics[f'validation_{name}']
                for name in unfamiliar.SCORES
                if f'validation_{name}' in feature_statistics}
  expected, count, n = 1 - tpr, int(flagged.sum()), len(flagged)
  p_value = float(stats.binom.sf(count - 1, n, expected)) if n else 1.0
  observed = count / n if n else 0.0
  warning = None
  if observed >= RATIO * expected and p_value < P_VALUE:
    warning = (
        f'{observed:.0%} of these photos are flagged unfamiliar where '
        f'{expected:.0%} of validation photos are: they lie far from the '
        'training photos, so the temperature and thresholds fitted on '
        'validation are unlikely to hold here (probabilities over- or '
        'under-confident, the error of confident answers above the target). '
        'Recalibrate on labelled photos of this collection before trusting '
        'its probabilities.')
  return {'scores': unfamiliar.compare(validation, scores, tpr),
          'flagged': observed, 'expected_flagged': expected,
          'p_value': p_value, 'warning': warning}
