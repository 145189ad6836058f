"""Ranked differentials: per photo the top-k classes with calibrated
probabilities and the 'uncertain' flag, as a table, CSV or JSON."""

import csv
import json
import os

import numpy as np


def differentials(probabilities, class_names, top_k: int,
                  threshold) -> list:
  """Per photo: the top-k (class, probability) and the 'uncertain' flag,
  raised when the top probability is below `threshold` (always, when no
  threshold reached the validation target)."""
  rows = []
  for p in probabilities:
    order = np.argsort(-p, kind='stable')[:top_k]
    rows.append({'differential': [(class_names[i], float(p[i]))
                                  for i in order],
                 'uncertain': threshold is None or float(p[order[0]]) < threshold})
  return rows


def write(rows, path: str) -> None:
  """As JSON for a .json path, else as CSV (one row per photo)."""
  if path.endswith('.json'):
    with open(path, 'w') as f:
      json.dump(rows, f, indent=2)
    return
  top_k = max(len(r['differential']) for r in rows)
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['file', 'uncertain'] + [
        f'{kind}_{i}' for i in range(1, top_k + 1)
        for kind in ('class', 'probability')])
    for r in rows:
      writer.writerow([r['file'], r['uncertain']] + [
          v for name, p in r['differential'] for v in (name, f'{p:.6f}')])


def table(rows, threshold) -> str:
  """One line per photo, then what 'uncertain' means here."""
  width = max(len(os.path.basename(r['file'])) for r in rows)
  lines = []
  for r in rows:
    ranked = '  '.join(f'{name} {p:.3f}' for name, p in r['differential'])
    flag = '  UNCERTAIN' if r['uncertain'] else ''
    lines.append(f"{os.path.basename(r['file']):<{width}}  {ranked}{flag}")
  rule = ('no threshold reached the validation target: all uncertain'
          if threshold is None else f'top probability < {threshold:.3f}')
  lines += ['', f'uncertain = {rule}. Probabilities are calibrated on '
            'validation; a ranked differential, not a diagnosis.']
  return '\n'.join(lines)
