"""`sweep` as a function of values: a sweep file's trials trained (here, or as
a W&B sweep when online with an API key), then compared."""

import os
import sys

from skinjax.comparison import runner as comparison
from skinjax.comparison import runs as runs_lib
from skinjax.config import defaults
from skinjax.run_folder import run_config
from skinjax.run_folder import tracking
from skinjax.sweeps import local
from skinjax.sweeps import online
from skinjax.sweeps import spec


def sweep(sweep_file: str, root: str = '', overrides=()) -> int:
  """Trains every trial of `sweep_file` in ROOT/<trial name> (default
  runs/sweeps/<sweep name>) with `overrides` (--config.KEY=VALUE flags for
  every trial), then compares them; the exit status: 1 if a trial failed.
  A bad sweep file or override raises spec.SweepError before any trial."""
  for flag in overrides:
    if not flag.startswith('--config.') or '=' not in flag:
      raise spec.SweepError(f'unrecognised argument {flag!r} (trial config '
                            'changes are --config.KEY=VALUE)')
  sweep_spec = spec.load(sweep_file, run_config.flatten(
      defaults.get_config().to_dict()))
  root = root or os.path.join('runs', 'sweeps', sweep_spec.name)
  plans = local.plans(sweep_spec, root, overrides)
  local.check(sweep_spec, plans)
  wandb_config = local.trial_config(sweep_spec.config,
                                    list(plans[0].flags)).wandb
  is_online = (wandb_config.mode == 'online' and
               tracking.has_wandb_credentials())
  print(f'Sweep {sweep_spec.name!r}: {len(plans)} trials '
        f'({sweep_spec.method}), '
        f'{"a W&B sweep" if is_online else "run here"}, in {root}/',
        flush=True)
  outcome = (online.run(sweep_spec, plans, wandb_config) if is_online
             else local.run(sweep_spec, plans))
  failed = {name: o for name, o in outcome.items() if o.startswith('failed')}
  if 'stopped' in outcome.values():
    print('Sweep stopped: run the same command to resume it.')
  trained = [p.workdir for p in plans
             if os.path.isfile(os.path.join(p.workdir, tracking.METRICS_FILE))]
  if trained:
    print()
    try:
      comparison.compare(trained, sweep_spec.metric,
                         os.path.join(root, 'comparison'))
    except runs_lib.CompareError as e:
      print(f'No comparison yet: {e}')
  for name, o in failed.items():
    print(f'trial {name}: {o}', file=sys.stderr)
  return 1 if failed else 0
