"""Curves of several runs: training loss and validation metrics, against
step and against wall time, one line per run; a seed group is its mean
with a band from its lowest to its highest run, at the steps all its runs
recorded (against wall time, at its runs' mean wall time for each step).

matplotlib's object API (Figure, not pyplot): no global state, no display.
"""

import os

from matplotlib.figure import Figure

from skinjax.comparison import runs as runs_lib
from skinjax.run_folder import tracking

# Panels, in order, where at least one run recorded the key.
PANELS = ('train/loss', 'val/top1', 'val/balanced_accuracy', 'val/macro_f1',
          'val/nll')
AXES = {'step': 'step', tracking.WALL_TIME: 'wall time (s)'}
FILES = {'step': 'curves_by_step.png', tracking.WALL_TIME:
         'curves_by_wall_time.png'}


def panels(groups, metric: str) -> list:
  keys = PANELS if metric in PANELS else PANELS + (metric,)
  return [key for key in keys if any(
      len(runs_lib.series(run, key)[1]) for g in groups for run in g.runs)]


def curves(groups, metric: str, x: str) -> Figure:
  """One panel per metric; each group one line (its label), and a band
  when it holds several seeds."""
  keys = panels(groups, metric)
  columns = min(3, len(keys))
  rows = -(-len(keys) // columns)
  fig = Figure(figsize=(4.6 * columns, 3.4 * rows + 0.6),
               layout='constrained')
  for index, key in enumerate(keys):
    ax = fig.add_subplot(rows, columns, index + 1)
    for group in groups:
      if len(group.runs) == 1:
        xs, values = runs_lib.series(group.runs[0], key, x)
        ax.plot(xs, values, marker='.', label=group.label)
        continue
      xs, mean, low, high = runs_lib.aligned(group, key, x)
      line, = ax.plot(xs, mean, marker='.',
                      label=f'{group.label} (mean of {len(group.runs)} seeds)')
      ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2,
                      linewidth=0)
    ax.set_title(key)
    ax.set_xlabel(AXES[x])
    ax.grid(alpha=0.3)
  handles, labels = fig.axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc='outside lower center',
             ncols=min(2, len(labels)), fontsize='small')
  return fig


def write_all(groups, metric: str, out_dir: str) -> dict:
  """{x axis: path} of the PNG figures written into `out_dir`."""
  os.makedirs(out_dir, exist_ok=True)
  paths = {}
  for x, name in FILES.items():
    paths[x] = os.path.join(out_dir, name)
    curves(groups, metric, x).savefig(paths[x], dpi=110)
  return paths
