"""Train step throughput of skinjax's own step, one fresh process per setting.

The step and the initial state are built as the training loop builds them
(training.step.jit_train_step, training.state.initial_state),
compiled ahead of time so the compile is timed apart and XLA's cost analysis
gives its FLOPs. It runs first on one synthetic batch held on the devices (compute alone), then, for
the end-to-end figure, fed by the real input pipeline as train.py feeds it.

  python -m skinjax.bench.train_step '{"config": ..., ...}'  # one setting
"""

import copy
import itertools
import json
import statistics
import time

from absl import app
import jax
import ml_collections
import numpy as np

from skinjax import data
from skinjax import models
from skinjax.bench import hardware
from skinjax.data import pipeline
from skinjax.parallel import sharding
from skinjax.training import optimizer
from skinjax.training import state as state_lib
from skinjax.training import step as step_lib


def _synthetic_batch(config, num_classes: int, mesh):
  rng = np.random.default_rng(config.seed)
  size = config.image_size
  return sharding.shard_batch({
      'image': rng.integers(0, 256, (config.batch_size, size, size, 3),
                            np.uint8),
      'label': rng.integers(0, num_classes, config.batch_size).astype(np.int32),
  }, mesh)


def _peak_memory(rss_was_reset: bool):
  """(bytes, what they are): the device's peak, else the RSS high-water mark."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return stats['peak_bytes_in_use'], 'device peak_bytes_in_use'
  return hardware.peak_rss(rss_was_reset)


def compile_step(config: ml_collections.ConfigDict, num_classes: int):
  """(compiled step, state, synthetic batch, mesh, compile seconds)."""
  mesh = sharding.create_mesh()
  model = models.create_model(config.model, num_classes)
  tx, schedule = optimizer.from_config(config)
  state = state_lib.initial_state(config, model, tx, mesh)
  train_step = step_lib.jit_train_step(
      mesh, model, tx, step_lib.StepOptions.from_config(config, schedule))
  batch = _synthetic_batch(config, num_classes, mesh)
  start = time.perf_counter()
  compiled = train_step.lower(state, batch).compile()
  return compiled, state, batch, mesh, time.perf_counter() - start


def measure(config: dict, num_classes: int, num_steps: int,
            warmup_steps: int, end_to_end_steps: int) -> dict:
  """Compile time, step time, memory and FLOPs of one setting."""
  config = ml_collections.ConfigDict(config)
  compiled, state, batch, mesh, compile_seconds = compile_step(config,
                                                               num_classes)
  rss_was_reset = hardware.reset_peak_rss()
  for _ in range(warmup_steps):
    state, _ = compiled(state, batch)
  jax.block_until_ready(state)
  times = []
  for _ in range(num_steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  memory_bytes, memory_source = _peak_memory(rss_was_reset)

  step_seconds = statistics.fmean(times)
  flops = compiled.cost_analysis().get('flops')
  xla_memory = compiled.memory_analysis()
  device_kind = jax.devices()[0].device_kind
  peak = hardware.peak_flops(device_kind, config.model.dtype)
  result = {
      'compile_seconds': compile_seconds,
      'step_seconds': step_seconds,
      'step_seconds_median': statistics.median(times),
      'images_per_second': config.batch_size / step_seconds,
      'images_per_second_per_device':
          config.batch_size / step_seconds / jax.device_count(),
      'peak_memory_bytes': memory_bytes,
      'memory_source': memory_source,
      # XLA's own account of the step's buffers: arguments, outputs and
      # temporaries, less the donated inputs reused as outputs.
      'xla_memory_bytes': (xla_memory.argument_size_in_bytes +
                           xla_memory.output_size_in_bytes +
                           xla_memory.temp_size_in_bytes -
                           xla_memory.alias_size_in_bytes),
      'flops_per_step_per_device': flops,
      'flops_per_second_per_device': flops / step_seconds if flops else None,
      'mfu': flops / step_seconds / peak if flops and peak else None,
      'loss': float(metrics['loss']),
  }
  if end_to_end_steps:
    result['end_to_end'] = _end_to_end(config, mesh, compiled, state,
                                       end_to_end_steps, warmup_steps)
  return result


def _end_to_end(config, mesh, train_step, state, num_steps: int,
                warmup_steps: int) -> dict:
  """The inner loop of train.py: batches from the pipeline into the step."""
  source = pipeline.data_source(data.load_builder(config.dataset),
                                config.dataset.train_split)
  host_batches = iter(pipeline.train_dataset(
      source, config, jax.process_index(), jax.process_count()))
  batches = sharding.device_batches(host_batches, mesh,
                                    config.input.device_prefetch)
  for _ in range(warmup_steps + 1):
    state, _ = train_step(state, next(batches))
  jax.block_until_ready(state)
  input_wait, start = 0.0, time.perf_counter()
  for _ in range(num_steps):
    fetch_start = time.perf_counter()
    batch = next(batches)
    input_wait += time.perf_counter() - fetch_start
    state, _ = train_step(state, batch)
  jax.block_until_ready(state)
  seconds = time.perf_counter() - start
  host_batches.close()
  return {
      'num_workers': config.input.num_workers,
      'num_threads': config.input.num_threads,
      'device_prefetch': config.input.device_prefetch,
      'augment_on_device': config.augment.on_device,
      'step_seconds': seconds / num_steps,
      'images_per_second': config.batch_size * num_steps / seconds,
      'input_wait_fraction': input_wait / seconds,
  }


def run(config, model_names, image_sizes, dtypes, num_classes: int,
        num_steps: int, warmup_steps: int, end_to_end_steps: int) -> list:
  """measure() for every model x image size x dtype, each in its own process."""
  results = []
  for name, size, dtype in itertools.product(model_names, image_sizes, dtypes):
    setting = copy.deepcopy(config)
    setting.model.name, setting.model.dtype = name, dtype
    setting.image_size = size
    row = {'model': name, 'image_size': size, 'dtype': dtype,
           'batch_size': config.batch_size}
    if name.startswith('resnet'):
      row['width'] = config.model.width
    print(f'train step: {row}', flush=True)
    results.append({**row, **hardware.run_isolated(
        'skinjax.bench.train_step', config=setting.to_dict(),
        num_classes=num_classes, num_steps=num_steps,
        warmup_steps=warmup_steps, end_to_end_steps=end_to_end_steps)})
  return results


def main(argv):
  print(json.dumps(measure(**json.loads(argv[1]))))


if __name__ == '__main__':
  app.run(main)
