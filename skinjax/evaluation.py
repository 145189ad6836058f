"""Evaluation of a state on a whole split, shared by training and evaluate.py."""

import jax
import numpy as np

from skinjax import metrics as metrics_lib
from skinjax import sharding


def predict(eval_step_fn, state, dataset, mesh):
  """Logits and labels of every real (unmasked) example of `dataset`."""
  outputs = [eval_step_fn(state, sharding.shard_batch(batch, mesh))
             for batch in dataset]  # dispatched asynchronously, fetched once
  outputs = jax.device_get(outputs)
  keep = [o['mask'] for o in outputs]
  logits = np.concatenate([o['logits'][m] for o, m in zip(outputs, keep)])
  labels = np.concatenate([o['label'][m] for o, m in zip(outputs, keep)])
  return logits, labels


def evaluate_split(eval_step_fn, state, dataset, mesh, class_names) -> dict:
  logits, labels = predict(eval_step_fn, state, dataset, mesh)
  return metrics_lib.classification_metrics(logits, labels, class_names)


def format_report(metrics: dict, class_names) -> str:
  """Human-readable summary, per-class table and confusion matrix."""
  counts = np.asarray(metrics['confusion_matrix'])
  majority = counts.sum(axis=1).max() / max(counts.sum(), 1)
  lines = [
      f"{metrics['num_examples']} examples   top1 {metrics['top1']:.4f}   "
      f"top3 {metrics['top3']:.4f}   balanced_accuracy "
      f"{metrics['balanced_accuracy']:.4f}   macro_f1 {metrics['macro_f1']:.4f}"
      f"   nll {metrics['nll']:.4f}",
      f'chance: top1 {majority:.4f} (majority class), balanced_accuracy '
      f'{1 / len(class_names):.4f} (1/{len(class_names)} classes)',
      '',
  ]
  width = max(len(name) for name in class_names)
  lines.append(f"{'class':<{width}}  precision  recall     f1  support")
  for name in class_names:
    c = metrics['per_class'][name]
    lines.append(f"{name:<{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  "
                 f"{c['f1']:.4f}  {c['support']:7d}")
  lines += ['', 'confusion matrix (rows: true class, columns: predicted, in '
            'class order above)']
  lines += ['  '.join(f'{n:5d}' for n in row) for row in counts]
  return '\n'.join(lines)
