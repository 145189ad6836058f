"""Where an evaluation's results go: WORKDIR/eval/<name>/ (metrics.json,
figures, report.md) and the run's W&B run."""

import json
import os

import wandb

from skinjax.evaluation import metrics as metrics_lib
from skinjax.evaluation import plots
from skinjax.evaluation import report
from skinjax.evaluation import subgroups
from skinjax.run_folder import tracking


def write(metrics: dict, class_names, workdir: str, source: dict) -> tuple:
  """Writes eval/<metrics['split']>/; returns (folder, {figure: path}).
  `source` says what was evaluated, for the report's first line."""
  out_dir = os.path.join(workdir, 'eval', metrics['split'])
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, 'metrics.json'), 'w') as f:
    json.dump(metrics, f, indent=2)
  figures = plots.write_all(metrics, class_names, out_dir)
  with open(os.path.join(out_dir, 'report.md'), 'w') as f:
    f.write(report.markdown(metrics, class_names, figures, source))
  return out_dir, figures


def log_to_wandb(config, workdir: str, metrics: dict, class_names,
                 figures: dict) -> None:
  """Scalars, per-class and confusion tables and the figures, into the run's
  own W&B run (resumed by its id), at the checkpoint's step."""
  run = tracking.init_wandb(config.wandb, workdir, config.to_dict())
  if run is None:
    return
  split = metrics['split']
  calibration, selective = metrics['calibration'], metrics['selective']
  scalars = {f'{split}/{k}': metrics[k] for k in metrics_lib.CHECKPOINT_METRICS
             + ('nll', 'ece', 'macro_roc_auc', 'num_examples')
             if metrics[k] is not None}
  scalars.update({
      f'{split}/temperature': calibration['temperature'],
      f'{split}/ece_uncalibrated': calibration['ece_before'],
      f'{split}/nll_uncalibrated': calibration['nll_before'],
      f'{split}/selective_coverage': selective['coverage'],
      f'{split}/aurc': selective['area_under_risk_coverage']})
  if 'unfamiliar' in metrics:
    scalars[f'{split}/unfamiliar_flagged'] = metrics['unfamiliar']['flagged']
    for name, s in metrics['unfamiliar']['shift']['scores'].items():
      scalars[f'{split}/shift/{name}_auroc'] = s['auroc']
  if 'quality' in metrics:
    scalars[f'{split}/quality_flagged'] = metrics['quality']['flagged']
  for key in ('ood', 'held_out'):
    if key in metrics:
      scalars[f'{split}/{key}/flagged'] = metrics[key]['flagged']
      for name, s in metrics[key]['scores'].items():
        scalars.update({f'{split}/{key}/{name}_auroc': s['auroc'],
                        f'{split}/{key}/{name}_fpr_at_95tpr': s['fpr_at_tpr']})
  for group, entry in metrics.get('skin_tone', {}).get('groups', {}).items():
    scalars.update({f'{split}/skin_tone/{group}/{k}': entry[k] for k in
                    ('support',) + tuple(subgroups.STRATIFIED_METRICS)
                    if entry[k] is not None})
  for metric, gap in metrics.get('skin_tone', {}).get('gap', {}).items():
    scalars[f'{split}/skin_tone_gap/{metric}'] = gap['difference']
  run.log({'step': metrics['checkpoint_step'], **scalars})
  run.summary.update(scalars)
  per_class = wandb.Table(
      columns=['class', 'precision', 'recall', 'f1', 'roc_auc', 'support'],
      data=[[n] + [metrics['per_class'][n][k] for k in
                   ('precision', 'recall', 'f1', 'roc_auc', 'support')]
            for n in class_names])
  confusion = wandb.Table(columns=['true'] + list(class_names),
                          data=[[n] + row for n, row in
                                zip(class_names, metrics['confusion_matrix'])])
  run.log({f'{split}/per_class': per_class, f'{split}/confusion_matrix':
           confusion, **{f'{split}/{k}': wandb.Image(path)
                         for k, path in figures.items()},
           'step': metrics['checkpoint_step']})
  run.finish()
