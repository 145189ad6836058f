r"""Compares run folders offline: a table, curves and a markdown report.

  python -m skinjax.compare RUN_DIR [RUN_DIR ...] [--metric val/balanced_accuracy] \
      [--output DIR]

A RUN_DIR without config.json stands for the run folders inside it (a
sweep's root). Prints, per run, the best and final metric and their steps,
the steps trained, wall time (summed across resumes), median training
images/s and only the config keys that differ between the runs; runs that
differ in `seed` alone are also summarised by mean and standard deviation.
Writes to DIR (default: `comparison/` beside the runs) curves_by_step.png,
curves_by_wall_time.png (training loss and validation metrics, one line per
run, a seed group's mean and band) and report.md. Reads only config.json
and metrics.jsonl: no network, no jax.
"""

import argparse
import os
import sys

from skinjax.comparison import figures as figures_lib
from skinjax.comparison import report
from skinjax.comparison import runs as runs_lib


def compare(paths, metric: str, out_dir: str = '') -> dict:
  """Prints the comparison and writes its files; returns {'report': path,
  'figures': {x axis: path}}."""
  runs = runs_lib.load(paths)
  out_dir = out_dir or os.path.join(
      os.path.commonpath([os.path.abspath(os.path.dirname(os.path.normpath(
          r.workdir))) for r in runs]), 'comparison')
  keys = runs_lib.differing_keys(runs)
  summaries = [runs_lib.summary(run, metric) for run in runs]
  groups = runs_lib.groups(runs, keys)
  runs_lines = report.runs_table(runs, summaries, keys, metric)
  seeds_lines = (report.seeds_table(
      groups, {r.name: s for r, s in zip(runs, summaries)}, metric)
                 if runs_lib.SEED in keys else [])
  print('\n'.join(runs_lines))
  if seeds_lines:
    print('\nOver seeds:\n' + '\n'.join(seeds_lines))
  figures = figures_lib.write_all(groups, metric, out_dir)
  path = os.path.join(out_dir, 'report.md')
  with open(path, 'w') as f:
    f.write(report.markdown(runs_lines, seeds_lines, figures, out_dir, metric))
  print(f'\nwritten to {out_dir}/ (report.md, '
        f'{", ".join(os.path.basename(p) for p in figures.values())})')
  return {'report': path, 'figures': figures}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m skinjax.compare', description=__doc__.split('\n')[0])
  parser.add_argument('runs', nargs='+', metavar='RUN_DIR',
                      help='run folders, or folders of them')
  parser.add_argument('--metric', default='val/balanced_accuracy',
                      help='the metric ranked (lowest is best for loss, nll, '
                      'ece and aurc; highest for the others)')
  parser.add_argument('--output', default='',
                      help="where the figures and report.md go (default: "
                      "'comparison' beside the runs)")
  args = parser.parse_args(argv)
  try:
    compare(args.runs, args.metric, args.output)
  except runs_lib.CompareError as e:
    sys.exit(f'error: {e}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
