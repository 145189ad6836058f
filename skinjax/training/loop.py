"""The training loop: resume or start, train, validate, checkpoint, log.

WORKDIR receives checkpoints/ (Orbax), metrics.jsonl, config.json,
class_names.json (with them, scoring needs no dataset), environment.json
(what each start ran on) and the W&B run files; WORKDIR/lock keeps a second
run out while this one trains. A resume must keep the config of the run
(run_config.resume_changes) but for the keys it is explicitly allowed to
change. Validation runs every
config.eval_every_steps and before every checkpoint, so each checkpoint is
ranked by config.best_metric.

SIGTERM or SIGINT stops at the end of the current step with a checkpoint. A
non-finite loss raises NonFiniteLoss with nothing saved (unless
config.skip_nonfinite_steps), and a checkpoint that cannot be written raises
checkpoints.SaveError; earlier checkpoints are left as they were.
"""

import contextlib
import os
import sys

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from skinjax import data
from skinjax import errors
from skinjax import models
from skinjax import progress as progress_lib
from skinjax.data import pipeline
from skinjax.evaluation import calibrate
from skinjax.evaluation import metrics as metrics_lib
from skinjax.inference import forward
from skinjax.inference import restore
from skinjax.parallel import sharding
from skinjax.run_folder import checkpoint_folder
from skinjax.run_folder import class_names as class_names_lib
from skinjax.run_folder import environment
from skinjax.run_folder import lock
from skinjax.run_folder import run_config
from skinjax.run_folder import tracking
from skinjax.training import bookkeeping
from skinjax.training import checkpoints
from skinjax.training import frozen_features
from skinjax.training import loss
from skinjax.training import optimizer
from skinjax.training import preemption
from skinjax.training import state as state_lib
from skinjax.training import step as step_lib


def _check_best_metric(best_metric: str, num_classes: int) -> None:
  k = metrics_lib.top_k_of(best_metric)
  if k is not None and k >= num_classes:
    raise errors.ConfigError(
        f'config.best_metric={best_metric!r}: the dataset has {num_classes} '
        'classes, so it is always 1 and cannot rank checkpoints')


class NonFiniteLoss(errors.UserError):
  """The loss was NaN or Inf; the message says where and what to change."""


def train_and_evaluate(config, workdir: str, allow_change=()) -> dict:
  """Trains to config.num_train_steps; returns the last validation metrics
  ({} when stopped early by a signal). `allow_change`: config keys a resume
  may change although the run would not continue exactly."""
  os.makedirs(workdir, exist_ok=True)
  with contextlib.ExitStack() as stack:
    _hold_run_folder(stack, workdir)
    return _train(config, workdir, allow_change, stack)


def _hold_run_folder(stack, workdir: str) -> None:
  """Process 0 takes WORKDIR/lock for the run; every process raises
  RunFolderLocked if it could not."""
  message = ''
  if jax.process_index() == 0:
    try:
      stack.enter_context(lock.hold(workdir))
    except lock.RunFolderLocked as e:
      message = str(e)
  if jax.process_count() > 1:
    refused = multihost_utils.process_allgather(np.asarray(bool(message)))
    if refused[0] and not message:
      message = f'process 0 found {workdir} in use by another run'
  if message:
    raise lock.RunFolderLocked(message)


def _resume_changes(config, workdir: str, allow_change) -> dict:
  """The config changes of a resume (refused ones raise ConfigDrift); {} for
  a new run."""
  folder = checkpoint_folder.checkpoint_dir(workdir)
  has_checkpoints = os.path.isdir(folder) and any(
      name.isdigit() for name in os.listdir(folder))
  if not has_checkpoints:
    return {}
  if not os.path.exists(os.path.join(workdir, run_config.CONFIG_FILE)):
    logging.warning('%s has checkpoints but no %s: the config of the resumed '
                    'run cannot be checked.', workdir, run_config.CONFIG_FILE)
    return {}
  return run_config.resume_changes(workdir, config, allow_change)


def _train(config, workdir: str, allow_change, stack) -> dict:
  mesh = sharding.create_mesh()
  is_primary = jax.process_index() == 0
  changes = _resume_changes(config, workdir, allow_change)
  builder, class_names, train_source, class_weights, eval_data = _data(config)
  model = models.create_model(config.model, len(class_names))
  tx, schedule = optimizer.from_config(config)
  manager = checkpoint_folder.create_manager(workdir, config.keep_checkpoints,
                                       config.best_metric)
  latest, state = _restore_or_start(config, manager, model, tx, mesh)
  start_step = int(jax.device_get(state.step))
  train_batches = _train_batches(config, train_source, start_step, mesh,
                                 stack)
  entry = None
  if is_primary:
    entry = _record_run_folder(config, workdir, class_names, start_step,
                               changes if latest is not None else {})
  writer = tracking.MetricWriter(workdir, config.wandb, config.to_dict(),
                                 start_step, active=is_primary,
                                 environment=entry)
  validation, cached = {}, None
  if latest is None and config.frozen_features.enabled:
    cached = frozen_features.fit_head(config, workdir, builder, class_names,
                                      model, state, tx, mesh)
    state, validation = cached.state, cached.validation
    writer.write(0, cached.record)
    checkpoints.save(manager, state, metrics={
        k: validation[k] for k in metrics_lib.CHECKPOINT_METRICS
        if validation[k] is not None})
  train_steps = _compiled_steps(config, mesh, model, tx, step_lib.StepOptions
                                .from_config(config, schedule, class_weights))
  eval_step = forward.jit_eval_step(mesh, model=model)
  last_step = config.num_train_steps
  progress = progress_lib.bar(total=last_step, initial=start_step,
                              unit='step', desc='training',
                              active=is_primary)
  validate = lambda state, step: _validate(
      state, eval_step, eval_data, mesh, class_names, writer, step, progress)
  stopped = False
  # From here on, SIGTERM and SIGINT wait for the end of a step.
  stop_requested = stack.enter_context(preemption.handlers())
  pace = bookkeeping.Pace()
  unchecked = []  # (step, metrics) whose finiteness was not looked at yet
  compiled = set()  # (frozen stages, batch shape) of the steps run so far
  for step in range(start_step + 1, last_step + 1):
    batch = pace.next_batch(train_batches)
    program = (step_lib.frozen_stages(config.model, step), batch['image'].shape)
    state, metrics = train_steps[program[0]](state, batch)
    pace.metrics.append(metrics)
    unchecked.append((step, metrics))
    if program not in compiled:  # a first step, or the first at a new size
      compiled.add(program)
      jax.block_until_ready(state)
      writer.write(step, {'perf/first_step_seconds': pace.compiled()})
    progress.update()
    stopped = stop_requested(step) and step < last_step
    log_due, checkpoint_due, eval_due = bookkeeping.due(config, step,
                                                        last_step, stopped)
    if log_due or checkpoint_due or eval_due or stopped:
      # Never log, evaluate or save past a non-finite step unnoticed.
      _check_finite(config, unchecked, manager, writer)
      unchecked = []
    if log_due:
      summary = pace.summary(config.batch_size)
      writer.write(step, summary)
      progress.set_postfix(loss=f"{summary['train/loss']:.3f}",
                           acc=f"{summary['train/accuracy']:.3f}",
                           img_s=f"{summary['perf/images_per_second']:.0f}")
    if eval_due:
      jax.block_until_ready(state)
      with pace.paused():
        validation = validate(state, step)
        if checkpoint_due:
          checkpoints.save(manager, state, metrics={
              k: validation[k] for k in metrics_lib.CHECKPOINT_METRICS
              if validation[k] is not None})
    if stopped:
      checkpoints.save(manager, state)
      writer.write(step, {})  # the wall time at the checkpoint, for a resume
      break
  progress.close()
  checkpoints.wait_until_finished(manager)
  manager.close()
  writer.close()
  if stopped:
    print(f'Stopped at step {step} of {last_step}; checkpoint saved in '
          f'{manager.directory}. Run the same command to resume.', flush=True)
    return {}
  if config.evaluation.calibrate_after_training:
    # The cache serves when the weights are still those the head was
    # fitted with: no step after it.
    _calibrate_best(config, workdir, builder,
                    cached if cached and last_step == 0 else None)
  if start_step >= last_step and cached is None:
    print(f'Training already complete: step {start_step} of {last_step}.')
  return validation


def _train_batches(config, train_source, start_step: int, mesh, stack):
  """The run's batches from global batch `start_step` on, copied to the
  devices ahead of the step; their workers stop with `stack`."""
  train_iter = pipeline.train_batches(train_source, config,
                                      jax.process_index(),
                                      jax.process_count(), start_step)
  stack.callback(train_iter.close)  # stops its worker processes
  return sharding.device_batches(train_iter, mesh,
                                 config.input.device_prefetch)


def _compiled_steps(config, mesh, model, tx, options) -> dict:
  """{frozen stages: the compiled train step}: one with the configured
  stages frozen (model.frozen_stages), one without."""
  return {n: step_lib.jit_train_step(mesh, model.clone(frozen_stages=n), tx,
                                     options)
          for n in {0, config.model.frozen_stages}}


def _data(config) -> tuple:
  """(builder, class names, training source, class weights or None, the
  validation batches) of the run's dataset, prepared on first use."""
  builder = data.load_builder(config.dataset, config.dataset.reprepare)
  held_out = config.dataset.held_out_classes
  class_names = pipeline.class_names(builder, held_out)
  _check_best_metric(config.best_metric, len(class_names))
  train_source = pipeline.data_source(builder, config.dataset.train_split,
                                      held_out)
  pipeline.check_train_split(train_source, config.batch_size)
  class_weights = None
  if config.class_balance == 'loss_weights':
    class_weights = loss.balanced_class_weights(
        pipeline.read_labels(train_source), len(class_names))
  eval_data = pipeline.eval_dataset(
      pipeline.data_source(builder, config.dataset.eval_split, held_out),
      config, jax.process_index(), jax.process_count())
  return builder, class_names, train_source, class_weights, eval_data


def _restore_or_start(config, manager, model, tx, mesh) -> tuple:
  """(the step restored or None, the state): the newest readable
  checkpoint, else the initial state."""
  latest, state = checkpoints.restore_latest(
      manager, state_lib.abstract_train_state(
          model, tx, config.image_size, sharding.replicated(mesh),
          config.ema_decay > 0))
  if latest is None:
    state = state_lib.initial_state(config, model, tx, mesh)
    if config.model.init_from:
      print(f'Starting from {config.model.init_from} weights.', flush=True)
  else:
    print(f'Resuming from checkpoint step {latest} '
          f'({manager.directory / str(latest)}).', flush=True)
  return latest, state


def _record_run_folder(config, workdir: str, class_names, start_step: int,
                       changes: dict) -> dict:
  """config.json (with what this resume changed, recorded and printed),
  class_names.json, and this start's entry of environment.json, which it
  returns."""
  if changes:
    run_config.record_changes(workdir, start_step, changes)
    for key, (old, new) in changes.items():
      print(f'Resuming with config.{key}: {old!r} -> {new!r}.', flush=True)
  run_config.write(config, workdir)
  class_names_lib.write(workdir, class_names)
  return environment.record(workdir, start_step)


def _check_finite(config, unchecked, manager, writer) -> None:
  """Raises NonFiniteLoss at the first of `unchecked` steps whose update was
  withheld, unless config.skip_nonfinite_steps (then they are logged)."""
  skipped = bookkeeping.nonfinite_steps(unchecked)
  if skipped and not config.skip_nonfinite_steps:
    checkpoints.wait_until_finished(manager)
    writer.close()
    raise NonFiniteLoss(bookkeeping.nonfinite_message(
        config, *skipped[0], manager.latest_step()))
  if skipped:
    logging.warning('Non-finite loss at steps %s: those updates were '
                    'skipped.', [s for s, _ in skipped])


def _calibrate_best(config, workdir: str, builder, cached=None) -> None:
  """The calibration of the checkpoint scoring uses by default (raw weights,
  and their moving average if kept), fitted now unless already saved, on
  the frozen-feature path's `cached` features when given. A diverged
  checkpoint is left uncalibrated with a warning: training itself did what
  it was asked."""
  for weights in ('raw', 'ema') if config.ema_decay else ('raw',):
    try:
      checkpoint = restore.restore(config, workdir, 'best', weights)
      calibrate.calibrated(
          config, workdir, checkpoint, lambda: builder,
          outputs=cached and frozen_features.cached_outputs(
              cached, checkpoint.state.params))
    except calibrate.NotCalibratable as e:
      if jax.process_index() == 0:
        print(f'warning: {e}', file=sys.stderr, flush=True)


def _validate(state, eval_step, eval_data, mesh, class_names, writer, step,
              progress) -> dict:
  """Validates the raw weights and, if kept, their moving average; logs both
  and returns the raw weights' metrics."""
  keys = metrics_lib.CHECKPOINT_METRICS + ('nll',)
  validation = metrics_lib.evaluate_split(eval_step, state, eval_data, mesh,
                                          class_names)
  record = {f'val/{k}': validation[k] for k in keys
            if validation[k] is not None}
  line = (f"step {step}: validation top1 {validation['top1']:.4f}, balanced "
          f"accuracy {validation['balanced_accuracy']:.4f}, macro F1 "
          f"{validation['macro_f1']:.4f} ({validation['num_examples']} "
          'examples)')
  if state.ema is not None:
    with_ema = metrics_lib.evaluate_split(
        eval_step, state_lib.ema_weights(state), eval_data, mesh, class_names)
    record.update({f'val_ema/{k}': with_ema[k] for k in keys
                   if with_ema[k] is not None})
    line += f"; EMA weights top1 {with_ema['top1']:.4f}"
  writer.write(step, record)
  progress.write(line)
  return validation
