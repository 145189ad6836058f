"""Ranked differentials: per photo the top-k classes with calibrated
probabilities, the 'uncertain' and 'unfamiliar' flags, the quality gate's
verdict and the skin tone measured on the photo, as a table, CSV or JSON."""

import csv
import json
import os

import numpy as np


def probabilities(logits, temperature: float = 1.0) -> np.ndarray:
  """Calibrated probabilities, softmax(logits / temperature), in float64:
  the one place scoring turns logits into probabilities (the export does
  the same inside its graph)."""
  scaled = np.asarray(np.asarray(logits) / temperature, np.float64)
  return np.exp(scaled - np.logaddexp.reduce(scaled, axis=-1, keepdims=True))


# A cell starting with one of these is a formula to a spreadsheet (OWASP's
# CSV injection list).
_FORMULA_STARTS = ('=', '+', '-', '@', '\t', '\r')


def differentials(probabilities, class_names, top_k: int, threshold, *,
                  unfamiliar=None, skin_tones=None, qualities=None) -> list:
  """Per photo: the top-k (class, probability); 'uncertain', raised when the
  top probability is below `threshold` (always, when no threshold reached
  the validation target); 'unfamiliar' as given per photo (unlike the
  training data: skinjax.evaluation.unfamiliar); and the photo's ITA skin
  tone group and angle from `skin_tones` (skin_tone.estimate per photo);
  the quality gate's verdict from `qualities` (quality.assess per photo).
  What is not given is None in every row: not measured, never False."""
  count = len(probabilities)
  unfamiliar = [None] * count if unfamiliar is None else unfamiliar
  skin_tones = ([{'group': None, 'ita': None}] * count if skin_tones is None
                else skin_tones)
  qualities = [None] * count if qualities is None else qualities
  rows = []
  for p, strange, tone, usable in zip(probabilities, unfamiliar, skin_tones,
                                      qualities, strict=True):
    order = np.argsort(-p, kind='stable')[:top_k]
    rows.append({'differential': [(class_names[i], float(p[i]))
                                  for i in order],
                 'uncertain': threshold is None or float(p[order[0]]) < threshold,
                 'unfamiliar': None if strange is None else bool(strange),
                 'quality': usable,
                 'skin_tone': tone['group'], 'ita': tone['ita']})
  return rows


def quality_note(row) -> str:
  """The quality gate's verdict in a few words: its message, 'passed', or
  'not measured' when it was not judged."""
  usable = row.get('quality')
  if usable is None:
    return 'not measured'
  return usable['message'] if usable['flagged'] else 'passed'


def _cell(text: str) -> str:
  """`text` as a CSV cell no spreadsheet runs: a leading quote before a
  formula character, as OWASP advises."""
  return "'" + text if text.startswith(_FORMULA_STARTS) else text


def write(rows, path: str) -> None:
  """As JSON for a .json path, else as CSV (one row per photo), whose file
  and class names are neutralised against formula injection."""
  if path.endswith('.json'):
    with open(path, 'w') as f:
      json.dump(rows, f, indent=2)
    return
  top_k = max(len(r['differential']) for r in rows)
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['file', 'uncertain', 'unfamiliar', 'quality',
                     'skin_tone', 'ita'] + [
        f'{kind}_{i}' for i in range(1, top_k + 1)
        for kind in ('class', 'probability')])
    for r in rows:
      ita = '' if r['ita'] is None else f"{r['ita']:.1f}"
      writer.writerow([_cell(r['file']), r['uncertain'],
                       '' if r['unfamiliar'] is None else r['unfamiliar'],
                       quality_note(r), r['skin_tone'] or '', ita] + [
          v for name, p in r['differential']
          for v in (_cell(name), f'{p:.6f}')])


def table(rows, threshold) -> str:
  """One line per photo, then what the flags mean here."""
  width = max(len(os.path.basename(r['file'])) for r in rows)
  lines = []
  for r in rows:
    ranked = '  '.join(f'{name} {p:.3f}' for name, p in r['differential'])
    flags = ''.join(f'  {name.upper()}' for name in ('uncertain', 'unfamiliar')
                    if r[name])
    if r.get('quality') and r['quality']['flagged']:
      flags += f"  QUALITY: {r['quality']['message']}"
    tone = (f"  [skin tone: {r['skin_tone'].replace('_', ' ')}]"
            if r['skin_tone'] else '')
    lines.append(f"{os.path.basename(r['file']):<{width}}  {ranked}{tone}"
                 f"{flags}")
  rule = ('no threshold reached the validation target: all uncertain'
          if threshold is None else f'top probability < {threshold:.3f}')
  lines += ['', f'uncertain = {rule}. unfamiliar = the photo is unlike the '
            'training photos (another condition, modality or not skin): its '
            'probabilities mean little. QUALITY = the photo is blurred, too '
            'dark or bright, or shows no skin like the training photos\'; '
            'retake it. Skin tone is the ITA group measured '
            'on the photo. Probabilities are calibrated on validation; a '
            'ranked differential, not a diagnosis.']
  return '\n'.join(lines)
