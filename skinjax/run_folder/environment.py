"""WORKDIR/environment.json: what each start of a run ran on.

One entry per start (a resume appends one), so a run that moved between
machines or library versions says so: skinjax's version and git commit,
Python, the versions of the libraries that decide the numbers, the JAX
backend, the devices and processes, the host. `compare` shows where runs'
last entries differ (`flat`).
"""

import datetime
import importlib.metadata
import json
import os
import platform
import socket
import subprocess

from skinjax.run_folder import atomic

FILE = 'environment.json'
PACKAGES = ('skinjax', 'jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint',
            'grain', 'tensorflow-datasets', 'numpy', 'safetensors')


def _version(package: str):
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def git_commit():
  """The commit of the skinjax checkout this runs from ('+dirty' when it
  has uncommitted changes), or None (an installed wheel)."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  if not os.path.exists(os.path.join(root, '.git')):
    return None
  try:
    commit = subprocess.run(['git', '-C', root, 'rev-parse', 'HEAD'],
                            capture_output=True, text=True, timeout=10,
                            check=True).stdout.strip()
    dirty = subprocess.run(['git', '-C', root, 'status', '--porcelain',
                            '--untracked-files=no'], capture_output=True,
                           text=True, timeout=10, check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return commit + ('+dirty' if dirty else '')


def describe() -> dict:
  """This process's environment."""
  import jax  # pylint: disable=g-import-not-at-top  (compare reads without it)
  kinds = {}
  for device in jax.devices():
    kinds[device.device_kind] = kinds.get(device.device_kind, 0) + 1
  return {
      'started': datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'),
      'git_commit': git_commit(),
      'python': platform.python_version(),
      'versions': {p: _version(p) for p in PACKAGES},
      'backend': jax.default_backend(),
      'devices': kinds,
      'local_devices': jax.local_device_count(),
      'processes': jax.process_count(),
      'hostname': socket.gethostname(),
  }


def read(workdir: str) -> list:
  """The entries so far ([] when none or unreadable)."""
  try:
    with open(os.path.join(workdir, FILE)) as f:
      entries = json.load(f)
  except (OSError, ValueError):
    return []
  return entries if isinstance(entries, list) else []


def record(workdir: str, start_step: int) -> dict:
  """Appends this start's entry (at `start_step`) and returns it."""
  entry = {'start_step': start_step, **describe()}
  atomic.write_text(os.path.join(workdir, FILE),
                    json.dumps(read(workdir) + [entry], indent=1) + '\n')
  return entry


def flat(entries: list) -> dict:
  """The last entry as {dotted key: value}, what tells runs' numbers apart
  (versions, Python, backend, devices; not when or where it ran)."""
  if not entries:
    return {}
  last = entries[-1]
  out = {f'versions.{k}': v for k, v in last.get('versions', {}).items()}
  out.update({k: last.get(k) for k in ('python', 'backend', 'devices',
                                       'processes')})
  return out
