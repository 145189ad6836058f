"""The comparison as markdown tables (printed, and in report.md)."""

import os

from skinjax.comparison import runs as runs_lib


def _number(value, digits: int = 4) -> str:
  if value is None:
    return '-'
  if isinstance(value, float):
    return f'{value:.{digits}f}'
  return str(value)


def _table(header, rows) -> list:
  return (['| ' + ' | '.join(header) + ' |',
           '|' + '---|' * len(header)] +
          ['| ' + ' | '.join(row) + ' |' for row in rows])


def runs_table(runs, summaries, keys, metric: str) -> list:
  """One row per run: best and final `metric`, steps, wall time, images/s
  and the config keys that differ between the runs."""
  header = ['run', f'best {metric}', 'at step', f'final {metric}', 'steps',
            'wall time (s)', 'images/s', *keys]
  rows = [[run.name, _number(s['best']), str(s['best_step']),
           _number(s['final']), str(s['steps']),
           _number(s['wall_seconds'], 0), _number(s['images_per_second'], 1),
           *(str(run.config.get(key, '-')) for key in keys)]
          for run, s in zip(runs, summaries)]
  return _table(header, rows)


def seeds_table(groups, summaries_by_run, metric: str) -> list:
  """One row per seed group: its seeds and the mean and sample standard
  deviation of best and final `metric` and of the wall time."""
  rows = []
  for group in groups:
    s = [summaries_by_run[run.name] for run in group.runs]
    cells = []
    for field in ('best', 'final'):
      mean, spread = runs_lib.mean_and_spread([x[field] for x in s])
      cells.append(f'{mean:.4f} ± {spread:.4f}')
    walls = [x['wall_seconds'] for x in s if x['wall_seconds'] is not None]
    wall = (f'{runs_lib.mean_and_spread(walls)[0]:.0f}' if walls else '-')
    rows.append([group.label, ', '.join(str(r.config.get(runs_lib.SEED))
                                        for r in group.runs), *cells, wall])
  return _table(['setting', 'seeds', f'best {metric} (mean ± sd)',
                 f'final {metric} (mean ± sd)', 'wall time (s, mean)'], rows)


def markdown(runs_lines, seeds_lines, figures: dict, out_dir: str,
             metric: str) -> str:
  lower = runs_lib.lower_is_better(metric)
  lines = ['# Comparison of runs', '',
           f'Best is the {"lowest" if lower else "highest"} {metric} a '
           'run recorded; wall time is summed across resumes. Config keys '
           'shown are those that differ between the runs.', '',
           *runs_lines, '']
  if seeds_lines:
    lines += ['## Over seeds', '',
              'Runs alike but for `seed`; sd is the sample standard '
              'deviation over seeds, the curves\' band spans the lowest to '
              'the highest seed.', '', *seeds_lines, '']
  lines += ['## Curves', '']
  lines += [f'![{os.path.basename(path)}]({os.path.relpath(path, out_dir)})'
            for path in figures.values()]
  return '\n'.join(lines) + '\n'
