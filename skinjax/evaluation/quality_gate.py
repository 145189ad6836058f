"""The quality gate on an evaluated split: the share of its photos flagged,
by reason and by skin tone (a gate that refused darker skin more often
would be a harm of its own), and the model's accuracy on the photos the gate
passes against those it flags (what refusing them is worth)."""

import numpy as np

from skinjax import progress
from skinjax.inference import quality
from skinjax.inference import skin_tone


def judgements(gate: quality.Gate, source, region: str) -> tuple:
  """([skin_tone.estimate], [quality.assess]) of every photo in `source`
  (examples with 'image'), each decoded once (quality.judge); `region` as
  skin_tone.region_for."""
  judged = [quality.judge(source[i]['image'], region, gate)
            for i in progress.bar(range(len(source)),
                                  desc='skin tone and quality of each photo',
                                  unit='photo')]
  return [tone for tone, _ in judged], [found for _, found in judged]


def summary(found: list, tones: list, logits, labels) -> dict:
  """{'flagged', 'by_reason', 'by_skin_tone', 'accuracy_passed',
  'accuracy_flagged', 'num_flagged', 'not_measured'} of the gate's `found`
  verdicts on photos whose ITA groups, logits and labels are given
  (accuracies None where no photo)."""
  flagged = np.array([v['flagged'] for v in found], bool)
  correct = np.asarray(logits).argmax(axis=-1) == np.asarray(labels)

  def accuracy(mask):
    return float(correct[mask].mean()) if mask.any() else None

  not_measured = []
  if found and found[0]['appearance_distance'] is None:
    not_measured.append('no_skin')
  return {'flagged': float(flagged.mean()) if len(flagged) else 0.0,
          'num_flagged': int(flagged.sum()),
          'by_reason': {r: float(np.mean([r in v['reasons'] for v in found]))
                        for r in quality.REASONS} if found else {},
          'by_skin_tone': {
              group: {'photos': int(np.sum(np.array(tones) == group)),
                      'flagged': float(flagged[np.array(tones) == group]
                                       .mean())}
              for group in dict.fromkeys(
                  [g for g in skin_tone.GROUP_NAMES + (skin_tone.UNKNOWN,)
                   if g in tones])},
          'accuracy_passed': accuracy(~flagged),
          'accuracy_flagged': accuracy(flagged),
          'not_measured': not_measured}
