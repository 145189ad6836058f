"""Results by skin tone: every headline metric within each ITA group, with its
support and a bootstrap confidence interval, and the gap between the best
and the worst group."""

import numpy as np

from skinjax.evaluation import metrics as metrics_lib
from skinjax.inference import skin_tone

# Metric -> whether higher is better.
STRATIFIED_METRICS = {'top1': True, 'balanced_accuracy': True,
                      'macro_f1': True, 'macro_roc_auc': True, 'ece': False}
# Groups with fewer photos get their metrics but no interval and no place in
# the gap: a handful of photos says little.
MIN_SUPPORT = 10


def _values(logits, labels, class_names, num_bins) -> dict:
  scored = metrics_lib.classification_metrics(logits, labels, class_names,
                                              num_bins)
  return {k: scored[k] for k in STRATIFIED_METRICS}


def _interval(logits, labels, class_names, num_bins, resamples, rng,
              level: float) -> dict:
  """Percentile bootstrap interval of every metric (resampling photos)."""
  draws = {k: [] for k in STRATIFIED_METRICS}
  for _ in range(resamples):
    pick = rng.integers(0, len(labels), len(labels))
    for k, v in _values(logits[pick], labels[pick], class_names,
                        num_bins).items():
      if v is not None:
        draws[k].append(v)
  tail = (1 - level) / 2 * 100
  return {k: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))]
          if v else None for k, v in draws.items()}


def overall_interval(logits, labels, class_names, *, num_bins: int,
                     resamples: int, seed: int = 0,
                     level: float = 0.95) -> dict:
  """{metric: [low, high]} over all photos, with 'level' and 'resamples':
  the uncertainty of the headline figures, as the groups' intervals give
  theirs. `logits` are calibrated."""
  return {'level': level, 'resamples': resamples, **_interval(
      logits, labels, class_names, num_bins, resamples,
      np.random.default_rng(seed), level)}


def by_skin_tone(logits, labels, groups, class_names, *, num_bins: int,
                 resamples: int, seed: int = 0, level: float = 0.95) -> dict:
  """{'groups': {group: {'support', metric: value,
  'interval': {metric: [low, high]}}}, 'gap': {metric: {'best', 'worst',
  'difference'}}, 'unknown': photos whose tone could not be measured}.

  `logits` are calibrated; `groups` holds the ITA group of every photo.
  """
  groups = np.asarray(groups)
  rng = np.random.default_rng(seed)
  result = {}
  for name in skin_tone.GROUP_NAMES:
    members = groups == name
    if not members.any():
      continue
    entry = {'support': int(members.sum()),
             **_values(logits[members], labels[members], class_names,
                       num_bins)}
    entry['interval'] = (
        _interval(logits[members], labels[members], class_names, num_bins,
                  resamples, rng, level)
        if entry['support'] >= MIN_SUPPORT else None)
    result[name] = entry
  return {'groups': result, 'gap': _gaps(result), 'level': level,
          'resamples': resamples, 'min_support': MIN_SUPPORT,
          'unknown': int(np.sum(groups == skin_tone.UNKNOWN))}


def _gaps(groups: dict) -> dict:
  """Per metric, the best and the worst group of at least MIN_SUPPORT photos
  and the difference between them."""
  gaps = {}
  for metric, higher_is_better in STRATIFIED_METRICS.items():
    scored = {g: e[metric] for g, e in groups.items()
              if e['support'] >= MIN_SUPPORT and e[metric] is not None}
    if len(scored) < 2:
      continue
    order = sorted(scored, key=scored.get, reverse=higher_is_better)
    gaps[metric] = {'best': order[0], 'worst': order[-1],
                    'difference': abs(scored[order[0]] - scored[order[-1]])}
  return gaps


def skin_tone_metrics(config, source, tones, logits, labels, class_names,
                      calibration) -> dict:
  """by_skin_tone of the photos in `source`, whose skin tones
  (skin_tone.estimate of each) are `tones`, and, where the dataset records
  the skin tone it drew ('skin_rgb'), the estimate against it."""
  result = by_skin_tone(
      logits / calibration.temperature, labels, [t['group'] for t in tones],
      class_names, num_bins=config.evaluation.calibration_bins,
      resamples=config.evaluation.bootstrap_resamples)
  if len(source) and 'skin_rgb' in source[0]:
    estimated = np.array([np.nan if t['ita'] is None else t['ita']
                          for t in tones])
    drawn = np.array([skin_tone.ita_of_rgb(source[i]['skin_rgb'])
                      for i in range(len(source))])
    result['estimate_vs_drawn'] = skin_tone.agreement(estimated, drawn)
  return result
