"""`compare` as a function of values: run folders side by side, printed as
tables and written as curves (PNG) and report.md. Reads only config.json and
metrics.jsonl: no network, no jax."""

import os

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
