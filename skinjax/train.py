r"""Trains a classifier; re-running the same command resumes where it stopped.

  python -m skinjax.train --config configs/synthetic.py --workdir runs/synthetic \
      [--config.KEY=VALUE ...]

WORKDIR receives checkpoints/ (Orbax), metrics.jsonl, config.json and the
W&B run files. Validation runs every config.eval_every_steps and before every
checkpoint, so each checkpoint is ranked by config.best_metric.
"""

import functools
import json
import os
import sys
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np
import tqdm

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
from skinjax.models import transfer

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, e.g. configs/synthetic.py.', lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Run folder; an existing one is resumed.')


def _is_due(step: int, every: int, last_step: int) -> bool:
  return step % every == 0 or step == last_step


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains to config.num_train_steps; returns the last validation metrics."""
  os.makedirs(workdir, exist_ok=True)
  mesh = sharding.create_mesh()
  process_index, process_count = jax.process_index(), jax.process_count()
  is_primary = process_index == 0

  builder = data.load_builder(config.dataset)
  class_names = builder.info.features['label'].names
  train_source = pipeline.data_source(builder, config.dataset.train_split)
  train_iter = iter(pipeline.train_dataset(train_source, config, process_index,
                                           process_count))
  class_weights = None
  if config.class_balance == 'loss_weights':
    class_weights = steps.balanced_class_weights(
        pipeline.read_labels(train_source), len(class_names))
  eval_data = pipeline.eval_dataset(
      pipeline.data_source(builder, config.dataset.eval_split), config,
      process_index, process_count)

  model = models.create_model(config.model, len(class_names))
  learning_rate_fn = optim.learning_rate_schedule(config.optimizer,
                                                  config.num_train_steps)
  tx = optim.create_optimizer(config.optimizer, config.num_train_steps)
  replicated = sharding.replicated(mesh)

  manager = checkpointing.create_manager(workdir, config.keep_checkpoints,
                                         config.best_metric)
  latest = manager.latest_step()
  if latest is None:
    state = jax.jit(train_state.create_train_state, static_argnums=(1, 2, 3),
                    out_shardings=replicated)(
                        jax.random.PRNGKey(config.seed), model, tx,
                        config.image_size)
    if config.model.init_from:
      variables = transfer.initial_variables(
          config.model, {'params': state.params,
                         'batch_stats': state.batch_stats})
      state = jax.jit(functools.partial(train_state.with_variables, tx=tx),
                      out_shardings=replicated)(state, variables)
      print(f'Starting from {config.model.init_from} weights.', flush=True)
  else:
    print(f'Resuming from checkpoint step {latest} '
          f'({manager.directory / str(latest)}).', flush=True)
    state = checkpointing.restore(
        manager, latest,
        train_state.abstract_train_state(model, tx, config.image_size,
                                         replicated),
        train_iter)
  start_step = int(jax.device_get(state.step))

  if is_primary:
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config_lib.to_json(config))
  wandb_run = (tracking.init_wandb(config.wandb, workdir, config.to_dict())
               if is_primary else None)
  writer = tracking.MetricWriter(workdir, wandb_run, start_step,
                                 active=is_primary)

  train_step = steps.jit_train_step(
      mesh, model=model, tx=tx, learning_rate_fn=learning_rate_fn,
      label_smoothing=config.label_smoothing, class_weights=class_weights)
  eval_step = steps.jit_eval_step(mesh, model=model)
  last_step = config.num_train_steps
  progress = tqdm.tqdm(total=last_step, initial=start_step, unit='step',
                       disable=not is_primary, dynamic_ncols=True,
                       mininterval=1 if sys.stderr.isatty() else 30)
  validation = {}
  # Throughput covers train steps only: compile, evaluation and checkpoint
  # time inside a logging window is measured and left out.
  window, window_start, excluded, input_wait = [], time.perf_counter(), 0.0, 0.0
  for step in range(start_step + 1, last_step + 1):
    fetch_start = time.perf_counter()
    batch = sharding.shard_batch(next(train_iter), mesh)
    input_wait += time.perf_counter() - fetch_start
    state, metrics = train_step(state, batch)
    window.append(metrics)
    if step == start_step + 1:
      jax.block_until_ready(state)
      compile_seconds = time.perf_counter() - fetch_start
      excluded += compile_seconds
      writer.write(step, {'perf/first_step_seconds': compile_seconds})
    progress.update()

    if _is_due(step, config.log_every_steps, last_step):
      summary = _summarise(jax.device_get(window))
      elapsed = time.perf_counter() - window_start - excluded
      summary.update({
          'perf/step_time_ms': 1e3 * elapsed / len(window),
          'perf/images_per_second': config.batch_size * len(window) / elapsed,
          'perf/input_wait_fraction': input_wait / elapsed,
      })
      writer.write(step, summary)
      progress.set_postfix(loss=f"{summary['train/loss']:.3f}",
                           acc=f"{summary['train/accuracy']:.3f}",
                           img_s=f"{summary['perf/images_per_second']:.0f}")
      window, window_start, excluded, input_wait = [], time.perf_counter(), 0.0, 0.0

    checkpoint_due = _is_due(step, config.checkpoint_every_steps, last_step)
    if checkpoint_due or _is_due(step, config.eval_every_steps, last_step):
      jax.block_until_ready(state)
      pause_start = time.perf_counter()
      validation = evaluation.evaluate_split(eval_step, state, eval_data, mesh,
                                             class_names)
      writer.write(step, {f'val/{k}': validation[k] for k in
                          config_lib.BEST_METRICS + ('nll',)})
      progress.write(
          f"step {step}: validation top1 {validation['top1']:.4f}, balanced "
          f"accuracy {validation['balanced_accuracy']:.4f}, macro F1 "
          f"{validation['macro_f1']:.4f} ({validation['num_examples']} "
          'examples)')
      if checkpoint_due:
        checkpointing.save(manager, state, train_iter, metrics={
            k: validation[k] for k in config_lib.BEST_METRICS})
      excluded += time.perf_counter() - pause_start
  progress.close()
  manager.wait_until_finished()
  writer.close()
  if start_step >= last_step:
    print(f'Training already complete: step {start_step} of {last_step}.')
  return validation


def _summarise(window_metrics) -> dict:
  """Means over the steps since the last log; the last learning rate."""
  summary = {f'train/{k}': float(np.mean([m[k] for m in window_metrics]))
             for k in window_metrics[0] if k != 'learning_rate'}
  summary['train/learning_rate'] = float(window_metrics[-1]['learning_rate'])
  return summary


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  config_lib.exit_if_invalid(config)
  validation = train_and_evaluate(config, _WORKDIR.value)
  if validation:
    print(json.dumps({f'val/{k}': validation[k]
                      for k in config_lib.BEST_METRICS}, indent=2))


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main, flags_parser=config_lib.parse_flags)
