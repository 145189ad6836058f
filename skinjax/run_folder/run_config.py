"""WORKDIR/config.json: the config a run was trained with.

Training writes it; evaluate and predict read it back into the config schema
(skinjax.config.defaults), so a checkpoint is always scored with the
settings it was trained with, whatever overrides trained it. Only the
EVALUATION_KEYS may be changed at evaluation time, and a resumed run may
change only the RESUME_KEYS unless told otherwise (`train --allow_change`);
the changes a resume made are appended to WORKDIR/config_changes.jsonl.
"""

import datetime
import json
import os

import ml_collections

from skinjax import errors
from skinjax.config import defaults
from skinjax.run_folder import atomic

CONFIG_FILE = 'config.json'
# Keys (or groups) that evaluation may change: those that change how a
# checkpoint is scored, never what it learnt. And those a resumed run may
# change: they decide what is logged, validated and kept, and where files
# are, never which weights the steps produce. Both from the schema's phases
# (skinjax.config.defaults.PHASES).
EVALUATION_KEYS = tuple(key for key, phase in defaults.PHASES.items()
                        if phase in ('anytime', 'scoring'))
RESUME_KEYS = tuple(key for key, phase in defaults.PHASES.items()
                    if phase in ('anytime', 'bookkeeping'))
CHANGES_FILE = 'config_changes.jsonl'
# Keys older skinjax versions wrote that mean nothing now; ignored on reading.
RETIRED_KEYS = ('dataset.test_split',)


class RunFolderError(errors.UserError):
  """A run folder that cannot be read; the message names the file."""


class ConfigDrift(RunFolderError):
  """A resume whose config would change the run; the message names each
  key."""


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
    node[leaf] = _tuples(value) if isinstance(node[leaf], tuple) else value
  return config


def _tuples(value):
  """JSON's lists back into the schema's tuples, nested ones too
  (progressive_resizing's pairs)."""
  return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


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


def _is_under(key: str, prefixes) -> bool:
  return any(key == k or key.startswith(k + '.') for k in prefixes)


def is_evaluation_key(key: str) -> bool:
  return _is_under(key, EVALUATION_KEYS)


def resume_changes(workdir: str, config, allowed=()) -> dict:
  """{dotted key: (run's value, requested value)} for every key in which
  `config` differs from the run in `workdir`; raises ConfigDrift, one line
  per key, for any outside RESUME_KEYS and `allowed` (dotted keys or their
  parents)."""
  run = read(workdir)
  run_values = flatten(run.to_dict())
  changes = {key: (run_values.get(key), value)
             for key, value in differences(run, config).items()}
  refused = [key for key in changes
             if not _is_under(key, RESUME_KEYS) and not _is_under(key, allowed)]
  if refused:
    raise ConfigDrift('\n'.join(
        [f'the run in {workdir} ({CONFIG_FILE}) would not continue exactly '
         'with these changes:'] +
        [f'  config.{key}: {changes[key][0]!r} -> {changes[key][1]!r}'
         for key in refused] +
        ['Restore them, use another --workdir, or change them on purpose '
         f'with --allow_change={",".join(refused)}']))
  return changes


def record_changes(workdir: str, step: int, changes: dict) -> None:
  """Appends what a resume at `step` changed to WORKDIR/config_changes.jsonl
  (each line a whole record: one write, flushed)."""
  record = {'step': step, 'time': datetime.datetime.now().astimezone()
            .isoformat(timespec='seconds'),
            'changes': {k: {'from': old, 'to': new}
                        for k, (old, new) in changes.items()}}
  with open(os.path.join(workdir, CHANGES_FILE), 'a') as f:
    f.write(json.dumps(record, default=str) + '\n')
    f.flush()
    os.fsync(f.fileno())


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
