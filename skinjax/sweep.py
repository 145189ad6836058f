r"""Runs a sweep file's trials, then compares them.

  python -m skinjax.sweep SWEEP_FILE [--root DIR] [--config.KEY=VALUE ...]

Each trial trains in DIR/<trial name> (DIR defaults to runs/sweeps/<sweep
name>) as `python -m skinjax.train --config <the sweep's config>` with the
sweep's fixed and swept keys, then any --config.KEY=VALUE given here (which
may not touch a swept key), W&B group = the sweep's name (unless the config
names one), tags = the config's and the sweep's, W&B name = the trial's.
With config.wandb.mode=online and a W&B API key it is a W&B sweep
(wandb.sweep and wandb.agent), otherwise the trials run here one after
another; the trials, their names and folders are the same either way.
Finished trials are skipped, an interrupted one resumes; Ctrl-C or SIGTERM
checkpoints the running trial and stops. At the end, prints the comparison
of the trials (skinjax.compare) and writes it to DIR/comparison/. Exit
status 1 if a trial failed.
"""

import argparse
import os
import sys

from skinjax import compare
from skinjax.comparison import runs as runs_lib
from skinjax.config import defaults
from skinjax.run_folder import run_config
from skinjax.run_folder import tracking
from skinjax.sweeps import local
from skinjax.sweeps import online
from skinjax.sweeps import spec


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m skinjax.sweep', description=__doc__.split('\n')[0],
      epilog='Any --config.KEY=VALUE goes to every trial.')
  parser.add_argument('sweep_file')
  parser.add_argument('--root', default='',
                      help='folder of the trial run folders (default: '
                      'runs/sweeps/<sweep name>)')
  args, overrides = parser.parse_known_args(argv)
  for flag in overrides:
    if not flag.startswith('--config.') or '=' not in flag:
      parser.error(f'unrecognised argument {flag!r} (trial config changes '
                   'are --config.KEY=VALUE)')
  try:
    sweep = spec.load(args.sweep_file, run_config.flatten(
        defaults.get_config().to_dict()))
    root = args.root or os.path.join('runs', 'sweeps', sweep.name)
    plans = local.plans(sweep, root, overrides)
    local.check(sweep, plans)
    wandb_config = local.trial_config(sweep.config, list(plans[0].flags)).wandb
    is_online = (wandb_config.mode == 'online' and
                 tracking.has_wandb_credentials())
    print(f'Sweep {sweep.name!r}: {len(plans)} trials ({sweep.method}), '
          f'{"a W&B sweep" if is_online else "run here"}, in {root}/',
          flush=True)
    outcome = (online.run(sweep, plans, wandb_config) if is_online
               else local.run(sweep, plans))
  except spec.SweepError as e:
    sys.exit(f'error: {e}')
  failed = {name: o for name, o in outcome.items() if o.startswith('failed')}
  if 'stopped' in outcome.values():
    print('Sweep stopped: run the same command to resume it.')
  trained = [p.workdir for p in plans
             if os.path.isfile(os.path.join(p.workdir, tracking.METRICS_FILE))]
  if trained:
    print()
    try:
      compare.compare(trained, sweep.metric,
                      os.path.join(root, 'comparison'))
    except runs_lib.CompareError as e:
      print(f'No comparison yet: {e}')
  for name, o in failed.items():
    print(f'trial {name}: {o}', file=sys.stderr)
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
