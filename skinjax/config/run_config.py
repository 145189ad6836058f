"""WORKDIR/config.json: the config a run was trained with.

Training writes it; evaluate and predict read it back into the config schema
(skinjax.config.defaults), so a checkpoint is always scored with the
settings it was trained with, whatever overrides trained it. Only the
EVALUATION_KEYS may be changed at evaluation time.
"""

import json
import os

import ml_collections

from skinjax.config import defaults
from skinjax.run_folder import atomic

CONFIG_FILE = 'config.json'
# Keys that change how a checkpoint is scored, never what it learnt: where
# the data lies, the largest photo read, test-time image size and crop, TTA,
# calibration settings, batch size and workers of evaluation, W&B.
EVALUATION_KEYS = ('evaluation', 'eval_batch_size', 'image_size',
                   'augment.eval_crop_fraction', 'input', 'dataset.data_dir',
                   'dataset.manual_dir', 'dataset.max_image_pixels', 'wandb')
# Keys older skinjax versions wrote that mean nothing now; ignored on reading.
RETIRED_KEYS = ('dataset.test_split',)


class RunFolderError(ValueError):
  """A run folder that cannot be read; the message names the file."""


def to_json(config) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)


def write(config, workdir: str) -> str:
  """Writes config.json atomically: a crash never leaves half a file."""
  path = os.path.join(workdir, CONFIG_FILE)
  atomic.write_text(path, to_json(config))
  return path


def read(workdir: str) -> ml_collections.ConfigDict:
  """The run's config, locked, in the schema's types (tuples stay tuples)."""
  path = os.path.join(workdir, CONFIG_FILE)
  try:
    with open(path) as f:
      saved = json.load(f)
  except FileNotFoundError:
    raise RunFolderError(f'{path} not found: is {workdir} a run folder '
                         'written by skinjax.train?') from None
  except (OSError, ValueError) as e:
    raise RunFolderError(f'{path}: unreadable ({e})') from None
  config = defaults.get_config()
  for key, value in flatten(saved).items():
    if key in RETIRED_KEYS:
      continue
    node, leaf = _parent(config, key)
    if node is None:
      raise RunFolderError(f'{path}: unknown config key {key!r} (written by '
                           'another version of skinjax?)')
    node[leaf] = tuple(value) if isinstance(node[leaf], tuple) else value
  return config


def _parent(config, key: str):
  """(the ConfigDict holding `key`, its last part), or (None, None)."""
  *parents, leaf = key.split('.')
  for part in parents:
    config = config.get(part) if isinstance(
        config, ml_collections.ConfigDict) else None
  if not isinstance(config, ml_collections.ConfigDict) or leaf not in config:
    return None, None
  return config, leaf


def flatten(tree: dict, prefix: str = '') -> dict:
  """{'a': {'b': 1}} -> {'a.b': 1}."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def differences(run_config, requested) -> dict:
  """{dotted key: requested value} wherever `requested` differs from the run."""
  run = flatten(run_config.to_dict())
  return {key: value for key, value in flatten(requested.to_dict()).items()
          if key not in RETIRED_KEYS and run.get(key) != value}


def is_evaluation_key(key: str) -> bool:
  return any(key == k or key.startswith(k + '.') for k in EVALUATION_KEYS)


def for_evaluation(workdir: str, changes: dict) -> ml_collections.ConfigDict:
  """The run's config with `changes` ({dotted key: value}) applied; any
  change outside EVALUATION_KEYS raises a RunFolderError naming it."""
  config = read(workdir)
  for key, value in changes.items():
    node, leaf = _parent(config, key)
    if not is_evaluation_key(key):
      raise RunFolderError(
          f'config.{key}={value!r}: the run in {workdir} was trained with '
          f'{node[leaf]!r} ({CONFIG_FILE}); evaluation may change only '
          f'{", ".join(EVALUATION_KEYS)}')
    node[leaf] = value
  return config
