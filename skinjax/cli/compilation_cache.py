"""JAX's persistent compilation cache, on by default for every command.

Each start of train, evaluate, predict, serve or export compiles its steps
(seconds to tens of seconds each on a CPU, more for large models); with the
cache, a later start of the same program on the same machine and versions
reads them from disk. `config.compilation_cache_dir` says where ('' turns it
off); JAX_COMPILATION_CACHE_DIR, when set, wins (sweeps and the tests share
one that way).
"""

import os

import jax

from skinjax import errors

ENVIRONMENT_VARIABLE = 'JAX_COMPILATION_CACHE_DIR'


def enable(config):
  """Points JAX's cache at the configured folder (before anything
  compiles); returns the folder in use, or None when off."""
  if os.environ.get(ENVIRONMENT_VARIABLE):
    return os.environ[ENVIRONMENT_VARIABLE]
  if not config.compilation_cache_dir:
    return None
  path = os.path.expanduser(config.compilation_cache_dir)
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise errors.ConfigError(
        f'config.compilation_cache_dir={config.compilation_cache_dir}: '
        f'cannot be created ({e.strerror}); set another folder, or \'\' to '
        'compile afresh at every start') from None
  jax.config.update('jax_compilation_cache_dir', path)
  return path
