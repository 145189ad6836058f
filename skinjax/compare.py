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

from absl import app
from absl import flags

from skinjax.cli import main as cli_main
from skinjax.comparison import runner

_METRIC = flags.DEFINE_string(
    'metric', 'val/balanced_accuracy', 'The metric ranked (lowest is best '
    'for loss, nll, ece and aurc; highest for the others).')
_OUTPUT = flags.DEFINE_string(
    'output', '', "Where the figures and report.md go (default: 'comparison' "
    'beside the runs).')


def main(argv):
  if len(argv) < 2:
    raise app.UsageError('Name at least one run folder, or a folder of them.')
  runner.compare(argv[1:], _METRIC.value, _OUTPUT.value)


if __name__ == '__main__':
  cli_main.run(main)
