"""Evaluation of a state on a whole split, shared by training and evaluate.py."""

import jax
import numpy as np

from skinjax import metrics as metrics_lib
from skinjax import sharding


def predict(eval_step_fn, state, dataset, mesh) -> dict:
  """The eval step's outputs ('logits', 'label', ...) for every real
  (unmasked) example of `dataset`, in dataset order."""
  outputs = [eval_step_fn(state, sharding.shard_batch(batch, mesh))
             for batch in dataset]  # dispatched asynchronously, fetched once
  outputs = jax.device_get(outputs)
  return {key: np.concatenate([o[key][o['mask']] for o in outputs])
          for key in outputs[0] if key != 'mask'}


def evaluate_split(eval_step_fn, state, dataset, mesh, class_names) -> dict:
  outputs = predict(eval_step_fn, state, dataset, mesh)
  return metrics_lib.classification_metrics(outputs['logits'],
                                            outputs['label'], class_names)


def _downsample(curve: dict, points: int = 200) -> dict:
  """At most `points` of a risk-coverage curve, for metrics.json."""
  keep = np.unique(np.linspace(0, len(curve['coverage']) - 1,
                               points).round().astype(int))
  return {k: [v[i] for i in keep] for k, v in curve.items()}


def clinical_metrics(logits, labels, class_names, calibration,
                     num_bins: int, single_view_logits=None) -> dict:
  """classification_metrics of the calibrated logits, plus calibration
  before/after, selective prediction at calibration's threshold and, with
  test-time augmentation, the single-view scores it is compared with."""
  calibrated = logits / calibration.temperature
  result = metrics_lib.classification_metrics(calibrated, labels, class_names,
                                              num_bins)
  before, after = metrics_lib.softmax(logits), metrics_lib.softmax(calibrated)
  result['calibration'] = {
      'temperature': calibration.temperature,
      'nll_before': metrics_lib.negative_log_likelihood(logits, labels),
      'nll_after': result['nll'],
      'ece_before': metrics_lib.expected_calibration_error(before, labels,
                                                           num_bins),
      'ece_after': result['ece'],
      'reliability_before': metrics_lib.calibration_bins(before, labels,
                                                         num_bins),
      'reliability_after': metrics_lib.calibration_bins(after, labels,
                                                        num_bins),
  }
  confidence = after.max(axis=-1)
  curve = metrics_lib.risk_coverage(confidence, after.argmax(-1) == labels)
  accepted = (confidence >= calibration.threshold
              if calibration.threshold is not None
              else np.zeros(len(labels), bool))
  result['selective'] = {
      'max_risk': calibration.max_risk,
      'threshold': calibration.threshold,
      'validation_coverage': calibration.fitted_on['coverage'],
      'coverage': float(accepted.mean()),
      'risk': (float(np.mean(after.argmax(-1)[accepted] != labels[accepted]))
               if accepted.any() else None),
      'area_under_risk_coverage': metrics_lib.area_under_risk_coverage(curve),
      'curve': _downsample(curve),
  }
  if single_view_logits is not None:
    single = metrics_lib.classification_metrics(
        single_view_logits / calibration.temperature, labels, class_names,
        num_bins)
    result['tta'] = {'mode': calibration.tta, 'single_view': {
        k: single[k] for k in ('top1', 'top3', 'balanced_accuracy',
                               'macro_f1', 'macro_roc_auc', 'nll', 'ece')}}
  return result


def restrict_to_classes(logits, labels, class_names, keep):
  """Scores over the classes in `keep` only: their logits (so the softmax
  renormalises over them), labels renumbered. Every label must be kept."""
  keep = np.asarray(sorted(keep))
  new_index = np.full(len(class_names), -1)
  new_index[keep] = np.arange(len(keep))
  if (new_index[labels] < 0).any():
    raise ValueError('a label outside the kept classes')
  return (logits[:, keep], new_index[labels],
          [class_names[i] for i in keep])


def format_report(metrics: dict, class_names) -> str:
  """Human-readable summary, per-class table and confusion matrix."""
  counts = np.asarray(metrics['confusion_matrix'])
  majority = counts.sum(axis=1).max() / max(counts.sum(), 1)
  lines = [
      f"{metrics['num_examples']} examples   top1 {metrics['top1']:.4f}   "
      f"top3 {metrics['top3']:.4f}   balanced_accuracy "
      f"{metrics['balanced_accuracy']:.4f}   macro_f1 {metrics['macro_f1']:.4f}"
      f"   nll {metrics['nll']:.4f}",
      *_calibration_lines(metrics),
      f'chance: top1 {majority:.4f} (majority class), balanced_accuracy '
      f'{1 / len(class_names):.4f} (1/{len(class_names)} classes)',
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
  if 'tta' in metrics:
    t = metrics['tta']['single_view']
    lines.append(f"test-time augmentation ({metrics['tta']['mode']}): top1 "
                 f"{t['top1']:.4f} -> {metrics['top1']:.4f}, balanced "
                 f"accuracy {t['balanced_accuracy']:.4f} -> "
                 f"{metrics['balanced_accuracy']:.4f}, NLL {t['nll']:.4f} -> "
                 f"{metrics['nll']:.4f}")
  return lines
