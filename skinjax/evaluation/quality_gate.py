"""The quality gate on an evaluated split: the share of its photos flagged,
by reason, and the model's accuracy on the photos the gate passes against
those it flags (what refusing them is worth)."""

import numpy as np

from skinjax import progress
from skinjax.data import preprocess
from skinjax.inference import quality


def verdicts(gate: quality.Gate, source) -> list:
  """quality.assess of every photo in `source` (examples with 'image')."""
  return [quality.assess(np.asarray(preprocess.open_image(
      source[i]['image']).convert('RGB')), gate)
          for i in progress.bar(range(len(source)), desc='quality gate',
                                unit='photo')]


def summary(found: list, logits, labels) -> dict:
  """{'flagged', 'by_reason', 'accuracy_passed', 'accuracy_flagged',
  'num_flagged', 'not_measured'} of the gate's `found` verdicts on photos
  whose logits and labels are given (accuracies None where no photo)."""
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
          'accuracy_passed': accuracy(~flagged),
          'accuracy_flagged': accuracy(flagged),
          'not_measured': not_measured}
