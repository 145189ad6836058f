"""What a measurement ran on and what it cost: versions, cores, peaks, memory.

Free of jax and torch, so that each framework's process holds only its own.
"""

import datetime
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys

import psutil

# Dense peak FLOP/s of one device from the vendors' data sheets, by a
# substring of jax's device_kind (first match wins): (bfloat16, float32).
# NVIDIA float32 is TF32 tensor-core math, which XLA uses for float32
# convolutions and matmuls by default; TPUs multiply float32 in bfloat16
# passes by default, so both dtypes get the bfloat16 peak there.
PEAK_FLOPS = (
    ('H100 PCIe', 756e12, 378e12),
    ('H100', 989e12, 495e12),  # SXM
    ('H200', 989e12, 495e12),
    ('A100', 312e12, 156e12),
    ('TPU v4', 275e12, 275e12),
    ('TPU v5 lite', 197e12, 197e12),  # v5e
    ('TPU v5', 459e12, 459e12),  # v5p
    ('TPU v6 lite', 918e12, 918e12),  # v6e
)
_PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'grain', 'numpy', 'pillow',
             'tensorflow-datasets', 'torch')


def peak_flops(device_kind: str, dtype: str):
  """The device's peak FLOP/s for `dtype`, or None if it is not in the table."""
  for name, bf16, fp32 in PEAK_FLOPS:
    if name in device_kind:
      return bf16 if dtype == 'bfloat16' else fp32
  return None


def _cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def machine() -> dict:
  versions = {}
  for package in _PACKAGES:
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      versions[package] = None
  return {
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'),
      'cpu_cores': len(os.sched_getaffinity(0)),
      'cpu_model': _cpu_model(),
      'memory_bytes': psutil.virtual_memory().total,
      'python': platform.python_version(),
      'versions': versions,
  }


def cpu_seconds() -> float:
  """CPU time of this process and its live children (e.g. grain workers)."""
  processes = [psutil.Process()]
  processes += processes[0].children(recursive=True)
  total = 0.0
  for process in processes:
    try:
      times = process.cpu_times()
    except psutil.NoSuchProcess:
      continue
    total += times.user + times.system
  return total


def reset_peak_rss() -> bool:
  """Restarts the RSS high-water mark from the current RSS (Linux only)."""
  try:
    with open('/proc/self/clear_refs', 'w') as f:
      f.write('5')
    return True
  except OSError:
    return False


def peak_rss(was_reset: bool):
  """(bytes, what they are): the process's RSS high-water mark."""
  source = ('process RSS high-water mark, ' +
            ('over the steps' if was_reset else 'over the whole process'))
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) * 1024, source
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, source


def run_isolated(module: str, **kwargs) -> dict:
  """`python -m module JSON_KWARGS` in a fresh process; its JSON result.

  A fresh process per measurement gives every setting its own compile time
  and memory peak (both are process-wide high-water marks otherwise) and
  keeps one framework's threads and caches out of another's figures. A
  setting that fails (out of memory, say) gives {'error': ...} and the
  benchmark goes on.
  """
  result = subprocess.run([sys.executable, '-m', module, json.dumps(kwargs)],
                          capture_output=True, text=True, check=False)
  if result.returncode:
    return {'error': result.stderr.strip()[-2000:] or
                     f'exit status {result.returncode}'}
  return json.loads(result.stdout.strip().splitlines()[-1])
