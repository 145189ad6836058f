"""A sweep file: a Python file whose `get_sweep()` returns a dict.

  {'name': 'lr_seed',                    # the W&B group and the sweep's folder
   'config': '../synthetic.py',          # base config, relative to this file
   'fixed': {'num_train_steps': 300},    # config keys set in every trial
   'parameters': {'optimizer.learning_rate': [0.05, 0.1], 'seed': [0, 1]},
   'method': 'grid',                     # or 'random' (num_trials, random_seed)
   'metric': 'val/balanced_accuracy',    # what the sweep optimises
   'tags': ('lr',)}

Random search draws `num_trials` distinct trials with `random_seed`: a list
is a uniform choice, {'uniform': (low, high)} or {'log_uniform': (low,
high)} a number rounded to 3 significant digits. Either way the trials are
this module's list, offline and online alike, and a trial's name is made
of its values alone (`learning_rate=0.05,seed=1`), so the same trial has
the same run folder and W&B name wherever it runs.
"""

import dataclasses
import itertools
import math
import os
import runpy

import numpy as np

from skinjax import errors

METHODS = ('grid', 'random')
_KEYS = {'name', 'config', 'fixed', 'parameters', 'method', 'metric', 'tags',
         'num_trials', 'random_seed'}
_REQUIRED = ('name', 'config', 'parameters')
_DISTRIBUTIONS = ('uniform', 'log_uniform')


class SweepError(errors.UserError):
  """A sweep file that cannot be run; the message names the file and key."""


@dataclasses.dataclass(frozen=True)
class Trial:
  name: str
  values: dict  # {dotted config key: value} of the swept keys


@dataclasses.dataclass(frozen=True)
class Sweep:
  name: str
  config: str  # the base config file (absolute), with its ':argument'
  fixed: dict
  parameters: dict
  method: str
  metric: str  # lowest is best for losses, else highest (skinjax.compare)
  tags: tuple
  trials: tuple


def load(path: str, schema_keys) -> Sweep:
  """The sweep in `path`; `schema_keys` are the dotted config keys it may
  set."""
  try:
    spec = runpy.run_path(path)['get_sweep']()
  except FileNotFoundError:
    raise SweepError(f'{path}: no such sweep file') from None
  except Exception as e:  # the file itself is broken: name it
    raise SweepError(f'{path}: {type(e).__name__}: {e}') from None
  if not isinstance(spec, dict):
    raise SweepError(f'{path}: get_sweep() must return a dict')
  problem = _problem(spec, set(schema_keys))
  if problem:
    raise SweepError(f'{path}: {problem}')
  config_file, colon, argument = spec['config'].partition(':')
  config_file = os.path.normpath(os.path.join(
      os.path.dirname(os.path.abspath(path)), os.path.expanduser(config_file)))
  if not os.path.isfile(config_file):
    raise SweepError(f"{path}: 'config': {config_file} is not a file")
  method = spec.get('method', 'grid')
  parameters = dict(spec['parameters'])
  try:
    trials = (_grid(parameters) if method == 'grid' else _random(
        parameters, spec['num_trials'], spec.get('random_seed', 0)))
  except SweepError as e:
    raise SweepError(f'{path}: {e}') from None
  return Sweep(name=spec['name'], config=config_file + colon + argument,
               fixed=dict(spec.get('fixed', {})), parameters=parameters,
               method=method,
               metric=spec.get('metric', 'val/balanced_accuracy'),
               tags=tuple(spec.get('tags', ())), trials=tuple(trials))


def _problem(spec: dict, schema_keys: set) -> str:
  """What is wrong with `spec`, in one line naming the key; '' if nothing."""
  unknown = sorted(set(spec) - _KEYS)
  if unknown:
    return f'unknown key {unknown[0]!r}; a sweep has {sorted(_KEYS)}'
  for key in _REQUIRED:
    if key not in spec:
      return f'{key!r} is missing'
  if not spec['name'] or os.sep in spec['name']:
    return f"'name': {spec['name']!r} must be a non-empty folder name"
  if spec.get('method', 'grid') not in METHODS:
    return f"'method': {spec['method']!r}: choose one of {list(METHODS)}"
  if not isinstance(spec['parameters'], dict) or not spec['parameters']:
    return "'parameters' must be a non-empty dict {config key: values}"
  for section in ('parameters', 'fixed'):
    for key in spec.get(section, {}):
      if key not in schema_keys:
        return f"'{section}': unknown config key {key!r}"
  both = sorted(set(spec['parameters']) & set(spec.get('fixed', {})))
  if both:
    return f'{both[0]!r} is both fixed and swept'
  for key, values in spec['parameters'].items():
    if isinstance(values, dict):
      if spec.get('method', 'grid') == 'grid':
        return f"'parameters': {key!r}: a grid takes a list of values"
      if (len(values) != 1 or next(iter(values)) not in _DISTRIBUTIONS or
          len(next(iter(values.values()))) != 2):
        return (f"'parameters': {key!r}: a range is {{'uniform': (low, "
                "high)} or {'log_uniform': (low, high)}")
    elif not isinstance(values, (list, tuple)) or not values:
      return f"'parameters': {key!r}: give a non-empty list of values"
  if spec.get('method') == 'random' and not (
      isinstance(spec.get('num_trials'), int) and spec['num_trials'] >= 1):
    return "'num_trials': random search needs a number of trials >= 1"
  return ''


def trial_name(values: dict) -> str:
  """`learning_rate=0.05,seed=1`: each key by its last part, unless two
  swept keys share it; '/' becomes '_' so that it is one folder."""
  last = [key.rsplit('.', 1)[-1] for key in values]
  parts = [f'{short if last.count(short) == 1 else key}={format_value(v)}'
           for short, (key, v) in zip(last, values.items())]
  return ','.join(parts).replace('/', '_')


def format_value(value) -> str:
  if isinstance(value, float):
    return f'{value:g}'
  if isinstance(value, (list, tuple)):
    return '_'.join(format_value(v) for v in value)
  return str(value)


def _grid(parameters: dict) -> list:
  """Every combination, the last key varying fastest."""
  keys = list(parameters)
  return [_trial(dict(zip(keys, combination))) for combination in
          itertools.product(*(parameters[k] for k in keys))]


def _random(parameters: dict, num_trials: int, seed: int) -> list:
  rng = np.random.default_rng(seed)
  trials = {}
  for _ in range(100 * num_trials):
    trial = _trial({key: _draw(rng, space)
                    for key, space in parameters.items()})
    trials.setdefault(trial.name, trial)
    if len(trials) == num_trials:
      return list(trials.values())
  raise SweepError(f'random search found only {len(trials)} distinct trials '
                   f'of the {num_trials} asked for: widen the parameters')


def _draw(rng, space):
  if not isinstance(space, dict):
    return space[int(rng.integers(len(space)))]
  (distribution, (low, high)), = space.items()
  if distribution == 'log_uniform':
    value = math.exp(rng.uniform(math.log(low), math.log(high)))
  else:
    value = rng.uniform(low, high)
  return float(f'{value:.3g}')


def _trial(values: dict) -> Trial:
  return Trial(name=trial_name(values), values=values)


def config_flag(key: str, value) -> str:
  """`--config.KEY=VALUE` as train's command line reads it."""
  if isinstance(value, (list, tuple)):
    value = repr(tuple(value))
  return f'--config.{key}={value}'
