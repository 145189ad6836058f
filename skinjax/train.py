r"""Trains a classifier; re-running the same command resumes where it stopped.

  python -m skinjax.train --config configs/synthetic.py --workdir runs/synthetic \
      [--config.KEY=VALUE ...] \
      [--coordinator_address HOST:PORT --num_processes N --process_id I]

WORKDIR receives checkpoints/ (Orbax), metrics.jsonl, config.json (the
config with every override: evaluate and predict read it) and the W&B run
files. SIGTERM or SIGINT stops at the end of the current step with a
checkpoint and exit status 0 (a second SIGINT exits at once). A non-finite
loss, or a checkpoint that cannot be written, stops with exit status 1 and
earlier checkpoints untouched. A resume keeps the run's config: changing a
key that would break exact continuation is refused unless --allow_change
names it; WORKDIR/lock refuses a second run in the same folder. The loop
itself is skinjax/training/loop.py.
"""

import json

from absl import app
from absl import flags
from ml_collections import config_flags

from skinjax.cli import checks
from skinjax.cli import compilation_cache
from skinjax.cli import main as cli_main
from skinjax.evaluation import metrics
from skinjax.parallel import determinism
from skinjax.parallel import distributed
from skinjax.training import loop

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, e.g. configs/synthetic.py.', lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Run folder; an existing one is resumed.')
_ALLOW_CHANGE = flags.DEFINE_list(
    'allow_change', [], 'Config keys (or their parents, e.g. optimizer) a '
    'resume may change on purpose, e.g. num_train_steps to train longer; '
    'the change is recorded in WORKDIR/config_changes.jsonl.')
# Processes started by hand (launch.sh multiprocess); SLURM and Cloud TPU
# are detected without them.
_COORDINATOR_ADDRESS = flags.DEFINE_string(
    'coordinator_address', '', 'host:port where process 0 listens.')
_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', 1, 'Processes in the run, each with its own devices.')
_PROCESS_ID = flags.DEFINE_integer('process_id', 0,
                                   'This process: 0 .. num_processes - 1.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  determinism.request(config.deterministic)
  distributed.initialize(_COORDINATOR_ADDRESS.value, _NUM_PROCESSES.value,
                         _PROCESS_ID.value)
  checks.validate_here(config)
  compilation_cache.enable(config)
  checks.validate_key_names(config, _ALLOW_CHANGE.value, '--allow_change')
  validation = loop.train_and_evaluate(config, _WORKDIR.value,
                                       _ALLOW_CHANGE.value)
  if validation:
    print(json.dumps({f'val/{k}': validation[k]
                      for k in metrics.CHECKPOINT_METRICS}, indent=2))


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir'])
  cli_main.run(main)
