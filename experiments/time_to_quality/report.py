r"""Seconds each run took to reach a validation metric, from its run folder.

  python experiments/time_to_quality/report.py RUN_DIR [RUN_DIR ...] \
      --metric val/balanced_accuracy --target 0.70

Reads RUN_DIR/metrics.jsonl only (no network, no jax): for each run, the
first validation at or above the target, its step and the run's wall time
then (`time/wall_seconds`: summed across resumes, dataset preparation left
out), and the best value reached. Prints a markdown table.
"""

import argparse
import json
import os
import sys

from skinjax.run_folder import tracking


def read_records(workdir: str) -> list:
  path = os.path.join(workdir, tracking.METRICS_FILE)
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def time_to_target(records: list, metric: str, target: float) -> dict:
  """The first record with `metric` >= `target` ({} if none), and the best."""
  scored = [r for r in records if isinstance(r.get(metric), (int, float))]
  if not scored:
    raise ValueError(f'no record has {metric!r}')
  reached = next((r for r in scored if r[metric] >= target), None)
  best = max(scored, key=lambda r: r[metric])
  return {'step': reached and reached['step'],
          'seconds': reached and reached.get(tracking.WALL_TIME),
          'best': best[metric], 'best_step': best['step']}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('runs', nargs='+', help='run folders (WORKDIR)')
  parser.add_argument('--metric', default='val/balanced_accuracy')
  parser.add_argument('--target', type=float, required=True)
  args = parser.parse_args(argv)
  print(f'| run | step reaching {args.metric} >= {args.target:g} | seconds '
        '| best | at step |')
  print('|---|---|---|---|---|')
  for run in args.runs:
    try:
      result = time_to_target(read_records(run), args.metric, args.target)
    except (OSError, ValueError) as e:
      sys.exit(f'error: {run}: {e}')
    reached = result['step'] is not None
    seconds = result['seconds']
    print(f"| {run} | {result['step'] if reached else 'not reached'} | "
          f"{f'{seconds:.0f}' if reached and seconds is not None else '-'} | "
          f"{result['best']:.4f} | {result['best_step']} |")
  return 0


if __name__ == '__main__':
  sys.exit(main())
