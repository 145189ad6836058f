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

import sys

from absl import app
from absl import flags

from skinjax.cli import main as cli_main
from skinjax.sweeps import runner

_ROOT = flags.DEFINE_string(
    'root', '', 'Folder of the trial run folders (default: '
    'runs/sweeps/<sweep name>).')


def main(argv):
  files = [a for a in argv[1:] if not a.startswith('-')]
  if len(files) != 1:
    raise app.UsageError('Name one sweep file; any --config.KEY=VALUE goes '
                         'to every trial.')
  overrides = [a for a in argv[1:] if a.startswith('-')]
  sys.exit(runner.sweep(files[0], _ROOT.value, overrides))


if __name__ == '__main__':
  # --config.KEY=VALUE are the trials' flags, not this command's: passed on.
  cli_main.run(main, known_only=True)
