"""The clinical scores of a split: calibrated metrics, calibration before and
after, selective prediction, and the single view beside test-time
augmentation."""

import numpy as np

from skinjax.evaluation import metrics as metrics_lib


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
