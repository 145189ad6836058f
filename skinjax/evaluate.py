r"""Evaluates a checkpoint on one split of the dataset.

  python -m skinjax.evaluate --config configs/synthetic.py \
      --workdir runs/synthetic --split test [--checkpoint latest|best|STEP]

Prints a table, writes WORKDIR/eval/<split>/metrics.json and logs the same
to the run's W&B run. Pass the same --config (and --config.* overrides) that
trained the checkpoint.
"""

import json
import os
import sys

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import wandb

from skinjax import checkpointing
from skinjax import config_lib
from skinjax import data
from skinjax import evaluation
from skinjax import models
from skinjax import optim
from skinjax import sharding
from skinjax import steps
from skinjax import tracking
from skinjax import train_state
from skinjax.data import pipeline

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file the checkpoint was trained with.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Training run folder holding checkpoints/.')
_SPLIT = flags.DEFINE_string('split', 'test', 'Dataset split to evaluate.')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', 'latest',
    "'latest', 'best' (by validation config.best_metric) or a step number.")


def _select_step(manager, which: str) -> int:
  if which == 'latest':
    step = manager.latest_step()
  elif which == 'best':
    step = manager.best_step()
  elif which.isdigit():
    step = int(which) if int(which) in manager.all_steps() else None
  else:
    raise app.UsageError(f"--checkpoint={which}: use 'latest', 'best' or a step")
  if step is None:
    sys.exit(f'error: no checkpoint {which!r} in {manager.directory} '
             f'(saved steps: {list(manager.all_steps())})')
  return step


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  config_lib.exit_if_invalid(config)
  workdir = _WORKDIR.value
  mesh = sharding.create_mesh()

  builder = data.load_builder(config.dataset)
  class_names = builder.info.features['label'].names
  dataset = pipeline.eval_dataset(
      pipeline.data_source(builder, _SPLIT.value), config,
      jax.process_index(), jax.process_count())

  model = models.create_model(config.model, len(class_names))
  tx = optim.create_optimizer(config.optimizer, config.num_train_steps)
  abstract_state = train_state.abstract_train_state(
      model, tx, config.image_size, sharding.replicated(mesh))
  manager = checkpointing.create_manager(
      workdir, config.keep_checkpoints, config.best_metric, read_only=True)
  step = _select_step(manager, _CHECKPOINT.value)
  state = checkpointing.restore(manager, step, abstract_state)

  eval_step_fn = steps.jit_eval_step(mesh, model=model)
  metrics = evaluation.evaluate_split(eval_step_fn, state, dataset, mesh,
                                       class_names)
  metrics.update(split=_SPLIT.value, checkpoint_step=step,
                 class_names=list(class_names))
  if jax.process_index() != 0:
    return

  out_dir = os.path.join(workdir, 'eval', _SPLIT.value)
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, 'metrics.json'), 'w') as f:
    json.dump(metrics, f, indent=2)
  print(f'\nsplit {_SPLIT.value!r}, checkpoint step {step}')
  print(evaluation.format_report(metrics, class_names))
  print(f'\nwritten to {out_dir}/metrics.json')
  _log_to_wandb(config, workdir, metrics, class_names)


def _log_to_wandb(config, workdir, metrics, class_names):
  run = tracking.init_wandb(config.wandb, workdir, config.to_dict())
  if run is None:
    return
  split = metrics['split']
  scalars = {f'{split}/{k}': metrics[k] for k in config_lib.BEST_METRICS +
             ('nll', 'num_examples')}
  run.log({'step': metrics['checkpoint_step'], **scalars})
  run.summary.update(scalars)
  per_class = wandb.Table(
      columns=['class', 'precision', 'recall', 'f1', 'support'],
      data=[[n] + [metrics['per_class'][n][k] for k in
                   ('precision', 'recall', 'f1', 'support')]
            for n in class_names])
  confusion = wandb.Table(columns=['true'] + list(class_names),
                          data=[[n] + row for n, row in
                                zip(class_names, metrics['confusion_matrix'])])
  run.log({f'{split}/per_class': per_class, f'{split}/confusion_matrix':
           confusion, 'step': metrics['checkpoint_step']})
  run.finish()


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main, flags_parser=config_lib.parse_flags)
