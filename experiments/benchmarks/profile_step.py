r"""Where the train step's time goes, by XLA operation, from a jax profile.

Compiles skinjax's train step as `python -m skinjax.bench` does (synthetic
batch on the device), traces a few steps with jax.profiler and sums the
traced time of each compiled operation over the runtime's threads. On a CPU
that is thread time (two threads busy for 1 ms count 2 ms); XLA:CPU's Eigen
convolutions run untraced, so their share is the wall time no operation
accounts for.

  python experiments/benchmarks/profile_step.py --config.model.name=resnet18 \
      --config.image_size=128 --config.batch_size=32
"""

import collections
import pathlib
import re
import tempfile

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from skinjax.bench import train_step
from skinjax.config import defaults

_CONFIG = config_flags.DEFINE_config_file('config', defaults.__file__,
                                          'Config file.', lock_config=True)
_NUM_CLASSES = flags.DEFINE_integer('num_classes', 6, 'Classifier outputs.')
_STEPS = flags.DEFINE_integer('steps', 3, 'Traced steps.')
_TOP = flags.DEFINE_integer('top', 20, 'Single operations to list.')


def trace_steps(compiled, state, batch, num_steps: int, trace_dir: str):
  for _ in range(2):  # warm up outside the trace
    state, _ = compiled(state, batch)
  jax.block_until_ready(state)
  with jax.profiler.trace(trace_dir):
    for _ in range(num_steps):
      state, _ = compiled(state, batch)
    jax.block_until_ready(state)
  return next(pathlib.Path(trace_dir).rglob('*.xplane.pb'))


def op_events(xplane_path):
  """(thread, operation name, start ns, duration ns) of the runtime's ops."""
  profile = jax.profiler.ProfileData.from_file(str(xplane_path))
  for plane in profile.planes:
    for line in plane.lines:
      if not re.search(r'XLAEigen|PjRt|Stream', line.name):
        continue
      for event in line.events:
        if re.search(r'ThunkExecutor|Await|Threadpool|^end: ', event.name):
          continue
        yield line.name, event.name, event.start_ns, event.duration_ns


def main(argv):
  del argv
  config = _CONFIG.value
  compiled, state, batch, _, _ = train_step.compile_step(config,
                                                         _NUM_CLASSES.value)
  with tempfile.TemporaryDirectory() as trace_dir:
    events = list(op_events(trace_steps(compiled, state, batch,
                                        _STEPS.value, trace_dir)))
  per_step = lambda ns: ns / _STEPS.value / 1e6
  wall = max(s + d for _, _, s, d in events) - min(s for _, _, s, _ in events)
  by_op, by_kind, by_thread = (collections.Counter() for _ in range(3))
  for thread, name, _, duration in events:
    by_op[name] += duration
    by_kind[re.sub(r'\.\d+$', '', name)] += duration
    by_thread[thread] += duration
  print(f'{config.model.name}, {config.image_size} px, batch '
        f'{config.batch_size}, {config.model.dtype}: {per_step(wall):.0f} ms '
        f'wall per step; traced thread time per step, ms:')
  for thread, ns in by_thread.items():
    print(f'  {thread}: {per_step(ns):.0f}')
  print('By kind of operation (fusions named by XLA after their ops):')
  for kind, ns in by_kind.most_common():
    if per_step(ns) >= 1:
      print(f'  {per_step(ns):8.1f}  {kind}')
  hlo = compiled.as_text()
  print(f'The {_TOP.value} longest operations:')
  for name, ns in by_op.most_common(_TOP.value):
    found = re.search(r'%' + re.escape(name) + r' = (\S+)', hlo)
    print(f'  {per_step(ns):8.1f}  {name}  {found.group(1) if found else ""}')


if __name__ == '__main__':
  app.run(main)
