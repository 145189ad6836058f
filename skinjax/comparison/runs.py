"""Run folders side by side: what each reached, and what differs between them.

Reads WORKDIR/config.json, metrics.jsonl and environment.json only (no
checkpoint, no network, no jax), so runs are compared wherever their folders
are copied. Runs that differ in `seed` alone form a seed group, summarised by
its mean and spread.
"""

import dataclasses
import json
import os

import numpy as np

from skinjax import errors
from skinjax.run_folder import environment
from skinjax.run_folder import run_config
from skinjax.run_folder import tracking

SEED = 'seed'
# Keys of WORKDIR/environment.json's last entry (library versions, backend,
# devices) join the config's, so runs made with other versions show it.
ENVIRONMENT = 'environment'
# Keys that name or file a run (its W&B name, group, tags): never what it
# learnt, so never a difference worth a column.
_BOOKKEEPING = ('wandb.',)
# Metrics where lower is better; every other one is maximised.
_LOWER_IS_BETTER = ('loss', 'nll', 'ece', 'aurc')
IMAGES_PER_SECOND = 'perf/images_per_second'


class CompareError(errors.UserError):
  """A folder that cannot be compared; the message names it."""


@dataclasses.dataclass(frozen=True)
class Run:
  name: str  # the folder's name, or its path where two names are alike
  workdir: str
  config: dict  # flat: {dotted key: value}
  records: list  # metrics.jsonl


@dataclasses.dataclass(frozen=True)
class Group:
  """Runs alike in every differing key but `seed` (one run: no seeds)."""
  label: str
  runs: tuple


def expand(paths) -> list:
  """Run folders of `paths`: a folder with config.json is one, any other
  folder stands for the run folders directly inside it (a sweep's root)."""
  workdirs = []
  for path in paths:
    if os.path.isfile(os.path.join(path, run_config.CONFIG_FILE)):
      workdirs.append(path)
      continue
    inside = sorted(os.path.join(path, name) for name in (
        os.listdir(path) if os.path.isdir(path) else ()))
    inside = [p for p in inside
              if os.path.isfile(os.path.join(p, run_config.CONFIG_FILE))]
    if not inside:
      raise CompareError(f'{path}: neither a run folder (no '
                         f'{run_config.CONFIG_FILE}) nor a folder of them')
    workdirs.extend(inside)
  return workdirs


def load(paths) -> list:
  workdirs = expand(paths)
  names = [os.path.basename(os.path.normpath(w)) for w in workdirs]
  if len(set(names)) < len(names):
    names = [os.path.normpath(w) for w in workdirs]
  runs = []
  for name, workdir in zip(names, workdirs):
    path = os.path.join(workdir, run_config.CONFIG_FILE)
    try:
      with open(path) as f:
        config = run_config.flatten(json.load(f))
    except (OSError, ValueError) as e:
      raise CompareError(f'{path}: unreadable ({e})') from None
    config.update({f'{ENVIRONMENT}.{k}': v for k, v in environment.flat(
        environment.read(workdir)).items()})
    records = tracking.read_records(workdir)
    if not records:
      raise CompareError(f'{workdir}: no records in {tracking.METRICS_FILE}')
    runs.append(Run(name, workdir, config, records))
  return runs


def differing_keys(runs) -> list:
  """Config keys whose values are not the same in every run (a key that
  some runs lack counts), bookkeeping keys left out."""
  keys = sorted({key for run in runs for key in run.config})
  return [key for key in keys if not key.startswith(_BOOKKEEPING) and
          len({json.dumps(run.config.get(key)) for run in runs}) > 1]


def lower_is_better(metric: str) -> bool:
  return metric.rsplit('/', 1)[-1].endswith(_LOWER_IS_BETTER)


def _points(run: Run, key: str, x: str) -> list:
  """[(step, x, value)] of the records that hold `key` and `x`, by step."""
  return sorted((r['step'], r[x], r[key]) for r in run.records
                if isinstance(r.get(key), (int, float)) and
                isinstance(r.get(x), (int, float)))


def series(run: Run, key: str, x: str = 'step') -> tuple:
  """(x values, values) of the records that hold `key`, in step order; x is
  'step' or tracking.WALL_TIME."""
  points = _points(run, key, x)
  return (np.array([p[1] for p in points], np.float64),
          np.array([p[2] for p in points], np.float64))


def summary(run: Run, metric: str) -> dict:
  """Best and final `metric` with their steps, the last step, the wall time
  and the median training images/s of `run`."""
  steps, values = series(run, metric)
  if not len(values):
    raise CompareError(f'{run.workdir}: no record has {metric!r}')
  best = int(np.argmin(values) if lower_is_better(metric)
             else np.argmax(values))
  throughput = series(run, IMAGES_PER_SECOND)[1]
  wall = [r[tracking.WALL_TIME] for r in run.records
          if isinstance(r.get(tracking.WALL_TIME), (int, float))]
  return {'best': float(values[best]), 'best_step': int(steps[best]),
          'final': float(values[-1]), 'final_step': int(steps[-1]),
          'steps': max(r['step'] for r in run.records),
          'wall_seconds': max(wall) if wall else None,
          'images_per_second': (float(np.median(throughput))
                                if len(throughput) else None)}


def groups(runs, keys) -> list:
  """The seed groups of `runs` when `seed` is among the differing `keys`,
  else one group per run; in order of first appearance."""
  if SEED not in keys:
    return [Group(run.name, (run,)) for run in runs]
  others = [key for key in keys if key != SEED]
  by_setting = {}
  for run in runs:
    setting = tuple(json.dumps(run.config.get(key)) for key in others)
    by_setting.setdefault(setting, []).append(run)
  return [Group(_label(others, members[0]), tuple(members))
          for members in by_setting.values()]


def _label(keys, run: Run) -> str:
  return ','.join(f'{key}={run.config.get(key)}' for key in keys) or 'all runs'


def mean_and_spread(values) -> tuple:
  """(mean, sample standard deviation; 0 for one value)."""
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std(ddof=1)) if len(
      values) > 1 else 0.0


def aligned(group: Group, key: str, x: str = 'step') -> tuple:
  """(x, mean, min, max) of `key` over the group's runs at the steps they
  all recorded; x is the step or the runs' mean wall time at it."""
  per_run = [{step: (at, value) for step, at, value in _points(run, key, x)}
             for run in group.runs]
  common = sorted(set.intersection(*(set(p) for p in per_run)))
  xs = np.array([[p[s][0] for s in common] for p in per_run], np.float64)
  values = np.array([[p[s][1] for s in common] for p in per_run], np.float64)
  return (xs.mean(0), values.mean(0), values.min(0), values.max(0))
