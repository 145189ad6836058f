"""What the training loop keeps track of beside the state: when to log,
validate and checkpoint; the throughput of its steps; and the steps whose
update was withheld as non-finite."""

import contextlib
import time

import jax
import numpy as np


def is_due(step: int, every: int, last_step: int) -> bool:
  return step % every == 0 or step == last_step


def due(config, step: int, last_step: int, stopped: bool) -> tuple:
  """(log, checkpoint, validate) at `step`: every log_every_steps,
  checkpoint_every_steps (each checkpoint after a validation, to rank it)
  and eval_every_steps, and at the last step; no validation when stopped."""
  log = is_due(step, config.log_every_steps, last_step)
  checkpoint = is_due(step, config.checkpoint_every_steps, last_step)
  validate = not stopped and (
      checkpoint or is_due(step, config.eval_every_steps, last_step))
  return log, checkpoint, validate


class Pace:
  """The train steps' metrics and time since the last log. Throughput
  covers train steps only: compile, validation and checkpoint time inside a
  logging window is measured and left out."""

  def __init__(self):
    self._reset()

  def _reset(self) -> None:
    self.metrics = []
    self._start = time.perf_counter()
    self._excluded = 0.0
    self._input_wait = 0.0
    self._fetch_start = self._start

  def next_batch(self, batches):
    """The next batch, the wait for it counted as input wait."""
    self._fetch_start = time.perf_counter()
    batch = next(batches)
    self._input_wait += time.perf_counter() - self._fetch_start
    return batch

  def compiled(self) -> float:
    """Leaves out the step just run, which compiled (its state is ready):
    the seconds since its batch was asked for."""
    seconds = time.perf_counter() - self._fetch_start
    self._excluded += seconds
    return seconds

  @contextlib.contextmanager
  def paused(self):
    """Time spent inside is left out (validation, checkpoints)."""
    start = time.perf_counter()
    try:
      yield
    finally:
      self._excluded += time.perf_counter() - start

  def summary(self, batch_size: int) -> dict:
    """summarise() of the window with its step time, images/s and input
    wait; starts the next window."""
    summary = summarise(jax.device_get(self.metrics))
    elapsed = time.perf_counter() - self._start - self._excluded
    summary.update({
        'perf/step_time_ms': 1e3 * elapsed / len(self.metrics),
        'perf/images_per_second': batch_size * len(self.metrics) / elapsed,
        'perf/input_wait_fraction': self._input_wait / elapsed,
    })
    self._reset()
    return summary


def summarise(window_metrics) -> dict:
  """Means over the finite steps since the last log; the last learning rate;
  how many steps were skipped as non-finite, if any."""
  finite = [m for m in window_metrics if m['finite']]
  summary = {f'train/{k}': float(np.mean([m[k] for m in finite]))
             if finite else float('nan')
             for k in window_metrics[0] if k not in ('learning_rate', 'finite')}
  summary['train/learning_rate'] = float(window_metrics[-1]['learning_rate'])
  if len(finite) < len(window_metrics):
    summary['train/skipped_steps'] = len(window_metrics) - len(finite)
  return summary


def nonfinite_steps(step_metrics) -> list:
  """[(step, loss)] of the steps whose update was withheld as non-finite."""
  fetched = jax.device_get([(m['finite'], m['loss']) for _, m in step_metrics])
  return [(step, float(loss)) for (step, _), (finite, loss)
          in zip(step_metrics, fetched) if not finite]


def nonfinite_message(config, step: int, loss: float, kept) -> str:
  kept = (f'The last checkpoint (step {kept}) is untouched.' if kept is not None
          else 'No checkpoint was written.')
  bf16 = (', or compute in float32 (config.model.dtype=float32)'
          if config.model.dtype == 'bfloat16' else '')
  return (f'the loss is {loss} at step {step} (or its gradients are not '
          f'finite); training stopped there without applying that update. '
          f'{kept} Lower config.optimizer.learning_rate (now '
          f'{config.optimizer.learning_rate}), clip gradients with '
          f'config.optimizer.grad_clip_norm (now '
          f'{config.optimizer.grad_clip_norm}) or lengthen '
          f'config.optimizer.warmup_steps (now '
          f'{config.optimizer.warmup_steps}){bf16}; or set '
          'config.skip_nonfinite_steps=True to skip such batches and go on.')
