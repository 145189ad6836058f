"""The report of one evaluation: report.md (metrics, tables, figures) and the
summary printed to the terminal."""

import os

import numpy as np


def _fmt(value) -> str:
  return 'n/a' if value is None else f'{value:.4f}'


def _table(header, rows) -> list:
  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '|'.join(['---'] * len(header)) + '|']
  return lines + ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]


def markdown(metrics: dict, class_names, figures: dict, source: dict) -> str:
  """The report; `figures` are paths beside it, `source` says what was
  evaluated (split or image folder, checkpoint, configuration)."""
  lines = [f"# Evaluation: {source['name']}", '',
           ', '.join(f'{k} `{v}`' for k, v in source.items()
                     if k != 'name'), '',
           'The model ranks differentials with calibrated probabilities to '
           'support a clinician; it does not make a diagnosis.', '',
           '## Summary', '']
  lines += _table(['metric', 'value'], [
      ['examples', metrics['num_examples']],
      ['top-1 accuracy', _fmt(metrics['top1'])],
      ['top-3 accuracy', _fmt(metrics['top3'])],
      ['balanced accuracy', _fmt(metrics['balanced_accuracy'])],
      ['macro F1', _fmt(metrics['macro_f1'])],
      ['macro ROC-AUC (one-vs-rest)', _fmt(metrics['macro_roc_auc'])]])
  c = metrics['calibration']
  lines += ['', '## Calibration', '',
            f"Temperature {c['temperature']:.3f}, fitted on validation by "
            'minimising NLL.', '']
  lines += _table(['', 'uncalibrated', 'calibrated'], [
      ['ECE (top label)', _fmt(c['ece_before']), _fmt(c['ece_after'])],
      ['NLL', _fmt(c['nll_before']), _fmt(c['nll_after'])]])
  s = metrics['selective']
  lines += ['', '## Selective prediction', '']
  if s['threshold'] is None:
    lines.append(f"No confidence threshold keeps the validation error at or "
                 f"below {s['max_risk']:.2f}: every prediction is flagged "
                 'uncertain.')
  else:
    lines.append(
        f"Predictions with calibrated confidence >= {s['threshold']:.4f} are "
        f"answered, the rest flagged uncertain: on validation this keeps the "
        f"error <= {s['max_risk']:.2f} at coverage "
        f"{s['validation_coverage']:.4f}. Here: coverage {s['coverage']:.4f},"
        f" error {_fmt(s['risk'])}. Area under the risk-coverage curve "
        f"{s['area_under_risk_coverage']:.4f}.")
  if 'tta' in metrics:
    single = metrics['tta']['single_view']
    lines += ['', f"## Test-time augmentation ({metrics['tta']['mode']})", '']
    lines += _table(['metric', 'single view', 'with TTA'], [
        [k, _fmt(single[k]), _fmt(metrics[k])] for k in
        ('top1', 'balanced_accuracy', 'macro_f1', 'macro_roc_auc', 'nll',
         'ece')])
  lines += _unfamiliar_markdown(metrics)
  if 'quality' in metrics:
    lines += ['', '## Quality gate', '', _quality_line(metrics['quality'])
              + '. A flagged photo is blurred, too dark or bright, or shows '
              'no skin like the training photos (skinjax/inference/'
              'quality.py); it is still scored.']
  lines += _skin_tone_markdown(metrics)
  lines += ['', '## Per class', '']
  lines += _table(
      ['class', 'precision', 'recall', 'F1', 'ROC-AUC', 'support'],
      [[n] + [_fmt(metrics['per_class'][n][k])
              for k in ('precision', 'recall', 'f1', 'roc_auc')] +
       [metrics['per_class'][n]['support']] for n in class_names])
  if 'image_dir' in metrics:
    d = metrics['image_dir']
    lines += ['', '## Image folder', '',
              f"{d['num_examples']} photos from `{d['image_dir']}`; folders "
              f"matched: {', '.join(f'{k} -> {v}' for k, v in d['folders'].items())}."]
    if d['unmatched_folders']:
      lines.append('Skipped folders with no matching class: ' + ', '.join(
          f'{k} ({v} files)' for k, v in d['unmatched_folders'].items()) + '.')
    if d['skipped']:
      lines.append(f"Unreadable files skipped: {len(d['skipped'])} (listed in "
                   'metrics.json).')
  lines += ['', '## Figures', '']
  for name, path in figures.items():
    lines += [f"![{name.replace('_', ' ')}]({os.path.basename(path)})", '']
  return '\n'.join(lines)


def _quality_line(q: dict) -> str:
  """The quality gate's share flagged, by reason, and what it is worth."""
  reasons = ', '.join(f'{r} {share:.4f}' for r, share in q['by_reason'].items()
                      if share)
  line = (f"quality gate: flags {q['flagged']:.4f} of these photos"
          + (f' ({reasons})' if reasons else '')
          + f"; top-1 {_fmt(q['accuracy_passed'])} on those it passes, "
          f"{_fmt(q['accuracy_flagged'])} on those it flags")
  tones = ', '.join(f"{group} {entry['flagged']:.3f}"
                    for group, entry in q['by_skin_tone'].items())
  if tones:
    line += f'; flagged by skin tone: {tones}'
  if q['not_measured']:
    line += f" ({', '.join(q['not_measured'])} not measured)"
  return line


def _unfamiliar_markdown(metrics: dict) -> list:
  if 'unfamiliar' not in metrics:
    return []
  u = metrics['unfamiliar']
  lines = ['', '## Unfamiliar photos', '',
           f"A photo is flagged unfamiliar (unlike the training photos: "
           f"another condition, modality, or not skin) when its "
           f"`{u['score']}` score exceeds {u['threshold']:.4g}, which "
           f"{u['validation_tpr']:.0%} of validation photos stay under. "
           f"Flagged here: {u['flagged']:.4f}."]
  if 'shift' in u:
    d = u['shift']
    lines += ['', '### Distance from the training distribution', '',
              f"Flagged here {d['flagged']:.4f} against "
              f"{d['expected_flagged']:.4f} on validation (binomial tail "
              f"p = {d['p_value']:.2g}). How well each score tells these "
              'photos from the validation photos (AUROC 0.5: alike):', '']
    lines += _table(['score', 'AUROC vs validation'], [
        [name, _fmt(s['auroc'])] for name, s in d['scores'].items()])
    if d['warning']:
      lines += ['', f"**Warning:** {d['warning']}"]
  for key in ('ood', 'held_out'):
    if key not in metrics:
      continue
    o = metrics[key]
    what = (f"`{o['image_dir']}`" if key == 'ood' else
            f"the {o['split']} photos of the classes held out of training "
            f"({', '.join(o['classes'])})")
    lines += ['', f'### Photos the model was not trained on: {what}', '',
              f"{o['num_examples']} photos, of which the flag catches "
              f"{o['flagged']:.4f}. How well each score tells them from the "
              'photos evaluated above (AUROC 0.5: not at all; FPR: the share '
              'of them passing as familiar when '
              f"{u['validation_tpr']:.0%} of the evaluated photos do):", '']
    lines += _table(['score', 'AUROC', 'FPR at 95% TPR'], [
        [name, _fmt(s['auroc']), _fmt(s['fpr_at_tpr'])]
        for name, s in o['scores'].items()])
  return lines


def _with_interval(entry: dict, metric: str) -> str:
  value, interval = entry[metric], (entry['interval'] or {}).get(metric)
  if value is None or not interval:
    return _fmt(value)
  return f'{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]'


def _skin_tone_markdown(metrics: dict) -> list:
  if 'skin_tone' not in metrics:
    return []
  t = metrics['skin_tone']
  names = ('top1', 'balanced_accuracy', 'macro_f1', 'macro_roc_auc', 'ece')
  lines = ['', '## By skin tone', '',
           'Skin tone is the ITA group measured on each photo (skin around '
           'the lesion), not a clinician\'s Fitzpatrick type. Brackets: '
           f"{t['level']:.0%} bootstrap intervals ({t['resamples']} "
           f"resamples), given for groups of at least {t['min_support']} "
           f"photos. Tone not measurable: {t['unknown']} photos.", '']
  lines += _table(['group', 'photos'] + list(names), [
      [g.replace('_', ' '), e['support']] + [_with_interval(e, m)
                                             for m in names]
      for g, e in t['groups'].items()])
  if t['gap']:
    lines += ['', 'Gap between the best and the worst group: ' + '; '.join(
        f"{m} {gap['difference']:.3f} ({gap['best']} vs {gap['worst']})"
        for m, gap in t['gap'].items()) + '.']
  if 'estimate_vs_drawn' in t:
    e = t['estimate_vs_drawn']
    lines += ['', f"Estimated ITA against the skin tone the dataset drew: "
              f"Pearson r {e['pearson_r']:.3f}, mean difference "
              f"{e['mean_difference']:+.1f} degrees, same group "
              f"{e['group_agreement']:.2f}."]
  return lines


def text(metrics: dict, class_names) -> str:
  """The terminal summary: headline metrics, chance levels, per-class table
  and confusion matrix."""
  counts = np.asarray(metrics['confusion_matrix'])
  majority = counts.sum(axis=1).max() / max(counts.sum(), 1)
  # Balanced accuracy averages recall over the classes present, so chance
  # is one over their number.
  present = int(np.count_nonzero(counts.sum(axis=1)))
  lines = [
      f"{metrics['num_examples']} examples   top1 {metrics['top1']:.4f}   "
      f"top3 {_fmt(metrics['top3'])}   balanced_accuracy "
      f"{metrics['balanced_accuracy']:.4f}   macro_f1 {metrics['macro_f1']:.4f}"
      f"   nll {metrics['nll']:.4f}",
      *_calibration_lines(metrics),
      f'chance: top1 {majority:.4f} (majority class), balanced_accuracy '
      f'{1 / max(present, 1):.4f} (1/{present} classes present)',
      '',
  ]
  width = max(len(name) for name in class_names)
  lines.append(f"{'class':<{width}}  precision  recall     f1  roc_auc  "
               'support')
  for name in class_names:
    c = metrics['per_class'][name]
    auc = '    n/a' if c['roc_auc'] is None else f"{c['roc_auc']:7.4f}"
    lines.append(f"{name:<{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  "
                 f"{c['f1']:.4f}  {auc}  {c['support']:7d}")
  lines += ['', 'confusion matrix (rows: true class, columns: predicted, in '
            'class order above)']
  lines += ['  '.join(f'{n:5d}' for n in row) for row in counts]
  return '\n'.join(lines)


def _calibration_lines(metrics: dict) -> list:
  lines = []
  if metrics.get('macro_roc_auc') is not None:
    lines.append(f"macro ROC-AUC {metrics['macro_roc_auc']:.4f}")
  if 'calibration' in metrics:
    c = metrics['calibration']
    lines.append(
        f"calibration: temperature {c['temperature']:.3f}; ECE "
        f"{c['ece_before']:.4f} -> {c['ece_after']:.4f}; NLL "
        f"{c['nll_before']:.4f} -> {c['nll_after']:.4f}")
  if 'selective' in metrics:
    s = metrics['selective']
    if s['threshold'] is None:
      lines.append(f"selective: no threshold keeps validation error <= "
                   f"{s['max_risk']:.2f}; every prediction is 'uncertain'")
    else:
      risk = 'n/a' if s['risk'] is None else f"{s['risk']:.4f}"
      lines.append(
          f"selective: confidence >= {s['threshold']:.4f} keeps validation "
          f"error <= {s['max_risk']:.2f} at coverage "
          f"{s['validation_coverage']:.4f}; here coverage {s['coverage']:.4f}"
          f", error {risk}")
  if 'unfamiliar' in metrics:
    u = metrics['unfamiliar']
    lines.append(f"unfamiliar: {u['score']} > {u['threshold']:.4g} flags "
                 f"{u['flagged']:.4f} of these photos (validation: "
                 f"{1 - u['validation_tpr']:.4f}); AUROC against validation "
                 + ', '.join(f"{name} {_fmt(s['auroc'])}" for name, s in
                             u['shift']['scores'].items()))
  for key in ('ood', 'held_out'):
    if key in metrics:
      o = metrics[key]
      lines.append(f"{key.replace('_', '-')} photos ({o['num_examples']}, "
                   f"flagged {o['flagged']:.4f}): " + ', '.join(
                       f"{name} AUROC {_fmt(s['auroc'])} FPR@95 "
                       f"{_fmt(s['fpr_at_tpr'])}"
                       for name, s in o['scores'].items()))
  if 'quality' in metrics:
    lines.append(_quality_line(metrics['quality']))
  if metrics.get('skin_tone', {}).get('groups'):
    t = metrics['skin_tone']
    lines.append('by skin tone (ITA group: photos, balanced accuracy): '
                 + ', '.join(f"{g} {e['support']} {e['balanced_accuracy']:.3f}"
                             for g, e in t['groups'].items()))
    if 'balanced_accuracy' in t['gap']:
      gap = t['gap']['balanced_accuracy']
      lines.append(f"skin tone gap in balanced accuracy {gap['difference']:.3f}"
                   f" ({gap['best']} vs {gap['worst']})")
  if 'tta' in metrics:
    t = metrics['tta']['single_view']
    lines.append(f"test-time augmentation ({metrics['tta']['mode']}): top1 "
                 f"{t['top1']:.4f} -> {metrics['top1']:.4f}, balanced "
                 f"accuracy {t['balanced_accuracy']:.4f} -> "
                 f"{metrics['balanced_accuracy']:.4f}, NLL {t['nll']:.4f} -> "
                 f"{metrics['nll']:.4f}")
  return lines
