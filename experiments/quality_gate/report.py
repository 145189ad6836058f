r"""The README's tables from measure.py's JSON files.

  python experiments/quality_gate/report.py \
      experiments/quality_gate/{synthetic,ham10000,dermnet}.json
"""

import json
import os
import sys


def _fmt(value, digits=3) -> str:
  return '-' if value is None else f'{value:.{digits}f}'


def no_skin_table(found: dict) -> list:
  lines = ['| dataset | test photos | everyday images | AUROC | test refused (no skin) | test flagged (any reason) | everyday flagged | whole photos missed | cat, rocket |',
           '|---|---|---|---|---|---|---|---|---|']
  for name, d in found.items():
    s = d['no_skin']
    pair = ', '.join(f"{k}: {'/'.join(v) or 'passed'}"
                     for k, v in s['cat_and_rocket'].items())
    lines.append(
        f"| {name} | {d['test_photos']} | {s['everyday_images']} | "
        f"{s['auroc']:.4f} | {s['test_refused']:.3f} | "
        f"{s['test_flagged_any_reason']:.3f} | {s['everyday_flagged']:.3f} "
        f"| {', '.join(s['whole_photos_missed']) or 'none'} | {pair} |")
  return lines


def graded_table(found: dict) -> list:
  lines = ['| degradation | ' + ' | '.join(
      f'{name}: flagged (main reason), measure AUROC, model bal. acc. passed / flagged'
      for name in found) + ' |', '|---|' + '---|' * len(found)]
  keys = [(g['degradation'], g['strength'])
          for g in next(iter(found.values()))['graded']]
  for kind, strength in [('original', None)] + keys:
    cells = []
    for d in found.values():
      per_set = d.get('model', {}).get('per_set', {})
      if kind == 'original':
        s = d['no_skin']
        cell = f"{s['test_flagged_any_reason']:.3f}"
        model = per_set.get('original')
      else:
        g = next(g for g in d['graded'] if (g['degradation'], g['strength'])
                 == (kind, strength))
        reason = max(g['by_reason'], key=g['by_reason'].get)
        auroc = next(v for k, v in g.items() if k.endswith('_auroc'))
        cell = f"{g['flagged']:.3f} ({reason}), {auroc:.3f}"
        model = per_set.get(f'{kind}_{strength}')
      if model:
        cell += (f", {_fmt(model.get('balanced_accuracy_passed'))} / "
                 f"{_fmt(model.get('balanced_accuracy_flagged'))}")
      cells.append(cell)
    label = 'none' if kind == 'original' else f'{kind} {strength}'
    lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
  return lines


def skin_tone_table(found: dict) -> list:
  groups = ('very_light', 'light', 'intermediate', 'tan', 'brown', 'dark',
            'unknown')
  lines = ['| dataset | ' + ' | '.join(groups) + ' |',
           '|---|' + '---|' * len(groups)]
  for name, d in found.items():
    tones = d['test_flagged_by_skin_tone']
    lines.append(f'| {name} | ' + ' | '.join(
        f"{tones[g]['flagged']:.3f} ({tones[g]['photos']})" if g in tones
        else '-' for g in groups) + ' |')
  return lines


def main(paths):
  found = {os.path.splitext(os.path.basename(p))[0]: json.load(open(p))
           for p in paths}
  for table in (no_skin_table, graded_table, skin_tone_table):
    print('\n'.join(table(found)) + '\n')


if __name__ == '__main__':
  main(sys.argv[1:])
