"""report.md: the metrics, tables and figures of one evaluation, together."""

import os


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
